"""Sources of frames made one from another, run here (not on another executor): a clip's (a video, an
animation, a folder of frames) and a zoom's. Each runs its own items (:meth:`runs`) and yields each
frame made (:class:`~dreamstyle.drive.made.FrameDone`), then how the run ended
(:class:`~dreamstyle.drive.sources.Ended`), for :func:`~dreamstyle.drive.drive` to put into a sink.

- :class:`ClipFrames`: frame 1 runs the whole job (``--scales`` included); every later frame starts
  from the previous output carried along the content's change (warped along the optical flow with
  ``--flow``), blended with ``temporal_init`` of its own start, and runs ``frame_iterations`` steps (a
  transfer: its last stage only). A job made with ``clip=True`` adds the ``temporal`` term, which
  reads the images "previous" and "previous_content". Frames are taken ``batch`` at a time, so a
  streamed video is never all in memory; a batch that runs out of memory is retried at half the size.
- :class:`ZoomFrames`: DeepDream's infinite zoom: frame 1 is the job on its still input; every later
  frame is the previous one zoomed (and turned) about the centre and dreamed again.

Both go on after frame k of a run done before (``resume=(k, frame k's optimized tensor)``), and keep
the frames made in memory unless ``keep=False`` (a sink that writes each as it comes: a video).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Callable

import torch

from .. import runner
from ..clips import Clip, estimate_flow, frame_ms, is_animation, read_clip, warp
from ..errors import ImageError, OptionError
from ..images import fit_size, to_tensor
from ..runner import Item
from ..stop import Reason
from ..video import VideoSource, is_video
from .made import Collected, SequenceResult, alphas, refuse_set
from .sources import Ended

ZOOM_FPS = 24.0  # a zoom's frame rate unless --fps


def clip_kind(clip) -> str:
    """ "video" (a video file, streamed) or "clip" (an animation, a folder of frames, frames in memory)."""
    return "video" if isinstance(clip, VideoSource) or isinstance(clip, (str, Path)) and is_video(clip) else "clip"


def input_kind(x, frames: bool = False, zoom: bool = False) -> str:
    """What ``x`` is as an input (:mod:`dreamstyle.applies`' kinds): "video" (a video file), "clip" (an
    animated file, a :class:`~dreamstyle.clips.Clip`, or a folder with ``frames``), "folder" (a folder
    of still images, or a list of paths), "zoom" (a still with ``zoom``) or "still" (anything else: a
    picture's path, a PIL image, nothing)."""
    if isinstance(x, (Clip, VideoSource)):
        return clip_kind(x)
    if isinstance(x, (list, tuple)):
        return "folder"
    if x is None or not isinstance(x, (str, os.PathLike)):
        return "zoom" if zoom else "still"
    path = Path(x)
    if path.is_dir():
        return "clip" if frames else "folder"
    if frames:
        raise OptionError(f"--frames needs a folder of frames; {path} is not a folder")
    if is_video(path):
        return "video"
    return "clip" if is_animation(path) else "zoom" if zoom else "still"


def open_clip(path, settings):
    """A clip file or folder as frames to run over: a video (streamed, with PyAV), else read whole."""
    s = settings
    if is_video(path):
        return VideoSource(path, start=s.start, duration=s.duration, fps=s.fps, max_pixels=s.max_pixels)
    return read_clip(path, fps=s.fps, max_pixels=s.max_pixels, max_total=s.max_clip_pixels)


class _Frames:
    """What both sources share: the frames collected, where the run got to, the result."""

    remote = False  # frames are made one from another, in this process

    def __init__(self, total: int, *, keep: bool = True, resume: tuple | None = None):
        self.total, self.keep, self.resume = total, keep, resume
        self._begin()

    def _begin(self) -> None:
        """Nothing made yet: the frames done before (``resume``) are where it goes on."""
        self.first = self.resume[0] if self.resume else 0  # the frames done (those before included)
        self.done = Collected(self.total, None, self.keep)

    @property
    def names(self) -> list[str]:
        return [self._names[i] for i in range(self.total)]

    def result(self, stopped: Reason | None, fault: str = "") -> SequenceResult:
        """The frames made in this run (:class:`~dreamstyle.drive.made.SequenceResult`)."""
        k = len(self.done.names)
        return self.done.result(stopped, fault, self.total if stopped else self.first, self._durations(k), self.loop)


class ClipFrames(_Frames):
    """The frames of ``clip`` (a :class:`~dreamstyle.clips.Clip` or a
    :class:`~dreamstyle.video.VideoSource`), each warm from the one before."""

    def __init__(self, clip, *, keep: bool = True, resume: tuple | None = None):
        super().__init__(len(clip), keep=keep, resume=resume)
        self.clip, self._names, self.loop = clip, clip.names, clip.loop
        video = isinstance(clip, VideoSource)
        self.fps = clip.fps if video else 1000 / clip.durations[0]
        self.audio_from = clip if video else None  # a video's sound goes to a video output

    def _durations(self, k: int) -> list:
        return self.clip.durations[:k]

    def runs(self, job, executor=None, callback: Callable | None = None) -> Iterator[object]:
        """The job (made with ``clip=True``) over the frames; its first frame is read and checked now,
        before the iterator starts."""
        s = job.settings
        refuse_set(s, clip_kind(self.clip))
        self._begin()
        frames = iter(self.clip)
        head, wh = _first_frame(job, frames)
        if self.resume is None:
            return self._run(job, frames, [head], wh, head.size, (None, None), callback)
        previous, before = _skip_done(frames, head, self.resume, wh, job.device)
        return self._run(job, frames, [], wh, head.size, (previous, before), callback)

    def _run(self, job, frames, pending, wh, source_size, carried, callback) -> Iterator[object]:
        s, done = job.settings, self.done
        flow = None if s.flow == "none" else s.flow
        previous, before = carried
        batch, first = s.batch, self.first
        while True:
            while len(pending) < batch:
                image = next(frames, None)
                if image is None:
                    break
                pending.append(image)
            if not pending:
                break
            self.total = done.total = max(self.total, first + len(pending))
            chunk = pending[:batch]
            contents = [to_tensor(f, wh).to(job.device) for f in chunk]
            idx = list(range(first, first + len(chunk)))
            item = frame_item(job, contents, idx, (previous, before), flow, wh, self.total, source_size)
            item.alpha = alphas(chunk, wh, job.device)
            result, stop, fault = runner.attempt(job, item, callback)
            if stop is Reason.OUT_OF_MEMORY and len(idx) > 1:  # --batch where memory allows: retry with half
                batch = len(idx) // 2
                continue
            if result is None or (stop is not None and stop is not Reason.DIVERGED):
                yield Ended(stop, fault)
                return
            recipe = _clip_recipe(result.recipe, self.clip)
            tag = {"frame": first + 1, **({"frames": len(idx)} if len(idx) > 1 else {})}
            yield from done.each(result, idx, [self._names[i] for i in idx], [recipe] * len(idx), tag)
            previous, before = result.optimized[-1:].detach(), contents[-1]
            first = self.first = first + len(idx)
            pending = pending[len(chunk) :]
            if stop is not None:  # diverged: the frame is kept, the clip ends there
                yield Ended(stop, fault)
                return
        yield Ended()


class ZoomFrames(_Frames):
    """``frames`` frames of an infinite zoom at ``fps``: the still input dreamed, then zoomed by
    ``--zoom`` (and turned by ``--rotate`` degrees) and dreamed again, ``frame_iterations`` steps an
    octave."""

    loop = 0

    def __init__(self, frames: int, fps: float | None = None, *, keep: bool = True, resume: tuple | None = None):
        super().__init__(frames, keep=keep, resume=resume)
        self.fps, self.audio_from = fps or ZOOM_FPS, None
        digits = max(5, len(str(frames)))
        self._names = [f"frame_{i:0{digits}d}" for i in range(1, frames + 1)]

    def _durations(self, k: int) -> list:
        return [frame_ms(self.fps)] * k

    @property
    def shape(self) -> Clip:
        """The clip it makes, without its frames: names and durations (to check an output before)."""
        return Clip([None] * self.total, self._durations(self.total), 0, self._names)

    def runs(self, job, executor=None, callback: Callable | None = None) -> Iterator[object]:
        """The job (a dream) over the frames; its still input is read and checked now."""
        self._begin()
        first_item = job.still_item()
        previous = self.resume[1].to(job.device) if self.resume else None
        return self._run(job, first_item, previous, callback)

    def _run(self, job, first_item, previous, callback) -> Iterator[object]:
        s, frames = job.settings, self.total
        while self.first < frames:
            first = self.first
            label = f"frame {first + 1}/{frames}"
            if previous is None:
                item = first_item
                item.label = label
            else:
                with torch.no_grad():
                    start = zoomed(previous, s.zoom, s.rotate)
                item = Item(start, first_item.size, label=label, iterations=s.frame_iterations, warm=True)
            result, stop, fault = runner.attempt(job, item, callback)
            if result is None or (stop is not None and stop is not Reason.DIVERGED):
                yield Ended(stop, fault)
                return
            recipe = {**result.recipe, "frames": frames, "fps": self.fps}
            yield from self.done.each(result, [first], [self._names[first]], [recipe], {"frame": first + 1})
            previous = result.optimized[-1:].detach()  # as kept for a resume
            self.first = first + 1
            if stop is not None:
                yield Ended(stop, fault)
                return
        yield Ended()


def _first_frame(job, frames):
    """The clip's first frame and the output size; the job checks it (and takes its colours)."""
    s = job.settings
    head = next(frames, None)
    if head is None:
        raise ImageError("the clip has no frames")
    wh = fit_size(head.size, s.size)
    content = to_tensor(head, wh).to(job.device)
    job.check_item(Item(content, wh), head.size)
    if s.preserve_color and hasattr(job, "set_color_reference"):
        job.set_color_reference(content)  # the style colours follow the first frame, for every frame
    return head, wh


def _skip_done(frames, head, resume, wh, device):
    """Past the ``k`` frames done before (``resume=(k, previous)``): ``(previous, frame k's content)``."""
    k, previous = resume
    last = head
    for i in range(1, k):  # only the last one's content is needed
        last = next(frames, None)
        if last is None:
            raise ImageError(f"the clip has {i} frames, fewer than the {k} done before")
    return previous.to(device), to_tensor(last, wh).to(device)


def frame_item(job, contents, idx, carried, flow, wh, n, source_size) -> Item:
    """The item of frames ``idx``: the first batch starts as the job says; later ones from the previous
    output (``carried``: it and its content) carried along the content's change, blended with
    ``temporal_init`` of their own start."""
    s = job.settings
    previous, before = carried
    first = idx[0]
    label = f"frame {first + 1}/{n}" if len(idx) == 1 else f"frames {first + 1}-{idx[-1] + 1}/{n}"
    with torch.no_grad():
        content = torch.cat(contents)
        if previous is None:
            return Item(
                content, wh, images={"previous": [], "previous_content": []}, label=label, source_size=source_size
            )
        prev = previous
        if flow is not None:
            f = estimate_flow(contents[0], before, flow)
            prev, before = warp(prev, f), warp(before, f)
        own = job.initial(Item(content, wh)) if s.temporal_init else None
        start = carried_start(prev, content, before, s.temporal_init, own)
    return Item(
        content,
        wh,
        start=start,
        images={"previous": [prev], "previous_content": [before]},
        iterations=s.frame_iterations,
        warm=True,
        label=label,
    )


def carried_start(previous, content, before, temporal_init: float = 0.0, own=None):
    """Where a warm frame starts: the previous output with the content's change since the previous
    frame added (where the content did not change that is the previous output itself; where it
    moved, the new content shows), blended with ``temporal_init`` of the frame's own start."""
    start = (previous + (content - before)).clamp(0, 1)
    if temporal_init:  # the own start counts only when blended in
        start = (1 - temporal_init) * start + temporal_init * own
    return start


def _clip_recipe(recipe: dict, clip) -> dict:
    if isinstance(clip, Clip):
        return {**recipe, "frames": len(clip), "durations": clip.durations, "loop": clip.loop}
    return {**recipe, "frames": len(clip), "fps": float(clip.fps)}


def zoomed(image, zoom: float, degrees: float = 0.0):
    """``image`` (N, C, H, W) scaled by ``zoom`` about its centre and turned by ``degrees``
    (counter-clockwise), at the same size: bilinear, the borders reflected where it zooms out."""
    n, _, h, w = image.shape
    a = math.radians(degrees)
    cos, sin = math.cos(a) / zoom, math.sin(a) / zoom
    theta = (
        torch.tensor([[cos, -sin * h / w, 0.0], [sin * w / h, cos, 0.0]], dtype=torch.float32, device=image.device)
        .unsqueeze(0)
        .expand(n, 2, 3)
    )
    grid = torch.nn.functional.affine_grid(theta, list(image.shape), align_corners=False)
    out = torch.nn.functional.grid_sample(
        image.float(), grid, mode="bilinear", padding_mode="reflection", align_corners=False
    )
    return out.clamp(0, 1).to(image.dtype)
