import json

import pytest
import torch
from helpers import make_image
from PIL import Image

import dreamstyle
from dreamstyle import transfer
from dreamstyle.cli import main
from dreamstyle.errors import OptionError, UnknownNameError
from dreamstyle.objective import Objective
from dreamstyle.plugins import get_host
from dreamstyle.schedule import scale_sides
from dreamstyle.settings import loss_specs, scales
from dreamstyle.terms import gram
from dreamstyle.termspec import TermContext
from dreamstyle.writers import read_recipe

FAST = dict(weights="random", size=40, iterations=6, seed=0, device="cpu")


@pytest.fixture
def images(tmp_path):
    return make_image(tmp_path / "content.png"), make_image(tmp_path / "style.png", (44, 44), 1, "stripes")


def test_api_returns_image_and_history_and_loss_goes_down(images):
    content, style = images
    # a TV weight on the scale of random weights' losses (the default suits real weights)
    image, history = transfer(content, style, optimizer="adam", lr=0.05, tv_weight=1.0, **{**FAST, "iterations": 25})
    assert isinstance(image, Image.Image) and max(image.size) == 40
    assert [h["iteration"] for h in history] == list(range(1, 26))
    assert set(history[0]) >= {"iteration", "total", "content", "style", "tv"}
    assert history[-1]["style"] < history[0]["style"] and history[-1]["total"] < history[0]["total"]


def test_lbfgs_lowers_the_loss(images):
    result = transfer(*images, optimizer="lbfgs", **{**FAST, "iterations": 15})
    assert result.history[-1]["total"] < result.history[0]["total"]


def test_callback_gets_every_step_and_losses_only_when_logged(images):
    events = []
    transfer(*images, callback=events.append, log_every=3, **FAST)
    assert [e.iteration for e in events] == [1, 2, 3, 4, 5, 6]
    assert [e.losses is not None for e in events] == [False, False, True, False, False, True]


def test_multiscale_runs_coarse_to_fine(images):
    events = []
    result = transfer(*images, scales=2, callback=events.append, **FAST)
    sizes = sorted({e.size for e in events}, key=max)
    assert [max(s) for s in sizes] == [20, 40] and result.image.size == (40, 33)
    assert scale_sides(512, 3) == [128, 256, 512] and scale_sides(512, scales("200,100", "--scales")) == [100, 200]


@pytest.mark.parametrize("init", ["content", "noise", "style"])
def test_init_options(images, init):
    result = transfer(*images, init=init, **{**FAST, "iterations": 1})
    assert result.image.size == (40, 33)


def test_init_from_file_and_recipe(images, tmp_path):
    init = make_image(tmp_path / "init.png", (20, 20), 5)
    result = transfer(*images, init=str(init), **{**FAST, "iterations": 1})
    assert result.recipe["init"] == str(init) and result.recipe["backbone"] == "vgg19"


def test_style_blend_and_several_styles(images, tmp_path):
    content, style = images
    other = make_image(tmp_path / "s2.png", (40, 40), 3)
    result = transfer(content, [style, other], style_blend=[0.7, 0.3], **FAST)
    assert result.recipe["style_blend"] == [0.7, 0.3]
    with pytest.raises(OptionError, match="2 weights for 1 style"):
        transfer(content, style, style_blend=[1, 2], **FAST)


def test_style_targets_blend_grams():
    torch.manual_seed(0)
    from dreamstyle.backbones import load_backbone

    loaded = load_backbone("vgg19", weights="random")
    net = loaded.features(["relu1_1"])
    a, b = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    term = get_host().loss_terms.get("style").build(layers=["relu1_1"])
    ctx = TermContext(loaded.backbone, images={"style": [a, b]}, blend=[3, 1])
    term.prepare(ctx, lambda x: net(x))
    expected = 0.75 * gram(net(a)["relu1_1"]) + 0.25 * gram(net(b)["relu1_1"])
    assert torch.allclose(term.target0_0, expected, rtol=1e-5)


