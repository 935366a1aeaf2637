"""Style losses side by side, graded by a judge that is not the network they optimize (issue 31).

Each method (``--style-loss`` with an optimizer) runs on each photo x painting pair at the same size
and iterations, on vgg19 with its default weights, in one process; every picture is then scored by
``dreamstyle.score`` on the judge: EfficientNet-Lite0 with real ImageNet weights (the offline asset
``efficientnet-lite0-57934424.pth``, renamed to timm's layout as in ``benchmarks.scale``) where it is
found, else vgg19 itself (then the judge grades its own features: said in the output). Reported per
method: wall time, and the mean content distance and style distances (Gram, sliced Wasserstein)
over the pairs, and each pair's; one contact sheet per method (the pairs in a row) under ``--sheets``.
A method is ``LOSS:OPTIMIZER[:STYLE_WEIGHT[:ITERATIONS]]``: the methods cost different times per
step, so equal wall time is each method's own number of steps (``--iterations`` where none is given).

    python -m benchmarks.styles --size 256 --iterations 100 --pairs 3 --sheets out/styles
    python -m benchmarks.styles --pairs 3 --threads 1 --methods gram:lbfgs:1.5e7,swd:lbfgs:1.5e8:40
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
METHODS = ("gram:lbfgs", "w2:lbfgs", "swd:lbfgs", "swd:adam")
PAIRS = (
    ("chelsea.png", "starry_night.jpg"),
    ("astronaut.png", "great_wave.jpg"),
    ("rocket.png", "composition_vii.jpg"),
    ("chelsea.png", "great_wave.jpg"),
    ("astronaut.png", "starry_night.jpg"),
)


def judge_backbone(tmp: Path) -> tuple[str, str | None, str]:
    """(backbone, weights, what) of the judge: EfficientNet-Lite0 where its asset is here, else vgg19."""
    from benchmarks.scale import find_asset, timm_keys

    asset = find_asset(None)
    try:
        import timm  # noqa: F401
    except ImportError:
        asset = None
    if asset is None:
        return "vgg19", None, "vgg19 (no EfficientNet-Lite0 asset here: the judge is the optimized network)"
    import torch

    path = tmp / "tf_efficientnet_lite0.pth"
    torch.save(timm_keys(torch.load(asset, map_location="cpu", weights_only=True)), path)
    return "timm/tf_efficientnet_lite0", str(path), "EfficientNet-Lite0, ImageNet weights"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--iterations", type=int, default=100)
    ap.add_argument("--pairs", type=int, default=3, help=f"how many of the {len(PAIRS)} pairs")
    ap.add_argument(
        "--methods", default=",".join(METHODS), help="LOSS:OPTIMIZER[:STYLE_WEIGHT[:ITERATIONS]], comma separated"
    )
    ap.add_argument("--threads", type=int, default=None, help="torch's CPU threads (default: torch's own)")
    ap.add_argument("--sheets", default=None, help="folder for one contact sheet per method")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)

    import torch

    import dreamstyle
    from benchmarks.common import device_name, write_results
    from dreamstyle.sheets import Panel, contact_sheet

    if args.threads:
        torch.set_num_threads(args.threads)
    inputs = ROOT / "samples" / "inputs"
    pairs = PAIRS[: args.pairs]
    sheets = Path(args.sheets) if args.sheets else None
    if sheets:
        sheets.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        judge, weights, what = judge_backbone(Path(tmp))
        print(f"device: {device_name('cpu')}  {args.size} px  {args.iterations} iterations  judge: {what}")
        rows = []
        for method in args.methods.split(","):
            loss, optimizer, *rest = method.split(":")  # LOSS:OPTIMIZER[:STYLE_WEIGHT[:ITERATIONS]]
            weight, steps = (rest + [None, None])[:2]
            extra = {"style_weight": float(weight)} if weight else {}
            iterations = int(steps) if steps else args.iterations
            scores, panels, seconds = [], [], 0.0
            for content, style in pairs:
                t = time.perf_counter()
                result = dreamstyle.transfer(
                    str(inputs / content),
                    [str(inputs / style)],
                    size=args.size,
                    iterations=iterations,
                    style_loss=loss,
                    optimizer=optimizer,
                    seed=1,
                    device="cpu",
                    **extra,
                )
                seconds += time.perf_counter() - t
                scores.append(
                    dreamstyle.score(
                        result.image,
                        str(inputs / content),
                        [str(inputs / style)],
                        backbone=judge,
                        weights=weights,
                        device="cpu",
                    )
                )
                panels.append(Panel(result.image, [f"{Path(content).stem} x {Path(style).stem}"]))
            row = {"method": method, "iterations": iterations, "seconds": round(seconds, 1)}
            for key in ("content", "style_gram", "style_swd"):
                row[key] = sum(s[key] for s in scores) / len(scores)
            row["per_pair"] = [{key: s[key] for key in ("content", "style_gram", "style_swd")} for s in scores]
            rows.append(row)
            print(
                f"  {method:<18} {row['seconds']:7.1f} s   content {row['content']:.4f}   style: Gram "
                f"{row['style_gram']:.4f}  sliced W. {row['style_swd']:.4f}   per pair (content/sliced W.): "
                + " ".join(f"{s['content']:.3f}/{s['style_swd']:.4f}" for s in scores),
                flush=True,
            )
            if sheets:
                contact_sheet(
                    panels,
                    (args.size, args.size),
                    columns=len(panels),
                    title=f"--style-loss {loss} --optimizer {optimizer}"
                    + (f" --style-weight {weight}" if weight else "")
                    + f" --iterations {iterations}",
                ).save(sheets / f"{'-'.join([loss, optimizer, *rest])}.png")
    record = {
        "benchmark": "styles",
        "device": "cpu",
        "device_name": device_name("cpu"),
        "size": args.size,
        "iterations": args.iterations,
        "threads": torch.get_num_threads(),
        "pairs": [list(p) for p in pairs],
        "judge": what,
        "rows": rows,
        "date": time.strftime("%Y-%m-%d"),
    }
    print("->", write_results("styles", record, args.json))
    return 0


if __name__ == "__main__":
    sys.exit(main())
