"""The distribution-matching style terms (--style-loss w2|swd|nn): zero at the style, scale-free, exact in
tiles (w2), refused in tiles in one line (swd, nn), the same directions again on a replay, and a picture
that moves toward the style."""

import pytest
import torch
from helpers import make_image

import dreamstyle
from dreamstyle.cli import main
from dreamstyle.distribution import GaussianW2Loss, NearestNeighbourLoss, SlicedWassersteinLoss, _nearest, _TraceSqrt
from dreamstyle.engine import Problem, Steps, optimize
from dreamstyle.objective import Objective, term
from dreamstyle.runtime import make_extract
from dreamstyle.session import Session
from dreamstyle.termspec import TermContext
from dreamstyle.tiling import Gradient
from dreamstyle.writers import read_recipe

pytestmark = pytest.mark.usefixtures("one_thread")
FAST = ["--weights", "random", "--device", "cpu", "--seed", "3", "-q", "--size", "32", "--precision", "fp32"]


def features(scale: float = 1.0):
    """A fixed two-layer feature map of an image (random convolutions, ReLU), times ``scale``."""
    gen = torch.Generator().manual_seed(0)
    w1, w2 = torch.randn(8, 3, 3, 3, generator=gen), torch.randn(12, 8, 3, 3, generator=gen)

    def extract(image):
        a = torch.relu(torch.nn.functional.conv2d(image, w1, padding=1))
        b = torch.relu(torch.nn.functional.conv2d(torch.nn.functional.avg_pool2d(a, 2), w2, padding=1))
        return {"a": a * scale, "b": b * scale}

    return extract


def value(cls, picture, style, scale=1.0, **masks):
    t = cls(["a", "b"])
    extract = features(scale)
    torch.manual_seed(0)  # swd draws its directions' seed from torch's generator
    t.prepare(TermContext(None, images={"style": [style]}, masks=masks), extract)
    t.new_step(1) if hasattr(t, "new_step") else None
    return float(t(extract(picture), picture))


@pytest.mark.parametrize("cls", [GaussianW2Loss, SlicedWassersteinLoss, NearestNeighbourLoss])
def test_zero_at_the_style_more_elsewhere_and_the_same_at_any_feature_scale(cls):
    torch.manual_seed(1)
    style, picture = torch.rand(1, 3, 24, 24), torch.rand(1, 3, 24, 24) ** 3
    assert abs(value(cls, style, style)) < 1e-4  # relative to the style's energy: 1e-4 is rounding
    far = value(cls, picture, style)
    assert far > 1e-2
    for scale in (1e-3, 1e3):  # a backbone whose features are 1000x smaller or larger: the same term
        assert value(cls, picture, style, scale) == pytest.approx(far, rel=1e-4)


def test_swd_with_every_position_weighing_one_is_swd_without_weights():
    torch.manual_seed(2)
    style, picture = torch.rand(1, 3, 24, 24), torch.rand(1, 3, 24, 24)
    plain = value(SlicedWassersteinLoss, picture, style)
    assert value(SlicedWassersteinLoss, picture, style, alpha=torch.ones(1, 1, 24, 24)) == pytest.approx(
        plain, rel=1e-4
    )


def test_the_trace_square_root_has_the_gradient_of_its_value():
    torch.manual_seed(3)
    a = torch.randn(1, 4, 6, dtype=torch.float64, requires_grad=True)
    eye = torch.eye(4, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a: _TraceSqrt.apply(a @ a.transpose(1, 2) + eye, 0.0), (a,))


