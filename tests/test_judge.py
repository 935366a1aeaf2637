"""dreamstyle score: relative distances that are 0 for the same picture and grow as it departs, on
any judge backbone, from the Python API and the command line (a table, JSON, one-line errors)."""

import json

import pytest
from helpers import make_image

import dreamstyle
from dreamstyle.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")
RANDOM = {"weights": "random", "device": "cpu", "seed": 0}


@pytest.fixture
def files(tmp_path):
    return (make_image(tmp_path / "photo.png", (48, 36)), make_image(tmp_path / "painting.png", (40, 40), seed=1,
                                                                    kind="stripes"))


def test_the_same_picture_is_at_zero_and_another_is_not(files):
    photo, painting = files
    itself = dreamstyle.score(photo, photo, [photo], **RANDOM)
    assert itself["content"] == 0 and itself["style_gram"] == 0 and itself["style_swd"] < 1e-6
    other = dreamstyle.score(photo, photo, [painting], **RANDOM)
    assert other["content"] == 0 and other["style_gram"] > 1e-3 and other["style_swd"] > 1e-3
    assert set(other["layers"]["style_gram"]) == set(other["layers"]["style_swd"])  # the judge's style layers


def test_a_judge_is_any_backbone_and_its_draws_are_seeded(files):
    photo, painting = files
    first = dreamstyle.score(painting, photo, [photo], backbone="alexnet", size=96, **RANDOM)
    assert first["judge"] == "alexnet" and first["content"] > 0
    assert dreamstyle.score(painting, photo, [photo], backbone="alexnet", size=96, **RANDOM) == first
    with pytest.raises(dreamstyle.errors.UserError, match="the picture is 40x40 px: its short side, 40 px, is below"):
        dreamstyle.score(painting, photo, [photo], backbone="alexnet", **RANDOM)


def test_the_command_prints_a_table_and_writes_json(files, tmp_path, runner):
    photo, painting = files
    out = tmp_path / "score.json"
    result = runner.invoke(main, ["score", str(painting), "--content", str(photo), "--style", str(painting),
                                  "--weights", "random", "--device", "cpu", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "content" in result.output and "sliced Wasserstein" in result.output
    data = json.loads(out.read_text())
    assert data["style_gram"] == 0 and data["content"] > 0


@pytest.mark.parametrize("args, words", [([], "give a content image, a style image or both"),
                                         (["--style", "missing.png"], "missing.png"),
                                         (["--style", "PAINTING", "--backbone", "vgg91"], "did you mean")])
def test_mistakes_are_one_line(files, runner, args, words):
    photo, painting = files
    args = [str(painting) if a == "PAINTING" else a for a in args]
    result = runner.invoke(main, ["score", str(photo), "--weights", "random", "--device", "cpu", *args])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert words in result.output, result.output
