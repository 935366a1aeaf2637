"""Any job over many pictures, kept in memory (the Python API's clips, zooms and folders): the
frames of a clip, a zoom's frames or the still images of a folder, with one session (one loaded
backbone) for the whole run and the targets of fixed images computed once. Each is a source of
:mod:`dreamstyle.drive` (:class:`~dreamstyle.drive.ClipFrames`, :class:`~dreamstyle.drive.ZoomFrames`,
:class:`~dreamstyle.drive.Folder`) driven into a :class:`~dreamstyle.drive.Memory` sink; the command
line drives the same sources into files.

Ctrl-C keeps the frames (images) done; each finished one is reported to ``on_frame`` as it is done.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Callable

from .drive import ClipFrames, Folder, Memory, ZoomFrames, drive
from .drive.frames import ZOOM_FPS, carried_start, clip_kind, open_clip, zoomed  # noqa: F401 - named here too
from .drive.made import Collected, FrameDone, SequenceResult, alphas, refuse_set  # noqa: F401 - the API names them here


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
    """``job`` (made with ``clip=True``) over every frame of ``clip``: a :class:`~dreamstyle.clips.Clip`,
    a :class:`~dreamstyle.video.VideoSource` or a path (``fps``: its frame rate, instead of the
    settings'). With ``keep=False`` the frames done are only reported to ``on_frame``, not kept.
    ``resume=(k, previous)`` skips the first ``k`` frames, done before, the first frame made starting
    from ``previous`` (frame k's output, (1, 3, H, W))."""
    if isinstance(clip, (str, Path)):
        s = job.settings
        clip = open_clip(clip, s if fps is None else s.replace(fps=fps))
    return drive(job, ClipFrames(clip, keep=keep, resume=resume), Memory(on_frame), on_step=callback).result


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
    """``job`` over every still image of ``folder`` (or a list of paths). Images of the same output size
    are made ``batch`` at a time, each batch one task of ``executor`` (default: the settings'
    ``--executor``); the images ``skip`` (indices: done before, ``--resume``) are left out; an image
    that cannot be read or made is told to ``on_error(name, line)`` and the rest go on."""
    source = Folder(folder, skip=skip, on_error=on_error)
    return drive(job, source, Memory(on_frame), executor, callback).result


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
    """DeepDream's infinite zoom of ``frames`` frames: frame 1 is ``job`` (a dream) on its still input,
    octaves and all; every later frame is the previous one zoomed by ``zoom`` (and turned by
    ``rotate`` degrees) about the centre and dreamed again, ``frame_iterations`` steps an octave.
    ``resume=(k, previous)`` goes on after frame k, from its output."""
    source = ZoomFrames(frames, fps, keep=keep, resume=resume)
    return drive(job, source, Memory(on_frame), on_step=callback).result
