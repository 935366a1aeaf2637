"""dreamstyle dream INPUT --layer SPEC [--layer SPEC ...] -o OUT"""

from __future__ import annotations

from pathlib import Path

import click

from . import main
from .clip_cmd import dream_clip_options
from .common import (Intermediates, Progress, check_outputs, engine_options, finish, non_negative, positive_float,
                     intermediate_paths, positive_int, sigterm_as_interrupt,
                     snapshot_interval)


def complete_layer(ctx, param, incomplete):
    try:
        from . import host

        names = host().backbones.get(ctx.params.get("backbone") or "vgg19").layer_map.names
    except Exception:
        return []
    return [n for n in names if n.startswith(incomplete)]


@main.command(context_settings={"show_default": True})
@click.argument("input", required=False, type=click.Path(path_type=Path))
@click.option("--layer", "layers", multiple=True, metavar="SPEC", shell_complete=complete_layer,
              help="What to maximize: LAYER, LAYER:C, LAYER:C1,C2 (channels) or LAYER:C@Y,X (one neuron, in the "
                   "layer's grid); =WEIGHT weighs it. Repeatable. Default: the backbone's dream layer.")
@engine_options(default_iterations=10, default_size=512)
@click.option("--objective", type=click.Choice(["mean", "l2"]), default="mean",
              help="Maximize the mean activation, or the mean square (the original DeepDream's L2).")
@click.option("--octaves", type=int, default=4, callback=positive_int, help="Number of octaves (image scales).")
@click.option("--octave-scale", type=float, default=1.4, callback=positive_float,
              help="Size ratio between octaves (detail is carried up).")
@click.option("--step", type=float, default=None, callback=positive_float,
              help="Step size: mean pixel change per step, 0-255 units (same as --lr). [default: 0.75]")
@click.option("--optimizer", type=click.Choice(["normalized", "adam"]), default="normalized",
              help="normalized: DeepDream's gradient ascent step; adam: Adam.")
@click.option("--jitter", type=int, default=32, callback=non_negative, help="Random roll each step, px.")
@click.option("--tile", type=int, default=1024, callback=non_negative,
              help="Images larger than this are dreamed in tiles of this size (bounded memory); 0: never.")
@click.option("--tile-overlap", type=int, default=None, callback=non_negative,
              help="Extra context around each tile, px. [default: 8 x the layer's stride]")
@click.option("--guide", type=click.Path(path_type=Path), default=None,
              help="Dream toward the features of this image (controlling dreams).")
@click.option("--init", type=click.Choice(["image", "noise"]), default="image",
              help="noise: visualize the layer or channel from noise (INPUT then only sets the aspect).")
@click.option("--pooling", type=click.Choice(["max", "avg"]), default="max")
@dream_clip_options
def dream(input, layers, output, backbone, weights, device, seed, size, iterations, lr, precision, log_json,
          log_every, save_every, gif, max_pixels, overwrite, quiet, objective, octaves, octave_scale, step,
          optimizer, jitter, tile, tile_overlap, guide, init, pooling, **clip):
    """DeepDream: INPUT with what the network sees in it, amplified (octaves, jitter, tiles).

    INPUT may also be a clip (an animated GIF, WebP or PNG, or a folder of frames with --frames):
    OUT is then a .gif, .webp, .png (animated) or a folder of PNG frames, with the source's timing.
    A folder of still images writes one PNG per image into the folder OUT."""
    if input is not None:
        from .clip_cmd import content_kind, dream_many

        kind = content_kind(input, clip["as_frames"])
        if kind != "image":
            return dream_many(kind, {**locals(), **clip})
    from ..deepdream import dream as run_dream
    from ..errors import OptionError

    if input is None and init != "noise":
        raise OptionError("give an INPUT image (or --init noise to dream from noise)")
    if step is not None and lr is not None and step != lr:
        raise OptionError("--step and --lr are the same setting; give one of them")
    check_outputs(output, overwrite, log_json, gif, intermediate_paths(output, octaves, iterations, save_every))
    snap = snapshot_interval(save_every, gif, iterations)
    save_snapshot = Intermediates(output, save_every)

    with Progress(iterations * octaves, quiet, title="dreaming") as progress, sigterm_as_interrupt():
        def callback(event):
            if event.iteration == 1 and event.stage == 1 and event.stages != octaves:
                progress.set_total(iterations * event.stages)  # octaves too small for the backbone were dropped
            progress(event)
            save_snapshot(event)

        try:
            result = run_dream(
                str(input) if input is not None else None, list(layers) or None, backbone=backbone,
                weights=weights, device=device, seed=seed, size=size, objective=objective, octaves=octaves,
                octave_scale=octave_scale, iterations=iterations, optimizer=optimizer,
                lr=step if step is not None else lr, jitter=jitter, tile=tile, tile_overlap=tile_overlap,
                guide=str(guide) if guide is not None else None, init=init, pooling=pooling, precision=precision,
                callback=callback, log_every=log_every, snapshot_every=snap, max_pixels=max_pixels)
        except KeyboardInterrupt:
            raise click.ClickException("interrupted before the first iteration; nothing was written") from None
    finish(result, output, log_json, gif, quiet, what="dream")
