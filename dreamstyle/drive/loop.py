"""The one loop: every item of a source through the runner, what was made into a sink."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace
from typing import Callable

from .. import runner
from ..errors import OptionError
from ..stop import Reason, Stop
from ..writers import signals_deferred


@dataclass
class Driven:
    """What :func:`drive` returns: the runner's result (the last item's) and how the run ended."""

    result: runner.Result
    stop: Stop


def drive(
    job,
    source,
    sink,
    executor=None,
    on_step: Callable | None = None,
    during: contextlib.AbstractContextManager | None = None,
) -> Driven:
    """``job`` over ``source``'s items into ``sink``. ``on_step`` sees every engine step;
    ``during`` wraps the work and not the writing (a progress display, SIGTERM taken as Ctrl-C).
    The outputs are written with Ctrl-C and SIGTERM held back: one that came meanwhile makes the run
    interrupted, its outputs whole. A stop is returned, not raised (nothing made before the first
    step still raises :class:`~dreamstyle.errors.Interrupted` and the like, as :func:`runner.run` does)."""
    if executor is not None and getattr(executor, "name", "local") != "local":
        raise OptionError(f"a single picture runs in this process, not on --executor {executor.name}")
    result = None
    with during if during is not None else contextlib.nullcontext():
        for item in source.items(job):
            result = runner.run(job, item, on_step, sink.snapshot_every)
    with signals_deferred() as received:
        stop = sink.close(result)
    return Driven(result, replace(stop, reason=Reason.INTERRUPTED) if received else stop)
