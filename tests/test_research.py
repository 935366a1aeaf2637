"""dreamstyle compare and dreamstyle reconstruct: CPU, random weights, tiny images, few steps."""

import json
import shutil
from pathlib import Path

import pytest
from helpers import make_image
from PIL import Image

from dreamstyle import compare, reconstruct
from dreamstyle.cli import main
from dreamstyle.errors import Interrupted, OptionError
from dreamstyle.jobs.compare import parse_variants
from dreamstyle.sheets import FAILED, Panel, contact_sheet, grid_shape
from dreamstyle.writers import read_recipe

PAD, MIN_W = 8, 160  # contact_sheet defaults: cells narrower than 160 px are scaled up to it


def sheet_width(columns):
    return columns * (MIN_W + PAD) + PAD


@pytest.fixture
def images(tmp_path):
    return make_image(tmp_path / "content.png"), make_image(tmp_path / "style.png", (44, 44), 1, "stripes")


def test_variants_parse_pooling_weights_and_unique_file_names():
    vs = parse_variants("vgg19, vgg19:avg ,alexnet:random,vgg19,resnet18:weights=/x/r18:v2.pth", pooling="max")
    assert [(v.name, v.pooling, v.weights) for v in vs] == [
        ("vgg19", "max", None),
        ("vgg19", "avg", None),
        ("alexnet", "max", "random"),
        ("vgg19", "max", None),
        ("resnet18", "max", "/x/r18:v2.pth"),
    ]
    assert [v.slug for v in vs] == ["vgg19", "vgg19-avg", "alexnet-random", "vgg19-2", "resnet18-r18-v2"]
    assert vs[2].label == "alexnet (random weights)" and vs[1].label == "vgg19 (avg pool)"
    assert parse_variants("vgg19", weights="random")[0].weights == "random"
    assert parse_variants("vgg19:pretrained", weights="random")[0].weights is None
    with pytest.raises(OptionError, match="unknown option 'fast'"):
        parse_variants("vgg19:fast")
    with pytest.raises(OptionError, match="empty"):
        parse_variants(" , ")


