"""Output formats: PNG (8 or 16-bit), JPEG, WebP and TIFF (16 or 8-bit) each write, keep what they
should (size, mode, bit depth, transparency), carry the recipe that ``--from`` replays, and refuse
options they do not take in one line before any work. Random weights, tiny images, the CPU."""

import json

import numpy as np
import png
import pytest
import tifffile
import torch
from helpers import make_image
from PIL import Image

from dreamstyle import hookimpl
from dreamstyle.cli import main
from dreamstyle.errors import OptionError, OutputError
from dreamstyle.records import Writer
from dreamstyle.runner import Result
from dreamstyle.writers import read_recipe, save_image

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = ["--weights", "random", "--device", "cpu", "--size", "32", "--iterations", "2", "--seed", "3", "-q"]
RECIPE = {"command": "transfer", "seed": 5, "text": 'a < b & c "quoted" é'}
# a name for each case: (its CLI options, the bit depth written)
FORMATS = {
    ".png": ((), 8),
    ".png16": (("--bit-depth", "16"), 16),
    ".jpg": ((), 8),
    ".jpeg": ((), 8),
    ".webp": ((), 8),
    ".webp-lossy": (("--quality", "80"), 8),
    ".tif": ((), 16),
    ".tiff": ((), 16),
    ".tif8": (("--bit-depth", "8"), 8),
}


def suffix_of(name: str) -> str:
    return {"png16": ".png", "webp-lossy": ".webp", "tif8": ".tif"}.get(name.lstrip("."), name)


def read_pixels(path) -> np.ndarray:
    """The pixels as stored: uint8 or uint16, H x W x C."""
    path = str(path)
    if path.endswith(".png"):
        width, height, rows, info = png.Reader(filename=path).asDirect()
        dtype = np.uint16 if info["bitdepth"] == 16 else np.uint8
        return np.array([np.asarray(r, dtype) for r in rows]).reshape(height, width, info["planes"])
    if path.endswith((".tif", ".tiff")):
        return tifffile.imread(path)
    with Image.open(path) as img:
        return np.asarray(img)


def gradient(channels: int = 3, width: int = 600, height: int = 6) -> torch.Tensor:
    """A smooth (1, C, H, W) ramp: more than 256 levels in 16 bits; alpha (if any) 0 on row 0, 1 below
    row 2, one half between."""
    ramp = torch.linspace(0, 1, width).view(1, 1, 1, width).expand(1, channels, height, width).clone()
    ramp[:, 1] = 1 - ramp[:, 1]
    if channels == 4:
        ramp[:, 3] = 1.0
        ramp[:, 3, 0] = 0.0
        ramp[:, 3, 1:3] = 0.5
    return ramp


@pytest.fixture
def images(tmp_path):
    return make_image(tmp_path / "content.png"), make_image(tmp_path / "style.png", (44, 44), 1, "stripes")


def invoke(runner, *args):
    return runner.invoke(main, [str(a) for a in args])


# --- writing and reading back ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "suffix, bit_depth, depth, dtype",
    [
        (".png", None, 8, np.uint8),
        (".png", 16, 16, np.uint16),
        (".jpg", None, 8, np.uint8),
        (".jpeg", 8, 8, np.uint8),
        (".webp", None, 8, np.uint8),
        (".tif", None, 16, np.uint16),
        (".tiff", 8, 8, np.uint8),
    ],
)
def test_each_format_writes_size_mode_and_bit_depth(tmp_path, suffix, bit_depth, depth, dtype):
    path = save_image(gradient(), tmp_path / f"g{suffix}", RECIPE, bit_depth=bit_depth)
    pixels = read_pixels(path)
    assert pixels.shape == (6, 600, 3) and pixels.dtype == dtype
    with Image.open(path) as img:
        assert img.size == (600, 6) and img.mode == "RGB"
    levels = len(np.unique(pixels[..., 0]))
    assert levels > 256 if depth == 16 else levels <= 256
    want = gradient()[0].permute(1, 2, 0).numpy()
    tolerance = 0.02 if suffix in (".jpg", ".jpeg") else 0.5 / (2**depth - 1) + 1e-6
    assert np.abs(pixels / (2**depth - 1) - want).max() <= tolerance


