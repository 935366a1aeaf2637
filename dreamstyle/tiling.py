"""The engine's gradient with transforms: a random roll (jitter) undone on the gradient, and exact
tiles for images larger than memory allows.

Each tile computes features over its crop (core plus ``overlap``) and scores only the positions it
owns (:class:`~dreamstyle.activation.Region`), so with an overlap as wide as the layers' receptive
field the tiled gradient equals the untiled one and there are no seams. Tiling needs terms that are
means over positions (``spatial``: activation, guide).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch

from .activation import Region
from .errors import OptionError
from .runtime import autocast


@dataclass(frozen=True)
class Span:
    """One tile along one axis: it owns ``core`` = [c0, c1) and computes features over ``crop``."""

    c0: int
    c1: int
    p0: int
    p1: int
    last: bool


def tile_spans(length: int, tile: int, overlap: int, align: int) -> list[Span]:
    """Tiles along an axis of ``length`` px: cores of ``tile`` px partition [0, length); each crop adds
    ``overlap`` px on both sides. Every boundary is a multiple of ``align`` (the layers' stride), so a
    crop's feature grid lines up with the whole image's."""
    tile = max(align, -(-tile // align) * align)
    overlap = -(-overlap // align) * align
    starts = list(range(0, length, tile))
    if len(starts) > 1 and length - starts[-1] < max(align, tile // 4):
        starts.pop()  # a thin last strip joins its neighbour
    ends = starts[1:] + [length]
    return [Span(a, b, max(0, a - overlap), min(length, b + overlap), b == length) for a, b in zip(starts, ends)]


def core_rows(span: Span, stride: int, size: int) -> tuple[int, int]:
    """The rows (or columns) of a crop's feature map that its tile owns."""
    start = (span.c0 - span.p0) // stride
    end = size if span.last else min(size, (span.c1 - span.p0) // stride)
    return start, end


def region(r: Span, c: Span, stride: int, fh: int, fw: int, grid) -> Region:
    y0, y1 = core_rows(r, stride, fh)
    x0, x1 = core_rows(c, stride, fw)
    return Region((y0, y1, x0, x1), (r.p0 // stride, c.p0 // stride), grid)


def default_overlap(backbone, layers: Sequence[str], tile: int) -> int:
    """8 x the deepest stride (about VGG's receptive-field radius), at most half a tile."""
    stride = max((backbone.layer_map.get(n).stride for n in layers), default=1)
    return max(0, min(8 * stride, tile // 2)) if tile else 0


class Gradient:
    """``gradient(param, scale, backward=True) -> (total, values)`` for the engine: a random roll of
    up to ``jitter`` px (undone on the gradient), then one backward over the whole image or, when it
    is larger than ``tile`` px, a sum over tiles. With ``backward=False`` (the last image's
    measurement) it only scores the image, unrolled."""

    def __init__(self, net, objective, session, *, jitter: int = 0, tile: int = 0, overlap: int | None = None):
        self.net, self.objective, self.session = net, objective, session
        self.jitter, self.tile = jitter, tile
        backbone = session.backbone
        self.strides = {name: backbone.layer_map.get(name).stride for name in objective.layers}
        self.align = math.lcm(*self.strides.values()) if self.strides else 1
        self.overlap = default_overlap(backbone, objective.layers, tile) if overlap is None else overlap
        self.evaluate = session.evaluate(net, objective) if net is not None else (lambda x: objective({}, x))

    def shifts(self, shape) -> tuple[int, int]:
        if not self.jitter:
            return 0, 0
        dy, dx = torch.randint(-self.jitter, self.jitter + 1, (2,)).tolist()
        return dy % shape[-2], dx % shape[-1]

    def __call__(self, param, scale, backward=True):
        h, w = param.shape[-2:]
        dy, dx = self.shifts(param.shape) if backward else (0, 0)
        if not self.tile or (h <= self.tile and w <= self.tile):
            x = param / scale
            if dy or dx:
                x = torch.roll(x, (dy, dx), (2, 3))
            total, values = self.evaluate(x)
            if backward:
                total.backward()
            return total, values
        if not self.objective.spatial:
            raise OptionError("tiling needs terms that are means over positions (activation, guide); "
                              "pass --tile 0")
        with torch.no_grad():
            x = torch.roll(param.detach() / scale, (dy, dx), (2, 3))
        grad, totals = self._tiles(x, backward)
        if not backward:
            return totals.sum(), totals
        g = torch.roll(grad, (-dy, -dx), (2, 3)) / scale
        if param.grad is None:
            param.grad = g
        else:
            param.grad += g
        return totals.sum(), totals

    def _tiles(self, x, backward: bool):
        h, w = x.shape[-2:]
        grad = torch.zeros_like(x) if backward else None
        totals = torch.zeros(len(self.objective.names), device=x.device)
        rows = tile_spans(h, self.tile, self.overlap, self.align)
        cols = tile_spans(w, self.tile, self.overlap, self.align)
        # The bottom-right tile first: its crop ends where the image ends, so it gives the whole grids.
        grids: dict[str, tuple[int, int]] = {}
        for r, c in [(r, c) for r in reversed(rows) for c in reversed(cols)]:
            crop = x[..., r.p0:r.p1, c.p0:c.p1].clone().requires_grad_(backward)
            inp = crop.contiguous(memory_format=torch.channels_last) if self.session.channels_last else crop
            with autocast(self.session.device, self.session.dtype):
                feats = self.net(inp)
            regions = {}
            for name, f in feats.items():
                s = self.strides[name]
                fh, fw = f.shape[-2:]
                grids.setdefault(name, (r.p0 // s + fh, c.p0 // s + fw))
                regions[name] = region(r, c, s, fh, fw, grids[name])
            _, values = self.objective(feats, crop, regions=regions)
            if backward:
                values.sum().backward()
                grad[..., r.p0:r.p1, c.p0:c.p1] += crop.grad
            totals += values.detach()
            del feats, values, crop
        return grad, totals
