"""Any job over many pictures: the frames of a clip, or the still images of a folder, with one
session (one loaded backbone) for the whole run and the targets of fixed images computed once.

- A clip (:func:`run_clip`): frame 1 runs the whole job (``--scales`` included); every later frame
  starts from the previous output carried along the content's change (warped along the optical
  flow with ``flow``), blended with ``temporal_init`` of its own start, and runs
  ``frame_iterations`` steps (a transfer: its last stage only). A job made with ``clip=True``
  adds the ``temporal`` term, which reads the images "previous" and "previous_content".
- A folder (:func:`run_folder`): each image on its own, images of the same output size ``batch``
  at a time; a batch that runs out of memory is retried at half the size.

Ctrl-C keeps the frames (images) done; each finished one is reported to ``on_frame`` as it is done.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch

from .clips import Clip, estimate_flow, list_images, read_clip, warp
from .engine import Stop
from .errors import ImageError, Interrupted, OptionError
from .faults import OutOfMemory
from .images import alpha_of, fit_size, to_pil, to_tensor
from . import runner
from .runner import Item
from .settings import file_hash, flag_of, plain


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


@dataclass
class SequenceResult:
    """What a clip (or folder) run returns: the frames done (all of them unless ``stopped``)."""

    frames: list  # PIL RGB
    durations: list[int]
    loop: int | None
    names: list[str]
    history: list[dict] = field(default_factory=list)
    recipe: dict = field(default_factory=dict)
    stopped: Stop | None = None
    losses: list[dict] = field(default_factory=list)  # each frame's final (batch) losses
    tensors: list = field(default_factory=list)  # (1, 3, H, W) CPU tensors, as optimized
    fault: str = ""
    total: int = 0  # frames (images) there were to do


def check_sequence_options(settings, what: str) -> None:
    """Options that only a still can use, set away from their defaults: one line."""
    for f in type(settings).fields():
        reason = f.metadata["spec"].sequences
        value = getattr(settings, f.name)
        if reason and value != f.default:
            raise OptionError(f"{flag_of(f)} {value} is not available with {what} ({reason})")


class _Collected:
    """Frames done, in order, reported as they come."""

    def __init__(self, total: int, on_frame: Callable | None):
        self.total, self.on_frame = total, on_frame
        self.frames, self.tensors, self.losses, self.names, self.history = [], [], [], [], []
        self.recipe: dict = {}

    def add(self, index: int, result, j: int, name: str, recipe: dict) -> None:
        picture = result.tensor[j:j + 1]
        if picture.shape[1] == 4 and bool((picture[:, 3] >= 1).all()):  # opaque beside a clear one in a batch
            picture = picture[:, :3]
        image = to_pil(picture)
        self.frames.append(image)
        self.tensors.append(result.optimized[j:j + 1].detach().cpu())
        self.losses.append(result.losses)
        self.names.append(name)
        if self.on_frame is not None:
            self.on_frame(FrameDone(index, self.total, image, dict(result.losses), self.tensors[-1], name, recipe))


def _run_batch(job, item, callback):
    """One item through the runner; a stop comes back as (None, stop, fault) instead of raising."""
    try:
        result = runner.run(job, item, callback)
    except Interrupted:
        return None, Stop.INTERRUPTED, ""
    except OutOfMemory as exc:
        return None, Stop.OUT_OF_MEMORY, str(exc).removesuffix("; nothing was written")
    except KeyboardInterrupt:
        return None, Stop.INTERRUPTED, ""
    return result, result.stopped, result.fault


def run_clip(job, clip: Clip | str, *, callback: Callable | None = None, on_frame: Callable | None = None,
             fps: float | None = None) -> SequenceResult:
    """``job`` (made with ``clip=True``) over every frame of ``clip`` (a :class:`Clip` or a path)."""
    s = job.settings
    check_sequence_options(s, "a clip")
    flow = None if s.flow == "none" else s.flow
    if not isinstance(clip, Clip):
        clip = read_clip(clip, fps=fps if fps is not None else s.fps, max_pixels=s.max_pixels,
                         max_total=s.max_clip_pixels)
    if not len(clip):
        raise ImageError("the clip has no frames")
    wh = fit_size(clip.frames[0].size, s.size)
    contents = [to_tensor(f, wh).to(job.device) for f in clip.frames]
    alphas = _alphas(clip.frames, wh, job.device)
    job.check_item(Item(contents[0], wh), clip.frames[0].size)
    if s.preserve_color and hasattr(job, "set_color_reference"):
        job.set_color_reference(contents[0])  # the style colours follow the first frame, for every frame
    done = _Collected(len(clip), on_frame)
    stopped, fault, first, batch, previous = None, "", 0, s.batch, None
    n = len(contents)
    while first < n:
        idx = list(range(first, min(n, first + batch)))
        item = _frame_item(job, contents, idx, previous, flow, wh, n, clip.frames[0].size)
        item.alpha = None if alphas is None else torch.cat([alphas[i] for i in idx])
        result, stop, fault = _run_batch(job, item, callback)
        if stop is Stop.OUT_OF_MEMORY and len(idx) > 1:  # --batch where memory allows: retry with half
            batch = len(idx) // 2
            continue
        if result is None or (stop is not None and stop is not Stop.DIVERGED):
            stopped = stop
            break
        recipe = _clip_recipe(result.recipe, clip, s)
        done.recipe = recipe
        for row in result.history:
            row["frame"] = first + 1
            if len(idx) > 1:
                row["frames"] = len(idx)
        done.history.extend(result.history)
        for j, i in enumerate(idx):
            done.add(i, result, j, clip.names[i], recipe)
        previous = result.optimized[-1:].detach()
        first += len(idx)
        if stop is not None:
            stopped = stop
            break
    k = len(done.frames)
    done.recipe["stopped"] = stopped.value if stopped else None
    return SequenceResult(done.frames, clip.durations[:k], clip.loop, done.names, done.history, done.recipe,
                          stopped, done.losses, done.tensors, fault, n)


def _alphas(frames, wh, device) -> list | None:
    """Each frame's transparency at ``wh`` (opaque ones as ones), or None when every frame is opaque."""
    alphas = [alpha_of(f, wh) for f in frames]
    if all(a is None for a in alphas):
        return None
    return [(a if a is not None else torch.ones(1, 1, wh[1], wh[0])).to(device) for a in alphas]


