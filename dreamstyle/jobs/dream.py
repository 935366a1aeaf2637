"""DeepDream: maximize layers, channels or neurons (or a guide's features) over octaves, small to
large, the detail each octave adds carried up to the next; jitter and exact tiles through
:class:`~dreamstyle.tiling.Gradient`."""

from __future__ import annotations

import torch

from ..activation import check_positions, check_targets, parse_targets
from ..color import match_color_histogram, recombine_luminance
from ..errors import OptionError
from ..images import alpha_of, fit_size, to_tensor
from ..lapnorm import normalized
from ..objective import extra_terms, term
from ..param import make_param
from ..runner import Item, Plan
from ..schedule import Stage, octave_stages
from ..settings import DEFAULT_SIZE, DREAM_STEP, DreamSettings
from ..termspec import TermContext
from ..tiling import default_overlap
from ..transforms import Transforms, through
from .base import Job, absolute_defaults, nothing_to_optimize, resized, with_alpha

GUIDE_MAX_SIZE = 512  # the guide image's long side is capped: its features are matched everywhere


class DreamJob(Job):
    source_key = "input"

    def __init__(self, settings: DreamSettings, session, *, clip: bool = False, recipe_paths: str = "full"):
        super().__init__(settings, session, recipe_paths)
        s, bb = settings, session.backbone
        self.targets = parse_targets(s.layers) or parse_targets(list(bb.dream_layers)[:1])
        if not self.targets:
            raise OptionError(
                f"backbone {bb.name!r} has no default dream layer; give --layer "
                f"(list layers with: dreamstyle layers {bb.name})"
            )
        check_targets(self.targets, bb)
        if s.tile and s.tile < bb.min_size:
            raise OptionError(
                f"--tile {s.tile} is below the {bb.min_size} px minimum of backbone {bb.name!r}; "
                "use a larger tile or --tile 0"
            )
        if s.guide is not None and s.objective != "mean":
            raise OptionError(
                f"--objective {s.objective} does not apply with --guide (a guided dream maximizes "
                "the dot product with the guide's features)"
            )
        if s.guide is not None:
            objective = term("guide", layers=self.targets)
        else:
            objective = term("activation", layers=self.targets, objective=s.objective)
        objective = objective + extra_terms(s.losses, bb, absolute_defaults(s))
        if clip and s.temporal_weight:
            objective = objective + s.temporal_weight * term("temporal")
        self.objective = nothing_to_optimize(objective)
        self.guide = self.load(s.guide) if s.guide is not None else None
        self.lr = DREAM_STEP if s.lr is None else s.lr
        self.overlap = (
            s.tile_overlap if s.tile_overlap is not None else default_overlap(bb, self.objective.layers, s.tile)
        )
        self.transforms = Transforms.from_spec(s.transforms, s.jitter)
        self.notes.update(layers_used=[str(t) for t in self.targets], tile_overlap_used=self.overlap, step=self.lr)
        self._detail = None  # what the octaves so far added to the base, at the last octave's size

    def default_optimizer(self) -> str:
        """DeepDream's normalized step on pixels; Adam on a spectrum (lucent's choice), whose
        per-coefficient scaling keeps the 1/frequency weights from drowning the detail."""
        return "adam" if self.settings.param == "fft" else "normalized"

    # --- items ----------------------------------------------------------------------------------------
    def still_item(self) -> Item:
        s = self.settings
        img = self.load(s.input) if s.input is not None else None
        side = s.size or DEFAULT_SIZE
        wh = fit_size(img.size, s.size) if img is not None else (side, side)
        self.check_item(Item(None, wh), img.size if img is not None else None)  # before any pixel is made
        if img is not None and s.init != "noise":
            content = to_tensor(img, wh)
        else:  # grey noise, seeded: a layer, channel or neuron visualized from it (--samples: N of them)
            noise = [
                torch.rand((1, 3, wh[1], wh[0]), generator=torch.Generator().manual_seed(self.seed + i))
                for i in range(s.samples)
            ]
            content = 0.5 + 0.08 * (torch.cat(noise) - 0.5)
        alpha = alpha_of(img, wh, self.device) if img is not None and s.init != "noise" else None
        return Item(content.to(self.device), wh, source=s.input, alpha=alpha)

    def check_item(self, item: Item, source_wh=None) -> None:
        s = self.settings
        what = "the output" + (f" at --size {s.size}" if s.size else "")
        if source_wh is not None:
            what += f" of the {source_wh[0]}x{source_wh[1]} input image"
        for stage in self.stages(item):
            self.check_size(stage.size, what if stage.last else f"the {stage.size[0]}x{stage.size[1]} px octave")
        check_positions(self.targets, self.backbone, item.size[1], item.size[0])

    def stages(self, item: Item) -> list[Stage]:
        s = self.settings
        return octave_stages(
            item.size, s.octaves, float(s.octave_scale), self.backbone.min_size, item.iterations or s.iterations
        )

    # --- a stage ---------------------------------------------------------------------------------------
    def base(self, item: Item) -> torch.Tensor:
        base = item.start if item.start is not None else item.content
        return resized(base.to(self.device), item.size)

    def initial(self, item: Item) -> torch.Tensor:
        """What a frame is dreamed from on its own: the frame."""
        return resized(item.content.to(self.device), item.size)

    def preparing(self, item, stage) -> str:
        return "computing the guide's features" if self.guide is not None else ""

    def plan(self, item: Item, stage: Stage, previous) -> Plan:
        wh, full = stage.size, item.size
        base_k = resized(self.base(item), wh)
        if stage.index == 1 or self._detail is None:
            self._detail = torch.zeros_like(base_k)
        start = (base_k + resized(self._detail, wh, clamp=False)).clamp(0, 1)
        images = {role: [resized(t.to(self.device), wh) for t in ts] for role, ts in item.images.items()}
        images["content"] = [base_k]
        if self.guide is not None:
            gwh = fit_size(self.guide.size, min(max(wh), GUIDE_MAX_SIZE))
            self.backbone.check_size(gwh[1], gwh[0], "the guide image")
            images["guide"] = [resized(to_tensor(self.guide).to(self.device), gwh)]
        ctx = TermContext(
            self.backbone,
            images=images,
            options={
                "stage": stage.index,
                "size": wh,
                "position_scale": (wh[1] / full[1], wh[0] / full[0]),
                "term_scale": self.settings.term_scale,
            },
            masks=self.masks_at(wh, item),
        )
        self.objective.to(self.device).prepare(ctx, self.extract(self.objective))
        self._note_picked()
        s = self.settings
        gradient = self.gradient(self.objective, self.transforms.jitter, s.tile, self.overlap)
        gradient = normalized(through(gradient, self.transforms), s.gradient)
        return Plan(start, self.objective, gradient, make_param(s.param, start), regularizer(s.blur, s.decay))

    def _note_picked(self) -> None:
        """--objective strongest / weakest: the recipe names the channels the input picked."""
        for _, t, _ in self.objective.leaves:
            if getattr(t, "picked", None):
                self.notes["channels_picked"] = {layer: list(c) for layer, c in t.picked.items()}

    def after(self, item: Item, stage: Stage, best):
        self._detail = best - resized(self.base(item), stage.size)
        return best

    def finish(self, item: Item, image, done: int, stages) -> torch.Tensor:
        base = self.base(item)
        if tuple(image.shape[-2:]) != tuple(base.shape[-2:]):  # stopped early: carry the detail up to full size
            own = resized(base, (image.shape[-1], image.shape[-2]))
            image = (base + resized(image - own, item.size, clamp=False)).clamp(0, 1)
        mode = self.settings.preserve_color
        if mode == "luminance":
            image = recombine_luminance(image, base)
        elif mode == "histogram":
            image = torch.cat([match_color_histogram(image[i : i + 1], base[i : i + 1]) for i in range(len(image))])
        if self.settings.samples > 1 and len(image) > 1:
            image = side_by_side(image)
        return with_alpha(image, item.alpha)

    def oom_message(self, stage, memory, stages, hints=()) -> str:
        return super().oom_message(stage, memory, stages, (*hints, *self.tile_hint(stage, self.settings.tile)))


def regularizer(blur: float, decay: float):
    """What becomes of the pixels after each step: a Gaussian blur of ``blur`` px, then a pull of
    ``decay`` toward grey (Yosinski et al.'s regularizers); None for neither."""
    if not blur and not decay:
        return None
    # torchvision imports torch._dynamo (seconds of start-up): only a run that blurs pays for it
    from torchvision.transforms.functional import gaussian_blur

    def project(pixels, scale):
        if blur:
            side = min(pixels.shape[-2:])
            k = min(2 * max(1, round(3 * blur)) + 1, side if side % 2 else side - 1)  # a kernel the picture holds
            if k >= 3:
                pixels = gaussian_blur(pixels, [k, k], [blur, blur])
        if decay:
            pixels = 0.5 * scale + (1.0 - decay) * (pixels - 0.5 * scale)
        return pixels

    return project


def side_by_side(images: torch.Tensor, gap: int = 4) -> torch.Tensor:
    """A batch (B, 3, H, W) as one picture, left to right, with white gaps."""
    white = images.new_ones((1, images.shape[1], images.shape[2], gap))
    parts = []
    for i in range(len(images)):
        parts += [images[i : i + 1]] + ([white] if i < len(images) - 1 else [])
    return torch.cat(parts, dim=3)
