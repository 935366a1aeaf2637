"""Pretrained weights from the caches where torchvision and timm keep them, downloaded only when
the host answers, so an offline machine fails at once with the file to place and where.

torchvision's weights live in the torch hub cache (``<torch hub dir>/checkpoints/<file>``); timm's
in the Hugging Face cache, or as one file ``<torch hub dir>/checkpoints/timm--<tag>.safetensors``
that a user can place by hand. Nothing here prints.
"""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path
from urllib.parse import urlparse

from ..errors import WeightsError

PROBE_SECONDS = 1.5  # how long a host may take to answer before we call the machine offline
_reachable: dict[str, bool] = {}


def reachable(host: str, port: int = 443, timeout: float = PROBE_SECONDS) -> bool:
    """Whether ``host`` accepts a connection within ``timeout`` seconds, name lookup included (a
    resolver with no network can hang for many seconds; this never waits longer). Cached per run."""
    if host in _reachable:
        return _reachable[host]
    answer: list[bool] = []

    def probe():
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            answer.append(True)
        except OSError:
            answer.append(False)

    thread = threading.Thread(target=probe, name="dreamstyle-probe", daemon=True)
    thread.start()
    thread.join(timeout)
    _reachable[host] = bool(answer and answer[0])
    return _reachable[host]


def checkpoints_dir() -> Path:
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


def _missing(backbone_name: str, what: str, path: Path, url: str) -> WeightsError:
    return WeightsError(
        f"pretrained weights for {backbone_name!r} are not cached and {urlparse(url).hostname} cannot be reached "
        f"({what}); place {url} at {path}, or pass --weights FILE or --weights random"
    )


def torch_hub_file(url: str, backbone_name: str) -> Path:
    """The cached file of a torchvision checkpoint URL, downloaded first if the host answers."""
    import torch

    path = checkpoints_dir() / os.path.basename(urlparse(url).path)
    if path.is_file():
        return path
    host = urlparse(url).hostname or ""
    if not reachable(host):
        raise _missing(backbone_name, "offline", path, url)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(url, str(path), progress=False)
    except Exception as exc:  # noqa: BLE001 - any failure to download means the same thing to the user
        raise _missing(backbone_name, f"download failed: {type(exc).__name__}", path, url) from None
    return path


def hf_cache_dir() -> str:
    from huggingface_hub import constants

    return os.environ.get("HF_HUB_CACHE") or constants.HF_HUB_CACHE


def timm_placed_file(cfg) -> Path:
    """Where a user may place a timm model's weights by hand (one file, no cache layout)."""
    tag = (cfg.hf_hub_id or cfg.architecture or "model").split("/")[-1]
    return checkpoints_dir() / f"timm--{tag}.safetensors"


def timm_cached_file(cfg) -> Path | None:
    """The local file of a timm pretrained config, without the network: the placed file, the Hugging
    Face cache or the torch hub cache; None where none is here."""
    placed = timm_placed_file(cfg)
    if placed.is_file():
        return placed
    if cfg.hf_hub_id:
        from huggingface_hub import try_to_load_from_cache

        for filename in ("model.safetensors", "pytorch_model.bin"):
            found = try_to_load_from_cache(cfg.hf_hub_id, filename, cache_dir=hf_cache_dir())
            if isinstance(found, str) and os.path.isfile(found):
                return Path(found)
    if cfg.url:
        cached = checkpoints_dir() / os.path.basename(urlparse(cfg.url).path)
        if cached.is_file():
            return cached
    return None


def timm_weights_here() -> list[tuple[str, Path]]:
    """The timm pretrained weights on this machine, found without the network: (tag, like
    ``resnet18.a1_in1k``; its file) for each placed file and each timm model in the Hugging Face cache."""
    found: dict[str, Path] = {}
    folder = checkpoints_dir()
    if folder.is_dir():
        for path in sorted(folder.glob("timm--*.safetensors")):
            found.setdefault(path.name[len("timm--") : -len(".safetensors")], path)
    try:
        cache = Path(hf_cache_dir())
    except ImportError:  # no huggingface_hub: no timm either
        return sorted(found.items())
    if cache.is_dir():
        for repo in sorted(cache.glob("models--timm--*")):
            files = [
                f
                for name in ("model.safetensors", "pytorch_model.bin")
                for f in sorted(repo.glob(f"snapshots/*/{name}"))
            ]
            if files:
                found.setdefault(repo.name[len("models--timm--") :], files[0])
    return sorted(found.items())


def timm_file(cfg, backbone_name: str) -> Path:
    """The local file of a timm pretrained config (:func:`timm_cached_file`), downloaded into the
    Hugging Face cache if huggingface.co answers."""
    found = timm_cached_file(cfg)
    if found is not None:
        return found
    placed = timm_placed_file(cfg)
    url = f"https://huggingface.co/{cfg.hf_hub_id}/resolve/main/model.safetensors" if cfg.hf_hub_id else cfg.url
    if not url:
        raise WeightsError(f"timm has no pretrained weights for {backbone_name!r}; use --weights FILE or random")
    if not reachable(urlparse(url).hostname or ""):
        raise _missing(backbone_name, "offline", placed, url)
    try:
        if cfg.hf_hub_id:
            from huggingface_hub import hf_hub_download

            return Path(hf_hub_download(cfg.hf_hub_id, "model.safetensors", cache_dir=hf_cache_dir()))
        return torch_hub_file(cfg.url, backbone_name)
    except WeightsError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise _missing(backbone_name, f"download failed: {type(exc).__name__}", placed, url) from None
