"""Reconstruct: what single layers keep of an image (Gatys et al., figure 1). From the same noise,
the content loss at one layer per panel, or (``style``) the Gram loss on the first layer, the first
two, ...; every panel is a transfer job on one shared session."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

from PIL import Image

from ..errors import Interrupted, OptionError
from ..images import fit_size, load_image
from ..runner import labelled, run
from ..session import Session
from ..settings import CONTENT_WEIGHT, STYLE_WEIGHT, ReconstructSettings, TransferSettings
from ..sheets import Panel, contact_sheet
from ..stop import Reason
from .transfer import TransferJob


@dataclass
class Reconstruction:
    original: object  # PIL, at the output size
    panels: list  # [(label, layers, Result)]
    recipe: dict
    stopped: Reason | None = None

    def sheet(self, columns: int | None = None) -> Image.Image:
        cell = self.original.size
        style = self.recipe.get("mode") == "style"
        panels = [Panel(self.original, ["original"])]
        for label, layers, result, seconds in self.panels:
            total = result.history[-1]["total"] if result.history else float("nan")
            detail = f"loss {total:.3g} · {seconds:.0f} s"
            if style:
                lines = [label, f"{len(layers)} layer{'s' if len(layers) > 1 else ''} · {detail}"]
            else:
                lines = [label, detail]
            if result.stopped:
                lines.append(result.stopped)
            panels.append(Panel(result.image, lines))
        r = self.recipe
        what = "style (Gram loss, growing sets of layers)" if style else "content (one layer each)"
        title = (
            f"reconstruct {what} · {r['backbone']}"
            f"{' (random weights)' if r.get('weights') == 'random' else ''}"
            f"{' · avg pooling' if r.get('pooling') == 'avg' else ''} · {r['iterations']} iterations"
        )
        return contact_sheet(panels, cell, columns=columns, title=title)


def reconstruct(
    settings: ReconstructSettings, *, callback=None, loaded=None, recipe_paths: str = "full"
) -> Reconstruction:
    """Every panel of ``settings`` (one per layer, or per growing set of layers with ``style``)."""
    s = settings
    session = Session.for_settings(s, loaded)
    bb = session.backbone
    names = list(s.layers) if s.layers else list(bb.style_layers)
    if not names:
        raise OptionError("--layers is empty")
    for name in names:
        bb.layer_map.get(name)  # an unknown layer: one line with suggestions
    img = load_image(s.image, s.max_pixels)
    w, h = fit_size(img.size, s.size)
    bb.check_size(h, w, f"the output at --size {s.size}")
    panels = _panels(names, s.style)
    seed = s.seed if s.seed is not None else random.randrange(2**31)  # every panel starts from the same noise
    weight = s.weight if s.weight is not None else (STYLE_WEIGHT if s.style else CONTENT_WEIGHT)
    base = _transfer_settings(s, img, seed).replace(
        **(dict(content_weight=0.0, style_weight=weight) if s.style else dict(style_weight=0.0, content_weight=weight))
    )
    recipe = {
        **s.to_recipe(recipe_paths),
        "mode": "style" if s.style else "content",
        "seed": seed,
        "weights": session.recipe(recipe_paths)["weights"],
        "layers": names,
        "panels": [],
    }
    rec = Reconstruction(img.resize((w, h), Image.LANCZOS) if (w, h) != img.size else img, [], recipe)
    for i, (label, subset) in enumerate(panels, start=1):
        try:
            _panel(rec, base, session, label, subset, labelled(callback, f"{label} ({i}/{len(panels)})"))
        except (KeyboardInterrupt, Interrupted):  # before this panel's first step: keep the panels finished
            if not rec.panels:
                raise Interrupted("interrupted before the first iteration; nothing was written") from None
            rec.stopped = Reason.INTERRUPTED
        if rec.stopped is Reason.INTERRUPTED:
            break
    recipe["stopped"] = rec.stopped
    return rec


def _panels(names: list, style: bool) -> list[tuple[str, list]]:
    """(label, layers) of each panel: one layer each, or (``style``) the first k layers together."""
    if not style:
        return [(name, [name]) for name in names]
    return [(names[k - 1] if k == 1 else f"{names[0]} … {names[k - 1]}", names[:k]) for k in range(1, len(names) + 1)]


def _transfer_settings(s: ReconstructSettings, img, seed: int) -> TransferSettings:
    """The transfer every panel runs (from noise, the picture as content and style), before its terms."""
    return TransferSettings(
        content=img,
        styles=(img,),
        init="noise",
        tv_weight=s.tv_weight,
        size=s.size,
        iterations=s.iterations,
        optimizer=s.optimizer,
        lr=s.lr,
        seed=seed,
        device=s.device,
        precision=s.precision,
        backbone=s.backbone,
        weights=s.weights,
        pooling=s.pooling,
        losses=s.losses,
        log_every=s.log_every,
        max_pixels=s.max_pixels,
    )


def _panel(rec: Reconstruction, base: TransferSettings, session, label: str, subset: list, on_event) -> None:
    """Run one panel (its layers' content or style term alone: ``base`` weighs the other 0) and add it,
    and its recipe entry, to ``rec``."""
    layers = {"style_layers" if rec.recipe["mode"] == "style" else "content_layers": subset}
    start = time.perf_counter()
    job = TransferJob(base.replace(**layers), session)
    result = run(job, job.still_item(), on_event)
    seconds = time.perf_counter() - start
    rec.panels.append((label, subset, result, seconds))
    rec.recipe["panels"].append(
        {
            "label": label,
            "layers": subset,
            "seconds": round(seconds, 2),
            "loss": result.history[-1] if result.history else None,
            "stopped": result.stopped.value if result.stopped else None,
        }
    )
    if result.stopped:
        rec.stopped = result.stopped
