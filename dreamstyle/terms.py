"""Loss terms: small modules that score an image's features; everything is minimized.

A term is registered as a :class:`TermSpec` through ``register_loss_terms``; ``spec.build(**options)``
makes the module. Before optimizing, the driver calls ``term.prepare(ctx, extract)`` so the term can
compute its targets (as buffers) from the images in ``ctx``; then ``term(features, image)`` returns
a scalar to minimize. Terms compose with weights into an :class:`~dreamstyle.objective.Objective`.

A :class:`StatTerm` is a function of sums over feature positions (a Gram matrix, a squared error,
a mean activation): such terms work on pictures made in tiles (:mod:`dreamstyle.tiling`), exactly,
and take per-position weights (transparency, masks) through :class:`PositionWeights`.

Scale: the built-in feature terms are *relative* (scale-free): each layer's error is divided by its
target's :func:`energy` (the mean square of the content features, of the style Gram matrix), so
multiplying a backbone's features by any positive constant leaves the optimization as it was, and
the layers of one term weigh alike whatever their channel count or activation scale. The
normalizers come from the targets only (constants for the picture being made), so tiles still add
up exactly. Recipes made before dreamstyle 0.2.0 ran *absolute* terms (the plain squared errors);
:func:`term_scale` reads which one a run uses (``ctx.options["term_scale"]``), and their replay asks
for "absolute".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .errors import OptionError
from .settings import TERM_SCALES  # relative: divided by the target's energy (0.2.0); absolute: 0.1's
from .termspec import TermContext, backbone_layers, own_layers  # noqa: F401 - the plugin API


def term_scale(ctx: TermContext) -> str:
    """How a run scales its feature terms: "relative" (the default) or "absolute" (the plain squared
    error, as dreamstyle 0.1 did; replays of recipes made before 0.2.0 ask for it)."""
    scale = (ctx.options or {}).get("term_scale", "relative")
    if scale not in TERM_SCALES:
        raise OptionError(f"term_scale must be one of {', '.join(TERM_SCALES)}, not {scale!r}")
    return scale


@torch.no_grad()
def energy(target: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """A target's energy: the mean square of ``target`` (fp32, detached), over every element, or
    weighted per position by ``weights`` (broadcast to ``target``; their total must be above 0).
    Divide a squared error by the energy of the target it is measured against and the term has no
    scale: multiplying the backbone's features by c multiplies both by c^2 (a Gram matrix's by c^4).
    Compute it once, from the targets, while preparing (not from the picture being made): then it is
    a constant, the gradient stays the plain one scaled, and tiles add up exactly. A target with no
    energy (all zero) gives 1: that layer's error is then absolute."""
    t = target.detach().float()
    sq = t * t
    if weights is None:
        e = sq.mean()
    else:
        w = weights.detach().float().expand_as(sq)
        e = (sq * w).sum() / w.sum().clamp_min(1e-12)
    return torch.where(e > 0, e, torch.ones_like(e))


class LossTerm(nn.Module):
    """Base class. Subclasses set ``self.layers`` (feature layers they read) and may declare
    ``reads``, the image roles ``prepare`` reads: a driver that keeps some roles fixed (a clip's or
    a folder's style images) prepares such a term once. ``None`` means unknown: prepared every time."""

    layers: list[str] = []
    reads: tuple[str, ...] | None = None
    min_batch: int = 1  # the smallest batch of pictures the term has work in (diversity: 2)

    def prepare(self, ctx: TermContext, extract: Callable[[torch.Tensor], dict]) -> None:
        """Compute targets; ``extract(image)`` gives that image's features (no grad)."""

    def describe(self) -> str:
        return type(self).__name__


@dataclass
class Region:
    """The part of one layer's feature map that a tile owns.

    ``box`` = (y0, y1, x0, x1) in the tile's own feature map; ``offset`` = where the tile's
    feature map starts in the whole image's grid; ``grid`` = the whole grid's (rows, columns).
    """

    box: tuple[int, int, int, int]
    offset: tuple[int, int]
    grid: tuple[int, int]

    @property
    def count(self) -> int:
        return self.grid[0] * self.grid[1]

    def whole(self) -> tuple[slice, slice]:
        """Where the owned part lies in the whole image's grid."""
        y0, y1, x0, x1 = self.box
        oy, ox = self.offset
        return slice(oy + y0, oy + y1), slice(ox + x0, ox + x1)


