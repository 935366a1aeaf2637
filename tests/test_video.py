"""Video files (PyAV): transfer and dream over MP4/WebM with the audio kept, segments and frame rates,
streaming, interrupt and resume, faults in one line, and DeepDream's infinite zoom."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

av = pytest.importorskip("av", reason="PyAV (dreamstyle[video]) is not installed")

from helpers import make_image  # noqa: E402

from dreamstyle import sequence  # noqa: E402
from dreamstyle.cli import main  # noqa: E402
from dreamstyle.drive import frames  # noqa: E402
from dreamstyle.video import VideoSource, frames_folder, probe, read_recipe, synthetic_video  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = ["--weights", "random", "--device", "cpu", "--size", "32", "--iterations", "2", "--seed", "0"]
TRANSFER = [*FAST, "--frame-iterations", "1", "--optimizer", "adam"]
DREAM = [*FAST, "--octaves", "1", "--jitter", "2"]


@pytest.fixture(scope="module")
def walk(tmp_path_factory):
    """2 s at 10 fps, 64x48, a moving gradient with a 440 Hz tone (AAC in MP4)."""
    return synthetic_video(tmp_path_factory.mktemp("video") / "walk.mp4", seconds=2.0, fps=10)


@pytest.fixture(scope="module")
def style(tmp_path_factory):
    return make_image(tmp_path_factory.mktemp("style") / "style.png", (40, 40), seed=3, kind="noise")


def run(runner, *args):
    result = runner.invoke(main, [str(a) for a in args])
    return result


# --- reading -----------------------------------------------------------------------------------------


def test_a_video_source_streams_the_segment_at_the_asked_rate(walk):
    whole = VideoSource(walk)
    assert (whole.total, float(whole.fps), whole.size, whole.audio) == (20, 10.0, (64, 48), "aac")
    frames = list(whole)
    assert len(frames) == 20 and frames[0].size == (64, 48) and frames[0].mode == "RGB"
    part = VideoSource(walk, start=0.5, duration=1.0, fps=5)
    picked = list(part)
    assert part.total == len(picked) == 5
    # frame k of the segment is what the source shows at 0.5 + k / 5 s: source frames 5, 7, 9, ...
    for k, image in enumerate(picked):
        assert image.tobytes() == frames[5 + 2 * k].tobytes()


def test_faulty_videos_are_one_line(walk, tmp_path, runner):
    truncated = tmp_path / "cut.mp4"
    truncated.write_bytes(walk.read_bytes()[:2000])  # the index (moov) of this MP4 is at the end: gone
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"not a video at all\n" * 10)
    sound = tmp_path / "sound.mkv"
    with av.open(str(sound), "w") as out:
        stream = out.add_stream("libopus", rate=48000)
        stream.layout = "mono"
        import numpy as np

        for k in range(5):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 960), np.int16), format="s16", layout="mono")
            frame.sample_rate, frame.pts = 48000, k * 960
            for p in stream.encode(frame):
                out.mux(p)
        for p in stream.encode():
            out.mux(p)
    cases = {
        truncated: "cannot read video",
        garbage: "cannot read video",
        sound: "has no video stream",
        tmp_path / "missing.mp4": "video not found",
    }
    for path, expected in cases.items():
        result = run(runner, "dream", path, "-o", tmp_path / "o.mp4", *DREAM)
        assert result.exit_code == 1, (path, result.output)
        assert expected in result.output and "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "o.mp4").exists()
    late = run(runner, "dream", walk, "-o", tmp_path / "o.mp4", "--start", "7", *DREAM)
    assert late.exit_code == 1 and "--start 7 is past the end" in late.output


def test_without_pyav_the_line_names_the_extra(walk, tmp_path, runner, monkeypatch):
    monkeypatch.setitem(sys.modules, "av", None)
    result = run(runner, "dream", walk, "-o", tmp_path / "o.mp4", *DREAM)
    assert result.exit_code == 1 and "dreamstyle[video]" in result.output


# --- transfer and dream over a video -----------------------------------------------------------------


def test_transfer_keeps_rate_duration_and_audio_and_the_recipe_round_trips(walk, style, tmp_path, runner):
    walk, style = (Path(shutil.copy(p, tmp_path / p.name)) for p in (walk, style))  # a replay reads beside
    out = tmp_path / "styled.mp4"
    result = run(runner, "transfer", walk, style, "-o", out, *TRANSFER, "--recipe", "full")
    assert result.exit_code == 0, result.output
    info = probe(out)
    assert info["frames"] == 20 and info["fps"] == 10.0 and info["duration"] == pytest.approx(2.0)
    assert (info["codec"], info["pix_fmt"], info["audio"]) == ("h264", "yuv420p", "aac")
    assert info["audio_duration"] == pytest.approx(2.0, abs=0.05)
    assert info["size"] == (32, 24)
    assert not frames_folder(out).exists()  # complete: the kept frames are gone
    recipe = read_recipe(out)
    assert recipe["command"] == "transfer" and recipe["frames"] == 20 and recipe["fps"] == 10.0
    again = tmp_path / "again.mp4"
    replay = run(runner, "transfer", "--from", out, "-o", again, "--duration", "0.5", "-q")
    assert replay.exit_code == 0, replay.output
    assert probe(again)["frames"] == 5 and read_recipe(again)["duration"] == 0.5


def test_dream_a_segment_resampled_to_webm(walk, tmp_path, runner):
    out = tmp_path / "dream.webm"
    result = run(runner, "dream", walk, "-o", out, "--start", "0.5", "--duration", "1", "--fps", "5", *DREAM)
    assert result.exit_code == 0, result.output
    info = probe(out)
    assert (info["frames"], info["fps"], info["codec"], info["pix_fmt"]) == (5, 5.0, "vp9", "yuv420p")
    # WebM takes no AAC: the audio is re-encoded (as Opus), cut to the segment
    assert info["audio"] == "opus" and info["audio_duration"] == pytest.approx(1.0, abs=0.06)
    assert "re-encoded as opus" in result.output


def test_a_gif_becomes_a_video_and_a_video_a_gif(walk, tmp_path, runner):
    gif = tmp_path / "short.gif"
    frames = list(VideoSource(walk, duration=0.4))
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=100, loop=0)
    out = tmp_path / "from_gif.mkv"
    assert run(runner, "dream", gif, "-o", out, *DREAM).exit_code == 0
    info = probe(out)
    assert (info["frames"], info["fps"], info["audio"]) == (4, 10.0, None)
    back = tmp_path / "back.gif"
    result = run(runner, "dream", walk, "-o", back, "--duration", "0.3", *DREAM)
    assert result.exit_code == 0, result.output
    with Image.open(back) as img:
        assert img.n_frames == 3 and img.info["duration"] == 100


def test_video_options_that_do_not_apply_are_refused(walk, tmp_path, runner, style):
    gif = tmp_path / "a.gif"
    frames = list(VideoSource(walk, duration=0.2))
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=100)
    cases = [
        (["dream", gif, "-o", tmp_path / "o.gif", "--start", "1"], "--start goes with a video file"),
        (["dream", style, "-o", tmp_path / "o.png", "--crf", "20"], "--crf goes with a video output"),
        (["dream", walk, "-o", tmp_path / "o.mp4", "--crf", "60"], "--crf goes from 0 (lossless) to 51"),
        (["dream", walk, "-o", tmp_path / "o.mp4", "--quality", "80"], "its quality is --crf"),
        (["dream", style, "-o", tmp_path / "o.png", "--zoom", "1.1"], "--zoom goes with --zoom-frames"),
    ]
    for args, expected in cases:
        result = run(runner, *args, *DREAM)
        assert result.exit_code != 0 and expected in result.output, (args, result.output)


def test_frames_are_streamed_not_all_decoded_first(walk, style):
    """When frame k is done, at most a batch beyond it has been decoded; nothing is kept."""
    from dreamstyle.jobs.dream import DreamJob
    from dreamstyle.session import Session
    from dreamstyle.settings import DreamSettings

    source = VideoSource(walk)
    decoded = []

    class Counting:
        total, fps, names, durations, loop = source.total, source.fps, source.names, source.durations, 0

        def __len__(self):
            return source.total

        def __iter__(self):
            for image in source:
                decoded.append(1)
                yield image

    settings = DreamSettings(input=str(walk), weights="random", device="cpu", size=32, iterations=1, octaves=1, batch=2)
    job = DreamJob(settings, Session.for_settings(settings), clip=True)
    seen = []
    result = sequence.run_clip(
        job, Counting(), on_frame=lambda done: seen.append((done.index, len(decoded))), keep=False
    )
    assert len(seen) == 20 and result.frames == [] and result.tensors == []
    assert all(pulled <= index + 1 + 2 for index, pulled in seen), seen


# --- interrupt and resume ----------------------------------------------------------------------------------


def start_video_run(walk, style, out, *extra):
    cmd = [
        sys.executable,
        "-m",
        "dreamstyle",
        "transfer",
        str(walk),
        str(style),
        "-o",
        str(out),
        *TRANSFER,
        "--frame-iterations",
        "40",
        "-q",
        *extra,
    ]
    env = {**os.environ, "DREAMSTYLE_DISABLE_PLUGIN_AUTOLOAD": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def wait_for_frames(proc, out, k: int) -> None:
    state = frames_folder(out) / "state.json"
    deadline = time.monotonic() + 180
    while True:
        try:
            if json.loads(state.read_text())["done"] >= k:
                return
        except (OSError, ValueError, KeyError):
            pass
        if proc.poll() is not None:
            pytest.fail(f"the run ended early: {proc.communicate()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"{k} frames were not done within 180 s")
        time.sleep(0.05)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupted_video_is_shorter_playable_and_resumes(walk, style, tmp_path, runner, sig):
    out = tmp_path / "walk_styled.mp4"
    proc = start_video_run(walk, style, out)
    wait_for_frames(proc, out, 3)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in stderr, stderr
    state = json.loads((frames_folder(out) / "state.json").read_text())
    k = state["done"]
    assert 3 <= k < 20
    assert f"the {k} of 20 frames done are in {out}" in stderr and "--resume" in stderr
    info = probe(out)  # a whole, playable video of the frames done, its audio cut to match
    assert info["frames"] == k and info["fps"] == 10.0
    assert info["audio"] == "aac" and info["audio_duration"] == pytest.approx(k / 10, abs=0.05)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]
    # a plain rerun does not throw the work away; another setting is refused; --resume goes on
    refused = run(runner, "transfer", walk, style, "-o", out, *TRANSFER, "--frame-iterations", "40", "-q")
    assert refused.exit_code == 1 and "add --resume" in refused.output
    other = run(runner, "transfer", walk, style, "-o", out, *TRANSFER, "--frame-iterations", "3", "-q", "--resume")
    assert other.exit_code == 1 and "other settings (frame_iterations)" in other.output
    kept = (frames_folder(out) / "frame_000001.png").read_bytes()
    resumed = run(runner, "transfer", walk, style, "-o", out, *TRANSFER, "--frame-iterations", "40", "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert f"resuming after frame {k} of 20" in resumed.output
    assert f"frame_{k + 1:05d} done" in resumed.output and f"frame_{k:05d} done" not in resumed.output
    info = probe(out)
    assert info["frames"] == 20 and info["audio_duration"] == pytest.approx(2.0, abs=0.05)
    assert not frames_folder(out).exists()
    # the frames done before are in the video as they were made
    with av.open(str(out)) as container:
        first = next(container.decode(video=0)).to_image()
    import io

    import numpy as np

    with Image.open(io.BytesIO(kept)) as img:
        diff = np.asarray(first, dtype=np.float32) - np.asarray(img.convert("RGB"), dtype=np.float32)
    assert np.abs(diff).mean() < 12  # H.264 at crf 18 on a 32 px frame, nothing more


def test_resume_warm_starts_from_the_last_frame_done(walk, style, monkeypatch):
    """The first frame made after a resume starts from frame k's output, carried along the content."""
    from dreamstyle.jobs.transfer import TransferJob
    from dreamstyle.session import Session
    from dreamstyle.settings import TransferSettings

    settings = TransferSettings(
        content=str(walk), styles=(str(style),), weights="random", device="cpu", size=32, iterations=1, optimizer="adam"
    )
    job = TransferJob(settings, Session.for_settings(settings), clip=True)
    previous = torch.full((1, 3, 24, 32), 0.25)
    starts = []
    original = frames.frame_item

    def spy(*args):
        item = original(*args)
        starts.append(item)
        return item

    monkeypatch.setattr(frames, "frame_item", spy)
    result = sequence.run_clip(job, VideoSource(walk, duration=0.5), keep=False, resume=(3, previous))
    assert result.names == ["frame_00004", "frame_00005"] and result.total == 5
    assert starts[0].warm and starts[0].images["previous"][0].eq(0.25).all()


