"""Research drivers over :func:`dreamstyle.style.transfer`: the same job on several backbones
(:func:`compare`), and what single layers keep of an image (:func:`reconstruct`).

Neither has a loop of its own: every panel is one ``transfer`` call on a shared engine. Both return
data plus labelled sheets (:mod:`dreamstyle.sheets`); the CLI writes the files.
"""

from __future__ import annotations

import gc
import math
import os
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from .errors import OptionError, UserError
from .sheets import Panel, contact_sheet

# --------------------------------------------------------------------------------------------
# which backbones: "vgg19,vgg19:avg,alexnet:random,resnet50:weights=r50.pth"


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
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    variants = []
    for item in items:
        item = item.strip()
        if not item:
            continue
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


# --------------------------------------------------------------------------------------------
# peak memory, per backbone

MEMORY_NOTE = {
    "cuda": "peak GPU memory allocated by torch (torch.cuda.max_memory_allocated), network weights included",
    "rss": "growth of the process's resident memory (RSS, sampled every 5 ms) while the backbone loaded "
           "and ran, above what the process held before it; memory an earlier backbone freed and this one "
           "reused is not counted",
    "maxrss": "growth of the process's peak resident memory (getrusage ru_maxrss); a backbone that "
              "needs less than an earlier one shows 0",
}


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def _maxrss_bytes() -> int:
    import resource

    value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return value if sys.platform == "darwin" else value * 1024


def _release_memory(device) -> None:
    gc.collect()
    if device.type == "cuda":
        import torch

        torch.cuda.empty_cache()
    else:
        try:  # hand freed heap back to the OS so the next RSS baseline is honest (glibc only)
            import ctypes

            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass


class MemoryProbe:
    """Peak memory of what runs inside ``with``: GPU peak on CUDA, RSS growth on the CPU."""

    def __init__(self, device):
        self.device = device
        if device.type == "cuda":
            self.kind = "cuda"
        elif _rss_bytes() is not None:
            self.kind = "rss"
        else:
            self.kind = "maxrss"
        self.peak = 0
        self.seen = 0  # extra peaks reported from outside (engine events on CUDA)
        self._stop = threading.Event()
        self._thread = None

    def __enter__(self):
        if self.kind == "cuda":
            import torch

            torch.cuda.reset_peak_memory_stats(self.device)
        elif self.kind == "rss":
            self.base = _rss_bytes()
            self.peak = self.base

            def sample():
                while not self._stop.wait(0.005):
                    value = _rss_bytes() or 0
                    if value > self.peak:
                        self.peak = value

            self._thread = threading.Thread(target=sample, name="dreamstyle-rss", daemon=True)
            self._thread.start()
        else:
            self.base = _maxrss_bytes()
        return self

    def note(self, value: int | None) -> None:
        if value is not None:
            self.seen = max(self.seen, int(value))

    def __exit__(self, *exc):
        if self.kind == "cuda":
            import torch

            self.bytes = max(self.seen, int(torch.cuda.max_memory_allocated(self.device)))
        elif self.kind == "rss":
            self._stop.set()
            self._thread.join()
            self.peak = max(self.peak, _rss_bytes() or 0)
            self.bytes = max(0, self.peak - self.base)
        else:
            self.bytes = max(0, _maxrss_bytes() - self.base)
        return False


# --------------------------------------------------------------------------------------------
# compare


@dataclass
class CompareRow:
    variant: Variant
    status: str = "pending"  # ok, failed, diverged, interrupted, skipped
    error: str | None = None
    steps: int = 0
    ms_per_iteration: float | None = None
    run_seconds: float | None = None
    total_seconds: float | None = None
    memory_bytes: int | None = None
    losses: dict = field(default_factory=dict)
    result: object = None  # the transfer Result
    output: str | None = None  # file name, set by whoever writes it

    @property
    def ok(self) -> bool:
        return self.result is not None

    def to_dict(self) -> dict:
        v = self.variant
        return {
            "label": v.label, "backbone": v.name, "weights": v.weights or "pretrained", "pooling": v.pooling,
            "status": self.status, "error": self.error, "iterations": self.steps,
            "ms_per_iteration": _round(self.ms_per_iteration, 2), "run_seconds": _round(self.run_seconds, 3), "total_seconds": _round(self.total_seconds, 3),
            "peak_memory_bytes": self.memory_bytes, "losses": {k: _round(x, 6, sig=True) for k, x in self.losses.items()},
            "output": self.output,
        }


