"""Nothing lost, nothing hung (issue 15): each case a hostile test found, fixed at its root.

Random weights, tiny images, the CPU. Disk-full and writer failures are injected into Pillow's
save; faults in the optimization through a test loss term (tests/test_reliability.py's FaultTerm).
"""

import errno
import json
import os
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import make_image
from PIL import Image
from test_reliability import fault_term, refused  # noqa: F401  (fault_term: a fixture)

from dreamstyle import hookimpl
from dreamstyle.cli import main
from dreamstyle.writers import read_recipe

FAST = ["--weights", "random", "--device", "cpu", "--size", "40", "--iterations", "2", "--seed", "0", "-q"]


@pytest.fixture
def images(tmp_path):
    return make_image(tmp_path / "content.png"), make_image(tmp_path / "style.png", (44, 44), 1, "stripes")


@pytest.fixture
def fault(fault_term):  # noqa: F811  (the fixture, by name)
    return fault_term


def make_frames_gif(path: Path, n: int = 4) -> Path:
    """A small clip: a red square moving over a still random background."""
    rng = np.random.default_rng(0)
    base = rng.random((40, 48, 3)) * 0.6 + 0.2
    frames = []
    for i in range(n):
        arr = base.copy()
        arr[8:20, 6 + 3 * i : 18 + 3 * i] = [1.0, 0.1, 0.1]
        frames.append(Image.fromarray((arr * 255).astype("uint8"), "RGB"))
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    return path


def run(runner, *args):
    return runner.invoke(main, [*map(str, args)])


