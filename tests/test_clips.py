"""Clips (animated GIF/WebP/PNG, folders of frames) and folders of still images."""

import json

import numpy as np
import pytest
import torch
from helpers import make_image
from PIL import Image

from dreamstyle import dream_clip, transfer_clip, transfer_folder
from dreamstyle.cli import main
from dreamstyle.clips import estimate_flow, is_animation, read_clip, warp
from dreamstyle.errors import OptionError, OutputError
from dreamstyle.sequence import carried_start
from dreamstyle.terms import TemporalLoss
from dreamstyle.termspec import TermContext
from dreamstyle.writers import read_recipe, write_clip

pytestmark = pytest.mark.usefixtures("one_thread")

DURATIONS = [50, 120, 80, 200]
FAST = dict(size=40, iterations=6, seed=0, device="cpu")


def make_frames(n=4, size=(48, 40), step=3):
    """A still random background with a red square moving ``step`` px a frame."""
    rng = np.random.default_rng(0)
    w, h = size
    base = rng.random((h, w, 3)) * 0.6 + 0.2
    frames = []
    for i in range(n):
        arr = base.copy()
        arr[8:20, 6 + step * i : 18 + step * i] = [1.0, 0.1, 0.1]
        frames.append(Image.fromarray((arr * 255).astype("uint8"), "RGB"))
    return frames


@pytest.fixture(scope="module")
def loaded(vgg):
    return vgg  # conftest's random vgg19, under this module's name for it


@pytest.fixture
def clip_gif(tmp_path):
    frames = make_frames()
    path = tmp_path / "clip.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=DURATIONS, loop=3)
    return path


@pytest.fixture
def style(tmp_path):
    return make_image(tmp_path / "style.png", (44, 44), 1, "stripes")


def consecutive_difference(tensors):
    return float(np.mean([(a - b).abs().mean().item() for a, b in zip(tensors, tensors[1:])]))


@pytest.mark.parametrize("suffix", [".gif", ".webp", ".png", ""])
def test_clip_round_trip_keeps_frames_timing_and_loop(tmp_path, suffix):
    frames = make_frames()
    out = tmp_path / f"out{suffix}"
    write_clip(frames, out, DURATIONS, loop=2, recipe={"seed": 1})
    clip = read_clip(out)
    assert len(clip) == 4 and clip.durations == DURATIONS and clip.loop == 2
    assert clip.frames[0].size == (48, 40)
    if suffix == "":
        assert sorted(p.name for p in out.iterdir())[:2] == ["clip.json", "frame_00001.png"]
        assert read_recipe(out / "frame_00002.png") == {"seed": 1}
    else:
        assert is_animation(out)
    if suffix == ".png":
        assert read_recipe(out) == {"seed": 1}


def test_frame_folder_sorts_names_as_numbers_and_takes_fps(tmp_path):
    frames = make_frames(3)
    for i, name in enumerate(["f2.png", "f10.png", "f1.png"]):
        frames[i].save(tmp_path / name)
    clip = read_clip(tmp_path, fps=20)
    assert clip.names == ["f1", "f2", "f10"] and clip.durations == [50, 50, 50]
    assert np.array_equal(np.asarray(clip.frames[1]), np.asarray(frames[0]))
    assert read_clip(tmp_path).durations == [100, 100, 100]  # 10 fps without timing


def test_temporal_term_is_zero_on_a_first_frame_and_masks_what_moved():
    content = torch.rand(1, 3, 16, 16)
    moved = content.clone()
    moved[..., :8] = 1 - moved[..., :8]  # the left half changed
    term = TemporalLoss()
    term.prepare(TermContext(None, images={"content": [content], "previous": [], "previous_content": []}), None)
    assert term(None, torch.rand(1, 3, 16, 16)).item() == 0
    previous = torch.rand(1, 3, 16, 16)
    term.prepare(
        TermContext(None, images={"content": [moved], "previous": [previous], "previous_content": [content]}), None
    )
    assert term.mask[..., 2:-2, :6].max() == 0 and term.mask[..., 10:].min() == 1
    image = previous.clone().requires_grad_(True)
    assert term(None, image).item() == 0
    changed = previous.clone()
    changed[..., :6] = 0  # change only where the content moved: not penalized
    assert term(None, changed).item() == 0


