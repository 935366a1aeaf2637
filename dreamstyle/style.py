"""Style transfer (Gatys et al.) as a driver over the engine: build the objective per scale,
compute targets once per scale, optimize coarse to fine."""

from __future__ import annotations

import difflib
import math
import os
from dataclasses import dataclass, field
from typing import Callable, Sequence

from .errors import OptionError

INITS = ("content", "noise", "style")
COLOR_MODES = ("luminance", "histogram")


@dataclass
class Result:
    """What a run returns. Unpacks as ``image, history = dreamstyle.transfer(...)``."""

    image: object  # PIL.Image.Image
    history: list[dict]
    recipe: dict = field(default_factory=dict)
    stopped: str | None = None  # None, "interrupted", "diverged" or "out of memory"
    frames: list = field(default_factory=list)  # PIL snapshots (for GIFs), if asked for
    tensor: object = None  # the final image as a (1, 3, H, W) tensor in [0, 1]
    fault: str = ""  # on "out of memory": one line saying what was tried and what would fit

    def __iter__(self):
        yield self.image
        yield self.history


def scale_sizes(size: int, scales: int | Sequence[int] | str | None) -> list[int]:
    """Sizes (long side, px) coarse to fine: ``N`` halves each step down from ``size``;
    an explicit list is used as given (sorted)."""
    if size is not None and size < 1:
        raise OptionError(f"--size must be a positive number of pixels, not {size}")
    if scales is None or scales == 1 or scales == "1":
        return [size]
    if isinstance(scales, str):
        parts = [p for p in scales.split(",") if p.strip()]
        try:
            values = [int(p) for p in parts]
        except ValueError:
            raise OptionError(f"--scales {scales!r}: give a count N or a list of sizes like 256,512") from None
        if len(values) == 1:
            scales = values[0]
        else:
            scales = values
    if isinstance(scales, int):
        if scales < 1:
            raise OptionError(f"--scales must be at least 1, not {scales}")
        return [max(1, round(size / 2 ** (scales - 1 - i))) for i in range(scales)]
    sizes = sorted(int(s) for s in scales)
    if any(s < 1 for s in sizes):
        raise OptionError("--scales sizes must be positive")
    return sizes


def _positive(name: str, value, allow_zero=False):
    if value is None:
        return
    if (not isinstance(value, (int, float)) or value != value or value < 0 or value == float("inf")
            or (value == 0 and not allow_zero)):
        raise OptionError(f"--{name} must be {'zero or more' if allow_zero else 'more than zero'}, not {value}")


def check_transfer_options(styles, style_blend, *, content_weight, style_weight, tv_weight, style_scale,
                           iterations, lr, optimizer, preserve_color, **more_weights):
    """Validate the options every transfer driver shares (stills, clips, folders), before any work.

    Returns the style images as a list and the blend as floats (or None). ``more_weights`` are
    further loss weights (``temporal_weight=...``) that must be zero or more.
    """
    from .engine import OPTIMIZERS

    if isinstance(styles, (str, os.PathLike)) or hasattr(styles, "size"):
        styles = [styles]
    styles = list(styles)
    if not styles:
        raise OptionError("give at least one style image")
    weights = {"content-weight": content_weight, "style-weight": style_weight, "tv-weight": tv_weight,
               **{k.replace("_", "-"): v for k, v in more_weights.items()}}
    for name, value in weights.items():
        _positive(name, value, allow_zero=True)
    _positive("style-scale", style_scale)
    if lr is not None:
        _positive("lr", lr)
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise OptionError(f"--iterations must be a whole number of at least 1, not {iterations}")
    if optimizer not in OPTIMIZERS[:2]:
        raise OptionError(f"--optimizer {optimizer!r}: choose lbfgs or adam")
    if preserve_color not in (None, *COLOR_MODES):
        raise OptionError(f"--preserve-color {preserve_color!r}: choose luminance or histogram")
    if style_blend is not None:
        style_blend = [float(w) for w in style_blend]
        if len(style_blend) != len(styles):
            raise OptionError(f"--style-blend has {len(style_blend)} weights for {len(styles)} style images")
        if any(w < 0 for w in style_blend) or sum(style_blend) <= 0:
            raise OptionError("--style-blend weights must be zero or more and not all zero")
    return styles, style_blend


