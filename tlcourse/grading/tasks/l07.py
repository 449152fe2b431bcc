"""Lesson 07's exercise tasks: a learning-rate suggestion, a cost threshold, a temperature, the ECE, TTA.

Every task's answer is a function. Its inputs are synthetic and drawn from the run's challenge
(:func:`checks.challenge`: 0 for ``tl.check``, fresh for each grading run), and the judge, in the
grader's process, recomputes on those very inputs the right answer with ``tlcourse.decisions``
and the answers that typical mistakes give. Two mistakes get the inputs built to expose them:
the validation and test splits of ``07.threshold`` and ``07.temperature`` are drawn so that a
threshold or a temperature fitted on the wrong split gives a recognisably different answer.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

from ... import decisions, models
from ..checks import (Task, Verdict, as_plain_tensor, call_answer, close, fresh_random, function_evidence, hint,
                      judge_cases, never_raises, passed, register)


def _rng(salt: int) -> np.random.Generator:
    """A NumPy generator seeded by this run's challenge and ``salt``."""
    return np.random.default_rng(fresh_random(salt).randrange(2**32))


def _number(result) -> dict:
    """Evidence for a result that should be one number."""
    if isinstance(result, bool):
        return {"type": "bool"}
    try:
        value = float(np.asarray(result).reshape(()))
    except Exception:
        return {"type": type(result).__name__}
    return {"value": value}


# ---------------------------------------------------------------- 07.lr

def _lr_cases(strict: bool) -> list[tuple[str, int, bool]]:
    """(case, salt, whether the loss ends in NaN because it blew up)."""
    cases = [("a range test of 40 steps", 700, False)]
    if strict:
        cases += [("a range test of 60 steps", 701, False), ("a range test whose last loss is NaN", 702, True)]
    return cases


