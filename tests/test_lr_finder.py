"""The learning-rate range test (lesson 07): it sweeps the rate upwards, stops when training blows up,
leaves the model alone, and suggests a rate that trains better than a guess far off it."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tiny_models import tiny_top
from tlcourse import lr_finder
from tlcourse.finetune import fine_tune_top


def _activations(n: int = 256, seed: int = 0):
    """Cached activations of a cut, shaped for tiny_top, whose mean says the class."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n,), generator=g)
    x = torch.randn(n, 4, 4, 4, generator=g) + 0.1 * (2 * labels.float() - 1).view(-1, 1, 1, 1)
    return x, labels.numpy()


def test_the_range_test_sweeps_upwards_and_stops_when_the_loss_blows_up():
    x, y = _activations()
    result = lr_finder.lr_range_test(tiny_top(), x, y, np.arange(len(y)), start_lr=1e-5, end_lr=100.0, steps=80,
                                     device="cpu")
    lrs, losses = result["lrs"], result["losses"]
    assert np.all(np.diff(lrs) > 0) and lrs[0] == pytest.approx(1e-5)
    assert len(lrs) < 80, "AdamW at a rate of 100 should have diverged before the last step"
    assert not np.isfinite(losses[-1]) or losses[-1] > 4 * min(losses)
    assert min(losses) < losses[0]  # somewhere on the way the loss fell
    assert lrs[0] < result["suggested_lr"] < lrs[int(np.argmin(losses))]


def test_the_range_test_leaves_the_model_untouched():
    top = tiny_top()
    before = {k: v.clone() for k, v in top.state_dict().items()}
    x, y = _activations(64)
    lr_finder.lr_range_test(top, [x, x.flip(-1)], y, np.arange(32), steps=10, device="cpu")  # views work too
    assert all(torch.equal(before[k], v) for k, v in top.state_dict().items())


def test_the_suggested_rate_trains_better_than_one_far_above_it():
    x, y = _activations(n=384)
    train, val = np.arange(256), np.arange(256, 384)
    suggested = lr_finder.lr_range_test(tiny_top(), x, y, train, end_lr=100.0, device="cpu")["suggested_lr"]
    scores = {}
    for name, lr in {"suggested": suggested, "far above": suggested * 300}.items():
        _, history = fine_tune_top(tiny_top(), x, y, train, epochs=3, head_lr=lr, body_lr=lr * 0.1, val_idx=val,
                                   device="cpu", progress=False)
        scores[name] = history["val_loss"][-1]
    assert scores["suggested"] < scores["far above"], scores


def test_the_plot_marks_the_suggestion():
    x, y = _activations(64)
    result = lr_finder.lr_range_test(tiny_top(), x, y, np.arange(64), steps=10, device="cpu")
    ax = lr_finder.plot_lr_range(result)
    assert ax.get_xscale() == "log" and f"{result['suggested_lr']:.1e}" in ax.get_legend().get_texts()[0].get_text()
