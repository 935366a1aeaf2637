"""dreamstyle.drive: a still through the one loop into an image file, as the API makes it."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import tiny
from PIL import Image

import dreamstyle
from dreamstyle.drive import ImageFile, Still, drive
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
