"""The one training loop, its loaders, learning rates and schedules; predictions and metrics."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn import metrics as skm
from torch import nn

import tlcourse as tl
from tlcourse.train import History, make_schedule


def _blobs(n=200, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.normal(size=(n, 5)) + 2.0 * y[:, None]
    return x.astype(np.float32), y


def _still(model):
    """An optimizer that never changes the weights: the loss of every step is the initial model's."""
    return torch.optim.SGD(model.parameters(), lr=0.0)


# ---------------------------------------------------------------- fit

def test_fit_learns_a_separable_problem_and_records_history():
    tl.seed_everything(0)
    x, y = _blobs()
    model = nn.Linear(5, 2)
    history = tl.fit(model, tl.tensor_loader(x, y, batch_size=32, shuffle=True, seed=0), epochs=5, lr=0.05,
                     val_loader=tl.tensor_loader(*_blobs(seed=1)), device="cpu", progress=False)
    assert history.epochs == 5 and len(history["val_accuracy"]) == 5 and len(history["seconds"]) == 5
    assert history["epoch"] == [1, 2, 3, 4, 5]
    assert history["train_loss"][-1] < history["train_loss"][0]
    assert history["val_accuracy"][-1] > 0.9
    assert not model.training


def test_batch_loss_has_one_entry_per_training_step_and_none_for_validation():
    x, y = torch.randn(40, 3), torch.arange(40) % 2
    history = tl.fit(nn.Linear(3, 2), tl.tensor_loader(x, y, 10), epochs=2,
                     val_loader=tl.tensor_loader(x, y, 10), device="cpu", progress=False)
    assert len(history["batch_loss"]) == 2 * 4  # 2 epochs x 4 training batches, no validation batches
    for epoch in range(2):  # equal batches: the epoch's loss is the mean of its steps
        steps = history["batch_loss"][4 * epoch: 4 * (epoch + 1)]
        assert history["train_loss"][epoch] == pytest.approx(np.mean(steps))


def test_fit_uses_parameter_groups_and_steps_the_scheduler_per_batch():
    model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 2))
    optimizer = torch.optim.SGD([{"params": model[0].parameters(), "lr": 0.0},
                                 {"params": model[2].parameters(), "lr": 0.1}])
    frozen_before = model[0].weight.clone()
    loader = tl.tensor_loader(*_blobs(64), batch_size=16)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    tl.fit(model, loader, epochs=1, optimizer=optimizer, scheduler=scheduler, device="cpu", progress=False)
    assert torch.equal(model[0].weight, frozen_before)
    assert optimizer.param_groups[1]["lr"] == pytest.approx(0.1 * 0.5 ** 4)  # 4 batches


