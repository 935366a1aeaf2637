"""The built-in formats (registered by :mod:`dreamstyle.default_plugins.writers`): PNG (8 or 16-bit),
JPEG, WebP and TIFF (16 or 8-bit) for images, GIF, WebP and APNG for clips, each with the recipe
inside; and the pixels a writer gets (a PIL image, or a tensor's full precision for 16 bits)."""

from __future__ import annotations

import base64
import io
import json
import zlib
from collections.abc import Sequence
from xml.sax.saxutils import escape, unescape

import numpy as np
from PIL import Image, PngImagePlugin

from .errors import OutputError, RecipeError

RECIPE_KEY = "dreamstyle"
XMP_NS = b"http://ns.adobe.com/xap/1.0/\x00"  # how a JPEG's APP1 segment says it holds XMP
JPEG_XMP_LIMIT = 65533 - len(XMP_NS)  # the most an APP1 segment holds


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