# --- zoom --------------------------------------------------------------------------------------------


def test_zoom_is_exact_where_it_should_be():
    image = torch.rand(1, 3, 16, 20)
    assert torch.allclose(sequence.zoomed(image, 1.0, 0.0), image, atol=1e-5)
    flat = torch.zeros(1, 3, 16, 20)
    flat[..., 6:10, 8:12] = 1.0  # a square in the middle grows
    grown = sequence.zoomed(flat, 2.0)
    assert float(grown.sum()) == pytest.approx(float(flat.sum()) * 4, rel=0.15)
    turned = sequence.zoomed(flat, 1.0, 90.0)
    assert float(turned.sum()) == pytest.approx(float(flat.sum()), rel=0.2) and turned[..., 8, 10].min() > 0.9


def test_zoom_makes_the_frames_asked_for(tmp_path, runner, style):
    out = tmp_path / "zoom.mp4"
    result = run(
        runner, "dream", style, "-o", out, *DREAM, "--zoom-frames", "6", "--zoom", "1.1", "--rotate", "3", "--fps", "12"
    )
    assert result.exit_code == 0, result.output
    info = probe(out)
    assert (info["frames"], info["fps"], info["audio"], info["size"]) == (6, 12.0, None, (32, 32))
    recipe = read_recipe(out)
    assert (recipe["zoom_frames"], recipe["zoom"], recipe["rotate"]) == (6, 1.1, 3.0)
    gif = tmp_path / "zoom.gif"
    assert run(runner, "dream", style, "-o", gif, *DREAM, "--zoom-frames", "4").exit_code == 0
    with Image.open(gif) as img:
        assert img.n_frames == 4
    refused = run(runner, "dream", style, "-o", tmp_path / "z.mp4", *DREAM, "--zoom-frames", "4", "--flow", "ilk")
    assert refused.exit_code != 0 and "not with --zoom-frames" in refused.output


