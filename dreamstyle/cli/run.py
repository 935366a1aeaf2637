"""Running a job from the command line: settings from the options (or a replayed recipe), the input's
kind (a still, a clip, a folder of images), outputs checked before any work, progress, files
written atomically, and one function (:func:`report`) that turns how a run ended into one line and
an exit code."""

from __future__ import annotations

import contextlib
import dataclasses
import random
import signal
import sys
from pathlib import Path

import click

from ..applies import refuse
from ..errors import OptionError, OutputError, UserError
from ..hints import hints
from ..settings import apply_preset, settings_for
from ..stop import Reason, Said, Stop, describe
from ..writers import Outbox, rescue_line, signals_deferred  # noqa: F401 - signals_deferred: used here and by tests
from .options import Outputs, given, output_applicability, split
from .progress import STEP_COST, FrameProgress, Progress

WHAT = {"transfer": "image", "dream": "dream", "texture": "texture"}


# --- which input, which options ------------------------------------------------------------------


def content_kind(path, as_frames: bool, zoom: bool = False) -> str:
    """The input's kind (:func:`dreamstyle.drive.frames.input_kind`): "still", "clip" (an animated
    file, or a folder with --frames), "video", "folder" (still images) or "zoom" (a still with
    --zoom-frames)."""
    from ..drive.frames import input_kind

    try:
        return input_kind(path, as_frames, zoom)
    except OptionError as exc:
        raise click.UsageError(str(exc)) from None


def refuse_given(settings, kind: str, source) -> None:
    """The options given (not their defaults, nor a replayed recipe's) that do not apply to this kind
    of input: one usage line (:func:`dreamstyle.applies.refuse`)."""
    cls = type(settings)
    options = {**cls.applicability(), **output_applicability()}
    try:
        refuse(options, [name for name in options if given(name)], kind, source, cls.INPUTS)
    except OptionError as exc:
        raise click.UsageError(str(exc)) from None


def settings_from(kind: str, params: dict):
    """The settings of a command: its options, on top of a replayed recipe (``--from``)."""
    cls = settings_for(kind)
    values, outputs = split(cls, params)
    if outputs.get("replay") is not None:
        from ..replay import recipe_values

        explicit = {name: v for name, v in values.items() if given(name)}
        values = recipe_values(outputs["replay"], cls, explicit)
        return cls(**apply_preset(cls, values, values.__contains__)), Outputs(**outputs)
    return cls(**apply_preset(cls, values, given)), Outputs(**outputs)


# --- running --------------------------------------------------------------------------------------


def execute(kind: str, params: dict) -> None:
    """Run the ``kind`` command (transfer, dream, texture) with the command's parameters."""
    from .group import host

    waiting = Loading(params.get("quiet", False))
    try:
        host()  # plugins that failed to load: one warning line each, before any work
        settings, out = settings_from(kind, params)
        out.loading = waiting
        _execute(kind, settings, out)
    finally:
        waiting.stop()


def _execute(kind: str, settings, out: Outputs) -> None:
    source = getattr(settings, "content", None) if kind == "transfer" else getattr(settings, "input", None)
    input_kind = content_kind(source, getattr(settings, "frames", False), bool(getattr(settings, "zoom_frames", 0)))
    refuse_given(settings, input_kind, source)
    if settings.compile:  # torch's compiler warns about CUDA_HOME on CPU-only machines: not the user's concern
        import logging

        logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    run = {"still": run_still, "clip": run_clip, "video": run_clip, "folder": run_folder, "zoom": run_zoom}
    run[input_kind](kind, settings, out)


class Loading:
    """In a terminal, a passing line (a rich status) while torch and the plugins import, gone before
    anything else is printed; nothing elsewhere (an error there stays one line)."""

    def __init__(self, quiet: bool):
        self.status = None
        if quiet or "torch" in sys.modules:
            return
        from .progress import stderr_console

        console = stderr_console()
        if console.is_terminal:
            self.status = console.status("loading torch and the plugins", spinner="dots")
            self.status.start()

    def stop(self) -> None:
        if self.status is not None:
            self.status.stop()
            self.status = None


