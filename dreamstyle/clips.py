"""Clips and folders of images, as drivers over the engine.

- :func:`transfer_clip` stylizes the frames of an animation (GIF, WebP, APNG or a folder of frames)
  with temporal coherence: each frame starts from the previous output frame (optionally blended
  with its own starting image, ``temporal_init``), and the ``temporal`` loss term holds still
  what did not move. Optical flow (``flow="ilk"|"tvl1"``, from scikit-image) warps the previous
  frame onto the new one first.
- :func:`transfer_folder` stylizes a folder of still images, batched by size.

Both load the backbone once and compute the style targets once (terms that read only the style
images, as declared by ``LossTerm.reads``, are prepared once); ``batch`` frames or images are
optimized together as one batch. :func:`clip_loop` is the frame loop itself, independent of what
is done to a frame, so other drivers (DeepDream) plug in with a ``process`` function.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from .errors import ImageError, OptionError, OutputError
from .faults import OOM as OUT_OF_MEMORY  # the engine's stop reason when the device runs out of memory

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")
ANIMATION_SUFFIXES = (".gif", ".webp", ".png")  # .png is written as APNG
DEFAULT_FPS = 10.0
FLOWS = ("none", "ilk", "tvl1")
TIMING_FILE = "clip.json"  # frame timing of a folder of frames (written with it, read back)


# --- reading and writing clips ----------------------------------------------------------------


@dataclass
class Clip:
    """An animation in memory: RGB frames, each frame's duration (ms) and the loop count
    (0 = forever, None = the source did not say, i.e. play once)."""

    frames: list
    durations: list[int]
    loop: int | None = 0
    names: list[str] = field(default_factory=list)  # frame names (stems), for a folder output
    source: str = ""

    def __len__(self):
        return len(self.frames)


def natural_key(name: str):
    """Sort key: numbers inside names compare as numbers (frame2 before frame10)."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def list_images(folder: str | os.PathLike) -> list[Path]:
    """The image files of ``folder`` (by suffix, hidden files left out), sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageError(f"{folder} is not a folder")
    files = [p for p in folder.iterdir()
             if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise ImageError(f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return sorted(files, key=lambda p: natural_key(p.name))


def is_animation(path: str | os.PathLike) -> bool:
    """True for an image file with more than one frame (animated GIF, WebP or PNG)."""
    from PIL import Image

    path = Path(path)
    if not path.is_file():
        return False
    try:
        with Image.open(path) as img:
            return getattr(img, "n_frames", 1) > 1
    except Exception:
        return False


def _frame_ms(fps: float | None) -> int:
    if fps is None:
        fps = DEFAULT_FPS
    if not fps > 0:
        raise OptionError(f"--fps must be more than 0, not {fps}")
    return max(1, round(1000.0 / fps))


def read_clip(path: str | os.PathLike, fps: float | None = None, max_pixels: int | None = None) -> Clip:
    """Read an animated GIF/WebP/PNG, or a folder of frames (sorted by name, timing from its
    ``clip.json`` if present, else ``fps``). ``fps`` given overrides the source's timing."""
    from PIL import Image, ImageSequence

    from .images import DEFAULT_MAX_PIXELS, _to_rgb, load_image

    max_pixels = max_pixels or DEFAULT_MAX_PIXELS
    path = Path(path)
    if not path.exists():
        raise ImageError(f"clip not found: {path}")
    if path.is_dir():
        files = list_images(path)
        frames = [load_image(p, max_pixels) for p in files]
        durations, loop = [_frame_ms(fps)] * len(frames), 0
        timing = path / TIMING_FILE
        if fps is None and timing.is_file():
            try:
                data = json.loads(timing.read_text())
                if len(data.get("durations", [])) == len(frames):
                    durations = [int(d) for d in data["durations"]]
                loop = data.get("loop", 0)
            except (ValueError, TypeError, AttributeError):
                pass
        return Clip(frames, durations, loop, [p.stem for p in files], str(path))
    try:
        with Image.open(path) as img:
            w, h = img.size
            n = getattr(img, "n_frames", 1)
            if w * h > max_pixels:
                raise ImageError(f"{path} is {w}x{h} = {w * h:,} pixels a frame, above the limit of "
                                 f"{max_pixels:,}; raise it with --max-pixels if you trust the file")
            loop = img.info.get("loop")
            frames, durations = [], []
            for frame in ImageSequence.Iterator(img):
                frames.append(_to_rgb(frame.copy()))
                durations.append(int(frame.info.get("duration") or 0))
    except ImageError:
        raise
    except Exception as exc:
        raise ImageError(f"cannot read clip {path}: {exc}") from None
    if fps is not None:
        durations = [_frame_ms(fps)] * len(frames)
    else:  # frames without timing (0 ms) play at the default rate, as browsers do
        durations = [d if d > 0 else _frame_ms(None) for d in durations]
    digits = len(str(n))
    return Clip(frames, durations, loop, [f"frame_{i:0{max(5, digits)}d}" for i in range(1, n + 1)], str(path))