@lru_cache(maxsize=16)
def _lr_curve(salt: int, blew_up: bool, challenge_key: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Learning rates growing exponentially and a loss that falls, bottoms out and blows up."""
    rng = _rng(salt)
    steps = 40 if salt == 700 else 60
    lrs = np.logspace(-5, 0, steps)
    best = rng.uniform(-3.0, -1.2)  # log10 of the rate at the bottom
    x = np.log10(lrs) - best
    losses = 0.7 - 0.35 / (1 + np.exp(-3 * (x + 1.0))) + 0.8 * np.clip(x, 0, None) ** 2 + rng.normal(0, 0.004, steps)
    losses = list(losses)
    if blew_up:
        losses[-1] = float("nan")
    return tuple(float(v) for v in lrs), tuple(losses)


def _challenge_key() -> int:
    return fresh_random(0).randrange(2**31)  # distinct per challenge: a cache key for the drawn inputs


def _lr_case(answer, name: str, salt: int, blew_up: bool) -> dict:
    lrs, losses = _lr_curve(salt, blew_up, _challenge_key())
    result, problem = call_answer(answer, list(lrs), list(losses))
    return {"case": name, **(problem or _number(result))}


def lr_evidence(answer, strict: bool) -> dict:
    return function_evidence(answer, _lr_cases(strict), _lr_case)


def _lr_verdict(case: dict, expected: tuple, where: str) -> Verdict | None:
    _, salt, blew_up = expected
    if "value" not in case:
        return hint(f"`suggest_lr` should return one number (a learning rate), not {case.get('type', 'None')}.")
    lrs, losses = (np.array(v) for v in _lr_curve(salt, blew_up, _challenge_key()))
    value = case["value"]
    lowest = lrs[int(np.nanargmin(losses))]
    right = lowest / 10
    if math.isclose(value, right, rel_tol=1e-6):
        return None
    if math.isnan(value):
        return hint(f"`suggest_lr` returned NaN {where}: when the loss blows up its last value can be NaN; "
                    "find the lowest loss while ignoring NaN (`np.nanargmin`).")
    if math.isclose(value, lowest, rel_tol=1e-6):
        return hint("That is the rate at the lowest loss itself. There the loss is about to blow up: take a tenth of it.")
    if math.isclose(value, 10 * lowest, rel_tol=1e-6):
        return hint("That is ten times the rate at the lowest loss: divide by ten, do not multiply.")
    if any(math.isclose(value, loss, rel_tol=1e-6) for loss in losses if not math.isnan(loss)):
        return hint("That is a loss value; return the learning rate (from `lrs`) at the lowest loss, divided by ten.")
    if blew_up and math.isclose(value, lrs[-1] / 10, rel_tol=1e-6):
        return hint(f"{where[0].upper() + where[1:]}, the last loss is NaN (the loss blew up) and your code took it "
                    "for the lowest: ignore NaN values (`np.nanargmin`).")
    return hint(f"Not the expected rate {where}: a tenth of the learning rate at which the loss is lowest.")


def lr_judge(evidence: dict, strict: bool) -> Verdict:
    return judge_cases(
        evidence, _lr_cases(strict), _lr_verdict, answer="suggest_lr",
        should_be="a function `suggest_lr(lrs, losses)`", where="on {0}",
    ) or passed("A tenth of the rate at the lowest loss learns fast and stays clear of the blow-up; "
                "then check it like any choice, on validation.")


register(Task("07.lr", "A learning rate from a range test", points=1, answer="suggest_lr",
              evidence=lr_evidence, judge=never_raises(lr_judge)))


# ---------------------------------------------------------------- 07.threshold

def _threshold_cases(strict: bool) -> list[tuple[str, int, float, float]]:
    """(case, salt, cost of a miss, cost of a false alarm)."""
    cases = [("240 validation and 240 test cells, a miss costing 10 false alarms", 710, 10.0, 1.0)]
    if strict:
        rng = fresh_random(711)
        cases += [(f"other cells, a miss costing {ratio:g} false alarms", 712, float(ratio), 1.0)
                  for ratio in [rng.choice([4, 5, 8, 20])]]
        cases += [("other cells, a false alarm costing 3 misses", 713, 1.0, 3.0)]
    return cases


def _cost(probs: np.ndarray, labels: np.ndarray, t: float, miss: float, alarm: float) -> float:
    return decisions.decision_cost(probs, labels, t, cost_fn=miss, cost_fp=alarm)


def _draw_split(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    labels = (rng.random(n) < 0.32).astype(int)
    logits = np.where(labels == 1, 1.1, -1.3) + rng.normal(0, 1.4, n)
    return 1 / (1 + np.exp(-logits)), labels


@lru_cache(maxsize=16)
def _threshold_data(salt: int, miss: float, alarm: float, challenge_key: int) -> dict:
    """Validation and test splits on which the right threshold and the typical mistakes disagree."""
    rng = _rng(salt)
    for _ in range(200):
        (pv, yv), (pt, yt) = _draw_split(rng, 240), _draw_split(rng, 240)
        best = _cost(pv, yv, decisions.choose_threshold(pv, yv, miss, alarm), miss, alarm)
        wrong = [decisions.choose_threshold(pt, yt, miss, alarm), decisions.choose_threshold(pv, yv),
                 decisions.choose_threshold(pv, yv, alarm, miss), 0.5]
        if all(_cost(pv, yv, t, miss, alarm) > best for t in wrong):
            return {"val": (pv, yv), "test": (pt, yt), "best": best}
    raise RuntimeError("could not draw splits that separate the mistakes")  # never seen; the loop has 200 tries


def _threshold_case(answer, name: str, salt: int, miss: float, alarm: float) -> dict:
    data = _threshold_data(salt, miss, alarm, _challenge_key())
    splits = {split: (data[split][0].copy(), data[split][1].copy()) for split in ("val", "test")}
    result, problem = call_answer(answer, splits, miss, alarm)
    return {"case": name, **(problem or _number(result))}


def threshold_evidence(answer, strict: bool) -> dict:
    return function_evidence(answer, _threshold_cases(strict), _threshold_case)


def _threshold_verdict(case: dict, expected: tuple, where: str) -> Verdict | None:
    _, salt, miss, alarm = expected
    if "value" not in case:
        return hint(f"`cheapest_threshold` should return one number, not {case.get('type', 'None')}.")
    t = case["value"]
    data = _threshold_data(salt, miss, alarm, _challenge_key())
    (pv, yv), (pt, yt) = data["val"], data["test"]
    if not math.isfinite(t):
        return hint(f"`cheapest_threshold` returned {t} {where}: return a probability between 0 and 1.")
    if 1 < t <= 100:
        return hint("The threshold is a probability between 0 and 1, not a percentage.")
    if _cost(pv, yv, t, miss, alarm) <= data["best"]:
        return None
    if _cost(pt, yt, t, miss, alarm) <= _cost(pt, yt, decisions.choose_threshold(pt, yt, miss, alarm), miss, alarm):
        return hint(f"That threshold is the cheapest on the **test** split, not on validation ({where}). Choose it on "
                    "`splits[\"val\"]`: a threshold tuned on the test cells grades itself, and its cost is "
                    "a number no new batch of cells will repeat.")
    if _cost(pv, yv, t, 1, 1) <= _cost(pv, yv, decisions.choose_threshold(pv, yv), 1, 1):
        return hint(f"That threshold makes the fewest mistakes {where}, counting a miss and a false alarm alike. "
                    "Weigh each missed defect by `cost_miss` and each false alarm by `cost_alarm`.")
    if _cost(pv, yv, t, alarm, miss) <= _cost(pv, yv, decisions.choose_threshold(pv, yv, alarm, miss), alarm, miss):
        return hint("The costs are swapped: a missed defect (a defective cell below the threshold) costs "
                    "`cost_miss`, a false alarm (a functional cell at or above it) costs `cost_alarm`.")
    if math.isclose(t, 0.5):
        return hint("0.5 is what `argmax` does. With unequal costs, try every candidate threshold on the "
                    "validation split and keep the cheapest.")
    return hint(f"That threshold is not the cheapest on the validation split {where}: cost = "
                "cost_miss × (defects with p < t) + cost_alarm × (functional cells with p ≥ t).")


def threshold_judge(evidence: dict, strict: bool) -> Verdict:
    return judge_cases(
        evidence, _threshold_cases(strict), _threshold_verdict, answer="cheapest_threshold",
        should_be="a function `cheapest_threshold(splits, cost_miss, cost_alarm)`", where="on {0}",
    ) or passed("Chosen on validation, reported once on test: the threshold follows the cost of each mistake, "
                "and drops below 0.5 when a miss is the expensive one.")


register(Task("07.threshold", "A threshold for a 10:1 cost", points=2, answer="cheapest_threshold",
              evidence=threshold_evidence, judge=never_raises(threshold_judge)))


# ---------------------------------------------------------------- 07.temperature

def _temperature_cases(strict: bool) -> list[tuple[str, int, int]]:
    """(case, salt, number of classes)."""
    cases = [("an over-confident two-class model", 720, 2)]
    if strict:
        cases += [("another two-class model", 721, 2), ("a three-class model", 722, 3)]
    return cases


def _draw_logits(rng: np.random.Generator, n: int, classes: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Logits ``scale`` times too confident: labels drawn from softmax(z), the model says z * scale."""
    z = rng.normal(0, 1.6, (n, classes))
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    labels = np.array([rng.choice(classes, p=row) for row in p])
    return z * scale, labels


@lru_cache(maxsize=16)
def _temperature_data(salt: int, classes: int, challenge_key: int) -> dict:
    """Fit, validation and test logits whose best temperatures are far apart, and those temperatures."""
    rng = _rng(salt)
    for _ in range(50):
        s_val = rng.uniform(1.5, 2.2)
        s_test = s_val * rng.choice([0.6, 1.5])
        splits = {"fit": _draw_logits(rng, 400, classes, s_val * 2.2), "val": _draw_logits(rng, 400, classes, s_val),
                  "test": _draw_logits(rng, 400, classes, s_test)}
        best = {name: decisions.fit_temperature(*split) for name, split in splits.items()}
        far = lambda a, b: abs(math.log(a / b)) > 0.2
        if far(best["val"], best["test"]) and far(best["val"], best["fit"]) and far(best["val"], 1 / best["val"]) \
                and far(best["val"], 1.0):
            return {"splits": splits, "best": best}
    raise RuntimeError("could not draw splits that separate the mistakes")


def _temperature_case(answer, name: str, salt: int, classes: int) -> dict:
    data = _temperature_data(salt, classes, _challenge_key())
    splits = {k: (logits.copy(), labels.copy()) for k, (logits, labels) in data["splits"].items()}
    result, problem = call_answer(answer, splits)
    return {"case": name, **(problem or _number(result))}


def temperature_evidence(answer, strict: bool) -> dict:
    return function_evidence(answer, _temperature_cases(strict), _temperature_case)


TEMPERATURE_TOL = 0.02  # relative: a grid of temperatures 1% apart passes


def _near(a: float, b: float) -> bool:
    return a > 0 and abs(math.log(a / b)) <= TEMPERATURE_TOL


def _temperature_verdict(case: dict, expected: tuple, where: str) -> Verdict | None:
    _, salt, classes = expected
    if "value" not in case:
        return hint(f"`fit_temperature` should return one number, the temperature, not {case.get('type', 'None')}.")
    t = case["value"]
    best = _temperature_data(salt, classes, _challenge_key())["best"]
    if not math.isfinite(t) or t <= 0:
        return hint(f"`fit_temperature` returned {t} {where}: a temperature is a positive number.")
    if _near(t, best["val"]):
        return None
    if _near(t, best["test"]):
        return hint(f"That temperature is fitted on the **test** split ({where}). Fit it on `splits[\"val\"]` and "
                    "judge it on test: fitted on the test cells, the repair grades itself.")
    if _near(t, best["fit"]):
        return hint(f"That temperature is fitted on the `fit` split ({where}): the cells the model trained on, where it "
                    "is more confident than on new cells. Fit it on `splits[\"val\"]`.")
    if _near(t, 1 / best["val"]):
        return hint("That is 1/T: temperature scaling *divides* the logits by T (`softmax(logits / T)`); an "
                    "over-confident model needs T > 1.")
    if _near(t, 1.0):
        return hint("T = 1 leaves the probabilities as they are. Search for the T that minimises the "
                    "validation cross-entropy of `softmax(logits / T)`.")
    return hint(f"Not the temperature of least validation cross-entropy {where} (the reference found "
                f"{best['val']:.2f}). Minimise the mean cross-entropy of `softmax(logits / T)` on "
                "`splits[\"val\"]` over T, on a fine grid or with an optimizer.")


def temperature_judge(evidence: dict, strict: bool) -> Verdict:
    return judge_cases(
        evidence, _temperature_cases(strict), _temperature_verdict, answer="fit_temperature",
        should_be="a function `fit_temperature(splits)`", where="on {0}",
    ) or passed("One number, fitted on validation: the probabilities now mean what they say, and no "
                "prediction changed its class.")


register(Task("07.temperature", "Temperature scaling, fitted where it should be", points=2, answer="fit_temperature",
              evidence=temperature_evidence, judge=never_raises(temperature_judge)))


# ---------------------------------------------------------------- 07.ece

def _ece_cases(strict: bool) -> list[tuple[str, int, int, int, int]]:
    """(case, salt, cells, classes, bins)."""
    cases = [("600 two-class predictions, 10 bins", 730, 600, 2, 10)]
    if strict:
        cases += [("500 three-class predictions, 15 bins", 731, 500, 3, 15),
                  ("400 two-class predictions, 8 bins", 732, 400, 2, 8)]
    return cases


@lru_cache(maxsize=16)
def _ece_data(salt: int, n: int, classes: int, challenge_key: int) -> tuple[np.ndarray, np.ndarray]:
    rng = _rng(salt)
    logits, labels = _draw_logits(rng, n, classes, rng.uniform(1.3, 2.5))  # an over-confident model
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True), labels


