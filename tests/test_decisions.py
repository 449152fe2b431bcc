"""Decisions under class imbalance (lesson 07): thresholds by cost, class weights, calibration, temperature."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch import nn

from tlcourse import decisions


def _imbalanced_scores(n: int = 400, seed: int = 0):
    """Positive-class scores of a decent but imperfect model on data with 30% positives."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(int)
    p = 1 / (1 + np.exp(-(2.0 * (2 * y - 1) + rng.normal(0, 1.5, n))))
    return p, y


def _overconfident(n: int = 4000, classes: int = 3, sharpness: float = 4.0, seed: int = 0):
    """Logits whose softmax is calibrated at temperature ``sharpness``, sharpened by that factor."""
    rng = np.random.default_rng(seed)
    true_logits = rng.normal(0, 1.5, (n, classes))
    p = np.exp(true_logits) / np.exp(true_logits).sum(1, keepdims=True)
    y = np.minimum((rng.random((n, 1)) > p.cumsum(axis=1)).sum(axis=1), classes - 1)  # drawn from p, row by row
    return sharpness * true_logits, y


def test_the_chosen_threshold_is_no_dearer_than_any_other_on_validation():
    p, y = _imbalanced_scores()
    for cost_fn, cost_fp in [(1, 1), (10, 1), (1, 5)]:
        t = decisions.choose_threshold(p, y, cost_fn=cost_fn, cost_fp=cost_fp)
        best = decisions.decision_cost(p, y, t, cost_fn, cost_fp)
        brute = min(decisions.decision_cost(p, y, u, cost_fn, cost_fp) for u in np.linspace(0, 1, 2001))
        assert best <= brute


def test_a_dearer_miss_lowers_the_threshold_and_catches_more_defects():
    p, y = _imbalanced_scores()
    even = decisions.choose_threshold(p, y, cost_fn=1, cost_fp=1)
    factory = decisions.choose_threshold(p, y, cost_fn=10, cost_fp=1)
    assert factory < even
    misses = lambda t: int(np.sum((p < t) & (y == 1)))  # noqa: E731
    assert misses(factory) < misses(even)


def test_decision_cost_counts_misses_and_false_alarms_at_their_prices():
    p = np.array([0.1, 0.4, 0.6, 0.9])
    y = np.array([1, 0, 0, 1])
    # at 0.5: the first cell is a miss (cost 10), the third a false alarm (cost 1)
    assert decisions.decision_cost(p, y, 0.5, cost_fn=10, cost_fp=1) == 11
    assert decisions.decision_cost(np.stack([1 - p, p], 1), y, 0.05, cost_fn=10, cost_fp=1) == 2


def test_the_threshold_lies_between_two_validation_probabilities():
    p, y = np.array([0.2, 0.3, 0.7, 0.8]), np.array([0, 0, 1, 1])
    assert decisions.choose_threshold(p, y) == pytest.approx(0.5)


def test_precision_recall_marks_the_cheapest_point_on_its_curve():
    p, y = _imbalanced_scores()
    curve = decisions.precision_recall(p, y, cost_fn=10, cost_fp=1)
    best = curve["best"]
    assert best["threshold"] == decisions.choose_threshold(p, y, 10, 1)
    called = p >= best["threshold"]
    assert best["recall"] == pytest.approx(called[y == 1].mean())
    assert best["precision"] == pytest.approx(y[called].mean())
    assert best["cost"] == decisions.decision_cost(p, y, best["threshold"], 10, 1)
    assert 0 < curve["average_precision"] <= 1 and len(curve["precision"]) == len(curve["recall"])
    ax = decisions.plot_precision_recall(curve)
    assert ax.get_legend() is not None


def test_binary_functions_refuse_labels_that_are_not_zero_or_one():
    with pytest.raises(ValueError, match="labels of 0"):
        decisions.choose_threshold([0.2, 0.8], [1, 2])
    with pytest.raises(ValueError, match="positive class"):
        decisions.choose_threshold(np.ones((2, 3)) / 3, [0, 1])


