"""Writing outputs: the format registry (``register_writers`` hook), the checks before any work, and
pictures and clips written through it with the recipe inside.

Every output file goes through :func:`dreamstyle.outbox.publish` (atomic: a temporary file beside its
target renamed into place) and, in a run, an :class:`~dreamstyle.outbox.Outbox` (which rescues what
cannot be written where asked); the built-in formats are in :mod:`dreamstyle.formats`. A format is a :class:`~dreamstyle.records.Writer` registered by suffix and kind
("image" or "clip"); the built-ins are PNG (8 or 16-bit), JPEG, WebP and TIFF (16 or 8-bit) for
images, and GIF, WebP and APNG for clips. A clip can also go to a folder of frames (one image per
frame, plus ``clip.json`` with the timing). A picture is given as a PIL image or a float tensor;
16-bit formats get a tensor's full precision.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from .errors import OptionError, OutputError
from .formats import (  # noqa: F401 - the formats' names, as callers and plugins import them here
    JPEG_XMP_LIMIT,
    RECIPE_KEY,
    XMP_NS,
    _clip_frames,
    _from_xmp,
    _has_alpha,
    _loop_option,
    _png16,
    _recipe_text,
    _xmp,
    apng_write,
    gif_write,
    info_recipe,
    jpeg_write,
    levels,
    parse_recipe,
    picture_of,
    png_write,
    precise,
    shared_palette,
    tiff_recipe,
    tiff_write,
    webp_image_write,
    webp_write,
)
from .outbox import (  # noqa: F401 - the outbox's names, as callers and plugins import them here
    PART,
    TEMP_TAG,
    Outbox,
    Written,
    _alive,
    _place,
    _put,
    _umask,
    clean_stale_temps,
    free_name,
    publish,
    rescue_line,
    settle,
    signals_deferred,
    temp_path_for,
    write_bytes,
    write_json,
)
from .plugins import get_host

TIMING_FILE = "clip.json"  # frame timing of a folder of frames (written with it, read back)


# --- the registry ---------------------------------------------------------------------------------


def writers(kind: str | None = None) -> list:
    reg = get_host().writers
    return [reg.get(n) for n in reg.names() if kind is None or reg.get(n).kind == kind]


def suffixes(kind: str) -> list[str]:
    return [s for w in writers(kind) for s in w.suffixes]


def _listed(names: Sequence[str], last: str = "or") -> str:
    names = sorted(set(names), key=list(names).index)
    return ", ".join(names[:-1]) + f" {last} " + names[-1] if len(names) > 1 else "".join(names)


def writer_for(path: str | os.PathLike, kind: str):
    """The writer of ``kind`` for ``path``'s suffix, or one line saying which suffixes exist."""
    suffix = Path(path).suffix.lower()
    for w in writers(kind):
        if suffix in w.suffixes:
            return w
    what = "an image" if kind == "image" else "a clip"
    listed = _listed(suffixes(kind) + (suffixes("video") if kind == "clip" else []))
    raise OutputError(
        f"cannot write {what} to {path}: give a {listed} file" + (" or a folder" if kind == "clip" else "")
    )


def check_format(
    path: str | os.PathLike,
    kind: str = "image",
    bit_depth: int | None = None,
    quality: int | None = None,
    what: str | None = None,
):
    """The writer for ``path``, once it is clear that it takes ``bit_depth`` and ``quality`` (one line
    if not); ``what`` names the output in that line (a folder written as PNG files, say)."""
    writer = writer_for(path, kind)
    suffix, hint = Path(path).suffix.lower(), what is None
    what = what or str(path)
    if bit_depth is not None and bit_depth not in writer.bit_depths:
        depths = _listed([str(b) for b in writer.bit_depths])
        others = [s for w in writers(kind) if bit_depth in w.bit_depths for s in w.suffixes]
        also = f" ({_listed(others, 'and')} take {bit_depth})" if others and hint else ""
        raise OptionError(f"--bit-depth {bit_depth} does not go with {what}: {suffix} is {depths}-bit{also}")
    if quality is not None:
        if not writer.quality:
            others = [s for w in writers(kind) if w.quality for s in w.suffixes]
            also = f" ({_listed(others, 'and')} take it)" if others and hint else ""
            raise OptionError(f"--quality does not go with {what}: {suffix} has no quality setting{also}")
        if not 1 <= quality <= 100:
            raise OptionError(f"--quality must be 1 to 100, not {quality}")
    return writer


# --- checks before any work -------------------------------------------------------------------------


