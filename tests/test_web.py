"""The web page (dreamstyle serve): its functions in-process, and the page in a real browser.

Tiny images, random weights, few iterations. The browser test needs Debian's chromium and
Playwright's Python package (both installed by .ci/run); it skips, saying which is missing, where
they are not. With DREAMSTYLE_SCREENSHOT=PATH it writes a screenshot of the page there (the
README's samples/web_page.png)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
from helpers import make_image
from PIL import Image

from dreamstyle import web
from dreamstyle.errors import ImageError, OptionError, UserError
from dreamstyle.settings import TransferSettings, settings_for
from dreamstyle.writers import read_recipe

pytestmark = pytest.mark.usefixtures("one_thread")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def images(tmp_path):
    return make_image(tmp_path / "photo.png"), make_image(tmp_path / "painting.png", seed=1, kind="stripes")


def transfer_form(content, style, **more):
    form = {
        "content_upload": str(content),
        "styles_upload": [str(style)],
        "backbone": "vgg19",
        "weights": "random",
        "size": 48,
        "iterations": 5,
        "seed": "7",
        "content_layers": ["relu4_2"],
        "style_layers": ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"],
    }
    form.update(more)
    return form


def finished(run: web.WebRun) -> tuple[list, web.Outcome]:
    steps = list(run)
    return steps, run.outcome


# --- the form: from the settings fields ------------------------------------------------------------


def test_controls_take_default_help_and_range_from_the_settings_fields():
    bb = web.get_backbone("vgg19")
    for tab in web.TABS:
        cls = settings_for(web.KIND_OF_TAB[tab])
        fields = {f.name: f for f in cls.fields()}
        for c in web.controls(tab, bb):
            assert fields[c.name].metadata["spec"].help in c.help
            if c.kind == "slider":
                bounds = fields[c.name].metadata["spec"].bounds  # declared with the option
                lo, hi = (bounds.lo, bounds.hi) if bounds else (1, 65_536)  # texture: WxH
                assert lo <= c.minimum <= c.default <= c.maximum <= hi
    assert (
        web.form_spec("dream", "iterations").default
        == settings_for("dream").__dataclass_fields__["iterations"].default
        == 10
    )
    assert web.form_spec("transfer", "size").default == 512  # the computed default, as --help shows it
    layers = web.form_spec("transfer", "style_layers", bb)
    assert layers.choices == bb.layer_map.names and layers.default == list(bb.style_layers)
    assert web.form_spec("hybrid", "dream_layers", bb).choices[0] == "auto"


def test_the_form_makes_the_same_settings_as_the_api(images):
    content, style = images
    settings = web.settings_from_form("transfer", transfer_form(content, style))
    # the backbone's own layers and the computed size leave the settings at their defaults
    assert settings == TransferSettings(
        content=str(content), styles=(str(style),), weights="random", size=48, iterations=5, seed=7
    )
    changed = web.settings_from_form(
        "transfer", transfer_form(content, style, style_layers=["relu1_1"], style_weight=250.0)
    )
    assert changed.style_layers == {"relu1_1": 1.0} and changed.style_weight == 250.0
    hybrid = web.settings_from_form("hybrid", {**transfer_form(content, style), "dream_layers": ["auto"]})
    assert hybrid.dream_layers == ("auto",)
    with pytest.raises(OptionError, match="dream layer"):
        web.settings_from_form("hybrid", {**transfer_form(content, style), "dream_layers": []})
    with pytest.raises(OptionError, match="--seed"):
        web.settings_from_form("transfer", transfer_form(content, style, seed="12x"))
    with pytest.raises(ImageError, match="upload or pick a style image"):
        web.settings_from_form("transfer", transfer_form(content, style, styles_upload=[]))


def test_samples_are_offered_and_picked():
    assert {"chelsea.png", "starry_night.jpg"} <= set(web.samples())
    form = {"content_sample": "chelsea.png", "styles_sample": ["starry_night.jpg"], "weights": "random"}
    settings = web.settings_from_form("transfer", form)
    assert Path(settings.content) == web.SAMPLES / "chelsea.png"
    command = web.command_for(settings, "out.png", web.display_names(settings))  # by name, as an upload
    assert command.startswith("dreamstyle transfer chelsea.png starry_night.jpg -o out.png")
    assert str(web.SAMPLES.parent) not in command and "samples/" not in command
    with pytest.raises(ImageError, match="no sample"):
        web.settings_from_form("transfer", {**form, "content_sample": "../../etc/passwd"})


# --- bad uploads: a message, never a crash ----------------------------------------------------------


def test_a_bad_upload_is_one_message_naming_the_file_not_the_server_folder(tmp_path, images, monkeypatch):
    content, style = images
    text = tmp_path / "notes.png"
    text.write_text("not a picture")
    with pytest.raises(ImageError) as caught:
        web.settings_from_form("transfer", transfer_form(text, style))
    assert "notes.png is not an image" in str(caught.value) and str(tmp_path) not in str(caught.value)
    assert "notes.png" in web._upload_note([str(text)]) and web._upload_note([str(content)]) == ""
    big = make_image(tmp_path / "big.png", size=(300, 200))
    with pytest.raises(ImageError, match="big.png is 300x200 = 60,000 pixels, above the limit"):
        web.check_upload(big, max_pixels=50_000)
    web.check_upload(big)
    with monkeypatch.context() as m:  # a file larger than the page takes, whatever its pixels
        m.setattr(web, "MAX_IMAGE_BYTES", big.stat().st_size - 1)
        with pytest.raises(ImageError, match=r"^big.png is 0 MB; the page takes images up to 0 MB$"):
            web.check_upload(big)
    tiny = make_image(tmp_path / "tiny.png", size=(12, 10))
    settings = web.settings_from_form("transfer", transfer_form(tiny, style, size=12))
    with pytest.raises(UserError, match="below the 16 px minimum") as caught:
        finished(web.WebRun("transfer", settings, tmp_path))
    assert "minimum" in web.friendly(caught.value, [tiny])


def test_out_of_memory_is_a_message_with_the_best_picture_kept(tmp_path, images):
    content, style = images
    settings = web.settings_from_form("transfer", transfer_form(content, style))
    run = web.WebRun("transfer", settings, tmp_path)
    real, calls = run._callback, []

    def callback(event):  # the host runs out of memory at the third step
        calls.append(event)
        if len(calls) == 3:
            raise MemoryError
        real(event)

    run._callback = callback
    _, out = finished(run)
    assert out.stopped and "out of memory" in out.line and "best picture so far is kept" in out.line
    assert read_recipe(out.path)["stopped"] == "out of memory"


# --- running: live steps, the PNG with its recipe, Stop ---------------------------------------------


def test_a_run_reports_steps_and_writes_a_png_with_its_recipe(tmp_path, images):
    content, style = images
    settings = web.settings_from_form("transfer", transfer_form(content, style))
    steps, out = finished(web.WebRun("transfer", settings, tmp_path))
    assert [s.line.split(" · ")[0] for s in steps] == [f"iteration {i}/5" for i in range(1, 6)]
    assert "style" in steps[-1].line and "ETA" in steps[-1].line
    assert any(s.image is not None for s in steps)
    assert out.path.is_file() and out.path.suffix == ".png" and tmp_path in out.path.parents
    with Image.open(out.path) as img:
        assert img.format == "PNG" and img.size == (48, 40)
    recipe = read_recipe(out.path)
    assert recipe["command"] == "transfer" and recipe["iterations"] == 5 and recipe["seed"] == 7
    assert recipe["content"] == "photo.png" and str(tmp_path) not in str(recipe)  # names, not server folders
    assert out.command.startswith("dreamstyle transfer photo.png painting.png -o dreamstyle-transfer-7.png")


def test_stop_keeps_the_best_picture_so_far(tmp_path, images):
    content, style = images
    settings = web.settings_from_form("transfer", transfer_form(content, style, iterations=50))
    stop = threading.Event()
    run = web.WebRun("transfer", settings, tmp_path, stop)
    seen = 0
    for _ in run:
        seen += 1
        if seen == 3:
            stop.set()  # the Stop button
    out = run.outcome
    assert seen < 50 and out.stopped and out.line.startswith("stopped; the best picture so far is kept")
    assert read_recipe(out.path)["stopped"] == "interrupted" and out.image.size == (48, 40)
    # the download is named for the stop and the copy command asks for the steps that made the picture
    at = run.last.iteration
    assert 3 <= at < 50 and out.path.name == f"dreamstyle-transfer-7-stopped-at-{at}.png"
    assert out.command.endswith(f"-o {out.path.name} --weights random --seed 7 --size 48 --iterations {at}")
    again, _ = parsed(out.command, tmp_path)
    _, remade = finished(web.WebRun("transfer", again.replace(content=str(content), styles=(str(style),)), tmp_path))
    assert np.array_equal(np.asarray(Image.open(remade.path)), np.asarray(Image.open(out.path)))  # same seed, CPU


def test_a_dream_stopped_in_a_later_octave_says_its_command_runs_every_step(tmp_path, images):
    content, _ = images
    dream = web.settings_from_form(
        "dream",
        {"input_upload": str(content), "weights": "random", "size": 48, "iterations": 4, "octaves": 2, "seed": "1"},
    )
    stop = threading.Event()
    run = web.WebRun("dream", dream, tmp_path, stop)
    for step in run:
        if step.line.startswith("iteration 2/4 · octave 2/2"):
            stop.set()
    out = run.outcome
    assert out.stopped and out.path.name == "dreamstyle-dream-1-stopped-at-octave-2-step-2.png"
    command, comment = out.command.split("  # ")
    assert comment == "stopped at octave 2/2, iteration 2/4: this command runs every step"
    assert parsed(command, tmp_path)[0].iterations == 4  # no option stops an octave part-way


def test_a_dream_and_a_hybrid_from_the_page(tmp_path, images):
    content, style = images
    dream = web.settings_from_form(
        "dream",
        {
            "input_upload": str(content),
            "weights": "random",
            "size": 48,
            "iterations": 2,
            "octaves": 1,
            "layers": ["relu4_4"],
            "seed": "1",
        },
    )
    assert dream.layers == () and dream.octaves == 1  # the backbone's dream layer: the default
    _, out = finished(web.WebRun("dream", dream, tmp_path))
    assert read_recipe(out.path)["command"] == "dream"
    hybrid = web.settings_from_form("hybrid", {**transfer_form(content, style, iterations=2), "dream_layers": ["auto"]})
    _, out = finished(web.WebRun("hybrid", hybrid, tmp_path))
    recipe = read_recipe(out.path)
    assert recipe["dream_layers"] == ["auto"] and recipe["dream_layers_used"] and "dream layer" in out.line


# --- the command and the recipe ------------------------------------------------------------------------


def parsed(command: str, cwd: Path):
    """The settings the command line makes of ``command`` (run from ``cwd``)."""
    from dreamstyle.cli import main
    from dreamstyle.cli.options import split

    words = shlex.split(command)
    assert words[0] == "dreamstyle"
    ctx = main.commands[words[1]].make_context(words[1], words[2:])
    values, outputs = split(settings_for(words[1]), ctx.params)
    for key in ("content", "input"):
        if values.get(key) is not None:
            values[key] = str(cwd / values[key])
    if values.get("styles"):
        values["styles"] = tuple(str(cwd / s) for s in values["styles"])
    return settings_for(words[1])(**values), outputs


@pytest.mark.parametrize(
    "tab, more",
    [
        ("transfer", {"style_layers": ["relu1_1", "relu3_1"], "content_weight": 7.5, "tv_weight": 0.0}),
        ("hybrid", {"dream_layers": ["auto", "relu3_3"], "dream_weight": 5e4}),
    ],
)
def test_the_copy_command_makes_the_same_settings(tmp_path, images, tab, more):
    content, style = images
    settings = web.settings_from_form(tab, transfer_form(content, style, **more))
    command = web.command_for(settings, "out.png", web.display_names(settings))
    again, outputs = parsed(command, tmp_path)
    assert again == settings and outputs["output"] == Path("out.png")


def test_the_copy_command_reproduces_the_picture(tmp_path, images, runner, monkeypatch):
    from dreamstyle.cli import main

    content, style = images
    server = tmp_path / "server"
    server.mkdir()
    settings = web.settings_from_form("transfer", transfer_form(content, style, iterations=3))
    _, out = finished(web.WebRun("transfer", settings, server))
    monkeypatch.chdir(tmp_path)  # where the user's photo.png and painting.png are
    result = runner.invoke(main, shlex.split(out.command)[1:] + ["-q"])
    assert result.exit_code == 0, result.output
    made = np.asarray(Image.open(tmp_path / out.path.name))
    assert np.array_equal(made, np.asarray(Image.open(out.path)))


def test_a_dropped_picture_restores_its_settings(tmp_path, images):
    content, style = images
    form = transfer_form(content, style, iterations=3, style_layers=["relu2_1"], content_weight=2.5)
    settings = web.settings_from_form("transfer", form)
    _, out = finished(web.WebRun("transfer", settings, tmp_path))
    restored = web.restore(out.path)
    assert restored.tab == "transfer" and sorted(restored.missing) == ["painting.png", "photo.png"]
    assert restored.form["style_layers"] == ["relu2_1"] and restored.form["iterations"] == 3
    assert restored.form["weights"] == "random" and restored.form["seed"] == "7"
    again = web.settings_from_form(
        "transfer", {**restored.form, "content_upload": str(content), "styles_upload": [str(style)]}
    )
    assert again == settings
    samples = web.settings_from_form(
        "dream",
        {"input_sample": "chelsea.png", "weights": "random", "size": 40, "iterations": 1, "octaves": 1, "seed": "3"},
    )
    _, dream = finished(web.WebRun("dream", samples, tmp_path))
    restored = web.restore(dream.path)
    assert restored.tab == "dream" and restored.missing == [] and restored.form["input_sample"] == "chelsea.png"
    assert restored.unshown == [] and "no control" not in restored.note(dream.path.name)
    plain = make_image(tmp_path / "plain.png")
    with pytest.raises(ImageError, match="plain.png carries no dreamstyle recipe"):
        web.restore(plain)


def test_a_restore_names_every_setting_the_page_cannot_show(tmp_path, images):
    content, style = images
    settings = web.settings_from_form("transfer", transfer_form(content, style, iterations=1)).replace(
        scales=(32, 48), losses={"tv": (3.0, {})}, style_layers={"relu1_1": 1.0, "relu2_1": 0.5}
    )
    _, out = finished(web.WebRun("transfer", settings, tmp_path))
    restored = web.restore(out.path)
    assert restored.form["iterations"] == 1 and restored.form["size"] == 48  # what the page can show
    assert restored.unshown == ["--loss tv=3", "--style-layers relu1_1,relu2_1=0.5", "--scales 32,48"]
    note = restored.note(out.path.name)
    assert "no control for `--loss tv=3`, `--style-layers relu1_1,relu2_1=0.5`, `--scales 32,48`" in note
    assert f"dreamstyle transfer --from {out.path.name}" in note
    bb = web.get_backbone("vgg19")
    dream = {
        "param": "fft",
        "transforms": ("jitter",),
        "gradient": "lapnorm",
        "weights": "mine.pth",
        "size": 64,
        "octaves": 1,
        "layers": ("relu4_4",),
    }
    assert sorted(web.unshown("dream", dream, bb)) == [
        "--gradient lapnorm",
        "--param fft",
        "--transforms jitter",
        "--weights mine.pth",
    ]
    assert web.unshown("transfer", {"size": (64, 48), "iterations": 5000}, bb) == ["--size 64x48", "--iterations 5000"]


def test_the_restore_drop_zone_is_emptied_for_the_next_picture(tmp_path, images):
    pytest.importorskip("gradio", reason="Gradio is not installed (pip install 'dreamstyle[web]')")
    content, style = images
    _, out = finished(
        web.WebRun(
            "transfer", web.settings_from_form("transfer", transfer_form(content, style, iterations=1)), tmp_path
        )
    )
    page = web.build_page(tmp_path)
    [drop] = [fn for fn in page.fns.values() if [c.elem_id for c in fn.inputs] == ["recipe-drop"]]
    assert drop.targets[0][1] == "upload" and drop.outputs[0].elem_id == "recipe-drop"
    cleared, _, note, *_ = drop.fn(str(out.path))
    assert cleared is None and note.startswith(f"restored the Style transfer settings of {out.path.name}")
    cleared, _, note, *_ = drop.fn(str(make_image(tmp_path / "plain.png")))
    assert cleared is None and note == "**plain.png carries no dreamstyle recipe**"


# --- the page -----------------------------------------------------------------------------------------


def test_one_run_at_a_time_on_the_device(tmp_path):
    pytest.importorskip("gradio", reason="Gradio is not installed (pip install 'dreamstyle[web]')")
    page = web.build_page(tmp_path)
    runs = [fn for fn in page.fns.values() if str(getattr(fn, "api_name", "")).startswith("run_")]
    assert sorted(fn.api_name for fn in runs) == ["run_dream", "run_hybrid", "run_texture", "run_transfer"]
    assert {(fn.concurrency_id, fn.concurrency_limit) for fn in runs} == {("device", 1)}
    assert any(getattr(fn, "api_name", "") == "stylize" for fn in page.fns.values())  # the Instant tab


def test_serve_without_gradio_is_one_line(runner, monkeypatch):
    from dreamstyle.cli import main

    monkeypatch.setitem(sys.modules, "gradio", None)
    result = runner.invoke(main, ["serve"])
    assert result.exit_code == 1
    assert result.output.strip() == "Error: the web page needs Gradio: pip install 'dreamstyle[web]'"


# --- in a real browser ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    """``dreamstyle serve`` in its own process: its url and folder (its current folder and TMPDIR, so
    that a test sees all it wrote); its stderr goes to serve.txt beside that folder."""
    pytest.importorskip("gradio", reason="Gradio is not installed (pip install 'dreamstyle[web]')")
    port = free_port()
    served = tmp_path / "served"
    served.mkdir()
    env = {**os.environ, "DREAMSTYLE_DISABLE_PLUGIN_AUTOLOAD": "1", "OMP_NUM_THREADS": "1", "TMPDIR": str(served)}
    err = tmp_path / "serve.txt"
    with open(err, "w") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dreamstyle", "serve", "--port", str(port)], stderr=fh, env=env, cwd=served
        )
    try:
        deadline = time.monotonic() + 180
        while f"http://127.0.0.1:{port}/" not in err.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, err.read_text()
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}/", served
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def browser_or_skip():
    """Playwright's sync API where it and Debian's chromium are here; else the test skips, saying which is missing."""
    if CHROMIUM is None:
        pytest.skip("no chromium on this machine (apt-get install -y chromium; .ci/run installs it)")
    return pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install playwright)")


def test_a_style_transfer_in_a_real_browser(server, tmp_path_factory):
    playwright = browser_or_skip()
    url, served = server
    files = tmp_path_factory.mktemp("browser")
    shot = os.environ.get("DREAMSTYLE_SCREENSHOT")
    if shot:  # the README's picture: the sample photo and painting, pretrained weights, a visible size
        content, style = [Path(shutil.copy(web.SAMPLES / n, files / n)) for n in ("chelsea.png", "starry_night.jpg")]
        weights, size, iterations = "pretrained", 160, 15
    else:
        content = make_image(files / "photo.png", size=(48, 40))
        style = make_image(files / "painting.png", size=(48, 40), seed=1, kind="stripes")
        weights, size, iterations = "random", 48, 5
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
            page.goto(url)
            page.set_input_files("#transfer-content-upload input[type=file]", str(content))
            page.set_input_files("#transfer-styles-upload input[type=file]", str(style))
            expect = playwright.expect
            expect(page.locator("#transfer-content-upload")).to_contain_text(content.stem)  # uploaded
            expect(page.locator("#transfer-styles-upload")).to_contain_text(style.stem)
            page.locator("#transfer-weights").get_by_label(weights).check()
            for name, value in (("size", str(size)), ("iterations", str(iterations))):
                box = page.locator(f"#transfer-{name} input[type=number]")
                box.fill(value)
                box.press("Enter")
            page.locator("#transfer-seed textarea, #transfer-seed input").first.fill("11")
            page.click("#transfer-run")
            link = page.locator("#transfer-download a").first
            link.wait_for(timeout=120_000)
            page.locator("#transfer-picture img").first.wait_for()
            with page.expect_download() as caught:
                link.click()
            downloaded = files / "downloaded.png"
            caught.value.save_as(downloaded)
            command = page.locator("#transfer-command textarea").input_value()
            status = page.locator("#transfer-status").inner_text()
            if shot:
                page.screenshot(path=shot, full_page=True)
        finally:
            browser.close()
    with Image.open(downloaded) as img:
        assert img.format == "PNG" and max(img.size) == size
    recipe = read_recipe(downloaded)
    assert recipe["command"] == "transfer" and recipe["iterations"] == iterations and recipe["size"] == size
    assert recipe["seed"] == 11 and recipe["stopped"] is None and recipe["content"] == content.name
    assert (recipe["weights"] == "random") == (weights == "random")
    assert command == (
        f"dreamstyle transfer {content.name} {style.name} -o dreamstyle-transfer-11.png "
        + ("--weights random " if weights == "random" else "")
        + f"--seed 11 --size {size} --iterations {iterations}"
    )
    assert status.startswith("done")
    folders = list(served.glob("dreamstyle-web-*"))  # the server's temporary folder (TMPDIR), all it wrote
    assert len(folders) == 1 and any(folders[0].rglob("dreamstyle-transfer-11.png"))
    assert not any(p for p in served.iterdir() if p not in folders)  # nothing in its current folder


def test_a_value_the_page_does_not_offer_is_one_line_and_no_traceback_in_the_log(server, tmp_path):
    """A script calling the page's API with values its controls do not offer (issue 35): dreamstyle's one
    line on the page, not Gradio's refusal with a traceback in the server's log."""
    from gradio_client import Client, handle_file

    url, served = server
    client = Client(url, verbose=False)
    no_network = {"param_6": None}  # the network upload (a File has no default in Gradio's API)
    message, *_ = client.predict(None, "../../../../etc/passwd", [], **no_network, api_name="/run_transfer")
    assert message == "**there is no sample image '../../../../etc/passwd'**"
    message, *_ = client.predict(
        None, "chelsea.png", [], ["starry_night.jpg"], "vgg19", "/etc/passwd", **no_network, api_name="/run_transfer"
    )  # content, its sample, styles, theirs, backbone, weights
    assert message == "**weights: choose pretrained or random, not '/etc/passwd'**"
    notes = tmp_path / "notes.txt"
    notes.write_text("not a picture")
    with pytest.raises(Exception, match="Invalid file type"):  # Gradio's own check of an upload, kept
        client.predict(handle_file(str(notes)), "chelsea.png", [], **no_network, api_name="/run_transfer")
    log = (served.parent / "serve.txt").read_text()
    assert "Traceback" not in log, log


# --- the Instant tab: a trained style network on a photo ---------------------------------------------


def test_the_instant_tab_stylizes_with_an_uploaded_network(tmp_path, images):
    from dreamstyle.fastnet import Architecture, StyleNet, save_model

    photo, _ = images
    model = save_model(tmp_path / "starry.dsm", StyleNet(Architecture(width=4, blocks=1)), {"made": "here"})
    out = web.stylize_upload(str(model), str(photo), tmp_path, strength=0.5, preserve_color=True, device="cpu")
    assert out.path.is_file() and out.path.parent == tmp_path and "ms" in out.line
    recipe = read_recipe(out.path)
    assert recipe["command"] == "stylize" and recipe["model"] == "starry.dsm" and recipe["strength"] == 0.5
    assert (
        out.command
        == f"dreamstyle stylize starry.dsm photo.png -o {out.path.name} --strength 0.5 --preserve-color luminance"
    )
    with Image.open(out.path) as img:
        assert img.size == Image.open(photo).size
    (tmp_path / "server").mkdir()
    bad = tmp_path / "server" / "broken.dsm"
    bad.write_bytes(b"not a model")
    with pytest.raises(UserError) as caught:
        web.stylize_upload(str(bad), str(photo), tmp_path, device="cpu")
    assert "broken.dsm" in str(caught.value) and str(tmp_path / "server") not in str(caught.value)
    with pytest.raises(UserError, match="give a style network"):
        web.stylize_upload(None, str(photo), tmp_path)


# --- your own network, uploaded (issue 33) ---------------------------------------------------------


def small_network(path: Path) -> Path:
    """A small RGB CNN saved as TorchScript (made here: no weights to download)."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(
        OrderedDict(
            conv1=nn.Conv2d(3, 8, 3, padding=1),
            relu1=nn.ReLU(),
            conv2=nn.Conv2d(8, 16, 3, stride=2, padding=1),
            relu2=nn.ReLU(),
        )
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.jit.script(model.eval()).save(str(path))
    return path


