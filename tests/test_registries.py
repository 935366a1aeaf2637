"""Optimizers and output formats are registrations: a plugin adds one with one hook, and every
command takes it (the registry contract: each registered optimizer lowers a loss, each writer's
recipe round-trips)."""

import json

import numpy as np
import pytest
import torch
from helpers import make_image
from PIL import Image

from dreamstyle import hookimpl
from dreamstyle.cli import main
from dreamstyle.optimizers import make_optimizer
from dreamstyle.records import OptimizerSpec, Writer
from dreamstyle.writers import read_recipe

FAST = ["--weights", "random", "--device", "cpu", "--size", "40", "--seed", "0", "-q"]


def _sgd(params, lr, pixel_scale):
    return torch.optim.SGD(params, lr=lr, momentum=0.5)


def _tiff_write(fh, images, recipe, **_):
    info = {270: json.dumps(recipe)} if recipe is not None else {}
    images[0].save(fh, format="TIFF", tiffinfo=info)


def _tiff_recipe(path):
    with Image.open(path) as img:
        text = img.tag_v2.get(270)
    return json.loads(text) if text else None


class FormatsPlugin:
    @hookimpl
    def register_optimizers(self, register):
        register(OptimizerSpec("sgd", "plain SGD with momentum (a test plugin)", _sgd, 100.0))

    @hookimpl
    def register_writers(self, register):
        register(Writer("ptif", (".ptif",), "image", _tiff_write, _tiff_recipe, "TIFF by Pillow (a test plugin)"))


@pytest.fixture
def images(tmp_path):
    return make_image(tmp_path / "content.png"), make_image(tmp_path / "style.png", (44, 44), 1, "stripes")


def test_a_plugin_optimizer_runs_every_job(host, images, tmp_path, runner):
    assert host.register(FormatsPlugin(), name="formats")
    log = tmp_path / "log.json"
    # plain SGD steps by the gradient, whose size is the objective's: the relative terms at their default weights
    # are as large with random weights as with pretrained ones (the absolute terms were tiny there), so a small lr
    result = runner.invoke(
        main,
        [
            "transfer",
            *map(str, images),
            "-o",
            str(tmp_path / "o.png"),
            "--optimizer",
            "sgd",
            "--iterations",
            "6",
            "--log-json",
            str(log),
            "--tv-weight",
            "0",
            "--lr",
            "1e-3",
            *FAST,
        ],
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(log.read_text())
    assert rows[-1]["total"] < rows[0]["total"]
    result = runner.invoke(
        main,
        [
            "dream",
            str(images[0]),
            "-o",
            str(tmp_path / "d.png"),
            "--optimizer",
            "sgd",
            "--step",
            "1",
            "--iterations",
            "2",
            "--octaves",
            "1",
            "--layer",
            "relu2_1",
            *FAST,
        ],
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        main,
        ["texture", str(images[1]), "-o", str(tmp_path / "t.png"), "--optimizer", "sgd", "--iterations", "2", *FAST],
    )
    assert result.exit_code == 0, result.output


def test_a_plugin_output_format_carries_the_recipe_and_replays(host, images, tmp_path, runner):
    assert host.register(FormatsPlugin(), name="formats")
    out = tmp_path / "o.ptif"
    result = runner.invoke(main, ["transfer", *map(str, images), "-o", str(out), "--iterations", "2", *FAST])
    assert result.exit_code == 0, result.output
    assert Image.open(out).format == "TIFF" and read_recipe(out)["iterations"] == 2
    again = tmp_path / "again.ptif"
    result = runner.invoke(main, ["transfer", "--from", str(out), "-o", str(again), "-q"])
    assert result.exit_code == 0, result.output
    assert np.array_equal(np.asarray(Image.open(again)), np.asarray(Image.open(out)))


def test_unknown_formats_and_optimizers_are_one_line(host, images, tmp_path, runner):
    result = runner.invoke(main, ["transfer", *map(str, images), "-o", str(tmp_path / "o.bmp"), *FAST])
    assert result.exit_code == 1 and "must end in .png" in result.output
    result = runner.invoke(
        main, ["transfer", *map(str, images), "-o", str(tmp_path / "o.png"), "--optimizer", "adma", *FAST]
    )
    assert result.exit_code == 1 and "unknown optimizer 'adma'" in result.output and "'adam'" in result.output


@pytest.mark.parametrize("name", ["lbfgs", "adam", "normalized"])
def test_every_builtin_optimizer_lowers_a_loss(name):
    torch.manual_seed(0)
    target = torch.rand(1, 3, 8, 8) * 255
    p = torch.zeros(1, 3, 8, 8, requires_grad=True)
    opt = make_optimizer(name, [p], None)

    def closure():
        opt.zero_grad()
        loss = ((p - target) ** 2).mean()
        loss.backward()
        return loss

    first = float(closure().detach())
    for _ in range(5):
        opt.step(closure)
    assert float(closure().detach()) < first


@pytest.mark.parametrize("suffix", [".png", ".gif", ".webp"])
def test_every_builtin_writer_round_trips_the_recipe(tmp_path, suffix):
    from dreamstyle.writers import save_image, write_clip

    frames = [Image.new("RGB", (8, 8), c) for c in ("red", "blue")]
    recipe = {"command": "transfer", "seed": 5, "text": "a < b & c"}
    path = tmp_path / f"x{suffix}"
    if suffix == ".png":
        save_image(frames[0], path, recipe)
        assert read_recipe(path) == recipe
    write_clip(frames, tmp_path / f"clip{suffix}", [50, 50], 0, recipe=recipe)
    assert read_recipe(tmp_path / f"clip{suffix}") == recipe
