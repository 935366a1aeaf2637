"""Every option works everywhere it can: each transfer option on a still, a clip, a folder and in
compare; each dream option on a still, a clip and a folder (random weights, tiny images). An option
set away from its default is recorded in the output's recipe, so the run really took it. A new
option must be added to the tables below (the first test fails otherwise)."""

import numpy as np
import pytest
from helpers import make_image
from PIL import Image

import dreamstyle
from dreamstyle.cli import main
from dreamstyle.clips import Clip
from dreamstyle.errors import OptionError
from dreamstyle.settings import DreamSettings, TransferSettings

pytestmark = pytest.mark.usefixtures("one_thread")

BASE = dict(weights="random", device="cpu", size=48, iterations=1, seed=0)

# option -> a value other than its default (and the options it needs with it)
TRANSFER = {
    "backbone": ("squeezenet1_1", {"size": 64}),
    "pooling": ("avg", {}),
    "seed": (7, {}),
    "precision": ("fp32", {}),
    "size": (56, {}),
    "iterations": (2, {}),
    "optimizer": ("adam", {}),
    "lr": (2.0, {}),
    "losses": (("activation=1:layers=relu3_1",), {}),
    "preserve_color": ("luminance", {}),
    "compile": (True, {}),
    "max_pixels": (10_000_000, {}),
    "style_scale": (0.8, {}),
    "style_blend": ((0.7, 0.3), {"styles": "two"}),
    "content_layers": ("relu3_1", {}),
    "style_layers": ("relu1_1,relu2_1=0.5", {}),
    "content_weight": (2.0, {}),
    "style_weight": (50.0, {}),
    "style_loss": ("w2", {}),
    "preset": ("nn", {}),
    "tv_weight": (10.0, {}),
    "init": ("noise", {}),
    "scales": (2, {}),
    "dream_layers": (("auto",), {}),
    "dream_weight": (10.0, {"dream_layers": ("relu3_3",)}),
    "allow_overlap": (True, {"dream_layers": ("relu4_2",)}),
    "batch": (2, {}),
    "temporal_weight": (5.0, {}),
    "temporal_init": (0.5, {}),
    "flow": ("ilk", {}),
    "frame_iterations": (2, {}),
    "fps": (5.0, {}),
    "max_clip_pixels": (10**8, {}),
    "tile": (32, {}),
    "tile_overlap": (8, {"tile": 32}),
    "style_masks": (("mask",), {}),
    "content_mask": ("mask", {}),
    "term_scale": ("absolute", {}),
}
DREAM = {
    "backbone": ("squeezenet1_1", {"layers": ("fire6",), "size": 64, "octaves": 1}),
    "pooling": ("avg", {}),
    "seed": (7, {}),
    "precision": ("fp32", {}),
    "size": (56, {}),
    "iterations": (2, {}),
    "optimizer": ("adam", {}),
    "lr": (2.0, {}),
    "losses": (("tv=5",), {}),
    "preserve_color": ("histogram", {}),
    "compile": (True, {}),
    "max_pixels": (10_000_000, {}),
    "layers": (("relu3_1:2",), {}),
    "objective": ("l2", {}),
    "octaves": (2, {}),
    "octave_scale": (1.5, {}),
    "jitter": (3, {}),
    "tile": (32, {}),
    "tile_overlap": (8, {"tile": 32}),
    "guide": ("guide", {}),
    "init": ("noise", {}),
    "batch": (2, {}),
    "temporal_weight": (5.0, {}),
    "temporal_init": (0.2, {}),
    "flow": ("ilk", {}),
    "frame_iterations": (2, {}),
    "fps": (5.0, {}),
    "max_clip_pixels": (10**8, {}),
    "transforms": ("jitter,scale=0.1,rotate=5,flip", {}),
    "gradient": ("lapnorm", {}),
    "param": ("fft", {}),
    "blur": (0.5, {}),
    "decay": (0.01, {}),
    "samples": (2, {"init": "noise"}),
    "term_scale": ("absolute", {}),
}
COVERED_BY_BASE = {"weights", "device", "log_every", "frames", "content", "styles", "input"}
# need a video file or a zoom run, which this matrix of stills, GIF clips and folders does not make:
# each is run in tests/test_video.py (segments, resampling, zoom and its resume)
VIDEO_AND_ZOOM = {"start", "duration", "zoom_frames", "zoom", "rotate"}
# where the items run, not what they are (the recipe does not record it): tests/test_ray.py
EXECUTION = {"executor", "workers"}
# how a picture feeds your own network (--backbone FILE), refused with the backbones here: each is run on a
# still, a clip and a folder in tests/test_own_network.py
OWN_NETWORK = {"input_channels", "mean", "std", "input_range", "show_channels", "hold_value"}


