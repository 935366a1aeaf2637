"""An atlas one channel at a time against batched, same process, same channels.

    python -m benchmarks.atlas --device cpu --layer relu4_4 --channels 8 --batch 8 --size 128 --iterations 32

Runs ``dreamstyle.atlas`` over channels 0..N-1 with ``batch=1`` and with ``--batch`` (one loaded
backbone serves both; a warm-up runs first) and reports channels per second for both and their
ratio, with each side's mean final activation (the batched cells are the same visualizations: each
channel starts from its own seeded noise).
"""

from __future__ import annotations

import argparse
import sys
import time


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--layer", default="relu4_4")
    p.add_argument("--channels", type=int, default=8)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--iterations", type=int, default=32)
    p.add_argument("--weights", choices=["random", "default"], default="default")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)

    import torch

    from benchmarks.common import device_name, peak_memory, write_results
    from dreamstyle import atlas
    from dreamstyle.backbones import load_backbone

    weights = None if args.weights == "default" else "random"
    loaded = load_backbone("vgg19", weights=weights, device=args.device)
    common = dict(loaded=loaded, size=args.size, iterations=args.iterations, device=args.device, seed=0)
    atlas("vgg19", args.layer, channels="0", **{**common, "iterations": 2})  # warm-up
    rates, means = {}, {}
    for batch in (1, args.batch):
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        t = time.perf_counter()
        result = atlas("vgg19", args.layer, channels=f"0-{args.channels - 1}", batch=batch, **common)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        rates[batch] = args.channels / (time.perf_counter() - t)
        means[batch] = sum(c.activation for c in result.cells) / len(result.cells)
    record = {
        "benchmark": "atlas",
        "device": args.device,
        "device_name": device_name(args.device),
        "layer": args.layer,
        "channels": args.channels,
        "size": args.size,
        "iterations": args.iterations,
        "weights": args.weights,
        "date": time.strftime("%Y-%m-%d"),
        "batch": args.batch,
        "channels_per_s_batch1": round(rates[1], 4),
        "channels_per_s_batched": round(rates[args.batch], 4),
        "speedup": round(rates[args.batch] / rates[1], 3),
        "mean_activation_batch1": round(means[1], 4),
        "mean_activation_batched": round(means[args.batch], 4),
        **peak_memory(args.device),
    }
    path = write_results("atlas", record, args.json)
    print(
        f"device: {record['device_name']}  {args.channels} channels of {args.layer}, {args.size} px, "
        f"{args.iterations} steps each"
    )
    print(
        f"one at a time: {rates[1]:.3f} channels/s   batch {args.batch}: {rates[args.batch]:.3f} channels/s   "
        f"ratio {record['speedup']:.2f}x   mean activation {means[1]:.4g} / {means[args.batch]:.4g}   -> {path}"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
