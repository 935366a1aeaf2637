"""Clips and folders on the command line: ``dreamstyle transfer CLIP|FOLDER STYLE... -o OUT``.

``transfer`` hands over here when CONTENT is an animated image (GIF, WebP, APNG), a folder, or
``--frames`` is given. A folder is a set of still images (one PNG out per image, into the folder
OUT) unless ``--frames`` says it holds the frames of a clip.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..errors import OutputError


def clip_options(func):
    """The options for clips and folders, added to ``transfer`` (they arrive as ``**clip``)."""
    options = [
        click.option("--frames", "as_frames", is_flag=True,
                     help="CONTENT is a folder of a clip's frames (sorted by name), not of still images."),
        click.option("--batch", type=int, default=1, show_default=True,
                     help="Clips and folders: optimize N frames or images at once (GPU memory allowing)."),
        click.option("--temporal-weight", type=float, default=1e3, show_default=True,
                     help="Clips: weight of the temporal term (holds still what did not move; 0 = off)."),
        click.option("--temporal-init", type=float, default=0.0, show_default=True,
                     help="Clips: start each frame from the previous output blended with F of its --init "
                          "(0 = previous frame only, 1 = independent frames)."),
        click.option("--flow", type=click.Choice(["none", "ilk", "tvl1"]), default="none", show_default=True,
                     help="Clips: warp the previous frame along optical flow (needs scikit-image)."),
        click.option("--frame-iterations", type=int, default=None,
                     help="Clips: optimizer steps for each frame after the first (warm-started, they need "
                          "fewer). [default: --iterations]"),
        click.option("--fps", type=float, default=None,
                     help="Clips: frame rate, overriding the source's timing (a folder of frames: 10)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def content_kind(content: Path, as_frames: bool) -> str:
    """"image", "clip" (animated file, or a folder with --frames) or "folder" (still images)."""
    from click.core import ParameterSource

    from ..clips import is_animation

    if content.is_dir():
        return "clip" if as_frames else "folder"
    if as_frames:
        raise click.UsageError(f"--frames needs a folder of frames; {content} is not a folder")
    if is_animation(content):
        return "clip"
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        for param in ctx.command.params:
            if param.name in CLIP_ONLY | {"batch"} and ctx.get_parameter_source(param.name) not in (
                    None, ParameterSource.DEFAULT):
                raise click.UsageError(f"{param.opts[-1]} goes with a clip or a folder; {content} is a single image")
    return "image"


# Options the clip and folder drivers understand; any other option given raises an error.
HANDLED = {"content", "styles", "output", "backbone", "weights", "device", "seed", "size", "iterations", "lr",
           "precision", "log_json", "log_every", "max_pixels", "overwrite", "quiet", "style_scale",
           "style_blend", "content_layers", "style_layers", "content_weight", "style_weight", "tv_weight",
           "losses", "pooling", "init", "optimizer", "preserve_color", "as_frames", "batch"}
CLIP_ONLY = {"temporal_weight", "temporal_init", "flow", "fps", "frame_iterations"}


def _reject_unsupported(params: dict, kind: str, allowed: set | None = None) -> None:
    from click.core import ParameterSource

    ctx = click.get_current_context()
    if allowed is None:
        allowed = HANDLED | (CLIP_ONLY if kind == "clip" else set())
    what = "a clip" if kind == "clip" else "a folder of images"
    for param in ctx.command.params:
        if param.name in allowed or param.name not in params:
            continue
        source = ctx.get_parameter_source(param.name)
        if source not in (None, ParameterSource.DEFAULT):
            raise click.UsageError(f"{param.opts[-1]} is not available with {what}")
    if params.get("scales") not in (None, "1"):
        raise click.UsageError(f"--scales is not available with {what}")
    if params.get("batch", 1) < 1:
        raise click.BadParameter(f"must be at least 1, not {params['batch']}", param_hint="--batch")


def transfer_many(kind: str, params: dict) -> None:
    """Run ``transfer`` over a clip or a folder; ``params`` are the command's parameters."""
    _reject_unsupported(params, kind)
    if kind == "clip":
        _transfer_clip(params)
    else:
        _transfer_folder(params)


