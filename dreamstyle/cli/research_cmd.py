"""dreamstyle compare CONTENT STYLE... --backbones a,b -o DIR  and  dreamstyle reconstruct IMAGE -o OUT"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from . import complete_backbone, main
from .common import Progress, positive_float, positive_int, sigterm_as_interrupt
from .transfer_cmd import float_list
from ..errors import OutputError

SHEET, TABLE_JSON, TABLE_MD, GIF = "compare.png", "compare.json", "compare.md", "compare.gif"


def _write(path: Path, write) -> None:
    try:
        write()
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None


def _output_dir(path: Path) -> Path:
    if path.exists() and not path.is_dir():
        raise OutputError(f"-o {path}: it is a file; give a folder for the comparison")
    if not path.exists() and path.suffix.lower() in (".png", ".jpg", ".jpeg", ".gif", ".webp", ".json", ".md"):
        raise OutputError(f"-o {path}: compare writes several files; give a folder (e.g. -o {path.with_suffix('')})")
    parent = path.parent if str(path.parent) else Path(".")
    if not path.exists() and not parent.is_dir():
        raise OutputError(f"cannot create {path}: folder {parent} does not exist")
    return path


@main.command(context_settings={"show_default": True})
@click.argument("content", type=click.Path(path_type=Path))
@click.argument("styles", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output", "output", required=True, type=click.Path(path_type=Path),
              help=f"Output folder (created if missing): {SHEET}, {TABLE_JSON}, {TABLE_MD}, one PNG per backbone.")
@click.option("--backbones", required=True, shell_complete=complete_backbone,
              help="Comma list; NAME:avg, NAME:random or NAME:weights=FILE set one backbone's pooling or weights "
                   "(e.g. vgg19,vgg19:avg,alexnet:random).")
@click.option("--weights", default=None, help="Weights for every backbone: 'random', a FILE, or omit for pretrained.")
@click.option("--pooling", type=click.Choice(["max", "avg"]), default="max", help="Pooling for every backbone.")
@click.option("--device", default="auto", help="auto, cpu, cuda or cuda:N.")
@click.option("--seed", type=int, default=None, help="Random seed, the same for every backbone.")
@click.option("--size", type=int, default=384, callback=positive_int, help="Long side of the outputs, px.")
@click.option("--iterations", type=int, default=300, callback=positive_int, help="Optimizer steps (per scale).")
@click.option("--lr", type=float, default=None, callback=positive_float, help="Learning rate (optimizer's default).")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16", "fp16"]), default="auto")
@click.option("--style-scale", type=float, default=1.0, help="Style image size relative to the output.")
@click.option("--style-blend", callback=float_list, default=None, help="Weights of the style images: w1,w2,...")
@click.option("--content-layers", default=None, help="Layers for every backbone (default: each backbone's own).")
@click.option("--style-layers", default=None, help="Layers for every backbone (default: each backbone's own).")
@click.option("--content-weight", type=float, default=5.0)
@click.option("--style-weight", type=float, default=100.0)
@click.option("--tv-weight", type=float, default=3e4, help="Total variation: W x mean |neighbour difference| (0-255); smooths speckle, size-independent.")
@click.option("--loss", "losses", multiple=True, metavar="NAME[=WEIGHT][:KEY=VALUE...]", help="Add a registered loss term, options after colons (NAME=W:KEY=VALUE); repeatable.")
@click.option("--init", default="content", help="content, noise, style, or an image FILE.")
@click.option("--optimizer", type=click.Choice(["lbfgs", "adam"]), default="lbfgs")
@click.option("--scales", default=None, help="Coarse-to-fine: a count N, or sizes like 256,512.")
@click.option("--preserve-color", type=click.Choice(["luminance", "histogram"]), default=None)
@click.option("--gif", is_flag=True, help=f"Also write {GIF}: every backbone's progress, side by side.")
@click.option("--columns", type=int, default=None, callback=positive_int,
              help="Panels per row of the contact sheet (default: one row up to 6 panels).")
@click.option("--max-pixels", type=int, default=None, callback=positive_int,
              help="Refuse input images with more pixels than this (default 64M).")
@click.option("--overwrite", is_flag=True, help="Replace existing files in the output folder.")
@click.option("-q", "--quiet", is_flag=True, help="No progress display (the table is still printed).")
def compare(content, styles, output, backbones, weights, pooling, device, seed, size, iterations, lr, precision,
            style_scale, style_blend, content_layers, style_layers, content_weight, style_weight, tv_weight, losses,
            init, optimizer, scales, preserve_color, gif, columns, max_pixels, overwrite, quiet):
    """Run the same style transfer on several backbones; write a labelled contact sheet and a table
    (ms per iteration, total time, peak memory, final losses) as JSON and Markdown.

    A backbone that fails (unknown name, missing weights, an input too small for it) is reported in
    its row; the others still run."""
    from ..images import check_output, save_gif, save_png
    from ..research import compare as run_compare, parse_variants
    from ..style import scale_sizes

    variants = parse_variants(backbones, weights, pooling)
    out = _output_dir(output)
    for v in variants:
        if f"{v.slug}.png" in (SHEET, GIF):
            v.stem = f"{v.slug}-backbone"
    names = [SHEET, TABLE_JSON, TABLE_MD] + [f"{v.slug}.png" for v in variants] + ([GIF] if gif else [])
    if out.exists():
        for name in names:
            check_output(out / name, overwrite, ())
    n_stages = len(scale_sizes(size, scales))
    snap = max(1, iterations // 30) if gif else 0
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create {out}: {exc.strerror or exc}") from None
    total = iterations * n_stages * len(variants)

    with Progress(total, quiet, title="compare") as progress, sigterm_as_interrupt():
        def on_start(row, index, count):
            progress.note(f"{index + 1}/{count} {row.variant.label}")
            progress.done = iterations * n_stages * index

        comp = run_compare(
            str(content), [str(s) for s in styles], variants, device=device, seed=seed, size=size,
            iterations=iterations, scales=scales, callback=progress, on_start=on_start, snapshot_every=snap,
            max_pixels=max_pixels, lr=lr, precision=precision, style_scale=style_scale, style_blend=style_blend,
            content_layers=content_layers, style_layers=style_layers, content_weight=content_weight,
            style_weight=style_weight, tv_weight=tv_weight, losses=list(losses), init=init, optimizer=optimizer,
            preserve_color=preserve_color)

    from ..images import _atomic

    for row in comp.rows:
        if row.ok:
            row.output = f"{row.variant.slug}.png"
            _write(out / row.output, lambda: save_png(row.result.image, out / row.output, row.result.recipe))
    sheet = comp.sheet(columns)
    _write(out / SHEET, lambda: save_png(sheet, out / SHEET, comp.to_dict()))
    _write(out / TABLE_JSON, lambda: _atomic(out / TABLE_JSON, lambda fh: fh.write(
        (json.dumps(comp.to_dict(), indent=2) + "\n").encode())))
    _write(out / TABLE_MD, lambda: _atomic(out / TABLE_MD, lambda fh: fh.write(comp.to_markdown().encode())))
    if gif:
        frames = comp.gif_frames()
        if frames:
            _write(out / GIF, lambda: save_gif(frames, out / GIF, duration_ms=[80] * (len(frames) - 1) + [1500]))

    print_table(comp)
    if not quiet:
        click.echo(f"wrote {out / SHEET}, {out / TABLE_MD}, {out / TABLE_JSON}", err=True)
    if comp.stopped == "interrupted":
        click.echo(f"dreamstyle: interrupted; what finished is in {out}", err=True)
        sys.exit(130)
    if not any(row.ok for row in comp.rows):
        raise click.ClickException("every backbone failed; see the table for why")


def print_table(comp) -> None:
    from rich.console import Console
    from rich.table import Table

    from ..research import MEMORY_NOTE, _fmt, _fmt_bytes

    terms = comp.loss_names
    table = Table(title=f"dreamstyle compare · {comp.device}", caption=f"peak memory: {MEMORY_NOTE[comp.memory_kind]}")
    table.add_column("backbone")
    table.add_column("status")
    for name in ["ms/it", "total s", "peak mem"] + [f"{t} loss" for t in terms]:
        table.add_column(name, justify="right")
    table.add_column("output")
    for row in comp.rows:
        table.add_row(row.variant.label, row.status, _fmt(row.ms_per_iteration, "{:.1f}"),
                      _fmt(row.total_seconds, "{:.1f}"), _fmt_bytes(row.memory_bytes),
                      *[_fmt(row.losses.get(t), "{:.4g}") for t in terms], row.output or "")
    console = Console(width=max(120, Console().width))
    console.print(table)
    for row in comp.rows:
        if row.error:
            console.print(f"[bold]{row.variant.label}[/bold] {row.status}: {row.error}", highlight=False)


@main.command(context_settings={"show_default": True})
@click.argument("image", type=click.Path(path_type=Path))
@click.option("-o", "--output", "output", required=True, type=click.Path(path_type=Path), help="Output PNG (the grid).")
@click.option("--style", "style", is_flag=True,
              help="Reconstruct the style (Gram loss on the first layer, the first two, ...) instead of the content.")
@click.option("--layers", default=None,
              help="Comma list of layers (default: the backbone's style layers, a spread of depths).")
@click.option("--backbone", default="vgg19", shell_complete=complete_backbone,
              help="Backbone name (see: dreamstyle backbones).")
@click.option("--weights", default=None, help="'random', a state-dict FILE, or omit for pretrained weights.")
@click.option("--pooling", type=click.Choice(["max", "avg"]), default="max",
              help="Gatys et al. used avg for their reconstructions.")
@click.option("--device", default="auto", help="auto, cpu, cuda or cuda:N.")
@click.option("--seed", type=int, default=None, help="Random seed: every panel starts from the same noise.")
@click.option("--size", type=int, default=256, callback=positive_int, help="Long side of each panel, px.")
@click.option("--iterations", type=int, default=200, callback=positive_int, help="Optimizer steps per panel.")
@click.option("--optimizer", type=click.Choice(["lbfgs", "adam"]), default="lbfgs")
@click.option("--lr", type=float, default=None, callback=positive_float, help="Learning rate (optimizer's default).")
@click.option("--weight", type=float, default=None, callback=positive_float,
              help="Loss weight (default: transfer's content weight 5, or style weight 100).")
@click.option("--tv-weight", type=float, default=0.0, help="Total-variation smoothing (0: none, as in the paper).")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16", "fp16"]), default="auto")
@click.option("--columns", type=int, default=None, callback=positive_int,
              help="Panels per row (default: one row up to 6 panels).")
@click.option("--max-pixels", type=int, default=None, callback=positive_int,
              help="Refuse input images with more pixels than this (default 64M).")
@click.option("--overwrite", is_flag=True, help="Replace an existing output file.")
@click.option("-q", "--quiet", is_flag=True, help="No progress display.")
def reconstruct(image, output, style, layers, backbone, weights, pooling, device, seed, size, iterations, optimizer,
                lr, weight, tv_weight, precision, columns, max_pixels, overwrite, quiet):
    """Reconstruct IMAGE from noise to see what layers keep: the content loss at each single layer
    (one panel per layer), or with --style the Gram loss on growing sets of layers. Writes a
    labelled grid, the original first."""
    from ..images import check_output, save_png
    from ..research import reconstruct as run_reconstruct
    from ..terms import parse_layer_weights

    if tv_weight < 0:
        raise click.BadParameter(f"must be zero or more, not {tv_weight}", param_hint="--tv-weight")
    check_output(output, overwrite, (".png",))
    from ..plugins import get_backbone

    n = len(parse_layer_weights(layers)) if layers else len(get_backbone(backbone).style_layers)
    with Progress(iterations * max(1, n), quiet, title="reconstruct") as progress, sigterm_as_interrupt():
        try:
            rec = run_reconstruct(str(image), layers, style=style, backbone=backbone, weights=weights,
                                  pooling=pooling, device=device, seed=seed, size=size, iterations=iterations,
                                  optimizer=optimizer, lr=lr, weight=weight, tv_weight=tv_weight,
                                  precision=precision, callback=progress, max_pixels=max_pixels)
        except KeyboardInterrupt:
            raise click.ClickException("interrupted before the first iteration; nothing was written") from None
    sheet = rec.sheet(columns)
    _write(output, lambda: save_png(sheet, output, rec.recipe))
    if rec.stopped == "interrupted":
        click.echo(f"dreamstyle: interrupted; the panels finished so far are in {output}", err=True)
        sys.exit(130)
    if rec.stopped == "diverged":
        click.echo("dreamstyle: warning: a panel's loss became NaN or infinite; it shows its last good image",
                   err=True)
    if not quiet:
        click.echo(f"wrote {output} ({len(rec.panels)} panels)", err=True)
