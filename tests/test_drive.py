"""dreamstyle.drive: a still through the one loop into an image file, as the API makes it; a folder of
images into a folder of images."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import make_image, tiny
from PIL import Image

import dreamstyle
from dreamstyle.drive import Folder, ImageFile, ImageFolder, Still, drive
from dreamstyle.errors import OptionError, OutputError
from dreamstyle.jobs import DreamJob
from dreamstyle.session import Session
from dreamstyle.settings import DreamSettings, make
from dreamstyle.stop import Reason, describe
from dreamstyle.writers import read_recipe


def dream_job(vgg, photo, **more):
    settings = make(DreamSettings, {"input": photo, **{k: v for k, v in tiny(vgg, **more).items() if k != "loaded"}})
    return DreamJob(settings, Session.for_settings(settings, vgg))


def test_a_still_into_an_image_file_is_the_picture_the_api_makes(vgg, photo, tmp_path):
    out = tmp_path / "dream.png"
    steps = []
    done = drive(
        dream_job(vgg, photo), Still(), ImageFile(out, log_json=tmp_path / "log.json").check(), on_step=steps.append
    )
    assert done.stop.reason is Reason.DONE and done.stop.path == out and len(steps) == 2
    assert describe(done.stop).line == f"wrote {out}" and describe(done.stop).code == 0
    api = dreamstyle.dream(photo, **tiny(vgg))
    assert (np.asarray(Image.open(out)) == np.asarray(api.image)).all()
    assert read_recipe(out)["stopped"] is None and (tmp_path / "log.json").is_file()


def test_ctrl_c_keeps_the_best_picture_so_far(vgg, photo, tmp_path):
    out = tmp_path / "dream.png"

    def on_step(event):
        if event.iteration == 2:
            raise KeyboardInterrupt

    done = drive(dream_job(vgg, photo, iterations=5), Still(), ImageFile(out, what="dream"), on_step=on_step)
    said = describe(done.stop)
    assert said.code == 130 and said.line == f"interrupted; the best dream so far is in {out}"
    assert read_recipe(out)["stopped"] == "interrupted"


def test_the_sink_refuses_before_any_work(tmp_path):
    (tmp_path / "there.png").write_bytes(b"")
    with pytest.raises(OutputError):
        ImageFile(tmp_path / "there.png").check()


def test_a_still_runs_here_not_on_another_executor(vgg, photo, tmp_path):
    class Remote:
        name = "ray"

    with pytest.raises(OptionError, match="runs in this process"):
        drive(dream_job(vgg, photo), Still(), ImageFile(tmp_path / "o.png"), executor=Remote())


# --- a folder of images into a folder of images ----------------------------------------------------


@pytest.fixture
def folder(tmp_path):
    """Three small images, 40 x 32 px."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    for i in (1, 2, 3):
        make_image(inputs / f"p{i}.png", (40, 32), seed=i)
    return inputs


def folder_run(vgg, inputs, out, *, resume=False, on_error=None, on_step=None, **more):
    """A dream over ``inputs`` into ``out``, as the command line drives it."""
    job = dream_job(vgg, inputs, weights="random", **more)  # as the backbone loaded: --resume compares them
    source = Folder(inputs, on_error=on_error)
    sink = ImageFolder(out, source.names).check_shape()
    skip = source.resume(job, sink.outputs) if resume else []
    return drive(job, source, sink.check(skip), on_step=on_step)


def test_a_folder_into_a_folder_writes_every_image_with_its_recipe(vgg, folder, tmp_path):
    out = tmp_path / "out"
    done = folder_run(vgg, folder, out)
    said = describe(done.stop)
    assert said.code == 0 and said.line == f"wrote 3 images to {out}"
    assert sorted(p.name for p in out.iterdir()) == ["p1.png", "p2.png", "p3.png"]
    for i in (1, 2, 3):
        recipe = read_recipe(out / f"p{i}.png")
        assert recipe["input"].endswith(f"p{i}.png") and recipe["stopped"] is None
    assert done.result.names == ["p1", "p2", "p3"] and done.result.stopped is None


def test_resume_skips_the_images_done(vgg, folder, tmp_path):
    out = tmp_path / "out"
    folder_run(vgg, folder, out)
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    (out / "p2.png").unlink()
    made = []
    done = folder_run(vgg, folder, out, resume=True, on_step=lambda e: made.append(e.label.split()[1]))
    assert set(made) == {"2/3"}  # only the image not done
    assert describe(done.stop).line == f"1 of 3 images were written to {out} (2 done before)"
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name != "p2.png"} == {
        k: v for k, v in before.items() if k != "p2.png"
    }
    assert read_recipe(out / "p2.png")["input"].endswith("p2.png")


def test_a_broken_image_is_one_line_and_the_others_are_written(vgg, folder, tmp_path):
    (folder / "p9.png").write_text("not pixels")
    out, told = tmp_path / "out", []
    done = folder_run(vgg, folder, out, on_error=lambda name, line: told.append((name, line)))
    assert len(told) == 1 and told[0][0] == "p9.png"
    said = describe(done.stop)
    assert said.code == 1
    assert said.line == f"3 of 4 images were written to {out}; 1 could not be made (p9.png: see above)"
    assert sorted(p.name for p in out.iterdir()) == ["p1.png", "p2.png", "p3.png"]


