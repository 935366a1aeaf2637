"""Schedules: the stages a job runs, one image size each (one size, coarse-to-fine scales, dream
octaves small to large)."""

from __future__ import annotations

from dataclasses import dataclass

from .images import fit_size


@dataclass(frozen=True)
class Stage:
    index: int  # 1-based
    count: int
    size: tuple[int, int]  # (width, height)
    iterations: int
    label: str = ""

    @property
    def long_side(self) -> int:
        return max(self.size)

    @property
    def last(self) -> bool:
        return self.index == self.count


def scale_sides(size: int, scales) -> list[int]:
    """Long sides coarse to fine: a count ``N`` halves from ``size`` N-1 times; a tuple is used as
    given (sorted); None is ``size`` alone."""
    if scales is None:
        return [size]
    if isinstance(scales, int):
        return [max(1, round(size / 2 ** (scales - 1 - i))) for i in range(scales)]
    return sorted(int(s) for s in scales)


def scale_stages(source_wh: tuple[int, int], sides: list[int], iterations: int) -> list[Stage]:
    """One stage per long side; the aspect is the source's."""
    sizes = [fit_size(source_wh, side) for side in sides]
    n = len(sizes)
    return [
        Stage(k, n, wh, iterations, f"scale {k}/{n} {wh[0]}x{wh[1]}" if n > 1 else "")
        for k, wh in enumerate(sizes, start=1)
    ]


def octave_sizes(wh: tuple[int, int], octaves: int, octave_scale: float, min_size: int) -> list[tuple[int, int]]:
    """Sizes small to large; octaves too small for the backbone are dropped."""
    w, h = wh
    sizes = []
    for k in range(octaves):
        f = octave_scale ** (octaves - 1 - k)
        size = (max(1, round(w / f)), max(1, round(h / f)))
        if min(size) >= min_size or k == octaves - 1:
            sizes.append(size)
    return sizes


def octave_stages(
    wh: tuple[int, int], octaves: int, octave_scale: float, min_size: int, iterations: int
) -> list[Stage]:
    sizes = octave_sizes(wh, octaves, octave_scale, min_size)
    n = len(sizes)
    return [Stage(k, n, s, iterations, f"octave {k}/{n} {s[0]}x{s[1]}") for k, s in enumerate(sizes, start=1)]
