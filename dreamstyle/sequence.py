"""Any job over many pictures: the frames of a clip, or the still images of a folder, with one
session (one loaded backbone) for the whole run and the targets of fixed images computed once.

- A clip (:func:`run_clip`): frame 1 runs the whole job (``--scales`` included); every later frame
  starts from the previous output carried along the content's change (warped along the optical
  flow with ``flow``), blended with ``temporal_init`` of its own start, and runs
  ``frame_iterations`` steps (a transfer: its last stage only). A job made with ``clip=True``
  adds the ``temporal`` term, which reads the images "previous" and "previous_content".
- A folder (:func:`run_folder`): each image on its own, images of the same output size ``batch``
  at a time; a batch that runs out of memory is retried at half the size. It runs on
  :mod:`dreamstyle.drive` (the :class:`~dreamstyle.drive.Folder` source), kept in memory here.

Ctrl-C keeps the frames (images) done; each finished one is reported to ``on_frame`` as it is done.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Callable

import torch

from . import runner
from .clips import Clip, estimate_flow, read_clip, warp
from .drive.made import Collected, FrameDone, SequenceResult, alphas, refuse_set  # noqa: F401 - the API names them here
from .errors import ImageError
from .images import fit_size, to_tensor
from .runner import Item
from .stop import Catch, Reason


def clip_kind(clip) -> str:
    """ "video" (a video file, streamed) or "clip" (an animation, a folder of frames, frames in memory)."""
    from .video import VideoSource, is_video

    return "video" if isinstance(clip, VideoSource) or isinstance(clip, (str, Path)) and is_video(clip) else "clip"


def open_clip(path, settings):
    """A clip file or folder as frames to run over: a video (streamed, with PyAV), else read whole."""
    from .video import VideoSource, is_video

    s = settings
    if is_video(path):
        return VideoSource(path, start=s.start, duration=s.duration, fps=s.fps, max_pixels=s.max_pixels)
    return read_clip(path, fps=s.fps, max_pixels=s.max_pixels, max_total=s.max_clip_pixels)


def run_clip(
    job,
    clip,
    *,
    callback: Callable | None = None,
    on_frame: Callable | None = None,
    fps: float | None = None,
    keep: bool = True,
    resume: tuple | None = None,
) -> SequenceResult:
    """``job`` (made with ``clip=True``) over every frame of ``clip``: a :class:`Clip`, a
    :class:`~dreamstyle.video.VideoSource` or a path. Frames are taken one batch at a time, so a
    streamed video is never all in memory; with ``keep=False`` the frames done are only reported to
    ``on_frame`` (which writes them), not kept. ``resume=(k, previous)`` skips the first ``k`` frames,
    done before, the first frame made starting from ``previous`` (frame k's output, (1, 3, H, W))."""
    s = job.settings
    refuse_set(s, clip_kind(clip))
    flow = None if s.flow == "none" else s.flow
    if not isinstance(clip, Clip) and isinstance(clip, (str, Path)):
        clip = open_clip(clip, s if fps is None else s.replace(fps=fps))
    n = len(clip)
    frames = iter(clip)
    head, wh = _first_frame(job, frames)
    pending = [head]
    done = Collected(n, on_frame, keep)
    stopped, fault, first, batch, previous, before = None, "", 0, s.batch, None, None
    if resume is not None:
        first, previous, before = _skip_done(frames, head, resume, wh, job.device)
        pending = []
    with Catch() as caught:  # Ctrl-C between frames (decoding, writing one) stops the run as one during a frame does
        while True:
            while len(pending) < batch:
                image = next(frames, None)
                if image is None:
                    break
                pending.append(image)
            if not pending:
                break
            n = max(n, first + len(pending))
            done.total = n
            chunk = pending[:batch]
            contents = [to_tensor(f, wh).to(job.device) for f in chunk]
            idx = list(range(first, first + len(chunk)))
            item = _frame_item(job, contents, idx, previous, before, flow, wh, n, head.size)
            item.alpha = alphas(chunk, wh, job.device)
            result, stop, fault = runner.attempt(job, item, callback)
            if stop is Reason.OUT_OF_MEMORY and len(idx) > 1:  # --batch where memory allows: retry with half
                batch = len(idx) // 2
                continue
            if result is None or (stop is not None and stop is not Reason.DIVERGED):
                stopped = stop
                break
            recipe = _clip_recipe(result.recipe, clip, s)
            tag = {"frame": first + 1, **({"frames": len(idx)} if len(idx) > 1 else {})}
            done.take(result, idx, [clip.names[i] for i in idx], [recipe] * len(idx), tag)
            previous, before = result.optimized[-1:].detach(), contents[-1]
            first += len(idx)
            pending = pending[len(chunk) :]
            if stop is not None:
                stopped = stop
                break
    stopped = caught.reason or stopped
    k = len(done.names)
    done.recipe["stopped"] = stopped.value if stopped else None
    return SequenceResult(
        done.frames,
        clip.durations[:k],
        clip.loop,
        done.names,
        done.history,
        done.recipe,
        stopped,
        done.losses,
        done.tensors,
        fault,
        n if stopped else first,
    )


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
    """Past the ``k`` frames done before (``resume=(k, previous)``): ``(k, previous, frame k's content)``."""
    k, previous = resume
    last = head
    for i in range(1, k):  # only the last one's content is needed
        last = next(frames, None)
        if last is None:
            raise ImageError(f"the clip has {i} frames, fewer than the {k} done before")
    return k, previous.to(device), to_tensor(last, wh).to(device)


def _frame_item(job, contents, idx, previous, before, flow, wh, n, source_size) -> Item:
    """The item of frames ``idx``: the first batch starts as the job says; later ones from the previous
    output carried along the content's change, blended with ``temporal_init`` of their own start."""
    s = job.settings
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


def _clip_recipe(recipe: dict, clip, settings) -> dict:
    if isinstance(clip, Clip):
        return {**recipe, "frames": len(clip), "durations": clip.durations, "loop": clip.loop}
    return {**recipe, "frames": len(clip), "fps": float(clip.fps)}


def run_folder(
    job,
    folder: str | Sequence,
    *,
    callback: Callable | None = None,
    on_frame: Callable | None = None,
    executor=None,
    skip: Sequence[int] = (),
    on_error: Callable | None = None,
) -> SequenceResult:
    """``job`` over every still image of ``folder`` (or a list of paths), kept in memory: the
    :class:`~dreamstyle.drive.Folder` source through :func:`~dreamstyle.drive.drive` into a
    :class:`~dreamstyle.drive.Memory` sink. Images of the same output size are made ``batch`` at a
    time, each batch one task of ``executor`` (default: the settings' ``--executor``); the images
    ``skip`` (indices: done before, ``--resume``) are left out; an image that cannot be read or made is
    told to ``on_error(name, line)`` and the rest go on."""
    from .drive import Folder, Memory, drive

    source = Folder(folder, skip=skip, on_error=on_error)
    return drive(job, source, Memory(on_frame), executor, callback).result


ZOOM_FPS = 24.0  # a zoom's frame rate unless --fps


def run_zoom(
    job,
    frames: int,
    *,
    callback: Callable | None = None,
    on_frame: Callable | None = None,
    keep: bool = True,
    resume: tuple | None = None,
    fps: float = ZOOM_FPS,
) -> SequenceResult:
    """DeepDream's infinite zoom: frame 1 is ``job`` (a dream) on its still input, octaves and all;
    every later frame is the previous one zoomed by ``zoom`` (and turned by ``rotate`` degrees) about
    the centre and dreamed again, ``frame_iterations`` steps an octave. ``resume=(k, previous)``
    goes on after frame k, from its output."""
    from .clips import frame_ms

    s = job.settings
    first_item = job.still_item()
    wh = first_item.size
    digits = max(5, len(str(frames)))
    done = Collected(frames, on_frame, keep)
    stopped, fault, first, previous = None, "", 0, None
    if resume is not None:
        first, previous = resume[0], resume[1].to(job.device)
    with Catch() as caught:
        while first < frames:
            label = f"frame {first + 1}/{frames}"
            if previous is None:
                item = first_item
                item.label = label
            else:
                with torch.no_grad():
                    start = zoomed(previous, s.zoom, s.rotate)
                item = Item(start, wh, label=label, iterations=s.frame_iterations, warm=True)
            result, stop, fault = runner.attempt(job, item, callback)
            if result is None or (stop is not None and stop is not Reason.DIVERGED):
                stopped = stop
                break
            recipe = {**result.recipe, "frames": frames, "fps": fps}
            done.take(result, [first], [f"frame_{first + 1:0{digits}d}"], [recipe], {"frame": first + 1})
            previous = result.optimized[-1:].detach()  # as kept for a resume
            first += 1
            if stop is not None:
                stopped = stop
                break
    stopped = caught.reason or stopped
    done.recipe["stopped"] = stopped.value if stopped else None
    k = len(done.names)
    return SequenceResult(
        done.frames,
        [frame_ms(fps)] * k,
        0,
        done.names,
        done.history,
        done.recipe,
        stopped,
        done.losses,
        done.tensors,
        fault,
        frames if stopped else first,
    )


def zoomed(image, zoom: float, degrees: float = 0.0):
    """``image`` (N, C, H, W) scaled by ``zoom`` about its centre and turned by ``degrees``
    (counter-clockwise), at the same size: bilinear, the borders reflected where it zooms out."""
    import math

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
