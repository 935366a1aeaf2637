"""dreamstyle: neural style transfer, DeepDream and their hybrid over swappable CNN backbones."""

from .hookspecs import hookimpl

__version__ = "0.1.0"

__all__ = ["__version__", "hookimpl"]
