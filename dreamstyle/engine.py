"""The one optimization engine. Transfer, dream, reconstruct, compare and clips are drivers over it.

The engine optimizes pixels of one image (one stage: one size) against an ``evaluate`` function
that returns ``(total, per_term_values)``. It never prints: it emits a :class:`StepEvent` to a
callback every step. Loss values are copied to the host only on logged steps, so nothing in the
loop forces a device sync otherwise (L-BFGS syncs by its nature). It keeps the best image so far
on the device, and stops cleanly on Ctrl-C or when the loss stops being finite.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch

from .errors import OptionError

OPTIMIZERS = ("lbfgs", "adam", "normalized")


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
    snapshot: object | None = None  # a (1, 3, H, W) CPU tensor on snapshot steps
    label: str = ""

    def to_record(self) -> dict:
        record = {"stage": self.stage, "iteration": self.iteration, "total": self.total,
                  "time": round(self.elapsed, 4)}
        if self.losses:
            record.update(self.losses)
        if self.memory is not None:
            record["memory"] = self.memory
        return record


@dataclass
class StageResult:
    image: torch.Tensor  # the best image (lowest total), detached, on the device
    best_loss: float
    iterations: int  # steps taken
    stopped: str | None = None  # None, "interrupted", "diverged" or "out of memory"
    history: list[dict] = field(default_factory=list)
    memory: dict | None = None  # on "out of memory": faults.memory_report (size tried, bytes)


class NormalizedGradient(torch.optim.Optimizer):
    """DeepDream's step: ``x -= lr * g / mean(|g|)`` (gradient ascent on the negated loss)."""

    def __init__(self, params, lr: float = 1.5):
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    g = p.grad
                    p.sub_(g / (g.abs().mean() + 1e-8), alpha=group["lr"])
        return loss


# torch.optim wraps a few Optimizer methods (add_param_group, zero_grad, state_dict, ...) in
# torch._disable_dynamo, whose first call imports torch._dynamo (about 3 s on two CPU cores, ~30% of
# a short run) only to mark them "do not trace". The wrapper skips that import when the wrapped
# function already carries its cached result; nothing the engine runs is traced by torch.compile,
# so while it runs (and dynamo is not loaded anyway) each function stands for itself.
_DYNAMO_WRAPPED = ("add_param_group", "zero_grad", "state_dict", "load_state_dict")


@contextlib.contextmanager
def _without_dynamo_import():
    marked = []
    if "torch._dynamo" not in sys.modules:
        for name in _DYNAMO_WRAPPED:
            inner = getattr(getattr(torch.optim.Optimizer, name, None), "__wrapped__", None)
            if inner is not None and not hasattr(inner, "__dynamo_disable"):
                setattr(inner, "__dynamo_disable", inner)
                marked.append(inner)
    try:
        yield
    finally:
        for inner in marked:
            if getattr(inner, "__dynamo_disable", None) is inner:
                delattr(inner, "__dynamo_disable")


class _Adam(torch.optim.Adam):
    """torch's Adam, stepped without its ``_use_grad`` wrapper: that wrapper only sets the grad
    mode and marks graph breaks for torch.compile, and it imports torch._dynamo to do so (seconds
    of start-up). The update itself is torch's own (``Adam.step.__wrapped__``), run under no_grad
    as the wrapper would (Adam's ``differentiable`` is False here)."""

    _raw_step = getattr(torch.optim.Adam.step, "__wrapped__", None)

    def step(self, closure=None):
        if self._raw_step is None or "torch._dynamo" in sys.modules:
            return super().step(closure)
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        with torch.no_grad():
            self._raw_step()
        return loss


LBFGS_FIRST_STEP = 8.0  # mean |change| of the first L-BFGS step's first guess, 0-255 pixel units
LBFGS_FIRST_EVALUATIONS = 12  # at most, for the first step's line search (one, when the guess is good)


class _LBFGS(torch.optim.LBFGS):
    """torch's L-BFGS, one iteration per ``step``, with a first step that moves pixels.

    torch sizes its first step (plain gradient descent) ``lr / |g|_1``: on a loss of 1e8 over 0-255
    pixels that moves each pixel by about 1e-5, too little for float32 to see the curvature, so the
    second step's Hessian estimate is noise and overshoots (a 96 px transfer reached a loss of 2e15
    at iteration 3 and needed five more to come back). Here the first step starts from a guess that
    moves pixels by ``first_step`` on average and is checked by torch's strong-Wolfe line search:
    a fresh start accepts the guess (one evaluation more per stage), a warm start (a clip's next
    frame, a finer scale), where the guess overshoots, gets a shorter step. Later steps are
    torch's own, without a line search.
    """

    def __init__(self, params, lr: float = 1.0, first_step: float | None = LBFGS_FIRST_STEP):
        super().__init__(params, lr=lr, max_iter=1, history_size=100)
        self._lr = lr
        if first_step is not None:  # None: torch's own first step
            self.param_groups[0].update(lr=first_step * max(1, sum(p.numel() for p in self._params)),
                                        line_search_fn="strong_wolfe", max_eval=LBFGS_FIRST_EVALUATIONS)

    def step(self, closure):
        loss = super().step(closure)
        self.param_groups[0].update(lr=self._lr, line_search_fn=None, max_eval=1)
        return loss