def _ece_case(answer, name: str, salt: int, n: int, classes: int, bins: int) -> dict:
    probs, labels = _ece_data(salt, n, classes, _challenge_key())
    result, problem = call_answer(answer, probs.copy(), labels.copy(), bins)
    return {"case": name, **(problem or _number(result))}


def ece_evidence(answer, strict: bool) -> dict:
    return function_evidence(answer, _ece_cases(strict), _ece_case)


def _ece_variants(probs: np.ndarray, labels: np.ndarray, bins: int) -> dict[str, float]:
    """The right ECE and what typical mistakes give."""
    curve = decisions.reliability_curve(probs, labels, bins)
    filled = curve["count"] > 0
    gaps = np.abs(curve["accuracy"][filled] - curve["confidence"][filled])
    right = decisions.expected_calibration_error(probs, labels, bins)
    variants = {"right": right, "percent": 100 * right, "unweighted": float(gaps.mean()), "max": float(gaps.max()),
                "per_bin_count": float(np.sum(curve["count"][filled] * gaps) / bins)}
    if probs.shape[1] > 2:  # class 1's probability against the share of class 1, bin by bin (the same as right for two classes)
        p1 = probs[:, 1]
        which = np.clip(np.digitize(p1, curve["edges"][1:-1], right=True), 0, bins - 1)
        total = 0.0
        for b in range(bins):
            inside = which == b
            if inside.any():
                total += inside.sum() * abs((labels[inside] == 1).mean() - p1[inside].mean())
        variants["positive_class"] = total / len(labels)
    return variants


