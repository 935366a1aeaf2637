"""Reliability (issue 8): every mistake is one clear line, a non-zero exit and no traceback;
faults (Ctrl-C, SIGTERM, divergence, running out of memory, a failed write) lose nothing.

Everything runs on the CPU with random weights and 40-64 px images. Faults are injected with
loss terms registered by the test; Ctrl-C and SIGTERM are real signals sent to a real process.
"""

import errno
import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import make_image
from PIL import Image

from dreamstyle import hookimpl
from dreamstyle.cli import main
from dreamstyle.images import load_image
from dreamstyle.terms import LossTerm
from dreamstyle.termspec import TermSpec
from dreamstyle.writers import read_recipe
from dreamstyle.writers import save_gif_frames as save_gif
from dreamstyle.writers import save_image as save_png

FAST = ["--weights", "random", "--device", "cpu", "--size", "40", "--iterations", "1", "--seed", "0", "-q"]


@pytest.fixture
def images(tmp_path):
    return make_image(tmp_path / "content.png"), make_image(tmp_path / "style.png", (44, 44), 1, "stripes")


def transfer(runner, content, style, out, *extra):
    return runner.invoke(main, ["transfer", str(content), str(style), "-o", str(out), *FAST, *map(str, extra)])


def refused(result, *words, exit_code=1):
    """A mistake: a non-zero exit, one error line that names the problem, no traceback."""
    assert result.exit_code == exit_code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    if exit_code == 1:  # a library error: that line is all there is
        assert result.output.strip().splitlines() == errors, result.output
    for word in words:
        assert word in errors[0], (word, errors[0])
    return errors[0]


def no_partial_files(folder: Path):
    assert not [p.name for p in folder.iterdir() if p.name.endswith(".part")]


# --- test-registered loss terms that inject faults ---------------------------------------------------


class FaultTerm(LossTerm):
    """A pixel term (mean square) that misbehaves on cue: ``fault(calls, image)`` returns an
    exception to raise or a value to return, or None to behave."""

    def __init__(self, fault=None, on_prepare=None):
        super().__init__()
        self.fault, self.on_prepare, self.calls = fault, on_prepare, 0

    def prepare(self, ctx, extract):
        if self.on_prepare is not None:
            self.on_prepare(ctx)

    def forward(self, feats, image):
        self.calls += 1
        value = (image**2).mean()
        bad = self.fault(self.calls, image) if self.fault else None
        if isinstance(bad, BaseException):
            raise bad
        return value if bad is None else value * bad


@pytest.fixture
def fault_term(host):
    """Register the loss term 'fault' whose behaviour the test sets: ``fault_term(fault=..., on_prepare=...)``."""
    made = {}

    class Plugin:
        @hookimpl
        def register_loss_terms(self, register):
            register(TermSpec("fault", "injects faults", lambda: FaultTerm(**made), default_weight=1.0))

    assert host.register(Plugin(), name="fault-plugin")
    return lambda **kwargs: made.update(kwargs)


def cuda_oom(size="2.00 GiB"):
    return torch.OutOfMemoryError(
        f"CUDA out of memory. Tried to allocate {size}. GPU 0 has a total capacity of "
        "7.79 GiB of which 1.02 GiB is free."
    )


# --- images: mistakes ---------------------------------------------------------------------------------


def test_missing_image(images, tmp_path, runner):
    refused(transfer(runner, tmp_path / "nope.png", images[1], tmp_path / "o.png"), "not found", "nope.png")


def test_folder_given_as_image(images, tmp_path, runner):
    refused(transfer(runner, images[0], tmp_path, tmp_path / "o.png"), "is a folder")


def test_text_file_with_image_extension(images, tmp_path, runner):
    fake = tmp_path / "notes.png"
    fake.write_text("these are not pixels")
    refused(transfer(runner, fake, images[1], tmp_path / "o.png"), "notes.png", "not an image")


def test_empty_file(images, tmp_path, runner):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    refused(transfer(runner, images[0], empty, tmp_path / "o.png"), "empty.jpg", "empty (0 bytes)")


def test_png_of_zero_size(images, tmp_path, runner):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    zero = tmp_path / "zero.png"
    zero.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 0, 40, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )
    refused(transfer(runner, zero, images[1], tmp_path / "o.png"), "zero.png", "no pixels", "0x40")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_image(images, tmp_path, runner, fmt):
    path = tmp_path / f"cut.{fmt.lower()}"
    Image.open(images[0]).save(path, format=fmt)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    refused(transfer(runner, path, images[1], tmp_path / "o.png"), str(path), "truncated")