def test_clip_keeps_frame_count_and_timing_and_temporal_coherence_steadies_it(clip_gif, style, loaded):
    clip = read_clip(clip_gif)
    # no TV: with random weights it outweighs style and content and smooths both runs alike. The
    # temporal term is in pixel units; the relative content and style terms weigh with random weights
    # as much as with pretrained ones (far more than their absolute values did), hence 3e4, not 1e3
    steady = transfer_clip(clip, style, loaded=loaded, tv_weight=0, temporal_weight=3e4, **FAST)
    free = transfer_clip(clip, style, loaded=loaded, tv_weight=0, temporal_weight=0, temporal_init=1.0, **FAST)
    for result in (steady, free):
        assert len(result.frames) == 4 and result.durations == DURATIONS and result.loop == 3
        assert result.frames[0].size == (40, 33) and result.stopped is None
    assert "temporal" in steady.history[-1] and "temporal" not in free.history[-1] and "tv" not in free.history[-1]
    assert [r["frame"] for r in steady.history if r["iteration"] == 6] == [1, 2, 3, 4]
    assert steady.recipe["versions"]["torch"] and steady.recipe["frames"] == 4
    assert consecutive_difference(steady.tensors) < 0.5 * consecutive_difference(free.tensors)


def test_clip_batch_and_flow_run(clip_gif, style, loaded):
    pytest.importorskip("skimage")
    result = transfer_clip(
        clip_gif, style, loaded=loaded, batch=3, flow="ilk", temporal_init=0.3, **{**FAST, "iterations": 2}
    )
    assert len(result.frames) == 4 and [r["frame"] for r in result.history] == [1, 1, 4, 4]
    assert result.history[0]["frames"] == 3


@pytest.mark.parametrize(
    "options, words",
    [
        ({"temporal_init": 1.5}, "--temporal-init must be a finite number from 0 to 1"),
        ({"batch": 0}, "--batch must be a whole number from 1"),
        ({"flow": "farneback"}, "--flow 'farneback'"),
        ({"frame_iterations": 0}, "--frame-iterations must be a whole number"),
    ],
)
def test_clip_options_are_refused_before_any_work(clip_gif, style, monkeypatch, options, words):
    import dreamstyle.api

    monkeypatch.setattr(dreamstyle.api, "TransferJob", lambda *a, **k: pytest.fail("set up before refusing"))
    with pytest.raises(OptionError, match=words):
        transfer_clip(clip_gif, style, **FAST, **options)


def test_flow_without_scikit_image_is_refused_before_the_first_frame(clip_gif, style, monkeypatch):
    import sys

    import dreamstyle.api

    monkeypatch.setitem(sys.modules, "skimage.registration", None)  # import fails as if not installed
    monkeypatch.setattr(dreamstyle.api, "TransferJob", lambda *a, **k: pytest.fail("set up before refusing"))
    with pytest.raises(OptionError, match=r"needs scikit-image: pip install 'dreamstyle\[flow\]'"):
        transfer_clip(clip_gif, style, flow="ilk", **FAST)


def test_style_targets_are_prepared_once_per_clip(clip_gif, style, loaded, monkeypatch):
    from dreamstyle.terms import ContentLoss, StyleLoss

    calls = {"style": 0, "content": 0}
    for cls, name in [(StyleLoss, "style"), (ContentLoss, "content")]:
        original = cls.prepare

        def counting(self, ctx, extract, original=original, name=name):
            calls[name] += 1
            return original(self, ctx, extract)

        monkeypatch.setattr(cls, "prepare", counting)
    transfer_clip(clip_gif, style, loaded=loaded, **{**FAST, "iterations": 1})
    assert calls == {"style": 1, "content": 4}


