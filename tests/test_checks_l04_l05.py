"""Lessons 04 and 05's checks: they pass the reference answers, name the typical mistakes, read
"not attempted yet" for placeholders, and never pass malformed or incomplete evidence."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import tlcourse as tl
from tlcourse.shift import mmd
from tlcourse.grading.checks import lesson_tasks

from check_helpers import (answer_of, fails_with, forged_evidence_never_passes, hidden_test_verdict, lenient_evidence,
                           notebook_fixtures, passes, reads_not_attempted, task_ids)

NOTEBOOKS = {"04": "04_limited_data.ipynb", "05": "05_different_distributions.ipynb"}
TASK_IDS = task_ids(NOTEBOOKS)
reference, placeholders = notebook_fixtures(NOTEBOOKS, answers_only=True)


def test_both_lessons_have_at_least_four_tasks():
    assert len(lesson_tasks("04")) >= 4 and len(lesson_tasks("05")) >= 4


@pytest.mark.parametrize("task_id", TASK_IDS)
@tl.torch_threads(1)
def test_every_check_and_hidden_test_passes_the_referenceanswer_of(reference, task_id):
    passes(task_id, answer_of(reference, task_id), hidden_test=True)


@pytest.mark.parametrize("task_id", TASK_IDS)
def test_every_placeholder_reads_not_attempted_yet(placeholders, task_id):
    reads_not_attempted(task_id, answer_of(placeholders, task_id))


@pytest.mark.parametrize("task_id", TASK_IDS)
@tl.torch_threads(1)
def test_malformed_or_incomplete_evidence_never_passes(reference, task_id):
    # the notebook's easy cases alone, handed to the strict hidden test, must fail too; no judge may raise
    forged_evidence_never_passes(task_id, lenient_evidence(task_id, answer_of(reference, task_id)))


@pytest.mark.parametrize("task_id", TASK_IDS)
def test_a_value_instead_of_a_function_gets_a_hint(task_id):
    fails_with(task_id, 0.5, "should be a function")


# ---------------------------------------------------------------- lesson 04

def test_subset_names_the_typical_mistakes():
    def whole_data_set(labels, indices, per_class, seed):
        return tl.per_class_subset(labels, per_class, seed=seed)

    def first_of_each_class(labels, indices, per_class, seed):
        return np.sort(np.concatenate([indices[labels[indices] == c][:per_class] for c in np.unique(labels)]))

    def in_total(labels, indices, per_class, seed):
        return np.sort(np.random.default_rng(seed).choice(indices, per_class, replace=False))

    def global_random_state(labels, indices, per_class, seed):
        return np.sort(np.concatenate([np.random.choice(indices[labels[indices] == c], per_class, replace=False)
                                       for c in np.unique(labels)]))

    fails_with("04.subset", whole_data_set, "not in `indices`", "test")
    fails_with("04.subset", first_of_each_class, "first 5 cells")
    fails_with("04.subset", in_total, "in total")
    fails_with("04.subset", global_random_state, "same seed")


def test_epochs_names_the_typical_mistakes():
    def floor_division(n, batch, min_steps, max_epochs):
        return min(max_epochs, max(1, math.ceil(min_steps / (n // batch))))

    def no_cap(n, batch, min_steps, max_epochs):
        return max(1, math.ceil(min_steps / math.ceil(n / batch)))

    def steps(n, batch, min_steps, max_epochs):
        return tl.epochs_for(n, batch, min_steps, max_epochs) * math.ceil(n / batch)

    fails_with("04.epochs", floor_division, "ZeroDivisionError", "round the steps per epoch *up*")
    fails_with("04.epochs", no_cap, "max_epochs")
    fails_with("04.epochs", steps, "number of steps")
    passes("04.epochs", lambda *args: tl.epochs_for(*args))


def test_curve_names_the_typical_mistakes():
    from sklearn.metrics import accuracy_score, balanced_accuracy_score

    def curve(pool_all=False, fixed_seed=False, on_train=False, metric=balanced_accuracy_score, key="balanced_accuracy"):
        def probe_curve(features, labels, train_idx, test_idx, sizes, seeds):
            rows = []
            for size in sizes:
                for seed in seeds:
                    subset = tl.per_class_subset(labels, size, seed=0 if fixed_seed else seed,
                                                 indices=None if pool_all else train_idx)
                    scored = subset if on_train else test_idx
                    probe = tl.fit_probe(features[subset], labels[subset])
                    score = metric(labels[scored], tl.predict(probe, features[scored], device="cpu").argmax(1))
                    rows.append({"per_class": size, "seed": seed, "n_train": len(subset), key: score})
            return rows
        return probe_curve

    passes("04.curve", curve())
    fails_with("04.curve", curve(pool_all=True), "test set leaks")
    fails_with("04.curve", curve(fixed_seed=True), "Every seed gave the same subset")
    fails_with("04.curve", curve(on_train=True), "cells it was trained on")
    # plain accuracy on an unbalanced test set: named, whether under the right key or under its own
    fails_with("04.curve", curve(metric=accuracy_score), "plain accuracy", "balanced accuracy")
    fails_with("04.curve", curve(metric=accuracy_score, key="accuracy"), "rewards guessing the majority")
    fails_with("04.curve", lambda *args: [{"per_class": 5, "seed": 0}], "keys")


def _choose_and_test(on_test=False, metric="balanced", refit=True, choose_by="balanced"):
    from sklearn.metrics import accuracy_score, balanced_accuracy_score

    def choose_and_test(features, labels, train_idx, test_idx, candidates):
        fit_idx, val_idx = tl.validation_split(train_idx, seed=0, labels=labels)

        def score(C, fit_on, score_on, measure=balanced_accuracy_score):
            probe = tl.fit_probe(features[fit_on], labels[fit_on], C=C)
            return measure(labels[score_on], tl.predict(probe, features[score_on], device="cpu").argmax(1))

        chosen_on = (train_idx, test_idx) if on_test else (fit_idx, val_idx)
        by = accuracy_score if choose_by == "plain" else balanced_accuracy_score
        best = max(candidates, key=lambda C: score(C, *chosen_on, measure=by))
        final = score(best, train_idx if refit else fit_idx, test_idx,
                      accuracy_score if metric == "plain" else balanced_accuracy_score)
        return {"C": best, "test_balanced_accuracy": final}
    return choose_and_test


def test_choice_passes_an_honest_choice_and_names_the_typical_mistakes():
    passes("04.choice", _choose_and_test(), hidden_test=True)
    fails_with("04.choice", _choose_and_test(on_test=True), "changed when only the *test* labels changed",
               "chose on the test split")
    fails_with("04.choice", _choose_and_test(metric="plain"), "plain accuracy", "balanced accuracy")
    fails_with("04.choice", _choose_and_test(choose_by="plain"), "best *plain* accuracy on the validation split")
    fails_with("04.choice", _choose_and_test(refit=False), "refit the probe on the whole of `train_idx`")
    fails_with("04.choice", lambda *args: {"C": 123.0, "test_balanced_accuracy": 0.5}, "one of the candidates")
    fails_with("04.choice", lambda *args: (0.01, 0.7), "should return a dict")


@pytest.mark.parametrize("run", [1, 2, 3])
def test_choice_hidden_test_draws_fresh_data_on_which_every_mistake_fails(run):
    from tlcourse.grading.checks import challenge_seed
    from tlcourse.grading.tasks import l04

    with challenge_seed(run):
        fresh = [case for case in l04._choice_cases(strict=True) if "drawn" in case[0]]
    with challenge_seed(run + 10):
        other = [case for case in l04._choice_cases(strict=True) if "drawn" in case[0]]
    assert len(fresh) == 1 and fresh[0][1] != other[0][1]   # another grading run, other data
    with challenge_seed(run):
        assert hidden_test_verdict("04.choice", _choose_and_test()).passed
        for mistake, phrase in [(dict(choose_by="plain"), "*plain* accuracy"), (dict(on_test=True), "test split"),
                                (dict(metric="plain"), "plain accuracy"), (dict(refit=False), "refit")]:
            verdict = hidden_test_verdict("04.choice", _choose_and_test(**mistake))
            assert not verdict.passed and phrase in verdict.message, (mistake, verdict.message)


def test_summary_names_the_typical_mistakes():
    def population_std(rows):
        by = {}
        for r in rows:
            by.setdefault(r["per_class"], []).append(r["accuracy"])
        return {k: (np.mean(v), np.std(v)) for k, v in by.items()}

    def not_grouped(rows):
        values = [r["accuracy"] for r in rows]
        return {r["per_class"]: (np.mean(values), np.std(values, ddof=1)) for r in rows}

    fails_with("04.summary", population_std, "n - 1")
    fails_with("04.summary", not_grouped, "Group the rows")
    fails_with("04.summary", lambda rows: [(1, 2)], "dict")


# ---------------------------------------------------------------- lesson 05

def test_stats_names_the_typical_mistakes():
    def every_image(images, train_idx):
        pixels = images.astype(np.float64) / 255
        return pixels.mean(), pixels.std()

    def pixel_units(images, train_idx):
        pixels = images[train_idx].astype(np.float64)
        return pixels.mean(), pixels.std()

    def per_image_std(images, train_idx):
        pixels = images[train_idx].astype(np.float64) / 255
        return pixels.mean(), pixels.reshape(len(pixels), -1).std(axis=1).mean()

    def per_position(images, train_idx):
        pixels = images[train_idx].astype(np.float64) / 255
        return pixels.mean(axis=0), pixels.std(axis=0)

    fails_with("05.stats", every_image, "test cells included")
    fails_with("05.stats", pixel_units, "divide by 255")
    fails_with("05.stats", per_image_std, "each image's own std")
    fails_with("05.stats", per_position, "not an array")


def _stage_probe(pool, evaluate_on_fit=False):
    def stage_probe(activations, labels, fit_idx, eval_idx):
        rows = []
        for name, maps in activations.items():
            x = pool(np.asarray(maps))
            rows.append({"layer": name, "dims": x.shape[1],
                         "accuracy": tl.probe_accuracy(x, labels, fit_idx, fit_idx if evaluate_on_fit else eval_idx)})
        return rows
    return stage_probe


def test_stages_names_the_typical_mistakes():
    fails_with("05.stages", _stage_probe(lambda m: m.reshape(len(m), -1)), "flattened", "Pool it first")
    fails_with("05.stages", _stage_probe(lambda m: m.mean(axis=1).reshape(len(m), -1)), "over the channels")
    fails_with("05.stages", _stage_probe(lambda m: m.max(axis=(2, 3))), "max-pooled")
    fails_with("05.stages", _stage_probe(lambda m: m.mean(axis=(2, 3)), evaluate_on_fit=True), "the probe trained on")


def _cross_type(fit_from_everything=False, ignore_train_type=False, test_on_every_type=False):
    def cross_type_accuracy(features, labels, types, train_idx, test_idx, train_on, test_on):
        pool = np.arange(len(labels)) if fit_from_everything else train_idx
        fit = pool if ignore_train_type else pool[types[pool] == train_on]
        test = test_idx if test_on_every_type else test_idx[types[test_idx] == test_on]
        return tl.probe_accuracy(features, labels, fit, test)
    return cross_type_accuracy


def test_shift_names_the_typical_mistakes():
    passes("05.shift", _cross_type())
    fails_with("05.shift", _cross_type(fit_from_everything=True), "leaks into training")
    fails_with("05.shift", _cross_type(ignore_train_type=True), "not only the mono ones")
    fails_with("05.shift", _cross_type(test_on_every_type=True), "every test cell")


def _mmd(diagonal=True, factor=2.0, square=True, root=False):
    def mmd_squared(a, b, bandwidth):
        a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
        k = lambda x, y: torch.exp(-(torch.cdist(x, y) ** (2 if square else 1)) / (factor * bandwidth ** 2))  # noqa: E731
        kaa, kbb, kab = k(a, a), k(b, b), k(a, b)
        n, m = len(a), len(b)
        if diagonal:
            value = (kaa.sum() - kaa.diagonal().sum()) / (n * (n - 1)) + (kbb.sum() - kbb.diagonal().sum()) / (m * (m - 1))
        else:
            value = kaa.mean() + kbb.mean()
        value = float(value - 2 * kab.mean())
        return math.sqrt(max(value, 0)) if root else value
    return mmd_squared


def test_mmd_names_the_typical_mistakes():
    passes("05.mmd", _mmd())
    passes("05.mmd", lambda a, b, bw: mmd(a, b, bw))
    fails_with("05.mmd", _mmd(diagonal=False), "biased")
    fails_with("05.mmd", _mmd(factor=1.0), "factor 2")
    fails_with("05.mmd", _mmd(square=False), "*squared* distance")
    fails_with("05.mmd", _mmd(root=True), "square root")
