"""MobileNet V2 and MobileNet V3 (large) as dreamstyle backbones.

Both are torchvision classifiers whose ``features`` is a sequence of blocks; the layer map taps
the output of each block (``features.N``): ``stem`` is the first convolution, ``blockN`` the
inverted-residual blocks and ``head`` the last 1x1 convolution. Features come from dreamstyle's
default torch.fx extractor, which drops everything after the deepest requested layer.

Pretrained weights are torchvision's ImageNet weights, read from the torch hub cache
(``~/.cache/torch/hub/checkpoints``) or downloaded there on first use; ``--weights FILE`` (a
torchvision-layout state dict) and ``--weights random`` work as for every backbone.

Importing this module does not import torch: ``dreamstyle backbones`` and ``dreamstyle layers``
stay fast.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dreamstyle import hookimpl
from dreamstyle.backbones import IMAGENET, Backbone
from dreamstyle.layers import Layer

__version__ = "0.1.0"

# (channels, stride) of each ``features.N`` output, in network order, checked by the tests
# against a forward pass with random weights.
MOBILENET_V2 = [
    (32, 2),
    (16, 2),
    (24, 4),
    (24, 4),
    (32, 8),
    (32, 8),
    (32, 8),
    (64, 16),
    (64, 16),
    (64, 16),
    (64, 16),
    (96, 16),
    (96, 16),
    (96, 16),
    (160, 32),
    (160, 32),
    (160, 32),
    (320, 32),
    (1280, 32),
]
MOBILENET_V3_LARGE = [
    (16, 2),
    (16, 2),
    (24, 4),
    (24, 4),
    (40, 8),
    (40, 8),
    (40, 8),
    (80, 16),
    (80, 16),
    (80, 16),
    (80, 16),
    (112, 16),
    (112, 16),
    (160, 32),
    (160, 32),
    (160, 32),
    (960, 32),
]


def block_layers(table: Sequence[tuple[int, int]]) -> list[Layer]:
    """``features.0`` is ``stem``, the last entry ``head``, the others ``block1`` .. ``blockN``."""
    last = len(table) - 1
    layers = []
    for i, (channels, stride) in enumerate(table):
        name = "stem" if i == 0 else "head" if i == last else f"block{i}"
        layers.append(Layer(name, f"features.{i}", channels, stride))
    return layers


@dataclass
class MobileNet(Backbone):
    """A torchvision MobileNet tapped at the output of each ``features`` block."""

    builder: str = ""  # torchvision.models function, e.g. "mobilenet_v2"
    tv_weights: str = ""  # torchvision weights enum, e.g. "MobileNet_V2_Weights"
    table: Sequence[tuple[int, int]] = ()
    # the classifier is never run; weights files may have it or not
    optional_prefixes: Sequence[str] = ("classifier",)

    def _layers(self) -> list[Layer]:
        return block_layers(self.table)

    def _make(self, pooling: str = "max"):
        import torchvision.models

        return getattr(torchvision.models, self.builder)(weights=None)

    def _load_pretrained(self, model):
        from dreamstyle.backbones.base import load_torchvision_pretrained

        return load_torchvision_pretrained(self, model)


def backbones() -> list[MobileNet]:
    return [
        MobileNet(
            "mobilenet_v2",
            "MobileNet V2 (torchvision ImageNet weights; plugin dreamstyle-mobilenet)",
            preprocess=IMAGENET,
            min_size=32,
            native_size=224,
            content_layers=("block6",),
            style_layers=("stem", "block3", "block6", "block10", "block16"),
            dream_layers=("block10",),
            builder="mobilenet_v2",
            tv_weights="MobileNet_V2_Weights",
            table=MOBILENET_V2,
        ),
        MobileNet(
            "mobilenet_v3_large",
            "MobileNet V3 large (torchvision ImageNet weights; plugin dreamstyle-mobilenet)",
            preprocess=IMAGENET,
            min_size=32,
            native_size=224,
            content_layers=("block6",),
            style_layers=("stem", "block3", "block6", "block10", "block15"),
            dream_layers=("block12",),
            builder="mobilenet_v3_large",
            tv_weights="MobileNet_V3_Large_Weights",
            table=MOBILENET_V3_LARGE,
        ),
    ]


@hookimpl
def register_backbones(register):
    for backbone in backbones():
        register(backbone)
