"""The registration record of a loss term, and the context terms read (no torch import here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

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
    """

    backbone: Any
    images: dict[str, list] = field(default_factory=dict)
    blend: Sequence[float] | None = None
    options: dict = field(default_factory=dict)

    def first(self, role: str) :
        try:
            return self.images[role][0]
        except (KeyError, IndexError):
            raise OptionError(f"this loss term needs a {role} image") from None
