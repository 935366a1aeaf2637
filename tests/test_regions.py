"""Big prints in exact tiles, styles per region (masks), and transparency kept."""

import json

import numpy as np
import pytest
import torch
from helpers import make_image
from PIL import Image, ImageSequence

import dreamstyle
from dreamstyle.cli import main
from dreamstyle.memory import auto_tile, step_bytes
from dreamstyle.objective import term
from dreamstyle.runtime import make_extract
from dreamstyle.session import Session
from dreamstyle.terms import PositionWeights, TVLoss, gram, gram_sum
from dreamstyle.termspec import TermContext
from dreamstyle.tiling import Gradient

pytestmark = pytest.mark.usefixtures("one_thread")
CPU = torch.device("cpu")


def session(vgg):
    return Session(loaded=vgg, device="cpu", precision="fp32")


def transfer_objective(vgg):
    return (
        5 * term("content", layers={"relu2_2": 1.0}, backbone=vgg.backbone)
        + 100 * term("style", layers={"relu1_1": 1.0, "relu2_1": 0.5, "relu3_1": 1.0}, backbone=vgg.backbone)
        + 30 * term("tv")
    )


def gradients(vgg, obj, images, masks, tiles=(0, 24), overlap=40, jitter=0, shape=(1, 3, 64, 84)):
    """(values, gradient) of ``obj`` at one random picture, untiled and in tiles."""
    sess = session(vgg)
    net = sess.net(obj.layers)
    torch.manual_seed(5)
    x = torch.rand(shape)
    out = []
    for tile in tiles:
        gradient = Gradient(net, obj, sess, tile=tile, overlap=overlap, jitter=jitter)
        ctx = TermContext(vgg.backbone, images=images, masks=masks, tiler=gradient.tiler)
        obj.prepare(ctx, make_extract(net, CPU))
        param = x.clone().requires_grad_(True)
        torch.manual_seed(1)
        _, values = gradient(param, 1.0)
        out.append((values.detach(), param.grad.clone(), gradient.tiled(param)))
    return out


# --- exact tiles --------------------------------------------------------------------------------------


@pytest.mark.parametrize("with_masks", [False, True])
def test_tiled_transfer_gradient_equals_the_untiled_one(vgg, with_masks):
    """Gram matrices, the content error and TV over 3 x 4 tiles (two passes: the sums, then each
    tile's gradient against the whole picture's loss) give the whole picture's values and gradient."""
    torch.manual_seed(2)
    h, w = 64, 84
    images = {"content": [torch.rand(1, 3, h, w)], "style": [torch.rand(1, 3, 50, 70), torch.rand(1, 3, 40, 40)]}
    masks = (
        {"alpha": torch.rand(1, 1, h, w), "content": torch.rand(1, 1, h, w), "style": [torch.rand(1, 1, h, w), None]}
        if with_masks
        else {}
    )
    (v0, g0, tiled0), (v1, g1, tiled1) = gradients(vgg, transfer_objective(vgg), images, masks, jitter=7)
    assert not tiled0 and tiled1
    assert torch.allclose(v1, v0, rtol=1e-5)
    assert g0.abs().amax() > 0 and torch.allclose(g1, g0, atol=1e-5 * float(g0.abs().amax()), rtol=1e-4)


def test_style_images_larger_than_a_tile_get_the_same_gram_matrices(vgg):
    sess = session(vgg)
    obj = term("style", layers=["relu1_1", "relu3_1"], backbone=vgg.backbone)
    net = sess.net(obj.layers)
    style = torch.rand(1, 3, 72, 100)
    targets = []
    for tile in (0, 32):
        gradient = Gradient(net, obj, sess, tile=tile, overlap=40)
        obj.prepare(TermContext(vgg.backbone, images={"style": [style]}, tiler=gradient.tiler), make_extract(net, CPU))
        targets.append(obj.terms[0].target0_1.clone())
    assert torch.allclose(targets[0], targets[1], rtol=1e-4, atol=1e-7)


