"""L-BFGS's first steps: torch's own first step (``lr / |g|_1``) against dreamstyle's (a guess that
moves pixels by 8 on average, checked by a strong-Wolfe line search on the first iteration only),
same photo, painting, size and seed, one process.

    python -m benchmarks.lbfgs --size 96 --iterations 50

Prints the loss curve of both: the best total loss measured up to each iteration, with the count
of loss evaluations spent, and the wall time of each run. Also a warm start (frame 2 of a short
pan over the photo, started from frame 1's output as a clip does), where the line search matters.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MARKS = (1, 2, 3, 5, 10, 20, 30, 50, 100, 200, 300, 500)


def curve(run):
    """Run ``run(callback)`` counting loss evaluations; returns (every loss evaluated, the count of
    evaluations at each iteration's end, seconds)."""
    from dreamstyle import tiling

    totals, marks = [], []
    original = tiling.Gradient.__call__

    def counting(self, param, scale, backward=True):
        total, values = original(self, param, scale, backward)
        totals.append(float(total.detach()))
        return total, values

    tiling.Gradient.__call__ = counting
    try:
        t0 = time.perf_counter()
        run(lambda event: marks.append(len(totals)))
        seconds = time.perf_counter() - t0
    finally:
        tiling.Gradient.__call__ = original
    return totals, marks, seconds


def segment(totals, marks, first: int, last: int) -> dict:
    """Best loss measured by each of iterations first..last (1-based), evaluations counted from ``first``."""
    start = marks[first - 2] if first > 1 else 0
    return {
        "best": [min(totals[start : marks[k - 1]]) for k in range(first, last + 1)],
        "evaluations": [marks[k - 1] - start for k in range(first, last + 1)],
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=96)
    p.add_argument("--iterations", type=int, default=50)
    p.add_argument("--frame-iterations", type=int, default=10)
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)

    from PIL import Image

    import dreamstyle
    from benchmarks.common import device_name, write_results
    from dreamstyle import optimizers, transfer_clip
    from dreamstyle.clips import Clip

    content, style = ROOT / "samples/inputs/chelsea.png", ROOT / "samples/inputs/starry_night.jpg"
    photo = Image.open(content).convert("RGB")
    w = photo.width - 12
    frames = [photo.crop((6 * i, 0, 6 * i + w, photo.height)) for i in range(2)]
    options = dict(size=args.size, seed=0, device=args.device)
    record = {
        "benchmark": "lbfgs",
        "device": args.device,
        "device_name": device_name(args.device),
        "size": args.size,
        "iterations": args.iterations,
        "date": time.strftime("%Y-%m-%d"),
        "runs": {},
    }
    default_first = optimizers.LBFGS_FIRST_STEP
    for name, first in (("torch first step", None), ("dreamstyle first step", default_first)):
        optimizers.LBFGS_FIRST_STEP = first
        try:
            fresh = curve(
                lambda cb: dreamstyle.transfer(content, [style], iterations=args.iterations, callback=cb, **options)
            )
            warm = curve(
                lambda cb: transfer_clip(
                    Clip(frames, [100, 100], 0, ["f1", "f2"]),
                    [style],
                    iterations=args.iterations,
                    frame_iterations=args.frame_iterations,
                    callback=cb,
                    **options,
                )
            )
        finally:
            optimizers.LBFGS_FIRST_STEP = default_first
        n = args.iterations
        record["runs"][name] = {
            "fresh": {**segment(*fresh[:2], 1, n), "seconds": round(fresh[2], 2)},
            "warm_frame": segment(*warm[:2], n + 1, n + args.frame_iterations),
        }
    path = write_results("lbfgs", record, args.json)
    print(f"device: {record['device_name']}  {args.size} px")
    for what, key, n in (
        ("fresh start", "fresh", args.iterations),
        ("warm frame 2", "warm_frame", args.frame_iterations),
    ):
        print(f"\n{what}: best total loss by iteration (evaluations so far)")
        shown = [m for m in MARKS if m <= n] + ([n] if n not in MARKS else [])
        print(f"{'iteration':>22}" + "".join(f"{m:>16}" for m in shown))
        for name, r in record["runs"].items():
            row = r[key]
            print(
                f"{name:>22}" + "".join(f"{row['best'][m - 1]:>10.3g} ({row['evaluations'][m - 1]:>3})" for m in shown)
            )
    for name, r in record["runs"].items():
        print(f"{name}: fresh run {r['fresh']['seconds']:.1f} s")
    print(f"-> {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
