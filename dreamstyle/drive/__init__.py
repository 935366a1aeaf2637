"""Driving a job over an input into an output: a source yields the items, the one runner makes each,
a sink writes what was made, and :func:`drive` is the loop between them, with the one stop policy
(:mod:`dreamstyle.stop`): it returns how the run ended, in a :class:`~dreamstyle.stop.Stop`,
instead of raising it.

A source (:mod:`.sources`) and a sink (:mod:`.sinks`) each check themselves before any work. So
far the still image into an image file runs here; clips, folders and zooms are still driven by
:mod:`dreamstyle.sequence` and the command line (issue 28).
"""

from __future__ import annotations

from .loop import Driven, drive
from .sinks import ImageFile
from .sources import Still

__all__ = ["Driven", "ImageFile", "Still", "drive"]
