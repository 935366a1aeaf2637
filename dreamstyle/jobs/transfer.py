"""Style transfer (Gatys et al.), and the hybrid: content + style + TV (+ any ``--loss`` terms, + dream
terms on layers content and style leave unused), coarse to fine over ``--scales``."""

from __future__ import annotations

from typing import Callable

import torch

from ..activation import DreamTarget, check_targets, parse_target
from ..color import luminance, match_color_histogram, recombine_luminance
from ..errors import OptionError
from ..fastnet import load_model, stylize
from ..images import alpha_of, fit_size, to_tensor
from ..layers import DREAMABLE
from ..objective import Objective, extra_terms, term
from ..runner import Item, Plan
from ..schedule import Stage, scale_sides, scale_stages
from ..settings import (
    ABSOLUTE_DREAM_WEIGHT,
    DREAM_WEIGHT,
    MODEL_INIT,
    STYLE_LOSSES,
    TRANSFER_INITS,
    TransferSettings,
)
from ..termspec import TermContext
from .base import Job, absolute_defaults, nothing_to_optimize, resized, with_alpha

# what stays the same over a run's items (prepared once per size): the style images and the masks
FIXED_ROLES = {"style", "style_alpha", "style_mask", "content_mask"}
MASK_ROLES = {"alpha": "alpha", "content": "content_mask", "style": "style_mask", "style_alpha": "style_alpha"}
_NOT_ACTIVATIONS = ("conv", "pool", "maxpool", "avgpool", "bn")


def resolve_layers(given: dict | None, defaults, backbone, what: str) -> dict[str, float]:
    layers = dict(given) if given else {name: 1.0 for name in defaults}
    for name in layers:
        backbone.layer_map.get(name)  # an unknown layer: one line with suggestions
    if not layers:
        raise OptionError(f"--{what}-layers is empty")
    return layers


def choose_dream_layer(backbone, used) -> str:
    """The backbone's default dream layer if content and style leave it unused, else the deepest
    unused activation or block output (by the layers' ``kind``; a map that gives no kinds, by the
    usual names: not conv*, pool*, bn*), else the deepest unused layer."""
    used = set(used)
    for name in backbone.dream_layers:
        if name in backbone.layer_map and name not in used:
            return name
    free = [layer for layer in backbone.layer_map if layer.name not in used]
    if not free:
        raise OptionError(
            f"content and style use every layer of {backbone.name}; name a --dream-layer and pass --allow-overlap"
        )
    if any(layer.kind for layer in backbone.layer_map):  # the map says what each layer is
        activations = [layer.name for layer in free if layer.kind in DREAMABLE]
    else:  # a map without kinds: by the usual names
        activations = [layer.name for layer in free if not layer.name.startswith(_NOT_ACTIVATIONS)]
    return (activations or [layer.name for layer in free])[-1]


def dream_terms(
    specs,
    weight: float | None,
    allow_overlap: bool,
    used: dict[str, str],
    backbone,
    announce: Callable[[str], None] | None = None,
    term_scale: str = "relative",
) -> tuple[Objective, dict]:
    """The hybrid's activation term on ``specs`` ("auto": a layer neither content nor style uses),
    and what to record of it."""
    if weight is None:
        weight = ABSOLUTE_DREAM_WEIGHT if term_scale == "absolute" else DREAM_WEIGHT
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
                "it; pick another (--dream-layer auto picks one neither uses) or pass --allow-overlap"
            )
    notes = {"dream_layers_used": [str(t) for t in targets], "dream_weight_used": weight}
    if auto:
        notes["dream_auto"] = auto
        if announce is not None:
            announce(
                f"dream layer{'s' if len(auto) > 1 else ''}: {', '.join(auto)} "
                f"(auto: neither content nor style uses {'them' if len(auto) > 1 else 'it'})"
            )
    return weight * term("activation", layers=targets, objective="mean"), notes


