"""DeepDream and the hybrid: specs, terms, octaves, tiles, guide, noise, auto layers, the CLI.
Random weights and tiny images throughout."""

import dataclasses
import json

import pytest
import torch
from helpers import make_image, tiny
from PIL import Image

import dreamstyle
from dreamstyle import dream, transfer
from dreamstyle.activation import ActivationLoss, DreamTarget, GuideLoss, Region, check_targets, parse_target
from dreamstyle.cli import main
from dreamstyle.errors import OptionError, UnknownNameError
from dreamstyle.jobs.transfer import choose_dream_layer, dream_terms
from dreamstyle.objective import term as make_term
from dreamstyle.plugins import get_backbone
from dreamstyle.runtime import make_extract
from dreamstyle.schedule import octave_sizes
from dreamstyle.session import Session
from dreamstyle.settings import DREAM_STEP
from dreamstyle.termspec import TermContext
from dreamstyle.tiling import Gradient, tile_spans
from dreamstyle.writers import read_recipe

CPU = torch.device("cpu")


# --- specs ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("relu4_4", DreamTarget("relu4_4")),
        ("relu4_4:12", DreamTarget("relu4_4", (12,))),
        ("relu4_4:3,7", DreamTarget("relu4_4", (3, 7))),
        ("relu4_4:12@5,9", DreamTarget("relu4_4", (12,), (5, 9))),
        ("relu4_4=0.5", DreamTarget("relu4_4", weight=0.5)),
        ("relu4_4:3,7=2", DreamTarget("relu4_4", (3, 7), weight=2.0)),
        ("layer3.0:1@0,0=0.25", DreamTarget("layer3.0", (1,), (0, 0), 0.25)),
    ],
)
def test_every_spec_form_parses_and_prints_back(spec, expected):
    assert parse_target(spec) == expected
    assert parse_target(str(expected)) == expected


@pytest.mark.parametrize(
    "spec, words",
    [
        ("relu4_4:", "give channels"),
        ("relu4_4:a", "whole numbers"),
        ("relu4_4:1@2", "Y,X"),
        ("relu4_4:1,2@2,3", "one channel"),
        ("relu4_4@2,3", "needs a channel"),
        ("relu4_4=x", "number"),
        (":3", "names no layer"),
        ("relu4_4:-1", "zero or more"),
    ],
)
def test_bad_specs_say_what_is_wrong(spec, words):
    with pytest.raises(OptionError, match=words):
        parse_target(spec)


def test_unknown_layer_and_channel_out_of_range_name_the_range():
    bb = get_backbone("vgg19")
    with pytest.raises(UnknownNameError, match=r"relu4_4.*dreamstyle layers vgg19"):
        check_targets([parse_target("relu4_9")], bb)
    with pytest.raises(OptionError, match=r"128 channels \(0-127\).*dreamstyle layers vgg19"):
        check_targets([parse_target("relu2_1:3,128")], bb)
    check_targets([parse_target("relu2_1:0,127")], bb)


# --- the terms -----------------------------------------------------------------------------------


def test_activation_values_for_layer_channels_neuron_and_l2():
    f = torch.rand(1, 4, 5, 6)
    feats, image = {"a": f}, torch.zeros(1, 3, 10, 12)
    assert torch.allclose(ActivationLoss("a")(feats, image), -f.mean())
    assert torch.allclose(ActivationLoss("a:1,3")(feats, image), -f[:, [1, 3]].mean())
    assert torch.allclose(ActivationLoss("a:2@4,5")(feats, image), -f[0, 2, 4, 5])
    assert torch.allclose(ActivationLoss("a", objective="l2")(feats, image), -(f * f).mean())
    assert torch.allclose(ActivationLoss(["a=0.5", "a:0"])(feats, image), -0.5 * f.mean() - f[:, 0].mean())
    with pytest.raises(OptionError, match="mean, l2, strongest"):
        ActivationLoss("a", objective="max")


