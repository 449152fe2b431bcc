"""Fine-tuning the top of a backbone on cached activations, one view or several (tlcourse/finetune.py)."""
from __future__ import annotations

import copy
from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

import tlcourse as tl
from tlcourse.freezing import iter_batchnorm
from tlcourse.models import StagedModel
from tiny_models import tiny_top


def _separable_views(n=120, seed=0, views=4):
    """Views of maps whose label is the sign of channel 0's mean, each with its own noise."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    base = torch.randn(n, 4, 3, 3, generator=g)
    base[:, 0] += (2 * y - 1)[:, None, None] * 1.5
    return [base + 0.3 * torch.randn(base.shape, generator=g) for _ in range(views)], y.numpy()


def _accuracy(model, views, y, idx):
    return (tl.predict(model, [v[idx] for v in views], device="cpu").argmax(1) == y[idx]).mean()


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_fine_tune_top_on_views_learns_and_leaves_the_given_top_untouched():
    views, y = _separable_views()
    top = tiny_top()
    template = copy.deepcopy(top)
    train, test = np.arange(80), np.arange(80, 120)
    untrained = _accuracy(top, views, y, test)
    model, history = tl.fine_tune_top(top, views, y, train, epochs=15, head_lr=5e-2, body_lr=1e-2, batch_size=16,
                                      seed=0, device="cpu", progress=False)
    probs = tl.predict(model, [v[test] for v in views], device="cpu")
    assert probs.shape == (40, 2) and np.allclose(probs.sum(1), 1, atol=1e-5)
    assert _accuracy(model, views, y, test) >= 0.9 > untrained
    assert _same_weights(top, template) and model is not top
    assert not model.training
    assert history.epochs == 15 and len(history["batch_loss"]) == 15 * 5  # 80 cells in batches of 16


class _Spy(nn.Module):
    """A stage that records the (view, cell) tags of the training inputs it sees, and passes them on."""

    seen: list = []  # a class attribute, shared with the copy that fine_tune_top trains

    def forward(self, x):
        if self.training:
            _Spy.seen += [(int(v), int(i)) for v, i in zip(x[:, 0, 0, 0], x[:, 1, 0, 0])]
        return x


def test_fine_tune_top_shows_each_training_cell_in_one_of_its_views_each_epoch():
    n, train = 24, np.arange(0, 24, 2)
    views = []
    for k in range(3):
        view = torch.zeros(n, 4, 3, 3)
        view[:, 0], view[:, 1] = k, torch.arange(n, dtype=torch.float32)[:, None, None]  # tagged: view k, cell i
        views.append(view)
    top = StagedModel(OrderedDict(spy=_Spy(), classifier=nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1),
                                                                          nn.Linear(4, 2))))
    _Spy.seen = []
    tl.fine_tune_top(top, views, np.arange(n) % 2, train, epochs=4, batch_size=5, val_idx=np.arange(1, 24, 2),
                     device="cpu", progress=False)
    cells = [i for _, i in _Spy.seen]
    assert sorted(cells) == sorted(train.tolist() * 4)  # each training cell once per epoch, never another cell
    assert {v for v, _ in _Spy.seen} == {0, 1, 2}  # drawn in every view


def test_fine_tune_top_starts_from_the_probe():
    top = tiny_top()
    activations, labels = torch.randn(24, 4, 5, 5), np.arange(24) % 2
    probe = nn.Linear(8, 2)
    kept = copy.deepcopy(probe)
    model, history = tl.fine_tune_top(top, activations, labels, np.arange(16), epochs=0, head_init=probe,
                                      device="cpu", progress=False)
    assert torch.equal(tl.head(model).weight, probe.weight) and torch.equal(tl.head(model).bias, probe.bias)
    assert history.epochs == 0
    model, _ = tl.fine_tune_top(top, activations, labels, np.arange(16), epochs=2, head_init=probe,
                                device="cpu", progress=False)
    assert not torch.equal(tl.head(model).weight, probe.weight)  # the head trained from there ...
    assert _same_weights(probe, kept) and tl.head(model) is not probe  # ... on a copy of the probe


def test_fine_tune_top_validates_every_epoch_when_given_validation_cells():
    top = tiny_top()
    activations, labels = torch.randn(24, 4, 5, 5), np.arange(24) % 2
    _, history = tl.fine_tune_top(top, activations, labels, np.arange(16), epochs=2, val_idx=np.arange(16, 24),
                                  device="cpu", progress=False)
    assert history.epochs == 2 and len(history["val_accuracy"]) == 2 and len(history["val_loss"]) == 2


def _running_means(model):
    return [bn.running_mean.clone() for bn in iter_batchnorm(model)]


def test_batchnorm_eval_keeps_the_stored_statistics_and_train_moves_them():
    views, y = _separable_views(n=48)
    shifted = [v * 3 + 2 for v in views]  # data whose statistics are far from the stored ones
    top = tiny_top()
    stored = _running_means(top)
    kept, _ = tl.fine_tune_top(top, shifted, y, np.arange(48), epochs=1, batchnorm="eval", device="cpu",
                               progress=False)
    adapted, _ = tl.fine_tune_top(top, shifted, y, np.arange(48), epochs=1, batchnorm="train", device="cpu",
                                  progress=False)
    assert all(torch.equal(a, b) for a, b in zip(stored, _running_means(kept)))
    assert all(not torch.equal(a, b) for a, b in zip(stored, _running_means(adapted)))
    assert not _same_weights(kept, top)  # the weights trained all the same
    with pytest.raises(ValueError, match="batchnorm"):
        tl.fine_tune_top(top, shifted, y, np.arange(48), epochs=1, batchnorm="frozen", device="cpu", progress=False)


def test_label_smoothing_and_schedule_reach_the_training_loop():
    views, y = _separable_views(n=48)
    settings = dict(epochs=2, batch_size=16, seed=0, device="cpu", progress=False)
    plain, plain_history = tl.fine_tune_top(tiny_top(), views, y, np.arange(48), **settings)
    _, smooth_history = tl.fine_tune_top(tiny_top(), views, y, np.arange(48), label_smoothing=0.2, **settings)
    # the same seed draws the same first batch from the same weights: only the loss differs
    assert smooth_history["batch_loss"][0] != pytest.approx(plain_history["batch_loss"][0])
    onecycle, _ = tl.fine_tune_top(tiny_top(), views, y, np.arange(48), schedule="onecycle", warmup=0.5, **settings)
    assert not _same_weights(onecycle, plain)
    again, again_history = tl.fine_tune_top(tiny_top(), views, y, np.arange(48), **settings)
    assert _same_weights(again, plain) and again_history["batch_loss"] == plain_history["batch_loss"]  # repeatable
    with pytest.raises(ValueError, match="schedule"):
        tl.fine_tune_top(tiny_top(), views, y, np.arange(48), schedule="step", **settings)


def test_weight_change_is_zero_for_a_copy_and_grows_with_the_update():
    model = tiny_top()
    before = copy.deepcopy(model)
    assert all(v == 0 for v in tl.weight_change(before, model).values())
    with torch.no_grad():
        model.parts["conv_head"][0].weight.mul_(1.5)
    change = tl.weight_change(before, model)
    assert set(change) == {"stage6", "conv_head", "classifier"}
    assert change["conv_head"] > 0 and change["stage6"] == 0


def test_weight_change_shows_which_stages_fine_tuning_moved():
    views, y = _separable_views(n=48)
    top = tiny_top()
    tl.freeze(top.parts["stage6"])
    model, _ = tl.fine_tune_top(top, views, y, np.arange(48), epochs=2, device="cpu", progress=False)
    change = tl.weight_change(top, model)
    assert change["stage6"] == 0 and change["conv_head"] > 0 and change["classifier"] > 0


def test_margin_over_seeds_calls_a_gain_only_when_it_exceeds_the_noise_across_seeds():
    margin_over_seeds = tl.finetune.margin_over_seeds
    steady = margin_over_seeds([0.86, 0.87, 0.865], reference=0.845)
    assert steady["verdict"] == "beats" and steady["margin"] == pytest.approx(0.02) and steady["seeds"] == 3
    assert steady["se"] == pytest.approx(np.std([0.86, 0.87, 0.865], ddof=1) / np.sqrt(3))
    noisy = margin_over_seeds([0.82, 0.865, 0.91], reference=0.845)  # the same mean gain, nine times the spread
    assert noisy["margin"] > 0 and noisy["verdict"] == "is within the noise of"
    assert margin_over_seeds([0.82, 0.825, 0.83], reference=0.845)["verdict"] == "loses to"
    assert margin_over_seeds([0.95], reference=0.845)["verdict"] == "is within the noise of"  # one seed: no noise estimate


def test_the_benchmark_recipe_is_fine_tune_top_with_settings_it_takes():
    import inspect

    recipe = tl.finetune.BENCHMARK_RECIPE
    parameters = inspect.signature(tl.fine_tune_top).parameters
    assert set(recipe["settings"]) <= set(parameters) - {"top", "activations", "labels", "train_idx", "epochs"}
    assert recipe["cut"] in tl.models.stage_names(tl.load_backbone())
    assert recipe["epochs"] >= 1 and recipe["map_size"] >= 32 and set(recipe["turns"]) <= {0, 1, 2, 3}