def check_output(path: str | os.PathLike, overwrite: bool, allowed: Sequence[str] | None = (".png",)) -> Path:
    """Validate an output file path before any work is done (``allowed``: its suffixes, or None)."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.exists():
        raise OutputError(f"cannot write {path}: folder {parent} does not exist")
    if not parent.is_dir():
        raise OutputError(f"cannot write {path}: {parent} is not a folder")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"cannot write {path}: folder {parent} is not writable")
    if path.is_dir():
        raise OutputError(f"cannot write {path}: it is a folder")
    if allowed and path.suffix.lower() not in allowed:
        raise OutputError(f"cannot write {path}: the output must end in {_listed(allowed)}")
    if path.exists() and not overwrite:
        raise OutputError(f"{path} exists; pass --overwrite to replace it")
    return path


def is_folder_output(path: str | os.PathLike) -> bool:
    path = Path(path)
    return path.is_dir() or not path.suffix


def folder_outputs(folder: Path, names: Sequence[str], suffix: str = ".png") -> list[Path]:
    paths = [Path(folder) / f"{name}{suffix}" for name in names]
    if len({p.name.lower() for p in paths}) != len(paths):
        raise OutputError(f"two inputs would write the same file in {folder} (names differ only by suffix or case)")
    return paths


def check_folder_output(folder: Path, names: Sequence[str], overwrite: bool, extra: Sequence[str] = ()) -> list[Path]:
    """Validate a folder output (created later if missing) and the files it will hold."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"cannot write into {folder}: it is a file")
    parent = folder.parent if str(folder.parent) else Path(".")
    if not folder.exists() and not parent.is_dir():
        raise OutputError(f"cannot create {folder}: folder {parent} does not exist")
    if not os.access(folder if folder.exists() else parent, os.W_OK):
        raise OutputError(f"cannot write into {folder}: not writable")
    paths = folder_outputs(folder, names)
    if not overwrite:
        taken = [p for p in [*paths, *(folder / e for e in extra)] if p.exists()]
        if taken:
            more = f" (and {len(taken) - 1} more)" if len(taken) > 1 else ""
            raise OutputError(f"{taken[0]} exists{more}; pass --overwrite to replace it")
    return paths


def check_clip_output(
    path: str | os.PathLike,
    overwrite: bool,
    names: Sequence[str],
    bit_depth: int | None = None,
    quality: int | None = None,
) -> Path:
    """Validate a clip's output: a folder of frames (PNG files), or a file of a registered clip format
    that takes ``bit_depth`` and ``quality``."""
    path = Path(path)
    if is_folder_output(path):
        check_format(path / "frame.png", "image", bit_depth, quality, "a folder of frames (written as .png)")
        check_folder_output(path, names, overwrite, (TIMING_FILE,))
        return path
    check_format(path, "clip", bit_depth, quality)
    return check_output(path, overwrite, None)


# --- writing ----------------------------------------------------------------------------------------


def save_image(
    image,
    path: str | os.PathLike,
    recipe: dict | None = None,
    overwrite: bool = True,
    outbox: Outbox | None = None,
    *,
    bit_depth: int | None = None,
    quality: int | None = None,
) -> Path | None:
    """Write one picture in the format its suffix names, atomically, with its recipe. ``image``: a PIL
    image (RGB or RGBA) or a float tensor (1, 3 or 4, H, W) in [0, 1] (alpha last), whose full
    precision 16-bit formats keep; ``bit_depth`` (default: the format's) and ``quality`` are checked
    against what the format takes."""
    writer = check_format(path, "image", bit_depth, quality)
    pixels, picture = picture_of(image, writer.alpha)
    options = {"bit_depth": bit_depth or writer.default_bit_depth, "quality": quality, "pixels": [pixels]}
    return _put(
        Path(path), lambda fh: writer.write(fh, [picture], recipe, **options), overwrite, outbox, [picture], recipe
    )


def write_clip(
    frames: Sequence,
    path: str | os.PathLike,
    durations: Sequence[int],
    loop: int | None = 0,
    names: Sequence[str] | None = None,
    recipe: dict | None = None,
    overwrite: bool = True,
    outbox: Outbox | None = None,
    *,
    bit_depth: int | None = None,
    quality: int | None = None,
) -> Path | None:
    """Write ``frames`` (PIL RGB) as an animation (by suffix), or into a folder of PNGs with
    ``clip.json`` holding the timing (there a frame may be a tensor, as :func:`save_image` takes);
    atomically, file by file."""
    frames = list(frames)
    durations = [int(d) for d in durations][: len(frames)]
    if not frames:
        raise OutputError(f"no frames to write to {path}")
    path = Path(path)
    if is_folder_output(path):
        try:
            path.mkdir(exist_ok=True)
        except OSError:
            if outbox is None:
                raise
        names = list(names) if names else [f"frame_{i:05d}" for i in range(1, len(frames) + 1)]
        for frame, out in zip(frames, folder_outputs(path, names[: len(frames)])):
            save_image(frame, out, recipe, overwrite, outbox, bit_depth=bit_depth, quality=quality)
        timing = json.dumps({"durations": durations, "loop": loop}).encode()
        _put(path / TIMING_FILE, lambda fh: fh.write(timing), overwrite, outbox)
        if outbox is not None and outbox.failed and outbox.rescue_dir is not None:  # the timing goes with them
            publish(outbox.rescue_dir / TIMING_FILE, lambda fh: fh.write(timing), False)
        return path
    writer = check_format(path, "clip", bit_depth, quality)
    options = {
        "durations": durations,
        "loop": loop,
        "bit_depth": bit_depth or writer.default_bit_depth,
        "quality": quality,
    }
    return _put(path, lambda fh: writer.write(fh, frames, recipe, **options), overwrite, outbox, frames, recipe)


def save_gif_frames(
    frames: Sequence, path: str | os.PathLike, overwrite: bool = True, frame_ms: int = 80, outbox: Outbox | None = None
) -> Path | None:
    """The animation of an optimization (``--gif``): its snapshots, 80 ms each."""
    return write_clip(frames, path, [frame_ms] * len(frames), 0, overwrite=overwrite, outbox=outbox)


def read_recipe(path: str | os.PathLike) -> dict | None:
    """The recipe an output carries (None if it has none)."""
    suffix = Path(path).suffix.lower()
    for w in writers():
        if suffix in w.suffixes and w.read_recipe is not None:
            found = w.read_recipe(path)
            if found is not None:
                return found
    return None