def _common(p: dict) -> dict:
    return dict(backbone=p["backbone"], weights=p["weights"], device=p["device"], seed=p["seed"], size=p["size"],
                style_scale=p["style_scale"], style_blend=p["style_blend"], content_layers=p["content_layers"],
                style_layers=p["style_layers"], content_weight=p["content_weight"], style_weight=p["style_weight"],
                tv_weight=p["tv_weight"], losses=list(p["losses"]), pooling=p["pooling"], init=p["init"],
                optimizer=p["optimizer"], iterations=p["iterations"], lr=p["lr"],
                preserve_color=p["preserve_color"], precision=p["precision"], log_every=p["log_every"],
                max_pixels=p["max_pixels"])


class FrameProgress:
    """One bar over the frames (or images): the frame being optimized, its iteration, its losses;
    where stderr is no terminal, plain lines (each logged step, and each frame done)."""

    def __init__(self, total: int, quiet: bool, title: str = "frames"):
        from .common import PlainLines, _stderr_console

        self.progress = self.plain = None
        self.total, self.done = total, 0
        if not quiet:
            console = _stderr_console()
            if not console.is_terminal:
                self.plain = PlainLines(console, total)
                return
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                       TimeRemainingColumn)

            self.progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                TimeRemainingColumn(), TextColumn("{task.fields[step]}"), TextColumn("{task.fields[losses]}"),
                console=console, transient=False)
            self.task = self.progress.add_task(title, total=total, step="", losses="")

    def __enter__(self):
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc):
        if self.progress is not None:
            self.progress.stop()

    def step(self, event) -> None:
        from .common import format_losses

        if self.plain is not None:
            self.plain.elapsed()  # starts the clock on the first step
            if event.losses is not None:
                self.plain.line(event.label or "frames", event)
            return
        if self.progress is None:
            return
        fields = {"step": f"it {event.iteration}/{event.iterations}"}
        if event.losses is not None:
            fields["losses"] = format_losses({"total": event.total, **event.losses})
        self.progress.update(self.task, description=event.label or "frames", **fields)

    def frame(self, done) -> None:
        from .common import _duration, format_losses

        self.done += 1
        if self.plain is not None:
            self.plain.done = self.done
            elapsed = self.plain.elapsed()
            eta = (f"  eta {_duration(elapsed / self.done * (self.total - self.done))}"
                   if self.done < self.total else "")
            self.plain.console.print(f"{done.name or 'frame'} done ({self.done}/{self.total})  "
                                     f"{format_losses(done.losses)}  elapsed {_duration(elapsed)}{eta}",
                                     highlight=False, soft_wrap=True)
        elif self.progress is not None:
            self.progress.update(self.task, advance=1, losses=format_losses(done.losses))


def _write_log(log_json: Path | None, history: list) -> None:
    from ..images import _atomic

    if log_json is not None:
        _atomic(log_json, lambda fh: fh.write(json.dumps(history, indent=1).encode()))


