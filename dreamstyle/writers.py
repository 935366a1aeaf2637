"""Writing outputs: the format registry (``register_writers`` hook), atomic files, the recipe inside.

Every output file goes through :func:`publish`: it is written to a temporary file beside its
target (``.NAME.dreamstyle-PID.part``), flushed to disk, then renamed into place, so a crash, a
full disk or Ctrl-C never leaves a half-written file and an old file is replaced only by a whole
new one. A format is a :class:`~dreamstyle.records.Writer` registered by suffix and kind
("image" or "clip"); the built-ins are PNG (8 or 16-bit), JPEG, WebP and TIFF (16 or 8-bit) for
images, and GIF, WebP and APNG for clips. A clip can also go to a folder of frames (one image per
frame, plus ``clip.json`` with the timing). A picture is given as a PIL image or a float tensor;
16-bit formats get a tensor's full precision.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import signal
import tempfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable
from xml.sax.saxutils import escape, unescape

import numpy as np
from PIL import Image, PngImagePlugin

from .errors import OptionError, OutputError, RecipeError
from .plugins import get_host

RECIPE_KEY = "dreamstyle"
TIMING_FILE = "clip.json"  # frame timing of a folder of frames (written with it, read back)
PART = ".part"
TEMP_TAG = ".dreamstyle-"
XMP_NS = b"http://ns.adobe.com/xap/1.0/\x00"  # how a JPEG's APP1 segment says it holds XMP
JPEG_XMP_LIMIT = 65533 - len(XMP_NS)  # the most an APP1 segment holds


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


# --- atomic files ---------------------------------------------------------------------------------


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def temp_path_for(path: Path) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}{TEMP_TAG}{os.getpid()}-", suffix=PART, dir=path.parent or ".")
    os.close(fd)
    return Path(tmp)


def clean_stale_temps(path: Path) -> None:
    """Remove the temporary files an earlier, killed run left for ``path`` (``.NAME.dreamstyle-PID-*.part``
    of a process that is gone); nothing else is touched."""
    prefix = f".{path.name}{TEMP_TAG}"
    try:
        candidates = [
            p for p in (path.parent or Path(".")).iterdir() if p.name.startswith(prefix) and p.name.endswith(PART)
        ]
    except OSError:
        return
    for p in candidates:
        pid = p.name[len(prefix) :].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            try:
                p.unlink()
            except OSError:
                pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def free_name(path: Path) -> Path:
    """``NAME-2.EXT``, ``NAME-3.EXT``, ...: the first that does not exist."""
    for k in range(2, 10_000):
        candidate = path.with_name(f"{path.stem}-{k}{path.suffix}")
        if not candidate.exists():
            return candidate
    raise OutputError(f"cannot find a free name beside {path}")


def _place(tmp: Path, path: Path) -> Path:
    """Rename ``tmp`` to ``path`` without replacing a file that is there (one that appeared while the
    run worked): it goes beside it under a free name instead. A hard link fails if the target
    exists, atomically; where links are not supported, the check and the rename are two steps."""
    target = path
    while True:
        try:
            os.link(tmp, target)
        except FileExistsError:
            target = free_name(path)
            continue
        except OSError:  # no hard links here (FAT, some network folders)
            if target.exists():
                target = free_name(path)
                continue
            os.replace(tmp, target)
            return target
        os.unlink(tmp)
        return target


def settle(tmp: Path, path: Path, overwrite: bool) -> Path:
    """Put the finished temporary file ``tmp`` in place of ``path`` (beside a file that appeared there
    while the run worked, without ``overwrite``); where it went."""
    if overwrite:
        os.replace(tmp, path)
        return path
    return _place(tmp, path)


def publish(path: str | os.PathLike, write: Callable, overwrite: bool = True) -> Path:
    """Write ``path`` atomically: ``write(fh)`` fills a temporary file beside it, which is then
    renamed into place. Without ``overwrite`` an existing file is never replaced, even one that
    appeared while the run worked: the new file goes beside it (``NAME-2.EXT``). Returns the path
    written."""
    path = Path(path)
    clean_stale_temps(path)
    tmp = temp_path_for(path)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual permissions
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        return settle(tmp, path, overwrite)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_bytes(path: str | os.PathLike, data: bytes, overwrite: bool = True, outbox: Outbox | None = None):
    return _put(Path(path), lambda fh: fh.write(data), overwrite, outbox)


def write_json(path: str | os.PathLike, data, overwrite: bool = True, outbox: Outbox | None = None):
    return write_bytes(path, (json.dumps(data, indent=1, default=str) + "\n").encode(), overwrite, outbox)


@contextlib.contextmanager
def signals_deferred():
    """Ctrl-C and SIGTERM wait until the block is done (writing outputs); yields the signals received."""
    received: list[int] = []
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[sig] = signal.signal(sig, lambda signum, frame: received.append(signum))
        except ValueError:  # not the main thread
            pass
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


# --- a run's files: where they went ---------------------------------------------------------------------


@dataclass
class Written:
    """One file of a run: where it was asked for, where it is, and why not there if so."""

    intended: Path
    path: Path | None  # None: it could not be written anywhere
    rescued: bool = False  # in the rescue folder (the temporary folder), not where asked
    reason: str = ""

    @property
    def beside(self) -> bool:
        """The target appeared while the run worked: the new file is beside it."""
        return self.path is not None and not self.rescued and self.path != self.intended


@dataclass
class Outbox:
    """Writes a run's files, every one the same way: atomically (:func:`publish`); without
    ``overwrite`` never over a file, even one that appeared during the run; and what cannot be
    written where asked (disk full, folder gone, a writer that fails) goes to one rescue folder in
    the temporary folder instead, in the same format or, if the format itself failed, as PNG frames."""

    overwrite: bool = False
    written: list[Written] = field(default_factory=list)
    rescue_dir: Path | None = None

    def _rescue_folder(self) -> Path:
        if self.rescue_dir is None:
            self.rescue_dir = Path(tempfile.mkdtemp(prefix="dreamstyle-rescue-"))
        return self.rescue_dir

    def write(
        self, path: str | os.PathLike, write: Callable, frames: Sequence | None = None, recipe: dict | None = None
    ) -> Written:
        """``write(fh)`` to ``path``; ``frames`` (PIL) are what to save as PNGs if the format fails."""
        path = Path(path)
        try:
            done = Written(path, publish(path, write, self.overwrite))
        except Exception as exc:  # noqa: BLE001 - every failure to write is rescued the same way
            done = self._rescue(path, write, exc, frames, recipe)
        self.written.append(done)
        return done

    def _rescue(self, path: Path, write, exc: Exception, frames, recipe) -> Written:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else f"{type(exc).__name__}: {exc}"
        try:
            folder = self._rescue_folder()
            if isinstance(exc, OSError):  # the place failed, not the format: the same file elsewhere
                return Written(path, publish(folder / path.name, write, False), True, reason)
            if frames:  # the format failed: the pictures as PNGs
                target = folder / path.stem
                target.mkdir(exist_ok=True)
                for i, frame in enumerate(frames, start=1):
                    publish(target / f"frame_{i:05d}.png", lambda fh, f=frame: png_write(fh, [f], recipe), False)
                return Written(path, target, True, reason)
        except OSError:
            pass
        return Written(path, None, True, reason)

    @property
    def failed(self) -> list[Written]:
        return [w for w in self.written if w.rescued]


def rescue_line(outbox: Outbox, what: str, where: str = "") -> str:
    """One line for files that could not be written where asked: what went where instead."""
    failed = outbox.failed
    if not failed:
        return ""
    reason = failed[0].reason
    saved = [w for w in failed if w.path is not None]
    if len(failed) == 1 and not where:
        names = str(failed[0].intended)
    else:
        names = ", ".join(w.intended.name for w in failed[:4]) + (
            f" and {len(failed) - 4} more" if len(failed) > 4 else ""
        )
    head = f"cannot write {names}{' to ' + where if where else ''} ({reason})"
    if not saved:
        return f"{head}; the {what} could not be saved anywhere else either"
    if len(saved) == 1:
        return f"{head}; the {what} was saved to {saved[0].path} instead"
    return f"{head}; they were saved in {outbox.rescue_dir} instead"


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


def _put(path: Path, write: Callable, overwrite: bool, outbox: Outbox | None, frames=None, recipe=None) -> Path | None:
    """Through the outbox (rescued on failure) when there is one, else straight (failures raise)."""
    if outbox is None:
        return publish(path, write, overwrite)
    return outbox.write(path, write, frames, recipe).path


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


# --- the pixels a writer gets ----------------------------------------------------------------------


def _has_alpha(img: Image.Image) -> bool:
    return img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info


def picture_of(image, alpha: bool = True):
    """``(pixels, picture)``: float32 H x W x C (3, or 4 with alpha) in [0, 1] at full precision, and
    the PIL picture (RGB or RGBA) of it in 8 bits; without ``alpha``, flattened onto white."""
    if hasattr(image, "detach"):  # a torch tensor
        t = image.detach().float().cpu()
        t = t[0] if t.dim() == 4 and t.shape[0] == 1 else t
        if t.dim() != 3 or t.shape[0] not in (1, 3, 4):
            raise ValueError(f"a picture is a (1, 1|3|4, H, W) tensor, not {tuple(image.shape)}")
        t = t.expand(3, -1, -1) if t.shape[0] == 1 else t
        t = t.nan_to_num(0.0).clamp(0, 1)
        pixels = t.permute(1, 2, 0).contiguous().numpy()
        eight = t.mul(255).add(0.5).permute(1, 2, 0).numpy().astype(np.uint8)  # rounded as images.to_pil does
        picture = Image.fromarray(eight, "RGBA" if len(t) == 4 else "RGB")
    else:
        picture = image if image.mode in ("RGB", "RGBA") else image.convert("RGBA" if _has_alpha(image) else "RGB")
        pixels = np.asarray(picture, dtype=np.float32) / 255
    if pixels.shape[2] == 4 and not alpha:  # no transparency in this format: onto white
        a = pixels[..., 3:]
        pixels = pixels[..., :3] * a + (1 - a)
        picture = Image.fromarray(levels(pixels, 8), "RGB")
    return pixels, picture


def levels(pixels, bits: int):
    """Pixels in [0, 1] as integers of ``bits`` (8: uint8, 16: uint16), rounded."""
    top = (1 << bits) - 1
    return (pixels * top + 0.5).clip(0, top).astype(np.uint8 if bits <= 8 else np.uint16)


def precise(image, tensor):
    """``tensor`` where it is ``image`` at full precision (it rounds to it), else ``image``: what a
    16-bit format should get of a frame whose tensor may be from before the job's finish."""
    if tensor is None or not hasattr(tensor, "detach"):
        return image
    try:
        _, rounded = picture_of(tensor)
    except ValueError:
        return image
    same = (rounded.mode, rounded.size) == (image.mode, image.size) and np.array_equal(rounded, image)
    return tensor if same else image


