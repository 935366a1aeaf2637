"""Feed-forward style networks (Johnson et al. 2016): a small image-transformation network trained
once against the transfer objective, then a picture costs one forward pass.

The network: a 9x9 convolution, two stride-2 convolutions down, ``blocks`` residual blocks, two
upsamplings (nearest neighbour, then a convolution: no transposed convolution, so no checkerboard,
Odena et al. 2016) and a 9x9 convolution back to RGB, instance normalization throughout and
reflection padding. ``width`` is the first layer's channels (32: about 1.7 M parameters with 5
blocks). Pictures are [0, 1] RGB of any size; the output has the input's size.

Training moves the network's weights through the one engine: :class:`NetworkParam` is a
parametrization (like ``--param fft``) whose variable is every weight of the network in one flat
vector and whose picture is the network applied to the current batch of photos. So the runner's
loop, step events, stop policy (Ctrl-C, divergence, out of memory) and optimizers are the ones
every other job uses.

A model file (``.dsm``) is a ``torch.save`` of plain data (tensors, numbers, strings), read back
with ``weights_only=True``: loading one never executes code.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from torch.func import functional_call

from .color import recombine_luminance
from .errors import UserError
from .writers import publish

FORMAT = "dreamstyle-model"
FORMAT_VERSION = 1
SUFFIX = ".dsm"


class ModelError(UserError):
    """A model file that is not one, is from another format version, or does not fit its network."""


@dataclass(frozen=True)
class Architecture:
    width: int = 32  # channels of the first layer
    blocks: int = 5  # residual blocks at a quarter of the resolution
    upsample: str = "nearest"  # nearest or bilinear, each followed by a convolution
    edge: int = 9  # the kernel of the first and last convolutions (full resolution)
    growth: int = 1  # channels times this at each downsampling (1: 32-32-32; 2: Johnson et al.'s 32-64-128)
    taper: int = 4  # the upsampling side's channels divided by this (1: the mirror of the downsampling side)

    def check(self) -> Architecture:
        if not 1 <= int(self.width) <= 512:
            raise ModelError(f"width {self.width}: choose 1 to 512 channels")
        if not 0 <= int(self.blocks) <= 64:
            raise ModelError(f"blocks {self.blocks}: choose 0 to 64 residual blocks")
        if int(self.edge) not in (3, 5, 7, 9):
            raise ModelError(f"edge {self.edge}: choose a kernel of 3, 5, 7 or 9")
        if self.upsample not in ("nearest", "bilinear"):
            raise ModelError(f"upsample {self.upsample!r}: choose nearest or bilinear")
        if int(self.growth) not in (1, 2):
            raise ModelError(f"growth {self.growth}: choose 1 or 2")
        if not 1 <= int(self.taper) <= 16:
            raise ModelError(f"taper {self.taper}: choose 1 to 16")
        return self

    def channels(self) -> tuple[list[int], list[int]]:
        """The downsampling side's channels (full, half, quarter resolution) and the upsampling side's
        (half, full)."""
        w, g, t = int(self.width), int(self.growth), int(self.taper)
        down = [w, w * g, w * g * g]
        return down, [max(1, down[1] // t), max(1, down[0] // t)]


JOHNSON = {"growth": 2, "taper": 1}  # Johnson et al.'s channels (32-64-128, a mirrored decoder)


def _conv(cin: int, cout: int, k: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.ReflectionPad2d(k // 2), nn.Conv2d(cin, cout, k, stride))


def _norm(c: int) -> nn.InstanceNorm2d:
    return nn.InstanceNorm2d(c, affine=True)


class _Residual(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(_conv(c, c, 3), _norm(c), nn.ReLU(inplace=True), _conv(c, c, 3), _norm(c))

    def forward(self, x):
        return x + self.body(x)


class _Up(nn.Module):
    def __init__(self, cin: int, cout: int, mode: str):
        super().__init__()
        self.mode = mode
        self.conv, self.norm = _conv(cin, cout, 3), _norm(cout)

    def forward(self, x, size):
        x = nn.functional.interpolate(
            x, size=size, mode=self.mode, **({} if self.mode == "nearest" else {"align_corners": False})
        )
        return torch.relu(self.norm(self.conv(x)))


class StyleNet(nn.Module):
    """[0, 1] RGB (B, 3, H, W) -> [0, 1] RGB of the same size."""

    def __init__(self, arch: Architecture = Architecture()):
        super().__init__()
        self.arch = arch.check()
        (c1, c2, c3), (u1, u2) = arch.channels()
        self.down = nn.ModuleList(
            [
                nn.Sequential(_conv(3, c1, int(arch.edge)), _norm(c1), nn.ReLU(inplace=True)),
                nn.Sequential(_conv(c1, c2, 3, 2), _norm(c2), nn.ReLU(inplace=True)),
                nn.Sequential(_conv(c2, c3, 3, 2), _norm(c3), nn.ReLU(inplace=True)),
            ]
        )
        self.blocks = nn.Sequential(*[_Residual(c3) for _ in range(int(arch.blocks))])
        self.up = nn.ModuleList([_Up(c3, u1, arch.upsample), _Up(u1, u2, arch.upsample)])
        self.out = _conv(u2, 3, int(arch.edge))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sizes = []
        h = (x - 0.5) * 2.0  # centred input
        for layer in self.down:
            sizes.append(h.shape[-2:])
            h = layer(h)
        h = self.blocks(h)
        for layer, size in zip(self.up, reversed(sizes[1:])):  # back to each level's exact size (odd sides)
            h = layer(h, size)
        return (torch.tanh(self.out(h)) + 1.0) / 2.0


def parameter_count(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


class NetworkParam:
    """A parametrization whose variable is ``net``'s weights (one flat vector) and whose picture is
    ``net(photos)``: the engine's optimizer trains the network. ``photos`` is set before each step
    (a new batch); the picture's size is the batch's."""

    clamp = False  # tanh keeps the output in range
    step_scale = 1.0  # learning rates are the optimizer's own (Adam's 1e-3), not in 0-255 pixel units

    def __init__(self, net: StyleNet):
        self.net = net
        self.names = [name for name, _ in net.named_parameters()]
        self.shapes = [p.shape for _, p in net.named_parameters()]
        self.buffers = dict(net.named_buffers())
        self.photos: torch.Tensor | None = None
        self.variable: torch.Tensor | None = None

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """The network's weights as one vector (``image``, the first batch, sets ``photos``)."""
        if self.photos is None:
            self.photos = image
        flat = torch.cat([p.detach().reshape(-1) for p in self.net.parameters()]).to(image.device)
        self.variable = flat
        return flat

    def weights(self, z: torch.Tensor) -> dict:
        out, at = {}, 0
        for name, shape in zip(self.names, self.shapes):
            n = shape.numel()
            out[name] = z[at : at + n].view(shape)
            at += n
        return out

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        self.variable = z
        return functional_call(self.net, (self.weights(z), self.buffers), (self.photos,))

    def store(self) -> StyleNet:
        """Copy the trained vector back into ``net`` (after the run) and return it."""
        if self.variable is not None:
            with torch.no_grad():
                for p, w in zip(self.net.parameters(), self.weights(self.variable.detach()).values()):
                    p.copy_(w.to(p.device))
        return self.net


