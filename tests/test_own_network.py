"""Your own network as a backbone (issue 33): small networks made here (1 channel, 4 channels, a
ResNet-like one with skip connections), saved as TorchScript, a torch.export archive and ONNX, each
listed, dreamed, visualized and used for a transfer through the command line; pickles and damaged
files refused in one line; MODULE:CALLABLE with --weights; replay by the file's hash."""

from __future__ import annotations

import importlib.util
import json
import pickle
import sys
import warnings

import numpy as np
import pytest
import torch
from helpers import make_image
from PIL import Image
from torch import nn

import dreamstyle
from dreamstyle.backbones.base import Preprocess
from dreamstyle.cli import main
from dreamstyle.errors import BackboneError
from dreamstyle.plugins import get_backbone
from dreamstyle.testing import check_backbone
from dreamstyle.writers import read_recipe

pytestmark = pytest.mark.usefixtures("one_thread")
HAS_ONNX = all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnx2torch"))
FORMATS = ["ts", "pt2", pytest.param("onnx", marks=pytest.mark.skipif(not HAS_ONNX, reason="needs onnx2torch"))]


class Grey(nn.Module):
    """A 1-channel CNN: two convolutions, the second strided."""

    def __init__(self):
        super().__init__()
        self.conv1, self.relu1 = nn.Conv2d(1, 8, 3, padding=1), nn.ReLU()
        self.conv2, self.relu2 = nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU()

    def forward(self, x):
        return self.relu2(self.conv2(self.relu1(self.conv1(x))))


