"""fine_tune_top's two optional levers: a head that pools with the maximum too, and averaged weights.

Both are off by default, so lessons and the benchmark do not move until they ask for them.
"""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import tlcourse as tl
from tlcourse import finetune
from tlcourse.freezing import iter_batchnorm
from tiny_models import tiny_top


def _maps(n=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = torch.randn(n, 4, 5, 5, generator=g)
    x[:, 0] += (2 * y - 1)[:, None, None].float()
    return x, y.numpy()


def _weights(model):
    return [t.detach().clone() for t in model.state_dict().values()]


def _same(a, b):
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))


SETTINGS = dict(epochs=3, batch_size=16, seed=0, device="cpu", progress=False)


def test_defaults_are_average_pooling_and_no_weight_averaging():
    x, y = _maps()
    plain, plain_history = tl.fine_tune_top(tiny_top(), x, y, np.arange(48), **SETTINGS)
    explicit, history = tl.fine_tune_top(tiny_top(), x, y, np.arange(48), pooling="avg", average_last=0, **SETTINGS)
    assert _same(_weights(plain), _weights(explicit)) and history["batch_loss"] == plain_history["batch_loss"]
    assert isinstance(plain.parts["classifier"][0], torch.nn.AdaptiveAvgPool2d)


# ---------------------------------------------------------------- pooling that sees a local defect

def test_avgmax_pooling_keeps_a_one_pixel_defect_that_the_average_dilutes():
    maps = torch.zeros(2, 3, 10, 10)
    maps[1, 0, 4, 7] = 5.0  # one bright spot on a map of 100 positions
    pooled = finetune.AvgMaxPool()(maps)
    reference = torch.cat([maps.mean(dim=(2, 3)), maps.amax(dim=(2, 3))], dim=1)
    torch.testing.assert_close(pooled, reference)
    assert pooled.shape == (2, 6) and pooled[1, 0] == pytest.approx(0.05) and pooled[1, 3] == 5.0


