"""The ``dreamstyle`` command line. A thin layer over the library: options generated from the
settings, progress drawn with rich, and every :class:`~dreamstyle.errors.UserError` one line."""

from __future__ import annotations

from . import commands, research_cmd, serve_cmd, sweep_cmd, visualize_cmd  # noqa: F401  (they add their commands to the group)
from .group import main


def run():  # console-script entry point
    main(prog_name="dreamstyle")


__all__ = ["main", "run"]