@pytest.mark.parametrize("with_masks", [False, True])
def test_w2_in_tiles_gives_the_untiled_value_and_gradient(vgg, with_masks):
    torch.manual_seed(4)
    h, w = 64, 84
    images = {"style": [torch.rand(1, 3, 50, 70), torch.rand(1, 3, 40, 40)]}
    masks = {"alpha": torch.rand(1, 1, h, w), "style": [torch.rand(1, 1, h, w), None]} if with_masks else {}
    obj = 100 * term("w2", layers={"relu1_1": 1.0, "relu2_1": 0.5, "relu3_1": 1.0}, backbone=vgg.backbone)
    sess = Session(loaded=vgg, device="cpu", precision="fp32")
    net = sess.net(obj.layers)
    x = torch.rand(1, 3, h, w)
    out = []
    for tile in (0, 24):
        gradient = Gradient(net, obj, sess, tile=tile, overlap=40)
        obj.prepare(
            TermContext(vgg.backbone, images=images, masks=masks, tiler=gradient.tiler),
            make_extract(net, torch.device("cpu")),
        )
        param = x.clone().requires_grad_(True)
        _, values = gradient(param, 1.0)
        out.append((values.detach(), param.grad.clone(), gradient.tiled(param)))
    (v0, g0, tiled0), (v1, g1, tiled1) = out
    assert not tiled0 and tiled1
    assert torch.allclose(v1, v0, rtol=1e-4)  # fp32 sums in another order, then an eigendecomposition
    assert g0.abs().amax() > 0 and torch.allclose(g1, g0, atol=1e-4 * float(g0.abs().amax()), rtol=1e-3)


class Spy(torch.nn.Module):
    layers = []

    def __init__(self):
        super().__init__()
        self.steps = []

    def new_step(self, step):
        self.steps.append(step)

    def forward(self, feats, image):
        return ((image - 0.5) ** 2).mean()


@pytest.mark.parametrize("optimizer, told", [("adam", [1, 2, 3, 4]), ("lbfgs", [1])])
def test_terms_are_told_each_step_but_l_bfgs_keeps_one_objective_a_stage(optimizer, told):
    spy = Spy()
    objective = Objective([("spy", spy, 1.0)])
    problem = Problem(objective.names, evaluate=lambda x: objective({}, x), new_step=objective.new_step)
    optimize(torch.rand(1, 3, 8, 8), problem, Steps(4, optimizer))
    assert spy.steps == told


def test_swd_draws_other_directions_at_another_step_and_the_same_at_the_same():
    torch.manual_seed(5)
    style, picture = torch.rand(1, 3, 24, 24), torch.rand(1, 3, 24, 24)
    t = SlicedWassersteinLoss(["a", "b"])
    extract = features()
    t.prepare(TermContext(None, images={"style": [style]}), extract)
    feats = extract(picture)
    t.new_step(1)
    first = float(t(feats, picture))
    t.new_step(2)
    second = float(t(feats, picture))
    t.new_step(1)
    assert first != second and float(t(feats, picture)) == first


def test_swd_keeps_the_style_quantiles_of_a_step_and_they_are_the_ones_it_would_find_again():
    torch.manual_seed(6)
    style = torch.rand(1, 3, 24, 24)
    extract = features()

    def term(step):
        u = SlicedWassersteinLoss(["a", "b"])
        torch.manual_seed(0)  # the same seed for its directions
        u.prepare(TermContext(None, images={"style": [style]}), extract)
        u.new_step(step)
        return u

    def evaluate(u, picture):
        picture = picture.clone().requires_grad_(True)
        loss = u(extract(picture), picture)
        return float(loss), torch.autograd.grad(loss, picture)[0]

    t, kept = term(1), []
    for step, side in ((1, 24), (1, 16), (1, 24), (2, 24), (1, 16)):  # sizes and steps, and back again
        t.new_step(step)
        picture = torch.rand(1, 3, side, side)
        value_kept, grad_kept = evaluate(t, picture)
        value_new, grad_new = evaluate(term(step), picture)  # a new term: nothing kept from before
        assert value_kept == value_new and torch.equal(grad_kept, grad_new)
        kept.append(len(t._drawn[2]))
    # two layers' quantiles for each picture size a step's draw has seen (the third: found again, not
    # made); a new step starts afresh
    assert kept == [2, 4, 4, 2, 2]


