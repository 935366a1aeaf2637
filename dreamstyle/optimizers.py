"""Optimizers: a registry entry per optimizer (``register_optimizers`` hook), and the built-ins.

An :class:`~dreamstyle.records.OptimizerSpec` names a factory ``build(params, lr, pixel_scale)`` that returns a
``torch.optim.Optimizer`` stepping with a closure, its default learning rate (0-255 pixel units)
and whether pixels are clamped to the image range after each step (L-BFGS keeps its own iterate
unclamped: clamping would break its curvature pairs). Every job takes every registered optimizer
by name (``--optimizer NAME``).
"""

from __future__ import annotations

import contextlib
import sys

import torch

from .plugins import get_host
from .records import OptimizerSpec


def get_optimizer(name: str) -> OptimizerSpec:
    return get_host().optimizers.get(name)


def make_optimizer(name: str, params, lr: float | None, pixel_scale: float = 255.0):
    spec = get_optimizer(name)
    return spec.build(list(params), spec.default_lr if lr is None else lr, pixel_scale)


class NormalizedGradient(torch.optim.Optimizer):
    """DeepDream's step: ``x -= lr * g / mean(|g|)`` (gradient ascent on the negated loss), the mean
    taken over each picture of a batch: every picture moves by ``lr`` on average, whatever the others'
    gradients (a batch dreams what each picture would on its own)."""

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
                    dims = tuple(range(1, g.dim())) if g.dim() > 1 else None
                    p.sub_(g / (g.abs().mean(dim=dims, keepdim=True) + 1e-8), alpha=group["lr"])
        return loss


# torch.optim wraps a few Optimizer methods (add_param_group, zero_grad, state_dict, ...) in
# torch._disable_dynamo, whose first call imports torch._dynamo (about 3 s on two CPU cores, ~30% of
# a short run) only to mark them "do not trace". The wrapper skips that import when the wrapped
# function already carries its cached result; nothing the engine runs is traced by torch.compile,
# so while it runs (and dynamo is not loaded anyway) each function stands for itself.
DYNAMO_WRAPPED = ("add_param_group", "zero_grad", "state_dict", "load_state_dict")


@contextlib.contextmanager
def without_dynamo_import():
    marked = []
    if "torch._dynamo" not in sys.modules:
        for name in DYNAMO_WRAPPED:
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


class DynamoFreeAdam(torch.optim.Adam):
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
LBFGS_HISTORY = 100  # curvature pairs kept (neural-style's), fewer where they would pass LBFGS_HISTORY_BYTES
LBFGS_HISTORY_BYTES = 4 << 30  # a 4096 px print's pair is 400 MB: it keeps 10


def lbfgs_history(numel: int, itemsize: int = 4) -> int:
    """How many curvature pairs to keep for ``numel`` pixels: 100, or fewer for big prints (each
    pair is two copies of the picture), at least 5."""
    return max(5, min(LBFGS_HISTORY, LBFGS_HISTORY_BYTES // max(1, 2 * numel * itemsize)))


class FirstStepLBFGS(torch.optim.LBFGS):
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
        params = list(params)
        numel = sum(p.numel() for p in params)
        super().__init__(params, lr=lr, max_iter=1, history_size=lbfgs_history(numel))
        self._lr = lr
        if first_step is not None:  # None: torch's own first step
            self.param_groups[0].update(lr=first_step * max(1, sum(p.numel() for p in self._params)),
                                        line_search_fn="strong_wolfe", max_eval=LBFGS_FIRST_EVALUATIONS)

    def step(self, closure):
        loss = super().step(closure)
        self.param_groups[0].update(lr=self._lr, line_search_fn=None, max_eval=1)
        return loss


def lbfgs(params, lr, pixel_scale):
    first = None if LBFGS_FIRST_STEP is None else LBFGS_FIRST_STEP * pixel_scale / 255.0
    return FirstStepLBFGS(params, lr=lr, first_step=first)


def adam(params, lr, pixel_scale):
    return DynamoFreeAdam(params, lr=lr * pixel_scale / 255.0)


def normalized(params, lr, pixel_scale):
    return NormalizedGradient(params, lr=lr * pixel_scale / 255.0)