def test_gram_is_fp32_under_autocast():
    x = torch.rand(1, 4, 5, 5, dtype=torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        g = gram(x)
    assert g.dtype == torch.float32
    assert torch.allclose(g, gram(x.float()))


def test_gram_gradient_matches_autograd():
    from dreamstyle.terms import _Gram

    f = torch.randn(2, 5, 12, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: _Gram.apply(t, 0.3), (f,))
    x = torch.rand(2, 6, 7, 9, requires_grad=True)
    target = torch.rand(2, 6, 6)
    ((gram(x) - target) ** 2).sum().backward()
    ours = x.grad.clone()
    x.grad = None
    plain = x.reshape(2, 6, 63)
    (((plain @ plain.transpose(1, 2)) / (6 * 63) - target) ** 2).sum().backward()
    assert torch.allclose(ours, x.grad, rtol=1e-5, atol=1e-7)


def test_preserve_color_luminance_keeps_content_chroma(images):
    from dreamstyle.color import rgb_to_yiq
    from dreamstyle.images import to_tensor

    content, style = images
    result = transfer(content, style, preserve_color="luminance", **FAST)
    out = rgb_to_yiq(result.tensor)
    ref = rgb_to_yiq(to_tensor(Image.open(content).convert("RGB"), result.image.size))
    chroma_gap = (out[:, 1:] - ref[:, 1:]).abs().mean()
    luma_gap = (out[:, :1] - ref[:, :1]).abs().mean()
    assert chroma_gap < 0.02 and luma_gap > 2 * chroma_gap  # chroma kept, luminance transferred


def test_preserve_color_histogram_matches_style_colours_to_content():
    from dreamstyle.color import match_color_histogram

    torch.manual_seed(0)
    content = torch.rand(1, 3, 30, 30) * torch.tensor([0.2, 0.5, 0.9]).view(1, 3, 1, 1)
    style = torch.rand(1, 3, 20, 20) * 0.3 + 0.6
    matched = match_color_histogram(style, content)
    assert torch.allclose(matched.mean((2, 3)), content.mean((2, 3)), atol=0.02)
    cov = lambda x: torch.cov(x[0].reshape(3, -1))  # noqa: E731
    assert torch.allclose(cov(matched), cov(content), atol=0.005)


def test_preserve_color_histogram_runs(images):
    assert transfer(*images, preserve_color="histogram", **FAST).recipe["preserve_color"] == "histogram"


def test_layers_and_weights_per_layer(images):
    result = transfer(*images, content_layers="relu3_1", style_layers="relu1_1=0.5,relu2_1", **FAST)
    assert result.recipe["style_layers"] == {"relu1_1": 0.5, "relu2_1": 1.0}
    with pytest.raises(UnknownNameError, match="relu2_1"):
        transfer(*images, style_layers="relu2_9", **FAST)


def test_other_backbone_and_pooling(images):
    result = transfer(*images, backbone="squeezenet1_1", size=64, weights="random", iterations=2)
    assert max(result.image.size) == 64 and result.recipe["backbone"] == "squeezenet1_1"
    assert transfer(*images, pooling="avg", **FAST).recipe["pooling"] == "avg"


def test_snapshots_collect_frames(images):
    result = transfer(*images, snapshot_every=2, **FAST)
    assert len(result.frames) == 3


def test_every_registered_term_goes_down_under_a_few_steps():
    """The generic property test: for every registered loss term, a few optimizer steps lower it."""
    from dreamstyle.backbones import load_backbone

    torch.manual_seed(0)
    loaded = load_backbone("vgg19", weights="random")
    content, style = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    for name in get_host().loss_terms.names():
        spec = get_host().loss_terms.get(name)
        term = spec.build()
        layers = term.layers or ["relu1_1"]
        net = loaded.features(layers)
        ctx = TermContext(loaded.backbone, images={"content": [content], "style": [style], "guide": [style]})
        term.prepare(ctx, lambda x: net(x))
        objective = Objective({name: (term, 1.0)})
        image = torch.rand(getattr(term, "min_batch", 1), 3, 32, 32, requires_grad=True)
        opt = torch.optim.Adam([image], lr=0.02)
        values = []
        for _ in range(8):
            opt.zero_grad()
            total, _ = objective(net(image), image)
            values.append(total.item())
            total.backward()
            opt.step()
        assert values[-1] < values[0], (name, values)


def test_cli_transfer_writes_png_with_recipe_and_log(images, tmp_path, runner):
    content, style = images
    out, log, gif = tmp_path / "out.png", tmp_path / "log.json", tmp_path / "anim.gif"
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
            "--seed",
            "3",
            "--log-json",
            str(log),
            "--log-every",
            "2",
            "--gif",
            str(gif),
            "--save-every",
            "2",
            "-q",
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 0, result.output
    recipe = read_recipe(out)
    assert recipe["seed"] == 3 and recipe["iterations"] == 4 and recipe["versions"]["torch"]
    rows = json.loads(log.read_text())
    assert [r["iteration"] for r in rows] == [2, 4] and {"total", "content", "style", "tv"} <= set(rows[0])
    assert Image.open(gif).n_frames == 2
    assert (tmp_path / "out_00002.png").exists() and (tmp_path / "out_00004.png").exists()


def test_cli_refuses_existing_output_unless_overwrite(images, tmp_path, runner):
    out = tmp_path / "o.png"
    out.write_bytes(b"keep me")
    args = [
        "transfer",
        str(images[0]),
        str(images[1]),
        "-o",
        str(out),
        "--weights",
        "random",
        "--size",
        "40",
        "--iterations",
        "1",
        "-q",
    ]
    result = runner.invoke(main, args)
    assert result.exit_code == 1 and "--overwrite" in result.output and out.read_bytes() == b"keep me"
    assert runner.invoke(main, args + ["--overwrite"]).exit_code == 0


def test_package_exposes_api():
    assert dreamstyle.transfer is transfer


def _can_compile_on_cpu() -> bool:
    import os
    import shutil
    import sysconfig
    from pathlib import Path

    return bool(
        shutil.which(os.environ.get("CXX", "g++")) and Path(sysconfig.get_paths()["include"], "Python.h").exists()
    )


@pytest.mark.skipif(not _can_compile_on_cpu(), reason="torch.compile on the CPU needs g++ and Python's headers")
def test_cli_compile_follows_the_eager_losses(images, tmp_path, runner):
    content, style = images
    logs = {}
    for flag in ([], ["--compile"]):
        out, log = tmp_path / f"o{len(flag)}.png", tmp_path / f"l{len(flag)}.json"
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
                "32",
                "--iterations",
                "3",
                "--seed",
                "1",
                "--optimizer",
                "adam",
                "--content-layers",
                "relu1_1",
                "--style-layers",
                "relu1_1,relu2_1",
                "--log-json",
                str(log),
                "-q",
                "--device",
                "cpu",
                "--precision",
                "fp32",
                *flag,
            ],
        )
        assert result.exit_code == 0, result.output
        logs[bool(flag)] = json.loads(log.read_text())
        assert read_recipe(out)["compile"] is bool(flag)
    # fp32 on every CPU (bf16 only where it is native would make the test depend on the machine):
    # the compiled net fuses and reorders sums, a few fp32 roundings (1e-6) per layer, that three Adam
    # steps carry on; 1e-4 leaves room for that and none for a wrong graph
    for eager, compiled in zip(logs[False], logs[True]):
        assert compiled["total"] == pytest.approx(eager["total"], rel=1e-4)