def test_gem_pooling_goes_from_the_average_at_p_1_towards_the_maximum():
    maps = torch.rand(3, 4, 6, 6, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(finetune.GeMPool(p=1.0)(maps), maps.mean(dim=(2, 3)))
    mean, top = maps.mean(dim=(2, 3)), maps.amax(dim=(2, 3))
    gem3, gem50 = finetune.GeMPool(p=3.0)(maps), finetune.GeMPool(p=50.0)(maps)
    assert torch.all(mean < gem3) and torch.all(gem3 < gem50) and torch.all(gem50 <= top + 1e-6)
    assert torch.allclose(gem50, top, rtol=0.1)


def test_avgmax_pooling_gives_the_same_outputs_until_the_model_trains():
    top = tiny_top().eval()
    maps = torch.randn(5, 4, 5, 5)
    wide = finetune.replace_pooling(copy.deepcopy(top), "avgmax").eval()
    assert tl.head(wide).in_features == 2 * tl.head(top).in_features
    torch.testing.assert_close(wide(maps), top(maps))  # the max half starts at zero weight
    gem = finetune.replace_pooling(copy.deepcopy(top), "gem")
    assert isinstance(gem.parts["classifier"][0], finetune.GeMPool) and tl.head(gem).in_features == 8


def test_replace_pooling_reaches_a_timm_backbone_top():
    _, top = tl.split_at(tl.load_backbone(pretrained=False), "stage6")
    top = tl.replace_head(top, 2).eval()
    maps = torch.randn(2, 192, 5, 5)
    before = top(maps)
    wide = finetune.replace_pooling(copy.deepcopy(top), "avgmax").eval()
    assert tl.head(wide).in_features == 2560
    torch.testing.assert_close(wide(maps), before, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="avg, avgmax, gem"):
        finetune.replace_pooling(top, "median")


def test_fine_tune_top_trains_the_max_half_and_gem_exponent_with_the_head():
    x, y = _maps()
    model, _ = tl.fine_tune_top(tiny_top(), x, y, np.arange(48), pooling="avgmax", **SETTINGS)
    weight = tl.head(model).weight
    assert weight.shape == (2, 16) and weight[:, 8:].abs().sum() > 0  # the max features are used
    model, _ = tl.fine_tune_top(tiny_top(), x, y, np.arange(48), pooling="gem", head_lr=0.05, **SETTINGS)
    assert model.parts["classifier"][0].p.item() != pytest.approx(3.0)


def test_head_init_from_an_average_pooled_probe_fills_the_average_half():
    x, y = _maps()
    probe = torch.nn.Linear(8, 2)
    model, _ = tl.fine_tune_top(tiny_top(), x, y, np.arange(48), pooling="avgmax", head_init=probe,
                                **{**SETTINGS, "epochs": 0})
    torch.testing.assert_close(tl.head(model).weight, torch.cat([probe.weight, torch.zeros(2, 8)], dim=1))
    wide = torch.nn.Linear(16, 2)
    model, _ = tl.fine_tune_top(tiny_top(), x, y, np.arange(48), pooling="avgmax", head_init=wide,
                                **{**SETTINGS, "epochs": 0})
    assert torch.equal(tl.head(model).weight, wide.weight)
    with pytest.raises(ValueError, match="head_init takes 5 features"):
        tl.fine_tune_top(tiny_top(), x, y, np.arange(48), pooling="avgmax", head_init=torch.nn.Linear(5, 2), **SETTINGS)


# ---------------------------------------------------------------- weights averaged over the last epochs

def test_average_last_returns_the_mean_of_the_last_epochs_weights(monkeypatch):
    x, y = _maps()
    snapshots = []
    real_update = torch.optim.swa_utils.AveragedModel.update_parameters

    def spy(self, model):
        snapshots.append([p.detach().clone() for p in model.parameters()])
        return real_update(self, model)

    monkeypatch.setattr(torch.optim.swa_utils.AveragedModel, "update_parameters", spy)
    settings = {**SETTINGS, "epochs": 5, "batchnorm": "eval"}
    averaged, history = tl.fine_tune_top(tiny_top(), x, y, np.arange(48), average_last=3, **settings)
    plain, plain_history = tl.fine_tune_top(tiny_top(), x, y, np.arange(48), **settings)
    assert len(snapshots) == 3
    # the training itself is the same run, stopped after each of the last epochs ...
    assert _same(snapshots[-1], [p.detach() for p in plain.parameters()])
    assert history["batch_loss"] == plain_history["batch_loss"] and history["epoch"] == [1, 2, 3, 4, 5]
    # ... and what comes back is the mean of its last three epochs' weights
    for got, *seen in zip(averaged.parameters(), *snapshots):
        torch.testing.assert_close(got.detach(), torch.stack(seen).mean(dim=0))
    assert not averaged.training


def test_averaged_weights_get_batchnorm_statistics_of_their_own_when_they_adapt():
    x, y = _maps()
    settings = {**SETTINGS, "epochs": 4}
    stored = [bn.running_mean.clone() for bn in iter_batchnorm(tiny_top())]
    kept, _ = tl.fine_tune_top(tiny_top(), x, y, np.arange(48), average_last=2, batchnorm="eval", **settings)
    assert all(torch.equal(a, bn.running_mean) for a, bn in zip(stored, iter_batchnorm(kept)))
    adapted, _ = tl.fine_tune_top(tiny_top(), x, y, np.arange(48), average_last=2, batchnorm="train", **settings)
    # reference: the first BatchNorm's mean is that of its inputs, the averaged first convolution's outputs
    # over the 48 training cells (3 batches of 16, each weighted the same by update_bn)
    with torch.no_grad():
        conv_out = adapted.parts["stage6"][0](x)
    first = next(iter_batchnorm(adapted))
    torch.testing.assert_close(first.running_mean, conv_out.mean(dim=(0, 2, 3)), rtol=1e-4, atol=1e-5)


def test_average_last_scores_the_averaged_weights_on_validation_and_checks_its_range():
    x, y = _maps()
    _, history = tl.fine_tune_top(tiny_top(), x, y, np.arange(32), average_last=2, val_idx=np.arange(32, 48),
                                  **SETTINGS)
    assert len(history["val_accuracy"]) == 3 and len(history["averaged_val_accuracy"]) == 1
    assert 0 <= history["averaged_val_accuracy"][0] <= 1
    with pytest.raises(ValueError, match="average_last"):
        tl.fine_tune_top(tiny_top(), x, y, np.arange(32), average_last=4, **SETTINGS)
