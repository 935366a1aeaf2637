"""Feature visualization: transforms, lapnorm, the fft parametrization, strongest / weakest channels,
blur and decay, the dream's loss terms. Random weights and tiny images throughout."""

import math

import pytest
import torch
from helpers import make_image, tiny

from dreamstyle import dream, engine, lapnorm, transforms
from dreamstyle.activation import ActivationLoss
from dreamstyle.errors import OptionError, UserError
from dreamstyle.jobs.dream import regularizer
from dreamstyle.param import FourierParam


def weighted_sum(weights):
    """An engine gradient of sum(weights * image): its true gradient is ``weights / scale``."""

    def gradient(param, scale, backward=True):
        total = (weights * (param / scale)).sum()
        if backward:
            total.backward()
        return total, total.detach().reshape(1)

    return gradient


# --- transforms ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec, normal",
    [
        ("jitter", "jitter"),
        ("rotate,jitter", "jitter,rotate=5"),
        ("scale=0.1, flip", "scale=0.1,flip"),
        ("none", ""),
        ("", ""),
        ("jitter,scale,rotate,flip", "jitter,scale=0.05,rotate=5,flip"),
    ],
)
def test_transform_lists_parse_to_a_normal_form(spec, normal):
    assert transforms.parse_transforms(spec) == normal


@pytest.mark.parametrize(
    "spec, words",
    [
        ("jiter", "choose among jitter, scale"),
        ("scale=2", "at most 0.5"),
        ("rotate=x", "must be a number"),
        ("jitter=4", "--jitter PX"),
        ("flip=1", "takes no strength"),
    ],
)
def test_bad_transform_lists_say_what_is_wrong(spec, words):
    with pytest.raises(OptionError, match=words):
        transforms.parse_transforms(spec)


def test_the_gradient_is_taken_exactly_through_a_scale_and_rotation():
    torch.manual_seed(3)
    weights = torch.randn(1, 3, 12, 16)
    t = transforms.Transforms(scale=0.2, rotate=20.0)
    param = (torch.rand(1, 3, 12, 16) * 255).requires_grad_(True)
    torch.manual_seed(7)
    transforms.through(weighted_sum(weights), t)(param, 255.0)
    torch.manual_seed(7)
    draw = t.draw()
    assert draw[0] != 1.0 and draw[1] != 0.0
    x = param.detach().clone().requires_grad_(True)
    (weights * transforms.apply(x, draw) / 255.0).sum().backward()  # the objective of the moved picture
    assert torch.allclose(param.grad, x.grad, atol=1e-7)
    assert not torch.allclose(param.grad, weights / 255.0)  # it moved: the gradient is not the plain one


def test_a_flip_is_undone_exactly_on_the_gradient():
    weights = torch.randn(1, 3, 8, 10)
    t = transforms.Transforms(flip=True)
    for seed in range(8):  # both outcomes of the coin
        param = torch.rand(1, 3, 8, 10).mul(255).requires_grad_(True)
        torch.manual_seed(seed)
        flipped = t.draw()[2]
        torch.manual_seed(seed)
        transforms.through(weighted_sum(weights), t)(param, 255.0)
        expected = torch.flip(weights, (3,)) if flipped else weights
        assert torch.equal(param.grad, expected / 255.0)


def test_a_warp_with_no_scale_or_angle_is_the_identity_and_keeps_the_range():
    x = torch.rand(2, 3, 9, 13)
    assert torch.allclose(transforms.warp(x, 1.0, 0.0), x, atol=1e-5)
    moved = transforms.warp(x, 0.9, math.radians(10))
    assert moved.shape == x.shape and moved.min() >= 0 and moved.max() <= 1


def test_dream_with_transforms_raises_the_activation_and_records_them(vgg, photo):
    result = dream(photo, "relu2_1", transforms="jitter,scale=0.1,rotate,flip", lr=5.0, **tiny(vgg, iterations=6))
    rows = result.history
    assert rows[-1]["total"] < rows[0]["total"]
    assert result.recipe["transforms"] == "jitter,scale=0.1,rotate=5,flip"
    plain = dream(photo, "relu2_1", **tiny(vgg, iterations=4))
    assert not torch.equal(plain.tensor, result.tensor)