def output_kind(path: str | os.PathLike) -> str:
    """"gif", "webp", "png" (APNG) or "folder" (no suffix, or an existing folder)."""
    path = Path(path)
    if path.is_dir() or not path.suffix:
        return "folder"
    suffix = path.suffix.lower()
    if suffix in ANIMATION_SUFFIXES:
        return suffix[1:]
    raise OutputError(f"cannot write a clip to {path}: give a .gif, .webp or .png (animated) file or a folder")


def folder_outputs(folder: Path, names: Sequence[str]) -> list[Path]:
    paths = [folder / f"{name}.png" for name in names]
    if len({p.name.lower() for p in paths}) != len(paths):
        raise OutputError(f"two inputs would write the same file in {folder} (names differ only by suffix or case)")
    return paths


def check_folder_output(folder: Path, names: Sequence[str], overwrite: bool, extra: Sequence[str] = ()) -> list[Path]:
    """Validate a folder output (created later if missing) and the files it will hold."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"cannot write into {folder}: it is a file")
    parent = folder.parent if str(folder.parent) else Path(".")
    if not folder.exists() and not parent.is_dir():
        raise OutputError(f"cannot create {folder}: folder {parent} does not exist")
    if not os.access(folder if folder.exists() else parent, os.W_OK):
        raise OutputError(f"cannot write into {folder}: not writable")
    paths = folder_outputs(folder, names)
    if not overwrite:
        taken = [p for p in [*paths, *(folder / e for e in extra)] if p.exists()]
        if taken:
            more = f" (and {len(taken) - 1} more)" if len(taken) > 1 else ""
            raise OutputError(f"{taken[0]} exists{more}; pass --overwrite to replace it")
    return paths


def check_clip_output(path: str | os.PathLike, overwrite: bool, names: Sequence[str]) -> Path:
    from .images import check_output

    path = Path(path)
    if output_kind(path) == "folder":
        check_folder_output(path, names, overwrite, (TIMING_FILE,))
        return path
    return check_output(path, overwrite, ANIMATION_SUFFIXES)


def shared_palette(frames: Sequence, colors: int = 256):
    """One palette for every frame (a per-frame palette flickers): quantize a strip of the frames."""
    from PIL import Image

    step = max(1, len(frames) // 16)
    sample = [f.convert("RGB").resize((max(1, f.width // 2), max(1, f.height // 2))) for f in frames[::step]]
    strip = Image.new("RGB", (sum(s.width for s in sample), max(s.height for s in sample)))
    x = 0
    for s in sample:
        strip.paste(s, (x, 0))
        x += s.width
    return strip.quantize(colors, method=Image.Quantize.MEDIANCUT)


def write_clip(frames: Sequence, path: str | os.PathLike, durations: Sequence[int], loop: int | None = 0,
               names: Sequence[str] | None = None, recipe: dict | None = None) -> Path:
    """Write ``frames`` (PIL RGB) as an animated GIF/WebP/PNG, or a folder of PNGs with a
    ``clip.json`` holding the timing; atomically, file by file. Pillow merges identical
    consecutive frames of a GIF/PNG into one (their durations add up)."""
    from PIL import Image, PngImagePlugin

    from .images import RECIPE_KEY, _atomic, save_png

    frames = list(frames)
    durations = [int(d) for d in durations][: len(frames)]
    if not frames:
        raise OutputError(f"no frames to write to {path}")
    path = Path(path)
    kind = output_kind(path)
    text = json.dumps(recipe, default=str) if recipe is not None else None
    if kind == "folder":
        path.mkdir(exist_ok=True)
        names = list(names) if names else [f"frame_{i:05d}" for i in range(1, len(frames) + 1)]
        for frame, out in zip(frames, folder_outputs(path, names[: len(frames)])):
            save_png(frame, out, recipe)
        timing = json.dumps({"durations": durations, "loop": loop}).encode()
        _atomic(path / TIMING_FILE, lambda fh: fh.write(timing))
        return path
    options = {"save_all": True, "append_images": None, "duration": durations}
    if loop is not None:  # the count is copied as the source states it
        options["loop"] = int(loop)
    elif kind != "gif":  # no loop stated (a GIF without a loop block): play once
        options["loop"] = 1
    if kind == "gif":
        palette = shared_palette(frames)
        images = [f.convert("RGB").quantize(palette=palette, dither=Image.Dither.FLOYDSTEINBERG) for f in frames]
        if text:
            options["comment"] = text
        fmt = "GIF"
    elif kind == "webp":
        images, fmt = [f.convert("RGB") for f in frames], "WEBP"
        options.update(quality=90, method=4)
    else:
        images, fmt = [f.convert("RGB") for f in frames], "PNG"
        if text:
            info = PngImagePlugin.PngInfo()
            info.add_text(RECIPE_KEY, text)
            options["pnginfo"] = info
    options["append_images"] = images[1:]
    return _atomic(path, lambda fh: images[0].save(fh, format=fmt, **options))


# --- flow ---------------------------------------------------------------------------------------


def _flow_function(method: str):
    try:
        from skimage.registration import optical_flow_ilk, optical_flow_tvl1
    except ImportError:
        raise OptionError(f"--flow {method} needs scikit-image: pip install 'dreamstyle[flow]'"
                          " (or scikit-image)") from None
    return {"ilk": optical_flow_ilk, "tvl1": optical_flow_tvl1}[method]


def estimate_flow(current, previous, method: str = "ilk"):
    """Backward optical flow, (1, 2, H, W) as (dy, dx) in pixels: pixel p of ``current`` was at
    p + flow(p) in ``previous`` (both (1, 3, H, W) in [0, 1]). Uses scikit-image."""
    import torch

    weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    gray = lambda t: (t.detach().float().cpu() * weights).sum(1)[0].numpy()  # noqa: E731
    flow = _flow_function(method)(gray(current), gray(previous))
    return torch.from_numpy(flow).float().unsqueeze(0).to(current.device)


def warp(image, flow):
    """Sample ``image`` at p + flow(p) (bilinear, borders repeated)."""
    import torch

    _, _, h, w = image.shape
    ys, xs = torch.meshgrid(torch.arange(h, device=image.device, dtype=torch.float32),
                            torch.arange(w, device=image.device, dtype=torch.float32), indexing="ij")
    y = (ys + flow[:, 0]) / max(h - 1, 1) * 2 - 1
    x = (xs + flow[:, 1]) / max(w - 1, 1) * 2 - 1
    grid = torch.stack([x, y], dim=-1).to(image.dtype)
    return torch.nn.functional.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=True)


# --- the frame loop -------------------------------------------------------------------------------


@dataclass
class FrameDone:
    """Reported to ``on_frame`` as each frame is finished."""

    index: int  # 0-based
    total: int
    image: object  # PIL RGB
    losses: dict
    tensor: object = None  # (1, 3, H, W) on the CPU
    name: str = ""  # the frame's or input image's name (stem)
    recipe: dict | None = None  # a folder's image: its own recipe (content = that image)


@dataclass
class ClipResult:
    """What a clip (or folder) run returns: the frames done (all of them unless ``stopped``)."""

    frames: list  # PIL RGB
    durations: list[int]
    loop: int | None
    names: list[str]
    history: list[dict] = field(default_factory=list)
    recipe: dict = field(default_factory=dict)
    stopped: str | None = None
    losses: list[dict] = field(default_factory=list)  # each frame's final (batch) losses
    tensors: list = field(default_factory=list)  # (1, 3, H, W) CPU tensors before colour recombination


def check_clip_options(temporal_init: float, batch: int, flow: str | None) -> str | None:
    """Refuse bad clip options before any work (scikit-image included, for ``flow``); returns the
    flow method, or None for none."""
    if not 0.0 <= temporal_init <= 1.0:
        raise OptionError(f"--temporal-init must be between 0 and 1, not {temporal_init}")
    if batch < 1:
        raise OptionError(f"--batch must be at least 1, not {batch}")
    flow = None if flow in (None, "none") else flow
    if flow is not None and flow not in FLOWS:
        raise OptionError(f"--flow {flow!r}: choose one of {', '.join(FLOWS)}")
    if flow is not None:
        _flow_function(flow)
    return flow


def clip_loop(contents: Sequence, process: Callable, *, start: Callable | None = None, temporal_init: float = 0.0,
              flow: str | None = None, batch: int = 1, on_frame: Callable | None = None):
    """Run ``process`` over consecutive batches of ``contents`` ((1, 3, H, W) tensors, one per frame).

    ``process(contents, inits, images, label) -> (outputs, losses, history, stopped)`` handles one
    batch: ``contents`` and ``inits`` are (B, 3, H, W); ``images`` holds the temporal roles
    "previous" and "previous_content" (empty lists for the first batch; warped by ``flow``);
    ``outputs`` is (B, 3, H, W). Each frame starts from ``(1 - temporal_init) * carried +
    temporal_init * start(i)``, where ``carried`` is the previous output plus the content's change
    since the previous frame (so the start follows the content's motion; ``start(i)`` defaults to
    the content frame); the first frame from ``start(0)``. Returns (outputs, losses, history, stopped); on a stop (Ctrl-C, out of memory)
    the unfinished batch is left out. A batch that runs out of memory is retried at half the size.
    """
    import torch

    flow = check_clip_options(temporal_init, batch, flow)
    start = start or (lambda i: contents[i])
    n = len(contents)
    outputs, losses, history = [], [], []
    stopped = None
    previous = None
    first = 0
    while first < n:
        idx = list(range(first, min(n, first + batch)))
        label = f"frame {first + 1}/{n}" if len(idx) == 1 else f"frames {first + 1}-{idx[-1] + 1}/{n}"
        batch_losses: dict = {}
        try:
            with torch.no_grad():
                content = torch.cat([contents[i] for i in idx])
                if previous is None:
                    images = {"previous": [], "previous_content": []}
                    inits = torch.cat([start(i) for i in idx])
                else:
                    prev, before = previous, contents[first - 1]
                    if flow is not None:
                        f = estimate_flow(contents[first], before, flow)
                        prev, before = warp(prev, f), warp(before, f)
                    images = {"previous": [prev], "previous_content": [before]}
                    # the previous output with the content's change added: where the content did not
                    # change it is the previous output itself, where it moved the new content shows
                    inits = (prev + (content - before)).clamp(0, 1)
                    if temporal_init:  # the starts count only when blended in
                        inits = (1 - temporal_init) * inits + temporal_init * torch.cat([start(i) for i in idx])
            out, batch_losses, batch_history, stop = process(content, inits, images, label)
        except KeyboardInterrupt:
            stop = "interrupted"
        if stop == OUT_OF_MEMORY and len(idx) > 1:  # --batch where memory allows: retry with half
            batch = len(idx) // 2
            continue
        if stop in ("interrupted", OUT_OF_MEMORY) or (stop == "diverged" and not batch_losses):
            stopped = stop
            break
        for row in batch_history:
            row["frame"] = first + 1
            if len(idx) > 1:
                row["frames"] = len(idx)
        history.extend(batch_history)
        for j, i in enumerate(idx):
            frame = out[j : j + 1].detach()
            outputs.append(frame)
            losses.append(dict(batch_losses))
            if on_frame is not None:
                on_frame(i, frame, dict(batch_losses))
        previous = out[-1:].detach()
        first += len(idx)
        if stop:
            stopped = stop
            break
    return outputs, losses, history, stopped


# --- style transfer over frames -------------------------------------------------------------------


class _Transfer:
    """The transfer objective set up once: backbone, style targets, feature net; runs batches."""

    FIXED = {"style"}

    def __init__(self, styles, *, frame_size, backbone, weights, device, seed, size, style_scale, style_blend,
                 content_layers, style_layers, content_weight, style_weight, tv_weight, losses, pooling, init,
                 optimizer, iterations, lr, preserve_color, precision, log_every, max_pixels, loaded,
                 temporal_weight=0.0, temporal_threshold=0.1):
        from .backbones import LoadedBackbone
        from .color import luminance, match_color_histogram
        from .images import DEFAULT_MAX_PIXELS, fit_size, load_image, to_tensor
        from .plugins import get_backbone
        from .runtime import (amp_dtype, make_evaluate, make_extract, precision_name, prepare_net, resolve_device,
                              seed_everything,
                              versions)
        from .style import (INITS, _positive, build_terms, check_transfer_options,
                            transfer_term_spec)
        from .terms import Objective

        styles, style_blend = check_transfer_options(
            styles, style_blend, content_weight=content_weight, style_weight=style_weight, tv_weight=tv_weight,
            style_scale=style_scale, iterations=iterations, lr=lr, optimizer=optimizer,
            preserve_color=preserve_color, temporal_weight=temporal_weight)
        _positive("size", size)
        self.dev = dev = resolve_device(device)
        self.seed = seed_everything(seed)
        self.dtype = amp_dtype(dev, precision)
        bb = loaded.backbone if loaded is not None else (get_backbone(backbone) if isinstance(backbone, str)
                                                         else backbone)
        term_spec, extra = transfer_term_spec(bb, content_layers, style_layers, content_weight, style_weight,
                                              tv_weight, losses)
        term_spec["temporal"] = (temporal_weight, {"threshold": temporal_threshold})
        max_pixels = max_pixels or DEFAULT_MAX_PIXELS
        style_imgs = [load_image(s, max_pixels) for s in styles]
        self.init, self.init_img = init, None
        if init not in INITS:
            self.init_img = to_tensor(load_image(init, max_pixels))
        if frame_size is not None:
            bb.check_size(frame_size[1], frame_size[0], "a frame at --size %d" % size)
        if loaded is None:
            loaded = LoadedBackbone(bb, weights, pooling, dev)
        self.bb = bb
        self.preserve_color, self.style_blend = preserve_color, style_blend
        self.optimizer, self.iterations, self.lr, self.log_every = optimizer, iterations, lr, log_every
        self.recipe = {
            "command": "transfer", "backbone": bb.name, "weights": loaded.weights, "pooling": loaded.pooling,
            "styles": [str(s) if isinstance(s, (str, os.PathLike)) else "<image>" for s in styles],
            "size": size, "style_scale": style_scale, "style_blend": style_blend,
            "content_layers": term_spec["content"][1]["layers"], "style_layers": term_spec["style"][1]["layers"],
            "content_weight": content_weight,
            "style_weight": style_weight, "tv_weight": tv_weight,
            "losses": {k: v[0] for k, v in extra.items()}, "init": str(init), "optimizer": optimizer,
            "iterations": iterations, "lr": lr, "preserve_color": preserve_color, "seed": self.seed,
            "device": str(dev), "precision": precision_name(self.dtype),
            "versions": versions(),
        }

        self.style_full = [to_tensor(s) for s in style_imgs]
        self.styles = []
        for s_img, s_t in zip(style_imgs, self.style_full):
            s_wh = fit_size(s_img.size, max(1, round(size * style_scale)))
            bb.check_size(s_wh[1], s_wh[0], f"style image at --style-scale {style_scale}")
            self.styles.append(self.resized(s_t, s_wh))
        self._style_sources = list(self.styles)
        self.objective = Objective(build_terms(term_spec, bb)).to(dev)
        layers = self.objective.layers
        net = prepare_net(loaded.features(layers), dev, dtype=self.dtype) if layers else (lambda x: {})
        self.extract = make_extract(net, dev, self.dtype) if layers else (lambda img: {})
        self.evaluate = make_evaluate(net, self.objective, dev, self.dtype)
        self.prepared = False
        self._luminance, self._match = luminance, match_color_histogram

    def resized(self, t, wh):
        import torch

        return torch.nn.functional.interpolate(t, size=(wh[1], wh[0]), mode="bicubic", align_corners=False,
                                               antialias=True).clamp(0, 1).to(self.dev)

    def set_color_reference(self, content):
        """--preserve-color adapts the style images to a content image (a clip's first frame, or
        each still): the style targets follow it."""
        if self.preserve_color == "histogram":
            self.styles = [self._match(s, content.to(s.device)) for s in self._style_sources]
        elif self.preserve_color == "luminance":
            self.styles = [self._luminance(s, match=content.to(s.device)) for s in self._style_sources]
        self.prepared = False

    def for_optimizing(self, content):
        return self._luminance(content) if self.preserve_color == "luminance" else content

    def finish(self, output, content):
        from .color import recombine_luminance

        return recombine_luminance(output, content.to(output.device)) if self.preserve_color == "luminance" else output

    def start(self, content):
        """The starting image --init gives for a (B, 3, H, W) content batch."""
        import torch

        h, w = content.shape[-2:]
        if self.init == "content":
            return content
        if self.init == "noise":
            return torch.rand(content.shape, device=self.dev)
        source = self.style_full[0] if self.init == "style" else self.init_img
        return self.resized(source, (w, h)).expand(content.shape[0], -1, -1, -1)

    def run(self, content, init, images, label, callback=None, iterations=None):
        """Optimize one batch; returns (outputs, final losses, history, stopped)."""
        from .engine import optimize
        from .termspec import TermContext

        content, init = content.to(self.dev), init.to(self.dev)
        images = {k: [t.to(self.dev) for t in v] for k, v in images.items()}
        h, w = content.shape[-2:]
        ctx = TermContext(self.bb, images={"content": [content], "style": self.styles, **images},
                          blend=self.style_blend, options={"stage": 1, "size": (w, h)})
        for term in self.objective.terms:
            reads = getattr(term, "reads", None)
            if not self.prepared or reads is None or not set(reads) <= self.FIXED:
                term.prepare(ctx, self.extract)
        self.prepared = True
        result = optimize(init, self.evaluate, self.objective.names, iterations=iterations or self.iterations,
                          optimizer=self.optimizer, lr=self.lr, callback=callback, log_every=self.log_every,
                          clamp=self.optimizer != "lbfgs", label=label)
        last = dict(result.history[-1]) if result.history else {}
        losses = {k: v for k, v in last.items() if k in self.objective.names or k == "total"}
        if not math.isfinite(result.best_loss):  # nothing usable
            losses = {}
        return result.image, losses, result.history, result.stopped


def transfer_clip(clip, styles, *, backbone: str = "vgg19", weights=None, device: str = "auto",
                  seed: int | None = None, size: int = 512, style_scale: float = 1.0,
                  style_blend: Sequence[float] | None = None, content_layers=None, style_layers=None,
                  content_weight: float = 5.0, style_weight: float = 100.0, tv_weight: float = 3e4, losses=None,
                  pooling: str = "max", init: str = "content", optimizer: str = "lbfgs", iterations: int = 500,
                  lr: float | None = None, preserve_color: str | None = None, precision: str = "auto",
                  temporal_weight: float = 1e3, temporal_init: float = 0.0, temporal_threshold: float = 0.1,
                  flow: str | None = None, batch: int = 1, fps: float | None = None,
                  frame_iterations: int | None = None,
                  callback: Callable | None = None, on_frame: Callable | None = None, log_every: int = 1,
                  max_pixels: int | None = None, loaded=None) -> ClipResult:
    """Style transfer of every frame of ``clip`` (a path or a :class:`Clip`) with temporal coherence.

    Frame 1 starts as ``init`` says; each later frame from the previous output frame blended with
    its own start (``temporal_init``: 0 = the previous frame only, 1 = independent frames), and
    the ``temporal`` term (``temporal_weight``; 0 turns it off) penalizes change against the
    previous output where the content did not change. ``flow`` ("ilk" or "tvl1", scikit-image)
    warps the previous frame along the optical flow first. ``frame_iterations`` (default:
    ``iterations``) is the step count of the warm-started frames after the first, which need
    fewer. ``batch`` frames are optimized together
    (faster on a GPU; frames in a batch start from the same previous frame and are tied to each
    other by the temporal term). ``callback`` gets every engine step, ``on_frame`` a
    :class:`FrameDone` per frame. Returns a :class:`ClipResult`; Ctrl-C stops it with the frames
    done so far.
    """
    from .images import fit_size, to_pil, to_tensor

    check_clip_options(temporal_init, batch, flow)
    if frame_iterations is not None and (not isinstance(frame_iterations, int) or frame_iterations < 1):
        raise OptionError(f"--frame-iterations must be a whole number of at least 1, not {frame_iterations}")
    if not isinstance(clip, Clip):
        clip = read_clip(clip, fps=fps, max_pixels=max_pixels)
    if not len(clip):
        raise ImageError("the clip has no frames")
    wh = fit_size(clip.frames[0].size, size)
    run = _Transfer(styles, frame_size=wh, backbone=backbone, weights=weights, device=device, seed=seed, size=size,
                    style_scale=style_scale, style_blend=style_blend, content_layers=content_layers,
                    style_layers=style_layers, content_weight=content_weight, style_weight=style_weight,
                    tv_weight=tv_weight, losses=losses, pooling=pooling, init=init, optimizer=optimizer,
                    iterations=iterations, lr=lr, preserve_color=preserve_color, precision=precision,
                    log_every=log_every, max_pixels=max_pixels, loaded=loaded, temporal_weight=temporal_weight,
                    temporal_threshold=temporal_threshold)
    contents = [to_tensor(f, wh, run.dev) for f in clip.frames]
    if preserve_color:
        run.set_color_reference(contents[0])  # style colours follow the first frame, for every frame
    optimized = [run.for_optimizing(c) for c in contents]
    run.recipe.update({"content": clip.source or "<clip>", "frames": len(clip), "durations": clip.durations,
                       "loop": clip.loop, "temporal_weight": temporal_weight, "temporal_init": temporal_init,
                       "temporal_threshold": temporal_threshold, "flow": flow or "none", "batch": batch,
                       "frame_iterations": frame_iterations or iterations})

    frames, tensors = [], []

    def frame_done(i, tensor, frame_losses):
        frames.append(to_pil(run.finish(tensor, contents[i])))
        tensors.append(tensor.cpu())
        if on_frame is not None:
            on_frame(FrameDone(i, len(clip), frames[-1], frame_losses, tensors[-1], clip.names[i]))

    def process(content, inits, images, label):
        warm = bool(images["previous"])
        return run.run(content, inits, images, label, callback, frame_iterations if warm else None)

    _, frame_losses, history, stopped = clip_loop(
        optimized, process, start=lambda i: run.start(optimized[i]), temporal_init=temporal_init, flow=flow,
        batch=batch, on_frame=frame_done)
    run.recipe["stopped"] = stopped
    n = len(frames)
    return ClipResult(frames, clip.durations[:n], clip.loop, clip.names[:n], history, run.recipe, stopped,
                      frame_losses, tensors)


def transfer_folder(folder, styles, *, size: int = 512, batch: int = 1, callback: Callable | None = None,
                    on_frame: Callable | None = None, max_pixels: int | None = None, **options) -> ClipResult:
    """Style transfer of every still image in ``folder`` (or a list of paths) with one loaded
    backbone and the style targets computed once; images of the same output size are optimized
    ``batch`` at a time. ``options`` are :func:`dreamstyle.transfer`'s (``scales`` excepted).
    ``on_frame`` gets a :class:`FrameDone` per image as it is finished (index into the sorted
    list); the result's ``names`` are the inputs' stems. ``preserve_color`` adapts the style to
    each image, so it runs images one at a time."""
    import torch

    from .images import DEFAULT_MAX_PIXELS, fit_size, load_image, to_pil, to_tensor

    paths = list_images(folder) if isinstance(folder, (str, os.PathLike)) else [Path(p) for p in folder]
    if batch < 1:
        raise OptionError(f"--batch must be at least 1, not {batch}")
    if options.get("scales") not in (None, 1, "1"):
        raise OptionError("--scales is not available over a folder; run the images one by one for coarse-to-fine")
    options.pop("scales", None)
    max_pixels = max_pixels or DEFAULT_MAX_PIXELS
    images = [load_image(p, max_pixels) for p in paths]
    sizes = [fit_size(img.size, size) for img in images]
    run = _Transfer(styles, frame_size=min(sizes, key=min), size=size, max_pixels=max_pixels,
                    **{**_TRANSFER_DEFAULTS, **options})
    per_image = run.preserve_color is not None
    if per_image:
        batch = 1
    groups: dict[tuple, list[int]] = {}
    for i, wh in enumerate(sizes):
        groups.setdefault(wh, []).append(i)
    order = [idx[k : k + batch] for idx in groups.values() for k in range(0, len(idx), batch)]
    order.sort(key=lambda chunk: chunk[0])
    results: dict[int, tuple] = {}
    history: list[dict] = []
    stopped = None
    n = len(paths)
    run.recipe.update({"batch": batch})
    while order:
        chunk = order.pop(0)
        label = f"image {chunk[0] + 1}/{n}" if len(chunk) == 1 else f"images {', '.join(str(i + 1) for i in chunk)}/{n}"
        try:
            with torch.no_grad():
                content = torch.cat([to_tensor(images[i], sizes[i]) for i in chunk]).to(run.dev)
                if per_image:
                    run.set_color_reference(content)
                optimized = run.for_optimizing(content)
                init = run.start(optimized)
            out, losses, batch_history, stop = run.run(optimized, init, {}, label, callback)
        except KeyboardInterrupt:
            stop, losses = "interrupted", {}
        if stop == OUT_OF_MEMORY and len(chunk) > 1:  # --batch where memory allows: split it
            half = len(chunk) // 2
            order[:0] = [chunk[:half], chunk[half:]]
            continue
        if stop in ("interrupted", OUT_OF_MEMORY) or not losses:
            stopped = stop or "diverged"
            break
        for row in batch_history:
            row["image"] = paths[chunk[0]].name
            if len(chunk) > 1:
                row["images"] = [paths[i].name for i in chunk]
        history.extend(batch_history)
        final = run.finish(out, content)
        for j, i in enumerate(chunk):
            image = to_pil(final[j : j + 1])
            results[i] = (image, losses, out[j : j + 1].detach().cpu())
            if on_frame is not None:
                on_frame(FrameDone(i, n, image, dict(losses), results[i][2], paths[i].stem,
                                   {**run.recipe, "content": str(paths[i])}))
        if stop:
            stopped = stop
            break
    done = sorted(results)
    run.recipe["stopped"] = stopped
    return ClipResult([results[i][0] for i in done], [], None, [paths[i].stem for i in done], history,
                      run.recipe, stopped, [results[i][1] for i in done], [results[i][2] for i in done])


_TRANSFER_DEFAULTS = dict(backbone="vgg19", weights=None, device="auto", seed=None, style_scale=1.0,
                          style_blend=None, content_layers=None, style_layers=None, content_weight=5.0,
                          style_weight=100.0, tv_weight=3e4, losses=None, pooling="max", init="content",
                          optimizer="lbfgs", iterations=500, lr=None, preserve_color=None, precision="auto",
                          log_every=1, loaded=None)


# --- DeepDream over frames ------------------------------------------------------------------------


def _dream_setup(frame_size, backbone, weights, device, pooling, loaded, seed):
    import random

    from .backbones import LoadedBackbone
    from .plugins import get_backbone
    from .runtime import resolve_device

    dev = resolve_device(device)
    bb = loaded.backbone if loaded is not None else (get_backbone(backbone) if isinstance(backbone, str)
                                                     else backbone)
    if frame_size is not None:
        bb.check_size(frame_size[1], frame_size[0], "a frame")
    if loaded is None:
        loaded = LoadedBackbone(bb, weights, pooling, dev)
    return dev, loaded, (random.randrange(2**31) if seed is None else seed)


def _dream_one(image, layers, loaded, dev, seed, pooling, label, callback, options):
    """One frame or image through :func:`dreamstyle.deepdream.dream` with the shared backbone."""
    from .deepdream import dream

    def relabel(event):
        event.label = f"{label} {event.label}".strip()
        if callback is not None:
            callback(event)

    result = dream(image, layers, loaded=loaded, device=dev, seed=seed, pooling=pooling, callback=relabel,
                   **options)
    last = result.history[-1] if result.history else {}
    losses = {k: v for k, v in last.items() if k not in ("stage", "iteration", "time", "memory")}
    return result, losses


def dream_clip(clip, layers=None, *, backbone: str = "vgg19", weights=None, device: str = "auto",
               seed: int | None = None, size: int | None = 512, pooling: str = "max", temporal_init: float = 0.5,
               flow: str | None = None, fps: float | None = None, callback: Callable | None = None,
               on_frame: Callable | None = None, max_pixels: int | None = None, loaded=None,
               **options) -> ClipResult:
    """DeepDream over every frame of ``clip`` (a path or a :class:`Clip`), with one loaded backbone.

    Each frame after the first is dreamed from ``(1 - temporal_init)`` of the previous dreamed frame
    (warped along the optical flow with ``flow``) plus ``temporal_init`` of the new frame, so the
    dream carries over and does not flicker; 1 dreams each frame on its own, 0 would dream ever
    deeper into the first frame. Every frame uses the same seed (the same jitter). ``options``
    are :func:`dreamstyle.dream`'s (octaves, iterations, objective, jitter, tile, guide, ...).
    """
    from .images import fit_size, to_pil, to_tensor

    if options.get("init", "image") != "image":
        raise OptionError("--init noise does not apply to a clip")
    options.pop("init", None)
    check_clip_options(temporal_init, 1, flow)
    if not isinstance(clip, Clip):
        clip = read_clip(clip, fps=fps, max_pixels=max_pixels)
    if not len(clip):
        raise ImageError("the clip has no frames")
    wh = fit_size(clip.frames[0].size, size)
    dev, loaded, seed = _dream_setup(wh, backbone, weights, device, pooling, loaded, seed)
    contents = [to_tensor(f, wh, dev) for f in clip.frames]
    recipe: dict = {}

    def process(content, inits, images, label):
        outs, history, losses, stopped = [], [], {}, None
        for j in range(inits.shape[0]):
            result, losses = _dream_one(to_pil(inits[j : j + 1]), layers, loaded, dev, seed, pooling, label,
                                        callback, {**options, "size": None, "max_pixels": max_pixels})
            if not recipe:
                recipe.update(result.recipe)
            outs.append(result.tensor.to(dev))
            history.extend(result.history)
            if result.stopped:
                stopped = result.stopped
                break
        if stopped:
            return content, {}, history, stopped
        import torch

        return torch.cat(outs), losses, history, None

    frames, tensors = [], []

    def frame_done(i, tensor, frame_losses):
        frames.append(to_pil(tensor))
        tensors.append(tensor.cpu())
        if on_frame is not None:
            on_frame(FrameDone(i, len(clip), frames[-1], frame_losses, tensors[-1], clip.names[i]))

    _, frame_losses, history, stopped = clip_loop(contents, process, temporal_init=temporal_init, flow=flow,
                                                  batch=1, on_frame=frame_done)
    recipe.update({"input": clip.source or "<clip>", "size": size, "frames": len(clip), "durations": clip.durations,
                   "loop": clip.loop, "temporal_init": temporal_init, "flow": flow or "none", "stopped": stopped})
    n = len(frames)
    return ClipResult(frames, clip.durations[:n], clip.loop, clip.names[:n], history, recipe, stopped,
                      frame_losses, tensors)


def dream_folder(folder, layers=None, *, backbone: str = "vgg19", weights=None, device: str = "auto",
                 seed: int | None = None, size: int | None = 512, pooling: str = "max",
                 callback: Callable | None = None, on_frame: Callable | None = None, max_pixels: int | None = None,
                 loaded=None, **options) -> ClipResult:
    """DeepDream over every still image of ``folder`` (or a list of paths), one loaded backbone;
    ``on_frame`` gets a :class:`FrameDone` (with the image's recipe) as each is finished."""

    paths = list_images(folder) if isinstance(folder, (str, os.PathLike)) else [Path(p) for p in folder]
    dev, loaded, seed = _dream_setup(None, backbone, weights, device, pooling, loaded, seed)
    frames, names, history, losses, tensors = [], [], [], [], []
    stopped = None
    recipe: dict = {}
    for i, path in enumerate(paths):
        try:
            result, image_losses = _dream_one(str(path), layers, loaded, dev, seed, pooling,
                                              f"image {i + 1}/{len(paths)}", callback,
                                              {**options, "size": size, "max_pixels": max_pixels})
        except KeyboardInterrupt:
            stopped = "interrupted"
            break
        if result.stopped:
            stopped = result.stopped
            break
        recipe = result.recipe
        for row in result.history:
            row["image"] = path.name
        frames.append(result.image), names.append(path.stem), losses.append(image_losses)
        tensors.append(result.tensor.cpu())
        history.extend(result.history)
        if on_frame is not None:
            on_frame(FrameDone(i, len(paths), result.image, image_losses, tensors[-1], path.stem, result.recipe))
    return ClipResult(frames, [], None, names, history, {**recipe, "stopped": stopped}, stopped, losses, tensors)