def network_form(content, style, network, **more):
    form = transfer_form(content, style, network_upload=str(network))
    del form["content_layers"], form["style_layers"]  # the network's own
    return {**form, **more}


def test_an_uploaded_network_runs_and_its_command_and_recipe_name_the_file(tmp_path, images):
    content, style = images
    network = small_network(tmp_path / "server" / "mynet.pt")
    backbone = web.network_backbone(network)
    (content_choices, content_value), (style_choices, style_value) = web.layer_choices("transfer", backbone)
    assert content_choices == style_choices == list(backbone.layer_map.names) and len(content_choices) >= 2
    assert content_value == list(backbone.content_layers) and style_value == list(backbone.style_layers)
    assert web.layer_choices("transfer", backbone, [[content_choices[0]], ["relu4_2"]]) == [
        (content_choices, [content_choices[0]]),  # kept where the network has it
        (style_choices, style_value),  # vgg19's layer: the network's defaults instead
    ]
    settings = web.settings_from_form("transfer", network_form(content, style, network))
    assert settings.backbone == f"file:{network}" and settings.weights is None  # the file carries its weights
    steps, out = finished(web.WebRun("transfer", settings, tmp_path))
    assert steps and out.path.is_file() and out.line.startswith("done")
    assert "--backbone mynet.pt" in out.command and str(tmp_path) not in out.command
    assert "--weights" not in out.command
    recipe = read_recipe(out.path)
    assert recipe["backbone"] == "mynet.pt" and "mynet.pt" in recipe["inputs"]
    other = next(layer for layer in style_choices if [layer] != style_value)
    chosen = web.settings_from_form("transfer", network_form(content, style, network, style_layers=[other]))
    assert chosen.style_layers == {other: 1.0}


