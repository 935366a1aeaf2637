"""Reading images as users have them, and converting between PIL images and tensors.
(Writing outputs, atomically and with their recipe, is :mod:`dreamstyle.writers`.)"""

from __future__ import annotations

import errno
import os
import stat
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageError
from .settings import DEFAULT_MAX_PIXELS  # refuse larger inputs (decompression bombs) unless raised

ALPHA = "dreamstyle_alpha"  # the info key of an image's transparency (an "L" image), kept by load_image


def load_image(path: str | os.PathLike | Image.Image, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """An RGB PIL image: EXIF orientation applied, alpha composited on white (and kept, when not
    fully opaque, as ``img.info[ALPHA]``: see :func:`alpha_of`), any mode converted."""
    if isinstance(path, Image.Image):
        return to_rgb(ImageOps.exif_transpose(path))
    path = Path(path)
    check_image_file(path)
    previous = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None  # Pillow's check (on open) would not say the size; ours, from the header, does
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                w, h = img.size
                if w * h > max_pixels:
                    raise ImageError(
                        f"{path} is {w}x{h} = {w * h:,} pixels, above the limit of {max_pixels:,}; "
                        "raise it with --max-pixels if you trust the file"
                    )
                if w == 0 or h == 0:
                    raise ImageError(f"{path} has no pixels ({w}x{h})")
                img.load()
                img = ImageOps.exif_transpose(img)
                return to_rgb(img)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(
            f"{path} has more pixels than the limit of {max_pixels:,}; raise it with --max-pixels if you trust the file"
        ) from None
    except UnidentifiedImageError:
        header = png_without_pixels(path)
        if header:
            raise ImageError(f"{path} has no pixels (its PNG header says {header})") from None
        raise ImageError(f"{path} is not an image Pillow can read") from None
    except (OSError, SyntaxError, ValueError) as exc:  # truncated or corrupt data
        raise ImageError(f"cannot read image {path}: {exc}") from None
    finally:
        Image.MAX_IMAGE_PIXELS = previous


def check_image_file(path: Path) -> None:
    """A regular, readable, non-empty file, or one line saying what it is instead."""
    try:
        st = path.stat()
    except FileNotFoundError:
        if path.is_symlink():
            raise ImageError(f"{path} is a symbolic link to nothing (its target is gone)") from None
        raise ImageError(f"image not found: {path}") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ImageError(f"{path} is a symbolic link loop, not an image") from None
        raise ImageError(f"cannot read image {path}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise ImageError(f"{path} is a folder, not an image")
    if not stat.S_ISREG(st.st_mode):
        kind = "a FIFO (named pipe)" if stat.S_ISFIFO(st.st_mode) else "a device or socket"
        raise ImageError(f"{path} is {kind}, not an image file")
    if st.st_size == 0:
        raise ImageError(f"{path} is empty (0 bytes), not an image")
    if not os.access(path, os.R_OK):
        raise ImageError(f"cannot read image {path}: permission denied")


def png_without_pixels(path: Path) -> str:
    """ "0x10" if ``path`` is a PNG whose header gives a zero width or height (Pillow will not open it)."""
    with open(path, "rb") as fh:
        head = fh.read(24)
    if len(head) == 24 and head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
        w, h = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
        if w == 0 or h == 0:
            return f"{w}x{h}"
    return ""


def to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        peak = float(arr.max()) if arr.size else 0.0
        top = 65535.0 if img.mode.startswith("I;16") or peak > 255 else 1.0 if img.mode == "F" and peak <= 1 else 255.0
        img = Image.fromarray((np.clip(arr / top, 0, 1) * 255 + 0.5).astype("uint8"), "L")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    alpha = None
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        img = img.convert("RGBA")
        alpha = img.getchannel("A")
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img)
    rgb = img.convert("RGB")
    if alpha is not None and alpha.getextrema() != (255, 255):
        rgb.info[ALPHA] = alpha
    return rgb


def alpha_of(img: Image.Image, size: tuple[int, int] | None = None, device=None):
    """The transparency :func:`load_image` kept, as a (1, 1, H, W) tensor in [0, 1] (at ``size``,
    (width, height)); None for an opaque image."""
    alpha = img.info.get(ALPHA)
    if alpha is None:
        return None
    if size is not None and tuple(size) != alpha.size:
        alpha = alpha.resize(tuple(size), Image.BILINEAR)
    arr = np.array(alpha, dtype=np.float32) / 255.0
    return torch.from_numpy(arr)[None, None].to(device or "cpu")


def load_mask(path: str | os.PathLike | Image.Image, max_pixels: int = DEFAULT_MAX_PIXELS, device=None):
    """A mask as a (1, 1, H, W) tensor in [0, 1]: a PNG's alpha where it has one, else its grey levels."""
    img = load_image(path, max_pixels)
    alpha = alpha_of(img, device=device)
    if alpha is not None:
        return alpha
    arr = np.array(img.convert("L"), dtype=np.float32) / 255.0
    return torch.from_numpy(arr)[None, None].to(device or "cpu")


def fit_size(size: tuple[int, int], long_side: int | None) -> tuple[int, int]:
    """(width, height) scaled so the long side is ``long_side`` (aspect kept)."""
    w, h = size
    if not long_side:
        return w, h
    scale = long_side / max(w, h)
    return max(1, round(w * scale)), max(1, round(h * scale))


def to_tensor(img: Image.Image, size: tuple[int, int] | None = None, device=None):
    """PIL RGB -> float tensor (1, 3, H, W) in [0, 1]; ``size`` is (width, height)."""
    if size is not None and tuple(size) != img.size:
        img = img.resize(tuple(size), Image.LANCZOS)
    arr = np.array(img, dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0).contiguous().to(device or "cpu")


def to_pil(tensor) -> Image.Image:
    """(1, 3 or 4, H, W) or (3 or 4, H, W) tensor in [0, 1] -> PIL RGB (RGBA with 4 channels)."""
    t = tensor.detach().float()
    if t.dim() == 4:
        t = t[0]
    arr = (t.clamp(0, 1).mul(255).add(0.5).to("cpu").permute(1, 2, 0).numpy()).astype("uint8")
    return Image.fromarray(arr, "RGBA" if arr.shape[-1] == 4 else "RGB")
