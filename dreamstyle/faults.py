"""Running out of memory: recognise it, and say in one line what was tried and what would fit.

The engine catches an out-of-memory error like Ctrl-C: it stops and keeps the best image so far.
Drivers turn what it recorded into :func:`oom_message`; where nothing was made yet they raise
:class:`OutOfMemory` (a :class:`~dreamstyle.errors.UserError`: one line, no traceback).
"""

from __future__ import annotations

import re

import torch

from .errors import UserError

_MARKERS = ("out of memory", "can't allocate memory", "CUBLAS_STATUS_ALLOC_FAILED", "CUDNN_STATUS_ALLOC_FAILED")
_UNITS = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}


class OutOfMemory(UserError):
    """The device ran out of memory before anything worth keeping was made."""


def is_out_of_memory(exc: BaseException) -> bool:
    """``torch.OutOfMemoryError`` (CUDA), Python's ``MemoryError`` (the host), or an allocator failure
    reported as a RuntimeError."""
    oom_type = getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError
    if isinstance(exc, (oom_type, MemoryError)):  # MemoryError: the host ran out
        return True
    return isinstance(exc, RuntimeError) and any(m in str(exc) for m in _MARKERS)


def is_overflow(exc: BaseException) -> bool:
    """A number too large for its type: Python's OverflowError, or torch's "value cannot be converted
    to type float without overflow" (an Adam step of --lr 1e38). A run that meets one has diverged."""
    return isinstance(exc, (OverflowError, FloatingPointError)) or (
        isinstance(exc, RuntimeError) and "without overflow" in str(exc)
    )


def requested_bytes(message: str) -> int | None:
    """The size of the allocation that failed, from torch's message ("Tried to allocate 2.00 GiB",
    "you tried to allocate 4000 bytes")."""
    m = re.search(r"[Tt]ried to allocate ([\d.]+) ?(B|KiB|MiB|GiB|TiB|bytes)", message)
    if not m:
        return None
    return int(float(m.group(1)) * _UNITS.get(m.group(2), 1))


def memory_report(device, exc: BaseException, size: tuple[int, int]) -> dict:
    """What is known when memory ran out at ``size`` (width, height): the failed request and, on
    CUDA, the peak allocated in this run, what is still allocated and what this process could use."""
    report = {"device": str(device), "size": [int(size[0]), int(size[1])], "requested": requested_bytes(str(exc))}
    if getattr(device, "type", str(device)) == "cuda":
        try:
            free, _ = torch.cuda.mem_get_info(device)
            report.update(
                peak=torch.cuda.max_memory_allocated(device),
                base=torch.cuda.memory_allocated(device),
                budget=free + torch.cuda.memory_reserved(device),
            )
        except RuntimeError:  # the device may be in no state to answer; the size hint falls back
            pass
    return report


def suggest_size(long_side: int, report: dict, min_size: int = 1, fitted: int | None = None) -> tuple[int | None, str]:
    """A smaller ``--size`` that should fit, and how we know: ("estimated" from the memory
    numbers, "fitted" where a smaller stage of this run went through, or "guess": half)."""
    peak, base, budget = report.get("peak"), report.get("base"), report.get("budget")
    size, how = None, "guess"
    if peak is not None and base is not None and budget:
        need = max(peak, base) + (report.get("requested") or 0) - base  # memory that grows with pixels
        room = 0.9 * budget - base
        if need > 0 and room > 0:
            size, how = int(long_side * min(room / need, 0.9) ** 0.5) // 16 * 16, "estimated"
        elif room <= 0:
            return None, "none"
    if size is None and fitted:
        size, how = fitted, "fitted"
    if size is None:
        size = long_side // 2
    if fitted and how == "estimated" and size < fitted:
        size, how = fitted, "fitted"
    if size < max(1, min_size) or size >= long_side:
        return None, "none"
    return size, how


def oom_message(
    report: dict,
    long_side: int,
    *,
    min_size: int = 1,
    fitted: int | None = None,
    precision: str | None = None,
    hints: tuple[str, ...] = (),
    option: str = "--size",
) -> str:
    """One line: where memory ran out, at which size, and what to try instead."""
    w, h = report["size"]
    requested = report.get("requested")
    tried = f" (tried to allocate {_human(requested)})" if requested else ""
    line = f"out of memory on {report['device']} at {w}x{h} px{tried}"
    size, how = suggest_size(long_side, report, min_size, fitted)
    options = []
    if size is not None:
        options.append(
            {
                "estimated": f"{option} {size} (estimated to fit)",
                "fitted": f"{option} {size} (that size fitted)",
                "guess": f"a smaller {option}, e.g. {option} {size}",
            }[how]
        )
    options.extend(hints)
    on_cuda = str(report["device"]).startswith("cuda")
    if on_cuda and precision in (None, "fp32", "float32"):
        options.append("--precision bf16")
    if on_cuda:
        options.append("--device cpu")
    if not options:
        options.append("a smaller backbone")
    return f"{line}; try {', '.join(options[:-1]) + ' or ' if len(options) > 1 else ''}{options[-1]}"


def _human(n: int) -> str:
    for unit in ("TiB", "GiB", "MiB", "KiB"):
        if n >= _UNITS[unit]:
            return f"{n / _UNITS[unit]:.2f} {unit}"
    return f"{n} bytes"