class TransferJob(Job):
    """Built once per run: the checked settings, the style images, the objective."""

    def __init__(
        self,
        settings: TransferSettings,
        session,
        *,
        clip: bool = False,
        announce: Callable[[str], None] | None = None,
        recipe_paths: str = "full",
    ):
        super().__init__(settings, session, recipe_paths)
        s, bb = settings, session.backbone
        self.content_layers = resolve_layers(s.content_layers, bb.content_layers, bb, "content")
        self.style_layers = resolve_layers(s.style_layers, bb.style_layers, bb, "style")
        objective = (
            s.content_weight * term("content", layers=self.content_layers)
            + s.style_weight * term(STYLE_LOSSES[s.style_loss], layers=self.style_layers)
            + s.tv_weight * term("tv")
            + extra_terms(s.losses, bb, absolute_defaults(s))
        )
        if s.losses.keys() & {"activation"} and s.dream_layers:
            raise OptionError("--dream-layer and --loss activation both add the activation term; use one of them")
        if s.dream_layers:
            used = {
                name: role
                for role, layers, w in (
                    ("content", self.content_layers, s.content_weight),
                    ("style", self.style_layers, s.style_weight),
                )
                if w
                for name in layers
            }
            dream, notes = dream_terms(
                s.dream_layers, s.dream_weight, s.allow_overlap, used, bb, announce, s.term_scale
            )
            objective, self.notes = objective + dream, {**self.notes, **notes}
        if clip and s.temporal_weight:
            objective = objective + s.temporal_weight * term("temporal")
        self.objective = nothing_to_optimize(objective)
        self.notes.update(content_layers_used=self.content_layers, style_layers_used=self.style_layers)
        self._styles = None
        self.init_model = (
            load_model(s.init[len(MODEL_INIT) :], self.device).net if s.init.startswith(MODEL_INIT) else None
        )
        self.init_image = None if s.init in TRANSFER_INITS or self.init_model else to_tensor(self.load(s.init))
        self.color_reference = None  # the content the style colours follow (--preserve-color)
        self._prepared: dict[int, tuple] = {}  # term -> the stage key its fixed-role targets were made for
        self.load_masks()

    @property
    def styles(self):
        """The style images, read on first use (after the content: its errors come first)."""
        if self._styles is None:
            self._styles = [self.load(p) for p in self.settings.styles]
            self._style_tensors = [to_tensor(img) for img in self._styles]
        return self._styles

    @property
    def style_tensors(self):
        _ = self.styles  # loads them
        return self._style_tensors

    def preparing(self, item, stage) -> str:
        n = len(self.settings.styles)
        return (
            f"computing the style targets ({n} style image{'s' if n != 1 else ''}) at {stage.size[0]}x{stage.size[1]}"
        )

    # --- items ------------------------------------------------------------------------------------
    def still_item(self) -> Item:
        img = self.load(self.settings.content)
        item = Item(
            to_tensor(img).to(self.device),
            fit_size(img.size, self.settings.size),
            source=self.settings.content,
            source_size=img.size,
            alpha=alpha_of(img, device=self.device),
        )
        self.check_item(item, img.size)
        return item

    def check_item(self, item: Item, source_wh) -> None:
        """Sizes against the backbone's minimum and the pixel limit, for every stage and style image."""
        of = f"of the {source_wh[0]}x{source_wh[1]} content image"
        stages = self.stages(item)
        scales = self.settings.scales
        scales = ",".join(map(str, scales)) if isinstance(scales, tuple) else scales
        for stage in stages:
            self.check_size(
                stage.size,
                f"the output at --size {stage.long_side} {of}"
                if stage.last
                else f"the {stage.long_side} px stage of --scales {scales} {of}",
            )
        for stage in stages:
            for img in self.styles:
                s_wh = fit_size(img.size, max(1, round(stage.long_side * self.settings.style_scale)))
                at = "" if stage.last else f" in the {stage.long_side} px stage of --scales"
                self.check_size(s_wh, f"the style image at --style-scale {self.settings.style_scale:g}{at}")

    def stages(self, item: Item) -> list[Stage]:
        s = self.settings
        if item.warm:
            return [Stage(1, 1, item.size, item.iterations or s.iterations)]
        return scale_stages(item.source_size or item.size, scale_sides(max(item.size), s.scales), s.iterations)

    # --- colour -------------------------------------------------------------------------------------
    def set_color_reference(self, content: torch.Tensor) -> None:
        """--preserve-color: the style images' colours follow this content (a clip's first frame, or
        each still); the style targets are made again."""
        if self.settings.preserve_color:
            self.color_reference = content[:1]
            self._prepared.clear()

    def for_optimizing(self, content: torch.Tensor) -> torch.Tensor:
        return luminance(content) if self.settings.preserve_color == "luminance" else content

    def style_images(self, long_side: int) -> list[torch.Tensor]:
        s, out = self.settings, []
        for img, t in zip(self.styles, self.style_tensors):
            t = t.to(self.device)
            ref = self.color_reference.to(self.device) if self.color_reference is not None else None
            if ref is not None and s.preserve_color == "histogram":
                t = match_color_histogram(t, ref)
            elif ref is not None and s.preserve_color == "luminance":
                t = luminance(t, match=ref)
            out.append(resized(t, self.style_size(img, long_side)))
        return out

    def style_size(self, img, long_side: int) -> tuple[int, int]:
        """A style image's size for an output whose long side is ``long_side`` (--style-scale)."""
        return fit_size(img.size, max(1, round(long_side * self.settings.style_scale)))

    def style_alphas(self, long_side: int) -> list:
        """Each style image's own transparency at its size (None: opaque)."""
        return [alpha_of(img, self.style_size(img, long_side), self.device) for img in self.styles]

    # --- a stage -------------------------------------------------------------------------------------
    def plan(self, item: Item, stage: Stage, previous) -> Plan:
        if self.settings.preserve_color and self.color_reference is None:
            self.set_color_reference(item.content.to(self.device))
        wh = stage.size
        content = resized(self.for_optimizing(item.content.to(self.device)), wh)
        masks = self.masks_at(wh, item)
        present = {"content", "style", *item.images, *(MASK_ROLES[k] for k in masks), "style_alpha"}
        key = (stage.long_side, id(self.color_reference), wh if masks.keys() - {"alpha"} else None)
        skip = [
            t
            for t in self.objective.terms
            if getattr(t, "reads", None) is not None
            and set(t.reads) & present <= FIXED_ROLES
            and self._prepared.get(id(t)) == key
        ]
        styles = self.style_images(stage.long_side) if len(skip) < len(self.objective.terms) else []
        if styles:
            masks["style_alpha"] = self.style_alphas(stage.long_side)
        images = {
            "content": [content],
            "style": styles,
            **{role: [resized(t.to(self.device), wh) for t in ts] for role, ts in item.images.items()},
        }
        tile, overlap = self.tile_for(wh, self.objective.layers)
        gradient = self.gradient(self.objective, tile=tile, overlap=overlap)
        ctx = TermContext(
            self.backbone,
            images=images,
            blend=self.settings.style_blend,
            options={"stage": stage.index, "size": wh, "term_scale": self.settings.term_scale},
            masks=masks,
            tiler=gradient.tiler,
        )
        self.objective.to(self.device).prepare(ctx, self.extract(self.objective), skip=lambda t: t in skip)
        for t in self.objective.terms:
            self._prepared[id(t)] = key
        return Plan(self.start(item, stage, previous, content), self.objective, gradient)

    def start(self, item: Item, stage: Stage, previous, content: torch.Tensor) -> torch.Tensor:
        wh, init = stage.size, self.settings.init
        if previous is not None:
            return resized(previous, wh)
        if item.start is not None:
            return resized(item.start.to(self.device), wh)
        if init == "content":
            return content
        if self.init_model is not None:
            return stylize(self.init_model, content)
        if init == "noise":
            return torch.rand(content.shape, device=self.device)
        source = self.style_tensors[0] if init == "style" else self.init_image
        return resized(source.to(self.device), wh).expand(content.shape[0], -1, -1, -1)

    def initial(self, item: Item) -> torch.Tensor:
        """What --init starts a cold item from, at the output size."""
        content = resized(self.for_optimizing(item.content.to(self.device)), item.size)
        return self.start(Item(content, item.size), Stage(1, 1, item.size, 1), None, content)

    def oom_message(self, stage, memory, stages, hints=()) -> str:
        """As every job's, and where a style image at --style-scale is larger than the output, that
        image is the likely cause: the line says so."""
        s = self.settings
        sizes = [self.style_size(img, stage.long_side) for img in self.styles]
        big = max(sizes, key=lambda wh: wh[0] * wh[1])
        if big[0] * big[1] > stage.size[0] * stage.size[1]:
            hints = (
                f"a smaller --style-scale (the style image is {big[0]}x{big[1]} px at --style-scale "
                f"{s.style_scale:g}, larger than the {stage.size[0]}x{stage.size[1]} px output)",
                *hints,
            )
        return super().oom_message(stage, memory, stages, (*hints, *self.tile_hint(stage)))

    def finish(self, item: Item, image, done: int, stages) -> torch.Tensor:
        if self.settings.preserve_color == "luminance":
            image = recombine_luminance(image, item.content.to(image.device))
        return with_alpha(image, item.alpha)
