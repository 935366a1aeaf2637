"""Folders, sweeps and comparisons on Ray: a real local Ray instance (``ray.init(num_cpus=2)``, shared by
the module) and a separate head process (``ray start --head``, stopped by its process group afterwards).
The outputs must be the bytes the local executor writes; a killed worker's items run again; --resume
skips what is done. Random weights, tiny images, two or three steps."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'dreamstyle[ray]'); the Ray tests need it")

from helpers import make_image  # noqa: E402

from dreamstyle import sequence  # noqa: E402
from dreamstyle.cli import main  # noqa: E402
from dreamstyle.executors import LocalExecutor, RayExecutor  # noqa: E402
from dreamstyle.jobs import make_job  # noqa: E402
from dreamstyle.settings import TransferSettings  # noqa: E402

FAST = ["--weights", "random", "--size", "32", "--iterations", "2", "--seed", "0", "--device", "cpu", "-q"]
ENV = {"RAY_AUTH_MODE": "disabled"}  # the test's own head and drivers: no token to hand round


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance for the module's in-process runs (the executor joins it, and leaves it up)."""
    os.environ.update(ENV)
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("ray")
    folder = root / "photos"
    folder.mkdir()
    for i in range(4):
        make_image(folder / f"p{i}.png", (40, 34), seed=i)
    style = make_image(root / "style.png", (36, 36), 1, "stripes")
    return folder, style


