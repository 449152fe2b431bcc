"""Checks of lesson 07: they pass the reference answers, name the typical mistakes (a threshold or a
temperature fitted on the test split among them), read "not attempted yet" for placeholders, never
raise, refuse malformed evidence, and judge inputs drawn afresh for each grading run."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tlcourse.grading.checks import evidence_for, get_task, judge_evidence, lesson_tasks

from check_helpers import (ROOT, Hostile, check_output, fails_with, forged_evidence_never_passes, hidden_test_verdict,
                           only_the_hidden_test_fails, passes, reads_not_attempted, run_cells)

NOTEBOOK = "07_practitioners_tools.ipynb"
TASKS = [task.id for task in lesson_tasks("07")]


def _answers(folder: str) -> dict:
    """The answer cells of lesson 07's notebook in ``folder``; they use torch, which the setup cell imports."""
    namespace = run_cells(ROOT / folder / NOTEBOOK, answers_only=True)
    exec("import torch", namespace)
    return namespace


@pytest.fixture(scope="module")
def reference():
    return _answers("solutions")


@pytest.fixture(scope="module")
def placeholders():
    return _answers("exercises")


def _answer(namespace: dict, task_id: str):
    return namespace[get_task(task_id).answer]


def test_lesson_07_has_five_tasks_worth_nine_points():
    assert TASKS == ["07.lr", "07.threshold", "07.temperature", "07.ece", "07.tta"]
    assert sum(get_task(t).points for t in TASKS) == 9


@pytest.mark.parametrize("task_id", TASKS)
def test_every_check_and_hidden_test_passes_the_reference_answer(reference, task_id):
    passes(task_id, _answer(reference, task_id), hidden_test=True)


@pytest.mark.parametrize("task_id", TASKS)
def test_every_placeholder_reads_not_attempted_yet(placeholders, task_id):
    reads_not_attempted(task_id, _answer(placeholders, task_id))


@pytest.mark.parametrize("task_id", TASKS)
def test_a_check_never_raises_and_names_its_task(capsys, task_id):
    for answer in (Hostile(), 42, "0.5", lambda *args: "nonsense"):
        assert "correct." not in check_output(capsys, task_id, answer)


@pytest.mark.parametrize("task_id", TASKS)
def test_forged_evidence_never_passes(task_id):
    forged_evidence_never_passes(task_id, {"kind": "function", "cases": [{"case": "x", "value": 0.1}]})


@pytest.mark.parametrize("task_id", TASKS)
def test_evidence_made_for_one_grading_run_fails_the_next(reference, task_id):
    """The hidden test's inputs are drawn per run: answers computed for one run's inputs fail another's."""
    from tlcourse.grading import evidence as files

    task, answer = get_task(task_id), _answer(reference, task_id)
    first, second = 11, 2**40 + 3  # the grader draws seeds from 48 bits
    evidence, later = (files.roundtrip(evidence_for(task, answer, strict=True, seed=s)) for s in (first, second))
    assert judge_evidence(task, evidence, strict=True, seed=first).passed
    assert judge_evidence(task, later, strict=True, seed=second).passed
    assert not judge_evidence(task, evidence, strict=True, seed=second).passed
    relabelled = {**evidence, "cases": [{**old, "case": new["case"]} for old, new in zip(evidence["cases"], later["cases"])]}
    assert not judge_evidence(task, relabelled, strict=True, seed=second).passed  # this run's case names, old numbers


# ---------------------------------------------------------------- 07.lr

def test_lr_names_the_typical_mistakes():
    fails_with("07.lr", lambda lrs, losses: lrs[int(np.nanargmin(losses))], "lowest loss itself")
    fails_with("07.lr", lambda lrs, losses: 10 * lrs[int(np.nanargmin(losses))], "ten times")
    fails_with("07.lr", lambda lrs, losses: float(np.nanmin(losses)), "loss value")
    only_the_hidden_test_fails("07.lr", lambda lrs, losses: lrs[int(np.argmin(losses))] / 10, "NaN")


# ---------------------------------------------------------------- 07.threshold

def _cheapest(split_name: str, miss_key: str = "miss", same_cost: bool = False):
    def cheapest_threshold(splits, cost_miss, cost_alarm):
        p, y = (np.asarray(a) for a in splits[split_name])
        miss, alarm = (1, 1) if same_cost else (cost_miss, cost_alarm) if miss_key == "miss" else (cost_alarm, cost_miss)
        candidates = np.unique(np.concatenate([p, [1.0]]))
        return float(min(candidates, key=lambda t: miss * np.sum((p < t) & (y == 1)) + alarm * np.sum((p >= t) & (y == 0))))
    return cheapest_threshold


def test_threshold_passes_any_threshold_of_least_validation_cost(reference):
    right = _answer(reference, "07.threshold")
    passes("07.threshold", lambda splits, miss, alarm: right(splits, miss, alarm) - 1e-9, hidden_test=True)
    passes("07.threshold", _cheapest("val"), hidden_test=True)


