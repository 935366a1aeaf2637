"""Click options generated from the settings: one declaration per option (``dreamstyle.settings``).

:func:`settings_params` turns each field of a settings class into a click option (or argument) with
its flag, type, default and help; :data:`OUTPUT_OPTIONS` are the options about files written, which
are not settings (they are not in the recipe). The command body gets everything as keyword
arguments; :func:`split` takes them apart again.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import click
from click.core import ParameterSource

from ..applies import CLIPS, EVERYWHERE, AppliesTo, only
from ..settings import Settings, describe_default, flag_of

RECIPE_MODES = ("full", "names", "none")


def _complete(kind: str):
    def complete(ctx, param, incomplete):
        try:
            from ..plugins import get_host

            if kind == "backbone":
                names = get_host().backbones.names()
            else:
                names = get_host().backbones.get(ctx.params.get("backbone") or "vgg19").layer_map.names
        except Exception:  # noqa: BLE001 - completion never fails loudly
            return []
        return [n for n in names if n.startswith(incomplete)]

    return complete


def _param(f) -> click.Parameter:
    spec = f.metadata["spec"]
    if spec.argument:
        return click.Argument(
            [f.name],
            nargs=-1 if spec.argument == "many" else 1,
            required=False,
            type=str if spec.type is str else click.Path(path_type=Path),
            metavar=(spec.metavar or f.name.upper()) + ("..." if spec.argument == "many" else ""),
            shell_complete=_complete(spec.complete) if spec.complete else None,
        )
    default_text = describe_default(f)
    help_text = spec.help + (f" [default: {default_text}]" if default_text and spec.type != "flag" else "")
    if spec.applies_to.only_stills:
        help_text += " (stills only)"
    kwargs = dict(help=help_text, metavar=spec.metavar, show_default=False)
    if spec.complete:
        kwargs["shell_complete"] = _complete(spec.complete)
    if spec.type == "flag":
        return click.Option([flag_of(f), f.name], is_flag=True, default=bool(f.default), **kwargs)
    if isinstance(spec.type, tuple):
        kwargs["type"] = click.Choice(spec.type)
    elif spec.type is not None:
        kwargs["type"] = spec.type
    elif f.default is not None:
        kwargs["type"] = type(f.default)
    if spec.multiple:
        return click.Option([flag_of(f), f.name], multiple=True, **kwargs)
    default = f.default if f.default not in ((),) else None
    if isinstance(default, tuple):  # shown and given as text (WxH)
        default = "x".join(map(str, default))
        kwargs["type"] = str
    return click.Option([flag_of(f), f.name], default=default, **kwargs)


def settings_params(cls: type[Settings], kind: str | None = None) -> list[click.Parameter]:
    """Arguments first, then the job's own options, those every job has, those of clips and folders,
    and where the items run; with ``kind`` (an input kind, :mod:`dreamstyle.applies`), only the
    options that apply to it."""
    fields = sorted(
        (f for f in cls.fields() if f.metadata["spec"].cli and (kind is None or kind in f.metadata["spec"].applies_to)),
        key=lambda f: _rank(cls, f),
    )
    args = [_param(f) for f in fields if f.metadata["spec"].argument]
    return args + [_param(f) for f in fields if not f.metadata["spec"].argument]


def _rank(cls: type[Settings], f) -> int:
    kinds = f.metadata["spec"].applies_to.kinds
    if "still" not in kinds:
        return 3 if "grid" in kinds else 2
    return 1 if f.name in Settings.names() and f.name not in cls.__dict__.get("__annotations__", {}) else 0


STILLS = only("still", "grid", where="a single image")  # a still's own progress (compare: each backbone's)
VIDEO_OUTPUT = only(
    *CLIPS, "zoom", where="a video output (a clip or --zoom-frames written to .mp4, .mov, .mkv or .webm)"
)
RESUMABLE = only(
    *CLIPS,
    "zoom",
    "folder",
    "grid",
    "train",
    where="a video output (a clip or --zoom-frames written "
    "to .mp4, .mov, .mkv or .webm), a folder of images, a sweep or training",
)


def out_opt(default, help: str, *flags: str, applies_to: AppliesTo = EVERYWHERE, **click_options):
    """An output option (a field of :class:`Outputs`): its default, help, flags (default: --field-name),
    the kinds of input it goes with, and what else click needs (its type, metavar)."""
    return field(
        default=default, metadata={"help": help, "flags": flags, "applies_to": applies_to, "click": click_options}
    )


@dataclass
class Outputs:
    """The options about the files written (not settings: not in the recipe), declared once: every
    command's click options are made from these fields (:func:`output_options`), and its body gets
    them back as one of these."""

    output: Path = out_opt(
        None,
        "Output file: .png (8 or 16-bit), .jpg, .webp (lossless unless --quality) or .tif "
        "(16 or 8-bit); a clip: .mp4, .mov, .mkv, .webm, .gif, .webp, .png or a folder; a folder of "
        "images: a folder (of PNGs).",
        "-o",
        "--output",
        type=click.Path(path_type=Path),
    )
    bit_depth: int | None = out_opt(
        None,
        "Bits per channel: 16 with .png, .tif or a folder; 8 with any [default: the format's: 16 for .tif, else 8].",
        type=int,
        metavar="8|16",
    )
    quality: int | None = out_opt(
        None,
        "Quality of a lossy format: .jpg [default: 95], .webp [default: lossless; a clip: 90].",
        type=int,
        metavar="1-100",
    )
    crf: int | None = out_opt(
        None,
        "Quality of a video output: 0 (lossless) and up [default: 18 for H.264, 32 for VP9 (.webm)].",
        type=int,
        metavar="N",
        applies_to=VIDEO_OUTPUT,
    )
    resume: bool = out_opt(
        False,
        "A video output: go on from the last frame an interrupted run finished (its frames "
        "are kept in OUT.frames until the video is complete). A folder of images or a sweep: skip "
        "the outputs already written whose recipe matches. Training: go on from the model file OUT (its weights, step "
        "count and order of photos).",
        is_flag=True,
        applies_to=RESUMABLE,
    )
    replay: Path | None = out_opt(
        None,
        "Replay the recipe stored in an output; the options given override it.",
        "--from",
        type=click.Path(path_type=Path),
    )
    log_json: Path | None = out_opt(None, "Write the loss history as a JSON list.", type=click.Path(path_type=Path))
    save_every: int = out_opt(
        0, "Also write an intermediate image every N iterations (stills only).", type=int, applies_to=STILLS
    )
    gif: Path | None = out_opt(
        None,
        "Write an animation of the optimization, GIF or WebP (stills only).",
        type=click.Path(path_type=Path),
        applies_to=STILLS,
    )
    recipe: str = out_opt(
        "names",
        "What the output's recipe says of input files: file names and their SHA-256 (the "
        "default: no folder names travel with a shared picture), full paths, or no recipe at all.",
        type=click.Choice(RECIPE_MODES),
        show_default=True,
    )
    overwrite: bool = out_opt(False, "Replace existing output files.", is_flag=True)
    quiet: bool = out_opt(False, "No progress display.", "-q", "--quiet", is_flag=True)
    loading: object = None  # the passing "loading torch" line (cli.run.Loading), stopped once the job is built

    def say(self, line: str) -> None:
        if not self.quiet:
            click.echo(f"dreamstyle: {line}", err=True)

    @classmethod
    def fields(cls) -> list:
        return [f for f in dataclasses.fields(cls) if "flags" in f.metadata]


def _flags(f) -> tuple[str, ...]:
    return f.metadata["flags"] or ("--" + f.name.replace("_", "-"),)


def output_options(
    output_help: str | None = None, only: tuple[str, ...] | None = None, required: bool = True
) -> list[click.Option]:
    """:class:`Outputs`' options, fresh for each command; ``only`` picks some (by name),
    ``output_help`` says what ``-o`` is for this command, ``required`` whether it must be given."""
    options = []
    for f in Outputs.fields():
        if only is not None and f.name not in only:
            continue
        help_text = output_help if f.name == "output" and output_help else f.metadata["help"]
        extra = {"required": required} if f.name == "output" else {"default": f.default}
        options.append(click.Option([*_flags(f), f.name], help=help_text, **extra, **f.metadata["click"]))
    return options


OUTPUT_NAMES = {f.name for f in Outputs.fields()}


def output_applicability() -> dict[str, tuple[str, AppliesTo]]:
    """Each output option's flag and the kinds of input it goes with (:func:`dreamstyle.applies.refuse`)."""
    return {f.name: (_flags(f)[-1], f.metadata["applies_to"]) for f in Outputs.fields()}


def given(name: str) -> bool:
    """Whether the user gave this option (on the command line or the environment), not its default."""
    ctx = click.get_current_context()
    return ctx.get_parameter_source(name) not in (None, ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP)


def flag_for(name: str) -> str:
    ctx = click.get_current_context()
    for param in ctx.command.params:
        if param.name == name:
            return param.opts[-1] if isinstance(param, click.Option) else name.upper()
    return "--" + name.replace("_", "-")


def split(cls: type[Settings], params: dict) -> tuple[dict, dict]:
    """The command's keyword arguments as (settings values, output options)."""
    values = {}
    for name in cls.names():
        if name in params:
            value = params[name]
            values[name] = tuple(str(v) for v in value) if isinstance(value, tuple) and name in ("styles",) else value
    outputs = {name: params[name] for name in OUTPUT_NAMES if name in params}
    return values, outputs


complete_backbones = _complete("backbone")
