"""dreamstyle sweep [transfer|dream|texture] INPUTS... --vary OPTION=V1,V2,... -o DIR"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import click

from ..settings import SweepOptions, apply_preset, settings_for, vary_specs
from ..stop import Reason, Stop, describe
from .group import main
from .options import _param, given, output_options, settings_params, split

SHEET, TABLE_JSON, TABLE_MD = "sweep.png", "sweep.json", "sweep.md"
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
KINDS = ("transfer", "dream", "texture")


class SweepGroup(click.Group):
    """``dreamstyle sweep ARGS`` is ``dreamstyle sweep transfer ARGS``: a job is named first, or it is a transfer."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["transfer", *args]
        return super().parse_args(ctx, args)


@click.group("sweep", cls=SweepGroup, context_settings=CONTEXT)
def sweep_group():
    """A grid over any options of a job: every combination of the --vary values is one cell, made
    with the same seed, locally or on Ray (--executor). Writes a contact sheet whose rows and columns
    are named by the values, sweep.json and sweep.md (time, peak memory and final losses per cell)
    and one PNG per cell with its recipe.

    dreamstyle sweep photo.jpg painting.jpg --vary style-weight=5e6,1.5e7,5e7 --vary backbone=vgg19,vgg16 -o sweep/

    The job is a transfer unless named first: dreamstyle sweep dream photo.jpg --vary step=0.5,1 -o d/"""


def sweep_body(kind: str, params: dict) -> None:
    from ..jobs.sweep import grid, parse_axes, resolved_seed
    from .research_cmd import _output_dir
    from .run import begin_lines

    cls = settings_for(kind)
    values, _ = split(cls, params)
    settings = resolved_seed(cls(**apply_preset(cls, values, given)))
    axes = parse_axes(cls, vary_specs(params["vary"], "--vary"))
    cells = grid(settings, axes, given)
    out = _output_dir(params["output"])
    skip = _check_outputs(out, settings, cells, params)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        from ..errors import OutputError

        raise OutputError(f"cannot create {out}: {exc.strerror or exc}") from None
    begin_lines(kind, values.get("seed"), settings, params["quiet"])()  # the checks are done: the seed, the hints
    from ..writers import Outbox

    outbox = Outbox(params["overwrite"] or params["resume"])
    result = _run(kind, settings, axes, cells, out, params, skip, outbox)
    _finish(result, out, params, outbox)


def _paths(params) -> str:
    return "names" if params["recipe"] == "names" else "full"


def _check_outputs(out: Path, settings, cells, params) -> list[int]:
    """The cells done before (``--resume``: their PNG carries their recipe); every other output is
    refused before any work if it exists (unless --overwrite)."""
    from ..errors import OutputError
    from ..replay import expected_recipe, made_with
    from ..writers import check_output

    skip = []
    overwrite, resume = params["overwrite"], params["resume"] and not params["overwrite"]
    for i, cell in enumerate(cells):
        path = out / f"{cell.stem}.png"
        if resume:
            same = made_with(path, *expected_recipe(settings.replace(**cell.changes), _paths(params)))
            if same:
                skip.append(i)
                continue
            if same is False:
                raise OutputError(f"{path} exists but was not made with these settings; pass --overwrite to replace it")
        if out.exists():
            check_output(path, overwrite, None)
    if out.exists() and not resume:
        for name in (SHEET, TABLE_JSON, TABLE_MD):
            check_output(out / name, overwrite, None)
    return skip


