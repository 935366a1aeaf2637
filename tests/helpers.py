"""Small generated images for tests (no assets needed)."""

from pathlib import Path

import numpy as np
from PIL import Image


def make_image(path: Path, size=(48, 40), seed=0, kind="gradient") -> Path:
    rng = np.random.default_rng(seed)
    w, h = size
    if kind == "gradient":
        x = np.linspace(0, 1, w)[None, :, None]
        y = np.linspace(0, 1, h)[:, None, None]
        arr = np.concatenate([x + 0 * y, y + 0 * x, (x * y)], axis=2)
        arr = arr + 0.15 * rng.standard_normal((h, w, 3))
    else:  # stripes: a "style"
        xx = np.arange(w)[None, :]
        yy = np.arange(h)[:, None]
        stripes = ((xx + yy) // 4 % 2).astype(float)
        arr = np.stack([stripes, 1 - stripes, 0.5 * np.ones_like(stripes)], axis=2)
    img = Image.fromarray((np.clip(arr, 0, 1) * 255).astype("uint8"), "RGB")
    img.save(path)
    return path


def tiny(loaded, **kw):
    """Options for a quick run on a loaded backbone: 32 px, one octave, two steps, seeded, CPU."""
    return {"loaded": loaded, "size": 32, "octaves": 1, "iterations": 2, "seed": 0, "device": "cpu", **kw}
