"""Progress on stderr: a rich bar in a terminal, plain lines elsewhere (a log file, a pipe, CI).

One estimate of the time left covers the whole run (every scale, octave, frame, image or cell), from
the share of its work done since the first step (the loading before it is not in the estimate); none
is shown until a few steps have been timed. Off a terminal, the default prints the first and last
step of each stage and about every tenth in between; ``--log-every N`` prints every Nth instead."""

from __future__ import annotations

import time

clock = time.perf_counter  # tests replace it

MIN_TIMED = 3  # steps timed (after the first) before a still's estimate is shown
LONG_RUN = 60.0  # seconds: a run predicted to take longer than this says so, once
# A step's time grows a little slower than its pixels (a small picture has its fixed costs): measured on a
# CPU (vgg19, L-BFGS), a quarter of the pixels took 0.31 of the time from 512 px to 256 and 0.35 from 256
# to 128; pixels ** 0.8 gives 0.33. Stages are weighed so, and a smaller --size's time is estimated so.
STEP_COST = 0.8
PLAIN_LINES = 10  # off a terminal, by default: about this many lines per stage (plus its first and last)


def duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def about(seconds: float) -> str:
    """A rough duration, for an estimate: "about 6 min", "about 40 s", "about 2 h 10 min"."""
    if seconds < 60:
        return f"about {max(1, int(round(seconds / 5.0)) * 5 if seconds >= 10 else int(round(seconds)))} s"
    if seconds < 600:  # to the half minute
        minutes, half = divmod(int(round(seconds / 30)), 2)
        return f"about {minutes} min" + (" 30 s" if half else "")
    if seconds < 3600:
        return f"about {int(round(seconds / 60))} min"
    hours, minutes = divmod(int(round(seconds / 60)), 60)
    return f"about {hours} h {minutes:02d} min"


def format_losses(losses: dict) -> str:
    return "  ".join(f"{k} {v:.4g}" for k, v in losses.items())


