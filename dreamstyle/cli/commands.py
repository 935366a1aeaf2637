"""``dreamstyle transfer``, ``dream`` and ``texture``: each command is its settings' options (generated,
:mod:`dreamstyle.cli.options`) plus the output options, and one body (:func:`dreamstyle.cli.run.execute`)."""

from __future__ import annotations

import click

from ..settings import settings_for
from .group import main
from .options import output_options, settings_params
from .run import execute

HELP = {
    "transfer": """Style transfer: CONTENT painted in the style of STYLES (several styles blend).

    CONTENT may also be a clip (an animated GIF, WebP or PNG, or a folder of frames with --frames):
    OUT is then a .gif, .webp, .png (animated) or a folder of PNG frames, with the source's timing.
    A folder of still images writes one PNG per image into the folder OUT. Every option applies to
    clips and folders but those marked "stills only"; --scales applies to a clip's first frame.""",
    "dream": """DeepDream: INPUT with what the network sees in it, amplified (octaves, jitter, tiles).

    INPUT may also be a clip (an animated GIF, WebP or PNG, or a folder of frames with --frames):
    OUT is then a .gif, .webp, .png (animated) or a folder of PNG frames, with the source's timing.
    A folder of still images writes one PNG per image into the folder OUT.""",
    "texture": """Texture synthesis: a new image with the style statistics of STYLES, from noise
    (Gatys et al. 2015); --seamless makes it tile.""",
}


def _command(kind: str) -> click.Command:
    def body(**params):
        execute(kind, params)

    params = settings_params(settings_for(kind))
    arguments = [p for p in params if isinstance(p, click.Argument)]
    options = [p for p in params if not isinstance(p, click.Argument)]
    outputs = output_options()
    return click.Command(
        kind,
        callback=body,
        params=[*arguments, outputs[0], *options, *outputs[1:]],
        help=HELP[kind],
        context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    )


for _kind in ("transfer", "dream", "texture"):
    main.add_command(_command(_kind))
