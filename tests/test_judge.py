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
    return (
        make_image(tmp_path / "photo.png", (48, 36)),
        make_image(tmp_path / "painting.png", (40, 40), seed=1, kind="stripes"),
    )


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
    result = runner.invoke(
        main,
        [
            "score",
            str(painting),
            "--content",
            str(photo),
            "--style",
            str(painting),
            "--weights",
            "random",
            "--device",
            "cpu",
            "--json",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "content" in result.output and "sliced Wasserstein" in result.output
    data = json.loads(out.read_text())
    assert data["style_gram"] == 0 and data["content"] > 0


@pytest.mark.parametrize(
    "args, words",
    [
        ([], "give a content image, a style image or both"),
        (["--style", "missing.png"], "missing.png"),
        (["--style", "PAINTING", "--backbone", "vgg91"], "did you mean"),
    ],
)
def test_mistakes_are_one_line(files, runner, args, words):
    photo, painting = files
    args = [str(painting) if a == "PAINTING" else a for a in args]
    result = runner.invoke(main, ["score", str(photo), "--weights", "random", "--device", "cpu", *args])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert words in result.output, result.output


def test_compare_grades_every_backbone_on_one_judge(files):
    photo, painting = files
    comp = dreamstyle.compare(
        str(photo), [str(painting)], "vgg19,vgg19:avg", size=32, iterations=2, judge="vgg19:avg", **RANDOM
    )
    assert comp.judge == {"backbone": "vgg19", "weights": "random", "pooling": "avg"}  # random: the run's weights
    for row in comp.rows:
        assert set(row.judge) == {"content", "style_gram", "style_swd"}
        assert all(isinstance(v, float) and v > 0 for v in row.judge.values())
    table = comp.to_dict()
    assert table["judge"]["backbone"] == "vgg19" and table["backbones"][0]["judge"]["style_swd"] > 0
    md = comp.to_markdown()
    assert "| judge content | judge style (Gram) | judge style (SW) |" in md and "Judged on vgg19" in md
    plain = dreamstyle.compare(str(photo), [str(painting)], "vgg19", size=32, iterations=1, judge=None, **RANDOM)
    assert plain.judge is None and plain.rows[0].judge == {} and "judge content" not in plain.to_markdown()


def test_compare_and_sweep_take_judge_on_the_command_line(files, tmp_path, runner):
    photo, painting = files
    fast = ["--weights", "random", "--size", "32", "--iterations", "1", "--seed", "0", "--device", "cpu", "-q"]
    out = tmp_path / "cmp"
    res = runner.invoke(main, ["compare", str(photo), str(painting), "--backbones", "vgg19", *fast, "-o", str(out)])
    assert res.exit_code == 0, res.output
    row = json.loads((out / "compare.json").read_text())["backbones"][0]
    assert row["judge"]["content"] > 0 and "judge: content" in res.output  # the default judge: vgg19
    out = tmp_path / "sw"
    res = runner.invoke(
        main,
        ["sweep", str(photo), str(painting), "--vary", "preset=gram,nn", "--judge", "vgg19:avg", *fast, "-o", str(out)],
    )
    assert res.exit_code == 0, res.output
    table = json.loads((out / "sweep.json").read_text())
    assert table["judge"] == {"backbone": "vgg19", "weights": "random", "pooling": "avg"}
    assert [c["vary"]["preset"] for c in table["cells"]] == ["gram", "nn"]
    assert all(c["judge"]["style_gram"] > 0 and c["judge"]["content"] > 0 for c in table["cells"])
    assert "judge style (SW)" in (out / "sweep.md").read_text()
    res = runner.invoke(
        main, ["sweep", "texture", str(painting), "--vary", "style-loss=gram,swd", *fast, "-o", str(tmp_path / "tx")]
    )
    assert res.exit_code == 0, res.output
    cells = json.loads((tmp_path / "tx" / "sweep.json").read_text())["cells"]
    assert all(c["judge"]["content"] is None and c["judge"]["style_swd"] > 0 for c in cells)  # no photo


def test_an_unknown_judge_is_one_line_before_any_work(files, tmp_path, runner):
    photo, painting = files
    res = runner.invoke(
        main,
        [
            "compare",
            str(photo),
            str(painting),
            "--backbones",
            "vgg19",
            "--weights",
            "random",
            "--size",
            "32",
            "--iterations",
            "1",
            "--judge",
            "nosuchnet",
            "-o",
            str(tmp_path / "c"),
            "-q",
        ],
    )
    assert res.exit_code == 1 and "unknown backbone 'nosuchnet'" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "c" / "vgg19-random.png").exists()


def test_a_judge_that_cannot_grade_leaves_its_error_and_the_pictures(files, monkeypatch):
    import dreamstyle.judge

    def broken(*args, **kwargs):
        raise OSError("no weights here")

    monkeypatch.setattr(dreamstyle.judge, "score", broken)
    photo, painting = files
    comp = dreamstyle.compare(str(photo), [str(painting)], "vgg19", size=32, iterations=1, **RANDOM)
    assert comp.rows[0].ok and comp.rows[0].judge == {"error": "OSError: no weights here"}
    assert "| ok |" in comp.to_markdown()
