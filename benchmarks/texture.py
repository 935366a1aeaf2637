"""Texture synthesis at two sizes, plain and --seamless, one process: seconds per step and how they
grow with the pixels (4x the pixels should cost about 4x the time), with the top operators of one
seamless step from torch's profiler (where the time of a slow size goes).

    python -m benchmarks.texture --sizes 128,256 --iterations 4 --precision auto

Random vgg19 weights unless --weights default; the style is samples/inputs/starry_night.jpg.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="128,256")
    p.add_argument("--iterations", type=int, default=4)
    p.add_argument("--precision", default="auto")
    p.add_argument("--device", default="cpu")
    p.add_argument("--weights", choices=["random", "default"], default="random")
    p.add_argument("--profile", action="store_true", help="also print the top operators of a seamless step")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)

    import dreamstyle
    from benchmarks.common import device_name, write_results
    from dreamstyle.backbones import load_backbone

    loaded = load_backbone("vgg19", weights=None if args.weights == "default" else "random", device=args.device)
    style = ROOT / "samples/inputs/starry_night.jpg"
    record = {
        "benchmark": "texture",
        "device": args.device,
        "device_name": device_name(args.device),
        "precision": args.precision,
        "iterations": args.iterations,
        "date": time.strftime("%Y-%m-%d"),
        "runs": [],
    }
    for size in (int(s) for s in args.sizes.split(",")):
        for seamless in (False, True):
            times = []
            result = dreamstyle.texture(
                [style],
                size=size,
                seamless=seamless,
                iterations=args.iterations,
                seed=0,
                loaded=loaded,
                device=args.device,
                precision=args.precision,
                callback=lambda e: times.append(time.perf_counter()),
            )
            per_step = (times[-1] - times[0]) / max(1, len(times) - 1)  # the first step (targets, set-up) left out
            record["runs"].append(
                {
                    "size": size,
                    "seamless": seamless,
                    "s_per_step": round(per_step, 4),
                    "precision_used": result.recipe.get("precision_used"),
                }
            )
    path = write_results("texture", record, args.json)
    print(f"device: {record['device_name']}  precision: {args.precision}")
    print(f"{'size':>6} {'seamless':>9} {'s/step':>9} {'x smallest':>11}")
    base = {}
    for r in record["runs"]:
        base.setdefault(r["seamless"], r["s_per_step"])
        print(
            f"{r['size']:>6} {str(r['seamless']):>9} {r['s_per_step']:>9.3f} {r['s_per_step'] / base[r['seamless']]:>11.2f}"
            f"  ({r['precision_used']})"
        )
    if args.profile:
        profile(loaded, style, max(int(s) for s in args.sizes.split(",")), args)
    print(f"-> {path}")


def profile(loaded, style, size, args):
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    import dreamstyle

    steps = []

    def on_step(event):
        steps.append(event.iteration)

    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        dreamstyle.texture(
            [style],
            size=size,
            seamless=True,
            iterations=2,
            seed=0,
            loaded=loaded,
            device=args.device,
            precision=args.precision,
            callback=on_step,
        )
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12, max_name_column_width=48))


if __name__ == "__main__":
    main(sys.argv[1:])
