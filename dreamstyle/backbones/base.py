"""What a backbone is: a name, a static layer map, preprocessing, and a builder.

A :class:`Backbone` never loads weights to describe itself: ``layer_map`` is data.
``build(weights)`` returns the frozen network; :class:`FeatureNet` wraps it so that a
forward pass returns only the requested layers and runs no further than the deepest.
"""

from __future__ import annotations

import contextlib
import os
import stat
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import OptionError, UserError, WeightsError
from ..layers import Layer, LayerMap
from .hub import checkpoints_dir, torch_hub_file


@dataclass(frozen=True)
class Preprocess:
    """How an RGB image in [0, 1] becomes the network's input.

    ``channel_order`` is the order the network expects ("RGB" or "BGR"); ``scale``
    multiplies the [0, 1] image (255 for Caffe-style weights); ``mean`` and ``std`` are in
    the network's channel order and value range.

    A network that does not take RGB (your own network, ``--backbone FILE``) says how the picture's
    three channels feed its ``channels``: ``show[k]`` is the network channel that picture channel k
    (R, G, B) feeds (a channel fed by several gets their mean: ``(0, 0, 0)`` is a greyscale picture
    for a 1-channel network); each channel none feeds is held at ``hold[c]`` (a [0, 1] value).
    """

    channel_order: str = "RGB"
    scale: float = 1.0
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)
    channels: int = 3
    show: tuple[int, ...] = ()  # () : the picture's R, G, B are the network's three channels
    hold: tuple[float, ...] = ()  # per network channel: the value of those the picture does not feed

    def to_dict(self) -> dict:
        out = {
            "channel_order": self.channel_order,
            "scale": self.scale,
            "mean": list(self.mean),
            "std": list(self.std),
        }
        if self.show:
            out.update(channels=self.channels, show=list(self.show), hold=list(self.hold))
        return out

    @property
    def grey(self) -> bool:
        """Whether the network sees one mean of the picture's channels: the picture is shown in grey."""
        return bool(self.show) and len(set(self.show)) == 1

    def shown(self, t):
        """The picture ``t`` (B, 3 or 4, H, W) as the network sees it, to show and save: grey where it
        sees grey (alpha kept), else as it is."""
        if not self.grey:
            return t
        import torch

        grey = t[:, :3].mean(1, keepdim=True).expand(-1, 3, -1, -1)
        return torch.cat([grey, t[:, 3:]], 1)

    def mixing(self):
        """(W, b): the network's channels (before ``scale``, ``mean`` and ``std``) are ``W @ rgb + b``."""
        import torch

        if not self.show:
            return None
        w = torch.zeros(self.channels, 3)
        for k, c in enumerate(self.show):
            w[c, k] = 1.0
        fed = w.sum(1, keepdim=True)
        w = torch.where(fed > 0, w / fed.clamp_min(1), w)
        b = torch.tensor([0.0 if fed[c] else float(self.hold[c]) for c in range(self.channels)])
        return w, b

    def module(self):
        """An ``nn.Module`` mapping RGB [0, 1] to the network's input: ``x * w + b`` (the picture's
        channels first mixed into the network's, where it does not take RGB)."""
        import torch
        from torch import nn

        std = torch.tensor(self.std, dtype=torch.float32)
        mean = torch.tensor(self.mean, dtype=torch.float32)
        bgr = self.channel_order.upper() == "BGR"
        mixing = self.mixing()

        class Normalize(nn.Module):
            def __init__(self):
                super().__init__()
                self.register_buffer("w", (self_scale / std).view(1, -1, 1, 1))
                self.register_buffer("b", (-mean / std).view(1, -1, 1, 1))
                if mixing is not None:
                    self.register_buffer("mix", mixing[0])
                    self.register_buffer("held", mixing[1].view(1, -1, 1, 1))

            def forward(self, x):
                if bgr:
                    x = x.flip(1)
                if mixing is not None:
                    x = torch.einsum("ck,bkhw->bchw", self.mix.to(x.dtype), x[:, :3]) + self.held.to(x.dtype)
                return torch.addcmul(self.b, x, self.w)

        self_scale = self.scale
        return Normalize()


IMAGENET = Preprocess()
CAFFE_BGR = Preprocess(channel_order="BGR", scale=255.0, mean=(103.939, 116.779, 123.68), std=(1.0, 1.0, 1.0))