def test_contact_sheet_geometry_and_failed_panel():
    img = Image.new("RGB", (200, 100), "red")
    panels = [Panel(img, ["a", "long caption " * 5]), Panel(None, ["b", "failed"], note="why it failed")] * 2
    sheet = contact_sheet(panels, (200, 100), columns=3, title="t")
    assert sheet.width == 3 * (200 + PAD) + PAD
    assert grid_shape(4, 3) == (3, 2) and grid_shape(5) == (5, 1) and grid_shape(7) == (3, 3)
    # the grey "failed" box is drawn where the second image would be, the first image is there
    second = [sheet.getpixel((2 * PAD + 200 + 3, y)) for y in range(sheet.height // 2)]
    first = [sheet.getpixel((PAD + 3, y)) for y in range(sheet.height // 2)]
    assert FAILED in second and (255, 0, 0) not in second
    assert (255, 0, 0) in first and FAILED not in first


def test_compare_writes_sheet_tables_outputs_and_a_failing_backbone_does_not_stop_the_others(
    images, tmp_path, runner, monkeypatch
):
    content, style = images
    monkeypatch.setenv("COLUMNS", "80")
    out = tmp_path / "cmp"
    res = runner.invoke(
        main,
        [
            "compare",
            str(content),
            str(style),
            "--backbones",
            "vgg19,nosuchnet,alexnet,vgg19:avg",
            "--weights",
            "random",
            "--size",
            "40",
            "--iterations",
            "2",
            "--seed",
            "0",
            "--device",
            "cpu",
            "-o",
            str(out),
            "--gif",
            str(tmp_path / "cmp.gif"),
            "-q",
        ],
    )
    assert res.exit_code == 0, res.output
    table = json.loads((out / "compare.json").read_text())
    rows = {r["label"]: r for r in table["backbones"]}
    ok, avg = rows["vgg19 (random weights)"], rows["vgg19 (avg pool, random weights)"]
    assert ok["status"] == avg["status"] == "ok" and avg["pooling"] == "avg"
    assert ok["output"] == "vgg19-random.png" and avg["output"] == "vgg19-avg-random.png"
    for row in (ok, avg):
        assert row["iterations"] == 2 and row["ms_per_iteration"] > 0 and row["total_seconds"] > 0
        assert row["peak_memory_bytes"] is not None and set(row["losses"]) >= {"content", "style", "tv", "total"}
        assert (out / row["output"]).is_file()
    unknown, small = rows["nosuchnet (random weights)"], rows["alexnet (random weights)"]
    assert unknown["status"] == small["status"] == "failed" and unknown["output"] is None
    assert "unknown backbone 'nosuchnet'" in unknown["error"] and "minimum" in small["error"]
    assert table["settings"]["seed"] == 0 and "peak_memory" in table
    md = (out / "compare.md").read_text()
    assert "| vgg19 (random weights) | ok |" in md and "nosuchnet" in md and "Peak memory:" in md
    assert "ms/it" in res.output  # the table, then each backbone's picture and losses, or its error
    assert max(len(line) for line in res.output.splitlines()) <= 80, res.output  # nothing cut either:
    for label in rows:
        assert any(line.split("   ")[0].strip() == label for line in res.output.splitlines()), label
    assert "vgg19 (avg pool, random weights): vgg19-avg-random.png" in res.output
    assert "unknown backbone 'nosuchnet' (list them with: dreamstyle backbones)" in res.output
    assert "…" not in res.output
    sheet = Image.open(out / "compare.png")
    assert sheet.width == sheet_width(6)  # content, style, four backbones in one row
    assert read_recipe(out / "compare.png")["command"] == "compare"
    assert read_recipe(out / "vgg19-random.png")["backbone"] == "vgg19"
    with Image.open(tmp_path / "cmp.gif") as gif:
        assert gif.width == sheet_width(2)  # the two that ran, side by side
    # outputs are never replaced silently, and nothing runs when they would be
    again = runner.invoke(
        main,
        [
            "compare",
            str(content),
            str(style),
            "--backbones",
            "vgg19",
            "--weights",
            "random",
            "--size",
            "40",
            "--iterations",
            "1",
            "-o",
            str(out),
            "-q",
        ],
    )
    assert again.exit_code == 1 and "--overwrite" in again.output and "Traceback" not in again.output


def test_compare_when_every_backbone_fails_still_writes_the_table(images, tmp_path, runner):
    content, style = images
    out = tmp_path / "cmp"
    res = runner.invoke(
        main,
        [
            "compare",
            str(content),
            str(style),
            "--backbones",
            "nope,alexnet",
            "--weights",
            "random",
            "--size",
            "40",
            "--iterations",
            "1",
            "-o",
            str(out),
            "-q",
        ],
    )
    assert res.exit_code == 1 and "every backbone failed" in res.output
    rows = json.loads((out / "compare.json").read_text())["backbones"]
    assert [r["status"] for r in rows] == ["failed", "failed"]
    assert Image.open(out / "compare.png").width == sheet_width(4)
    res = runner.invoke(
        main, ["compare", str(content), str(style), "--backbones", "vgg19", "-o", str(tmp_path / "cmp.png")]
    )
    assert res.exit_code == 1 and "give a folder" in res.output and not (tmp_path / "cmp.png").exists()


def test_compare_api_survives_an_unexpected_error(images, monkeypatch):
    import dreamstyle.jobs.sweep

    real = dreamstyle.jobs.sweep.run  # compare is a sweep over backbones: its cells run there

    def flaky(job, *args, **kwargs):
        if job.settings.pooling == "avg":
            raise RuntimeError("CUDA out of memory (simulated)\nmore detail")
        return real(job, *args, **kwargs)

    monkeypatch.setattr(dreamstyle.jobs.sweep, "run", flaky)
    seen = []
    comp = compare(
        *images,
        "vgg19:avg,vgg19",
        weights="random",
        size=40,
        iterations=2,
        seed=0,
        device="cpu",
        on_start=lambda row, i, n: seen.append((row.variant.label, i, n)),
    )
    assert [r.status for r in comp.rows] == ["failed", "ok"]
    assert comp.rows[0].error == "RuntimeError: CUDA out of memory (simulated)"
    assert seen == [("vgg19 (avg pool, random weights)", 0, 2), ("vgg19 (random weights)", 1, 2)]
    assert comp.rows[1].result.image.size == (40, 33)


def test_reconstruct_content_one_panel_per_layer_sharing_one_network(images, tmp_path, runner, monkeypatch):
    import dreamstyle.backbones as backbones

    loads = []
    real_init = backbones.LoadedBackbone.__init__

    def counting(self, *a, **k):
        loads.append(1)
        real_init(self, *a, **k)

    monkeypatch.setattr(backbones.LoadedBackbone, "__init__", counting)
    content, _ = images
    out = tmp_path / "rec.png"
    res = runner.invoke(
        main,
        [
            "reconstruct",
            str(content),
            "--layers",
            "relu1_1,relu2_1,relu3_1",
            "--weights",
            "random",
            "--size",
            "40",
            "--iterations",
            "2",
            "--seed",
            "0",
            "--device",
            "cpu",
            "-o",
            str(out),
            "-q",
        ],
    )
    assert res.exit_code == 0, res.output
    assert len(loads) == 1
    grid = Image.open(out)
    assert grid.width == sheet_width(4)  # the original, then one panel per layer
    recipe = read_recipe(out)
    assert recipe["mode"] == "content" and [p["layers"] for p in recipe["panels"]] == [
        ["relu1_1"],
        ["relu2_1"],
        ["relu3_1"],
    ]
    assert all(set(p["loss"]) >= {"content", "total"} and "style" not in p["loss"] for p in recipe["panels"])


def test_reconstruct_style_uses_growing_sets_of_layers(images):
    content, _ = images
    rec = reconstruct(
        content, "relu1_1,relu2_1,relu3_1", style=True, weights="random", size=40, iterations=2, seed=0, device="cpu"
    )
    assert [layers for _, layers, _, _ in rec.panels] == [
        ["relu1_1"],
        ["relu1_1", "relu2_1"],
        ["relu1_1", "relu2_1", "relu3_1"],
    ]
    for _, _, result, _ in rec.panels:
        assert result.image.size == (40, 33) and "content" not in result.history[-1]
        assert result.recipe["init"] == "noise" and result.recipe["tv_weight"] == 0
    sheet = rec.sheet(columns=2)
    assert sheet.width == sheet_width(2) and rec.recipe["mode"] == "style"


def test_reconstruct_interrupted_before_a_later_panel_keeps_the_panels_done(images, monkeypatch):
    import dreamstyle.jobs.reconstruct

    real, calls = dreamstyle.jobs.reconstruct.run, []

    def interrupted_on_the_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise Interrupted("nothing yet")  # as a run does when stopped before its first step
        return real(*args, **kwargs)

    monkeypatch.setattr(dreamstyle.jobs.reconstruct, "run", interrupted_on_the_second)
    rec = reconstruct(
        images[0], "relu1_1,relu2_1,relu3_1", weights="random", size=40, iterations=2, seed=0, device="cpu"
    )
    assert [layers for _, layers, _, _ in rec.panels] == [["relu1_1"]] and rec.stopped == "interrupted"
    assert rec.recipe["stopped"] == "interrupted" and rec.sheet().width == sheet_width(2)
    calls.clear()
    monkeypatch.setattr(dreamstyle.jobs.reconstruct, "run", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(Interrupted):  # nothing made yet: the caller hears of it
        reconstruct(images[0], "relu1_1", weights="random", size=40, iterations=2, device="cpu")


def test_reconstruct_default_layers_and_clear_errors(images, tmp_path, runner):
    content, _ = images
    res = runner.invoke(
        main,
        [
            "reconstruct",
            str(content),
            "--layers",
            "relu1_1,relu9_9",
            "--weights",
            "random",
            "-o",
            str(tmp_path / "r.png"),
        ],
    )
    assert res.exit_code == 1 and "unknown layer 'relu9_9'" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "r.png").exists()
    res = runner.invoke(
        main, ["reconstruct", str(content), "--weights", "random", "--size", "8", "-o", str(tmp_path / "r.png")]
    )
    assert res.exit_code == 1 and "minimum" in res.output
    res = runner.invoke(main, ["reconstruct", str(content), "-o", str(tmp_path / "r.bmp")])
    assert res.exit_code == 1 and ".png" in res.output and ".tif" in res.output


def test_reconstruct_writes_through_the_outbox_atomic_and_rescued(images, tmp_path, runner, monkeypatch):
    """A write that fails half-way (disk full) leaves no partial file where asked: the grid goes to a
    rescue folder instead, and one line says where (exit 1), as transfer's picture does."""
    import errno

    import dreamstyle.formats as writers

    real = writers.png_write
    folder = tmp_path / "out"
    folder.mkdir()

    def disk_full(fh, *args, **kwargs):
        if str(folder) in fh.name:
            fh.write(b"\x89PNG half a picture")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fh, *args, **kwargs)

    monkeypatch.setattr(writers, "png_write", disk_full)
    content, _ = images
    res = runner.invoke(
        main,
        [
            "reconstruct",
            str(content),
            "--layers",
            "relu1_1",
            "--weights",
            "random",
            "--size",
            "32",
            "--iterations",
            "1",
            "--seed",
            "0",
            "--device",
            "cpu",
            "-o",
            str(folder / "rec.png"),
            "-q",
        ],
    )
    assert res.exit_code == 1 and list(folder.iterdir()) == [], res.output
    line = next(line for line in res.output.splitlines() if "cannot write" in line)
    assert "No space left on device" in line and "saved to" in line
    rescued = line.split("saved to ")[1].split(" instead")[0]
    assert Image.open(rescued).size[0] == sheet_width(2) and read_recipe(rescued)["mode"] == "content"
    shutil.rmtree(Path(rescued).parent)
