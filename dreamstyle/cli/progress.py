"""Progress on stderr: a rich bar in a terminal, plain lines elsewhere (a log file, a pipe, CI)."""

from __future__ import annotations

def duration(seconds: float) -> str:
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
        parts.append(f"elapsed {duration(elapsed)}")
        if 0 < self.done < self.total:
            parts.append(f"eta {duration(elapsed / self.done * (self.total - self.done))}")
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
            console = stderr_console()
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


def stderr_console():
    from rich.console import Console

    return Console(stderr=True)



class FrameProgress:
    """One bar over the frames (or images): the frame being optimized, its iteration, its losses;
    where stderr is no terminal, plain lines (each logged step, and each frame done)."""

    def __init__(self, total: int, quiet: bool, title: str = "frames", done: int = 0):
        self.progress = self.plain = None
        self.total, self.done, self.before = total, done, done  # ``done``: frames done before (a resumed run)
        self.unit = title if title in ("images", "cells") else "frames"
        self.per_worker: dict[int, int] = {}  # items each worker made (an executor with several)
        if not quiet:
            console = stderr_console()
            if not console.is_terminal:
                self.plain = PlainLines(console, total)
                return
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                       TimeRemainingColumn)

            self.progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                TimeRemainingColumn(), TextColumn("{task.fields[rate]}"), TextColumn("{task.fields[step]}"),
                TextColumn("{task.fields[losses]}"), console=console, transient=False)
            self.task = self.progress.add_task(title, total=total, completed=done, step="", losses="", rate="")
            self.started = None

    def __enter__(self):
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc):
        if self.progress is not None:
            self.progress.stop()

    def start_clock(self) -> None:
        """Rates count from now (items made elsewhere send no steps to start the clock)."""
        import time

        if self.plain is not None:
            self.plain.elapsed()
        elif self.progress is not None:
            self.started = time.monotonic()

    def step(self, event) -> None:
        if self.plain is not None:
            self.plain.elapsed()  # starts the clock on the first step
            if event.losses is not None:
                self.plain.line(event.label or "frames", event)
            return
        if self.progress is None:
            return
        fields = {"step": f"it {event.iteration}/{event.iterations}"}
        if event.losses is not None:
            fields["losses"] = format_losses({"total": event.total, **event.losses})
        self.progress.update(self.task, description=event.label or "frames", **fields)

    def rate(self, elapsed: float) -> str:
        made = self.done - self.before
        if not made or elapsed <= 0:
            return ""
        per_second = made / elapsed
        rate = f"{per_second:.2f} {self.unit}/s" if per_second >= 0.1 else f"{elapsed / made:.1f} s/{self.unit[:-1]}"
        if len(self.per_worker) > 1:
            rate += " · per worker " + " ".join(f"{n}" for _, n in sorted(self.per_worker.items()))
        return rate

    def frame(self, done) -> None:
        self.done += 1
        worker = getattr(done, "worker", 0)
        self.per_worker[worker] = self.per_worker.get(worker, 0) + 1
        self.total = max(self.total, self.done)
        if self.plain is not None:
            made = self.done - self.before
            self.plain.done, self.plain.total = made, self.total - self.before
            elapsed = self.plain.elapsed()
            eta = (f"  eta {duration(elapsed / made * (self.total - self.done))}"
                   if self.done < self.total and made else "")
            self.plain.console.print(f"{done.name or 'frame'} done ({self.done}/{self.total})  "
                                     f"{format_losses(done.losses)}  {self.rate(elapsed)}  elapsed {duration(elapsed)}{eta}",
                                     highlight=False, soft_wrap=True)
        elif self.progress is not None:
            import time

            if self.started is None:
                self.started = self.progress.tasks[0].start_time or time.monotonic()
            self.progress.update(self.task, advance=1, total=self.total, losses=format_losses(done.losses),
                                 rate=self.rate(time.monotonic() - self.started))


