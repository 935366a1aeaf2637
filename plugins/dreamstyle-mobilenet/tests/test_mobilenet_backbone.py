import math
import os

import dreamstyle_mobilenet
import pytest
import torch
import torchvision

from dreamstyle.backbones import load_backbone
from dreamstyle.errors import WeightsError

NAMES = ["mobilenet_v2", "mobilenet_v3_large"]


def test_registered_through_the_hook(host):
    assert not host.errors
    for name in NAMES:
        backbone = host.backbones.get(name)
        assert backbone.plugin == "mobilenet"
        assert isinstance(backbone, dreamstyle_mobilenet.MobileNet)
    assert host.infos["mobilenet"].hooks == ["register_backbones"]


@pytest.mark.parametrize("name", NAMES)
def test_layer_map_matches_the_network(host, name):
    """Every layer's channels and stride as declared, with random weights; defaults exist."""
    torch.manual_seed(0)
    backbone = host.backbones.get(name)
    layers = backbone.layer_map
    assert layers.names[0] == "stem" and layers.names[-1] == "head"
    net = load_backbone(backbone, weights="random").features(layers.names)
    size = backbone.native_size
    with torch.no_grad():
        out = net(torch.rand(1, 3, size, size))
    assert list(out) == layers.names
    for layer in layers:
        f = out[layer.name]
        assert f.shape[1] == layer.channels, layer
        assert 2 ** round(math.log2(size / f.shape[-1])) == layer.stride, (layer, f.shape)
    for role in ("content_layers", "style_layers", "dream_layers"):
        assert getattr(backbone, role) and all(n in layers for n in getattr(backbone, role))
    # the smallest input the backbone accepts still goes through
    with torch.no_grad():
        net(torch.rand(1, 3, backbone.min_size, backbone.min_size))


def test_listing_never_builds_a_model(host, monkeypatch):
    backbone = host.backbones.get("mobilenet_v2")
    monkeypatch.setattr(type(backbone), "_make", lambda *a, **k: pytest.fail("built a model"))
    assert backbone.layer_map["block10"].stride == 16 and backbone.to_dict()["layers"] == 19


def test_extraction_stops_at_the_deepest_layer(host):
    net = load_backbone(host.backbones.get("mobilenet_v2"), weights="random").features(["block3", "stem"])
    assert net.names == ["stem", "block3"]
    code = net.body.body.code
    assert 'self.features, "3")' in code
    assert 'self.features, "4")' not in code and "classifier" not in code


def test_weights_file_in_torchvision_layout(host, tmp_path):
    torch.manual_seed(1)
    full = torchvision.models.mobilenet_v2().state_dict()
    torch.save(full, tmp_path / "full.pth")
    loaded = load_backbone(host.backbones.get("mobilenet_v2"), weights=tmp_path / "full.pth")
    assert torch.equal(loaded.model.features[18][0].weight, full["features.18.0.weight"])
    # without the classifier (never run) it loads too
    torch.save({k: v for k, v in full.items() if not k.startswith("classifier")}, tmp_path / "body.pth")
    load_backbone(host.backbones.get("mobilenet_v2"), weights=tmp_path / "body.pth")
    # the other architecture's file is refused naming keys
    with pytest.raises(WeightsError, match="mobilenet_v3_large"):
        load_backbone(host.backbones.get("mobilenet_v3_large"), weights=tmp_path / "full.pth")


def test_pretrained_weights_come_from_the_torch_hub_cache(host, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    url = torchvision.models.MobileNet_V2_Weights.DEFAULT.url
    torch.manual_seed(2)
    state = torchvision.models.mobilenet_v2().state_dict()
    (tmp_path / "checkpoints").mkdir()
    torch.save(state, tmp_path / "checkpoints" / os.path.basename(url))
    loaded = load_backbone(host.backbones.get("mobilenet_v2"))  # default weights, found in the cache
    assert torch.equal(loaded.model.features[0][0].weight, state["features.0.0.weight"])


def test_missing_pretrained_offline_is_one_clear_error(host, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))

    def offline(*a, **k):
        raise OSError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(WeightsError, match="mobilenet_v3_large.*--weights random"):
        load_backbone(host.backbones.get("mobilenet_v3_large"))


@pytest.mark.parametrize("name", ["mobilenet_v2", "mobilenet_v3_large"])
def test_the_backbones_pass_dreamstyles_contract_check(host, name):
    from dreamstyle.testing import check_backbone

    check_backbone(host.backbones.get(name))