@dataclass
class Backbone:
    """A network users can tap. Subclasses fill in ``_layers`` and ``_make``."""

    name: str
    description: str = ""
    preprocess: Preprocess = IMAGENET
    min_size: int = 32
    native_size: int = 224
    content_layers: Sequence[str] = ()
    style_layers: Sequence[str] = ()
    dream_layers: Sequence[str] = ()
    poolings: Sequence[str] = ("max",)
    weights_note: str = ""
    # state-dict key prefixes a weights file may have or lack (classifier heads we never run)
    optional_prefixes: Sequence[str] = ()
    plugin: str = ""  # filled in by the registry: which plugin supplied it

    # --- static description -------------------------------------------------
    @property
    def layer_map(self) -> LayerMap:
        cached = self.__dict__.get("_layer_map")
        if cached is None:
            cached = LayerMap(self._layers(), backbone=self.name)
            self.__dict__["_layer_map"] = cached
        return cached

    def _layers(self) -> list[Layer]:
        raise NotImplementedError

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "description": self.description,
            "plugin": self.plugin,
            "min_size": self.min_size,
            "preprocess": self.preprocess.to_dict(),
            "poolings": list(self.poolings),
            "content_layers": list(self.content_layers),
            "style_layers": list(self.style_layers),
            "dream_layers": list(self.dream_layers),
            "layers": len(self.layer_map),
        }

    # --- building -------------------------------------------------------------
    # True where loading weights (pretrained or a file) is checked to set every parameter the
    # extraction can reach: the random initialization is then skipped (it is work thrown away).
    skip_init_when_loading = False

    def _make(self, pooling: str = "max"):
        """The architecture with random weights (subclasses)."""
        raise NotImplementedError

    def pretrained_file(self) -> tuple[Path | None, str]:
        """Where the default pretrained weights are on this machine, found without the network: (the
        file, or None where it is not here; how to get them, in a few words). Subclasses that have
        pretrained weights say; a plugin's backbone that does not is listed as unknown."""
        return None, "not known: try it, or --weights FILE"

    def _load_pretrained(self, model) -> Preprocess:
        """Load the default pretrained weights into ``model`` (subclasses)."""
        raise WeightsError(f"backbone {self.name!r} has no pretrained weights; use --weights random or --weights FILE")

    def _load_file(self, model, path: Path) -> Preprocess:
        """Load a local state dict file; returns the preprocessing the weights expect."""
        state = read_state_dict(path)
        load_state_dict_checked(model, state, self, source=str(path))
        return self.preprocess

    def build(self, weights: str | os.PathLike | None = None, pooling: str = "max"):
        """The frozen full network and the preprocessing its weights expect.

        ``weights``: ``None``/"default"/"pretrained" for the pretrained weights,
        "random" for random initialization, or a path to a state dict file.
        """
        if pooling not in self.poolings:
            raise OptionError(
                f"backbone {self.name!r} does not offer --pooling {pooling}; it offers: {', '.join(self.poolings)}"
            )
        loading = weights != "random"
        with skipped_init() if loading and self.skip_init_when_loading else contextlib.nullcontext():
            model = self._make(pooling=pooling)
        if weights in (None, "default", "pretrained"):
            pre = self._load_pretrained(model)
        elif weights == "random":
            pre = self.preprocess
        else:
            path = Path(weights).expanduser()
            check_readable_file(path, "weights file")
            pre = self._load_file(model, path)
        model.eval().requires_grad_(False)
        disable_inplace(model)
        return model, pre

    def extractor(self, model, modules: list[str]):
        """A module returning the outputs of ``modules`` (a list, in that order),
        computing nothing past the deepest one. Default: torch.fx graph extraction."""
        return FxExtractor(model, modules)

    def check_size(self, height: int, width: int, what: str = "input") -> None:
        if min(height, width) < self.min_size:
            raise UserError(
                f"{what} is {width}x{height} px: its short side, {min(height, width)} px, is below the "
                f"{self.min_size} px minimum of backbone {self.name!r}"
            )


_INIT_FUNCTIONS = (
    "uniform_",
    "normal_",
    "trunc_normal_",
    "constant_",
    "ones_",
    "zeros_",
    "xavier_uniform_",
    "xavier_normal_",
    "kaiming_uniform_",
    "kaiming_normal_",
    "orthogonal_",
)


