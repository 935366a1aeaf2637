"""The job layer: behaviours the old, copied drivers got wrong (each failed before the rebuild),
texture synthesis, replay, and the runner's one stop policy."""

import json

import numpy as np
import pytest
import torch
from helpers import make_image
from PIL import Image

import dreamstyle
from dreamstyle.backbones import load_backbone
from dreamstyle.cli import main
from dreamstyle.errors import TermFailed
from dreamstyle.objective import Objective, term
from dreamstyle.writers import read_recipe

FAST = ["--weights", "random", "--device", "cpu", "--seed", "0", "-q"]


@pytest.fixture
def images(tmp_path):
    return make_image(tmp_path / "content.png"), make_image(tmp_path / "style.png", (44, 44), 1, "stripes")


@pytest.fixture
def clip(tmp_path):
    frames = [Image.open(make_image(tmp_path / f"f{i}.png", (48, 40), i)).convert("RGB") for i in range(3)]
    path = tmp_path / "clip.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    return path


def invoke(runner, *args):
    return runner.invoke(main, [*map(str, args), *FAST])


# --- what drifted between the copies -----------------------------------------------------------------


def test_clips_and_folders_take_scales_and_the_hybrid(clip, images, tmp_path, runner):
    out = tmp_path / "o.gif"
    result = invoke(
        runner,
        "transfer",
        clip,
        images[1],
        "-o",
        out,
        "--size",
        "40",
        "--iterations",
        "2",
        "--scales",
        "2",
        "--dream-layer",
        "auto",
        "--log-json",
        tmp_path / "log.json",
    )
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "log.json").read_text())
    assert {r["stage"] for r in rows if r["frame"] == 1} == {1, 2}  # the first frame: coarse to fine
    assert {r["stage"] for r in rows if r["frame"] > 1} == {1}  # later ones warm-start at full size
    assert "activation" in rows[-1] and read_recipe(out)["dream_auto"] == ["relu4_4"]


def test_compare_takes_the_hybrid_log_and_snapshots(images, tmp_path, runner):
    out = tmp_path / "cmp"
    result = invoke(
        runner,
        "compare",
        *images,
        "--backbones",
        "vgg19",
        "-o",
        out,
        "--size",
        "40",
        "--iterations",
        "2",
        "--dream-layer",
        "relu3_3",
        "--dream-weight",
        "2",
        "--log-json",
        tmp_path / "log.json",
        "--save-every",
        "2",
    )
    assert result.exit_code == 0, result.output
    assert read_recipe(out / "vgg19-random.png")["dream_layers_used"] == ["relu3_3"]
    (row,) = json.loads((tmp_path / "log.json").read_text())
    assert "activation" in row["history"][-1] and (out / "vgg19-random_00002.png").exists()


def test_dream_takes_loss_terms_and_preserves_colour(images, tmp_path, runner):
    out = tmp_path / "d.png"
    result = invoke(
        runner,
        "dream",
        images[0],
        "-o",
        out,
        "--size",
        "40",
        "--octaves",
        "1",
        "--iterations",
        "2",
        "--layer",
        "relu2_1",
        "--loss",
        "tv=10",
        "--preserve-color",
        "luminance",
        "--log-json",
        tmp_path / "log.json",
    )
    assert result.exit_code == 0, result.output
    assert "tv" in json.loads((tmp_path / "log.json").read_text())[-1]
    assert read_recipe(out)["preserve_color"] == "luminance"


def test_a_mistyped_init_gets_the_same_suggestion_on_a_clip(clip, images, tmp_path, runner):
    for content in (images[0], clip):
        result = invoke(runner, "transfer", content, images[1], "-o", tmp_path / "o.gif", "--init", "nosie")
        assert result.exit_code == 1 and "did you mean 'noise'" in result.output, result.output


def test_running_out_of_memory_while_loading_is_one_line_for_every_command(images, clip, tmp_path, runner, monkeypatch):
    from dreamstyle import session

    def oom(*a, **k):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(session, "LoadedBackbone", oom)
    for args in (
        ["transfer", images[0], images[1]],
        ["transfer", clip, images[1]],
        ["dream", images[0]],
        ["texture", images[1]],
    ):
        result = invoke(
            runner, *args, "-o", tmp_path / "o.gif" if args[1] == clip else tmp_path / "o.png", "--size", "40"
        )
        assert result.exit_code == 1 and "out of memory on cpu loading backbone 'vgg19'" in result.output, args


def test_scales_without_size_record_the_size_that_ran(images, tmp_path, runner):
    out = tmp_path / "o.png"
    result = invoke(runner, "transfer", *images, "-o", out, "--scales", "24,40", "--iterations", "1")
    assert result.exit_code == 0, result.output
    assert read_recipe(out)["size"] == 40 and Image.open(out).size == (40, 33)


def test_a_guided_dream_refuses_the_l2_objective(images, tmp_path, runner):
    result = invoke(runner, "dream", images[0], "-o", tmp_path / "d.png", "--guide", images[1], "--objective", "l2")
    assert result.exit_code == 1 and "--objective l2 does not apply with --guide" in result.output


def test_one_default_per_option():
    """The defaults of the options and of the registered terms are one value each."""
    from dreamstyle.plugins import get_host
    from dreamstyle.settings import TextureSettings, TransferSettings

    terms = get_host().loss_terms
    for cls in (TransferSettings, TextureSettings):
        for name in ("content", "style", "tv"):
            field = f"{name}_weight"
            if field in cls.names():
                assert cls.__dataclass_fields__[field].default == terms.get(name).default_weight, (cls, name)
    assert TransferSettings.__dataclass_fields__["temporal_weight"].default == terms.get("temporal").default_weight


