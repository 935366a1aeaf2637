"""dreamstyle: neural style transfer, DeepDream and their hybrid over swappable CNN backbones.

Python API::

    import dreamstyle
    image, history = dreamstyle.transfer("photo.jpg", ["painting.jpg"], size=512)
    image, history = dreamstyle.dream("photo.jpg", ["relu4_4"], octaves=4)
"""

from .deepdream import dream
from .hookspecs import hookimpl
from .style import Result, transfer
from .termspec import TermContext, TermSpec

__version__ = "0.1.0"

__all__ = ["__version__", "hookimpl", "transfer", "dream", "Result", "TermSpec", "TermContext"]