def files(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_a_folder_on_ray_writes_the_bytes_of_a_local_run_and_a_bad_image_is_one_line(
    inputs, tmp_path, runner, local_ray
):
    folder, style = inputs
    local = runner.invoke(main, ["transfer", str(folder), str(style), "-o", str(tmp_path / "local"), *FAST])
    assert local.exit_code == 0, local.output
    on_ray = runner.invoke(
        main,
        [
            "transfer",
            str(folder),
            str(style),
            "-o",
            str(tmp_path / "ray"),
            *FAST,
            "--executor",
            "ray",
            "--workers",
            "2",
        ],
    )
    assert on_ray.exit_code == 0, on_ray.output
    assert files(tmp_path / "ray") == files(tmp_path / "local") and len(files(tmp_path / "local")) == 4
    for where in ("local", "ray"):  # dreams too, a guide image travelling with the work
        res = runner.invoke(
            main,
            [
                "dream",
                str(folder),
                "-o",
                str(tmp_path / f"dream-{where}"),
                "--octaves",
                "1",
                "--guide",
                str(style),
                *FAST,
                "--executor",
                where,
            ],
        )
        assert res.exit_code == 0, res.output
    assert files(tmp_path / "dream-ray") == files(tmp_path / "dream-local")
    broken = tmp_path / "broken"
    broken.mkdir()
    for p in folder.iterdir():
        (broken / p.name).write_bytes(p.read_bytes())
    (broken / "p9.png").write_text("not pixels")
    res = runner.invoke(
        main,
        [
            "transfer",
            str(broken),
            str(style),
            "-o",
            str(tmp_path / "rest"),
            *FAST,
            "--executor",
            "ray",
            "--workers",
            "2",
        ],
    )
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert "p9.png" in res.output and "not an image" in res.output and "4 of 5 images" in res.output
    assert files(tmp_path / "rest") == files(tmp_path / "local")  # the others went on


def test_a_killed_worker_has_its_items_made_by_another(inputs, local_ray):
    folder, style = inputs
    settings = TransferSettings(
        content=str(folder), styles=(str(style),), weights="random", size=32, iterations=2, seed=0, device="cpu"
    )
    alone = sequence.run_folder(make_job("transfer", settings), folder, executor=LocalExecutor())
    events = []

    def on_event(kind, worker, info):
        events.append((kind, worker))
        if kind == "submitted" and worker == 1 and ("lost", 1) not in events:
            ray.kill(executor.actors[1])  # the worker dies with its items on it

    executor = RayExecutor(workers=2, on_event=on_event)
    result = sequence.run_folder(make_job("transfer", settings), folder, executor=executor)
    assert ("lost", 1) in events and executor.retried >= 1 and ("started", 2) in events
    assert result.names == alone.names and result.stopped is None  # every item, in order
    for mine, theirs in zip(result.tensors, alone.tensors):
        assert (mine == theirs).all()
    assert not executor.actors  # the run's actors are gone with it


def test_resume_on_ray_skips_the_images_done(inputs, tmp_path, runner, local_ray):
    folder, style = inputs
    out = tmp_path / "styled"
    args = ["transfer", str(folder), str(style), "-o", str(out), *FAST, "--executor", "ray"]
    assert runner.invoke(main, args).exit_code == 0
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    (out / "p2.png").unlink()
    res = runner.invoke(main, [*args, "--resume"])
    assert res.exit_code == 0, res.output
    assert {p.name for p in out.iterdir()} == set(before)
    assert all(out.joinpath(n).stat().st_mtime_ns == t for n, t in before.items() if n != "p2.png")
    res = runner.invoke(main, [*args, "--resume", "--iterations", "3"])
    assert res.exit_code == 1 and "not made with these settings" in res.output


def test_a_sweep_and_a_comparison_on_ray_write_the_bytes_of_local_runs(inputs, tmp_path, runner, local_ray):
    folder, style = inputs
    content = folder / "p0.png"
    grid = ["sweep", str(content), str(style), "--vary", "style-weight=1e2,1e4", "--vary", "tv-weight=0,3e4", *FAST]
    for where in ("local", "ray"):
        res = runner.invoke(main, [*grid, "-o", str(tmp_path / f"sweep-{where}"), "--executor", where])
        assert res.exit_code == 0, res.output
        res = runner.invoke(
            main,
            [
                "compare",
                str(content),
                str(style),
                "--backbones",
                "vgg19,vgg19:avg",
                *FAST,
                "-o",
                str(tmp_path / f"cmp-{where}"),
                "--executor",
                where,
            ],
        )
        assert res.exit_code == 0, res.output
    cells = {n: b for n, b in files(tmp_path / "sweep-local").items() if n.startswith("style-weight")}
    assert len(cells) == 4 and cells == {n: b for n, b in files(tmp_path / "sweep-ray").items() if n in cells}
    for name in ("vgg19-random.png", "vgg19-avg-random.png"):
        assert (tmp_path / "cmp-local" / name).read_bytes() == (tmp_path / "cmp-ray" / name).read_bytes()


# --- a cluster of its own: `ray start --head`, joined with --executor ray:127.0.0.1:PORT ---------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def head(tmp_path):
    """A Ray head in its own process group (2 CPUs), stopped by that group's id afterwards (in
    ``head.pid``, for a test that kills it sooner)."""
    port = free_port()
    ray_cli = Path(sys.executable).with_name("ray")
    log = open(tmp_path / "head.log", "w")
    proc = subprocess.Popen(
        [
            str(ray_cli),
            "start",
            "--head",
            "--port",
            str(port),
            "--node-ip-address",
            "127.0.0.1",
            "--num-cpus",
            "2",
            "--include-dashboard=false",
            "--disable-usage-stats",
            "--block",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, **ENV},
        start_new_session=True,
    )
    (tmp_path / "head.pid").write_text(str(proc.pid))
    try:
        deadline = time.monotonic() + 90
        while "Ray runtime started" not in (tmp_path / "head.log").read_text():
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "head.log").read_text()
            time.sleep(0.5)
        yield f"127.0.0.1:{port}"
    finally:
        for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
            try:
                os.killpg(proc.pid, sig)
                proc.wait(wait)
                break
            except (ProcessLookupError, subprocess.TimeoutExpired):
                continue
        log.close()


def test_a_head_that_does_not_answer_is_one_line(inputs, tmp_path, runner):
    folder, style = inputs
    res = runner.invoke(
        main,
        [
            "transfer",
            str(folder),
            str(style),
            "-o",
            str(tmp_path / "o"),
            *FAST,
            "--executor",
            f"ray:127.0.0.1:{free_port()}",
        ],
    )
    assert res.exit_code == 1 and "cannot reach the Ray head" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "o").exists()


def dreamstyle_cli(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "dreamstyle", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **ENV},
        timeout=300,
    )


