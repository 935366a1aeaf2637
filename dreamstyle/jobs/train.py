"""Training a feed-forward style network (:mod:`dreamstyle.fastnet`) against the transfer objective.

The job is a transfer whose content is a folder of photos and whose "picture" is the network's
output on a batch of random crops of them: every term, weight, layer, backbone and plugin term a
transfer takes applies (the hybrid's dream layers included). The network's weights are the
engine's variable (:class:`~dreamstyle.fastnet.NetworkParam`), so training runs through the one
runner: one stage of ``iterations`` steps, each on a new batch (its content targets computed
before the step; the style targets once), Adam by default, Ctrl-C and divergence stopping it as
any run. ``checkpoint_every`` writes the model file every N steps (atomically); ``resume`` starts
from a model file and goes on with its step count and batch order (the optimizer's moments start
again).
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import torch

from ..clips import list_images
from ..errors import ImageError, OptionError, OutputError, UserError
from ..fastnet import SUFFIX, Architecture, NetworkParam, StyleNet, load_model, parameter_count, save_model
from ..images import load_image, to_tensor
from ..runner import Item, Plan
from ..schedule import Stage
from ..settings import TrainSettings
from ..stop import Reason
from .transfer import TransferJob

DEFAULT_LR = 1e-3  # Adam's own learning rate for the network's weights
MIN_PHOTOS = 1


class DivergedTraining(UserError):
    """Training left the network's weights non-finite: nothing worth writing."""


