"""DeepDream as a driver over the engine: octaves with detail carried up, jitter, tiled gradients,
guided dreams, and the hybrid's hook into style transfer.

(This module is not called ``dream`` because ``dreamstyle.dream`` is the function.)
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Callable, Sequence

from .errors import OptionError
from .style import Result, _positive

INITS = ("image", "noise")
DREAM_OPTIMIZERS = ("normalized", "adam")
DEFAULT_STEP = 0.75  # mean |change| per step, 0-255 units: with vgg19 the photo stays recognizable (1.5 drowns it)
DEFAULT_DREAM_WEIGHT = 1e5  # the hybrid: with vgg19 and the default content 5 / style 100, dreams show and the
# photo and the style stay (5e4 barely shows, 1e6 is all dream)
GUIDE_MAX_SIZE = 512  # the guide image's long side is capped: its features are matched everywhere


# --- tiling ------------------------------------------------------------------------------------

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


def _core_rows(span: Span, stride: int, size: int) -> tuple[int, int]:
    """The rows (or columns) of a crop's feature map that its tile owns."""
    start = (span.c0 - span.p0) // stride
    end = size if span.last else min(size, (span.c1 - span.p0) // stride)
    return start, end


def make_gradient(net, objective, backbone, device, dtype=None, *, jitter: int = 0, tile: int = 0,
                  overlap: int | None = None, evaluate: Callable | None = None):
    """The engine's ``gradient(param, scale)``: a random roll of up to ``jitter`` px (undone on the
    gradient), then one backward over the whole image or, when it is larger than ``tile`` px, a sum
    over tiles. Each tile computes features over its crop (core plus ``overlap``) and scores only the
    positions it owns, so with an overlap as wide as the layers' receptive field the tiled gradient
    equals the untiled one, and there are no seams at all."""
    import torch

    from .runtime import autocast, make_evaluate, use_channels_last

    layers = objective.layers
    strides = {name: backbone.layer_map.get(name).stride for name in layers}
    align = math.lcm(*strides.values()) if strides else 1
    if overlap is None:
        overlap = default_overlap(backbone, layers, tile)
    evaluate = evaluate or make_evaluate(net, objective, device, dtype)
    spatial = all(getattr(term, "spatial", False) for term in objective.terms)

    def shifts(shape):
        if not jitter:
            return 0, 0
        dy, dx = torch.randint(-jitter, jitter + 1, (2,)).tolist()
        return dy % shape[-2], dx % shape[-1]

    def gradient(param, scale, backward=True):
        h, w = param.shape[-2:]
        dy, dx = shifts(param.shape) if backward else (0, 0)
        if not tile or (h <= tile and w <= tile):
            x = param / scale
            if dy or dx:
                x = torch.roll(x, (dy, dx), (2, 3))
            total, values = evaluate(x)
            if backward:
                total.backward()
            return total, values
        if not spatial:
            raise OptionError("tiling needs terms that are means over positions (activation, guide); "
                              "pass --tile 0")
        with torch.no_grad():
            x = torch.roll(param.detach() / scale, (dy, dx), (2, 3))
        grad = torch.zeros_like(x)
        totals = torch.zeros(len(objective.names), device=x.device)
        rows, cols = tile_spans(h, tile, overlap, align), tile_spans(w, tile, overlap, align)
        # The bottom-right tile first: its crop ends where the image ends, so it gives the whole grids.
        order = [(r, c) for r in reversed(rows) for c in reversed(cols)]
        grids: dict[str, tuple[int, int]] = {}
        for r, c in order:
            crop = x[..., r.p0:r.p1, c.p0:c.p1].clone().requires_grad_(backward)
            inp = crop.contiguous(memory_format=torch.channels_last) if use_channels_last(device, dtype) else crop
            with autocast(device, dtype):
                feats = net(inp)
            regions = {}
            for name, f in feats.items():
                s = strides[name]
                fh, fw = f.shape[-2:]
                if name not in grids:
                    grids[name] = (r.p0 // s + fh, c.p0 // s + fw)
                regions[name] = _region(r, c, s, fh, fw, grids[name])
            values = torch.stack([wt * term(feats, crop, regions=regions).float().reshape(())
                                  for term, wt in zip(objective.terms, objective.weights)])
            if backward:
                values.sum().backward()
                grad[..., r.p0:r.p1, c.p0:c.p1] += crop.grad
            totals += values.detach()
            del feats, values, crop
        if not backward:
            return totals.sum(), totals
        g = torch.roll(grad, (-dy, -dx), (2, 3)) / scale
        if param.grad is None:
            param.grad = g
        else:
            param.grad += g
        return totals.sum(), totals

    return gradient


def _region(r: Span, c: Span, stride: int, fh: int, fw: int, grid):
    from .activation import Region

    y0, y1 = _core_rows(r, stride, fh)
    x0, x1 = _core_rows(c, stride, fw)
    return Region((y0, y1, x0, x1), (r.p0 // stride, c.p0 // stride), grid)


def default_overlap(backbone, layers: Sequence[str], tile: int) -> int:
    """8 x the deepest stride (about VGG's receptive-field radius), at most half a tile."""
    stride = max((backbone.layer_map.get(n).stride for n in layers), default=1)
    return max(0, min(8 * stride, tile // 2)) if tile else 0


# --- the dream driver --------------------------------------------------------------------------

def octave_sizes(wh: tuple[int, int], octaves: int, octave_scale: float, min_size: int) -> list[tuple[int, int]]:
    """Sizes small to large; octaves too small for the backbone are dropped."""
    w, h = wh
    sizes = []
    for k in range(octaves):
        f = octave_scale ** (octaves - 1 - k)
        size = (max(1, round(w / f)), max(1, round(h / f)))
        if min(size) >= min_size or k == octaves - 1:
            sizes.append(size)
    return sizes


def dream(
    image=None,
    layers=None,
    *,
    backbone: str = "vgg19",
    weights: str | os.PathLike | None = None,
    device: str = "auto",
    seed: int | None = None,
    size: int | None = 512,
    objective: str = "mean",
    octaves: int = 4,
    octave_scale: float = 1.4,
    iterations: int = 10,
    optimizer: str = "normalized",
    lr: float | None = None,
    jitter: int = 32,
    tile: int = 1024,
    tile_overlap: int | None = None,
    guide=None,
    init: str = "image",
    pooling: str = "max",
    precision: str = "auto",
    callback: Callable | None = None,
    log_every: int = 1,
    snapshot_every: int = 0,
    max_pixels: int | None = None,
    loaded=None,
) -> Result:
    """DeepDream ``image`` (a path or PIL image) on ``layers``: a spec or a list of specs
    (``"relu4_4"``, ``"relu4_4:12"``, ``"relu4_4:3,7"``, ``"relu4_4:12@5,9"``, each may end in ``=WEIGHT``)
    or a ``{spec: weight}`` mapping; the backbone's default dream layer if omitted.

    ``octaves`` sizes, each ``octave_scale`` smaller than the next, carry their detail up;
    ``iterations`` steps per octave of normalized gradient ascent or Adam (step ``lr``: mean pixel
    change per step in 0-255 units, 0.75 by default); ``jitter`` px of random roll per step; images
    larger than ``tile`` px are dreamed in tiles (0: never) overlapping by ``tile_overlap`` px;
    ``guide`` (an image) dreams toward its features instead; ``init="noise"`` starts from noise
    (``image`` may then be None).
    Returns the same :class:`~dreamstyle.style.Result` as transfer.
    """
    import torch

    from .activation import OBJECTIVES, check_positions, check_targets, parse_targets
    from .backbones import LoadedBackbone
    from .engine import optimize
    from .faults import OOM, OutOfMemory, oom_message
    from .images import DEFAULT_MAX_PIXELS, fit_size, load_image, to_pil, to_tensor
    from .plugins import get_backbone
    from .runtime import amp_dtype, make_extract, precision_name, prepare_net, resolve_device, seed_everything, versions
    from .style import build_terms
    from .terms import Objective
    from .termspec import TermContext

    # --- validate everything before any work ------------------------------------------------
    if objective not in OBJECTIVES:
        raise OptionError(f"--objective {objective!r}: choose mean or l2")
    if optimizer not in DREAM_OPTIMIZERS:
        raise OptionError(f"--optimizer {optimizer!r}: dreams use normalized (gradient ascent) or adam")
    if init not in INITS:
        raise OptionError(f"--init {init!r}: choose image or noise")
    for name, value in [("octaves", octaves), ("iterations", iterations)]:
        if not isinstance(value, int) or value < 1:
            raise OptionError(f"--{name} must be a whole number of at least 1, not {value}")
    for name, value in [("jitter", jitter), ("tile", tile), ("tile-overlap", tile_overlap)]:
        if value is not None and (not isinstance(value, int) or value < 0):
            raise OptionError(f"--{name} must be a whole number of pixels, zero or more, not {value}")
    if not isinstance(octave_scale, (int, float)) or not octave_scale >= 1.0 or not math.isfinite(octave_scale):
        raise OptionError(f"--octave-scale must be 1 or more (each octave that much larger), not {octave_scale}")
    if lr is not None:
        _positive("step", lr)
    if size is not None and size < 1:
        raise OptionError(f"--size must be a positive number of pixels, not {size}")
    if image is None and init != "noise":
        raise OptionError("give an input image (or --init noise to dream from noise)")
    dev = resolve_device(device)
    seed = seed_everything(seed)
    dtype = amp_dtype(dev, precision)
    bb = loaded.backbone if loaded is not None else (get_backbone(backbone) if isinstance(backbone, str) else backbone)
    targets = parse_targets(layers) or parse_targets(list(bb.dream_layers)[:1])
    if not targets:
        raise OptionError(f"backbone {bb.name!r} has no default dream layer; give --layer "
                          f"(list layers with: dreamstyle layers {bb.name})")
    check_targets(targets, bb)
    if tile and tile < bb.min_size:
        raise OptionError(f"--tile {tile} is below the {bb.min_size} px minimum of backbone {bb.name!r}; "
                          "use a larger tile or --tile 0")
    max_pixels = max_pixels or DEFAULT_MAX_PIXELS
    source = load_image(image, max_pixels) if image is not None else None
    guide_img = load_image(guide, max_pixels) if guide is not None else None
    if source is not None:
        wh = fit_size(source.size, size)
    else:
        wh = (size or 512, size or 512)
    bb.check_size(wh[1], wh[0], "the output" + (f" at --size {size}" if size else ""))
    check_positions(targets, bb, wh[1], wh[0])
    sizes = octave_sizes(wh, octaves, float(octave_scale), bb.min_size)
    term_name = "guide" if guide is not None else "activation"
    options = {"layers": targets} if guide is not None else {"layers": targets, "objective": objective}
    terms = build_terms({term_name: (1.0, options)}, bb)  # through the registry, like any plugin's term
    objective_mod = Objective(terms)
    if loaded is None:
        loaded = LoadedBackbone(bb, weights, pooling, dev)
    step = DEFAULT_STEP if lr is None else float(lr)
    overlap = tile_overlap if tile_overlap is not None else default_overlap(bb, objective_mod.layers, tile)

    recipe = {
        "command": "dream", "backbone": bb.name, "weights": loaded.weights, "pooling": pooling,
        "input": str(image) if isinstance(image, (str, os.PathLike)) else ("<image>" if image is not None else None),
        "layers": [str(t) for t in targets], "objective": objective if guide is None else "guide",
        "guide": (str(guide) if isinstance(guide, (str, os.PathLike)) else "<image>") if guide is not None else None,
        "size": size, "octaves": octaves, "octave_scale": octave_scale, "octave_sizes": [list(s) for s in sizes],
        "iterations": iterations, "optimizer": optimizer, "step": step, "jitter": jitter, "tile": tile,
        "tile_overlap": overlap, "init": init, "seed": seed, "device": str(dev),
        "precision": precision_name(dtype), "versions": versions(),
    }

    # --- the octaves ---------------------------------------------------------------------------
    def resized(t, size_wh):
        if tuple(t.shape[-2:]) == (size_wh[1], size_wh[0]):
            return t.to(dev)
        return torch.nn.functional.interpolate(t.to(dev), size=(size_wh[1], size_wh[0]), mode="bicubic",
                                               align_corners=False, antialias=True)

    if init == "noise":
        g = torch.Generator().manual_seed(seed)
        base = (0.5 + 0.08 * (torch.rand((1, 3, wh[1], wh[0]), generator=g) - 0.5)).to(dev)
    else:
        base = to_tensor(source, wh).to(dev)
    guide_t = to_tensor(guide_img) if guide_img is not None else None

    objective_mod = objective_mod.to(dev)
    net = prepare_net(loaded.features(objective_mod.layers), dev, dtype=dtype)
    extract = make_extract(net, dev, dtype)
    gradient = make_gradient(net, objective_mod, bb, dev, dtype, jitter=jitter, tile=tile, overlap=overlap)

    history: list[dict] = []
    frames: list = []
    stopped = None
    fault = ""
    image_t = None  # the current octave's dreamed image

    def on_event(event):
        if event.snapshot is not None:
            frames.append(to_pil(event.snapshot).resize(wh))
        if callback is not None:
            callback(event)

    detail = torch.zeros((1, 3, sizes[0][1], sizes[0][0]), device=dev)
    try:
        for k, size_k in enumerate(sizes, start=1):
            base_k = resized(base, size_k).clamp(0, 1)
            start = (base_k + resized(detail, size_k)).clamp(0, 1)
            images = {}
            if guide_t is not None:
                gwh = fit_size(guide_img.size, min(max(size_k), GUIDE_MAX_SIZE))
                bb.check_size(gwh[1], gwh[0], "the guide image")
                images["guide"] = [resized(guide_t, gwh).clamp(0, 1)]
            ctx = TermContext(bb, images=images, options={
                "stage": k, "size": size_k, "position_scale": (size_k[1] / wh[1], size_k[0] / wh[0])})
            objective_mod.prepare(ctx, extract)
            result = optimize(start, None, objective_mod.names, iterations=iterations, optimizer=optimizer, lr=step,
                              callback=on_event, log_every=log_every, snapshot_every=snapshot_every, stage=k,
                              stages=len(sizes), gradient=gradient,
                              label=f"octave {k}/{len(sizes)} {size_k[0]}x{size_k[1]}")
            history.extend(result.history)
            if result.stopped == OOM:  # say what was tried and what would fit; keep what was made
                fault = oom_message(result.memory, max(size_k), min_size=bb.min_size, option="--size",
                                    fitted=max(sizes[k - 2]) if k > 1 else None, precision=recipe["precision"],
                                    hints=_tile_hint(tile, size_k, bb.min_size))
                if not math.isfinite(result.best_loss):  # nothing new at this octave
                    if image_t is None:
                        raise OutOfMemory(f"{fault}; nothing was written")
                    stopped = OOM
                    break
            image_t = result.image
            detail = image_t - base_k
            if result.stopped:
                stopped = result.stopped
                break
    except KeyboardInterrupt:
        if image_t is None:
            raise
        stopped = "interrupted"
    if tuple(image_t.shape[-2:]) != (wh[1], wh[0]):  # stopped early: carry the detail up to full size
        own_base = resized(base, (image_t.shape[-1], image_t.shape[-2])).clamp(0, 1)  # base_k may be the next's
        image_t = (base + resized(image_t - own_base, wh)).clamp(0, 1)
    recipe["stopped"] = stopped
    return Result(to_pil(image_t), history, recipe, stopped, frames, image_t.detach(), fault)


def _tile_hint(tile: int, size: tuple[int, int], min_size: int) -> tuple[str, ...]:
    """Smaller tiles bound a dream's memory: half the tile in use, or half the image if it was untiled."""
    current = tile if tile and tile < max(size) else max(size)
    smaller = current // 2 // 16 * 16
    return (f"--tile {smaller}",) if smaller >= min_size else ()


# --- the hybrid ----------------------------------------------------------------------------------

_NOT_ACTIVATIONS = ("conv", "pool", "maxpool", "avgpool", "bn")


def choose_dream_layer(backbone, used) -> str:
    """The backbone's default dream layer if content and style leave it unused, else the deepest
    unused activation (a ReLU or block output), else the deepest unused layer."""
    used = set(used)
    for name in backbone.dream_layers:
        if name in backbone.layer_map and name not in used:
            return name
    free = [layer.name for layer in backbone.layer_map if layer.name not in used]
    if not free:
        raise OptionError(f"content and style use every layer of {backbone.name}; name a --dream-layer "
                          "and pass --allow-overlap")
    activations = [n for n in free if not n.startswith(_NOT_ACTIVATIONS)]
    return (activations or free)[-1]


def hybrid_hook(dream_layers, weight: float | None = None, allow_overlap: bool = False,
                objective: str = "mean", announce: Callable[[str], None] | None = None,
                then: Callable | None = None):
    """A ``term_hook`` for :func:`~dreamstyle.style.transfer` that adds an activation term on
    ``dream_layers`` (specs, or "auto": a layer neither content nor style uses) of ``weight``
    (default :data:`DEFAULT_DREAM_WEIGHT`)."""
    weight = DEFAULT_DREAM_WEIGHT if weight is None else weight
    if isinstance(dream_layers, str):
        dream_layers = [dream_layers]
    specs = list(dream_layers or [])
    _positive("dream-weight", weight, allow_zero=True)

    def hook(term_spec, backbone, notes):
        from .activation import DreamTarget, check_targets, parse_target

        used: dict[str, str] = {}
        for role in ("content", "style"):
            w, opts = term_spec.get(role, (0, {}))
            if w:
                for name in opts.get("layers") or ():
                    used.setdefault(name, role)
        targets, auto = [], []
        for spec in specs:
            if str(spec).strip() == "auto":
                name = choose_dream_layer(backbone, set(used) | {t.layer for t in targets})
                targets.append(DreamTarget(name))
                auto.append(name)
            else:
                targets.append(parse_target(spec))
        check_targets(targets, backbone)
        for t in targets:
            if t.layer in used and not allow_overlap and t.layer not in auto:
                raise OptionError(
                    f"--dream-layer {t.layer} is also a {used[t.layer]} layer, so the two terms would fight over "
                    "it; pick another (--dream-layer auto picks one neither uses) or pass --allow-overlap")
        if "activation" in term_spec:
            raise OptionError("--dream-layer and --loss activation both add the activation term; use one of them")
        term_spec["activation"] = (weight, {"layers": targets, "objective": objective})
        notes["dream_layers"] = [str(t) for t in targets]
        notes["dream_weight"] = weight
        if auto:
            notes["dream_auto"] = auto
            if announce is not None:
                announce(f"dream layer{'s' if len(auto) > 1 else ''}: {', '.join(auto)} "
                         f"(auto: neither content nor style uses {'them' if len(auto) > 1 else 'it'})")
        if then is not None:
            then(term_spec, backbone, notes)

    return hook