def _transfer_clip(p: dict) -> None:
    from ..clips import check_clip_output, read_clip, transfer_clip, write_clip
    from ..images import check_output
    from .common import sigterm_as_interrupt

    output: Path = p["output"]
    clip = read_clip(p["content"], fps=p["fps"], max_pixels=p["max_pixels"])
    check_clip_output(output, p["overwrite"], clip.names)
    if p["log_json"] is not None:
        check_output(p["log_json"], p["overwrite"], (".json",))
    with FrameProgress(len(clip), p["quiet"]) as progress, sigterm_as_interrupt():
        result = transfer_clip(clip, [str(s) for s in p["styles"]], **_common(p), batch=p["batch"],
                               temporal_weight=p["temporal_weight"], temporal_init=p["temporal_init"],
                               flow=p["flow"], frame_iterations=p["frame_iterations"], callback=progress.step,
                               on_frame=progress.frame)
    result.recipe["content"] = str(p["content"])
    n, total = len(result.frames), len(clip)
    if n:
        try:
            write_clip(result.frames, output, result.durations, result.loop, result.names, result.recipe)
            _write_log(p["log_json"], result.history)
        except OSError as exc:
            raise OutputError(f"cannot write {output}: {exc.strerror or exc}") from None
    if result.stopped == "interrupted":
        if not n:
            raise click.ClickException("interrupted before the first frame was done; nothing was written")
        click.echo(f"dreamstyle: interrupted; the {n} of {total} frames done are in {output}", err=True)
        sys.exit(130)
    if result.stopped == "diverged":
        done = f"the {n} frames before it are in {output}" if n else "nothing was written"
        raise click.ClickException(f"the loss became NaN or infinite at frame {n + 1}; {done}. "
                                   "Lower --lr, or the loss weights, or try --optimizer lbfgs")
    if result.stopped:
        done = f"the {n} frames before it are in {output}" if n else "nothing was written"
        raise click.ClickException(f"stopped ({result.stopped}) at frame {n + 1}; {done}. Try a smaller --size")
    if not p["quiet"]:
        click.echo(f"wrote {output} ({n} frames)", err=True)


def _plan_folder(folder, output: Path, overwrite: bool):
    """The still images of ``folder`` and the output path of each, refused before any work if the
    output names a file or an output exists without --overwrite."""
    from ..clips import check_folder_output, list_images

    paths = list_images(folder)
    if output.suffix and not output.is_dir():
        raise OutputError(f"the output for a folder of images is a folder; {output} looks like a file "
                          "(to make a clip of the images, add --frames)")
    return paths, check_folder_output(output, [q.stem for q in paths], overwrite)


class _FolderWriter:
    """``on_frame`` of a folder run: shows the image done and writes it (atomically, with its
    recipe) to its planned path; ``written`` lists the paths written."""

    def __init__(self, output: Path, outs: list[Path], progress):
        self.output, self.outs, self.progress, self.written = output, outs, progress, []

    def __call__(self, done) -> None:
        from ..images import save_png

        self.progress.frame(done)
        path = self.outs[done.index]
        try:
            self.output.mkdir(exist_ok=True)
            save_png(done.image, path, done.recipe)
        except OSError as exc:
            raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
        self.written.append(path)


def _transfer_folder(p: dict) -> None:
    from ..clips import transfer_folder
    from ..images import check_output
    from .common import sigterm_as_interrupt

    output: Path = p["output"]
    paths, outs = _plan_folder(p["content"], output, p["overwrite"])
    if p["log_json"] is not None:
        check_output(p["log_json"], p["overwrite"], (".json",))
    with FrameProgress(len(paths), p["quiet"], "images") as progress, sigterm_as_interrupt():
        writer = _FolderWriter(output, outs, progress)
        result = transfer_folder(paths, [str(s) for s in p["styles"]], **_common(p), batch=p["batch"],
                                 callback=progress.step, on_frame=writer)
    _write_log(p["log_json"], result.history)
    n, total = len(writer.written), len(paths)
    if result.stopped == "interrupted":
        click.echo(f"dreamstyle: interrupted; {n} of {total} images were written to {output}", err=True)
        sys.exit(130)
    if result.stopped == "diverged":
        raise click.ClickException(f"the loss became NaN or infinite; {n} of {total} images were written to "
                                   f"{output}. Lower --lr, or the loss weights, or try --optimizer lbfgs")
    if result.stopped:
        raise click.ClickException(f"stopped ({result.stopped}); {n} of {total} images were written to {output}. "
                                   "Try a smaller --size")
    if not p["quiet"]:
        click.echo(f"wrote {n} images to {output}", err=True)


# --- dreamstyle dream over a clip or a folder --------------------------------------------------------


