"""The Python API, for notebooks and scripts: keyword arguments build the settings (the same
options, defaults and checks as the command line), then one job runs on one session.

    image, history = dreamstyle.transfer("photo.jpg", ["painting.jpg"], size=384, iterations=300)
    result = dreamstyle.dream("photo.jpg", "relu4_4:12", octaves=4)
    result = dreamstyle.texture(["painting.jpg"], size="768x512", seamless=True)

``callback(event)`` receives a :class:`~dreamstyle.engine.StepEvent` every step; ``loaded`` reuses
a loaded backbone (:func:`dreamstyle.backbones.load_backbone`); ``snapshot_every`` collects
``result.frames``. Every function returns a :class:`~dreamstyle.runner.Result` (clips and folders a
:class:`~dreamstyle.sequence.SequenceResult`).
"""

from __future__ import annotations

import os
from typing import Callable

from . import sequence
from .applies import refuse
from .drive import Memory, Still, drive
from .drive.frames import input_kind
from .errors import OptionError
from .fastnet import Model, load_model
from .images import load_image
from .instant import is_clip, styled_picture, stylize_clip
from .jobs.atlas import activations as excited
from .jobs.atlas import atlas as atlas_of
from .jobs.compare import compare as compare_backbones
from .jobs.dream import DreamJob
from .jobs.reconstruct import reconstruct as reconstruct_layers
from .jobs.texture import TextureJob
from .jobs.train import TrainJob, check_model_output
from .jobs.transfer import TransferJob
from .runner import Result
from .runtime import resolve_device
from .session import Session
from .settings import (
    ActivationsSettings,
    AtlasSettings,
    DreamSettings,
    ReconstructSettings,
    TextureSettings,
    TrainSettings,
    TransferSettings,
    make,
)


def _settings(cls, kind: str, inputs: dict, options: dict):
    """``cls``'s settings from the inputs and the keyword options; an option given that does not apply
    to this kind of input (:mod:`dreamstyle.applies`) is refused in one line, as on the command line."""
    settings = make(cls, {**inputs, **options})
    source = next(iter(inputs.values()), None)
    source = None if isinstance(source, str) and source.startswith("<") else source  # "<clip>": in memory
    refuse(cls.applicability(), options, kind, source, cls.INPUTS)
    return settings


def _still(job_cls, settings, callback, loaded, snapshot_every, **job_options) -> Result:
    job = job_cls(settings, Session.for_settings(settings, loaded), **job_options)
    return drive(job, Still(), Memory(snapshot_every=snapshot_every), on_step=callback).result


def _many(x, snapshot_every: int):
    """The kind of input ``x`` is (:func:`~dreamstyle.drive.frames.input_kind`); a snapshot is a still's."""
    kind = input_kind(x)
    if kind != "still" and snapshot_every:
        raise OptionError(f"snapshot_every is a single picture's; this input is a {kind}")
    return kind


def transfer(
    content,
    styles,
    *,
    callback: Callable | None = None,
    on_frame: Callable | None = None,
    loaded=None,
    snapshot_every: int = 0,
    announce: Callable[[str], None] | None = None,
    **options,
) -> Result:
    """Gatys style transfer of ``content`` in the style of ``styles``; the hybrid with ``dream_layers``
    (specs, or "auto"). ``announce(line)`` is told what "auto" chose. ``content`` picks the run: a
    picture (a path or PIL image) gives a :class:`~dreamstyle.runner.Result`; a clip (an animation, a
    video, a :class:`~dreamstyle.clips.Clip`) runs as :func:`transfer_clip` and a folder (or a list
    of paths) as :func:`transfer_folder`, each giving a
    :class:`~dreamstyle.drive.made.SequenceResult` (``on_frame`` sees each frame or image made)."""
    kind = _many(content, snapshot_every)
    if kind != "still":
        many = transfer_folder if kind == "folder" else transfer_clip
        return many(content, styles, callback=callback, on_frame=on_frame, loaded=loaded, **options)
    settings = _settings(TransferSettings, "still", {"content": content, "styles": styles}, options)
    return _still(TransferJob, settings, callback, loaded, snapshot_every, announce=announce)


