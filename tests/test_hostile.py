"""What a hostile test still found (issue 35, section 3), each case fixed at its root: a stranger's file
never makes dreamstyle read, write or leak what the user did not ask for; a damaged recipe, a broken
plugin, a diverging run, a value that cannot be read or Ctrl-C is one line, and the best picture is kept.

Random weights, tiny images, the CPU. Plugins that misbehave are registered by the tests (loss terms) or
installed on a temporary path as a distribution (one that hangs at import)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import make_image
from PIL import Image, PngImagePlugin
from test_reliability import FaultTerm, refused

from dreamstyle import hookimpl
from dreamstyle.cli import main
from dreamstyle.termspec import TermSpec
from dreamstyle.writers import read_recipe

FAST = ["--weights", "random", "--device", "cpu", "--size", "40", "--iterations", "2", "--seed", "0", "-q"]


@pytest.fixture
def images(tmp_path):
    return make_image(tmp_path / "content.png"), make_image(tmp_path / "style.png", (44, 44), 1, "stripes")


def secret_image(tmp_path) -> Path:
    """A picture in a folder no recipe has any business reading."""
    (tmp_path / "private").mkdir(exist_ok=True)
    return make_image(tmp_path / "private" / "secret.png", seed=7)


def run(runner, *args):
    return runner.invoke(main, [*map(str, args)])


def forge(path: Path, recipe) -> Path:
    """A picture carrying ``recipe`` (a dict, or the text itself) in dreamstyle's PNG chunk."""
    info = PngImagePlugin.PngInfo()
    info.add_text("dreamstyle", recipe if isinstance(recipe, str) else json.dumps(recipe))
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (40, 33), "grey").save(path, pnginfo=info)
    return path


@pytest.fixture
def shared(images, tmp_path, runner):
    """A picture someone sent, with the inputs it names beside it, and its recipe."""
    folder = tmp_path / "downloads"
    folder.mkdir()
    out = folder / "shared.png"
    assert run(runner, "transfer", *images, "-o", out, *FAST).exit_code == 0
    for p in images:
        (folder / p.name).write_bytes(p.read_bytes())
    return out, read_recipe(out)


# --- 1. --from reads only beside the picture, or what the command line names ----------------------------


@pytest.mark.parametrize("key", ["content", "styles", "init", "style_masks", "content_mask", "weights"])
@pytest.mark.parametrize("where", ["absolute", "up"])
def test_replay_reads_no_file_a_recipe_names_elsewhere(shared, tmp_path, runner, key, where):
    picture, recipe = shared
    secret = secret_image(tmp_path)
    name = str(secret) if where == "absolute" else "../private/secret.png"
    recipe = {**recipe, key: [name] if key in ("styles", "style_masks") else name, "inputs": {}}
    forged = forge(picture.with_name("forged.png"), recipe)
    out = tmp_path / "again.png"
    line = refused(run(runner, "transfer", "--from", forged, "-o", out, "-q"), "secret.png", "not beside")
    assert str(tmp_path / "private") not in line and not out.exists()


def test_replay_finds_a_recipes_file_beside_the_picture_by_its_name_only(shared, tmp_path, runner):
    picture, recipe = shared
    secret_image(tmp_path).rename(tmp_path / "private" / "content.png")  # what the recipe's folder holds: never read
    forged = forge(picture.with_name("forged.png"), {**recipe, "content": str(tmp_path / "private" / "content.png")})
    out = tmp_path / "again.png"
    assert run(runner, "transfer", "--from", forged, "-o", out, "-q").exit_code == 0
    assert np.array_equal(np.asarray(Image.open(out)), np.asarray(Image.open(picture)))  # the file beside it


def test_replay_takes_a_link_out_of_the_folder_only_with_a_hash_to_check(shared, tmp_path, runner):
    picture, recipe = shared
    secret = secret_image(tmp_path)
    (picture.parent / "linked.png").symlink_to(secret)
    forged = forge(picture.with_name("forged.png"), {**recipe, "content": "linked.png", "inputs": {}})
    refused(run(runner, "transfer", "--from", forged, "-o", tmp_path / "a.png", "-q"), "links out of its folder")
    given = run(runner, "transfer", "--from", forged, picture.parent / "linked.png", "-o", tmp_path / "b.png", "-q")
    assert given.exit_code == 0, given.output  # named on the command line: the user's choice


