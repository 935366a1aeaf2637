"""Colour preservation (Gatys et al. 2016, "Preserving color in neural artistic style transfer")."""

from __future__ import annotations

import torch

# RGB -> YIQ (luminance Y, chrominance I, Q)
_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])


def rgb_to_yiq(x: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,bjhw->bihw", _YIQ.to(x), x)


def yiq_to_rgb(x: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,bjhw->bihw", torch.linalg.inv(_YIQ).to(x), x)


def luminance(x: torch.Tensor, match: torch.Tensor | None = None) -> torch.Tensor:
    """The image's luminance as a grey 3-channel image; with ``match``, scaled to match the
    mean and standard deviation of ``match``'s luminance (so style and content agree)."""
    y = rgb_to_yiq(x)[:, :1]
    if match is not None:
        ym = rgb_to_yiq(match)[:, :1]
        y = (y - y.mean()) / (y.std() + 1e-6) * ym.std() + ym.mean()
    return y.clamp(0, 1).expand(-1, 3, -1, -1).contiguous()


def recombine_luminance(styled: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Luminance of ``styled`` with the chrominance (I, Q) of ``content``."""
    s = rgb_to_yiq(styled)
    c = rgb_to_yiq(
        torch.nn.functional.interpolate(content, size=styled.shape[-2:], mode="bilinear", align_corners=False)
    )
    return yiq_to_rgb(torch.cat([s[:, :1], c[:, 1:]], 1)).clamp(0, 1)


def match_color_histogram(source: torch.Tensor, target: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """``source`` with its colour mean and covariance moved to ``target``'s (linear colour transfer)."""

    def stats(x):
        flat = x.reshape(3, -1).double()
        mu = flat.mean(1, keepdim=True)
        centred = flat - mu
        cov = centred @ centred.T / centred.shape[1] + eps * torch.eye(3, dtype=flat.dtype, device=flat.device)
        return mu, cov

    def sqrtm(m, inverse=False):
        vals, vecs = torch.linalg.eigh(m)
        vals = vals.clamp_min(eps)
        return vecs @ torch.diag(vals.rsqrt() if inverse else vals.sqrt()) @ vecs.T

    mu_s, cov_s = stats(source[0])
    mu_t, cov_t = stats(target[0])
    a = sqrtm(cov_t) @ sqrtm(cov_s, inverse=True)
    flat = source[0].reshape(3, -1).double()
    out = a @ (flat - mu_s) + mu_t
    return out.reshape(source.shape).to(source.dtype).clamp(0, 1)
