"""The registration records of optimizers and output formats (no torch import here, so plugins
can register them for every command, ``--help`` included). Loss terms have theirs in ``termspec``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence


@dataclass
class OptimizerSpec:
    """An optimizer: ``build(params, lr, pixel_scale)`` returns a ``torch.optim.Optimizer`` whose
    ``step(closure)`` takes one step; ``default_lr`` is in 0-255 pixel units; ``clamp``: pixels are
    clamped to the image's range after each step (L-BFGS: no, clamping would break its curvature pairs)."""

    name: str
    description: str
    build: Callable
    default_lr: float
    clamp: bool = True
    alternative: str = ""  # the optimizer to suggest when this one diverges
    plugin: str = ""


@dataclass
class Writer:
    """An output format. ``kind`` is "image" (one picture) or "clip" (frames); ``suffixes`` are the
    file endings it writes (lower case, with the dot). ``write(fh, images, recipe, **options)``
    writes PIL images (one for "image") to the open binary file ``fh``, embedding ``recipe`` (a
    dict) so that ``read_recipe(path)`` finds it again; clips get ``durations`` (ms per frame) and
    ``loop`` (0: forever, None: play once) as options. ``read_recipe(path)`` returns the recipe or
    None."""

    name: str
    suffixes: Sequence[str]
    kind: str
    write: Callable
    read_recipe: Callable | None = None
    description: str = ""
    plugin: str = ""