def test_a_pickle_a_wrong_kind_and_a_too_large_network_are_one_line_naming_the_file(tmp_path, images, monkeypatch):
    import torch
    from torch import nn

    content, style = images
    server = tmp_path / "server"
    pickled = server / "pickled.pt"
    server.mkdir()
    torch.save(nn.Sequential(nn.Conv2d(3, 4, 3)), pickled)
    damaged = server / "damaged.pt2"
    damaged.write_bytes(b"PK\x03\x04 not a whole archive")
    other = server / "model.pkl"
    other.write_bytes(b"anything")
    for path, says in (
        (pickled, "pickled.pt is a whole module pickled by torch.save, which dreamstyle never unpickles"),
        (damaged, "damaged.pt2 is"),
        (other, "model.pkl: upload a network as TorchScript (.pt, .ts), a torch.export archive (.pt2) or ONNX"),
    ):
        with pytest.raises(UserError) as caught:
            web.settings_from_form("transfer", network_form(content, style, path))
        message = str(caught.value)
        assert message.startswith(says) and str(server) not in message and "\n" not in message, message
        assert "MODULE:CALLABLE" not in message  # the command line's way, not the page's
    network = small_network(server / "big.pt")
    monkeypatch.setattr(web, "MAX_NETWORK_BYTES", network.stat().st_size - 1)
    with pytest.raises(OptionError, match=r"^big.pt is 0 MB; the page takes networks up to 0 MB$"):
        web.network_backbone(network)


