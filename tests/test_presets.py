"""--preset: a style loss with the settings measured best for it, each option unless given; what it set
is in the recipe, and a replay makes the same picture (or takes another preset's options)."""

import pytest
from helpers import make_image

from dreamstyle.cli import main
from dreamstyle.jobs.sweep import grid, parse_axes
from dreamstyle.settings import PRESETS, STYLE_LOSSES, STYLE_WEIGHT, TextureSettings, TransferSettings, make
from dreamstyle.writers import read_recipe

pytestmark = pytest.mark.usefixtures("one_thread")
FAST = [
    "--weights",
    "random",
    "--device",
    "cpu",
    "--seed",
    "3",
    "-q",
    "--size",
    "32",
    "--precision",
    "fp32",
    "--iterations",
    "3",
]


def test_every_style_loss_has_a_preset_that_chooses_it():
    assert set(PRESETS) == set(STYLE_LOSSES)
    assert all(p["style_loss"] == name for name, p in PRESETS.items())


def test_a_preset_sets_what_is_not_given_and_an_option_given_beats_it():
    s = make(TransferSettings, {"content": "c.png", "styles": ("s.png",), "preset": "swd"})
    assert (s.style_loss, s.optimizer, s.style_weight) == ("swd", "lbfgs", 4.5e7)
    s = make(
        TransferSettings,
        {"content": "c.png", "styles": ("s.png",), "preset": "swd", "optimizer": "adam", "style_weight": STYLE_WEIGHT},
    )  # given at the default: still given
    assert (s.style_loss, s.optimizer, s.style_weight) == ("swd", "adam", STYLE_WEIGHT)
    recipe = s.to_recipe()
    assert recipe["preset"] == "swd" and recipe["preset_values"]["style_loss"] == "swd"
    assert "optimizer" not in recipe["preset_values"]
    texture = make(TextureSettings, {"styles": ("s.png",), "preset": "nn"})  # no content weight to set
    assert texture.style_loss == "nn" and "content_weight" not in texture.to_recipe()["preset_values"]
    plain = make(TransferSettings, {"content": "c.png", "styles": ("s.png",)}).to_recipe()
    assert plain["preset"] is None and "preset_values" not in plain and plain["style_loss"] == "gram"


def test_a_sweep_over_presets_gives_each_cell_its_preset_but_what_is_given():
    base = make(TransferSettings, {"content": "c.png", "styles": ("s.png",), "iterations": 5})
    cells = grid(
        base, parse_axes(TransferSettings, (("preset", ("gram", "swd")),)), given=lambda name: name == "tv_weight"
    )
    gram, swd = (base.replace(**c.changes) for c in cells)
    assert (gram.style_loss, gram.style_weight, swd.style_loss, swd.style_weight) == (
        "gram",
        STYLE_WEIGHT,
        "swd",
        4.5e7,
    )
    assert "tv_weight" not in cells[1].changes and [c.label for c in cells] == ["preset gram", "preset swd"]


def test_the_command_line_records_the_preset_and_replays_it(tmp_path, runner):
    content = make_image(tmp_path / "content.png", (40, 32))
    style = make_image(tmp_path / "style.png", (40, 40), seed=1, kind="stripes")
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
            "--preset",
            "nn",
            "--style-weight",
            "1e4",
            "--optimizer",
            "adam",
        ],
        catch_exceptions=False,
    )
    assert made.exit_code == 0, made.output
    recipe = read_recipe(out)
    assert (recipe["preset"], recipe["style_loss"], recipe["style_weight"], recipe["optimizer"]) == (
        "nn",
        "nn",
        1e4,
        "adam",
    )
    assert set(recipe["preset_values"]) == {"style_loss", "content_weight", "tv_weight"}  # not what was given
    again = tmp_path / "again.png"
    replay = runner.invoke(main, ["transfer", "--from", str(out), "-o", str(again), "-q"], catch_exceptions=False)
    assert replay.exit_code == 0, replay.output
    assert again.read_bytes() == out.read_bytes()
    other = tmp_path / "other.png"
    replay = runner.invoke(
        main, ["transfer", "--from", str(out), "-o", str(other), "-q", "--preset", "swd"], catch_exceptions=False
    )
    assert replay.exit_code == 0, replay.output
    recipe = read_recipe(other)  # swd's loss; the weight and optimizer given at first stay
    assert (recipe["preset"], recipe["style_loss"], recipe["style_weight"], recipe["optimizer"]) == (
        "swd",
        "swd",
        1e4,
        "adam",
    )