def test_corrupt_image(images, tmp_path, runner):
    data = bytearray(images[0].read_bytes())
    for i in range(60, len(data) - 20):  # keep the signature and header, scramble the pixel data
        data[i] ^= 0x5A
    bad = tmp_path / "scrambled.png"
    bad.write_bytes(bytes(data))
    refused(transfer(runner, bad, images[1], tmp_path / "o.png"), "cannot read image", "scrambled.png")


def test_tiny_image_says_the_backbone_minimum(images, tmp_path, runner):
    tiny = make_image(tmp_path / "tiny.png", (12, 10))
    refused(
        transfer(runner, tiny, images[1], tmp_path / "o.png", "--size", "12"),
        "--size 12 of the 12x10 content image is 12x10 px",
        "16 px minimum of backbone 'vgg19'",
    )


def test_thin_image_says_the_backbone_minimum(images, tmp_path, runner):
    strip = make_image(tmp_path / "strip.png", (400, 20))  # 40x2 at --size 40
    refused(
        transfer(runner, strip, images[1], tmp_path / "o.png"),
        "400x20 content image is 40x2 px",
        "its short side, 2 px, is below the 16 px minimum",
    )
    refused(transfer(runner, images[0], strip, tmp_path / "o.png"), "style image", "40x2 px", "16 px minimum")


def test_stage_below_the_backbone_minimum(images, tmp_path, runner):
    refused(
        transfer(runner, *images, tmp_path / "o.png", "--scales", "4"),
        "the 5 px stage of --scales 4",
        "5x4 px",
        "16 px minimum",
    )


def test_decompression_bomb_is_refused(images, tmp_path, runner):
    bomb = tmp_path / "bomb.png"
    Image.new("1", (12000, 12000)).save(bomb)  # 144 Mpx that compress to a few KB
    assert bomb.stat().st_size < 100_000
    start = time.perf_counter()
    refused(transfer(runner, bomb, images[1], tmp_path / "o.png"), "bomb.png", "144,000,000", "--max-pixels")
    assert time.perf_counter() - start < 20  # refused from the header, not after decoding


def test_max_pixels_sets_the_limit(images, tmp_path, runner):
    out = tmp_path / "o.png"
    refused(transfer(runner, *images, out, "--max-pixels", "1000"), "1,920 pixels", "limit of 1,000", "--max-pixels")
    result = transfer(runner, *images, out, "--max-pixels", "2000")
    assert result.exit_code == 0, result.output


# --- images: odd but valid ----------------------------------------------------------------------------


def odd_image(tmp_path, kind) -> Path:
    base = Image.open(make_image(tmp_path / "base.png", (48, 40))).convert("RGB")
    if kind == "palette":
        img = base.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
        img.info["transparency"] = 0
        path = tmp_path / "palette.png"
        img.save(path, transparency=0)
    elif kind == "grayscale":
        path = tmp_path / "gray.png"
        base.convert("L").save(path)
    elif kind == "gray+alpha":
        img = base.convert("LA")
        alpha = np.full((40, 48), 255, np.uint8)
        alpha[:, :10] = 0  # a transparent strip
        img.putalpha(Image.fromarray(alpha))
        path = tmp_path / "la.png"
        img.save(path)
    elif kind == "rgba":
        img = base.convert("RGBA")
        img.putalpha(128)
        path = tmp_path / "rgba.png"
        img.save(path)
    elif kind == "16-bit":
        arr = np.asarray(base.convert("L"), dtype=np.uint16) * 257
        path = tmp_path / "sixteen.png"
        Image.fromarray(arr).save(path)
        assert Image.open(path).mode.startswith("I")
    elif kind == "cmyk":
        path = tmp_path / "cmyk.jpg"
        base.convert("CMYK").save(path, quality=95)
        assert Image.open(path).mode == "CMYK"
    elif kind == "exif-rotated":
        path = tmp_path / "rotated.jpg"
        exif = base.getexif()
        exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
        base.save(path, exif=exif, quality=95)
    return path


@pytest.mark.parametrize("kind", ["palette", "grayscale", "gray+alpha", "rgba", "16-bit", "cmyk", "exif-rotated"])
def test_odd_but_valid_images_work(images, tmp_path, runner, kind):
    path, out = odd_image(tmp_path, kind), tmp_path / "o.png"
    result = transfer(runner, path, images[1], out)
    assert result.exit_code == 0, result.output
    with Image.open(out) as img:
        assert img.mode == ("RGBA" if kind in ("palette", "gray+alpha", "rgba") else "RGB")  # transparency kept
        assert img.size == ((33, 40) if kind == "exif-rotated" else (40, 33))  # portrait once rotated


