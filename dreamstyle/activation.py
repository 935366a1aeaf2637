"""Dream objectives: what DeepDream and the hybrid maximize, as loss terms (everything is minimized).

A dream target is written ``LAYER`` (the whole layer), ``LAYER:C`` or ``LAYER:C1,C2`` (channels),
or ``LAYER:C@Y,X`` (one neuron, at row Y and column X of the layer's own grid), optionally with a
weight: ``LAYER:C=0.5``. :class:`ActivationLoss` maximizes the mean (or mean square) activation of
its targets; :class:`GuideLoss` maximizes, at each position, the best dot product with the features
of a guide image ("controlling dreams").

Both are *spatial*: their value is a mean over feature positions, so a tiled driver can add up the
values of tiles exactly (see :class:`~dreamstyle.terms.Region`).

Both are relative by default (see :func:`~dreamstyle.terms.energy`): an activation is divided by
its layer's root mean square on the starting picture (the "content" role: the transfer's photo, the
dream's base at each octave), a guide's dot product by the guide features' mean square, so
multiplying the backbone's features by a constant changes nothing and the layers of one term weigh
alike. A dream's step is normalized anyway; the scale matters where terms are added together.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .errors import OptionError
from .settings import dream_objective
from .terms import LossTerm, Region, StatTerm, energy, term_scale


@dataclass(frozen=True)
class DreamTarget:
    """One parsed ``--layer`` spec."""

    layer: str
    channels: tuple[int, ...] | None = None  # None: every channel
    position: tuple[int, int] | None = None  # (row, column) in the layer's grid: one neuron
    weight: float = 1.0

    @property
    def spec(self) -> str:
        text = self.layer
        if self.channels is not None:
            text += ":" + ",".join(str(c) for c in self.channels)
        if self.position is not None:
            text += "@{},{}".format(*self.position)
        return text

    def __str__(self) -> str:
        return self.spec if self.weight == 1.0 else f"{self.spec}={self.weight:g}"


def _ints(text: str, what: str, spec: str) -> tuple[int, ...]:
    try:
        values = tuple(int(p) for p in text.split(","))
    except ValueError:
        raise OptionError(
            f"layer spec {spec!r}: {what} must be whole numbers, like LAYER:12 or LAYER:3,7 or LAYER:12@5,9"
        ) from None
    if any(v < 0 for v in values):
        raise OptionError(f"layer spec {spec!r}: {what} must be zero or more")
    return values


def parse_target(spec: str | DreamTarget, weight: float | None = None) -> DreamTarget:
    """``"relu4_4:12@5,9=0.5"`` -> DreamTarget("relu4_4", (12,), (5, 9), 0.5)."""
    if isinstance(spec, DreamTarget):
        return spec if weight is None else DreamTarget(spec.layer, spec.channels, spec.position, float(weight))
    text = str(spec).strip()
    body, eq, w = text.rpartition("=") if "=" in text else (text, "", "")
    if eq:
        try:
            weight = float(w)
        except ValueError:
            raise OptionError(f"layer spec {text!r}: the weight after '=' must be a number") from None
    if not math.isfinite(weight if weight is not None else 1.0):
        raise OptionError(f"layer spec {text!r}: the weight must be a finite number")
    layer, colon, rest = body.partition(":")
    layer = layer.strip()
    if not layer:
        raise OptionError(f"layer spec {text!r} names no layer; write LAYER, LAYER:C, LAYER:C1,C2 or LAYER:C@Y,X")
    channels = position = None
    if colon:
        chans, at, pos = rest.partition("@")
        if not chans.strip():
            raise OptionError(f"layer spec {text!r}: give channels after ':' (LAYER:C or LAYER:C1,C2)")
        channels = _ints(chans, "channels", text)
        if at:
            position = _ints(pos, "the position Y,X", text)
            if len(position) != 2:
                raise OptionError(f"layer spec {text!r}: a neuron position is Y,X (row, column), like LAYER:12@5,9")
            if len(channels) != 1:
                raise OptionError(f"layer spec {text!r}: a neuron is one channel at one position (LAYER:C@Y,X)")
    elif "@" in body:
        raise OptionError(f"layer spec {text!r}: a neuron needs a channel, like LAYER:C@Y,X")
    return DreamTarget(layer, channels, position, 1.0 if weight is None else float(weight))


def parse_targets(specs) -> list[DreamTarget]:
    """One spec, a list of specs, or a {spec: weight} mapping -> targets (order kept)."""
    if specs is None:
        return []
    if isinstance(specs, (str, DreamTarget)):
        specs = [specs]
    if isinstance(specs, dict):
        targets = [parse_target(s, w) for s, w in specs.items()]
    else:
        targets = [parse_target(s) for s in specs]
    return targets


def check_targets(targets: Sequence[DreamTarget], backbone) -> None:
    """Unknown layers and channels out of range become one clear line naming the valid range."""
    layer_map = backbone.layer_map
    for t in targets:
        layer = layer_map.get(t.layer)  # UnknownNameError with suggestions and the listing hint
        if t.channels is not None:
            bad = [c for c in t.channels if c >= layer.channels]
            if bad:
                raise OptionError(
                    f"layer spec {t.spec!r}: channel {bad[0]} is out of range; {t.layer} of {backbone.name} has "
                    f"{layer.channels} channels (0-{layer.channels - 1}); list layers with: "
                    f"dreamstyle layers {backbone.name}"
                )


def estimated_grid(backbone, layer: str, height: int, width: int) -> tuple[int, int]:
    """The layer's grid at an input of height x width (by its stride; padded nets match exactly)."""
    s = backbone.layer_map.get(layer).stride
    return max(1, math.ceil(height / s)), max(1, math.ceil(width / s))