# --- the built-in formats -----------------------------------------------------------------------------


def _recipe_text(recipe) -> str | None:
    return json.dumps(recipe, default=str) if recipe is not None else None


def parse_recipe(text, ours: bool = False) -> dict | None:
    """The recipe in ``text``, or None where there is none. ``ours``: the text is in dreamstyle's own
    field (a PNG's dreamstyle chunk, its XMP tag), so anything but a JSON object there is a damaged
    recipe (:class:`~dreamstyle.errors.RecipeError`); a shared field (a GIF comment, a TIFF description,
    a video's comment) holds a recipe only where it is an object with a command, or begins as one."""
    if not text:
        return None
    ours = ours or text.lstrip().startswith('{"command"')
    try:
        found = json.loads(text)
    except ValueError as exc:
        if ours:
            raise RecipeError(f"it is not JSON ({exc})") from None
        return None
    if ours and not isinstance(found, dict):
        raise RecipeError(f"it is a JSON {type(found).__name__}, not an object")
    return found if isinstance(found, dict) and (ours or "command" in found) else None


def png_write(fh, images, recipe, bit_depth=8, pixels=None, **_):
    text = _recipe_text(recipe)
    if bit_depth == 16:
        import numpy as np

        return _png16(fh, pixels[0] if pixels else np.asarray(images[0], dtype=np.float32) / 255, text)
    info = PngImagePlugin.PngInfo()
    if text:
        info.add_text(RECIPE_KEY, text)
    images[0].save(fh, format="PNG", pnginfo=info)


