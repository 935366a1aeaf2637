"""Options and plumbing shared by the commands that run the engine: progress, outputs, faults."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import tempfile
from pathlib import Path

import click

from ..errors import OutputError


def positive_int(ctx, param, value):
    if value is not None and value < 1:
        raise click.BadParameter(f"must be at least 1, not {value}")
    return value


def non_negative(ctx, param, value):
    if value is not None and value < 0:
        raise click.BadParameter(f"must be zero or more, not {value}")
    return value


def positive_float(ctx, param, value):
    if value is not None and not 0 < value < float("inf"):
        raise click.BadParameter(f"must be more than zero (and finite), not {value}")
    return value


def engine_options(default_iterations: int, default_size: int = 512):
    """The options every engine-driven command has."""

    def decorate(func):
        options = [
            click.option("-o", "--output", "output", required=True, type=click.Path(path_type=Path),
                         help="Output PNG."),
            click.option("--backbone", default="vgg19", show_default=True,
                         help="Backbone name (see: dreamstyle backbones)."),
            click.option("--weights", default=None,
                         help="'random', a state-dict FILE, or omit for the backbone's pretrained weights."),
            click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N."),
            click.option("--seed", type=int, default=None, help="Random seed (recorded in the output)."),
            click.option("--size", type=int, default=default_size, show_default=True, callback=positive_int,
                         help="Long side of the output, px."),
            click.option("--iterations", type=int, default=default_iterations, show_default=True,
                         callback=positive_int, help="Optimizer steps (per scale or octave)."),
            click.option("--lr", type=float, default=None, callback=positive_float,
                         help="Learning rate / step size (default depends on the optimizer)."),
            click.option("--precision", type=click.Choice(["auto", "fp32", "bf16", "fp16"]), default="auto",
                         show_default=True, help="Feature precision: auto = bf16 autocast on CUDA and on CPUs with native bf16, else fp32."),
            click.option("--log-json", type=click.Path(path_type=Path), default=None,
                         help="Write the loss history as a JSON list."),
            click.option("--log-every", type=int, default=1, show_default=True, callback=positive_int,
                         help="Log (and show) losses every N iterations."),
            click.option("--save-every", type=int, default=0, callback=non_negative,
                         help="Also write an intermediate PNG every N iterations."),
            click.option("--gif", type=click.Path(path_type=Path), default=None,
                         help="Write an animation of the optimization (GIF or WebP)."),
            click.option("--max-pixels", type=int, default=None, callback=positive_int,
                         help="Refuse input images with more pixels than this (default 64M)."),
            click.option("--overwrite", is_flag=True, help="Replace an existing output file."),
            click.option("-q", "--quiet", is_flag=True, help="No progress display."),
        ]
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


def check_outputs(output: Path, overwrite: bool, log_json: Path | None = None, gif: Path | None = None,
                  intermediates=()):
    from ..images import check_output

    check_output(output, overwrite, (".png",))
    if log_json is not None:
        check_output(log_json, overwrite, (".json",))
    if gif is not None:
        check_output(gif, overwrite, (".gif", ".webp"))
    for path in intermediates:
        if path.exists() and not overwrite:
            raise OutputError(f"{path} exists (a --save-every snapshot); pass --overwrite to replace it")


def intermediate_paths(output: Path, stages: int, iterations: int, save_every: int) -> list[Path]:
    """Every file ``--save-every`` will write."""
    if not save_every:
        return []
    return [intermediate_path(output, stage, stages, i) for stage in range(1, stages + 1)
            for i in range(save_every, iterations + 1, save_every)]


class Intermediates:
    """Writes the ``--save-every`` snapshots; one that cannot be written costs one warning line, not the run."""

    def __init__(self, output: Path, save_every: int):
        self.output, self.save_every, self.warned = output, save_every, False

    def __call__(self, event) -> None:
        if not self.save_every or event.snapshot is None or event.iteration % self.save_every:
            return
        from ..images import save_png, to_pil

        path = intermediate_path(self.output, event.stage, event.stages, event.iteration)
        try:
            save_png(to_pil(event.snapshot), path)
        except OSError as exc:
            if not self.warned:
                self.warned = True
                click.echo(f"dreamstyle: warning: cannot write {path}: {exc.strerror or exc}; the run goes on",
                           err=True)


def snapshot_interval(save_every: int, gif, iterations: int) -> int:
    if save_every:
        return save_every
    if gif is not None:
        return max(1, iterations // 30)
    return 0


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def format_losses(losses: dict) -> str:
    return "  ".join(f"{k} {v:.4g}" for k, v in losses.items())


class PlainLines:
    """Progress where stderr is no terminal (a log file, a pipe, nohup, CI): one plain line per
    logged step (every ``--log-every``), with the stage, the iteration, the losses, the time spent
    and the time left, as neural-style's ``-print_iter`` does."""

    def __init__(self, console, total: int):
        self.console, self.total, self.done = console, total, 0
        self.start = None  # the clock starts with the first step: loading is not in the estimate

    def elapsed(self) -> float:
        import time

        now = time.perf_counter()
        if self.start is None:
            self.start = now
        return now - self.start

    def line(self, where: str, event, extra: str = "") -> None:
        elapsed = self.elapsed()
        parts = [where, f"it {event.iteration}/{event.iterations}"]
        if event.losses is not None:
            parts.append(format_losses({"total": event.total, **event.losses}))
        parts.append(f"elapsed {_duration(elapsed)}")
        if 0 < self.done < self.total:
            parts.append(f"eta {_duration(elapsed / self.done * (self.total - self.done))}")
        if extra:
            parts.append(extra)
        self.console.print("  ".join(parts), highlight=False, soft_wrap=True)


