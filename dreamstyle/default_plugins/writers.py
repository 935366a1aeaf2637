"""The built-in output formats, registered like any plugin's: PNG pictures; GIF, WebP and APNG clips."""

from ..hookspecs import hookimpl
from ..records import Writer


def _call(name):
    def call(*args, **kwargs):
        from .. import writers

        return getattr(writers, name)(*args, **kwargs)

    call.__name__ = name
    return call


@hookimpl
def register_writers(register):
    recipe = _call("info_recipe")
    register(Writer("png", (".png",), "image", _call("png_write"), recipe, "PNG, the recipe in a text chunk"))
    register(Writer("gif", (".gif",), "clip", _call("gif_write"), recipe,
                    "animated GIF, one shared palette (no flicker), the recipe in the comment"))
    register(Writer("webp", (".webp",), "clip", _call("webp_write"), recipe, "animated WebP, the recipe in XMP"))
    register(Writer("apng", (".png",), "clip", _call("apng_write"), recipe, "animated PNG, the recipe in a text chunk"))
