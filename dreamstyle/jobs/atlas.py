"""A researcher's views of a layer: ``atlas`` (one visualization per channel, from noise, batched:
image b of a batch maximizes the b-th channel) and ``activations`` (the channels an image excites
most, their activation maps and their visualizations). Every batch is a dream job run by the one
runner; the visualization options are dream's (``VisualizeOptions``)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from PIL import Image

from ..activation import ActivationLoss
from ..errors import Interrupted, OptionError
from ..images import fit_size, load_image, to_pil, to_tensor
from ..objective import Objective, extra_terms
from ..runner import Item, labelled, run
from ..runtime import versions
from ..session import Session
from ..settings import ActivationsSettings, AtlasSettings, DreamSettings
from ..sheets import Panel, contact_sheet
from ..stop import Reason
from .dream import DreamJob

NOISE = 0.08  # the grey noise a visualization starts from: 0.5 ± NOISE/2, as dream --init noise


@dataclass
class Cell:
    channel: int
    image: Image.Image | None
    activation: float  # the channel's mean activation in its visualization
    stopped: Reason | None = None

    def caption(self, text: str) -> str:
        """``text``, or why the cell is still noise: a channel silent everywhere on the starting noise
        (after a ReLU) has no gradient to grow from."""
        return "never fired from noise" if self.activation == 0 else text


@dataclass
class Atlas:
    backbone: str
    layer: str
    cells: list[Cell]
    recipe: dict
    stopped: Reason | None = None

    def sheet(self, columns: int | None = None) -> Image.Image:
        r = self.recipe
        cell = (r["size"], r["size"])
        panels = [Panel(c.image, [f"{c.channel}", c.caption(f"{c.activation:.4g}")]) for c in self.cells]
        weights = " (random weights)" if r.get("weights") == "random" else ""
        title = (
            f"channels · {self.backbone}{weights} {self.layer} · {len(self.cells)} channels · {r['param']} · "
            f"{r['transforms'] or 'no transforms'} · {r['iterations']} steps · caption: channel, activation"
        )
        cols = columns or max(1, math.ceil(math.sqrt(len(panels))))
        return contact_sheet(panels, cell, columns=cols, title=title, min_width=96)

    def to_dict(self) -> dict:
        return {
            "backbone": self.backbone,
            "layer": self.layer,
            "stopped": self.stopped,
            "channels": [{"channel": c.channel, "activation": c.activation} for c in self.cells],
            "recipe": self.recipe,
        }


class ChannelsJob(DreamJob):
    """A batch of visualizations from noise: image b maximizes channel ``channels[b]`` of ``layer``."""

    def __init__(self, settings: DreamSettings, session, layer: str, channels, recipe_paths: str = "full"):
        super().__init__(settings, session, recipe_paths=recipe_paths)
        self.layer, self.channels = layer, list(channels)
        spec = f"{layer}:{','.join(str(c) for c in self.channels)}"
        self.objective = Objective([("activation", ActivationLoss(spec, each=True), 1.0)]) + extra_terms(
            settings.losses, session.backbone
        )

    def still_item(self) -> Item:
        side = self.settings.size
        noise = [
            torch.rand((1, 3, side, side), generator=torch.Generator().manual_seed(self.seed + c))
            for c in self.channels
        ]  # each channel its own noise: a cell does not depend on its batch
        content = 0.5 + NOISE * (torch.cat(noise) - 0.5)
        return Item(content.to(self.device), (side, side))

    @torch.no_grad()
    def activations(self, images: torch.Tensor) -> list[float]:
        """Each image's mean activation of its own channel."""
        feats = self.extract(self.objective)(images.to(self.device))[self.layer].float()
        return [float(feats[b, c].mean()) for b, c in enumerate(self.channels)]