def test_a_zoom_resumes_from_the_last_frame_done(style):
    from dreamstyle.jobs.dream import DreamJob
    from dreamstyle.session import Session
    from dreamstyle.settings import DreamSettings

    settings = DreamSettings(
        input=str(style), weights="random", device="cpu", size=32, iterations=1, octaves=1, zoom_frames=4, zoom=1.2
    )
    job = DreamJob(settings, Session.for_settings(settings))
    last = torch.rand(1, 3, 32, 32)
    starts = []
    original = job.base
    job.base = lambda item: (starts.append(item.content.clone()), original(item))[1]
    result = sequence.run_zoom(job, 4, resume=(2, last))
    assert result.names == ["frame_00003", "frame_00004"] and len(result.frames) == 2 and result.total == 4
    assert torch.allclose(starts[0], sequence.zoomed(last, 1.2), atol=1e-6)


def test_a_frames_folder_without_its_state_is_not_resumed_or_thrown_away(walk, tmp_path, runner):
    out = tmp_path / "o.mp4"
    folder = frames_folder(out)
    folder.mkdir()
    (folder / "state.json").write_text("{not json")
    resumed = run(runner, "dream", walk, "-o", out, *DREAM, "--resume")
    assert resumed.exit_code == 1 and "holds no run to resume" in resumed.output
    plain = run(runner, "dream", walk, "-o", out, *DREAM)
    assert plain.exit_code == 1 and "holds an unfinished run" in plain.output and folder.exists()
