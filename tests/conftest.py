import os

import pytest

# Tests see only the built-in plugins unless a test installs or registers one itself.
os.environ.setdefault("DREAMSTYLE_DISABLE_PLUGIN_AUTOLOAD", "1")


@pytest.fixture(scope="session", autouse=True)
def as_on_a_bf16_cpu():
    """DREAMSTYLE_TEST_BF16=1 runs the suite as on a CPU that computes bf16 natively (AVX512-BF16,
    AMX: CI's kind): ``--precision auto`` picks bf16 autocast here too (emulated, slower), so tests
    that compare numbers across batches, threads or precisions can be checked for both kinds of CPU
    on one machine. Unset: the CPU decides, as for a user."""
    if os.environ.get("DREAMSTYLE_TEST_BF16") != "1":
        yield
        return
    from dreamstyle import runtime

    real = runtime.cpu_runs_bf16
    runtime.cpu_runs_bf16 = lambda: True
    yield
    runtime.cpu_runs_bf16 = real


@pytest.fixture(scope="module")
def vgg():
    """vgg19 with random weights (seeded), loaded once per test module."""
    import torch

    from dreamstyle.backbones import load_backbone

    torch.manual_seed(0)
    return load_backbone("vgg19", weights="random")


@pytest.fixture
def photo(tmp_path):
    """A small generated photo, 40 x 32 px."""
    from helpers import make_image

    return make_image(tmp_path / "photo.png", (40, 32))


@pytest.fixture
def host():
    """A fresh plugin host for the test, restored afterwards."""
    from dreamstyle import plugins

    fresh = plugins.PluginHost(load_entry_points=False)
    previous = plugins._host
    plugins.reset_host(fresh)
    try:
        yield fresh
    finally:
        plugins.reset_host(previous)


@pytest.fixture
def runner():
    from click.testing import CliRunner

    return CliRunner()


@pytest.fixture(scope="module")
def one_thread():
    """Tiny images: one CPU thread is faster, and much faster on a busy machine (use it with
    ``pytestmark = pytest.mark.usefixtures("one_thread")`` or an autouse fixture of a module)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