def _run(kind, settings, axes, cells, out: Path, params, skip, outbox):
    from ..jobs.sweep import sweep
    from ..writers import save_image, signals_deferred
    from .progress import FrameProgress
    from .run import sigterm_as_interrupt

    keep, overwrite = params["recipe"] != "none", params["overwrite"] or params["resume"]

    with (
        FrameProgress(len(cells), params["quiet"], "cells", done=len(skip), every_given=given("log_every")) as progress,
        sigterm_as_interrupt(),
    ):
        if settings.executor != "local":
            progress.start_clock()

        def on_row(index, row, worker=0):
            if row.ok:
                row.output = f"{row.variant.stem}.png"
                image = row.result.tensor[:1] if row.result.tensor is not None else row.result.image
                with signals_deferred() as received:  # each cell as it is done, through the outbox
                    save_image(image, out / row.output, row.result.recipe if keep else None, overwrite, outbox)
                if received:
                    raise KeyboardInterrupt
            progress.frame(SimpleNamespace(name=row.variant.label, losses=row.losses, worker=worker))

        def before_judge(rows):
            for i in skip:  # done before: the sheet shows them from their files (and the judge grades them)
                _done_before(rows[i], out)

        result = sweep(
            kind,
            settings,
            axes,
            callback=progress.step,
            on_row=on_row,
            recipe_paths=_paths(params),
            skip=skip,
            judge=params.get("judge"),
            given=given,
            before_judge=before_judge,
        )
    return result


def _done_before(row, out: Path) -> None:
    from PIL import Image

    from ..runner import Result
    from ..writers import read_recipe

    row.output = f"{row.variant.stem}.png"
    with Image.open(out / row.output) as img:
        row.result = Result(img.convert("RGB"), [], read_recipe(out / row.output) or {})


def _finish(result, out: Path, params, outbox) -> None:
    from ..writers import save_image, write_bytes, write_json
    from .run import tell, writing

    keep, overwrite = params["recipe"] != "none", params["overwrite"] or params["resume"]
    with writing(overwrite, "file", str(out), outbox):
        save_image(result.sheet(), out / SHEET, result.to_dict() if keep else None, overwrite, outbox)
        write_json(out / TABLE_JSON, result.to_dict(), overwrite, outbox)
        write_bytes(out / TABLE_MD, result.to_markdown().encode(), overwrite, outbox)
    failed = [r for r in result.rows if r.error and r.status not in ("skipped", "done before")]
    for row in failed:
        click.echo(f"dreamstyle: {row.variant.label}: {row.status}: {row.error}", err=True)
    if not params["quiet"]:
        click.echo(
            f"wrote {out / SHEET}, {out / TABLE_MD}, {out / TABLE_JSON} and "
            f"{sum(1 for r in result.rows if r.output)} cells",
            err=True,
        )
    if result.stopped is Reason.INTERRUPTED:
        tell(describe(Stop(result.stopped, f"the cells that finished are in {out} (--resume goes on)")))
    if not any(r.ok for r in result.rows):
        raise click.ClickException("every cell failed; see sweep.md for why")


def _sweep_command(kind: str) -> click.Command:
    cls = settings_for(kind)
    params = settings_params(cls, kind="grid")
    vary = _param(next(f for f in dataclasses.fields(SweepOptions) if f.name == "vary"))
    judge = [_param(f) for f in dataclasses.fields(SweepOptions) if f.name == "judge" and kind != "dream"]
    files = output_options(
        f"Output folder (created if missing): {SHEET}, {TABLE_JSON}, {TABLE_MD}, one PNG per cell.",
        only=("output", "resume", "recipe", "overwrite", "quiet"),
    )
    for option in files:
        if option.name == "resume":
            option.help = "Skip the cells whose PNG is already in the folder with a recipe of these settings."

    def body(**values):
        sweep_body(kind, values)

    return click.Command(
        kind,
        callback=body,
        help=f"A sweep of {kind} (see: dreamstyle sweep -h).",
        context_settings=CONTEXT,
        params=[
            *[p for p in params if isinstance(p, click.Argument)],
            vary,
            *judge,
            *files,
            *[p for p in params if not isinstance(p, click.Argument)],
        ],
    )


for _kind in KINDS:
    sweep_group.add_command(_sweep_command(_kind))
main.add_command(sweep_group)
