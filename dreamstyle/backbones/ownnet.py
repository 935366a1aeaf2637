"""Reading your own network: ``--backbone FILE`` (TorchScript, a
``torch.export`` archive, ONNX) or ``--backbone MODULE:CALLABLE`` (a model in your Python code, its
weights from ``--weights FILE``).

No pickle is ever unpickled: TorchScript files load through ``torch.jit.load`` (TorchScript's own
reader, which makes only TorchScript's types), ``torch.export`` archives through
``torch.export.load`` once the archive is checked to hold no pickled object and with every tensor
read as ``weights_only`` (torch's own switch, ``TORCH_FORCE_WEIGHTS_ONLY_LOAD``), ONNX files
through onnx2torch (protobuf), and a callable's weights through ``torch.load(weights_only=True)``.
A plain ``torch.save`` of a module, or a state dict given as the network, is refused in one line
that says how to save one that works.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import BackboneError, OptionError, WeightsError
from .base import Backbone, Preprocess, check_readable_file, read_state_dict
from .derive import CannotConvert, derive, input_channels, script_to_fx, tapped
from .own import HOW, InputSpec

# --- reading a file, never a pickle ---------------------------------------------------------------------


def file_format(path: Path) -> str:
    """torchscript, export or onnx; anything else is one line saying what it is and what works."""
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head[:2] != b"PK":
        if path.suffix.lower() == ".onnx":
            return "onnx"
        if head[:1] == b"\x80":  # a pickle protocol mark: torch.save's old format
            raise BackboneError(f"{path} is a pickle (torch.save's legacy format), which dreamstyle never loads; {HOW}")
        raise BackboneError(f"{path} is not a TorchScript, torch.export or ONNX file; {HOW}")
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise BackboneError(f"{path} is damaged: not a whole zip archive ({exc}); {HOW}") from None
    if any(n.endswith("/archive_format") or n == "archive_format" for n in names) or any(
        "/models/" in n and n.endswith(".json") for n in names
    ):
        return "export"
    if any("/code/" in n for n in names) and any(n.endswith("/constants.pkl") for n in names):
        return "torchscript"
    if any(n.endswith("data.pkl") for n in names):
        if _holds_state_dict(path):
            raise BackboneError(f"{path} holds a state dict: weights without the network; {HOW}")
        raise BackboneError(
            f"{path} is a whole module pickled by torch.save, which dreamstyle never unpickles (a pickle can "
            f"run any code); {HOW}"
        )
    raise BackboneError(f"{path} is a zip archive but not a TorchScript or torch.export file; {HOW}")


def _holds_state_dict(path: Path) -> bool:
    try:
        read_state_dict(path)  # weights_only: tensors and plain containers, never code
    except WeightsError:
        return False
    return True


@contextlib.contextmanager
def weights_only_loads():
    """Every ``torch.load`` inside reads tensors only (torch's switch), whatever its caller asks."""
    saved = os.environ.get("TORCH_FORCE_WEIGHTS_ONLY_LOAD")
    os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = "1"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("TORCH_FORCE_WEIGHTS_ONLY_LOAD", None)
        else:
            os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = saved


def check_export_archive(path: Path) -> None:
    """A torch.export archive holds no object only a pickle can make: torch.export.load reads opaque
    objects with pickle.loads and custom (torchbind) objects with TorchScript's unpickler, whatever
    torch.load is told. Tensors torch pickles (quantized, sparse) are read by torch.load, which
    :func:`weights_only_loads` keeps to tensors."""
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            base = name.rsplit("/", 1)[-1]
            if "/data/constants/" in name and base.startswith(("custom_obj", "opaque_obj")):
                raise BackboneError(
                    f"{path} holds a Python object ({base}) that only a pickle can make; dreamstyle loads "
                    "tensors and graphs only: export a network whose constants are tensors"
                )


def load_graph(path: Path):
    """The network in ``path`` as a GraphModule (torch.fx), read without unpickling anything."""
    check_readable_file(path, "backbone file")
    fmt = file_format(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if fmt == "torchscript":
                script = torch.jit.load(str(path), map_location="cpu")
                try:
                    return script_to_fx(script.eval()), fmt
                except CannotConvert as exc:
                    raise BackboneError(
                        f"{path}: dreamstyle cannot see inside this TorchScript network ({exc}); save it with "
                        "torch.export instead (torch.export.save(torch.export.export(model, (x,)), PATH))"
                    ) from None
            if fmt == "export":
                check_export_archive(path)
                with weights_only_loads():
                    program = torch.export.load(str(path))
                return program.module(check_guards=False), fmt
            return onnx_graph(path), fmt
    except BackboneError:
        raise
    except Exception as exc:  # noqa: BLE001 - a damaged or foreign file: one line
        raise BackboneError(
            f"{path} is damaged or not a {fmt} file dreamstyle can read ({type(exc).__name__}: "
            f"{' '.join(str(exc).split())[:160]}); {HOW}"
        ) from None


def onnx_graph(path: Path):
    try:
        from onnx2torch import convert
    except ImportError:
        raise BackboneError(
            f"{path} is an ONNX file: reading one needs onnx2torch (pip install 'dreamstyle[onnx]')"
        ) from None
    return convert(str(path))


def load_callable(spec: str):
    """The nn.Module that ``MODULE:CALLABLE`` returns (the module imported from the current folder
    or an installed package)."""
    module_name, _, attr = spec.partition(":")
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise OptionError(f"--backbone {spec}: cannot import {module_name!r} ({exc})") from None
    target = module
    for part in attr.split("."):
        target = getattr(target, part, None)
        if target is None:
            raise OptionError(f"--backbone {spec}: module {module_name!r} has no {attr!r}")
    try:
        model = target() if callable(target) and not isinstance(target, torch.nn.Module) else target
    except Exception as exc:  # noqa: BLE001 - the user's code failed: one line naming it
        raise BackboneError(f"--backbone {spec}: calling {attr} raised {type(exc).__name__}: {exc}") from None
    if not isinstance(model, torch.nn.Module):
        raise OptionError(f"--backbone {spec}: {attr} returned {type(model).__name__}, not a torch.nn.Module")
    return model


def trace(model, name: str):
    try:
        return torch.fx.symbolic_trace(model.eval())
    except Exception as exc:  # noqa: BLE001
        raise BackboneError(
            f"backbone {name!r}: torch.fx cannot trace its forward ({type(exc).__name__}: "
            f"{' '.join(str(exc).split())[:160]}); save it with torch.export and give the .pt2 file"
        ) from None


# --- the backbone --------------------------------------------------------------------------------------


@dataclass
class OwnBackbone(Backbone):
    """A network from a file or a callable; its layer map derived from its graph."""

    source: str = ""  # the path, or MODULE:CALLABLE
    kind: str = "file"  # file or python
    inputs: InputSpec = field(default_factory=InputSpec)
    poolings: tuple = ("max",)

    def _graph(self):
        cached = self.__dict__.get("_gm")
        if cached is None:
            if self.kind == "file":
                cached, fmt = load_graph(Path(self.source).expanduser())
                self.__dict__["format"] = fmt
            else:
                cached = trace(load_callable(self.source), self.name)
            self.__dict__["_gm"] = cached
        return cached

    def _derived(self):
        cached = self.__dict__.get("_derived_map")
        if cached is None:
            gm = self._graph()
            channels = self.inputs.channels or input_channels(gm) or 3
            cached = derive(gm, channels, self.name)
            self.__dict__["_derived_map"] = cached
            self.content_layers, self.style_layers, self.dream_layers = cached.content, cached.style, cached.dream
            self.preprocess = preprocess_for(self.inputs, channels)
            self.min_size = max(16, cached.layers[-1].stride)
        return cached

    def _layers(self):
        return self._derived().layers

    def configured(self, inputs: InputSpec) -> OwnBackbone:
        """This network with the picture fed as ``inputs`` says (the graph is shared, not read again)."""
        if inputs == self.inputs:
            return self
        other = OwnBackbone(self.name, self.description, source=self.source, kind=self.kind, inputs=inputs)
        if "_gm" in self.__dict__:
            other.__dict__["_gm"] = self.__dict__["_gm"]
        other._derived()
        return other

    def renamed(self, name: str) -> OwnBackbone:
        """The same network under another name (``file:X`` and ``X``)."""
        other = OwnBackbone(name, self.description, source=self.source, kind=self.kind, inputs=self.inputs)
        other.__dict__.update({k: v for k, v in self.__dict__.items() if k in ("_gm", "format")})
        other._derived()
        return other

    def to_dict(self) -> dict:
        self._derived()
        return {**super().to_dict(), "source": self.source, "input_channels": self.preprocess.channels}

    def pretrained_file(self):
        if self.kind == "file":
            return Path(self.source), "its own file"
        return None, "--weights FILE (a state dict), or --weights random"

    def _make(self, pooling: str = "max"):
        if self.kind == "python":
            return trace(load_callable(self.source), self.name)
        return self._graph()

    def build(self, weights=None, pooling: str = "max"):
        self._derived()
        self.check_weights(weights)
        if pooling not in self.poolings:
            raise OptionError(f"backbone {self.name!r} is your own network: it has no --pooling {pooling}")
        model = self._make(pooling)
        if self.kind == "python" and weights != "random":
            path = Path(weights).expanduser()
            check_readable_file(path, "weights file")
            self._load_file(model, path)
        for tensor in [*model.parameters(), *model.buffers()]:  # frozen (an exported graph has no eval())
            tensor.requires_grad_(False)
        return model, self.preprocess

    def check_weights(self, weights) -> None:
        """A file carries its weights; your code needs --weights FILE (or random): before any work."""
        if self.kind == "file" and weights not in (None, "default", "pretrained"):
            raise WeightsError(f"backbone {self.name!r} is a file that carries its weights: leave --weights out")
        if self.kind == "python" and weights in (None, "default", "pretrained"):
            raise WeightsError(
                f"backbone {self.name!r} is your code: give its weights with --weights FILE (a state dict, read "
                "weights only), or --weights random"
            )

    def _load_pretrained(self, model) -> Preprocess:
        return self.preprocess

    def extractor(self, model, modules: list[str]):
        try:
            return tapped(model, modules)
        except Exception as exc:  # noqa: BLE001 - a graph that cannot be cut: one line naming why
            raise BackboneError(
                f"backbone {self.name!r}: cannot cut its graph after {modules[-1]!r} ({type(exc).__name__}: "
                f"{' '.join(str(exc).split())[:160]})"
            ) from None

    def _load_file(self, model, path: Path) -> Preprocess:
        state = read_state_dict(path)
        own = dict(model.named_parameters(), **dict(model.named_buffers()))
        missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
        unexpected = [k for k in state if k not in own]
        if missing or unexpected:
            said = "; ".join(
                f"{what}: {', '.join(sorted(keys)[:4])}"
                for what, keys in (("missing keys", missing), ("unexpected keys", unexpected))
                if keys
            )
            raise WeightsError(f"weights in {path} do not fit backbone {self.name!r}: {said}")
        model.load_state_dict(state, strict=False)
        return self.preprocess


def preprocess_for(inputs: InputSpec, channels: int) -> Preprocess:
    """The picture to the network's input: its channels mixed as ``--show-channels`` says (default: RGB
    for 3 channels, grey for 1, the first three for more), then ``--input-range`` and ``--mean``/``--std``."""
    lo, hi = inputs.input_range or (0.0, 1.0)
    mean = _per_channel(inputs.mean, channels, "--mean", 0.0)
    std = _per_channel(inputs.std, channels, "--std", 1.0)
    show = tuple(inputs.show) if inputs.show else default_show(channels)
    bad = [c for c in show if c >= channels]
    if bad:
        raise OptionError(
            f"--show-channels {','.join(map(str, show))}: the network has {channels} input channels (0 to {channels - 1})"
        )
    if inputs.hold is not None:
        hold = (float(inputs.hold),) * channels
    elif inputs.mean is not None:  # the held channels sit at their mean: the network sees 0 there
        hold = tuple(min(1.0, max(0.0, (m - lo) / (hi - lo))) for m in mean)
    else:
        hold = (0.5,) * channels
    return Preprocess(
        scale=hi - lo,
        mean=tuple(m - lo for m in mean),
        std=std,
        channels=channels,
        show=() if show == (0, 1, 2) and channels == 3 else show,
        hold=hold,
    )


def default_show(channels: int) -> tuple[int, ...]:
    if channels == 1:
        return (0, 0, 0)
    if channels == 2:
        return (0, 1, 1)
    return (0, 1, 2)


def _per_channel(values, channels: int, flag: str, default: float) -> tuple:
    if values is None:
        return (default,) * channels
    if len(values) == 1:
        return tuple(values) * channels
    if len(values) != channels:
        raise OptionError(
            f"{flag} gives {len(values)} values; the network has {channels} input channels (give 1 or {channels})"
        )
    return tuple(values)