def saves_failing(monkeypatch, when, error=None):
    """Pillow's save writes half a file and fails (disk full) whenever ``when(fp)`` says so."""
    real = Image.Image.save

    def save(self, fp, *args, **kwargs):
        if when(getattr(fp, "name", str(fp))):
            fp.write(b"half a picture")
            raise error or OSError(errno.ENOSPC, "No space left on device")
        return real(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", save)


@pytest.fixture
def rescue_dir(tmp_path, monkeypatch):
    import tempfile

    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


# --- 1. an output that appears while the run works is kept --------------------------------------------


def test_an_output_that_appears_during_the_run_is_not_replaced(images, tmp_path, runner, fault):
    out, log = tmp_path / "o.png", tmp_path / "log.json"

    def appear(calls, image):
        if calls == 2:  # someone else's files land where ours will go
            out.write_bytes(b"another run's picture")
            log.write_text("another run's log")

    fault(fault=appear)
    result = run(runner, "transfer", *images, "-o", out, "--log-json", log, "--loss", "fault=1", *FAST[:-1])
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == b"another run's picture" and log.read_text() == "another run's log"
    assert Image.open(tmp_path / "o-2.png").size == (40, 33) and json.loads((tmp_path / "log-2.json").read_text())
    warnings = [line for line in result.output.splitlines() if "appeared while this ran" in line]
    assert len(warnings) == 2 and str(tmp_path / "o-2.png") in warnings[0]


def test_overwrite_still_replaces(images, tmp_path, runner):
    out = tmp_path / "o.png"
    out.write_bytes(b"old")
    assert run(runner, "transfer", *images, "-o", out, "--overwrite", *FAST).exit_code == 0
    assert Image.open(out).size == (40, 33) and not (tmp_path / "o-2.png").exists()


# --- 2, 3. every output kind is rescued -------------------------------------------------------------------


def test_a_clip_on_a_full_disk_is_rescued(tmp_path, images, runner, monkeypatch, rescue_dir):
    clip = make_frames_gif(tmp_path / "in.gif")
    out = tmp_path / "full" / "o.gif"
    out.parent.mkdir()
    saves_failing(monkeypatch, lambda name: str(tmp_path / "full") in name)
    result = run(runner, "transfer", clip, images[1], "-o", out, *FAST)
    refused(result, f"cannot write {out}", "No space left on device", "saved to", str(rescue_dir))
    (rescued,) = rescue_dir.glob("dreamstyle-rescue-*/o.gif")
    assert Image.open(rescued).n_frames >= 2 and not out.exists()


def test_a_folder_of_frames_on_a_full_disk_is_rescued(tmp_path, images, runner, monkeypatch, rescue_dir):
    clip = make_frames_gif(tmp_path / "in.gif")
    out = tmp_path / "frames_out"
    saves_failing(monkeypatch, lambda name: str(out) in name)
    result = run(runner, "transfer", clip, images[1], "-o", out, *FAST)
    assert result.exit_code == 1 and "No space left on device" in result.output and str(rescue_dir) in result.output
    (folder,) = rescue_dir.glob("dreamstyle-rescue-*")
    assert sorted(p.name for p in folder.iterdir())[:2] == ["clip.json", "frame_00001.png"]


def test_a_folder_of_stills_rescues_what_it_cannot_write_and_goes_on(tmp_path, images, runner, monkeypatch, rescue_dir):
    stills = tmp_path / "stills"
    stills.mkdir()
    for i in (1, 2, 3):
        make_image(stills / f"im{i}.png", seed=i)
    out = tmp_path / "styled"
    saves_failing(monkeypatch, lambda name: str(out) in name and ".im2.png" in name)
    result = run(runner, "transfer", stills, images[1], "-o", out, *FAST)
    refused(result, "2 of 3 images were written to", "cannot write im2.png", "No space left on device", str(rescue_dir))
    assert sorted(p.name for p in out.iterdir()) == ["im1.png", "im3.png"]  # im3 still ran
    (rescued,) = rescue_dir.glob("dreamstyle-rescue-*/im2.png")
    assert read_recipe(rescued)["content"] == "im2.png"


def test_a_writer_that_fails_has_its_frames_rescued_as_pngs(tmp_path, images, runner, monkeypatch, rescue_dir):
    from dreamstyle import formats

    def broken(fh, frames, recipe, **_):
        raise OverflowError("cannot convert float infinity to integer")

    monkeypatch.setattr(formats, "gif_write", broken)
    clip = make_frames_gif(tmp_path / "in.gif")
    result = run(runner, "transfer", clip, images[1], "-o", tmp_path / "o.gif", *FAST)
    refused(result, "OverflowError", str(rescue_dir))
    (folder,) = rescue_dir.glob("dreamstyle-rescue-*/o")
    assert len(list(folder.glob("frame_*.png"))) == 4


@pytest.mark.parametrize("fps", ["0.001", "1e-300", "inf", "5000"])
def test_a_frame_rate_out_of_range_is_refused_before_any_work(tmp_path, images, runner, fps):
    clip = make_frames_gif(tmp_path / "in.gif")
    refused(
        run(runner, "transfer", clip, images[1], "-o", tmp_path / "o.gif", "--fps", fps, *FAST),
        "--fps",
        "from 0.01 to 1000",
    )
    assert not (tmp_path / "o.gif").exists()


# --- 4. stale temporary files -----------------------------------------------------------------------------


def test_a_later_run_removes_the_temporary_files_a_killed_run_left(images, tmp_path, runner):
    stale = tmp_path / ".o.png.dreamstyle-999999999-abc.part"  # no such process
    stale.write_bytes(b"truncated")
    live = tmp_path / f".o.png.dreamstyle-{os.getppid()}-xyz.part"  # a process that is alive: another run
    live.write_bytes(b"busy")
    other = tmp_path / ".o.png.someone-else.part"
    other.write_bytes(b"not ours")
    assert run(runner, "transfer", *images, "-o", tmp_path / "o.png", *FAST).exit_code == 0
    assert not stale.exists() and live.exists() and other.exists()


# --- 5, 6. memory and bombs -------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["transfer", "dream"])
def test_an_output_above_the_pixel_limit_is_refused_before_any_work(command, images, tmp_path, runner):
    args = [
        command,
        images[0],
        *([images[1]] if command == "transfer" else []),
        "-o",
        tmp_path / "o.png",
        "--size",
        "60000",
        "--weights",
        "random",
    ]
    refused(run(runner, *args), "pixels", "above the limit of 64,000,000", "--max-pixels")


def test_the_host_running_out_of_memory_is_one_line(images, tmp_path, runner, fault):
    fault(fault=lambda calls, image: MemoryError() if calls >= 3 else None)
    out = tmp_path / "o.png"
    refused(
        run(runner, "transfer", *images, "-o", out, "--loss", "fault=1", *FAST[:-3], "--iterations", "4", "-q"),
        "out of memory on cpu",
        f"best image so far is in {out}",
    )
    assert Image.open(out).size == (40, 33)


def gif_bomb(path: Path, side: int = 4000, frames: int = 500) -> Path:
    """A small GIF whose header says a side x side canvas of ``frames`` frames (each frame 1x1)."""
    out = bytearray(b"GIF89a" + struct.pack("<HH", side, side) + bytes([0x80, 0, 0]) + bytes(6))  # 2-colour table
    out += b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"
    for _ in range(frames):
        out += b"\x21\xf9\x04\x00\x01\x00\x00\x00"  # 10 ms
        out += b"\x2c" + struct.pack("<HHHH", 0, 0, 1, 1) + b"\x00" + b"\x02\x02\x44\x01\x00"
    path.write_bytes(bytes(out + b"\x3b"))
    return path


def test_a_gif_bomb_is_refused_from_its_header(tmp_path, images, runner):
    bomb = gif_bomb(tmp_path / "bomb.gif")
    assert bomb.stat().st_size < 12_000
    refused(
        run(runner, "transfer", bomb, images[1], "-o", tmp_path / "o.gif", *FAST),
        "500 frames of 4000x4000",
        "8,000,000,000 pixels in all",
        "--max-clip-pixels",
    )


# --- 7, 8. bad numbers, bounded where parsed --------------------------------------------------------------------


@pytest.mark.parametrize(
    "command, option, value, words",
    [
        ("transfer", "--scales", "1000000000", ["--scales", "from 1 to 12"]),
        ("transfer", "--scales", "100000", ["--scales", "from 1 to 12"]),
        ("transfer", "--scales", ",", ["--scales ','"]),
        ("dream", "--octaves", "100000", ["--octaves", "from 1 to 32"]),
        ("dream", "--octave-scale", "1e308", ["--octave-scale", "from 1 to 16"]),
        ("transfer", "--seed", "18446744073709551616", ["--seed", "from 0 to"]),
        ("transfer", "--style-blend", "nan", ["--style-blend", "nan"]),
        ("transfer", "--style-blend", "inf,1", ["--style-blend", "inf"]),
        ("transfer", "--style-layers", "relu1_1=nan,relu2_1", ["--style-layers", "relu1_1", "nan"]),
        ("transfer", "--style-layers", "relu1_1=1e400", ["--style-layers", "inf"]),
        ("transfer", "--loss", "tv=nan", ["--loss tv", "nan"]),
        ("transfer", "--loss", "tv=inf", ["--loss tv", "inf"]),
        ("transfer", "--loss", "tv=1e400", ["--loss tv", "inf"]),
        ("transfer", "--loss", "=5", ["give the term's name first"]),
        ("transfer", "--loss", "tv=-1e30", ["--loss tv", "zero or more"]),
        ("transfer", "--tv-weight", "-5", ["--tv-weight", "zero or more"]),
        ("transfer", "--style-scale", "1e6", ["--style-scale", "at most 16"]),
    ],
)
def test_numbers_out_of_range_are_one_line_with_the_range(command, option, value, words, images, tmp_path, runner):
    args = [
        command,
        images[0],
        *([images[1]] if command == "transfer" else []),
        "-o",
        tmp_path / "o.png",
        *FAST,
        option,
        value,
    ]  # (after FAST: the last value given wins)
    refused(run(runner, *args), *words)
    assert not (tmp_path / "o.png").exists()


def test_out_of_memory_from_a_large_style_image_names_it(images, tmp_path, runner, fault):
    from test_reliability import cuda_oom

    fault(fault=lambda calls, image: cuda_oom() if calls >= 2 else None)
    refused(
        run(runner, "transfer", *images, "-o", tmp_path / "o.png", "--loss", "fault=1", "--style-scale", "4", *FAST),
        "--style-scale",
        "the style image is 160x160 px at --style-scale 4",
    )


# --- 11, 12. weights and images that are not what they seem ------------------------------------------------


def test_weights_that_are_not_a_state_dict_file_are_one_accurate_line(images, tmp_path, runner, monkeypatch):
    import fractions
    import pickle

    raw = tmp_path / "raw.pkl"
    raw.write_bytes(pickle.dumps({"a": fractions.Fraction(1, 2)}))  # torch warns of it, then refuses it
    folder = tmp_path / "weights_dir"
    folder.mkdir()
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    # -q: without it, the lines of the run's start (the seed drawn, "loading vgg19's weights from ...") come first
    base = ["transfer", *images, "-o", tmp_path / "o.png", "--device", "cpu", "--size", "40", "-q", "--weights"]
    refused(run(runner, *base, raw), "not a PyTorch state dict")  # no torch warnings before it
    refused(run(runner, *base, folder), "is a folder, not a file")
    refused(run(runner, *base, fifo), "is a FIFO (named pipe), not a regular file")
    locked = tmp_path / "locked.pth"
    torch.save({"x": torch.zeros(1)}, locked)
    from dreamstyle.backbones import base as base_module

    real = os.access
    monkeypatch.setattr(base_module.os, "access", lambda p, m: False if Path(p) == locked else real(p, m))
    refused(run(runner, *base, locked), "cannot read weights file", "permission denied")


def test_an_image_that_is_a_fifo_or_a_symlink_loop_says_so(images, tmp_path, runner):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    loop = tmp_path / "loop.png"
    loop.symlink_to(tmp_path / "loop.png")
    refused(run(runner, "transfer", fifo, images[1], "-o", tmp_path / "o.png", *FAST), "is a FIFO (named pipe)")
    refused(run(runner, "transfer", loop, images[1], "-o", tmp_path / "o.png", *FAST), "symbolic link loop")


# --- 13, 14. plugins that take the tool down ----------------------------------------------------------------


def with_entry_point(monkeypatch, load):
    from dreamstyle import plugins

    class EntryPoint:
        name, dist = "rude-plugin", None

        def load(self):
            return load()

    monkeypatch.setattr(plugins.metadata, "entry_points", lambda group: [EntryPoint()])
    previous = plugins._host
    plugins.reset_host(None)
    return lambda: plugins.reset_host(previous)


def test_a_plugin_that_exits_at_import_is_named_and_the_rest_works(runner, monkeypatch):
    monkeypatch.setenv("DREAMSTYLE_DISABLE_PLUGIN_AUTOLOAD", "")
    restore = with_entry_point(monkeypatch, lambda: sys.exit(3))
    try:
        result = run(runner, "plugins")
    finally:
        restore()
    assert result.exit_code == 0
    assert "plugin 'rude-plugin' not loaded: it called sys.exit(3)" in result.output


def test_a_plugin_interrupted_at_import_is_named(runner, monkeypatch):
    monkeypatch.setenv("DREAMSTYLE_DISABLE_PLUGIN_AUTOLOAD", "")

    def interrupted():
        raise KeyboardInterrupt

    restore = with_entry_point(monkeypatch, interrupted)
    try:
        result = run(runner, "plugins")
    finally:
        restore()
    assert result.exit_code != 0 and "Traceback" not in result.output


def test_failing_command_and_listing_hooks_cost_one_line_each(host, runner):
    from dreamstyle.backbones.vgg import VGG
    from dreamstyle.cli.group import main as group

    class Broken(VGG):
        def _layers(self):
            from dreamstyle.backbones.vgg import VGG_CFG, vgg_layers

            return vgg_layers(VGG_CFG["vgg16"])

        def to_dict(self):
            raise RuntimeError("no description")

    class Plugin:
        @hookimpl
        def register_commands(self, cli):
            raise RuntimeError("commands kaput")

        @hookimpl
        def register_backbones(self, register):
            register(Broken("broken_vgg", "a plugin's"))

    host.register(Plugin(), name="rude")
    group._plugins_loaded = False
    try:
        result = run(runner, "--help")
        assert result.exit_code == 0 and "transfer" in result.output and "Traceback" not in result.output
        assert "plugin 'rude' failed in register_commands: RuntimeError: commands kaput" in result.output
        result = run(runner, "backbones")
        assert result.exit_code == 0 and "vgg19" in result.output
        assert "backbone 'broken_vgg' of plugin 'rude' cannot describe itself" in result.output
    finally:
        group._plugins_loaded = False


# --- 15. privacy: the recipe names files, it does not say where they are --------------------------------------


def test_recipes_name_input_files_with_their_hash_and_replay_finds_them(images, tmp_path, runner):
    out = tmp_path / "o.png"
    assert run(runner, "transfer", *images, "-o", out, *FAST).exit_code == 0
    recipe = read_recipe(out)
    text = json.dumps(recipe)
    assert str(tmp_path) not in text and recipe["content"] == "content.png" and recipe["styles"] == ["style.png"]
    assert len(recipe["inputs"]["content.png"]) == 64
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = runner.invoke(
        main, ["transfer", "--from", str(out), "-o", str(elsewhere / "again.png"), "-q"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output  # found beside the replayed picture
    assert np.array_equal(np.asarray(Image.open(out)), np.asarray(Image.open(elsewhere / "again.png")))
    make_image(images[0], seed=9)  # the content changed since
    result = run(runner, "transfer", "--from", out, "-o", elsewhere / "third.png")
    assert result.exit_code == 1 and "its SHA-256 differs" in result.output


def test_recipe_full_keeps_paths_and_none_writes_no_recipe(images, tmp_path, runner):
    full, none = tmp_path / "full.png", tmp_path / "none.png"
    assert run(runner, "transfer", *images, "-o", full, "--recipe", "full", *FAST).exit_code == 0
    assert read_recipe(full)["content"] == str(images[0])
    assert run(runner, "transfer", *images, "-o", none, "--recipe", "none", *FAST).exit_code == 0
    assert read_recipe(none) is None
