"""The built-in output formats, registered like any plugin's: PNG, JPEG, WebP and TIFF pictures; GIF,
WebP and APNG clips; MP4, MOV, MKV and WebM videos (PyAV, the optional extra dreamstyle[video])."""

from importlib import import_module

from ..hookspecs import hookimpl
from ..records import Writer


def _call(name, module="formats"):
    def call(*args, **kwargs):
        return getattr(import_module(f"dreamstyle.{module}"), name)(*args, **kwargs)

    call.__name__ = name
    return call


@hookimpl
def register_writers(register):
    recipe = _call("info_recipe")
    register(
        Writer(
            "png",
            (".png",),
            "image",
            _call("png_write"),
            recipe,
            "PNG, 8 or 16-bit, the recipe in a text chunk",
            bit_depths=(8, 16),
            alpha=True,
        )
    )
    register(
        Writer(
            "jpeg",
            (".jpg", ".jpeg"),
            "image",
            _call("jpeg_write"),
            recipe,
            "JPEG (quality 95, 4:4:4), no transparency (flattened onto white), the recipe in XMP",
            quality=True,
        )
    )
    register(
        Writer(
            "webp-image",
            (".webp",),
            "image",
            _call("webp_image_write"),
            recipe,
            "WebP, lossless (lossy with --quality), the recipe in XMP",
            quality=True,
            alpha=True,
        )
    )
    register(
        Writer(
            "tiff",
            (".tif", ".tiff"),
            "image",
            _call("tiff_write"),
            _call("tiff_recipe"),
            "TIFF, 16 or 8-bit, deflate, the recipe in ImageDescription",
            bit_depths=(16, 8),
            default_bit_depth=16,
            alpha=True,
        )
    )
    register(
        Writer(
            "gif",
            (".gif",),
            "clip",
            _call("gif_write"),
            recipe,
            "animated GIF, one shared palette (no flicker), no transparency (flattened onto white), the recipe in "
            "the comment",
        )
    )
    register(
        Writer(
            "webp",
            (".webp",),
            "clip",
            _call("webp_write"),
            recipe,
            "animated WebP (quality 90; lossless when it has transparency), the recipe in XMP",
            quality=True,
            alpha=True,
        )
    )
    register(
        Writer(
            "apng",
            (".png",),
            "clip",
            _call("apng_write"),
            recipe,
            "animated PNG, the recipe in a text chunk",
            alpha=True,
        )
    )
    video_recipe = _call("read_recipe", "video")
    register(
        Writer(
            "h264",
            (".mp4", ".m4v", ".mov", ".mkv"),
            "video",
            _call("VideoSink", "video"),
            video_recipe,
            "video: H.264, yuv420p (--crf, 18 by default), the source's audio copied, the recipe in the "
            "comment tag; needs dreamstyle[video]",
            quality=False,
        )
    )
    register(
        Writer(
            "vp9",
            (".webm",),
            "video",
            _call("VideoSink", "video"),
            video_recipe,
            "video: VP9, yuv420p (--crf, 32 by default), Opus audio, the recipe in the comment tag; needs "
            "dreamstyle[video]",
        )
    )