def test_a_folder_and_a_sweep_through_a_head_process(inputs, tmp_path, runner, head):
    folder, style = inputs
    content = folder / "p1.png"
    grid = ["--vary", "content-weight=1,10", *FAST]
    assert (
        runner.invoke(main, ["transfer", str(folder), str(style), "-o", str(tmp_path / "local"), *FAST]).exit_code == 0
    )
    assert (
        runner.invoke(main, ["sweep", str(content), str(style), *grid, "-o", str(tmp_path / "sw-local")]).exit_code == 0
    )
    for args, out in (
        (["transfer", str(folder), str(style)], "cluster"),
        (["sweep", str(content), str(style), *grid[:2]], "sw-cluster"),
    ):
        res = dreamstyle_cli(
            *args, *FAST, "-o", str(tmp_path / out), "--executor", f"ray:{head}", "--workers", "2", cwd=tmp_path
        )
        assert res.returncode == 0, res.stderr[-3000:]
    assert files(tmp_path / "cluster") == files(tmp_path / "local")
    cells = [n for n in files(tmp_path / "sw-local") if n.startswith("content-weight")]
    assert len(cells) == 2
    for name in cells:
        assert (tmp_path / "sw-cluster" / name).read_bytes() == (tmp_path / "sw-local" / name).read_bytes()


def test_ctrl_c_stops_the_workers_and_keeps_what_finished(inputs, tmp_path, runner, local_ray, monkeypatch):
    from dreamstyle.cli import progress

    folder, style = inputs
    real, calls = progress.FrameProgress.frame, []

    def frame(self, done):
        calls.append(done.name)
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C as the second image comes back
        real(self, done)

    monkeypatch.setattr(progress.FrameProgress, "frame", frame)
    out = tmp_path / "cut"
    res = runner.invoke(main, ["transfer", str(folder), str(style), "-o", str(out), *FAST, "--executor", "ray"])
    assert res.exit_code == 130 and "1 of 4 images were written" in res.output
    assert [p.name for p in out.iterdir()] == [f"{calls[0]}.png"]  # whole, with its recipe; no partial file
    from dreamstyle.writers import read_recipe

    assert read_recipe(out / f"{calls[0]}.png")["content"] == f"{calls[0]}.png"


def test_a_cluster_that_dies_leaves_every_finished_picture_and_one_line(inputs, tmp_path, head):
    """Ray ends a driver whose head (or node) died on its own, a minute later, with its last log line; the
    run watches the cluster and stops first: what finished is written, the line says what was lost."""
    folder, style = inputs
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for name in ("p0.png", "p1.png", "p2.png"):
        (mixed / name).write_bytes((folder / name).read_bytes())
    for name in ("x.png", "y.png"):
        (mixed / name).write_text("not pixels")
    out, err = tmp_path / "out", tmp_path / "stderr.txt"
    with open(err, "w") as fh:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dreamstyle",
                "transfer",
                str(mixed),
                str(style),
                "-o",
                str(out),
                *FAST[:5],
                "30",
                *FAST[6:],
                "--executor",
                f"ray:{head}",
                "--workers",
                "1",
            ],
            stderr=fh,
            env={**os.environ, **ENV},
            cwd=tmp_path,
        )
    try:
        deadline = time.monotonic() + 300
        while not (out / "p0.png").exists():
            assert proc.poll() is None and time.monotonic() < deadline, err.read_text()[-3000:]
            time.sleep(0.1)
        os.killpg(int((tmp_path / "head.pid").read_text()), signal.SIGKILL)  # the head, its workers with it
        proc.wait(120)
    finally:
        proc.kill()
    from dreamstyle.writers import read_recipe

    text = err.read_text()
    errors = [line for line in text.splitlines() if line.startswith("Error:")]
    assert proc.returncode == 1 and len(errors) == 1 and "Traceback" not in text, text[-3000:]
    written = sorted(p.name for p in out.iterdir())
    assert "the Ray cluster stopped answering" in errors[0] and f"{len(written)} of 5 images were written" in errors[0]
    assert "p0.png" in written and all(read_recipe(out / name)["stopped"] is None for name in written)
    assert "x.png: " in text and "y.png: " in text  # the bad images: a line each, before
