"""The engine: every step counts (the last one too), L-BFGS's first step, precision on the CPU."""

import numpy as np
import pytest
import torch
from helpers import make_image
from PIL import Image

import dreamstyle
from dreamstyle import engine, optimizers, runtime, transfer_clip
from dreamstyle.cli import main
from dreamstyle.clips import Clip
from dreamstyle.errors import OptionError
from dreamstyle.images import to_tensor
from dreamstyle.writers import read_recipe

FAST = dict(weights="random", size=40, seed=0, device="cpu")


@pytest.fixture
def images(tmp_path):
    return make_image(tmp_path / "content.png"), make_image(tmp_path / "style.png", (44, 44), 1, "stripes")


def quadratic(target):
    def evaluate(image):
        value = ((image - target) ** 2).mean() * 1e8
        return value, value.reshape(1)

    return evaluate


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam", "normalized"])
def test_one_iteration_returns_the_image_after_the_step(optimizer):
    """The image after the last step is measured, so one step is never thrown away."""
    torch.manual_seed(0)
    init, target = torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8)
    result = engine.optimize(
        init, engine.Problem(["q"], evaluate=quadratic(target)), engine.Steps(1, optimizer, lr=1.0)
    )
    before = float(quadratic(target)(init)[0])
    assert not torch.equal(result.image, init)
    assert result.best_loss < before and result.history[-1]["total"] == pytest.approx(result.best_loss)


def test_a_worse_last_step_does_not_win():
    """Every image is measured before it can be returned: steps that overshoot lose to the start."""
    init = torch.full((1, 3, 4, 4), 0.5)

    def evaluate(image):  # lowest at 0.4; each fixed step of 0.25 lands 0.15 from it, farther than the start
        value = ((image - 0.4) ** 2).sum()
        return value, value.reshape(1)

    result = engine.optimize(init, engine.Problem(["q"], evaluate=evaluate), engine.Steps(3, "normalized", 0.25 * 255))
    assert torch.allclose(result.image, init)
    assert result.history[1]["total"] > result.best_loss  # it measured worse steps
    assert result.history[-1]["total"] == result.best_loss  # the last line reports the picture returned


def _first_lbfgs_step(scale, init, target):
    p = (init * 255).requires_grad_(True)
    opt = optimizers.make_optimizer("lbfgs", [p], None)

    def closure():
        opt.zero_grad()
        loss = ((p / 255 - target) ** 2).mean() * scale
        loss.backward()
        return loss

    before = float(closure().detach())
    opt.step(closure)
    assert opt.param_groups[0]["lr"] == 1.0 and opt.param_groups[0]["line_search_fn"] is None  # later: torch's
    return (p.detach() / 255 - init).abs().mean().item() * 255, float(closure().detach()), before


def test_lbfgs_first_step_moves_pixels_and_the_line_search_keeps_it_a_descent():
    """torch sizes the first step 1/|g|_1, which on a 1e8 loss moves pixels by ~1e-5 (0-255 units):
    too little to measure the curvature. Ours starts from a guess of LBFGS_FIRST_STEP px, and a line
    search shortens it where it overshoots (a stiff loss) or lengthens it where it is too timid."""
    torch.manual_seed(0)
    init, target = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    for scale in (1e8, 1e2):
        moved, after, before = _first_lbfgs_step(scale, init, target)
        assert moved > 1.0 and after < 0.8 * before, (scale, moved, after, before)
    target = init + 0.004  # one pixel step away: the 8 px guess overshoots and is shortened
    moved, after, before = _first_lbfgs_step(1e8, init, target)
    assert moved < optimizers.LBFGS_FIRST_STEP and after < 0.1 * before


def test_one_iteration_of_transfer_and_dream_changes_the_image(images):
    content, style = images
    result = dreamstyle.transfer(content, style, iterations=1, **FAST)
    start = to_tensor(Image.open(content).convert("RGB"), result.image.size)
    assert (result.tensor - start).abs().mean() * 255 > 0.5
    dream = dreamstyle.dream(content, "relu3_1", octaves=1, iterations=1, jitter=0, **FAST)
    assert (dream.tensor - start).abs().mean() * 255 > 0.1


def test_the_written_output_equals_the_final_snapshot(images, tmp_path, runner):
    content, style = images
    out = tmp_path / "out.png"
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
            "40",
            "--iterations",
            "4",
            "--save-every",
            "2",
            "--device",
            "cpu",
            "--seed",
            "0",
            "-q",
        ],
    )
    assert result.exit_code == 0, result.output
    last = tmp_path / "out_00004.png"
    assert np.array_equal(np.asarray(Image.open(out)), np.asarray(Image.open(last)))