def _png16(fh, pixels, text: str | None) -> None:
    """A 16-bit RGB(A) PNG (Pillow writes none) through pypng, the recipe in a tEXt chunk after IHDR."""
    import png

    height, width, channels = pixels.shape
    buffer = io.BytesIO()
    png.Writer(width, height, greyscale=False, alpha=channels == 4, bitdepth=16).write(
        buffer, levels(pixels, 16).reshape(height, width * channels)
    )
    chunks = list(png.Reader(bytes=buffer.getvalue()).chunks())
    if text:  # JSON is ASCII, as tEXt wants
        chunks.insert(1, (b"tEXt", RECIPE_KEY.encode() + b"\0" + text.encode("latin-1")))
    png.write_chunks(fh, chunks)


def jpeg_write(fh, images, recipe, quality=None, **_):
    """Quality 95 unless given, 4:4:4 (no chroma blur); the recipe as XMP in an APP1 segment."""
    text = _recipe_text(recipe)
    xmp = _xmp(text, JPEG_XMP_LIMIT) if text else None
    if text and xmp is None:
        raise OutputError(
            f"the recipe ({len(text) // 1024} KB) does not fit in a JPEG's 64 KB of metadata, even "
            "compressed; write a .png, .webp or .tif, or pass --recipe none"
        )
    buffer = io.BytesIO()
    images[0].convert("RGB").save(buffer, format="JPEG", quality=quality or 95, subsampling=0, optimize=True)
    data = buffer.getvalue()
    if xmp is not None:  # after the JFIF header (APP0), which comes first; Pillow < 11 writes no XMP itself
        at = 4 + int.from_bytes(data[4:6], "big") if data[2:4] == b"\xff\xe0" else 2
        segment = b"\xff\xe1" + (2 + len(XMP_NS) + len(xmp)).to_bytes(2, "big") + XMP_NS + xmp
        data = data[:at] + segment + data[at:]
    fh.write(data)


