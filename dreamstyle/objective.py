"""Objectives as values, in the spirit of lucent's: terms add and scale.

    objective = 3e6 * term("content", layers=...) + 1.5e7 * term("style", layers=...) + 3e4 * term("tv")
    hybrid = objective + 2e7 * term("activation", layers="relu4_4")

An :class:`Objective` is a weighted sum of named leaves (registered loss terms); it keeps one value
per leaf for the per-term breakdown. Everything is minimized: a negative weight maximizes.
``objective(features, image)`` returns ``(total, values)`` with ``values`` the weighted value of
each leaf, in order (a 1-D fp32 tensor aligned with ``objective.names``).
"""

from __future__ import annotations

import contextlib
import inspect
from typing import Callable

import torch
from torch import nn

from .errors import OptionError, TermFailed, UserError
from .faults import is_out_of_memory
from .plugins import describe_failure, get_host
from .settings import short_repr
from .termspec import TermContext


class Objective(nn.Module):
    """A weighted sum of named loss terms. Build one with :func:`term` and ``+``/``*``, or from a
    mapping ``{name: (term_module, weight)}``."""

    def __init__(self, leaves: dict | list | None = None):
        super().__init__()
        if isinstance(leaves, dict):
            leaves = [(name, t, w) for name, (t, w) in leaves.items()]
        leaves = list(leaves or [])
        self.names = _unique([name for name, _, _ in leaves])
        self.terms = nn.ModuleList([t for _, t, _ in leaves])
        self.weights = [float(w) for _, _, w in leaves]

    @property
    def leaves(self) -> list[tuple[str, nn.Module, float]]:
        return list(zip(self.names, self.terms, self.weights))

    # --- algebra --------------------------------------------------------------------------
    def __add__(self, other):
        if isinstance(other, (int, float)) and other == 0:  # sum() starts from 0
            return self
        if not isinstance(other, Objective):
            return NotImplemented
        return Objective(self.leaves + other.leaves)

    __radd__ = __add__

    def __mul__(self, k):
        if not isinstance(k, (int, float)):
            return NotImplemented
        return Objective([(n, t, w * k) for n, t, w in self.leaves])

    __rmul__ = __mul__

    def __neg__(self):
        return self * -1.0

    def __sub__(self, other):
        return self + (-other)

    def without_zero_weights(self) -> Objective:
        return Objective([leaf for leaf in self.leaves if leaf[2] != 0])

    def describe(self) -> str:
        return " + ".join(f"{w:g}*{n}" for n, _, w in self.leaves) or "0"

    def to_recipe(self) -> dict:
        """Every term as it ran: its weight, its options and the plugin that supplied it."""
        return {
            n: {
                "weight": w,
                "options": {k: plain_option(v) for k, v in getattr(t, "dreamstyle_options", {}).items()},
                "plugin": getattr(t, "dreamstyle_plugin", ""),
            }
            for n, t, w in self.leaves
        }

    def __repr__(self) -> str:
        return f"Objective({self.describe()})"

    # --- what it needs ------------------------------------------------------------------------
    @property
    def layers(self) -> list[str]:
        seen: dict[str, None] = {}
        for t in self.terms:
            for name in getattr(t, "layers", ()):
                seen[name] = None
        return list(seen)

    def prepare(self, ctx: TermContext, extract: Callable, skip: Callable[[nn.Module], bool] | None = None) -> None:
        """Let each term compute its targets; ``skip(term)`` true leaves a term's targets as they are."""
        for name, t in zip(self.names, self.terms):
            if skip is None or not skip(t):
                with self._failing(name):
                    t.prepare(ctx, extract)

    def new_step(self, step: int) -> None:
        """The optimizer starts step ``step`` (from 1 in each stage): terms that change from step to
        step (``LossTerm.new_step``: the sliced Wasserstein term's directions) are told."""
        for name, t in zip(self.names, self.terms):
            if hasattr(t, "new_step"):
                with self._failing(name):
                    t.new_step(step)

    def label(self, name: str) -> str:
        """How a line names leaf ``name``: "loss term 'x'", and its plugin where it is not built in."""
        plugin = getattr(self.terms[self.names.index(name)], "dreamstyle_plugin", "")
        return f"loss term {name!r}" + (
            f" (plugin {plugin!r})" if plugin and not plugin.startswith("dreamstyle.") else ""
        )

    def forward(self, feats, image):
        values = []
        for name, t, w in self.leaves:
            with self._failing(name):
                v = t(feats, image)
            try:
                v = torch.as_tensor(v, device=image.device, dtype=torch.float32)
            except (TypeError, ValueError, RuntimeError):
                raise TermFailed(f"{self.label(name)} returned {short_repr(v)}, not one number") from None
            if v.numel() != 1:
                raise TermFailed(f"{self.label(name)} returned {tuple(v.shape)} values, not one number")
            values.append(w * v.reshape(()))
        values = torch.stack(values)
        return values.sum(), values

    @contextlib.contextmanager
    def _failing(self, name: str):
        """A term that raises (but a UserError: a user's mistake, or out of memory) or exits: a
        :class:`~dreamstyle.errors.TermFailed` naming it; Ctrl-C passes."""
        try:
            yield
        except UserError:
            raise
        except (Exception, SystemExit) as exc:
            if is_out_of_memory(exc):
                raise
            raise TermFailed(f"{self.label(name)} failed ({describe_failure(exc)})") from exc