def test_a_dream_replay_reads_no_guide_from_elsewhere(images, tmp_path, runner):
    out = tmp_path / "d.png"
    assert run(runner, "dream", images[0], "-o", out, "--guide", images[1], "--octaves", "1", *FAST).exit_code == 0
    secret = secret_image(tmp_path)
    forged = forge(tmp_path / "forged.png", {**read_recipe(out), "guide": str(secret), "inputs": {}})
    refused(run(runner, "dream", "--from", forged, "-o", tmp_path / "again.png", "-q"), "guide", "not beside")


# --- 2. a damaged recipe is one line ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "damage",
    [
        {"content": 5},
        {"inputs": [1, 2]},
        {"inputs": {"content.png": 5}},
        {"styles": [1]},
        {"styles": {"a": 1}},
        {"size": "big"},
        {"losses": 5},
        {"style_layers": 7},
        {"tv_weight": [1]},
        {"scales": {"x": 1}},
        "{not json",
        "[1, 2]",
        "null",
    ],
    ids=str,
)
def test_a_damaged_recipe_is_one_line(shared, runner, damage):
    picture, recipe = shared
    forged = forge(picture.with_name("damaged.png"), damage if isinstance(damage, str) else {**recipe, **damage})
    refused(run(runner, "transfer", "--from", forged, "-o", picture.with_name("again.png"), "-q"), "a damaged recipe")


@pytest.mark.parametrize(
    "damage", [{"inputs": [1, 2]}, {"content": 5}, {"size": "big"}, {"backbone": 3}, "{not json"], ids=str
)
def test_the_web_page_restores_no_damaged_recipe(shared, damage):
    from dreamstyle import web
    from dreamstyle.errors import ImageError

    picture, recipe = shared
    forged = forge(picture.with_name("damaged.png"), damage if isinstance(damage, str) else {**recipe, **damage})
    with pytest.raises(ImageError, match="damaged.png carries a damaged recipe"):
        web.restore(forged)


def test_a_picture_without_a_recipe_is_still_said_so(tmp_path, runner):
    plain = tmp_path / "plain.gif"
    Image.new("RGB", (8, 8)).save(plain, comment=b"made with another program {")
    refused(run(runner, "transfer", "--from", plain, "-o", tmp_path / "x.png"), "carries no dreamstyle recipe")


# --- 3. recipes name the weights file, not its folder ------------------------------------------------------


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    from dreamstyle.backbones import load_backbone

    path = tmp_path_factory.mktemp("alice") / "models" / "my.pth"
    path.parent.mkdir()
    torch.save(load_backbone("squeezenet1_1", weights="random").model.state_dict(), path)
    return path


def test_recipes_name_the_weights_file_only(images, tmp_path, runner, weights_file):
    net = [
        "--backbone",
        "squeezenet1_1",
        "--weights",
        weights_file,
        "--device",
        "cpu",
        "--size",
        "64",
        "--iterations",
        "1",
        "--seed",
        "0",
        "-q",
    ]
    folder = tmp_path / "photos"
    folder.mkdir()
    make_image(folder / "a.png", (64, 50))
    outputs = {"still": tmp_path / "o.png", "dream": tmp_path / "d.png", "folder": tmp_path / "styled"}
    assert run(runner, "transfer", *images, "-o", outputs["still"], *net).exit_code == 0
    assert run(runner, "dream", images[0], "-o", outputs["dream"], "--octaves", "1", *net).exit_code == 0
    assert run(runner, "transfer", folder, images[1], "-o", outputs["folder"], *net).exit_code == 0
    result = run(
        runner,
        "compare",
        *images,
        "--backbones",
        f"squeezenet1_1:weights={weights_file}",
        "-o",
        tmp_path / "cmp",
        *net[4:],
    )
    assert result.exit_code == 0, result.output
    for path in (*outputs.values(), tmp_path / "cmp" / "squeezenet1_1-my.png"):
        path = path / "a.png" if path.is_dir() else path
        recipe = read_recipe(path)
        assert recipe["weights"] == "my.pth" and "my.pth" in recipe["inputs"], path
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p.parent.name != "photos" and p not in images]
    assert len(written) == 7  # o.png, d.png, styled/a.png, compare.png, .json, .md and the backbone's picture
    for path in written:
        assert str(weights_file.parent).encode() not in path.read_bytes(), path
    again = tmp_path / "elsewhere"
    again.mkdir()
    for p in (outputs["still"], *images, weights_file):  # what a replay needs, side by side
        (again / p.name).write_bytes(p.read_bytes())
    result = run(runner, "transfer", "--from", again / "o.png", "-o", again / "again.png", "-q")
    assert result.exit_code == 0, result.output
    assert np.array_equal(np.asarray(Image.open(again / "again.png")), np.asarray(Image.open(outputs["still"])))
    full = tmp_path / "full.png"
    assert run(runner, "transfer", *images, "-o", full, *net, "--recipe", "full").exit_code == 0
    assert read_recipe(full)["weights"] == str(weights_file)  # asked for: the path as given