def test_region_values_of_tiles_add_up_to_the_whole():
    f = torch.rand(1, 4, 6, 8)
    term = ActivationLoss(["a:1", "a:2@4,6"])
    whole = term({"a": f}, torch.zeros(1))
    parts = 0
    for y0, y1 in [(0, 3), (3, 6)]:
        for x0, x1 in [(0, 5), (5, 8)]:  # tiles given as crops with a 1-position margin
            cy0, cx0 = max(0, y0 - 1), max(0, x0 - 1)
            crop = f[..., cy0 : y1 + 1, cx0 : x1 + 1]
            region = Region((y0 - cy0, y1 - cy0, x0 - cx0, x1 - cx0), (cy0, cx0), (6, 8))
            parts = parts + term({"a": crop}, torch.zeros(1), regions={"a": region})
    assert torch.allclose(parts, whole)


def test_guide_follows_the_best_matching_guide_vector():
    torch.manual_seed(0)
    f, g = torch.rand(1, 3, 4, 5), torch.rand(1, 3, 2, 3)
    term = GuideLoss("a")
    term.prepare(TermContext(None, images={"guide": [g]}, options={"term_scale": "absolute"}), lambda x: {"a": x})
    dots = f[0].flatten(1).T @ g[0].flatten(1)  # (P, Q)
    expected = -dots.max(1).values.mean() / 3
    assert torch.allclose(term({"a": f}, f), expected)
    term.prepare(TermContext(None, images={"guide": [g]}), lambda x: {"a": x})  # relative: over the guide's energy
    assert torch.allclose(term({"a": f}, f), expected / g.pow(2).mean())
    with pytest.raises(OptionError, match="not neurons"):
        GuideLoss("a:1@0,0")


# --- tiling ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "length, tile, overlap, align", [(70, 16, 16, 4), (64, 16, 0, 8), (33, 8, 4, 2), (10, 64, 8, 1), (100, 24, 12, 8)]
)
def test_tile_cores_partition_the_axis_and_crops_contain_them(length, tile, overlap, align):
    spans = tile_spans(length, tile, overlap, align)
    covered = [0] * length
    for s in spans:
        assert s.p0 <= s.c0 < s.c1 <= s.p1 <= length
        assert s.c0 % align == 0 and s.p0 % align == 0  # feature grids line up with the whole image's
        for i in range(s.c0, s.c1):
            covered[i] += 1
    assert covered == [1] * length  # every pixel owned by exactly one tile: none missing, none twice
    assert spans[-1].last and not any(s.last for s in spans[:-1])


@pytest.mark.parametrize(
    "term, options",
    [
        ("activation", {"layers": ["relu1_1", "relu2_1:3,4=0.5", "relu3_1:2@5,7"], "objective": "l2"}),
        ("guide", {"layers": ["relu2_1", "relu3_1:1,2"]}),
    ],
)
def test_tiled_gradient_equals_the_untiled_one(vgg, term, options):
    """With an overlap as wide as the receptive field, tiles reproduce the whole image's gradient
    exactly (jitter included), so nothing is missing and no seam can show."""
    obj = make_term(term, 1.0, backbone=vgg.backbone, **options)
    net = vgg.features(obj.layers)
    torch.manual_seed(3)
    obj.prepare(TermContext(vgg.backbone, images={"guide": [torch.rand(1, 3, 24, 24)]}), make_extract(net, CPU))
    x = torch.rand(1, 3, 44, 36)
    grads = []
    for tile in (0, 20):  # 0: one pass; 20 px: 3 x 2 tiles
        gradient = Gradient(
            net, obj, Session(loaded=vgg, device="cpu", precision="fp32"), tile=tile, overlap=12, jitter=5
        )
        param = (x * 255).requires_grad_(True)
        torch.manual_seed(1)
        total, values = gradient(param, 255.0)
        grads.append((float(total.detach()), param.grad.clone()))
    (t0, g0), (t1, g1) = grads
    assert t1 == pytest.approx(t0, rel=1e-5)
    assert g0.abs().amax() > 0 and torch.allclose(g1, g0, atol=1e-6 * float(g0.abs().amax()), rtol=1e-4)


def test_dream_tiles_large_images(vgg, photo):
    result = dream(photo, "relu2_1", **tiny(vgg, size=40, tile=20, tile_overlap=8, jitter=3, iterations=1))
    assert result.image.size == (40, 32) and result.recipe["tile"] == 20 and result.stopped is None


# --- the driver ------------------------------------------------------------------------------------


