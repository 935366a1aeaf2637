"""Third-party plugins as real packages (issue 6).

The packages in ``plugins/`` and the two examples printed in ``docs/plugins.md`` are installed with
pip, offline, into a temporary folder (``--target``, one pip run per test session), and a fresh
``python -m dreamstyle`` process with that folder on ``PYTHONPATH`` and plugin autoloading on must
find them through their entry points. Then, in-process, the installed modules must honour the
backbone contract and their loss terms must go down under a few optimizer steps. Three broken
packages (an import error, a misspelled hook, a duplicate backbone name) must each cost one warning
line and nothing else. Finally the hook reference in docs/plugins.md is checked against
dreamstyle/hookspecs.py so that it cannot drift.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import torch
from test_backbones import check_contract

from dreamstyle import hookspecs
from dreamstyle.backbones import Backbone, load_backbone
from dreamstyle.objective import Objective
from dreamstyle.plugins import DISABLE_ENV, ENTRY_POINT_GROUP
from dreamstyle.termspec import TermContext

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "plugins.md"


@dataclasses.dataclass
class Package:
    folder: str  # in plugins/, or in the docs
    plugin: str  # entry-point name = plugin name
    module: str
    hook: str
    backbones: tuple = ()
    terms: tuple = ()


PACKAGES = [
    Package(
        "dreamstyle-mobilenet",
        "mobilenet",
        "dreamstyle_mobilenet",
        "register_backbones",
        backbones=("mobilenet_v2", "mobilenet_v3_large"),
    ),
    Package("dreamstyle-histogram", "histogram", "dreamstyle_histogram", "register_loss_terms", terms=("histogram",)),
]
DOC_PACKAGES = [  # built from the code blocks of docs/plugins.md
    Package(
        "dreamstyle-efficientnet",
        "efficientnet",
        "dreamstyle_efficientnet",
        "register_backbones",
        backbones=("efficientnet_b0",),
    ),
    Package("dreamstyle-meanstd", "meanstd", "dreamstyle_meanstd", "register_loss_terms", terms=("meanstd",)),
]
ALL = PACKAGES + DOC_PACKAGES

PYPROJECT = """\
[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "{dist}"
version = "0.0.1"

[project.entry-points.dreamstyle]
{plugin} = "{module}"

[tool.setuptools]
py-modules = ["{module}"]
"""
SLOPPY = {  # issue 16: plugins whose registrations break the rules, installed like any other
    "dreamstyle-badmap": (
        "bad-map",
        "dreamstyle_badmap",
        "from dreamstyle import hookimpl\nfrom dreamstyle.backbones.vgg import VGG, VGG_CFG, vgg_layers\n"
        "from dreamstyle.layers import Layer\n\n\nclass Twice(VGG):\n    def _layers(self):\n"
        "        layers = vgg_layers(VGG_CFG['vgg16'])\n        return layers + layers[:1]\n\n\n"
        "@hookimpl\ndef register_backbones(register):\n    register(Twice('twice', 'repeats a name'))\n",
    ),
    "dreamstyle-badargs": (
        "bad-args",
        "dreamstyle_badargs",
        "from dreamstyle import hookimpl\n\n\n@hookimpl\ndef register_commands(group):\n    pass\n",
    ),
}
BROKEN = {  # distribution -> (plugin name, module name, module source)
    "dreamstyle-broken-import": (
        "broken-import",
        "dreamstyle_broken_import",
        "import dreamstyle_no_such_dependency  # not installed\n",
    ),
    "dreamstyle-typo": (
        "typo-hook",
        "dreamstyle_typo",
        "from dreamstyle import hookimpl\n\n\n@hookimpl\n"
        "def register_backbone(register):  # not a hook: the s is missing\n    pass\n",
    ),
    "dreamstyle-dup": (
        "dup-backbone",
        "dreamstyle_dup",
        "from dreamstyle import hookimpl\nfrom dreamstyle.backbones.vgg import VGG\n\n\n@hookimpl\n"
        "def register_backbones(register):\n    register(VGG('vgg16', 'impostor'))\n",
    ),
}


# --- installing ------------------------------------------------------------------------------


def doc_files() -> dict[str, str]:
    """The files that docs/plugins.md prints, as {relative path: text}."""
    blocks = re.findall(r"<!-- file: (\S+) -->\n```\w*\n(.*?)```", DOC.read_text(), re.S)
    return dict(blocks)


def offline_build_problem() -> str:
    """Why this environment cannot build a setuptools package without downloading, or ""."""
    try:
        version = metadata.version("setuptools")
    except metadata.PackageNotFoundError:
        return "setuptools is not installed"
    major_minor = tuple(int(n) for n in re.findall(r"\d+", version)[:2])
    if major_minor < (70, 1) and importlib.util.find_spec("wheel") is None:
        return f"setuptools {version} needs the wheel package to build wheels"
    return ""


def pip_install(sources: list[Path], target: Path) -> None:
    """Install local source trees into ``target``, offline: no index, no build isolation (the
    setuptools of this environment builds them), no dependencies (dreamstyle is here already)."""
    problem = offline_build_problem()
    if problem:
        pytest.fail(
            f"cannot build the plugin packages offline: {problem} (pip install -e '.[test]' installs setuptools>=70.1)"
        )
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-index",
        "--no-deps",
        "--no-build-isolation",
        "--disable-pip-version-check",
        "--no-warn-script-location",
        "--target",
        str(target),
        *map(str, sources),
    ]
    env = {**os.environ, "PIP_NO_INPUT": "1", "PIP_CONFIG_FILE": os.devnull}
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, f"pip install failed:\n{result.stdout}\n{result.stderr}"


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """A folder with the plugins/ packages and the docs examples pip-installed into it."""
    src = tmp_path_factory.mktemp("plugin-src")
    sources = []
    for pkg in PACKAGES:  # copies, so that building leaves nothing in the repository
        dest = src / pkg.folder
        shutil.copytree(
            REPO / "plugins" / pkg.folder,
            dest,
            ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", ".pytest_cache"),
        )
        sources.append(dest)
    for rel, text in doc_files().items():
        path = src / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    sources += [src / pkg.folder for pkg in DOC_PACKAGES]
    target = tmp_path_factory.mktemp("plugin-site")
    pip_install(sources, target)
    return target


@pytest.fixture(scope="module")
def broken_site(tmp_path_factory) -> Path:
    """A folder with three broken plugin packages pip-installed into it."""
    src = tmp_path_factory.mktemp("broken-src")
    for dist, (plugin, module, code) in BROKEN.items():
        (src / dist).mkdir()
        (src / dist / "pyproject.toml").write_text(PYPROJECT.format(dist=dist, plugin=plugin, module=module))
        (src / dist / f"{module}.py").write_text(code)
    target = tmp_path_factory.mktemp("broken-site")
    pip_install([src / dist for dist in BROKEN], target)
    return target


@pytest.fixture(scope="module")
def installed(site):
    """The installed plugin modules, imported in this process from ``site`` ({plugin: module})."""
    names = [pkg.module for pkg in ALL]

    def ours(key):
        return any(key == n or key.startswith(n + ".") for n in names)

    saved = {k: m for k, m in sys.modules.items() if ours(k)}
    for key in saved:
        del sys.modules[key]  # e.g. imported from a source tree by plugins/*/tests
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(site))
        modules = {pkg.plugin: importlib.import_module(pkg.module) for pkg in ALL}
        for module in modules.values():
            assert Path(module.__file__).resolve().is_relative_to(site.resolve()), module.__file__
        yield modules
        for key in [k for k in sys.modules if ours(k)]:
            del sys.modules[key]
        sys.modules.update(saved)


def dreamstyle(*args, paths, cwd) -> subprocess.CompletedProcess:
    """``python -m dreamstyle ARGS`` in a fresh process that sees ``paths`` and autoloads plugins."""
    env = {k: v for k, v in os.environ.items() if k != DISABLE_ENV}
    env["PYTHONPATH"] = os.pathsep.join([str(p) for p in paths] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    return subprocess.run(
        [sys.executable, "-m", "dreamstyle", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300
    )


def warnings_in(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("dreamstyle: warning:")]


# --- found by a fresh process through the entry points -------------------------------------------


def test_installed_plugins_are_listed(site, tmp_path):
    result = dreamstyle("plugins", "--json", paths=[site], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    for pkg in ALL:
        row = rows[pkg.plugin]
        assert row["builtin"] is False
        assert row["hooks"] == [pkg.hook]
        assert row["distribution"] == pkg.folder
        assert row["version"] == "0.1.0"
    assert rows["dreamstyle.default_plugins.backbones"]["builtin"] is True
    assert not [w for w in warnings_in(result.stderr) if any(f"'{p.plugin}'" in w for p in ALL)], result.stderr
    table = dreamstyle("plugins", paths=[site], cwd=tmp_path)
    assert table.returncode == 0 and "mobilenet" in table.stdout and "histogram" in table.stdout


def test_installed_backbones_are_listed_with_their_layers(site, tmp_path):
    result = dreamstyle("backbones", "--json", paths=[site], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    for pkg in ALL:
        for name in pkg.backbones:
            assert rows[name]["plugin"] == pkg.plugin and rows[name]["family"] is False
    assert rows["vgg19"]["plugin"] == "dreamstyle.default_plugins.backbones"

    result = dreamstyle("layers", "mobilenet_v2", "--json", paths=[site], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    layers = json.loads(result.stdout)
    assert len(layers) == 19
    assert layers[0] == {
        "name": "stem",
        "module": "features.0",
        "channels": 32,
        "stride": 2,
        "kind": "",
        "default_for": ["style"],
    }
    assert layers[6] == {
        "name": "block6",
        "module": "features.6",
        "channels": 32,
        "stride": 8,
        "kind": "",
        "default_for": ["content", "style"],
    }
    assert layers[-1] == {
        "name": "head",
        "module": "features.18",
        "channels": 1280,
        "stride": 32,
        "kind": "",
        "default_for": [],
    }

    result = dreamstyle("layers", "efficientnet_b0", "--json", paths=[site], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert [r["name"] for r in json.loads(result.stdout)][::4] == ["stem", "stage4", "head"]


TERM_PROBE = """
import json, sys
from dreamstyle.plugins import get_host
from dreamstyle.terms import LossTerm
host = get_host()
out = {}
for name in sys.argv[1:]:
    spec = host.loss_terms.get(name)
    term = spec.build()  # default options
    out[name] = {"plugin": spec.plugin, "weight": spec.default_weight, "layers": term.layers,
                 "is_term": isinstance(term, LossTerm), "file": sys.modules[type(term).__module__].__file__}
print(json.dumps({"terms": out, "errors": host.errors}))
"""


def test_installed_terms_are_registered(site, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != DISABLE_ENV}
    env["PYTHONPATH"] = str(site)
    names = [t for pkg in ALL for t in pkg.terms]
    result = subprocess.run(
        [sys.executable, "-c", TERM_PROBE, *names], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert not [e for e in report["errors"] if any(f"'{p.plugin}'" in e for p in ALL)]
    for pkg in ALL:
        for name in pkg.terms:
            term = report["terms"][name]
            assert term["plugin"] == pkg.plugin and term["is_term"] and term["weight"] > 0
            assert term["layers"] and Path(term["file"]).resolve().is_relative_to(site.resolve())


# --- the installed code, in this process -----------------------------------------------------------


@pytest.mark.parametrize("name", [b for pkg in ALL for b in pkg.backbones])
def test_installed_backbones_honour_the_contract(host, installed, name):
    """Channels and strides of every layer, with random weights (tests/test_backbones.py)."""
    plugin = next(pkg.plugin for pkg in ALL if name in pkg.backbones)
    assert host.register(installed[plugin], name=plugin), host.errors
    torch.manual_seed(0)
    check_contract(name)
    assert host.backbones.get(name).plugin == plugin


@pytest.fixture(scope="module")
def vgg19_random():
    return load_backbone("vgg19", weights="random")


def descend(term, extract, styles, blend, size, steps=6, lr=0.03, seed=0):
    """Prepare ``term`` on ``styles``; the term's values over ``steps`` Adam steps from noise."""
    term.prepare(TermContext(backbone=None, images={"style": styles}, blend=blend), extract)
    objective = Objective({"term": (term, 1.0)})
    gen = torch.Generator().manual_seed(seed + 1)
    image = torch.rand(1, 3, *size, generator=gen).requires_grad_(True)
    opt = torch.optim.Adam([image], lr=lr)
    values = []
    for _ in range(steps):
        opt.zero_grad()
        loss, _ = objective(extract(image), image)
        loss.backward()
        opt.step()
        with torch.no_grad():
            image.clamp_(0, 1)
        values.append(loss.item())
    return values


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("name", [t for pkg in ALL for t in pkg.terms])
def test_installed_terms_go_down_under_adam(host, installed, vgg19_random, name, seed):
    """For random style images, blends and sizes, a few Adam steps from noise lower the term."""
    plugin = next(pkg.plugin for pkg in ALL if name in pkg.terms)
    assert host.register(installed[plugin], name=plugin), host.errors
    term = host.loss_terms.get(name).build()  # default options
    gen = torch.Generator().manual_seed(seed)
    sizes = [tuple(int(s) for s in torch.randint(32, 72, (2,), generator=gen)) for _ in range(2)]
    styles = [torch.rand(1, 3, *s, generator=gen) for s in sizes]
    blend = torch.rand(2, generator=gen).add(0.1).tolist()
    values = descend(term, vgg19_random.features(term.layers), styles, blend, size=(48, 40), seed=seed)
    assert all(v == v and v < float("inf") for v in values), values
    assert values[-1] < 0.9 * values[0], values


def test_the_contract_test_printed_in_the_docs_passes(installed):
    namespace: dict = {}
    exec(
        compile(doc_files()["dreamstyle-efficientnet/tests/test_efficientnet.py"], "docs/plugins.md", "exec"), namespace
    )
    tests = [f for name, f in namespace.items() if name.startswith("test_")]
    assert tests
    for test in tests:
        test()


def test_plugins_compose_histogram_on_mobilenet(host, installed):
    """The term of one plugin on the backbone of another, tapping the backbone's style layers."""
    for plugin in ("mobilenet", "histogram"):
        assert host.register(installed[plugin], name=plugin), host.errors
    backbone = host.backbones.get("mobilenet_v2")
    term = host.loss_terms.get("histogram").build(layers=",".join(backbone.style_layers), bins=64)
    torch.manual_seed(0)
    extract = load_backbone(backbone, weights="random").features(term.layers)
    values = descend(term, extract, [torch.rand(1, 3, 64, 64)], None, size=(64, 64), lr=0.05)
    assert values[-1] < 0.9 * values[0], values


# --- broken plugins -------------------------------------------------------------------------------


def test_broken_plugins_cost_one_warning_line_each(site, broken_site, tmp_path):
    for args in (["plugins", "--json"], ["backbones", "--json"], ["plugins"]):
        result = dreamstyle(*args, paths=[site, broken_site], cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
        warnings = warnings_in(result.stderr)
        for plugin, _, _ in BROKEN.values():
            assert len([w for w in warnings if f"'{plugin}'" in w]) == 1, (plugin, result.stderr)
        if args == ["plugins", "--json"]:
            names = {row["name"] for row in json.loads(result.stdout)}
            assert {"mobilenet", "histogram", "dup-backbone"} <= names  # loaded; its duplicate refused
            assert not names & {"broken-import", "typo-hook"}
        if args == ["backbones", "--json"]:
            rows = {row["name"]: row for row in json.loads(result.stdout)}
            assert rows["vgg16"]["plugin"] == "dreamstyle.default_plugins.backbones"
            assert rows["vgg16"]["description"] != "impostor" and "mobilenet_v2" in rows
    warnings = warnings_in(result.stderr)
    assert any("ModuleNotFoundError" in w and "dreamstyle_no_such_dependency" in w for w in warnings)
    assert any("register_backbone" in w and "typo-hook" in w for w in warnings)
    assert any("'vgg16'" in w and "dup-backbone" in w for w in warnings)


def test_installed_plugins_that_break_the_rules_are_one_line_each(site, tmp_path_factory, tmp_path):
    src = tmp_path_factory.mktemp("sloppy-src")
    for dist, (plugin, module, code) in SLOPPY.items():
        (src / dist).mkdir()
        (src / dist / "pyproject.toml").write_text(PYPROJECT.format(dist=dist, plugin=plugin, module=module))
        (src / dist / f"{module}.py").write_text(code)
    target = tmp_path_factory.mktemp("sloppy-site")
    pip_install([src / dist for dist in SLOPPY], target)
    result = dreamstyle("backbones", "--json", paths=[site, target], cwd=tmp_path)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    warnings = warnings_in(result.stderr)
    assert any(
        "backbone 'twice' of plugin 'bad-map' left out: its layer map repeats the name 'conv1_1'" in w for w in warnings
    ), warnings
    (args,) = [w for w in warnings if "bad-args" in w]
    assert "'group'" in args and "hookspec" in args
    assert "mobilenet_v2" in {row["name"] for row in json.loads(result.stdout)}


# --- the documentation cannot drift ---------------------------------------------------------------


def hook_specs() -> dict[str, str]:
    """{hook name: its signature} from dreamstyle/hookspecs.py."""
    return {
        name: f"{name}{inspect.signature(func)}"
        for name, func in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(func, "dreamstyle_spec")
    }


def test_every_hook_is_documented_with_its_signature():
    text = DOC.read_text()
    reference = text.split("\n## Hook reference\n", 1)[1].split("\n## ", 1)[0]
    documented = re.findall(r"^### `(.+)`$", reference, re.M)
    specs = hook_specs()
    assert specs, "no hookspecs found"
    missing = [sig for sig in specs.values() if sig not in documented]
    assert not missing, f"docs/plugins.md lacks a '### `SIGNATURE`' heading for: {missing}"
    stale = [sig for sig in documented if sig not in specs.values()]
    assert not stale, f"docs/plugins.md documents hooks that hookspecs.py does not declare: {stale}"


def test_documented_backbone_fields_and_names_are_real():
    text = DOC.read_text()
    section = text.split("\n### Backbone fields\n", 1)[1].split("\n#", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    documented = {name for row in rows for name in re.findall(r"`(\w+)`", row.split("|")[1])}
    fields = {f.name for f in dataclasses.fields(Backbone)}
    assert documented == fields
    assert f"[project.entry-points.{ENTRY_POINT_GROUP}]" in text and DISABLE_ENV in text
    assert set(doc_files()) >= {f"{p.folder}/pyproject.toml" for p in DOC_PACKAGES}


def test_readme_links_the_plugin_guide():
    readme = (REPO / "README.md").read_text()
    plugins_section = readme.split("\n## Plugins\n", 1)[1].split("\n## ", 1)[0]
    assert "docs/plugins.md" in plugins_section