def test_every_option_is_in_the_matrix():
    for cls, table in ((TransferSettings, TRANSFER), (DreamSettings, DREAM)):
        missing = cls.names() - set(table) - COVERED_BY_BASE - VIDEO_AND_ZOOM - EXECUTION - OWN_NETWORK
        assert not missing, f"{cls.__name__} options the matrix does not try: {sorted(missing)}"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("matrix")
    content = make_image(root / "content.png", (64, 56))
    styles = [make_image(root / "style.png", (44, 44), 1, "stripes"), make_image(root / "style2.png", (40, 48), 2)]
    guide = make_image(root / "guide.png", (40, 40), 3, "stripes")
    mask = np.zeros((30, 40), np.uint8)
    mask[:, :20] = 255  # the left half
    Image.fromarray(mask).save(root / "mask.png")
    frames = []
    for i in range(3):  # a bright square moving over a still background
        a = np.asarray(Image.open(content).convert("RGB")).copy()
        a[8:24, 4 + 6 * i : 20 + 6 * i] = 250
        frames.append(Image.fromarray(a))
    folder = root / "stills"
    folder.mkdir()
    for i, f in enumerate(frames[:2]):
        f.save(folder / f"im{i}.png")
    return {
        "content": content,
        "styles": styles,
        "guide": guide,
        "clip": Clip(frames, [100] * 3, 0, ["f1", "f2", "f3"]),
        "folder": folder,
        "mask": root / "mask.png",
    }


def options_for(table, name, files):
    value, extra = table[name]
    options = {**BASE, name: value, **extra}
    if options.get("styles") == "two":
        options["styles"] = [str(p) for p in files["styles"]]
    if name == "guide":
        options["guide"] = str(files["guide"])
    if name == "style_masks":
        options["style_masks"] = (str(files["mask"]),)
    if name == "content_mask":
        options["content_mask"] = str(files["mask"])
    return options


def uses_loaded(options) -> bool:
    return "backbone" not in options and "pooling" not in options


def recorded(recipe, name, value):
    from dreamstyle.settings import DreamSettings, TransferSettings

    fields = {**TransferSettings.__dataclass_fields__, **DreamSettings.__dataclass_fields__}
    if not fields[name].metadata["spec"].recipe:
        return name not in recipe  # an option about reading or showing, not about the picture
    got = recipe[name]
    if isinstance(value, tuple):
        value = list(value)
    if name in ("content_layers", "style_layers"):
        return isinstance(got, dict) and set(got) == {p.split("=")[0] for p in value.split(",")}
    if name == "losses":
        return set(got) == {v.split("=")[0] for v in value}
    if name == "layers":
        return got == value
    if name == "guide":
        return got.endswith("guide.png")
    if name in ("style_masks", "content_mask"):
        return all(str(g).endswith("mask.png") for g in (got if isinstance(got, list) else [got]))
    return got == value


TRANSFER_CONTEXTS = ["still", "clip", "folder", "compare"]
CLIP_ONLY = {"temporal_weight", "temporal_init", "flow", "frame_iterations", "fps", "max_clip_pixels"}


def applies(cls, name, context):
    return {"still": "still", "compare": "grid", "clip": "clip", "folder": "folder"}[context] in cls.applicability()[
        name
    ][1]


