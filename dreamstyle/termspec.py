"""The registration record of a loss term, and the context terms read (no torch import here)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Callable

from .errors import OptionError


@dataclass
class TermSpec:
    """A registered loss term: its name, a one-line description and its builder."""

    name: str
    description: str
    build: Callable[..., object]  # (**options) -> a dreamstyle.terms.LossTerm
    default_weight: float = 1.0
    plugin: str = ""


@dataclass
class TermContext:
    """What terms may read while preparing their targets.

    ``images`` maps a role ("content", "style", "guide", ...) to a list of RGB [0, 1] NCHW
    tensors at the current scale; ``blend`` weights the style images; ``backbone`` is the
    :class:`~dreamstyle.backbones.Backbone` in use; ``options`` carries driver options.
    ``masks`` holds per-position weights at the current scale, each (N, 1, H, W) in [0, 1]:
    "alpha" (the picture's opacity), "content" (where the photo should stay), "style" (a list: where
    each style image goes, None for one without a mask) and "style_alpha" (a list: each style
    image's own opacity, or None). ``tiler`` is set when the picture is made in tiles: use
    :meth:`features` and :meth:`reduce` instead of ``extract`` so large images stay in bounded memory.
    """

    backbone: Any
    images: dict[str, list] = field(default_factory=dict)
    blend: Sequence[float] | None = None
    options: dict = field(default_factory=dict)
    masks: dict = field(default_factory=dict)
    tiler: Any = None

    def first(self, role: str):
        try:
            return self.images[role][0]
        except (KeyError, IndexError):
            raise OptionError(f"this loss term needs a {role} image") from None

    def features(self, image, layers: Sequence[str], extract: Callable) -> dict:
        """``image``'s whole feature maps at ``layers`` (assembled from tiles when tiled)."""
        if self.tiler is not None and self.tiler.covers(image):
            return self.tiler.extract(image, layers)
        return extract(image)

    def reduce(self, image, fn: Callable, extract: Callable) -> dict:
        """``fn(features, regions)`` of ``image`` (a dict of tensors), summed over its tiles when it
        is tiled (``regions`` maps each layer to the :class:`~dreamstyle.terms.Region` a tile owns;
        None when untiled)."""
        if self.tiler is not None and self.tiler.covers(image):
            return self.tiler.reduce(image, fn)
        return fn(extract(image), None)


class _OwnText(str):
    kind = ""


class _OwnList(tuple):
    kind = ""


def backbone_layers(kind: str, shown):
    """A term's default ``layers``: the backbone's own ``kind`` layers ("content_layers",
    "style_layers" or "dream_layers"), standing in as ``shown`` (vgg19's, what ``dreamstyle losses``
    lists) until :func:`own_layers` resolves them. Use it as the default of a ``build(layers=...,
    backbone=None)``: dreamstyle passes the backbone in use to a build that has that parameter."""
    out = _OwnText(shown) if isinstance(shown, str) else _OwnList(shown)
    out.kind = kind
    return out


def own_layers(layers, backbone):
    """``layers`` as given, or, where they are a :func:`backbone_layers` default and a backbone is
    known, that backbone's own layers of that kind (the default shown where it has none)."""
    kind = getattr(layers, "kind", "")
    if not kind or backbone is None:
        return str(layers) if isinstance(layers, str) else layers
    return tuple(getattr(backbone, kind, ()) or ()) or (str(layers) if isinstance(layers, str) else tuple(layers))
