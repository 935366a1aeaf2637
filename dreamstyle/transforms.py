"""Random transformations of the picture before each dream step (in the spirit of lucent's
``transforms``): a roll (jitter), a random scale, a small rotation, a mirror flip.

The step's gradient is taken *through* the transformation, so it is the exact gradient of the
objective of the transformed picture with respect to the picture itself: a roll and a flip are
undone exactly, a scale and a rotation (one bilinear resampling, reflected at the borders) by the
chain rule. What the network sees changes every step; what cannot survive the change (pixel-level
patterns tuned to one alignment) does not build up.

``--transforms`` names them, with an optional strength: ``jitter`` (by ``--jitter`` px),
``scale`` or ``scale=F`` (a factor in [1-F, 1+F]), ``rotate`` or ``rotate=D`` (up to D degrees
either way), ``flip`` (a left-right mirror half the time).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .errors import OptionError, items

DEFAULT_STRENGTH = {"scale": 0.05, "rotate": 5.0}
LIMITS = {"scale": (0.0, 0.5), "rotate": (0.0, 45.0)}
NAMES = ("jitter", "scale", "rotate", "flip")


def parse_transforms(value, flag: str = "--transforms") -> str:
    """``"jitter,scale=0.1,rotate"`` -> its normal form (each name once, strengths spelled out,
    in the order they apply); "none" or "" -> ""."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return ""
    parts = items(value, flag) if isinstance(value, str) else [str(v).strip() for v in value]
    found: dict[str, float | None] = {}
    for part in parts:
        if part == "none":
            continue
        name, eq, strength = part.partition("=")
        name = name.strip()
        if name not in NAMES:
            raise OptionError(
                f"{flag} {part!r}: choose among {', '.join(NAMES)} (comma separated, like jitter,scale,rotate), or none"
            )
        if eq and name in ("jitter", "flip"):
            raise OptionError(
                f"{flag} {part!r}: {name} takes no strength"
                + (" (the roll is --jitter PX)" if name == "jitter" else "")
            )
        found[name] = _strength(name, strength, flag) if eq else DEFAULT_STRENGTH.get(name)
    out = []
    for name in NAMES:
        if name in found:
            out.append(name if found[name] is None else f"{name}={found[name]:g}")
    return ",".join(out)


def _strength(name: str, text: str, flag: str) -> float:
    lo, hi = LIMITS[name]
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and lo < value <= hi):
        raise OptionError(f"{flag} {name}={text}: the strength must be a number more than {lo:g} and at most {hi:g}")
    return value


@dataclass(frozen=True)
class Transforms:
    """The parsed ``--transforms``: jitter px, scale fraction, rotation degrees, flip."""

    jitter: int = 0
    scale: float = 0.0
    rotate: float = 0.0
    flip: bool = False

    @classmethod
    def from_spec(cls, spec: str, jitter: int) -> Transforms:
        parts = dict(p.partition("=")[::2] for p in parse_transforms(spec).split(",") if p)
        return cls(
            jitter=jitter if "jitter" in parts else 0,
            scale=float(parts.get("scale") or 0.0),
            rotate=float(parts.get("rotate") or 0.0),
            flip="flip" in parts,
        )

    @property
    def resamples(self) -> bool:
        return bool(self.scale or self.rotate)

    def draw(self) -> tuple[float, float, bool]:
        """One step's random (scale factor, angle in radians, flip), from torch's generator."""
        u = torch.rand(3).tolist()
        factor = 1.0 + self.scale * (2 * u[0] - 1)
        angle = math.radians(self.rotate * (2 * u[1] - 1))
        return factor, angle, self.flip and u[2] < 0.5


def warp(x: torch.Tensor, factor: float, angle: float) -> torch.Tensor:
    """``x`` scaled by ``factor`` and rotated by ``angle`` about its centre, the same size (the
    borders reflected); differentiable."""
    b, _, h, w = x.shape
    cos, sin = math.cos(angle) / factor, math.sin(angle) / factor
    # affine_grid works in [-1, 1] coordinates: keep the rotation a rotation on a non-square picture
    theta = torch.tensor([[cos, -sin * h / w, 0.0], [sin * w / h, cos, 0.0]], dtype=x.dtype, device=x.device)
    grid = F.affine_grid(theta.expand(b, 2, 3), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def apply(x: torch.Tensor, draw: tuple[float, float, bool]) -> torch.Tensor:
    factor, angle, flip = draw
    if factor != 1.0 or angle:
        x = warp(x, factor, angle)
    return torch.flip(x, (3,)) if flip else x


def through(gradient, transforms: Transforms):
    """The engine's ``gradient(param, scale, backward)`` of the objective of a randomly scaled,
    rotated or flipped picture (the roll is the wrapped gradient's own: it undoes it exactly).
    The wrapped gradient fills the gradient of a detached copy of the transformed picture; it is
    carried back to ``param`` through the transformation. Scoring (``backward=False``) sees the
    picture as it is."""
    if not (transforms.resamples or transforms.flip):
        return gradient

    def transformed(param, scale, backward=True):
        if not backward:
            return gradient(param, scale, backward)
        moved = apply(param, transforms.draw())
        leaf = moved.detach().requires_grad_(True)
        total, values = gradient(leaf, scale, True)
        if leaf.grad is not None:
            moved.backward(leaf.grad)
        return total, values

    return transformed