def check_positions(targets: Sequence[DreamTarget], backbone, height: int, width: int) -> None:
    for t in targets:
        if t.position is None:
            continue
        gh, gw = estimated_grid(backbone, t.layer, height, width)
        y, x = t.position
        if y >= gh or x >= gw:
            raise OptionError(
                f"layer spec {t.spec!r}: position {y},{x} is outside the grid of {t.layer}, which is about "
                f"{gh}x{gw} (rows 0-{gh - 1}, columns 0-{gw - 1}) at {width}x{height} px"
            )


class SpatialTerm(StatTerm):
    """A term whose value is a mean over feature positions: each tile's share adds up exactly.

    ``forward(feats, image, regions=None)``: ``regions`` maps each layer to a :class:`Region`
    when the features are those of one tile, and the value is then that tile's share.
    """

    spatial = True
    linear = True

    def stats(self, feats, image, regions=None):
        return {"value": self.forward(feats, image, regions)}

    def value(self, stats):
        return stats["value"]


def _region_mean(values: torch.Tensor, region: Region | None) -> torch.Tensor:
    """Mean of a (B, H, W) map over the whole grid, or the tile's share of it."""
    if region is None:
        return values.mean()
    y0, y1, x0, x1 = region.box
    return values[:, y0:y1, x0:x1].sum() / (values.shape[0] * region.count)


def parse_objective(objective: str) -> tuple[str, int]:
    """``"strongest:8"`` -> ("strongest", 8); ``"strongest"`` -> ("strongest", 8); ``"mean"`` -> ("mean", 0)
    (the settings' check, :func:`dreamstyle.settings.dream_objective`, says what is wrong)."""
    mode, _, k = dream_objective(objective, "--objective").partition(":")
    return mode, int(k or 0)


