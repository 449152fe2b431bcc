"""Lesson 04's exercise tasks: a small training set by hand, epochs sized to the data, the
data-efficiency loop for the linear probe judged on balanced accuracy, mean ± std over seeds, and
a choice made on a validation split, never on the test split.

Learner functions are called on inputs built here: ELPV's labels and split, and small synthetic
data sets made from a seed. The checks use fixed seeds (the same on every machine); every hidden
test adds a case drawn fresh for each grading run (:func:`checks.challenge`): sizes, seeds, shapes
and data that the learner cannot see before the test starts. Every judge compares with a reference
computed here with the package's own helpers, never with a stored number.
"""
from __future__ import annotations

import math
import numbers
from functools import lru_cache

import numpy as np

from ... import data, probes, train
from ..checks import (Task, Verdict, call_answer, describe_error, fresh_random, function_evidence, hint, judge_cases,
                      never_raises, passed, register)


def _int_list(result) -> list[int] | None:
    """``result`` as a list of Python ints, or None when it is not a 1-D collection of integers."""
    try:
        array = np.asarray(result)
    except Exception:
        return None
    if array.ndim != 1 or not (np.issubdtype(array.dtype, np.integer) or array.size == 0):
        return None
    return [int(v) for v in array]


@lru_cache(maxsize=1)
def _elpv_labels_and_split() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    labels = data.ELPV().labels
    train_idx, test_idx = data.elpv_split(0)
    return labels, train_idx, test_idx