def plain_option(value):
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): plain_option(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_option(v) for v in value]
    return str(value)


def _unique(names: list[str]) -> list[str]:
    """Leaf names, a repeated name numbered (activation, activation_2, ...)."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
    return out


# --- leaves from the registry ------------------------------------------------------------------


def option_names(build) -> list[str]:
    try:
        params = inspect.signature(build).parameters.values()
    except (TypeError, ValueError):
        return []
    return [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def _takes_any(build) -> bool:
    try:
        return any(p.kind == p.VAR_KEYWORD for p in inspect.signature(build).parameters.values())
    except (TypeError, ValueError):
        return True


def term(name: str, weight: float | None = 1.0, *, backbone=None, **options) -> Objective:
    """One registered loss term as an objective of one leaf. ``weight=None`` takes the term's
    registered default weight; ``backbone`` (when given) must have every layer the term reads, and
    is passed to a ``build`` that has a ``backbone`` parameter (not a user's option), so its layers
    can default to the backbone's own (``backbone.content_layers``, ``style_layers``, ``dream_layers``)."""
    spec = get_host().loss_terms.get(name)
    names = [n for n in option_names(spec.build) if n != "backbone"]
    if not _takes_any(spec.build):
        unknown = [k for k in options if k not in names]
        if unknown:
            raise OptionError(
                f"loss term {name!r} has no option {', '.join(map(repr, unknown))}"
                f" (its options: {', '.join(names) or 'none'})"
            )
    given = dict(options)
    if backbone is not None and "backbone" in option_names(spec.build):
        given["backbone"] = backbone  # a build that takes it can default to the backbone's own layers
    try:
        module = spec.build(**given)
    except (TypeError, ValueError) as exc:
        raise OptionError(f"loss term {name!r}: {exc}") from None
    if backbone is not None:
        missing = [layer for layer in getattr(module, "layers", ()) if layer not in backbone.layer_map]
        if missing:
            raise OptionError(
                f"loss term {name!r} uses layer {missing[0]!r}, which {backbone.name} does not have;"
                f" give it layers of {backbone.name} (e.g. --loss {name}:layers=...; list them"
                f" with: dreamstyle layers {backbone.name})"
            )
    try:
        module.dreamstyle_plugin = spec.plugin  # who made it, for messages and the recipe
        module.dreamstyle_options = dict(options)
    except AttributeError:
        pass
    return Objective([(name, module, spec.default_weight if weight is None else weight)])


def extra_terms(losses: dict, backbone, defaults: dict | None = None) -> Objective:
    """The ``--loss`` terms: {name: (weight or None, {options})}; a term without a weight gets
    ``defaults[name]`` where given (0.1's absolute defaults, for its recipes), else its registered one."""
    defaults = defaults or {}
    for name, (_, opts) in losses.items():
        if "backbone" in opts:
            raise OptionError(
                f"loss term {name!r}: 'backbone' is not an option of a term (it gets the backbone in "
                "use); give --backbone"
            )
    return sum(
        (
            term(name, defaults.get(name) if w is None else w, backbone=backbone, **opts)
            for name, (w, opts) in losses.items()
        ),
        Objective(),
    )