def owned(f: torch.Tensor, region: Region | None) -> torch.Tensor:
    """The positions of ``f`` (B, C, h, w) that a tile owns (all of them untiled)."""
    if region is None:
        return f
    y0, y1, x0, x1 = region.box
    return f[..., y0:y1, x0:x1]


def in_whole(t: torch.Tensor, region: Region | None) -> torch.Tensor:
    """A whole-image map ``t`` (B, C, H, W) at the positions a tile owns (all of it untiled)."""
    if region is None:
        return t
    rows, cols = region.whole()
    return t[..., rows, cols]


def grid_of(f: torch.Tensor, region: Region | None) -> tuple[int, int]:
    return tuple(region.grid) if region is not None else tuple(f.shape[-2:])


class PositionWeights:
    """A weight per position of the picture being made (its transparency, a mask), given at pixel
    resolution (N, 1, H, W) and average-pooled to each layer's grid on first use. ``None``: every
    position weighs 1."""

    def __init__(self, mask: torch.Tensor | None = None):
        self.mask = None if mask is None else mask.float()
        self._grids: dict[tuple, torch.Tensor] = {}

    def __bool__(self) -> bool:
        return self.mask is not None

    def at(self, grid: tuple[int, int], region: Region | None = None, device=None) -> torch.Tensor | None:
        """(N, 1, h, w) weights of the owned positions of a layer whose whole grid is ``grid``."""
        if self.mask is None:
            return None
        key = (tuple(grid), str(device))
        if key not in self._grids:
            mask = self.mask.to(device) if device is not None else self.mask
            self._grids[key] = F.adaptive_avg_pool2d(mask, tuple(grid))
        return in_whole(self._grids[key], region)


def combine(*masks: torch.Tensor | None) -> torch.Tensor | None:
    """The product of the masks given (None: no mask)."""
    out = None
    for m in masks:
        if m is not None:
            out = m.float() if out is None else out * m.float()
    return out


class StatTerm(LossTerm):
    """A term whose value is a function of sums over feature positions, so a picture made in tiles
    gets exactly the value (and gradient) of the whole picture.

    ``stats(feats, image, regions)`` returns a dict of tensors: sums over the positions a tile owns
    (``regions`` maps each layer to its :class:`Region`; ``None``: the whole image's features);
    ``value(stats)`` is the term's value from those sums added up over every tile. ``forward`` is
    ``value(stats(...))``. ``linear``: the value is linear in the sums (and 0 for zero sums), so the
    tiles need one pass instead of two.
    """

    linear = False

    def stats(self, feats, image, regions=None) -> dict:
        raise NotImplementedError

    def value(self, stats: dict) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, feats, image, regions=None):
        return self.value(self.stats(feats, image, regions))


def parse_layer_weights(spec: str | Sequence[str] | None) -> dict[str, float]:
    """ "relu1_1,relu2_1=0.5" -> {"relu1_1": 1.0, "relu2_1": 0.5} (order kept)."""
    if spec is None:
        return {}
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    out: dict[str, float] = {}
    for item in items:
        item = item.strip()
        if not item:
            continue
        name, _, w = item.partition("=")
        try:
            out[name.strip()] = float(w) if w else 1.0
        except ValueError:
            raise OptionError(f"layer weight {w!r} for {name!r} is not a number") from None
    return out


class _Gram(torch.autograd.Function):
    """``G = F Fᵀ · scale`` for F (B, C, N). Its backward is one batched matmul,
    ``dF = (dG + dGᵀ) F · scale``: the symmetric part is formed on the small C×C matrix first,
    where autograd's generic backward would do two (C×C)·(C×N) products and add two C×N
    gradients. That is about a third less work and memory traffic per Gram per step."""

    @staticmethod
    def forward(ctx, f, scale):
        ctx.save_for_backward(f)
        ctx.scale = scale
        return torch.baddbmm(
            f.new_zeros(()).expand(f.shape[0], f.shape[1], f.shape[1]), f, f.transpose(1, 2), beta=0, alpha=scale
        )

    @staticmethod
    def backward(ctx, grad):
        (f,) = ctx.saved_tensors
        sym = grad + grad.transpose(1, 2)
        return torch.baddbmm(f.new_zeros(()).expand_as(f), sym, f, beta=0, alpha=ctx.scale), None


