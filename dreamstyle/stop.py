"""One stop policy: why a run ended (:class:`Reason`), what became of its output (:class:`Stop`) and
one line and exit code for it (:func:`describe`), the same for every command and the web page.

The engine and the runner record a :class:`Reason` (``None`` when the run finished); whoever wrote
the output (the CLI, the page) says where it went in a :class:`Stop`, and :func:`describe` words it.
Ctrl-C (or SIGTERM) ends a run with exit code 130, a run that finished with 0, anything else with 1.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path


class Reason(str, enum.Enum):
    """Why a run ended (its value is what recipes and the JSON logs record; a finished run records
    ``None``, which :meth:`of` reads as ``DONE``)."""

    DONE = "done"
    INTERRUPTED = "interrupted"  # Ctrl-C, SIGTERM, the page's Stop button
    DIVERGED = "diverged"  # the loss became NaN or infinite (or a step overflowed)
    OUT_OF_MEMORY = "out of memory"
    FAILED = "failed"  # a loss term raised, exited or returned what is not a number (a folder: its cluster died)

    def __str__(self) -> str:  # in a line, a table or a recipe: its value, as a str would be
        return self.value

    __format__ = str.__format__

    @classmethod
    def of(cls, stopped) -> Reason:
        """A run's ``stopped`` (a reason, its value, or None: finished) as a reason."""
        return cls.DONE if stopped is None else cls(stopped)

    @property
    def code(self) -> int:
        """The exit code of a run that ended so."""
        return {Reason.DONE: 0, Reason.INTERRUPTED: EXIT_INTERRUPTED}.get(self, 1)


EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C


@dataclass(frozen=True)
class Stop:
    """How a run ended and what became of its output.

    ``where``: the output in words ("wrote out.png", "the best image so far is in out.png");
    ``fault``: out of memory, what was tried and what would fit; failed, the term; diverged, where it
    showed; ``at``: diverged, when ("by iteration 12", "at frame 3"); ``advice``: diverged, appended
    to the line as it is (". Lower --lr ..."); ``rescue``: outputs that could not be written where
    asked, and where they went instead (the run then fails, or stays interrupted); ``path``: the
    output written, if any; ``interrupted_as``: the word for an interruption ("stopped" on the page,
    where a button stops a run)."""

    reason: Reason = Reason.DONE
    where: str = ""
    fault: str = ""
    at: str = ""
    advice: str = ""
    rescue: str = ""
    path: Path | None = None
    interrupted_as: str = "interrupted"

    @property
    def kept(self) -> bool:
        """Whether an output was written (where asked, or rescued)."""
        return self.path is not None or bool(self.rescue)

    @property
    def finished(self) -> bool:
        return self.reason is Reason.DONE


@dataclass(frozen=True)
class Said:
    """:func:`describe`'s answer: one line, and the exit code (0, 130 interrupted, 1)."""

    line: str
    code: int

    @property
    def failed(self) -> bool:
        """An error (exit code 1): the CLI says it as one (``Error: ...``)."""
        return self.code not in (0, EXIT_INTERRUPTED)


def describe(stop: Stop) -> Said:
    """The one line for how a run ended, and its exit code."""
    reason = stop.reason
    interrupted = reason is Reason.INTERRUPTED
    if stop.rescue:
        return Said(
            f"{stop.interrupted_as}; {stop.rescue}" if interrupted else stop.rescue,
            EXIT_INTERRUPTED if interrupted else 1,
        )
    if reason is Reason.DONE:
        return Said(stop.where, 0)
    if interrupted:
        return Said(f"{stop.interrupted_as}; {stop.where}", reason.code)
    if reason is Reason.DIVERGED:
        why = ", ".join(p for p in (stop.at, stop.fault) if p)
        return Said(
            f"the loss became NaN or infinite{f' ({why})' if why else ''}; {stop.where}{stop.advice}", reason.code
        )
    return Said(f"{stop.fault or reason.value}; {stop.where}", reason.code)


def kept_as(stopped, what: str = "picture") -> str:
    """What a stopped run keeps, in words: "the last good image" where it diverged, else "the best
    image so far" (``what``: image, dream, picture...)."""
    return f"the last good {what}" if Reason.of(stopped) is Reason.DIVERGED else f"the best {what} so far"


class Catch:
    """``with Catch() as caught:`` -- Ctrl-C (or SIGTERM made one) inside the block ends it, and
    ``caught.reason`` says so: how a loop over frames, images or cells stops between its items, kept
    in one place."""

    reason: Reason | None = None

    def __enter__(self) -> Catch:
        return self

    def __exit__(self, kind, exc, tb) -> bool:
        if kind is not None and issubclass(kind, KeyboardInterrupt):
            self.reason = Reason.INTERRUPTED
            return True
        return False
