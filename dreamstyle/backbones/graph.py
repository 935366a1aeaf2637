"""Non-sequential torchvision backbones (GoogLeNet, Inception v3, ResNet) and timm models.

Their taps are module paths; features come from a torch.fx graph that keeps only what the
requested layers need (dead code, the classifier included, is eliminated).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import UnknownNameError, UserError, WeightsError
from ..layers import Layer
from .base import Backbone, Preprocess, load_torchvision_pretrained, torchvision_pretrained_file
from .hub import timm_cached_file, timm_file, timm_placed_file
from .vgg import kind_by_name

GOOGLENET = [
    ("conv1", 64, 2),
    ("maxpool1", 64, 4),
    ("conv2", 64, 4),
    ("conv3", 192, 4),
    ("maxpool2", 192, 8),
    ("inception3a", 256, 8),
    ("inception3b", 480, 8),
    ("maxpool3", 480, 16),
    ("inception4a", 512, 16),
    ("inception4b", 512, 16),
    ("inception4c", 512, 16),
    ("inception4d", 528, 16),
    ("inception4e", 832, 16),
    ("maxpool4", 832, 32),
    ("inception5a", 832, 32),
    ("inception5b", 1024, 32),
]
INCEPTION_V3 = [
    ("Conv2d_1a_3x3", 32, 2),
    ("Conv2d_2a_3x3", 32, 2),
    ("Conv2d_2b_3x3", 64, 2),
    ("maxpool1", 64, 4),
    ("Conv2d_3b_1x1", 80, 4),
    ("Conv2d_4a_3x3", 192, 4),
    ("maxpool2", 192, 8),
    ("Mixed_5b", 256, 8),
    ("Mixed_5c", 288, 8),
    ("Mixed_5d", 288, 8),
    ("Mixed_6a", 768, 16),
    ("Mixed_6b", 768, 16),
    ("Mixed_6c", 768, 16),
    ("Mixed_6d", 768, 16),
    ("Mixed_6e", 768, 16),
    ("Mixed_7a", 1280, 32),
    ("Mixed_7b", 2048, 32),
    ("Mixed_7c", 2048, 32),
]
RESNET_BLOCKS = {"resnet18": ([2, 2, 2, 2], 1), "resnet34": ([3, 4, 6, 3], 1), "resnet50": ([3, 4, 6, 3], 4)}


def resnet_layers(name: str) -> list[Layer]:
    """Stem, then each block ``layerN.i``; a stage's last block is named ``layerN``."""
    blocks, expansion = RESNET_BLOCKS[name]
    layers = [
        Layer("conv1", "conv1", 64, 2, "conv"),
        Layer("bn1", "bn1", 64, 2, "norm"),
        Layer("relu", "relu", 64, 2, "activation"),
        Layer("maxpool", "maxpool", 64, 4, "pool"),
    ]
    for stage, (n, width) in enumerate(zip(blocks, [64, 128, 256, 512]), start=1):
        stride = 2 ** (stage + 1)
        for i in range(n - 1):
            layers.append(Layer(f"layer{stage}.{i}", f"layer{stage}.{i}", width * expansion, stride, "block"))
        layers.append(Layer(f"layer{stage}", f"layer{stage}", width * expansion, stride, "block"))
    return layers


@dataclass
class TorchvisionGraph(Backbone):
    """A torchvision classifier tapped by module path."""

    tv_weights: str = ""
    builder: str = ""  # torchvision.models function name
    table: Sequence[tuple] = ()
    make_kwargs: tuple = ()

    def _layers(self):
        if self.name in RESNET_BLOCKS:
            return resnet_layers(self.name)
        return [Layer(n, n, c, s, kind_by_name(n)) for n, c, s in self.table]

    def _make(self, pooling: str = "max"):
        import torchvision.models

        return getattr(torchvision.models, self.builder)(weights=None, **dict(self.make_kwargs))

    def _load_pretrained(self, model) -> Preprocess:
        return load_torchvision_pretrained(self, model)

    def pretrained_file(self):
        return torchvision_pretrained_file(self)


