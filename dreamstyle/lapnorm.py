"""Laplacian-pyramid gradient normalization (the TensorFlow DeepDream tutorial's "lapnorm").

A pixel gradient is dominated by its high frequencies; a step along it adds fine texture and
hardly any large shapes. Split into a Laplacian pyramid (each band what one octave of blur takes
away), each band divided by its own RMS and the bands added back, the gradient has as much of
every scale, and a dream grows structure at all of them. ``--gradient lapnorm`` does this to every
step's gradient before the optimizer sees it; ``plain`` (the default) leaves it alone.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

LEVELS = 4  # bands: the finest three octaves and what is left below them
_KERNEL = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0


def _blur(x: torch.Tensor) -> torch.Tensor:
    """A 5-tap binomial blur, reflected at the borders (any size down to 1 px)."""
    c = x.shape[1]
    k = _KERNEL.to(x.device, x.dtype)
    for dim, kernel in ((3, k.view(1, 1, 1, 5)), (2, k.view(1, 1, 5, 1))):
        if x.shape[dim] < 3:
            continue
        pad = (2, 2, 0, 0) if dim == 3 else (0, 0, 2, 2)
        x = F.conv2d(F.pad(x, pad, mode="reflect"), kernel.expand(c, 1, *kernel.shape[2:]), groups=c)
    return x


def split(x: torch.Tensor, levels: int = LEVELS) -> list[torch.Tensor]:
    """The Laplacian pyramid of ``x``: the finest band first, the low-pass rest last.
    ``merge(split(x)) == x`` (up to rounding)."""
    bands = []
    for _ in range(levels - 1):
        if min(x.shape[-2:]) < 2:
            break
        low = _blur(x)[..., ::2, ::2]
        bands.append(x - _up(low, x.shape[-2:]))
        x = low
    bands.append(x)
    return bands


def _up(x: torch.Tensor, size) -> torch.Tensor:
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


def merge(bands: list[torch.Tensor]) -> torch.Tensor:
    x = bands[-1]
    for band in reversed(bands[:-1]):
        x = _up(x, band.shape[-2:]) + band
    return x


def normalize(grad: torch.Tensor, levels: int = LEVELS, eps: float = 1e-8) -> torch.Tensor:
    """``grad`` with each pyramid band divided by its RMS (per image of a batch)."""
    g = grad.float()
    bands = [b / (b.square().mean(dim=(1, 2, 3), keepdim=True).sqrt() + eps) for b in split(g, levels)]
    return merge(bands).to(grad.dtype)


def normalized(gradient, mode: str = "lapnorm"):
    """The engine's ``gradient(param, scale, backward)`` whose gradient is Laplacian-normalized."""
    if mode == "plain":
        return gradient

    def lapnorm(param, scale, backward=True):
        out = gradient(param, scale, backward)
        if backward and param.grad is not None:
            param.grad = normalize(param.grad)
        return out

    return lapnorm
