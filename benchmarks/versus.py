"""dreamstyle against an earlier commit of itself, side by side in one run: start-up (process launch
to the end of the first iteration), ms per iteration, and the whole command, shell to written PNG.

    python -m benchmarks.versus --base 8a7c1f7 --size 256 --iterations 30 --optimizer adam --repeat 3

The base commit is checked out in a temporary git worktree; each side runs its own
``benchmarks.transfer --side ours`` (and its own ``python -m dreamstyle transfer``) in fresh
processes, alternating, and keeps its fastest run. ``ratio`` = base / this tree (above 1: faster now).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def side(tree: Path, args) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree), BENCH_T0=repr(time.time()), DREAMSTYLE_DISABLE_PLUGIN_AUTOLOAD="1")
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.transfer",
        "--side",
        "ours",
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
    ]
    proc = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{tree} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def command(tree: Path, args, tmp: Path) -> float:
    env = dict(os.environ, PYTHONPATH=str(tree), DREAMSTYLE_DISABLE_PLUGIN_AUTOLOAD="1")
    cmd = [
        sys.executable,
        "-m",
        "dreamstyle",
        "transfer",
        str(ROOT / "samples/inputs/chelsea.png"),
        str(ROOT / "samples/inputs/starry_night.jpg"),
        "-o",
        str(tmp / "o.png"),
        "--size",
        str(args.size),
        "--iterations",
        str(args.iterations),
        "--optimizer",
        args.optimizer,
        "--device",
        args.device,
        "--log-every",
        str(args.iterations),
        "--overwrite",
        "-q",
    ]
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=tmp, env=env, check=True)
    return time.perf_counter() - t0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", required=True, help="the earlier commit")
    p.add_argument("--device", default="cpu")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--iterations", type=int, default=30)
    p.add_argument("--optimizer", default="adam")
    p.add_argument("--weights", choices=["random", "default"], default="default")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)

    from benchmarks.common import device_name, write_results

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(base), args.base], cwd=ROOT, check=True, capture_output=True
        )
        try:
            trees = {"base": base, "now": ROOT}
            runs = {name: [] for name in trees}
            walls = {name: [] for name in trees}
            for _ in range(max(1, args.repeat)):
                for name, tree in trees.items():
                    runs[name].append(side(tree, args))
                    walls[name].append(command(tree, args, Path(tmp)))
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT, capture_output=True)
    best = {
        name: {
            "startup_s": min(r["startup_s"] for r in found),
            "ms_per_iteration": min(r["ms_per_iteration"] for r in found),
            "command_s": round(min(walls[name]), 3),
        }
        for name, found in runs.items()
    }
    record = {
        "benchmark": "versus",
        "base": args.base,
        "device": args.device,
        "device_name": device_name(args.device),
        "size": args.size,
        "iterations": args.iterations,
        "optimizer": args.optimizer,
        "repeat": args.repeat,
        "date": time.strftime("%Y-%m-%d"),
        **best,
        "ratio": {k: round(best["base"][k] / best["now"][k], 3) for k in best["now"]},
    }
    path = write_results("versus", record, args.json)
    print(
        f"device: {record['device_name']}  {args.size} px  {args.optimizer}  {args.iterations} iterations, "
        f"best of {args.repeat}"
    )
    print(f"{'':10}{'start-up s':>12}{'ms/iter':>10}{'command s':>11}")
    for name in ("base", "now"):
        b = best[name]
        print(
            f"{name + (' ' + args.base if name == 'base' else ''):10}{b['startup_s']:>12.2f}"
            f"{b['ms_per_iteration']:>10.1f}{b['command_s']:>11.2f}"
        )
    print(f"ratio base / now: {record['ratio']}   -> {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