def _round(x, digits, sig=False):
    if x is None or not isinstance(x, float) or not math.isfinite(x):
        return x
    if sig:
        return float(f"{x:.{digits}g}")
    return round(x, digits)


@dataclass
class Comparison:
    rows: list[CompareRow]
    content: object  # PIL
    styles: list
    settings: dict
    device: str
    memory_kind: str
    stopped: str | None = None  # "interrupted" when Ctrl-C ended it

    @property
    def loss_names(self) -> list[str]:
        names: dict[str, None] = {}
        for row in self.rows:
            for k in row.losses:
                names[k] = None
        return list(names)

    def sheet(self, columns: int | None = None) -> "Image.Image":
        """Content, style(s), then one result per backbone, with name and time under each."""
        cell = _cell_size(self)
        panels = [Panel(self.content, ["content"])]
        for i, s in enumerate(self.styles):
            panels.append(Panel(s, ["style" if len(self.styles) == 1 else f"style {i + 1}"]))
        for row in self.rows:
            panels.append(Panel(row.result.image if row.ok else None, caption(row), note=row.error or row.status))
        s = self.settings
        title = (f"dreamstyle compare · {s.get('size')} px · {s.get('iterations')} iterations · "
                 f"{s.get('optimizer')} · seed {s.get('seed')} · {self.device}")
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
                "backbones": [r.to_dict() for r in self.rows]}

    def to_markdown(self) -> str:
        s = self.settings
        terms = self.loss_names
        lines = ["# dreamstyle compare", "",
                 f"Content `{s.get('content')}`, style {', '.join(f'`{x}`' for x in s.get('styles', []))}; "
                 f"{s.get('size')} px, {s.get('iterations')} iterations of {s.get('optimizer')}, "
                 f"seed {s.get('seed')}, on {self.device}.", ""]
        header = ["backbone", "status", "ms / iteration", "total s", "peak memory"] + [f"{t} loss" for t in terms] + ["output"]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "|".join(["---"] + ["---"] + ["---:"] * (3 + len(terms)) + ["---"]) + "|")
        for row in self.rows:
            cells = [row.variant.label, row.status, _fmt(row.ms_per_iteration, "{:.1f}"),
                     _fmt(row.total_seconds, "{:.1f}"), _fmt_bytes(row.memory_bytes)]
            cells += [_fmt(row.losses.get(t), "{:.4g}") for t in terms]
            cells.append(f"[{row.output}]({row.output})" if row.output else "")
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        lines += ["", f"Peak memory: {MEMORY_NOTE[self.memory_kind]}.",
                  "Total time includes loading the network and computing the targets; "
                  "ms / iteration is the optimization alone."]
        failed = [r for r in self.rows if r.error]
        if failed:
            lines += ["", "Failures:", ""] + [f"- **{r.variant.label}**: {r.error}" for r in failed]
        return "\n".join(lines) + "\n"


def _fmt(x, pattern):
    return "" if x is None else pattern.format(x)


def _fmt_bytes(n):
    if n is None:
        return ""
    return f"{n / 2**20:.0f} MiB" if n < 2**30 else f"{n / 2**30:.2f} GiB"


def caption(row: CompareRow) -> list[str]:
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
    from .images import fit_size

    return fit_size(comp.content.size, comp.settings.get("size"))


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, UserError):
        return str(exc)
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".strip()


