"""Jobs: what to make. Each builds an objective and a schedule from its settings, and the runner
(:mod:`dreamstyle.runner`) runs it. A job is built once per run (checks, inputs, terms) and makes
any number of items (a still, each frame of a clip, each image of a folder) with one session.

A job provides ``stages(item)``, ``plan(item, stage, previous) -> Plan``, ``after(item, stage,
best)``, ``finish(item, image, done, stages)``, ``recipe(item, stages)`` and ``oom_message``;
:class:`Job` holds what they share.
"""

from __future__ import annotations

from ..session import Session
from .base import Job
from .dream import DreamJob
from .texture import TextureJob
from .transfer import TransferJob

__all__ = ["Job", "DreamJob", "TextureJob", "TransferJob", "make_job"]


def make_job(kind: str, settings, session=None, *, recipe_paths: str = "full", clip: bool = False, announce=None):
    """The job of ``kind`` (transfer, dream or texture) for ``settings``, on ``session`` (default: a new
    one for the settings; its weights load on first use)."""
    session = session if session is not None else Session.for_settings(settings)
    if kind == "transfer":
        return TransferJob(settings, session, clip=clip, announce=announce, recipe_paths=recipe_paths)
    if kind == "dream":
        return DreamJob(settings, session, clip=clip, recipe_paths=recipe_paths)
    return TextureJob(settings, session, recipe_paths=recipe_paths)