def builtin_graph() -> list[Backbone]:
    heads = ("fc", "aux1", "aux2", "AuxLogits")
    return [
        TorchvisionGraph(
            "googlenet",
            "GoogLeNet / Inception v1 (torchvision ImageNet weights)",
            min_size=64,
            content_layers=("inception4b",),
            style_layers=("conv1", "conv3", "inception3b", "inception4a", "inception5a"),
            dream_layers=("inception4c",),
            tv_weights="GoogLeNet_Weights",
            builder="googlenet",
            table=GOOGLENET,
            optional_prefixes=heads,
            make_kwargs=(("aux_logits", False), ("transform_input", True), ("init_weights", True)),
        ),
        TorchvisionGraph(
            "inception_v3",
            "Inception v3 (torchvision ImageNet weights)",
            min_size=75,
            native_size=299,
            content_layers=("Mixed_5d",),
            style_layers=("Conv2d_2b_3x3", "Conv2d_4a_3x3", "Mixed_5b", "Mixed_6a", "Mixed_7a"),
            dream_layers=("Mixed_6c",),
            tv_weights="Inception_V3_Weights",
            builder="inception_v3",
            table=INCEPTION_V3,
            optional_prefixes=heads,
            make_kwargs=(("aux_logits", False), ("transform_input", True), ("init_weights", True)),
        ),
        TorchvisionGraph(
            "resnet18",
            "ResNet-18 (torchvision ImageNet weights)",
            min_size=32,
            content_layers=("layer2",),
            style_layers=("relu", "layer1", "layer2", "layer3", "layer4"),
            dream_layers=("layer3.0",),
            tv_weights="ResNet18_Weights",
            builder="resnet18",
            optional_prefixes=("fc",),
        ),
        TorchvisionGraph(
            "resnet50",
            "ResNet-50 (torchvision ImageNet weights)",
            min_size=32,
            content_layers=("layer2",),
            style_layers=("relu", "layer1", "layer2", "layer3", "layer4"),
            dream_layers=("layer3.3",),
            tv_weights="ResNet50_Weights",
            builder="resnet50",
            optional_prefixes=("fc",),
        ),
    ]


# --- timm ------------------------------------------------------------------------------


