"""Your own network as a backbone, with no plugin to write: ``--backbone FILE`` (TorchScript, a
``torch.export`` archive, ONNX) or ``--backbone MODULE:CALLABLE`` (a model in your Python code, its
weights from ``--weights FILE``). Which names are yours, and the family that resolves them; reading
and tapping the network is :mod:`dreamstyle.backbones.ownnet` (loaded when a name is resolved).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

FILE_PREFIX = "file:"
SUFFIXES = (".pt", ".pth", ".ts", ".jit", ".torchscript", ".pt2", ".onnx", ".zip")
CALLABLE = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")
HOW = (
    "save the network as TorchScript (torch.jit.script(model).save(PATH)), as a torch.export archive "
    "(torch.export.save(torch.export.export(model, (x,)), PATH), a .pt2) or as ONNX "
    "(torch.onnx.export(model, (x,), PATH)); or give --backbone MODULE:CALLABLE and --weights FILE"
)


def own_source(name: str) -> tuple[str, str] | None:
    """("file", path) or ("python", "module:callable") where ``name`` names your own network, else None."""
    if name.startswith(FILE_PREFIX):
        return "file", name[len(FILE_PREFIX) :]
    if name.lower().endswith(SUFFIXES) or os.sep in name or "/" in name or os.path.isfile(name):
        return "file", name
    if CALLABLE.fullmatch(name):
        return "python", name
    return None


def is_own(name) -> bool:
    return isinstance(name, str) and own_source(name) is not None


def file_of(name: str) -> str | None:
    """The model file ``--backbone`` names (for the recipe's hash), or None."""
    source = own_source(name) if isinstance(name, str) else None
    return source[1] if source and source[0] == "file" else None


@dataclass(frozen=True)
class InputSpec:
    """How the picture feeds the network: ``--input-channels``, ``--mean``, ``--std``,
    ``--input-range``, ``--show-channels``, ``--hold-value`` (None: not given)."""

    channels: int | None = None
    mean: tuple | None = None
    std: tuple | None = None
    input_range: tuple | None = None
    show: tuple | None = None
    hold: float | None = None

    @classmethod
    def of(cls, settings) -> InputSpec:
        return cls(
            settings.input_channels,
            settings.mean,
            settings.std,
            settings.input_range,
            settings.show_channels,
            settings.hold_value,
        )
