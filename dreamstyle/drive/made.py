"""What a job over many pictures makes (a clip's frames, a folder's images): each picture as it is
done (:class:`FrameDone`), the pictures collected in order (:class:`Collected`) and the run's result
(:class:`SequenceResult`). Below :mod:`dreamstyle.sequence` and the drive's sources, which both use it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Callable

import torch

from ..applies import refuse
from ..images import alpha_of, to_pil
from ..stop import Reason


@dataclass
class FrameDone:
    """Reported to ``on_frame`` as each frame (or image) is finished."""

    index: int  # 0-based
    total: int
    image: object  # PIL RGB
    losses: dict
    tensor: object = None  # (1, 3, H, W) on the CPU
    name: str = ""  # the frame's or input image's name (stem)
    recipe: dict | None = None  # its recipe
    worker: int = 0  # the executor's worker that made it (a folder of images)


@dataclass
class SequenceResult:
    """What a clip (or folder) run returns: the frames done (all of them unless ``stopped``)."""

    frames: list  # PIL RGB
    durations: list[int]
    loop: int | None
    names: list[str]
    history: list[dict] = field(default_factory=list)
    recipe: dict = field(default_factory=dict)
    stopped: Reason | None = None
    losses: list[dict] = field(default_factory=list)  # each frame's final (batch) losses
    tensors: list = field(default_factory=list)  # (1, 3, H, W) CPU tensors, as optimized
    fault: str = ""
    total: int = 0  # frames (images) there were to do
    failed: list[str] = field(default_factory=list)  # a folder: the images that could not be made (names)


def refuse_set(settings, kind: str) -> None:
    """Options set away from their defaults (given, or from a replayed recipe) that do not apply to
    this kind of input: one line (:func:`dreamstyle.applies.refuse`)."""
    cls = type(settings)
    changed = [f.name for f in cls.fields() if getattr(settings, f.name) != f.default]
    refuse(cls.applicability(), changed, kind, offered=cls.INPUTS)


class Collected:
    """Frames done, in order, reported as they come."""

    def __init__(self, total: int, on_frame: Callable | None, keep: bool = True):
        self.total, self.on_frame, self.keep = total, on_frame, keep
        self.frames, self.tensors, self.losses, self.names, self.history = [], [], [], [], []
        self.indices: list[int] = []
        self.recipe: dict = {}

    def result(self, stopped: Reason | None, fault: str, total: int, durations=(), loop=None, failed=()):
        """What was made, as a :class:`SequenceResult` (``total``: the pictures there were to do)."""
        self.recipe["stopped"] = stopped.value if stopped else None
        return SequenceResult(
            self.frames,
            list(durations),
            loop,
            self.names,
            self.history,
            self.recipe,
            stopped,
            self.losses,
            self.tensors,
            fault,
            total,
            failed=list(failed),
        )

    def in_order(self) -> None:
        """The pictures by their index (an executor with several workers reports them as they finish)."""
        order = sorted(range(len(self.indices)), key=self.indices.__getitem__)
        for name in ("losses", "names", "indices") + (("frames", "tensors") if self.keep else ()):
            setattr(self, name, [getattr(self, name)[k] for k in order])

    def add(self, index: int, result, j: int, name: str, recipe: dict, worker: int = 0) -> FrameDone:
        picture = result.tensor[j : j + 1]
        if picture.shape[1] == 4 and bool((picture[:, 3] >= 1).all()):  # opaque beside a clear one in a batch
            picture = picture[:, :3]
        image = to_pil(picture)
        tensor = result.optimized[j : j + 1].detach().cpu()
        if self.keep:
            self.frames.append(image)
            self.tensors.append(tensor)
        self.losses.append(result.losses)
        self.names.append(name)
        self.indices.append(index)
        done = FrameDone(index, self.total, image, dict(result.losses), tensor, name, recipe, worker)
        if self.on_frame is not None:
            self.on_frame(done)
        return done

    def take(self, result, indices, names, recipes, tag: dict, worker: int = 0) -> None:
        """A batch done: its history rows tagged with ``tag``, each picture added with its name and recipe
        (``worker``: which one made it)."""
        for _ in self.each(result, indices, names, recipes, tag, worker):
            pass

    def each(self, result, indices, names, recipes, tag: dict, worker: int = 0) -> Iterator[FrameDone]:
        """:meth:`take`, each picture yielded (a :class:`FrameDone`) as it is added."""
        for row in result.history:
            row.update(tag)
        self.history.extend(result.history)
        for j, (i, name, recipe) in enumerate(zip(indices, names, recipes)):
            self.recipe = recipe
            yield self.add(i, result, j, name, recipe, worker)


def alphas(frames, wh, device):
    """The frames' transparency at ``wh`` as one (N, 1, H, W) tensor (opaque ones as ones), or None
    when every frame is opaque."""
    masks = [alpha_of(f, wh) for f in frames]
    if all(a is None for a in masks):
        return None
    return torch.cat([a if a is not None else torch.ones(1, 1, wh[1], wh[0]) for a in masks]).to(device)
