"""Optimizers: a registry entry per optimizer (``register_optimizers`` hook), and the built-ins.

An :class:`~dreamstyle.records.OptimizerSpec` names a factory ``build(params, lr, pixel_scale)`` that returns a
``torch.optim.Optimizer`` stepping with a closure, its default learning rate (0-255 pixel units)
and whether pixels are clamped to the image range after each step (L-BFGS keeps its own iterate
unclamped: clamping would break its curvature pairs). Every job takes every registered optimizer
by name (``--optimizer NAME``).
"""

from __future__ import annotations

import contextlib
import math
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
LBFGS_BACKTRACKS = 4  # shorter steps along a direction before its curvature pairs are forgotten
LBFGS_HISTORY = 100  # curvature pairs kept (neural-style's), fewer where they would pass LBFGS_HISTORY_BYTES
LBFGS_HISTORY_BYTES = 4 << 30  # a 4096 px print's pair is 400 MB: it keeps 10


def lbfgs_history(numel: int, itemsize: int = 4) -> int:
    """How many curvature pairs to keep for ``numel`` pixels: 100, or fewer for big prints (each
    pair is two copies of the picture), at least 5."""
    return max(5, min(LBFGS_HISTORY, LBFGS_HISTORY_BYTES // max(1, 2 * numel * itemsize)))


class FirstStepLBFGS(torch.optim.LBFGS):
    """torch's L-BFGS, one iteration per ``step``, with a first step that moves pixels and a guard
    against steps that raise the loss.

    **First step.** torch sizes its first step (plain gradient descent) ``lr / |g|_1``: on a loss of
    1e8 over 0-255 pixels that moves each pixel by about 1e-5, too little for float32 to see the
    curvature, so the second step's Hessian estimate is noise and overshoots (a 96 px transfer reached
    a loss of 2e15 at iteration 3 and needed five more to come back). Here the first step starts from
    a guess that moves pixels by ``first_step`` on average and is checked by torch's strong-Wolfe
    line search: a fresh start accepts the guess (one evaluation more per stage), a warm start (a
    clip's next frame, a finer scale), where the guess overshoots, gets a shorter step. Later steps
    are torch's own, without a line search.

    **Guard.** Without a line search a step is taken blindly, and where a non-smooth term dominates
    (total variation is an L1 norm) the curvature pairs are noise and the steps grow until the loss
    explodes (1e5 to 1e9 in 30 steps). So each step first measures where the last one landed (the
    one evaluation a step has anyway). If the loss rose, that step is undone: the next trial is a
    shorter step along the same direction (backtracking, the minimum of the parabola through the two
    losses and the slope); after ``LBFGS_BACKTRACKS`` undone steps in a row the curvature pairs are
    forgotten and a line-searched gradient step starts again, as the first step does. A step
    undone says so (``undid_step``), and the engine logs the accepted point's loss for it, so the
    logged loss never rises. While the loss falls, nothing differs from torch's own step: the same
    pictures, bit for bit (``guard=False`` turns the guard off).

    **Giving up.** A non-finite loss is backtracked like any rise (each trial a tenth of the last),
    but where it is still NaN or infinite at the ``LBFGS_BACKTRACKS``-th trial (within 1e-3 of the
    step: a term that fails, a learning rate so large that every blind step overflows) the optimizer
    puts back the last finite point and says it ``diverged``; the engine stops as it does for any
    divergence, keeping the best picture and saying what to change.
    """

    fixed_objective = (
        True  # its curvature pairs and its guard compare losses: terms that redraw (swd) keep a stage's draw
    )

    def __init__(self, params, lr: float = 1.0, first_step: float | None = LBFGS_FIRST_STEP, guard: bool = True):
        params = list(params)
        numel = sum(p.numel() for p in params)
        super().__init__(params, lr=lr, max_iter=1, history_size=lbfgs_history(numel))
        self._lr = lr
        self._first = None if first_step is None else first_step * max(1, numel)
        self._guard = guard
        self._accepted: tuple | None = None  # (loss, pixels) where the last step started from
        self._rejected = 0  # steps undone in a row
        self.undid_step = False  # the last ``step`` undid the one before it (the engine logs the accepted loss)
        self.diverged = False  # the loss stays NaN or infinite however short the step: the guard gave up
        if self._first is not None:  # None: torch's own first step
            self.param_groups[0].update(lr=self._first, line_search_fn="strong_wolfe", max_eval=LBFGS_FIRST_EVALUATIONS)

    def step(self, closure):
        state = self.state[self._params[0]]
        self.undid_step = False
        if not self._guard or not state.get("n_iter"):
            return self._torch_step(closure, closure)
        loss = closure()  # where the last step landed
        value = float(loss.detach())
        if math.isfinite(value) and value <= self._accepted[0]:
            self._rejected = 0
            return self._torch_step(closure, _once(loss, closure))
        self.undid_step = True
        self._rejected += 1
        if not math.isfinite(value) and self._rejected >= LBFGS_BACKTRACKS:  # 1e-3 of the step: hopeless
            self.diverged = True
            self._place(self._accepted[1])
        elif self._rejected > LBFGS_BACKTRACKS:
            self._restart(closure)
        else:
            self._backtrack(state, value)
        return loss

    def _torch_step(self, closure, first):
        """torch's step, ``first`` answering its first evaluation; remembers where it started."""
        calls = [0]

        def measured():
            calls[0] += 1
            out = first() if calls[0] == 1 else closure()
            if calls[0] == 1 and self._guard:
                self._accepted = (float(out.detach()), self._flat(p.detach() for p in self._params))
            return out

        loss = super().step(measured)
        self.param_groups[0].update(lr=self._lr, line_search_fn=None, max_eval=1)
        return loss

    @torch.no_grad()
    def _backtrack(self, state, value):
        """Undo the last step and take a shorter one along the same direction: the minimum of the
        parabola through the accepted loss, its slope and the loss measured, within 0.1-0.5 of it."""
        loss, pixels = self._accepted
        d, t = state["d"], state["t"]
        slope = float(state["prev_flat_grad"].dot(d))  # the accepted point's gradient along d
        rise = value - loss - slope * t
        shorter = -slope * t * t / (2 * rise) if math.isfinite(value) and slope < 0 and rise > 0 else 0.1 * t
        state["t"] = min(max(shorter, 0.1 * t), 0.5 * t)
        self._place(pixels.add(d, alpha=state["t"]))

    def _restart(self, closure):
        """Backtracking did not help: the curvature pairs are noise. Forget them and take a gradient
        step from the accepted point, as the first step does (its line search included)."""
        loss, pixels = self._accepted
        self._rejected = 0
        self._place(pixels, self.state[self._params[0]]["prev_flat_grad"])
        self.state[self._params[0]]["n_iter"] = 0
        if self._first is not None:
            self.param_groups[0].update(lr=self._first, line_search_fn="strong_wolfe", max_eval=LBFGS_FIRST_EVALUATIONS)
        self._torch_step(closure, _once(torch.as_tensor(loss), closure))

    @torch.no_grad()
    def _place(self, flat, grad=None):
        offset = 0
        for p in self._params:
            n = p.numel()
            p.copy_(flat[offset : offset + n].view_as(p))
            if grad is not None:
                p.grad = grad[offset : offset + n].view_as(p).clone()
            offset += n

    @staticmethod
    def _flat(tensors):
        return torch.cat([t.reshape(-1) for t in tensors])


def _once(value, closure):
    """A closure whose first call answers ``value`` (already measured, its gradient in place)."""
    calls = [0]

    def answer():
        calls[0] += 1
        return value if calls[0] == 1 else closure()

    return answer


def lbfgs(params, lr, pixel_scale):
    first = None if LBFGS_FIRST_STEP is None else LBFGS_FIRST_STEP * pixel_scale / 255.0
    return FirstStepLBFGS(params, lr=lr, first_step=first)


def adam(params, lr, pixel_scale):
    return DynamoFreeAdam(params, lr=lr * pixel_scale / 255.0)


def normalized(params, lr, pixel_scale):
    return NormalizedGradient(params, lr=lr * pixel_scale / 255.0)
