"""Plugin authors (issue 16): a plugin's mistakes cost one line naming it, the contract checks they
can import, the term listing, complete recipes, a starting package, and any timm model."""

import json

import pytest
import torch
from helpers import make_image

from dreamstyle import hookimpl
from dreamstyle.backbones import IMAGENET, SequentialBackbone
from dreamstyle.cli import main
from dreamstyle.layers import Layer
from dreamstyle.plugins import get_host
from dreamstyle.settings import STYLE_WEIGHT
from dreamstyle.termspec import TermSpec
from dreamstyle.testing import check_backbone, check_loss_term
from dreamstyle.writers import read_recipe

FAST = ["--weights", "random", "--device", "cpu", "--size", "48", "--iterations", "1", "-q"]


class TinyNet(SequentialBackbone):
    """A hand-written CNN whose layer map the test gets wrong on purpose."""

    def __init__(self, name, layers, **kw):
        super().__init__(
            name,
            "a test plugin's",
            preprocess=IMAGENET,
            min_size=16,
            content_layers=kw.pop("content", ("b_relu",)),
            style_layers=("a_conv",),
            dream_layers=("b_relu",),
            **kw,
        )
        self.__dict__["_spec"] = layers

    def _layers(self):
        return [Layer(*row) for row in self.__dict__["_spec"]]

    def _features(self, pooling="max"):
        from torch import nn

        return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU())

    def _load_pretrained(self, model):
        return IMAGENET


GOOD = [("a_conv", "features.0", 8, 1), ("b_relu", "features.3", 16, 1)]


def plugin(name, *backbones, terms=()):
    class Plugin:
        @hookimpl
        def register_backbones(self, register):
            for bb in backbones:
                register(bb)

        @hookimpl
        def register_loss_terms(self, register):
            for t in terms:
                register(t)

    return Plugin()


def images(tmp_path):
    return make_image(tmp_path / "c.png", (48, 40)), make_image(tmp_path / "s.png", (44, 44), 1, "stripes")


# --- a plugin's faults: one line naming it ------------------------------------------------------------


@pytest.mark.parametrize(
    "layers, words",
    [
        ([("a_conv", "features.0", 8, 1), ("a_conv", "features.3", 16, 1)], "repeats the name 'a_conv'"),
        ([("a_conv", "features.0", 8, 2), ("b_relu", "features.3", 16, 1)], "'b_relu' has stride 1 after stride 2"),
        ([("a_conv", "features.0", 0, 1), ("b_relu", "features.3", 16, 1)], "'a_conv' has 0 channels"),
    ],
)
def test_a_bad_layer_map_leaves_that_backbone_out_and_lists_the_rest(host, runner, layers, words):
    host.register(plugin("sloppy", TinyNet("tiny_bad", layers)), name="sloppy")
    result = runner.invoke(main, ["backbones", "--json"])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("dreamstyle: warning:")]
    assert len(warnings) == 1 and "backbone 'tiny_bad' of plugin 'sloppy' left out" in warnings[0]
    assert words in warnings[0]
    rows = json.loads(result.output[result.output.index("[") :])
    assert "vgg19" in {r["name"] for r in rows} and "tiny_bad" not in {r["name"] for r in rows}


def test_a_default_layer_missing_from_the_map_is_refused_at_registration(host):
    host.register(plugin("sloppy", TinyNet("tiny_nodefault", GOOD, content=("nosuch",))), name="sloppy")
    assert "tiny_nodefault" not in host.backbones.names()
    assert any(
        "its default content layer 'nosuch' is not in its layer map" in e and "'sloppy'" in e for e in host.errors
    )


@pytest.mark.parametrize(
    "layers, words",
    [
        (
            [("a_conv", "features.0", 8, 1), ("b_relu", "features.3", 64, 1)],
            "layer 'b_relu' has 16 channels; its layer map says 64",
        ),
        ([("a_conv", "features.0", 8, 1), ("b_relu", "features.3", 16, 4)], "layer 'b_relu' has stride about 1"),
        ([("a_conv", "features.0", 8, 1), ("b_relu", "features.9", 16, 1)], "layer 'b_relu' names module 'features.9'"),
    ],
)
def test_a_layer_map_that_does_not_match_the_network_is_one_line(host, runner, tmp_path, layers, words):
    host.register(plugin("sloppy", TinyNet("tiny_wrong", layers)), name="sloppy")
    content, _ = images(tmp_path)
    result = runner.invoke(
        main,
        [
            "dream",
            str(content),
            "-o",
            str(tmp_path / "d.png"),
            "--backbone",
            "tiny_wrong",
            "--layer",
            "b_relu:12",
            "--octaves",
            "1",
            *FAST,
        ],
    )
    assert result.exit_code == 1, result.output
    (line,) = result.output.strip().splitlines()
    assert "backbone 'tiny_wrong' (plugin 'sloppy')" in line and words in line