class ActivationLoss(SpatialTerm):
    """Minus the mean (or mean square, ``objective="l2"``) activation of the targets: maximizes them.

    A whole layer or a set of channels is averaged over channels and positions; a neuron is one
    value. Targets add up with their weights. ``objective="strongest:K"`` (or ``"weakest:K"``)
    maximizes the mean of the K channels of each whole-layer target that the content image excites
    most (least), picked once, at the first stage, and kept (neural-dream's channel modes).
    """

    def __init__(self, layers="relu4_4", objective: str = "mean", each: bool = False):
        super().__init__()
        self.mode, self.k = parse_objective(objective)
        self.targets = parse_targets(layers)
        if not self.targets:
            raise OptionError("the activation term needs at least one layer")
        # each: image b of the batch maximizes the b-th listed channel (an atlas's batch)
        self.each = bool(each)
        if self.each and any(t.channels is None or t.position is not None for t in self.targets):
            raise OptionError("the activation term's 'each' mode needs channels (LAYER:C1,C2,...), one per image")
        for i, t in enumerate(self.targets if self.each else ()):  # indices made once, moved with the term
            self.register_buffer(f"each{i}", torch.tensor(t.channels), persistent=False)
        self.objective = objective
        self.layers = list(dict.fromkeys(t.layer for t in self.targets))
        self.position_scale = (1.0, 1.0)
        self.picked: dict[str, tuple[int, ...]] = {}  # strongest / weakest: the channels of each layer
        self.norms: dict[str, torch.Tensor] = {}  # relative: each layer's divisor (absolute: none)

    def describe(self) -> str:
        return f"{self.objective} activation of " + ", ".join(str(t) for t in self.targets)

    def prepare(self, ctx, extract):
        # Neuron positions are given at the final size; earlier (smaller) octaves scale them.
        self.position_scale = tuple(ctx.options.get("position_scale", (1.0, 1.0)))
        pick = self.mode in ("strongest", "weakest") and (ctx.options.get("stage", 1) == 1 or not self.picked)
        relative = term_scale(ctx) == "relative" and bool(ctx.images.get("content"))
        feats = ctx.features(ctx.first("content"), self.layers, extract) if pick or relative else None
        if pick:
            self.picked = {}
            self.pick(feats)
        # relative: the layer's rms (its mean square for l2) on the starting picture, a constant
        self.norms = (
            {layer: energy(feats[layer]) ** (1.0 if self.mode == "l2" else 0.5) for layer in self.layers}
            if relative
            else {}
        )

    @torch.no_grad()
    def pick(self, feats) -> None:
        """The K channels of each whole layer with the highest (lowest) mean activation in ``feats``."""
        for t in self.targets:
            if t.channels is None and t.layer not in self.picked:
                means = feats[t.layer].float().mean(dim=(0, 2, 3))
                k = min(self.k, means.numel())
                order = means.topk(k, largest=self.mode == "strongest").indices
                self.picked[t.layer] = tuple(int(c) for c in order)

    def _neuron(self, t: DreamTarget, f: torch.Tensor, region: Region | None):
        full = region.grid if region is not None else tuple(f.shape[-2:])
        y = min(full[0] - 1, int(t.position[0] * self.position_scale[0]))
        x = min(full[1] - 1, int(t.position[1] * self.position_scale[1]))
        if region is not None:
            y0, y1, x0, x1 = region.box
            y, x = y - region.offset[0], x - region.offset[1]
            if not (y0 <= y < y1 and x0 <= x < x1):
                return None  # another tile owns this neuron
        return f[:, t.channels[0], y, x].float().mean()

    def forward(self, feats, image, regions=None):
        total = image.new_zeros((), dtype=torch.float32)
        for i, t in enumerate(self.targets):
            f = feats[t.layer]  # sliced before .float(): no fp32 copy of the whole layer under autocast
            region = regions.get(t.layer) if regions is not None else None
            if t.position is not None:
                v = self._neuron(t, f, region)
                if v is None:
                    continue
                v = v * v if self.mode == "l2" else v
            elif self.each:
                index = getattr(self, f"each{i}")
                picked = f[torch.arange(len(index), device=f.device), index]
                v = _region_mean(picked.float(), region)
            else:
                channels = t.channels if t.channels is not None else self.picked.get(t.layer)
                if channels is not None:
                    f = f[:, list(channels)]
                f = f.float()
                per_position = (f * f if self.mode == "l2" else f).mean(1)
                v = _region_mean(per_position, region)
            norm = self.norms.get(t.layer)
            total = total - t.weight * (v if norm is None else v / norm.to(v.device))
        return total


