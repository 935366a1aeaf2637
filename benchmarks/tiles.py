"""Peak memory and time of big transfers, tiled and untiled, whole commands in fresh processes.

    python -m benchmarks.tiles --sizes 1024,2048,4096 --tile 1024 --iterations 2

For each size (the longest side; the pictures are 4:3), ``dreamstyle transfer`` runs on a
generated photo-like content and a 256 px style with random weights (the memory does not depend on
the weights), in a fresh process each, tiled (``--tile``, at most half the picture's longest side) and, up to ``--untiled-up-to`` px,
untiled (``--tile 0``). Each reports its peak resident memory (ru_maxrss of the process, the
network and Python included), wall time, the tiles the recipe says it used, and dreamstyle's own
estimate of an untiled step (``dreamstyle.memory.step_bytes``, what automatic tiling decides by).
The growth of the tiled peak from one size to the next against the growth of the pixel count is
the point: bounded by the tile, not the picture.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def make_inputs(folder: Path, size: int) -> tuple[Path, Path]:
    """A smooth colour field with edges (content) and stripes (style): cheap to make at any size."""
    import numpy as np
    from PIL import Image

    w, h = size, size * 3 // 4
    content = folder / f"content_{size}.png"
    if not content.exists():
        y, x = np.mgrid[0:h, 0:w].astype(np.float32)
        rgb = np.stack(
            [
                (np.sin(x / 37) + 1) * 110 + (x / w) * 30,
                (np.cos(y / 53) + 1) * 100 + 20,
                ((x + y) % 211 > 105) * 120 + 60.0,
            ],
            -1,
        )
        Image.fromarray(rgb.clip(0, 255).astype(np.uint8)).save(content)
    style = folder / "style.png"
    if not style.exists():
        y, x = np.mgrid[0:256, 0:256]
        stripes = ((x + 2 * y) // 12 % 2)[..., None] * np.array([200, 60, 30]) + 30
        Image.fromarray(stripes.astype(np.uint8)).save(style)
    return content, style


def side(argv: list[str]) -> None:
    """One whole command in this process: ``dreamstyle transfer ARGV``; prints one JSON line."""
    from dreamstyle.cli import main

    t0 = time.perf_counter()
    try:
        main(["transfer", *argv], standalone_mode=False)
    except SystemExit as exc:
        if exc.code:
            raise
    wall = time.perf_counter() - t0
    print(
        json.dumps(
            {"wall_s": round(wall, 1), "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}
        )
    )


def estimate_mb(recipe: dict, size: int) -> float:
    """dreamstyle's estimate of one untiled step of this run (what --tile auto decides by)."""
    from dreamstyle.memory import step_bytes
    from dreamstyle.plugins import get_backbone

    backbone = get_backbone(recipe["backbone"])
    layers = [
        *(recipe["style_layers"] or backbone.style_layers),
        *(recipe["content_layers"] or backbone.content_layers),
    ]
    itemsize = 2 if recipe.get("precision_used") in ("bf16", "fp16", "bfloat16", "float16") else 4
    return round(step_bytes(backbone, layers, (size, size * 3 // 4), itemsize) / 2**20)


def main() -> None:
    if sys.argv[1:2] == ["--side"]:  # a side: the rest is dreamstyle's command line, untouched
        return side(sys.argv[2:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1024,2048,4096")
    parser.add_argument("--tile", type=int, default=1024, help="the tile (at most half the picture)")
    parser.add_argument("--untiled-up-to", type=int, default=1024)
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--optimizer", default="adam")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    from benchmarks.common import device_name, write_results

    folder = Path(tempfile.mkdtemp(prefix="dreamstyle-tiles-"))
    runs = []
    for size in [int(s) for s in args.sizes.split(",")]:
        content, style = make_inputs(folder, size)
        for tile in [min(args.tile, size // 2)] + ([0] if size <= args.untiled_up_to else []):
            out = folder / f"out_{size}_{tile}.png"
            cmd = [
                sys.executable,
                "-m",
                "benchmarks.tiles",
                "--side",
                str(content),
                str(style),
                "-o",
                str(out),
                "--weights",
                "random",
                "--size",
                str(size),
                "--iterations",
                str(args.iterations),
                "--optimizer",
                args.optimizer,
                "--tile",
                str(tile),
                "--seed",
                "0",
                "--device",
                "cpu",
                "--overwrite",
                "-q",
            ]
            proc = subprocess.run(
                cmd, capture_output=True, text=True, env=dict(os.environ, DREAMSTYLE_DISABLE_PLUGIN_AUTOLOAD="1")
            )
            if proc.returncode != 0:
                raise SystemExit(f"{size} px, tile {tile} failed:\n{proc.stderr[-3000:]}")
            found = json.loads(proc.stdout.strip().splitlines()[-1])
            from PIL import Image

            recipe = json.loads(Image.open(out).info["dreamstyle"])
            run = {
                "size": size,
                "pixels": size * (size * 3 // 4),
                "tile": tile,
                **found,
                "tiles_used": recipe.get("tiles_used"),
                "precision": recipe.get("precision_used"),
                "untiled_estimate_mb": estimate_mb(recipe, size),
            }
            runs.append(run)
            print(json.dumps(run), flush=True)
    tiled = [r for r in runs if r["tile"]]
    for a, b in zip(tiled, tiled[1:]):
        print(
            f"{a['size']} -> {b['size']} px: pixels x{b['pixels'] / a['pixels']:.1f}, "
            f"tiled peak x{b['peak_rss_mb'] / a['peak_rss_mb']:.2f}"
        )
    record = {
        "benchmark": "tiles",
        "device_name": device_name("cpu"),
        "iterations": args.iterations,
        "optimizer": args.optimizer,
        "weights": "random",
        "runs": runs,
    }
    print("results:", write_results("tiles", record, args.json))


if __name__ == "__main__":
    main()