def test_no_transforms_means_no_jitter_either(vgg, photo):
    a = dream(photo, "relu2_1", transforms="none", **tiny(vgg, iterations=3, jitter=16))
    b = dream(photo, "relu2_1", **tiny(vgg, iterations=3, jitter=0))
    assert torch.equal(a.tensor, b.tensor)


# --- lapnorm -------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(1, 3, 32, 32), (2, 3, 23, 17), (1, 3, 5, 3)])
def test_a_laplacian_pyramid_adds_back_up_to_the_picture(shape):
    x = torch.randn(shape)
    bands = lapnorm.split(x)
    assert len(bands) >= 2 and bands[0].shape == x.shape
    assert torch.allclose(lapnorm.merge(bands), x, atol=1e-5)


def test_lapnorm_gives_every_band_the_same_weight():
    torch.manual_seed(0)
    fine = torch.randn(1, 3, 64, 64)  # white noise: almost all of it in the finest band
    smooth = torch.nn.functional.interpolate(torch.randn(1, 3, 4, 4), size=(64, 64), mode="bilinear")
    g = fine + 0.05 * smooth
    out = lapnorm.normalize(g)
    low = lambda t: lapnorm.split(t)[-1].square().mean() / t.square().mean()  # noqa: E731
    assert low(out) > 5 * low(g)  # the large shapes' share of the gradient grew
    rms = [b.square().mean().sqrt().item() for b in lapnorm.split(out)]
    assert max(rms) < 3 * min(rms)


def test_dream_with_lapnorm_raises_the_activation(vgg, photo):
    result = dream(photo, "relu2_1", gradient="lapnorm", **tiny(vgg, iterations=4, jitter=0))
    assert result.history[-1]["total"] < result.history[0]["total"] and result.recipe["gradient"] == "lapnorm"
    plain = dream(photo, "relu2_1", **tiny(vgg, iterations=4, jitter=0))
    assert not torch.equal(plain.tensor, result.tensor)


# --- the fft parametrization ------------------------------------------------------------------------