class GuideLoss(SpatialTerm):
    """Controlling dreams: at each position, minus the best dot product of the image's features
    with the guide image's (channels divided out), averaged over positions."""

    reads = ("guide",)

    def __init__(self, layers="relu4_4"):
        super().__init__()
        self.targets = parse_targets(layers)
        if not self.targets:
            raise OptionError("the guide term needs at least one layer")
        for t in self.targets:
            if t.position is not None:
                raise OptionError(f"layer spec {t.spec!r}: --guide works on whole layers or channels, not neurons")
        self.layers = list(dict.fromkeys(t.layer for t in self.targets))
        self.norms: list = []

    def describe(self) -> str:
        return "guide on " + ", ".join(str(t) for t in self.targets)

    def _select(self, t: DreamTarget, f: torch.Tensor) -> torch.Tensor:
        return f[:, list(t.channels)] if t.channels is not None else f

    def prepare(self, ctx, extract):
        feats = extract(ctx.first("guide"))
        for i, t in enumerate(self.targets):
            g = self._select(t, feats[t.layer].float())  # (1, C, h, w)
            self.register_buffer(f"guide{i}", g[0].flatten(1).contiguous(), persistent=False)  # (C, Q)
        # relative: a dot product (channels divided out) over the guide's mean square
        self.norms = (
            [energy(getattr(self, f"guide{i}")) for i in range(len(self.targets))]
            if term_scale(ctx) == "relative"
            else []
        )

    def forward(self, feats, image, regions=None):
        total = image.new_zeros((), dtype=torch.float32)
        for i, t in enumerate(self.targets):
            guide = getattr(self, f"guide{i}")
            f = self._select(t, feats[t.layer]).float()
            b, c, h, w = f.shape
            x = f.flatten(2)  # (B, C, P)
            with torch.no_grad():  # the best guide position for each image position, in chunks
                best = torch.cat(
                    [(x[:, :, p : p + 4096].transpose(1, 2) @ guide).argmax(-1) for p in range(0, h * w, 4096)], dim=1
                )  # (B, P)
            chosen = guide[:, best].permute(1, 0, 2)  # (B, C, P): the guide vector each position follows
            per_position = (x * chosen).sum(1).reshape(b, h, w) / c
            region = regions.get(t.layer) if regions is not None else None
            v = _region_mean(per_position, region)
            total = total - t.weight * (v / self.norms[i] if self.norms else v)
        return total


class DiversityLoss(LossTerm):
    """Lucent's diversity: the mean cosine similarity between the Gram matrices (the style) of each
    pair of images of a batch at ``layers``; minimized, it pushes the batch's pictures apart (dream
    --samples N --loss diversity=W). A batch of one has nothing to differ from: zero."""

    reads = ()
    min_batch = 2

    def __init__(self, layers="relu4_4"):
        super().__init__()
        self.layers = [p.strip() for p in layers.split(",")] if isinstance(layers, str) else list(layers)
        if not self.layers or not all(self.layers):
            raise OptionError("the diversity term needs layers (diversity:layers=relu4_4)")

    def describe(self) -> str:
        return "diversity (Gram similarity across the batch) at " + ", ".join(self.layers)

    def forward(self, feats, image):
        total = image.new_zeros((), dtype=torch.float32)
        for layer in self.layers:
            f = feats[layer].float()
            b, c, h, w = f.shape
            if b < 2:
                continue
            x = f.flatten(2)
            gram = torch.nn.functional.normalize((x @ x.transpose(1, 2)).flatten(1), dim=1)  # (B, C*C), unit
            similarity = gram @ gram.T
            total = total + (similarity.sum() - similarity.diagonal().sum()) / (b * (b - 1))
        return total / len(self.layers)