def test_odd_images_load_as_expected(tmp_path):
    reference = np.asarray(Image.open(make_image(tmp_path / "base.png", (48, 40))).convert("L"), dtype=float)
    sixteen = np.asarray(load_image(odd_image(tmp_path, "16-bit")), dtype=float)
    assert np.abs(sixteen[..., 0] - reference).max() <= 1  # 16-bit scaled down, not clipped to white
    la = np.asarray(load_image(odd_image(tmp_path, "gray+alpha")))
    assert (la[:, :10] == 255).all()  # transparent composited on white
    assert load_image(odd_image(tmp_path, "exif-rotated")).size == (40, 48)
    cmyk = np.asarray(load_image(odd_image(tmp_path, "cmyk")), dtype=float)
    rgb = np.asarray(Image.open(tmp_path / "base.png").convert("RGB"), dtype=float)
    assert np.abs(cmyk - rgb).mean() < 12
    assert load_image(odd_image(tmp_path, "palette")).mode == "RGB"


# --- options ---------------------------------------------------------------------------------------------


def test_unknown_backbone_suggests_the_closest(images, tmp_path, runner):
    refused(
        transfer(runner, *images, tmp_path / "o.png", "--backbone", "vgg91"),
        "unknown backbone 'vgg91'",
        "did you mean 'vgg19'",
    )


def test_unknown_layer_suggests_the_closest(images, tmp_path, runner):
    refused(
        transfer(runner, *images, tmp_path / "o.png", "--style-layers", "relu1_1,rleu2_1"),
        "unknown layer 'rleu2_1'",
        "'relu2_1'",
        "dreamstyle layers vgg19",
    )


def test_unknown_loss_term_suggests_the_closest(images, tmp_path, runner):
    refused(
        transfer(runner, *images, tmp_path / "o.png", "--loss", "sytle=2"),
        "unknown loss term 'sytle'",
        "did you mean 'style'",
    )


def test_unknown_init_suggests_the_closest(images, tmp_path, runner):
    refused(transfer(runner, *images, tmp_path / "o.png", "--init", "nosie"), "--init 'nosie'", "'noise'")


@pytest.mark.parametrize(
    "option, value, words, exit_code",
    [
        # one rule: a value its option's check refuses is one line and exit 1; click's own type errors exit 2
        ("--size", "0", ["--size", "from 1 to 65,536", "not 0"], 1),
        ("--size", "-64", ["--size", "-64"], 1),
        ("--iterations", "0", ["--iterations", "from 1 to 1,000,000"], 1),
        ("--iterations", "2.5", ["--iterations", "2.5"], 2),
        ("--scales", "0", ["--scales", "from 1 to 12"], 1),
        ("--scales", "-3", ["--scales"], 1),
        ("--scales", "big", ["--scales 'big'"], 1),
        ("--style-scale", "0", ["--style-scale", "more than 0"], 1),
        ("--style-scale", "-0.5", ["--style-scale"], 1),
        ("--lr", "-1", ["--lr", "more than 0"], 1),
        ("--lr", "inf", ["--lr", "finite"], 1),
        ("--log-every", "0", ["--log-every"], 1),
        ("--max-pixels", "0", ["--max-pixels"], 1),
        ("--content-weight", "heavy", ["--content-weight", "'heavy'"], 2),
        ("--style-weight", "-100", ["--style-weight", "zero or more"], 1),
        ("--tv-weight", "nan", ["--tv-weight", "nan"], 1),
        ("--style-weight", "inf", ["--style-weight", "inf"], 1),
        ("--loss", "tv=lots", ["--loss 'tv=lots'", "number"], 1),
        ("--loss", "tv=1:foo=2", ["loss term 'tv' has no option 'foo'", "wrap"], 1),
        ("--loss", "activation=1:layers", ["KEY=VALUE", "'layers'"], 1),
        (
            "--loss",
            "activation=1:layers=fc7",
            ["'activation'", "'fc7'", "vgg19 does not have", "dreamstyle layers vgg19"],
            1,
        ),
        ("--loss", "activation=1:objective=max", ["max", "mean, l2, strongest"], 1),
        ("--style-layers", "relu1_1=x", ["'x'", "relu1_1", "not a number"], 1),
        ("--style-blend", "1,x", ["--style-blend"], 1),
    ],
)
def test_nonsensical_numbers(images, tmp_path, runner, option, value, words, exit_code):
    refused(transfer(runner, *images, tmp_path / "o.png", option, value), *words, exit_code=exit_code)


