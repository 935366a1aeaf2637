"""Do the default weights mean the same balance on another backbone? (issue 30)

vgg19 (its default weights) against EfficientNet-Lite0 with real ImageNet weights, both at the
default weights, chelsea x The Starry Night: for each, the final style loss over its first value
(how far the style was matched) and the final content loss over the final style loss (how the two
ended up balanced). With relative terms both ratios should agree within a small factor; with
dreamstyle 0.1's absolute terms (``--absolute``: its weights, content 5 and style 100) they do not.

The EfficientNet-Lite0 weights are the offline asset ``efficientnet-lite0-57934424.pth`` (lukemelas
layout, see ../shared/assets/MANIFEST.md); its keys are renamed to timm's ``tf_efficientnet_lite0``
and the file is given as ``--weights`` to the ``timm/tf_efficientnet_lite0`` backbone. Without the
file (or timm) the script says so and exits 0.

    python -m benchmarks.scale --size 224 --iterations 100 [--absolute] [--sheet OUT.png]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ASSET = "efficientnet-lite0-57934424.pth"
STAGES = [1, 2, 2, 3, 3, 4, 1]  # EfficientNet-B0's blocks per stage (timm groups them; lukemelas does not)
DEPTHWISE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
INVERTED = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}


def find_asset(folder: str | None) -> Path | None:
    candidates = (
        [Path(folder)]
        if folder
        else [ROOT.parent / "shared" / "assets" / "weights", ROOT.parent.parent / "shared" / "assets" / "weights"]
    )
    for c in candidates:
        if (c / ASSET).is_file():
            return c / ASSET
    return None


def timm_keys(state: dict) -> dict:
    """The lukemelas EfficientNet-Lite0 state dict with timm's tf_efficientnet_lite0 key names."""
    where = [(s, i) for s, n in enumerate(STAGES) for i in range(n)]
    out = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "_blocks":
            block = int(parts[1])
            stage, index = where[block]
            name = (DEPTHWISE if block == 0 else INVERTED)[parts[2]]
            out[f"blocks.{stage}.{index}.{name}.{parts[3]}"] = value
        else:
            out[f"{TOP[parts[0]]}.{parts[1]}"] = value
    return out


def run(backbone: str, weights, size: int, iterations: int, absolute: bool) -> dict:
    import dreamstyle

    inputs = ROOT / "samples" / "inputs"
    extra = dict(term_scale="absolute", content_weight=5.0, style_weight=100.0) if absolute else {}
    result = dreamstyle.transfer(
        str(inputs / "chelsea.png"),
        [str(inputs / "starry_night.jpg")],
        size=size,
        iterations=iterations,
        seed=0,
        backbone=backbone,
        weights=weights,
        precision="fp32",
        device="cpu",
        **extra,
    )
    h = result.history
    return {
        "backbone": backbone,
        "style_first": h[0]["style"],
        "style_last": h[-1]["style"],
        "content_last": h[-1]["content"],
        "tv_last": h[-1]["tv"],
        "style_last_over_first": h[-1]["style"] / h[0]["style"],
        "content_over_style": h[-1]["content"] / h[-1]["style"],
        "image": result.image,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--iterations", type=int, default=100)
    ap.add_argument("--absolute", action="store_true", help="dreamstyle 0.1's absolute terms and weights")
    ap.add_argument("--weights-dir", default=None, help=f"the folder holding {ASSET}")
    ap.add_argument("--sheet", default=None, help="write the two pictures side by side here (PNG)")
    args = ap.parse_args(argv)
    asset = find_asset(args.weights_dir)
    try:
        import timm  # noqa: F401
        import torch
    except ImportError:
        asset = None
    if asset is None:
        print(f"skipped: {ASSET} (or timm) is not on this machine")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        renamed = Path(tmp) / "tf_efficientnet_lite0.pth"
        torch.save(timm_keys(torch.load(asset, map_location="cpu", weights_only=True)), renamed)
        rows = [
            run("vgg19", None, args.size, args.iterations, args.absolute),
            run("timm/tf_efficientnet_lite0", str(renamed), args.size, args.iterations, args.absolute),
        ]
    images = [r.pop("image") for r in rows]
    a, b = rows
    summary = {
        "terms": "absolute (0.1)" if args.absolute else "relative",
        "size": args.size,
        "iterations": args.iterations,
        "rows": rows,
        "style_ratio_factor": max(a["style_last_over_first"], b["style_last_over_first"])
        / min(a["style_last_over_first"], b["style_last_over_first"]),
        "content_over_style_factor": max(a["content_over_style"], b["content_over_style"])
        / min(a["content_over_style"], b["content_over_style"]),
    }
    print(json.dumps(summary, indent=1))
    if args.sheet:
        from PIL import Image

        sheet = Image.new("RGB", (sum(i.width for i in images), max(i.height for i in images)), "white")
        x = 0
        for img in images:
            sheet.paste(img.convert("RGB"), (x, 0))
            x += img.width
        sheet.save(args.sheet)
    return 0


if __name__ == "__main__":
    sys.exit(main())
