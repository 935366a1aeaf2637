"""Peak memory of a piece of work: the GPU peak on CUDA, the growth of resident memory on the CPU."""

from __future__ import annotations

import gc
import os
import resource
import sys
import threading

import torch

MEMORY_NOTE = {
    "cuda": "peak GPU memory allocated by torch (torch.cuda.max_memory_allocated), network weights included",
    "rss": "growth of the process's resident memory (RSS, sampled every 5 ms) while the backbone loaded "
    "and ran, above what the process held before it; memory an earlier backbone freed and this one "
    "reused is not counted",
    "maxrss": "growth of the process's peak resident memory (getrusage ru_maxrss); a backbone that "
    "needs less than an earlier one shows 0",
}


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def _maxrss_bytes() -> int:
    value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return value if sys.platform == "darwin" else value * 1024


def release_memory(device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    else:
        try:  # hand freed heap back to the OS so the next RSS baseline is honest (glibc only)
            import ctypes

            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass


class MemoryProbe:
    """Peak memory of what runs inside ``with``: GPU peak on CUDA, RSS growth on the CPU."""

    def __init__(self, device):
        self.device = device
        if device.type == "cuda":
            self.kind = "cuda"
        elif _rss_bytes() is not None:
            self.kind = "rss"
        else:
            self.kind = "maxrss"
        self.peak = 0
        self.seen = 0  # extra peaks reported from outside (engine events on CUDA)
        self._stop = threading.Event()
        self._thread = None

    def __enter__(self):
        if self.kind == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        elif self.kind == "rss":
            self.base = _rss_bytes()
            self.peak = self.base

            def sample():
                while not self._stop.wait(0.005):
                    value = _rss_bytes() or 0
                    if value > self.peak:
                        self.peak = value

            self._thread = threading.Thread(target=sample, name="dreamstyle-rss", daemon=True)
            self._thread.start()
        else:
            self.base = _maxrss_bytes()
        return self

    def note(self, value: int | None) -> None:
        if value is not None:
            self.seen = max(self.seen, int(value))

    def __exit__(self, *exc):
        if self.kind == "cuda":
            self.bytes = max(self.seen, int(torch.cuda.max_memory_allocated(self.device)))
        elif self.kind == "rss":
            self._stop.set()
            self._thread.join()
            self.peak = max(self.peak, _rss_bytes() or 0)
            self.bytes = max(0, self.peak - self.base)
        else:
            self.bytes = max(0, _maxrss_bytes() - self.base)
        return False


# --- will it fit: the estimate behind automatic tiles ----------------------------------------------

# Bytes of memory one step needs per activation value of the layer map (a forward that keeps what the
# backward needs, the backward's own buffers, the features' fp32 copies for the terms). fp32: measured
# with vgg19 on the CPU (benchmarks/tiles.py: 3.9 from the growth of the untiled peak from 512 to 1024
# px), with a margin; bf16 (2 bytes), not measured: its activations are half, the terms' copies not.
BYTES_PER_MAPPED_VALUE = {2: 3.0, 4: 5.0}
FREE_SHARE = 0.6  # untiled only if the estimate is below this share of the memory free now


def available_bytes(device) -> int | None:
    """Memory free for this run now: the GPU's free memory on CUDA, MemAvailable on Linux CPUs."""
    if device.type == "cuda":
        try:
            return int(torch.cuda.mem_get_info(device)[0])
        except RuntimeError:
            return None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def step_bytes(backbone, layers, wh: tuple[int, int], dtype_bytes: int = 4) -> int:
    """About how much memory one optimizer step of a ``wh`` picture needs through ``layers``."""
    if not layers:
        return 0
    deepest = backbone.layer_map.position(backbone.layer_map.deepest(layers))
    per_pixel = sum(layer.channels / layer.stride**2 for layer in backbone.layer_map[: deepest + 1])
    bytes_per_value = BYTES_PER_MAPPED_VALUE.get(dtype_bytes, BYTES_PER_MAPPED_VALUE[4])
    return int(per_pixel * wh[0] * wh[1] * bytes_per_value)


def auto_tile(backbone, layers, wh: tuple[int, int], overlap: int, free: int | None, dtype_bytes: int = 4) -> int:
    """0 when a ``wh`` picture fits untiled in ``free`` bytes, else the largest tile (a multiple of
    128 px, at least 256) whose crop fits."""
    if free is None or step_bytes(backbone, layers, wh, dtype_bytes) <= FREE_SHARE * free:
        return 0
    tile = (max(wh) // 128) * 128
    while tile > 256 and step_bytes(backbone, layers, (tile + 2 * overlap,) * 2, dtype_bytes) > FREE_SHARE * free:
        tile -= 128
    return max(256, tile)