def dream_clip_options(func):
    """The options for clips and folders, added to ``dream`` (they arrive as ``**clip``)."""
    options = [
        click.option("--frames", "as_frames", is_flag=True,
                     help="INPUT is a folder of a clip's frames (sorted by name), not of still images."),
        click.option("--temporal-init", type=float, default=0.5, show_default=True,
                     help="Clips: dream each frame from the previous dreamed frame blended with F of the new "
                          "frame (1 = independent frames)."),
        click.option("--flow", type=click.Choice(["none", "ilk", "tvl1"]), default="none", show_default=True,
                     help="Clips: warp the previous frame along optical flow (needs scikit-image)."),
        click.option("--fps", type=float, default=None,
                     help="Clips: frame rate, overriding the source's timing (a folder of frames: 10)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


DREAM_HANDLED = {"input", "layers", "output", "backbone", "weights", "device", "seed", "size", "iterations", "lr",
                 "precision", "log_json", "log_every", "max_pixels", "overwrite", "quiet", "objective", "octaves",
                 "octave_scale", "step", "optimizer", "jitter", "tile", "tile_overlap", "guide", "pooling",
                 "as_frames"}


def dream_many(kind: str, params: dict) -> None:
    """Run ``dream`` over a clip or a folder; ``params`` are the command's parameters."""
    from ..clips import check_clip_output, dream_clip, dream_folder, read_clip, write_clip
    from ..errors import OptionError
    from ..images import check_output
    from .common import sigterm_as_interrupt

    allowed = DREAM_HANDLED | ({"temporal_init", "flow", "fps"} if kind == "clip" else set())
    _reject_unsupported(params, kind, allowed)
    p = params
    if p["step"] is not None and p["lr"] is not None and p["step"] != p["lr"]:
        raise OptionError("--step and --lr are the same setting; give one of them")
    output: Path = p["output"]
    options = dict(layers=list(p["layers"]) or None, backbone=p["backbone"], weights=p["weights"],
                   device=p["device"], seed=p["seed"], size=p["size"], objective=p["objective"], octaves=p["octaves"],
                   octave_scale=p["octave_scale"], iterations=p["iterations"], optimizer=p["optimizer"],
                   lr=p["step"] if p["step"] is not None else p["lr"], jitter=p["jitter"], tile=p["tile"],
                   tile_overlap=p["tile_overlap"], guide=str(p["guide"]) if p["guide"] is not None else None,
                   pooling=p["pooling"], precision=p["precision"], log_every=p["log_every"],
                   max_pixels=p["max_pixels"])
    if kind == "clip":
        clip = read_clip(p["input"], fps=p["fps"], max_pixels=p["max_pixels"])
        check_clip_output(output, p["overwrite"], clip.names)
    else:
        paths, outs = _plan_folder(p["input"], output, p["overwrite"])
    if p["log_json"] is not None:
        check_output(p["log_json"], p["overwrite"], (".json",))
    total = len(clip) if kind == "clip" else len(paths)
    with FrameProgress(total, p["quiet"], "dreaming") as progress, sigterm_as_interrupt():
        if kind == "clip":
            result = dream_clip(clip, temporal_init=p["temporal_init"], flow=p["flow"], callback=progress.step,
                                on_frame=progress.frame, **options)
        else:
            result = dream_folder(paths, callback=progress.step, on_frame=_FolderWriter(output, outs, progress),
                                  **options)
    if kind == "clip":
        result.recipe["input"] = str(p["input"])
        if result.frames:
            try:
                write_clip(result.frames, output, result.durations, result.loop, result.names, result.recipe)
            except OSError as exc:
                raise OutputError(f"cannot write {output}: {exc.strerror or exc}") from None
    _write_log(p["log_json"], result.history)
    n = len(result.frames)
    what = f"the {n} of {total} frames done are in {output}" if kind == "clip" else \
        f"{n} of {total} images were written to {output}"
    if result.stopped == "interrupted":
        if not n:
            raise click.ClickException("interrupted before the first frame was done; nothing was written")
        click.echo(f"dreamstyle: interrupted; {what}", err=True)
        sys.exit(130)
    if result.stopped:
        raise click.ClickException(f"stopped ({result.stopped}); {what}")
    if not p["quiet"]:
        click.echo(f"wrote {output} ({n} {'frames' if kind == 'clip' else 'images'})", err=True)
