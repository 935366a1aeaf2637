"""The histogram loss.

Gram matrices match feature means and correlations but not their distributions, so very
different images can share them; the usual symptoms are washed-out colour and contrast. This term
matches, per layer and per channel, the whole distribution of activations to the style's, exactly
rather than with bins: sorting a channel's activations and comparing them with the style's
quantiles at the same ranks gives the squared 1-D Wasserstein distance between the two
distributions. Its gradient pulls each activation towards the style value of its rank, which is
the histogram-matched remapping Risser et al. use as their target.

Several style images blend by averaging their quantile functions with the ``--style-blend``
weights (the Wasserstein barycenter of their distributions). Targets are stored as ``bins``
quantiles per channel, so the output image may have any size.
"""

from __future__ import annotations

import torch

from dreamstyle.errors import OptionError
from dreamstyle.terms import LossTerm, parse_layer_weights

from . import DEFAULT_BINS, DEFAULT_LAYERS


def channel_samples(features: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (C, B*H*W): every position of every image is one sample of its channel."""
    return features.detach().float().transpose(0, 1).reshape(features.shape[1], -1)


def resample_sorted(values: torch.Tensor, n: int) -> torch.Tensor:
    """Rows of sorted values (C, M) -> (C, n): the quantiles at (k + 0.5) / n, linearly
    interpolated. ``n == M`` gives the rows back; ``n == 1`` their medians."""
    m = values.shape[-1]
    pos = ((torch.arange(n, device=values.device, dtype=torch.float64) + 0.5) * (m / n) - 0.5).clamp(0, m - 1)
    lo = pos.floor().long()
    hi = (lo + 1).clamp(max=m - 1)
    frac = (pos - lo).to(values.dtype)
    return torch.lerp(values[:, lo], values[:, hi], frac)


class HistogramLoss(LossTerm):
    """Mean squared distance between each channel's sorted activations and the style's quantiles
    at the same ranks; per layer weighted; fp32 throughout."""

    reads = ("style",)  # the image roles prepare() reads (drivers may prepare it once per style)

    def __init__(self, layers=DEFAULT_LAYERS, bins=DEFAULT_BINS):
        super().__init__()
        weights = dict(layers) if isinstance(layers, dict) else parse_layer_weights(layers)
        if not weights:
            raise OptionError("the histogram term needs at least one layer")
        try:
            bins = int(bins)
        except (TypeError, ValueError):
            raise OptionError(f"histogram bins must be a whole number, not {bins!r}") from None
        if bins < 2:
            raise OptionError(f"histogram bins must be at least 2, not {bins}")
        self.layers = list(weights)
        self.layer_weights = weights
        self.bins = bins

    def describe(self) -> str:
        return f"histogram({', '.join(self.layers)}; {self.bins} bins)"

    def prepare(self, ctx, extract) -> None:
        styles = ctx.images.get("style") or []
        if not styles:
            raise OptionError("the histogram term needs at least one style image")
        blend = list(ctx.blend) if ctx.blend else [1.0] * len(styles)
        if len(blend) != len(styles):
            raise OptionError(f"--style-blend has {len(blend)} weights for {len(styles)} style images")
        total = float(sum(blend))
        if total <= 0:
            raise OptionError("--style-blend weights must add up to more than 0")
        targets: dict = {name: 0.0 for name in self.layers}
        with torch.no_grad():
            for w, style in zip(blend, styles):
                feats = extract(style)
                for name in self.layers:
                    ranked = channel_samples(feats[name]).sort(dim=-1).values
                    targets[name] = targets[name] + (w / total) * resample_sorted(ranked, self.bins)
        for i, name in enumerate(self.layers):
            self.register_buffer(f"target{i}", targets[name].contiguous(), persistent=False)

    def forward(self, feats, image):
        total = 0.0
        with torch.autocast(image.device.type, enabled=False):
            for i, name in enumerate(self.layers):
                f = feats[name].float()
                b, c, h, w = f.shape
                ranked = f.reshape(b, c, h * w).sort(dim=-1).values
                target = resample_sorted(getattr(self, f"target{i}"), h * w)
                total = total + self.layer_weights[name] * torch.mean((ranked - target) ** 2)
        return total
