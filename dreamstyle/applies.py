"""Where an option applies: each option declares the kinds of input it goes with (its ``applies_to``,
in the settings' :func:`~dreamstyle.settings.opt` and on the output options), and :func:`refuse`
refuses every option given for an input it does not apply to, in one line. The command line, the
Python API, sweep and the web page all ask it.

The kinds: ``still`` (a single image), ``clip`` (an animation or a folder of a clip's frames),
``video`` (a video file: a clip read as a stream), ``folder`` (a folder of still images), ``zoom``
(an infinite zoom made from a still, ``--zoom-frames``), ``grid`` (the cells of compare and
sweep: stills, made on an executor) and ``train`` (a folder of photos a style network trains on).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .errors import OptionError

KINDS = ("still", "clip", "video", "folder", "zoom", "grid", "train")
CLIPS = ("clip", "video")
# How a message names a kind: where an option goes, and what was given instead
WHERE = {
    "still": "a single image",
    "clip": "a clip",
    "video": "a video file (.mp4, .mov, .mkv, .webm)",
    "folder": "a folder of still images",
    "zoom": "--zoom-frames",
    "grid": "compare, sweep",
    "train": "dreamstyle train",
}
WHAT = {
    "still": "a single image",
    "clip": "a clip",
    "video": "a video",
    "folder": "a folder of still images",
    "zoom": "--zoom-frames",
    "grid": "compare or sweep",
    "train": "training a style network",
}


@dataclass(frozen=True)
class AppliesTo:
    """The kinds of input an option goes with; ``where`` names them in a message where the kinds' own
    names would not say it, ``why`` says why the others refuse it."""

    kinds: frozenset
    where: str | None = None
    why: str | None = None

    def __contains__(self, kind: str) -> bool:
        return kind in self.kinds

    @property
    def only_stills(self) -> bool:
        """Whether no clip or folder takes it (help says "stills only")."""
        return not self.kinds & {"clip", "video", "folder"}


def only(*kinds: str, where: str | None = None, why: str | None = None) -> AppliesTo:
    unknown = set(kinds) - set(KINDS)
    if unknown:
        raise ValueError(f"unknown input kinds {sorted(unknown)}; the kinds are {KINDS}")
    return AppliesTo(frozenset(kinds), where, why)


EVERYWHERE = only(*KINDS)
SEQUENCES = only(*CLIPS, "folder")  # clips and folders, not a still
PICTURES = only(*(k for k in KINDS if k != "train"))  # where a picture is optimized (not a network trained)


def refuse(
    options: Mapping[str, tuple[str, AppliesTo]],
    given: Iterable[str],
    kind: str,
    source=None,
    offered: Iterable[str] = KINDS,
) -> None:
    """The first option ``given`` (by name) that does not apply to ``kind``: one
    :class:`~dreamstyle.errors.OptionError` naming it, where it goes and why. ``options``: name ->
    (flag, :class:`AppliesTo`); ``source``: the input, named in the line; ``offered``: the kinds
    the command takes (a message names only those)."""
    given = set(given)
    for name, (flag, applies) in options.items():
        if name in given and kind not in applies:
            raise OptionError(line(flag, applies, kind, source, offered))


def line(flag: str, applies: AppliesTo, kind: str, source=None, offered: Iterable[str] = KINDS) -> str:
    """ "--crf goes with a video output, not with a single image (photo.png)"."""
    named = isinstance(source, (str, os.PathLike)) and str(source)
    what = WHAT[kind] + (f" ({source})" if named else "")
    why = f": {applies.why}" if applies.why else ""
    if kind == "folder" and "clip" in applies and not applies.where:
        why = why or ": a folder of still images has no frames (add --frames if it holds a clip's frames)"
    return f"{flag} goes with {applies.where or where(applies, offered)}, not with {what}{why}"


def where(applies: AppliesTo, offered: Iterable[str] = KINDS) -> str:
    """The kinds an option goes with, in words: "a clip or a folder of still images"."""
    kinds = [k for k in KINDS if k in applies and k in set(offered)]
    if not kinds:  # none this command takes (training): say where it goes instead
        kinds = ["still"] if "still" in applies else [k for k in KINDS if k in applies]
    if "clip" in kinds and "video" in kinds:
        kinds.remove("video")  # a video is a clip
    words = [word for k in kinds for word in WHERE[k].split(", ")]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]
