"""The one runner: a job's stages, one loop, one stop policy.

A job (``dreamstyle.jobs``) says what an item needs: its stages (:mod:`~dreamstyle.schedule`),
for each stage the image to start from and the prepared objective (:class:`Plan`), what the stage's
best image carries to the next (``after``) and what the output is (``finish``). :func:`run` drives
the engine over the stages and applies the stop policy in one place:

- Ctrl-C (or SIGTERM) keeps the best image so far: this stage's best, or the last finished stage's;
  before anything was measured it raises :class:`~dreamstyle.errors.Interrupted`.
- A loss that is no longer finite stops the run; the last good image is kept.
- Running out of memory (device or host) keeps the best image so far and says, in one line, what
  was tried and what would fit; before anything was made it raises ``OutOfMemory``.
- A loss term that fails (raises, exits, returns what is not a number, or NaN on the starting
  picture) stops the run the same way; the line names the term and its plugin.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from .engine import Problem, Reporting, StageResult, Steps, optimize
from .errors import Interrupted, OutputError, TermFailed
from .faults import OutOfMemory, is_out_of_memory, memory_report
from .images import to_pil
from .stop import Catch, Reason
from .writers import check_format, save_image


@dataclass
class Item:
    """One picture (or a batch of them, or one frame of a clip) for a job to make."""

    content: torch.Tensor | None  # (B, 3, H, W) in [0, 1], any resolution; None: nothing to start from
    size: tuple[int, int]  # the output's (width, height)
    start: torch.Tensor | None = None  # a warm start (a clip's carried previous frame), at the output size
    images: dict = field(default_factory=dict)  # more image roles for the terms ("previous", ...)
    iterations: int | None = None  # steps instead of the settings' (a warm-started frame)
    warm: bool = False  # started from ``start``: a transfer runs its last stage only
    label: str = ""
    name: str = ""
    source: object = None  # what the content was given as (a path), for the recipe
    source_size: tuple[int, int] | None = None  # the input's own (width, height): coarser stages keep its aspect
    alpha: torch.Tensor | None = None  # (B or 1, 1, H, W) in [0, 1]: the input's transparency, kept in the output


@dataclass
class Plan:
    """What the engine needs for one stage."""

    start: torch.Tensor
    objective: object  # dreamstyle.objective.Objective, prepared
    gradient: Callable  # (param, scale, backward=True) -> (total, values)
    param: object = None  # a parametrization the optimizer moves instead of the pixels (dreamstyle.param)
    project: Callable | None = None  # after each step, (pixels x scale, scale) -> pixels: blur, decay
    new_step: Callable | None = None  # before each step (step): instead of the objective's (training's new batch)


@dataclass
class Result:
    """What a run returns. Unpacks as ``image, history = dreamstyle.transfer(...)``."""

    image: object  # PIL.Image.Image (the first of a batch)
    history: list[dict]
    recipe: dict = field(default_factory=dict)
    stopped: Reason | None = None
    frames: list = field(default_factory=list)  # PIL snapshots (for GIFs), if asked for
    tensor: object = None  # the final image(s) as a (B, 3, H, W) tensor in [0, 1]
    fault: str = ""  # out of memory: what was tried and what would fit; failed: the term; diverged: where it showed
    optimized: object = None  # the image(s) as optimized, before the job's finish (colour recombination)

    losses: dict = field(default_factory=dict)  # the last logged losses: total and per term

    def __iter__(self):
        yield self.image
        yield self.history

    def save(
        self,
        path,
        *,
        bit_depth: int | None = None,
        quality: int | None = None,
        recipe: bool = True,
        overwrite: bool = False,
    ):
        """Write the image (at full precision: 16 bits where the format takes them) by its suffix,
        with its recipe unless ``recipe=False``; an existing file is replaced only with ``overwrite``.
        Returns the path written."""

        path = Path(path)
        check_format(path, "image", bit_depth, quality)
        if path.exists() and not overwrite:
            raise OutputError(f"{path} exists; pass overwrite=True to replace it")
        image = self.tensor[:1] if self.tensor is not None else self.image
        return save_image(image, path, self.recipe if recipe else None, overwrite, bit_depth=bit_depth, quality=quality)


@dataclass
class Phase:
    """What a run does before its first step, which the engine's :class:`~dreamstyle.engine.StepEvent`
    cannot say: told once per job to ``job.on_phase`` (which the CLI draws) when every check is done
    and the work begins, with what the first stage's plan loads and computes."""

    what: str  # "prepare": the first stage's plan (the weights load, the targets are computed)
    text: str  # in words, or "" (nothing to load): "loading vgg19's weights and computing the style targets at 512x384"


def tell_phase(job, item, stage) -> None:
    """Before the first plan of ``job`` (once; nothing without ``on_phase``)."""
    tell = getattr(job, "on_phase", None)
    if tell is None or getattr(job, "phase_told", False):
        return
    job.phase_told = True
    parts = [] if job.session.is_loaded else [f"loading {job.session.describe_weights()}"]
    targets = job.preparing(item, stage)
    if targets:
        parts.append(targets)
    tell(Phase("prepare", " and ".join(parts)))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def labelled(callback: Callable | None, label: str) -> Callable:
    """A step callback that names its part of a longer task (a panel, a batch of cells) in each event's
    label, then hands the event to ``callback``."""

    def on_event(event):
        event.label = label
        if callback is not None:
            callback(event)

    return on_event


