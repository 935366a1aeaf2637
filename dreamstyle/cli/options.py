"""Click options generated from the settings: one declaration per option (``dreamstyle.settings``).

:func:`settings_params` turns each field of a settings class into a click option (or argument) with
its flag, type, default and help; :data:`OUTPUT_OPTIONS` are the options about files written, which
are not settings (they are not in the recipe). The command body gets everything as keyword
arguments; :func:`split` takes them apart again.
"""

from __future__ import annotations

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
        return click.Argument([f.name], nargs=-1 if spec.argument == "many" else 1, required=False,
                              type=str if spec.type is str else click.Path(path_type=Path),
                              metavar=f.name.upper() + ("..." if spec.argument == "many" else ""),
                              shell_complete=_complete(spec.complete) if spec.complete else None)
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
    fields = sorted((f for f in cls.fields() if f.metadata["spec"].cli and (kind is None or
                                                                          kind in f.metadata["spec"].applies_to)),
                    key=lambda f: _rank(cls, f))
    args = [_param(f) for f in fields if f.metadata["spec"].argument]
    return args + [_param(f) for f in fields if not f.metadata["spec"].argument]


def _rank(cls: type[Settings], f) -> int:
    kinds = f.metadata["spec"].applies_to.kinds
    if "still" not in kinds:
        return 3 if "grid" in kinds else 2
    return 1 if f.name in Settings.names() and f.name not in cls.__dict__.get("__annotations__", {}) else 0


class OutputOption(click.Option):
    """An option about the files written, with the kinds of input it goes with (:mod:`dreamstyle.applies`)."""

    def __init__(self, *args, applies_to: AppliesTo | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.applies_to = applies_to or EVERYWHERE


STILLS = only("still", "grid", where="a single image")  # a still's own progress (compare: each backbone's)
VIDEO_OUTPUT = only(*CLIPS, "zoom", where="a video output (a clip or --zoom-frames written to .mp4, .mov, .mkv or "
                    ".webm)")
RESUMABLE = only(*CLIPS, "zoom", "folder", "grid", where="a video output (a clip or --zoom-frames written to .mp4, "
                 ".mov, .mkv or .webm), a folder of images or a sweep")


def output_options(output_help: str | None = None, only: tuple[str, ...] | None = None,
                   required: bool = True) -> list[click.Option]:
    """The options about the files written (not settings: not in the recipe), fresh for each command;
    ``only`` picks some (by name), ``output_help`` says what ``-o`` is for this command, ``required``
    whether it must be given."""
    options = [
        click.Option(["-o", "--output", "output"], required=required, type=click.Path(path_type=Path),
                     help=output_help or "Output file: .png (8 or 16-bit), .jpg, .webp (lossless unless --quality) "
                                         "or .tif (16 or 8-bit); a clip: .mp4, .mov, .mkv, .webm, .gif, .webp, "
                                         ".png or a folder; a folder of images: a folder (of PNGs)."),
        click.Option(["--bit-depth"], type=int, default=None, metavar="8|16",
                     help="Bits per channel: 16 with .png, .tif or a folder; 8 with any [default: the format's: "
                          "16 for .tif, else 8]."),
        click.Option(["--quality"], type=int, default=None, metavar="1-100",
                     help="Quality of a lossy format: .jpg [default: 95], .webp [default: lossless; a clip: 90]."),
        OutputOption(["--crf"], applies_to=VIDEO_OUTPUT, type=int, default=None, metavar="N",
                     help="Quality of a video output: 0 (lossless) and up [default: 18 for H.264, 32 for VP9 "
                          "(.webm)]."),
        OutputOption(["--resume"], is_flag=True, applies_to=RESUMABLE, help="A video output: go on from the last frame an interrupted "
                     "run finished (its frames are kept in OUT.frames until the video is complete). A folder of "
                     "images or a sweep: skip the outputs already written whose recipe matches."),
        click.Option(["--from", "replay"], type=click.Path(path_type=Path), default=None,
                     help="Replay the recipe stored in an output; the options given override it."),
        click.Option(["--log-json"], type=click.Path(path_type=Path), default=None,
                     help="Write the loss history as a JSON list."),
        OutputOption(["--save-every"], type=int, applies_to=STILLS, default=0, help="Also write an intermediate image every N "
                     "iterations (stills only)."),
        OutputOption(["--gif"], applies_to=STILLS, type=click.Path(path_type=Path), default=None,
                     help="Write an animation of the optimization, GIF or WebP (stills only)."),
        click.Option(["--recipe"], type=click.Choice(RECIPE_MODES), default="names", show_default=True,
                     help="What the output's recipe says of input files: file names and their SHA-256 (the "
                          "default: no folder names travel with a shared picture), full paths, or no recipe at all."),
        click.Option(["--overwrite"], is_flag=True, help="Replace existing output files."),
        click.Option(["-q", "--quiet"], is_flag=True, help="No progress display."),
    ]
    return [o for o in options if only is None or o.name in only]


OUTPUT_NAMES = {p.name for p in output_options()}


def output_applicability() -> dict[str, tuple[str, AppliesTo]]:
    """Each output option's flag and the kinds of input it goes with (:func:`dreamstyle.applies.refuse`)."""
    return {o.name: (o.opts[-1], getattr(o, "applies_to", EVERYWHERE)) for o in output_options()}


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