@pytest.mark.parametrize("name", ["onecycle", "cosine"])
def test_fit_builds_a_named_schedule_over_all_its_steps(name):
    model = nn.Linear(5, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    tl.fit(model, tl.tensor_loader(*_blobs(64), batch_size=16), epochs=2, optimizer=optimizer, scheduler=name,
           device="cpu", progress=False)
    reference = torch.optim.SGD(nn.Linear(5, 2).parameters(), lr=0.1)
    schedule = make_schedule(reference, name, total_steps=2 * 4)  # 2 epochs of 4 batches, stepped per batch
    for _ in range(8):
        reference.step()
        schedule.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(reference.param_groups[0]["lr"])
    assert optimizer.param_groups[0]["lr"] < 0.1 / 10  # annealed


def test_fit_passes_label_smoothing_to_the_loss():
    x, y = _blobs(32)
    loader = tl.tensor_loader(x, y, batch_size=32)
    losses = {}
    for smoothing in (0.0, 0.2):
        torch.manual_seed(0)
        model = nn.Linear(5, 2)
        with torch.no_grad():
            expected = nn.CrossEntropyLoss(label_smoothing=smoothing)(model(torch.as_tensor(x)), torch.as_tensor(y))
        history = tl.fit(model, loader, epochs=1, optimizer=_still(model), label_smoothing=smoothing,
                         device="cpu", progress=False)
        losses[smoothing] = history["batch_loss"][0]
        assert losses[smoothing] == pytest.approx(expected.item(), rel=1e-5)
    assert losses[0.0] != pytest.approx(losses[0.2])


def test_fit_augments_training_batches_only():
    x, y = _blobs(40)
    calls = []

    def to_zero(batch):
        calls.append(len(batch))
        return torch.zeros_like(batch)

    torch.manual_seed(0)
    model = nn.Linear(5, 2)
    with torch.no_grad():
        on_zeros = nn.functional.cross_entropy(model(torch.zeros(10, 5)), torch.as_tensor(y[:10])).item()
        on_data = nn.functional.cross_entropy(model(torch.as_tensor(x)), torch.as_tensor(y)).item()
    history = tl.fit(model, tl.tensor_loader(x, y, batch_size=10), epochs=2, optimizer=_still(model), augment=to_zero,
                     val_loader=tl.tensor_loader(x, y, batch_size=10), device="cpu", progress=False)
    assert calls == [10] * 8  # every training batch of both epochs, never a validation batch
    assert history["batch_loss"][0] == pytest.approx(on_zeros, rel=1e-5)  # the model trained on what augment returned
    assert history["val_loss"][0] == pytest.approx(on_data, rel=1e-5)  # and was validated on the data as it is


def test_fit_refuses_a_model_with_nothing_to_train():
    model = tl.freeze(nn.Linear(5, 2))
    with pytest.raises(ValueError, match="no trainable parameters"):
        tl.fit(model, tl.tensor_loader(*_blobs(16)), epochs=1, device="cpu", progress=False)


def test_same_seed_gives_the_same_training_run():
    runs = []
    for _ in range(2):
        tl.seed_everything(7)
        model = nn.Linear(5, 2)
        tl.fit(model, tl.tensor_loader(*_blobs(), shuffle=True, seed=7), epochs=2, device="cpu", progress=False)
        runs.append(model.weight.detach().clone())
    assert torch.equal(runs[0], runs[1])


def test_history_extend_appends_another_run_after_this_one():
    x, y = _blobs(40)
    model = nn.Linear(5, 2)
    first = tl.fit(model, tl.tensor_loader(x, y, 10), epochs=1, device="cpu", progress=False)
    second = tl.fit(model, tl.tensor_loader(x, y, 10), epochs=2, val_loader=tl.tensor_loader(x, y, 10),
                    device="cpu", progress=False)
    first_losses, second_losses = list(first["train_loss"]), list(second["train_loss"])
    combined = first.extend(second)
    assert combined is first and combined.epochs == 3
    assert combined["train_loss"] == first_losses + second_losses
    assert len(combined["batch_loss"]) == 4 + 8
    assert combined["val_accuracy"] == second["val_accuracy"]  # a record only the second run kept
    empty = History().extend(second)
    assert empty == second and empty.epochs == 2


# ---------------------------------------------------------------- learning rates and schedules

def test_param_groups_give_each_stage_its_learning_rate():
    model = tl.freeze_until(tl.replace_head(tl.load_backbone(), 2), "stage7")
    groups = tl.param_groups(model, {"classifier": 1e-2, "stage7": 1e-4}, default=1e-3)
    lrs = {g["name"]: g["lr"] for g in groups}
    assert lrs == {"stage7": 1e-4, "conv_head": 1e-3, "classifier": 1e-2}  # frozen stages are left out
    assert sum(p.numel() for g in groups for p in g["params"]) == tl.count_parameters(model, True)
    assert [g["name"] for g in tl.param_groups(model, {"classifier": 1e-2})] == ["classifier"]  # no default
    with pytest.raises(ValueError, match="stage99"):
        tl.param_groups(model, {"stage99": 1.0})


def _rates(name, steps=10, warmup=0.3):
    optimizer = torch.optim.SGD([{"params": [nn.Parameter(torch.zeros(1))], "lr": 0.1},
                                 {"params": [nn.Parameter(torch.zeros(1))], "lr": 0.01}])
    schedule = make_schedule(optimizer, name, steps, warmup=warmup)
    rates = []
    for _ in range(steps):
        rates.append([g["lr"] for g in optimizer.param_groups])
        optimizer.step()
        schedule.step()
    return np.array(rates)


def test_onecycle_warms_up_to_each_groups_rate_then_anneals():
    rates = _rates("onecycle", steps=10, warmup=0.3)
    peak = rates[:, 0].argmax()
    assert rates[peak].tolist() == pytest.approx([0.1, 0.01])  # each group peaks at its own rate
    assert 1 <= peak <= 3 and rates[0, 0] < 0.1 / 5  # reached after the warm-up share of the steps
    assert np.all(np.diff(rates[peak:, 0]) < 0)


def test_cosine_starts_at_the_full_rate_and_decays():
    rates = _rates("cosine", steps=10)
    assert rates[0].tolist() == pytest.approx([0.1, 0.01])
    assert np.all(np.diff(rates[:, 0]) < 0)


def test_an_unknown_schedule_is_an_error_that_lists_the_known_ones():
    optimizer = torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1)
    with pytest.raises(ValueError, match="onecycle, cosine"):
        make_schedule(optimizer, "linear", 10)


def test_epochs_are_sized_to_the_data():
    assert tl.epochs_for(10, batch_size=32, min_steps=40, max_epochs=30) == 30  # capped
    assert tl.epochs_for(320, batch_size=32, min_steps=40, max_epochs=30) == 4
    assert tl.epochs_for(2000, batch_size=32, min_steps=40, max_epochs=30) == 1
    assert tl.epochs_for(2000, batch_size=32, min_steps=40, max_epochs=30, min_epochs=3) == 3


# ---------------------------------------------------------------- loaders and predictions

