import dreamstyle_histogram
import pytest
import torch
from dreamstyle_histogram.term import HistogramLoss, resample_sorted

from dreamstyle.backbones import load_backbone
from dreamstyle.errors import OptionError
from dreamstyle.objective import Objective
from dreamstyle.terms import LossTerm
from dreamstyle.termspec import TermContext


def pixels(image):
    """A stand-in extractor: the image itself is layer "x", so histograms are of pixel values."""
    return {"x": image}


def prepared(styles, blend=None, **options):
    term = HistogramLoss(layers=("x",), **options)
    term.prepare(TermContext(backbone=None, images={"style": styles}, blend=blend), pixels)
    return term


def test_registered_through_the_hook_and_builds_with_defaults(host):
    spec = host.loss_terms.get("histogram")
    assert spec.plugin == "histogram" and spec.default_weight == dreamstyle_histogram.DEFAULT_WEIGHT
    term = spec.build()
    assert isinstance(term, LossTerm) and term.layers == ["relu1_1", "relu4_1"]
    assert "relu4_1" in term.describe()
    assert host.infos["histogram"].hooks == ["register_loss_terms"]


def test_options():
    term = dreamstyle_histogram.build(layers="relu1_1,relu3_1=0.5", bins="64")
    assert term.layer_weights == {"relu1_1": 1.0, "relu3_1": 0.5} and term.bins == 64
    for bad in ({"layers": ""}, {"bins": 1}, {"bins": "many"}):
        with pytest.raises(OptionError):
            dreamstyle_histogram.build(**bad)


def test_resample_sorted():
    values = torch.tensor([[1.0, 2.0, 3.0, 10.0]])
    assert torch.equal(resample_sorted(values, 4), values)
    assert resample_sorted(values, 1).item() == pytest.approx(2.5)  # the median
    assert resample_sorted(values, 2).tolist() == [[1.5, 6.5]]
    up = resample_sorted(values, 9)
    assert up.shape == (1, 9) and torch.all(up[:, 1:] >= up[:, :-1]) and up[0, 0] == 1 and up[0, -1] == 10


def test_zero_for_the_style_itself_and_any_rearrangement_of_it():
    torch.manual_seed(0)
    style = torch.rand(1, 3, 16, 16)
    term = prepared([style])  # 256 samples per channel, 256 bins: the target is exact
    assert term(pixels(style), style).item() == pytest.approx(0, abs=1e-12)
    shuffled = style.flatten(2)[..., torch.randperm(256)].reshape(1, 3, 16, 16)
    assert term(pixels(shuffled), shuffled).item() == pytest.approx(0, abs=1e-12)
    # a shift by d costs d**2: the squared 1-D Wasserstein distance
    assert term(pixels(style + 0.1), style).item() == pytest.approx(0.01, rel=1e-4)


def test_any_output_size():
    torch.manual_seed(0)
    term = prepared([torch.rand(1, 3, 32, 32)], bins=128)
    for shape in [(1, 3, 7, 5), (2, 3, 64, 48), (1, 3, 1, 1)]:
        image = torch.rand(shape)
        assert torch.isfinite(term(pixels(image), image))


def test_blend_is_the_average_of_quantile_functions():
    dark, light = torch.full((1, 3, 8, 8), 0.2), torch.full((1, 3, 8, 8), 0.8)
    term = prepared([dark, light], blend=[3, 1])
    middle = torch.full((1, 3, 8, 8), 0.35)  # 0.75 * 0.2 + 0.25 * 0.8
    assert term(pixels(middle), middle).item() == pytest.approx(0, abs=1e-12)


def test_needs_style_images_and_matching_blend():
    with pytest.raises(OptionError, match="style image"):
        prepared([])
    with pytest.raises(OptionError, match="2 weights for 1"):
        prepared([torch.rand(1, 3, 8, 8)], blend=[1, 1])
    with pytest.raises(OptionError, match="more than 0"):
        prepared([torch.rand(1, 3, 8, 8)], blend=[0])


def test_a_few_adam_steps_lower_it_on_a_real_backbone(host):
    torch.manual_seed(0)
    term = dreamstyle_histogram.build()  # default options: vgg19 layers
    extract = load_backbone(host.backbones.get("vgg19"), weights="random").features(term.layers)
    ctx = TermContext(
        backbone=None, images={"style": [torch.rand(1, 3, 48, 48), torch.rand(1, 3, 40, 56)]}, blend=[0.7, 0.3]
    )
    term.prepare(ctx, extract)
    objective = Objective({"histogram": (term, 1.0)})
    image = torch.rand(1, 3, 48, 48).mul(0.5).requires_grad_(True)
    opt = torch.optim.Adam([image], lr=0.02)
    values = []
    for _ in range(6):
        opt.zero_grad()
        loss, _ = objective(extract(image), image)
        loss.backward()
        opt.step()
        values.append(loss.item())
    assert all(map(torch.isfinite, map(torch.tensor, values)))
    assert values[-1] < 0.9 * values[0], values


def test_the_term_passes_dreamstyles_contract_check(host):
    from dreamstyle.testing import check_loss_term

    check_loss_term(host.loss_terms.get("histogram"), options={"layers": "relu1_1,relu2_1"})
