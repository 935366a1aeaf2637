"""A judge that is not the loss: how far a picture is from its content photo and from its style
paintings, measured on a network of the user's choice (``dreamstyle score``, :func:`dreamstyle.score`).

Every distance is relative, so judges with differently scaled features read alike, and 0 means
identical features:

- content: each content layer's squared feature error over the content's squared features;
- style, Gram: each style layer's squared Gram-matrix error over the style Gram's squares;
- style, sliced Wasserstein: each style layer's sliced Wasserstein distance (fixed directions drawn
  from ``seed``) over the style's mean squared feature.

Each is averaged over its layers (the judge backbone's own content and style layers unless given).
A term is never graded by itself when the judge is another network than the one optimized.
"""

from __future__ import annotations

import torch

from .distribution import SlicedWassersteinLoss
from .errors import OptionError, error_text
from .images import fit_size, load_image, to_tensor
from .plugins import get_backbone
from .session import Session
from .settings import plain
from .terms import gram
from .termspec import TermContext
from .variants import parse_variants

JUDGE_DIRECTIONS = 512  # directions per layer for the sliced Wasserstein distance (a layer's channels at most)


def score(
    picture,
    content=None,
    styles=(),
    *,
    backbone: str = "vgg19",
    weights=None,
    pooling: str = "max",
    device: str = "auto",
    size: int | None = None,
    content_layers=None,
    style_layers=None,
    seed: int = 0,
    loaded=None,
    max_pixels: int | None = None,
) -> dict:
    """The distances of ``picture`` (a path or PIL image) from ``content`` and from ``styles`` (paths
    or PIL images; either may be left out) on the judge ``backbone``, in fp32. ``size``: the long side
    the picture is looked at (default: its own); the content is looked at the picture's size, each
    style at the same long side; ``seed`` draws the sliced Wasserstein directions (and random weights).
    Returns a dict: ``content``, ``style_gram``, ``style_swd`` (None for
    what was not given) and ``layers`` (each distance per layer)."""
    styles = [styles] if isinstance(styles, (str, bytes)) or hasattr(styles, "size") else list(styles or ())
    if content is None and not styles:
        raise OptionError("give a content image, a style image or both to score the picture against")
    session = Session(backbone, weights=weights, pooling=pooling, device=device, precision="fp32", loaded=loaded)
    bb = session.backbone
    content_layers = list(content_layers or bb.content_layers)
    style_layers = list(style_layers or bb.style_layers)
    for name in content_layers + style_layers:
        bb.layer_map.get(name)  # an unknown layer: one line naming the backbone's layers
    load = (lambda p: load_image(p)) if max_pixels is None else (lambda p: load_image(p, max_pixels))
    image = load(picture)
    wh = fit_size(image.size, size)
    bb.check_size(wh[1], wh[0], "the picture" + (f" at --size {size}" if size else ""))
    dev = session.device
    x = to_tensor(image, wh, dev)
    with torch.random.fork_rng(devices=[]):  # --weights random: the seed's weights, the caller's generator untouched
        torch.manual_seed(seed)
        net = session.net(content_layers + style_layers)
    extract = session.extract(net)
    out = {"judge": bb.name, "size": list(wh), "content": None, "style_gram": None, "style_swd": None, "layers": {}}
    with torch.no_grad():
        feats = extract(x)
        if content is not None:
            target = extract(to_tensor(load(content), wh, dev))
            per = {
                n: float(
                    ((feats[n].float() - target[n].float()) ** 2).sum()
                    / (target[n].float() ** 2).sum().clamp_min(1e-30)
                )
                for n in content_layers
            }
            out["content"], out["layers"]["content"] = sum(per.values()) / len(per), per
        if styles:
            tensors = [to_tensor(s, fit_size(s.size, max(wh)), dev) for s in map(load, styles)]
            for t in tensors:
                bb.check_size(*t.shape[-2:], "a style image at the picture's long side")
            out["style_gram"], out["layers"]["style_gram"] = _gram_distance(feats, tensors, extract, style_layers)
            out["style_swd"], out["layers"]["style_swd"] = _swd_distance(feats, x, tensors, extract, style_layers, seed)
    return out


