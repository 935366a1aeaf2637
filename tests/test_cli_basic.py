import json

from dreamstyle import __version__
from dreamstyle.cli import main


def test_version_and_help(runner):
    assert __version__ in runner.invoke(main, ["--version"]).output
    result = runner.invoke(main, ["-h"])
    assert result.exit_code == 0 and "layers" in result.output


def test_backbones_json_lists_builtins(runner):
    result = runner.invoke(main, ["backbones", "--json"])
    names = [r["name"] for r in json.loads(result.output)]
    for expected in ["vgg19", "vgg16", "alexnet", "squeezenet1_0", "squeezenet1_1", "googlenet",
                     "inception_v3", "resnet18", "resnet50", "timm/<model>"]:
        assert expected in names


def test_layers_json_in_network_order(runner):
    rows = json.loads(runner.invoke(main, ["layers", "vgg19", "--json"]).output)
    assert [r["name"] for r in rows[:5]] == ["conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1"]
    assert rows[-1] == {"name": "pool5", "module": "features.36", "channels": 512, "stride": 32,
                        "kind": "pool", "default_for": []}


def test_layers_of_a_timm_model(runner):
    rows = json.loads(runner.invoke(main, ["layers", "timm/resnet50", "--json"]).output)
    assert [(r["name"], r["channels"], r["stride"]) for r in rows][-1] == ("layer4", 2048, 32)


def test_unknown_backbone_is_one_line_with_suggestion(runner):
    result = runner.invoke(main, ["layers", "resnt50"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "resnet50" in lines[0] and "dreamstyle backbones" in lines[0]
    assert "Traceback" not in result.output