def webp_image_write(fh, images, recipe, quality=None, **_):
    """Lossless (the exact colours, even under transparent pixels) unless given a quality."""
    options = {"lossless": True, "exact": True} if quality is None else {"quality": quality}
    text = _recipe_text(recipe)
    if text:
        options["xmp"] = _xmp(text)
    images[0].save(fh, format="WEBP", method=4, **options)


def tiff_write(fh, images, recipe, bit_depth=16, pixels=None, **_):
    """RGB(A) TIFF, deflate-compressed (with the horizontal predictor), the recipe (JSON) in the
    ImageDescription tag."""
    import tifffile

    if bit_depth == 16:
        data = levels(pixels[0] if pixels else np.asarray(images[0], dtype=np.float32) / 255, 16)
    else:
        data = np.asarray(images[0])
    tifffile.imwrite(
        fh,
        data,
        photometric="rgb",
        compression="zlib",
        predictor=True,
        metadata=None,
        extrasamples=("unassalpha",) if data.shape[2] == 4 else None,
        description=_recipe_text(recipe),
    )


def tiff_recipe(path) -> dict | None:
    """The recipe in a TIFF's ImageDescription tag."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        return parse_recipe(tif.pages[0].description)


def info_recipe(path) -> dict | None:
    """The recipe in an image's metadata: a PNG text chunk, a GIF comment or XMP (JPEG, WebP)."""
    with Image.open(path) as img:
        text = img.info.get(RECIPE_KEY) or getattr(img, "text", {}).get(RECIPE_KEY)
        ours = bool(text)
        xmp = img.info.get("xmp") or next(
            (s[len(XMP_NS) :] for m, s in getattr(img, "applist", []) if m == "APP1" and s.startswith(XMP_NS)), None
        )
        if not text and xmp:
            text = _from_xmp(xmp)
            ours = bool(text)
        if not text and isinstance(img.info.get("comment"), bytes):
            text = img.info["comment"].decode("utf-8", "replace")
    return parse_recipe(text, ours)


def _loop_option(loop, default_once: bool) -> dict:
    if loop is not None:  # the count is copied as the source states it
        return {"loop": int(loop)}
    return {"loop": 1} if default_once else {}