@pytest.mark.parametrize("answer, phrase", [
    (_cheapest("test"), "**test** split"),
    (_cheapest("val", same_cost=True), "fewest mistakes"),
    (_cheapest("val", miss_key="alarm"), "swapped"),
    (lambda splits, miss, alarm: 0.5, "argmax"),
    (lambda splits, miss, alarm: 100 * _cheapest("val")(splits, miss, alarm), "percentage"),
    (lambda splits, miss, alarm: float("nan"), "between 0 and 1"),
])
def test_threshold_names_the_typical_mistakes(answer, phrase):
    fails_with("07.threshold", answer, phrase)


def test_threshold_on_the_test_split_fails_the_hidden_test_too():
    verdict = hidden_test_verdict("07.threshold", _cheapest("test"))
    assert not verdict.passed and "**test** split" in verdict.message


# ---------------------------------------------------------------- 07.temperature

def _temperature(split_name: str, transform=lambda t: t):
    from tlcourse import decisions

    return lambda splits: transform(decisions.fit_temperature(*splits[split_name]))


@pytest.mark.parametrize("answer, phrase", [
    (_temperature("test"), "**test** split"),
    (_temperature("fit"), "`fit` split"),
    (_temperature("val", lambda t: 1 / t), "1/T"),
    (lambda splits: 1.0, "T = 1"),
    (lambda splits: -2.0, "positive"),
    (_temperature("val", lambda t: 1.3 * t), "cross-entropy"),
])
def test_temperature_names_the_typical_mistakes(answer, phrase):
    fails_with("07.temperature", answer, phrase)


def test_temperature_accepts_the_package_reference_and_a_fine_grid(reference):
    passes("07.temperature", _temperature("val"), hidden_test=True)
    verdict = hidden_test_verdict("07.temperature", _temperature("test"))
    assert not verdict.passed and "**test** split" in verdict.message


# ---------------------------------------------------------------- 07.ece

def _ece(mistake: str):
    def expected_calibration_error(probs, labels, bins=10):
        probs, labels = np.asarray(probs), np.asarray(labels)
        confidence = probs[:, 1] if mistake == "positive_class" else probs.max(axis=1)
        correct = (labels == 1) if mistake == "positive_class" else probs.argmax(axis=1) == labels
        which = np.minimum((confidence * bins).astype(int), bins - 1)
        gaps, counts = [], []
        for b in range(bins):
            inside = which == b
            if inside.any():
                gaps.append(abs(correct[inside].mean() - confidence[inside].mean()))
                counts.append(inside.sum())
        gaps, counts = np.array(gaps), np.array(counts)
        return {"unweighted": gaps.mean(), "max": gaps.max(), "percent": 100 * np.sum(gaps * counts) / len(labels),
                "per_bin": np.sum(gaps * counts) / bins}.get(mistake, np.sum(gaps * counts) / len(labels))
    return expected_calibration_error


@pytest.mark.parametrize("mistake, phrase", [
    ("unweighted", "equal weights"),
    ("max", "maximum calibration error"),
    ("percent", "fraction"),
    ("per_bin", "number of bins"),
])
def test_ece_names_the_typical_mistakes(mistake, phrase):
    fails_with("07.ece", _ece(mistake), phrase)


def test_ece_of_class_1_passes_two_classes_but_not_the_hidden_three_class_case():
    """For two classes, binning P(class 1) gives the same ECE as binning the confidence; for three it does not."""
    only_the_hidden_test_fails("07.ece", _ece("positive_class"), "*predicted* class", "three-class")


def test_ece_of_mine_equals_the_package_reference():
    passes("07.ece", _ece("right"), hidden_test=True)


def test_ece_that_ignores_bins_fails_only_the_hidden_test():
    only_the_hidden_test_fails("07.ece", lambda probs, labels, bins=10: _ece("right")(probs, labels, 10), "15 bins")


# ---------------------------------------------------------------- 07.tta

def _tta(mistake: str):
    def predict_tta(model, images):
        if mistake != "train_mode":
            model.eval()
        bases = [images] if mistake == "turns_only" or mistake == "single" else [images, images.flip(-1)]
        turns = [0] if mistake in ("flips_only", "single") else range(4)
        with torch.no_grad():
            logits = torch.stack([model(torch.rot90(b, k, dims=(-2, -1))) for b in bases for k in turns])
        if mistake == "mean_logits":
            return logits.mean(dim=0).softmax(dim=1)
        if mistake == "logits":
            return logits.mean(dim=0)
        if mistake == "transposed":
            return logits.softmax(dim=2).mean(dim=0).T
        return logits.softmax(dim=2).mean(dim=0)
    return predict_tta


@pytest.mark.parametrize("mistake, phrase", [
    ("train_mode", "model.eval()"),
    ("mean_logits", "averaged the logits"),
    ("logits", "not probabilities"),
    ("turns_only", "mirror images"),
    ("flips_only", "quarter turns"),
    ("single", "as they are"),
    ("transposed", "shape"),
])
def test_tta_names_the_typical_mistakes(mistake, phrase):
    fails_with("07.tta", _tta(mistake), phrase)


def test_tta_accepts_numpy_output():
    passes("07.tta", lambda model, images: _tta("right")(model, images).numpy(), hidden_test=True)
