"""Compare: the same transfer on several backbones (``"vgg19,vgg19:avg,alexnet:random"``), each with
its own session and its default layers unless layers are given; per backbone the time per
iteration, the total time, the peak memory and the final losses; a labelled contact sheet. A
backbone that fails is reported in its row; the others still run."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import OptionError, items
from ..images import fit_size, load_image
from ..memory import MEMORY_NOTE, MemoryProbe
from ..runtime import device_name, resolve_device
from ..settings import TransferSettings, plain
from ..sheets import Panel, contact_sheet
from ..stop import Reason
from .sweep import CellRow, error_text, fmt, fmt_bytes, loss_names, resolved_seed, rounded, run_cells

CompareRow = CellRow  # a comparison's row: one backbone's run
__all__ = ["Variant", "parse_variants", "Comparison", "CompareRow", "compare", "error_text"]


@dataclass
class Variant:
    """One column of a comparison: a backbone with its weights and pooling."""

    name: str
    weights: str | None = None  # None: the backbone's pretrained weights
    pooling: str = "max"
    stem: str = ""  # file name stem in the output folder (unique within a comparison)

    @property
    def label(self) -> str:
        extras = []
        if self.pooling != "max":
            extras.append(f"{self.pooling} pool")
        if self.weights == "random":
            extras.append("random weights")
        elif self.weights not in (None, "default", "pretrained"):
            extras.append(f"weights {Path(self.weights).name}")
        return self.name + (f" ({', '.join(extras)})" if extras else "")

    @property
    def changes(self) -> dict:
        """The settings this column changes (compare is a sweep over these)."""
        return {"backbone": self.name, "weights": self.weights, "pooling": self.pooling}

    @property
    def slug(self) -> str:
        if self.stem:
            return self.stem
        parts = [self.name]
        if self.pooling != "max":
            parts.append(self.pooling)
        if self.weights == "random":
            parts.append("random")
        elif self.weights not in (None, "default", "pretrained"):
            parts.append(Path(self.weights).stem)
        return re.sub(r"[^A-Za-z0-9._-]+", "-", "-".join(parts)).strip("-.") or "backbone"


def parse_variants(spec: str | Sequence[str], weights: str | None = None, pooling: str = "max") -> list[Variant]:
    """``"vgg19,vgg19:avg,alexnet:random"`` -> variants. After a ``:`` come options, ``:``-separated:
    ``max``/``avg`` (pooling), ``random``/``pretrained`` or ``weights=FILE`` (the rest of the item).
    ``weights``/``pooling`` are the defaults for items that do not say."""
    variants = []
    for item in items(spec, "--backbones") if isinstance(spec, str) else [str(v).strip() for v in spec]:
        name, _, rest = item.partition(":")
        v = Variant(name.strip(), weights, pooling)
        while rest:
            if rest.startswith("weights="):
                v.weights, rest = rest[len("weights="):], ""
                continue
            opt, _, rest = rest.partition(":")
            opt = opt.strip().lower()
            if opt in ("max", "avg"):
                v.pooling = opt
            elif opt in ("random", "pretrained", "default"):
                v.weights = None if opt != "random" else "random"
            elif opt:
                raise OptionError(f"--backbones item {item!r}: unknown option {opt!r} "
                                  "(use max, avg, random, pretrained or weights=FILE after the name)")
        if not v.name:
            raise OptionError(f"--backbones item {item!r} has no backbone name")
        variants.append(v)
    if not variants:
        raise OptionError("--backbones is empty; give a comma list like vgg19,alexnet")
    seen: dict[str, int] = {}
    for v in variants:  # unique file names: a repeated variant gets -2, -3, ...
        base = v.slug
        seen[base] = seen.get(base, 0) + 1
        v.stem = base if seen[base] == 1 else f"{base}-{seen[base]}"
    return variants


def row_dict(row: CellRow, paths: str = "full") -> dict:
    """One backbone's line of ``compare.json`` (``paths`` "names": a weights file by its name, as in recipes)."""
    v = row.variant
    return {
        "label": v.label, "backbone": v.name, "weights": plain(v.weights or "pretrained", paths, files=True),
        "pooling": v.pooling,
        "status": row.status, "error": row.error, "iterations": row.steps,
        "ms_per_iteration": rounded(row.ms_per_iteration, 2), "run_seconds": rounded(row.run_seconds, 3),
        "total_seconds": rounded(row.total_seconds, 3), "peak_memory_bytes": row.memory_bytes,
        "losses": {k: rounded(x, 6, sig=True) for k, x in row.losses.items()}, "output": row.output,
    }


