"""The registration records of optimizers and output formats (no torch import here, so plugins
can register them for every command, ``--help`` included). Loss terms have theirs in ``termspec``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Callable


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
    """An output format. ``kind`` is "image" (one picture), "clip" (frames) or "video" (frames
    streamed: see below); ``suffixes`` are the
    file endings it writes (lower case, with the dot); the registry finds a writer by (suffix, kind),
    the first registered winning (the built-ins come first). ``write(fh, images, recipe, **options)``
    writes PIL images (one for "image") to the open binary file ``fh``, embedding ``recipe`` (a dict,
    or None) so that ``read_recipe(path)`` finds it again; ``read_recipe(path)`` returns the recipe or
    None.

    The options: ``bit_depth`` (one of ``bit_depths``; ``default_bit_depth`` unless asked) and
    ``quality`` (1-100, or None when not asked; only a writer with ``quality`` is ever asked). An
    image writer also gets ``pixels``: a list holding, for each image, its float32 H x W x C numpy
    array in [0, 1] at full precision (C = 3, or 4 with alpha last), which ``images`` are rounded to
    8 bits from. A writer with ``alpha`` gets RGBA images (C = 4) when the picture has transparency;
    any other gets RGB, flattened onto white. Clips get ``durations`` (ms per frame) and ``loop`` (0:
    forever, None: play once). Writers should take ``**options`` they do not use: more may come.

    A "video" writer streams: ``write(path, recipe, fps=, size=, crf=, audio_from=, overwrite=, note=)``
    returns a sink with ``add(image)`` (one PIL frame, as each is done) and ``close()`` (the path
    written, or None with no frames), like :class:`dreamstyle.video.VideoSink`, which writes
    atomically; ``crf`` is None unless asked, ``audio_from`` the source video or None.
    dreamstyle checks ``bit_depths`` and ``quality`` before any work, so ``write`` need not."""

    name: str
    suffixes: Sequence[str]
    kind: str
    write: Callable
    read_recipe: Callable | None = None
    description: str = ""
    bit_depths: Sequence[int] = (8,)  # the --bit-depth values it takes
    default_bit_depth: int = 8
    quality: bool = False  # takes --quality (a lossy format)
    alpha: bool = False  # keeps transparency
    plugin: str = ""
