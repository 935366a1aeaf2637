"""A backbone as compare's ``--backbones`` and the judge's ``--judge`` name it: ``NAME``,
``NAME:avg``, ``NAME:random``, ``NAME:pretrained``, ``NAME:weights=FILE``; NAME may be your own
network's file (``net.pt2``, ``file:net.pt2``)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .backbones.own import CALLABLE
from .errors import OptionError, items
from .plugins import get_host

OPTIONS = ("max", "avg", "random", "pretrained", "default")  # what may follow a --backbones name's ":"


@dataclass
class Variant:
    """One column of a comparison: a backbone with its weights and pooling."""

    name: str
    weights: str | None = None  # None: the backbone's pretrained weights
    pooling: str = "max"
    stem: str = ""  # file name stem in the output folder (unique within a comparison)

    @property
    def label(self) -> str:
        extras = []
        if self.pooling != "max":
            extras.append(f"{self.pooling} pool")
        if self.weights == "random":
            extras.append("random weights")
        elif self.weights not in (None, "default", "pretrained"):
            extras.append(f"weights {Path(self.weights).name}")
        return self.name + (f" ({', '.join(extras)})" if extras else "")

    @property
    def changes(self) -> dict:
        """The settings this column changes (compare is a sweep over these)."""
        return {"backbone": self.name, "weights": self.weights, "pooling": self.pooling}

    @property
    def slug(self) -> str:
        if self.stem:
            return self.stem
        parts = [self.name]
        if self.pooling != "max":
            parts.append(self.pooling)
        if self.weights == "random":
            parts.append("random")
        elif self.weights not in (None, "default", "pretrained"):
            parts.append(Path(self.weights).stem)
        return re.sub(r"[^A-Za-z0-9._-]+", "-", "-".join(parts)).strip("-.") or "backbone"


def parse_variants(spec: str | Sequence[str], weights: str | None = None, pooling: str = "max") -> list[Variant]:
    """``"vgg19,vgg19:avg,alexnet:random"`` -> variants. After a ``:`` come options, ``:``-separated:
    ``max``/``avg`` (pooling), ``random``/``pretrained`` or ``weights=FILE`` (the rest of the item).
    Your own network: ``file:FILE[:options]``, or ``MODULE:CALLABLE[:options]`` (a callable is a name
    that is no option: ``mynets:small_cnn:weights=net.pt``).
    ``weights``/``pooling`` are the defaults for items that do not say."""
    variants = []
    for item in items(spec, "--backbones") if isinstance(spec, str) else [str(v).strip() for v in spec]:
        file_prefix = "file:" if item.startswith("file:") else ""  # your own network: file:FILE[:options]
        name, _, rest = item[len(file_prefix) :].partition(":")
        callable_name, _, after = rest.partition(":")  # MODULE:CALLABLE[:options]: a name no option has
        if not file_prefix and callable_name.strip().lower() not in OPTIONS and "=" not in callable_name:
            if name.strip() not in get_host().backbones.entries and CALLABLE.fullmatch(f"{name}:{callable_name}"):
                name, rest = f"{name.strip()}:{callable_name.strip()}", after
        v = Variant(file_prefix + name.strip(), weights, pooling)
        while rest:
            if rest.startswith("weights="):
                v.weights, rest = rest[len("weights=") :], ""
                continue
            opt, _, rest = rest.partition(":")
            opt = opt.strip().lower()
            if opt in ("max", "avg"):
                v.pooling = opt
            elif opt in OPTIONS:
                v.weights = None if opt != "random" else "random"
            elif opt:
                raise OptionError(
                    f"--backbones item {item!r}: unknown option {opt!r} "
                    "(use max, avg, random, pretrained or weights=FILE after the name)"
                )
        if not v.name:
            raise OptionError(f"--backbones item {item!r} has no backbone name")
        variants.append(v)
    if not variants:
        raise OptionError("--backbones is empty; give a comma list like vgg19,alexnet")
    seen: dict[str, int] = {}
    for v in variants:  # unique file names: a repeated variant gets -2, -3, ...
        base = v.slug
        seen[base] = seen.get(base, 0) + 1
        v.stem = base if seen[base] == 1 else f"{base}-{seen[base]}"
    return variants