def test_tiles_assemble_the_whole_feature_maps(vgg):
    sess = session(vgg)
    obj = term("content", layers=["relu2_2", "relu3_1"], backbone=vgg.backbone)
    net = sess.net(obj.layers)
    x = torch.rand(1, 3, 60, 90)
    whole = make_extract(net, CPU)(x)
    parts = Gradient(net, obj, sess, tile=24, overlap=40).tiler.extract(x, ["relu2_2", "relu3_1"])
    for name in ("relu2_2", "relu3_1"):
        assert parts[name].shape == whole[name].shape
        assert torch.allclose(parts[name], whole[name], atol=1e-5)


def test_a_term_that_is_not_a_sum_over_positions_is_refused_in_tiles_in_one_line(vgg, host):
    from dreamstyle.errors import OptionError
    from dreamstyle.terms import LossTerm
    from dreamstyle.termspec import TermSpec

    class Max(LossTerm):
        layers = ["relu1_1"]

        def forward(self, feats, image):
            return feats["relu1_1"].amax()

    from dreamstyle.hookspecs import hookimpl

    class Plugin:
        @hookimpl
        def register_loss_terms(self, register):
            register(TermSpec("peak", "the largest activation", lambda: Max()))

    host.register(Plugin(), "peak-plugin")
    obj = term("peak")
    sess = session(vgg)
    gradient = Gradient(sess.net(obj.layers), obj, sess, tile=16, overlap=8)
    with pytest.raises(OptionError, match="'peak' cannot be computed in tiles.*--tile 0"):
        gradient(torch.rand(1, 3, 40, 40).requires_grad_(True), 1.0)


def test_automatic_tiles_only_when_the_estimate_does_not_fit(vgg):
    layers = ["relu1_1", "relu4_2"]
    need = step_bytes(vgg.backbone, layers, (1024, 1024))
    assert step_bytes(vgg.backbone, layers, (2048, 2048)) == pytest.approx(4 * need, rel=0.01)
    assert auto_tile(vgg.backbone, layers, (1024, 1024), 64, free=10 * need) == 0
    tile = auto_tile(vgg.backbone, layers, (4096, 4096), 64, free=2 * need)
    assert 256 <= tile < 4096 and tile % 128 == 0
    assert step_bytes(vgg.backbone, layers, (tile + 128, tile + 128)) <= 0.6 * 2 * need
    assert auto_tile(vgg.backbone, layers, (1024, 1024), 64, free=None) == 0  # unknown: as before


def test_transfer_in_tiles_from_the_cli_matches_the_untiled_run_and_says_so_in_the_recipe(tmp_path, runner):
    content = make_image(tmp_path / "c.png", (160, 120))
    style = make_image(tmp_path / "s.png", (64, 64), kind="stripes")
    outs = {}
    for tile in ("48", "0"):
        out = outs[tile] = tmp_path / f"o{tile}.png"
        result = runner.invoke(
            main,
            [
                "transfer",
                str(content),
                str(style),
                "-o",
                str(out),
                "--weights",
                "random",
                "--size",
                "160",
                "--iterations",
                "3",
                "--tile",
                tile,
                "--seed",
                "0",
                "--style-layers",
                "relu1_1,relu2_1",
                "--content-layers",
                "relu2_2",
                "--precision",
                "fp32",
                "--device",
                "cpu",
                "--log-json",
                str(tmp_path / f"log{tile}.json"),
                "-q",
            ],
        )
        assert result.exit_code == 0, result.output
    recipe = json.loads(Image.open(outs["48"]).info["dreamstyle"])
    assert recipe["tile"] == 48 and recipe["tiles_used"] == {"160x120": {"tile": 48, "overlap": 16}}
    assert "tiles_used" not in json.loads(Image.open(outs["0"]).info["dreamstyle"])
    tiled, whole = (np.asarray(Image.open(outs[t]), dtype=np.float32) for t in ("48", "0"))
    assert np.abs(tiled - whole).mean() < 0.5  # the same steps, summed in another order
    history = json.loads((tmp_path / "log48.json").read_text())
    assert min(h["total"] for h in history[1:]) < history[0]["total"]


