"""Options and plumbing shared by the commands that run the engine: progress, outputs, faults."""

from __future__ import annotations

import contextlib
import functools
import json
import signal
import sys
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
    if value is not None and not value > 0:
        raise click.BadParameter(f"must be more than zero, not {value}")
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
                         show_default=True, help="Feature precision: auto = bf16 autocast on CUDA, fp32 on CPU."),
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


def check_outputs(output: Path, overwrite: bool, log_json: Path | None = None, gif: Path | None = None):
    from ..images import check_output

    check_output(output, overwrite, (".png",))
    if log_json is not None:
        check_output(log_json, overwrite, (".json",))
    if gif is not None:
        check_output(gif, overwrite, (".gif", ".webp"))


def snapshot_interval(save_every: int, gif, iterations: int) -> int:
    if save_every:
        return save_every
    if gif is not None:
        return max(1, iterations // 30)
    return 0


class Progress:
    """Draws engine events with rich: a bar, per-term losses, iterations/s and GPU memory."""

    def __init__(self, iterations_total: int, quiet: bool = False, title: str = "optimizing"):
        self.quiet = quiet
        self.done = 0
        self.last_losses = ""
        self.progress = None
        if not quiet:
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn,
                                       TimeElapsedColumn, TimeRemainingColumn)

            self.progress = RichProgress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                TextColumn("{task.fields[losses]}"), console=_stderr_console(), transient=False)
            self.task = self.progress.add_task(title, total=iterations_total, rate="", losses="")
        self._t0 = None

    def __enter__(self):  # the bar appears with the first step, so an error before it stays one line
        self._started = False
        return self

    def __exit__(self, *exc):
        if self.progress is not None and self._started:
            self.progress.stop()

    def __call__(self, event) -> None:
        self.done += 1
        if self.progress is None:
            return
        if not self._started:
            self._started = True
            self.progress.start()
        fields = {}
        if event.iteration > 1 and event.elapsed > 0:
            fields["rate"] = f"{(event.iteration - 1) / event.elapsed:.1f} it/s"
        if event.losses is not None:
            parts = [f"{k} {v:.4g}" for k, v in event.losses.items()]
            if event.memory is not None:
                parts.append(f"GPU {event.memory / 2**30:.2f} GiB")
            fields["losses"] = "  ".join(parts)
        desc = event.label or (f"scale {event.stage}/{event.stages} {event.size[0]}x{event.size[1]}"
                               if event.stages > 1 else f"{event.size[0]}x{event.size[1]}")
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


def finish(result, output: Path, log_json: Path | None, gif: Path | None, quiet: bool, what: str = "image"):
    """Write the outputs of a run atomically; report interruptions and divergence as one line."""
    from ..images import save_gif, save_png

    try:
        save_png(result.image, output, result.recipe)
        if log_json is not None:
            from ..images import _atomic

            _atomic(log_json, lambda fh: fh.write(json.dumps(result.history, indent=1).encode()))
        if gif is not None and result.frames:
            save_gif(result.frames, gif, duration_ms=80)
    except OSError as exc:
        raise OutputError(f"cannot write {output}: {exc.strerror or exc}") from None
    last = result.history[-1]["iteration"] if result.history else 0
    if result.stopped == "interrupted":
        click.echo(f"dreamstyle: interrupted; the best {what} so far is in {output}", err=True)
        sys.exit(130)
    if result.stopped == "diverged":
        raise click.ClickException(
            f"the loss became NaN or infinite (after iteration {last}); the last good {what} is in {output}. "
            "Lower --lr, or the loss weights, or try --optimizer lbfgs")
    if not quiet:
        click.echo(f"wrote {output}", err=True)
