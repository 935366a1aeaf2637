"""``dreamstyle train PHOTOS STYLE... -o style.dsm`` and ``dreamstyle stylize MODEL IMAGE -o OUT``."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import click

from ..settings import TrainSettings
from ..stop import Reason, describe
from .group import host, main
from .options import given, output_options, settings_params
from .progress import Progress
from .research_cmd import CONTEXT
from .run import report, settings_from, sigterm_as_interrupt

MODEL_HELP = "The model file to write (.dsm), every --checkpoint-every steps and at the end."


def train_body(**params):
    """Train a feed-forward style network on the photos in the folder PHOTOS, in the style of STYLES:
    then `dreamstyle stylize MODEL IMAGE` makes a picture in one pass (milliseconds to a second).

    The network is trained against the transfer objective, so every transfer term, weight, layer and
    backbone option applies (the hybrid's --dream-layer and plugin --loss terms too). Each step takes
    --batch random --size px crops of the photos; a photo that cannot be read is skipped with one line.
    Ctrl-C writes the weights reached; --resume goes on from the model file."""
    from ..jobs.train import TrainJob, check_model_output
    from ..runner import run
    from ..session import Session
    from ..stop import Reason
    from ..writers import write_json

    host()
    settings, out = settings_from("train", params)
    output = check_model_output(out.output, out.overwrite or out.resume)
    job = TrainJob(settings, Session.for_settings(settings), output, resume=out.resume, on_skip=out.say)
    if out.loading is not None:
        out.loading.stop()
    item = job.still_item()
    preview = Preview(output, settings.preview_every, job)
    start = time.perf_counter()
    title = f"training ({settings.batch} photo{'s' if settings.batch != 1 else ''} a step)"
    with (
        Progress(settings.iterations, out.quiet, title=title, every_given=given("log_every")) as progress,
        sigterm_as_interrupt(),
    ):

        def callback(event):
            progress(event)
            preview(event)

        result = run(job, item, callback, settings.preview_every)
    job.check_finite()
    steps = job.steps_done(result.stopped)
    path = job.save(steps)
    if out.log_json is not None:
        write_json(out.log_json, result.history, out.overwrite)
    seconds = time.perf_counter() - start
    images = (steps - job.first_step) * settings.batch
    where = (
        f"wrote {path}: {steps} steps, {job.notes['parameters'] / 1e6:.2f} M parameters, "
        f"{images / max(seconds, 1e-9):.1f} photos/s"
    )
    if job.held_out and result.stopped is not Reason.INTERRUPTED:
        n = len(job.held_out)
        where += f"; loss on {n} held-out photo{'s' if n != 1 else ''}: {job.loss_on(job.held_out):.4g}"
    report(result.stopped, where, out, result)


class Preview:
    """Every ``every`` steps, OUT.preview.png: the step's crops above the network's pictures of them."""

    def __init__(self, output: Path, every: int, job):
        self.path, self.every, self.job = output.with_suffix(".preview.png"), every, job

    def __call__(self, event) -> None:
        if not self.every or event.snapshot is None:
            return
        import torch

        from ..images import to_pil
        from ..writers import save_image

        crops = self.job.param.photos.detach().to("cpu", torch.float32)
        pictures = event.snapshot.to(torch.float32)
        top, bottom = (torch.cat(list(t), dim=-1) for t in (crops, pictures))
        save_image(to_pil(torch.cat([top, bottom], dim=-2)[None]), self.path)


def _train_command() -> click.Command:
    params = settings_params(TrainSettings, kind="train")
    arguments = [p for p in params if isinstance(p, click.Argument)]
    options = [p for p in params if not isinstance(p, click.Argument)]
    outputs = output_options(MODEL_HELP, only=("output", "resume", "log_json", "recipe", "overwrite", "quiet"))
    return click.Command(
        "train",
        callback=train_body,
        help=train_body.__doc__,
        context_settings=CONTEXT,
        params=[*arguments, outputs[0], *options, *outputs[1:]],
    )


main.add_command(_train_command())


@main.command("stylize", context_settings=CONTEXT)
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("images", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(path_type=Path),
    help="Output picture (one IMAGE) or folder (several, or a folder of images): PNGs.",
)
@click.option(
    "--strength",
    type=click.FloatRange(0.0, 1.0),
    default=1.0,
    show_default=True,
    help="1: the network's picture; less: blended with the photo.",
)
@click.option(
    "--size",
    type=click.IntRange(16, 16384),
    default=None,
    help="Long side of the output, px [default: the image's own].",
)
@click.option(
    "--preserve-color",
    type=click.Choice(["luminance"]),
    default=None,
    help="luminance: the network's brushwork in the photo's own colours.",
)
@click.option("--crf", type=int, default=None, help="A video output's quality (lower is better; the codec's default).")
@click.option(
    "--export",
    type=click.Choice(["onnx"]),
    default=None,
    help="onnx: write MODEL as an ONNX file to OUTPUT (no IMAGES) for onnxruntime: phones, browsers.",
)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--overwrite", is_flag=True, help="Replace existing output files.")
def stylize_body(model, images, output, strength, size, preserve_color, crf, export, device, overwrite):
    """IMAGES (files, or a folder of images) through the style network MODEL (a .dsm file that
    `dreamstyle train` wrote): one forward pass each, no optimization. One IMAGE that is a clip (a
    video, or an animated GIF/WebP/PNG) goes frame by frame into OUTPUT: an animation, a folder of
    frames, or a video (.mp4, .webm, ...) that keeps the source video's sound."""
    from ..clips import list_images
    from ..fastnet import load_model
    from ..instant import is_clip, open_frames
    from ..runtime import resolve_device

    if export:
        return _export(model, images, output, overwrite)
    if not images:
        raise click.UsageError("give IMAGES to stylize (or --export onnx to write the network as ONNX)")
    loaded = load_model(model, resolve_device(device))
    recipe = {
        "command": "stylize",
        "model": Path(model).name,
        "model_recipe": loaded.recipe,
        "strength": strength,
        "preserve_color": preserve_color,
    }
    options = {"strength": strength, "size": size, "preserve_color": bool(preserve_color)}
    if len(images) == 1 and is_clip(images[0]):
        return _stylize(loaded, open_frames(images[0]), output, recipe, options, overwrite=overwrite, crf=crf)
    if crf is not None:
        raise click.UsageError("--crf is a video's quality: give one video or animation and a video output")
    paths = [p for given_path in images for p in (list_images(given_path) if given_path.is_dir() else [given_path])]
    return _stylize(loaded, paths, output, recipe, options, overwrite=overwrite, folder=images[0].is_dir())


def _stylize(loaded, pictures, output, recipe, options, *, overwrite, crf=None, folder=False) -> None:
    """``pictures`` (paths, or a clip's frames) through the network by :func:`dreamstyle.drive.drive`
    into a picture, a folder of pictures, or a clip (an animation, a folder of frames, a video), with
    a progress bar for many; Ctrl-C keeps what was done (exit 130)."""
    from ..drive import ImageFile, ImageFolder, drive
    from ..drive.sinks import clip_sink
    from ..instant import Stylized
    from .progress import FrameProgress
    from .run import tell, warn_beside

    def on_error(name, line):
        click.echo(f"dreamstyle: skipped {name}: {line}", err=True)

    many = folder or not isinstance(pictures, list) or len(pictures) != 1  # one picture that fails: its error
    source = Stylized(loaded, pictures, recipe=recipe, options=options, on_error=on_error if many else None)
    if source.clip is not None:
        sink = clip_sink(output, source, recipe, overwrite=overwrite, crf=crf, resumable=False)
    elif not many:
        sink = ImageFile(output, overwrite=overwrite, what="picture")
    else:
        sink = ImageFolder(output, source.names, overwrite=overwrite)
    sink = sink.check()
    source.keep = getattr(sink, "keeps", not many)
    progress = FrameProgress(source.total, source.total == 1, "frames" if source.clip is not None else "pictures")
    sink.shown = progress.frame
    done = drive(None, source, sink, during=progress)
    warn_beside(sink.outbox)
    stop = done.stop
    if stop.reason is Reason.DONE and source.count:
        stop = dataclasses.replace(stop, where=f"{stop.where}, {source.ms:.0f} ms each")
    tell(describe(stop))


def _export(model, images, output, overwrite) -> None:
    """MODEL as ONNX at OUTPUT, and the largest difference from the torch network on a test picture."""
    import torch

    from ..fastnet import export_onnx, load_model
    from ..writers import check_output

    if images:
        raise click.UsageError("--export writes the network, not pictures: give no IMAGES")
    check_output(output, overwrite, (".onnx",))
    net = load_model(model).net
    written = export_onnx(net, output, overwrite)
    line = f"wrote {written}"
    try:
        import onnxruntime
    except ImportError:
        click.echo(line + " (onnxruntime is not installed here: not checked)", err=True)
        return
    x = torch.rand(1, 3, 96, 128, generator=torch.Generator().manual_seed(0))
    session = onnxruntime.InferenceSession(str(written), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        diff = (torch.from_numpy(session.run(None, {"image": x.numpy()})[0]) - net(x)).abs().max()
    click.echo(f"{line} (onnxruntime gives the network's picture within {float(diff):.1e})", err=True)
