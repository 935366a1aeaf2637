"""The family of your own networks: names that are a model file (or ``file:FILE``) or
``MODULE:CALLABLE``, registered like timm's family; a network is read when a name is resolved."""

from __future__ import annotations

from pathlib import Path

from .base import check_readable_file
from .own import FILE_PREFIX, own_source


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