def test_dream_api_returns_result_and_raises_the_activation(vgg, photo):
    result = dreamstyle.dream(photo, ["relu2_1:3", "relu2_1=0.5"], **tiny(vgg, iterations=4, jitter=0))
    assert isinstance(result, dreamstyle.Result) and result.image.size == (32, 26)
    rows = result.history
    assert [r["iteration"] for r in rows] == [1, 2, 3, 4] and {"total", "activation"} <= set(rows[0])
    assert rows[-1]["total"] < rows[0]["total"]  # minimized: the activation grew
    assert result.recipe["command"] == "dream" and result.recipe["layers"] == ["relu2_1:3", "relu2_1=0.5"]
    assert result.recipe["step"] == DREAM_STEP and result.tensor.shape == (1, 3, 26, 32)


def test_default_layer_is_the_backbones_dream_layer(vgg, photo):
    assert dream(photo, **tiny(vgg, iterations=1)).recipe["layers_used"] == ["relu4_4"]


def test_octaves_run_small_to_large_and_carry_the_detail(vgg, photo, monkeypatch):
    starts = []
    from dreamstyle import runner

    real = runner.optimize

    def fake(init, problem, steps, report):  # each octave "dreams" by adding 0.1
        starts.append(init.clone())
        result = real(init, problem, dataclasses.replace(steps, iterations=1), report)
        result.image = (init + 0.1).clamp(0, 1)
        return result

    monkeypatch.setattr(runner, "optimize", fake)
    events = []
    photo_img = Image.new("RGB", (40, 32), (100, 100, 100))
    result = dream(
        photo_img, "relu1_1", callback=events.append, **tiny(vgg, size=40, octaves=3, octave_scale=1.4, jitter=0)
    )
    assert [tuple(s.shape[-2:]) for s in starts] == [(16, 20), (23, 29), (32, 40)]
    base = 100 / 255
    for k, s in enumerate(starts):  # the flat base plus the detail carried up: 0.1 per octave so far
        assert torch.allclose(s, torch.full_like(s, base + 0.1 * k), atol=2e-3)
    assert [e.label.split()[1] for e in events] == ["1/3", "2/3", "3/3"]
    assert result.recipe["sizes"] == [[20, 16], [29, 23], [40, 32]]
    assert octave_sizes((40, 32), 4, 2.0, 16) == [(20, 16), (40, 32)]  # too small for vgg19: dropped


def test_guide_dream(vgg, photo, tmp_path):
    guide = make_image(tmp_path / "guide.png", (30, 30), 2, "stripes")
    result = dream(photo, "relu2_1", guide=guide, **tiny(vgg, iterations=3, jitter=0))
    assert result.recipe["guide"] == str(guide) and "guide" in result.history[0]
    assert result.history[-1]["total"] < result.history[0]["total"]
    with pytest.raises(OptionError, match="not neurons"):
        dream(photo, "relu2_1:1@1,1", guide=guide, **tiny(vgg))


def test_noise_init_visualizes_a_channel_and_a_neuron(vgg):
    result = dream(None, "relu2_1:5", init="noise", **tiny(vgg, octaves=2))
    assert result.image.size == (32, 32) and result.recipe["input"] is None
    assert dream(None, "relu2_1:5@4,4", init="noise", objective="l2", **tiny(vgg)).stopped is None
    with pytest.raises(OptionError, match="outside the grid of relu2_1.*rows 0-15"):
        dream(None, "relu2_1:5@16,0", init="noise", **tiny(vgg))
    with pytest.raises(OptionError, match="--init noise"):
        dream(None, "relu2_1", **tiny(vgg))


@pytest.mark.parametrize(
    "kw, words",
    [
        ({"optimizer": "normalised"}, "'normalized'"),
        ({"objective": "max"}, "mean, l2, strongest"),
        ({"octaves": 0}, "octaves"),
        ({"octave_scale": 0.5}, "octave-scale"),
        ({"jitter": -1}, "jitter"),
        ({"tile": 8}, "minimum"),
        ({"lr": -1.0}, "step"),
    ],
)
def test_dream_refuses_bad_options(vgg, photo, kw, words):
    with pytest.raises((OptionError, UnknownNameError), match=words):
        dream(photo, "relu2_1", **tiny(vgg, **kw))


