"""dreamstyle transfer CONTENT STYLE [STYLE ...] -o OUT"""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import OptionError
from . import host, main
from .clip_cmd import clip_options
from .common import (Intermediates, Progress, check_outputs, engine_options, finish, intermediate_paths,
                     sigterm_as_interrupt, snapshot_interval)


def float_list(ctx, param, value):
    if value is None:
        return None
    try:
        return [float(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma list of numbers") from None


@main.command(context_settings={"show_default": True})
@click.argument("content", type=click.Path(path_type=Path))
@click.argument("styles", nargs=-1, required=True, type=click.Path(path_type=Path))
@engine_options(default_iterations=500)
@click.option("--style-scale", type=float, default=1.0, help="Style image size relative to the output.")
@click.option("--style-blend", callback=float_list, default=None, help="Weights of the style images: w1,w2,...")
@click.option("--content-layers", default=None, help="Comma list of layers (LAYER or LAYER=WEIGHT).")
@click.option("--style-layers", default=None, help="Comma list of layers (LAYER or LAYER=WEIGHT).")
@click.option("--content-weight", type=float, default=5.0)
@click.option("--style-weight", type=float, default=100.0)
@click.option("--tv-weight", type=float, default=3e4, help="Total variation: W x mean |neighbour difference| (0-255); smooths speckle, size-independent.")
@click.option("--loss", "losses", multiple=True, metavar="NAME[=WEIGHT][:KEY=VALUE...]",
              help="Add a registered loss term (e.g. from a plugin), with its options after colons: "
                   "histogram=10:layers=relu1_1,relu3_1; repeatable.")
@click.option("--pooling", type=click.Choice(["max", "avg"]), default="max")
@click.option("--init", default="content", help="content, noise, style, or an image FILE.")
@click.option("--optimizer", type=click.Choice(["lbfgs", "adam"]), default="lbfgs")
@click.option("--scales", default=None, help="Coarse-to-fine: a count N, or sizes like 256,512.")
@click.option("--compile", "compile_net", is_flag=True,
              help="torch.compile the feature network (slower start, faster steps; best on CUDA).")
@click.option("--preserve-color", type=click.Choice(["luminance", "histogram"]), default=None,
              help="Keep the content's colours.")
@click.option("--dream-layer", "dream_layers", multiple=True, metavar="SPEC",
              help="The hybrid: also maximize this layer (LAYER, LAYER:C, LAYER:C1,C2, LAYER:C@Y,X, =WEIGHT), "
                   "or 'auto' for one neither content nor style uses. Repeatable.")
@click.option("--dream-weight", type=float, default=None,
              help="Weight of the dream term (on vgg19's scale). [default: 1e5]")
@click.option("--allow-overlap", is_flag=True, help="Let a --dream-layer be a content or style layer too.")
@clip_options
def transfer(content, styles, output, backbone, weights, device, seed, size, iterations, lr, precision,
             log_json, log_every, save_every, gif, max_pixels, overwrite, quiet, style_scale, style_blend,
             content_layers, style_layers, content_weight, style_weight, tv_weight, losses, pooling, init,
             optimizer, scales, compile_net, preserve_color, dream_layers, dream_weight, allow_overlap, **clip):
    """Style transfer: CONTENT painted in the style of STYLE (several styles blend).

    CONTENT may also be a clip (an animated GIF, WebP or PNG, or a folder of frames with --frames):
    OUT is then a .gif, .webp, .png (animated) or a folder of PNG frames, with the source's timing.
    A folder of still images writes one PNG per image into the folder OUT."""
    from .clip_cmd import content_kind, transfer_many

    host()  # plugins that failed to load: one warning line each, before any work
    kind = content_kind(content, clip["as_frames"])
    if kind != "image":
        return transfer_many(kind, {**locals(), **clip})

    from ..style import scale_sizes
    from ..style import transfer as run_transfer

    sizes = scale_sizes(size, scales)
    if len(sizes) > 1 and "," in str(scales) and max(sizes) != size and \
            click.get_current_context().get_parameter_source("size") != click.core.ParameterSource.DEFAULT:
        raise OptionError(f"--scales {scales} ends at {max(sizes)} px but --size is {size}; "
                          "give one of them, or make them agree")
    check_outputs(output, overwrite, log_json, gif, intermediate_paths(output, len(sizes), iterations, save_every))
    if compile_net:  # torch's compiler logs a warning about CUDA_HOME on CPU-only machines: not the user's concern
        import logging

        logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    n_stages = len(sizes)
    snap = snapshot_interval(save_every, gif, iterations)
    save_snapshot = Intermediates(output, save_every)

    with Progress(iterations * n_stages, quiet) as progress, sigterm_as_interrupt():
        def callback(event):
            progress(event)
            save_snapshot(event)

        try:
            result = run_transfer(
                str(content), [str(s) for s in styles], backbone=backbone, weights=weights, device=device,
                seed=seed, size=size, style_scale=style_scale, style_blend=style_blend,
                content_layers=content_layers, style_layers=style_layers, content_weight=content_weight,
                style_weight=style_weight, tv_weight=tv_weight, losses=list(losses), pooling=pooling, init=init,
                optimizer=optimizer, iterations=iterations, lr=lr, scales=scales, preserve_color=preserve_color,
                precision=precision, compile=compile_net, callback=callback, log_every=log_every, snapshot_every=snap,
                max_pixels=max_pixels, dream_layers=list(dream_layers) or None, dream_weight=dream_weight,
                allow_overlap=allow_overlap,
                announce=None if quiet else lambda line: click.echo(f"dreamstyle: {line}", err=True))
        except KeyboardInterrupt:
            raise click.ClickException("interrupted before the first iteration; nothing was written") from None
    finish(result, output, log_json, gif, quiet)
