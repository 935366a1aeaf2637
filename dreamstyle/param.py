"""Parametrizations: what the optimizer moves instead of the pixels (lucent's ``param``).

``--param pixel`` (the default) optimizes the pixels themselves. ``--param fft`` optimizes a
picture's Fourier spectrum in decorrelated colour: the picture is

    sigmoid(C @ irfft2(spectrum * 1 / frequency))

with ``C`` the square root of ImageNet's colour correlation (the values lucid measured), so a step
of the same size moves low frequencies and the colours the network was trained on as much as
fine, single-channel ones. A gradient step in these coordinates is a preconditioned step on the
pixels; visualizations from noise come out as readable patterns instead of high-frequency noise.
The sigmoid keeps every pixel in (0, 1): there is nothing to clamp.

A parametrization is ``encode(image) -> tensor`` (the optimizer's variable, for a picture in
[0, 1]) and ``decode(tensor) -> image`` (differentiable); ``encode`` inverts ``decode``, so octaves
and warm starts begin from the picture they are given.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# the square root of ImageNet's RGB colour correlation (as measured for lucid), columns scaled so
# that the largest has norm 1
_COLOR_SQRT = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])
COLOR = _COLOR_SQRT / _COLOR_SQRT.norm(dim=0).max()
SPECTRUM_SCALE = 4.0  # the spectrum's pixels are divided by this: unit-ish variance from unit steps
DECAY = 1.0  # amplitude ~ 1 / frequency ** DECAY: natural images' spectrum
EPS = 1e-3  # pixels are encoded within [EPS, 1 - EPS] (the sigmoid never reaches 0 or 1)


@dataclass
class FourierParam:
    """A (B, 3, H, W) picture as a decorrelated-colour spectrum (B, 3, H, W//2+1, 2)."""

    size: tuple[int, int]  # (height, width)
    decay: float = DECAY
    clamp = False  # the sigmoid keeps pixels in range
    # the optimizers' step sizes are in 0-255 pixel units; this is what a unit of them is here
    # (the default dream step, 0.75, moves the spectrum by about 0.01 a step)
    step_scale = 3.4

    def __post_init__(self):
        self._made: dict = {}  # (device, dtype) -> (frequency weights, colour matrix): made once, not each step

    def constants(self, device, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
        """The 1/frequency weights (H, W//2+1, 1: real and imaginary alike) and the colour matrix."""
        key = (torch.device(device), dtype)
        if key not in self._made:
            h, w = self.size
            fy = torch.fft.fftfreq(h, device=device, dtype=dtype)[:, None]
            fx = torch.fft.rfftfreq(w, device=device, dtype=dtype)[None, :]
            freq = (fy * fy + fx * fx).sqrt().clamp_min(1.0 / max(h, w))
            self._made[key] = ((1.0 / freq**self.decay)[..., None], COLOR.to(device, dtype))
        return self._made[key]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        weights, color = self.constants(z.device, z.dtype)
        spectrum = torch.view_as_complex((z * weights).contiguous())
        t = torch.fft.irfft2(spectrum, s=self.size, norm="ortho") / SPECTRUM_SCALE
        return torch.sigmoid(torch.einsum("ij,bjhw->bihw", color, t))

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        x = image.detach().float().clamp(EPS, 1 - EPS)
        weights, color = self.constants(x.device)
        rgb = torch.log(x) - torch.log1p(-x)  # the sigmoid's inverse
        t = torch.einsum("ij,bjhw->bihw", torch.linalg.inv(color), rgb) * SPECTRUM_SCALE
        spectrum = torch.view_as_real(torch.fft.rfft2(t, norm="ortho"))
        return (spectrum / weights).contiguous()


def make_param(name: str, image: torch.Tensor):
    """The parametrization ``name`` for pictures shaped like ``image``; None for plain pixels."""
    if name == "pixel":
        return None
    if name == "fft":
        return FourierParam(tuple(image.shape[-2:]))
    raise ValueError(f"unknown parametrization {name!r}")