class Four(nn.Module):
    """A 4-channel CNN (RGB and a fourth band) with a classifier head to cut away."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU()
        )
        self.head = nn.Linear(16, 3)

    def forward(self, x):
        return self.head(self.features(x).mean((2, 3)))


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1)
        self.bn = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1)
        self.down = nn.Conv2d(cin, cout, 1, stride) if stride > 1 or cin != cout else nn.Identity()

    def forward(self, x):
        return self.relu(self.conv2(self.relu(self.bn(self.conv1(x)))) + self.down(x))


class ResLike(nn.Module):
    """A ResNet-like network: a stem, two stages of blocks with skip connections, a head."""

    def __init__(self):
        super().__init__()
        self.stem, self.act = nn.Conv2d(3, 8, 3, padding=1), nn.ReLU()
        self.layer1 = nn.Sequential(Block(8, 8, 1))
        self.layer2 = nn.Sequential(Block(8, 16, 2), Block(16, 16, 1))
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        return self.fc(self.layer2(self.layer1(self.act(self.stem(x)))).mean((2, 3)))


MODELS = {"grey": (Grey, 1), "four": (Four, 4), "res": (ResLike, 3)}


def save(model: nn.Module, channels: int, path, fmt: str):
    x = torch.rand(1, channels, 32, 32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if fmt == "ts":
            torch.jit.script(model).save(str(path))
        elif fmt == "pt2":
            torch.export.save(torch.export.export(model, (x,)), str(path))
        else:
            axes = {"x": {0: "batch", 2: "height", 3: "width"}}
            torch.onnx.export(
                model, (x,), str(path), dynamo=False, opset_version=17, input_names=["x"], dynamic_axes=axes
            )
    return path


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    """{(model, format): path}: each model saved in each format, once for the module."""
    folder = tmp_path_factory.mktemp("nets")
    out = {}
    for name, (cls, channels) in MODELS.items():
        torch.manual_seed(0)
        model = cls().eval()
        for fmt in ("ts", "pt2") + (("onnx",) if HAS_ONNX else ()):
            out[name, fmt] = save(model, channels, folder / f"{name}.{fmt}", fmt)
    return out


@pytest.fixture
def photo(tmp_path):
    return make_image(tmp_path / "photo.png", (40, 32))


def run(runner, *args):
    return runner.invoke(main, [str(a) for a in args])


def one_line_error(res) -> str:
    assert res.exit_code != 0, res.output
    assert "Traceback" not in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    lines = [line for line in res.output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], res.output
    return errors[0]


# --- the layer map --------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_resnet_like_file_lists_its_layers_named_by_module(nets, runner, fmt):
    res = run(runner, "backbones", "--layers", nets["res", fmt], "--json")
    assert res.exit_code == 0, res.output
    rows = {r["name"]: r for r in json.loads(res.output)}
    sep = "/" if fmt == "onnx" else "."  # onnx2torch names modules by the ONNX node's path
    stage1, stage2 = "layer1", "layer2"  # a stage's last block is named by the stage, as built-in ResNets'
    assert rows[stage1]["channels"] == 8 and rows[stage1]["stride"] == 1 and rows[stage1]["kind"] == "block"
    assert rows[stage2]["channels"] == 16 and rows[stage2]["stride"] == 2
    assert any(name.endswith("conv1") and name.startswith(f"layer2{sep}") for name in rows)
    assert not any("fc" in name for name in rows)  # the head gives no picture-shaped output
    roles = {role: name for name, r in rows.items() for role in r["default_for"]}
    assert roles["dream"] == stage2 and roles["content"] == stage1  # timm's rule on the two stages
    strides = [r["stride"] for r in rows.values()]
    assert strides == sorted(strides)


def test_torchscript_and_export_name_the_same_layers(nets):
    ts = get_backbone(str(nets["res", "ts"])).layer_map
    pt2 = get_backbone(str(nets["res", "pt2"])).layer_map
    assert [(x.name, x.channels, x.stride) for x in ts] == [(x.name, x.channels, x.stride) for x in pt2]
    assert {"stem", "act", "layer1", "layer2.0", "layer2.0.conv1", "layer2"} <= set(ts.names)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("model", ["grey", "four", "res"])
def test_every_network_passes_the_backbone_contract_check(nets, model, fmt):
    """The plugins' contract (dreamstyle.testing): its layer map sound, every layer given with its
    channels and stride, at its minimum size too."""
    check_backbone(str(nets[model, fmt]), weights="default")


def test_the_input_channels_come_from_the_first_convolution(nets, runner):
    assert get_backbone(str(nets["grey", "pt2"])).preprocess.channels == 1
    assert get_backbone("file:" + str(nets["four", "ts"])).preprocess.channels == 4
    res = run(runner, "layers", nets["four", "pt2"], "--input-channels", "3")
    assert "cannot take a 160x128 px picture of 3 channels" in one_line_error(res)


# --- dream, channels, transfer on each network and format ----------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("model", ["grey", "four", "res"])
def test_dream_channels_and_transfer_run_on_each_network(nets, runner, photo, tmp_path, model, fmt):
    net = nets[model, fmt]
    common = ["--backbone", net, "--seed", "0", "--iterations", "3"]
    res = run(runner, "dream", photo, "-o", tmp_path / "d.png", "--size", 32, "--octaves", 1, *common)
    assert res.exit_code == 0, res.output
    dreamt = np.asarray(Image.open(tmp_path / "d.png").convert("RGB")).astype(int)
    assert dreamt.shape == (26, 32, 3)
    if model == "grey":  # a 1-channel network's picture is grey
        assert np.abs(dreamt[..., 0] - dreamt[..., 1]).max() == 0 and np.abs(dreamt[..., 1] - dreamt[..., 2]).max() == 0
    layer = get_backbone(str(net)).dream_layers[0]
    res = run(
        runner, "channels", net, layer, "--channels", "0-1", "--size", 32, "--iterations", 3, "-o", tmp_path / "a.png"
    )
    assert res.exit_code == 0, res.output
    assert Image.open(tmp_path / "a.png").width > 64
    res = run(runner, "transfer", photo, photo, "-o", tmp_path / "t.png", "--size", 32, *common)
    assert res.exit_code == 0, res.output
    assert Image.open(tmp_path / "t.png").size == (32, 26)


@pytest.mark.parametrize("model", ["grey", "four", "res"])
def test_a_transfer_on_your_network_lowers_its_loss(nets, photo, tmp_path, model):
    style = make_image(tmp_path / "style.png", (40, 32), kind="stripes")
    result = dreamstyle.transfer(
        photo, [style], backbone=str(nets[model, "pt2"]), size=32, iterations=12, seed=0, init="noise", device="cpu"
    )
    totals = [h["total"] for h in result.history if "total" in h]
    assert totals[-1] < 0.5 * totals[0]


def test_a_four_channel_network_shows_the_channels_asked_and_holds_the_rest(nets, photo, tmp_path, runner):
    res = run(
        runner, "dream", photo, "-o", tmp_path / "d.png", "--backbone", nets["four", "ts"], "--size", 32, "--octaves", 1,
        "--iterations", 2, "--show-channels", "3,2,1", "--hold-value", "0.25", "--mean", "0.5", "--std", "0.5",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    backbone = get_backbone(str(nets["four", "ts"])).configured(
        dreamstyle.backbones.own.InputSpec(show=(3, 2, 1), hold=0.25, mean=(0.5,), std=(0.5,))
    )
    seen = backbone.preprocess.module()(torch.tensor([0.2, 0.4, 0.6]).view(1, 3, 1, 1)).flatten()
    assert torch.allclose(seen, (torch.tensor([0.25, 0.6, 0.4, 0.2]) - 0.5) / 0.5)


def test_the_preprocess_maps_range_mean_and_grey():
    pre = Preprocess(scale=255.0, mean=(10.0,), std=(2.0,), channels=1, show=(0, 0, 0), hold=(0.5,))
    seen = pre.module()(torch.tensor([0.0, 0.5, 1.0]).view(1, 3, 1, 1))
    assert seen.shape == (1, 1, 1, 1) and torch.allclose(seen.flatten(), torch.tensor([(127.5 - 10.0) / 2.0]))
    shown = pre.shown(torch.tensor([0.0, 0.3, 0.9, 1.0]).view(1, 4, 1, 1)).flatten()
    assert torch.allclose(shown, torch.tensor([0.4, 0.4, 0.4, 1.0]))  # grey, the alpha kept


def test_the_input_options_are_refused_with_a_backbone_that_declares_its_input(photo, tmp_path, runner):
    res = run(runner, "dream", photo, "-o", tmp_path / "d.png", "--weights", "random", "--mean", "0.5")
    assert "--mean goes with your own network" in one_line_error(res)
    res = run(runner, "dream", photo, "-o", tmp_path / "d.png", "--show-channels", "0,1")
    assert "three channel numbers" in one_line_error(res)


def test_show_channels_beyond_the_network_is_one_line(nets, photo, tmp_path, runner):
    res = run(
        runner, "dream", photo, "-o", tmp_path / "d.png", "--backbone", nets["grey", "ts"], "--show-channels", "0,1,2"
    )
    assert "the network has 1 input channels" in one_line_error(res)


# --- what is refused, and never unpickled --------------------------------------------------------------------


def test_a_pickled_module_a_state_dict_and_damaged_files_are_one_line(nets, photo, tmp_path, runner):
    model = Grey()
    torch.save(model, tmp_path / "whole.pt")
    torch.save(model.state_dict(), tmp_path / "state.pt")
    torch.save(model, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    data = nets["res", "pt2"].read_bytes()
    (tmp_path / "cut.pt2").write_bytes(data[: len(data) // 2])
    (tmp_path / "noise.pt").write_bytes(bytes(range(256)) * 8)
    (tmp_path / "noise.onnx").write_bytes(b"not an onnx protobuf at all")
    said = {}
    for name in ("whole.pt", "state.pt", "legacy.pt", "cut.pt2", "noise.pt", "noise.onnx"):
        res = run(runner, "dream", photo, "-o", tmp_path / "d.png", "--backbone", tmp_path / name)
        said[name] = one_line_error(res)
    assert "pickled by torch.save, which dreamstyle never unpickles" in said["whole.pt"]
    assert "holds a state dict" in said["state.pt"]
    assert "is a pickle (torch.save's legacy format)" in said["legacy.pt"]
    for line in said.values():
        assert "torch.jit.script(model).save(PATH)" in line and "torch.export.save" in line
    assert "damaged" in said["cut.pt2"]
    assert not (tmp_path / "d.png").exists()
    res = run(runner, "dream", photo, "-o", tmp_path / "d.png", "--backbone", tmp_path / "missing.pt2")
    assert "not found" in one_line_error(res)


@pytest.mark.parametrize("fmt", FORMATS)
def test_loading_a_network_file_unpickles_nothing(nets, monkeypatch, fmt, host):
    """No pickle.loads, no pickle Unpickler, and no torch.load but weights-only, while a file loads."""

    def refuse(*args, **kwargs):
        raise AssertionError("a pickle was unpickled")

    real_load = torch.load

    def weights_only_load(*args, **kwargs):
        assert (
            kwargs.get("weights_only") is not False
            or dreamstyle.backbones.ownnet.os.environ.get("TORCH_FORCE_WEIGHTS_ONLY_LOAD") == "1"
        )
        return real_load(*args, **kwargs)

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    monkeypatch.setattr(torch, "load", weights_only_load)
    backbone = get_backbone(str(nets["res", fmt]))
    assert len(backbone.layer_map) > 5


def test_an_export_archive_with_a_pickled_object_is_refused(nets, tmp_path):
    import zipfile

    source = nets["res", "pt2"]
    target = tmp_path / "sneaky.pt2"
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w") as zout:
        for item in zin.infolist():
            zout.writestr(item, zin.read(item.filename))
        prefix = zin.namelist()[0].split("/")[0]
        zout.writestr(f"{prefix}/data/constants/opaque_obj_0", pickle.dumps(object()))
    with pytest.raises(BackboneError, match="only a pickle can make"):
        len(get_backbone(str(target)).layer_map)


# --- MODULE:CALLABLE ----------------------------------------------------------------------------------------------


MODULE = """
import torch
from torch import nn


