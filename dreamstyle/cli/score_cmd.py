"""``dreamstyle score PICTURE --content C --style S``: the judge (:mod:`dreamstyle.judge`) from the
command line, a table of distances and, with ``--json``, the same as JSON."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..settings import Settings, checked
from .group import main
from .options import _param

SHARED = ("backbone", "weights", "pooling", "device", "seed")  # the options every job has, declared there


def _shared_params() -> list[click.Parameter]:
    fields = {f.name: f for f in Settings.fields()}
    return [_param(fields[name]) for name in SHARED]


def score_body(picture, content, style, size, json_path, **shared):
    """How far PICTURE is from its content photo and its style paintings, judged on a network
    (--backbone; it need not be the one that made the picture): the content distance and two style
    distances (Gram matrices and sliced Wasserstein), each relative (0: the same features) and
    averaged over the judge's content or style layers. Lower is closer."""
    from ..judge import score

    fields = {f.name: f for f in Settings.fields()}
    values = {name: checked(fields[name], shared[name]) for name in SHARED}
    result = score(
        picture,
        content,
        list(style),
        size=size,
        backbone=values["backbone"],
        weights=values["weights"],
        pooling=values["pooling"],
        device=values["device"],
        seed=values["seed"] or 0,
    )
    rows = [
        ("content", result["content"], "content"),
        ("style, Gram", result["style_gram"], "style_gram"),
        ("style, sliced Wasserstein", result["style_swd"], "style_swd"),
    ]
    w, h = result["size"]
    click.echo(f"judged on {result['judge']} at {w}x{h} px (lower is closer)")
    for label, value, key in rows:
        if value is not None:
            layers = ", ".join(result["layers"][key])
            click.echo(f"  {label:<26} {value:10.4g}   ({layers})")
    if json_path is not None:
        Path(json_path).write_text(json.dumps(result, indent=1) + "\n")


score_cmd = click.Command(
    "score",
    callback=score_body,
    help=score_body.__doc__,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    params=[
        click.Argument(["picture"], type=click.Path(path_type=Path)),
        click.Option(["--content"], type=click.Path(path_type=Path), help="The content photo."),
        click.Option(
            ["--style"],
            type=click.Path(path_type=Path),
            multiple=True,
            help="A style painting (repeatable: their Gram matrices and features pooled).",
        ),
        click.Option(
            ["--size"],
            type=click.IntRange(16, 8192),
            default=None,
            help="Long side the picture is looked at, px [default: its own].",
        ),
        click.Option(
            ["--json", "json_path"],
            type=click.Path(path_type=Path),
            default=None,
            help="Also write the distances, per layer too, as JSON.",
        ),
        *_shared_params(),
    ],
)
main.add_command(score_cmd)