@dataclass
class TimmBackbone(Backbone):
    """``timm/<model>``: any timm model with feature info; layers are its feature stages."""

    model_name: str = ""

    def _create(self, **kwargs):
        """The model; a vision transformer is made to take any input size (timm's dynamic_img_size)."""
        import timm

        try:  # any size: positions interpolated, the input padded to whole patches
            return timm.create_model(
                self.model_name, pretrained=False, dynamic_img_size=True, dynamic_img_pad=True, **kwargs
            )
        except TypeError:  # not a model that knows dynamic sizes: convolutional ones take any size anyway
            return timm.create_model(self.model_name, pretrained=False, **kwargs)

    def _meta_model(self):
        cached = self.__dict__.get("_meta")
        if cached is None:
            import torch

            with torch.device("meta"):
                cached = self._create()
            self.__dict__["_meta"] = cached
        return cached

    def _layers(self):
        info = getattr(self._meta_model(), "feature_info", None)
        if not info:
            raise UserError(f"timm model {self.model_name!r} has no feature info, so it has no layer map")
        return [Layer(f["module"], f["module"], int(f["num_chs"]), int(f["reduction"]), "block") for f in info]

    def _make(self, pooling: str = "max"):
        return self._create()

    def pretrained_file(self):
        import timm

        cfg = timm.models.get_pretrained_cfg(self.model_name)
        if cfg is None or not (cfg.hf_hub_id or cfg.url):
            return None, "timm has none for it: --weights FILE"
        return timm_cached_file(cfg), f"downloaded on first use (or place its weights at {timm_placed_file(cfg)})"

    def _load_pretrained(self, model) -> Preprocess:
        import timm

        cfg = timm.models.get_pretrained_cfg(self.model_name)
        path = timm_file(cfg, self.name)
        try:  # timm's own loader (with the model's checkpoint filter), from the local file only
            pretrained = timm.create_model(self.model_name, pretrained=True, pretrained_cfg_overlay={"file": str(path)})
        except Exception as exc:  # noqa: BLE001 - a file that does not fit this model
            raise WeightsError(
                f"cannot load {path} into {self.name!r}: {type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''}"
            ) from None
        model.load_state_dict(pretrained.state_dict())
        return self.preprocess

    def extractor(self, model, modules: list[str]):
        import torch
        from timm.models._features_fx import create_feature_extractor

        by_module = {layer.module: layer for layer in self.layer_map}
        prefix = int(getattr(model, "num_prefix_tokens", 0) or 0)

        class _Fx(torch.nn.Module):
            """Feature maps as (batch, channels, height, width): a transformer's tokens (batch, tokens,
            channels) lose their class and register tokens and fold back to their grid; channels-last
            outputs (batch, height, width, channels) are turned."""

            def __init__(self):
                super().__init__()
                self.body = create_feature_extractor(model, return_nodes={m: m for m in modules})
                self.modules_ = list(modules)

            def forward(self, x):
                out = self.body(x)
                return [grid(out[m], by_module[m], x.shape[-2:]) for m in self.modules_]

        def grid(f, layer, hw):
            if f.dim() == 3:
                h, w = -(-hw[0] // layer.stride), -(-hw[1] // layer.stride)  # padded to whole patches
                tokens = f[:, prefix:] if f.shape[1] - prefix == h * w else f[:, -h * w :]
                return tokens.transpose(1, 2).reshape(f.shape[0], f.shape[2], h, w)
            if f.dim() == 4 and f.shape[1] != layer.channels and f.shape[-1] == layer.channels:
                return f.permute(0, 3, 1, 2)
            return f

        return _Fx()


class TimmFamily:
    """Resolves ``timm/<model>`` names to :class:`TimmBackbone` on demand."""

    prefix = "timm/"
    name = "timm/<model>"
    description = "any timm model with feature info, e.g. timm/resnet50, timm/inception_v3"

    def resolve(self, name: str) -> Backbone:
        import timm

        model_name = name[len(self.prefix) :]
        if model_name not in timm.list_models():
            from ..plugins import get_host

            builtin = model_name in get_host().backbones.entries
            raise UnknownNameError(
                "timm model",
                model_name,
                [] if builtin else timm.list_models(),
                hint=f"there is a built-in backbone {model_name!r}: use --backbone {model_name}"
                if builtin
                else "timm.list_models() lists them",
            )
        cfg = timm.models.get_pretrained_cfg(model_name)
        mean = tuple(getattr(cfg, "mean", None) or (0.485, 0.456, 0.406))
        std = tuple(getattr(cfg, "std", None) or (0.229, 0.224, 0.225))
        input_size = getattr(cfg, "input_size", None) or (3, 224, 224)
        classifier = getattr(cfg, "classifier", None) or "fc"
        backbone = TimmBackbone(
            name,
            f"timm model {model_name}",
            preprocess=Preprocess(mean=mean, std=std),
            native_size=max(224, input_size[-1]),
            model_name=model_name,
            optional_prefixes=(classifier,) if isinstance(classifier, str) else tuple(classifier),
        )
        layers = backbone.layer_map
        backbone.min_size = 75 if "inception" in model_name else max(32, layers[-1].stride)
        names = layers.names
        backbone.style_layers = tuple(names[:-1]) or tuple(names)
        backbone.content_layers = (names[max(0, len(names) - 2)],)
        backbone.dream_layers = (names[-1],)
        return backbone