def test_a_term_that_returns_many_values_names_its_plugin(host, runner, tmp_path):
    class Many(torch.nn.Module):
        layers = []

        def prepare(self, ctx, extract):
            pass

        def forward(self, feats, image):
            return image.mean(1)

    host.register(plugin("manyfold", terms=[TermSpec("many", "returns a map", lambda: Many())]), name="manyfold")
    result = runner.invoke(
        main, ["transfer", *map(str, images(tmp_path)), "-o", str(tmp_path / "o.png"), "--loss", "many=1", *FAST]
    )
    assert result.exit_code == 1
    assert "loss term 'many' (plugin 'manyfold') returned (1, 40, 48) values, not one number" in result.output


def test_a_hook_with_the_wrong_argument_name_is_one_whole_line(host):
    class Wrong:
        @hookimpl
        def register_commands(self, group):  # the spec says cli
            pass

    assert not host.register(Wrong(), name="wrong-args")
    (error,) = host.errors
    assert "\n" not in error and "wrong-args" in error and "'group'" in error and "hookspec" in error


def test_a_plugin_whose_hook_raises_is_marked_in_the_listing(host, runner):
    class Half:
        @hookimpl
        def register_loss_terms(self, register):
            raise RuntimeError("half of it broke")

        @hookimpl
        def register_backbones(self, register):
            register(TinyNet("tiny_ok", GOOD))

    host.register(Half(), name="half")
    result = runner.invoke(main, ["plugins", "--json"])
    rows = {r["name"]: r for r in json.loads(result.output[result.output.index("[") :])}
    assert (
        "half of it broke" in rows["half"]["problems"][0]
        and rows["dreamstyle.default_plugins.losses"]["problems"] == []
    )
    assert "tiny_ok" in host.backbones.names()  # its other hook still counts


@pytest.mark.parametrize(
    "value, off",
    [("1", True), ("true", True), ("yes", True), ("0", False), ("false", False), ("no", False), ("", False)],
)
def test_the_autoload_switch_reads_like_a_switch(monkeypatch, value, off):
    from dreamstyle.plugins import DISABLE_ENV, autoload_disabled

    monkeypatch.setenv(DISABLE_ENV, value)
    assert autoload_disabled() is off


# --- what a plugin author needs -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [n for n in get_host().backbones.names() if not hasattr(get_host().backbones.entries[n], "resolve")]
    + ["timm/resnet18", "timm/vit_tiny_patch16_224"],
)
def test_every_builtin_backbone_passes_the_contract_check(name):
    check_backbone(name)


@pytest.mark.parametrize("name", get_host().loss_terms.names())
def test_every_builtin_term_passes_the_contract_check(name):
    check_loss_term(name)


def test_the_contract_check_says_what_is_wrong():
    with pytest.raises(AssertionError, match="layer 'b_relu' has 16 channels; its layer map says 64"):
        check_backbone(TinyNet("tiny_x", [("a_conv", "features.0", 8, 1), ("b_relu", "features.3", 64, 1)]))

    class Flat(torch.nn.Module):
        layers = ["relu1_1"]

        def prepare(self, ctx, extract):
            pass

        def forward(self, feats, image):
            return feats["relu1_1"].sum() * 0 + 1.0  # never goes down

    with pytest.raises(AssertionError, match="did not go down"):
        check_loss_term(TermSpec("flat", "constant", lambda: Flat()))


def test_losses_lists_every_term_with_its_options(runner):
    result = runner.invoke(main, ["losses", "--json"])
    rows = {r["name"]: r for r in json.loads(result.output)}
    assert rows["style"]["default_weight"] == STYLE_WEIGHT and rows["style"]["reads"][0] == "style"
    assert {"style_mask", "content_mask", "alpha"} <= set(rows["style"]["reads"])  # the regions it weighs by
    assert rows["activation"]["options"] == {"layers": "relu4_4", "objective": "mean"}
    assert rows["tv"]["options"] == {"wrap": False} and rows["tv"]["reads"] == ["alpha"]  # clear pixels are free
    assert (
        "dreamstyle losses"
        in runner.invoke(main, ["transfer", "a.png", "b.png", "-o", "x.png", "--loss", "nosuch=1"]).output
    )