def test_automatic_tiles_when_memory_is_short(tmp_path, monkeypatch, vgg):
    monkeypatch.setattr("dreamstyle.jobs.base.available_bytes", lambda device: 1)  # nothing fits
    content = make_image(tmp_path / "c.png", (300, 200))
    style = make_image(tmp_path / "s.png", (64, 64), kind="stripes")
    result = dreamstyle.transfer(
        content,
        [style],
        loaded=vgg,
        size=300,
        iterations=1,
        seed=0,
        device="cpu",
        style_layers="relu1_1",
        content_layers="relu2_2",
    )
    assert result.recipe["tiles_used"] == {"300x200": {"tile": 256, "overlap": 16}}
    assert result.image.size == (300, 200)


def test_seamless_textures_refuse_tiles(tmp_path, runner):
    style = make_image(tmp_path / "s.png", (64, 64), kind="stripes")
    result = runner.invoke(
        main,
        ["texture", str(style), "-o", str(tmp_path / "t.png"), "--seamless", "--tile", "256", "--weights", "random"],
    )
    assert result.exit_code == 1 and "--seamless and --tile do not go together" in result.output
    assert "Traceback" not in result.output


# --- masks ----------------------------------------------------------------------------------------------


def test_a_gram_matrix_over_a_mask_of_ones_is_the_plain_one_and_a_region_is_its_own():
    f = torch.rand(2, 5, 6, 8)
    ones = torch.ones(1, 1, 6, 8)
    assert torch.allclose(gram_sum(f, ones) / 48, gram(f), rtol=1e-5)
    half = torch.zeros(1, 1, 6, 8)
    half[..., :4] = 1
    assert torch.allclose(gram_sum(f, half) / 24, gram(f[..., :4]), rtol=1e-5)


def test_masks_are_average_pooled_to_each_layer():
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., :, :3] = 1  # three of eight columns
    at = PositionWeights(mask).at((2, 2))
    assert torch.allclose(at[0, 0, :, 0], torch.tensor([0.75, 0.75])) and torch.all(at[0, 0, :, 1] == 0)


def test_clear_pixels_cost_nothing_in_tv():
    alpha = torch.ones(1, 1, 10, 10)
    alpha[..., 5:] = 0
    tv = TVLoss()
    tv.prepare(TermContext(None, masks={"alpha": alpha}), None)
    x = torch.rand(1, 3, 10, 10)
    y = x.clone()
    y[..., 6:] = torch.rand(1, 3, 10, 4)  # only where it is clear (and not next to an opaque pixel)
    assert float(tv({}, x)) == pytest.approx(float(tv({}, y)))
    z = x.clone()
    z[..., :2] = torch.rand(1, 3, 10, 2)
    assert float(tv({}, z)) != pytest.approx(float(tv({}, x)))


def two_styles(tmp_path):
    """A red and a blue style image, a photo, and a mask: white on the top half."""
    rng = np.random.default_rng(0)
    noise = rng.uniform(0, 0.25, (48, 48, 1))
    red = np.concatenate([0.75 + noise, noise, noise], 2)
    blue = np.concatenate([noise, noise, 0.75 + noise], 2)
    paths = []
    for name, arr in (("red.png", red), ("blue.png", blue)):
        Image.fromarray((np.clip(arr, 0, 1) * 255).astype("uint8")).save(tmp_path / name)
        paths.append(tmp_path / name)
    mask = np.zeros((48, 64), np.uint8)
    mask[:24] = 255
    Image.fromarray(mask, "L").save(tmp_path / "top.png")
    content = Image.new("RGB", (64, 48), (128, 128, 128))
    content.save(tmp_path / "grey.png")
    return tmp_path / "grey.png", paths, tmp_path / "top.png"