def test_sixteen_bits_from_an_eight_bit_picture_are_its_levels(tmp_path):
    picture = Image.fromarray(np.arange(256, dtype=np.uint8).reshape(1, 256, 1).repeat(3, 2), "RGB")
    for name in ("p.png", "p.tif"):
        pixels = read_pixels(save_image(picture, tmp_path / name, bit_depth=16))
        assert pixels.dtype == np.uint16 and np.array_equal(pixels, np.asarray(picture).astype(np.uint16) * 257)


@pytest.mark.parametrize("name", [".png", ".png16", ".jpg", ".jpeg", ".webp", ".webp-lossy", ".tif", ".tif8"])
def test_every_format_carries_the_recipe(tmp_path, name):
    options, depth = FORMATS[name]
    quality = 80 if "--quality" in options else None
    path = save_image(gradient(4, 40, 8), tmp_path / f"r{suffix_of(name)}", RECIPE, bit_depth=depth, quality=quality)
    assert read_recipe(path) == RECIPE
    bare = save_image(gradient(3, 40, 8), tmp_path / f"bare{suffix_of(name)}", None, bit_depth=depth)
    assert read_recipe(bare) is None


def test_a_recipe_too_big_for_a_jpeg_is_compressed_else_refused_in_one_line(tmp_path):
    rng = np.random.default_rng(0)
    big = {"command": "transfer", "values": [round(float(v), 2) for v in rng.random(20000)]}  # ~100 KB of JSON
    assert len(json.dumps(big)) > 65536
    path = save_image(gradient(), tmp_path / "big.jpg", big)
    assert read_recipe(path) == big
    noise = {"command": "transfer", "noise": rng.bytes(100_000).hex()}  # does not compress below 64 KB
    with pytest.raises(OutputError, match=r"does not fit in a JPEG.*--recipe none"):
        save_image(gradient(), tmp_path / "huge.jpg", noise)
    assert not (tmp_path / "huge.jpg").exists() and not list(tmp_path.glob(".huge*"))


# --- transparency ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "suffix, bit_depth", [(".png", None), (".png", 16), (".webp", None), (".tif", None), (".tif", 8)]
)
@pytest.mark.parametrize("source", ["tensor", "pil"])
def test_alpha_is_kept(tmp_path, suffix, bit_depth, source):
    image = gradient(4, 40, 6)
    if source == "pil":
        image = Image.fromarray((image[0].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8), "RGBA")
    pixels = read_pixels(save_image(image, tmp_path / f"a{suffix}", RECIPE, bit_depth=bit_depth))
    top = np.iinfo(pixels.dtype).max
    assert pixels.shape == (6, 40, 4)
    assert (pixels[0, :, 3] == 0).all() and (pixels[3:, :, 3] == top).all()
    assert np.abs(pixels[1, :, 3].astype(float) / top - 0.5).max() < 0.01
    with Image.open(tmp_path / f"a{suffix}") as img:
        assert img.mode == "RGBA"