@contextlib.contextmanager
def skipped_init():
    """Build modules without running torch.nn.init on their parameters (they are loaded next)."""
    from torch.nn import init

    saved = {name: getattr(init, name) for name in _INIT_FUNCTIONS if hasattr(init, name)}
    try:
        for name in saved:
            setattr(init, name, lambda tensor, *args, **kwargs: tensor)
        yield
    finally:
        for name, fn in saved.items():
            setattr(init, name, fn)


def disable_inplace(model) -> None:
    """In-place activations would overwrite features captured just before them."""
    for module in model.modules():
        if hasattr(module, "inplace") and isinstance(module.inplace, bool):
            module.inplace = False


def FxExtractor(model, modules: list[str]):
    import torch
    from torchvision.models.feature_extraction import create_feature_extractor

    class _Fx(torch.nn.Module):
        def __init__(self):
            super().__init__()

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.body = create_feature_extractor(model, return_nodes={m: m for m in modules})
            self.modules_ = list(modules)

        def forward(self, x):
            out = self.body(x)
            return [out[m] for m in self.modules_]

    return _Fx()


def check_readable_file(path: Path, what: str) -> None:
    """A regular file this process can read, or one line saying what it is instead."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise WeightsError(f"{what} not found: {path}") from None
    except OSError as exc:  # a symlink loop, a name too long, ...
        raise WeightsError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(mode):
        raise WeightsError(f"{what} {path} is a folder, not a file")
    if not stat.S_ISREG(mode):
        kind = "a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a device or socket"
        raise WeightsError(f"{what} {path} is {kind}, not a regular file")
    if not os.access(path, os.R_OK):
        raise WeightsError(f"cannot read {what} {path}: permission denied")


def read_state_dict(path: Path) -> dict:
    import torch

    try:
        with warnings.catch_warnings():  # torch warns on pickles it refuses; the one line below says it all
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except OSError as exc:
        raise WeightsError(f"cannot read weights file {path}: {exc.strerror or exc}") from None
    except Exception as exc:  # pickle, zip or format errors: all mean "not a state dict we can read"
        raise WeightsError(
            f"cannot read weights file {path}: not a PyTorch state dict ({type(exc).__name__})"
        ) from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"weights file {path} does not hold a state dict (a mapping of names to tensors)")
    return {k.removeprefix("module."): v for k, v in state.items()}


def _short(keys, n=4) -> str:
    keys = sorted(keys)
    more = f" and {len(keys) - n} more" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def load_state_dict_checked(model, state: dict, backbone: Backbone, source: str) -> None:
    """Load ``state`` into ``model``; say exactly which keys or shapes differ if it does not fit."""
    own = model.state_dict()
    optional = tuple(backbone.optional_prefixes)
    state = {k: v for k, v in state.items() if k in own or not k.startswith(optional)}
    missing = [
        k for k in own if k not in state and not k.startswith(optional) and not k.endswith("num_batches_tracked")
    ]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing keys: {_short(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_short(unexpected)}")
    if shapes:
        problems.append(f"shapes differ (file vs {backbone.name}): {_short(shapes, 3)}")
    if problems:
        raise WeightsError(f"weights in {source} do not fit backbone {backbone.name!r}: " + "; ".join(problems))
    model.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)


def torchvision_weights_url(backbone: Backbone) -> str:
    """The URL of torchvision's default weights for ``backbone`` (``backbone.tv_weights`` names the enum)."""
    import torchvision.models

    return getattr(torchvision.models, backbone.tv_weights).DEFAULT.url


def torchvision_pretrained_file(backbone: Backbone) -> tuple[Path | None, str]:
    """:meth:`Backbone.pretrained_file` of a backbone with torchvision's weights (``tv_weights``)."""
    url = torchvision_weights_url(backbone)
    path = checkpoints_dir() / os.path.basename(url)
    return (path if path.is_file() else None), f"downloaded on first use (or place {url} at {path})"


def load_torchvision_pretrained(backbone: Backbone, model) -> Preprocess:
    """Load torchvision's default weights for ``backbone`` (``backbone.tv_weights`` names the enum)
    from the torch hub cache, downloaded first where the host answers."""
    url = torchvision_weights_url(backbone)
    path = torch_hub_file(url, backbone.name)
    load_state_dict_checked(model, read_state_dict(path), backbone, source=f"the torch hub cache ({path})")
    return backbone.preprocess