def test_tensor_loader_keeps_the_order_unless_shuffled_and_shuffles_repeatably():
    x, y = _blobs(20)
    batches = list(tl.tensor_loader(x, y, batch_size=8))
    assert [len(b[1]) for b in batches] == [8, 8, 4]
    assert torch.equal(torch.cat([b[0] for b in batches]), torch.as_tensor(x))
    assert batches[0][1].dtype == torch.long and batches[0][0].dtype == torch.float32

    def order(seed):
        return torch.cat([b[1] for b in tl.tensor_loader(np.arange(20), np.arange(20), 8, shuffle=True, seed=seed)])

    assert torch.equal(order(3), order(3)) and not torch.equal(order(3), torch.arange(20))


def test_tensor_loader_with_views_yields_each_example_in_one_of_its_views():
    n, views = 30, 4
    base = torch.arange(n, dtype=torch.float32)[:, None].repeat(1, 3)
    x = [base + 1000 * k for k in range(views)]  # view k of example i holds 1000 k + i
    y = np.arange(n) % 2
    torch.manual_seed(0)
    drawn = []
    for _ in range(5):
        for inputs, labels in tl.tensor_loader(x, y, batch_size=8):
            drawn.append((inputs, labels))
    rows = torch.cat([inputs for inputs, _ in drawn])
    labels = torch.cat([labels for _, labels in drawn])
    example = (rows[:, 0] % 1000).long()
    view = (rows[:, 0] // 1000).long()
    assert torch.equal(example, torch.arange(n).repeat(5))  # every example once per epoch, in order
    for row, i, k in zip(rows, example, view):
        assert torch.equal(row, x[k][i])  # a whole row of one view, never a mix
    assert torch.equal(labels, torch.as_tensor(y).repeat(5))  # with its own label
    assert set(view.tolist()) == set(range(views))  # and every view is drawn


def test_predict_returns_probabilities_in_loader_order():
    x, y = _blobs(50)
    model = nn.Linear(5, 3)
    probs = tl.predict(model, tl.tensor_loader(x, y, batch_size=8), device="cpu")
    assert isinstance(probs, np.ndarray) and probs.shape == (50, 3)
    with torch.no_grad():
        expected = model(torch.as_tensor(x)).softmax(1).numpy()
    np.testing.assert_allclose(probs, expected, atol=1e-6)
    np.testing.assert_allclose(probs.sum(axis=1), 1, atol=1e-5)


def test_predict_takes_a_tensor_an_array_or_a_loader_of_inputs_alone():
    x, _ = _blobs(50)
    model = nn.Linear(5, 2)
    reference = tl.predict(model, torch.as_tensor(x), device="cpu")
    np.testing.assert_allclose(tl.predict(model, x, batch_size=7, device="cpu"), reference, atol=1e-6)
    loader = torch.utils.data.DataLoader(torch.as_tensor(x), batch_size=16)
    np.testing.assert_allclose(tl.predict(model, loader, device="cpu"), reference, atol=1e-6)


def test_predict_on_views_is_the_mean_of_each_views_probabilities():
    rng = np.random.default_rng(0)
    views = [rng.normal(size=(20, 5)).astype(np.float32) for _ in range(3)]
    model = nn.Linear(5, 2)
    each = [tl.predict(model, view, device="cpu") for view in views]
    np.testing.assert_allclose(tl.predict(model, views, device="cpu"), np.mean(each, axis=0), atol=1e-6)
    assert not np.allclose(each[0], each[1])  # the views really differ
    np.testing.assert_allclose(tl.predict(model, tuple(views), device="cpu"), np.mean(each, axis=0), atol=1e-6)


def test_predict_leaves_the_model_in_eval_mode_and_keeps_no_gradients():
    model = nn.Sequential(nn.Linear(5, 4), nn.Dropout(0.5), nn.Linear(4, 2)).train()
    x, _ = _blobs(10)
    first, second = tl.predict(model, x, device="cpu"), tl.predict(model, x, device="cpu")
    assert np.array_equal(first, second) and not model.training  # dropout is off
    assert all(p.grad is None for p in model.parameters())


# ---------------------------------------------------------------- metrics

def test_metrics_agree_with_scikit_learn_and_split_by_module_type():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 100)
    p = np.clip(y * 0.6 + rng.random(100) * 0.5, 0, 1)
    groups = np.where(np.arange(100) < 40, "mono", "poly")
    result = tl.classification_metrics(y, p, groups=groups)
    pred = (p > 0.5).astype(int)
    assert result["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert result["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    assert result["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p))
    assert result["accuracy_mono"] == pytest.approx(skm.accuracy_score(y[:40], pred[:40]))
    assert result["confusion_matrix"].sum() == 100
    assert "accuracy" in tl.format_metrics(result)


def test_four_class_metrics_use_one_vs_rest_auc():
    y = np.array([0, 1, 2, 3] * 10)
    probs = np.eye(4)[y] * 0.7 + 0.075
    result = tl.classification_metrics(y, probs)
    assert result["accuracy"] == 1.0 and result["roc_auc"] == 1.0