def gram(features: torch.Tensor) -> torch.Tensor:
    """Gram matrices (B, C, C) normalized by C*H*W, always computed in fp32."""
    b, c, h, w = features.shape
    return gram_sum(features) / (h * w)


def gram_sum(features: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """``sum over positions of w * f fᵀ / C`` (B, C, C) in fp32: a Gram matrix before dividing by
    the positions' (weights') total, so tiles add up. ``weights`` (1 or B, 1, h, w), zero or more."""
    with torch.autocast(features.device.type, enabled=False):
        b, c, h, w = features.shape
        f = features.float()
        if weights is not None:
            f = f * weights.float().sqrt()
        return _Gram.apply(f.reshape(b, c, h * w), 1.0 / c)


def _count(f: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """The positions of ``f`` (B, C, h, w) per image, or their weights' total: (B,)."""
    if weights is None:
        return f.new_full((f.shape[0],), float(f.shape[-2] * f.shape[-1]), dtype=torch.float32)
    return weights.float().expand(f.shape[0], 1, *f.shape[-2:]).sum((1, 2, 3))


class _LayerWeighted(StatTerm):
    def __init__(self, layers: dict[str, float] | str | Sequence[str]):
        super().__init__()
        weights = layers if isinstance(layers, dict) else parse_layer_weights(layers)
        if not weights:
            raise OptionError(f"{type(self).__name__} needs at least one layer")
        self.layers = list(weights)
        self.layer_weights = weights
        self.where = PositionWeights()


class ContentLoss(_LayerWeighted):
    """Feature MSE against the content image, per layer weighted; over the opaque part of the
    picture when it has transparency (``alpha``), weighted by it. Relative (the default): each
    layer's MSE is divided by its target's :func:`energy` over the same positions."""

    reads = ("content", "alpha")

    def prepare(self, ctx, extract):
        feats = ctx.features(ctx.first("content"), self.layers, extract)
        self.where = PositionWeights(ctx.masks.get("alpha"))
        relative = term_scale(ctx) == "relative"
        for i, name in enumerate(self.layers):
            target = feats[name].detach().float()
            self.register_buffer(f"target{i}", target, persistent=False)
            norm = energy(target, self.where.at(tuple(target.shape[-2:]), None, target.device)) if relative else None
            self.register_buffer(f"energy{i}", norm, persistent=False)

    def stats(self, feats, image, regions=None):
        out = {}
        for i, name in enumerate(self.layers):
            region = regions.get(name) if regions else None
            f = owned(feats[name], region).float()
            w = self.where.at(grid_of(feats[name], region), region, f.device)
            d = (f - in_whole(getattr(self, f"target{i}"), region)) ** 2
            out[f"sq{i}"] = (d if w is None else d * w).sum()
            out[f"n{i}"] = _count(f, w).sum() * f.shape[1]
        return out

    def value(self, stats):
        total = 0.0
        for i, name in enumerate(self.layers):
            v = stats[f"sq{i}"] / stats[f"n{i}"].clamp_min(1e-12)
            norm = getattr(self, f"energy{i}", None)
            total = total + self.layer_weights[name] * (v if norm is None else v / norm)
        return total


def style_groups(ctx) -> tuple[list[float], list[list[float]], list]:
    """How the style images share the picture, as the Gram term reads it: one group per region
    mask (each style on its own region, weighed by its blend weight), or one group mixing every
    style by its blend weight. Returns (each group's share, each group's weights of the style
    images, each group's per-position weights of the picture or None)."""
    styles = ctx.images.get("style") or []
    if not styles:
        raise OptionError("the style term needs at least one style image")
    blend = list(ctx.blend) if ctx.blend else [1.0] * len(styles)
    if len(blend) != len(styles):
        raise OptionError(f"--style-blend has {len(blend)} weights for {len(styles)} style images")
    if sum(blend) <= 0:
        raise OptionError("--style-blend weights must add up to more than 0")
    blend = [b / sum(blend) for b in blend]
    base = combine(ctx.masks.get("alpha"), _inverse(ctx.masks.get("content")))
    regions = ctx.masks.get("style")
    if regions:
        mixes = [[1.0 if j == i else 0.0 for j in range(len(styles))] for i in range(len(styles))]
        return blend, mixes, [combine(base, m) for m in fill_regions(regions, len(styles))]
    return [1.0], [blend], [base]


class StyleLoss(_LayerWeighted):
    """Gram-matrix MSE against the style images, per layer weighted; fp32 throughout. Relative (the
    default): each layer's error is divided by its target Gram matrix's :func:`energy`.

    Without masks the style images' Gram matrices are blended (``--style-blend``) into one target.
    With region masks (``ctx.masks["style"]``, one per style image: where on the picture that style
    goes; a style without one paints what the others leave) each style is matched on its own region
    only: the picture's Gram matrix over that region against that style's (Gatys et al. 2017). The
    picture's transparency (``alpha``) and ``content`` mask (where the photo should stay) weigh the
    positions down; a style image's own transparency (``style_alpha``) leaves its clear parts out of
    its Gram matrix.
    """

    reads = ("style", "style_alpha", "style_mask", "content_mask", "alpha")

    def __init__(self, layers):
        super().__init__(layers)
        self.shares, self.wheres = [1.0], [PositionWeights()]  # one target over every position until prepared

    def prepare(self, ctx, extract):
        self.shares, mixes, wheres = style_groups(ctx)
        styles = ctx.images["style"]
        own = list(ctx.masks.get("style_alpha") or []) + [None] * len(styles)
        grams = [self._style_grams(style, alpha, ctx, extract) for style, alpha in zip(styles, own)]
        self.wheres = [PositionWeights(m) for m in wheres]
        relative = term_scale(ctx) == "relative"
        for k, mix in enumerate(mixes):
            if ctx.masks.get("style"):  # one style a region: its Gram matrices as they are
                targets = grams[mix.index(1.0)]
            else:
                targets = {n: sum(b * g[n] for b, g in zip(mix, grams)) for n in self.layers}
            for i, name in enumerate(self.layers):
                self.register_buffer(f"target{k}_{i}", targets[name], persistent=False)
                self.register_buffer(f"energy{k}_{i}", energy(targets[name]) if relative else None, persistent=False)

    def _style_grams(self, style, alpha, ctx, extract) -> dict:
        where = PositionWeights(alpha)

        def sums(feats, regions):
            out = {}
            for name in self.layers:
                region = regions.get(name) if regions else None
                f = owned(feats[name], region)
                w = where.at(grid_of(feats[name], region), region, f.device)
                out[name], out[name + ".n"] = gram_sum(f, w), _count(f, w)
            return out

        total = ctx.reduce(style, sums, extract)
        return {n: (total[n] / total[n + ".n"].clamp_min(1e-12)[:, None, None]).detach() for n in self.layers}

    def stats(self, feats, image, regions=None):
        out = {}
        for i, name in enumerate(self.layers):
            region = regions.get(name) if regions else None
            f = owned(feats[name], region)
            for k, where in enumerate(self.wheres):
                w = where.at(grid_of(feats[name], region), region, f.device)
                out[f"g{k}_{i}"], out[f"n{k}_{i}"] = gram_sum(f, w), _count(f, w)
        return out

    def value(self, stats):
        total = 0.0
        for i, name in enumerate(self.layers):
            for k, share in enumerate(self.shares):
                g = stats[f"g{k}_{i}"] / stats[f"n{k}_{i}"].clamp_min(1e-12)[:, None, None]
                v = torch.mean((g - getattr(self, f"target{k}_{i}")) ** 2)
                norm = getattr(self, f"energy{k}_{i}", None)
                total = total + self.layer_weights[name] * share * (v if norm is None else v / norm)
        return total


def _inverse(mask: torch.Tensor | None) -> torch.Tensor | None:
    return None if mask is None else (1.0 - mask.float()).clamp(0, 1)


def fill_regions(masks: Sequence, n: int) -> list[torch.Tensor]:
    """One region per style image: the masks given (None for a style without one), and for those
    without, what the given masks leave (1 minus their sum, at least 0), shared among them."""
    masks = list(masks) + [None] * (n - len(masks))
    rest = (1.0 - sum((m.float() for m in masks if m is not None), torch.zeros(()))).clamp(0, 1)
    free = sum(1 for m in masks if m is None)
    return [m.float() if m is not None else rest / free for m in masks]


class TVLoss(LossTerm):
    """Total variation: the mean absolute difference between horizontally neighbouring pixels plus
    that between vertically neighbouring ones (0-255 units, channels and a batch averaged), so
    its weight means the same at every image size (a sum over pixels would weigh 16x more at 4x
    the side). ``wrap``: the last column neighbours the first, and the last row the first row.
    With transparency (``alpha``) the differences are weighted by it (clear pixels cost nothing)."""

    layers: list[str] = []
    reads = ("alpha",)

    def __init__(self, wrap: bool = False):
        super().__init__()
        self.wrap = wrap in (True, "true", "yes", "1")  # the right edge neighbours the left (tileable textures)
        self.alpha = None

    def prepare(self, ctx, extract):
        self.alpha = ctx.masks.get("alpha")

    def forward(self, feats, image, regions=None):
        a = self.alpha.to(image.device).float() if self.alpha is not None else None
        if self.wrap:
            dx, dy = image - image.roll(1, -1), image - image.roll(1, -2)
            wx = wy = a
        else:
            dx, dy = image[..., :, 1:] - image[..., :, :-1], image[..., 1:, :] - image[..., :-1, :]
            wx = None if a is None else torch.minimum(a[..., :, 1:], a[..., :, :-1])
            wy = None if a is None else torch.minimum(a[..., 1:, :], a[..., :-1, :])
        return (_weighted_mean(dx.abs(), wx) + _weighted_mean(dy.abs(), wy)) * 255.0


def _weighted_mean(values: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    if weights is None:
        return values.mean()
    w = weights.expand_as(values)
    return (values * w).sum() / w.sum().clamp_min(1e-12)


def temporal_mask(content: torch.Tensor, before: torch.Tensor, threshold: float = 0.1) -> torch.Tensor:
    """Where the content did not change: 1 where ``content`` equals ``before``, falling linearly to 0
    where their mean absolute difference (0-1 scale, 3x3 smoothed) reaches ``threshold``. (B, 1, H, W)."""
    diff = (content.float() - before.float()).abs().mean(1, keepdim=True)
    diff = torch.nn.functional.avg_pool2d(diff, 3, stride=1, padding=1, count_include_pad=False)
    return (1.0 - diff / threshold).clamp(0, 1)


class TemporalLoss(LossTerm):
    """Temporal coherence for clips (after Ruder et al. 2016): the squared change (0-255 units,
    averaged per pixel) against the previous output frame, counted where the content did not change.

    Reads "previous" (the previous output frame, warped to this frame when flow is used) and
    "previous_content" (the previous content frame, warped the same way); the mask is
    :func:`temporal_mask` of the content against it. In a batch of consecutive frames each frame is
    also tied to the one before it. An empty "previous" list means there is no previous frame (a
    clip's first frame: the term is 0 there); with no "previous" role at all (a single image) the
    content image stands in for the previous frame, so the term holds the image near the content.
    """

    layers: list[str] = []
    reads = ("content", "previous", "previous_content")

    def __init__(self, threshold: float = 0.1):
        super().__init__()
        if not threshold > 0:
            raise OptionError(f"the temporal term's threshold must be more than 0, not {threshold}")
        self.threshold = float(threshold)

    def prepare(self, ctx, extract):
        content = ctx.first("content").float()
        previous = ctx.images.get("previous")
        before = ctx.images.get("previous_content")
        if previous is None:  # not a clip: the content is the reference
            previous, before = [content[:1]], [content[:1]]
        has_previous = len(previous) > 0
        ref = previous[0].to(content) if has_previous else torch.zeros_like(content[:1])
        before0 = before[0].to(content) if before else content[:1]
        mask = temporal_mask(content, torch.cat([before0, content[:-1]]), self.threshold)
        if not has_previous:
            mask[:1] = 0
        self.register_buffer("previous", ref, persistent=False)
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, feats, image):
        ref = self.previous if image.shape[0] == 1 else torch.cat([self.previous, image[:-1]])
        diff = (image.float() - ref) * 255.0
        return (self.mask * diff * diff).mean()