# --- objectives ----------------------------------------------------------------------------------------


def test_objectives_add_and_scale_keeping_named_leaves():
    obj = 5 * term("content", layers="relu1_1") + 100 * term("style", layers="relu1_1") + term("tv")
    hybrid = obj + 1e5 * term("activation", layers="relu2_1")
    assert hybrid.names == ["content", "style", "tv", "activation"] and hybrid.weights == [5.0, 100.0, 1.0, 1e5]
    assert (-obj).weights == [-5.0, -100.0, -1.0] and sum([obj, obj]).names[3:] == ["content_2", "style_2", "tv_2"]
    assert set(hybrid.layers) == {"relu1_1", "relu2_1"} and "100000*activation" in hybrid.describe()
    image = torch.rand(1, 3, 8, 8)
    total, values = term("tv")({}, image)
    assert values.shape == (1,) and total == values[0]


def test_a_term_that_returns_many_values_is_one_line():
    class Many(torch.nn.Module):
        layers = []

        def forward(self, feats, image):
            return image.mean((1, 2, 3))

    with pytest.raises(TermFailed, match="'many' returned \\(2,\\) values"):
        Objective([("many", Many(), 1.0)])({}, torch.rand(2, 3, 4, 4))


# --- texture ----------------------------------------------------------------------------------------------


def edge_jump(img: np.ndarray) -> tuple[float, float]:
    """Mean |difference| across the left-right wrap, and between neighbouring interior columns."""
    a = img.astype(float)
    wrap = np.abs(a[:, 0] - a[:, -1]).mean()
    inner = np.abs(np.diff(a, axis=1)).mean()
    return wrap, inner


def test_texture_from_noise_lowers_the_style_loss(images, tmp_path, runner):
    out, log = tmp_path / "t.png", tmp_path / "log.json"
    result = invoke(
        runner,
        "texture",
        images[1],
        "-o",
        out,
        "--size",
        "48x32",
        "--iterations",
        "8",
        "--tv-weight",
        "0",
        "--log-json",
        log,
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(log.read_text())
    assert rows[-1]["style"] < rows[0]["style"] and "content" not in rows[0]
    assert Image.open(out).size == (48, 32) and read_recipe(out)["command"] == "texture"


def test_seamless_texture_joins_left_and_right():
    """With circular padding, wrap-around TV and the roll, the edges join like any two neighbouring
    columns; without, the wrap is a seam."""
    torch.manual_seed(0)
    vgg = load_backbone("vgg19", weights="random")
    style = Image.fromarray((np.random.default_rng(1).random((48, 48, 3)) * 255).astype("uint8"))
    common = dict(
        size="48x32",
        iterations=30,
        seed=0,
        device="cpu",
        optimizer="adam",
        lr=8.0,
        loaded=vgg,
        precision="fp32",
        tv_weight=200.0,
        init="noise",
    )
    seamless = np.asarray(dreamstyle.texture([style], seamless=True, **common).image)
    plain = np.asarray(dreamstyle.texture([style], **common).image)
    wrap, inner = edge_jump(seamless)
    assert wrap < 1.5 * inner, (wrap, inner)
    assert edge_jump(plain)[0] > wrap


# --- replay ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["transfer", "dream", "texture"])
def test_replay_reproduces_the_image_bit_for_bit(command, images, tmp_path, runner):
    inputs = {"transfer": list(images), "dream": [images[0]], "texture": [images[1]]}[command]
    extra = {
        "transfer": ["--scales", "2", "--iterations", "3"],
        "dream": ["--octaves", "2", "--iterations", "2"],
        "texture": ["--size", "40x24", "--iterations", "3"],
    }[command]
    first, again = tmp_path / "first.png", tmp_path / "again.png"
    result = runner.invoke(
        main,
        [
            command,
            *map(str, inputs),
            "-o",
            str(first),
            "--weights",
            "random",
            "--device",
            "cpu",
            "--size" if command != "texture" else "--seed",
            "40" if command != "texture" else "3",
            *extra,
            "-q",
        ],
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, [command, "--from", str(first), "-o", str(again), "-q"])
    assert result.exit_code == 0, result.output
    assert np.array_equal(np.asarray(Image.open(first)), np.asarray(Image.open(again)))
    assert read_recipe(again)["seed"] == read_recipe(first)["seed"]


def test_replay_takes_overrides_and_refuses_what_it_cannot(images, tmp_path, runner):
    first = tmp_path / "first.png"
    assert invoke(runner, "transfer", *images, "-o", first, "--size", "40", "--iterations", "2").exit_code == 0
    bigger = tmp_path / "bigger.png"
    result = runner.invoke(main, ["transfer", "--from", str(first), "-o", str(bigger), "--size", "48", "-q"])
    assert result.exit_code == 0, result.output
    assert Image.open(bigger).size == (48, 40) and read_recipe(bigger)["iterations"] == 2
    result = runner.invoke(main, ["dream", "--from", str(first), "-o", str(tmp_path / "d.png")])
    assert result.exit_code == 1 and "'dreamstyle transfer', not 'dreamstyle dream'" in result.output
    plain = tmp_path / "plain.png"
    Image.new("RGB", (8, 8)).save(plain)
    result = runner.invoke(main, ["transfer", "--from", str(plain), "-o", str(tmp_path / "x.png")])
    assert result.exit_code == 1 and "carries no dreamstyle recipe" in result.output
