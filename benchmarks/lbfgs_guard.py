"""L-BFGS's guard against steps that raise the loss: which fallback, measured (issue 35).

    python -m benchmarks.lbfgs_guard --iterations 40

Three runs where total variation (an L1 norm: its curvature pairs are noise) dominates the loss,
random vgg19 weights, fp32, one thread: the issue's colour ramp painted in stripes (64 px), a noisy
photo in stripes (64 px), and the same photo on a backbone whose features are scaled by 1e-3 (48 px,
style weight 1e8). Each with no guard (torch's step as it was), with an immediate restart (forget the
curvature pairs, a line-searched gradient step), with backtracking only, and with dreamstyle's
default (backtracking, then a restart after ``LBFGS_BACKTRACKS`` undone steps in a row). Reports the
logged total at iterations 1, 10, 20 and the last, the highest logged, the loss evaluations spent
and the seconds.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STRATEGIES = {"none": None, "restart": 0, "backtrack": 10**6, "default": "default"}


def cases(tmp: Path):
    import numpy as np
    from PIL import Image

    sys.path.insert(0, str(ROOT / "tests"))
    from helpers import make_image

    y, x = np.mgrid[0:64, 0:96]
    Image.fromarray(np.stack([x / 96 * 255, y / 64 * 255, (1 - x / 96) * 255], -1).astype(np.uint8)).save(tmp / "c.png")
    stripes = np.zeros((64, 64, 3), np.uint8)
    stripes[:, (np.arange(64) // 4) % 2 == 0] = 255
    Image.fromarray(stripes).save(tmp / "s.png")
    photo = make_image(tmp / "p.png", (64, 48), seed=1)
    style = make_image(tmp / "st.png", (48, 48), kind="stripes")
    return {
        "ramp in stripes": ((tmp / "c.png", [tmp / "s.png"]), dict(size=64), False),
        "photo in stripes": ((photo, [style]), dict(size=64), False),
        "features x 1e-3": ((photo, [style]), dict(size=48, style_weight=1e8), True),
    }


def scaled_features():
    from dreamstyle import backbones

    plain = backbones._feature_net_class()

    class Scaled(plain):
        def forward(self, image):
            return {k: v * 1e-3 for k, v in super().forward(image).items()}

    return Scaled


def run(strategy, args, options, scaled, vgg, iterations):
    import dreamstyle
    from dreamstyle import backbones, optimizers, tiling

    evaluations = [0]
    original_call, original_init = tiling.Gradient.__call__, optimizers.FirstStepLBFGS.__init__
    original_net, original_backtracks = backbones._feature_net_class, optimizers.LBFGS_BACKTRACKS

    def counting(self, *a, **k):
        evaluations[0] += 1
        return original_call(self, *a, **k)

    def init(self, params, lr=1.0, first_step=optimizers.LBFGS_FIRST_STEP):
        original_init(self, params, lr, first_step, guard=STRATEGIES[strategy] is not None)

    tiling.Gradient.__call__, optimizers.FirstStepLBFGS.__init__ = counting, init
    if isinstance(STRATEGIES[strategy], int):
        optimizers.LBFGS_BACKTRACKS = STRATEGIES[strategy]
    if scaled:
        net = scaled_features()
        backbones._feature_net_class = lambda: net
    try:
        t0 = time.perf_counter()
        result = dreamstyle.transfer(
            *args, loaded=vgg, iterations=iterations, seed=0, device="cpu", precision="fp32", **options
        )
        seconds = time.perf_counter() - t0
    finally:
        tiling.Gradient.__call__, optimizers.FirstStepLBFGS.__init__ = original_call, original_init
        backbones._feature_net_class, optimizers.LBFGS_BACKTRACKS = original_net, original_backtracks
    totals = [row["total"] for row in result.history]
    return {"totals": totals, "evaluations": evaluations[0], "seconds": round(seconds, 2)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--iterations", type=int, default=40)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)

    import torch

    from benchmarks.common import device_name, write_results
    from dreamstyle.backbones import load_backbone

    torch.set_num_threads(1)
    torch.manual_seed(0)
    vgg = load_backbone("vgg19", weights="random")
    record = {
        "benchmark": "lbfgs_guard",
        "device_name": device_name("cpu"),
        "iterations": args.iterations,
        "date": time.strftime("%Y-%m-%d"),
        "runs": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        for case, (inputs, options, scaled) in cases(Path(tmp)).items():
            record["runs"][case] = {s: run(s, inputs, options, scaled, vgg, args.iterations) for s in STRATEGIES}
    path = write_results("lbfgs_guard", record, args.json)
    n = args.iterations
    print(
        f"{'case':>18} {'guard':>10} {'it 1':>10} {'it 10':>10} {'it 20':>10} {f'it {n}':>10} {'highest':>10}"
        f" {'evals':>6} {'s':>6}"
    )
    for case, runs in record["runs"].items():
        for strategy, r in runs.items():
            t = r["totals"]
            print(
                f"{case:>18} {strategy:>10}"
                + "".join(f" {t[min(i, n) - 1]:>10.4g}" for i in (1, 10, 20, n))
                + f" {max(t):>10.4g} {r['evaluations']:>6} {r['seconds']:>6.1f}"
            )
    print(f"-> {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
