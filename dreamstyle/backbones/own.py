"""Your own network as a backbone, with no plugin to write: ``--backbone FILE`` (TorchScript, a
``torch.export`` archive, ONNX) or ``--backbone MODULE:CALLABLE`` (a model in your Python code, its
weights from ``--weights FILE``). Which names are yours, and the family that resolves them; reading
and tapping the network is :mod:`dreamstyle.backbones.ownnet` (loaded when a name is resolved).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from .base import check_readable_file

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


class OwnFamily:
    """Names that are your own network: a file (or ``file:FILE``), or ``MODULE:CALLABLE``. Each is
    read once per process (a file again when it changed)."""

    prefix = FILE_PREFIX
    name = "file:<FILE>"
    description = (
        "your own network: a TorchScript, torch.export (.pt2) or ONNX file, or MODULE:CALLABLE "
        "(its weights from --weights FILE); its layer map derived from its graph"
    )

    def __init__(self):
        self._cache: dict = {}

    def claims(self, name: str) -> bool:
        return own_source(name) is not None

    def resolve(self, name: str):
        kind, source = own_source(name)
        if kind == "file":
            path = Path(source).expanduser()
            check_readable_file(path, "backbone file")
            stat = path.stat()
            key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
            description = f"your network in {path.name}"
        else:
            key = (source, None, None)
            description = f"your network from {source}"
        if key not in self._cache:
            from .ownnet import OwnBackbone  # torch, onnx2torch: only once a network is named

            backbone = OwnBackbone(name, description, source=source, kind=kind)
            backbone._derived()
            self._cache[key] = backbone
        backbone = self._cache[key]
        return backbone if backbone.name == name else backbone.renamed(name)
