"""Jobs: what to make. Each builds an objective and a schedule from its settings, and the runner
(:mod:`dreamstyle.runner`) runs it. A job is built once per run (checks, inputs, terms) and makes
any number of items (a still, each frame of a clip, each image of a folder) with one session.

A job provides ``stages(item)``, ``plan(item, stage, previous) -> Plan``, ``after(item, stage,
best)``, ``finish(item, image, done, stages)``, ``recipe(item, stages)`` and ``oom_message``;
:class:`Job` holds what they share.
"""

from __future__ import annotations

from ..hints import hints
from ..session import Session
from .base import Job
from .dream import DreamJob
from .texture import TextureJob
from .transfer import TransferJob

__all__ = ["Job", "DreamJob", "TextureJob", "TransferJob", "make_job", "job_saying", "say_begin"]


def make_job(kind: str, settings, session=None, *, recipe_paths: str = "full", clip: bool = False, announce=None):
    """The job of ``kind`` (transfer, dream or texture) for ``settings``, on ``session`` (default: a new
    one for the settings; its weights load on first use)."""
    session = session if session is not None else Session.for_settings(settings)
    if kind == "transfer":
        return TransferJob(settings, session, clip=clip, announce=announce, recipe_paths=recipe_paths)
    if kind == "dream":
        return DreamJob(settings, session, clip=clip, recipe_paths=recipe_paths)
    return TextureJob(settings, session, recipe_paths=recipe_paths)


def job_saying(kind: str, settings, say, *, recipe_paths: str = "full", clip: bool = False):
    """The job of ``kind`` whose words go to ``say`` (a line each): what it chose as it was built (the
    "auto" dream layers) and, when its work begins, its hints and what it loads (:func:`say_begin`).
    What the web page runs; the command line adds the seed it drew."""
    job = make_job(kind, settings, recipe_paths=recipe_paths, clip=clip, announce=say)
    job.on_phase = lambda phase: say_begin(kind, settings, job, phase, say)
    return job


def say_begin(kind: str, settings, job, phase, say) -> None:
    """A job's work begins (:class:`~dreamstyle.runner.Phase`): its hints, then what it loads."""
    for line in hints(kind, settings, job):
        say(f"hint: {line}")
    if phase.text:
        say(phase.text)