def dream(
    image=None,
    layers=None,
    *,
    callback: Callable | None = None,
    on_frame: Callable | None = None,
    loaded=None,
    snapshot_every: int = 0,
    **options,
) -> Result:
    """DeepDream ``image`` on ``layers``: a spec (``"relu4_4"``, ``"relu4_4:12"``, ``"relu4_4:3,7"``,
    ``"relu4_4:12@5,9"``, each may end in ``=WEIGHT``), a list of specs, or ``{spec: weight}``; the
    backbone's dream layer if omitted. ``lr`` is the step. A clip or a folder (or a list of paths)
    runs as :func:`dream_clip` or :func:`dream_folder` (see :func:`transfer`)."""
    kind = _many(image, snapshot_every)
    if kind != "still":
        many = dream_folder if kind == "folder" else dream_clip
        return many(image, layers, callback=callback, on_frame=on_frame, loaded=loaded, **options)
    settings = _settings(DreamSettings, "still", {"input": image, "layers": layers}, options)
    return _still(DreamJob, settings, callback, loaded, snapshot_every)


def texture(styles, *, callback: Callable | None = None, loaded=None, snapshot_every: int = 0, **options) -> Result:
    """A texture in the style of ``styles`` from noise; ``size`` is N or "WxH"; ``seamless`` tiles."""
    settings = _settings(TextureSettings, "still", {"styles": styles}, options)
    return _still(TextureJob, settings, callback, loaded, snapshot_every)


def transfer_clip(clip, styles, *, callback=None, on_frame=None, loaded=None, **options):
    """Style transfer of every frame of ``clip`` (a path or a :class:`~dreamstyle.clips.Clip`) with
    temporal coherence; the options are :func:`transfer`'s and the clip options."""

    settings = _settings(
        TransferSettings,
        sequence.clip_kind(clip),
        {"content": getattr(clip, "source", None) or "<clip>", "styles": styles},
        options,
    )
    job = TransferJob(settings, Session.for_settings(settings, loaded), clip=True)
    return sequence.run_clip(job, clip, callback=callback, on_frame=on_frame)


def transfer_folder(folder, styles, *, callback=None, on_frame=None, loaded=None, **options):
    """Style transfer of every still image in ``folder`` (or a list of paths), ``batch`` at a time."""

    settings = _settings(
        TransferSettings,
        "folder",
        {"content": str(folder) if not isinstance(folder, (list, tuple)) else "<images>", "styles": styles},
        options,
    )
    job = TransferJob(settings, Session.for_settings(settings, loaded))
    return sequence.run_folder(job, folder, callback=callback, on_frame=on_frame)


def dream_clip(clip, layers=None, *, callback=None, on_frame=None, loaded=None, **options):
    """DeepDream over every frame of ``clip``: each frame after the first is dreamed from the previous
    dream carried along the content's change, blended with ``temporal_init`` of the new frame."""

    settings = _settings(
        DreamSettings,
        sequence.clip_kind(clip),
        {"input": getattr(clip, "source", None) or "<clip>", "layers": layers},
        options,
    )
    job = DreamJob(settings, Session.for_settings(settings, loaded), clip=True)
    return sequence.run_clip(job, clip, callback=callback, on_frame=on_frame)


def dream_folder(folder, layers=None, *, callback=None, on_frame=None, loaded=None, **options):
    """DeepDream over every still image of ``folder`` (or a list of paths)."""

    settings = _settings(
        DreamSettings,
        "folder",
        {"input": str(folder) if not isinstance(folder, (list, tuple)) else "<images>", "layers": layers},
        options,
    )
    job = DreamJob(settings, Session.for_settings(settings, loaded))
    return sequence.run_folder(job, folder, callback=callback, on_frame=on_frame)


def compare(
    content,
    styles,
    variants,
    *,
    callback=None,
    on_start=None,
    snapshot_every: int = 0,
    judge: str | None = "vgg19",
    **options,
):
    """The same transfer on every variant (``"vgg19,vgg19:avg,alexnet:random"`` or a list): a
    :class:`~dreamstyle.jobs.compare.Comparison`, each picture graded on ``judge`` (a backbone, as
    ``dreamstyle compare --judge`` takes it; None: not graded)."""

    settings = _settings(TransferSettings, "grid", {"content": content, "styles": styles}, options)
    return compare_backbones(
        settings, variants, callback=callback, on_start=on_start, snapshot_every=snapshot_every, judge=judge
    )