def make_job(kind: str, settings, out: Outputs, clip: bool = False):
    """The job; when its work begins (every check done), the seed drawn where none was given (to repeat
    the run), the hints of :mod:`dreamstyle.hints` and what it loads (:class:`~dreamstyle.runner.Phase`)."""
    from ..jobs import make_job as build

    try:
        job = build(
            kind, settings, recipe_paths="names" if out.recipe == "names" else "full", clip=clip, announce=out.say
        )
    finally:
        if out.loading is not None:
            out.loading.stop()
    job.on_phase = lambda phase: begins(kind, settings, job, phase, out)
    return job


def begins(kind: str, settings, job, phase, out: Outputs) -> None:
    """A job's work begins: its seed (where drawn), its hints, then what it loads."""
    from ..jobs import say_begin

    say_seed(settings.seed, job.seed, out.quiet)
    say_begin(kind, settings, job, phase, out.say)


def drawn_seed(settings):
    """``settings`` with a seed: the one given, else one drawn now (to say, so the run can be repeated)."""
    return settings if settings.seed is not None else settings.replace(seed=random.randrange(2**31))


def begin_lines(kind: str, given_seed, settings, quiet: bool, *lines: str):
    """What a command that builds no job of its own says when its work begins: the seed it drew, its
    hints and ``lines`` (``Progress(begin=...)``)."""

    def begin():
        say_seed(given_seed, settings.seed, quiet)
        if not quiet:
            for line in [*(f"hint: {h}" for h in hints(kind, settings)), *lines]:
                click.echo(f"dreamstyle: {line}", err=True)

    return begin


def say_seed(given, used: int, quiet: bool) -> None:
    """Where no --seed was given: the one drawn, so the run can be repeated."""
    if given is None and not quiet:
        click.echo(f"dreamstyle: seed {used} (add --seed {used} to repeat this run)", err=True)


def budget(settings, job) -> dict | None:
    """What :class:`~.progress.Progress` needs to say how long a long still takes, and how long half
    the --size would (where the size is --size's: not with --scales given as sizes)."""
    size = getattr(settings, "size", None)
    if not size:
        return None
    device = {"cpu": "CPU", "cuda": "GPU", "mps": "GPU"}.get(job.device.type, str(job.device))
    w, h = tuple(size) if isinstance(size, (tuple, list)) else (size, size)  # a texture's: (width, height)
    hw, hh = w // 2 // 16 * 16, h // 2 // 16 * 16
    explicit = isinstance(getattr(settings, "scales", None), tuple)
    if explicit or min(hw, hh) < max(128, job.backbone.min_size):
        return {"device": device}
    return {
        "device": device,
        "flag": f"--size {hw}" if hw == hh else f"--size {hw}x{hh}",
        "ratio": (hw * hh / (w * h)) ** STEP_COST,
    }