# --- the hybrid ------------------------------------------------------------------------------------


def test_auto_picks_an_unused_layer_on_every_backbone():
    from dreamstyle.plugins import get_host

    reg = get_host().backbones
    for name in reg.names():
        if hasattr(reg.entries[name], "resolve"):
            continue
        bb = reg.get(name)
        used = set(bb.content_layers) | set(bb.style_layers)
        chosen = choose_dream_layer(bb, used)
        assert chosen in bb.layer_map and chosen not in used, name
    vgg19 = get_backbone("vgg19")
    assert choose_dream_layer(vgg19, {"relu4_2", "relu1_1"}) == "relu4_4"  # the backbone's default
    assert choose_dream_layer(vgg19, {"relu4_4", "relu5_4"}) == "relu5_3"  # else the deepest unused ReLU


@pytest.fixture
def pair(tmp_path):
    return make_image(tmp_path / "c.png", (40, 32)), make_image(tmp_path / "s.png", (40, 40), 1, "stripes")


def test_hybrid_auto_adds_an_activation_term_and_records_it(pair, vgg):
    result = transfer(
        *pair,
        loaded=vgg,
        size=32,
        iterations=2,
        seed=0,
        device="cpu",
        optimizer="adam",
        dream_layers="auto",
        dream_weight=3.0,
    )
    assert result.recipe["dream_layers_used"] == ["relu4_4"] and result.recipe["dream_auto"] == ["relu4_4"]
    assert result.recipe["dream_layers"] == ["auto"] and result.recipe["dream_weight_used"] == 3.0
    assert {"content", "style", "tv", "activation"} <= set(result.history[0])


def test_hybrid_auto_avoids_the_layers_in_use_and_announces_its_choice():
    said = []
    vgg19 = get_backbone("vgg19")
    objective, notes = dream_terms(
        ["auto", "auto", "relu3_3:4=0.5"], 2.0, False, {"relu2_1": "content", "relu4_4": "style"}, vgg19, said.append
    )
    assert objective.names == ["activation"] and objective.weights == [2.0]
    assert [str(t) for t in objective.terms[0].targets] == ["relu5_4", "relu5_3", "relu3_3:4=0.5"]
    assert notes == {
        "dream_layers_used": ["relu5_4", "relu5_3", "relu3_3:4=0.5"],
        "dream_weight_used": 2.0,
        "dream_auto": ["relu5_4", "relu5_3"],
    }
    assert said == ["dream layers: relu5_4, relu5_3 (auto: neither content nor style uses them)"]


def test_hybrid_layers_of_unweighted_terms_are_free(pair, vgg):
    result = transfer(
        *pair, loaded=vgg, size=32, iterations=1, device="cpu", content_weight=0, dream_layers="relu4_2"
    )  # the content layer, but content has no weight: no overlap
    assert result.recipe["dream_layers_used"] == ["relu4_2"]
    with pytest.raises(OptionError, match="both add the activation term"):
        transfer(
            *pair, loaded=vgg, size=32, iterations=1, device="cpu", dream_layers="auto", losses={"activation": 1.0}
        )


def test_hybrid_refuses_a_layer_content_or_style_uses_unless_allowed(pair, vgg):
    with pytest.raises(OptionError, match="relu4_2 is also a content layer.*--allow-overlap"):
        transfer(*pair, loaded=vgg, size=32, iterations=1, device="cpu", dream_layers="relu4_2")
    with pytest.raises(OptionError, match="relu1_1 is also a style layer"):
        transfer(*pair, loaded=vgg, size=32, iterations=1, device="cpu", dream_layers=["relu3_3:1", "relu1_1"])
    result = transfer(
        *pair, loaded=vgg, size=32, iterations=1, device="cpu", dream_layers="relu4_2:7", allow_overlap=True
    )
    assert result.recipe["dream_layers_used"] == ["relu4_2:7"]


def test_hybrid_on_another_backbone(tmp_path):
    pair = make_image(tmp_path / "c.png", (56, 48)), make_image(tmp_path / "s.png", (48, 48), 1, "stripes")
    result = transfer(
        *pair,
        backbone="squeezenet1_1",
        weights="random",
        size=56,
        iterations=1,
        seed=0,
        device="cpu",
        dream_layers="auto",
    )
    assert result.recipe["dream_auto"] == ["fire8"] and "activation" in result.history[0]