class Progress:
    """Draws engine events with rich: a bar, per-term losses, iterations/s and GPU memory; where
    stderr is no terminal, a plain line per logged step instead (:class:`PlainLines`)."""

    def __init__(self, iterations_total: int, quiet: bool = False, title: str = "optimizing"):
        self.quiet = quiet
        self.done = 0
        self.total = iterations_total
        self.progress = self.plain = None
        if not quiet:
            console = _stderr_console()
            if not console.is_terminal:
                self.plain = PlainLines(console, iterations_total)
            else:
                from rich.progress import (BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn,
                                           TimeElapsedColumn, TimeRemainingColumn)

                self.progress = RichProgress(
                    TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                    TextColumn("{task.fields[losses]}"), console=console, transient=False)
                self.task = self.progress.add_task(title, total=iterations_total, rate="", losses="")
        self._started = False

    def __enter__(self):  # the bar appears with the first step, so an error before it stays one line
        return self

    def __exit__(self, *exc):
        if self.progress is not None and self._started:
            self.progress.stop()

    def set_total(self, total: int) -> None:
        self.total = total
        if self.plain is not None:
            self.plain.total = total
        if self.progress is not None:
            self.progress.update(self.task, total=total)

    def note(self, text: str) -> None:
        """A line above the bar (or among the plain lines)."""
        if self.progress is not None:
            self.progress.console.print(text)
        elif self.plain is not None:
            self.plain.console.print(text, highlight=False, soft_wrap=True)

    def __call__(self, event) -> None:
        self.done += 1
        desc = event.label or (f"scale {event.stage}/{event.stages} {event.size[0]}x{event.size[1]}"
                               if event.stages > 1 else f"{event.size[0]}x{event.size[1]}")
        if self.plain is not None:
            self.plain.done = self.done
            self.plain.elapsed()  # starts the clock on the first step
            if event.losses is not None:
                extra = f"GPU {event.memory / 2**30:.2f} GiB" if event.memory is not None else ""
                self.plain.line(desc, event, extra)
            return
        if self.progress is None:
            return
        if not self._started:
            self._started = True
            self.progress.start()
        fields = {}
        if event.iteration > 1 and event.elapsed > 0:
            fields["rate"] = f"{(event.iteration - 1) / event.elapsed:.1f} it/s"
        if event.losses is not None:
            parts = [format_losses(event.losses)]
            if event.memory is not None:
                parts.append(f"GPU {event.memory / 2**30:.2f} GiB")
            fields["losses"] = "  ".join(parts)
        self.progress.update(self.task, completed=self.done, description=desc, **fields)


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)


def intermediate_path(output: Path, stage: int, stages: int, iteration: int) -> Path:
    tag = f"_s{stage}" if stages > 1 else ""
    return output.with_name(f"{output.stem}{tag}_{iteration:05d}{output.suffix}")


@contextlib.contextmanager
def sigterm_as_interrupt():
    """SIGTERM stops a run the way Ctrl-C does, so the best image so far is still written."""
    def handler(signum, frame):
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def signals_deferred():
    """Ctrl-C and SIGTERM wait until the block is done (writing outputs); yields the signals received."""
    received: list[int] = []
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[sig] = signal.signal(sig, lambda signum, frame: received.append(signum))
        except ValueError:  # not the main thread
            pass
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


def _rescue(result, output: Path, exc: OSError, what: str) -> str:
    """The output could not be written: save the image in the temporary folder; say where."""
    from ..images import save_png

    reason = f"cannot write {output}: {exc.strerror or exc}"
    try:
        fd, tmp = tempfile.mkstemp(prefix=f"{Path(output).stem}-", suffix=".png")
        os.close(fd)
    except OSError:
        return f"{reason}; the {what} could not be saved anywhere else either"
    try:
        save_png(result.image, tmp, result.recipe)
    except OSError:
        os.unlink(tmp)
        return f"{reason}; the {what} could not be saved anywhere else either"
    return f"{reason}; the {what} was saved to {tmp} instead"


def finish(result, output: Path, log_json: Path | None, gif: Path | None, quiet: bool, what: str = "image"):
    """Write the outputs of a run atomically; report interruptions, divergence and running out of
    memory as one line. A signal while writing waits until the files are whole; an output that
    cannot be written (disk full, folder gone) is saved in the temporary folder instead."""
    from ..images import _atomic, save_gif, save_png

    with signals_deferred() as received:
        try:
            save_png(result.image, output, result.recipe)
        except OSError as exc:
            raise OutputError(_rescue(result, output, exc, what)) from None
        extra = None
        try:
            if log_json is not None:
                extra = log_json
                _atomic(log_json, lambda fh: fh.write(json.dumps(result.history, indent=1).encode()))
            if gif is not None and result.frames:
                extra = gif
                save_gif(result.frames, gif, duration_ms=80)
        except OSError as exc:
            raise OutputError(f"cannot write {extra}: {exc.strerror or exc}; the {what} is in {output}") from None
    last = result.history[-1]["iteration"] if result.history else 0
    if result.stopped == "interrupted" or received:
        click.echo(f"dreamstyle: interrupted; the best {what} so far is in {output}", err=True)
        sys.exit(130)
    if result.stopped == "diverged":
        optimizer = (getattr(result, "recipe", None) or {}).get("optimizer")
        other = {"lbfgs": ", or try --optimizer adam", "adam": ", or try --optimizer lbfgs"}.get(optimizer, "")
        raise click.ClickException(
            f"the loss became NaN or infinite (by iteration {last}); the last good {what} is in {output}. "
            f"Lower --lr or the loss weights{other}")
    if result.stopped == "out of memory":
        fault = getattr(result, "fault", "") or "out of memory"
        raise click.ClickException(f"{fault}; the best {what} so far is in {output}")
    if not quiet:
        click.echo(f"wrote {output}", err=True)
