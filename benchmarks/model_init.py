"""Optimizing from a style network's picture (``transfer --init model:FILE``) against optimizing
from the photo: how many fewer iterations reach the same loss (issue 32).

    python -m benchmarks.model_init --model style.dsm --size 256 --iterations 200

Both runs: the same photo and painting (default ``samples/inputs/chelsea.png`` and
``starry_night.jpg``, which the model should have been trained on), size, seed, L-BFGS, one scale,
vgg19 with its default weights. Reported: each run's loss (total, content, style) by iteration, the
photo run's final total, the first iteration at which the network-start run is at or below it (and
the saving, as a fraction), and the wall times. ``--sheet OUT.png`` puts the photo, the network's
picture and both results side by side.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(content, style, init, size, iterations, seed):
    import dreamstyle

    t = time.perf_counter()
    result = dreamstyle.transfer(
        content, [style], size=size, scales=[size], iterations=iterations, seed=seed, init=init, optimizer="lbfgs"
    )
    return result, time.perf_counter() - t


def first_at_or_below(history, target: float) -> int | None:
    for entry in history:
        if entry["total"] <= target:
            return entry["iteration"]
    return None


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="a .dsm file from dreamstyle train")
    p.add_argument("--content", default=str(ROOT / "samples/inputs/chelsea.png"))
    p.add_argument("--style", default=str(ROOT / "samples/inputs/starry_night.jpg"))
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--iterations", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sheet", default=None, help="a contact sheet of the photo, the network's picture and both results")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)

    import dreamstyle
    from benchmarks.common import device_name, write_results

    photo, photo_s = run(args.content, args.style, "content", args.size, args.iterations, args.seed)
    net, net_s = run(args.content, args.style, f"model:{args.model}", args.size, args.iterations, args.seed)
    target = photo.history[-1]["total"]
    reached = first_at_or_below(net.history, target)
    keep = ("iteration", "total", "content", "style")
    record = {
        "benchmark": "model_init",
        "device": "cpu",
        "device_name": device_name("cpu"),
        "model": Path(args.model).name,
        "size": args.size,
        "iterations": args.iterations,
        "seed": args.seed,
        "date": time.strftime("%Y-%m-%d"),
        "from_photo": {"s": round(photo_s, 2), "history": [{k: e[k] for k in keep if k in e} for e in photo.history]},
        "from_network": {"s": round(net_s, 2), "history": [{k: e[k] for k in keep if k in e} for e in net.history]},
        "photo_final_total": target,
        "network_reaches_it_at": reached,
    }
    path = write_results("model_init", record, args.json)
    start = net.history[0]["total"], photo.history[0]["total"]
    print(f"device: {record['device_name']}; {args.size} px, {args.iterations} L-BFGS iterations, seed {args.seed}")
    print(f"first iteration's loss: from the photo {start[1]:.4g}, from the network's picture {start[0]:.4g}")
    print(f"from the photo: final loss {target:.4g} after {args.iterations} iterations ({photo_s:.1f} s)")
    if reached:
        saved = 1 - reached / args.iterations
        print(f"from the network's picture: at or below it after {reached} iterations ({saved:.0%} fewer)")
    else:
        print(f"from the network's picture: final loss {net.history[-1]['total']:.4g}: never at or below it")
    if args.sheet:
        from dreamstyle.fastnet import load_model
        from dreamstyle.images import load_image
        from dreamstyle.sheets import Panel, contact_sheet

        start_picture = dreamstyle.stylize(load_model(args.model), args.content, size=args.size, device="cpu")
        panels = [
            Panel(load_image(args.content), ["photo"]),
            Panel(start_picture, ["the network's picture"]),
            Panel(photo.image, [f"from the photo, {args.iterations} it"]),
            Panel(net.image, [f"from the network's, {args.iterations} it"]),
        ]
        contact_sheet(panels, start_picture.size, columns=4).save(args.sheet)
        print(f"sheet: {args.sheet}")
    print(f"-> {path}")


if __name__ == "__main__":
    main()