def test_each_style_paints_its_own_region(tmp_path):
    content, (red, blue), top = two_styles(tmp_path)
    result = dreamstyle.transfer(
        content,
        [red, blue],
        style_masks=(str(top),),
        size=64,
        iterations=30,
        seed=0,
        device="cpu",
        content_weight=0,
        tv_weight=0,
        style_layers="relu1_1,relu2_1",
    )
    t = result.tensor[0]
    upper, lower = t[:, 4:20].mean((1, 2)), t[:, 28:44].mean((1, 2))
    assert upper[0] > upper[2] + 0.2 and lower[2] > lower[0] + 0.2  # red above, blue below
    assert [m.rsplit("/", 1)[-1] for m in result.recipe["style_masks"]] == ["top.png"]


def test_the_content_mask_keeps_the_photo_there(tmp_path):
    content, (red, _), top = two_styles(tmp_path)
    # the photo is flat grey, whose relu4_2 features have little energy: relative to it, any change
    # is a large content error, so the content weight is a tenth of the default here
    result = dreamstyle.transfer(
        content,
        [red],
        content_mask=str(top),
        size=64,
        iterations=20,
        seed=0,
        device="cpu",
        tv_weight=0,
        style_layers="relu1_1,relu2_1",
        content_weight=3e5,
    )
    t = result.tensor[0]
    kept, styled = (t[:, 4:20] - 0.5).abs().mean(), (t[:, 28:44] - 0.5).abs().mean()
    assert styled > 2 * kept


def test_style_mask_mistakes_are_one_line(tmp_path, runner):
    content, (red, blue), top = two_styles(tmp_path)
    base = ["transfer", str(content), str(red), str(blue), "-o", str(tmp_path / "o.png"), "--weights", "random"]
    for extra, message in (
        (["--style-mask", f"3={top}"], "names style image 3, but there are 2"),
        (["--style-mask", f"1={top}", "--style-mask", f"1={top}"], "style image 1 has two masks"),
        (["--style-mask", f"0={top}"], "count from 1"),
        (["--style-mask", str(tmp_path / "nothere.png")], "nothere.png"),
    ):
        result = runner.invoke(main, base + extra)
        assert result.exit_code == 1 and message in result.output, (extra, result.output)
        assert "Traceback" not in result.output
    assert not (tmp_path / "o.png").exists()


def test_texture_regions_take_their_styles(tmp_path):
    _, (red, blue), top = two_styles(tmp_path)
    result = dreamstyle.texture(
        [red, blue],
        style_masks=(f"1={top}",),
        size="64x48",
        iterations=30,
        seed=0,
        device="cpu",
        tv_weight=0,
        style_layers="relu1_1,relu2_1",
    )
    t = result.tensor[0]
    assert t[0, 4:20].mean() > t[2, 4:20].mean() + 0.2 and t[2, 28:44].mean() > t[0, 28:44].mean() + 0.2


# --- transparency -----------------------------------------------------------------------------------------