@pytest.mark.parametrize("loss", ["w2", "swd", "nn"])
def test_a_transfer_moves_toward_the_style_and_replays_to_the_same_bytes(loss, tmp_path, runner):
    content = make_image(tmp_path / "content.png", (40, 32))
    style = make_image(tmp_path / "style.png", (40, 40), seed=1, kind="stripes")
    result = dreamstyle.transfer(
        str(content),
        [str(style)],
        weights="random",
        device="cpu",
        seed=3,
        size=32,
        iterations=12,
        optimizer="adam",
        style_loss=loss,
        style_weight=1e4,
        precision="fp32",
        tv_weight=0,
        content_weight=0,
    )
    first, last = result.history[0][loss], result.history[-1][loss]
    # 12 Adam steps take 30-40% off w2's and swd's distance here (random vgg19 weights), 15% off nn's
    assert last < (0.9 if loss == "nn" else 0.8) * first
    out = tmp_path / "o.png"
    made = runner.invoke(
        main,
        [
            "transfer",
            str(content),
            str(style),
            "-o",
            str(out),
            *FAST,
            "--iterations",
            "4",
            "--optimizer",
            "adam",
            "--style-loss",
            loss,
        ],
        catch_exceptions=False,
    )
    assert made.exit_code == 0, made.output
    assert read_recipe(out)["style_loss"] == loss
    again = tmp_path / "again.png"
    replay = runner.invoke(main, ["transfer", "--from", str(out), "-o", str(again), "-q"], catch_exceptions=False)
    assert replay.exit_code == 0, replay.output
    assert again.read_bytes() == out.read_bytes()


@pytest.mark.parametrize("loss", ["swd", "nn"])
def test_a_term_that_does_not_tile_says_so_in_one_line(loss, tmp_path, runner):
    content = make_image(tmp_path / "content.png", (64, 48))
    style = make_image(tmp_path / "style.png", (40, 40), seed=1, kind="stripes")
    result = runner.invoke(
        main,
        [
            "transfer",
            str(content),
            str(style),
            "-o",
            str(tmp_path / "o.png"),
            *FAST[:-4],
            "--size",
            "64",
            "--iterations",
            "2",
            "--style-loss",
            loss,
            "--tile",
            "32",
        ],
    )
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"'{loss}' cannot be computed in tiles" in result.output, result.output


def test_nn_finds_the_nearest_style_feature_by_cosine_in_chunks(monkeypatch):
    import dreamstyle.distribution as distribution

    torch.manual_seed(6)
    unit = torch.nn.functional.normalize(torch.randn(50, 7), dim=1)
    x = torch.nn.functional.normalize(torch.randn(2, 13, 7), dim=-1)
    brute = unit[(x[:, :, None, :] * unit).sum(-1).argmax(-1)]
    monkeypatch.setattr(distribution, "NN_CHUNK", 4)  # 13 positions: chunks of 4, 4, 4 and 1
    assert torch.equal(_nearest(x, unit), brute)


def test_nn_samples_the_style_once_from_the_seed_and_weighs_the_picture():
    torch.manual_seed(7)
    style, picture = torch.rand(1, 3, 24, 24), torch.rand(1, 3, 24, 24)
    extract = features()

    def run(seed, samples, **masks):
        t = NearestNeighbourLoss(["a", "b"], samples=samples)
        torch.manual_seed(seed)
        t.prepare(TermContext(None, images={"style": [style]}, masks=masks), extract)
        return t, float(t(extract(picture), picture))

    t, first = run(0, 50)
    assert t.targets[0]["a"][0].shape == (50, 8) and t.targets[0]["b"][0].shape == (50, 12)
    assert run(0, 50)[1] == first and run(1, 50)[1] != first  # the same draw with the same seed
    plain = run(0, 10_000)[1]
    assert run(0, 10_000, alpha=torch.ones(1, 1, 24, 24))[1] == pytest.approx(plain, rel=1e-5)
    assert first > plain  # fewer style features to choose from: the nearest is further