def _frame_item(job, contents, idx, previous, flow, wh, n, source_size) -> Item:
    """The item of frames ``idx``: the first batch starts as the job says; later ones from the previous
    output carried along the content's change, blended with ``temporal_init`` of their own start."""
    s = job.settings
    first = idx[0]
    label = f"frame {first + 1}/{n}" if len(idx) == 1 else f"frames {first + 1}-{idx[-1] + 1}/{n}"
    with torch.no_grad():
        content = torch.cat([contents[i] for i in idx])
        if previous is None:
            return Item(content, wh, images={"previous": [], "previous_content": []}, label=label,
                        source_size=source_size)
        prev, before = previous, contents[first - 1]
        if flow is not None:
            f = estimate_flow(contents[first], before, flow)
            prev, before = warp(prev, f), warp(before, f)
        own = job.initial(Item(content, wh)) if s.temporal_init else None
        start = carried_start(prev, content, before, s.temporal_init, own)
    return Item(content, wh, start=start, images={"previous": [prev], "previous_content": [before]},
                iterations=s.frame_iterations, warm=True, label=label)


def carried_start(previous, content, before, temporal_init: float = 0.0, own=None):
    """Where a warm frame starts: the previous output with the content's change since the previous
    frame added (where the content did not change that is the previous output itself; where it
    moved, the new content shows), blended with ``temporal_init`` of the frame's own start."""
    start = (previous + (content - before)).clamp(0, 1)
    if temporal_init:  # the own start counts only when blended in
        start = (1 - temporal_init) * start + temporal_init * own
    return start


def _clip_recipe(recipe: dict, clip: Clip, settings) -> dict:
    return {**recipe, "frames": len(clip), "durations": clip.durations, "loop": clip.loop}


def run_folder(job, folder: str | Sequence, *, callback: Callable | None = None,
               on_frame: Callable | None = None) -> SequenceResult:
    """``job`` over every still image of ``folder`` (or a list of paths): images of the same output
    size are made ``batch`` at a time (one at a time with --preserve-color: the style follows each)."""
    s = job.settings
    check_sequence_options(s, "a folder of images")
    paths = list_images(folder) if isinstance(folder, (str, Path)) else [Path(p) for p in folder]
    images = [job.load(p) for p in paths]
    sizes = [fit_size(img.size, s.size) for img in images]
    for path, img, wh in zip(paths, images, sizes):
        job.check_item(Item(None, wh, source_size=img.size), img.size)
    batch = 1 if s.preserve_color else s.batch
    groups: dict[tuple, list[int]] = {}
    for i, wh in enumerate(sizes):
        groups.setdefault(wh, []).append(i)
    order = sorted((idx[k:k + batch] for idx in groups.values() for k in range(0, len(idx), batch)),
                   key=lambda chunk: chunk[0])
    done = _Collected(len(paths), on_frame)
    stopped, fault, n = None, "", len(paths)
    while order:
        chunk = order.pop(0)
        item = _image_item(job, images, sizes, paths, chunk, n)
        result, stop, fault = _run_batch(job, item, callback)
        if stop is Stop.OUT_OF_MEMORY and len(chunk) > 1:  # --batch where memory allows: split it
            order[:0] = [chunk[:len(chunk) // 2], chunk[len(chunk) // 2:]]
            continue
        if result is None or (stop is not None and stop is not Stop.DIVERGED):
            stopped = stop
            break
        for row in result.history:
            row["image"] = paths[chunk[0]].name
            if len(chunk) > 1:
                row["images"] = [paths[i].name for i in chunk]
        done.history.extend(result.history)
        for j, i in enumerate(chunk):
            recipe = {**result.recipe, job.source_key: plain(str(paths[i]), job.recipe_paths),
                      "inputs": {**result.recipe.get("inputs", {}), paths[i].name: file_hash(paths[i])}}
            done.recipe = recipe
            done.add(i, result, j, paths[i].stem, recipe)
        if stop is not None:
            stopped = stop
            break
    done.recipe["stopped"] = stopped.value if stopped else None
    return SequenceResult(done.frames, [], None, done.names, done.history, done.recipe, stopped, done.losses,
                          done.tensors, fault, n)


def _image_item(job, images, sizes, paths, chunk, n) -> Item:
    label = f"image {chunk[0] + 1}/{n}" if len(chunk) == 1 else f"images {', '.join(str(i + 1) for i in chunk)}/{n}"
    content = torch.cat([to_tensor(images[i], sizes[i]) for i in chunk]).to(job.device)
    if job.settings.preserve_color and hasattr(job, "set_color_reference"):
        job.set_color_reference(content)
    alphas = [alpha_of(images[i], sizes[i]) for i in chunk]
    alpha = None if all(a is None for a in alphas) else torch.cat(
        [a if a is not None else torch.ones(1, 1, sizes[i][1], sizes[i][0]) for a, i in zip(alphas, chunk)]).to(job.device)
    return Item(content, sizes[chunk[0]], label=label, source=str(paths[chunk[0]]), source_size=images[chunk[0]].size,
                alpha=alpha)
