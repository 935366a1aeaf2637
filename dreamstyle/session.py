"""A session: the device, the precision and the loaded backbone of a run, shared by every stage,
frame and image of it (and by every panel of a reconstruction)."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import torch

from .backbones import LoadedBackbone, probe
from .backbones.own import InputSpec, is_own
from .errors import OptionError
from .faults import OutOfMemory, is_out_of_memory
from .plugins import get_backbone
from .runtime import (
    amp_dtype,
    make_evaluate,
    make_extract,
    precision_name,
    prepare_net,
    resolve_device,
    use_channels_last,
)
from .settings import plain


class Session:
    """``backbone`` is a registered name or a :class:`~dreamstyle.backbones.Backbone`; ``loaded`` an
    already loaded one to reuse. Weights load on first use (after every check of the job)."""

    def __init__(
        self,
        backbone="vgg19",
        weights: str | os.PathLike | None = None,
        pooling: str = "max",
        device="auto",
        precision: str = "auto",
        compile: bool = False,
        loaded: LoadedBackbone | None = None,
    ):
        self.device = resolve_device(device)
        self.dtype = amp_dtype(self.device, precision)
        self.precision = precision
        if loaded is not None:  # a backbone already loaded: the settings must ask for that one
            if isinstance(backbone, str) and backbone != loaded.backbone.name or pooling != loaded.pooling:
                raise OptionError(
                    f"the loaded backbone is {loaded.backbone.name} with {loaded.pooling} pooling; "
                    f"the settings ask for {backbone} with {pooling} pooling"
                )
            self.backbone, weights = loaded.backbone, loaded.weights
        else:
            self.backbone = get_backbone(backbone) if isinstance(backbone, str) else backbone
        if pooling not in self.backbone.poolings:
            raise OptionError(
                f"backbone {self.backbone.name!r} does not offer --pooling {pooling}; it offers: "
                f"{', '.join(self.backbone.poolings)}"
            )
        self.weights, self.pooling, self.compile = weights, pooling, compile
        self._loaded = loaded
        self._nets: dict[tuple, torch.nn.Module] = {}

    @classmethod
    def for_settings(cls, settings, loaded: LoadedBackbone | None = None) -> Session:
        return cls(
            backbone_for(settings) if loaded is None else settings.backbone,
            settings.weights,
            settings.pooling,
            settings.device,
            settings.precision,
            settings.compile,
            loaded,
        )

    @property
    def loaded(self) -> LoadedBackbone:
        if self._loaded is None:
            try:
                self._loaded = LoadedBackbone(self.backbone, self.weights, self.pooling, self.device)
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                raise OutOfMemory(
                    f"out of memory on {self.device} loading backbone {self.backbone.name!r}; try "
                    "--device cpu or a smaller backbone"
                ) from None
        return self._loaded

    @property
    def is_loaded(self) -> bool:
        """Whether the backbone's weights are loaded (they load on first use)."""
        return self._loaded is not None

    def describe_weights(self) -> str:
        """What loading the backbone reads, in words: "vgg19 (random weights)", "vgg19 (weights from F)"."""
        name, w = self.backbone.name, self.weights
        if w is None:
            return f"{name}'s weights"
        if str(w) == "random":
            return f"{name} (random weights)"
        return f"{name}'s weights from {Path(w).name}"

    @property
    def channels_last(self) -> bool:
        return use_channels_last(self.device, self.dtype)

    def net(self, layers, circular: bool = False):
        """The feature net returning ``layers`` (truncated after the deepest), built once per set of
        layers; ``circular`` pads every convolution circularly (seamless textures), on a copy."""
        names = tuple(self.backbone.layer_map.order(layers))
        key = (names, circular)
        if key not in self._nets:
            net = self.loaded.features(names)
            probe(net, self.backbone, self.device)  # the layer map against the network, once per net
            if circular:
                net = copy.deepcopy(net)
                for module in net.modules():
                    if isinstance(module, torch.nn.Conv2d):
                        module.padding_mode = "circular"
            self._nets[key] = prepare_net(net, self.device, self.compile, self.dtype)
        return self._nets[key]

    def evaluate(self, net, objective):
        return make_evaluate(net, objective, self.device, self.dtype)

    def extract(self, net):
        return make_extract(net, self.device, self.dtype)

    def recipe(self, paths: str = "full") -> dict:
        """What a recipe records of the session; ``paths`` "names": a weights file by its name only."""
        weights = (
            self.loaded.weights
            if self._loaded is not None
            else ("default" if self.weights is None else str(self.weights))
        )
        return {
            "weights": plain(weights, paths, files=True),
            "device_used": str(self.device),
            "precision_used": precision_name(self.dtype),
        }


INPUT_OPTIONS = ("input_channels", "mean", "std", "input_range", "show_channels", "hold_value")


def backbone_for(settings):
    """The settings' backbone: your own network fed as the input options say (``--input-channels``,
    ``--mean``, ...); those options with any other backbone are one line."""
    given = [name for name in INPUT_OPTIONS if getattr(settings, name, None) is not None]
    if not given and not is_own(settings.backbone):
        return settings.backbone
    backbone = get_backbone(settings.backbone)
    if not hasattr(backbone, "configured") and not given:  # a path-like name a plugin's family resolved
        return settings.backbone
    if not hasattr(backbone, "configured"):
        flag = "--" + given[0].replace("_", "-")
        raise OptionError(
            f"{flag} goes with your own network (--backbone FILE or MODULE:CALLABLE), not with "
            f"{settings.backbone!r}, whose input is declared with it"
        )
    backbone = backbone.configured(InputSpec.of(settings))
    backbone.check_weights(settings.weights)
    return backbone
