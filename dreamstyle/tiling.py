"""The engine's gradient with transforms: a random roll (jitter) undone on the gradient, and exact
tiles for pictures larger than memory allows.

A tile computes features over its crop (its core plus ``overlap`` px of context on each side) and
scores only the feature positions its core owns (:class:`~dreamstyle.terms.Region`). With an
overlap as wide as the deepest layer's receptive field, every owned position sees exactly what it
sees in the whole picture, so:

- terms that are sums over positions (:class:`~dreamstyle.terms.StatTerm`: a Gram matrix, a
  squared error, a mean activation) add up over the tiles exactly. A term that is a nonlinear
  function of its sums (style: the squared difference of Gram matrices) takes two passes per step:
  the sums first (no gradients), then each tile's gradient against the whole picture's loss;
  a linear one (a dream's mean activation) one pass;
- terms that read no features (total variation, temporal) run on the whole picture;
- the tiled gradient equals the untiled one, and there are no seams.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .errors import OptionError
from .runtime import autocast
from .terms import Region


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


class Tiler:
    """Features of a picture tile by tile: ``covers(image)`` says whether it is larger than a tile;
    :meth:`tiles` yields each tile's crop, features and regions (the bottom-right tile first: its
    crop ends where the picture ends, so it gives the whole grids)."""

    def __init__(self, net, session, tile: int, overlap: int, strides: dict[str, int]):
        self.net, self.session, self.tile, self.strides = net, session, tile, strides
        self.align = math.lcm(*strides.values()) if strides else 1
        self.overlap = overlap

    def covers(self, image) -> bool:
        h, w = image.shape[-2:]
        return bool(self.tile) and (h > self.tile or w > self.tile)

    def spans(self, image):
        h, w = image.shape[-2:]
        rows = tile_spans(h, self.tile, self.overlap, self.align)
        cols = tile_spans(w, self.tile, self.overlap, self.align)
        return [(r, c) for r in reversed(rows) for c in reversed(cols)]

    def features(self, crop):
        inp = crop.contiguous(memory_format=torch.channels_last) if self.session.channels_last else crop
        with autocast(self.session.device, self.session.dtype):
            return self.net(inp)

    def tiles(self, image, grad: bool = False):
        """``(span_r, span_c, crop, feats, regions)`` per tile; ``grad``: the crop requires grad."""
        grids: dict[str, tuple[int, int]] = {}
        for r, c in self.spans(image):
            crop = image[..., r.p0 : r.p1, c.p0 : c.p1].detach().clone().requires_grad_(grad)
            with torch.set_grad_enabled(grad):
                feats = self.features(crop)
            regions = {}
            for name, f in feats.items():
                s = self.strides[name]
                fh, fw = f.shape[-2:]
                grids.setdefault(name, (r.p0 // s + fh, c.p0 // s + fw))
                regions[name] = region(r, c, s, fh, fw, grids[name])
            yield r, c, crop, feats, regions
            del crop, feats, regions  # before the next tile's features: one tile's memory at a time

    @torch.no_grad()
    def reduce(self, image, fn) -> dict:
        """The sum over tiles of ``fn(feats, regions)`` (a dict of tensors)."""
        total: dict = {}
        for *_, feats, regions in self.tiles(image.to(self.session.device)):
            for k, v in fn(feats, regions).items():
                total[k] = v if k not in total else total[k] + v
        return total

    @torch.no_grad()
    def extract(self, image, layers) -> dict:
        """Whole feature maps at ``layers``, each tile's owned part put in place."""
        out: dict = {}
        for *_, feats, regions in self.tiles(image.to(self.session.device)):
            for name in layers:
                f, reg = feats[name], regions[name]
                if name not in out:
                    out[name] = f.new_zeros((*f.shape[:2], *reg.grid))
                y0, y1, x0, x1 = reg.box
                rows, cols = reg.whole()
                out[name][..., rows, cols] = f[..., y0:y1, x0:x1]
        return out