def rgba_photo(tmp_path, size=(48, 40)):
    make_image(tmp_path / "rgb.png", size)
    img = Image.open(tmp_path / "rgb.png").convert("RGBA")
    alpha = np.zeros(size[::-1], np.uint8)
    alpha[:, : size[0] // 2] = 255
    img.putalpha(Image.fromarray(alpha, "L"))
    img.save(tmp_path / "rgba.png")
    return tmp_path / "rgba.png"


@pytest.mark.parametrize("command", ["transfer", "dream"])
def test_an_rgba_input_keeps_its_alpha(tmp_path, runner, command):
    photo = rgba_photo(tmp_path)
    style = make_image(tmp_path / "s.png", (32, 32), kind="stripes")
    args = [str(photo), str(style)] if command == "transfer" else [str(photo), "--layer", "relu2_1", "--octaves", "1"]
    out = tmp_path / "o.png"
    result = runner.invoke(
        main,
        [
            command,
            *args,
            "-o",
            str(out),
            "--weights",
            "random",
            "--size",
            "48",
            "--iterations",
            "2",
            "--device",
            "cpu",
            "-q",
        ],
    )
    assert result.exit_code == 0, result.output
    img = Image.open(out)
    assert img.mode == "RGBA" and img.size == (48, 40)
    a = np.asarray(img.getchannel("A"))
    assert (a[:, :20] == 255).all() and (a[:, 28:] == 0).all()


def test_a_folder_of_rgba_and_rgb_images_keeps_each_ones_alpha(tmp_path, runner):
    folder = tmp_path / "in"
    folder.mkdir()
    rgba_photo(tmp_path)
    (tmp_path / "rgba.png").rename(folder / "a.png")
    make_image(folder / "b.png", (48, 40), seed=1)
    style = make_image(tmp_path / "s.png", (32, 32), kind="stripes")
    out = tmp_path / "out"
    result = runner.invoke(
        main,
        [
            "transfer",
            str(folder),
            str(style),
            "-o",
            str(out),
            "--weights",
            "random",
            "--size",
            "48",
            "--iterations",
            "2",
            "--device",
            "cpu",
            "--batch",
            "2",
            "-q",
        ],
    )
    assert result.exit_code == 0, result.output
    assert Image.open(out / "a.png").mode == "RGBA" and Image.open(out / "b.png").mode == "RGB"


@pytest.mark.parametrize("suffix, mode", [(".png", "RGBA"), (".webp", "RGBA"), (".gif", "P")])
def test_a_clip_with_alpha_keeps_it_where_the_format_can(tmp_path, runner, suffix, mode):
    """An animated PNG with a clear half: an APNG or WebP clip keeps each frame's alpha, a GIF is
    flattened onto white (its one-bit transparency would fray soft edges)."""
    rgba = Image.open(rgba_photo(tmp_path))
    second = rgba.copy()
    second.putalpha(Image.fromarray(np.full((40, 48), 255, np.uint8), "L"))  # the second frame is opaque
    clip = tmp_path / "clip.png"
    rgba.save(clip, save_all=True, append_images=[second], duration=100, loop=0)
    style = make_image(tmp_path / "s.png", (32, 32), kind="stripes")
    out = tmp_path / f"o{suffix}"
    result = runner.invoke(
        main,
        [
            "transfer",
            str(clip),
            str(style),
            "-o",
            str(out),
            "--weights",
            "random",
            "--size",
            "48",
            "--iterations",
            "2",
            "--frame-iterations",
            "1",
            "--device",
            "cpu",
            "-q",
        ],
    )
    assert result.exit_code == 0, result.output
    frames = [f.copy() for f in ImageSequence.Iterator(Image.open(out))]
    assert len(frames) == 2 and frames[0].mode == mode
    if mode == "RGBA":
        first, last = (np.asarray(f.getchannel("A")) for f in frames)
        assert (first[:, :20] == 255).all() and (first[:, 28:] == 0).all() and (last == 255).all()
    else:
        assert np.asarray(frames[0].convert("RGB"))[:, 30:].min() > 200  # the clear half is white


def test_clear_parts_of_the_content_cost_nothing(vgg):
    """The content term over an alpha mask ignores what the clear part holds."""
    obj = term("content", layers=["relu1_1"], backbone=vgg.backbone)
    net = session(vgg).net(obj.layers)
    alpha = torch.zeros(1, 1, 32, 32)
    alpha[..., :16] = 1
    content = torch.rand(1, 3, 32, 32)
    obj.prepare(
        TermContext(vgg.backbone, images={"content": [content]}, masks={"alpha": alpha}), make_extract(net, CPU)
    )
    other = content.clone()
    other[..., 20:] = torch.rand(1, 3, 32, 12)  # relu1_1 sees 1 px around: columns 19+ are clear
    values = [float(obj(make_extract(net, CPU)(x), x)[0]) for x in (content, other)]
    assert values == [pytest.approx(0.0, abs=1e-9), pytest.approx(0.0, abs=1e-9)]