def test_loss_options_after_colons_reach_the_term(images, tmp_path, runner):
    assert loss_specs(["tv=2,content", "activation=0.5:layers=relu1_1,relu2_1:objective=l2"], "--loss") == {
        "tv": (2.0, {}),
        "content": (None, {}),
        "activation": (0.5, {"layers": "relu1_1,relu2_1", "objective": "l2"}),
    }
    log = tmp_path / "log.json"
    result = runner.invoke(
        main,
        [
            "transfer",
            *map(str, images),
            "-o",
            str(tmp_path / "o.png"),
            "--weights",
            "random",
            "--size",
            "32",
            "--iterations",
            "2",
            "-q",
            "--device",
            "cpu",
            "--log-json",
            str(log),
            "--loss",
            "activation=0.5:layers=relu2_1:objective=l2",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "activation" in json.loads(log.read_text())[-1]
    assert read_recipe(tmp_path / "o.png")["losses"] == {"activation": [0.5, {"layers": "relu2_1", "objective": "l2"}]}


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_a_run_does_not_import_dynamo_and_leaves_torch_as_it_was(images, optimizer):
    """torch.optim's first call would import torch._dynamo (seconds of start-up) for nothing."""
    import subprocess
    import sys

    code = (
        "import sys, torch\n"
        "from dreamstyle import transfer\n"
        f"transfer({str(images[0])!r}, [{str(images[1])!r}], weights='random', size=32, iterations=2, "
        f"device='cpu', optimizer={optimizer!r})\n"
        "inner = torch.optim.Optimizer.zero_grad.__wrapped__\n"
        "print('torch._dynamo' in sys.modules, hasattr(inner, '__dynamo_disable'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"], out.stderr


def test_engine_adam_steps_exactly_like_torch_adam():
    from dreamstyle.optimizers import make_optimizer

    target = torch.linspace(-1, 1, 12).reshape(3, 4)
    params = {}
    for kind in ("ours", "torch"):
        p = torch.zeros(3, 4, requires_grad=True)
        opt = make_optimizer("adam", [p], 0.1) if kind == "ours" else torch.optim.Adam([p], lr=0.1)

        def closure():
            opt.zero_grad()
            loss = ((p - target) ** 2).sum()
            loss.backward()
            return loss

        for _ in range(5):
            opt.step(closure)
        params[kind] = p.detach()
    assert torch.equal(params["ours"], params["torch"]) and not torch.equal(params["ours"], torch.zeros(3, 4))