def test_recipes_record_every_term_as_it_ran_and_the_plugins(host, runner, tmp_path):
    from dreamstyle.plugins import PluginInfo

    host.register(
        plugin(
            "stats", terms=[TermSpec("meanish", "pixel means", lambda scale=1.0: Meanish(scale), default_weight=7.0)]
        ),
        name="stats",
        version="1.2.3",
    )

    class Meanish(torch.nn.Module):
        layers = []

        def __init__(self, scale):
            super().__init__()
            self.scale = float(scale)

        def prepare(self, ctx, extract):
            pass

        def forward(self, feats, image):
            return image.mean() * self.scale

    out = tmp_path / "o.png"
    result = runner.invoke(
        main, ["transfer", *map(str, images(tmp_path)), "-o", str(out), "--loss", "meanish:scale=2", *FAST]
    )
    assert result.exit_code == 0, result.output
    recipe = read_recipe(out)
    assert recipe["terms"]["meanish"] == {"weight": 7.0, "options": {"scale": "2"}, "plugin": "stats"}
    assert recipe["terms"]["style"]["weight"] == STYLE_WEIGHT and recipe["plugins"] == {"stats": "1.2.3"}
    assert isinstance(host.infos["stats"], PluginInfo)


def test_new_plugin_writes_a_package_that_installs_and_passes_its_test(tmp_path, runner):
    import subprocess
    import sys

    from test_plugin_packages import pip_install

    for kind, typed, name in (("--backbone", "mynet", "mynet"), ("--loss", "dreamstyle-my-stats", "my-stats")):
        result = runner.invoke(main, ["new-plugin", typed, kind, "-o", str(tmp_path)])
        assert result.exit_code == 0, result.output
        folder = tmp_path / f"dreamstyle-{name}"
        module = "dreamstyle_" + name.replace("-", "_")
        assert (folder / "pyproject.toml").read_text().count(f'{name} = "{module}"') == 1
        assert (folder / f"{module}.py").is_file()
        site = tmp_path / f"site-{name}"
        pip_install([folder], site)
        test = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(folder / "tests")],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env={**__import__("os").environ, "PYTHONPATH": str(site)},
        )
        assert test.returncode == 0, test.stdout[-2000:] + test.stderr[-2000:]
    again = runner.invoke(main, ["new-plugin", "mynet", "-o", str(tmp_path)])
    assert again.exit_code == 1 and "exists" in again.output


@pytest.mark.parametrize(
    "typed, names",
    [
        ("dreamstyle-probe", ("dreamstyle-probe", "dreamstyle_probe", "probe")),
        ("dreamstyle_probe", ("dreamstyle-probe", "dreamstyle_probe", "probe")),
        ("Probe", ("dreamstyle-probe", "dreamstyle_probe", "probe")),
        ("Dreamstyle.My__Net", ("dreamstyle-my-net", "dreamstyle_my_net", "my-net")),
        ("class", ("dreamstyle-class", "dreamstyle_class", "class")),
    ],
)
def test_a_plugin_is_named_as_people_write_package_names(typed, names):
    from dreamstyle.scaffold import plugin_names

    assert plugin_names(typed) == names


@pytest.mark.parametrize("typed", ["dreamstyle", "", "my net", "café", "x-", "3d"])
def test_a_plugin_name_that_cannot_name_a_package_is_one_line(typed, tmp_path, runner):
    result = runner.invoke(main, ["new-plugin", typed, "-o", str(tmp_path)])
    assert result.exit_code != 0 and result.output.count("\n") == 1 and "plugin name" in result.output
    assert not list(tmp_path.iterdir())


# --- any timm model ---------------------------------------------------------------------------------------


def test_a_vision_transformer_runs_transfer_and_dream(tmp_path, runner):
    content, style = images(tmp_path)
    for args in (["transfer", content, style, "--iterations", "2"], ["dream", content, "--octaves", "1"]):
        result = runner.invoke(
            main,
            [
                *map(str, args),
                "-o",
                str(tmp_path / f"{args[0]}.png"),
                "--backbone",
                "timm/vit_tiny_patch16_224",
                "--weights",
                "random",
                "--device",
                "cpu",
                "--size",
                "56",
                "-q",
            ],
        )
        assert result.exit_code == 0, result.output


def test_a_model_that_takes_only_its_own_size_is_one_line(tmp_path, runner):
    content, style = images(tmp_path)
    result = runner.invoke(
        main,
        [
            "transfer",
            str(content),
            str(style),
            "-o",
            str(tmp_path / "o.png"),
            "--backbone",
            "timm/swin_tiny_patch4_window7_224",
            *FAST,
        ],
    )
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1
    assert "cannot make its features" in result.output or "cannot take a" in result.output


def test_a_timm_name_that_is_a_builtin_says_so(runner):
    result = runner.invoke(main, ["layers", "timm/squeezenet1_1"])
    assert result.exit_code == 1 and "there is a built-in backbone 'squeezenet1_1'" in result.output
