"""The one optimization engine: one stage (one image size) of pixels against an objective.

``optimize`` takes the image to start from and a ``gradient(param, scale, backward=True)`` (or an
``evaluate(image) -> (total, values)`` for the plain single backward), steps a registered optimizer,
and returns the best image it measured, the last step's included. It never prints: every step is a
:class:`StepEvent` to a callback. Loss values are copied to the host only on logged steps, so nothing
in the loop forces a device sync otherwise (L-BFGS syncs by its nature). It stops cleanly, keeping
the best image, on Ctrl-C, when the loss stops being finite (or a step overflows), when memory runs
out and when a loss term fails (:class:`~dreamstyle.stop.Reason`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Callable

import torch

from .errors import OptionError, TermFailed
from .faults import is_out_of_memory, is_overflow, memory_report
from .optimizers import get_optimizer, make_optimizer, without_dynamo_import
from .stop import Reason


@dataclass
class StepEvent:
    """One optimizer step. ``losses``/``total`` are set on logged steps only (else None)."""

    iteration: int
    iterations: int
    stage: int = 1
    stages: int = 1
    size: tuple[int, int] = (0, 0)  # (width, height)
    elapsed: float = 0.0  # seconds since the stage started
    losses: dict[str, float] | None = None
    total: float | None = None
    memory: int | None = None  # peak CUDA bytes, on CUDA
    snapshot: object | None = None  # a (B, 3, H, W) CPU tensor on snapshot steps
    label: str = ""

    def to_record(self) -> dict:
        record = {"stage": self.stage, "iteration": self.iteration, "total": self.total, "time": round(self.elapsed, 4)}
        if self.losses:
            record.update(self.losses)
        if self.memory is not None:
            record["memory"] = self.memory
        return record


@dataclass
class StageResult:
    image: torch.Tensor | None  # the best image (lowest total measured), detached, on the device
    best_loss: float
    iterations: int  # steps taken
    stopped: Reason | None = None
    history: list[dict] = field(default_factory=list)
    memory: dict | None = None  # on running out of memory: faults.memory_report (size tried, bytes)
    fault: str = ""  # FAILED: the line naming the term; DIVERGED: "a step overflowed", or nothing

    @property
    def measured(self) -> bool:
        return self.image is not None and math.isfinite(self.best_loss)


def autograd_gradient(evaluate):
    """The default gradient: one forward over the whole image, one backward."""

    def gradient(param, scale, backward=True):
        total, values = evaluate(param / scale)
        if backward:
            total.backward()
        return total, values

    return gradient


class _Best:
    """The best image measured so far, kept on the device (a comparison, no host sync).
    ``current()``: the image now measured (the pixels, or a parametrization's decoded picture)."""

    def __init__(self, current):
        self.current = current
        self.image = current().clone()
        self.loss = torch.full((), math.inf, device=self.image.device)
        self.total = self.values = self.best_values = None

    def measure(self, total, values, logged: bool = True):
        """Compare the image now measured with the best; ``logged``: its loss is the one a step reports
        (a step's first measurement: the image the step starts from, not a line search's trials)."""
        with torch.no_grad():
            t, values = total.detach().float(), values.detach().float()
            better = t < self.loss  # NaN compares False: the best image is never a diverged one
            self.loss.copy_(torch.where(better, t, self.loss))
            self.image.copy_(torch.where(better, self.current(), self.image))
            if self.best_values is None:
                self.best_values = torch.full_like(values, math.nan)
            self.best_values.copy_(torch.where(better, values, self.best_values))
        if logged:
            self.total, self.values = t, values
        return total

    def log_best(self):
        """Report the best image's losses: the image the stage returns."""
        if self.best_values is not None:
            self.total, self.values = self.loss.clone(), self.best_values.clone()

    @property
    def finite(self) -> bool:
        return bool(torch.isfinite(self.loss))


@dataclass
class Problem:
    """What a stage optimizes. ``names``: the loss terms, aligned with the ``values`` the gradient
    returns. ``gradient(param, scale, backward=True) -> (total, values)`` must leave d total / d param
    in ``param.grad`` (jitter, tiles), and with ``backward=False`` (under no_grad) only score the
    image; without one, ``evaluate(image) -> (total, values)`` on the [0, 1] image gets the plain
    single backward. ``param``: a parametrization (:mod:`dreamstyle.param`, a style network's weights)
    the optimizer moves instead of the pixels; ``project(pixels, scale)``: what becomes of the pixels
    (times the pixel scale) after each step (a blur, a decay); ``new_step(step)``: called before each
    step (terms that change from step to step, training's next batch; before the first only, for an
    optimizer that needs one objective over the stage: ``fixed_objective``, L-BFGS)."""

    names: Sequence[str]
    gradient: Callable | None = None
    evaluate: Callable | None = None
    param: object = None
    project: Callable | None = None
    new_step: Callable[[int], None] | None = None


@dataclass
class Steps:
    """How a stage steps: how many steps, which registered optimizer, its learning rate, and the pixel
    units it works in (pixels times ``pixel_scale``: 0-255, as neural-style, so learning rates are in
    those units)."""

    iterations: int
    optimizer: str = "lbfgs"
    lr: float | None = None
    pixel_scale: float = 255.0


@dataclass
class Reporting:
    """What a stage tells ``callback``: a :class:`StepEvent` every step, its losses every ``log_every``
    steps (and the last), a snapshot every ``snapshot_every`` (0: none); which ``stage`` of how many
    ``stages`` it is, and its ``label``."""

    callback: Callable[[StepEvent], None] | None = None
    log_every: int = 1
    snapshot_every: int = 0
    stage: int = 1
    stages: int = 1
    label: str = ""


@without_dynamo_import()
def optimize(init: torch.Tensor, problem: Problem, steps: Steps, report: Reporting = Reporting()) -> StageResult:
    """Optimize the pixels of ``init`` (an RGB image in [0, 1]) for ``steps.iterations`` steps; return
    the best image measured."""
    iterations, optimizer, param, new_step = steps.iterations, steps.optimizer, problem.param, problem.new_step
    if iterations < 1:
        raise OptionError("iterations must be at least 1")
    scale = float(steps.pixel_scale)
    spec = get_optimizer(optimizer)
    grad_fn = problem.gradient or autograd_gradient(problem.evaluate)
    variable, opt, grad_fn, current = _variable(init, param, optimizer, steps.lr, scale, grad_fn)
    settle = _settle(variable, scale, spec.clamp and param is None, problem.project if param is None else None)
    best = _Best(current)
    if variable.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(variable.device)
    loop = _Loop(current, best, problem.names, iterations, report, scale, (init.shape[-1], init.shape[-2]))

    calls = [0]

    def closure():
        opt.zero_grad(set_to_none=True)
        calls[0] += 1
        return best.measure(*grad_fn(variable, scale), logged=calls[0] == 1)

    stopped, memory, fault = None, None, ""
    try:
        for step in range(1, iterations + 1):
            calls[0] = 0
            if new_step is not None and (step == 1 or not getattr(opt, "fixed_objective", False)):
                new_step(step)  # L-BFGS compares losses across steps: a stage's terms stay as drawn at its start
            reported = best.total, best.values
            opt.step(closure)
            gave_up = getattr(opt, "diverged", False)  # its guard found NaN however short the step: log that
            if getattr(opt, "undid_step", False) and not gave_up:  # a step it undid: report where it stands
                best.total, best.values = reported
            settle()
            if step == iterations and not gave_up:  # the image after the last step is measured too: it can win
                with torch.no_grad():
                    best.measure(*grad_fn(variable, scale, backward=False))
                best.log_best()  # the last line reports the image returned
            if loop.step(step) or gave_up:
                stopped = Reason.DIVERGED
                break
    except KeyboardInterrupt:
        stopped = Reason.INTERRUPTED
    except Exception as exc:  # a stop like Ctrl-C, keeping the best image (see _stop_for); the rest propagates
        stopped, memory, fault = _stop_for(exc, variable, opt, loop.size)
    finite = best.finite
    if stopped is None and not finite:
        stopped = Reason.DIVERGED
    image = (best.image / scale).clamp(0, 1) if finite else None
    return StageResult(image, float(best.loss), loop.done, stopped, loop.history, memory, fault)


def _stop_for(exc: Exception, variable, opt, size) -> tuple[Reason, dict | None, str]:
    """How ``exc`` stops a stage that keeps its best image: a loss term that failed (its line), a number
    too large for its type (diverged: a step of --lr 1e38) or running out of memory (what was tried;
    the optimizer's memory is freed). Anything else is raised again."""
    if isinstance(exc, TermFailed):
        return Reason.FAILED, None, str(exc)
    if is_overflow(exc):
        return Reason.DIVERGED, None, "a step overflowed"
    if not is_out_of_memory(exc):
        raise exc
    memory = memory_report(variable.device, exc, size)
    opt.state.clear()
    variable.grad = None
    if variable.device.type == "cuda":
        torch.cuda.empty_cache()
    return Reason.OUT_OF_MEMORY, memory, ""


def _settle(variable, scale, clamp: bool, project):
    """What becomes of the pixels after each step: ``project`` (a blur, a decay), then the clamp."""

    @torch.no_grad()
    def settle():
        if project is not None:
            variable.copy_(project(variable, scale))
        if clamp:
            variable.clamp_(0, scale)

    return settle


def _variable(init, param, optimizer, lr, scale, gradient):
    """What the optimizer moves (the pixels times ``scale``, or a parametrization's variable), its
    optimizer, the gradient of it, and ``current()``: the picture it is now (times ``scale``)."""
    if param is None:
        variable = (init.detach() * scale).requires_grad_(True)
        return variable, make_optimizer(optimizer, [variable], lr, scale), gradient, variable.detach
    variable = param.encode(init).requires_grad_(True)
    opt = make_optimizer(optimizer, [variable], lr, param.step_scale)
    return (variable, opt, *decoded(param, variable, gradient, scale))


def decoded(param, variable, gradient, scale):
    """A parametrization's gradient (the wrapped ``gradient`` of the decoded picture, carried back to
    ``variable`` by the chain rule) and ``current()``, the picture its variable decodes to now."""
    with torch.no_grad():
        last = [param.decode(variable) * scale]

    def through(z, scale, backward=True):
        with torch.set_grad_enabled(backward):
            pixels = param.decode(z) * scale
        last[0] = pixels.detach()  # nothing writes into it: the best image copies from it
        leaf = pixels.detach().requires_grad_(backward)
        total, values = gradient(leaf, scale, backward)
        if backward and leaf.grad is not None:
            pixels.backward(leaf.grad)
        return total, values

    return through, lambda: last[0]


class _Loop:
    """The per-step bookkeeping: events, logged losses, snapshots."""

    def __init__(self, current, best, names, iterations: int, report: Reporting, scale: float, size):
        self.current, self.best, self.names = current, best, list(names)
        self.iterations, self.log_every, self.snapshot_every = (
            iterations,
            max(1, report.log_every),
            report.snapshot_every,
        )
        self.stage, self.stages, self.label, self.callback = report.stage, report.stages, report.label, report.callback
        self.scale = scale
        self.size = size
        self.history: list[dict] = []
        self.done = 0
        self.start = time.perf_counter()

    def step(self, step: int) -> bool:
        """Report step ``step``; True when its loss is no longer finite."""
        self.done = step
        final = step == self.iterations
        event = StepEvent(
            step,
            self.iterations,
            self.stage,
            self.stages,
            self.size,
            time.perf_counter() - self.start,
            label=self.label,
        )
        diverged = False
        if step % self.log_every == 0 or final:
            event.total = float(self.best.total)
            event.losses = dict(zip(self.names, self.best.values.tolist()))
            device = self.best.image.device
            if device.type == "cuda":
                event.memory = torch.cuda.max_memory_allocated(device)
            self.history.append(event.to_record())
            diverged = not math.isfinite(event.total)
        if self.snapshot_every and (step % self.snapshot_every == 0 or final):
            # the last snapshot is the stage's result: the best image measured
            shown = self.best.image if final and self.best.finite else self.current()
            event.snapshot = (shown / self.scale).clamp(0, 1).to("cpu", copy=True)
        if self.callback is not None:
            self.callback(event)
        return diverged