def _gram_distance(feats, styles, extract, layers) -> tuple[float, dict]:
    targets = [extract(s) for s in styles]
    per = {}
    for n in layers:
        want = sum(gram(t[n].float()) for t in targets) / len(targets)
        got = gram(feats[n].float())
        per[n] = float(((got - want) ** 2).sum() / (want**2).sum().clamp_min(1e-30))
    return sum(per.values()) / len(per), per


def _swd_distance(feats, x, styles, extract, layers, seed) -> tuple[float, dict]:
    per = {}
    with torch.random.fork_rng(devices=[]):
        for n in layers:
            torch.manual_seed(seed)
            term = SlicedWassersteinLoss([n], directions=JUDGE_DIRECTIONS)
            term.prepare(TermContext(None, images={"style": styles}), extract)
            term.new_step(0)
            per[n] = float(term({n: feats[n]}, x))
    return sum(per.values()) / len(per), per


# --- a judge for compare and sweep ------------------------------------------------------------------

JUDGED = ("content", "style_gram", "style_swd")  # the distances a table shows, in order
DEFAULT_JUDGE = "vgg19"


class Judge:
    """One judge network, loaded once, grading many pictures (compare's backbones, a sweep's cells)
    with :func:`score`. ``spec`` is one backbone as compare's ``--backbones`` writes it (``NAME``,
    ``NAME:random``, ``NAME:pretrained``, ``NAME:weights=FILE``, ``NAME:avg``); a spec that names no
    weights takes the run's ``--weights`` where it is the run's backbone or the weights are random,
    else the judge's pretrained ones. Checked when made (before any work); loaded on first use."""

    def __init__(
        self,
        spec: str,
        run_backbone: str = DEFAULT_JUDGE,
        run_weights=None,
        device: str = "auto",
        max_pixels: int | None = None,
    ):
        items = parse_variants(str(spec), weights="random")
        if len(items) != 1:
            raise OptionError(f"--judge {spec!r}: name one backbone (like vgg19 or alexnet:random)")
        v = items[0]
        get_backbone(v.name)  # an unknown name: one line listing the backbones
        if parse_variants(str(spec), weights=None)[0].weights != v.weights:  # the spec names no weights
            v.weights = run_weights if v.name == run_backbone or run_weights == "random" else None
        self.name, self.weights, self.pooling = v.name, v.weights, v.pooling
        self.device, self.max_pixels = device, max_pixels
        self._loaded = None

    def describe(self, paths: str = "full") -> dict:
        return {
            "backbone": self.name,
            "weights": plain(self.weights or "pretrained", paths, files=True),
            "pooling": self.pooling,
        }

    def __call__(self, picture, content=None, styles=()) -> dict:
        """The distances of ``picture`` (:data:`JUDGED`; None for what was not given)."""
        if self._loaded is None:
            with torch.random.fork_rng(devices=[]):  # random weights: the same judge every time
                torch.manual_seed(0)
                self._loaded = Session(
                    self.name, weights=self.weights, pooling=self.pooling, device=self.device, precision="fp32"
                ).loaded
        out = score(
            picture,
            content,
            styles,
            backbone=self.name,
            pooling=self.pooling,
            device=self.device,
            loaded=self._loaded,
            max_pixels=self.max_pixels,
        )
        return {key: out[key] for key in JUDGED}


def make_judge(spec, settings) -> Judge | None:
    """The judge ``spec`` names for a run of ``settings`` (None, "" or "none": no judge)."""
    if spec is None or str(spec).strip().lower() in ("", "none"):
        return None
    return Judge(spec, settings.backbone, settings.weights, settings.device, settings.max_pixels)


def judge_rows(judge: Judge | None, rows, content=None, styles=()) -> None:
    """Each finished row's ``judge``: its picture's distances from ``content`` and ``styles``; a
    picture the judge cannot grade gets ``{"error": why}`` (the run's own results stand)."""
    if judge is None or (content is None and not styles):
        return
    for row in rows:
        if row.ok:
            try:
                row.judge = judge(row.result.image, content, list(styles))
            except Exception as exc:  # noqa: BLE001 - weights that cannot load, say: the pictures are made
                row.judge = {"error": error_text(exc)}
