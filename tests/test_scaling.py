"""Scale-free terms (issue 30): the feature terms measure each layer's error relative to its target's
energy, so a backbone whose features are all (or layer by layer) a constant times another's makes
the same picture, the layers of one term weigh alike, tiles still add up exactly, and recipes made
before (absolute terms) replay as they ran."""

import numpy as np
import pytest
import torch
from helpers import make_image
from PIL import Image

import dreamstyle
from dreamstyle.activation import ActivationLoss, GuideLoss
from dreamstyle.backbones import LoadedBackbone, load_backbone
from dreamstyle.cli import main
from dreamstyle.errors import OptionError
from dreamstyle.objective import extra_terms, term
from dreamstyle.plugins import get_backbone
from dreamstyle.settings import CONTENT_WEIGHT, STYLE_WEIGHT
from dreamstyle.terms import ContentLoss, StyleLoss, energy
from dreamstyle.termspec import TermContext, backbone_layers, own_layers
from dreamstyle.writers import read_recipe, save_image

pytestmark = pytest.mark.usefixtures("one_thread")


class Scaled(torch.nn.Module):
    """A feature net whose every output is multiplied by a constant (per layer: a dict)."""

    def __init__(self, net, scale):
        super().__init__()
        self.net, self.scale, self.names = net, scale, net.names

    def forward(self, image):
        feats = self.net(image)
        return {
            n: f * (self.scale.get(n, 1.0) if isinstance(self.scale, dict) else self.scale) for n, f in feats.items()
        }


class ScaledBackbone(LoadedBackbone):
    """A loaded backbone (the same weights as ``loaded``) whose feature nets scale their outputs."""

    def __init__(self, loaded: LoadedBackbone, scale):
        self.__dict__.update(loaded.__dict__)
        self.scale = scale

    def features(self, layers):
        return Scaled(super().features(layers), self.scale)


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return load_backbone("vgg19", weights="random")


@pytest.fixture
def images(tmp_path):
    return make_image(tmp_path / "content.png", (48, 40)), make_image(tmp_path / "style.png", (44, 44), 1, "stripes")


def picture(images, loaded, **kw):
    options = {
        **dict(
            size=48,
            iterations=6,
            seed=0,
            device="cpu",
            precision="fp32",
            loaded=loaded,
            content_weight=1e6,
            style_weight=1e7,
        ),
        **kw,
    }
    return np.asarray(dreamstyle.transfer(str(images[0]), [str(images[1])], **options).image).astype(float)


@pytest.mark.parametrize("scale", [1e-3, 1e3, {"relu1_1": 1e3, "relu3_1": 1e-2, "relu4_2": 30.0}])
def test_scaled_features_make_the_same_picture(images, net, scale):
    """Multiplying every feature (or each layer's) by a constant leaves the picture as it was. Only
    rounding differs (the energies and errors are fp32 sums, and six L-BFGS steps carry their last-bit
    differences on); 1 level of 255 anywhere and a mean far below one is that, while the absolute
    terms (checked below) move the picture by tens of levels."""
    plain = picture(images, net)
    scaled = picture(images, ScaledBackbone(net, scale))
    assert np.abs(plain - scaled).max() <= 1.0
    assert np.abs(plain - scaled).mean() < 0.05


def test_absolute_terms_do_depend_on_the_scale(images, net):
    """The test above has teeth: with the old (absolute) terms the same wrap changes the picture."""
    old = dict(term_scale="absolute", content_weight=5.0, style_weight=100.0, tv_weight=0.0)
    small, large = (picture(images, ScaledBackbone(net, k), **old) for k in (1e-3, 1e3))
    assert np.abs(small - large).mean() > 1.0, np.abs(small - large).mean()


# --- per-layer balance ----------------------------------------------------------------------------------


def _prepared(term, feats_of, content, style, scale="relative"):
    ctx = TermContext(None, images={"content": [content], "style": [style]}, options={"term_scale": scale})
    term.prepare(ctx, feats_of)
    return term


def test_each_layer_weighs_alike_whatever_its_channels_and_scale():
    """A layer whose features are another's times 1000, or another's with every channel twice, has
    that layer's value: the layers of a term weigh alike unless LAYER=WEIGHT says otherwise."""
    torch.manual_seed(0)
    base = torch.rand(1, 8, 6, 6)

    def feats_of(image):
        return {
            "a": base * image.mean() * 4,
            "big": 1e3 * base * image.mean() * 4,
            "twice": torch.cat([base, base], 1) * image.mean() * 4,
        }

    content, style, picture = (
        torch.full((1, 3, 8, 8), 0.5),
        torch.full((1, 3, 8, 8), 0.3),
        torch.full((1, 3, 8, 8), 0.4),
    )
    feats = feats_of(picture)
    for cls in (ContentLoss, StyleLoss):
        values = {name: float(_prepared(cls(name), feats_of, content, style)(feats, picture)) for name in feats}
        assert values["a"] > 0
        for name in ("big", "twice"):  # fp32 sums over a few hundred numbers: 1e-5 relative
            assert values[name] == pytest.approx(values["a"], rel=1e-5), (cls.__name__, name)
        both = float(_prepared(cls({"a": 1.0, "big": 0.5}), feats_of, content, style)(feats, picture))
        assert both == pytest.approx(1.5 * values["a"], rel=1e-5)
        absolute = {
            name: float(_prepared(cls(name), feats_of, content, style, "absolute")(feats, picture))
            for name in ("a", "big")
        }
        assert absolute["big"] > 1e5 * absolute["a"]  # what the energies divide out