class Photos:
    """Random square crops of a folder's photos, drawn from the run's seed: step N's batch is the
    same in every run with that seed (so a resumed run sees what the first one would have). A photo
    that cannot be read is skipped, once, with one line to ``on_skip``."""

    def __init__(
        self,
        paths: list[Path],
        side: int,
        batch: int,
        seed: int,
        max_pixels: int,
        on_skip: Callable[[str], None] | None = None,
    ):
        self.paths, self.side, self.batch, self.seed = list(paths), int(side), int(batch), int(seed)
        self.max_pixels, self.on_skip = max_pixels, on_skip
        self._cache: dict[Path, torch.Tensor | None] = {}

    def _photo(self, path: Path) -> torch.Tensor | None:
        if path not in self._cache:
            try:
                img = load_image(path, self.max_pixels)
                short = min(img.size)
                if short < self.side:  # upscale so a crop fits
                    w, h = img.size
                    img = img.resize(
                        (max(self.side, round(w * self.side / short)), max(self.side, round(h * self.side / short)))
                    )
                self._cache[path] = to_tensor(img)
            except (UserError, OSError) as exc:
                self._cache[path] = None
                if self.on_skip is not None:
                    self.on_skip(f"skipped {path.name}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
        return self._cache[path]

    def centre(self, path: Path) -> torch.Tensor | None:
        """The photo's centre crop (1, 3, side, side), or None where it cannot be read."""
        t = self._photo(Path(path))
        if t is None:
            return None
        h, w = t.shape[-2:]
        y, x = (h - self.side) // 2, (w - self.side) // 2
        return t[..., y : y + self.side, x : x + self.side]

    def batch_at(self, step: int) -> torch.Tensor:
        """Step ``step``'s batch (B, 3, side, side), from the photos that can be read."""
        rng = random.Random(f"{self.seed}:{step}")
        crops = []
        for _ in range(len(self.paths) * 4):
            if len(crops) == self.batch:
                break
            t = self._photo(rng.choice(self.paths))
            if t is None:
                continue
            h, w = t.shape[-2:]
            y, x = rng.randrange(h - self.side + 1), rng.randrange(w - self.side + 1)
            crops.append(t[..., y : y + self.side, x : x + self.side])
        if len(crops) < self.batch:
            raise ImageError("no photo in the folder could be read (each was skipped)")
        return torch.cat(crops, 0)


def check_model_output(path, overwrite: bool) -> Path:
    """A model file to write: a .dsm path, not a file there already (unless ``overwrite``)."""
    path = Path(path)
    if path.suffix.lower() != SUFFIX:
        raise OutputError(f"{path}: a model file is written as {SUFFIX} (like style{SUFFIX})")
    if path.exists() and not overwrite:
        raise OutputError(f"{path} exists; pass --overwrite to replace it, or --resume to go on training it")
    if not path.parent.is_dir():
        raise OutputError(f"{path.parent} is no folder to write {path.name} into")
    return path


def photo_paths(folder, held_out: int) -> tuple[list[Path], list[Path]]:
    """(training photos, held-out photos) of ``folder``, by name."""
    paths = list_images(folder) if Path(folder).is_dir() else []
    if not paths:
        raise ImageError(f"{folder}: give a folder of photos to train on")
    if held_out and held_out >= len(paths):
        raise OptionError(f"--held-out {held_out} leaves no photo to train on ({len(paths)} in {folder})")
    return (paths[:-held_out], paths[-held_out:]) if held_out else (paths, [])


def architecture(settings: TrainSettings) -> Architecture:
    return Architecture(
        width=settings.width,
        blocks=settings.blocks,
        upsample=settings.upsample,
        edge=settings.edge,
        growth=settings.growth,
        taper=settings.taper,
    )


class TrainJob(TransferJob):
    """``output``: the model file, written every ``checkpoint_every`` steps; with ``resume``, gone
    on from (its weights, step count and order of photos)."""

    source_key = "photos"

    def __init__(
        self,
        settings: TrainSettings,
        session,
        output,
        *,
        resume: bool = False,
        on_skip: Callable[[str], None] | None = None,
        announce: Callable[[str], None] | None = None,
        recipe_paths: str = "full",
    ):
        super().__init__(settings, session, announce=announce, recipe_paths=recipe_paths)
        self.output = Path(output)
        self.lr = settings.lr if settings.lr is not None else DEFAULT_LR
        self.paths, self.held_out = photo_paths(settings.content, settings.held_out)
        self.photos = Photos(self.paths, settings.size, settings.batch, self.seed, settings.max_pixels, on_skip)
        self.first_step = 0
        if resume:
            model = load_model(self.output)
            net, self.first_step = model.net, model.step
            if model.net.arch != architecture(settings):
                self.notes["architecture_from"] = str(self.output)
        else:
            torch.manual_seed(self.seed)
            net = StyleNet(architecture(settings))
        self.net = net.to(self.device).train()
        self.param = NetworkParam(self.net)
        self.param.step_scale = 255.0  # the optimizer's learning rate is Adam's own (see optimizers.adam)
        self.notes.update(
            architecture=asdict(self.net.arch),
            parameters=parameter_count(self.net),
            photos=len(self.paths),
            lr_used=self.lr,
        )
        self._stage: Stage | None = None
        self.begun = 0  # the steps begun in this run

    def steps_done(self, stopped) -> int:
        """The model's step count after a run that ``stopped`` (None: finished): a step that Ctrl-C
        cut short did not change the weights."""
        return self.first_step + (self.begun - 1 if stopped is Reason.INTERRUPTED else self.begun)

    def check_finite(self) -> None:
        v = self.param.variable
        if v is not None and not bool(torch.isfinite(v).all()):
            last = f"; the last checkpoint is {self.output}" if self.settings.checkpoint_every else ""
            raise DivergedTraining(
                f"the network's weights went to NaN or infinity at step "
                f"{self.first_step + self.begun} (try a smaller --lr){last}; nothing was written"
            )

    def default_optimizer(self) -> str:
        return "adam"

    def preparing(self, item, stage) -> str:
        return (
            f"{super().preparing(item, stage)}; training a {parameter_count(self.net) / 1e6:.2f} M-parameter "
            f"network on {len(self.paths)} photos"
        )

    def still_item(self) -> Item:
        side = self.settings.size
        self.check_size((side, side), f"the --size {side} px crops")
        batch = self.photos.batch_at(self.first_step + 1).to(self.device)
        return Item(batch, (side, side), source=self.settings.content, label="")

    def stages(self, item: Item) -> list[Stage]:
        return [Stage(1, 1, item.size, self.settings.iterations)]

    def plan(self, item: Item, stage: Stage, previous) -> Plan:
        self._stage = stage
        first = super().plan(item, stage, None)
        self.param.photos = item.content
        return Plan(item.content, first.objective, first.gradient, param=self.param, new_step=self.new_step)

    def new_step(self, step: int) -> None:
        """Before step ``step``: a new batch and its content targets (the style's stay), then the
        checkpoint the last steps earned."""
        at = self.first_step + step
        self.begun = step
        if step > 1:
            batch = self.photos.batch_at(at).to(self.device)
            super().plan(Item(batch, self._stage.size), self._stage, None)
            self.param.photos = batch
            every = self.settings.checkpoint_every
            if every and (step - 1) % every == 0:
                self.save(at - 1)
        self.objective.new_step(step)

    def save(self, step: int) -> Path:
        """The model file, with the weights reached after ``step`` steps (atomically)."""
        return save_model(self.output, self.param.store(), self.model_recipe(step), step)

    def model_recipe(self, step: int) -> dict:
        out = self.settings.to_recipe(self.recipe_paths)
        out.update(
            seed=self.seed,
            backbone=self.backbone.name,
            terms=self.objective.to_recipe(),
            **self.notes,
            photos_sha256=photo_hashes(self.paths),
            steps=step,
        )
        return out

    @torch.no_grad()
    def loss_on(self, paths) -> float:
        """The objective's total on the network's pictures of ``paths`` (centre crops at --size): how
        well it does on photos it never trained on."""
        crops = [c for c in (self.photos.centre(p) for p in paths) if c is not None]
        if not crops:
            raise ImageError("none of those photos could be read")
        batch, side = torch.cat(crops).to(self.device), self.settings.size
        stage = Stage(1, 1, (side, side), 1)
        plan = super().plan(Item(batch, (side, side)), stage, None)
        total, _ = plan.gradient(self.param.store()(batch), 1.0, backward=False)
        return float(total) / len(crops)

    def finish(self, item, image, done, stages):
        return image


def photo_hashes(paths) -> dict[str, str]:
    return {Path(p).name: hashlib.sha256(Path(p).read_bytes()).hexdigest()[:16] for p in paths}
