"""Typed errors. Library code raises these; the CLI turns a ``UserError`` into one line."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class DreamstyleError(Exception):
    """Base class of every error dreamstyle raises on purpose."""


class UserError(DreamstyleError):
    """Something the user can fix: bad input, a bad option, a missing file."""


class UnknownNameError(UserError, KeyError):
    """A backbone, layer or loss-term name that is not registered."""

    def __init__(self, kind: str, name: str, choices: Iterable[str], hint: str = ""):
        self.kind, self.name = kind, name
        self.choices = list(choices)
        close = difflib.get_close_matches(name, self.choices, n=3, cutoff=0.5)
        msg = f"unknown {kind} {name!r}"
        if close:
            msg += "; did you mean " + " or ".join(repr(c) for c in close) + "?"
        if hint:
            msg += f" ({hint})"
        super().__init__(msg)

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class PluginError(DreamstyleError):
    """A plugin failed to load or registered something it may not."""


class DuplicateNameError(PluginError):
    """Two plugins registered the same name."""


class BackboneError(UserError):
    """A backbone that does not match its own description (its layer map names a module the network
    lacks, or declares other channels or strides than the network has): the plugin's mistake, named."""


class WeightsError(UserError):
    """Weights are missing, unreadable, or for another architecture."""


class ImageError(UserError):
    """An input image is missing, unreadable, too small or too large."""


class OutputError(UserError):
    """An output path cannot be written."""


class OptionError(UserError):
    """An option value that makes no sense."""


class RecipeError(UserError):
    """A recipe that is damaged: dreamstyle's field is there, but what it holds cannot be read."""


class Interrupted(UserError):
    """Ctrl-C (or SIGTERM) came before anything worth keeping was made."""


class TermFailed(UserError):
    """A loss term raised, exited or returned what is not one number during a run: the run stops there
    and keeps its best picture, and the line names the term and its plugin."""


class ClusterLost(UserError):
    """The cluster the work ran on stopped answering (its head, or this machine's node, died): the
    work stops there; what finished is kept."""


class DivergedError(DreamstyleError):
    """The optimization produced NaN or inf."""


def items(value: str, flag: str, sep: str = ",") -> list[str]:
    """``value`` split at ``sep``, each item stripped. An empty value, or an empty item (``a,,b``, a
    comma at an end), is one OptionError: what the user typed is read whole, or not at all."""
    parts = [p.strip() for p in str(value).split(sep)]
    if not all(parts):
        raise OptionError(
            f"{flag} is empty"
            if len(parts) == 1
            else f"{flag} {value!r} has an empty item (between two {sep!r} or at an end)"
        )
    return parts


def error_text(exc: BaseException) -> str:
    """One line for a failed cell or judged picture: a user error's own words, else the exception's
    type and the first line of its message."""
    if isinstance(exc, UserError):
        return str(exc)
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".strip()