# --- model files -----------------------------------------------------------------------------------
def save_model(path: str | os.PathLike, net: StyleNet, recipe: dict, step: int = 0, overwrite: bool = True) -> Path:
    """Write ``net`` with its architecture, training recipe and step, atomically."""
    state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in net.state_dict().items()}
    data = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "architecture": asdict(net.arch),
        "state": state,
        "recipe": json.dumps(recipe, sort_keys=True, default=str),
        "step": int(step),
    }
    buffer = io.BytesIO()
    torch.save(data, buffer)
    return publish(path, lambda fh: fh.write(buffer.getvalue()), overwrite)


@dataclass
class Model:
    net: StyleNet
    recipe: dict
    step: int
    path: Path


def load_model(path: str | os.PathLike, device="cpu") -> Model:
    """Read a model file without executing anything in it; every way it can be wrong is one line."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such model file")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # not a torch file, damaged, or holding more than plain data
        raise ModelError(f"{path} is not a dreamstyle model file ({type(exc).__name__})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ModelError(f"{path} is not a dreamstyle model file")
    if data.get("version") != FORMAT_VERSION:
        raise ModelError(
            f"{path} is a model file of format version {data.get('version')}; this dreamstyle reads "
            f"version {FORMAT_VERSION} (train it again with this version)"
        )
    try:
        arch = Architecture(**{**JOHNSON, **data["architecture"]})  # files from before growth and taper
        net = StyleNet(arch)
        net.load_state_dict(data["state"], strict=True)
        recipe = json.loads(data.get("recipe") or "{}")
    except ModelError:
        raise
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{path}: its weights do not fit its network ({first[:200]})") from None
    return Model(net.to(device).eval(), recipe, int(data.get("step", 0)), path)


@torch.no_grad()
def stylize(net: StyleNet, image: torch.Tensor, strength: float = 1.0, preserve_color: bool = False) -> torch.Tensor:
    """``net`` applied to ``image`` (B, 3, H, W) in [0, 1]; ``preserve_color``: the picture's
    luminance with the photo's colours; ``strength`` < 1 blends with the photo."""
    out = net(image)
    if preserve_color:
        out = recombine_luminance(out, image)
    return out if strength >= 1.0 else torch.lerp(image, out, float(strength))


def export_onnx(net: StyleNet, path: str | os.PathLike, overwrite: bool = True) -> Path:
    """``net`` as an ONNX model (opset 17; batch, height and width dynamic; input ``image`` and
    output ``styled``, [0, 1] RGB NCHW) that onnxruntime runs, for phones and browsers. Needs the
    ``onnx`` extra (``pip install 'dreamstyle[onnx]'``)."""
    if importlib.util.find_spec("onnx") is None:
        raise ModelError("exporting to ONNX needs the onnx package: pip install 'dreamstyle[onnx]'")
    net = net.to("cpu").eval()
    example = torch.rand(1, 3, 64, 64)
    axes = {0: "batch", 2: "height", 3: "width"}
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # the exporter's notes on instance norm and shape inference
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            (example,),
            buffer,
            dynamo=False,
            opset_version=17,
            input_names=["image"],
            output_names=["styled"],
            dynamic_axes={"image": axes, "styled": axes},
        )
    return publish(path, lambda fh: fh.write(buffer.getvalue()), overwrite)