def reconstruct(image, layers=None, *, callback=None, loaded=None, **options):
    """What single layers keep of ``image``: content per layer, or with ``style=True`` the Gram
    loss on growing sets of layers; every panel from the same noise, on one loaded network (a
    :class:`~dreamstyle.jobs.reconstruct.Reconstruction`)."""

    settings = make(ReconstructSettings, {"image": image, "layers": layers, **options})
    return reconstruct_layers(settings, callback=callback, loaded=loaded)


def atlas(backbone, layer, *, channels="0-15", callback=None, loaded=None, **options):
    """One visualization per channel of ``layer`` from noise (fft and transforms by default), in
    batches: a :class:`~dreamstyle.jobs.atlas.Atlas` (``.cells``, ``.sheet()``, ``.to_dict()``)."""

    settings = make(AtlasSettings, {"backbone": backbone, "layer": layer, "channels": channels, **options})
    return atlas_of(settings, callback=callback, loaded=loaded)


def activations(image, layer=None, *, callback=None, loaded=None, **options):
    """The ``top`` channels of ``layer`` that ``image`` excites most, with their activation maps and
    visualizations: a :class:`~dreamstyle.jobs.atlas.Excitation`."""

    settings = make(ActivationsSettings, {"image": image, "layer": layer, **options})
    return excited(settings, callback=callback, loaded=loaded)


def train(
    photos,
    styles,
    output,
    *,
    callback: Callable | None = None,
    on_skip: Callable[[str], None] | None = None,
    snapshot_every: int = 0,
    loaded=None,
    overwrite: bool = False,
    resume: bool = False,
    **options,
):
    """Train a feed-forward style network on the folder ``photos`` against the transfer objective for
    ``styles`` (the options of ``dreamstyle train``: every transfer term, weight and layer, and
    ``batch``, ``width``, ``growth``, ``taper``, ``blocks``, ``checkpoint_every``, ``held_out``; ``size`` is the
    crop side, ``iterations`` the steps, ``lr`` Adam's learning rate) and write it to ``output`` (a
    ``.dsm`` model file), also when the run stops early (Ctrl-C): the weights it reached; ``resume``
    goes on training the model file ``output``. Returns
    the run's :class:`~dreamstyle.runner.Result`, with ``result.model`` the path written and
    ``result.job`` the job (``job.loss_on(job.held_out)``: the loss on photos it never saw)."""

    settings = _settings(TrainSettings, "train", {"content": photos, "styles": styles}, options)
    check_model_output(output, overwrite or resume)
    job = TrainJob(settings, Session.for_settings(settings, loaded), output, resume=resume, on_skip=on_skip)
    result = drive(job, Still(), Memory(snapshot_every=snapshot_every), on_step=callback).result
    job.check_finite()
    result.model = job.save(job.steps_done(result.stopped))
    result.job = job
    return result


def stylize(
    model,
    image,
    *,
    strength: float = 1.0,
    size: int | None = None,
    device: str = "auto",
    preserve_color: bool = False,
    output=None,
    overwrite: bool = False,
    crf: int | None = None,
    on_frame=None,
):
    """``image`` (a path or PIL image) through the model file ``model`` (a path, or a loaded
    :class:`~dreamstyle.fastnet.Model`): a PIL image, in milliseconds. ``strength`` < 1 blends with
    the photo; ``size`` is the long side (default: the image's own); ``preserve_color``: the photo's
    colours under the network's luminance; a transparent image stays transparent. A clip (a video file or an
    animation) goes frame by frame into ``output`` (an animation, a folder of frames or a video with
    the source's sound; ``crf`` a video's quality, ``on_frame(done, total)`` after each frame) and
    the result is a :class:`~dreamstyle.instant.Styled`."""

    dev = resolve_device(device)
    model = model if isinstance(model, Model) else load_model(model, dev)
    model.net.to(dev)
    options = {"strength": strength, "size": size, "preserve_color": preserve_color}
    if isinstance(image, (str, os.PathLike)) and is_clip(image):
        if output is None:
            raise OptionError(f"{image} is a clip: give output=, where its frames go")
        recipe = {"command": "stylize", "model": model.path.name, "model_recipe": model.recipe, "strength": strength}
        return stylize_clip(
            model, image, output, recipe=recipe, overwrite=overwrite, crf=crf, on_frame=on_frame, **options
        )
    return styled_picture(model, load_image(image), **options)