def skip_unless_applies(name, context, cls=TransferSettings):
    if not applies(cls, name, context) and context in ("still", "compare"):
        pytest.skip("a clip or folder option: a still refuses it on the command line (tested below)")
    if name in CLIP_ONLY and context == "folder":
        pytest.skip("a clip option: a folder of stills has no frames")
    if name == "flow":
        pytest.importorskip("skimage")
    if name == "compile" and context != "still":
        pytest.skip("torch.compile once is enough (the still); clips and folders share the same session")


@pytest.mark.parametrize("context", TRANSFER_CONTEXTS)
@pytest.mark.parametrize("name", sorted(TRANSFER))
def test_every_transfer_option(name, context, files, vgg):
    options = options_for(TRANSFER, name, files)
    styles = options.pop("styles", [str(files["styles"][0])])
    skip_unless_applies(name, context)
    loaded = {"loaded": vgg} if uses_loaded(options) and context != "compare" else {}
    if context == "still":
        result = dreamstyle.transfer(str(files["content"]), styles, **loaded, **options)
    elif context == "clip":
        result = dreamstyle.transfer_clip(files["clip"], styles, **loaded, **options)
        assert len(result.frames) == 3
    elif context == "folder":
        result = dreamstyle.transfer_folder(files["folder"], styles, **loaded, **options)
        assert result.names == ["im0", "im1"]
    else:
        comp = dreamstyle.compare(str(files["content"]), styles, options.pop("backbone", "vgg19"), **options)
        assert comp.rows[0].status == "ok", comp.rows[0].error
        result = comp.rows[0].result
    assert result.stopped is None
    assert recorded(result.recipe, name, TRANSFER[name][0]), (name, result.recipe.get(name))


@pytest.mark.parametrize("context", ["still", "clip", "folder"])
@pytest.mark.parametrize("name", sorted(DREAM))
def test_every_dream_option(name, context, files, vgg):
    options = {"layers": ("relu3_1",), **options_for(DREAM, name, files)}
    skip_unless_applies(name, context, DreamSettings)
    loaded = {"loaded": vgg} if uses_loaded(options) else {}
    layers = options.pop("layers")
    if not applies(DreamSettings, name, context):
        with pytest.raises(OptionError, match=f"goes with .*, not with a {context}"):
            run_dream(context, files, layers, loaded, options)
        return
    result = run_dream(context, files, layers, loaded, options)
    assert result.stopped is None
    assert recorded(result.recipe, name, DREAM[name][0]), (name, result.recipe.get(name))


def run_dream(context, files, layers, loaded, options):
    if context == "still":
        return dreamstyle.dream(
            str(files["content"]) if options.get("init") != "noise" else None, layers, **loaded, **options
        )
    if context == "clip":
        return dreamstyle.dream_clip(files["clip"], layers, **loaded, **options)
    return dreamstyle.dream_folder(files["folder"], layers, **loaded, **options)


@pytest.mark.parametrize(
    "command, option, value",
    [
        ("transfer", "--batch", "2"),
        ("transfer", "--temporal-weight", "5"),
        ("transfer", "--flow", "ilk"),
        ("dream", "--temporal-init", "0.2"),
        ("dream", "--fps", "5"),
    ],
)
def test_a_still_refuses_clip_options_in_one_line(command, option, value, files, runner, tmp_path):
    args = [
        command,
        str(files["content"]),
        *([str(files["styles"][0])] if command == "transfer" else []),
        "-o",
        str(tmp_path / "o.png"),
        option,
        value,
        "--weights",
        "random",
    ]
    result = runner.invoke(main, args)
    assert result.exit_code == 2 and f"{option} goes with a clip" in result.output


@pytest.mark.parametrize(
    "command, cls", [("transfer", TransferSettings), ("dream", DreamSettings), ("compare", TransferSettings)]
)
def test_every_option_is_on_the_command_line(command, cls, runner):
    from dreamstyle.settings import flag_of

    text = runner.invoke(main, [command, "-h"]).output
    for f in cls.fields():
        spec = f.metadata["spec"]
        offered = command != "compare" or ("grid" in spec.applies_to and f.name != "backbone")
        if spec.cli and not spec.argument and offered:
            assert flag_of(f) in text, (command, flag_of(f))