def transfer_term_spec(bb, content_layers, style_layers, content_weight, style_weight, tv_weight, losses):
    """The term spec of a transfer: content, style and TV on resolved layers, plus any --loss terms.

    Returns ``(term_spec, extra)`` where ``extra`` is the normalized ``--loss`` mapping.
    """
    from .plugins import get_host

    c_layers = resolve_layers(content_layers, bb.content_layers, bb.layer_map, "content")
    s_layers = resolve_layers(style_layers, bb.style_layers, bb.layer_map, "style")
    term_spec = {"content": (content_weight, {"layers": c_layers}),
                 "style": (style_weight, {"layers": s_layers}),
                 "tv": (tv_weight, {})}
    extra = normalize_losses(losses)
    for name, (w, opts) in extra.items():
        spec = get_host().loss_terms.get(name)
        term_spec[name] = (spec.default_weight if w is None else w, opts)
    return term_spec, extra


def resolve_layers(spec, defaults: Sequence[str], layer_map, what: str) -> dict[str, float]:
    from .terms import parse_layer_weights

    weights = parse_layer_weights(spec) if spec else {name: 1.0 for name in defaults}
    for name in weights:
        layer_map.get(name)  # raises UnknownNameError with suggestions
    if not weights:
        raise OptionError(f"--{what}-layers is empty")
    return weights