@pytest.mark.parametrize(
    "args, words",
    [
        (["--style-blend", "0.5,0.5"], ["--style-blend has 2 weights for 1 style"]),
        (["--dream-weight", "5"], ["--dream-weight and --allow-overlap go with --dream-layer"]),
        (["--allow-overlap"], ["--dream-weight and --allow-overlap go with --dream-layer"]),
        (["--backbone", "resnet18", "--pooling", "avg"], ["resnet18", "--pooling avg", "max"]),
        (["--scales", "20,40", "--size", "64"], ["--scales 20,40", "--size is 64"]),
    ],
)
def test_conflicting_options(images, tmp_path, runner, args, words):
    refused(transfer(runner, *images, tmp_path / "o.png", *args), *words)


def test_output_into_a_missing_folder(images, tmp_path, runner):
    refused(transfer(runner, *images, tmp_path / "no" / "such" / "o.png"), "does not exist", str(tmp_path / "no"))
    refused(
        transfer(runner, *images, tmp_path / "o.png", "--gif", tmp_path / "gone" / "a.gif"), "gone", "does not exist"
    )


def test_output_into_a_folder_that_cannot_be_written(images, tmp_path, runner, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    if os.access(locked, os.W_OK):  # root ignores permissions: make the check see what a user would
        from dreamstyle import writers as images_module

        real = os.access
        monkeypatch.setattr(
            images_module.os, "access", lambda p, mode: False if Path(p) == locked and mode & os.W_OK else real(p, mode)
        )
    try:
        refused(transfer(runner, *images, locked / "o.png"), "not writable", str(locked))
    finally:
        locked.chmod(0o755)


@pytest.mark.parametrize(
    "name, words",
    [("folder", ["it is a folder"]), ("o.bmp", ["must end in .png"]), ("file/o.png", ["is not a folder"])],
)
def test_output_path_that_makes_no_sense(images, tmp_path, runner, name, words):
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("a file")
    refused(transfer(runner, *images, tmp_path / name), *words)


def test_existing_output_is_refused_unless_overwrite(images, tmp_path, runner):
    out = tmp_path / "o.png"
    out.write_bytes(b"yesterday's masterpiece")
    refused(transfer(runner, *images, out), str(out), "exists", "--overwrite")
    assert out.read_bytes() == b"yesterday's masterpiece"
    assert transfer(runner, *images, out, "--overwrite").exit_code == 0
    assert read_recipe(out)["command"] == "transfer"


def test_existing_snapshots_are_refused_unless_overwrite(images, tmp_path, runner):
    out = tmp_path / "o.png"
    (tmp_path / "o_00002.png").write_bytes(b"from the last run")
    refused(transfer(runner, *images, out, "--iterations", "2", "--save-every", "2"), "o_00002.png", "--overwrite")
    assert (tmp_path / "o_00002.png").read_bytes() == b"from the last run" and not out.exists()


# --- weights ---------------------------------------------------------------------------------------------


@pytest.fixture
def squeeze_images(tmp_path):  # squeezenet needs 48 px
    return make_image(tmp_path / "c64.png", (64, 56)), make_image(tmp_path / "s64.png", (64, 64), 1, "stripes")


def squeeze(runner, images, out, weights):
    return runner.invoke(
        main,
        [
            "transfer",
            str(images[0]),
            str(images[1]),
            "-o",
            str(out),
            "--backbone",
            "squeezenet1_1",
            "--weights",
            str(weights),
            "--size",
            "64",
            "--iterations",
            "1",
            "--device",
            "cpu",
            "-q",
        ],
    )


def test_weights_file_missing(squeeze_images, tmp_path, runner):
    refused(
        squeeze(runner, squeeze_images, tmp_path / "o.png", tmp_path / "nope.pth"), "weights file not found", "nope.pth"
    )


@pytest.mark.parametrize("content", ["text", "list", "empty-dict"])
def test_weights_file_that_is_not_a_state_dict(squeeze_images, tmp_path, runner, content):
    path = tmp_path / "w.pth"
    if content == "text":
        path.write_text("definitely not a pickle")
    else:
        torch.save([torch.zeros(2)] if content == "list" else {}, path)
    refused(squeeze(runner, squeeze_images, tmp_path / "o.png", path), str(path), "state dict")


def test_weights_for_another_architecture_say_which_keys_and_shapes(squeeze_images, tmp_path, runner):
    import torchvision

    path = tmp_path / "sq10.pth"
    torch.save(torchvision.models.squeezenet1_0().state_dict(), path)
    line = refused(
        squeeze(runner, squeeze_images, tmp_path / "o.png", path),
        "do not fit backbone 'squeezenet1_1'",
        "shapes differ",
        "features.0.weight (96, 3, 7, 7) vs (64, 3, 3, 3)",
    )
    assert str(path) in line

    path = tmp_path / "r18.pth"
    torch.save({k: v for k, v in torchvision.models.resnet18().state_dict().items() if k.startswith("layer1.0")}, path)
    refused(
        squeeze(runner, squeeze_images, tmp_path / "o.png", path),
        "missing keys: features.",
        "unexpected keys: layer1.0.",
    )


# --- plugins ---------------------------------------------------------------------------------------------


def test_broken_and_duplicate_plugins_are_named_and_the_rest_works(images, tmp_path, runner, host):
    from dreamstyle.backbones.vgg import VGG

    class Boom:
        @hookimpl
        def register_loss_terms(self, register):
            raise RuntimeError("kaput")

    class Impostor:
        @hookimpl
        def register_backbones(self, register):
            register(VGG("vgg19", "impostor"))

    host.register(Boom(), name="boom-plugin")
    host.register(Impostor(), name="impostor-plugin")
    result = transfer(runner, *images, tmp_path / "o.png")
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("dreamstyle: warning:")]
    assert len(warnings) == 2 and "Traceback" not in result.output
    assert any("boom-plugin" in w and "kaput" in w for w in warnings)
    assert any("impostor-plugin" in w and "'vgg19'" in w for w in warnings)
    assert read_recipe(tmp_path / "o.png")["backbone"] == "vgg19"