def compare(content, styles, variants: str | Sequence, *, weights=None, pooling: str = "max",
            device: str = "auto", seed: int | None = None, size: int = 384, iterations: int = 300,
            scales=None, callback: Callable | None = None, on_start: Callable | None = None,
            snapshot_every: int = 0, max_pixels: int | None = None, **transfer_options) -> Comparison:
    """Run the same :func:`~dreamstyle.style.transfer` on every variant (``"vgg19,alexnet:random"``
    or a list of :class:`Variant`), each with its default layers unless ``content_layers`` /
    ``style_layers`` say otherwise. A variant that fails (unknown name, missing weights, an input too
    small for it, ...) gets ``status="failed"`` and its error; the others still run.

    ``on_start(row, index, count)`` is called before each variant; ``callback(event)`` gets every
    engine step (``event.label`` is the variant's label).
    """
    from .images import DEFAULT_MAX_PIXELS, load_image
    from .runtime import device_name, resolve_device, seed_everything
    from .style import scale_sizes, transfer

    if isinstance(variants, str) or (variants and isinstance(variants[0], str)):
        variants = parse_variants(variants, weights, pooling)
    if isinstance(styles, (str, os.PathLike)) or hasattr(styles, "size"):
        styles = [styles]
    styles = list(styles)
    if not styles:
        raise OptionError("give at least one style image")
    dev = resolve_device(device)
    seed = seed_everything(seed)  # one seed, so every backbone starts from the same image
    sizes = scale_sizes(size, scales)
    max_pixels = max_pixels or DEFAULT_MAX_PIXELS
    content_img = load_image(content, max_pixels)
    style_imgs = [load_image(s, max_pixels) for s in styles]
    settings = {"content": _name(content), "styles": [_name(s) for s in styles], "size": size, "scales": sizes,
                "iterations": iterations, "seed": seed, "device": str(dev), "optimizer": "lbfgs", **transfer_options}
    comp = Comparison([CompareRow(v) for v in variants], content_img, style_imgs, settings, device_name(dev),
                      MemoryProbe(dev).kind)

    for index, row in enumerate(comp.rows):
        v = row.variant
        if comp.stopped:
            row.status = "skipped"
            row.error = "not run: the comparison was interrupted"
            continue
        if on_start is not None:
            on_start(row, index, len(comp.rows))
        stage_time: dict[int, float] = {}
        probe = MemoryProbe(dev)

        def on_event(event, _label=v.label, _times=stage_time, _probe=probe):
            _times[event.stage] = event.elapsed
            _probe.note(event.memory)
            event.label = _label
            if callback is not None:
                callback(event)

        start = time.perf_counter()
        try:
            with probe:  # transfer validates everything (names, sizes, options) before loading weights
                result = transfer(content_img, style_imgs, backbone=v.name, weights=v.weights, device=dev,
                                  seed=seed, size=size, scales=scales, iterations=iterations, pooling=v.pooling,
                                  callback=on_event, snapshot_every=snapshot_every, max_pixels=max_pixels,
                                  **transfer_options)
        except KeyboardInterrupt:
            row.status, row.error = "interrupted", "interrupted before the first iteration"
            comp.stopped = "interrupted"
        except Exception as exc:  # noqa: BLE001 - one backbone failing must not stop the others
            row.status, row.error = "failed", _error_text(exc)
        else:
            result.recipe.update({"content": settings["content"], "styles": settings["styles"]})
            row.result = result
            row.status = result.stopped or "ok"
            if result.stopped == "interrupted":
                comp.stopped = "interrupted"
            row.steps = _steps(result)
            run = sum(stage_time.values())
            row.run_seconds = run
            row.ms_per_iteration = 1000 * run / row.steps if row.steps else None
            last = result.history[-1] if result.history else {}
            row.losses = {k: float(x) for k, x in last.items()
                          if k not in ("stage", "iteration", "time", "memory") and isinstance(x, (int, float))}
        row.total_seconds = time.perf_counter() - start
        row.memory_bytes = probe.bytes if row.ok else None
        _release_memory(dev)
    return comp


def _steps(result) -> int:
    """Optimizer steps taken over all stages (the history's last iteration of each stage)."""
    by_stage: dict[int, int] = {}
    for h in result.history:
        by_stage[h["stage"]] = h["iteration"]
    return sum(by_stage.values())


def _name(x) -> str:
    return str(x) if isinstance(x, (str, os.PathLike)) else "<image>"


# --------------------------------------------------------------------------------------------
# reconstruct


@dataclass
class Reconstruction:
    original: object  # PIL, at the output size
    panels: list  # [(label, layers, Result)]
    recipe: dict
    stopped: str | None = None

    def sheet(self, columns: int | None = None) -> "Image.Image":
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
        title = (f"reconstruct {what} · {r['backbone']}"
                 f"{' (random weights)' if r.get('weights') == 'random' else ''}"
                 f"{' · avg pooling' if r.get('pooling') == 'avg' else ''} · {r['iterations']} iterations")
        return contact_sheet(panels, cell, columns=columns, title=title)