def test_dream_terms_are_relative_to_the_starting_picture():
    torch.manual_seed(0)
    base = torch.rand(1, 4, 5, 5)
    feats_of = lambda image: {"a": base * image.mean(), "b": 1e3 * base * image.mean()}  # noqa: E731
    content = torch.full((1, 3, 8, 8), 0.5)
    for layer in ("a", "b"):
        for mode in ("mean", "l2"):
            t = ActivationLoss(layer, mode)
            t.prepare(TermContext(None, images={"content": [content]}), feats_of)
            # relative: the starting picture's mean activation over its rms is the same on both layers
            assert float(t(feats_of(content), content)) == pytest.approx(
                -float(base.mean() / base.pow(2).mean().sqrt()) if mode == "mean" else -1.0, rel=1e-5
            )
    for layer in ("a", "b"):
        g = GuideLoss(layer)
        g.prepare(TermContext(None, images={"guide": [content]}), feats_of)
        assert float(g(feats_of(content), content)) < 0
    values = []
    for layer in ("a", "b"):
        g = GuideLoss(layer)
        g.prepare(TermContext(None, images={"guide": [content]}), feats_of)
        values.append(float(g(feats_of(content * 0.8), content)))
    assert values[0] == pytest.approx(values[1], rel=1e-5)


def test_energy_is_the_mean_square_and_weighted_by_positions():
    t = torch.tensor([[[[1.0, 3.0]]]])
    assert float(energy(t)) == pytest.approx(5.0)
    assert float(energy(t, torch.tensor([[[[1.0, 0.0]]]]))) == pytest.approx(1.0)
    assert float(energy(torch.zeros(1, 2, 3, 3))) == 1.0  # nothing to be relative to: absolute


# --- plugins, compare ---------------------------------------------------------------------------------


def test_a_term_defaults_to_the_layers_of_the_backbone_in_use():
    alexnet = get_backbone("alexnet")
    assert term("style", backbone=alexnet).terms[0].layers == list(alexnet.style_layers)
    assert term("content", backbone=alexnet).terms[0].layers == list(alexnet.content_layers)
    assert term("activation", backbone=alexnet).terms[0].layers == [alexnet.dream_layers[0]]
    assert term("style").terms[0].layers == ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]  # vgg19's
    assert term("style", backbone=alexnet, layers="relu2").terms[0].layers == ["relu2"]  # given: as given

    def build(layers=backbone_layers("content_layers", ("relu4_2",)), backbone=None):
        return ContentLoss(own_layers(layers, backbone))

    assert build().layers == ["relu4_2"] and build(backbone=alexnet).layers == list(alexnet.content_layers)
    with pytest.raises(OptionError, match="'backbone' is not an option"):  # --loss style:backbone=x
        extra_terms({"style": (None, {"backbone": "x"})}, alexnet)


def test_compare_says_every_backbone_had_the_same_weights(images):
    comp = dreamstyle.compare(
        str(images[0]),
        [str(images[1])],
        "vgg19,vgg19:avg",
        weights="random",
        size=40,
        iterations=1,
        seed=0,
        device="cpu",
    )
    md = comp.to_markdown()
    assert "the same for every backbone" in md and "relative" in md
    assert f"content {CONTENT_WEIGHT:g}, style {STYLE_WEIGHT:g}" in md


# --- replay ---------------------------------------------------------------------------------------------


def test_a_recipe_from_before_relative_terms_replays_bit_for_bit(images, tmp_path, runner):
    """A recipe without ``term_scale`` (dreamstyle 0.1) replays with the absolute terms it ran with.
    The old picture is made here by the old code path (term_scale "absolute"), its recipe then
    stripped to what 0.1 wrote."""
    common = ["--weights", "random", "--device", "cpu", "--seed", "0", "--size", "40", "--iterations", "4", "-q"]
    new = tmp_path / "new.png"
    result = runner.invoke(main, ["transfer", *map(str, images), "-o", str(new), *common])
    assert result.exit_code == 0, result.output
    recipe = read_recipe(new)
    assert recipe["term_scale"] == "relative"

    asked = tmp_path / "asked.png"  # a recipe asking for the old terms explicitly
    save_image(
        Image.open(new),
        asked,
        recipe={**recipe, "term_scale": "absolute", "content_weight": 5.0, "style_weight": 100.0},
    )
    old = tmp_path / "old.png"
    result = runner.invoke(main, ["transfer", "--from", str(asked), "-o", str(old), "-q"])
    assert result.exit_code == 0, result.output
    assert read_recipe(old)["term_scale"] == "absolute"
    old_recipe = {k: v for k, v in read_recipe(old).items() if k != "term_scale"}
    old_recipe["versions"] = {**old_recipe["versions"], "dreamstyle": "0.1.0"}
    save_image(Image.open(old), old, recipe=old_recipe)  # as 0.1 wrote it: no term_scale

    again = tmp_path / "again.png"
    result = runner.invoke(main, ["transfer", "--from", str(old), "-o", str(again), "-q"])
    assert result.exit_code == 0, result.output
    assert np.array_equal(np.asarray(Image.open(old)), np.asarray(Image.open(again)))
    assert read_recipe(again)["term_scale"] == "absolute"
    assert not np.array_equal(np.asarray(Image.open(new)), np.asarray(Image.open(again)))