def test_ctrl_c_keeps_the_frames_done(clip_gif, style, loaded):
    def callback(event):
        if event.label.startswith("frame 3"):
            raise KeyboardInterrupt

    result = transfer_clip(clip_gif, style, loaded=loaded, callback=callback, **FAST)
    assert result.stopped == "interrupted" and len(result.frames) == 2 and result.durations == DURATIONS[:2]


def test_warm_frames_start_from_the_previous_output_carried_along_the_content():
    """0.2 + (0.5 - 0.0) = 0.7, blended half with the frame's own start 0.5: 0.6."""
    prev, before, content = (torch.full((1, 3, 4, 4), v) for v in (0.2, 0.0, 0.5))
    assert torch.allclose(carried_start(prev, content, before), torch.full_like(prev, 0.7))
    assert torch.allclose(carried_start(prev, content, before, 0.5, content), torch.full_like(prev, 0.6))


def test_a_clip_batch_that_runs_out_of_memory_is_halved(clip_gif, style, loaded, monkeypatch):
    from dreamstyle import runner
    from dreamstyle.faults import OutOfMemory

    real, sizes = runner.run, []

    def run(job, item, callback=None, snapshot_every=0):
        sizes.append(item.content.shape[0])
        if item.content.shape[0] > 1:
            raise OutOfMemory("out of memory on cpu at 40x33 px; nothing was written")
        return real(job, item, callback, snapshot_every)

    monkeypatch.setattr(runner, "run", run)
    result = transfer_clip(clip_gif, style, loaded=loaded, batch=3, **{**FAST, "iterations": 1})
    assert sizes == [3, 1, 1, 1, 1] and len(result.frames) == 4 and result.stopped is None


def test_warp_follows_a_shift():
    pytest.importorskip("skimage")
    torch.manual_seed(0)
    big = torch.nn.functional.interpolate(torch.rand(1, 3, 12, 12), size=(48, 48), mode="bicubic").clamp(0, 1)
    previous, current = big[..., 8:40, 8:40], big[..., 8:40, 10:42]  # the view moved 2 px right
    assert torch.equal(warp(previous, torch.zeros(1, 2, 32, 32)), previous)
    flow = estimate_flow(current, previous, "ilk")
    assert flow[0, 1, 8:-8, 8:-8].mean().item() == pytest.approx(2.0, abs=0.5)
    warped = warp(previous, flow)
    assert (warped - current)[..., 8:-8, 8:-8].abs().mean() < 0.5 * (previous - current)[..., 8:-8, 8:-8].abs().mean()


def test_folder_of_stills_batches_like_one_by_one(tmp_path, style, loaded):
    folder = tmp_path / "stills"
    folder.mkdir()
    make_image(folder / "a.png", seed=1)
    make_image(folder / "b.jpg", seed=2)
    make_image(folder / "c.png", (30, 50), seed=3)  # another size: its own batch
    options = dict(loaded=loaded, optimizer="adam", lr=2.0, **FAST)
    done = []
    batched = transfer_folder(folder, style, batch=2, on_frame=done.append, **options)
    single = transfer_folder(folder, style, batch=1, **options)
    assert batched.names == ["a", "b", "c"] and [d.name for d in done] == ["a", "b", "c"]
    assert done[1].recipe["content"].endswith("b.jpg") and done[0].recipe["batch"] == 2
    assert [f.size for f in batched.frames] == [(40, 33), (40, 33), (24, 40)]
    assert batched.history[0]["images"] == ["a.png", "b.jpg"]
    # The batch optimizes each image as if alone, up to rounding: the batch changes the order of the
    # convolutions' sums. Adam then moves a pixel whose gradient is at rounding level by a whole step
    # (lr/255) either way, so one pixel may differ by up to 2 x iterations x lr / 255 (measured: 0.018);
    # the picture as a whole moves by rounding (measured mean: 5e-5, fp32 or bf16 features).
    bound = 2 * options["iterations"] * options["lr"] / 255
    for a, b in zip(batched.tensors, single.tensors):
        assert (a - b).abs().mean() < 1e-3 and (a - b).abs().max() <= bound