def visualize(settings, session, layer: str, channels, callback=None, recipe_paths: str = "full"):
    """Visualizations of ``channels`` of ``layer`` in batches of ``settings.batch``: (cells, stopped,
    the dream recipe of the first batch)."""
    s = settings
    dream_settings = _dream_settings(s, layer)
    cells, stopped, recipe = [], None, None
    chunks = [channels[i : i + s.batch] for i in range(0, len(channels), s.batch)]
    for n, chunk in enumerate(chunks, start=1):
        first = (n - 1) * s.batch + 1
        job = ChannelsJob(dream_settings, session, layer, chunk, recipe_paths)
        if dream_settings.seed is None:
            dream_settings = dream_settings.replace(seed=job.seed)  # every batch from the same seed

        last = first + len(chunk) - 1
        label = f"cells {first}-{last} of {len(channels)}" if len(chunk) > 1 else f"cell {first} of {len(channels)}"
        try:
            result = run(job, job.still_item(), labelled(callback, label))
        except (KeyboardInterrupt, Interrupted):
            if not cells:
                raise Interrupted("interrupted before the first iteration; nothing was written") from None
            return cells, Reason.INTERRUPTED, recipe
        recipe = recipe or result.recipe
        values = job.activations(result.tensor)
        state = result.stopped
        cells += [Cell(c, to_pil(result.tensor[b : b + 1]), v, state) for b, (c, v) in enumerate(zip(chunk, values))]
        if state is not None:
            stopped = state
            if state is Reason.INTERRUPTED:
                break
    return cells, stopped, recipe


def _dream_settings(s, layer: str) -> DreamSettings:
    """The dream each batch of cells runs: from noise, one octave, ``layer``'s channels (``s``: the
    atlas's or the activations' settings)."""
    return DreamSettings(
        input=None,
        init="noise",
        layers=(layer,),
        size=s.size,
        octaves=1,
        iterations=s.iterations,
        lr=s.lr,
        optimizer=s.optimizer,
        param=s.param,
        transforms=s.transforms,
        jitter=s.jitter,
        gradient=s.gradient,
        losses=s.losses,
        seed=s.seed,
        device=s.device,
        precision=s.precision,
        backbone=s.backbone,
        weights=s.weights,
        pooling=s.pooling,
        tile=0,
        log_every=s.log_every,
        max_pixels=s.max_pixels,
    )


def _check_channels(session, layer: str, channels) -> None:
    count = session.backbone.layer_map.get(layer).channels  # an unknown layer: one line with suggestions
    bad = [c for c in channels if c >= count]
    if bad:
        raise OptionError(
            f"--channels: channel {bad[0]} is out of range; {layer} of {session.backbone.name} has "
            f"{count} channels (0-{count - 1})"
        )


def atlas(settings: AtlasSettings, *, callback=None, loaded=None, recipe_paths: str = "full") -> Atlas:
    """One visualization per channel of ``settings.layer``."""
    s = settings
    if not s.layer:
        raise OptionError("give a LAYER (see: dreamstyle layers BACKBONE)")
    session = Session.for_settings(s, loaded)
    _check_channels(session, s.layer, s.channels)
    session.backbone.check_size(s.size, s.size, f"--size {s.size}")
    cells, stopped, dream_recipe = visualize(s, session, s.layer, list(s.channels), callback, recipe_paths)
    recipe = {
        **s.to_recipe(recipe_paths),
        "seed": dream_recipe["seed"],
        **session.recipe(recipe_paths),
        "versions": versions(),
        "optimizer_used": dream_recipe.get("optimizer_used", s.optimizer),
        "stopped": stopped,
    }
    return Atlas(session.backbone.name, s.layer, cells, recipe, stopped)


