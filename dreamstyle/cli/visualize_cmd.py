"""dreamstyle channels BACKBONE LAYER -o channels.png (its old name: atlas)  and  dreamstyle activations
IMAGE --layer L -o sheet.png"""

from __future__ import annotations

import inspect
import shlex
from pathlib import Path

import click

from ..settings import ActivationsSettings, AtlasSettings
from ..stop import Reason, Stop, describe
from .group import main
from .options import given, output_options, settings_params, split
from .progress import Progress
from .research_cmd import CONTEXT
from .run import begin_lines, drawn_seed, sigterm_as_interrupt, writing

JSON_HELP = "Also write the values as JSON (each channel with its activation)."


def _files(output_help: str, required: bool = True) -> list[click.Option]:
    return [
        *output_options(output_help, only=("output", "recipe", "overwrite", "quiet"), required=required),
        click.Option(["--json", "json_path"], type=click.Path(path_type=Path), default=None, help=JSON_HELP),
    ]


def _check_outputs(params) -> None:
    from ..writers import check_output, suffixes

    if params["output"] is not None:
        check_output(params["output"], params["overwrite"], suffixes("image"))
    if params["json_path"] is not None:
        check_output(params["json_path"], params["overwrite"], None)


def _finish(params, sheet, data: dict, recipe: dict, stopped: Reason | None, what: str) -> None:
    from ..writers import save_image, write_json
    from .run import tell

    output, overwrite = params["output"], params["overwrite"]
    with writing(overwrite, "file") as outbox:
        if output is not None:
            save_image(sheet(), output, recipe if params["recipe"] != "none" else None, overwrite, outbox)
        if params["json_path"] is not None:
            write_json(params["json_path"], data, overwrite, outbox)
    written = [str(p) for p in (output, params["json_path"]) if p is not None]
    if stopped is Reason.INTERRUPTED:
        tell(describe(Stop(stopped, f"the {what} finished so far are in {output}")))
    if stopped in (Reason.DIVERGED, Reason.FAILED):
        why = "a loss became NaN or infinite" if stopped is Reason.DIVERGED else "a loss term failed"
        click.echo(f"dreamstyle: warning: {why}; those cells show their last good image", err=True)
    if written and not params["quiet"]:
        click.echo(f"wrote {' and '.join(written)}", err=True)


def channels_body(**params):
    """One visualization per channel of LAYER, from noise, in a labelled grid: each cell is the
    picture that maximizes that channel (fft parametrization and random transforms by default),
    captioned with its channel and the activation it reached. Channels are visualized in batches
    (--batch), so a grid costs little more than a few dreams. (Not lucid's Activation Atlas, a map
    of many images' activations; this command was called atlas before, a name that still works.)"""
    from ..jobs.atlas import atlas

    values, _ = split(AtlasSettings, params)
    settings = drawn_seed(AtlasSettings(**values))
    _check_outputs(params)
    batches = -(-len(settings.channels) // settings.batch)
    begin = begin_lines("channels", values.get("seed"), settings, params["quiet"])
    with (
        Progress(
            settings.iterations * batches,
            params["quiet"],
            title="channels",
            every_given=given("log_every"),
            begin=begin,
        ) as progress,
        sigterm_as_interrupt(),
    ):
        result = atlas(settings, callback=progress, recipe_paths="names" if params["recipe"] == "names" else "full")
    _finish(params, lambda: result.sheet(settings.columns), result.to_dict(), result.recipe, result.stopped, "channels")


def activations_body(**params):
    """Which channels of a layer IMAGE excites most: prints the top K with their mean activation and,
    with -o, writes a sheet of the image, each channel's activation map over it and (unless --cell 0)
    the channel's visualization from noise, for picking channels to dream on (dream --layer LAYER:C)."""
    from ..jobs.atlas import activations

    values, _ = split(ActivationsSettings, params)
    settings = drawn_seed(ActivationsSettings(**values))
    if params["output"] is None:  # the table only: no sheet, so no visualizations to make for it
        settings = settings.replace(cell=0)
    _check_outputs(params)
    steps = settings.iterations * -(-settings.top // settings.batch) if settings.cell else 1
    cells = (
        f"drawing each of the top {settings.top} channels from noise: {settings.top} cells of "
        f"{settings.cell} px, {settings.iterations} steps each (--cell 0: the maps only)"
    )
    begin = begin_lines("activations", values.get("seed"), settings, params["quiet"], cells)
    with (
        Progress(steps, params["quiet"], title="activations", every_given=given("log_every"), begin=begin) as progress,
        sigterm_as_interrupt(),
    ):
        result = activations(
            settings, callback=progress, recipe_paths="names" if params["recipe"] == "names" else "full"
        )
    _print_top(result, settings.image)
    _finish(params, result.sheet, result.to_dict(), result.recipe, result.stopped, "visualizations")


def _print_top(result, image) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{result.layer}: top {len(result.top)}")
    table.add_column("rank", justify="right")
    table.add_column("channel", justify="right")
    table.add_column("mean activation", justify="right")
    for rank, (c, v) in enumerate(result.top, start=1):
        table.add_row(str(rank), str(c), f"{v:.4g}")
    Console(width=max(100, Console().width)).print(table)
    best = result.top[0][0]
    name = shlex.quote(Path(image).name) if isinstance(image, (str, Path)) else "IMAGE"
    click.echo(f"dream on one: dreamstyle dream {name} --layer {result.layer}:{best} -o dream.png", err=True)


ATLAS_HELP = "The old name of 'dreamstyle channels', kept for a while: the same command and options.\n\n"


def _channels_command(name: str, help_text: str) -> click.Command:
    return click.Command(
        name,
        callback=channels_body,
        help=help_text,
        context_settings=CONTEXT,
        params=[
            *settings_params(AtlasSettings)[:2],
            *_files("Output picture (the grid): .png, .jpg, .webp or .tif."),
            *settings_params(AtlasSettings)[2:],
        ],
    )


main.add_command(_channels_command("channels", channels_body.__doc__))
main.add_command(_channels_command("atlas", ATLAS_HELP + inspect.cleandoc(channels_body.__doc__)))
main.add_command(
    click.Command(
        "activations",
        callback=activations_body,
        help=activations_body.__doc__,
        context_settings=CONTEXT,
        params=[
            *settings_params(ActivationsSettings)[:1],
            *_files(
                "Output picture (the sheet): .png, .jpg, .webp or .tif; without it, the table only.", required=False
            ),
            *settings_params(ActivationsSettings)[1:],
        ],
    )
)