def test_a_three_iteration_clip_follows_the_contents_motion():
    """Warm-started frames start from the previous output carried along the content's change, and
    their steps count: the bright square moves in the output as it moves in the content."""
    frames = []
    for i in range(4):
        a = np.full((40, 64, 3), 30, np.uint8)
        a[12:28, 8 + 10 * i : 24 + 10 * i] = 230
        frames.append(Image.fromarray(a))
    style = Image.fromarray(np.tile(np.array([[0], [255]], np.uint8), (20, 40))[..., None].repeat(3, 2))
    result = transfer_clip(
        Clip(frames, [100] * 4, 0, [f"f{i}" for i in range(4)]), [style], iterations=3, **{**FAST, "size": 64}
    )

    def corr(a, b):
        a, b = np.asarray(a, float).mean(2).ravel(), np.asarray(b, float).mean(2).ravel()
        return np.corrcoef(a, b)[0, 1]

    for k in range(1, 4):  # each output frame matches its own content frame better than the one before
        assert corr(result.frames[k], frames[k]) > corr(result.frames[k], frames[k - 1]) + 0.1


def test_auto_precision_on_the_cpu_is_bf16_where_it_runs_natively(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(runtime, "cpu_runs_bf16", lambda: True)
    assert runtime.amp_dtype(cpu, "auto") is torch.bfloat16
    monkeypatch.setattr(runtime, "cpu_runs_bf16", lambda: False)
    assert runtime.amp_dtype(cpu, "auto") is None
    assert runtime.amp_dtype(cpu, "bf16") is torch.bfloat16 and runtime.amp_dtype(cpu, "fp32") is None


def test_fp16_on_the_cpu_is_refused_naming_bf16(images, tmp_path, runner):
    with pytest.raises(OptionError, match="bf16"):
        runtime.amp_dtype(torch.device("cpu"), "fp16")
    content, style = images
    result = runner.invoke(
        main,
        [
            "transfer",
            str(content),
            str(style),
            "-o",
            str(tmp_path / "o.png"),
            "--weights",
            "random",
            "--size",
            "40",
            "--iterations",
            "1",
            "--device",
            "cpu",
            "--precision",
            "fp16",
        ],
    )
    assert result.exit_code == 1 and "--precision bf16" in result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "o.png").exists()


def test_the_recipe_says_which_precision_ran(images, tmp_path, runner, monkeypatch):
    content, style = images
    for native, expected in ((True, "bfloat16"), (False, "fp32")):
        monkeypatch.setattr(runtime, "cpu_runs_bf16", lambda: native, raising=False)
        out = tmp_path / f"{expected}.png"
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
                "40",
                "--iterations",
                "1",
                "--device",
                "cpu",
            ],
        )
        assert result.exit_code == 0, result.output
        assert read_recipe(out)["precision"] == "auto" and read_recipe(out)["precision_used"] == expected


def test_progress_without_a_terminal_is_a_plain_line_every_log_every_steps(images, tmp_path, runner):
    content, style = images
    result = runner.invoke(
        main,
        [
            "transfer",
            str(content),
            str(style),
            "-o",
            str(tmp_path / "o.png"),
            "--weights",
            "random",
            "--size",
            "40",
            "--iterations",
            "4",
            "--log-every",
            "2",
            "--device",
            "cpu",
            "--scales",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if " it " in line]
    assert [line.split("  ")[:2] for line in lines] == [
        ["scale 1/2 20x17", "it 2/4"],
        ["scale 1/2 20x17", "it 4/4"],
        ["scale 2/2 40x33", "it 2/4"],
        ["scale 2/2 40x33", "it 4/4"],
    ]
    assert all("total " in line and "style " in line and "elapsed " in line for line in lines)
    # one estimate for the whole run, once a few steps are timed (not at the first line), none at the end
    assert "eta " not in lines[0] and "eta " in lines[2] and "eta " not in lines[-1]


@pytest.mark.parametrize("size", [8, 32, 128])
def test_total_variation_does_not_depend_on_the_image_size(size):
    """The TV weight means the same at every size: stripes a pixel wide cost 255 (0-255 units)."""
    from dreamstyle.terms import TVLoss

    stripes = (torch.arange(size) % 2).float().expand(1, 3, size // 2, size).contiguous()
    assert TVLoss()(None, stripes).item() == pytest.approx(255.0)
