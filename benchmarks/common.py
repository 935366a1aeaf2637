"""Shared plumbing: run one side in a fresh process, time it, collect the numbers."""

from __future__ import annotations

import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def peak_memory(device) -> dict:
    import torch

    out = {"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    if str(device).startswith("cuda"):
        out["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


def device_name(device: str) -> str:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"cpu: {os.cpu_count()} cores, {torch.get_num_threads()} threads, {platform.machine()}"


class StepClock:
    """Timestamps of iterations (synchronizing CUDA only when reading the clock, every step)."""

    def __init__(self, t0: float, device: str):
        self.t0, self.device, self.times = t0, device, []

    def __call__(self, *_):
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()
        self.times.append(time.perf_counter())

    def summary(self) -> dict:
        n = len(self.times)
        per_iter = (self.times[-1] - self.times[0]) / (n - 1) * 1000 if n > 1 else float("nan")
        return {
            "iterations": n,
            "startup_s": round(self.times[0] - self.t0, 3),
            "ms_per_iteration": round(per_iter, 3),
            "loop_s": round(self.times[-1] - self.times[0], 3),
        }


def run_side(module: str, side: str, args: list[str]) -> dict:
    """Run ``python -m module --side side args`` in a fresh process; it prints one JSON line last."""
    t0 = time.time()
    env = dict(os.environ, BENCH_T0=repr(t0), DREAMSTYLE_DISABLE_PLUGIN_AUTOLOAD="1")
    proc = subprocess.run(
        [sys.executable, "-m", module, "--side", side, *args], capture_output=True, text=True, env=env
    )
    wall = time.time() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{side} failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["wall_s"] = round(wall, 3)
    return result


def process_t0() -> float:
    """Wall-clock launch time of this process (set by the parent), on the perf_counter scale."""
    launched = float(os.environ.get("BENCH_T0", time.time()))
    return time.perf_counter() - (time.time() - launched)


def write_results(name: str, record: dict, out: str | None) -> Path:
    RESULTS.mkdir(exist_ok=True)
    device = record["device_name"].split(":")[0].replace(" ", "-").lower()
    path = Path(out) if out else RESULTS / f"{name}-{device}-{datetime.date.today().isoformat()}.json"
    existing = json.loads(path.read_text()) if path.exists() else []
    existing.append({**record, "commit": git_commit()})
    path.write_text(json.dumps(existing, indent=1) + "\n")
    return path


def git_commit() -> str | None:
    """The commit measured (``+dirty`` when the working tree has changes), or None outside git."""
    root = Path(__file__).parent.parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+dirty" if dirty else "")
