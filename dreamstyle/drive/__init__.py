"""Driving a job over an input into an output: a source yields the items, the one runner makes each,
a sink writes what was made, and :func:`drive` is the loop between them, with the one stop policy
(:mod:`dreamstyle.stop`): it returns how the run ended, in a :class:`~dreamstyle.stop.Stop`,
instead of raising it.

A source (:mod:`.sources`) and a sink (:mod:`.sinks`) each check themselves before any work. So
far a still into an image file, and a folder of images into a folder of images (or into memory, for
the Python API), run here; clips and zooms are still driven by :mod:`dreamstyle.sequence` and the
command line (issue 28).
"""

from __future__ import annotations

from .loop import Driven, drive
from .sinks import ImageFile, ImageFolder, Memory
from .sources import Ended, Folder, Still

__all__ = ["Driven", "Ended", "Folder", "ImageFile", "ImageFolder", "Memory", "Still", "drive"]
