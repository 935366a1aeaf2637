import json

import pytest

from dreamstyle import hookimpl
from dreamstyle.backbones.vgg import VGG
from dreamstyle.cli import main
from dreamstyle.errors import UnknownNameError
from dreamstyle.plugins import DEFAULT_PLUGINS
from dreamstyle.termspec import TermSpec


class TinyVGG(VGG):
    def _layers(self):
        from dreamstyle.backbones.vgg import VGG_CFG, vgg_layers

        return vgg_layers(VGG_CFG["vgg16"])


class TinyPlugin:
    @hookimpl
    def register_backbones(self, register):
        register(TinyVGG("tiny_vgg16", "test copy", content_layers=("relu4_2",), style_layers=("relu1_1",)))

    @hookimpl
    def register_loss_terms(self, register):
        register(TermSpec("zero", "test term", lambda: None))


def test_builtins_register_through_the_hooks(host):
    infos = {p.name: p for p in host.plugins()}
    assert set(DEFAULT_PLUGINS) <= set(infos)
    assert infos["dreamstyle.default_plugins.backbones"].hooks == ["register_backbones"]
    assert all(p.builtin for p in infos.values())
    assert host.backbones.owner["vgg19"] == "dreamstyle.default_plugins.backbones"
    assert host.loss_terms.owner["style"] == "dreamstyle.default_plugins.losses"


def test_registered_plugin_supplies_entries_and_is_recorded(host):
    assert host.register(TinyPlugin(), name="tiny")
    assert host.backbones.get("tiny_vgg16").plugin == "tiny"
    assert host.loss_terms.owner["zero"] == "tiny"
    assert not host.errors


def test_duplicate_name_is_refused_naming_both_plugins(host):
    class Dup:
        @hookimpl
        def register_backbones(self, register):
            register(VGG("vgg16", "impostor"))

    host.register(Dup(), name="dup-plugin")
    assert host.backbones.get("vgg16").description != "impostor"
    (err,) = host.errors
    assert "vgg16" in err and "dup-plugin" in err and "dreamstyle.default_plugins.backbones" in err


def test_misspelled_hook_fails_at_load_with_clear_error(host):
    class Typo:
        @hookimpl
        def register_backbone(self, register):  # missing "s"
            pass

    assert not host.register(Typo(), name="typo-plugin")
    (err,) = host.errors
    assert "typo-plugin" in err and "register_backbone" in err
    assert "vgg19" in host.backbones.names()  # the rest keeps working


def test_failing_hook_is_reported_and_others_survive(host):
    class Boom:
        @hookimpl
        def register_backbones(self, register):
            raise RuntimeError("kaput")

    host.register(Boom(), name="boom")
    assert "vgg19" in host.backbones.names()
    assert any("boom" in e and "kaput" in e for e in host.errors)


def test_entry_point_loading_can_be_disabled(monkeypatch):
    from dreamstyle import plugins

    calls = []
    monkeypatch.setattr(plugins.metadata, "entry_points", lambda group: calls.append(group) or [])
    monkeypatch.setenv(plugins.DISABLE_ENV, "1")
    plugins.PluginHost()
    assert calls == []
    monkeypatch.delenv(plugins.DISABLE_ENV)
    plugins.PluginHost()
    assert calls == ["dreamstyle"]


def test_broken_entry_point_is_named_and_skipped(monkeypatch):
    from dreamstyle import plugins

    class EP:
        name = "broken-plugin"
        dist = None

        def load(self):
            raise ImportError("No module named 'nowhere'")

    monkeypatch.setattr(plugins.metadata, "entry_points", lambda group: [EP()])
    h = plugins.PluginHost(load_entry_points=True)
    assert h.errors == ["plugin 'broken-plugin' not loaded: ImportError: No module named 'nowhere'"]
    assert "vgg19" in h.backbones.names()


def test_unknown_backbone_suggests_closest(host):
    with pytest.raises(UnknownNameError) as err:
        host.backbones.get("vgg91")
    assert "vgg19" in str(err.value) and "dreamstyle backbones" in str(err.value)


def test_plugins_command_json(host, runner):
    host.register(TinyPlugin(), name="tiny", version="1.2")
    result = runner.invoke(main, ["plugins", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.output)}
    assert rows["tiny"]["builtin"] is False and rows["tiny"]["version"] == "1.2"
    assert rows["tiny"]["hooks"] == ["register_backbones", "register_loss_terms"]
    assert rows["dreamstyle.default_plugins.losses"]["builtin"] is True


def test_plugins_command_table(host, runner):
    result = runner.invoke(main, ["plugins"])
    assert result.exit_code == 0 and "register_backbones" in result.output
