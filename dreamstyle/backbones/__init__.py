"""Backbones: networks with a static layer map, and the feature extractor over them."""

from __future__ import annotations

import os
from collections.abc import Iterable

from ..errors import BackboneError
from ..plugins import get_backbone
from .base import CAFFE_BGR, IMAGENET, Backbone, Preprocess
from .vgg import SequentialBackbone

__all__ = ["Backbone", "SequentialBackbone", "Preprocess", "IMAGENET", "CAFFE_BGR", "LoadedBackbone", "load_backbone"]


class LoadedBackbone:
    """A backbone with its weights loaded, frozen, on a device. Make feature nets from it."""

    def __init__(self, backbone: Backbone, weights: str | os.PathLike | None = None, pooling: str = "max", device=None):
        import torch

        self.backbone = backbone
        self.weights = "default" if weights is None else str(weights)
        self.pooling = pooling
        self.model, self.preprocess = backbone.build(weights, pooling)
        self.device = torch.device(device or "cpu")
        self.model.to(self.device)

    def features(self, layers: Iterable[str]):
        """A :class:`FeatureNet` returning exactly ``layers`` (truncated after the deepest)."""
        return FeatureNet(self, layers)


def load_backbone(name_or_backbone, weights=None, pooling: str = "max", device=None) -> LoadedBackbone:
    backbone = get_backbone(name_or_backbone) if isinstance(name_or_backbone, str) else name_or_backbone
    return LoadedBackbone(backbone, weights, pooling, device)


def _feature_net_class():
    import torch

    class FeatureNet(torch.nn.Module):
        """``forward(image)`` with an RGB image in [0, 1], NCHW -> {layer name: features}."""

        def __init__(self, loaded: LoadedBackbone, layers: Iterable[str]):
            super().__init__()
            layer_map = loaded.backbone.layer_map
            self.backbone = loaded.backbone
            self.names = layer_map.order(layers)
            if not self.names:
                raise ValueError("a feature net needs at least one layer")
            modules = [layer_map[n].module for n in self.names]
            self.normalize = loaded.preprocess.module().to(loaded.device)
            try:
                self.body = loaded.backbone.extractor(loaded.model, modules).to(loaded.device)
            except BackboneError:  # the backbone's own line
                raise
            except Exception as exc:  # noqa: BLE001 - a layer map naming what the network lacks
                raise missing_modules(loaded, self.names, exc) from None
            self.body.eval().requires_grad_(False)

        def forward(self, image):
            outs = self.body(self.normalize(image))
            return dict(zip(self.names, outs))

    return FeatureNet


def missing_modules(loaded: LoadedBackbone, names, exc: Exception):
    """One line naming the backbone, its plugin and the layers whose module the network lacks."""
    bb = loaded.backbone
    present = {n for n, _ in loaded.model.named_modules()}
    bad = [(n, bb.layer_map[n].module) for n in names if bb.layer_map[n].module not in present]
    if not bad:
        return BackboneError(
            f"backbone {bb.name!r}{plugin_of(bb)} cannot make its features ({type(exc).__name__}: "
            f"{' '.join(str(exc).split())[:200]}); dreamstyle needs a network it can trace and feed "
            "any input size (a convolutional network, or a vision transformer with dynamic sizes)"
        )
    said = "; ".join(f"layer {n!r} names module {m!r}" for n, m in bad)
    return BackboneError(
        f"backbone {bb.name!r}{plugin_of(bb)} cannot make its features: {said}, which the network "
        "does not have (see its layer map: dreamstyle layers " + bb.name + ")"
    )


def plugin_of(backbone) -> str:
    plugin = getattr(backbone, "plugin", "")
    return f" (plugin {plugin!r})" if plugin and not plugin.startswith("dreamstyle.") else ""


def check_features(backbone, feats: dict, input_hw: tuple[int, int]) -> None:
    """The features a net gave for an input of ``input_hw`` against the layer map: 4-D, the declared
    channels, about the declared stride. One line naming backbone, layer, declared and actual."""
    h, w = input_hw
    for name, f in feats.items():
        layer = backbone.layer_map[name]
        who = f"backbone {backbone.name!r}{plugin_of(backbone)}: layer {name!r}"
        if f.dim() != 4:
            raise BackboneError(
                f"{who} gives a {f.dim()}-D tensor {tuple(f.shape)}, not (batch, channels, height, width)"
            )
        if f.shape[1] != layer.channels:
            raise BackboneError(f"{who} has {f.shape[1]} channels; its layer map says {layer.channels}")
        stride = max(h / f.shape[2], w / f.shape[3])
        if not 0.6 <= stride / layer.stride <= 1.7:
            raise BackboneError(
                f"{who} has stride about {stride:.0f} (a {f.shape[2]}x{f.shape[3]} grid at {w}x{h} "
                f"px); its layer map says {layer.stride}"
            )


def probe(net, backbone, device) -> None:
    """One small forward of ``net`` checked by :func:`check_features` (once per net, not per step)."""
    import torch

    side = min(512, max(backbone.min_size, 8 * max(backbone.layer_map[n].stride for n in net.names)))
    hw = (side, side * 3 // 2)  # not square: a model that takes only its native size says so here
    try:
        with torch.no_grad():
            feats = net(torch.rand(1, 3, *hw, device=device))
    except (RuntimeError, AssertionError, TypeError, ValueError) as exc:
        raise BackboneError(
            f"backbone {backbone.name!r}{plugin_of(backbone)} cannot take a {hw[1]}x{hw[0]} px "
            f"input ({type(exc).__name__}: {' '.join(str(exc).split())[:200]}); dreamstyle needs "
            "any size (a convolutional network, or a vision transformer with dynamic sizes)"
        ) from None
    check_features(backbone, feats, hw)


def __getattr__(name):
    if name == "FeatureNet":
        cls = _feature_net_class()
        globals()["FeatureNet"] = cls
        return cls
    raise AttributeError(name)


def FeatureNet(loaded, layers):  # noqa: N802  (constructor facade: keeps torch out of import time)
    return _feature_net_class()(loaded, layers)
