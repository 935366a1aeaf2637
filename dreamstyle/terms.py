"""Loss terms: small modules that score an image's features; everything is minimized.

A term is registered as a :class:`TermSpec` through ``register_loss_terms``; ``spec.build(**options)``
makes the module. Before optimizing, the driver calls ``term.prepare(ctx, extract)`` so the term can
compute its targets (as buffers) from the images in ``ctx``; then ``term(features, image)`` returns
a scalar to minimize. Terms compose with weights into an :class:`Objective`.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from .errors import OptionError
from .termspec import TermContext, TermSpec  # noqa: F401  (re-exported)


class LossTerm(nn.Module):
    """Base class. Subclasses set ``self.layers`` (feature layers they read)."""

    layers: list[str] = []

    def prepare(self, ctx: TermContext, extract: Callable[[torch.Tensor], dict]) -> None:
        """Compute targets; ``extract(image)`` gives that image's features (no grad)."""

    def describe(self) -> str:
        return type(self).__name__


def parse_layer_weights(spec: str | Sequence[str] | None) -> dict[str, float]:
    """"relu1_1,relu2_1=0.5" -> {"relu1_1": 1.0, "relu2_1": 0.5} (order kept)."""
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


def gram(features: torch.Tensor) -> torch.Tensor:
    """Gram matrices (B, C, C) normalized by C*H*W, always computed in fp32."""
    with torch.autocast(features.device.type, enabled=False):
        b, c, h, w = features.shape
        f = features.float().reshape(b, c, h * w)
        return torch.baddbmm(f.new_zeros(()).expand(b, c, c), f, f.transpose(1, 2), beta=0, alpha=1.0 / (c * h * w))


class _LayerWeighted(LossTerm):
    def __init__(self, layers: dict[str, float] | str | Sequence[str]):
        super().__init__()
        weights = layers if isinstance(layers, dict) else parse_layer_weights(layers)
        if not weights:
            raise OptionError(f"{type(self).__name__} needs at least one layer")
        self.layers = list(weights)
        self.layer_weights = weights

    def _default_layers(self, ctx):  # pragma: no cover - overridden
        return []


class ContentLoss(_LayerWeighted):
    """Feature MSE against the content image, per layer weighted."""

    def prepare(self, ctx, extract):
        feats = extract(ctx.first("content"))
        for i, name in enumerate(self.layers):
            self.register_buffer(f"target{i}", feats[name].detach().float(), persistent=False)

    def forward(self, feats, image):
        total = 0.0
        for i, name in enumerate(self.layers):
            f = feats[name].float()
            total = total + self.layer_weights[name] * torch.mean((f - getattr(self, f"target{i}")) ** 2)
        return total


class StyleLoss(_LayerWeighted):
    """Gram-matrix MSE against the (blended) style images, per layer weighted; fp32 throughout."""

    def prepare(self, ctx, extract):
        styles = ctx.images.get("style") or []
        if not styles:
            raise OptionError("the style term needs at least one style image")
        blend = list(ctx.blend) if ctx.blend else [1.0] * len(styles)
        if len(blend) != len(styles):
            raise OptionError(f"--style-blend has {len(blend)} weights for {len(styles)} style images")
        total = sum(blend)
        if total <= 0:
            raise OptionError("--style-blend weights must add up to more than 0")
        targets = {name: 0.0 for name in self.layers}
        for w, style in zip(blend, styles):
            feats = extract(style)
            for name in self.layers:
                targets[name] = targets[name] + (w / total) * gram(feats[name].detach())
        for i, name in enumerate(self.layers):
            self.register_buffer(f"target{i}", targets[name], persistent=False)

    def forward(self, feats, image):
        total = 0.0
        for i, name in enumerate(self.layers):
            g = gram(feats[name])
            total = total + self.layer_weights[name] * torch.mean((g - getattr(self, f"target{i}")) ** 2)
        return total


class TVLoss(LossTerm):
    """Total variation of the image (sum of absolute neighbour differences, 0-255 scale, per pixel)."""

    layers: list[str] = []

    def forward(self, feats, image):
        dx = (image[..., :, 1:] - image[..., :, :-1]).abs().sum()
        dy = (image[..., 1:, :] - image[..., :-1, :]).abs().sum()
        return (dx + dy) * 255.0


class Objective(nn.Module):
    """Weighted sum of named terms. ``forward`` returns (total, per-term weighted values)."""

    def __init__(self, terms: dict[str, tuple[LossTerm, float]]):
        super().__init__()
        if not terms:
            raise OptionError("nothing to optimize: every loss weight is 0")
        self.names = list(terms)
        self.terms = nn.ModuleList([t for t, _ in terms.values()])
        self.weights = [float(w) for _, w in terms.values()]

    @property
    def layers(self) -> list[str]:
        seen: dict[str, None] = {}
        for term in self.terms:
            for name in term.layers:
                seen[name] = None
        return list(seen)

    def prepare(self, ctx, extract) -> None:
        for term in self.terms:
            term.prepare(ctx, extract)

    def forward(self, feats, image):
        values = [w * term(feats, image) for term, w in zip(self.terms, self.weights)]
        values = torch.stack([torch.as_tensor(v, device=image.device, dtype=torch.float32).reshape(())
                              for v in values])
        return values.sum(), values
