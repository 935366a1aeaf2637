"""Style terms that match the distribution of the style's features instead of their Gram matrices
(``--style-loss``; the Gram term stays the default and replays bit for bit).

- :class:`GaussianW2Loss` (``w2``): the Wasserstein-2 distance between Gaussian fits (mean and
  covariance) of each style layer's features and the style's. It is a function of sums over
  positions (a :class:`~dreamstyle.terms.StatTerm`), so it tiles exactly and takes masks and
  transparency as the Gram term does.
- :class:`SlicedWassersteinLoss` (``swd``): the sliced Wasserstein distance (Heitz et al. 2021): the
  features projected on random directions and sorted, against the quantiles of the style's
  projections on the same directions. The directions are drawn again at every step from the run's
  seed (a replay draws the same ones). Sorting is not a sum over positions: it does not tile.
- :class:`NearestNeighbourLoss` (``nn``): each position's feature pulled toward its nearest style
  feature by cosine distance, as NNST (Kolkin et al. 2022) does; neighbours searched again at every
  evaluation. A minimum over the style's features is not a sum over positions: it does not tile.

Each layer's distance is divided by the style features' energy there (their mean square per
channel), or is a cosine (nn), so multiplying a backbone's features by a constant changes nothing
and the layers of one term weigh alike whatever their channel count or activation scale.
"""

from __future__ import annotations

import torch

from .errors import OptionError
from .terms import (
    LossTerm,
    PositionWeights,
    StatTerm,
    _count,
    grid_of,
    owned,
    parse_layer_weights,
    style_groups,
)

W2_FLOOR = 1e-3  # the square root's regularizer, relative to the style's mean eigenvalue squared
SWD_DIRECTIONS = 256  # directions per layer at most (a layer with fewer channels: as many as its channels)
NN_SAMPLES = 4096  # nn: style positions per layer searched for neighbours at most (drawn once a run)
NN_CHUNK = 2048  # nn: picture positions whose neighbours are searched at once (a chunk x samples matrix)


class _DistributionTerm(LossTerm):
    reads = ("style", "style_alpha", "style_mask", "content_mask", "alpha")

    def __init__(self, layers):
        super().__init__()
        weights = layers if isinstance(layers, dict) else parse_layer_weights(layers)
        if not weights:
            raise OptionError(f"{type(self).__name__} needs at least one layer")
        self.layers = list(weights)
        self.layer_weights = weights
        self.shares, self.wheres = [1.0], [PositionWeights()]

    def _style_alphas(self, ctx) -> list:
        styles = ctx.images["style"]
        return (list(ctx.masks.get("style_alpha") or []) + [None] * len(styles))[: len(styles)]

    def style_columns(self, style, alpha, ctx, extract) -> dict:
        """Each layer's features of one style image as columns, (channels, positions), with each
        position's weight (its transparency; 1 where opaque): ``{layer: (values, weights)}``."""
        feats = ctx.features(style, self.layers, extract)
        where = PositionWeights(alpha)
        out = {}
        for name in self.layers:
            f = feats[name].detach().float()
            w = where.at(tuple(f.shape[-2:]), None, f.device)
            w = torch.ones_like(f[:, :1]) if w is None else w.float().expand_as(f[:, :1])
            out[name] = (f.permute(1, 0, 2, 3).reshape(f.shape[1], -1), w.reshape(-1))
        return out


# --- the Wasserstein-2 distance between Gaussian fits ---------------------------------------------------


class _TraceSqrt(torch.autograd.Function):
    """``tr((S + eps I)^(1/2))`` of symmetric positive semi-definite matrices S (B, C, C), from one
    eigendecomposition; its gradient is ``(S + eps I)^(-1/2) / 2``, formed from the same
    eigenvectors (no derivative of the eigenvectors themselves, which is unstable where eigenvalues
    repeat). ``eps`` keeps the gradient finite where S is singular (fewer positions than channels)."""

    @staticmethod
    def forward(ctx, s, eps):
        lam, vec = torch.linalg.eigh(s)
        lam = lam.clamp_min(0) + eps
        ctx.save_for_backward(vec, lam.rsqrt())
        return lam.sqrt().sum(-1)

    @staticmethod
    def backward(ctx, grad):
        vec, inv_root = ctx.saved_tensors
        return grad[:, None, None] * 0.5 * (vec * inv_root[..., None, :]) @ vec.transpose(-1, -2), None