# --- 4. a loss term that fails: one line naming it, the best picture kept ------------------------------------


class Rude(FaultTerm):
    """A pixel term whose ``fault(calls, value)`` gives what ``forward`` returns (or raises, or exits)."""

    def forward(self, feats, image):
        self.calls += 1
        return self.fault(self.calls, (image**2).mean())


@pytest.fixture
def rude(host):
    made = {}

    class Plugin:
        @hookimpl
        def register_loss_terms(self, register):
            register(TermSpec("rude", "misbehaves", lambda: Rude(**made), default_weight=1.0))

    assert host.register(Plugin(), name="rude-plugin")
    return lambda **kwargs: made.update(kwargs)


def boom(exc):
    raise exc


@pytest.mark.parametrize(
    "act, words",
    [
        (lambda calls, v: sys.exit(3), "failed (it called sys.exit(3))"),
        (lambda calls, v: None, "returned None, not one number"),
        (lambda calls, v: v * float("nan"), "returned NaN or infinity on the starting picture"),
        (lambda calls, v: boom(RuntimeError("boom")), "failed (RuntimeError: boom)"),
        (lambda calls, v: v if calls < 4 else sys.exit(3), "failed (it called sys.exit(3))"),
        (lambda calls, v: v if calls < 4 else "a word", "returned 'a word', not one number"),
    ],
    ids=["exit", "none", "nan", "raise", "exit-later", "text-later"],
)
def test_a_loss_term_that_fails_is_named_and_the_best_picture_kept(images, tmp_path, runner, rude, act, words):
    rude(fault=act)
    out = tmp_path / "o.png"
    line = refused(
        run(runner, "transfer", *images, "-o", out, *FAST, "--iterations", "6", "--loss", "rude=1"),
        "loss term 'rude' (plugin 'rude-plugin')",
        words,
        str(out),
    )
    assert "the best image so far" in line
    with Image.open(out) as img:
        assert img.size == (40, 33)
    assert read_recipe(out)["stopped"] == "failed"


def test_a_divergence_only_one_term_shows_names_it(images, tmp_path, runner, rude):
    rude(fault=lambda calls, v: v if calls < 4 else v * float("nan"))
    out = tmp_path / "o.png"
    refused(
        run(runner, "transfer", *images, "-o", out, *FAST, "--iterations", "6", "--loss", "rude=1"),
        "NaN or infinite",
        "in loss term 'rude' (plugin 'rude-plugin')",
        "last good image",
        "--lr",
    )
    assert read_recipe(out)["stopped"] == "diverged"


def test_a_loss_term_that_fails_while_it_prepares_writes_nothing(images, tmp_path, runner, rude):
    rude(on_prepare=lambda ctx: sys.exit(4))
    out = tmp_path / "o.png"
    refused(
        run(runner, "transfer", *images, "-o", out, *FAST, "--loss", "rude=1"),
        "loss term 'rude' (plugin 'rude-plugin') failed (it called sys.exit(4)); nothing was written",
    )
    assert not out.exists()


def test_a_clip_keeps_the_frames_made_before_a_term_fails(images, tmp_path, runner, rude):
    frames = [make_image(tmp_path / f"f{i}.png", seed=i) for i in range(3)]
    clip = tmp_path / "clip.gif"
    Image.open(frames[0]).save(clip, save_all=True, append_images=[Image.open(f) for f in frames[1:]], duration=100)
    rude(fault=lambda calls, v: v if calls <= 6 else sys.exit(3))  # 3 evaluations a frame: the third one fails
    out = tmp_path / "styled"
    refused(
        run(runner, "transfer", clip, images[1], "-o", out, *FAST, "--loss", "rude=1", "--optimizer", "adam"),
        "loss term 'rude'",
        "sys.exit(3)",
        "the 2 of 3 frames done are in",
    )
    assert sorted(p.name for p in out.iterdir() if p.suffix == ".png") == ["frame_00001.png", "frame_00002.png"]


