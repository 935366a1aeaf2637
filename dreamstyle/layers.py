"""Layer maps: static data describing where a user can tap a backbone.

Each :class:`Layer` names one node of the network (its module path), the number of
channels it produces and its total downsampling (stride) relative to the input.
"""

from __future__ import annotations

from dataclasses import dataclass, asdict
from typing import Iterable, Iterator, Sequence

from .errors import UnknownNameError


@dataclass(frozen=True)
class Layer:
    name: str
    module: str
    channels: int
    stride: int

    def to_dict(self) -> dict:
        return asdict(self)


class LayerMap(Sequence[Layer]):
    """Ordered layers of a backbone, in network order, looked up by name."""

    def __init__(self, layers: Iterable[Layer], backbone: str = ""):
        self._layers = list(layers)
        self.backbone = backbone
        self._index = {layer.name: i for i, layer in enumerate(self._layers)}
        if len(self._index) != len(self._layers):
            raise ValueError(f"layer map of {backbone!r} repeats a layer name")
        last = 1
        for layer in self._layers:
            if layer.channels <= 0 or layer.stride < last:
                raise ValueError(
                    f"layer map of {backbone!r}: {layer.name} must have channels > 0 "
                    "and a stride that never decreases"
                )
            last = layer.stride

    def __getitem__(self, item):
        if isinstance(item, str):
            return self.get(item)
        return self._layers[item]

    def __len__(self) -> int:
        return len(self._layers)

    def __iter__(self) -> Iterator[Layer]:
        return iter(self._layers)

    def __contains__(self, name) -> bool:
        return name in self._index

    @property
    def names(self) -> list[str]:
        return [layer.name for layer in self._layers]

    def get(self, name: str) -> Layer:
        try:
            return self._layers[self._index[name]]
        except KeyError:
            raise UnknownNameError(
                "layer", name, self.names,
                hint=f"list them with: dreamstyle layers {self.backbone}" if self.backbone else "",
            ) from None

    def position(self, name: str) -> int:
        self.get(name)
        return self._index[name]

    def order(self, names: Iterable[str]) -> list[str]:
        """Names sorted into network order (unknown names raise)."""
        return sorted(set(names), key=self.position)

    def deepest(self, names: Iterable[str]) -> str:
        return max(names, key=self.position)
