"""What every job shares: :class:`Job` (checks, inputs, the session, the recipe) and helpers."""

from __future__ import annotations

import random

import torch
import torch.nn.functional as F

from ..backbones.own import file_of
from ..errors import ImageError, OptionError
from ..faults import oom_message
from ..images import load_image, load_mask
from ..memory import auto_tile, available_bytes
from ..objective import Objective
from ..optimizers import get_optimizer
from ..plugins import get_host
from ..runtime import versions
from ..settings import ABSOLUTE_DEFAULTS, plain
from ..tiling import Gradient, default_overlap


def resized(t: torch.Tensor, wh: tuple[int, int], device=None, clamp: bool = True) -> torch.Tensor:
    """``t`` (B, 3, H, W) at (width, height), bicubic with antialiasing, clamped to [0, 1] (an image;
    ``clamp=False`` for a difference, such as a dream's detail)."""
    t = t.to(device) if device is not None else t
    if tuple(t.shape[-2:]) == (wh[1], wh[0]):
        return t
    out = F.interpolate(t, size=(wh[1], wh[0]), mode="bicubic", align_corners=False, antialias=True)
    return out.clamp(0, 1) if clamp else out


class Job:
    """What every job shares: settings, session, the seed, the learning rate, recipe notes."""

    def __init__(self, settings, session, recipe_paths: str = "full"):
        self.settings, self.session = settings, session
        self.seed = settings.seed if settings.seed is not None else random.randrange(2**31)
        self.optimizer = self.default_optimizer() if settings.optimizer is None else settings.optimizer
        get_optimizer(self.optimizer)  # an unknown name is one line, before any work
        self.lr = settings.lr
        self.recipe_paths = recipe_paths
        self.notes: dict = {}  # what the job resolved, for the recipe (layers, auto choices, sizes)
        self.on_phase = None  # told each runner.Phase (what the run prepares before its first step); the CLI's
        if settings.optimizer is None:
            self.notes["optimizer_used"] = self.optimizer

    def default_optimizer(self) -> str:
        return "lbfgs"

    @property
    def backbone(self):
        return self.session.backbone

    @property
    def device(self):
        return self.session.device

    # --- inputs ---------------------------------------------------------------------------------
    def load(self, path_or_image):
        return load_image(path_or_image, self.settings.max_pixels)

    def check_size(self, wh: tuple[int, int], what: str) -> None:
        """An image the job will make or read is no smaller than the backbone's minimum and no larger
        than the pixel limit (before any work)."""
        w, h = wh
        self.backbone.check_size(h, w, what)
        if w * h > self.settings.max_pixels:
            raise ImageError(
                f"{what} would be {w}x{h} = {w * h:,} pixels, above the limit of "
                f"{self.settings.max_pixels:,}; lower --size or raise --max-pixels"
            )

    def load_masks(self) -> None:
        """``--style-mask`` and ``--content-mask``, read once (where a job has them)."""
        s = self.settings
        paths = getattr(s, "style_masks", ())
        self.style_masks = [load_mask(p, s.max_pixels) if p else None for p in paths]
        content = getattr(s, "content_mask", None)
        self.content_mask = load_mask(content, s.max_pixels) if content is not None else None

    def masks_at(self, wh: tuple[int, int], item) -> dict:
        """The masks of a stage (``TermContext.masks``) at its size ``wh``."""
        out = {}
        if item.alpha is not None:
            out["alpha"] = resized(item.alpha.to(self.device), wh)
        if getattr(self, "content_mask", None) is not None:
            out["content"] = resized(self.content_mask.to(self.device), wh)
        if any(m is not None for m in getattr(self, "style_masks", ())):
            out["style"] = [None if m is None else resized(m.to(self.device), wh) for m in self.style_masks]
        return out

    def tile_for(self, wh: tuple[int, int], layers) -> tuple[int, int]:
        """(tile, overlap) of a stage: ``--tile`` as given (0: never), or, by default, tiles only where
        the estimated memory of a step is more than is free (recorded in the recipe)."""
        s = self.settings
        tile = s.tile
        overlap = s.tile_overlap if s.tile_overlap is not None else default_overlap(self.backbone, layers, 1 << 30)
        if tile is None:
            itemsize = torch.finfo(self.session.dtype).bits // 8 if self.session.dtype is not None else 4
            tile = auto_tile(self.backbone, layers, wh, overlap, available_bytes(self.device), itemsize)
        if tile and (wh[0] > tile or wh[1] > tile):
            self.notes.setdefault("tiles_used", {})[f"{wh[0]}x{wh[1]}"] = {"tile": tile, "overlap": overlap}
        return tile, overlap

    # --- the engine's pieces --------------------------------------------------------------------------
    def gradient(self, objective: Objective, jitter: int = 0, tile: int = 0, overlap=None, circular: bool = False):
        net = self.session.net(objective.layers, circular) if objective.layers else None
        return Gradient(net, objective, self.session, jitter=jitter, tile=tile, overlap=overlap)

    def extract(self, objective: Objective, circular: bool = False):
        if not objective.layers:
            return lambda image: {}
        return self.session.extract(self.session.net(objective.layers, circular))

    def after(self, item, stage, best):
        return best

    def preparing(self, item, stage) -> str:
        """What a stage's plan computes before its first step, in words (a phase line), or nothing."""
        return ""

    # --- reporting ----------------------------------------------------------------------------------
    def recipe(self, item, stages) -> dict:
        out = self.settings.to_recipe(self.recipe_paths)
        terms = self.objective.to_recipe()
        out.update(
            seed=self.seed,
            backbone=plain(self.backbone.name, self.recipe_paths, files=file_of(self.backbone.name) is not None),
            **self.session.recipe(self.recipe_paths),
            **self.notes,
            sizes=[list(s.size) for s in stages],
            terms=terms,
            versions=versions(),
            plugins=plugin_versions([self.backbone.plugin, *(t["plugin"] for t in terms.values())]),
        )
        if item.source is not None:
            out[self.source_key] = plain(item.source, self.recipe_paths, files=True)
        return out

    source_key = "content"  # the recipe key of an item's input

    def tile_hint(self, stage, tile: int | None = None) -> tuple[str, ...]:
        """("--tile N",): half the tile the stage ran in (``tile``, else the one the recipe notes, else
        the whole picture), where that is not below the backbone's minimum."""
        if not tile:
            used = self.notes.get("tiles_used", {}).get(f"{stage.size[0]}x{stage.size[1]}")
            tile = used["tile"] if used else stage.long_side
        smaller = min(tile, stage.long_side) // 2 // 16 * 16
        return (f"--tile {smaller}",) if smaller >= self.backbone.min_size else ()

    def oom_message(self, stage, memory, stages, hints: tuple[str, ...] = ()) -> str:
        fitted = stages[stage.index - 2].long_side if stage.index > 1 else None
        return oom_message(
            memory,
            stage.long_side,
            min_size=self.backbone.min_size,
            fitted=fitted,
            precision=self.session.recipe()["precision_used"],
            hints=hints,
        )


def plugin_versions(names) -> dict:
    """{plugin: version} of the plugins (not built in) that supplied the backbone or a term."""
    infos = {p.name: p for p in get_host().plugins()}
    out = {}
    for name in names:
        info = infos.get(name)
        if info is not None and not info.builtin:
            out[name] = info.version or "unknown"
    return out


def with_alpha(image: torch.Tensor, alpha: torch.Tensor | None) -> torch.Tensor:
    """``image`` (B, 3, H, W) with the input's transparency as a fourth channel (none: as it is)."""
    if alpha is None:
        return image
    a = resized(alpha.to(image.device), (image.shape[-1], image.shape[-2])).to(image.dtype)
    return torch.cat([image, a.expand(image.shape[0], -1, -1, -1)], 1)


def absolute_defaults(settings) -> dict | None:
    """0.1's default weights of the ``--loss`` terms, where the settings replay its absolute terms."""
    return ABSOLUTE_DEFAULTS if settings.term_scale == "absolute" else None


def nothing_to_optimize(objective: Objective) -> Objective:
    objective = objective.without_zero_weights()
    if not objective.names:
        raise OptionError("nothing to optimize: every loss weight is 0")
    return objective