class Gradient:
    """``gradient(param, scale, backward=True) -> (total, values)`` for the engine: a random roll of
    up to ``jitter`` px (undone on the gradient), then one backward over the whole picture or, when it
    is larger than ``tile`` px, tile by tile (:class:`Tiler`). With ``backward=False`` (the last
    image's measurement) it only scores the picture, unrolled."""

    def __init__(self, net, objective, session, *, jitter: int = 0, tile: int = 0, overlap: int | None = None):
        self.net, self.objective, self.session = net, objective, session
        self.jitter, self.tile = jitter, tile
        backbone = session.backbone
        strides = {name: backbone.layer_map.get(name).stride for name in objective.layers}
        overlap = default_overlap(backbone, objective.layers, tile) if overlap is None else overlap
        self.tiler = Tiler(net, session, tile, overlap, strides)
        self.evaluate = session.evaluate(net, objective) if net is not None else (lambda x: objective({}, x))

    @property
    def overlap(self) -> int:
        return self.tiler.overlap

    def tiled(self, image) -> bool:
        return self.net is not None and self.tiler.covers(image)

    def shifts(self, shape) -> tuple[int, int]:
        if not self.jitter:
            return 0, 0
        dy, dx = torch.randint(-self.jitter, self.jitter + 1, (2,)).tolist()
        return dy % shape[-2], dx % shape[-1]

    def __call__(self, param, scale, backward=True):
        dy, dx = self.shifts(param.shape) if backward else (0, 0)
        if not self.tiled(param):
            x = param / scale
            if dy or dx:
                x = torch.roll(x, (dy, dx), (2, 3))
            total, values = self.evaluate(x)
            if backward:
                total.backward()
            return total, values
        check_tileable(self.objective)
        with torch.no_grad():
            x = torch.roll(param.detach() / scale, (dy, dx), (2, 3))
        grad, values = tiled_gradient(self.tiler, self.objective, x, backward)
        if backward:
            g = torch.roll(grad, (-dy, -dx), (2, 3)) / scale
            if param.grad is None:
                param.grad = g
            else:
                param.grad += g
        return values.sum(), values


def check_tileable(objective) -> None:
    for name, t, _ in objective.leaves:
        if t.layers and not callable(getattr(t, "stats", None)):
            raise OptionError(
                f"loss term {name!r} cannot be computed in tiles (it is not a sum over feature "
                "positions: a StatTerm); pass --tile 0, or a smaller --size"
            )


def tiled_gradient(tiler: Tiler, objective, x, backward: bool):
    """(gradient, values) of ``objective`` at ``x`` over tiles; terms that read no features run on the
    whole picture."""
    leaves = objective.leaves
    feature = [i for i, (_, t, _) in enumerate(leaves) if t.layers]
    pixel = [i for i, (_, t, _) in enumerate(leaves) if not t.layers]
    values = [None] * len(leaves)
    grad = torch.zeros_like(x) if backward else None
    if pixel:
        whole = x.detach().clone().requires_grad_(backward)
        with torch.set_grad_enabled(backward):
            for i in pixel:
                values[i] = leaves[i][2] * leaves[i][1]({}, whole).float()
            if backward:
                sum(values[i] for i in pixel).backward()
                grad += whole.grad
    terms = [(i, leaves[i][1], leaves[i][2]) for i in feature]
    if terms:
        linear = all(t.linear for _, t, _ in terms)
        sums = None if linear and backward else tiler.reduce(x, lambda f, r: _stats(terms, f, x, r))
        if backward:
            sums = _backward_tiles(tiler, terms, x, grad, sums)
        for i, t, w in terms:
            values[i] = w * t.value({k[1]: v for k, v in sums.items() if k[0] == i}).float()
    return grad, torch.stack([v.detach().reshape(()) for v in values])


def _stats(terms, feats, image, regions) -> dict:
    return {(i, k): v for i, t, _ in terms for k, v in t.stats(feats, image, regions).items()}


def _slopes(terms, sums: dict) -> dict:
    """d(weighted values)/d(sums): what each tile's sums are worth to the whole picture's loss."""
    leaves = {k: v.detach().float().requires_grad_() for k, v in sums.items()}
    total = sum(w * t.value({k[1]: v for k, v in leaves.items() if k[0] == i}) for i, t, w in terms)
    keys = list(leaves)
    grads = torch.autograd.grad(total, [leaves[k] for k in keys], allow_unused=True)
    return {k: g for k, g in zip(keys, grads) if g is not None}


def _backward_tiles(tiler, terms, x, grad, sums):
    """Each tile's gradient against the whole picture's loss (given its ``sums``; a linear
    objective's slopes do not depend on them: found from the first tile, the sums added up here)."""
    slopes = _slopes(terms, sums) if sums is not None else None
    added: dict = {}
    for r, c, crop, feats, regions in tiler.tiles(x, grad=True):
        with torch.enable_grad():
            stats = _stats(terms, feats, crop, regions)
            if slopes is None:
                slopes = _slopes(terms, stats)
            surrogate = sum((slopes[k] * v.float()).sum() for k, v in stats.items() if k in slopes)
        if torch.is_tensor(surrogate) and surrogate.requires_grad:
            surrogate.backward()
            grad[..., r.p0 : r.p1, c.p0 : c.p1] += crop.grad
        for k, v in stats.items():
            added[k] = v.detach() if k not in added else added[k] + v.detach()
        del feats, stats, surrogate, crop
    return sums if sums is not None else added
