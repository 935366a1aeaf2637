"""Backbones: networks with a static layer map, and the feature extractor over them."""

from __future__ import annotations

import os
from typing import Iterable

from .base import CAFFE_BGR, IMAGENET, Backbone, Preprocess

__all__ = ["Backbone", "Preprocess", "IMAGENET", "CAFFE_BGR", "LoadedBackbone", "load_backbone"]


class LoadedBackbone:
    """A backbone with its weights loaded, frozen, on a device. Make feature nets from it."""

    def __init__(self, backbone: Backbone, weights: str | os.PathLike | None = None,
                 pooling: str = "max", device=None):
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
    from ..plugins import get_backbone

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
            self.body = loaded.backbone.extractor(loaded.model, modules).to(loaded.device)
            self.body.eval().requires_grad_(False)

        def forward(self, image):
            outs = self.body(self.normalize(image))
            return dict(zip(self.names, outs))

    return FeatureNet


def __getattr__(name):
    if name == "FeatureNet":
        cls = _feature_net_class()
        globals()["FeatureNet"] = cls
        return cls
    raise AttributeError(name)


def FeatureNet(loaded, layers):  # noqa: N802  (constructor facade: keeps torch out of import time)
    return _feature_net_class()(loaded, layers)
