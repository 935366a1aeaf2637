"""A folder of images on the local executor against Ray workers, whole commands, same images.

    python -m benchmarks.executors --images 16 --size 128 --iterations 20 --workers 2 --threads default,1

Makes ``--images`` content images (crops of scikit-image's photos if installed, else synthetic) and
runs ``dreamstyle transfer FOLDER STYLE -o OUT`` in a fresh process, once with ``--executor local``
(one process) and once with ``--executor ray --workers N`` (a Ray instance started by the command, N
actors each loading the backbone once and using as many torch threads as the command), for each
``--threads`` setting (``default``: torch's own count; a number: ``OMP_NUM_THREADS``), alternating
``--repeat`` times and keeping each side's fastest. Reports the wall time, shell to the last PNG
written (Ray's start-up and each worker's backbone load included), images per second, and whether
both sides wrote the same bytes.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_command(folder: Path, style: Path, out: Path, args, executor: list[str], threads: str) -> float:
    import os

    command = [
        sys.executable,
        "-m",
        "dreamstyle",
        "transfer",
        str(folder),
        str(style),
        "-o",
        str(out),
        "--size",
        str(args.size),
        "--iterations",
        str(args.iterations),
        "--optimizer",
        args.optimizer,
        "--seed",
        "0",
        "--device",
        "cpu",
        "-q",
        "--overwrite",
        *executor,
    ]
    if args.weights == "random":
        command += ["--weights", "random"]
    env = dict(os.environ, **({} if threads == "default" else {"OMP_NUM_THREADS": threads}))
    t = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(executor)} failed:\n{proc.stderr[-3000:]}")
    return wall


def measure(folder: Path, style: Path, tmp: Path, args, threads: str) -> dict:
    sides = {"local": ["--executor", "local"], "ray": ["--executor", "ray", "--workers", str(args.workers)]}
    best: dict[str, float] = {}
    for _ in range(args.repeat):
        for name, executor in sides.items():
            wall = run_command(folder, style, tmp / name, args, executor, threads)
            best[name] = min(best.get(name, wall), wall)
    same = sorted(p.name for p in (tmp / "ray").iterdir()) == sorted(p.name for p in (tmp / "local").iterdir()) and all(
        (tmp / "local" / p.name).read_bytes() == p.read_bytes() for p in (tmp / "ray").iterdir()
    )
    rates = {name: args.images / wall for name, wall in best.items()}
    return {
        "threads": threads,
        "local_wall_s": round(best["local"], 2),
        "ray_wall_s": round(best["ray"], 2),
        "local_images_per_s": round(rates["local"], 4),
        "ray_images_per_s": round(rates["ray"], 4),
        "ratio": round(rates["ray"] / rates["local"], 3),
        "same_bytes": same,
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=16)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--iterations", type=int, default=20)
    p.add_argument("--optimizer", choices=["adam", "lbfgs"], default="lbfgs")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--weights", choices=["random", "default"], default="default")
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--threads", default="default", help="comma list: default (torch's own) and/or numbers")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)

    from benchmarks.common import device_name, write_results
    from benchmarks.folder import make_images
    from benchmarks.transfer import images
    from dreamstyle.images import to_pil

    print(
        f"{device_name('cpu')}: {args.images} images of {args.size} px, {args.iterations} {args.optimizer} "
        f"iterations each, {args.weights} weights, {args.workers} Ray workers"
    )
    for threads in args.threads.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            folder, style = Path(tmp) / "in", Path(tmp) / "style.png"
            folder.mkdir()
            make_images(folder, args.images, args.size)
            to_pil(images(args.size)[1]).save(style)
            sides = measure(folder, style, Path(tmp), args, threads.strip())
        record = {
            "benchmark": "executors",
            "device": "cpu",
            "device_name": device_name("cpu"),
            "size": args.size,
            "images": args.images,
            "iterations": args.iterations,
            "optimizer": args.optimizer,
            "weights": args.weights,
            "workers": args.workers,
            "repeat": args.repeat,
            "date": time.strftime("%Y-%m-%d"),
            **sides,
        }
        path = write_results("executors", record, args.json)
        print(
            f"threads {sides['threads']}: local {sides['local_wall_s']:.1f} s, {sides['local_images_per_s']:.3f} "
            f"images/s   ray: {sides['ray_wall_s']:.1f} s, {sides['ray_images_per_s']:.3f} images/s   "
            f"ratio {sides['ratio']:.2f}x   same bytes: {sides['same_bytes']}   -> {path}"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
