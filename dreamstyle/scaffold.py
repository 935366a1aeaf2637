"""``dreamstyle new-plugin NAME``: a ready plugin package to start from (a backbone or a loss term),
with its entry point, its module and a test that uses :mod:`dreamstyle.testing`. It installs and
passes its test as written; then make it yours."""

from __future__ import annotations

import re
from pathlib import Path

from .errors import OptionError, OutputError

PYPROJECT = """[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "dreamstyle-{name}"
version = "0.1.0"
description = "{what} for dreamstyle"
dependencies = ["dreamstyle"]

[project.entry-points.dreamstyle]
{name} = "{module}"

[tool.setuptools]
py-modules = ["{module}"]
"""

BACKBONE = '''"""A backbone plugin for dreamstyle: ``--backbone {name}``.

A small convolutional network, written out so that every part is in view: the layer map (names,
module paths, channels, strides, kinds), the architecture, and where pretrained weights would load.
Replace them with your network's. (A network that is not one Sequential: subclass ``Backbone``
and write ``_make``; its layers are then found by module path with torch.fx.)
"""

from dreamstyle import hookimpl
from dreamstyle.backbones import IMAGENET, SequentialBackbone
from dreamstyle.errors import WeightsError
from dreamstyle.layers import Layer


class {cls}(SequentialBackbone):
    def _layers(self):
        # name, module path in the model, channels, stride (never decreasing), kind
        return [
            Layer("conv1", "features.0", 16, 1, "conv"), Layer("relu1", "features.1", 16, 1, "activation"),
            Layer("pool1", "features.2", 16, 2, "pool"),
            Layer("conv2", "features.3", 32, 2, "conv"), Layer("relu2", "features.4", 32, 2, "activation"),
            Layer("pool2", "features.5", 32, 4, "pool"),
            Layer("conv3", "features.6", 64, 4, "conv"), Layer("relu3", "features.7", 64, 4, "activation"),
        ]

    def _features(self, pooling="max"):
        import torch.nn as nn  # import torch here, not at the top: dreamstyle loads this module for every command

        def pool():
            return nn.MaxPool2d(2) if pooling == "max" else nn.AvgPool2d(2)

        return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), pool(),
                             nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), pool(),
                             nn.Conv2d(32, 64, 3, padding=1), nn.ReLU())

    def _load_pretrained(self, model):
        # load your default weights into ``model`` here (e.g. a state dict shipped in the package) and
        # return the Preprocess they expect; until then: --weights random or --weights FILE
        raise WeightsError(f"backbone {{self.name!r}} has no pretrained weights yet; use --weights random or FILE")


@hookimpl
def register_backbones(register):
    register({cls}("{name}", "a small CNN (a dreamstyle plugin template)", preprocess=IMAGENET, min_size=16,
                  content_layers=("relu3",), style_layers=("relu1", "relu2", "relu3"), dream_layers=("relu3",),
                  poolings=("max", "avg")))
'''

LOSS = '''"""A loss-term plugin for dreamstyle: ``--loss {name}=WEIGHT[:layers=...]``.

Matches the mean and standard deviation of each channel of the style images' features (a light
cousin of the Gram matrix). Replace the maths with yours; keep the shape: ``prepare`` computes
targets from the images it ``reads``, ``forward`` returns one number to minimize.
"""

from dreamstyle import hookimpl
from dreamstyle.termspec import TermSpec


def build(layers="relu1_1,relu2_1,relu3_1"):
    import torch  # here, not at the top: dreamstyle loads this module for every command

    from dreamstyle.terms import LossTerm, parse_layer_weights

    class {cls}(LossTerm):
        reads = ("style",)  # the image roles prepare reads: the style is fixed over a clip, prepared once

        def __init__(self, layers):
            super().__init__()
            self.layer_weights = parse_layer_weights(layers)
            self.layers = list(self.layer_weights)

        def prepare(self, ctx, extract):
            feats = extract(ctx.first("style"))
            for i, name in enumerate(self.layers):
                f = feats[name].float()
                self.register_buffer(f"mean{{i}}", f.mean((2, 3)), persistent=False)
                self.register_buffer(f"std{{i}}", f.std((2, 3)), persistent=False)

        def forward(self, feats, image):
            total = image.new_zeros((), dtype=torch.float32)
            for i, name in enumerate(self.layers):
                f = feats[name].float()
                total = total + self.layer_weights[name] * (
                    ((f.mean((2, 3)) - getattr(self, f"mean{{i}}")) ** 2).mean()
                    + ((f.std((2, 3)) - getattr(self, f"std{{i}}")) ** 2).mean())
            return total

    return {cls}(layers)


@hookimpl
def register_loss_terms(register):
    register(TermSpec("{name}", "channel means and deviations of the style (a dreamstyle plugin template)", build,
                      default_weight=100.0))
'''