@pytest.mark.parametrize("source", ["tensor", "pil"])
def test_jpeg_flattens_alpha_onto_white(tmp_path, source):
    image = torch.zeros(1, 4, 16, 16)
    image[:, 0] = 1.0  # red
    image[:, 3, :8] = 0.0  # the top half transparent
    image[:, 3, 8:] = 1.0
    if source == "pil":
        image = Image.fromarray((image[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8), "RGBA")
    path = save_image(image, tmp_path / "flat.jpg", RECIPE)
    with Image.open(path) as img:
        assert img.mode == "RGB"
        pixels = np.asarray(img).astype(int)
    assert np.abs(pixels[:6] - [255, 255, 255]).max() <= 3
    assert np.abs(pixels[10:] - [255, 0, 0]).max() <= 6


def test_the_cli_notes_in_one_line_that_a_jpeg_has_no_transparency(tmp_path, capsys):
    from dreamstyle.cli.run import Outputs, write_still
    from dreamstyle.writers import Outbox

    result = Result(None, [], dict(RECIPE), tensor=gradient(4, 24, 8))
    out = Outputs(tmp_path / "o.jpg")
    write_still(result, out, Outbox())
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "no transparency" in lines[0] and "white" in lines[0]
    assert read_recipe(tmp_path / "o.jpg") == RECIPE
    write_still(result, Outputs(tmp_path / "o.png"), Outbox())
    assert "transparency" not in capsys.readouterr().err and read_pixels(tmp_path / "o.png").shape[2] == 4


# --- through the command line: --from, snapshots, folders ---------------------------------------------


@pytest.mark.parametrize("name", [".png", ".png16", ".jpg", ".webp", ".webp-lossy", ".tif", ".tif8"])
def test_from_replays_every_format(images, tmp_path, runner, name):
    options, depth = FORMATS[name]
    out = tmp_path / f"out{suffix_of(name)}"
    result = invoke(runner, "transfer", *images, "-o", out, *options, *FAST, "--content-weight", "7")
    assert result.exit_code == 0, result.output
    pixels = read_pixels(out)
    assert pixels.dtype == (np.uint16 if depth == 16 else np.uint8) and pixels.shape[:2] == (27, 32)
    recipe = read_recipe(out)
    assert recipe["iterations"] == 2 and recipe["size"] == 32 and recipe["content_weight"] == 7
    again = tmp_path / f"again{suffix_of(name)}"
    result = invoke(runner, "transfer", "--from", out, "-o", again, *options, "-q")
    assert result.exit_code == 0, result.output
    assert read_recipe(again) == recipe
    assert np.array_equal(read_pixels(again), pixels)  # the CPU replays bit for bit


def test_sixteen_bit_outputs_keep_the_full_precision_of_the_result(images, tmp_path, runner):
    out = tmp_path / "deep.png"
    result = invoke(runner, "transfer", *images, "-o", out, "--bit-depth", "16", *FAST)
    assert result.exit_code == 0, result.output
    pixels = read_pixels(out)
    assert pixels.dtype == np.uint16 and (pixels % 257 != 0).mean() > 0.5  # not 8 bits scaled up
    eight = invoke(runner, "transfer", "--from", out, "-o", tmp_path / "eight.png", "-q")
    assert eight.exit_code == 0, eight.output
    assert np.abs(read_pixels(tmp_path / "eight.png") * 257.0 - pixels).max() <= 128.5


@pytest.mark.parametrize("suffix, dtype", [(".jpg", np.uint8), (".tif", np.uint16), (".webp", np.uint8)])
def test_snapshots_take_the_output_format(images, tmp_path, runner, suffix, dtype):
    out = tmp_path / f"snap{suffix}"
    result = invoke(runner, "transfer", *images, "-o", out, "--save-every", "1", *FAST)
    assert result.exit_code == 0, result.output
    shots = sorted(tmp_path.glob(f"snap_*{suffix}"))
    assert [p.name for p in shots] == [f"snap_00001{suffix}", f"snap_00002{suffix}"]
    assert all(read_pixels(p).dtype == dtype and read_pixels(p).shape[:2] == (27, 32) for p in shots)


def test_a_folder_of_images_takes_sixteen_bits(tmp_path, runner):
    folder = tmp_path / "in"
    folder.mkdir()
    make_image(folder / "a.png")
    make_image(folder / "b.png", seed=1)
    style = make_image(tmp_path / "style.png", (44, 44), 1, "stripes")
    result = invoke(runner, "transfer", folder, style, "-o", tmp_path / "out", "--bit-depth", "16", *FAST)
    assert result.exit_code == 0, result.output
    for name in ("a.png", "b.png"):
        pixels = read_pixels(tmp_path / "out" / name)
        assert pixels.dtype == np.uint16 and (pixels % 257 != 0).any()
        assert read_recipe(tmp_path / "out" / name)["iterations"] == 2


def test_the_python_api_saves_a_result(tmp_path):
    result = Result(None, [], dict(RECIPE), tensor=gradient())
    path = result.save(tmp_path / "api.tif")
    assert read_pixels(path).dtype == np.uint16 and read_recipe(path) == RECIPE
    with pytest.raises(OutputError, match="exists"):
        result.save(path)
    result.save(path, bit_depth=8, recipe=False, overwrite=True)
    assert read_pixels(path).dtype == np.uint8 and read_recipe(path) is None
    with pytest.raises(OptionError, match="--bit-depth 16 does not go with .*jpg"):
        result.save(tmp_path / "api.jpg", bit_depth=16)
    assert not (tmp_path / "api.jpg").exists()
    assert Result(Image.new("RGB", (5, 4), "red"), [], {}).save(tmp_path / "p.jpg", quality=50).exists()


# --- refused before any work ---------------------------------------------------------------------------


@pytest.fixture
def no_work(monkeypatch):
    """Any optimization fails the test: the refusals below come before it."""
    from dreamstyle import runner, sequence

    def forbidden(*args, **kwargs):
        raise AssertionError("the run started")

    monkeypatch.setattr(runner, "run", forbidden)
    monkeypatch.setattr(sequence, "run_clip", forbidden)
    monkeypatch.setattr(sequence, "run_folder", forbidden)


def refused_line(result, code, *words):
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = [line for line in result.output.strip().splitlines() if line.startswith("Error")]
    assert len(lines) == 1, result.output
    for word in words:
        assert word in lines[0], result.output


@pytest.mark.parametrize(
    "output, options, words",
    [
        ("o.jpg", ["--bit-depth", "16"], ["--bit-depth 16", ".jpg is 8-bit", ".png", ".tif"]),
        ("o.webp", ["--bit-depth", "16"], ["--bit-depth 16", ".webp is 8-bit"]),
        ("o.png", ["--bit-depth", "12"], ["--bit-depth 12", ".png is 8 or 16-bit"]),
        ("o.png", ["--quality", "80"], ["--quality", ".png has no quality", ".jpg"]),
        ("o.tif", ["--quality", "80"], ["--quality", ".tif has no quality"]),
        ("o.bmp", [], ["must end in .png", ".jpg", ".webp", ".tif"]),
    ],
)
def test_options_a_format_does_not_take_are_one_line_before_any_work(
    images, tmp_path, runner, no_work, output, options, words
):
    result = invoke(runner, "transfer", *images, "-o", tmp_path / output, *options, *FAST, "--save-every", "1")
    refused_line(result, 1, *words)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["content.png", "style.png"]


@pytest.mark.parametrize("value", ["0", "101"])
def test_quality_out_of_range_is_one_line(images, tmp_path, runner, no_work, value):
    refused_line(
        invoke(runner, "transfer", *images, "-o", tmp_path / "o.jpg", "--quality", value, *FAST),
        1,
        f"--quality must be 1 to 100, not {value}",
    )


def test_a_bit_depth_that_is_not_a_number_is_a_usage_line(images, tmp_path, runner, no_work):
    refused_line(
        invoke(runner, "transfer", *images, "-o", tmp_path / "o.png", "--bit-depth", "high", *FAST), 2, "--bit-depth"
    )


def test_clips_and_folders_refuse_what_their_format_does_not_take(tmp_path, runner, no_work):
    frames = [Image.new("RGB", (24, 20), c) for c in ("red", "blue")]
    clip = tmp_path / "clip.gif"
    frames[0].save(clip, save_all=True, append_images=frames[1:], duration=100, loop=0)
    style = make_image(tmp_path / "style.png", (44, 44), 1, "stripes")
    folder = tmp_path / "in"
    folder.mkdir()
    make_image(folder / "a.png")
    before = sorted(p.name for p in tmp_path.iterdir())
    refused_line(
        invoke(runner, "transfer", clip, style, "-o", tmp_path / "o.gif", "--bit-depth", "16", *FAST),
        1,
        "--bit-depth 16",
        ".gif is 8-bit",
    )
    refused_line(
        invoke(runner, "transfer", clip, style, "-o", tmp_path / "o.png", "--quality", "50", *FAST),
        1,
        "--quality",
        ".png has no quality",
    )
    refused_line(
        invoke(runner, "transfer", clip, style, "-o", tmp_path / "frames", "--quality", "50", *FAST),
        1,
        "--quality",
        "a folder of frames",
    )
    refused_line(
        invoke(runner, "transfer", folder, style, "-o", tmp_path / "out", "--quality", "50", *FAST),
        1,
        "--quality",
        "a folder of images",
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == before


# --- a plugin's format ------------------------------------------------------------------------------------

RECEIVED: list = []


def _npz_write(fh, images, recipe, **options):
    """Full-precision pixels and the recipe in a NumPy archive."""
    RECEIVED.append({"images": images, **options})
    np.savez(fh, pixels=options["pixels"][0], recipe=np.array(json.dumps(recipe)))


def _npz_recipe(path):
    with np.load(path) as data:
        return json.loads(str(data["recipe"])) or None


class NpzPlugin:
    @hookimpl
    def register_writers(self, register):
        register(
            Writer(
                "npz",
                (".npz",),
                "image",
                _npz_write,
                _npz_recipe,
                "float pixels (a test plugin)",
                bit_depths=(32, 16, 8),
                default_bit_depth=32,
                quality=True,
                alpha=True,
            )
        )


def test_a_plugin_format_gets_the_options_and_the_full_precision(host, images, tmp_path, runner):
    assert host.register(NpzPlugin(), name="npz")
    RECEIVED.clear()
    out = tmp_path / "o.npz"
    result = invoke(runner, "transfer", *images, "-o", out, "--quality", "40", *FAST)
    assert result.exit_code == 0, result.output
    got = RECEIVED[-1]
    assert got["bit_depth"] == 32 and got["quality"] == 40 and got["images"][0].mode == "RGB"
    pixels = got["pixels"][0]
    assert pixels.dtype == np.float32 and pixels.shape == (27, 32, 3)
    assert np.array_equal((pixels * 255 + 0.5).astype(np.uint8), np.asarray(got["images"][0]))
    assert (np.abs(pixels * 255 - np.round(pixels * 255)) > 1e-3).any()  # not 8-bit levels
    assert read_recipe(out)["iterations"] == 2
    again = tmp_path / "again.npz"
    result = invoke(runner, "transfer", "--from", out, "-o", again, "--bit-depth", "16", "-q")
    assert result.exit_code == 0, result.output
    assert RECEIVED[-1]["bit_depth"] == 16 and RECEIVED[-1]["quality"] is None
    assert np.array_equal(np.load(again)["pixels"], pixels)
    refused_line(
        invoke(runner, "transfer", *images, "-o", tmp_path / "x.npz", "--bit-depth", "12", *FAST),
        1,
        ".npz is 32, 16 or 8-bit",
    )


def test_a_plugin_format_with_rgba(host, tmp_path):
    assert host.register(NpzPlugin(), name="npz")
    RECEIVED.clear()
    save_image(gradient(4, 20, 4), tmp_path / "a.npz")
    assert RECEIVED[-1]["images"][0].mode == "RGBA" and RECEIVED[-1]["pixels"][0].shape == (4, 20, 4)


def test_a_frame_gets_its_full_precision_only_from_a_tensor_that_is_its_picture():
    from dreamstyle.writers import picture_of, precise

    tensor = gradient(4, 30, 4)
    _, picture = picture_of(tensor)
    assert precise(picture, tensor) is tensor
    assert precise(picture, tensor[:, :3]) is picture  # no alpha: not this picture
    assert precise(picture, (tensor + 0.01).clamp(0, 1)) is picture  # from before the job's finish
    assert precise(picture, None) is picture
