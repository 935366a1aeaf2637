"""Sweep: a grid over any options of a job (``--vary style-weight=1e2,1e3 --vary backbone=vgg19,vgg16``):
every combination is one cell, made with the job's settings and the cell's values, on an executor
(``dreamstyle.executors``: this process, or Ray workers); per cell the time, the peak memory and the
final losses; a contact sheet whose rows and columns are named by the values.

The cell runner here (:func:`run_cells`, :class:`CellWork`) is also ``compare``'s: a comparison is a
sweep over backbones (``dreamstyle.jobs.compare``)."""

from __future__ import annotations

import itertools
import math
import random
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Callable

from ..applies import refuse
from ..errors import Interrupted, OptionError, error_text
from ..executors import executor_for, pack_inputs
from ..judge import judge_rows, make_judge
from ..memory import MEMORY_NOTE, MemoryProbe, release_memory
from ..runner import run
from ..runtime import device_name, resolve_device
from ..session import Session
from ..settings import apply_preset, flag_of
from ..sheets import labelled_grid
from ..stop import Catch, Reason
from . import make_job

# the inputs, and what makes no other picture; what does not apply to a cell (a still) is refused by
# dreamstyle.applies
NOT_VARIED = {"content", "styles", "input", "device", "seed", "max_pixels", "log_every"}


@dataclass
class Axis:
    """One ``--vary``: a settings field and its values (each as given, and as the settings take it)."""

    name: str
    flag: str
    texts: tuple
    values: tuple


@dataclass
class Cell:
    """One combination of the axes' values."""

    changes: dict  # field -> value, as the settings take it
    texts: dict  # field -> the value as given
    flags: dict  # field -> its flag
    stem: str = ""  # the file name stem in the output folder

    @property
    def label(self) -> str:
        return ", ".join(f"{self.flags[k].lstrip('-')} {v}" for k, v in self.texts.items())


def rounded(x, digits, sig=False):
    """A number for a table or JSON: ``digits`` decimals, or significant digits with ``sig``."""
    if x is None or not isinstance(x, float) or not math.isfinite(x):
        return x
    if sig:
        return float(f"{x:.{digits}g}")
    return round(x, digits)


def fmt(x, pattern):
    return "" if x is None else pattern.format(x)


def fmt_bytes(n):
    if n is None:
        return ""
    return f"{n / 2**20:.0f} MiB" if n < 2**30 else f"{n / 2**30:.2f} GiB"


@dataclass
class CellRow:
    """How one cell (or compare's backbone) went."""

    variant: object  # a Cell, or compare's Variant: ``changes`` and ``label``
    status: str = "pending"  # ok, failed, diverged, interrupted, skipped
    error: str | None = None
    steps: int = 0
    ms_per_iteration: float | None = None
    run_seconds: float | None = None
    total_seconds: float | None = None
    memory_bytes: int | None = None
    losses: dict = field(default_factory=dict)
    result: object = None  # the job's Result
    output: str | None = None  # file name, set by whoever writes it
    judge: dict = field(default_factory=dict)  # the judge's distances of its picture (dreamstyle.judge.JUDGED)

    @property
    def ok(self) -> bool:
        return self.result is not None


def _value(f, text: str):
    """``text`` (one value of a --vary) as the settings field ``f`` takes it."""
    spec = f.metadata["spec"]
    kind = spec.type if spec.type is not None else (type(f.default) if f.default is not None else str)
    try:
        if kind == "flag":
            if text.lower() not in ("on", "off", "true", "false", "yes", "no", "1", "0"):
                raise ValueError
            value = text.lower() in ("on", "true", "yes", "1")
        elif kind in (int, float):
            value = float(text) if kind is float else int(float(text)) if float(text).is_integer() else float(text)
        else:
            value = text
    except ValueError:
        raise OptionError(f"--vary {flag_of(f).lstrip('-')}: {text!r} is not a value of {flag_of(f)}") from None
    return (value,) if spec.multiple else value


