"""dreamstyle sweep, --resume on folders and sweeps, and the --executor options, on the local executor
(no Ray needed; tests/test_ray.py runs the same on Ray). Random weights, tiny images, two steps."""

import json

import pytest
from helpers import make_image
from PIL import Image

from dreamstyle.cli import main
from dreamstyle.errors import OptionError
from dreamstyle.jobs.sweep import grid, parse_axes
from dreamstyle.settings import TransferSettings, vary_specs
from dreamstyle.writers import read_recipe

pytestmark = pytest.mark.usefixtures("one_thread")
FAST = ["--weights", "random", "--size", "32", "--iterations", "2", "--seed", "0", "--device", "cpu", "-q"]


@pytest.fixture
def images(tmp_path):
    return make_image(tmp_path / "photo.png", (40, 34)), make_image(tmp_path / "style.png", (36, 36), 1, "stripes")


def test_vary_names_any_option_by_flag_or_field_and_checks_values_before_work(images):
    content, style = images
    settings = TransferSettings(content=str(content), styles=(str(style),), seed=0)
    axes = parse_axes(
        TransferSettings,
        vary_specs(
            (
                "style-weight=1e2,1e3",
                "--content_layers=relu4_2;relu3_1,relu4_1",
                "pooling=max,avg",
                "allow-overlap=off",
            ),
            "--vary",
        ),
    )
    assert [a.name for a in axes] == ["style_weight", "content_layers", "pooling", "allow_overlap"]
    assert axes[0].values == (100.0, 1000.0) and axes[1].values == ("relu4_2", "relu3_1,relu4_1")
    cells = grid(settings, axes[:3])
    assert len(cells) == 8 and cells[1].changes == {
        "style_weight": 100.0,
        "content_layers": "relu4_2",
        "pooling": "avg",
    }
    assert cells[0].stem == "style-weight-1e2_content-layers-relu4_2_pooling-max"
    for bad, words in (
        (("styleweight=1,2",), "did you mean 'style-weight'"),
        (("tv-weight=-1",), "tv-weight"),
        (("iterations=many",), "not a value of --iterations"),
        (("seed=1,2",), "no option"),
        (("style-weight",), "OPTION=VALUE1"),
    ):
        with pytest.raises(OptionError, match=words):
            grid(settings, parse_axes(TransferSettings, vary_specs(bad, "--vary")))


def test_sweep_writes_a_labelled_sheet_tables_and_a_png_per_cell_and_resumes(images, tmp_path, runner):
    content, style = images
    out = tmp_path / "sw"
    args = [
        "sweep",
        str(content),
        str(style),
        "--vary",
        "style-weight=1e2,1e4",
        "--vary",
        "tv-weight=0,3e4,1e5",
        *FAST,
        "-o",
        str(out),
    ]
    res = runner.invoke(main, args)
    assert res.exit_code == 0, res.output
    table = json.loads((out / "sweep.json").read_text())
    assert table["vary"] == {"style-weight": ["1e2", "1e4"], "tv-weight": ["0", "3e4", "1e5"]}
    assert [c["status"] for c in table["cells"]] == ["ok"] * 6 and table["settings"]["seed"] == 0
    cell = table["cells"][5]
    assert cell["vary"] == {"style-weight": "1e4", "tv-weight": "1e5"} and cell["total_seconds"] > 0
    recipe = read_recipe(out / cell["output"])
    assert recipe["style_weight"] == 1e4 and recipe["tv_weight"] == 1e5 and recipe["seed"] == 0
    assert "| 1e4 | 1e5 | ok |" in (out / "sweep.md").read_text()
    sheet = Image.open(out / "sweep.png")
    assert sheet.width > 3 * 160 and sheet.height > 2 * 160  # 3 columns, 2 rows, and their names
    assert read_recipe(out / "sweep.png")["command"] == "sweep"
    again = runner.invoke(main, args)
    assert again.exit_code == 1 and "--overwrite" in again.output
    kept = {p.name: p.stat().st_mtime_ns for p in out.glob("style-weight*.png")}
    (out / cell["output"]).unlink()
    res = runner.invoke(main, [*args, "--resume"])
    assert res.exit_code == 0, res.output
    assert {p.name for p in out.glob("style-weight*.png")} == set(kept)
    assert all((out / n).stat().st_mtime_ns == t for n, t in kept.items() if n != cell["output"])
    statuses = [c["status"] for c in json.loads((out / "sweep.json").read_text())["cells"]]
    assert statuses == ["done before"] * 5 + ["ok"]


def test_a_sweep_of_dreams(images, tmp_path, runner):
    content, _ = images
    res = runner.invoke(
        main,
        ["sweep", "dream", str(content), "--vary", "step=0.5,2", "--octaves", "1", *FAST, "-o", str(tmp_path / "d")],
    )
    assert res.exit_code == 0, res.output
    cells = json.loads((tmp_path / "d" / "sweep.json").read_text())["cells"]
    assert [read_recipe(tmp_path / "d" / c["output"])["lr"] for c in cells] == [0.5, 2.0]
    assert read_recipe(tmp_path / "d" / cells[0]["output"])["command"] == "dream"


def test_a_folder_resumes_and_refuses_outputs_of_other_settings(images, tmp_path, runner):
    _, style = images
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(3):
        make_image(folder / f"i{i}.png", (40, 34), seed=i)
    out = tmp_path / "styled"
    args = ["transfer", str(folder), str(style), "-o", str(out), *FAST]
    assert runner.invoke(main, args).exit_code == 0
    first = (out / "i1.png").read_bytes()
    (out / "i1.png").unlink()
    (out / "i2.png").write_bytes(b"half a fi")  # a damaged output is not a finished one
    res = runner.invoke(main, [*args, "--resume"])
    assert res.exit_code == 1 and "i2.png exists but was not made with these settings" in res.output
    (out / "i2.png").unlink()
    res = runner.invoke(main, [*args, "--resume"])
    assert res.exit_code == 0, res.output
    assert (out / "i1.png").read_bytes() == first and sorted(p.name for p in out.iterdir()) == [
        "i0.png",
        "i1.png",
        "i2.png",
    ]


def test_executor_options_go_with_independent_items_and_ray_missing_is_one_line(images, tmp_path, runner, monkeypatch):
    content, style = images
    still = ["transfer", str(content), str(style), "-o", str(tmp_path / "o.png"), *FAST]
    res = runner.invoke(main, [*still, "--executor", "local"])
    assert res.exit_code == 2 and "goes with a folder of still images" in res.output
    folder = tmp_path / "in"
    folder.mkdir()
    make_image(folder / "a.png")
    res = runner.invoke(main, ["transfer", str(folder), str(style), "-o", str(tmp_path / "o"), *FAST, "--workers", "2"])
    assert res.exit_code == 1 and "--workers goes with --executor ray" in res.output
    res = runner.invoke(
        main,
        ["compare", str(content), str(style), "-o", str(tmp_path / "c"), "--backbones", "vgg19", "--executor", "spark"],
    )
    assert res.exit_code == 1 and "choose local, ray or ray:ADDRESS" in res.output
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    for command in (
        ["compare", str(content), str(style), "--backbones", "vgg19", "-o", str(tmp_path / "c")],
        ["sweep", str(content), str(style), "--vary", "tv-weight=0,1", "-o", str(tmp_path / "s")],
    ):
        res = runner.invoke(main, [*command, "--executor", "ray"])
        assert res.exit_code == 1 and "pip install 'dreamstyle[ray]'" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "c").exists() and not (tmp_path / "s").exists()
