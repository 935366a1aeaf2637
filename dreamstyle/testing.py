"""Contract checks for plugin authors (and the built-ins): import them in your plugin's tests.

    from dreamstyle.testing import check_backbone, check_loss_term

    def test_my_backbone():
        check_backbone("my_net")          # or a Backbone instance

    def test_my_term():
        check_loss_term("my_term")        # or a TermSpec

Each is a dry run on the CPU with random weights and small random images, and fails with an
``AssertionError`` that says what is wrong: a layer map whose names repeat, whose strides decrease
or whose default layers are missing; channels or strides the network does not have; a pooling it
claims but cannot build; a term that does not return one finite number, or that a few optimizer
steps do not lower.
"""

from __future__ import annotations

import torch

from .backbones import Backbone, load_backbone, probe
from .errors import DreamstyleError
from .plugins import check_backbone as check_registration
from .plugins import check_term, get_host
from .termspec import TermContext, TermSpec


def _backbone(backbone) -> Backbone:
    return get_host().backbones.get(backbone) if isinstance(backbone, str) else backbone


def _fail(what: str, exc: Exception) -> AssertionError:
    return AssertionError(f"{what}: {type(exc).__name__}: {exc}")


def check_backbone(backbone, *, weights: str = "random", device: str = "cpu") -> None:
    """The layer map is sound, every declared pooling builds, and the network gives every layer with
    the declared channels and (about) the declared stride, at the backbone's minimum size too."""
    bb = _backbone(backbone)
    try:
        check_registration(bb)
    except ValueError as exc:
        raise AssertionError(f"backbone {bb.name!r}: {exc}") from None
    names = bb.layer_map.names
    for pooling in bb.poolings:
        torch.manual_seed(0)
        try:
            loaded = load_backbone(bb, weights=weights, pooling=pooling, device=device)
            net = loaded.features(names)
            probe(net, bb, loaded.device)
        except (DreamstyleError, RuntimeError, ValueError) as exc:
            raise _fail(f"backbone {bb.name!r} with {pooling} pooling", exc) from None
        side = bb.min_size  # the smallest input it claims: every layer no coarser than that must come out
        shallow = [n for n in names if bb.layer_map[n].stride <= side]
        try:
            with torch.no_grad():
                feats = loaded.features(shallow)(torch.rand(1, 3, side, side))
        except RuntimeError as exc:
            raise _fail(f"backbone {bb.name!r} at its min_size {side} px", exc) from None
        assert set(feats) == set(shallow), f"backbone {bb.name!r} at {side} px gave {sorted(feats)}, not {shallow}"
        assert all(torch.isfinite(f).all() for f in feats.values()), f"backbone {bb.name!r}: non-finite features"


def check_loss_term(term, *, backbone: str = "vgg19", options: dict | None = None, steps: int = 8) -> None:
    """The term builds (with ``options``), reads only layers the backbone has, prepares its targets
    from random images, returns one finite number, and ``steps`` Adam steps on the image lower it."""
    spec = get_host().loss_terms.get(term) if isinstance(term, str) else term
    assert isinstance(spec, TermSpec), f"{spec!r} is not a TermSpec"
    try:
        check_term(spec)
    except ValueError as exc:
        raise AssertionError(f"loss term {spec.name!r}: {exc}") from None
    module = spec.build(**(options or {}))
    bb = _backbone(backbone)
    layers = list(getattr(module, "layers", ()) or [])
    missing = [name for name in layers if name not in bb.layer_map]
    assert not missing, f"loss term {spec.name!r} reads layers {missing} that {bb.name} does not have"
    torch.manual_seed(0)
    loaded = load_backbone(bb, weights="random")
    net = loaded.features(layers or bb.layer_map.names[:1])
    images = {role: [torch.rand(1, 3, 48, 48)] for role in ("content", "style", "guide", "previous")}
    images["previous_content"] = images["content"]  # a still scene: a temporal term has work to do
    with torch.no_grad():
        module.prepare(TermContext(bb, images=images, options={"stage": 1, "size": (48, 48)}), lambda x: net(x))
    image = torch.rand(getattr(module, "min_batch", 1), 3, 48, 48, requires_grad=True)
    opt = torch.optim.Adam([image], lr=0.02)
    values = []
    for _ in range(steps):
        opt.zero_grad()
        value = torch.as_tensor(module(net(image), image))
        assert value.numel() == 1, f"loss term {spec.name!r} returned {tuple(value.shape)} values, not one number"
        assert torch.isfinite(value), f"loss term {spec.name!r} returned {float(value)}"
        values.append(float(value.detach()))
        value.backward()
        opt.step()
    assert values[-1] < values[0], f"loss term {spec.name!r} did not go down under {steps} Adam steps: {values}"
