"""Style transfer: dreamstyle's engine vs the naive reference, each in a fresh process, same run.

    python -m benchmarks.transfer --device cpu --size 256 --iterations 50 --optimizer adam --weights default

Prints and writes (benchmarks/results/ or --json OUT): ms per iteration for both, ``speedup``
(reference / ours), start-up (process start to first iteration), wall time, peak memory, device.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

VGG19_TAPS = {"relu1_1": 1, "relu2_1": 6, "relu3_1": 11, "relu4_1": 20, "relu4_2": 22, "relu5_1": 29}


def images(size: int):
    """A content photo and a texture from scikit-image if installed, else synthetic images."""
    import torch

    from dreamstyle.images import fit_size, to_tensor

    try:
        from PIL import Image
        from skimage import data

        content = Image.fromarray(data.chelsea())
        style = Image.fromarray(data.coffee())
    except Exception:
        torch.manual_seed(0)
        from dreamstyle.images import to_pil

        content, style = to_pil(torch.rand(1, 3, 300, 451)), to_pil(torch.rand(1, 3, 400, 600))
    return to_tensor(content, fit_size(content.size, size)), to_tensor(style, fit_size(style.size, size))


def side_ours(args, t0):
    from benchmarks.common import StepClock, peak_memory
    from dreamstyle import transfer
    from dreamstyle.images import to_pil

    content, style = images(args.size)
    clock = StepClock(t0, args.device)
    transfer(
        to_pil(content),
        [to_pil(style)],
        weights=None if args.weights == "default" else "random",
        device=args.device,
        size=args.size,
        iterations=args.iterations,
        optimizer=args.optimizer,
        seed=0,
        log_every=args.iterations,
        callback=clock,
        precision=args.precision,
    )
    return {**clock.summary(), **peak_memory(args.device)}


def side_reference(args, t0):
    import torch

    from benchmarks.common import StepClock, peak_memory
    from benchmarks.reference import run
    from dreamstyle.backbones import load_backbone

    torch.manual_seed(0)
    loaded = load_backbone("vgg19", weights=None if args.weights == "default" else "random", device=args.device)
    features = loaded.model.features
    pre = loaded.preprocess.module().to(args.device)
    content, style = (t.to(args.device) for t in images(args.size))
    clock = StepClock(t0, args.device)
    run(
        features,
        pre,
        content,
        style,
        {"relu4_2": 22},
        {k: v for k, v in VGG19_TAPS.items() if k != "relu4_2"},
        args.iterations,
        args.optimizer,
        on_step=clock,
    )
    return {**clock.summary(), **peak_memory(args.device)}


def cli_wall(args) -> float:
    """Wall time of the whole ``dreamstyle transfer`` command, from shell to written PNG."""
    import os
    import subprocess
    import tempfile

    from dreamstyle.images import to_pil

    content, style = images(args.size)
    with tempfile.TemporaryDirectory() as tmp:
        to_pil(content).save(f"{tmp}/c.png")
        to_pil(style).save(f"{tmp}/s.png")
        cmd = [
            sys.executable,
            "-m",
            "dreamstyle",
            "transfer",
            f"{tmp}/c.png",
            f"{tmp}/s.png",
            "-o",
            f"{tmp}/o.png",
            "--size",
            str(args.size),
            "--iterations",
            str(args.iterations),
            "--optimizer",
            args.optimizer,
            "--device",
            args.device,
            "-q",
            "--log-every",
            str(args.iterations),
            "--precision",
            args.precision,
        ]
        if args.weights == "random":
            cmd += ["--weights", "random"]
        t0 = time.time()
        subprocess.run(cmd, check=True, env=dict(os.environ, DREAMSTYLE_DISABLE_PLUGIN_AUTOLOAD="1"))
        return round(time.time() - t0, 3)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--iterations", type=int, default=50)
    p.add_argument("--optimizer", choices=["adam", "lbfgs"], default="adam")
    p.add_argument("--weights", choices=["random", "default"], default="default")
    p.add_argument("--precision", default="auto", help="dreamstyle's (the reference is always fp32)")
    p.add_argument("--sides", default="reference,ours", help="which sides to run (ours alone for big prints)")
    p.add_argument(
        "--repeat", type=int, default=1, help="alternate the sides this many times and keep each side's fastest run"
    )
    p.add_argument("--json", default=None, help="append the record to this file")
    p.add_argument("--side", choices=["ours", "reference"], default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.side:
        from benchmarks.common import process_t0

        t0 = process_t0()
        out = (side_ours if args.side == "ours" else side_reference)(args, t0)
        print(json.dumps(out))
        return
    import torch

    from benchmarks.common import device_name, run_side, write_results
    from dreamstyle.runtime import amp_dtype, precision_name

    forwarded = [
        "--device",
        args.device,
        "--size",
        str(args.size),
        "--iterations",
        str(args.iterations),
        "--optimizer",
        args.optimizer,
        "--weights",
        args.weights,
        "--precision",
        args.precision,
    ]
    sides = [s.strip() for s in args.sides.split(",") if s.strip() in ("reference", "ours")]
    runs = {side: [] for side in sides}
    for _ in range(max(1, args.repeat)):
        for side in runs:
            runs[side].append(run_side("benchmarks.transfer", side, forwarded))
    best = {side: min(found, key=lambda r: r["ms_per_iteration"]) for side, found in runs.items()}
    if "ours" in best:
        best["ours"]["cli_wall_s"] = cli_wall(args)
    record = {
        "benchmark": "transfer",
        "device": args.device,
        "device_name": device_name(args.device),
        "size": args.size,
        "iterations": args.iterations,
        "optimizer": args.optimizer,
        "weights": args.weights,
        "repeat": args.repeat,
        "date": time.strftime("%Y-%m-%d"),
        "precision": precision_name(amp_dtype(torch.device(args.device), args.precision)),
        **best,
    }
    if len(best) == 2:
        record["speedup"] = round(best["reference"]["ms_per_iteration"] / best["ours"]["ms_per_iteration"], 3)
    path = write_results("transfer", record, args.json)
    print(
        f"device: {record['device_name']}  size {args.size}  {args.optimizer}  {args.iterations} iterations"
        f"  dreamstyle in {record['precision']} (the reference in fp32)"
    )
    print(f"{'':12}{'ms/iter':>10}{'startup s':>11}{'wall s':>9}{'peak MB':>9}")
    for name, r in (("reference", best.get("reference")), ("dreamstyle", best.get("ours"))):
        if r is not None:
            mem = r.get("peak_gpu_mb", r["peak_rss_mb"])
            print(f"{name:12}{r['ms_per_iteration']:>10.1f}{r['startup_s']:>11.2f}{r['wall_s']:>9.2f}{mem:>9.0f}")
    if "ours" in best:
        print(f"dreamstyle command, shell to written PNG: {best['ours']['cli_wall_s']:.2f} s")
    if "speedup" in record:
        print(f"speedup (reference / ours): {record['speedup']:.2f}x   -> {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
