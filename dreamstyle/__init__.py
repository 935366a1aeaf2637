"""dreamstyle: neural style transfer, DeepDream and their hybrid over swappable CNN backbones.

Python API (see :mod:`dreamstyle.api`)::

    import dreamstyle
    image, history = dreamstyle.transfer("photo.jpg", ["painting.jpg"], size=512)
    image, history = dreamstyle.dream("photo.jpg", ["relu4_4"], octaves=4)
    image, history = dreamstyle.texture(["painting.jpg"], size="512x512", seamless=True)

Importing the package is light (no torch): the API functions load on first use, so plugins that
import ``dreamstyle.hookimpl`` and the command line's ``--help`` stay instant.
"""

from .hookspecs import hookimpl  # noqa: E402
from .termspec import TermContext, TermSpec  # noqa: E402
from .version import __version__  # noqa: E402

_API = (
    "transfer",
    "dream",
    "texture",
    "transfer_clip",
    "transfer_folder",
    "dream_clip",
    "dream_folder",
    "compare",
    "reconstruct",
    "atlas",
    "activations",
    "train",
    "stylize",
)
__all__ = ["__version__", "hookimpl", *_API, "score", "Result", "TermSpec", "TermContext"]


def __getattr__(name):
    if name in _API:
        from . import api

        return getattr(api, name)
    if name == "score":
        from .judge import score

        return score
    if name == "Result":
        from .runner import Result

        return Result
    raise AttributeError(f"module 'dreamstyle' has no attribute {name!r}")