def test_class_weights_make_each_class_weigh_the_same_in_total():
    y = np.array([0] * 30 + [1] * 10)
    w = decisions.class_weights(y)
    totals = [float(w[c]) * np.sum(y == c) for c in (0, 1)]
    assert totals[0] == pytest.approx(totals[1])
    assert float((w[torch.as_tensor(y)]).mean()) == pytest.approx(1.0)  # the loss keeps its scale
    loss = nn.CrossEntropyLoss(weight=w)  # what the weights are for
    assert loss(torch.zeros(4, 2), torch.tensor([0, 1, 1, 0])).item() == pytest.approx(np.log(2))
    with pytest.raises(ValueError, match="no examples"):
        decisions.class_weights([0, 0, 2])


def _naive_ece(probs, labels, bins):
    """The textbook definition, one example at a time: a reference for the vectorised version."""
    total, n = 0.0, len(labels)
    for lo, hi in itertools.pairwise(np.linspace(0, 1, bins + 1)):
        members = [i for i in range(n) if (lo < probs[i].max() <= hi) or (lo == 0 and probs[i].max() == 0)]
        if members:
            acc = np.mean([probs[i].argmax() == labels[i] for i in members])
            conf = np.mean([probs[i].max() for i in members])
            total += len(members) / n * abs(acc - conf)
    return total


def test_expected_calibration_error_matches_its_definition():
    logits, y = _overconfident(n=300, sharpness=2.0)
    probs = decisions.apply_temperature(logits, 1.0)
    for bins in (5, 15):
        assert decisions.expected_calibration_error(probs, y, bins) == pytest.approx(_naive_ece(probs, y, bins))


def test_a_calibrated_model_has_a_small_ece_and_an_overconfident_one_a_large_one():
    logits, y = _overconfident()
    calibrated = decisions.expected_calibration_error(decisions.apply_temperature(logits, 4.0), y)
    overconfident = decisions.expected_calibration_error(decisions.apply_temperature(logits, 1.0), y)
    assert calibrated < 0.03 < 0.1 < overconfident


def test_the_reliability_curve_puts_each_example_in_the_bin_of_its_confidence():
    probs = np.array([[0.95, 0.05], [0.55, 0.45], [0.2, 0.8], [0.3, 0.7]])
    curve = decisions.reliability_curve(probs, np.array([0, 1, 1, 0]), bins=10)
    assert curve["count"].tolist() == [0, 0, 0, 0, 0, 1, 1, 1, 0, 1]
    assert curve["accuracy"][5] == 0 and curve["accuracy"][7] == 1 and curve["accuracy"][9] == 1
    assert curve["confidence"][6] == pytest.approx(0.7) and np.isnan(curve["confidence"][0])
    ax = decisions.plot_reliability(probs, [0, 1, 1, 0])
    assert len(ax.lines) == 2  # the diagonal and the model


def test_temperature_scaling_finds_the_temperature_that_made_the_model_overconfident():
    logits, y = _overconfident(sharpness=4.0)
    t = decisions.fit_temperature(logits, y)
    grid = np.exp(np.linspace(np.log(0.5), np.log(10), 400))  # reference: the best temperature on a grid
    nll = [nn.functional.cross_entropy(torch.tensor(logits) / g, torch.tensor(y)).item() for g in grid]
    assert t == pytest.approx(grid[int(np.argmin(nll))], rel=0.02)
    assert t == pytest.approx(4.0, rel=0.15)


def test_temperature_fitted_on_validation_lowers_the_ece_on_test_and_keeps_the_predictions():
    val_logits, val_y = _overconfident(seed=1)
    test_logits, test_y = _overconfident(seed=2)
    t = decisions.fit_temperature(val_logits, val_y)
    before = decisions.apply_temperature(test_logits, 1.0)
    after = decisions.apply_temperature(test_logits, t)
    assert decisions.expected_calibration_error(after, test_y) < decisions.expected_calibration_error(before, test_y) / 3
    assert (after.argmax(1) == before.argmax(1)).all()


def test_log_probabilities_stand_in_for_logits():
    logits, y = _overconfident(n=1000)
    probs = decisions.apply_temperature(logits, 1.0)
    t_logits = decisions.fit_temperature(logits, y)
    t_probs = decisions.fit_temperature(decisions.to_logits(probs), y)
    assert t_probs == pytest.approx(t_logits, rel=1e-3)
    assert decisions.to_logits(np.array([0.25, 0.5])).shape == (2, 2)  # positive-class probabilities work too