def test_plugin_that_fails_to_import_is_named_and_the_rest_works(images, tmp_path, runner, monkeypatch):
    from dreamstyle import plugins

    class BrokenEntryPoint:
        name, dist = "needs-torchaudio", None

        def load(self):
            raise ModuleNotFoundError("No module named 'torchaudio'")

    monkeypatch.setattr(plugins.metadata, "entry_points", lambda group: [BrokenEntryPoint()])
    previous = plugins._host
    plugins.reset_host(plugins.PluginHost(load_entry_points=True))
    try:
        result = transfer(runner, *images, tmp_path / "o.png")
    finally:
        plugins.reset_host(previous)
    assert result.exit_code == 0, result.output
    (warning,) = [line for line in result.output.splitlines() if "warning" in line]
    assert "'needs-torchaudio' not loaded" in warning and "torchaudio" in warning
    assert (tmp_path / "o.png").exists()


def test_user_errors_from_any_command_are_one_line_but_bugs_keep_their_traceback(runner):
    import click

    from dreamstyle.errors import OptionError

    @click.command("explode")
    @click.option("--bug", is_flag=True)
    def explode(bug):
        if bug:
            raise ZeroDivisionError("a real bug")
        raise OptionError("--frobnicate must be blue")

    main.add_command(explode)
    try:
        refused(runner.invoke(main, ["explode"]), "--frobnicate must be blue")
        result = runner.invoke(main, ["explode", "--bug"])
        assert isinstance(result.exception, ZeroDivisionError)  # not swallowed: Python prints the traceback
    finally:
        main.commands.pop("explode")


def test_a_bug_in_a_loss_term_is_named_and_costs_no_picture(images, tmp_path, runner, fault_term):
    """A term's bug stops the run (issue 35): the line names the term and the exception, not a traceback
    that loses the picture; the exception stays the cause of the TermFailed (the Python API)."""
    fault_term(fault=lambda calls, image: ZeroDivisionError("bug in a term") if calls > 2 else None)
    out = tmp_path / "o.png"
    refused(
        transfer(runner, *images, out, "--loss", "fault=1", "--iterations", "5"),
        "loss term 'fault' (plugin 'fault-plugin') failed (ZeroDivisionError: bug in a term)",
        str(out),
    )
    assert read_recipe(out)["stopped"] == "failed"


# --- faults: signals -----------------------------------------------------------------------------------