def make():
    torch.manual_seed(1)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.ReLU())
"""


def test_a_callable_in_your_code_with_weights_from_a_state_dict(tmp_path, photo, runner, monkeypatch):
    (tmp_path / "mynet_own_test.py").write_text(MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("mynet_own_test", None)
    import mynet_own_test

    torch.save(mynet_own_test.make().state_dict(), tmp_path / "w.pt")
    out = tmp_path / "d.png"
    res = run(
        runner,
        "dream",
        photo,
        "-o",
        out,
        "--backbone",
        "mynet_own_test:make",
        "--weights",
        tmp_path / "w.pt",
        "--size",
        32,
        "--iterations",
        2,
    )
    assert res.exit_code == 0, res.output
    assert out.exists()
    res = run(runner, "backbones", "--layers", "mynet_own_test:make", "--json")
    assert [r["name"] for r in json.loads(res.output)] == ["0", "1", "2", "3"]
    res = run(runner, "dream", "--from", out, photo, "-o", tmp_path / "again.png")  # code a recipe names: not run
    assert "give --backbone mynet_own_test:make" in one_line_error(res)
    res = run(runner, "dream", "--from", out, photo, "-o", tmp_path / "again.png", "--backbone", "mynet_own_test:make")
    assert res.exit_code == 0, res.output
    res = run(runner, "dream", photo, "-o", out, "--overwrite", "--backbone", "mynet_own_test:make")
    assert "give its weights with --weights FILE" in one_line_error(res)
    torch.save({"other.weight": torch.zeros(1)}, tmp_path / "bad.pt")
    res = run(
        runner,
        "dream",
        photo,
        "-o",
        out,
        "--overwrite",
        "--backbone",
        "mynet_own_test:make",
        "--weights",
        tmp_path / "bad.pt",
    )
    assert "do not fit" in one_line_error(res)
    res = run(runner, "dream", photo, "-o", out, "--overwrite", "--backbone", "mynet_own_test:nothing")
    assert "has no 'nothing'" in one_line_error(res)


def test_compare_takes_a_file_and_a_callable_among_its_backbones(nets, tmp_path, photo, runner, monkeypatch):
    (tmp_path / "mynet_compare_test.py").write_text(MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("mynet_compare_test", None)
    import mynet_compare_test

    torch.save(mynet_compare_test.make().state_dict(), tmp_path / "w.pt")
    style = make_image(tmp_path / "style.png", (40, 32), seed=1)
    out = tmp_path / "cmp"
    backbones = f"file:{nets['res', 'ts']},mynet_compare_test:make:weights={tmp_path / 'w.pt'},vgg19:random"
    res = run(runner, "compare", photo, style, "--backbones", backbones, "--size", 32, "--iterations", 2, "-o", out)
    assert res.exit_code == 0, res.output
    made = {read_recipe(p)["backbone"] for p in out.glob("*.png") if p.name != "compare.png"}
    assert made == {"res.ts", "mynet_compare_test:make", "vgg19"}, made  # a file by its name
    res = run(runner, "compare", photo, style, "--backbones", "vgg19:rondom", "-o", tmp_path / "typo")
    assert "unknown option 'rondom'" in one_line_error(res)


# --- replay ----------------------------------------------------------------------------------------------------------


def test_replay_finds_the_network_by_its_hash_and_says_when_it_changed(nets, tmp_path, runner, monkeypatch):
    monkeypatch.chdir(tmp_path)
    net = tmp_path / "net.pt2"
    net.write_bytes(nets["res", "pt2"].read_bytes())
    make_image(tmp_path / "photo.png", (40, 32))
    args = ["--size", 32, "--octaves", 1, "--iterations", 2, "--seed", 3]
    res = run(runner, "dream", "photo.png", "-o", "a.png", "--backbone", "net.pt2", *args)
    assert res.exit_code == 0, res.output
    recipe = dreamstyle.writers.read_recipe(tmp_path / "a.png")
    assert recipe["backbone"] == "net.pt2" and len(recipe["inputs"]["net.pt2"]) == 64
    res = run(runner, "dream", "--from", "a.png", "-o", "b.png")
    assert res.exit_code == 0, res.output
    assert np.array_equal(np.asarray(Image.open("a.png")), np.asarray(Image.open("b.png")))
    net.write_bytes(nets["four", "pt2"].read_bytes())  # another network at the same path
    res = run(runner, "dream", "--from", "a.png", "-o", "c.png")
    assert "the network file net.pt2 changed since the recipe was made" in one_line_error(res)


@pytest.mark.parametrize("fmt", ["ts", "pt2"])
def test_torchvisions_resnet18_as_a_file_gives_the_features_the_module_gives(tmp_path, fmt):
    """torchvision's ResNet-18 (in-place ReLUs, ``out += identity``) saved as a file: its derived
    layers are the module paths, and a tap gives what a forward hook on the module sees."""
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval()
    path = save(model, 3, tmp_path / f"resnet18.{fmt}", fmt)
    backbone = get_backbone(str(path))
    names = backbone.layer_map.names
    assert {"conv1", "relu", "maxpool", "layer1.0", "layer1", "layer2.0.conv1", "layer4"} <= set(names)
    assert backbone.layer_map["layer3"].channels == 256 and backbone.layer_map["layer3"].stride == 16
    seen = {}
    hooks = [
        model.get_submodule(m).register_forward_hook(lambda mod, args, out, m=m: seen.setdefault(m, out.clone()))
        for m in ("conv1", "layer1.0.conv2", "layer2")
    ]
    x = torch.rand(1, 3, 64, 80)
    with torch.no_grad():
        model(x)
        loaded = dreamstyle.backbones.load_backbone(backbone)
        taps = backbone.extractor(loaded.model, [backbone.layer_map[n].module for n in seen])(x)
    for hook in hooks:
        hook.remove()
    for name, tap in zip(seen, taps):
        assert torch.allclose(tap, seen[name], atol=1e-5), name


def test_the_web_page_never_takes_a_file_on_the_server_as_a_backbone(nets, tmp_path):
    from dreamstyle import web
    from dreamstyle.errors import UserError

    make_image(tmp_path / "style.png", (40, 32))
    for name in (str(nets["res", "pt2"]), "file:" + str(nets["res", "pt2"]), "os:getcwd"):
        form = {"content_sample": "chelsea.png", "styles_upload": [str(tmp_path / "style.png")], "backbone": name}
        with pytest.raises(UserError, match="unknown backbone"):
            web.settings_from_form("transfer", form)


INPUT_OPTIONS = {
    "input_channels": ("--input-channels", "4", 4),
    "mean": ("--mean", "0.4", [0.4]),
    "std": ("--std", "0.5,0.5,0.5,0.25", [0.5, 0.5, 0.5, 0.25]),
    "input_range": ("--input-range", "0,2", [0.0, 2.0]),
    "show_channels": ("--show-channels", "3,2,1", [3, 2, 1]),
    "hold_value": ("--hold-value", "0.3", 0.3),
}


@pytest.mark.parametrize("kind", ["still", "clip", "folder"])
def test_every_input_option_works_on_a_still_a_clip_and_a_folder(nets, tmp_path, runner, kind):
    """The options of a network that does not take RGB, each away from its default, taken and recorded
    for a still, a clip (an animated GIF) and a folder of stills (tests/test_matrix.py leaves them here)."""
    frames = [Image.open(make_image(tmp_path / f"f{i}.png", (40, 32), seed=i)).convert("RGB") for i in range(2)]
    if kind == "clip":
        source, out = tmp_path / "clip.gif", tmp_path / "out.gif"
        frames[0].save(source, save_all=True, append_images=frames[1:], duration=100, loop=0)
    elif kind == "folder":
        source, out = tmp_path / "stills", tmp_path / "out"
        source.mkdir()
        for i, frame in enumerate(frames):
            frame.save(source / f"im{i}.png")
    else:
        source, out = tmp_path / "f0.png", tmp_path / "out.png"
    flags = [word for flag, value, _ in INPUT_OPTIONS.values() for word in (flag, value)]
    res = run(runner, "dream", source, "-o", out, "--backbone", nets["four", "pt2"], "--size", 32, "--octaves", 1,
              "--iterations", 2, "--seed", 0, *flags)  # fmt: skip
    assert res.exit_code == 0, res.output
    written = sorted(out.glob("*.png"))[0] if kind == "folder" else out
    recipe = dreamstyle.writers.read_recipe(written)
    for name, (_, _, recorded) in INPUT_OPTIONS.items():
        assert recipe[name] == recorded, name