def reconstruct(image, layers=None, *, style: bool = False, backbone: str = "vgg19", weights=None,
                pooling: str = "max", device: str = "auto", seed: int | None = None, size: int = 256,
                iterations: int = 200, optimizer: str = "lbfgs", lr: float | None = None,
                weight: float | None = None, tv_weight: float = 0.0, precision: str = "auto",
                callback: Callable | None = None, loaded=None, max_pixels: int | None = None) -> Reconstruction:
    """Reconstruct ``image`` from noise. Content mode: one panel per layer, the content loss at that
    layer alone. Style mode (``style=True``): the Gram loss on the first layer, the first two, ... (as
    in Gatys et al.'s figure). ``layers`` defaults to the backbone's style layers (a spread of depths).
    Every panel starts from the same noise and shares one loaded network."""
    from PIL import Image

    from .backbones import LoadedBackbone
    from .images import DEFAULT_MAX_PIXELS, fit_size, load_image
    from .plugins import get_backbone
    from .runtime import resolve_device, seed_everything, versions
    from .style import transfer
    from .terms import parse_layer_weights

    bb = loaded.backbone if loaded is not None else get_backbone(backbone)
    names = list(parse_layer_weights(layers)) if layers else list(bb.style_layers)
    if not names:
        raise OptionError("--layers is empty")
    for name in names:
        bb.layer_map.get(name)  # unknown layer: one line with suggestions
    if weight is not None and not weight > 0:
        raise OptionError(f"--weight must be more than zero, not {weight}")
    dev = resolve_device(device)
    img = load_image(image, max_pixels or DEFAULT_MAX_PIXELS)
    w, h = fit_size(img.size, size)
    bb.check_size(h, w, f"the output at --size {size}")
    seed = seed_everything(seed)
    if loaded is None:
        loaded = LoadedBackbone(bb, weights, pooling, dev)
    if style:
        jobs = [(names[k - 1] if k == 1 else f"{names[0]} … {names[k - 1]}", names[:k])
                for k in range(1, len(names) + 1)]
    else:
        jobs = [(name, [name]) for name in names]
    recipe = {"command": "reconstruct", "mode": "style" if style else "content", "image": _name(image),
              "backbone": bb.name, "weights": loaded.weights, "pooling": pooling, "layers": names,
              "size": size, "iterations": iterations, "optimizer": optimizer, "lr": lr, "seed": seed,
              "weight": weight, "tv_weight": tv_weight, "device": str(dev), "versions": versions(), "panels": []}
    original = img.resize((w, h), Image.LANCZOS) if (w, h) != img.size else img
    rec = Reconstruction(original, [], recipe)
    for i, (label, subset) in enumerate(jobs, start=1):
        def on_event(event, _label=f"{label} ({i}/{len(jobs)})"):
            event.label = _label
            if callback is not None:
                callback(event)

        terms = dict(content_weight=0.0, style_weight=weight if weight is not None else 100.0,
                     style_layers=subset) if style else \
            dict(style_weight=0.0, content_weight=weight if weight is not None else 5.0, content_layers=subset)
        start = time.perf_counter()
        try:
            result = transfer(img, img, backbone=bb.name, weights=weights, device=dev, seed=seed, size=size,
                              init="noise", tv_weight=tv_weight, optimizer=optimizer, lr=lr, iterations=iterations,
                              pooling=pooling, precision=precision, callback=on_event, loaded=loaded,
                              max_pixels=max_pixels, **terms)
        except KeyboardInterrupt:  # before this panel's first step: keep the panels already finished
            if not rec.panels:
                raise
            rec.stopped = "interrupted"
            break
        seconds = time.perf_counter() - start
        rec.panels.append((label, subset, result, seconds))
        recipe["panels"].append({"label": label, "layers": subset, "seconds": round(seconds, 2),
                                 "loss": result.history[-1] if result.history else None,
                                 "stopped": result.stopped})
        if result.stopped:
            rec.stopped = result.stopped
            if result.stopped == "interrupted":
                break
    recipe["stopped"] = rec.stopped
    return rec