def test_an_output_file_there_is_refused_before_any_work(vgg, folder, tmp_path, monkeypatch):
    from dreamstyle import runner

    out = tmp_path / "out"
    out.mkdir()
    (out / "p2.png").write_bytes(b"")
    monkeypatch.setattr(runner, "run", lambda *a, **k: pytest.fail("the run started"))
    with pytest.raises(OutputError, match="p2.png exists"):
        folder_run(vgg, folder, out)
    file = tmp_path / "out.png"
    with pytest.raises(OutputError, match="looks like a file"):
        ImageFolder(file, ["p1"]).check_shape()


def test_ctrl_c_mid_folder_keeps_the_images_finished(vgg, folder, tmp_path):
    out = tmp_path / "out"

    def on_step(event):
        if event.label.startswith("image 2/3"):
            raise KeyboardInterrupt

    done = folder_run(vgg, folder, out, on_step=on_step)
    said = describe(done.stop)
    assert said.code == 130 and said.line == f"interrupted; 1 of 3 images were written to {out}"
    assert [p.name for p in out.iterdir()] == ["p1.png"] and read_recipe(out / "p1.png")["stopped"] is None


def test_a_folder_runs_on_the_executor_given(vgg, folder, tmp_path):
    from dreamstyle.executors import LocalExecutor

    class Counted(LocalExecutor):
        name = "counted"  # not local: a still is refused it, a folder runs on it

    executor = Counted()
    job = dream_job(vgg, folder)
    source = Folder(folder)
    done = drive(job, source, ImageFolder(tmp_path / "out", source.names).check(), executor)
    assert done.stop.finished and executor.counts == {0: 3}
    with pytest.raises(OptionError, match="runs in this process"):
        drive(dream_job(vgg, folder), Still(), ImageFile(tmp_path / "o.png"), executor=Counted())


# --- a clip's frames and a zoom's into a clip file -----------------------------------------------------


@pytest.fixture
def gif(tmp_path):
    """Four 40 x 32 frames, 80 ms each."""
    frames = [Image.open(make_image(tmp_path / f"f{i}.png", (40, 32), seed=i)).convert("RGB") for i in range(4)]
    path = tmp_path / "clip.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=80, loop=0)
    return path


def clip_job(vgg, gif, **more):
    settings = make(DreamSettings, {"input": str(gif), **{k: v for k, v in tiny(vgg, **more).items() if k != "loaded"}})
    return DreamJob(settings, Session.for_settings(settings, vgg), clip=True)


def test_a_clip_into_a_clip_file_writes_every_frame_warm_from_the_last(vgg, gif, tmp_path):
    from dreamstyle.clips import read_clip
    from dreamstyle.drive import ClipFile, ClipFrames

    out, labels = tmp_path / "out.gif", []
    source = ClipFrames(read_clip(gif))
    job = clip_job(vgg, gif, frame_iterations=1)
    done = drive(job, source, ClipFile(out, source.names).check(), on_step=labels.append)
    assert describe(done.stop).line == f"wrote {out} (4 frames)" and done.stop.path == out
    made = read_clip(out)
    assert len(made) == 4 and made.frames[0].size == (32, 26)  # --size 32: the long side
    assert [e.label.split(" octave")[0] for e in labels if e.iteration == 1] == [f"frame {i}/4" for i in range(1, 5)]
    assert [e.iterations for e in labels if e.iteration == 1] == [2, 1, 1, 1]  # later frames: warm, fewer steps


def test_ctrl_c_mid_clip_writes_the_frames_done(vgg, gif, tmp_path):
    from dreamstyle.clips import read_clip
    from dreamstyle.drive import ClipFile, ClipFrames

    out = tmp_path / "out.gif"

    def on_step(event):
        if event.label.startswith("frame 3/4"):
            raise KeyboardInterrupt

    source = ClipFrames(read_clip(gif))
    done = drive(clip_job(vgg, gif), source, ClipFile(out, source.names).check(), on_step=on_step)
    said = describe(done.stop)
    assert said.code == 130 and said.line == f"interrupted; the 2 of 4 frames done are in {out}"
    assert len(read_clip(out)) == 2


def test_a_zoom_resumes_after_the_frames_done(vgg, photo):
    from dreamstyle.drive import Memory, ZoomFrames

    job = dream_job(vgg, photo, frame_iterations=1)
    whole = drive(job, ZoomFrames(3), Memory()).result
    again = drive(job, ZoomFrames(3, resume=(2, whole.tensors[1])), Memory()).result
    assert whole.names == ["frame_00001", "frame_00002", "frame_00003"] and again.names == ["frame_00003"]
    assert again.total == 3 and again.durations == [round(1000 / 24)]


def test_the_api_picks_the_run_from_its_input(vgg, gif, folder):
    clip = dreamstyle.dream(str(gif), **tiny(vgg))
    many = dreamstyle.dream(str(folder), **tiny(vgg))
    assert len(clip.frames) == 4 and clip.durations == [80] * 4
    assert many.names == ["p1", "p2", "p3"]
    with pytest.raises(OptionError, match="snapshot_every"):
        dreamstyle.dream(str(gif), snapshot_every=1, **tiny(vgg))
