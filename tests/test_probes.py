"""Linear probes: one logistic regression, returned as an nn.Linear, on one array or several views (tlcourse/probes.py)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from torch import nn

import tlcourse as tl


def _blobs(n=120, d=6, shift=1.5, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    x = rng.normal(size=(n, d)) * rng.uniform(0.5, 3, size=d) + shift * y[:, None]
    return x.astype(np.float32), y


def _two_views(n=200, dim=6, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    base = rng.normal(size=(n, dim)) + 1.5 * y[:, None]
    return [base + 0.1 * rng.normal(size=base.shape) for _ in range(2)], y


def test_probe_is_a_linear_layer_with_the_probabilities_of_scikit_learn():
    x, y = _blobs()
    probe = tl.fit_probe(x, y, C=0.5)
    assert isinstance(probe, nn.Linear) and (probe.in_features, probe.out_features) == (6, 2)
    scaler = StandardScaler().fit(x)
    reference = LogisticRegression(C=0.5, max_iter=2000).fit(scaler.transform(x), y)
    np.testing.assert_allclose(tl.predict(probe, x, device="cpu"), reference.predict_proba(scaler.transform(x)),
                               atol=1e-4)


def test_probe_handles_more_than_two_classes():
    rng = np.random.default_rng(1)
    y = np.arange(90) % 3
    x = rng.normal(size=(90, 4)) + 2 * np.eye(3, 4)[y]
    probs = tl.predict(tl.fit_probe(x, y), x, device="cpu")
    assert probs.shape == (90, 3) and (probs.argmax(1) == y).mean() > 0.8


def test_probe_takes_tensors_and_ignores_a_constant_feature():
    x, y = _blobs()
    with_constant = np.hstack([x, np.full((len(x), 1), 3.0, dtype=np.float32)])
    probe = tl.fit_probe(torch.as_tensor(with_constant), y)
    assert torch.isfinite(probe.weight).all() and probe.weight[:, -1].abs().max() == 0
    np.testing.assert_allclose(tl.predict(probe, with_constant, device="cpu"),
                               tl.predict(tl.fit_probe(x, y), x, device="cpu"), atol=1e-5)


def test_smaller_C_regularises_more():
    x, y = _blobs()
    weak, strong = tl.fit_probe(x, y, C=10.0), tl.fit_probe(x, y, C=0.001)
    assert strong.weight.norm() < weak.weight.norm() / 5


def test_probe_on_views_is_the_probe_trained_on_the_stacked_views():
    views, y = _two_views()
    probe = tl.fit_probe(views, y, C=1.0)
    reference = tl.fit_probe(np.concatenate(views), np.concatenate([y, y]), C=1.0)
    torch.testing.assert_close(probe.weight, reference.weight)
    torch.testing.assert_close(probe.bias, reference.bias)
    single = tl.fit_probe(views[0], y, C=1.0)
    assert not torch.allclose(probe.weight, single.weight)  # the second view changed the probe


def test_probe_accuracy_averages_the_views_at_prediction():
    views, y = _two_views()
    fit_idx, eval_idx = np.arange(150), np.arange(150, 200)
    probe = tl.fit_probe([v[fit_idx] for v in views], y[fit_idx], C=0.05)
    averaged = tl.predict(probe, [v[eval_idx] for v in views], device="cpu")
    expected = (averaged.argmax(1) == y[eval_idx]).mean()
    assert tl.probe_accuracy(views, y, fit_idx, eval_idx) == pytest.approx(expected)
    assert expected > 0.85


def test_probe_accuracy_flattens_activation_maps():
    rng = np.random.default_rng(0)
    y = np.arange(80) % 2
    maps = rng.normal(size=(80, 2, 3, 3)) + y[:, None, None, None]
    assert tl.probe_accuracy(maps, y, np.arange(60), np.arange(60, 80)) > 0.8


def test_choose_C_picks_the_candidate_with_the_best_validation_accuracy():
    views, y = _two_views()
    fit_idx, val_idx = np.arange(150), np.arange(150, 200)
    candidates = (1e-6, 0.01, 1.0)
    C, scores = tl.probes.choose_C(views, y, fit_idx, val_idx, candidates=candidates)
    assert list(scores) == list(candidates)
    for c in candidates:  # every score is the validation accuracy of a probe fitted with that C
        assert scores[c] == pytest.approx(tl.probe_accuracy(views, y, fit_idx, val_idx, C=c))
    assert scores[1e-6] < scores[1.0]  # a probe with no weights cannot separate the classes
    assert scores[C] == max(scores.values()) and C != 1e-6


def test_choose_C_breaks_ties_towards_the_strongest_regularisation():
    y = np.arange(60) % 2
    x = (2 * y[:, None] - 1) * 5.0 + 0.01 * np.random.default_rng(0).normal(size=(60, 2))
    C, scores = tl.probes.choose_C(x, y, np.arange(40), np.arange(40, 60), candidates=(100.0, 1.0, 10.0))
    assert set(scores.values()) == {1.0} and C == 1.0


def test_stage_probes_score_every_layer_in_order():
    x, y = _blobs()
    noise = np.random.default_rng(0).normal(size=(len(y), 3, 2))
    rows = tl.stage_probes({"noise": noise, "signal": x}, y, np.arange(80), np.arange(80, 120))
    assert [r["layer"] for r in rows] == ["noise", "signal"]
    assert [r["dims"] for r in rows] == [6, 6]
    assert rows[1]["accuracy"] > rows[0]["accuracy"]
    assert rows[1]["accuracy"] == pytest.approx(tl.probe_accuracy(x, y, np.arange(80), np.arange(80, 120)))


def test_grouped_cross_validation_never_tests_on_a_trained_group():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(20), 3)
    y = groups % 2
    # each group has its own random code: memorising groups cannot predict a held-out group's label
    x = rng.normal(size=(20, 16))[groups] + 0.01 * rng.normal(size=(60, 16))
    memorised, _ = tl.grouped_cv_accuracy(x, y, groups, folds=4)
    assert memorised < 0.8
    separable, error = tl.grouped_cv_accuracy(y[:, None] + 0.01 * rng.normal(size=(60, 1)), y, groups, folds=4)
    assert separable == 1.0 and error == 0.0