def shown_off_terminal(event, every_given: bool) -> bool:
    """Whether a plain line is printed for this step: every logged step with ``--log-every``; by
    default, a stage's first and last step and about every tenth in between."""
    if event.losses is None:
        return False
    if every_given:
        return True
    n = event.iterations
    return event.iteration in (1, n) or event.iteration % max(1, n // PLAIN_LINES) == 0


class Estimate:
    """The time a whole run takes and has left, from the share of its work done (a fraction, 0 to 1)
    since the clock started (the first step: loading is not in it). None until ``least`` updates."""

    def __init__(self, least: int = MIN_TIMED):
        self.least = least
        self.start = self.now = None
        self.base = self.fraction = 0.0
        self.updates = 0

    def begin(self, fraction: float = 0.0) -> None:
        """Start the clock (once) with ``fraction`` of the work done."""
        if self.start is None:
            self.start = self.now = clock()
            self.base = self.fraction = fraction

    def update(self, fraction: float) -> None:
        if self.start is None:  # the first step: its time includes what came before; the clock starts
            self.begin(fraction)
            return
        self.now, self.fraction = clock(), fraction
        self.updates += 1

    def elapsed(self) -> float:
        return 0.0 if self.start is None else clock() - self.start

    def whole(self) -> float | None:
        """Seconds the run takes from the first step to the last, as estimated now."""
        if self.updates < self.least or self.fraction <= self.base:
            return None
        return (self.now - self.start) / (self.fraction - self.base) * (1.0 - self.base)

    def left(self) -> float | None:
        if self.updates < self.least or self.fraction <= self.base:
            return None
        rate = (self.now - self.start) / (self.fraction - self.base)
        return max(0.0, rate * (1.0 - self.fraction) - (clock() - self.now))

    def eta(self) -> str:
        left = self.left()
        return "" if left is None or self.fraction >= 1.0 else f"eta {duration(left)}"


def long_run(estimate: Estimate, budget: dict, source: str) -> str:
    """The line of a run predicted (from ``source``: "its first steps") to take over a minute, with
    what a smaller size would take where ``budget`` has one; "" for a shorter run."""
    whole = estimate.whole()
    if whole is None or whole <= LONG_RUN:
        return ""
    line = f"dreamstyle: this run takes {about(whole)} on this {budget['device']} (estimated from {source})"
    if budget.get("flag"):
        line += f"; {budget['flag']} would take {about(whole * budget['ratio'])}"
    return line


class PlainLines:
    """Progress where stderr is no terminal (a log file, a pipe, nohup, CI): plain lines, with the
    stage, the iteration, the losses, the time spent and the whole run's time left."""

    def __init__(self, console, estimate: Estimate, every_given: bool = False):
        self.console, self.estimate, self.every_given = console, estimate, every_given

    def line(self, where: str, event, extra: str = "") -> None:
        parts = [where, f"it {event.iteration}/{event.iterations}"]
        if event.losses is not None:
            parts.append(format_losses({"total": event.total, **event.losses}))
        parts.append(f"elapsed {duration(self.estimate.elapsed())}")
        eta = self.estimate.eta()
        if eta:
            parts.append(eta)
        if extra:
            parts.append(extra)
        self.print("  ".join(parts))

    def print(self, text: str) -> None:
        self.console.print(text, highlight=False, soft_wrap=True)


class Progress:
    """Draws engine events with rich: a bar, per-term losses, iterations/s, GPU memory and the whole
    run's time left; where stderr is no terminal, plain lines instead (:class:`PlainLines`).

    ``stages``: ``[(iterations, (width, height))]`` of the run, so each step weighs its pixels in the
    estimate (a finer scale's steps take longer: :data:`STEP_COST`); without them every step weighs the same.
    ``every_given``: ``--log-every`` was given (off a terminal, every logged step is printed).
    ``budget``: where a run is predicted to take over a minute, say so once, after a few steps:
    ``{"device": "CPU", "flag": "--size 256", "ratio": 0.25}`` (a smaller size to suggest, if any,
    and its share of the pixels: the time it takes, near enough)."""

    def __init__(
        self,
        iterations_total: int,
        quiet: bool = False,
        title: str = "optimizing",
        *,
        stages=None,
        every_given: bool = False,
        budget: dict | None = None,
        begin=None,
    ):
        self.quiet = quiet
        self.begin = begin  # called once, before the first step is drawn (the seed, hints: once the checks are done)
        self.done = 0
        self.total = iterations_total
        self.progress = self.plain = None
        self.estimate = Estimate()
        self.budget, self.told = budget, False
        self.work = 0.0
        self.set_stages(stages)
        if not quiet:
            console = stderr_console()
            if not console.is_terminal:
                self.plain = PlainLines(console, self.estimate, every_given)
            else:
                from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
                from rich.progress import Progress as RichProgress

                self.progress = RichProgress(
                    TextColumn("[bold]{task.description}"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TextColumn("{task.fields[rate]}"),
                    TimeElapsedColumn(),
                    TextColumn("{task.fields[eta]}"),
                    TextColumn("{task.fields[losses]}"),
                    console=console,
                    transient=False,
                )
                self.task = self.progress.add_task(title, total=iterations_total, rate="", losses="", eta="")
        self._started = False

    def __enter__(self):  # the bar appears with the first step, so an error before it stays one line
        return self

    def __exit__(self, *exc):
        if self.progress is not None and self._started:
            self.progress.stop()

    def set_stages(self, stages) -> None:
        self.work_total = float(sum(n * (w * h) ** STEP_COST for n, (w, h) in stages)) if stages else 0.0

    def set_total(self, total: int, stages=None) -> None:
        self.total = total
        if stages is not None:
            self.set_stages(stages)
        if self.progress is not None:
            self.progress.update(self.task, total=total)

    def fraction(self, event) -> float:
        """The share of the run done with this step."""
        if self.work_total:
            self.work += (event.size[0] * event.size[1]) ** STEP_COST
            return min(1.0, self.work / self.work_total)
        return min(1.0, self.done / self.total) if self.total else 1.0

    def note(self, text: str) -> None:
        """A line above the bar (or among the plain lines)."""
        if self.progress is not None:
            self.progress.console.print(text, highlight=False)
        elif self.plain is not None:
            self.plain.print(text)

    def tell_budget(self) -> None:
        """Once, where the run is predicted to take over a minute: how long, and a smaller --size's."""
        if self.told or self.budget is None or self.estimate.updates < MIN_TIMED + 2:
            return
        self.told = True
        line = long_run(self.estimate, self.budget, "its first steps")
        if line:
            self.note(line)

    def __call__(self, event) -> None:
        if self.begin is not None:
            begin, self.begin = self.begin, None
            begin()
        self.done += 1
        self.estimate.update(self.fraction(event))
        if self.quiet:
            return
        self.tell_budget()
        desc = event.label or (
            f"scale {event.stage}/{event.stages} {event.size[0]}x{event.size[1]}"
            if event.stages > 1
            else f"{event.size[0]}x{event.size[1]}"
        )
        if self.plain is not None:
            if shown_off_terminal(event, self.plain.every_given):
                extra = f"GPU {event.memory / 2**30:.2f} GiB" if event.memory is not None else ""
                self.plain.line(desc, event, extra)
            return
        if not self._started:
            self._started = True
            self.progress.start()
        fields = {"eta": self.estimate.eta()}
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
    """One bar over the frames (or images, or cells): the one being optimized, its iteration, its
    losses, the time each takes and the whole run's time left (from the items done since the first
    step); where stderr is no terminal, plain lines (the logged steps as :class:`Progress` chooses
    them, and each item done). An item that is skipped (it cannot be read or made) is counted as such."""

    def __init__(
        self,
        total: int,
        quiet: bool,
        title: str = "frames",
        done: int = 0,
        *,
        every_given: bool = False,
        budget: dict | None = None,
    ):
        self.progress = self.plain = None
        self.budget = budget  # as Progress's: said once, after the first item (items alike: a folder's images)
        self.total, self.done, self.before = total, done, done  # ``done``: items done before (a resumed run)
        self.skipped = 0
        self.unit = title if title in ("images", "cells") else "frames"
        self.title = title
        self.per_worker: dict[int, int] = {}  # items each worker made (an executor with several)
        self.estimate = Estimate(least=1)
        if not quiet:
            console = stderr_console()
            if not console.is_terminal:
                self.plain = PlainLines(console, self.estimate, every_given)
                return
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[eta]}"),
                TextColumn("{task.fields[rate]}"),
                TextColumn("{task.fields[step]}"),
                TextColumn("{task.fields[losses]}"),
                console=console,
                transient=False,
            )
            self.task = self.progress.add_task(title, total=total, completed=done, step="", losses="", rate="", eta="")

    def __enter__(self):
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc):
        if self.progress is not None:
            self.progress.stop()

    def start_clock(self) -> None:
        """Time counts from now (items made elsewhere send no steps to start the clock)."""
        self.estimate.begin(self.fraction())

    def fraction(self) -> float:
        todo = self.total - self.before
        return (self.done - self.before) / todo if todo > 0 else 1.0

    def step(self, event) -> None:
        self.estimate.begin(self.fraction())  # the clock starts with the first step
        if self.plain is not None:
            if shown_off_terminal(event, self.plain.every_given):
                self.plain.line(event.label or self.title, event)
            return
        if self.progress is None:
            return
        fields = {"step": f"it {event.iteration}/{event.iterations}"}
        if event.losses is not None:
            fields["losses"] = format_losses({"total": event.total, **event.losses})
        self.progress.update(
            self.task, description=self.describe(event.label or self.title), eta=self.estimate.eta(), **fields
        )

    def describe(self, what: str) -> str:
        """The bar's description: what is being made, and how many were skipped so far."""
        return f"{what} ({self.skipped} skipped)" if self.skipped else what

    def rate(self, elapsed: float) -> str:
        """The time an item takes, always in seconds per item (one unit from line to line)."""
        made = self.done - self.before - self.skipped
        if not made or elapsed <= 0:
            return ""
        seconds = elapsed / made  # under 0.1 s (a style network's frames): two digits, not "0.0"
        rate = f"{seconds:.1f} s/{self.unit[:-1]}" if seconds >= 0.1 else f"{seconds:.2g} s/{self.unit[:-1]}"
        if len(self.per_worker) > 1:
            rate += " · per worker " + " ".join(f"{n}" for _, n in sorted(self.per_worker.items()))
        return rate

    def count(self) -> str:
        skipped = f", {self.skipped} skipped" if self.skipped else ""
        return f"{self.done}/{self.total}{skipped}"

    def skip(self, name: str = "") -> None:
        """An item that will not be made (it could not be read or made): counted, so the count does not
        jump past it."""
        self.skipped += 1
        self.done += 1
        self.total = max(self.total, self.done)
        if self.estimate.start is not None:
            self.estimate.update(self.fraction())
        if self.plain is not None:
            self.plain.print(f"{name or self.unit[:-1]} skipped ({self.count()})")
        elif self.progress is not None:
            self.progress.update(self.task, advance=1, total=self.total, description=self.describe(self.title))

    def frame(self, done) -> None:
        self.done += 1
        worker = getattr(done, "worker", 0)
        self.per_worker[worker] = self.per_worker.get(worker, 0) + 1
        self.total = max(self.total, self.done)
        if self.estimate.start is None:  # made elsewhere, no step seen here: time counts from now
            self.estimate.begin(self.fraction())
        else:
            self.estimate.update(self.fraction())
        elapsed = self.estimate.elapsed()
        if self.budget is not None and self.estimate.updates:
            line = long_run(self.estimate, self.budget, f"the first {self.unit[:-1]}")
            self.budget = None
            if line and self.plain is not None:
                self.plain.print(line)
            elif line and self.progress is not None:
                self.progress.console.print(line, highlight=False)
        if self.plain is not None:
            eta = self.estimate.eta()
            self.plain.print(
                f"{done.name or self.unit[:-1]} done ({self.count()})  {format_losses(done.losses)}  "
                f"{self.rate(elapsed)}  elapsed {duration(elapsed)}{'  ' + eta if eta else ''}"
            )
        elif self.progress is not None:
            self.progress.update(
                self.task,
                advance=1,
                total=self.total,
                losses=format_losses(done.losses),
                rate=self.rate(elapsed),
                eta=self.estimate.eta(),
            )