def run(job, item: Item, callback: Callable | None = None, snapshot_every: int = 0) -> Result:
    """Run ``job`` on ``item``: every stage, one stop policy."""
    seed_everything(job.seed)
    stages = job.stages(item)
    frames: list = []

    def on_event(event):
        if item.label:
            event.label = f"{item.label} {event.label}".strip()
        if event.snapshot is not None:
            frames.append(to_pil(event.snapshot[:1]).resize(item.size))
        if callback is not None:
            callback(event)

    history: list[dict] = []
    image, stopped, fault, done = None, None, "", 0
    for stage in stages:
        plan, result = _stage(job, item, stage, image, on_event, snapshot_every, len(stages))
        history.extend(result.history)
        if result.measured:
            image, done = job.after(item, stage, result.image), stage.index
        if result.stopped is not None:
            stopped, fault = _why(job, stage, plan, result, stages)
            if image is None:
                if stopped is Reason.OUT_OF_MEMORY:
                    raise OutOfMemory(f"{fault}; nothing was written")
                if stopped is Reason.INTERRUPTED:
                    raise Interrupted("interrupted before the first iteration; nothing was written")
                if plan is None:  # a term failed while it prepared: nothing to keep
                    raise TermFailed(f"{fault}; nothing was written")
                image = job.after(item, stage, plan.start)  # diverged or failed at its first step: keep the start
            break
    final = job.backbone.preprocess.shown(job.finish(item, image, done, stages))  # grey for a 1-channel network
    recipe = job.recipe(item, stages)
    recipe["stopped"] = stopped.value if stopped else None
    last = history[-1] if history else {}
    losses = {k: last[k] for k in ("total", *job.objective.names) if k in last}
    return Result(to_pil(final[:1]), history, recipe, stopped, frames, final.detach(), fault, image.detach(), losses)


def attempt(job, item: Item, callback: Callable | None = None) -> tuple[Result | None, Reason | None, str]:
    """:func:`run`, its stop returned instead of raised: (the result, or None where nothing was made;
    why it stopped, or None; its line). How a clip, a folder or a zoom runs its items."""
    with Catch() as caught:
        try:
            result = run(job, item, callback)
        except Interrupted:
            return None, Reason.INTERRUPTED, ""
        except (OutOfMemory, TermFailed) as exc:
            why = Reason.OUT_OF_MEMORY if isinstance(exc, OutOfMemory) else Reason.FAILED
            return None, why, str(exc).removesuffix("; nothing was written")
        return result, result.stopped, result.fault
    return None, caught.reason, ""


def _why(job, stage, plan, result: StageResult, stages) -> tuple[Reason, str]:
    """Why a stage stopped, and its line: out of memory (what was tried, what would fit), a loss term
    that failed, or a divergence that some terms and not others show (named)."""
    if result.stopped is Reason.OUT_OF_MEMORY:
        return result.stopped, job.oom_message(stage, result.memory, stages)
    if result.stopped is Reason.DIVERGED and plan is not None and not result.fault:
        return _diverged(plan.objective, result)
    return result.stopped, result.fault


def _diverged(objective, result: StageResult) -> tuple[Reason, str]:
    """The terms NaN or infinite at the step the stage diverged, where the others were not: from the
    starting picture on, those terms failed (not the steps); later, they are where it showed first."""
    last = result.history[-1] if result.history else {}
    bad = [n for n in objective.names if not math.isfinite(last.get(n, 0.0))]
    if not bad or len(bad) == len(objective.names) > 1:  # every term: the picture itself went bad
        return Reason.DIVERGED, ""
    named = " and ".join(objective.label(n) for n in bad)
    if not result.measured:
        return Reason.FAILED, f"{named} returned NaN or infinity on the starting picture"
    return Reason.DIVERGED, f"in {named}"


def _stage(job, item, stage, image, on_event, snapshot_every, count) -> tuple[Plan | None, StageResult]:
    """One stage through the engine; Ctrl-C and running out of memory between its steps (while the
    targets are computed) stop it like inside the engine."""
    plan = None
    try:
        tell_phase(job, item, stage)
        plan = job.plan(item, stage, image)
        problem = Problem(
            plan.objective.names,
            plan.gradient,
            param=plan.param,
            project=plan.project,
            new_step=plan.new_step or plan.objective.new_step,
        )
        steps = Steps(item.iterations or stage.iterations, job.optimizer, job.lr)
        report = Reporting(on_event, job.settings.log_every, snapshot_every, stage.index, count, stage.label)
        return plan, optimize(plan.start, problem, steps, report)
    except KeyboardInterrupt:
        return plan, StageResult(None, math.inf, 0, Reason.INTERRUPTED)
    except TermFailed as exc:  # while the terms prepared
        return plan, StageResult(None, math.inf, 0, Reason.FAILED, fault=str(exc))
    except Exception as exc:
        if not is_out_of_memory(exc):
            raise
        return plan, StageResult(
            None, math.inf, 0, Reason.OUT_OF_MEMORY, [], memory_report(job.session.device, exc, stage.size)
        )