def _synthetic_labels(n: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Unbalanced labels of ``classes`` classes and a random "training split" of 70% of them."""
    rng = np.random.default_rng(seed)
    weights = np.arange(classes, 0, -1, dtype=float)
    labels = rng.choice(classes, size=n, p=weights / weights.sum()).astype(np.int64)
    train_idx = np.sort(rng.permutation(n)[: int(0.7 * n)])
    return labels, train_idx


# ---------------------------------------------------------------- 04.subset

def _subset_cases(strict: bool) -> list[tuple[str, str, int, int]]:
    """(case name, data, per_class, seed); the hidden test adds a size and a seed drawn for this run."""
    cases = [("ELPV, 5 per class, seed 0", "elpv", 5, 0)]
    if strict:
        fresh = fresh_random(40)
        per_class, seed = fresh.randrange(3, 60), fresh.randrange(2, 2**31)
        cases += [("ELPV, 25 per class, seed 3", "elpv", 25, 3),
                  ("3 synthetic classes, 7 per class, seed 11", "synthetic", 7, 11),
                  (f"ELPV, {per_class} per class, seed {seed} (drawn for this run)", "elpv", per_class, seed)]
    return cases


def _subset_inputs(kind: str) -> tuple[np.ndarray, np.ndarray]:
    if kind == "elpv":
        labels, train_idx, _ = _elpv_labels_and_split()
        return labels, train_idx
    return _synthetic_labels(400, 3, seed=5)


def _subset_case(answer, name: str, kind: str, per_class: int, seed: int) -> dict:
    labels, train_idx = _subset_inputs(kind)

    def three_runs() -> dict:
        """Two calls with ``seed`` and one with the next seed."""
        runs = {}
        for label, s in (("first", seed), ("again", seed), ("other", seed + 1)):
            result = answer(labels.copy(), train_idx.copy(), per_class, s)
            runs[label] = None if result is None else _int_list(result)
            runs[label + "_none"] = result is None
        return runs

    runs, problem = call_answer(three_runs)
    return {"case": name, **(problem or runs)}


def subset_evidence(answer, strict: bool) -> dict:
    return function_evidence(answer, _subset_cases(strict), _subset_case)


def _subset_verdict(case: dict, expected: tuple, where: str) -> Verdict | None:
    _, kind, per_class, seed = expected
    first, again, other = case["first"], case["again"], case["other"]
    if first is None or again is None or other is None:
        return hint(f"`pick_per_class` should return a 1-D array (or list) of integer indices {where}.")
    labels, train_idx = _subset_inputs(kind)
    allowed = set(train_idx.tolist())
    outside = [i for i in first if i not in allowed]
    if outside:
        return hint(f"{len(outside)} of the indices you picked are not in `indices` {where}: you sampled "
                    "from the whole data set (or the test split). Draw only from the training indices you "
                    "are given, or the test set leaks into training.")
    if len(set(first)) != len(first):
        return hint(f"Some cells were picked twice {where}: sample without replacement "
                    "(`rng.choice(pool, size=n, replace=False)`).")
    counts = {int(c): sum(1 for i in first if labels[i] == c) for c in np.unique(labels[train_idx])}
    if len(first) == per_class and len(counts) > 1:
        return hint(f"You picked {per_class} cells in total {where}; the task asks for {per_class} "
                    f"cells *of each class* ({per_class * len(counts)} in all).")
    if any(n != per_class for n in counts.values()):
        return hint(f"Per class you picked {counts} {where}; expected exactly {per_class} of every class. "
                    "Sample each class's pool separately.")
    if sorted(first) != sorted(again):
        return hint(f"Two calls with the same seed gave different cells {where}: make the draw reproducible "
                    "with a generator seeded by `seed` (`np.random.default_rng(seed)`), not the global state.")
    if sorted(first) == sorted(other):
        heads = sorted(i for c in counts for i in train_idx[labels[train_idx] == c][:per_class].tolist())
        if sorted(first) == heads:
            return hint(f"You took the first {per_class} cells of each class {where}. Draw them at "
                        "random: the first cells all come from the same few modules.")
        return hint(f"Seeds {seed} and {seed + 1} gave the same cells {where}: the seed must change the draw, "
                    "or the 'several seeds' of the experiment are one seed repeated.")
    return None


def subset_judge(evidence: dict, strict: bool) -> Verdict:
    return judge_cases(
        evidence, _subset_cases(strict), _subset_verdict, answer="pick_per_class",
        should_be="a function `pick_per_class(labels, indices, per_class, seed)`", where="(case: {0})",
        unattempted=lambda cases: all(c.get("first_none") for c in cases),
    ) or passed("Every class gets the same number of cells, all from the training split, and a seed "
                "makes the draw repeatable. That is `tl.per_class_subset`: use it from now on.")


register(Task("04.subset", "A small training set, n cells per class", points=1, answer="pick_per_class",
              evidence=subset_evidence, judge=never_raises(subset_judge)))


# ---------------------------------------------------------------- 04.epochs

def _epochs_cases(strict: bool) -> list[tuple[int, int, int, int]]:
    """(n_train, batch_size, min_steps, max_epochs); the hidden test adds three drawn for this run."""
    cases = [(10, 32, 80, 20), (200, 32, 80, 20), (1968, 32, 80, 20)]
    if strict:
        cases += [(50, 32, 30, 10), (64, 32, 30, 10), (100, 16, 30, 10), (5, 4, 7, 3), (1000, 32, 30, 10), (33, 32, 40, 100)]
        fresh = fresh_random(41)
        cases += [(fresh.randrange(1, 3000), fresh.choice((4, 8, 16, 32, 64)), fresh.randrange(5, 300),
                   fresh.randrange(1, 60)) for _ in range(3)]
    return cases


def _epochs_variant(n: int, batch: int, min_steps: int, max_epochs: int, variant: str):
    if variant == "right":
        return train.epochs_for(n, batch, min_steps, max_epochs)
    if variant == "floor":
        per_epoch = n // batch
        return None if per_epoch == 0 else min(max_epochs, max(1, math.ceil(min_steps / per_epoch)))
    if variant == "no_cap":
        return max(1, math.ceil(min_steps / math.ceil(n / batch)))
    if variant == "steps":
        return train.epochs_for(n, batch, min_steps, max_epochs) * math.ceil(n / batch)
    if variant == "round_down":
        return min(max_epochs, max(1, min_steps // math.ceil(n / batch)))
    raise ValueError(variant)


def _epochs_case(answer, *args: int) -> dict:
    value, problem = call_answer(answer, *args, none_ok=True)
    if problem:
        return {"args": list(args), **problem}
    if isinstance(value, np.generic) or (hasattr(value, "numel") and value.numel() == 1):
        value = value.item()
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return {"args": list(args), "value": float(value)}
    return {"args": list(args), "kind": type(value).__name__}


def epochs_evidence(answer, strict: bool) -> dict:
    return function_evidence(answer, _epochs_cases(strict), _epochs_case)


def _epochs_verdict(case: dict, args: tuple, where: str) -> Verdict | None:
    if "value" not in case:
        return hint(f"`epochs_needed` should return a whole number of epochs, not a {case.get('kind')} ({where}).")
    value = case["value"]
    if value == _epochs_variant(*args, "right"):
        return None
    if value == _epochs_variant(*args, "floor"):
        return hint(f"Got {value:g} {where}. The last, partial batch is a step too: steps per epoch is "
                    "`ceil(n_train / batch_size)`, not `n_train // batch_size`.")
    if value == _epochs_variant(*args, "no_cap"):
        return hint(f"Got {value:g} {where}: never train more than `max_epochs` epochs, however small the set.")
    if value == _epochs_variant(*args, "steps"):
        return hint(f"Got {value:g} {where}: that is a number of steps (updates); return the number of epochs.")
    if value == _epochs_variant(*args, "round_down"):
        return hint(f"Got {value:g} {where}: that gives fewer than `min_steps` updates. Round the number "
                    "of epochs up (`math.ceil`).")
    return hint(f"Got {value:g} {where}. Expected the fewest epochs that give at least `min_steps` updates, "
                "at least 1 and at most `max_epochs`.")


def _zero_division_extra(error: str, args: tuple) -> str:
    return (" With fewer images than one batch, `n_train // batch_size` is 0: the last, partial "
            "batch is a step too, so round the steps per epoch *up*." if "ZeroDivision" in error else "")


def epochs_judge(evidence: dict, strict: bool) -> Verdict:
    return judge_cases(
        evidence, _epochs_cases(strict), _epochs_verdict, answer="epochs_needed",
        should_be="a function `epochs_needed(n_train, batch_size, min_steps, max_epochs)`",
        where="for n_train={0}, batch_size={1}, min_steps={2}, max_epochs={3}",
        label=lambda case: tuple(case.get("args") or ()), expected_label=tuple,
        unattempted=lambda cases: all(c.get("kind") == "NoneType" for c in cases),
        error_extra=_zero_division_extra,
    ) or passed("Ten images get many epochs of one step each, the full split a few epochs of 62 steps: "
                "every size gets about the same number of updates, within a cap. That is `tl.epochs_for`.")


register(Task("04.epochs", "Epochs sized to the data", points=1, answer="epochs_needed",
              evidence=epochs_evidence, judge=never_raises(epochs_judge)))


# ---------------------------------------------------------------- 04.curve

def _curve_cases(strict: bool) -> list[tuple[str, int, list[int], list[int], bool]]:
    """(case name, data seed, sizes, seeds, features as a torch tensor); the hidden test adds data,
    sizes and seeds drawn for this run."""
    cases = [("synthetic features A, sizes [5, 10], seeds [0, 1]", 0, [5, 10], [0, 1], False)]
    if strict:
        fresh = fresh_random(42)
        sizes, seeds = fresh.sample(range(3, 31), 2), fresh.sample(range(100), 2)
        cases += [("synthetic features B, sizes [3, 20, 8], seeds [2, 7, 4]", 1, [3, 20, 8], [2, 7, 4], True),
                  (f"synthetic features drawn for this run, sizes {sizes}, seeds {seeds}",
                   fresh.randrange(2, 2**31), sizes, seeds, fresh.random() < 0.5)]
    return cases


@lru_cache(maxsize=4)
def _curve_data(data_seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Two overlapping Gaussian classes (2:1), 24 features, and a 70/30 train/test split."""
    rng = np.random.default_rng(100 + data_seed)
    n, dims = 360, 24
    labels = (rng.random(n) < 1 / 3).astype(np.int64)
    direction = rng.normal(size=dims)
    features = rng.normal(size=(n, dims)) + 0.45 * np.outer(labels, direction)
    order = rng.permutation(n)
    return features.astype(np.float32), labels, np.sort(order[:250]), np.sort(order[250:])


def _balanced_and_plain(features, labels, fit_idx, eval_idx) -> tuple[float, float]:
    """Balanced and plain accuracy on ``eval_idx`` of a probe trained on ``fit_idx``."""
    from sklearn.metrics import accuracy_score, balanced_accuracy_score

    probe = probes.fit_probe(features[fit_idx], labels[fit_idx])
    predicted = train.predict(probe, features[eval_idx], device="cpu").argmax(1)
    return (float(balanced_accuracy_score(labels[eval_idx], predicted)),
            float(accuracy_score(labels[eval_idx], predicted)))


@lru_cache(maxsize=64)
def _curve_reference(data_seed: int, size: int, seed: int, variant: str = "right") -> float:
    features, labels, train_idx, test_idx = _curve_data(data_seed)
    pool = None if variant == "whole" else train_idx
    subset = data.per_class_subset(labels, size, seed=0 if variant == "seed0" else seed, indices=pool)
    evaluate = subset if variant == "train" else test_idx
    balanced, plain = _balanced_and_plain(features, labels, subset, evaluate)
    return plain if variant == "plain" else balanced


def _curve_case(answer, name: str, data_seed: int, sizes: list[int], seeds: list[int], as_tensor: bool) -> dict:
    import torch

    features, labels, train_idx, test_idx = _curve_data(data_seed)
    x = torch.tensor(features) if as_tensor else features.copy()
    rows, problem = call_answer(answer, x, labels.copy(), train_idx.copy(), test_idx.copy(), list(sizes), list(seeds))
    if problem:
        return {"case": name, **problem}
    described = []
    try:
        for row in list(rows)[:100]:
            described.append({key: (float(row[key]) if row.get(key) is not None else None)
                              for key in ("per_class", "seed", "n_train", "balanced_accuracy", "accuracy") if key in row})
    except Exception as err:
        return {"case": name, "malformed": describe_error(err)}
    return {"case": name, "rows": described}


def curve_evidence(answer, strict: bool) -> dict:
    return function_evidence(answer, _curve_cases(strict), _curve_case)


def _curve_verdict(case: dict, expected: tuple, where: str) -> Verdict | None:
    _, data_seed, sizes, seeds, _ = expected
    if "rows" not in case:
        return hint(f"`probe_curve` should return a list of dicts, one per run {where}.")
    rows = case["rows"]
    needed = {"per_class", "seed", "n_train", "balanced_accuracy"}
    if any(set(row) == {"per_class", "seed", "n_train", "accuracy"} for row in rows):
        return hint("Your rows hold `accuracy`. The test cells are unbalanced (a third positive), so plain "
                    "accuracy rewards guessing the majority: report `balanced_accuracy` instead.")
    if any(set(row) != needed for row in rows):
        return hint("Each row should be a dict with the keys `per_class`, `seed`, `n_train` and `balanced_accuracy`.")
    runs = {(row["per_class"], row["seed"]) for row in rows}
    wanted = {(float(size), float(seed)) for size in sizes for seed in seeds}
    if runs != wanted or len(rows) != len(wanted):
        return hint(f"Expected one row for every size and every seed ({len(wanted)} rows), got {len(rows)} "
                    f"{where}: loop over the sizes and, inside, over the seeds.")
    n_test = len(_curve_data(data_seed)[3])
    tolerance = 1.01 / n_test  # one test cell: LBFGS may end a hair apart on another BLAS
    for row in rows:
        size, seed = int(row["per_class"]), int(row["seed"])
        if row["n_train"] == size:
            return hint("`n_train` is the number of training cells: `per_class` of *each* of the 2 classes.")
        if row["n_train"] != 2 * size:
            return hint(f"`n_train` should be the size of the training subset ({2 * size} for {size} per class).")
        accuracy = row["balanced_accuracy"]
        if accuracy is not None and abs(accuracy - _curve_reference(data_seed, size, seed)) <= tolerance:
            continue
        if accuracy is None:
            return hint("Every row needs a `balanced_accuracy`.")
        if accuracy > 1:
            return hint("Give the balanced accuracy as a fraction in [0, 1], not in percent.")
        for variant, message in [
            ("plain", "That is the plain accuracy, on a test set where a third of the cells are positive: "
                      "always answering the majority would score 67%. Report the balanced accuracy, the mean "
                      "recall of the two classes (`sklearn.metrics.balanced_accuracy_score`)."),
            ("train", "You scored the probe on the cells it was trained on. Score it on `test_idx`."),
            ("whole", "Your subsets come from all the cells, test cells included: pass "
                      "`indices=train_idx` to `tl.per_class_subset`, or the test set leaks into training."),
            ("seed0", "Every seed gave the same subset: pass the loop's `seed` to `tl.per_class_subset`, "
                      "so that the seeds measure the spread between training sets."),
        ]:
            if abs(accuracy - _curve_reference(data_seed, size, seed, variant)) <= tolerance:
                return hint(f"{message} {where}")
        return hint(f"The balanced accuracy for {size} per class, seed {seed} differs from the reference {where}. "
                    "Draw the subset with `tl.per_class_subset(labels, size, seed=seed, indices=train_idx)`, fit "
                    "`tl.fit_probe` on it and score its predictions on `test_idx` with "
                    "`tl.classification_metrics(...)[\"balanced_accuracy\"]`.")
    return None


def curve_judge(evidence: dict, strict: bool) -> Verdict:
    return judge_cases(
        evidence, _curve_cases(strict), _curve_verdict, answer="probe_curve",
        should_be="a function `probe_curve(features, labels, train_idx, test_idx, sizes, seeds)`",
        where="(case: {0})",
    ) or passed("That is the loop of `tl.curves.data_efficiency_curve`, for one strategy: every size, every seed, "
                "the same test cells, judged on a metric that a constant answer cannot win.")


register(Task("04.curve", "The data-efficiency loop for the linear probe", points=2, answer="probe_curve",
              evidence=curve_evidence, judge=never_raises(curve_judge), time_limit=60))


# ---------------------------------------------------------------- 04.summary

def _summary_cases(strict: bool) -> list[tuple[str, int, list, list[int]]]:
    """(case name, data seed, sizes, seeds); the hidden test adds rows, sizes and seeds drawn for this run."""
    cases = [("sizes [5, 10, None], seeds [0, 1, 2]", 0, [5, 10, None], [0, 1, 2])]
    if strict:
        fresh = fresh_random(43)
        sizes = fresh.sample([2, 3, 5, 10, 20, 25, 50, 100, None], fresh.randrange(2, 5))
        seeds = fresh.sample(range(100), fresh.randrange(2, 5))
        cases += [("sizes [50, 3, None, 25], seeds [4, 9, 1, 7]", 1, [50, 3, None, 25], [4, 9, 1, 7]),
                  ("sizes [10], seeds [0, 1]", 2, [10], [0, 1]),
                  (f"rows drawn for this run, sizes {sizes}, seeds {seeds}", fresh.randrange(3, 2**31), sizes, seeds)]
    return cases


def _summary_rows(data_seed: int, sizes: list, seeds: list[int]) -> list[dict]:
    """Rows like `probe_curve`'s, with made-up accuracies, in a shuffled order."""
    rng = np.random.default_rng(200 + data_seed)
    rows = [{"per_class": size, "seed": seed, "n_train": 2 * size if size else 1968,
             "accuracy": float(np.round(rng.uniform(0.55, 0.9), 4))} for size in sizes for seed in seeds]
    return [rows[i] for i in rng.permutation(len(rows))]


def _summary_reference(data_seed: int, sizes: list, seeds: list[int], ddof: int = 1) -> dict:
    rows = _summary_rows(data_seed, sizes, seeds)
    out = {}
    for size in sizes:
        values = np.array([r["accuracy"] for r in rows if r["per_class"] == size])
        out[size] = (float(values.mean()), float(values.std(ddof=ddof)))
    return out


def _summary_case(answer, name: str, data_seed: int, sizes: list, seeds: list[int]) -> dict:
    rows = _summary_rows(data_seed, sizes, seeds)
    result, problem = call_answer(answer, [dict(r) for r in rows])
    if problem:
        return {"case": name, **problem}
    if not isinstance(result, dict):
        return {"case": name, "type": type(result).__name__}
    items = []
    for key, value in list(result.items())[:50]:
        try:
            mean, std = (float(v) for v in value)
        except Exception:
            items.append({"key": None if key is None else str(key), "bad": True})
            continue
        items.append({"key": None if key is None else str(key), "mean": mean, "std": std})
    return {"case": name, "items": items}


def summary_evidence(answer, strict: bool) -> dict:
    return function_evidence(answer, _summary_cases(strict), _summary_case)


def _summary_verdict(case: dict, expected: tuple, where: str) -> Verdict | None:
    _, data_seed, sizes, seeds = expected
    if "items" not in case:
        return hint(f"`mean_std_by_size` should return a dict {{per_class: (mean, std)}} {where}.")
    items = case["items"]
    if any(item.get("bad") for item in items):
        return hint("Each value of the dict should be a pair `(mean, std)` of numbers.")
    got = {item["key"]: (item["mean"], item["std"]) for item in items}
    reference = {None if s is None else str(s): v for s, v in _summary_reference(data_seed, sizes, seeds).items()}
    if set(got) != set(reference):
        return hint(f"The keys should be the sizes that occur in the rows ({', '.join(map(str, reference))}), "
                    f"one entry per size {where}; got {', '.join(map(str, got)) or 'none'}.")
    population = {None if s is None else str(s): v for s, v in _summary_reference(data_seed, sizes, seeds, 0).items()}
    for key, (mean, std) in got.items():
        ref_mean, ref_std = reference[key]
        if abs(mean - ref_mean) > 1e-6:
            return hint(f"The mean for size {key} is {mean:.4f}, expected the mean of that size's "
                        f"{len(seeds)} runs {where}. Group the rows by `per_class` before averaging.")
        if abs(std - ref_std) > 1e-6:
            if abs(std - population[key][1]) <= 1e-6 and len(seeds) > 1:
                return hint(f"The std for size {key} divides by n, not n - 1 {where}. With a handful of "
                            "seeds, use the sample standard deviation, `np.std(values, ddof=1)`, "
                            "as `tl.curves.summarise` does.")
            return hint(f"The std for size {key} is {std:.4f}, expected the standard deviation of that "
                        f"size's accuracies over the seeds {where}.")
    return None


def summary_judge(evidence: dict, strict: bool) -> Verdict:
    return judge_cases(
        evidence, _summary_cases(strict), _summary_verdict, answer="mean_std_by_size",
        should_be="a function that takes the rows", where="(case: {0})",
    ) or passed("Mean ± sample std over seeds per size: the error bars of the data-efficiency curve. "
                "Remember how few seeds these are when you compare two curves.")


register(Task("04.summary", "Mean ± std over seeds, per size", points=2, answer="mean_std_by_size",
              evidence=summary_evidence, judge=never_raises(summary_judge)))


# ---------------------------------------------------------------- 04.choice

def _choice_cases(strict: bool) -> list[tuple[str, int, tuple[float, ...]]]:
    """(case name, data seed, candidate values of C); the hidden test adds data drawn for this run."""
    cases = [("synthetic features C, candidates (1e-4, 1e-2, 1)", 0, (1e-4, 1e-2, 1.0))]
    if strict:
        cases += [("synthetic features D, candidates (1e-3, 3e-3, 0.03, 0.3, 3)", 1, (1e-3, 3e-3, 0.03, 0.3, 3.0)),
                  ("synthetic features drawn for this run, candidates (1e-4, 1e-3, 0.01, 0.1, 1)",
                   fresh_random(80).randrange(2, 2**31), (1e-4, 1e-3, 0.01, 0.1, 1.0))]
    return cases


def _choice_draw(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Two classes at 4:1, 60 noisy features of which 6 carry a weak signal, a 70/30 train/test split."""
    rng = np.random.default_rng(seed)
    n, dims = 400, 60
    labels = (rng.random(n) < 0.2).astype(np.int64)
    features = rng.normal(size=(n, dims))
    features[:, :6] += 0.6 * labels[:, None]
    order = rng.permutation(n)
    return features.astype(np.float32), labels, np.sort(order[:280]), np.sort(order[280:])


def _choice_scores(drawn: tuple, C: float, fit, evaluate) -> tuple[float, float]:
    """Balanced and plain accuracy on ``evaluate`` of a probe with ``C`` fitted on ``fit``."""
    from sklearn.metrics import accuracy_score, balanced_accuracy_score

    features, labels = drawn[0], drawn[1]
    predicted = train.predict(probes.fit_probe(features[fit], labels[fit], C=C), features[evaluate], device="cpu").argmax(1)
    return float(balanced_accuracy_score(labels[evaluate], predicted)), float(accuracy_score(labels[evaluate], predicted))


def _best(scores: dict) -> list:
    top = max(scores.values())
    return [C for C in scores if scores[C] == top]


@lru_cache(maxsize=16)
def _choice_reference_for(seed: int, candidates: tuple) -> dict:
    """Every score a verdict needs, for the data drawn with ``seed``: the candidates that win on
    validation by balanced and by plain accuracy, and the test scores of a probe refit on the whole
    train split (and of one fitted on the fit part only)."""
    drawn = _choice_draw(seed)
    _, labels, train_idx, test_idx = drawn
    fit_idx, val_idx = data.validation_split(train_idx, seed=0, labels=labels)
    val = {C: _choice_scores(drawn, C, fit_idx, val_idx) for C in candidates}
    test = {C: _choice_scores(drawn, C, train_idx, test_idx) for C in candidates}
    return {"best": _best({C: v[0] for C, v in val.items()}), "best_plain": _best({C: v[1] for C, v in val.items()}),
            "test": test, "fit_only": {C: _choice_scores(drawn, C, fit_idx, test_idx) for C in candidates},
            "test_best": _best({C: v[0] for C, v in test.items()}),
            "test_worst": _best({C: -v[0] for C, v in test.items()}), "tolerance": 1.01 / len(test_idx)}


def _tells_the_mistakes_apart(reference: dict) -> bool:
    """Whether each typical mistake gives another answer than the honest one on these data."""
    chosen, tolerance = reference["best"][0], reference["tolerance"]
    balanced, plain = reference["test"][chosen]
    return (not set(reference["best"]) & set(reference["best_plain"])        # plain accuracy on validation
            and reference["test_best"][0] != reference["test_worst"][0]       # a choice made on the test split
            and abs(balanced - plain) > 2 * tolerance                         # plain accuracy reported
            and abs(balanced - reference["fit_only"][chosen][0]) > 2 * tolerance)  # no refit


@lru_cache(maxsize=16)
def _choice_seed(data_seed: int, candidates: tuple) -> int:
    """The first seed from ``data_seed`` on whose data every typical mistake gives a wrong answer
    (about half of the draws do), so that no mistake passes by luck."""
    start = 1000 * data_seed + 300
    for seed in range(start, start + 200):
        if _tells_the_mistakes_apart(_choice_reference_for(seed, candidates)):
            return seed
    raise RuntimeError(f"no usable data for 04.choice near seed {data_seed}")


def _choice_data(data_seed: int, candidates: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    return _choice_draw(_choice_seed(data_seed, tuple(candidates)))


def _choice_reference(data_seed: int, candidates: tuple) -> dict:
    return _choice_reference_for(_choice_seed(data_seed, tuple(candidates)), tuple(candidates))


def _choice_case(answer, name: str, data_seed: int, candidates: tuple) -> dict:
    features, labels, train_idx, test_idx = _choice_data(data_seed, candidates)
    flipped = labels.copy()
    flipped[test_idx] = 1 - flipped[test_idx]  # only the test labels change: a choice made honestly cannot
    out = {"case": name}
    for label, y in (("real", labels), ("flipped", flipped)):
        result, problem = call_answer(answer, features.copy(), y.copy(), train_idx.copy(), test_idx.copy(), list(candidates))
        if problem:
            return {**out, **problem}
        if not isinstance(result, dict):
            return {**out, "type": type(result).__name__}
        try:
            out[label] = {"C": float(result["C"]), "test_balanced_accuracy": float(result["test_balanced_accuracy"])}
        except Exception as err:
            return {**out, "malformed": describe_error(err)}
    return out


def choice_evidence(answer, strict: bool) -> dict:
    return function_evidence(answer, _choice_cases(strict), _choice_case)


def _choice_verdict(case: dict, expected: tuple, where: str) -> Verdict | None:
    _, data_seed, candidates = expected
    if "real" not in case or "flipped" not in case:
        return hint(f"`choose_and_test` should return a dict with the keys `C` and `test_balanced_accuracy` {where}.")
    C, score = case["real"]["C"], case["real"]["test_balanced_accuracy"]
    if not any(abs(C - c) <= 1e-12 * max(1.0, c) for c in candidates):
        return hint(f"`C` should be one of the candidates {list(candidates)}, not {C:g} {where}.")
    if abs(case["flipped"]["C"] - C) > 1e-12 * max(1.0, C):
        return hint(f"Your choice of C changed when only the *test* labels changed {where}: you chose on the test "
                    "split. Then the test score is no longer an honest estimate. Choose on a validation split "
                    "carved from `train_idx`, and look at the test split once, at the end.")
    reference = _choice_reference(data_seed, tuple(candidates))
    chosen = next(c for c in candidates if abs(C - c) <= 1e-12 * max(1.0, c))
    if chosen not in reference["best"] and chosen in reference["best_plain"]:
        return hint(f"C = {C:g} has the best *plain* accuracy on the validation split, not the best balanced "
                    f"accuracy {where}. About a fifth of the items are positive, so plain accuracy prefers a probe "
                    "that leans towards the majority (at the strongest regularisation, a near-constant answer). "
                    "Compare the candidates on their balanced accuracy on `val_idx`.")
    if chosen not in reference["best"]:
        return hint(f"C = {C:g} is not the best on the validation split {where} (expected "
                    f"{' or '.join(f'{c:g}' for c in reference['best'])}). Carve it with "
                    "`tl.validation_split(train_idx, seed=0, labels=labels)` and compare the candidates on its "
                    "balanced accuracy, not on plain accuracy.")
    balanced, plain = reference["test"][chosen]
    tolerance = reference["tolerance"]  # one test item: LBFGS may end a hair apart on another BLAS
    if abs(score - balanced) <= tolerance:
        return None
    if abs(score - plain) <= tolerance:
        return hint(f"Your test score {score:.3f} is the plain accuracy {where}. Only about a fifth of the test "
                    "items are positive, so always answering the majority scores about 80% there: report the "
                    "balanced accuracy (`sklearn.metrics.balanced_accuracy_score`).")
    if abs(score - reference["fit_only"][chosen][0]) <= tolerance:
        return hint(f"Your test score {where} comes from the probe fitted on the fit part only. Once C is chosen, "
                    "refit the probe on the whole of `train_idx` before the one look at the test split.")
    return hint(f"The test balanced accuracy {score:.3f} differs from the reference {balanced:.3f} {where}: refit "
                "`tl.fit_probe(features[train_idx], labels[train_idx], C=C)` and score it on `test_idx`.")


def choice_judge(evidence: dict, strict: bool) -> Verdict:
    return judge_cases(
        evidence, _choice_cases(strict), _choice_verdict, answer="choose_and_test",
        should_be="a function `choose_and_test(features, labels, train_idx, test_idx, candidates)`",
        where="(case: {0})",
        unattempted=lambda cases: all(c.get("none") for c in cases),
    ) or passed("C chosen on validation, the test split seen once, and a score that a constant answer cannot "
                "win: the protocol of the course benchmark (`benchmarks/elpv.py`) in ten lines.")


register(Task("04.choice", "Choose on validation, test once, on balanced accuracy", points=2,
              answer="choose_and_test", evidence=choice_evidence, judge=never_raises(choice_judge), time_limit=60))