def _ece_verdict(case: dict, expected: tuple, where: str) -> Verdict | None:
    _, salt, n, classes, bins = expected
    if "value" not in case:
        return hint(f"`expected_calibration_error` should return one number, not {case.get('type', 'None')}.")
    value = case["value"]
    variants = _ece_variants(*_ece_data(salt, n, classes, _challenge_key()), bins)
    same = lambda key: key in variants and math.isclose(value, variants[key], rel_tol=1e-5, abs_tol=1e-9)
    if same("right"):
        return None
    if same("percent"):
        return hint("That is a percentage: return the ECE as a fraction (0.05, not 5).")
    if same("unweighted"):
        return hint("You averaged the bins' gaps with equal weights. Weight each bin by the number of "
                    "predictions in it (and divide by the number of predictions), so that a nearly empty bin counts little.")
    if same("max"):
        return hint("That is the largest gap of any bin (the maximum calibration error); the ECE is the "
                    "weighted average of the gaps.")
    if same("per_bin_count"):
        return hint("Divide the weighted sum of gaps by the number of predictions, not by the number of bins.")
    if same("positive_class"):
        return hint(f"You binned the probability of class 1 {where}. The confidence is the probability of the "
                    "*predicted* class (`probs.max(axis=1)`), and the bin's accuracy is how often that "
                    "prediction is right.")
    return hint(f"Not the expected value {where}. Per bin of confidence (the predicted class's probability, "
                "`bins` equal-width bins on [0, 1]): |accuracy - mean confidence|, weighted by the bin's "
                "share of the predictions, summed.")


