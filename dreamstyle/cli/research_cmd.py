"""dreamstyle compare CONTENT STYLE... --backbones a,b -o DIR  and  dreamstyle reconstruct IMAGE -o OUT"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from ..errors import OutputError
from ..plugins import get_backbone
from ..settings import ReconstructSettings, SweepOptions, TransferSettings, apply_preset
from ..stop import Reason, Stop, describe
from .group import main
from .options import _param, complete_backbones, given, output_options, settings_params, split
from .progress import Progress
from .run import Snapshots, begin_lines, drawn_seed, sigterm_as_interrupt, tell, writing
from .tables import entries, show, table

SHEET, TABLE_JSON, TABLE_MD = "compare.png", "compare.json", "compare.md"
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
FILE_LIKE = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".tif", ".tiff", ".json", ".md")  # not a folder for compare


def _output_dir(path: Path) -> Path:
    if path.exists() and not path.is_dir():
        raise OutputError(f"-o {path}: it is a file; give a folder for the comparison")
    if not path.exists() and path.suffix.lower() in FILE_LIKE:
        raise OutputError(f"-o {path}: compare writes several files; give a folder (e.g. -o {path.with_suffix('')})")
    parent = path.parent if str(path.parent) else Path(".")
    if not path.exists() and not parent.is_dir():
        raise OutputError(f"cannot create {path}: folder {parent} does not exist")
    return path


def compare_body(**params):
    """Run the same style transfer on several backbones; write a labelled contact sheet and a table
    (ms per iteration, total time, peak memory, final losses) as JSON and Markdown.

    Every transfer option applies to every backbone (layers default to each backbone's own). A
    backbone that fails (unknown name, missing weights, an input too small for it) is reported in
    its row; the others still run."""
    from ..jobs.compare import parse_variants

    values, _ = split(TransferSettings, params)
    settings = drawn_seed(TransferSettings(**apply_preset(TransferSettings, values, given)))
    if settings.executor != "local" and params["save_every"]:
        raise click.UsageError(
            "--save-every writes snapshots as a backbone runs, in this process: not with "
            f"--executor {settings.executor}"
        )
    variants = parse_variants(params["backbones"], settings.weights, settings.pooling)
    out = _compare_folder(params, variants)
    comp = _run_compare(settings, variants, out, params, values.get("seed"))
    gif = _write_compare(comp, out, params)
    print_table(comp)
    if not params["quiet"]:
        click.echo(f"wrote {out / SHEET}, {out / TABLE_MD}, {out / TABLE_JSON}{f' and {gif}' if gif else ''}", err=True)
    if comp.stopped is Reason.INTERRUPTED:
        tell(describe(Stop(comp.stopped, f"what finished is in {out}")))
    if not any(row.ok for row in comp.rows):
        raise click.ClickException("every backbone failed; see the table for why")


def _compare_folder(params, variants) -> Path:
    """The output folder, its files refused before any work if they exist (unless --overwrite)."""
    from ..writers import check_output

    out, overwrite = _output_dir(params["output"]), params["overwrite"]
    for v in variants:
        if f"{v.slug}.png" == SHEET:
            v.stem = f"{v.slug}-backbone"
    if out.exists():
        for name in [SHEET, TABLE_JSON, TABLE_MD] + [f"{v.slug}.png" for v in variants]:
            check_output(out / name, overwrite, None)
    for extra in (params["gif"], params["log_json"]):
        if extra is not None:
            check_output(extra, overwrite, None)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create {out}: {exc.strerror or exc}") from None
    return out


def _run_compare(settings, variants, out: Path, params, given_seed=None):
    from ..jobs.compare import compare

    every = params["save_every"] or (max(1, settings.iterations // 30) if params["gif"] else 0)
    scales = settings.scales
    per_row = settings.iterations * (len(scales) if isinstance(scales, tuple) else (scales or 1))
    snapshots = {}
    begin_lines("transfer", given_seed, settings, params["quiet"])()  # the checks are done: the seed, the hints
    with (
        Progress(per_row * len(variants), params["quiet"], title="compare", every_given=given("log_every")) as progress,
        sigterm_as_interrupt(),
    ):

        def on_start(row, index, count):
            progress.note(f"{index + 1}/{count} {row.variant.label}")
            progress.done = per_row * index
            if params["save_every"]:
                snapshots["now"] = Snapshots(
                    out / f"{row.variant.slug}.png", params["save_every"], [], params["overwrite"]
                )

        def callback(event):
            progress(event)
            if "now" in snapshots:
                snapshots["now"].count = event.stages
                snapshots["now"](event)

        def on_row(index, row, worker):  # rows made elsewhere (--executor ray) send no steps: a line each
            if settings.executor != "local":
                progress.note(f"{row.variant.label}: {row.status} (worker {worker})")

        return compare(
            settings,
            variants,
            callback=callback,
            on_start=on_start,
            snapshot_every=every,
            recipe_paths="names" if params["recipe"] == "names" else "full",
            on_row=on_row,
            judge=params["judge"],
        )


def _write_compare(comp, out: Path, params) -> Path | None:
    """Every file of a comparison; where its --gif went (None: none asked, or nothing to show)."""
    from ..writers import save_gif_frames, save_image, write_bytes, write_json

    keep, overwrite = params["recipe"] != "none", params["overwrite"]
    frames = comp.gif_frames() if params["gif"] is not None else []
    gif = params["gif"] if frames else None
    with writing(overwrite, "file", str(out)) as outbox:
        for row in comp.rows:
            if row.ok:
                row.output = f"{row.variant.slug}.png"
                save_image(row.result.image, out / row.output, row.result.recipe if keep else None, overwrite, outbox)
        save_image(comp.sheet(params["columns"]), out / SHEET, comp.to_dict() if keep else None, overwrite, outbox)
        write_json(out / TABLE_JSON, comp.to_dict(), overwrite, outbox)
        write_bytes(out / TABLE_MD, comp.to_markdown().encode(), overwrite, outbox)
        if gif is not None:
            save_gif_frames(frames, gif, overwrite, outbox=outbox)
        if params["log_json"] is not None:
            write_json(
                params["log_json"],
                [{"backbone": r.variant.label, "history": r.result.history if r.ok else []} for r in comp.rows],
                overwrite,
                outbox,
            )
    return gif


def print_table(comp) -> None:
    from ..jobs.sweep import fmt, fmt_bytes
    from ..memory import MEMORY_NOTE

    rows = [
        (
            row.variant.label,
            row.status,
            fmt(row.ms_per_iteration, "{:.1f}"),
            fmt(row.total_seconds, "{:.1f}"),
            fmt_bytes(row.memory_bytes),
        )
        for row in comp.rows
    ]
    show(
        table(
            ["backbone", "status", "ms/it", "total s", "peak mem"],
            rows,
            title=f"dreamstyle compare · {comp.device}",
            right=["ms/it", "total s", "peak mem"],
        )
    )
    entries(
        [
            (
                f"{row.variant.label}: " + (row.output or row.status),  # each backbone's picture, losses or error
                [
                    row.error
                    or "losses: "
                    + ", ".join(
                        f"{t} {fmt(row.losses.get(t), '{:.4g}')}"
                        for t in comp.loss_names
                        if row.losses.get(t) is not None
                    )
                ]
                + judged(comp, row),
            )
            for row in comp.rows
        ]
    )
    entries(
        [
            (
                "",
                [f"peak memory: {MEMORY_NOTE[comp.memory_kind]}"]
                + (
                    [
                        f"judge: distances on {comp.judge['backbone']} ({comp.judge['weights']} weights) from the "
                        "photo and the painting (Gram matrices, sliced Wasserstein); lower is closer"
                    ]
                    if comp.judge
                    else []
                ),
            )
        ],
        indent=0,
    )


def judged(comp, row) -> list[str]:
    """A backbone's line of judge distances (none where it was not graded)."""
    from ..jobs.sweep import JUDGE_COLUMNS, fmt

    if not comp.judge or not row.judge:
        return []
    if "error" in row.judge:
        return [f"judge: {row.judge['error']}"]
    names = {"content": "content", "style_gram": "style Gram", "style_swd": "style sliced W."}
    return [
        "judge: "
        + ", ".join(
            f"{names[key]} {fmt(row.judge.get(key), '{:.4g}')}"
            for key, _ in JUDGE_COLUMNS
            if row.judge.get(key) is not None
        )
    ]


def reconstruct_body(**params):
    """Reconstruct IMAGE from noise to see what layers keep: the content loss at each single layer
    (one panel per layer), or with --style the Gram loss on growing sets of layers. Writes a
    labelled grid, the original first."""
    from ..jobs.reconstruct import reconstruct
    from ..writers import check_output, save_image, suffixes

    values, _ = split(ReconstructSettings, params)
    settings = drawn_seed(ReconstructSettings(**values))
    output = params["output"]
    check_output(output, params["overwrite"], suffixes("image"))

    n = len(settings.layers) if settings.layers else len(get_backbone(settings.backbone).style_layers)
    with (
        Progress(
            settings.iterations * max(1, n),
            params["quiet"],
            title="reconstruct",
            every_given=given("log_every"),
            begin=begin_lines("reconstruct", values.get("seed"), settings, params["quiet"]),
        ) as progress,
        sigterm_as_interrupt(),
    ):
        rec = reconstruct(settings, callback=progress, recipe_paths="names" if params["recipe"] == "names" else "full")
    sheet = rec.sheet(settings.columns)
    with writing(params["overwrite"], "grid") as outbox:
        save_image(sheet, output, rec.recipe if params["recipe"] != "none" else None, params["overwrite"], outbox)
    if rec.stopped is Reason.INTERRUPTED:
        tell(describe(Stop(rec.stopped, f"the panels finished so far are in {output}")))
    if rec.stopped in (Reason.DIVERGED, Reason.FAILED):
        why = (
            "a panel's loss became NaN or infinite"
            if rec.stopped is Reason.DIVERGED
            else "a loss term failed in a panel"
        )
        click.echo(f"dreamstyle: warning: {why}; it shows its last good image", err=True)
    if not params["quiet"]:
        click.echo(f"wrote {output} ({len(rec.panels)} panels)", err=True)


COMPARE_HELP = {
    "gif": "Also write every backbone's progress side by side, as a GIF or WebP.",
    "log_json": "Write every backbone's loss history as JSON.",
    "save_every": "Also write each backbone's intermediate image every N iterations.",
}


def _files(output_help: str, gif: bool) -> list[click.Option]:
    names = ("output", "recipe", "overwrite", "quiet") + (tuple(COMPARE_HELP) if gif else ())
    options = output_options(output_help, only=names)
    for option in options:
        option.help = COMPARE_HELP.get(option.name, option.help)
    return options


_compare_params = [p for p in settings_params(TransferSettings, kind="grid")]
main.add_command(
    click.Command(
        "compare",
        callback=compare_body,
        help=compare_body.__doc__,
        context_settings=CONTEXT,
        params=[
            *[p for p in _compare_params if isinstance(p, click.Argument)],
            *_files(
                f"Output folder (created if missing): {SHEET}, {TABLE_JSON}, {TABLE_MD}, one PNG per backbone.", True
            ),
            click.Option(
                ["--backbones"],
                required=True,
                shell_complete=complete_backbones,
                help="Comma list; NAME:avg, NAME:random or NAME:weights=FILE set one backbone's pooling or "
                "weights (e.g. vgg19,vgg19:avg,alexnet:random); your own network as FILE, file:FILE or "
                "MODULE:CALLABLE:weights=FILE.",
            ),
            click.Option(
                ["--columns"],
                type=int,
                default=None,
                help="Panels per row of the contact sheet (default: one row up to 6 panels).",
            ),
            _param(next(f for f in dataclasses.fields(SweepOptions) if f.name == "judge")),
            *[p for p in _compare_params if not isinstance(p, click.Argument) and p.name != "backbone"],
        ],
    )
)
main.add_command(
    click.Command(
        "reconstruct",
        callback=reconstruct_body,
        help=reconstruct_body.__doc__,
        context_settings=CONTEXT,
        params=[
            *settings_params(ReconstructSettings)[:1],
            *_files("Output picture (the grid): .png, .jpg, .webp or .tif.", False),
            *settings_params(ReconstructSettings)[1:],
        ],
    )
)