@dataclass
class Comparison:
    rows: list[CellRow]
    content: object  # PIL
    styles: list
    settings: dict
    device: str
    memory_kind: str
    stopped: Reason | None = None  # INTERRUPTED when Ctrl-C ended it
    paths: str = "full"  # what compare.json says of a weights file: its path as given, or its name ("names")

    @property
    def loss_names(self) -> list[str]:
        return loss_names(self.rows)

    def sheet(self, columns: int | None = None):
        """Content, style(s), then one result per backbone, with name and time under each."""
        cell = _cell_size(self)
        panels = [Panel(self.content, ["content"])]
        for i, s in enumerate(self.styles):
            panels.append(Panel(s, ["style" if len(self.styles) == 1 else f"style {i + 1}"]))
        for row in self.rows:
            panels.append(Panel(row.result.image if row.ok else None, caption(row), note=row.error or row.status))
        s = self.settings
        title = (f"dreamstyle compare · {s.get('size')} px · {s.get('iterations')} iterations · "
                 f"{s.get('optimizer')} · seed {s.get('seed')} · {self.device} · the same weights for every "
                 f"backbone (content {fmt(s.get('content_weight'), '{:g}')}, style {fmt(s.get('style_weight'), '{:g}')})")
        return contact_sheet(panels, cell, columns=columns, title=title, max_lines=5)

    def gif_frames(self) -> list:
        """One animation: every backbone's progress side by side (frame k = snapshot k of each)."""
        rows = [r for r in self.rows if r.ok and r.result.frames]
        if not rows:
            return []
        cell = _cell_size(self)
        n = max(len(r.result.frames) for r in rows)
        frames = []
        for k in range(n):
            panels = [Panel(r.result.frames[min(k, len(r.result.frames) - 1)], [r.variant.label]) for r in rows]
            frames.append(contact_sheet(panels, cell, columns=len(panels)))
        frames.extend([frames[-1]] * 5)  # linger on the result
        return frames

    def to_dict(self) -> dict:
        return {"command": "compare", "settings": self.settings, "device": self.device,
                "peak_memory": MEMORY_NOTE[self.memory_kind], "stopped": self.stopped,
                "backbones": [row_dict(r, self.paths) for r in self.rows]}

    def to_markdown(self) -> str:
        s = self.settings
        terms = self.loss_names
        lines = ["# dreamstyle compare", "",
                 f"Content `{s.get('content')}`, style {', '.join(f'`{x}`' for x in s.get('styles', []))}; "
                 f"{s.get('size')} px, {s.get('iterations')} iterations of {s.get('optimizer')}, "
                 f"seed {s.get('seed')}, on {self.device}.", "", weights_note(s), ""]
        header = ["backbone", "status", "ms / iteration", "total s", "peak memory"] + [f"{t} loss" for t in terms] + ["output"]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "|".join(["---"] + ["---"] + ["---:"] * (3 + len(terms)) + ["---"]) + "|")
        for row in self.rows:
            cells = [row.variant.label, row.status, fmt(row.ms_per_iteration, "{:.1f}"),
                     fmt(row.total_seconds, "{:.1f}"), fmt_bytes(row.memory_bytes)]
            cells += [fmt(row.losses.get(t), "{:.4g}") for t in terms]
            cells.append(f"[{row.output}]({row.output})" if row.output else "")
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        lines += ["", f"Peak memory: {MEMORY_NOTE[self.memory_kind]}.",
                  "Total time includes loading the network and computing the targets; "
                  "ms / iteration is the optimization alone."]
        failed = [r for r in self.rows if r.error]
        if failed:
            lines += ["", "Failures:", ""] + [f"- **{r.variant.label}**: {r.error}" for r in failed]
        return "\n".join(lines) + "\n"


def weights_note(s: dict) -> str:
    """What the table says of the weights: the same for every backbone, and what that means."""
    weights = (f"content {fmt(s.get('content_weight'), '{:g}')}, style {fmt(s.get('style_weight'), '{:g}')}, "
               f"TV {fmt(s.get('tv_weight'), '{:g}')}")
    if s.get("term_scale", "absolute") == "relative":
        return (f"Weights {weights}, the same for every backbone. The content and style terms are relative "
                "(each layer's error over its target's energy), so they mean the same balance on every "
                "backbone, whatever its activation scale: the pictures differ by the networks alone.")
    return (f"Weights {weights}, the same for every backbone, on absolute terms (the squared errors of "
            "dreamstyle 0.1): each backbone's activation scale changes their balance.")


def caption(row: CellRow) -> list[str]:
    lines = [row.variant.label]
    if row.ok:
        timing = f"{row.total_seconds:.1f} s"
        if row.ms_per_iteration is not None:
            timing += f" · {row.ms_per_iteration:.0f} ms/it"
        if row.status != "ok":
            timing += f" · {row.status}"
        lines.append(timing)
    else:
        lines.append(row.status)
    return lines


def _cell_size(comp: Comparison) -> tuple[int, int]:
    for row in comp.rows:
        if row.ok:
            return row.result.image.size
    return fit_size(comp.content.size, comp.settings.get("size"))


def compare(settings: TransferSettings, variants: str | Sequence, *, callback: Callable | None = None,
            on_start: Callable | None = None, snapshot_every: int = 0, recipe_paths: str = "full",
            executor=None, on_row: Callable | None = None) -> Comparison:
    """Run ``settings`` (a transfer) on every variant: a sweep over backbones, on ``executor`` (default:
    the settings' ``--executor``). ``on_start(row, index, count)`` is called before each (in this
    process); ``callback(event)`` gets every engine step (``event.label`` is the variant's)."""
    if isinstance(variants, str) or (variants and isinstance(variants[0], str)):
        variants = parse_variants(variants, settings.weights, settings.pooling)
    dev = resolve_device(settings.device)
    settings = resolved_seed(settings)  # one seed: every backbone starts from the same image
    content = load_image(settings.content, settings.max_pixels)
    styles = [load_image(s, settings.max_pixels) for s in settings.styles]
    summary = {**settings.to_recipe(recipe_paths), "device": str(dev)}
    rows, stopped = run_cells("transfer", settings, variants, executor=executor, callback=callback,
                              on_start=on_start, on_row=on_row, snapshot_every=snapshot_every,
                              recipe_paths=recipe_paths)
    for row in rows:
        if row.status == "skipped":
            row.error = "not run: the comparison was interrupted"
    return Comparison(rows, content, styles, summary, device_name(dev), MemoryProbe(dev).kind, stopped, recipe_paths)
