"""What a user sees while a run goes: what loads before the first step, the seed drawn, one estimate
of the time left for the whole run (none before it can be made), sparse lines off a terminal, the
files written, the hints (issue 29: time and progress, settings that will show nothing)."""

import json
import re
from types import SimpleNamespace

import pytest
from helpers import make_image

from dreamstyle.cli import main, progress
from dreamstyle.engine import StepEvent
from dreamstyle.hints import ADAM_FEW, RULES, adam_at_default_rate, hints, short_visualization, visualization_steps
from dreamstyle.settings import ActivationsSettings, AtlasSettings, DreamSettings, TransferSettings
from dreamstyle.writers import read_recipe

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = ["--weights", "random", "--device", "cpu", "--size", "40"]


@pytest.fixture
def images(tmp_path):
    return make_image(tmp_path / "content.png"), make_image(tmp_path / "style.png", (44, 44), 1, "stripes")


def transfer(runner, images, out, *extra):
    return runner.invoke(main, ["transfer", str(images[0]), str(images[1]), "-o", str(out), *FAST, *map(str, extra)])


def step_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if re.search(r"\bit \d+/\d+", line)]


class FakeClock:
    """progress.clock, moved by hand: estimates without timings."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(progress, "clock", fake)
    return fake


def event(iteration, iterations, size=(10, 10), stage=1, stages=1, logged=True):
    e = StepEvent(iteration, iterations, stage, stages, size)
    if logged:
        e.losses, e.total = {"style": 1.0}, 1.0
    return e


# --- before the first step ----------------------------------------------------------------------------------


def test_what_loads_and_the_seed_drawn_come_before_the_first_step(runner, images, tmp_path):
    out = tmp_path / "o.png"
    result = transfer(runner, images, out, "--iterations", "3")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    seed = read_recipe(out)["seed"]
    said = [
        i for i, line in enumerate(lines) if line == f"dreamstyle: seed {seed} (add --seed {seed} to repeat this run)"
    ]
    loads = [
        i
        for i, line in enumerate(lines)
        if line.startswith(
            "dreamstyle: loading vgg19 (random weights) and computing the style targets (1 style image) at 40x"
        )
    ]
    first_step = lines.index(step_lines(result.output)[0])
    assert len(said) == 1 and len(loads) == 1 and said[0] < loads[0] < first_step, result.output


def test_a_given_seed_is_not_repeated_and_quiet_says_nothing(runner, images, tmp_path):
    result = transfer(runner, images, tmp_path / "a.png", "--iterations", "2", "--seed", "4")
    assert result.exit_code == 0 and "dreamstyle: seed" not in result.output and "loading vgg19" in result.output
    result = transfer(runner, images, tmp_path / "b.png", "--iterations", "2", "-q")
    assert result.exit_code == 0 and result.output == ""


def test_a_refusal_stays_one_line_without_the_seed_or_what_loads(runner, images, tmp_path):
    result = transfer(runner, images, tmp_path / "o.png", "--iterations", "2", "--size", "8")
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1, result.output


# --- lines off a terminal -------------------------------------------------------------------------------------


def test_off_a_terminal_the_default_is_about_a_tenth_of_the_steps(runner, images, tmp_path):
    result = transfer(runner, images, tmp_path / "o.png", "--iterations", "30", "--seed", "0")
    assert result.exit_code == 0, result.output
    its = [int(re.search(r"\bit (\d+)/30", line)[1]) for line in step_lines(result.output)]
    assert its == [1, 3, 6, 9, 12, 15, 18, 21, 24, 27, 30]


def test_log_every_given_prints_every_logged_step(runner, images, tmp_path):
    result = transfer(runner, images, tmp_path / "o.png", "--iterations", "30", "--seed", "0", "--log-every", "7")
    its = [int(re.search(r"\bit (\d+)/30", line)[1]) for line in step_lines(result.output)]
    assert its == [7, 14, 21, 28, 30]


def test_no_eta_until_it_can_be_estimated_nor_after_the_end(runner, images, tmp_path):
    result = transfer(runner, images, tmp_path / "o.png", "--iterations", "12", "--seed", "0", "--log-every", "1")
    lines = step_lines(result.output)
    assert "eta" not in lines[0] and "eta" not in lines[-1]
    first_eta = next(i for i, line in enumerate(lines) if "eta" in line)
    assert first_eta == progress.MIN_TIMED  # steps 2, 3 and 4 timed: the first one shown is step 4's


def test_sparse_lines_rule():
    shown = [i for i in range(1, 201) if progress.shown_off_terminal(event(i, 200), False)]
    assert shown[0] == 1 and shown[-1] == 200 and len(shown) == 11  # 1, 20, 40, ... 200
    assert not progress.shown_off_terminal(event(5, 200, logged=False), True)
    assert progress.shown_off_terminal(event(5, 200), True)


# --- one estimate for the whole run -------------------------------------------------------------------------


def test_the_estimate_covers_every_stage_weighed_by_its_pixels(clock, capsys):
    """Two scales, 10 steps each, the second with 4x the pixels, its steps 4 ** STEP_COST times as long:
    after the first stage the time left is the second stage's, not the first's rate times 10 steps."""
    p = progress.Progress(20, stages=[(10, (10, 10)), (10, (20, 20))])
    longer = 4**progress.STEP_COST
    for i in range(1, 11):
        clock.now += 1.0
        p(event(i, 10, (10, 10), 1, 2))
    assert p.estimate.left() == pytest.approx(10 * longer)
    for i in range(1, 11):
        clock.now += longer
        p(event(i, 10, (20, 20), 2, 2))
    assert p.estimate.eta() == ""  # done: no estimate


def test_the_estimate_waits_for_timed_steps(clock):
    e = progress.Estimate()
    e.update(0.1)  # the first step: the clock starts
    assert e.left() is None and e.eta() == ""
    for k in range(2, progress.MIN_TIMED + 2):
        clock.now += 2.0
        e.update(0.1 * k)
        assert (e.left() is None) == (k <= progress.MIN_TIMED)
    assert e.left() == pytest.approx(2.0 * (1 - 0.1 * (progress.MIN_TIMED + 1)) / 0.1)


def test_a_long_run_says_how_long_once_with_a_smaller_size(clock, capsys):
    p = progress.Progress(100, budget={"device": "CPU", "flag": "--size 256", "ratio": 0.25})
    for i in range(1, 101):
        clock.now += 3.6  # 100 steps of 3.6 s: 6 min
        p(event(i, 100, (512, 384)))
    err = capsys.readouterr().err
    budget = [line for line in err.splitlines() if "this run takes" in line]
    assert budget == [
        "dreamstyle: this run takes about 6 min on this CPU (estimated from its first steps); "
        "--size 256 would take about 1 min 30 s"
    ]


def test_a_long_folder_says_how_long_after_its_first_image(clock, capsys):
    p = progress.FrameProgress(10, False, "images", budget={"device": "GPU", "flag": "--size 256", "ratio": 0.25})
    p.step(event(1, 2))
    for name in "abc":
        clock.now += 40.0
        p.frame(SimpleNamespace(name=name, losses={"total": 1.0}))
    lines = [line for line in capsys.readouterr().err.splitlines() if "this run takes" in line]
    assert lines == [
        "dreamstyle: this run takes about 6 min 30 s on this GPU (estimated from the first image); "
        "--size 256 would take about 1 min 30 s"
    ]


def test_a_short_run_says_nothing_of_its_length(clock, capsys):
    p = progress.Progress(100, budget={"device": "CPU", "flag": "--size 256", "ratio": 0.25})
    for i in range(1, 101):
        clock.now += 0.1
        p(event(i, 100, (512, 384)))
    assert "this run takes" not in capsys.readouterr().err


def test_the_smaller_size_suggested():
    from dreamstyle.cli.run import budget

    job = SimpleNamespace(device=SimpleNamespace(type="cpu"), backbone=SimpleNamespace(min_size=32))
    assert budget(SimpleNamespace(size=512, scales=None), job) == {
        "device": "CPU",
        "flag": "--size 256",
        "ratio": pytest.approx(0.25**0.8),
    }
    assert budget(SimpleNamespace(size=(512, 768)), job)["flag"] == "--size 256x384"  # a texture's WxH
    assert budget(SimpleNamespace(size=512, scales=(256, 512)), job) == {"device": "CPU"}  # sizes of its own
    assert budget(SimpleNamespace(size=200, scales=2), job) == {"device": "CPU"}  # half would be too small


def test_about():
    assert [progress.about(s) for s in (4, 42, 59.9, 61, 89, 359, 1250, 7800)] == [
        "about 4 s",
        "about 40 s",
        "about 60 s",
        "about 1 min",
        "about 1 min 30 s",
        "about 6 min",
        "about 21 min",
        "about 2 h 10 min",
    ]


# --- frames, images, cells ------------------------------------------------------------------------------------


def test_items_keep_one_unit_and_count_what_was_skipped(clock, capsys):
    p = progress.FrameProgress(4, False, "images")
    p.step(event(1, 2))
    for name, seconds in (("a", 0.5), ("b", 30.0)):
        clock.now += seconds
        p.frame(SimpleNamespace(name=name, losses={"total": 1.0}))
    p.skip("bad.png")
    clock.now += 1.0
    p.frame(SimpleNamespace(name="d", losses={"total": 1.0}))
    lines = [line for line in capsys.readouterr().err.splitlines() if " it " not in line]
    assert lines[0].startswith("a done (1/4)") and "0.5 s/image" in lines[0]
    assert lines[1].startswith("b done (2/4)") and "15.2 s/image" in lines[1]
    assert lines[2] == "bad.png skipped (3/4, 1 skipped)"
    assert lines[3].startswith("d done (4/4, 1 skipped)") and "10.5 s/image" in lines[3] and "eta" not in lines[3]
    assert all("images/s" not in line for line in lines)


def test_an_item_faster_than_a_tenth_of_a_second_shows_its_time(clock, capsys):
    p = progress.FrameProgress(3, False, "frames")
    p.step(event(1, 2))
    for name in ("a", "b"):
        clock.now += 0.012
        p.frame(SimpleNamespace(name=name, losses={"total": 1.0}))
    lines = [line for line in capsys.readouterr().err.splitlines() if " it " not in line]
    assert "0.012 s/frame" in lines[1] and "0.0 s/frame" not in lines[1], lines


def test_a_folder_counts_a_file_it_cannot_read(runner, images, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    make_image(folder / "a.png")
    (folder / "b.png").write_text("not a picture")
    make_image(folder / "c.png", seed=2)
    result = runner.invoke(
        main,
        [
            "transfer",
            str(folder),
            str(images[1]),
            "-o",
            str(tmp_path / "out"),
            *FAST,
            "--iterations",
            "2",
            "--seed",
            "0",
        ],
    )
    lines = result.output.splitlines()
    assert "b.png skipped (1/3, 1 skipped)" in lines, result.output
    done = [line.split("  ")[0] for line in lines if " done (" in line]
    assert done == ["a done (2/3, 1 skipped)", "c done (3/3, 1 skipped)"], result.output


# --- what was written ----------------------------------------------------------------------------------------


def test_wrote_names_the_gif(runner, images, tmp_path):
    out, gif = tmp_path / "o.png", tmp_path / "o.gif"
    result = transfer(runner, images, out, "--iterations", "2", "--seed", "0", "--gif", gif)
    assert result.exit_code == 0 and result.output.splitlines()[-1] == f"wrote {out} and {gif}", result.output


# --- Ray's own warnings -----------------------------------------------------------------------------------


def test_a_local_ray_asks_for_token_authentication_itself_so_ray_does_not_warn(monkeypatch):
    import logging
    import os

    from dreamstyle import executors

    for name in ("RAY_AUTH_MODE", "RAY_ADDRESS"):  # set, then removed: monkeypatch restores them as they were
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    executors._authenticate_as_ray_start(None)
    assert os.environ["RAY_AUTH_MODE"] == "token"  # Ray's default for a local instance, asked for
    for name in executors.RAY_QUIET_LOGGERS:
        assert logging.getLogger(name).getEffectiveLevel() >= logging.ERROR
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    executors._authenticate_as_ray_start(None)
    assert os.environ["RAY_AUTH_MODE"] == "disabled"  # the user's choice stays


# --- hints -------------------------------------------------------------------------------------------------


def test_every_rule_is_tested():
    assert {rule.__name__ for rule in RULES} == {"adam_at_default_rate", "short_visualization"}


def test_adam_at_its_default_rate_for_few_steps_hints_lbfgs():
    s = TransferSettings(content="c.png", styles=("s.png",), iterations=30, optimizer="adam")
    line = adam_at_default_rate("transfer", s, "adam")
    assert "--optimizer lbfgs" in line and "30 steps" in line
    assert adam_at_default_rate("transfer", s.replace(iterations=ADAM_FEW), "adam") is None
    assert adam_at_default_rate("transfer", s.replace(lr=20.0), "adam") is None  # a rate of one's own
    assert adam_at_default_rate("transfer", s.replace(optimizer="lbfgs"), "lbfgs") is None
    assert adam_at_default_rate("dream", s, "adam") is None


def test_a_visualization_with_far_fewer_steps_than_its_default_hints_more():
    default = visualization_steps()
    atlas = AtlasSettings(backbone="vgg19", layer="relu4_1", channels=(0,), iterations=10)
    assert f"take {default} by default" in short_visualization("atlas", atlas, None)
    assert short_visualization("atlas", atlas.replace(iterations=default), None) is None
    act = ActivationsSettings(image="x.png", iterations=8)
    assert short_visualization("activations", act, None) is not None
    assert short_visualization("activations", act.replace(cell=0), None) is None  # no visualizations
    dream = DreamSettings(init="noise", octaves=1, iterations=10)
    assert f"--iterations {default} --octaves 1" in short_visualization("dream", dream, None)
    assert short_visualization("dream", DreamSettings(init="noise"), None) is None  # its defaults: 4 x 10
    assert short_visualization("dream", DreamSettings(input="x.png", octaves=1, iterations=2), None) is None
    assert hints("texture", SimpleNamespace(optimizer=None)) == []


def test_the_cli_prints_a_hint_once_the_checks_are_done(runner, images, tmp_path):
    result = transfer(runner, images, tmp_path / "o.png", "--iterations", "3", "--seed", "0", "--optimizer", "adam")
    assert result.exit_code == 0
    assert [line for line in result.output.splitlines() if line.startswith("dreamstyle: hint: Adam")], result.output
    result = transfer(runner, images, tmp_path / "p.png", "--iterations", "3", "--seed", "0")
    assert "dreamstyle: hint" not in result.output


def test_activations_say_what_their_cells_cost_and_show_progress_for_them(runner, images, tmp_path):
    result = runner.invoke(
        main,
        [
            "activations",
            str(images[0]),
            "--layer",
            "relu1_1",
            "-o",
            str(tmp_path / "a.png"),
            "--top",
            "2",
            "--cell",
            "32",
            "--iterations",
            "2",
            "--size",
            "40",
            "--weights",
            "random",
            "--device",
            "cpu",
            "--json",
            str(tmp_path / "a.json"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "drawing each of the top 2 channels from noise: 2 cells of 32 px, 2 steps each" in result.output
    assert any(line.startswith("cells 1-2 of 2  it 2/2") for line in result.output.splitlines()), result.output
    assert "dreamstyle: hint: a visualization from noise mostly stays grey in 2 steps" in result.output
    seed = re.search(r"dreamstyle: seed (\d+)", result.output)
    assert seed and json.loads((tmp_path / "a.json").read_text()) is not None
