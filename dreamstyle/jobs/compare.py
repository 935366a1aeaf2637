"""Compare: the same transfer on several backbones (``"vgg19,vgg19:avg,alexnet:random"``), each with
its own session and its default layers unless layers are given; per backbone the time per
iteration, the total time, the peak memory and the final losses; a labelled contact sheet. A
backbone that fails is reported in its row; the others still run."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Callable

from ..images import fit_size, load_image
from ..judge import judge_rows, make_judge
from ..memory import MEMORY_NOTE, MemoryProbe
from ..runtime import device_name, resolve_device
from ..settings import TransferSettings, plain
from ..sheets import Panel, contact_sheet
from ..stop import Reason
from ..variants import Variant, parse_variants
from .sweep import (
    JUDGE_COLUMNS,
    CellRow,
    error_text,
    fmt,
    fmt_bytes,
    judge_cells,
    judge_dict,
    judge_note,
    loss_names,
    resolved_seed,
    rounded,
    run_cells,
)

CompareRow = CellRow  # a comparison's row: one backbone's run
__all__ = ["Variant", "parse_variants", "Comparison", "CompareRow", "compare", "error_text"]


def row_dict(row: CellRow, paths: str = "full") -> dict:
    """One backbone's line of ``compare.json`` (``paths`` "names": a weights file by its name, as in recipes)."""
    v = row.variant
    return {
        "label": v.label,
        "backbone": v.name,
        "weights": plain(v.weights or "pretrained", paths, files=True),
        "pooling": v.pooling,
        "status": row.status,
        "error": row.error,
        "iterations": row.steps,
        "ms_per_iteration": rounded(row.ms_per_iteration, 2),
        "run_seconds": rounded(row.run_seconds, 3),
        "total_seconds": rounded(row.total_seconds, 3),
        "peak_memory_bytes": row.memory_bytes,
        "losses": {k: rounded(x, 6, sig=True) for k, x in row.losses.items()},
        "judge": judge_dict(row),
        "output": row.output,
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
    judge: dict | None = None  # the judge network (backbone, weights, pooling); None: not judged

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
        title = (
            f"dreamstyle compare · {s.get('size')} px · {s.get('iterations')} iterations · "
            f"{s.get('optimizer')} · seed {s.get('seed')} · {self.device} · the same weights for every "
            f"backbone (content {fmt(s.get('content_weight'), '{:g}')}, style {fmt(s.get('style_weight'), '{:g}')})"
        )
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
        return {
            "command": "compare",
            "settings": self.settings,
            "device": self.device,
            "peak_memory": MEMORY_NOTE[self.memory_kind],
            "stopped": self.stopped,
            "judge": self.judge,
            "backbones": [row_dict(r, self.paths) for r in self.rows],
        }

    def to_markdown(self) -> str:
        s = self.settings
        terms = self.loss_names
        lines = [
            "# dreamstyle compare",
            "",
            f"Content `{s.get('content')}`, style {', '.join(f'`{x}`' for x in s.get('styles', []))}; "
            f"{s.get('size')} px, {s.get('iterations')} iterations of {s.get('optimizer')}, "
            f"seed {s.get('seed')}, on {self.device}.",
            "",
            weights_note(s),
            "",
        ]
        judged = [label for _, label in JUDGE_COLUMNS] if self.judge else []
        header = (
            ["backbone", "status", "ms / iteration", "total s", "peak memory"]
            + [f"{t} loss" for t in terms]
            + judged
            + ["output"]
        )
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "|".join(["---"] + ["---"] + ["---:"] * (3 + len(terms) + len(judged)) + ["---"]) + "|")
        for row in self.rows:
            cells = [
                row.variant.label,
                row.status,
                fmt(row.ms_per_iteration, "{:.1f}"),
                fmt(row.total_seconds, "{:.1f}"),
                fmt_bytes(row.memory_bytes),
            ]
            cells += [fmt(row.losses.get(t), "{:.4g}") for t in terms]
            cells += judge_cells(row) if self.judge else []
            cells.append(f"[{row.output}]({row.output})" if row.output else "")
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        lines += [
            "",
            f"Peak memory: {MEMORY_NOTE[self.memory_kind]}.",
            "Total time includes loading the network and computing the targets; "
            "ms / iteration is the optimization alone.",
        ] + ([judge_note(self.judge)] if self.judge else [])
        failed = [r for r in self.rows if r.error]
        if failed:
            lines += ["", "Failures:", ""] + [f"- **{r.variant.label}**: {r.error}" for r in failed]
        return "\n".join(lines) + "\n"


def weights_note(s: dict) -> str:
    """What the table says of the weights: the same for every backbone, and what that means."""
    weights = (
        f"content {fmt(s.get('content_weight'), '{:g}')}, style {fmt(s.get('style_weight'), '{:g}')}, "
        f"TV {fmt(s.get('tv_weight'), '{:g}')}"
    )
    if s.get("term_scale", "absolute") == "relative":
        return (
            f"Weights {weights}, the same for every backbone. The content and style terms are relative "
            "(each layer's error over its target's energy), so they mean the same balance on every "
            "backbone, whatever its activation scale: the pictures differ by the networks alone."
        )
    return (
        f"Weights {weights}, the same for every backbone, on absolute terms (the squared errors of "
        "dreamstyle 0.1): each backbone's activation scale changes their balance."
    )


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


def compare(
    settings: TransferSettings,
    variants: str | Sequence,
    *,
    callback: Callable | None = None,
    on_start: Callable | None = None,
    snapshot_every: int = 0,
    recipe_paths: str = "full",
    executor=None,
    on_row: Callable | None = None,
    judge: str | None = "vgg19",
) -> Comparison:
    """Run ``settings`` (a transfer) on every variant: a sweep over backbones, on ``executor`` (default:
    the settings' ``--executor``). ``on_start(row, index, count)`` is called before each (in this
    process); ``callback(event)`` gets every engine step (``event.label`` is the variant's). Then
    every picture is graded on one ``judge`` network (:class:`~dreamstyle.judge.Judge`; None or
    "none": not graded)."""
    if isinstance(variants, str) or (variants and isinstance(variants[0], str)):
        variants = parse_variants(variants, settings.weights, settings.pooling)
    judging = make_judge(judge, settings)  # checked before any work
    dev = resolve_device(settings.device)
    settings = resolved_seed(settings)  # one seed: every backbone starts from the same image
    content = load_image(settings.content, settings.max_pixels)
    styles = [load_image(s, settings.max_pixels) for s in settings.styles]
    summary = {**settings.to_recipe(recipe_paths), "device": str(dev)}
    rows, stopped = run_cells(
        "transfer",
        settings,
        variants,
        executor=executor,
        callback=callback,
        on_start=on_start,
        on_row=on_row,
        snapshot_every=snapshot_every,
        recipe_paths=recipe_paths,
    )
    for row in rows:
        if row.status == "skipped":
            row.error = "not run: the comparison was interrupted"
    if stopped is None:
        judge_rows(judging, rows, settings.content, settings.styles)
    return Comparison(
        rows,
        content,
        styles,
        summary,
        device_name(dev),
        MemoryProbe(dev).kind,
        stopped,
        recipe_paths,
        judging.describe(recipe_paths) if judging else None,
    )
