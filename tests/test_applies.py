"""Where an option applies (dreamstyle.applies): for each kind of input, an option that does not apply
is refused in one line, before any work, by the command line and by the Python API alike; one that
applies is taken. The runs themselves are stubbed out: only the refusal is under test here."""

import importlib

import pytest
from helpers import make_image
from PIL import Image

import dreamstyle
from dreamstyle import api, sequence
from dreamstyle.applies import EVERYWHERE, KINDS, only, refuse, where
from dreamstyle.cli import main
from dreamstyle.errors import OptionError
from dreamstyle.settings import DreamSettings, TextureSettings, TransferSettings

cli_run = importlib.import_module("dreamstyle.cli.run")  # (dreamstyle.cli.run is also a function's name)


@pytest.fixture
def inputs(tmp_path):
    photo = make_image(tmp_path / "photo.png")
    style = make_image(tmp_path / "style.png", seed=1, kind="stripes")
    frames = [Image.open(photo).convert("RGB").rotate(5 * i) for i in range(3)]
    clip = tmp_path / "clip.gif"
    frames[0].save(clip, save_all=True, append_images=frames[1:], duration=100)
    folder = tmp_path / "stills"
    folder.mkdir()
    make_image(folder / "a.png")
    video = tmp_path / "walk.mp4"
    video.write_bytes(b"")  # a video by its name: refused or taken before it is opened
    return {"still": photo, "style": style, "clip": clip, "folder": folder, "video": video, "zoom": photo}


@pytest.fixture
def ran(monkeypatch):
    """The command's run, stubbed: which kind of input it was given."""
    kinds = []
    for name, kind in (("run_still", "still"), ("run_clip", "clip"), ("run_folder", "folder"), ("run_zoom", "zoom")):
        monkeypatch.setattr(cli_run, name, lambda *a, kind=kind: kinds.append(kind))
    return kinds


# kind -> (command, extra arguments, an option that does not apply, one that does)
CLI = {
    "still": ("transfer", [], ["--batch", "2"], ["--tv-weight", "5"]),
    "clip": ("transfer", [], ["--save-every", "2"], ["--temporal-weight", "5"]),
    "video": ("dream", [], ["--gif", "x.gif"], ["--start", "1"]),
    "folder": ("transfer", [], ["--fps", "5"], ["--batch", "2"]),
    "zoom": ("dream", ["--zoom-frames", "3"], ["--batch", "2"], ["--fps", "5"]),
}


def invoke(runner, inputs, tmp_path, kind, option):
    command, extra, _, _ = CLI[kind]
    output = tmp_path / (
        "out"
        if kind == "folder"
        else "out.mp4"
        if kind in ("video", "zoom")
        else "out.gif"
        if kind == "clip"
        else "out.png"
    )
    styles = [str(inputs["style"])] if command == "transfer" else []
    return runner.invoke(
        main, [command, str(inputs[kind]), *styles, "-o", str(output), "--weights", "random", *extra, *option]
    )


@pytest.mark.parametrize("kind", sorted(CLI))
def test_the_command_line_refuses_an_option_that_does_not_apply_in_one_line(kind, inputs, tmp_path, runner, ran):
    refused = CLI[kind][2]
    result = invoke(runner, inputs, tmp_path, kind, refused)
    lines = [line for line in result.output.splitlines() if refused[0] in line]
    assert result.exit_code == 2 and not ran, result.output
    assert len(lines) == 1 and lines[0].startswith("Error: ") and " goes with " in lines[0], result.output


@pytest.mark.parametrize("kind", sorted(CLI))
def test_the_command_line_takes_an_option_that_applies(kind, inputs, tmp_path, runner, ran):
    result = invoke(runner, inputs, tmp_path, kind, CLI[kind][3])
    assert result.exit_code == 0, result.output
    assert ran == ["clip" if kind == "video" else kind]


@pytest.fixture
def api_runs(monkeypatch):
    """The API's runs, stubbed (no backbone is loaded): which ran."""
    kinds = []
    monkeypatch.setattr(api, "_still", lambda *a, **k: kinds.append("still"))
    monkeypatch.setattr(api, "TransferJob", lambda *a, **k: None)
    monkeypatch.setattr(api.Session, "for_settings", lambda *a, **k: None)
    monkeypatch.setattr(sequence, "run_clip", lambda *a, **k: kinds.append("clip"))
    monkeypatch.setattr(sequence, "run_folder", lambda *a, **k: kinds.append("folder"))
    monkeypatch.setattr(api, "compare_backbones", lambda *a, **k: kinds.append("grid"))
    return kinds