def start_long_run(images, out: Path):
    """A real ``python -m dreamstyle transfer`` that would run for hours; returns once it is optimizing
    (its first --save-every snapshot exists)."""
    cmd = [
        sys.executable,
        "-m",
        "dreamstyle",
        "transfer",
        str(images[0]),
        str(images[1]),
        "-o",
        str(out),
        "--weights",
        "random",
        "--device",
        "cpu",
        "--size",
        "40",
        "--iterations",
        "100000",
        "--save-every",
        "1",
        "--optimizer",
        "adam",
        "--seed",
        "0",
        "-q",
    ]
    env = {**os.environ, "DREAMSTYLE_DISABLE_PLUGIN_AUTOLOAD": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    first = out.with_name(f"{out.stem}_00001.png")
    deadline = time.monotonic() + 120
    while not first.exists():
        if proc.poll() is not None:
            pytest.fail(f"the run ended before optimizing: {proc.communicate()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("the run did not start optimizing within 120 s")
        time.sleep(0.05)
    time.sleep(0.3)  # a few more steps
    return proc


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_signal_writes_the_best_image_so_far(images, tmp_path, sig):
    out = tmp_path / "o.png"
    proc = start_long_run(images, out)
    proc.send_signal(sig)
    try:
        stdout, stderr = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines() == [f"dreamstyle: interrupted; the best image so far is in {out}"]
    with Image.open(out) as img:
        img.load()
        assert img.size == (40, 33)
    recipe = read_recipe(out)
    assert recipe["stopped"] == "interrupted" and recipe["iterations"] == 100000
    no_partial_files(tmp_path)


def test_interrupt_between_scales_keeps_the_finished_scale(images, tmp_path, runner, fault_term):
    def on_prepare(ctx):
        if ctx.options["stage"] == 2:
            raise KeyboardInterrupt

    fault_term(on_prepare=on_prepare)
    out = tmp_path / "o.png"
    result = transfer(runner, *images, out, "--loss", "fault=1", "--scales", "2", "--iterations", "2")
    assert result.exit_code == 130, result.output
    assert "interrupted" in result.output and str(out) in result.output and "Traceback" not in result.output
    assert Image.open(out).size == (20, 17) and read_recipe(out)["stopped"] == "interrupted"


def test_interrupt_before_the_first_step_writes_nothing(images, tmp_path, runner, fault_term):
    def on_prepare(ctx):
        raise KeyboardInterrupt

    fault_term(on_prepare=on_prepare)
    out = tmp_path / "o.png"
    result = transfer(runner, *images, out, "--loss", "fault=1")
    assert result.exit_code == 130 and "Traceback" not in result.output  # 130, as every interruption
    assert result.output.strip().splitlines() == [
        "dreamstyle: interrupted before the first iteration; nothing was written"
    ]
    assert not out.exists()


# --- faults: divergence ------------------------------------------------------------------------------------


@pytest.mark.parametrize("optimizer, advice", [("adam", "--optimizer lbfgs"), ("lbfgs", "--optimizer adam")])
def test_divergence_keeps_the_last_good_image_and_says_what_to_change(
    images, tmp_path, runner, fault_term, optimizer, advice
):
    fault_term(fault=lambda calls, image: float("nan") if calls > 3 else None)
    out = tmp_path / "o.png"
    line = refused(
        transfer(runner, *images, out, "--loss", "fault=1", "--iterations", "50", "--optimizer", optimizer),
        "NaN",
        "last good image",
        str(out),
        "--lr",
        advice,
    )
    assert "iteration" in line
    with Image.open(out) as img:
        assert img.size == (40, 33) and np.asarray(img).std() > 0  # a real picture, not NaN turned black
    recipe = read_recipe(out)
    assert recipe["stopped"] == "diverged"


def test_divergence_from_a_huge_learning_rate(images, tmp_path, runner):
    """A huge L-BFGS step (nothing clamps its pixels) sends the image, then the loss, to inf and NaN."""
    out = tmp_path / "o.png"
    refused(
        transfer(runner, *images, out, "--iterations", "20", "--lr", "1e30"),
        "NaN or infinite",
        "--lr",
        "last good image",
    )
    assert Image.open(out).size == (40, 33) and read_recipe(out)["stopped"] == "diverged"


# --- faults: out of memory -----------------------------------------------------------------------------


def test_out_of_memory_at_the_first_step_says_the_size_and_writes_nothing(images, tmp_path, runner, fault_term):
    fault_term(fault=lambda calls, image: cuda_oom())
    out = tmp_path / "o.png"
    refused(
        transfer(runner, *images, out, "--loss", "fault=1"),
        "out of memory on cpu at 40x33 px",
        "tried to allocate 2.00 GiB",
        "try a smaller --size, e.g. --size 20",
        "nothing was written",
    )
    assert not out.exists()
    no_partial_files(tmp_path)


def test_out_of_memory_at_a_larger_scale_keeps_the_smaller_and_offers_its_size(images, tmp_path, runner, fault_term):
    fault_term(fault=lambda calls, image: cuda_oom() if image.shape[-1] > 30 else None)
    out = tmp_path / "o.png"
    refused(
        transfer(runner, *images, out, "--loss", "fault=1", "--scales", "2", "--iterations", "2"),
        "out of memory",
        "40x33 px",
        "--size 20 (that size fitted)",
        f"best image so far is in {out}",
    )
    assert Image.open(out).size == (20, 17) and read_recipe(out)["stopped"] == "out of memory"


def test_transfer_out_of_memory_offers_tiles(images, tmp_path, runner, fault_term):
    fault_term(fault=lambda calls, image: cuda_oom())
    out = tmp_path / "o.png"
    refused(transfer(runner, *images, out, "--loss", "fault=1"), "out of memory", "--tile 16")  # 40 px: half


def test_out_of_memory_mid_run_keeps_the_best_image(images, tmp_path, runner, fault_term):
    fault_term(fault=lambda calls, image: cuda_oom() if calls > 3 else None)
    out = tmp_path / "o.png"
    refused(
        transfer(runner, *images, out, "--loss", "fault=1", "--iterations", "10", "--optimizer", "adam"),
        "out of memory",
        f"best image so far is in {out}",
    )
    assert Image.open(out).size == (40, 33) and read_recipe(out)["stopped"] == "out of memory"


def test_out_of_memory_suggests_a_size_estimated_to_fit():
    from dreamstyle.faults import is_out_of_memory, oom_message, suggest_size

    gib = 2**30
    report = {
        "device": "cuda:0",
        "size": [2048, 1536],
        "requested": 4 * gib,
        "peak": 6 * gib,
        "base": 1 * gib,
        "budget": 8 * gib,
    }
    size, how = suggest_size(2048, report, min_size=16)
    assert how == "estimated" and 1024 < size < 2048 and size % 16 == 0
    line = oom_message(report, 2048, min_size=16, precision="fp32", hints=("--tile 512",))
    assert line.startswith("out of memory on cuda:0 at 2048x1536 px (tried to allocate 4.00 GiB); try ")
    assert f"--size {size} (estimated to fit)" in line and "--tile 512" in line
    assert "--precision bf16" in line and "--device cpu" in line
    weights_alone_too_big = {**report, "base": 8 * gib}
    assert suggest_size(2048, weights_alone_too_big)[0] is None
    assert is_out_of_memory(cuda_oom())
    assert is_out_of_memory(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 9 bytes"))
    assert not is_out_of_memory(RuntimeError("shapes do not match"))


# --- dream ------------------------------------------------------------------------------------------------


def dream(runner, image, out, *extra):
    return runner.invoke(
        main,
        [
            "dream",
            str(image),
            "-o",
            str(out),
            "--weights",
            "random",
            "--device",
            "cpu",
            "--size",
            "40",
            "--iterations",
            "1",
            "--octaves",
            "1",
            "-q",
            *map(str, extra),
        ],
    )


def test_dream_refuses_existing_snapshots_unless_overwrite(images, tmp_path, runner):
    out = tmp_path / "d.png"
    (tmp_path / "d_00001.png").write_bytes(b"from the last run")
    refused(dream(runner, images[0], out, "--save-every", "1"), "d_00001.png", "--overwrite")
    assert (tmp_path / "d_00001.png").read_bytes() == b"from the last run" and not out.exists()
    assert dream(runner, images[0], out, "--save-every", "1", "--overwrite").exit_code == 0
    assert Image.open(tmp_path / "d_00001.png").size == Image.open(out).size


@pytest.mark.parametrize(
    "spec, words",
    [
        ("relu2_1:300", ["channel 300 is out of range", "128 channels (0-127)"]),
        ("relu2_1:5@40,0", ["position 40,0 is outside the grid of relu2_1", "rows 0-"]),
        ("rleu2_1", ["unknown layer 'rleu2_1'", "'relu2_1'"]),
    ],
)
def test_dream_target_out_of_range_says_the_range(images, tmp_path, runner, spec, words):
    refused(dream(runner, images[0], tmp_path / "d.png", "--layer", spec), *words)


def test_dream_out_of_memory_offers_smaller_tiles_and_keeps_the_last_octave(images, tmp_path, runner, monkeypatch):
    from dreamstyle import tiling

    real = tiling.Gradient.__call__

    def failing(self, param, scale, backward=True):
        if param.shape[-1] > 50:
            raise cuda_oom("512.00 MiB")
        return real(self, param, scale, backward)

    monkeypatch.setattr(tiling.Gradient, "__call__", failing)
    out = tmp_path / "d.png"
    refused(
        dream(runner, images[0], out, "--size", "64", "--octaves", "2", "--layer", "relu2_1"),
        "out of memory on cpu at 64x53 px",
        "tried to allocate 512.00 MiB",
        "(that size fitted)",
        "--tile 32",
        f"best dream so far is in {out}",
    )
    assert Image.open(out).size == (64, 53) and read_recipe(out)["stopped"] == "out of memory"


def test_dream_interrupted_between_octaves_keeps_the_finished_octave(images, tmp_path, runner, monkeypatch):
    from dreamstyle.objective import Objective

    real, calls = Objective.prepare, []

    def prepare(self, ctx, extract, skip=None):
        calls.append(ctx.options["stage"])
        if ctx.options["stage"] == 2:
            raise KeyboardInterrupt
        return real(self, ctx, extract, skip)

    monkeypatch.setattr(Objective, "prepare", prepare)
    out = tmp_path / "d.png"
    result = dream(runner, images[0], out, "--size", "64", "--octaves", "2", "--layer", "relu2_1")
    assert result.exit_code == 130 and f"best dream so far is in {out}" in result.output, result.output
    assert calls == [1, 2] and Image.open(out).size == (64, 53) and read_recipe(out)["stopped"] == "interrupted"


# --- faults: writing ----------------------------------------------------------------------------------------


def failing_saves(monkeypatch, failures: int):
    """PIL's save writes half a file and then fails (disk full) for the next ``failures`` calls."""
    real_save = Image.Image.save
    calls = {"n": 0}

    def save(self, fp, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] <= failures:
            fp.write(b"\x89PNG\r\n\x1a\n half a picture")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", save)
    return calls


def test_failed_final_write_keeps_the_old_file_and_rescues_the_image(images, tmp_path, runner, monkeypatch):
    import tempfile

    folder, rescue = tmp_path / "out", tmp_path / "rescue"
    folder.mkdir()
    rescue.mkdir()
    out = folder / "o.png"
    out.write_bytes(b"the previous result")
    monkeypatch.setattr(tempfile, "tempdir", str(rescue))
    failing_saves(monkeypatch, 1)
    refused(
        transfer(runner, *images, out, "--overwrite"),
        f"cannot write {out}",
        "No space left on device",
        "saved to",
        str(rescue),
    )
    assert out.read_bytes() == b"the previous result"
    no_partial_files(folder)
    (rescued,) = rescue.glob("dreamstyle-rescue-*/o.png")
    assert Image.open(rescued).size == (40, 33) and read_recipe(rescued)["command"] == "transfer"


def test_failed_snapshot_write_warns_once_and_the_run_goes_on(images, tmp_path, runner, monkeypatch):
    failing_saves(monkeypatch, 2)
    out = tmp_path / "o.png"
    result = transfer(runner, *images, out, "--iterations", "3", "--save-every", "1")
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "o_00001.png" in warnings[0] and "No space left" in warnings[0]
    assert Image.open(out).size == (40, 33) and (tmp_path / "o_00003.png").exists()
    no_partial_files(tmp_path)


@pytest.mark.parametrize("kind", ["png", "gif"])
def test_writes_are_atomic(tmp_path, monkeypatch, kind):
    path = tmp_path / f"x.{kind}"
    path.write_bytes(b"old and whole")
    frame = Image.new("RGB", (8, 8), "red")
    failing_saves(monkeypatch, 1)
    with pytest.raises(OSError):
        save_png(frame, path) if kind == "png" else save_gif([frame, frame], path)
    assert path.read_bytes() == b"old and whole"
    no_partial_files(tmp_path)
    save_png(frame, path) if kind == "png" else save_gif([frame, frame], path)  # the next save goes through
    assert Image.open(path).size == (8, 8)


def test_interrupt_while_writing_leaves_no_partial_file(tmp_path, monkeypatch):
    path = tmp_path / "x.png"

    def save(self, fp, *args, **kwargs):
        fp.write(b"\x89PNG half")
        raise KeyboardInterrupt

    monkeypatch.setattr(Image.Image, "save", save)
    with pytest.raises(KeyboardInterrupt):
        save_png(Image.new("RGB", (8, 8)), path)
    assert not path.exists()
    no_partial_files(tmp_path)


def test_outputs_get_the_usual_permissions(tmp_path):
    previous = os.umask(0o022)
    try:
        path = save_png(Image.new("RGB", (8, 8)), tmp_path / "x.png")
    finally:
        os.umask(previous)
    assert path.stat().st_mode & 0o777 == 0o644
