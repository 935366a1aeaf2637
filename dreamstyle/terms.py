"""Loss terms: small modules that score an image's features; everything is minimized.

A term is registered as a :class:`TermSpec` through ``register_loss_terms``; ``spec.build(**options)``
makes the module. Before optimizing, the driver calls ``term.prepare(ctx, extract)`` so the term can
compute its targets (as buffers) from the images in ``ctx``; then ``term(features, image)`` returns
a scalar to minimize. Terms compose with weights into an :class:`~dreamstyle.objective.Objective`.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from .errors import OptionError
from .termspec import TermContext


class LossTerm(nn.Module):
    """Base class. Subclasses set ``self.layers`` (feature layers they read) and may declare
    ``reads``, the image roles ``prepare`` reads: a driver that keeps some roles fixed (a clip's or
    a folder's style images) prepares such a term once. ``None`` means unknown: prepared every time."""

    layers: list[str] = []
    reads: tuple[str, ...] | None = None

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


class _Gram(torch.autograd.Function):
    """``G = F Fᵀ · scale`` for F (B, C, N). Its backward is one batched matmul,
    ``dF = (dG + dGᵀ) F · scale``: the symmetric part is formed on the small C×C matrix first,
    where autograd's generic backward would do two (C×C)·(C×N) products and add two C×N
    gradients. That is about a third less work and memory traffic per Gram per step."""

    @staticmethod
    def forward(ctx, f, scale):
        ctx.save_for_backward(f)
        ctx.scale = scale
        return torch.baddbmm(f.new_zeros(()).expand(f.shape[0], f.shape[1], f.shape[1]), f, f.transpose(1, 2),
                             beta=0, alpha=scale)

    @staticmethod
    def backward(ctx, grad):
        (f,) = ctx.saved_tensors
        sym = grad + grad.transpose(1, 2)
        return torch.baddbmm(f.new_zeros(()).expand_as(f), sym, f, beta=0, alpha=ctx.scale), None


def gram(features: torch.Tensor) -> torch.Tensor:
    """Gram matrices (B, C, C) normalized by C*H*W, always computed in fp32."""
    with torch.autocast(features.device.type, enabled=False):
        b, c, h, w = features.shape
        f = features.float().reshape(b, c, h * w)
        return _Gram.apply(f, 1.0 / (c * h * w))


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

    reads = ("content",)

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

    reads = ("style",)

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
    """Total variation: the mean absolute difference between horizontally neighbouring pixels plus
    that between vertically neighbouring ones (0-255 units, channels and a batch averaged), so
    its weight means the same at every image size (a sum over pixels would weigh 16x more at 4x
    the side). ``wrap``: the last column neighbours the first, and the last row the first row."""

    layers: list[str] = []
    reads = ()

    def __init__(self, wrap: bool = False):
        super().__init__()
        self.wrap = wrap in (True, "true", "yes", "1")  # the right edge neighbours the left (tileable textures)

    def forward(self, feats, image):
        if self.wrap:
            dx = (image - image.roll(1, -1)).abs().mean()
            dy = (image - image.roll(1, -2)).abs().mean()
        else:
            dx = (image[..., :, 1:] - image[..., :, :-1]).abs().mean()
            dy = (image[..., 1:, :] - image[..., :-1, :]).abs().mean()
        return (dx + dy) * 255.0


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