def _moments(f: torch.Tensor, w: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sums over the positions of ``f`` (B, C, h, w), weighted by ``w``: of the features (B, C), of
    their outer products (B, C, C), and of the weights (B,); in fp32."""
    with torch.autocast(f.device.type, enabled=False):
        f = f.float()
        b, c = f.shape[:2]
        if w is not None:
            w = w.float().expand(b, 1, *f.shape[-2:])
            first = (f * w).sum((2, 3))
            g = (f * w.sqrt()).reshape(b, c, -1)
        else:
            first = f.sum((2, 3))
            g = f.reshape(b, c, -1)
        return first, torch.bmm(g, g.transpose(1, 2)), _count(f, w)


class GaussianW2Loss(_DistributionTerm, StatTerm):
    """The squared Wasserstein-2 distance between the Gaussian fit of each layer's features and the
    style's (several styles: the moments of their blend), divided by the style's mean squared
    feature per channel, per layer weighted. Masks and transparency weigh the positions as in the
    Gram term; the picture's sums add up over tiles."""

    def prepare(self, ctx, extract):
        alphas = self._style_alphas(ctx)
        moments = [self._style_moments(style, alpha, ctx, extract) for style, alpha in zip(ctx.images["style"], alphas)]
        self.shares, mixes, wheres = style_groups(ctx)
        self.wheres = [PositionWeights(m) for m in wheres]
        for k, mix in enumerate(mixes):
            for i, name in enumerate(self.layers):
                mean = sum(b * m[name][0] for b, m in zip(mix, moments))
                second = sum(b * m[name][1] for b, m in zip(mix, moments))
                cov = second - mean[:, None] * mean[None, :]
                cov = (cov + cov.T) / 2
                lam, vec = torch.linalg.eigh(cov)
                lam = lam.clamp_min(0)
                c = cov.shape[0]
                eps = W2_FLOOR * (float(lam.sum()) / c) ** 2 + 1e-30
                root = (vec * lam.sqrt()[None, :]) @ vec.T
                # tr((cov_t^(1/2) cov_t cov_t^(1/2) + eps)^(1/2)) - tr(cov_t): what eps adds where the
                # picture matches the style, taken off so that a perfect match scores 0
                bias = float((lam * lam + eps).sqrt().sum() - lam.sum())
                for key, value in (("mean", mean), ("root", root)):
                    self.register_buffer(f"{key}{k}_{i}", value.detach().double(), persistent=False)
                setattr(self, f"const{k}_{i}", (float(torch.trace(cov)), eps, bias, float(torch.trace(second)) / c))

    def _style_moments(self, style, alpha, ctx, extract) -> dict:
        where = PositionWeights(alpha)

        def sums(feats, regions):
            out = {}
            for name in self.layers:
                region = regions.get(name) if regions else None
                f = owned(feats[name], region)
                w = where.at(grid_of(feats[name], region), region, f.device)
                out[name + ".1"], out[name + ".2"], out[name + ".n"] = _moments(f, w)
            return out

        total = ctx.reduce(style, sums, extract)
        out = {}
        for name in self.layers:
            n = total[name + ".n"].double().sum().clamp_min(1e-12)
            out[name] = (total[name + ".1"].double().sum(0) / n, total[name + ".2"].double().sum(0) / n)
        return out

    def stats(self, feats, image, regions=None):
        out = {}
        for i, name in enumerate(self.layers):
            region = regions.get(name) if regions else None
            f = owned(feats[name], region)
            for k, where in enumerate(self.wheres):
                w = where.at(grid_of(feats[name], region), region, f.device)
                out[f"s{k}_{i}"], out[f"m{k}_{i}"], out[f"n{k}_{i}"] = _moments(f, w)
        return out

    def value(self, stats):
        total = 0.0
        for i, name in enumerate(self.layers):
            for k, share in enumerate(self.shares):
                # in fp64: the distance is a small difference of large traces (fp32 would leave it
                # to rounding near the style), and the matrices are only channels x channels
                n = stats[f"n{k}_{i}"].double().clamp_min(1e-12)
                mean = stats[f"s{k}_{i}"].double() / n[:, None]
                cov = stats[f"m{k}_{i}"].double() / n[:, None, None] - mean[:, :, None] * mean[:, None, :]
                trace_t, eps, bias, energy = getattr(self, f"const{k}_{i}")
                root = getattr(self, f"root{k}_{i}")
                cross = _TraceSqrt.apply(root @ cov @ root, eps) - bias
                shift = ((mean - getattr(self, f"mean{k}_{i}")) ** 2).sum(-1)
                w2 = (shift + cov.diagonal(dim1=1, dim2=2).sum(-1) + trace_t - 2 * cross).clamp_min(0)
                c = cov.shape[-1]
                distance = (w2 / c).mean() / max(energy, 1e-30)
                total = total + self.layer_weights[name] * share * distance.float()
        return total


# --- the sliced Wasserstein distance -------------------------------------------------------------------


def _quantiles(sorted_values: torch.Tensor, cumulative: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """The step quantile function of weighted samples (``sorted_values`` (K, M) in ascending order,
    ``cumulative`` their weights' running total, ending at 1) at ``levels`` (B, K, N) in [0, 1]."""
    b = levels.shape[0]
    cum = cumulative.expand(b, *cumulative.shape).contiguous()
    index = torch.searchsorted(cum, levels.contiguous()).clamp_max(sorted_values.shape[-1] - 1)
    return sorted_values.expand(b, *sorted_values.shape).gather(-1, index)


class SlicedWassersteinLoss(_DistributionTerm):
    """The sliced Wasserstein distance between each layer's features and the style's: both projected
    on the same random unit directions (as many as the layer has channels, at most
    ``SWD_DIRECTIONS``), the squared difference of the sorted projections against the style's
    quantiles, averaged; divided by the style's mean squared feature per channel, per layer weighted.
    Several styles mix by their blend weights; the picture's transparency and masks weigh its
    positions; a style's transparency weighs its. The directions are drawn again at each step
    (:meth:`new_step`) from a seed drawn from torch's generator when the term is prepared, so a run
    with ``--seed`` draws the same directions again."""

    def __init__(self, layers, directions: int = SWD_DIRECTIONS):
        super().__init__(layers)
        self.directions = int(directions)
        if self.directions < 1:
            raise OptionError(f"swd's directions must be at least 1, not {directions}")
        self.seed, self.step = 0, 0
        self._drawn: tuple | None = None

    def prepare(self, ctx, extract):
        alphas = self._style_alphas(ctx)
        self.seed = int(torch.randint(0, 2**62, (1,)))
        samples = [self.style_columns(style, alpha, ctx, extract) for style, alpha in zip(ctx.images["style"], alphas)]
        self.shares, mixes, wheres = style_groups(ctx)
        self.wheres = [PositionWeights(m) for m in wheres]
        self.targets = []  # per group, per layer: (features (C, M), weights (M,) adding up to 1)
        self.energies = []
        for mix in mixes:
            group, energy = {}, {}
            for name in self.layers:
                used = [(b, s[name]) for b, s in zip(mix, samples) if b > 0]
                values = torch.cat([f for _, (f, _) in used], 1)
                weights = torch.cat([b * w / w.sum().clamp_min(1e-12) for b, (_, w) in used])
                weights = weights / weights.sum().clamp_min(1e-12)
                group[name] = (values, weights)
                energy[name] = float((values * values * weights).sum()) / values.shape[0]
            self.targets.append(group)
            self.energies.append(energy)
        self._drawn = None

    def new_step(self, step: int) -> None:
        """The optimizer starts step ``step``: the directions are drawn again for it."""
        self.step = int(step)

    def _drawn_for(self, device) -> list:
        """This step's directions per layer, each with every group's sorted style projections and
        their cumulative weights (drawn once a step, whatever the evaluations the step makes)."""
        if self._drawn is None or self._drawn[0] != (self.step, str(device)):
            gen = torch.Generator().manual_seed((self.seed + 1_000_003 * self.step) % 2**63)
            layers = []
            for name in self.layers:
                c = self.targets[0][name][0].shape[0]
                d = torch.randn(c, min(c, self.directions), generator=gen)
                d = (d / d.norm(dim=0, keepdim=True)).to(device)
                groups = []
                for target in self.targets:
                    values, weights = target[name]
                    projected = d.T @ values.to(device)
                    order = projected.argsort(-1)
                    cumulative = weights.to(device)[order].cumsum(-1)
                    groups.append((projected.gather(-1, order), cumulative / cumulative[..., -1:].clamp_min(1e-12)))
                layers.append((d, groups))
            self._drawn = ((self.step, str(device)), layers, {})
        return self._drawn[1]

    def _targets(self, i: int, k: int, groups: list, shape: torch.Size, device) -> torch.Tensor:
        """The style's quantiles at a picture of ``shape`` (B, K, N) unweighted positions' levels, for
        layer ``i`` and group ``k``: the same for every evaluation of a step's directions (L-BFGS keeps
        a stage's), so found once and kept with them."""
        cache = self._drawn[2]
        key = (i, k, tuple(shape))
        if key not in cache:
            style_sorted, cumulative = groups[k]
            n = shape[-1]
            levels = ((torch.arange(n, device=device) + 0.5) / n).expand(shape)
            cache[key] = _quantiles(style_sorted, cumulative, levels)
        return cache[key]

    def forward(self, feats, image):
        total = 0.0
        drawn = self._drawn_for(image.device)
        with torch.autocast(image.device.type, enabled=False):
            for i, name in enumerate(self.layers):
                f = feats[name].float()
                b, c = f.shape[:2]
                d, groups = drawn[i]
                picture = torch.einsum("ck,bcn->bkn", d, f.reshape(b, c, -1))
                for k, (share, where) in enumerate(zip(self.shares, self.wheres)):
                    style_sorted, cumulative = groups[k]
                    w = where.at(tuple(f.shape[-2:]), None, f.device)
                    sorted_picture, index = picture.sort(-1)
                    if w is None:
                        target = self._targets(i, k, groups, sorted_picture.shape, f.device)
                        distance = ((sorted_picture - target) ** 2).mean((1, 2))
                    else:
                        pw = w.float().expand(b, 1, *f.shape[-2:]).reshape(b, 1, -1).expand_as(picture)
                        pw = pw.gather(-1, index)
                        mass = pw.sum(-1, keepdim=True).clamp_min(1e-12)
                        levels = ((pw.cumsum(-1) - pw / 2) / mass).clamp(0, 1)
                        target = _quantiles(style_sorted, cumulative, levels)
                        distance = ((pw * (sorted_picture - target) ** 2).sum(-1) / mass[..., 0]).mean(1)
                    energy = max(self.energies[k][name], 1e-30)
                    total = total + self.layer_weights[name] * share * distance.mean() / energy
        return total


# --- nearest neighbours (NNST) --------------------------------------------------------------------------


class NearestNeighbourLoss(_DistributionTerm):
    """Nearest-neighbour matching in the spirit of NNST (Kolkin et al. 2022): at each style layer,
    each position's feature is pulled toward its nearest style feature by cosine distance; the term
    is the mean over the picture's positions of ``1 - cos(f, nearest style feature)``, per layer
    weighted. A cosine has no scale, so the term is relative as it is: on vgg19 and the sample photo x
    painting pairs it starts at 0.3-0.4 a layer, as swd does, and the same ``--style-weight``
    means about the same pull (docs/transfer.md).

    - Both sides are centred on the style's (blended, weighted) mean feature before the cosine, as
      NNST centres its features; then multiplying a backbone's features by a constant changes
      nothing (cosines have no scale).
    - The neighbours are searched again at every evaluation of the term, without gradient, in
      chunks of ``NN_CHUNK`` picture positions (memory: a chunk x samples matrix): the term is then a
      fixed function of the picture (the minimum over the style's features), so L-BFGS's line
      search sees one objective, and a replay finds the same neighbours.
    - The style's positions at a layer are at most ``samples`` (default ``NN_SAMPLES``), drawn once
      when the term is prepared from torch's generator (a run with ``--seed`` draws the same), each
      style's share by its blend weight, positions weighed by the style's transparency; fewer: all.
    - Several styles: the neighbour is searched among every blended style's samples; region masks:
      each region among its own style's. The picture's transparency and masks weigh its positions.

    A minimum over the style's features is not a sum of per-tile sums: it does not tile."""

    def __init__(self, layers, samples: int = None):
        super().__init__(layers)
        self.samples = NN_SAMPLES if samples is None else int(samples)
        if self.samples < 1:
            raise OptionError(f"nn's samples must be at least 1, not {samples}")
        self.targets: list = []  # per group, per layer: (centred unit style features (M, C), mean (C,))

    def prepare(self, ctx, extract):
        alphas = self._style_alphas(ctx)
        feats = [self.style_columns(style, alpha, ctx, extract) for style, alpha in zip(ctx.images["style"], alphas)]
        self.shares, mixes, wheres = style_groups(ctx)
        self.wheres = [PositionWeights(m) for m in wheres]
        self.targets = []
        for mix in mixes:
            group = {}
            for name in self.layers:
                used = [(b, f[name]) for b, f in zip(mix, feats) if b > 0]
                total = sum(b for b, _ in used)
                chosen, mean = [], 0.0
                for b, (values, weights) in used:
                    count = max(1, round(self.samples * b / total))
                    picked = _pick(weights, count)
                    chosen.append(values[:, picked])
                    mean = mean + b / total * (values * weights).sum(1) / weights.sum().clamp_min(1e-12)
                style = torch.cat(chosen, 1) - mean[:, None]
                unit = style / style.norm(dim=0, keepdim=True).clamp_min(1e-12)
                group[name] = (unit.T.contiguous(), mean)
            self.targets.append(group)

    def forward(self, feats, image):
        total = 0.0
        with torch.autocast(image.device.type, enabled=False):
            for name in self.layers:
                f = feats[name].float()
                b, c = f.shape[:2]
                for k, (share, where) in enumerate(zip(self.shares, self.wheres)):
                    unit, mean = (t.to(f.device) for t in self.targets[k][name])
                    x = f.reshape(b, c, -1).transpose(1, 2) - mean  # (B, N, C)
                    x = x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)
                    nearest = _nearest(x.detach(), unit)  # (B, N, C), no gradient
                    distance = 1.0 - (x * nearest).sum(-1)  # (B, N)
                    w = where.at(tuple(f.shape[-2:]), None, f.device)
                    if w is None:
                        mean_distance = distance.mean()
                    else:
                        w = w.float().expand(b, 1, *f.shape[-2:]).reshape(b, -1)
                        mean_distance = ((w * distance).sum(-1) / w.sum(-1).clamp_min(1e-12)).mean()
                    total = total + self.layer_weights[name] * share * mean_distance
        return total


def _pick(weights: torch.Tensor, count: int) -> torch.Tensor:
    """``count`` positions drawn without replacement, each as likely as its weight (all of those with
    a weight when there are no more of them), from torch's generator; in ascending order."""
    live = (weights > 0).nonzero()[:, 0]
    if live.numel() <= count:
        return live
    return live[torch.multinomial(weights[live].float().cpu(), count).sort().values.to(live.device)]


@torch.no_grad()
def _nearest(x: torch.Tensor, unit: torch.Tensor) -> torch.Tensor:
    """For unit vectors ``x`` (B, N, C), the rows of ``unit`` (M, C) with the largest dot product
    (the nearest by cosine distance): (B, N, C); ``NN_CHUNK`` positions at a time."""
    out = torch.empty_like(x)
    for start in range(0, x.shape[1], NN_CHUNK):
        part = x[:, start : start + NN_CHUNK]
        out[:, start : start + NN_CHUNK] = unit[(part @ unit.T).argmax(-1)]
    return out
