"""Freezing and the one BatchNorm policy: which weights learn, and which statistics move (tlcourse/freezing.py)."""
from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torch import nn

import tlcourse as tl
from tlcourse.freezing import iter_batchnorm
from tlcourse.models import StagedModel


def _bn_means(module):
    return [bn.running_mean.clone() for bn in iter_batchnorm(module)]


def _moved(before, module) -> bool:
    return any(not torch.equal(a, b) for a, b in zip(before, _bn_means(module)))


def _tiny_top():
    """A model shaped like the top of a split backbone: conv stages, then a classifier."""
    return StagedModel(OrderedDict(
        stage6=nn.Sequential(nn.Conv2d(4, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU()),
        conv_head=nn.Sequential(nn.Conv2d(8, 8, 1), nn.BatchNorm2d(8), nn.ReLU()),
        classifier=nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(8, 2)),
    ))


def _train_step(model, x):
    model.train()  # as a training loop would
    model(x).sum().backward()
    torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1).step()


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


def test_freeze_until_keeps_frozen_statistics_and_lets_trainable_ones_adapt():
    model = _tiny_top()
    tl.freeze_until(model, "conv_head")
    frozen, trainable = _bn_means(model.parts["stage6"]), _bn_means(model.parts["conv_head"])
    _train_step(model, torch.randn(8, 4, 5, 5) * 3 + 2)
    assert not _moved(frozen, model.parts["stage6"])
    assert _moved(trainable, model.parts["conv_head"])
    adapting = tl.freeze_until(_tiny_top(), "conv_head", batchnorm="train")
    before = _bn_means(adapting.parts["stage6"])
    _train_step(adapting, torch.randn(8, 4, 5, 5) * 3 + 2)
    assert _moved(before, adapting.parts["stage6"])
    assert tl.count_parameters(adapting.parts["stage6"], trainable_only=True) == 0


def test_freeze_until_works_on_a_small_cnn():
    cnn = tl.freeze_until(tl.SmallCNN(num_classes=2, in_channels=3), "stage3")
    assert tl.count_parameters(cnn.parts["stage1"], trainable_only=True) == 0
    assert tl.count_parameters(cnn.parts["stage3"], trainable_only=True) == tl.count_parameters(cnn.parts["stage3"])


def test_requires_grad_false_alone_lets_batchnorm_statistics_move():
    model = tl.load_backbone()
    for p in model.parameters():
        p.requires_grad_(False)
    before = _bn_means(model)
    model.train()
    with torch.no_grad():
        model(torch.randn(4, 3, 64, 64) * 3 + 1)
    assert _moved(before, model)


def test_frozen_backbone_keeps_batchnorm_statistics_in_train_mode():
    model = tl.load_backbone()
    tl.freeze(model)
    tl.replace_head(model, 2)
    before = _bn_means(model)
    model.train()  # as a training loop would
    logits = model(torch.randn(4, 3, 64, 64) * 3 + 1)
    logits.sum().backward()
    assert not _moved(before, model)
    assert tl.count_parameters(model, trainable_only=True) == 1280 * 2 + 2
    tl.unfreeze(model)
    model.train()
    with torch.no_grad():
        model(torch.randn(4, 3, 64, 64) * 3 + 1)
    assert _moved(before, model)


def test_freeze_with_trainable_batchnorm_lets_statistics_adapt():
    model = tl.load_backbone()
    tl.freeze(model, batchnorm="train")
    before = _bn_means(model)
    model.train()
    with torch.no_grad():
        model(torch.randn(4, 3, 64, 64))
    assert _moved(before, model)
    with pytest.raises(ValueError):
        tl.freeze(model, batchnorm="sometimes")


def test_eval_policy_keeps_statistics_while_the_weights_train():
    top = tl.set_batchnorm(_tiny_top(), "eval")
    bn = top.parts["stage6"][1]
    before_stats, before_weight = bn.running_mean.clone(), bn.weight.detach().clone()
    _train_step(top, torch.randn(8, 4, 5, 5) * 3 + 2)
    assert torch.equal(bn.running_mean, before_stats)
    assert not torch.equal(bn.weight, before_weight)  # set_batchnorm leaves requires_grad alone
    assert all(p.requires_grad for p in top.parameters())


def test_train_policy_lets_statistics_adapt_and_undoes_the_eval_policy():
    top = tl.set_batchnorm(_tiny_top(), "eval")
    tl.set_batchnorm(top, "train")
    before = _bn_means(top)
    _train_step(top, torch.randn(8, 4, 5, 5) * 3 + 2)
    assert _moved(before, top)
    tl.set_batchnorm(top, "eval")  # and back again: the hook is not added twice, and obeys the latest policy
    before = _bn_means(top)
    _train_step(top, torch.randn(8, 4, 5, 5) * 3 + 2)
    assert not _moved(before, top)
    assert sum(len(bn._forward_pre_hooks) for bn in iter_batchnorm(top)) == 2


def test_eval_policy_normalises_with_the_stored_statistics():
    top = tl.set_batchnorm(_tiny_top(), "eval")
    x = torch.randn(8, 4, 5, 5) * 3 + 2
    top.train()
    with torch.no_grad():
        in_train_mode = top(x)
    top.eval()
    with torch.no_grad():
        in_eval_mode = top(x)
    torch.testing.assert_close(in_train_mode, in_eval_mode)


@pytest.mark.parametrize("policy", ["frozen", "Eval", None, True])
def test_a_bad_batchnorm_policy_is_an_error_that_names_the_two_policies(policy):
    with pytest.raises(ValueError, match="'eval'.*'train'"):
        tl.set_batchnorm(_tiny_top(), policy)


def test_iter_batchnorm_finds_every_batchnorm_layer():
    assert len(list(iter_batchnorm(_tiny_top()))) == 2
    assert len(list(iter_batchnorm(tl.SmallCNN(width=4)))) == 4
