"""The ``dreamstyle`` command line. A thin layer over the library: options generated from the
settings, progress drawn with rich, and every :class:`~dreamstyle.errors.UserError` one line.

The commands are imported when :func:`run` starts (or ``dreamstyle.cli.main`` is first asked for), so
that Ctrl-C while they import is handled like any other: exit 130 and one line."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time


def run():  # console-script entry point
    """The command line, with Ctrl-C handled the same way from the first import to the last exit
    hook: the first Ctrl-C stops the work (exit 130, one line; the best picture so far is written);
    those that follow while dreamstyle finishes and exits are ignored, so that nothing is left half
    written and no library's exit hook prints a traceback (SIGTERM and kill still end it)."""
    signal.signal(signal.SIGINT, _first_interrupt)
    try:
        _commands()(prog_name="dreamstyle")
    except KeyboardInterrupt:  # while the commands were imported
        sys.stderr.write("dreamstyle: interrupted; nothing was written\n")
        sys.exit(130)
    finally:  # the exit hooks (torch's, Ray's) run after this: a Ctrl-C there would print a traceback from them
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # (Python's finalization keeps SIG_IGN, not a Python handler)


def _first_interrupt(signum, frame):
    if _importing_torch():  # raised inside torch's C++ import, KeyboardInterrupt aborts the process (core dump)
        threading.Thread(target=_interrupt_after_torch, daemon=True).start()
        return
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the next ones, while the work stops and its outputs are written
    raise KeyboardInterrupt


def _importing_torch() -> bool:
    return any(
        getattr(getattr(sys.modules.get(name), "__spec__", None), "_initializing", False)
        for name in ("torch", "torchvision")
    )


def _interrupt_after_torch():
    while _importing_torch():
        time.sleep(0.02)
    os.kill(os.getpid(), signal.SIGINT)


def _commands():
    from . import commands, research_cmd, score_cmd, serve_cmd, sweep_cmd, train_cmd, visualize_cmd  # noqa: F401
    from .group import main

    return main


def __getattr__(name):  # ``from dreamstyle.cli import main``: the group, with every command added
    if name == "main":
        return _commands()
    raise AttributeError(f"module 'dreamstyle.cli' has no attribute {name!r}")


__all__ = ["main", "run"]