# --- the command line ------------------------------------------------------------------------------


def run_cli(runner, args):
    return runner.invoke(main, args + ["--weights", "random", "--device", "cpu"])


def test_cli_dream_writes_png_recipe_log_and_gif(runner, photo, tmp_path):
    out, log, gif = tmp_path / "dream.png", tmp_path / "log.json", tmp_path / "d.gif"
    result = run_cli(
        runner,
        [
            "dream",
            str(photo),
            "--layer",
            "relu2_1:3",
            "--layer",
            "relu1_2=0.5",
            "-o",
            str(out),
            "--size",
            "32",
            "--octaves",
            "2",
            "--octave-scale",
            "1.3",
            "--iterations",
            "2",
            "--seed",
            "4",
            "--log-json",
            str(log),
            "--gif",
            str(gif),
            "--step",
            "2",
            "-q",
        ],
    )
    assert result.exit_code == 0, result.output
    recipe = read_recipe(out)
    assert recipe["command"] == "dream" and recipe["layers"] == ["relu2_1:3", "relu1_2=0.5"]
    assert recipe["seed"] == 4 and recipe["step"] == 2.0 and recipe["octaves"] == 2
    rows = json.loads(log.read_text())
    assert len(rows) == 4 and all({"iteration", "total", "activation"} <= set(r) for r in rows)
    with Image.open(gif) as anim:
        assert anim.n_frames >= 2 and anim.size == (32, 26)


def test_cli_dream_from_noise_without_input(runner, tmp_path):
    out = tmp_path / "n.png"
    result = run_cli(
        runner,
        [
            "dream",
            "--init",
            "noise",
            "--layer",
            "relu2_1:9",
            "-o",
            str(out),
            "--size",
            "32",
            "--octaves",
            "1",
            "--iterations",
            "1",
            "-q",
        ],
    )
    assert result.exit_code == 0, result.output
    assert Image.open(out).size == (32, 32)


@pytest.mark.parametrize(
    "args, words",
    [
        (["--layer", "relu9_1"], "dreamstyle layers vgg19"),
        (["--layer", "relu2_1:300"], "0-127"),
        (["--layer", "relu2_1:1@2"], "Y,X"),
        (["--step", "-1"], "--step must be a finite number more than 0"),
        (["--layer", "relu2_1:1@99,0"], "outside the grid"),
    ],
)
def test_cli_dream_errors_are_one_line(runner, photo, tmp_path, args, words):
    result = run_cli(runner, ["dream", str(photo), "-o", str(tmp_path / "x.png"), "--size", "32"] + args)
    assert result.exit_code in (1, 2) and "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], result.output
    assert not (tmp_path / "x.png").exists()


def test_cli_dream_needs_an_input_unless_noise(runner, tmp_path):
    result = run_cli(runner, ["dream", "-o", str(tmp_path / "x.png")])
    assert result.exit_code == 1 and "--init noise" in result.output and "Traceback" not in result.output


def test_cli_hybrid_says_which_layer_auto_picked(runner, pair, tmp_path):
    out = tmp_path / "h.png"
    args = [
        "transfer",
        str(pair[0]),
        str(pair[1]),
        "-o",
        str(out),
        "--size",
        "32",
        "--iterations",
        "1",
        "--dream-layer",
        "auto",
        "--dream-weight",
        "1.5",
    ]
    result = run_cli(runner, args)
    assert result.exit_code == 0, result.output
    assert "dream layer: relu4_4" in result.output
    assert read_recipe(out)["dream_layers_used"] == ["relu4_4"] and read_recipe(out)["dream_weight"] == 1.5


def test_cli_hybrid_overlap_is_one_line(runner, pair, tmp_path):
    args = [
        "transfer",
        str(pair[0]),
        str(pair[1]),
        "-o",
        str(tmp_path / "h.png"),
        "--size",
        "32",
        "--dream-layer",
        "relu5_1",
    ]
    result = run_cli(runner, args)
    lines = result.output.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 1 and "--allow-overlap" in lines[0]
