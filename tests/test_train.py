"""Training and evaluation helpers: learn, record history, report the protocol's metrics."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn import metrics as skm
from torch import nn

import tlcourse as tl


def _blobs(n=200, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.normal(size=(n, 5)) + 2.0 * y[:, None]
    return x.astype(np.float32), y


def test_fit_learns_a_separable_problem_and_records_history():
    tl.seed_everything(0)
    x, y = _blobs()
    model = nn.Linear(5, 2)
    history = tl.fit(model, tl.tensor_loader(x, y, batch_size=32, shuffle=True, seed=0), epochs=5, lr=0.05,
                     val_loader=tl.tensor_loader(*_blobs(seed=1)), device="cpu", progress=False)
    assert history.epochs == 5 and len(history["val_accuracy"]) == 5 and len(history["seconds"]) == 5
    assert history["train_loss"][-1] < history["train_loss"][0]
    assert history["val_accuracy"][-1] > 0.9


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


def test_predict_returns_probabilities_in_loader_order():
    x, y = _blobs(50)
    probs, labels = tl.predict(nn.Linear(5, 3), tl.tensor_loader(x, y, batch_size=8), device="cpu")
    assert probs.shape == (50, 3) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    assert np.array_equal(labels, y)


def test_four_class_metrics_use_one_vs_rest_auc():
    y = np.array([0, 1, 2, 3] * 10)
    probs = np.eye(4)[y] * 0.7 + 0.075
    result = tl.classification_metrics(y, probs)
    assert result["accuracy"] == 1.0 and result["roc_auc"] == 1.0


def test_plots_draw_history_confusion_matrix_and_images():
    import matplotlib

    matplotlib.use("Agg")
    history = tl.History()
    for epoch in range(3):
        history.append(epoch=epoch + 1, train_loss=1.0 / (epoch + 1), train_accuracy=0.5 + 0.1 * epoch,
                       val_loss=1.2 / (epoch + 1), val_accuracy=0.5)
    assert len(tl.plot_history(history).axes) == 2
    ax = tl.plot_confusion_matrix(np.array([[5, 1], [2, 7]]), ["functional", "defective"])
    assert [t.get_text() for t in ax.texts] == ["5", "1", "2", "7"]
    fig = tl.show_images([np.zeros((8, 8)), torch.zeros(3, 8, 8)], titles=["a", "b"], columns=2)
    assert len(fig.axes) == 2