# --- 5. a step that overflows is a divergence ---------------------------------------------------------------


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs", "normalized"])
@pytest.mark.parametrize("lr", ["1e38", "1e300"])
def test_a_huge_learning_rate_keeps_the_last_good_picture(images, tmp_path, runner, optimizer, lr):
    out = tmp_path / "o.png"
    result = run(runner, "transfer", *images, "-o", out, *FAST, "--lr", lr, "--optimizer", optimizer)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    if result.exit_code:
        refused(result, "NaN or infinite", "last good image", "--lr")
        assert read_recipe(out)["stopped"] == "diverged"
    with Image.open(out) as img:
        assert img.size == (40, 33)


# --- 6. a value the user typed and dreamstyle cannot read is one line, never ignored ---------------------------


@pytest.mark.parametrize(
    "args, words",
    [
        (["transfer", "--loss", "tv="], "give a weight after '='"),
        (["transfer", "--loss", "::::"], "give the term's name first"),
        (["transfer", "--loss", ""], "--loss is empty"),
        (["transfer", "--loss", "tv=1,,content=1"], "has an empty item"),
        (["transfer", "--loss", "tv=1:layers="], "options are KEY=VALUE"),
        (["transfer", "--style-mask", ""], "--style-mask is empty"),
        (["transfer", "--style-mask", "1="], "give a mask file after '='"),
        (["transfer", "--style-mask", "99999999=m.png"], "style images count from 1"),
        (["transfer", "--content-layers", "relu1_1,,relu2_1"], "has an empty item"),
        (["transfer", "--style-blend", "1,"], "has an empty item"),
        (["transfer", "--scales", "32,,40"], "has an empty item"),
        (["transfer", "--init", ""], "--init is empty"),
        (["transfer", "--content-mask", ""], "--content-mask is empty"),
        (["transfer", "--weights", ""], "--weights is empty"),
        (["transfer", "--device", " "], "--device is empty"),
        (["dream", "--transforms", "jitter,,scale"], "has an empty item"),
        (["dream", "--guide", ""], "--guide is empty"),
        (["activations", "--layer", ""], "--layer is empty"),
        (["atlas", "--channels", "0-3,,5"], "has an empty item"),
        (["atlas", "--channels", "0-99999999"], "names 100,000,000 channels"),
        (["sweep", "--vary", "tv-weight=1,,2"], "has an empty item"),
        (["compare", "--backbones", "vgg19,,vgg16"], "has an empty item"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else "",
)
def test_a_value_that_cannot_be_read_is_one_line(images, tmp_path, runner, args, words):
    command, *options = args
    inputs = {"dream": images[:1], "activations": images[:1], "atlas": ["vgg19", "relu1_1"]}.get(command, images)
    out = tmp_path / ("out" if command in ("sweep", "compare") else "out.png")
    refused(
        run(
            runner,
            command,
            *inputs,
            "-o",
            out,
            "--weights",
            "random",
            "--device",
            "cpu",
            "--size",
            "40",
            "--iterations",
            "1",
            *options,
        ),
        words,
    )
    assert not out.exists()


def test_a_huge_channel_range_is_refused_before_it_is_listed():
    from dreamstyle.errors import OptionError
    from dreamstyle.settings import AtlasSettings

    with pytest.raises(OptionError, match="names 100,000,000 channels; a layer has at most 65,536"):
        AtlasSettings(layer="relu1_1", channels="0-99999999")
    with pytest.raises(OptionError, match="names 1,000,000,000 channels"):
        AtlasSettings(layer="relu1_1", channels=range(10**9))  # the Python API's range: not listed either


# --- 7. a plugin that hangs at import is named; Ctrl-C at any moment is 130 and one line -------------------------


def test_a_plugin_slow_to_load_is_named_while_it_loads(monkeypatch, caplog):
    import logging

    from dreamstyle import plugins

    class Sleepy:
        name, value, dist = "sleepy", "sleepy_plugin", None

        def load(self):
            time.sleep(1.0)
            return type("Empty", (), {})()

    monkeypatch.setattr(plugins, "SLOW_SECONDS", 0.2)
    monkeypatch.setattr(plugins.metadata, "entry_points", lambda group: [Sleepy()])
    with caplog.at_level(logging.WARNING, logger="dreamstyle.plugins"):
        plugins.PluginHost(load_entry_points=True)
    assert "still loading plugin 'sleepy' (sleepy_plugin) after 0.2 s; if it hangs, press Ctrl-C" in caplog.text


@pytest.fixture
def sleepy_site(tmp_path):
    """A folder for sys.path holding a distribution whose dreamstyle plugin imports torch (as a backbone
    plugin does: torch's exit hooks are then there) and then hangs."""
    site = tmp_path / "site"
    (site / "sleepy_plugin-0.1.dist-info").mkdir(parents=True)
    (site / "sleepy_plugin.py").write_text("import time\n\nimport torch  # noqa: F401\n\ntime.sleep(600)\n")
    (site / "sleepy_plugin-0.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: sleepy-plugin\nVersion: 0.1\n"
    )
    (site / "sleepy_plugin-0.1.dist-info" / "entry_points.txt").write_text("[dreamstyle]\nsleepy = sleepy_plugin\n")
    return site


@pytest.mark.parametrize("presses", [1, 3])
def test_ctrl_c_while_a_plugin_hangs_at_import_is_130_and_one_line(sleepy_site, tmp_path, presses):
    err = tmp_path / "stderr.txt"
    env = {
        **os.environ,
        "DREAMSTYLE_DISABLE_PLUGIN_AUTOLOAD": "",
        "PYTHONPATH": os.pathsep.join([str(sleepy_site), os.environ.get("PYTHONPATH", "")]),
    }
    with open(err, "w") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dreamstyle", "backbones"],
            stderr=fh,
            stdout=subprocess.PIPE,
            env=env,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
    try:
        deadline = time.monotonic() + 120
        while "still loading plugin 'sleepy'" not in err.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, err.read_text()
            time.sleep(0.1)
        for _ in range(presses):
            proc.send_signal(signal.SIGINT)
            time.sleep(0.05)
        proc.communicate(timeout=60)
    finally:
        proc.kill()
    lines = err.read_text().strip().splitlines()
    assert proc.returncode == 130, lines
    assert lines == [
        "dreamstyle: still loading plugin 'sleepy' (sleepy_plugin, from sleepy-plugin 0.1) after 3 s; if "
        "it hangs, press Ctrl-C and uninstall sleepy-plugin (or set DREAMSTYLE_DISABLE_PLUGIN_AUTOLOAD=1)",
        "dreamstyle: interrupted while plugin 'sleepy' (sleepy_plugin, from sleepy-plugin 0.1) loaded; "
        "nothing was written",
    ]


@pytest.mark.parametrize("command", [["backbones"], ["transfer", "a.png", "b.png", "-o", "o.png"]])
def test_ctrl_c_before_any_work_is_130_and_one_line(runner, monkeypatch, command):
    """Ctrl-C while the plugins load (or torch imports): not click's "Aborted!" and exit 1."""
    from dreamstyle import plugins

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(plugins, "get_host", interrupted)
    result = run(runner, *command)
    assert result.exit_code == 130 and result.output == "dreamstyle: interrupted; nothing was written\n"


# --- 8. the web page answers a value it does not offer in its own line (the server's log: tests/test_web.py) --


@pytest.mark.parametrize(
    "change, words",
    [
        ({"content_sample": "../../../../etc/passwd"}, "there is no sample image '../../../../etc/passwd'"),
        ({"content_sample": [{"path": "/etc/passwd"}]}, "there is no sample image {'path': '/etc/passwd'}"),
        ({"backbone": "../x"}, "unknown backbone '../x'"),
        ({"backbone": 5}, "backbone 5: not a backbone's name"),
        ({"weights": "/etc/passwd"}, "weights: choose pretrained or random, not '/etc/passwd'"),
        ({"style_layers": [5]}, "style layers: [5] is not a list of layer names"),
        ({"size": 1e9}, "goes from 1 to 2048 on the page, not 1e+09"),
        ({"size": "big"}, "--size must be a whole number"),
        ({"seed": [1]}, "--seed must be a whole number"),
    ],
    ids=lambda v: str(v) if isinstance(v, dict) else "",
)
def test_the_page_refuses_what_it_does_not_offer_in_one_line(images, change, words):
    from dreamstyle import web
    from dreamstyle.errors import UserError

    form = {
        "content_upload": None,
        "content_sample": "chelsea.png",
        "styles_upload": [str(images[1])],
        "backbone": "vgg19",
        "weights": "random",
        "size": 48,
        "iterations": 2,
        "seed": "7",
        **change,
    }
    with pytest.raises(UserError) as refused_here:
        web.settings_from_form("transfer", form)
    assert words in str(refused_here.value)
