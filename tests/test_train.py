"""Feed-forward style networks: training through the one runner, model files, applying them."""

import io
import pickle

import pytest
import torch
from PIL import Image

import dreamstyle
from dreamstyle.errors import OptionError, UserError
from dreamstyle.fastnet import FORMAT, Architecture, ModelError, StyleNet, load_model, save_model, stylize
from dreamstyle.jobs.train import Photos

TINY = dict(size=32, weights="random", seed=3, width=8, blocks=1, batch=2)


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    g = torch.Generator().manual_seed(0)
    for i in range(5):
        h, w = 40 + 4 * i, 52
        x = torch.rand(3, h, w, generator=g)
        x[0, :, : w // 3] = 0.9  # a red band: something for the content term to keep
        arr = (x.permute(1, 2, 0) * 255).byte().numpy()
        Image.fromarray(arr).save(folder / f"photo{i}.png")
    return folder


@pytest.fixture
def style(tmp_path):
    g = torch.Generator().manual_seed(1)
    stripes = torch.zeros(3, 40, 40)
    stripes[2, :, ::4] = 1.0
    stripes[1] = torch.rand(40, 40, generator=g) * 0.3
    path = tmp_path / "style.png"
    Image.fromarray((stripes.permute(1, 2, 0) * 255).byte().numpy()).save(path)
    return path


def test_training_lowers_the_objective_on_photos_it_never_saw(photos, style, tmp_path):
    out = tmp_path / "style.dsm"
    untrained = dreamstyle.train(photos, [style], out, iterations=1, lr=1e-12, held_out=2, **TINY)
    before = untrained.job.loss_on(untrained.job.held_out)
    trained = dreamstyle.train(photos, [style], out, iterations=40, held_out=2, overwrite=True, **TINY)
    after = trained.job.loss_on(trained.job.held_out)
    assert trained.stopped is None
    assert set(p.name for p in trained.job.held_out).isdisjoint(p.name for p in trained.job.paths)
    assert after < 0.7 * before, (before, after)
    model = load_model(out)
    assert model.step == 40 and model.recipe["command"] == "train"
    assert set(model.recipe["photos_sha256"]) == {p.name for p in trained.job.paths}


def test_a_model_gives_the_same_picture_twice_at_any_size(tmp_path):
    torch.manual_seed(0)
    net = StyleNet(Architecture(width=4, blocks=1))
    path = save_model(tmp_path / "m.dsm", net, {"made": "here"}, step=7)
    model = load_model(path)
    x = torch.rand(1, 3, 37, 53)  # odd sides come back at their size
    a, b = stylize(model.net, x), stylize(model.net, x)
    assert a.shape == x.shape and torch.equal(a, b)
    assert float(a.min()) >= 0 and float(a.max()) <= 1
    assert torch.allclose(stylize(model.net, x, strength=0.0), x)
    image = Image.fromarray((x[0].permute(1, 2, 0) * 255).byte().numpy())
    assert dreamstyle.stylize(path, image, device="cpu").size == (53, 37)


def test_the_light_architecture_has_the_channels_asked_and_round_trips(tmp_path):
    arch = Architecture(width=8, blocks=2, growth=1, taper=4)
    assert arch.channels() == ([8, 8, 8], [2, 2])
    net = StyleNet(arch)
    assert net.out[1].in_channels == 2 and net.blocks[0].body[1].num_features == 8
    light, johnson = (
        sum(p.numel() for p in net.parameters()),
        sum(p.numel() for p in StyleNet(Architecture(width=8, blocks=2, growth=2, taper=1)).parameters()),
    )
    assert light < johnson / 3
    model = load_model(save_model(tmp_path / "light.dsm", net, {}))
    assert model.net.arch == arch
    x = torch.rand(1, 3, 30, 42)
    assert torch.equal(stylize(model.net, x), stylize(net.eval(), x))
    older = save_model(tmp_path / "older.dsm", StyleNet(Architecture(width=4, blocks=1, growth=2, taper=1)), {})
    data = torch.load(older, weights_only=True)  # a file from before growth and taper: Johnson's channels
    data["architecture"] = {k: v for k, v in data["architecture"].items() if k not in ("growth", "taper")}
    torch.save(data, older)
    assert load_model(older).net.arch.channels() == ([4, 8, 16], [8, 4])
    for bad in (dict(growth=3), dict(taper=0)):
        with pytest.raises(ModelError, match=next(iter(bad))):
            Architecture(**bad).check()


def test_model_files_that_are_wrong_are_one_line(tmp_path):
    net = StyleNet(Architecture(width=4, blocks=1))
    good = save_model(tmp_path / "good.dsm", net, {})
    data = torch.load(good, weights_only=True)

    def written(name, payload):
        buf = io.BytesIO()
        torch.save(payload, buf)
        (tmp_path / name).write_bytes(buf.getvalue())
        return tmp_path / name

    cases = {
        written("future.dsm", {**data, "version": 99}): "format version 99",
        written("shape.dsm", {**data, "architecture": {**data["architecture"], "width": 8}}): "do not fit",
        written("other.dsm", {"format": "something else"}): "not a dreamstyle model",
        tmp_path / "missing.dsm": "no such model file",
    }
    (tmp_path / "damaged.dsm").write_bytes(good.read_bytes()[:100])
    cases[tmp_path / "damaged.dsm"] = "not a dreamstyle model"
    for path, words in cases.items():
        with pytest.raises(ModelError) as err:
            load_model(path)
        assert words in str(err.value) and "\n" not in str(err.value)


class _Boom:
    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('x')",))


def test_a_model_file_never_executes_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    evil = tmp_path / "evil.dsm"
    evil.write_bytes(pickle.dumps({"format": FORMAT, "version": 1, "state": _Boom()}, protocol=2))
    with pytest.raises(ModelError):
        load_model(evil)
    assert not (tmp_path / "PWNED").exists()


def test_batches_follow_the_seed_so_a_resumed_run_sees_the_same_photos(photos):
    paths = sorted(photos.iterdir())
    a, b = Photos(paths, 24, 2, seed=5, max_pixels=10**8), Photos(paths, 24, 2, seed=5, max_pixels=10**8)
    assert torch.equal(a.batch_at(7), b.batch_at(7))
    assert not torch.equal(a.batch_at(7), a.batch_at(8))


def test_resume_goes_on_from_the_model_files_step(photos, style, tmp_path):
    out = tmp_path / "m.dsm"
    dreamstyle.train(photos, [style], out, iterations=3, **TINY)
    first = load_model(out)
    more = dreamstyle.train(photos, [style], out, iterations=2, resume=True, **TINY)
    assert more.job.first_step == 3 and load_model(out).step == 5
    changed = any(
        not torch.equal(p, q)
        for p, q in zip(first.net.state_dict().values(), load_model(out).net.state_dict().values())
    )
    assert changed


def test_unreadable_photos_are_skipped_with_one_line_each(photos, style, tmp_path):
    broken = photos / "broken.png"
    broken.write_bytes(b"not a png")
    lines = []
    crops = Photos([broken, photos / "photo0.png"], 24, 1, seed=0, max_pixels=10**8, on_skip=lines.append)
    assert crops.centre(broken) is None and crops.centre(broken) is None
    assert crops.batch_at(1).shape == (1, 3, 24, 24)  # drawn from the photo that reads
    assert len(lines) == 1 and "broken.png" in lines[0] and "\n" not in lines[0]
    only_broken = tmp_path / "only"
    only_broken.mkdir()
    (only_broken / "a.png").write_bytes(b"nothing")
    with pytest.raises(UserError, match="could be read"):
        dreamstyle.train(only_broken, [style], tmp_path / "m.dsm", iterations=2, on_skip=lines.append, **TINY)


def test_ctrl_c_still_writes_the_weights_reached(photos, style, tmp_path):
    def interrupt(event):
        if event.iteration == 3:
            raise KeyboardInterrupt

    out = tmp_path / "m.dsm"
    result = dreamstyle.train(photos, [style], out, iterations=10, callback=interrupt, **TINY)
    assert result.stopped is not None and result.stopped.value == "interrupted"
    assert load_model(out).step == 2


def test_checkpoints_are_written_every_n_steps(photos, style, tmp_path):
    out, steps = tmp_path / "m.dsm", []

    def watch(event):
        if out.exists():
            steps.append(load_model(out).step)

    dreamstyle.train(photos, [style], out, iterations=5, checkpoint_every=2, callback=watch, **TINY)
    assert 2 in steps and 4 in steps and load_model(out).step == 5


def test_training_refuses_what_it_cannot_do(photos, style, tmp_path):
    with pytest.raises(OptionError, match="L-BFGS"):
        dreamstyle.train(photos, [style], tmp_path / "m.dsm", iterations=2, optimizer="lbfgs", **TINY)
    with pytest.raises(OptionError, match="--preserve-color"):
        dreamstyle.train(photos, [style], tmp_path / "m.dsm", iterations=2, preserve_color="luminance", **TINY)
    with pytest.raises(UserError, match="folder of photos"):
        dreamstyle.train(style, [style], tmp_path / "m.dsm", iterations=2, **TINY)
    with pytest.raises(UserError, match=r"\.dsm"):
        dreamstyle.train(photos, [style], tmp_path / "m.png", iterations=2, **TINY)
    with pytest.raises(UserError, match="--tile goes with"):
        dreamstyle.train(photos, [style], tmp_path / "m.dsm", iterations=2, tile=64, **TINY)
    (tmp_path / "taken.dsm").write_bytes(b"x")
    with pytest.raises(UserError, match="exists"):
        dreamstyle.train(photos, [style], tmp_path / "taken.dsm", iterations=2, **TINY)


def test_an_onnx_export_gives_the_same_pictures_in_onnxruntime(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from dreamstyle.fastnet import export_onnx

    torch.manual_seed(0)
    net = StyleNet(Architecture(width=4, blocks=1)).eval()
    path = export_onnx(net, tmp_path / "m.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for shape in [(1, 3, 37, 53), (2, 3, 64, 48)]:  # any batch and size
        x = torch.rand(*shape)
        got = torch.from_numpy(session.run(None, {"image": x.numpy()})[0])
        # fp32 on both sides, different kernels: about 1e-6 apart on [0, 1] pixels; 1e-4 is 1/40 of a level
        assert got.shape == x.shape and float((got - stylize(net, x)).abs().max()) < 1e-4


def test_stylize_export_onnx_writes_and_checks_the_file(tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from click.testing import CliRunner

    from dreamstyle.cli import main

    model = save_model(tmp_path / "m.dsm", StyleNet(Architecture(width=4, blocks=1)), {})
    out = tmp_path / "m.onnx"
    result = CliRunner().invoke(main, ["stylize", str(model), "--export", "onnx", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.stat().st_size > 0 and "within" in result.output
    again = CliRunner().invoke(main, ["stylize", str(model), "--export", "onnx", "-o", str(out)])
    assert again.exit_code != 0 and "Traceback" not in again.output
    wrong = CliRunner().invoke(main, ["stylize", str(model), "--export", "onnx", "-o", str(tmp_path / "m.png")])
    assert wrong.exit_code != 0 and ".onnx" in wrong.output
    nothing = CliRunner().invoke(main, ["stylize", str(model), "-o", str(tmp_path / "x.png")])
    assert nothing.exit_code == 2 and "give IMAGES" in nothing.output


def test_the_command_line_trains_then_stylizes(photos, style, tmp_path):
    from click.testing import CliRunner

    from dreamstyle.cli import main

    model = tmp_path / "m.dsm"
    args = [
        "train",
        str(photos),
        str(style),
        "-o",
        str(model),
        "--weights",
        "random",
        "--size",
        "32",
        "--iterations",
        "3",
        "--batch",
        "2",
        "--width",
        "8",
        "--blocks",
        "1",
        "--growth",
        "1",
        "--taper",
        "2",
        "--preview-every",
        "3",
        "--held-out",
        "1",
        "--seed",
        "0",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and "held-out photo" in result.output
    assert load_model(model).step == 3 and model.with_suffix(".preview.png").exists()
    assert load_model(model).net.arch.channels() == ([8, 8, 8], [4, 4])
    again = CliRunner().invoke(main, args)  # the model file exists: one line, nothing lost
    assert again.exit_code != 0 and "--resume" in again.output and "Traceback" not in again.output
    resumed = CliRunner().invoke(main, [*args, "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert load_model(model).step == 6

    out = tmp_path / "out.png"
    done = CliRunner().invoke(
        main, ["stylize", str(model), str(photos / "photo0.png"), "-o", str(out), "--device", "cpu"]
    )
    assert done.exit_code == 0, done.output
    assert Image.open(out).size == Image.open(photos / "photo0.png").size
    folder = tmp_path / "styled"
    (photos / "broken.png").write_bytes(b"no")
    done = CliRunner().invoke(main, ["stylize", str(model), str(photos), "-o", str(folder), "--device", "cpu"])
    assert done.exit_code == 1 and "skipped broken.png" in done.output
    assert sorted(p.name for p in folder.iterdir()) == [f"photo{i}.png" for i in range(5)]


def test_the_command_line_says_what_does_not_apply_to_training(photos, style, tmp_path):
    from click.testing import CliRunner

    from dreamstyle.cli import main

    for extra, words in ((["--tile", "64"], "No such option"), (["--optimizer", "lbfgs"], "L-BFGS")):
        result = CliRunner().invoke(
            main, ["train", str(photos), str(style), "-o", str(tmp_path / "m.dsm"), "--weights", "random", *extra]
        )
        assert result.exit_code != 0 and words in result.output and "Traceback" not in result.output
    bad = CliRunner().invoke(main, ["stylize", str(style), str(style), "-o", str(tmp_path / "x.png")])
    assert bad.exit_code == 1 and "not a dreamstyle model file" in bad.output


def test_transfer_can_start_from_a_style_networks_picture(photos, style, tmp_path):
    from dreamstyle.jobs.base import resized
    from dreamstyle.jobs.transfer import TransferJob
    from dreamstyle.session import Session
    from dreamstyle.settings import TransferSettings, make

    torch.manual_seed(0)
    net = StyleNet(Architecture(width=4, blocks=1))
    model = save_model(tmp_path / "m.dsm", net, {})
    settings = make(
        TransferSettings,
        dict(
            content=str(photos / "photo0.png"),
            styles=[str(style)],
            size=32,
            weights="random",
            init=f"model:{model}",
            device="cpu",
        ),
    )
    job = TransferJob(settings, Session.for_settings(settings))
    item = job.still_item()
    content = resized(item.content, item.size)
    assert torch.allclose(job.initial(item), stylize(net.eval(), content), atol=1e-6)
    recipe = settings.to_recipe("names")
    assert recipe["init"] == "model:m.dsm" and "m.dsm" in recipe["inputs"]
    result = dreamstyle.transfer(
        photos / "photo0.png", [style], size=32, iterations=2, weights="random", init=f"model:{model}"
    )
    assert result.image.size == (32, 25)
    for bad in (f"model:{tmp_path / 'none.dsm'}", f"model:{style}"):
        with pytest.raises(OptionError, match="model:FILE"):
            make(TransferSettings, dict(content=str(photos / "photo0.png"), styles=[str(style)], init=bad))


def _animation(path, n=3, size=(40, 30)):
    torch.manual_seed(n)  # noise: the frames stay different through a random network (a GIF merges equal ones)
    frames = [Image.fromarray((torch.rand(size[1], size[0], 3) * 255).byte().numpy()) for _ in range(n)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=[100, 200, 100, 100][:n], loop=0)
    return path


def test_a_clip_is_stylized_frame_by_frame_into_an_animation_or_frames(tmp_path):
    from click.testing import CliRunner

    from dreamstyle.cli import main
    from dreamstyle.clips import read_clip

    torch.manual_seed(0)
    model = save_model(tmp_path / "m.dsm", StyleNet(Architecture(width=4, blocks=1)), {})
    gif = _animation(tmp_path / "in.gif")
    styled = dreamstyle.stylize(model, gif, output=tmp_path / "out.gif", device="cpu")
    assert (styled.frames, styled.total, styled.interrupted) == (3, 3, False)
    clip = read_clip(styled.path)
    assert len(clip) == 3 and clip.durations == [100, 200, 100] and clip.frames[0].size == (40, 30)
    assert read_clip(gif).frames[0].getpixel((5, 5)) != clip.frames[0].getpixel((5, 5))

    result = CliRunner().invoke(main, ["stylize", str(model), str(gif), "-o", str(tmp_path / "frames"), "--size", "20"])
    assert result.exit_code == 0, result.output
    assert "(3 frames" in result.output and "ms each" in result.output
    assert sorted(p.name for p in (tmp_path / "frames").glob("*.png")) == [f"frame_0000{i}.png" for i in (1, 2, 3)]
    assert Image.open(tmp_path / "frames" / "frame_00001.png").size == (20, 15)
    again = CliRunner().invoke(main, ["stylize", str(model), str(gif), "-o", str(tmp_path / "out.gif")])
    assert again.exit_code != 0 and "out.gif" in again.output and "Traceback" not in again.output
    with pytest.raises(OptionError, match="output="):
        dreamstyle.stylize(model, gif)
    crf = CliRunner().invoke(main, ["stylize", str(model), str(gif), "-o", str(tmp_path / "c.gif"), "--crf", "20"])
    assert crf.exit_code != 0 and "--crf is a video's quality" in crf.output and "Traceback" not in crf.output


def test_an_interrupted_clip_keeps_the_frames_done(tmp_path, monkeypatch):
    from dreamstyle import instant
    from dreamstyle.clips import read_clip

    model = load_model(save_model(tmp_path / "m.dsm", StyleNet(Architecture(width=4, blocks=1)), {}))
    real, calls = instant.stylize, []

    def stopping(net, x, *rest):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(net, x, *rest)

    monkeypatch.setattr(instant, "stylize", stopping)
    styled = instant.stylize_clip(model, _animation(tmp_path / "in.gif", n=4), tmp_path / "out.webp")
    assert styled.interrupted and (styled.frames, styled.total) == (2, 4)
    assert len(read_clip(styled.path)) == 2


def test_a_video_keeps_its_rate_and_sound(tmp_path):
    pytest.importorskip("av", reason="PyAV (dreamstyle[video]) is not installed")
    from dreamstyle.video import probe, synthetic_video

    walk = synthetic_video(tmp_path / "walk.mp4", seconds=1.0, fps=10)
    model = save_model(tmp_path / "m.dsm", StyleNet(Architecture(width=4, blocks=1)), {})
    styled = dreamstyle.stylize(model, walk, output=tmp_path / "out.mp4", device="cpu", size=32)
    info = probe(styled.path)
    assert info["frames"] == 10 and info["fps"] == 10.0 and info["audio"] == "aac"
    assert info["size"] == (32, 24)


def test_an_interrupted_video_keeps_no_frames_to_resume(tmp_path, monkeypatch):
    """A style network's frames are made independently: the video of the frames done, nothing beside it."""
    pytest.importorskip("av", reason="PyAV (dreamstyle[video]) is not installed")
    from dreamstyle import instant
    from dreamstyle.video import frames_folder, probe, synthetic_video

    walk = synthetic_video(tmp_path / "walk.mp4", seconds=1.0, fps=10)
    model = load_model(save_model(tmp_path / "m.dsm", StyleNet(Architecture(width=4, blocks=1)), {}))
    real, calls = instant.stylize, []

    def stopping(net, x, *rest):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real(net, x, *rest)

    monkeypatch.setattr(instant, "stylize", stopping)
    out = tmp_path / "out.mp4"
    styled = instant.stylize_clip(model, walk, out, size=32)
    assert styled.interrupted and (styled.frames, styled.total) == (4, 10)
    assert probe(styled.path)["frames"] == 4 and not frames_folder(out).exists()


def test_colour_preservation_and_transparency(tmp_path):
    from dreamstyle.color import rgb_to_yiq
    from dreamstyle.images import to_tensor

    torch.manual_seed(1)
    model = save_model(tmp_path / "m.dsm", StyleNet(Architecture(width=4, blocks=1)), {})
    photo = Image.fromarray((torch.rand(24, 32, 3) * 255).byte().numpy())
    plain = dreamstyle.stylize(model, photo, device="cpu")
    kept = dreamstyle.stylize(model, photo, device="cpu", preserve_color=True)
    chroma = [rgb_to_yiq(to_tensor(p, (32, 24)))[:, 1:] for p in (photo, plain, kept)]
    assert (chroma[2] - chroma[0]).abs().mean() < 0.5 * (chroma[1] - chroma[0]).abs().mean()
    cutout = photo.convert("RGBA")
    cutout.putalpha(Image.new("L", (32, 24), 0).crop((0, 0, 32, 24)))
    cutout.paste((0, 0, 0, 255), (8, 6, 24, 18))
    out = dreamstyle.stylize(model, cutout, device="cpu", size=16)
    assert out.mode == "RGBA" and out.size == (16, 12)
    assert out.getpixel((0, 0))[3] == 0 and out.getpixel((8, 6))[3] == 255