def make_optimizer(name: str, params, lr: float | None, pixel_scale: float = 255.0):
    if name == "lbfgs":
        first = None if LBFGS_FIRST_STEP is None else LBFGS_FIRST_STEP * pixel_scale / 255.0
        return _LBFGS(params, lr=1.0 if lr is None else lr, first_step=first)
    if name == "adam":
        return _Adam(params, lr=5.0 if lr is None else lr)
    if name == "normalized":
        return NormalizedGradient(params, lr=1.5 if lr is None else lr)
    raise OptionError(f"unknown optimizer {name!r}; choose one of: {', '.join(OPTIMIZERS)}")


def autograd_gradient(evaluate):
    """The default gradient: one forward over the whole image, one backward."""

    def gradient(param, scale, backward=True):
        total, values = evaluate(param / scale)
        if backward:
            total.backward()
        return total, values

    return gradient


@_without_dynamo_import()
def optimize(
    init: torch.Tensor,
    evaluate: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
    names: Sequence[str],
    *,
    iterations: int,
    optimizer: str = "lbfgs",
    lr: float | None = None,
    callback: Callable[[StepEvent], None] | None = None,
    log_every: int = 1,
    snapshot_every: int = 0,
    stage: int = 1,
    stages: int = 1,
    clamp: bool = True,
    gradient: Callable | None = None,
    label: str = "",
    pixel_scale: float = 255.0,
) -> StageResult:
    """Optimize the pixels of ``init`` (an RGB image in [0, 1]) for ``iterations`` steps; return
    the best image found.

    The optimizer works on pixel values times ``pixel_scale`` (0-255 by default, as neural-style
    does), so learning rates are in those units and L-BFGS sees a well-scaled problem.
    ``evaluate(image) -> (total, values)`` takes the [0, 1] image; ``values`` is a 1-D tensor
    aligned with ``names``. ``gradient(param, pixel_scale, backward=True) -> (total, values)`` may replace
    the default single backward (tiling): it must leave d total / d param in ``param.grad``, and
    with ``backward=False`` (under no_grad: the last image's measurement) only score the image.
    """
    if iterations < 1:
        raise OptionError("iterations must be at least 1")
    scale = float(pixel_scale)
    param = (init.detach() * scale).requires_grad_(True)
    opt = make_optimizer(optimizer, [param], lr, scale)
    grad_fn = gradient or autograd_gradient(evaluate)
    best = param.detach().clone()
    best_loss = torch.full((), math.inf, device=param.device)
    last: dict[str, torch.Tensor] = {}
    on_cuda = param.device.type == "cuda"
    if on_cuda:
        torch.cuda.reset_peak_memory_stats(param.device)
    h, w = param.shape[-2:]
    history: list[dict] = []
    stopped = memory = None
    step = 0
    start = time.perf_counter()

    def measured(total, values):
        with torch.no_grad():
            t = total.detach().float()
            better = t < best_loss  # NaN compares False: the best image is never a diverged one
            best_loss.copy_(torch.where(better, t, best_loss))
            best.copy_(torch.where(better, param.detach(), best))
        last["total"], last["values"] = t, values.detach()
        return total

    def closure():
        opt.zero_grad(set_to_none=True)
        return measured(*grad_fn(param, scale))

    try:
        for step in range(1, iterations + 1):
            opt.step(closure)
            if clamp:
                with torch.no_grad():
                    param.clamp_(0, scale)
            final = step == iterations
            if final:  # the image after the last step is measured too (no backward), so that it can win
                with torch.no_grad():
                    measured(*grad_fn(param, scale, backward=False))
            event = StepEvent(step, iterations, stage, stages, (w, h), time.perf_counter() - start, label=label)
            if step % max(1, log_every) == 0 or final:
                values = last["values"].tolist()
                event.total = float(last["total"])
                event.losses = dict(zip(names, values))
                if on_cuda:
                    event.memory = torch.cuda.max_memory_allocated(param.device)
                history.append(event.to_record())
                if not math.isfinite(event.total):
                    stopped = "diverged"
            if snapshot_every and (step % snapshot_every == 0 or final):
                # the last snapshot is the stage's result: the best image measured
                shown = best if final and bool(torch.isfinite(best_loss)) else param.detach()
                event.snapshot = (shown / scale).clamp(0, 1).to("cpu", copy=True)
            if callback is not None:
                callback(event)
            if stopped:
                break
    except KeyboardInterrupt:
        stopped = "interrupted"
    except Exception as exc:  # out of memory stops like Ctrl-C, keeping the best image; the rest propagates
        from .faults import OOM, is_out_of_memory, memory_report

        if not is_out_of_memory(exc):
            raise
        stopped, memory = OOM, memory_report(param.device, exc, (w, h))
        opt.state.clear()
        param.grad = None
        if on_cuda:
            torch.cuda.empty_cache()
    if stopped is None and not bool(torch.isfinite(best_loss)):
        stopped = "diverged"
    final = best / scale if bool(torch.isfinite(best_loss)) else init.detach()
    return StageResult(final.clamp(0, 1), float(best_loss), step, stopped, history, memory)
