"""Driving a job over an input into an output: a source yields the items, the one runner makes each,
a sink writes what was made, and :func:`drive` is the loop between them, with the one stop policy
(:mod:`dreamstyle.stop`): it returns how the run ended, in a :class:`~dreamstyle.stop.Stop`,
instead of raising it.

A source (:mod:`.sources`) and a sink (:mod:`.sinks`) each check themselves before any work. A still
(:class:`Still`), a folder of images (:class:`Folder`), a clip's frames (:class:`ClipFrames`: a video,
an animation, a folder of frames) and a zoom's (:class:`ZoomFrames`) go into an image file
(:class:`ImageFile`), a folder of images (:class:`ImageFolder`), a clip file or a folder of frames
(:class:`ClipFile`), a resumable video (:class:`~dreamstyle.video.VideoRun`) or memory
(:class:`Memory`: the Python API).
"""

from __future__ import annotations

from .frames import ClipFrames, ZoomFrames
from .loop import Driven, drive
from .sinks import ClipFile, ImageFile, ImageFolder, Memory
from .sources import Ended, Folder, Still

__all__ = [
    "ClipFile",
    "ClipFrames",
    "Driven",
    "Ended",
    "Folder",
    "ImageFile",
    "ImageFolder",
    "Memory",
    "Still",
    "ZoomFrames",
    "drive",
]