def test_cli_clip_to_gif_keeps_timing_and_writes_log(clip_gif, style, tmp_path, runner):
    out, log = tmp_path / "out.gif", tmp_path / "log.json"
    args = [
        "transfer",
        str(clip_gif),
        str(style),
        "-o",
        str(out),
        "--weights",
        "random",
        "--size",
        "40",
        "--iterations",
        "3",
        "--optimizer",
        "adam",
        "--seed",
        "0",
        "--device",
        "cpu",
        "--log-json",
        str(log),
        "--temporal-init",
        "0.5",
        "-q",
    ]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    clip = read_clip(out)
    assert len(clip) == 4 and clip.durations == DURATIONS and clip.loop == 3
    rows = json.loads(log.read_text())
    assert {r["frame"] for r in rows} == {1, 2, 3, 4} and "temporal" in rows[-1]
    again = runner.invoke(main, args)
    assert again.exit_code == 1 and "--overwrite" in again.output


def test_cli_frame_folder_to_folder_and_webp(tmp_path, style, runner):
    frames = tmp_path / "frames"
    frames.mkdir()
    for i, frame in enumerate(make_frames(3)):
        frame.save(frames / f"shot_{i + 1}.png")
    out = tmp_path / "out"
    base = [
        str(style),
        "--weights",
        "random",
        "--size",
        "40",
        "--iterations",
        "1",
        "--device",
        "cpu",
        "--temporal-init",
        "0.5",
        "-q",
    ]  # (identical consecutive frames would be merged by the encoders)
    result = runner.invoke(main, ["transfer", str(frames), *base, "-o", str(out), "--frames", "--fps", "25"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.glob("*.png")) == ["shot_1.png", "shot_2.png", "shot_3.png"]
    assert read_recipe(out / "shot_1.png")["temporal_weight"] == 1000
    result = runner.invoke(main, ["transfer", str(out), *base, "-o", str(tmp_path / "o.webp"), "--frames"])
    assert result.exit_code == 0, result.output
    assert read_clip(tmp_path / "o.webp").durations == [40, 40, 40]  # timing kept from clip.json


def test_cli_folder_of_stills_writes_one_png_each(tmp_path, style, runner):
    folder = tmp_path / "in"
    folder.mkdir()
    make_image(folder / "x.png", seed=1)
    make_image(folder / "y.jpg", seed=2)
    out = tmp_path / "styled"
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
            "40",
            "--iterations",
            "1",
            "--batch",
            "2",
            "--device",
            "cpu",
            "-q",
        ],
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["x.png", "y.png"]
    assert read_recipe(out / "y.png")["content"].endswith("y.jpg")
    result = runner.invoke(
        main, ["transfer", str(folder), str(style), "-o", str(tmp_path / "one.png"), "--weights", "random"]
    )
    assert result.exit_code == 1 and "--frames" in result.output


def test_cli_ctrl_c_writes_a_valid_shorter_animation(clip_gif, style, tmp_path, runner, monkeypatch):
    from dreamstyle.cli import progress

    original = progress.FrameProgress.step

    def step(self, event):
        if event.label.startswith("frame 3"):
            raise KeyboardInterrupt
        original(self, event)

    monkeypatch.setattr(progress.FrameProgress, "step", step)
    out = tmp_path / "cut.gif"
    result = runner.invoke(
        main,
        [
            "transfer",
            str(clip_gif),
            str(style),
            "-o",
            str(out),
            "--weights",
            "random",
            "--size",
            "40",
            "--iterations",
            "2",
            "--device",
            "cpu",
            "--temporal-init",
            "0.5",
            "-q",
        ],
    )
    assert result.exit_code == 130 and "2 of 4 frames" in result.output
    clip = read_clip(out)
    assert len(clip) == 2 and clip.durations == DURATIONS[:2]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--save-every", "2"], "--save-every goes with a single image, not with a clip"),
        (["--gif", "x.gif"], "--gif goes with a single image, not with a clip"),
        (["--frames"], "--frames needs a folder"),
        (["-o", "x.jpg"], "give a .gif, .webp, .png, .mp4, .m4v, .mov, .mkv or .webm file or a folder"),
    ],
)
def test_cli_clip_option_errors(clip_gif, style, tmp_path, runner, extra, message):
    args = ["transfer", str(clip_gif), str(style), "-o", str(tmp_path / "o.gif"), "--weights", "random", *extra]
    result = runner.invoke(main, args)
    assert result.exit_code != 0 and message in result.output, result.output