def _option_names(build) -> list[str]:
    import inspect

    try:
        params = inspect.signature(build).parameters.values()
    except (TypeError, ValueError):
        return []
    return [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def _unknown_options(build, options: dict) -> list[str]:
    """Options ``build`` cannot take (none when it accepts **kwargs or has no readable signature)."""
    import inspect

    try:
        params = inspect.signature(build).parameters.values()
    except (TypeError, ValueError):
        return []
    if any(p.kind == p.VAR_KEYWORD for p in params):
        return []
    return [k for k in options if k not in _option_names(build)]


def build_terms(spec: dict, ctx_backbone) -> dict:
    """{"name": (weight, options)} -> {"name": (LossTerm, weight)} through the registry."""
    from .plugins import get_host

    host = get_host()
    terms = {}
    for name, (weight, options) in spec.items():
        if not weight:
            continue
        term_spec = host.loss_terms.get(name)
        unknown = _unknown_options(term_spec.build, options)
        if unknown:
            raise OptionError(f"loss term {name!r} has no option {', '.join(map(repr, unknown))}"
                              f" (its options: {', '.join(_option_names(term_spec.build)) or 'none'})")
        try:
            term = term_spec.build(**options)
        except (TypeError, ValueError) as exc:
            raise OptionError(f"loss term {name!r}: {exc}") from None
        missing = [layer for layer in getattr(term, "layers", ()) if layer not in ctx_backbone.layer_map]
        if missing:
            raise OptionError(f"loss term {name!r} uses layer {missing[0]!r}, which {ctx_backbone.name} does not have;"
                              f" give it layers of {ctx_backbone.name} (e.g. --loss {name}:layers=...; list them"
                              f" with: dreamstyle layers {ctx_backbone.name})")
        terms[name] = (term, float(weight))
    return terms


def normalize_losses(losses) -> dict:
    """Accept {"name": weight}, {"name": (weight, {options})}, "name=w,name2=w2", or one term with
    options, "name=w:key=value:key=value" (the value may hold commas: "histogram=10:layers=relu1_1,relu3_1")."""
    if not losses:
        return {}
    if isinstance(losses, str):
        losses = [losses]
    if not isinstance(losses, dict):
        out = {}
        for item in losses:
            head, *opt_parts = str(item).split(":")
            parts = [head] if opt_parts else head.split(",")
            for part in parts:
                name, _, w = part.partition("=")
                name = name.strip()
                if not name:
                    if opt_parts:
                        raise OptionError(f"--loss {item!r}: give the term's name first (NAME=WEIGHT:KEY=VALUE)")
                    continue
                try:
                    weight = float(w) if w.strip() else None
                except ValueError:
                    raise OptionError(f"--loss {part!r}: the weight must be a number (NAME=WEIGHT)") from None
                options = {}
                for opt in opt_parts:
                    key, eq, value = opt.partition("=")
                    if not eq or not key.strip():
                        raise OptionError(f"--loss {item!r}: options are KEY=VALUE after a colon, not {opt!r}")
                    options[key.strip()] = value.strip()
                out[name] = (weight, options) if options else weight
        losses = out
    result = {}
    for name, value in losses.items():
        if isinstance(value, tuple):
            weight, options = value
        else:
            weight, options = value, {}
        result[name] = (weight, dict(options))
    return result


def transfer(
    content,
    styles,
    *,
    backbone: str = "vgg19",
    weights: str | os.PathLike | None = None,
    device: str = "auto",
    seed: int | None = None,
    size: int = 512,
    style_scale: float = 1.0,
    style_blend: Sequence[float] | None = None,
    content_layers=None,
    style_layers=None,
    content_weight: float = 5.0,
    style_weight: float = 100.0,
    tv_weight: float = 3e4,
    losses=None,
    pooling: str = "max",
    init: str = "content",
    optimizer: str = "lbfgs",
    iterations: int = 500,
    lr: float | None = None,
    scales=None,
    preserve_color: str | None = None,
    precision: str = "auto",
    compile: bool = False,
    callback: Callable | None = None,
    log_every: int = 1,
    snapshot_every: int = 0,
    max_pixels: int | None = None,
    loaded=None,
    term_hook: Callable | None = None,
    dream_layers=None,
    dream_weight: float | None = None,
    allow_overlap: bool = False,
    announce: Callable[[str], None] | None = None,
) -> Result:
    """Gatys style transfer of ``content`` (path or PIL image) in the style of ``styles``.

    Returns a :class:`Result`: ``image, history = transfer(...)``. ``callback(event)`` receives a
    :class:`~dreamstyle.engine.StepEvent` every step. ``losses`` adds registered terms by name:
    ``{"histogram": 10.0}`` or ``{"name": (weight, {options})}``. The hybrid: ``dream_layers`` (specs
    like ``"relu4_4"``, ``"relu4_4:12"``, or ``"auto"``) adds an activation term of ``dream_weight``
    on layers content and style do not use (``allow_overlap`` permits those too); ``announce(line)``
    is told which layer ``"auto"`` chose.
    """
    import torch

    from .backbones import LoadedBackbone
    from .color import luminance, match_color_histogram, recombine_luminance
    from .engine import StageResult, optimize
    from .faults import OOM, OutOfMemory, is_out_of_memory, memory_report, oom_message
    from .images import DEFAULT_MAX_PIXELS, fit_size, load_image, to_pil, to_tensor
    from .plugins import get_backbone
    from .runtime import (amp_dtype, make_evaluate, make_extract, precision_name, prepare_net, resolve_device,
                          seed_everything, versions)
    from .terms import Objective
    from .termspec import TermContext

    # --- validate everything before any work ------------------------------------------------
    styles, style_blend = check_transfer_options(
        styles, style_blend, content_weight=content_weight, style_weight=style_weight, tv_weight=tv_weight,
        style_scale=style_scale, iterations=iterations, lr=lr, optimizer=optimizer, preserve_color=preserve_color)
    sizes = scale_sizes(size, scales)
    dev = resolve_device(device)
    seed = seed_everything(seed)
    dtype = amp_dtype(dev, precision)
    bb = loaded.backbone if loaded is not None else (get_backbone(backbone) if isinstance(backbone, str) else backbone)
    term_spec, extra = transfer_term_spec(bb, content_layers, style_layers, content_weight, style_weight,
                                          tv_weight, losses)
    notes: dict = {}
    if dream_layers:  # the hybrid: activation terms on layers (or "auto") content and style leave unused
        from .deepdream import hybrid_hook

        term_hook = hybrid_hook(dream_layers, dream_weight, allow_overlap, announce=announce, then=term_hook)
    elif dream_weight is not None or allow_overlap:
        raise OptionError("--dream-weight and --allow-overlap go with --dream-layer")
    if term_hook is not None:  # drivers (the hybrid) add or check terms here
        term_hook(term_spec, bb, notes)
    max_pixels = max_pixels or DEFAULT_MAX_PIXELS
    content_img = load_image(content, max_pixels)
    style_imgs = [load_image(s, max_pixels) for s in styles]
    init_img = None
    if init not in INITS:
        close = difflib.get_close_matches(init, INITS, n=1, cutoff=0.6) if isinstance(init, str) else []
        if close and not os.path.exists(init):
            raise OptionError(f"--init {init!r} is not content, noise, style or an image file; "
                              f"did you mean {close[0]!r}?")
        init_img = load_image(init, max_pixels)
    for long_side in sizes:
        w, h = fit_size(content_img.size, long_side)
        of = f"of the {content_img.size[0]}x{content_img.size[1]} content image"
        bb.check_size(h, w, f"the output at --size {long_side} {of}" if long_side == max(sizes)
                      else f"the {long_side} px stage of --scales {scales} {of}")
    if loaded is None:
        try:
            loaded = LoadedBackbone(bb, weights, pooling, dev)
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            raise OutOfMemory(f"out of memory on {dev} loading backbone {bb.name!r}; try --device cpu "
                              "or a smaller backbone") from None

    recipe = {
        "command": "transfer", "backbone": bb.name, "weights": loaded.weights, "pooling": pooling,
        "content": str(content) if isinstance(content, (str, os.PathLike)) else "<image>",
        "styles": [str(s) if isinstance(s, (str, os.PathLike)) else "<image>" for s in styles],
        "size": size, "scales": sizes, "style_scale": style_scale, "style_blend": style_blend,
        "content_layers": term_spec["content"][1]["layers"], "style_layers": term_spec["style"][1]["layers"],
        "content_weight": content_weight, "style_weight": style_weight, "tv_weight": tv_weight,
        "losses": {k: v[0] for k, v in extra.items()}, "init": str(init), "optimizer": optimizer,
        "iterations": iterations, "lr": lr, "preserve_color": preserve_color, "seed": seed,
        "device": str(dev), "precision": precision_name(dtype), "compile": compile,
        "versions": versions(), **notes,
    }

    # --- colour handling ----------------------------------------------------------------------
    full_content = to_tensor(content_img)
    style_tensors_full = [to_tensor(s) for s in style_imgs]
    full_content_for_opt = full_content
    if preserve_color == "histogram":
        style_tensors_full = [match_color_histogram(s, full_content) for s in style_tensors_full]
    elif preserve_color == "luminance":
        style_tensors_full = [luminance(s, match=full_content) for s in style_tensors_full]
        full_content_for_opt = luminance(full_content)

    def resized(t, wh):
        return torch.nn.functional.interpolate(t, size=(wh[1], wh[0]), mode="bicubic", align_corners=False,
                                               antialias=True).clamp(0, 1).to(dev)

    history: list[dict] = []
    frames: list = []
    image = None
    stopped = None
    fault = ""
    net = None

    def on_event(event):
        if event.snapshot is not None:
            frames.append(to_pil(event.snapshot))
        if callback is not None:
            callback(event)

    for stage, long_side in enumerate(sizes, start=1):
        wh = fit_size(content_img.size, long_side)
        try:
            content_t = resized(full_content_for_opt, wh)
            style_ts = []
            for s_img, s_t in zip(style_imgs, style_tensors_full):
                s_wh = fit_size(s_img.size, max(1, round(long_side * style_scale)))
                bb.check_size(s_wh[1], s_wh[0], f"style image at --style-scale {style_scale}")
                style_ts.append(resized(s_t, s_wh))
            objective = Objective(build_terms(term_spec, bb)).to(dev)
            if net is None or net.names != bb.layer_map.order(objective.layers):
                net = prepare_net(loaded.features(objective.layers), dev, compile, dtype) if objective.layers else None
            extract = make_extract(net, dev, dtype) if net is not None else (lambda img: {})
            ctx = TermContext(bb, images={"content": [content_t], "style": style_ts}, blend=style_blend,
                              options={"stage": stage, "size": wh})
            objective.prepare(ctx, extract)
            if image is not None:
                start = resized(image, wh)
            elif init == "content":
                start = content_t
            elif init == "noise":
                start = torch.rand(content_t.shape, device=dev)
            elif init == "style":
                start = resized(style_tensors_full[0], wh)
            else:
                start = resized(to_tensor(init_img), wh)
            evaluate = make_evaluate(net if net is not None else (lambda x: {}), objective, dev, dtype)
            result = optimize(start, evaluate, objective.names, iterations=iterations, optimizer=optimizer, lr=lr,
                              callback=on_event, log_every=log_every, snapshot_every=snapshot_every,
                              stage=stage, stages=len(sizes), clamp=optimizer != "lbfgs")
        except KeyboardInterrupt:  # between stages (targets, resizing): keep the last stage's image
            if image is None:
                raise
            stopped = "interrupted"
            break
        except Exception as exc:  # out of memory outside the engine stops like inside it; the rest propagates
            if not is_out_of_memory(exc):
                raise
            result = StageResult(image, math.inf, 0, OOM, [], memory_report(dev, exc, wh))
        history.extend(result.history)
        if result.stopped == OOM:  # keep the best of this stage, else the last stage's image
            if math.isfinite(result.best_loss):
                image = result.image
            fault = oom_message(result.memory, long_side, min_size=bb.min_size,
                                fitted=sizes[stage - 2] if stage > 1 else None, precision=recipe["precision"])
            if image is None:
                raise OutOfMemory(f"{fault}; nothing was written")
            stopped = OOM
            break
        image = result.image
        if result.stopped:
            stopped = result.stopped
            break
    if preserve_color == "luminance":
        image = recombine_luminance(image, full_content.to(dev))
    recipe["stopped"] = stopped
    return Result(to_pil(image), history, recipe, stopped, frames, image.detach(), fault)
