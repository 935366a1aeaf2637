"""The one loop: every item of a source through the runner, what was made into a sink."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace
from typing import Callable

from .. import runner
from ..errors import ClusterLost, OptionError
from ..stop import Catch, Reason, Stop
from ..writers import signals_deferred
from .sources import Ended


@dataclass
class Driven:
    """What :func:`drive` returns: the runner's result (a still's; a folder's, every picture made)
    and how the run ended."""

    result: object
    stop: Stop


def drive(
    job,
    source,
    sink,
    executor=None,
    on_step: Callable | None = None,
    during: contextlib.AbstractContextManager | None = None,
) -> Driven:
    """``job`` over ``source``'s items into ``sink``. ``on_step`` sees every engine step (made in this
    process); ``during`` wraps the work and not the writing (a progress display, SIGTERM taken as
    Ctrl-C). ``executor`` (``dreamstyle.executors``) runs the work of a source that allows it (a
    folder; default: the settings' ``--executor``); a still runs here.

    A still's item runs through :func:`runner.run`; a source that runs its own items (``runs``) has
    each picture put into the sink as it comes (:func:`_each`). The outputs are written with Ctrl-C
    and SIGTERM held back: one that came meanwhile makes the run interrupted, its outputs whole. A
    stop is returned, not raised (nothing made before the first step of a still still raises
    :class:`~dreamstyle.errors.Interrupted` and the like, as :func:`runner.run` does)."""
    remote = executor is not None and getattr(executor, "name", "local") != "local"
    if remote and not getattr(source, "remote", False):
        raise OptionError(f"a single picture runs in this process, not on --executor {executor.name}")
    result = None
    with during if during is not None else contextlib.nullcontext():
        if hasattr(source, "runs"):
            result = _each(job, source, sink, executor, on_step)
        else:
            for item in source.items(job):
                result = runner.run(job, item, on_step, getattr(sink, "snapshot_every", 0))
    with signals_deferred() as received:
        stop = sink.close(result)
    return Driven(result, replace(stop, reason=Reason.INTERRUPTED) if received else stop)


def _each(job, source, sink, executor, on_step):
    """A source of many items (a folder): each picture into ``sink.put`` as it comes, and the stop
    policy between them. A task that stopped for a reason other than diverging ends the run (one that
    diverged keeps its picture, and the others go on); Ctrl-C (or SIGTERM made one), while working or
    while a picture is written, ends it with what was made kept; a cluster that stopped answering
    fails it, what finished kept. The source's result."""
    stopped, fault = None, ""
    running = source.runs(job, executor, on_step)
    caught = Catch()
    try:
        with caught:
            for made in running:
                if not isinstance(made, Ended):
                    sink.put(made)
                    continue
                stopped, fault = made.stop, made.fault
                if stopped is not None and stopped is not Reason.DIVERGED:
                    break
    except ClusterLost as exc:
        stopped, fault = Reason.FAILED, str(exc)
    finally:
        running.close()  # the source's executor stops now
    return source.result(caught.reason or stopped, fault)
