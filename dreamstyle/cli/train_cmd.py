"""``dreamstyle train PHOTOS STYLE... -o style.dsm`` and ``dreamstyle stylize MODEL IMAGE -o OUT``."""

from __future__ import annotations

import time
from pathlib import Path

import click

from ..errors import UserError
from ..settings import TrainSettings
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
    from ..api import stylize
    from ..clips import list_images
    from ..fastnet import load_model
    from ..instant import is_clip
    from ..runtime import resolve_device
    from ..writers import check_output, save_image

    if export:
        return _export(model, images, output, overwrite)
    if not images:
        raise click.UsageError("give IMAGES to stylize (or --export onnx to write the network as ONNX)")
    loaded = load_model(model, resolve_device(device))
    if len(images) == 1 and is_clip(images[0]):
        return _stylize_clip(loaded, images[0], output, strength, size, bool(preserve_color), crf, overwrite)
    if crf is not None:
        raise click.UsageError("--crf is a video's quality: give one video or animation and a video output")
    paths = [p for given_path in images for p in (list_images(given_path) if given_path.is_dir() else [given_path])]
    single = len(paths) == 1 and not images[0].is_dir()
    if single:
        targets = [check_output(output, overwrite, (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff"))]
    else:
        output.mkdir(parents=True, exist_ok=True)
        targets = [check_output(output / f"{p.stem}.png", overwrite) for p in paths]
    recipe = {
        "command": "stylize",
        "model": Path(model).name,
        "model_recipe": loaded.recipe,
        "strength": strength,
        "preserve_color": preserve_color,
    }
    start, failed = time.perf_counter(), []
    for path, target in zip(paths, targets):
        try:
            picture = stylize(
                loaded, path, strength=strength, size=size, device=device, preserve_color=bool(preserve_color)
            )
        except UserError as exc:  # an image that cannot be read: one line, the others go on
            if single:
                raise
            failed.append(path)
            click.echo(f"dreamstyle: skipped {path.name}: {exc}", err=True)
            continue
        save_image(picture, target, {**recipe, "content": path.name}, overwrite)
    made = len(paths) - len(failed)
    each = (time.perf_counter() - start) / max(1, made)
    click.echo(
        f"wrote {targets[0] if single else output} ({made} picture{'s' if made != 1 else ''}, "
        f"{each * 1000:.0f} ms each)",
        err=True,
    )
    if failed:
        raise click.ClickException(f"{len(failed)} of {len(paths)} images could not be read (named above)")


def _stylize_clip(loaded, clip, output, strength, size, preserve_color, crf, overwrite) -> None:
    """A clip frame by frame, with a progress bar; Ctrl-C keeps the frames done (exit 130)."""
    from types import SimpleNamespace

    from ..api import stylize
    from .progress import FrameProgress

    with FrameProgress(0, False, "frames") as progress:

        def on_frame(done, total):
            progress.total = total
            progress.frame(SimpleNamespace(name=f"frame {done}", losses={}))

        styled = stylize(
            loaded,
            clip,
            output=output,
            strength=strength,
            size=size,
            preserve_color=preserve_color,
            crf=crf,
            overwrite=overwrite,
            on_frame=on_frame,
        )
    kept = f"{styled.frames} of {styled.total} frames"
    if styled.interrupted:
        where = f"the {kept} done are in {styled.path}" if styled.path else "nothing was written"
        click.echo(f"dreamstyle: interrupted: {where}", err=True)
        raise SystemExit(130)
    click.echo(f"wrote {styled.path} ({kept}, {styled.ms_per_frame:.0f} ms each)", err=True)


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
