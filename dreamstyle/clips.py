"""Clips: reading animations (GIF, WebP, APNG) and folders of frames, and optical flow between
frames. The drivers that run jobs over them are in :mod:`dreamstyle.sequence`; writing is in
:mod:`dreamstyle.writers`."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image, ImageSequence

from .errors import ImageError, OptionError
from .images import DEFAULT_MAX_PIXELS, load_image, to_rgb
from .settings import DEFAULT_MAX_CLIP_PIXELS
from .writers import TIMING_FILE

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")
DEFAULT_FPS = 10.0


# --- reading and writing clips ----------------------------------------------------------------


@dataclass
class Clip:
    """An animation in memory: RGB frames, each frame's duration (ms) and the loop count
    (0 = forever, None = the source did not say, i.e. play once)."""

    frames: list
    durations: list[int]
    loop: int | None = 0
    names: list[str] = field(default_factory=list)  # frame names (stems), for a folder output
    source: str = ""

    def __len__(self):
        return len(self.frames)

    def __iter__(self):
        return iter(self.frames)


def natural_key(name: str):
    """Sort key: numbers inside names compare as numbers (frame2 before frame10)."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def list_images(folder: str | os.PathLike) -> list[Path]:
    """The image files of ``folder`` (by suffix, hidden files left out), sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageError(f"{folder} is not a folder")
    files = [
        p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    ]
    if not files:
        raise ImageError(f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return sorted(files, key=lambda p: natural_key(p.name))


def is_animation(path: str | os.PathLike) -> bool:
    """True for an image file with more than one frame (animated GIF, WebP or PNG)."""
    path = Path(path)
    if not path.is_file():
        return False
    try:
        with Image.open(path) as img:
            return getattr(img, "n_frames", 1) > 1
    except Exception:
        return False


def frame_ms(fps: float | None) -> int:
    if fps is None:
        fps = DEFAULT_FPS
    if not fps > 0:
        raise OptionError(f"--fps must be more than 0, not {fps}")
    return max(1, round(1000.0 / fps))


def read_clip(
    path: str | os.PathLike,
    fps: float | None = None,
    max_pixels: int | None = None,
    max_total: int = DEFAULT_MAX_CLIP_PIXELS,
) -> Clip:
    """Read an animated GIF/WebP/PNG, or a folder of frames (sorted by name, timing from its
    ``clip.json`` if present, else ``fps``). ``fps`` given overrides the source's timing. A frame
    above ``max_pixels``, or frames above ``max_total`` pixels in all, are refused from the header,
    before anything is decoded."""
    max_pixels = max_pixels or DEFAULT_MAX_PIXELS
    path = Path(path)
    if not path.exists():
        raise ImageError(f"clip not found: {path}")
    if path.is_dir():
        return _read_frame_folder(path, fps, max_pixels, max_total)
    try:
        with Image.open(path) as img:
            w, h = img.size
            n = getattr(img, "n_frames", 1)  # counted from the frame headers, nothing decoded
            _check_pixels(path, w, h, n, max_pixels, max_total)
            loop = img.info.get("loop")
            frames, durations = [], []
            for frame in ImageSequence.Iterator(img):
                frames.append(to_rgb(frame.copy()))
                durations.append(int(frame.info.get("duration") or 0))
    except ImageError:
        raise
    except Exception as exc:  # noqa: BLE001 - a clip Pillow cannot read: say why in one line
        raise ImageError(f"cannot read clip {path}: {str(exc).strip() or type(exc).__name__}") from None
    if fps is not None:
        durations = [frame_ms(fps)] * len(frames)
    else:  # frames without timing (0 ms) play at the default rate, as browsers do
        durations = [d if d > 0 else frame_ms(None) for d in durations]
    digits = len(str(n))
    return Clip(frames, durations, loop, [f"frame_{i:0{max(5, digits)}d}" for i in range(1, n + 1)], str(path))


def _check_pixels(path, w: int, h: int, n: int, max_pixels: int, max_total: int) -> None:
    if w * h > max_pixels:
        raise ImageError(
            f"{path} is {w}x{h} = {w * h:,} pixels a frame, above the limit of "
            f"{max_pixels:,}; raise it with --max-pixels if you trust the file"
        )
    if n * w * h > max_total:
        raise ImageError(
            f"{path} has {n} frames of {w}x{h}: {n * w * h:,} pixels in all, above the limit of "
            f"{max_total:,}; raise it with --max-clip-pixels if you trust the file"
        )


def _read_frame_folder(path: Path, fps, max_pixels: int, max_total: int) -> Clip:
    files = list_images(path)
    total = 0
    for p in files:  # the headers first: nothing is decoded before the whole folder is known to fit
        try:
            with Image.open(p) as img:
                total += img.size[0] * img.size[1]
        except Exception:  # noqa: BLE001 - load_image below says what is wrong with it
            continue
    if total > max_total:
        raise ImageError(
            f"{path} holds {len(files)} frames of {total:,} pixels in all, above the limit of "
            f"{max_total:,}; raise it with --max-clip-pixels if you trust the files"
        )
    frames = [load_image(p, max_pixels) for p in files]
    durations, loop = [frame_ms(fps)] * len(frames), 0
    timing = path / TIMING_FILE
    if fps is None and timing.is_file():
        try:
            data = json.loads(timing.read_text())
            if len(data.get("durations", [])) == len(frames):
                durations = [int(d) for d in data["durations"]]
            loop = data.get("loop", 0)
        except (ValueError, TypeError, AttributeError):
            pass
    return Clip(frames, durations, loop, [p.stem for p in files], str(path))


# --- flow ---------------------------------------------------------------------------------------


def flow_function(method: str):
    """scikit-image's optical flow ("ilk" or "tvl1"), or one line naming the extra to install."""
    try:
        from skimage.registration import optical_flow_ilk, optical_flow_tvl1
    except ImportError:
        raise OptionError(
            f"--flow {method} needs scikit-image: pip install 'dreamstyle[flow]' (or scikit-image)"
        ) from None
    return {"ilk": optical_flow_ilk, "tvl1": optical_flow_tvl1}[method]


def estimate_flow(current, previous, method: str = "ilk"):
    """Backward optical flow, (1, 2, H, W) as (dy, dx) in pixels: pixel p of ``current`` was at
    p + flow(p) in ``previous`` (both (1, 3, H, W) in [0, 1]). Uses scikit-image."""
    weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    gray = lambda t: (t.detach().float().cpu() * weights).sum(1)[0].numpy()  # noqa: E731
    flow = flow_function(method)(gray(current), gray(previous))
    return torch.from_numpy(flow).float().unsqueeze(0).to(current.device)


def warp(image, flow):
    """Sample ``image`` at p + flow(p) (bilinear, borders repeated)."""
    _, _, h, w = image.shape
    ys, xs = torch.meshgrid(
        torch.arange(h, device=image.device, dtype=torch.float32),
        torch.arange(w, device=image.device, dtype=torch.float32),
        indexing="ij",
    )
    y = (ys + flow[:, 0]) / max(h - 1, 1) * 2 - 1
    x = (xs + flow[:, 1]) / max(w - 1, 1) * 2 - 1
    grid = torch.stack([x, y], dim=-1).to(image.dtype)
    return torch.nn.functional.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=True)