def run_still(kind: str, settings, out: Outputs) -> None:
    """A still into an image file (and its log, its --gif), through :func:`dreamstyle.drive.drive`."""
    from ..drive import Still, drive

    sink = image_file(out, WHAT[kind]).check()
    if out.save_every < 0:
        raise OptionError(f"--save-every must be zero or more, not {out.save_every}")
    job = make_job(kind, settings, out)
    source = Still()
    stages = job.stages(source.item(job))
    snapshots = Snapshots(out.output, out.save_every, stages, out.overwrite, out.bit_depth, out.quality)
    sink.snapshot_every = out.save_every or (max(1, settings.iterations // 30) if out.gif is not None else 0)
    work = [(s.iterations, s.size) for s in stages]
    progress = Progress(
        sum(s.iterations for s in stages),
        out.quiet,
        title="optimizing",
        stages=work,
        every_given=given("log_every"),
        budget=budget(settings, job),
    )

    def on_step(event):
        if event.iteration == 1 and event.stage == 1 and event.stages != len(stages):
            progress.set_total(sum(s.iterations for s in stages[-event.stages :]), work[-event.stages :])
        progress(event)
        snapshots(event)

    done = drive(job, source, sink, on_step=on_step, during=_working(progress))
    warn_beside(sink.outbox)
    stop = done.stop
    if stop.reason is Reason.DIVERGED:
        at, advice = _diverged_at(done.result, None)
        stop = dataclasses.replace(stop, at=at, advice=advice)
    tell(describe(stop), out.quiet)


@contextlib.contextmanager
def _working(progress):
    """While a run works (not while it writes): its progress shown, SIGTERM taken as Ctrl-C."""
    with progress, sigterm_as_interrupt():
        yield


def file_options(out: Outputs) -> dict:
    """The output options every sink of files takes, from the command's (:class:`~.options.Outputs`)."""
    return {
        "overwrite": out.overwrite,
        "bit_depth": out.bit_depth,
        "quality": out.quality,
        "recipe": out.recipe != "none",
        "log_json": out.log_json,
    }


def image_file(out: Outputs, what: str = "image", outbox: Outbox | None = None):
    """The image-file sink of a still's outputs (:class:`dreamstyle.drive.ImageFile`)."""
    from ..drive import ImageFile

    return ImageFile(
        out.output,
        **file_options(out),
        gif=out.gif,
        note=out.say,
        what=what,
        outbox=outbox,
    )


def write_still(result, out: Outputs, outbox: Outbox) -> tuple[Path | None, Path | None]:
    """The picture (at full precision), the log and the animation, each through the outbox; where the
    picture and the animation went."""
    return image_file(out, outbox=outbox).write(result)


def run_clip(kind: str, settings, out: Outputs) -> None:
    """A clip (a video, an animation or a folder of frames) into a clip: frame by frame, each one warm
    (:class:`dreamstyle.drive.ClipFrames`)."""
    from ..drive import ClipFrames
    from ..drive.frames import open_clip

    clip = open_clip(settings.content if kind == "transfer" else settings.input, settings)
    run_frames(kind, settings, out, ClipFrames(clip), "frames" if kind == "transfer" else "dreaming")


def run_zoom(kind: str, settings, out: Outputs) -> None:
    """An infinite zoom: a still dreamed, zoomed, dreamed again, ``--zoom-frames`` times
    (:class:`dreamstyle.drive.ZoomFrames`)."""
    from ..drive import ZoomFrames

    run_frames(kind, settings, out, ZoomFrames(settings.zoom_frames, settings.fps), "zooming")


def run_frames(kind: str, settings, out: Outputs, source, title: str) -> None:
    """``source``'s frames through :func:`dreamstyle.drive.drive` into a video (each frame encoded as
    it is done; ``--resume`` goes on after the last one an interrupted run finished), or kept and
    written at the end as an animation or a folder of frames."""
    from ..drive import drive

    sink = frames_sink(out, settings, source).check()
    resume = sink.resume_point() if hasattr(sink, "resume_point") else None
    if resume is not None:
        out.say(f"resuming after frame {resume[0]} of {source.total}")
        source.resume = resume
    source.keep = getattr(sink, "keeps", True)  # a video is written as each frame comes: none kept
    job = make_job(kind, settings, out, clip=hasattr(source, "clip"))
    progress = FrameProgress(
        source.total, out.quiet, title, done=resume[0] if resume else 0, every_given=given("log_every")
    )
    sink.shown = progress.frame
    done = drive(job, source, sink, on_step=progress.step, during=_working(progress))
    warn_beside(sink.outbox)
    stop = done.stop
    if stop.reason is Reason.DIVERGED:
        at, advice = _diverged_at(done.result, source.first + 1)
        stop = dataclasses.replace(stop, at=at, advice=advice)
    tell(describe(stop), out.quiet)


def frames_sink(out: Outputs, settings, source):
    """Where a clip's or a zoom's frames go, by the output (:func:`dreamstyle.drive.sinks.clip_sink`)."""
    from ..drive.sinks import clip_sink

    return clip_sink(
        out.output,
        source,
        settings.to_recipe("names"),
        **file_options(out),
        crf=out.crf,
        resume=out.resume,
        note=out.say,
    )


def run_folder(kind: str, settings, out: Outputs) -> None:
    """A folder of images into a folder of images, each written as it is made (``--resume`` skips those
    done before), through :func:`dreamstyle.drive.drive`; an image that cannot be read or made is one
    line, and the others go on."""
    from ..drive import Folder, ImageFolder, drive
    from ..executors import executor_for

    def on_error(name, line):
        click.echo(f"dreamstyle: {name}: {line}; the others go on", err=True)
        progress.skip(name)

    source = Folder(settings.content if kind == "transfer" else settings.input, on_error=on_error)
    sink = ImageFolder(out.output, source.names, **file_options(out)).check_shape()
    job = make_job(kind, settings, out)
    skip = source.resume(job, sink.outputs) if out.resume and not out.overwrite else []
    if skip:
        out.say(f"resuming: {len(skip)} of {len(source.paths)} images are done already")
    sink.check(skip)
    executor = executor_for(settings.executor, settings.workers)
    progress = FrameProgress(
        len(source.paths),
        out.quiet,
        "images",
        done=len(skip),
        every_given=given("log_every"),
        budget=budget(settings, job),
    )
    sink.shown = progress.frame
    done = drive(
        job, source, sink, executor, progress.step, during=_folder_working(kind, settings, job, out, progress, executor)
    )
    warn_beside(sink.outbox)
    stop = done.stop
    if stop.reason is Reason.DIVERGED:
        at, advice = _diverged_at(done.result, len(done.result.frames) + 1)
        stop = dataclasses.replace(stop, at=at, advice=advice)
    tell(describe(stop), out.quiet)


@contextlib.contextmanager
def _folder_working(kind: str, settings, job, out: Outputs, progress, executor):
    """While a folder works: its progress shown, SIGTERM taken as Ctrl-C; on another executor, the job's
    work begins here (its workers plan, not this job)."""
    with progress, sigterm_as_interrupt():
        if executor.name != "local":
            from ..runner import Phase

            job.phase_told = True
            begins(kind, settings, job, Phase("prepare", ""), out)
            progress.start_clock()
        yield


# --- how it ended -----------------------------------------------------------------------------------


def report(
    stopped,
    where: str,
    out: Outputs,
    result,
    received=(),
    frame: int | None = None,
    rescue: str = "",
    outbox: Outbox | None = None,
    what: str = "image",
) -> None:
    """How a run ended, as :func:`dreamstyle.stop.describe` words it: one line, and the exit code 0,
    130 (interrupted, or a signal while the outputs were written), 1 (diverged, out of memory, a loss
    term that failed, or an output that could not be written where asked: ``rescue`` says where it
    went)."""
    warn_beside(outbox)
    reason = Reason.INTERRUPTED if received else Reason.of(stopped)
    at, advice = _diverged_at(result, frame) if reason is Reason.DIVERGED else ("", "")
    tell(describe(Stop(reason, where, getattr(result, "fault", ""), at, advice, rescue)), out.quiet)


def _diverged_at(result, frame: int | None) -> tuple[str, str]:
    """When a run diverged ("by iteration 12", "at frame 3"), and what to try instead."""
    from ..optimizers import get_optimizer

    last = result.history[-1]["iteration"] if result.history else 0
    at = f"at frame {frame}" if frame is not None else f"by iteration {max(1, last)}"
    other = get_optimizer(result.recipe.get("optimizer", "lbfgs")).alternative if result.recipe else ""
    return at, f". Lower --lr or the loss weights{f', or try --optimizer {other}' if other else ''}"


def tell(said: Said, quiet: bool = False) -> None:
    """:func:`~dreamstyle.stop.describe`'s line and exit code on the command line: an error as one
    ``Error:`` line (1), an interruption as one ``dreamstyle:`` line (130), else the line (0)."""
    if said.failed:
        raise click.ClickException(said.line)
    if said.code:
        click.echo(f"dreamstyle: {said.line}", err=True)
        sys.exit(said.code)
    if not quiet:
        click.echo(said.line, err=True)


def warn_beside(outbox: Outbox | None) -> None:
    """A warning line for each file that appeared while the run worked (the new one went beside it)."""
    for w in outbox.written if outbox is not None else []:
        if w.beside:
            click.echo(
                f"dreamstyle: warning: {w.intended} appeared while this ran; the new one is beside it, in {w.path}",
                err=True,
            )


@contextlib.contextmanager
def writing(overwrite: bool, what: str, where: str = "", outbox: Outbox | None = None):
    """The files of a command that writes when its work is done (compare, sweep, reconstruct, channels,
    activations), through one :class:`Outbox` as transfer, dream and texture write theirs: each file
    atomic, one that cannot be written where asked rescued to a temporary folder (the others still
    written), Ctrl-C and SIGTERM held until all are written. Then one line: what was rescued (exit 1;
    130 if interrupted meanwhile), or a Ctrl-C that came while writing (130). ``outbox``: one that
    wrote files before (a sweep's cells, as they finished), to report them too."""
    outbox = outbox or Outbox(overwrite)
    with signals_deferred() as received:
        yield outbox
    warn_beside(outbox)
    rescue = rescue_line(outbox, what, where)
    if received:
        click.echo(f"dreamstyle: interrupted; {rescue or 'every file was written'}", err=True)
        sys.exit(130)
    if rescue:
        raise click.ClickException(rescue)


# --- snapshots --------------------------------------------------------------------------------------


def snapshot_path(output: Path, stage: int, stages: int, iteration: int) -> Path:
    tag = f"_s{stage}" if stages > 1 else ""
    return output.with_name(f"{output.stem}{tag}_{iteration:05d}{output.suffix}")


class Snapshots:
    """Writes the ``--save-every`` snapshots, in the output's format (its suffix, bit depth and
    quality); existing ones are refused before the run (unless --overwrite); one that cannot be
    written costs one warning line, not the run."""

    def __init__(
        self,
        output: Path,
        every: int,
        stages,
        overwrite: bool,
        bit_depth: int | None = None,
        quality: int | None = None,
    ):
        self.output, self.every, self.count, self.warned = output, every, len(stages), False
        self.bit_depth, self.quality = bit_depth, quality
        paths = (
            [
                snapshot_path(output, s.index, len(stages), i)
                for s in stages
                for i in range(every, s.iterations + 1, every)
            ]
            if every
            else []
        )
        if not overwrite:
            for path in paths:
                if path.exists():
                    raise OutputError(f"{path} exists (a --save-every snapshot); pass --overwrite to replace it")

    def __call__(self, event) -> None:
        if not self.every or event.snapshot is None or event.iteration % self.every:
            return
        from ..writers import save_image

        path = snapshot_path(self.output, event.stage, self.count, event.iteration)
        try:
            save_image(event.snapshot[:1], path, bit_depth=self.bit_depth, quality=self.quality)
        except Exception as exc:  # noqa: BLE001 - a snapshot that cannot be written is not worth the run
            if not self.warned:
                self.warned = True
                click.echo(
                    f"dreamstyle: warning: cannot write {path}: {getattr(exc, 'strerror', None) or exc}; "
                    "the run goes on",
                    err=True,
                )


# --- signals ----------------------------------------------------------------------------------------


@contextlib.contextmanager
def sigterm_as_interrupt():
    """SIGTERM stops a run the way Ctrl-C does, so the best image so far is still written."""

    def handler(signum, frame):
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


__all__ = ["execute", "report", "content_kind", "UserError"]