@pytest.mark.parametrize("hw", [(16, 16), (15, 22)])
def test_fft_decodes_what_it_encodes_and_stays_in_range(hw):
    p = FourierParam(hw)
    x = torch.rand(2, 3, *hw) * 0.9 + 0.05
    z = p.encode(x)
    assert z.shape == (2, 3, hw[0], hw[1] // 2 + 1, 2) and z.dtype == torch.float32
    assert torch.allclose(p.decode(z), x, atol=1e-4)
    wild = p.decode(torch.randn_like(z) * 50)
    assert not wild.is_complex() and wild.min() >= 0 and wild.max() <= 1 and torch.isfinite(wild).all()


def test_the_engine_carries_the_gradient_through_the_fft_by_the_chain_rule():
    torch.manual_seed(1)
    weights = torch.randn(1, 3, 10, 12)
    p = FourierParam((10, 12))
    z = p.encode(torch.rand(1, 3, 10, 12)).requires_grad_(True)
    gradient, current = engine.decoded(p, z, weighted_sum(weights), 255.0)
    gradient(z, 255.0)
    ref = z.detach().clone().requires_grad_(True)
    (weights * p.decode(ref)).sum().backward()
    assert torch.allclose(z.grad, ref.grad, rtol=1e-4, atol=1e-6)
    assert torch.allclose(current(), p.decode(z.detach()) * 255.0)


def test_an_fft_dream_from_noise_raises_the_activation_and_is_a_picture(vgg):
    result = dream(None, "relu2_1:5", init="noise", param="fft", **tiny(vgg, iterations=6, jitter=2))
    assert result.history[-1]["total"] < result.history[0]["total"]
    t = result.tensor
    assert t.shape == (1, 3, 32, 32) and t.min() >= 0 and t.max() <= 1 and t.std() > 0.01
    assert result.recipe["param"] == "fft"
    assert result.recipe["optimizer"] is None  # Adam chosen for a spectrum (the default for --param fft)


def test_fft_dreams_in_octaves_and_tiles(vgg):
    result = dream(
        None,
        "relu2_1",
        init="noise",
        param="fft",
        **tiny(vgg, size=40, octaves=2, tile=24, tile_overlap=8, iterations=2),
    )
    assert result.image.size == (40, 40) and result.stopped is None


# --- strongest / weakest channels ------------------------------------------------------------------


def test_strongest_and_weakest_pick_channels_by_their_mean_activation():
    f = torch.zeros(1, 6, 4, 4)
    for c, level in enumerate([0.1, 0.9, 0.3, 0.7, 0.0, 0.5]):
        f[:, c] = level
    strong, weak = ActivationLoss("a", objective="strongest:2"), ActivationLoss("a", objective="weakest:3")
    strong.pick({"a": f})
    weak.pick({"a": f})
    assert strong.picked == {"a": (1, 3)} and weak.picked == {"a": (4, 0, 2)}
    image = torch.zeros(1, 3, 8, 8)
    g = torch.rand(1, 6, 4, 4)
    assert torch.allclose(strong({"a": g}, image), -g[:, [1, 3]].mean())


def test_dream_on_the_strongest_channels_records_them(vgg, photo):
    result = dream(photo, "relu2_1", objective="strongest:3", **tiny(vgg, iterations=4, jitter=0))
    picked = result.recipe["channels_picked"]["relu2_1"]
    assert len(picked) == 3 and len(set(picked)) == 3 and all(0 <= c < 128 for c in picked)
    assert result.history[-1]["total"] < result.history[0]["total"]
    assert (
        dream(photo, "relu2_1", objective="strongest", **tiny(vgg, iterations=1)).recipe["objective"] == "strongest:8"
    )


# --- regularizers ----------------------------------------------------------------------------------


def test_blur_smooths_and_decay_pulls_toward_grey():
    torch.manual_seed(0)
    x = torch.rand(1, 3, 16, 16) * 255
    blurred = regularizer(1.0, 0.0)(x, 255.0)
    step = lambda t: (t[..., 1:] - t[..., :-1]).abs().mean()  # noqa: E731
    assert step(blurred) < 0.5 * step(x)
    decayed = regularizer(0.0, 0.1)(x, 255.0)
    assert torch.allclose(decayed - 127.5, 0.9 * (x - 127.5), atol=1e-4)
    assert regularizer(0.0, 0.0) is None
    assert regularizer(8.0, 0.0)(torch.rand(1, 3, 4, 5), 1.0).shape == (1, 3, 4, 5)  # a kernel the picture holds


def test_dream_with_blur_decay_and_a_tv_loss(vgg, photo):
    plain = dream(photo, "relu2_1", **tiny(vgg, iterations=4, jitter=0))
    smooth = dream(photo, "relu2_1", blur=1.0, decay=0.02, **tiny(vgg, iterations=4, jitter=0))
    tv = dream(photo, "relu2_1", losses={"tv": 30.0}, **tiny(vgg, iterations=4, jitter=0))
    step = lambda t: (t[..., 1:] - t[..., :-1]).abs().mean()  # noqa: E731
    assert step(smooth.optimized) < step(plain.optimized)
    assert "tv" in tv.history[0] and step(tv.optimized) < step(plain.optimized)  # the term smooths the dream
    with pytest.raises(OptionError, match="--blur acts on pixels"):
        dream(photo, "relu2_1", param="fft", blur=1.0, **tiny(vgg))


def test_a_negative_weight_suppresses_a_channel(vgg, photo):
    up = dream(photo, "relu2_1:3", **tiny(vgg, iterations=4, jitter=0))
    down = dream(photo, "relu2_1:3=-1", **tiny(vgg, iterations=4, jitter=0))
    # minimized in both: the activation went up in one, down in the other
    assert up.history[-1]["activation"] < up.history[0]["activation"] < 0
    assert down.history[-1]["activation"] < down.history[0]["activation"]
    assert down.history[0]["activation"] > 0


# --- atlas and activations ---------------------------------------------------------------------------


def test_each_mode_gives_every_image_of_the_batch_its_own_channel():
    f = torch.rand(3, 6, 4, 4)
    loss = ActivationLoss("a:4,0,2", each=True)
    expected = -(f[0, 4].mean() + f[1, 0].mean() + f[2, 2].mean()) / 3
    assert torch.allclose(loss({"a": f}, torch.zeros(3, 3, 8, 8)), expected)
    with pytest.raises(OptionError, match="needs channels"):
        ActivationLoss("a", each=True)


def test_atlas_has_one_labelled_cell_per_channel(vgg):
    from dreamstyle import atlas

    result = atlas(
        "vgg19", "relu2_1", channels="3,0-2,9", batch=2, loaded=vgg, size=32, iterations=3, seed=0, device="cpu"
    )
    assert [c.channel for c in result.cells] == [3, 0, 1, 2, 9]
    assert all(c.image.size == (32, 32) and math.isfinite(c.activation) for c in result.cells)
    assert result.recipe["channels"] == [3, 0, 1, 2, 9] and result.recipe["param"] == "fft"
    data = result.to_dict()
    assert [c["channel"] for c in data["channels"]] == [3, 0, 1, 2, 9]
    sheet = result.sheet()
    assert sheet.width > 3 * 96  # a near-square grid: 3 columns for 5 cells


# A cell does not depend on its batch up to rounding: the batch changes the order of the
# convolutions' sums (oneDNN blocks by batch), and 3 Adam steps carry that on. Measured (README): 2e-5
# of the activation in fp32, 1.2e-3 with bf16 features. The tolerances leave 5x and 8x: 1e-4 in fp32,
# and in bf16 1e-2, 2.5 units of bf16's last place (2^-8) -- a test cannot ask more of bf16 numbers.
@pytest.mark.parametrize("precision, rel", [("fp32", 1e-4), ("bf16", 1e-2)])
def test_a_cell_does_not_depend_on_its_batch(vgg, precision, rel):
    from dreamstyle import atlas

    kw = dict(loaded=vgg, size=32, iterations=3, seed=0, device="cpu", transforms="none", precision=precision)
    one_batch = atlas("vgg19", "relu2_1", channels="3,0-2,9", batch=5, **kw)
    two_batches = atlas("vgg19", "relu2_1", channels="3,0-2,9", batch=2, **kw)
    assert (
        one_batch.recipe["precision_used"]
        == two_batches.recipe["precision_used"]
        == ("bfloat16" if precision == "bf16" else "fp32")
    )
    for a, b in zip(one_batch.cells, two_batches.cells):  # each channel from its own noise, on its own
        assert a.activation == pytest.approx(b.activation, rel=rel, abs=1e-4)


@pytest.mark.parametrize(
    "value, words",
    [
        ("5-3", "a range goes up"),
        ("a-b", "like 0-63"),
        ("", "at least one channel"),
        ("-2", "like 0-63"),
    ],
)
def test_bad_channel_lists_say_what_is_wrong(value, words):
    from dreamstyle.settings import channel_list

    with pytest.raises(OptionError, match=words):
        channel_list(value, "--channels")
    assert channel_list("3,0-2,3", "--channels") == (3, 0, 1, 2)


def test_atlas_and_activations_refuse_what_cannot_be_made(vgg, photo):
    from dreamstyle import activations, atlas

    with pytest.raises(OptionError, match="give a LAYER"):
        atlas("vgg19", None, loaded=vgg, device="cpu")
    with pytest.raises(UserError, match="below the 16 px minimum"):
        atlas("vgg19", "relu2_1", size=8, loaded=vgg, device="cpu")
    with pytest.raises(UserError, match="--cell 8"):
        activations(photo, "relu2_1", cell=8, loaded=vgg, device="cpu")


def test_atlas_visualizations_raise_their_own_channel(vgg):
    from dreamstyle import atlas

    kw = dict(loaded=vgg, size=32, seed=0, device="cpu", transforms="none", channels="5,7")
    before = atlas("vgg19", "relu2_1", iterations=1, **kw)
    after = atlas("vgg19", "relu2_1", iterations=12, **kw)
    for a, b in zip(before.cells, after.cells):
        assert b.activation > a.activation


def test_cli_channels_writes_the_grid_and_json(runner, tmp_path):
    import json

    from PIL import Image

    from dreamstyle.cli import main
    from dreamstyle.writers import read_recipe

    out, js = tmp_path / "grid.png", tmp_path / "grid.json"
    r = runner.invoke(
        main,
        [
            "channels",
            "vgg19",
            "relu1_2",
            "--channels",
            "0-3",
            "--weights",
            "random",
            "--size",
            "24",
            "--iterations",
            "2",
            "--seed",
            "1",
            "-o",
            str(out),
            "--json",
            str(js),
            "-q",
        ],
    )
    assert r.exit_code == 0, r.output
    data = json.loads(js.read_text())
    assert [c["channel"] for c in data["channels"]] == [0, 1, 2, 3] and data["layer"] == "relu1_2"
    assert Image.open(out).size[0] > 2 * 96 and read_recipe(out)["command"] == "channels"
    old = tmp_path / "old.png"  # the old name, atlas, is the same command
    r = runner.invoke(
        main,
        [
            "atlas",
            "vgg19",
            "relu1_2",
            "--channels",
            "0-3",
            "--weights",
            "random",
            "--size",
            "24",
            "--iterations",
            "2",
            "--seed",
            "1",
            "-o",
            str(old),
            "-q",
        ],
    )
    assert r.exit_code == 0, r.output
    assert Image.open(old).tobytes() == Image.open(out).tobytes()  # same seed, same process
    assert "old name of 'dreamstyle channels'" in runner.invoke(main, ["atlas", "--help"]).output
    r = runner.invoke(
        main,
        ["channels", "vgg19", "relu1_2", "--channels", "0-64", "--weights", "random", "-o", str(tmp_path / "x.png")],
    )
    assert r.exit_code == 1 and "channel 64 is out of range" in r.output and "Traceback" not in r.output


def test_activations_finds_the_strongest_channels_and_maps_them(vgg, photo):
    from dreamstyle import activations

    result = activations(photo, "relu2_1", loaded=vgg, size=40, top=3, cell=24, iterations=2, seed=0, device="cpu")
    values = [v for _, v in result.top]
    assert len(result.top) == 3 and values == sorted(values, reverse=True)
    assert len(result.maps) == 3 and result.maps[0].size == result.image.size
    assert [c.channel for c in result.cells] == [c for c, _ in result.top]
    maps_only = activations(photo, "relu2_1", loaded=vgg, size=40, top=3, cell=0, seed=0, device="cpu")
    assert maps_only.top == result.top and maps_only.cells == []
    assert maps_only.sheet().width < result.sheet().width


def test_cli_activations_prints_the_top_channels(runner, photo, tmp_path):
    from dreamstyle.cli import main

    out = tmp_path / "act.png"
    r = runner.invoke(
        main,
        [
            "activations",
            str(photo),
            "--layer",
            "relu2_1",
            "--weights",
            "random",
            "--size",
            "32",
            "--top",
            "2",
            "--cell",
            "0",
            "-o",
            str(out),
            "-q",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "relu2_1: top 2" in r.output and "mean activation" in r.output and "--layer relu2_1:" in r.output
    assert out.exists()
    assert f"dreamstyle dream {photo.name} --layer relu2_1:" in r.output  # the picture's own name, not IMAGE


def test_cli_activations_without_an_output_prints_the_table_only(runner, photo, tmp_path, monkeypatch):
    """The table is useful on its own: no -o makes no sheet, so no visualizations from noise."""
    from dreamstyle.cli import main
    from dreamstyle.jobs import atlas

    monkeypatch.setattr(atlas, "visualize", lambda *a, **k: pytest.fail("visualized channels for no sheet"))
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(
        main,
        [
            "activations",
            str(photo),
            "--layer",
            "relu2_1",
            "--weights",
            "random",
            "--size",
            "32",
            "--top",
            "3",
            "--json",
            "top.json",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "relu2_1: top 3" in r.output and "wrote top.json" in r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([photo.name, "top.json"])  # no sheet


def test_atlas_and_activations_on_a_timm_model(tmp_path):
    pytest.importorskip("timm")
    from dreamstyle import activations, atlas

    kw = dict(weights="random", seed=0, device="cpu", iterations=2)
    a = atlas("timm/resnet18", "layer2", channels="0-2", size=32, **kw)
    assert [c.channel for c in a.cells] == [0, 1, 2] and all(math.isfinite(c.activation) for c in a.cells)
    e = activations(
        make_image(tmp_path / "p.png", (48, 40)), "layer2", backbone="timm/resnet18", size=48, top=2, cell=32, **kw
    )
    assert len(e.top) == 2 and len(e.cells) == 2


# --- diversity across a batch ------------------------------------------------------------------------


def test_diversity_is_one_for_copies_and_lower_for_different_pictures():
    from dreamstyle.activation import DiversityLoss

    loss, image = DiversityLoss("a"), torch.zeros(3, 3, 8, 8)
    f = torch.rand(1, 4, 5, 5)
    assert torch.allclose(loss({"a": f.repeat(3, 1, 1, 1)}, image), torch.tensor(1.0))
    g = torch.cat([f, torch.rand(1, 4, 5, 5) ** 4, torch.rand(1, 4, 5, 5) ** 8])
    assert loss({"a": g}, image) < 0.999
    assert loss({"a": f}, image[:1]) == 0  # a batch of one


def test_samples_dream_several_pictures_and_diversity_pushes_them_apart(vgg, photo):
    from dreamstyle.activation import DiversityLoss
    from dreamstyle.session import Session
    from dreamstyle.settings import DreamSettings

    kw = tiny(vgg, iterations=8, jitter=0, lr=6.0, samples=3, init="noise")
    alike = dream(None, "relu2_1:5", **kw)
    apart = dream(None, "relu2_1:5", losses={"diversity": (50.0, {"layers": "relu2_1"})}, **kw)
    assert alike.image.size == (3 * 32 + 2 * 4, 32)  # side by side, 4 px apart
    assert "diversity" in apart.history[0]
    session = Session.for_settings(DreamSettings(init="noise", device="cpu"), vgg)
    extract = session.extract(session.net(["relu2_1"]))

    def similarity(result):
        return float(DiversityLoss("relu2_1")(extract(result.optimized), result.optimized))

    assert similarity(apart) < similarity(alike)
    with pytest.raises(OptionError, match="--samples N goes with --init noise"):
        dream(photo, "relu2_1", **{**kw, "init": "image"})


def test_dream_preserve_color_keeps_the_inputs_colours(vgg, tmp_path):
    from PIL import Image

    warm = tmp_path / "warm.png"
    Image.new("RGB", (40, 32), (200, 120, 60)).save(warm)
    kw = tiny(vgg, iterations=6, jitter=0, lr=12.0)
    free = dream(warm, "relu2_1", **kw).tensor
    kept = dream(warm, "relu2_1", preserve_color="luminance", **kw).tensor
    source = torch.tensor([200, 120, 60]) / 255.0

    def chroma_error(t):
        mean = t.mean(dim=(0, 2, 3))
        return float(((mean - mean.mean()) - (source - source.mean())).abs().sum())

    assert chroma_error(kept) < chroma_error(free)


def test_the_normalized_step_moves_each_picture_of_a_batch_as_if_alone():
    from dreamstyle.optimizers import NormalizedGradient

    torch.manual_seed(0)
    grads = torch.randn(2, 3, 6, 6) * torch.tensor([1.0, 100.0]).view(2, 1, 1, 1)
    together = torch.zeros(2, 3, 6, 6, requires_grad=True)
    together.grad = grads.clone()
    NormalizedGradient([together], lr=0.5).step()
    for i in range(2):
        alone = torch.zeros(1, 3, 6, 6, requires_grad=True)
        alone.grad = grads[i : i + 1].clone()
        NormalizedGradient([alone], lr=0.5).step()
        assert torch.allclose(together[i : i + 1].detach(), alone.detach())
        assert float(together[i].detach().abs().mean()) == pytest.approx(0.5, rel=1e-4)


def test_a_channel_that_never_fired_says_so_under_its_cell():
    from PIL import Image

    from dreamstyle.jobs.atlas import Atlas, Cell

    grey = Image.new("RGB", (24, 24), (128, 128, 128))
    cells = [Cell(3, grey, 0.0), Cell(4, grey, 2.5)]
    assert [c.caption("x") for c in cells] == ["never fired from noise", "x"]
    recipe = {"size": 24, "param": "fft", "transforms": "jitter", "iterations": 2}
    assert Atlas("vgg19", "relu2_1", cells, recipe).sheet().size[0] >= 2 * 96
