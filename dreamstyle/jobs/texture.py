"""Texture synthesis (Gatys et al. 2015): the Gram statistics of the style images from noise, with no
content image; ``seamless`` makes it tileable (circular padding in the network, wrap-around TV, a
random roll each step so every position is an interior one)."""

from __future__ import annotations

import torch

from ..images import alpha_of, fit_size, to_tensor
from ..objective import extra_terms, term
from ..runner import Item, Plan
from ..schedule import Stage, scale_sides, scale_stages
from ..settings import STYLE_LOSSES, TextureSettings
from ..termspec import TermContext
from .base import Job, absolute_defaults, nothing_to_optimize, resized
from .transfer import resolve_layers

SEAMLESS_JITTER = 16  # px of random roll per step when --seamless and no --jitter is given


class TextureJob(Job):
    source_key = "init"

    def __init__(self, settings: TextureSettings, session, *, recipe_paths: str = "full"):
        super().__init__(settings, session, recipe_paths)
        s, bb = settings, session.backbone
        self.style_layers = resolve_layers(s.style_layers, bb.style_layers, bb, "style")
        objective = (
            s.style_weight * term(STYLE_LOSSES[s.style_loss], layers=self.style_layers)
            + s.tv_weight * term("tv", wrap=s.seamless)
            + extra_terms(s.losses, bb, absolute_defaults(s))
        )
        self.objective = nothing_to_optimize(objective)
        self.styles = [self.load(p) for p in s.styles]
        self.init_image = None if s.init == "noise" else to_tensor(self.load(s.init))
        self.jitter = s.jitter or (SEAMLESS_JITTER if s.seamless else 0)
        self.notes.update(style_layers_used=self.style_layers, jitter_used=self.jitter)
        self.load_masks()

    def still_item(self) -> Item:
        item = Item(None, tuple(self.settings.size))
        for stage in self.stages(item):
            self.check_size(stage.size, "the texture" if stage.last else f"the {stage.long_side} px stage of --scales")
        for img in self.styles:
            s_wh = fit_size(img.size, max(1, round(max(item.size) * self.settings.style_scale)))
            self.check_size(s_wh, f"the style image at --style-scale {self.settings.style_scale:g}")
        return item

    def stages(self, item: Item) -> list[Stage]:
        s = self.settings
        return scale_stages(item.size, scale_sides(max(item.size), s.scales), s.iterations)

    def preparing(self, item, stage) -> str:
        n = len(self.styles)
        return (
            f"computing the style targets ({n} style image{'s' if n != 1 else ''}) at {stage.size[0]}x{stage.size[1]}"
        )

    def plan(self, item: Item, stage: Stage, previous) -> Plan:
        wh, s = stage.size, self.settings
        styles = [
            resized(to_tensor(img).to(self.device), fit_size(img.size, max(1, round(stage.long_side * s.style_scale))))
            for img in self.styles
        ]
        tile, overlap = self.tile_for(wh, self.objective.layers) if not s.seamless else (0, 0)
        gradient = self.gradient(self.objective, self.jitter, tile, overlap, circular=s.seamless)
        masks = {
            **self.masks_at(wh, item),
            "style_alpha": [
                alpha_of(img, (t.shape[-1], t.shape[-2]), self.device) for img, t in zip(self.styles, styles)
            ],
        }
        ctx = TermContext(
            self.backbone,
            images={"style": styles},
            blend=s.style_blend,
            options={"stage": stage.index, "size": wh, "term_scale": s.term_scale},
            masks=masks,
            tiler=gradient.tiler,
        )
        self.objective.to(self.device).prepare(ctx, self.extract(self.objective))  # the painting is not periodic
        if previous is not None:
            start = resized(previous, wh)
        elif self.init_image is not None:
            start = resized(self.init_image.to(self.device), wh)
        else:
            start = torch.rand((1, 3, wh[1], wh[0]), device=self.device)
        return Plan(start, self.objective, gradient)

    def oom_message(self, stage, memory, stages, hints=()) -> str:
        tiles = () if self.settings.seamless else self.tile_hint(stage)
        return super().oom_message(stage, memory, stages, (*hints, *tiles))

    def finish(self, item: Item, image, done: int, stages) -> torch.Tensor:
        return image