def test_a_picture_made_with_an_uploaded_network_restores_all_but_the_network(tmp_path, images):
    content, style = images
    network = small_network(tmp_path / "server" / "mynet.pt")
    backbone = web.network_backbone(network)
    layer = next(name for name in backbone.layer_map.names if [name] != list(backbone.style_layers))
    settings = web.settings_from_form("transfer", network_form(content, style, network, style_layers=[layer]))
    _, out = finished(web.WebRun("transfer", settings, tmp_path))
    restored = web.restore(out.path)
    assert "backbone" not in restored.form and restored.unshown == []
    assert sorted(restored.missing) == ["mynet.pt (the network)", "painting.png", "photo.png"]
    assert restored.form["style_layers"] == [layer] and restored.form["content_layers"] == []
    again = web.settings_from_form(
        "transfer",
        {
            **restored.form,
            "content_upload": str(content),
            "styles_upload": [str(style)],
            "network_upload": str(network),
        },
    )
    assert again == settings


def test_a_network_uploaded_in_a_real_browser_offers_its_layers_and_runs(server, tmp_path):
    playwright = browser_or_skip()
    from gradio_client import Client, handle_file

    url, served = server
    network = small_network(tmp_path / "mine" / "mynet.pt")
    pickled = tmp_path / "mine" / "pickled.pt"
    import torch

    torch.save(torch.nn.Conv2d(3, 4, 3), pickled)
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url)
            expect = playwright.expect
            expect(page.locator("#transfer-style_layers")).to_contain_text("relu5_1")  # vgg19's
            page.set_input_files("#transfer-network-upload input[type=file]", str(pickled))
            expect(page.locator("#transfer-message")).to_contain_text("pickled.pt is a whole module pickled")
            expect(page.locator("#transfer-style_layers")).to_contain_text("relu5_1")  # unchanged
            page.locator("#transfer-network-upload button[aria-label='Clear']").first.click()
            page.set_input_files("#transfer-network-upload input[type=file]", str(network))
            expect(page.locator("#transfer-style_layers")).not_to_contain_text("relu5_1", timeout=60_000)
            expect(page.locator("#transfer-style_layers")).to_contain_text("relu1")  # the network's own
            expect(page.locator("#transfer-message")).to_have_text("")
        finally:
            browser.close()
    client = Client(url, verbose=False)  # the same page through its API: a run with the network
    message, status, _, download, command = client.predict(
        None,
        "chelsea.png",
        [],
        ["starry_night.jpg"],
        "vgg19",
        "pretrained",
        handle_file(str(network)),
        [],
        ["relu2"],
        40,
        3,
        api_name="/run_transfer",
    )  # content, its sample, styles, theirs, backbone, weights, network, content and style layers, size, iterations
    assert not (isinstance(message, str) and message), message  # (an update left alone, or "")
    assert status.startswith("done") and "--backbone mynet.pt" in command and "--style-layers relu2" in command
    recipe = read_recipe(download)
    assert recipe["backbone"] == "mynet.pt" and recipe["style_layers"] == {"relu2": 1.0}
    assert str(served) not in command and str(tmp_path) not in json.dumps(recipe)
    message, *_ = client.predict(
        None,
        "chelsea.png",
        [],
        ["starry_night.jpg"],
        "vgg19",
        "pretrained",
        handle_file(str(pickled)),
        api_name="/run_transfer",
    )
    assert message.startswith("**pickled.pt is a whole module pickled by torch.save")
    log = (served.parent / "serve.txt").read_text()
    assert "Traceback" not in log, log
