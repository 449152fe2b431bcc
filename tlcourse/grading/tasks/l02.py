"""Lesson 02's exercise tasks: a leak-free split, fair metrics, the extraction loop, a linear probe.

Every judge compares the learner's evidence with a reference computed here with the package's
own helpers (the Deitsch split, ``classification_metrics``, ``forward_stages``, ``fit_probe``),
never with a stored number. The hidden tests of the function tasks (split, metrics, extract) add
inputs drawn fresh for each grading run (:func:`checks.challenge`). The probe's is a score on ELPV's
fixed cells: its evidence is the probe's predictions, judged here against labels and a reference
probe fitted in the grader's process.
"""
from __future__ import annotations

import copy
from functools import lru_cache

import numpy as np
import torch
from torch import nn

from ... import data, evaluate, features, models, probes, train, transforms
from ..checks import (Task, Verdict, as_plain_tensor, call_answer, close, dict_of_numbers, extra_for_kind, fresh_random,
                      function_evidence, hint, judge_cases, passed, register)

N_CELLS = 2624  # ELPV's size: the split helpers index the real data set


def _random(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """A fixed random input, the same on every machine."""
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------- 02.split

def _split_cases(strict: bool) -> list[tuple[int, str]]:
    """(seed, input kind): the hidden test adds two seeds drawn for this run, and NumPy inputs."""
    if not strict:
        return [(0, "tensor")]
    first, second = fresh_random(50).sample(range(1, 10_000), 2)
    return [(0, "tensor"), (first, "numpy"), (second, "tensor")]


def _split_inputs(kind: str):
    """Features whose first column is the row number, and labels that are a function of it."""
    rows = torch.arange(N_CELLS, dtype=torch.float32)
    x = torch.stack([rows, -rows], dim=1)
    y = (torch.arange(N_CELLS) * 7 % 3).long()
    return (x.numpy(), y.numpy()) if kind == "numpy" else (x, y)


def _rows_of(x, y) -> dict:
    x = torch.as_tensor(np.asarray(x, dtype=np.float64)) if not isinstance(x, torch.Tensor) else x.detach().cpu()
    y = torch.as_tensor(np.asarray(y)) if not isinstance(y, torch.Tensor) else y.detach().cpu()
    if x.ndim != 2 or x.shape[1] != 2 or y.ndim != 1 or len(x) != len(y):
        return {"shape": [list(x.shape), list(y.shape)]}
    rows = x[:, 0].round().long()
    expected = (rows * 7 % 3).long()
    return {"rows": as_plain_tensor(rows), "labels_match": bool(torch.equal(y.long(), expected))}


def _split_case(answer, seed: int, kind: str) -> dict:
    x, y = _split_inputs(kind)
    result, problem = call_answer(answer, x, y, seed)
    if problem:
        return {"seed": seed, **problem}
    if not isinstance(result, dict) or set(result) != {"fit", "val", "test"}:
        keys = sorted(map(str, result)) if isinstance(result, dict) else None
        return {"seed": seed, "keys": keys, "type": type(result).__name__}
    parts = {}
    for name, pair in result.items():
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            parts[name] = {"not_pair": True}
        else:
            parts[name] = _rows_of(*pair)
    return {"seed": seed, "parts": parts}


def split_evidence(answer, strict: bool) -> dict:
    return function_evidence(answer, _split_cases(strict), _split_case)


@lru_cache(maxsize=8)
def _reference_split(seed: int) -> dict[str, frozenset]:
    train_cells, test = data.elpv_split(seed)
    fit, val = data.validation_split(train_cells, seed)
    return {"fit": frozenset(fit.tolist()), "val": frozenset(val.tolist()), "test": frozenset(test.tolist()),
            "train": frozenset(train_cells.tolist())}


def _split_verdict(case: dict, expected: tuple, where: str) -> Verdict | None:
    seed = expected[0]
    if case.get("none"):
        return hint(f"`split_features` returned `None` {where}.")
    if "parts" not in case:
        return hint("Return a dict with the keys `'fit'`, `'val'` and `'test'`, each an `(x, y)` pair "
                    f"(you returned {case.get('keys') or 'a ' + str(case.get('type'))}).")
    parts = case["parts"]
    if any(p.get("not_pair") for p in parts.values()):
        return hint("Each value of the dict should be a pair `(features, labels)`.")
    if any("shape" in p for p in parts.values()):
        return hint("Select whole rows: `features[idx]` and `labels[idx]` keep every feature column, "
                    "and one label per row.")
    if not all(p["labels_match"] for p in parts.values()):
        return hint("The labels do not belong to the rows you selected: index the features and the "
                    "labels with the same indices.")
    got = {name: frozenset(p["rows"].tolist()) for name, p in parts.items()}
    ref = _reference_split(seed)
    if any(len(got[name]) != len(parts[name]["rows"]) for name in got):
        return hint(f"A part holds the same cell twice {where}: index with the split's indices once.")
    other = _reference_split(0 if seed else 1)
    if seed != 0 and (got["test"] == other["test"] or got["val"] == other["val"]):
        return hint(f"With seed={seed} you returned the split of another seed: pass `seed` on to "
                    "`tl.elpv_split` and `tl.validation_split`.")
    if got["val"] & ref["test"] or got["fit"] & ref["test"]:
        return hint(f"Test leakage {where}: cells of the test part ended up in the fit or validation "
                    "part. Carve the validation split out of `train_idx` only "
                    "(`tl.validation_split(train_idx, seed)`), never out of all the cells.")
    if got["fit"] & got["val"]:
        return hint(f"The fit and validation parts overlap {where}: train on `fit_idx`, not on the "
                    "whole `train_idx`, or the validation score flatters the model.")
    if got["test"] != ref["test"]:
        return hint(f"The test part is not the Deitsch et al. split {where}: take it from "
                    "`tl.elpv_split(seed)`.")
    if got["fit"] != ref["fit"] or got["val"] != ref["val"]:
        return hint(f"The fit and validation parts differ from `tl.validation_split(train_idx, seed)` "
                    f"{where}.")
    return None


def split_judge(evidence: dict, strict: bool) -> Verdict:
    verdict = judge_cases(evidence, _split_cases(strict), _split_verdict, answer="split_features",
                          should_be="a function `split_features(features, labels, seed)`", where="(seed={0})",
                          label=lambda case: case.get("seed"))
    if verdict:
        return verdict
    ref = _reference_split(0)
    return passed(f"{len(ref['fit'])} fit, {len(ref['val'])} validation and {len(ref['test'])} test cells, "
                  "no cell in two parts: every choice from now on is made on the validation part.")


register(Task("02.split", "Split the cached features without leakage", points=1, answer="split_features",
              evidence=split_evidence, judge=split_judge))


# ---------------------------------------------------------------- 02.metrics

def _metrics_cases(strict: bool) -> list[tuple[int, int, tuple[str, ...]]]:
    """(seed, number of classes, group names): the hidden test adds two cases drawn for this run
    (labels, predictions, the number of classes and the group names)."""
    cases = [(0, 2, ("mono", "poly"))]
    if strict:
        rng = fresh_random(51)
        names = rng.sample(["a", "b", "c", "d", "east", "west", "thin", "thick", "A1", "B2"], 4)
        cases += [(rng.randrange(1, 2**31), rng.choice([3, 4]), tuple(names[:3])),
                  (rng.randrange(1, 2**31), 2, tuple(rng.sample(["poly", "mono", names[3]], rng.choice([2, 3]))))]
    return cases


def _metrics_inputs(seed: int, classes: int, groups: tuple[str, ...]):
    """Imbalanced labels and predictions whose recall differs between classes."""
    rng = np.random.default_rng(seed)
    n = 240
    y_true = rng.choice(classes, size=n, p=np.linspace(2, 1, classes) / np.linspace(2, 1, classes).sum())
    wrong = rng.random(n) < np.where(y_true == 0, 0.1, 0.4)
    y_pred = np.where(wrong, (y_true + 1 + rng.integers(0, max(classes - 1, 1), n)) % classes, y_true)
    share = np.linspace(3, 1, len(groups))  # groups of unequal size, so their mean is not the accuracy
    group = rng.choice(np.array(groups), size=n, p=share / share.sum())
    return y_true.astype(np.int64), y_pred.astype(np.int64), group


def _metrics_case(answer, seed: int, classes: int, groups: tuple[str, ...]) -> dict:
    y_true, y_pred, group = _metrics_inputs(seed, classes, groups)
    result, problem = call_answer(answer, y_true.copy(), y_pred.copy(), group.copy())
    return {"seed": seed, **(problem or dict_of_numbers(result))}


def metrics_evidence(answer, strict: bool) -> dict:
    return function_evidence(answer, _metrics_cases(strict), _metrics_case)


def _metrics_reference(seed: int, classes: int, groups: tuple[str, ...]) -> dict:
    y_true, y_pred, group = _metrics_inputs(seed, classes, groups)
    probabilities = np.eye(classes)[y_pred]
    ref = evaluate.classification_metrics(y_true, probabilities, groups=group)
    recall = [np.mean(y_pred[y_true == c] == c) for c in range(classes)]
    precision = [np.mean(y_true[y_pred == c] == c) for c in range(classes)]
    return {"accuracy": float(ref["accuracy"]), "balanced_accuracy": float(ref["balanced_accuracy"]),
            **{f"accuracy_{g}": float(ref[f"accuracy_{g}"]) for g in groups},
            "_recall": recall, "_precision": float(np.mean(precision)),
            "_group_mean": float(np.mean([ref[f"accuracy_{g}"] for g in groups]))}


def _metrics_verdict(case: dict, expected: tuple, where: str) -> Verdict | None:
    seed, classes, groups = expected
    tol = 1e-6
    if "values" not in case:
        return hint(f"`fair_metrics` should return a dict of numbers, not {case.get('type', 'None')}.")
    values, ref = case["values"], _metrics_reference(seed, classes, groups)
    wanted = ["accuracy", "balanced_accuracy"] + [f"accuracy_{g}" for g in groups]
    missing = [k for k in wanted if values.get(k) is None]
    if missing:
        return hint(f"The dict lacks `{missing[0]}` {where}: one key `accuracy_<group>` per group "
                    "name found in `groups`, plus `accuracy` and `balanced_accuracy`.")
    if all(abs(values[k] - 100 * ref[k]) < 1e-4 for k in wanted):
        return hint("Give fractions between 0 and 1, not percentages.")
    if abs(values["accuracy"] - ref["accuracy"]) > tol:
        return hint(f"`accuracy` is off {where}: it is the share of all predictions that are right.")
    b = values["balanced_accuracy"]
    if abs(b - ref["balanced_accuracy"]) > tol:
        if abs(b - ref["accuracy"]) < tol:
            return hint("`balanced_accuracy` equals the plain accuracy: average the **recall of each "
                        "class** (the share of that class's cells predicted right), so that the rare "
                        "defective class counts as much as the common one.")
        if abs(b - ref["_precision"]) < tol:
            return hint("That is the mean *precision* per class (grouped by prediction). Balanced "
                        "accuracy averages the recall: group the cells by their **true** label.")
        if abs(b - ref["_group_mean"]) < tol:
            return hint("That averages over the module types. Balanced accuracy averages over the "
                        "**classes** (true labels), each class's recall.")
        if any(abs(b - r) < tol for r in ref["_recall"]):
            return hint("That is the recall of one class only: average it over every class.")
        return hint(f"`balanced_accuracy` is off {where}: the mean over classes of each class's recall.")
    for g in groups:
        if abs(values[f"accuracy_{g}"] - ref[f"accuracy_{g}"]) > tol:
            return hint(f"`accuracy_{g}` is off: the accuracy over the cells whose group is `{g}` only.")
    return None


def metrics_judge(evidence: dict, strict: bool) -> Verdict:
    return judge_cases(
        evidence, _metrics_cases(strict), _metrics_verdict, answer="fair_metrics",
        should_be="a function `fair_metrics(y_true, y_pred, groups)`",
        where=lambda expected: f"for {expected[1]} classes and the groups {', '.join(expected[2])}",
        label=lambda case: case.get("seed"),
    ) or passed("Always answering 'functional' scores 68.7% accuracy on ELPV but only 50% balanced "
                "accuracy: report both, and per module type, as Deitsch et al. do.")


register(Task("02.metrics", "Fair metrics: balanced and per module type", points=1, answer="fair_metrics",
              evidence=metrics_evidence, judge=metrics_judge))


# ---------------------------------------------------------------- 02.extract

def _extract_cases(strict: bool) -> list[tuple[str, str, int, int, bool, int]]:
    """(case, model kind, batch size, pixels, hand the model over in train mode, seed of the images):
    the hidden test's images, their number and their size are drawn for this run."""
    cases = [("4 cells at 160 px, model in train mode", "backbone", 4, 160, True, 10)]
    if strict:
        rng = fresh_random(52)
        n, size, seed = rng.randint(2, 3), rng.choice([128, 192, 224]), rng.randrange(100, 2**31)
        cases.append((f"{n} images at {size} px, model in eval mode", "backbone", n, size, False, seed))
        n, size, seed = rng.randint(2, 4), rng.choice([48, 64, 96]), rng.randrange(100, 2**31)
        cases.append((f"a ResNet-18 from torchvision, {n} images at {size} px", "resnet", n, size, True, seed))
    return cases


def _extract_model(kind: str) -> nn.Module:
    if kind == "resnet":  # random weights, so nothing is downloaded
        import torchvision

        torch.manual_seed(0)
        return torchvision.models.resnet18(weights=None).eval()
    return models.load_backbone().eval()


def _extract_case(answer, name: str, kind: str, n: int, size: int, train_mode: bool, seed: int) -> dict:
    model = _extract_model(kind)
    if train_mode:
        model.train()
    x = _random((n, 3, size, size), seed=seed)
    result, problem = call_answer(answer, model, x.clone())
    if problem:
        return {"case": name, **problem}
    if not isinstance(result, torch.Tensor):
        return {"case": name, "type": type(result).__name__}
    return {"case": name, "requires_grad": bool(result.requires_grad), "output": as_plain_tensor(result).float()}


def extract_evidence(answer, strict: bool) -> dict:
    return function_evidence(answer, _extract_cases(strict), _extract_case)


@lru_cache(maxsize=16)
def _extract_reference(seed: int, kind: str, n: int, size: int, variant: str) -> torch.Tensor:
    model = _extract_model(kind)
    x = _random((n, 3, size, size), seed=seed)
    last = models.stage_names(model)[-2]
    if variant == "train_mode":
        model.train()
    with torch.no_grad():
        if variant == "logits":
            return model(x)
        return features.forward_stages(model, x, [last], pool=variant != "unpooled")[last]


def _extract_verdict(case: dict, expected: tuple, where: str) -> Verdict | None:
    _, kind, n, size, _, seed = expected
    if "output" not in case:
        return hint(f"`embed` should return a tensor, not {case.get('type', 'None')} ({where}).")
    out = case["output"]
    ref = _extract_reference(seed, kind, n, size, "right")
    if out.ndim == 4:
        return hint(f"The output has shape {tuple(out.shape)}: a map per image. Average it over "
                    "height and width (`.mean(dim=(2, 3))`) to get one vector per image.")
    if out.ndim == 2 and out.shape[0] == n and out.shape[1] != ref.shape[1]:
        unpooled = _extract_reference(seed, kind, n, size, "unpooled")
        if out.shape[1] == unpooled[0].numel():
            return hint("You flattened the last feature map: that keeps every position. Average over "
                        "height and width instead (global average pooling), as the classifier does.")
        logits = _extract_reference(seed, kind, n, size, "logits")
        if out.shape == logits.shape and close(out, logits, atol=1e-3, rtol=1e-3):
            return hint("These are the classifier's outputs (ImageNet logits). Stop *before* the "
                        "classifier: the features are what the classifier reads.")
    if tuple(out.shape) != tuple(ref.shape):
        return hint(f"Expected one vector of {ref.shape[1]} features per image, shape {tuple(ref.shape)}, "
                    f"got {tuple(out.shape)} ({where}).")
    if case["requires_grad"]:
        return hint("The features still carry gradients: run the frozen model under `torch.no_grad()` "
                    "(or `torch.inference_mode()`); a feature extractor never trains.")
    if close(out, ref, atol=1e-3, rtol=1e-3):
        return None
    if close(out, _extract_reference(seed, kind, n, size, "train_mode"), atol=1e-3, rtol=1e-3):
        return hint(f"Wrong features {where}: the model ran in train mode, so BatchNorm normalised "
                    "with the statistics of this batch. Call `model.eval()` first.")
    return hint(f"The features differ from the reference {where}. Run every stage of "
                "`tl.stages(model)` except the classifier, in eval mode without gradients, and "
                "average the last map over height and width.")


def extract_judge(evidence: dict, strict: bool) -> Verdict:
    return judge_cases(
        evidence, _extract_cases(strict), _extract_verdict, answer="embed",
        should_be="a function `embed(model, images)`", where="on {0}",
        error_extra=extra_for_kind("resnet", " It must work for any model that `tl.stages` understands: run the "
                                             "stages of `tl.stages(model)` instead of EfficientNet's own methods."),
    ) or passed("That is the whole of feature extraction: one forward pass of a frozen body, once per "
                "image. `tl.extract_features` adds batching, a progress bar and a disk cache.")


register(Task("02.extract", "The feature-extraction loop", points=2, answer="embed",
              evidence=extract_evidence, judge=extract_judge))


# ---------------------------------------------------------------- 02.probe

PROBE_SIZE = 160  # the feature cache every lesson shares
PROBE_TOL = 0.015  # 1.5 points (6 of 394 validation cells) below the reference probe still passes
LEAK_MARGIN = 0.04  # this much above the reference on validation smells of training on it


def _elpv_features() -> torch.Tensor:
    """The 160 px features of every cell, from the shared disk cache (computed once)."""
    cells = data.load_elpv(transform=transforms.preprocess(PROBE_SIZE))
    return features.extract_features(models.load_backbone(), cells, progress=False)


def _predict_labels(answer, x: np.ndarray) -> np.ndarray:
    if isinstance(answer, nn.Module):
        answer = copy.deepcopy(answer).cpu().float().eval()
        with torch.no_grad():
            out = answer(torch.as_tensor(x))
        return np.asarray(out.argmax(dim=1) if out.ndim == 2 else (out > 0).long())
    return np.asarray(answer.predict(x))


def probe_evidence(answer, strict: bool) -> dict:
    if not (hasattr(answer, "predict") or isinstance(answer, nn.Module)):
        return {"kind": type(answer).__name__}
    x = _elpv_features().numpy().astype(np.float32)
    predictions = _predict_labels(answer, x)
    if predictions.shape != (len(x),) or not np.issubdtype(predictions.dtype, np.number):
        return {"kind": "model", "bad_predictions": str(predictions.shape)}
    return {"kind": "model", "strict": strict, "predictions": torch.as_tensor(predictions.astype(np.int64))}


@lru_cache(maxsize=1)
def _probe_reference() -> dict:
    x = _elpv_features().numpy()
    labels = data.load_elpv().labels
    train_cells, test = data.elpv_split(0)  # not `train`: that name is the module
    fit, val = data.validation_split(train_cells, 0)
    probe = probes.fit_probe(x[fit], labels[fit])
    predicted = train.predict(probe, x, device="cpu").argmax(1)
    return {"labels": labels, "fit": fit, "val": val, "test": test,
            "val_accuracy": float((predicted[val] == labels[val]).mean()),
            "test_accuracy": float((predicted[test] == labels[test]).mean())}


def probe_target() -> float:
    """The validation accuracy the probe must reach: the reference probe's, less a small tolerance."""
    return _probe_reference()["val_accuracy"] - PROBE_TOL


def probe_judge(evidence: dict, strict: bool) -> Verdict:
    if evidence.get("kind") != "model":
        return hint("`probe` should be a fitted classifier with a `predict` method (e.g. a scikit-learn "
                    f"pipeline) or an `nn.Module`, not a {evidence.get('kind')}.")
    if "bad_predictions" in evidence:
        return hint(f"`probe.predict(features)` should give one label per cell, shape (2624,), not "
                    f"{evidence['bad_predictions']}. Train it on the 1,280 cached features of each cell.")
    predictions = evidence.get("predictions")
    if not isinstance(predictions, torch.Tensor) or tuple(predictions.shape) != (N_CELLS,):
        return hint("The evidence for this task is incomplete.")
    if strict and not evidence.get("strict"):
        return hint("The evidence for this task is incomplete.")
    ref = _probe_reference()
    predictions = predictions.numpy()
    labels = ref["labels"]
    if not set(np.unique(predictions)) <= {0, 1}:
        return hint("The probe predicts labels other than 0 and 1: train it on the binary labels "
                    "(`cells.labels`: defective = probability > 0.5), not on the 4-class ones.")
    accuracy = {part: float((predictions[ref[part]] == labels[ref[part]]).mean()) for part in ("fit", "val", "test")}
    target = probe_target()
    if accuracy["val"] > ref["val_accuracy"] + LEAK_MARGIN or accuracy["test"] > ref["test_accuracy"] + LEAK_MARGIN:
        return hint(f"Suspiciously good ({100 * accuracy['val']:.1f}% on validation, "
                    f"{100 * accuracy['test']:.1f}% on test): was the probe fitted on validation or test "
                    "cells? Fit it on the fit part only; the validation part only chooses C.")
    if accuracy["val"] < target:
        return hint(f"Validation accuracy {100 * accuracy['val']:.1f}%, below the target "
                    f"{100 * target:.1f}%. Standardise the features (`StandardScaler`) and try several "
                    "values of C, keeping the one with the best validation accuracy.")
    if strict and accuracy["test"] < ref["test_accuracy"] - 2 * PROBE_TOL:
        return hint(f"Good on validation ({100 * accuracy['val']:.1f}%) but only {100 * accuracy['test']:.1f}% "
                    "on test: the choice of C overfitted the validation split. Prefer a coarser grid.")
    return passed(f"{100 * accuracy['val']:.1f}% on validation (target {100 * target:.1f}%), with a few "
                  "seconds of training on cached features: that is feature extraction's promise.")


register(Task("02.probe", "A linear probe that reaches the target", points=2, answer="probe",
              evidence=probe_evidence, judge=probe_judge, time_limit=240))