# kind -> (the API call, an option that does not apply, one that does)
API = {
    "still": (
        lambda i, **o: dreamstyle.transfer(str(i["still"]), [str(i["style"])], **o),
        {"batch": 2},
        {"tv_weight": 5.0},
    ),
    "clip": (
        lambda i, **o: dreamstyle.transfer_clip(str(i["clip"]), [str(i["style"])], **o),
        {"executor": "local"},
        {"temporal_weight": 5.0},
    ),
    "video": (
        lambda i, **o: dreamstyle.transfer_clip(str(i["video"]), [str(i["style"])], **o),
        {"workers": 2},
        {"start": 1.0},
    ),
    "folder": (
        lambda i, **o: dreamstyle.transfer_folder(str(i["folder"]), [str(i["style"])], **o),
        {"temporal_init": 0.5},
        {"batch": 2},
    ),
    "grid": (
        lambda i, **o: dreamstyle.compare(str(i["still"]), [str(i["style"])], "vgg19", **o),
        {"fps": 5.0},
        {"executor": "local"},
    ),
}


@pytest.mark.parametrize("kind", sorted(API))
def test_the_api_refuses_an_option_that_does_not_apply_in_one_line(kind, inputs, api_runs):
    call, refused, _ = API[kind]
    with pytest.raises(OptionError) as caught:
        call(inputs, **refused)
    flag = "--" + next(iter(refused)).replace("_", "-")
    assert str(caught.value).startswith(f"{flag} goes with ") and "\n" not in str(caught.value)
    assert not api_runs


@pytest.mark.parametrize("kind", sorted(API))
def test_the_api_takes_an_option_that_applies(kind, inputs, api_runs):
    call, _, taken = API[kind]
    call(inputs, **taken)
    assert api_runs == ["clip" if kind == "video" else kind]


def test_the_api_refuses_what_the_command_line_refuses(inputs, runner, tmp_path, ran, api_runs):
    """The same option for the same input: the same line (the command line's after "Error: ")."""
    result = invoke(runner, inputs, tmp_path, "still", ["--batch", "2"])
    with pytest.raises(OptionError) as caught:
        dreamstyle.transfer(str(inputs["still"]), [str(inputs["style"])], batch=2)
    assert f"Error: {caught.value}" in result.output


def test_a_dream_still_option_is_refused_for_a_clip_by_the_api(inputs, api_runs, monkeypatch):
    monkeypatch.setattr(api, "DreamJob", lambda *a, **k: None)
    with pytest.raises(
        OptionError,
        match="--init goes with a single image, --zoom-frames, compare or sweep, not "
        "with a clip: a clip or folder has images to start from",
    ):
        dreamstyle.dream_clip(str(inputs["clip"]), "relu3_1", init="noise")


def test_every_option_declares_known_kinds_and_each_job_takes_the_kinds_it_names():
    for cls in (TransferSettings, DreamSettings, TextureSettings):
        assert set(cls.INPUTS) <= set(KINDS)
        for name, (flag, applies) in cls.applicability().items():
            assert applies.kinds <= set(KINDS) and applies.kinds & set(cls.INPUTS), (cls.KIND, name)


def test_refuse_names_the_option_where_it_goes_and_what_was_given():
    options = {"crf": ("--crf", only("clip", "video", where="a video output")), "seed": ("--seed", EVERYWHERE)}
    refuse(options, ["seed", "crf"], "clip")
    with pytest.raises(OptionError, match=r"^--crf goes with a video output, not with a single image \(a.png\)$"):
        refuse(options, ["seed", "crf"], "still", "a.png")
    assert where(only("folder", "grid")) == "a folder of still images, compare or sweep"
    assert where(only("clip", "video", "zoom"), offered=("still", "clip", "video")) == "a clip"


def test_a_sweep_refuses_to_vary_what_a_cell_does_not_take():
    from dreamstyle.jobs.sweep import parse_axes

    with pytest.raises(
        OptionError, match="--vary batch: --batch goes with a clip or a folder of still images, not with a single image"
    ):
        parse_axes(TransferSettings, (("batch", ("1", "2")),))
    assert parse_axes(TransferSettings, (("style-weight", ("1", "2")),))[0].name == "style_weight"


def test_the_output_options_are_declared_once():
    """Every command's output options are made from the fields of Outputs: the same defaults (--recipe's
    is names, for a command and for Outputs made in code) and the same kinds of input."""
    from dreamstyle.cli.options import Outputs, output_applicability, output_options

    fields = {f.name: f for f in Outputs.fields()}
    for option in output_options():
        assert option.name in fields and (option.required or option.default == fields[option.name].default)
    assert Outputs(output="o.png").recipe == "names" == fields["recipe"].default
    assert output_applicability()["crf"][0] == "--crf" and "still" not in output_applicability()["crf"][1]