def ece_judge(evidence: dict, strict: bool) -> Verdict:
    return judge_cases(
        evidence, _ece_cases(strict), _ece_verdict, answer="expected_calibration_error",
        should_be="a function `expected_calibration_error(probs, labels, bins)`", where="on {0}",
    ) or passed("That is the number under a reliability diagram: 0 when every bin's accuracy matches "
                "its confidence.")


register(Task("07.ece", "The expected calibration error", points=2, answer="expected_calibration_error",
              evidence=ece_evidence, judge=never_raises(ece_judge)))


# ---------------------------------------------------------------- 07.tta

def _tta_cases(strict: bool) -> list[tuple[str, int, int, int, int]]:
    """(case, salt, images, classes, image size)."""
    cases = [("a small CNN, 4 images of 16 x 16", 740, 4, 2, 16)]
    if strict:
        rng = fresh_random(741)
        cases += [(f"a 3-class CNN, 5 images of {size} x {size}", 742, 5, 3, size)
                  for size in [rng.choice([20, 24, 32])]]
    return cases


def _tta_setup(salt: int, n: int, classes: int, size: int):
    """A small CNN with random weights (handed over in train mode) and images, fixed by the challenge."""
    seed = fresh_random(salt).randrange(2**31)
    torch.manual_seed(seed)
    model = models.SmallCNN(num_classes=classes, width=4)
    with torch.no_grad():  # BatchNorm statistics that differ from a batch's own, so eval mode matters
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
            if isinstance(module, torch.nn.Linear):  # confident outputs: averaging logits then differs from averaging probabilities
                module.weight.mul_(40.0)
    images = torch.randn((n, 3, size, size), generator=torch.Generator().manual_seed(seed + 1))
    return model.train(), images