def shared_palette(frames: Sequence, colors: int = 256):
    """One palette for every frame (a per-frame palette flickers): quantize a strip of the frames."""
    step = max(1, len(frames) // 16)
    sample = [f.convert("RGB").resize((max(1, f.width // 2), max(1, f.height // 2))) for f in frames[::step]]
    strip = Image.new("RGB", (sum(s.width for s in sample), max(s.height for s in sample)))
    x = 0
    for s in sample:
        strip.paste(s, (x, 0))
        x += s.width
    return strip.quantize(colors, method=Image.Quantize.MEDIANCUT)


def _clip_frames(frames, alpha: bool) -> list:
    """The frames all RGBA when ``alpha`` and any has transparency, else all RGB (onto white)."""
    if alpha and any(_has_alpha(f) for f in frames):
        return [f.convert("RGBA") for f in frames]
    return [picture_of(f, False)[1] if _has_alpha(f) else f.convert("RGB") for f in frames]


def gif_write(fh, frames, recipe, durations=(), loop=0, **_):
    frames = _clip_frames(frames, False)  # a GIF's one-bit transparency would fray soft edges: onto white
    palette = shared_palette(frames)
    images = [f.convert("RGB").quantize(palette=palette, dither=Image.Dither.FLOYDSTEINBERG) for f in frames]
    options = {
        "save_all": True,
        "append_images": images[1:],
        "duration": list(durations) or 100,
        **_loop_option(loop, False),
    }
    text = _recipe_text(recipe)
    if text:
        options["comment"] = text
    images[0].save(fh, format="GIF", **options)


def _xmp(text: str, limit: int | None = None) -> bytes | None:
    """The recipe as XMP; over ``limit`` bytes, compressed (zlib, base64); still over it: None."""

    def packet(tag: str, body: str) -> bytes:
        return (
            '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
            f'<rdf:Description xmlns:dreamstyle="https://github.com/dreamstyle"><dreamstyle:{tag}>'
            f"{body}</dreamstyle:{tag}></rdf:Description></rdf:RDF></x:xmpmeta>"
        ).encode()

    xmp = packet("recipe", escape(text))
    if limit is not None and len(xmp) > limit:
        xmp = packet("recipe-zlib", base64.b64encode(zlib.compress(text.encode(), 9)).decode())
    return xmp if limit is None or len(xmp) <= limit else None


def _from_xmp(xmp) -> str | None:
    text = xmp.decode("utf-8", "replace") if isinstance(xmp, bytes) else str(xmp)
    for tag in ("recipe", "recipe-zlib"):
        start, end = text.find(f"<dreamstyle:{tag}>"), text.find(f"</dreamstyle:{tag}>")
        if start >= 0 and end > start:
            body = text[start + len(tag) + 13 : end]
            try:
                return unescape(body) if tag == "recipe" else zlib.decompress(base64.b64decode(body)).decode()
            except (ValueError, zlib.error):  # base64, zlib or UTF-8 that does not decode
                raise RecipeError("its compressed recipe does not unpack") from None
    return None


def webp_write(fh, frames, recipe, durations=(), loop=0, quality=None, **_):
    images = _clip_frames(frames, True)
    options = {
        "save_all": True,
        "append_images": images[1:],
        "duration": list(durations) or 100,
        "quality": quality or 90,
        "method": 4,
        **_loop_option(loop, True),
    }
    if images[0].mode == "RGBA":  # libwebp's lossy animation drops the alpha: lossless (quality = effort)
        options.update(lossless=True, exact=True)
    text = _recipe_text(recipe)
    if text:
        options["xmp"] = _xmp(text)
    images[0].save(fh, format="WEBP", **options)


def apng_write(fh, frames, recipe, durations=(), loop=0, **_):
    images = _clip_frames(frames, True)
    options = {
        "save_all": True,
        "append_images": images[1:],
        "duration": list(durations) or 100,
        **_loop_option(loop, True),
    }
    text = _recipe_text(recipe)
    if text:
        info = PngImagePlugin.PngInfo()
        info.add_text(RECIPE_KEY, text)
        options["pnginfo"] = info
    images[0].save(fh, format="PNG", **options)
