"""Layer maps: static data describing where a user can tap a backbone.

Each :class:`Layer` names one node of the network (its module path), the number of
channels it produces and its total downsampling (stride) relative to the input.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass

from .errors import UnknownNameError

LAYER_KINDS = ("conv", "activation", "pool", "norm", "block")
DREAMABLE = ("activation", "block")  # what --dream-layer auto may pick


@dataclass(frozen=True)
class Layer:
    """One tap of a backbone. ``kind`` (optional) says what the layer is: conv, activation, pool,
    norm or block (a residual or inception block's output); ``--dream-layer auto`` picks among
    activations and blocks."""

    name: str
    module: str
    channels: int
    stride: int
    kind: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


class LayerMap(Sequence[Layer]):
    """Ordered layers of a backbone, in network order, looked up by name."""

    def __init__(self, layers: Iterable[Layer], backbone: str = ""):
        self._layers = list(layers)
        self.backbone = backbone
        self._index: dict[str, int] = {}
        last = 1
        for i, layer in enumerate(self._layers):
            if layer.name in self._index:
                raise ValueError(f"its layer map repeats the name {layer.name!r}")
            self._index[layer.name] = i
            if not isinstance(layer.channels, int) or layer.channels <= 0:
                raise ValueError(f"its layer {layer.name!r} has {layer.channels!r} channels (more than 0, please)")
            if not isinstance(layer.stride, int) or layer.stride < last:
                raise ValueError(
                    f"its layer {layer.name!r} has stride {layer.stride!r} after stride {last} "
                    "(strides never decrease along the network)"
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
                "layer",
                name,
                self.names,
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