def _tta_case(answer, name: str, salt: int, n: int, classes: int, size: int) -> dict:
    model, images = _tta_setup(salt, n, classes, size)
    result, problem = call_answer(answer, model, images.clone())
    if problem:
        return {"case": name, **problem}
    try:
        output = as_plain_tensor(result.detach() if isinstance(result, torch.Tensor) else np.asarray(result)).float()
    except Exception:
        return {"case": name, "type": type(result).__name__}
    return {"case": name, "output": output}


def tta_evidence(answer, strict: bool) -> dict:
    return function_evidence(answer, _tta_cases(strict), _tta_case)


def _poses(images: torch.Tensor, flips: bool = True, turns: bool = True) -> list[torch.Tensor]:
    bases = [images, images.flip(-1)] if flips else [images]
    return [torch.rot90(base, k, dims=(-2, -1)) for base in bases for k in (range(4) if turns else [0])]


@lru_cache(maxsize=8)
def _tta_variants(salt: int, n: int, classes: int, size: int, challenge_key: int) -> dict[str, torch.Tensor]:
    model, images = _tta_setup(salt, n, classes, size)
    with torch.no_grad():  # train mode first on a copy of its own: it updates the BatchNorm statistics
        train_mode = torch.stack([model(p).softmax(dim=1) for p in _poses(images)]).mean(dim=0)
        model, images = _tta_setup(salt, n, classes, size)
        model.eval()
        logits = torch.stack([model(p) for p in _poses(images)])
        return {"right": logits.softmax(dim=2).mean(dim=0), "train_mode": train_mode,
                "mean_logits": logits.mean(dim=0).softmax(dim=1), "logits": logits.mean(dim=0),
                "turns_only": torch.stack([model(p).softmax(dim=1) for p in _poses(images, flips=False)]).mean(dim=0),
                "flips_only": torch.stack([model(p).softmax(dim=1) for p in _poses(images, turns=False)]).mean(dim=0),
                "single": model(images).softmax(dim=1)}


def _tta_verdict(case: dict, expected: tuple, where: str) -> Verdict | None:
    _, salt, n, classes, size = expected
    if "output" not in case:
        return hint(f"`predict_tta` should return the probabilities as a tensor or an array, not {case.get('type', 'None')}.")
    output = case["output"]
    if tuple(output.shape) != (n, classes):
        return hint(f"For {n} images and {classes} classes expect probabilities of shape ({n}, {classes}), "
                    f"not {tuple(output.shape)} {where}: one row per image, averaged over the poses.")
    variants = _tta_variants(salt, n, classes, size, _challenge_key())
    same = lambda key: close(output, variants[key], atol=1e-5, rtol=1e-4)
    if same("right"):
        return None
    if same("train_mode"):
        return hint("The model predicted in train mode (it arrives that way), so BatchNorm used each batch's "
                    "own statistics: call `model.eval()` first.")
    if same("mean_logits"):
        return hint("You averaged the logits, then took the softmax. Average the *probabilities*: softmax "
                    "each pose's logits first.")
    if same("logits"):
        return hint("These are averaged logits, not probabilities: apply the softmax to each pose's logits, then average.")
    if same("turns_only"):
        return hint("Only the four quarter turns: add their mirror images (`images.flip(-1)`, then turned), "
                    "for all 8 poses of a square.")
    if same("flips_only"):
        return hint("Only the image and its mirror: add the quarter turns (`torch.rot90(x, k, dims=(-2, -1))`), "
                    "for all 8 poses.")
    if same("single"):
        return hint("That is the prediction on the images as they are: average over all 8 poses.")
    return hint(f"The probabilities differ from the average over the 8 poses {where}: for each of the 4 quarter "
                "turns of the images and of their mirror images, softmax of the model's logits; then the mean.")


def tta_judge(evidence: dict, strict: bool) -> Verdict:
    return judge_cases(
        evidence, _tta_cases(strict), _tta_verdict, answer="predict_tta",
        should_be="a function `predict_tta(model, images)`", where="on {0}",
    ) or passed("Eight poses, one average: TTA costs eight forward passes, so measure what it buys "
                "(lesson 07, section 3).")


register(Task("07.tta", "Test-time augmentation over the 8 poses", points=2, answer="predict_tta",
              evidence=tta_evidence, judge=never_raises(tta_judge)))