@dataclass
class Excitation:
    """What ``activations`` found: the image, the top channels, their maps and visualizations."""

    image: Image.Image
    layer: str
    top: list[tuple[int, float]]  # (channel, mean activation), strongest first
    maps: list[Image.Image]  # each top channel's activation map, over the image
    cells: list[Cell] = field(default_factory=list)
    recipe: dict = field(default_factory=dict)
    stopped: Reason | None = None

    def sheet(self) -> Image.Image:
        panels = [Panel(self.image, ["the image", f"{self.layer}"])]
        for k, ((c, v), heat) in enumerate(zip(self.top, self.maps)):
            panels.append(Panel(heat, [f"channel {c}", f"mean {v:.3g}"]))
            if self.cells:
                panels.append(Panel(self.cells[k].image, [f"channel {c}", self.cells[k].caption("from noise")]))
        per_line = (2 if self.cells else 1) * min(len(self.top), 4 if self.cells else 8)  # panels beside the image
        weights = " (random weights)" if self.recipe.get("weights") == "random" else ""
        title = (
            f"activations · {self.recipe.get('backbone')}{weights} {self.layer} · the {len(self.top)} channels "
            "the image excites most: their maps over the image" + (" and their visualizations" if self.cells else "")
        )
        flat = []
        for k in range(1, len(panels), per_line):  # later rows start under the image's column, left empty
            flat += [panels[0] if k == 1 else Panel(None, [], note="")] + panels[k : k + per_line]
        return contact_sheet(flat, self.image.size, columns=1 + per_line, title=title, min_width=128)

    def to_dict(self) -> dict:
        return {
            "layer": self.layer,
            "top": [{"channel": c, "mean": v} for c, v in self.top],
            "stopped": self.stopped,
            "recipe": self.recipe,
        }


def heat_map(image: Image.Image, act: torch.Tensor) -> Image.Image:
    """A channel's activation (H, W) over the image: the image dimmed, the activation in warm light."""
    a = act.float().clamp_min(0)
    a = a / a.max() if float(a.max()) > 0 else a
    a = torch.nn.functional.interpolate(a[None, None], size=(image.height, image.width), mode="bilinear")[0, 0]
    base = to_tensor(image)[0] * 0.35
    warm = torch.stack([a, a.pow(2) * 0.85, a.pow(4) * 0.4])
    return to_pil((base + warm).clamp(0, 1)[None])


def activations(settings: ActivationsSettings, *, callback=None, loaded=None, recipe_paths: str = "full") -> Excitation:
    """The ``top`` channels of ``layer`` by their mean activation over the image."""
    s = settings
    session = Session.for_settings(s, loaded)
    bb = session.backbone
    layer = s.layer or next(iter(bb.dream_layers), None)
    if not layer:
        raise OptionError(f"backbone {bb.name!r} has no default layer; give --layer (see: dreamstyle layers {bb.name})")
    count = bb.layer_map.get(layer).channels
    img = load_image(s.image, s.max_pixels).convert("RGB")
    w, h = fit_size(img.size, s.size)
    bb.check_size(h, w, f"the image at --size {s.size}")
    img = img.resize((w, h), Image.LANCZOS) if (w, h) != img.size else img
    extract = session.extract(session.net([layer]))
    with torch.no_grad():
        f = extract(to_tensor(img).to(session.device))[layer].float()[0]  # (C, h, w)
    means = f.mean(dim=(1, 2))
    k = min(s.top, count)
    order = means.topk(k).indices.tolist()
    top = [(c, float(means[c])) for c in order]
    maps = [heat_map(img, f[c].cpu()) for c in order]
    cells, stopped = [], None
    if s.cell:
        bb.check_size(s.cell, s.cell, f"--cell {s.cell}")
        vis = s.replace(size=s.cell)
        cells, stopped, _ = visualize(vis, session, layer, order, callback, recipe_paths)
    recipe = {
        **s.to_recipe(recipe_paths),
        "layer_used": layer,
        **session.recipe(recipe_paths),
        "versions": versions(),
        "top": [{"channel": c, "mean": v} for c, v in top],
        "stopped": stopped,
    }
    return Excitation(img, layer, top, maps, cells, recipe, stopped)