def parse_axes(cls, vary) -> list[Axis]:
    """The ``--vary`` pairs ((option, (texts...)), ...) against the settings class ``cls``."""
    by_name = {}
    for f in cls.fields():
        if f.metadata["spec"].cli and f.name not in NOT_VARIED:
            by_name[f.name] = by_name[flag_of(f).lstrip("-")] = f
    axes = []
    for name, texts in vary:
        f = by_name.get(name) or by_name.get(name.replace("-", "_"))
        if f is None:
            import difflib

            close = difflib.get_close_matches(name, sorted(n for n in by_name if "_" not in n), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise OptionError(f"--vary {name}: {cls.KIND} has no option of that name to vary{hint}")
        if any(a.name == f.name for a in axes):
            raise OptionError(f"--vary {name} is given twice; give its values in one --vary")
        try:  # each cell is a still
            refuse(cls.applicability(), [f.name], "still", offered=cls.INPUTS)
        except OptionError as exc:
            raise OptionError(f"--vary {name}: {exc} (a sweep's cells are single images)") from None
        axes.append(Axis(f.name, flag_of(f), tuple(texts), tuple(_value(f, t) for t in texts)))
    if not axes:
        raise OptionError("give at least one --vary OPTION=V1,V2,...")
    return axes


def grid(settings, axes: Sequence[Axis], given: Callable[[str], bool] | None = None) -> list[Cell]:
    """Every combination of the axes' values (the first axis slowest), each checked now: a value out of
    range is one line before any work. A cell with a ``preset`` also takes that preset's options,
    but those varied and those ``given`` (on the command line)."""
    cells, stems = [], set()
    for combo in itertools.product(*(range(len(a.values)) for a in axes)):
        changes = {a.name: a.values[k] for a, k in zip(axes, combo)}
        texts = {a.name: a.texts[k] for a, k in zip(axes, combo)}
        if "preset" in changes:
            varied = set(changes)
            changes = apply_preset(
                type(settings), changes, lambda k, varied=varied: k in varied or bool(given and given(k))
            )
        settings.replace(**changes)  # checks every value
        stem = "_".join(f"{a.flag.lstrip('-')}-{t}" for a, t in zip(axes, texts.values()))
        stem = re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-.") or "cell"
        while stem.lower() in stems:
            stem += "-2"
        stems.add(stem.lower())
        cells.append(Cell(changes, texts, {a.name: a.flag for a in axes}, stem))
    return cells


class CellWork:
    """What a worker needs to make cells: the job's kind and settings (input files as bytes when it
    travels); a worker keeps the last loaded backbone for the next cell that asks for the same one."""

    def __init__(
        self,
        kind: str,
        settings,
        recipe_paths: str = "full",
        snapshot_every: int = 0,
        callback: Callable | None = None,
        on_start: Callable | None = None,
    ):
        self.kind, self.settings, self.recipe_paths, self.snapshot_every = kind, settings, recipe_paths, snapshot_every
        self.callback, self.on_start = callback, on_start
        self.files: dict = {}
        self.back: dict = {}
        self.kept = None  # (key, LoadedBackbone) of the last cell

    @property
    def device(self):
        return self.settings.device

    def __getstate__(self):
        return {**self.__dict__, "callback": None, "on_start": None, "kept": None, "files": pack_inputs(self.settings)}

    def open(self):
        if self.files and not self.back:
            from ..executors import unpack_inputs

            self.settings, self.back = unpack_inputs(self.settings, self.files)
        return self

    def __call__(self, task) -> CellRow:
        index, count, variant = task
        row = CellRow(variant)
        if self.on_start is not None:
            self.on_start(row, index, count)
        _run_row(self, row)
        if self.back:  # temporary paths of a worker's input files named as given
            from ..executors import relocated

            if row.result is not None:
                row.result.recipe = relocated(row.result.recipe, self.back)
            row.error = relocated(row.error, self.back)
        return row

    def session(self, s):
        key = (s.backbone, s.weights, s.pooling, s.device, s.precision, s.compile)
        loaded = self.kept[1] if self.kept is not None and self.kept[0] == key else None
        dropped, self.kept = self.kept is not None and loaded is None, None  # kept again when the cell ends
        if dropped:  # a backbone this cell does not use is let go (no reference left to it)
            from ..runtime import resolve_device

            release_memory(resolve_device(s.device))
        session = Session.for_settings(s, loaded)
        return key, session


def _run_row(work: CellWork, row: CellRow) -> None:
    """One cell: the settings with its changes, the job, the run; the time, memory and losses."""
    stage_time: dict[int, float] = {}
    dev = resolve_device(work.settings.device)
    probe = MemoryProbe(dev)
    label = row.variant.label

    def on_event(event):
        stage_time[event.stage] = event.elapsed
        probe.note(event.memory)
        event.label = label
        if work.callback is not None:
            work.callback(event)

    start = time.perf_counter()
    try:
        with probe:  # every check (names, sizes, options) comes before the weights load
            s = work.settings.replace(**row.variant.changes)
            key, session = work.session(s)
            job = make_job(work.kind, s, session, recipe_paths=work.recipe_paths)
            result = run(job, job.still_item(), on_event, work.snapshot_every)
            work.kept = (key, session.loaded)
    except (KeyboardInterrupt, Interrupted):
        row.status, row.error = Reason.INTERRUPTED.value, "interrupted before the first iteration"
    except Exception as exc:  # noqa: BLE001 - one cell failing must not stop the others
        row.status, row.error = "failed", error_text(exc)
    else:
        row.result, row.status = result, result.stopped.value if result.stopped else "ok"
        row.error = result.fault or None
        row.steps = sum({h["stage"]: h["iteration"] for h in result.history}.values())
        row.run_seconds = sum(stage_time.values())
        row.ms_per_iteration = 1000 * row.run_seconds / row.steps if row.steps else None
        row.losses = {k: float(x) for k, x in result.losses.items()}
    row.total_seconds = time.perf_counter() - start
    row.memory_bytes = probe.bytes if row.ok else None
    if work.kept is None:
        release_memory(dev)


def run_cells(
    kind: str,
    settings,
    variants: Sequence,
    *,
    executor=None,
    callback: Callable | None = None,
    on_start: Callable | None = None,
    on_row: Callable | None = None,
    snapshot_every: int = 0,
    recipe_paths: str = "full",
    skip: Sequence[int] = (),
) -> tuple[list[CellRow], Reason | None]:
    """Every variant (a :class:`Cell` or compare's ``Variant``) of ``settings`` on ``executor`` (default:
    the settings' ``--executor``); ``on_row(index, row, worker)`` as each finishes; the cells ``skip`` are left
    out (``--resume``). Returns the rows, in the variants' order, and ``Reason.INTERRUPTED`` if Ctrl-C ended it."""
    rows = [CellRow(v, status="done before" if i in set(skip) else "pending") for i, v in enumerate(variants)]
    todo = [i for i in range(len(variants)) if i not in set(skip)]
    work = CellWork(kind, settings, recipe_paths, snapshot_every, callback, on_start)
    executor = executor or executor_for(settings.executor, settings.workers)
    stopped = None
    running = executor.run(work, [(i, len(variants), variants[i]) for i in todo])
    caught = Catch()
    try:
        with caught:
            for done in running:
                index = todo[done.index]
                row = done.value if done.value is not None else CellRow(variants[index], "failed", done.error)
                row.variant = variants[index]
                rows[index] = row
                if on_row is not None:
                    on_row(index, row, done.worker)
                if row.status == Reason.INTERRUPTED:
                    stopped = Reason.INTERRUPTED
                    break
    finally:
        running.close()  # the executor's workers stop now (what finished is kept)
    stopped = caught.reason or stopped
    for row in rows:
        if row.status == "pending":
            row.status, row.error = "skipped", "not run: interrupted"
    return rows, stopped


def resolved_seed(settings):
    """One seed for every cell: every cell starts from the same image."""
    return settings.replace(seed=settings.seed if settings.seed is not None else random.randrange(2**31))


# --- the sweep's outputs ------------------------------------------------------------------------------

JUDGE_COLUMNS = (
    ("content", "judge content"),
    ("style_gram", "judge style (Gram)"),
    ("style_swd", "judge style (SW)"),
)  # the judge's distances in the tables (lower is closer)


def judge_cells(row) -> list[str]:
    """A row's judge distances as table cells (empty where not judged)."""
    return [fmt(row.judge.get(key), "{:.4g}") for key, _ in JUDGE_COLUMNS]


def judge_dict(row) -> dict:
    """A row's judge distances for JSON (``{}`` where not judged; ``{"error": ...}`` where it failed)."""
    return {k: rounded(v, 6, sig=True) if isinstance(v, float) else v for k, v in row.judge.items()}


def judge_note(judge: dict | None) -> str:
    if not judge:
        return ""
    return (
        f"Judged on {judge['backbone']} ({judge['weights']} weights) by `dreamstyle score`: the content "
        "distance and the style distances (Gram, sliced Wasserstein), relative, averaged over the judge's "
        "layers; lower is closer."
    )


def loss_names(rows) -> list[str]:
    """The loss terms of any row, in the order they first appear."""
    return list(dict.fromkeys(k for row in rows for k in row.losses))


@dataclass
class Sweep:
    kind: str
    axes: list
    rows: list  # CellRow, in grid order (the last axis fastest)
    settings: dict  # the base settings' recipe
    device: str
    memory_kind: str
    stopped: Reason | None = None
    judge: dict | None = None  # the judge network (backbone, weights, pooling); None: not judged

    @property
    def loss_names(self) -> list[str]:
        return loss_names(self.rows)

    def sheet(self):
        """The cells in a grid: columns by the last axis's values, rows by the others', each named."""
        columns = len(self.axes[-1].texts)
        row_names = [
            ", ".join(f"{a.flag.lstrip('-')} {t}" for a, t in zip(self.axes[:-1], combo))
            for combo in itertools.product(*(a.texts for a in self.axes[:-1]))
        ] or [""]
        col_names = [f"{self.axes[-1].flag.lstrip('-')} {t}" for t in self.axes[-1].texts]
        cells = [(r.result.image if r.ok else None, _caption(r), r.error or r.status) for r in self.rows]
        s = self.settings
        size = s.get("size")
        title = (
            f"dreamstyle sweep ({self.kind}) · {'x'.join(map(str, size)) if isinstance(size, list) else size} px"
            f" · {s.get('iterations')} iterations · {s.get('optimizer')} · seed {s.get('seed')} · {self.device}"
        )
        return labelled_grid(cells, row_names, col_names, columns, title)

    def to_dict(self) -> dict:
        return {
            "command": "sweep",
            "kind": self.kind,
            "settings": self.settings,
            "device": self.device,
            "peak_memory": MEMORY_NOTE[self.memory_kind],
            "stopped": self.stopped,
            "judge": self.judge,
            "vary": {a.flag.lstrip("-"): list(a.texts) for a in self.axes},
            "cells": [_cell_dict(r) for r in self.rows],
        }

    def to_markdown(self) -> str:

        terms = self.loss_names
        names = [a.flag.lstrip("-") for a in self.axes]
        lines = [
            f"# dreamstyle sweep ({self.kind})",
            "",
            f"{', '.join(f'`{n}`' for n in names)} varied; {self.settings.get('iterations')} iterations of "
            f"{self.settings.get('optimizer')}, seed {self.settings.get('seed')}, on {self.device}.",
            "",
        ]
        judged = [label for _, label in JUDGE_COLUMNS] if self.judge else []
        header = (
            names
            + ["status", "ms / iteration", "total s", "peak memory"]
            + [f"{t} loss" for t in terms]
            + judged
            + ["output"]
        )
        lines += [
            "| " + " | ".join(header) + " |",
            "|" + "|".join(["---"] * (len(names) + 1) + ["---:"] * (3 + len(terms) + len(judged)) + ["---"]) + "|",
        ]
        for row in self.rows:
            cells = [str(row.variant.texts[a.name]) for a in self.axes]
            cells += [
                row.status,
                fmt(row.ms_per_iteration, "{:.1f}"),
                fmt(row.total_seconds, "{:.1f}"),
                fmt_bytes(row.memory_bytes),
            ] + [fmt(row.losses.get(t), "{:.4g}") for t in terms]
            cells += judge_cells(row) if self.judge else []
            cells.append(f"[{row.output}]({row.output})" if row.output else "")
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        lines += [
            "",
            f"Peak memory: {MEMORY_NOTE[self.memory_kind]}.",
            "Total time includes loading the network (once per worker and backbone) and computing the "
            "targets; ms / iteration is the optimization alone.",
        ] + ([judge_note(self.judge)] if self.judge else [])
        failed = [r for r in self.rows if r.error and r.status != "done before"]
        if failed:
            lines += ["", "Failures:", ""] + [f"- **{r.variant.label}**: {r.error}" for r in failed]
        return "\n".join(lines) + "\n"


def _caption(row: CellRow) -> str:
    if not row.ok:
        return row.status
    text = f"{row.total_seconds:.1f} s" if row.total_seconds is not None else ""
    if "total" in row.losses:
        text += f" · loss {row.losses['total']:.3g}"
    return text + (f" · {row.status}" if row.status != "ok" else "")


def _cell_dict(row: CellRow) -> dict:

    return {
        "vary": {row.variant.flags[k].lstrip("-"): t for k, t in row.variant.texts.items()},
        "status": row.status,
        "error": row.error,
        "iterations": row.steps,
        "ms_per_iteration": rounded(row.ms_per_iteration, 2),
        "total_seconds": rounded(row.total_seconds, 3),
        "peak_memory_bytes": row.memory_bytes,
        "losses": {k: rounded(x, 6, sig=True) for k, x in row.losses.items()},
        "judge": judge_dict(row),
        "output": row.output,
    }


def sweep(
    kind: str,
    settings,
    vary,
    *,
    executor=None,
    callback=None,
    on_start=None,
    on_row=None,
    recipe_paths: str = "full",
    skip: Sequence[int] = (),
    judge: str | None = "vgg19",
    given=None,
    before_judge: Callable | None = None,
) -> Sweep:
    """Run ``settings`` (of ``kind``: transfer, dream, texture) over the grid ``vary`` (``--vary`` pairs,
    or :class:`Axis` objects) on ``executor``; then grade each cell's picture on ``judge`` (a backbone
    spec, :class:`~dreamstyle.judge.Judge`; None or "none": not graded; a dream is not graded: it has
    no style). ``given``: the options given (a varied ``preset`` leaves them); ``before_judge(rows)``:
    called when the cells are done, before they are graded (a folder's cells done before get their
    pictures there)."""
    axes = list(vary) if vary and isinstance(vary[0], Axis) else parse_axes(type(settings), vary)
    settings = resolved_seed(settings)
    cells = grid(settings, axes, given)
    judging = make_judge(judge if kind != "dream" else None, settings)  # checked before any work
    dev = resolve_device(settings.device)
    rows, stopped = run_cells(
        kind,
        settings,
        cells,
        executor=executor,
        callback=callback,
        on_start=on_start,
        on_row=on_row,
        recipe_paths=recipe_paths,
        skip=skip,
    )
    if before_judge is not None:
        before_judge(rows)
    if stopped is None:
        judge_rows(judging, rows, getattr(settings, "content", None), getattr(settings, "styles", ()))
    return Sweep(
        kind,
        axes,
        rows,
        {**settings.to_recipe(recipe_paths), "device": str(dev)},
        device_name(dev),
        MemoryProbe(dev).kind,
        stopped,
        judging.describe(recipe_paths) if judging else None,
    )