TEST = '''"""The contract test dreamstyle ships for plugin authors, on this plugin."""

import {module}
from dreamstyle.plugins import PluginHost
from dreamstyle.testing import {check}


def test_{name_id}_honours_the_contract():
    host = PluginHost(load_entry_points=False)  # the built-ins and this plugin only
    assert host.register({module}, name="{name}"), host.errors
    {check}(host.{registry}.get("{name}"))
'''

README = """# dreamstyle-{name}

{what} for [dreamstyle](https://github.com/), made with `dreamstyle new-plugin {name}{flag}`.

```bash
pip install -e .            # dreamstyle finds it through the entry point in pyproject.toml
dreamstyle plugins          # lists it
{use}
python -m pytest tests      # the contract test (dreamstyle.testing)
```
"""


def plugin_names(text: str) -> tuple[str, str, str]:
    """A plugin's names from how a person writes its package: "dreamstyle-probe", "dreamstyle_probe",
    "Probe" or "my-net" -> (the distribution, "dreamstyle-probe"; the module, "dreamstyle_probe"; the
    name users pass to --backbone/--loss, "probe"). The distribution name is normalized as pip does
    (PEP 503: lower case, runs of "-", "_" and "." made one "-")."""
    dist = re.sub(r"[-_.]+", "-", str(text).strip()).lower()
    name = re.sub(r"^dreamstyle-", "", dist)
    if not re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", name) or name == "dreamstyle":
        raise OptionError(
            f"plugin name {text!r}: a package name is letters, digits, '-', '_' and '.', like "
            "dreamstyle-probe or probe (its module is then dreamstyle_probe)"
        )
    if name[0].isdigit():
        raise OptionError(f"plugin name {text!r}: start with a letter (it names a Python module and a class)")
    return f"dreamstyle-{name}", "dreamstyle_" + name.replace("-", "_"), name


def new_plugin(name: str, kind: str, parent: Path) -> Path:
    """Write ``parent/dreamstyle-NAME/`` for a "backbone" or a "loss" plugin; returns the folder."""
    dist, module, name = plugin_names(name)
    folder = Path(parent) / dist
    if folder.exists():
        raise OutputError(f"{folder} exists; give another name or another folder")
    cls = "".join(part.capitalize() for part in name.split("-")) + ("Backbone" if kind == "backbone" else "Loss")
    what = "A backbone" if kind == "backbone" else "A loss term"
    files = {
        "pyproject.toml": PYPROJECT.format(name=name, module=module, what=what),
        f"{module}.py": (BACKBONE if kind == "backbone" else LOSS).format(name=name, cls=cls),
        "tests/test_contract.py": TEST.format(
            module=module,
            name=name,
            name_id=name.replace("-", "_"),
            check="check_backbone" if kind == "backbone" else "check_loss_term",
            registry="backbones" if kind == "backbone" else "loss_terms",
        ),
        "README.md": README.format(
            name=name,
            what=what,
            flag=" --backbone" if kind == "backbone" else " --loss",
            use=f"dreamstyle transfer photo.jpg painting.jpg -o out.png --backbone {name} --weights random"
            if kind == "backbone"
            else f"dreamstyle transfer photo.jpg painting.jpg -o out.png --loss {name}=100",
        ),
    }
    try:
        for rel, text in files.items():
            path = folder / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    except OSError as exc:
        raise OutputError(f"cannot write {folder}: {exc.strerror or exc}") from None
    return folder