def test_cli_clip_options_refused_for_a_single_image(style, tmp_path, runner):
    result = runner.invoke(
        main, ["transfer", str(style), str(style), "-o", str(tmp_path / "o.png"), "--temporal-weight", "5"]
    )
    assert result.exit_code == 2 and "--temporal-weight goes with a clip" in result.output


def test_write_clip_refuses_nothing_and_bad_suffix(tmp_path):
    with pytest.raises(OutputError):
        write_clip([], tmp_path / "a.gif", [])
    with pytest.raises(OutputError):
        write_clip(make_frames(2), tmp_path / "a.bmp", [10, 10])
    once = read_clip(write_clip(make_frames(2), tmp_path / "b.gif", [10, 10], None))  # loop=None: play once
    assert len(once) == 2 and once.loop is None and once.durations == [10, 10]


DREAM_FAST = dict(size=40, iterations=3, octaves=2, jitter=4, seed=0, device="cpu")


def test_dream_clip_keeps_timing_and_carrying_the_dream_steadies_it(clip_gif, loaded):
    steady = dream_clip(clip_gif, "relu3_1", loaded=loaded, temporal_init=0.3, **DREAM_FAST)
    free = dream_clip(clip_gif, "relu3_1", loaded=loaded, temporal_init=1.0, **DREAM_FAST)
    for result in (steady, free):
        assert len(result.frames) == 4 and result.durations == DURATIONS and result.loop == 3
        assert result.recipe["command"] == "dream" and result.stopped is None
    assert {r["frame"] for r in steady.history} == {1, 2, 3, 4}
    assert consecutive_difference(steady.tensors) < consecutive_difference(free.tensors)
    with pytest.raises(OptionError, match="--init goes with .*, not with a clip"):
        dream_clip(clip_gif, "relu3_1", loaded=loaded, init="noise", **DREAM_FAST)


def test_cli_dream_over_a_clip_and_a_folder(clip_gif, tmp_path, runner):
    base = [
        "--layer",
        "relu3_1",
        "--weights",
        "random",
        "--size",
        "40",
        "--iterations",
        "2",
        "--octaves",
        "1",
        "--device",
        "cpu",
        "-q",
    ]
    out = tmp_path / "dream.webp"
    result = runner.invoke(main, ["dream", str(clip_gif), "-o", str(out), *base])
    assert result.exit_code == 0, result.output
    clip = read_clip(out)
    assert len(clip) == 4 and clip.durations == DURATIONS and clip.loop == 3
    folder = tmp_path / "stills"
    folder.mkdir()
    make_image(folder / "p.png", seed=1)
    make_image(folder / "q.jpg", seed=2)
    result = runner.invoke(main, ["dream", str(folder), "-o", str(tmp_path / "dreams"), *base])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "dreams").iterdir()) == ["p.png", "q.png"]
    assert read_recipe(tmp_path / "dreams" / "q.png")["command"] == "dream"
    result = runner.invoke(
        main, ["dream", str(clip_gif), "-o", str(tmp_path / "x.gif"), "--gif", str(tmp_path / "y.gif"), *base]
    )
    assert result.exit_code == 2 and "--gif goes with a single image, not with a clip" in result.output
