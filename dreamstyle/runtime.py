"""Device and precision: which device, which autocast dtype, which memory format; the evaluate and
extract closures over a feature net; versions for the recipe."""

from __future__ import annotations

import contextlib
import platform
from importlib import metadata
from typing import Callable

import torch

from .errors import OptionError
from .version import __version__

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def resolve_device(spec: str | torch.device | None = "auto") -> torch.device:
    if isinstance(spec, torch.device):
        return spec
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise OptionError(f"--device {spec}: CUDA is not available on this machine; use --device cpu or auto")
        try:
            dev = torch.device(spec)
        except RuntimeError:
            raise OptionError(f"--device {spec!r} is not a device; use auto, cpu, cuda or cuda:N") from None
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise OptionError(f"--device {spec}: there are {torch.cuda.device_count()} CUDA devices")
        return dev
    raise OptionError(f"--device {spec!r} is not a device; use auto, cpu, cuda or cuda:N")


def cpu_runs_bf16() -> bool:
    """True where this CPU computes bf16 natively (x86 AVX512-BF16 or AMX, Arm BF16), as oneDNN
    reports it. On x86, oneDNN also says yes for plain AVX-512, where bf16 is emulated and no
    faster, so the CPU's own flags must name bf16 too."""
    try:
        if not (torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()):
            return False
    except (AttributeError, RuntimeError):  # an older torch, or a build without oneDNN
        return False
    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686"):
        return True
    try:
        with open("/proc/cpuinfo") as fh:
            flags = next((line.split(":", 1)[1].split() for line in fh if line.startswith("flags")), [])
    except OSError:  # not Linux: trust oneDNN
        return True
    return "avx512_bf16" in flags or "amx_bf16" in flags


def amp_dtype(device: torch.device, precision: str = "auto"):
    """The autocast dtype for feature extraction, or None for fp32.

    "auto": bf16 on CUDA devices that support it (fp16 otherwise), bf16 on CPUs that compute it
    natively (:func:`cpu_runs_bf16`), fp32 on other CPUs. Gram matrices and losses stay fp32."""
    if precision not in PRECISIONS:
        raise OptionError(f"--precision {precision!r}: choose {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return None
    if device.type == "cpu":
        if precision == "fp16":
            raise OptionError(
                "--precision fp16 is not available on the CPU (it diverges there); use --precision bf16 (or auto)"
            )
        if precision == "auto" and not cpu_runs_bf16():
            return None
        return torch.bfloat16
    if precision in ("auto", "bf16"):
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            return torch.float16
        return torch.bfloat16
    return torch.float16


def precision_name(dtype) -> str:
    """What the recipe records: "fp32", "bfloat16" or "float16"."""
    return str(dtype).replace("torch.", "") if dtype is not None else "fp32"


def autocast(device: torch.device, dtype):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def use_channels_last(device: torch.device, dtype=None) -> bool:
    """Channels-last where it measures faster (``python -m benchmarks.precision``): on CUDA, and
    on the CPU for fp32 features (10-16% faster on an AVX512 EPYC), not for bf16 ones there (slower)."""
    return device.type == "cuda" or (device.type == "cpu" and dtype is None)


def make_evaluate(net, objective, device: torch.device, dtype=None, transform: Callable | None = None):
    """``evaluate(image) -> (total, values)``: features (under autocast) then the objective in fp32."""
    channels_last = use_channels_last(device, dtype)

    def evaluate(image):
        x = transform(image) if transform is not None else image
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, dtype):
            feats = net(x)
        return objective(feats, image)

    return evaluate


def make_extract(net, device: torch.device, dtype=None):
    """``extract(image) -> features`` without gradients, for computing targets."""

    @torch.no_grad()
    def extract(image):
        x = image.to(device)
        if use_channels_last(device, dtype):
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, dtype):
            return {k: v.detach() for k, v in net(x).items()}

    return extract


def prepare_net(net, device: torch.device, compile: bool = False, dtype=None):
    """Channels-last where it is faster (:func:`use_channels_last`); with ``compile``,
    torch.compile the feature net (first steps slower)."""
    if use_channels_last(device, dtype):
        net = net.to(memory_format=torch.channels_last)
    if compile:
        names = net.names
        net = torch.compile(net, dynamic=False)
        net.names = names
    return net


def versions() -> dict:
    """Versions for the recipe, read from package metadata (importing timm would cost seconds)."""

    out = {"dreamstyle": __version__, "python": platform.python_version()}
    for dist in ("torch", "torchvision", "timm", "pillow"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:  # pragma: no cover - all are dependencies
            pass
    return out


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads, {platform.processor() or platform.machine()})"
