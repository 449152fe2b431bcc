"""Decisions under class imbalance: thresholds, class weights, costs and calibration (lesson 07).

A classifier gives probabilities; a factory needs decisions. Everything here is *chosen on
validation data* and then judged once on the test split, which is why every function that
chooses something takes the validation probabilities and labels as its arguments:

* :func:`choose_threshold` picks the threshold of least cost when a missed defect (a false
  negative) costs ``cost_fn`` and a false alarm ``cost_fp``; :func:`decision_cost` prices a rule;
* :func:`precision_recall` gives the precision-recall curve with that cheapest point marked;
* :func:`class_weights` gives loss weights that make both classes count alike;
* :func:`reliability_curve`, :func:`expected_calibration_error` and :func:`plot_reliability`
  ask whether "90% sure" is right 90% of the time; :func:`fit_temperature` and
  :func:`apply_temperature` repair over-confidence with one number (temperature scaling).

Binary functions take ``probs`` as the positive class's probabilities ``(n,)`` or as
``(n, 2)`` class probabilities; calibration takes ``(n, classes)``.
"""
from __future__ import annotations

import numpy as np
import torch


def _positive(probs) -> np.ndarray:
    p = np.asarray(probs, dtype=float)
    if p.ndim == 2 and p.shape[1] == 2:
        p = p[:, 1]
    if p.ndim != 1:
        raise ValueError(f"Expected the positive class's probabilities (n,) or (n, 2), got shape {p.shape}.")
    return p


def _binary_labels(labels, n: int) -> np.ndarray:
    y = np.asarray(labels)
    if len(y) != n or not np.isin(y, (0, 1)).all():
        raise ValueError(f"Expected {n} labels of 0 (negative) and 1 (positive).")
    return y.astype(int)


def decision_cost(probs, labels, threshold: float, cost_fn: float = 1.0, cost_fp: float = 1.0) -> float:
    """The total cost of calling ``p >= threshold`` positive: ``cost_fn * misses + cost_fp * false alarms``."""
    p = _positive(probs)
    y = _binary_labels(labels, len(p))
    positive = p >= threshold
    return float(cost_fn * np.sum(~positive & (y == 1)) + cost_fp * np.sum(positive & (y == 0)))


def _candidate_thresholds(p: np.ndarray) -> np.ndarray:
    """0, the midpoints between neighbouring distinct probabilities, and one above them all (nothing positive)."""
    values = np.unique(p)
    top = (values[-1] + 1.0) / 2 if values[-1] < 1.0 else 1.0
    return np.concatenate([[0.0], (values[:-1] + values[1:]) / 2, [top]])


def choose_threshold(val_probs, val_labels, cost_fn: float = 1.0, cost_fp: float = 1.0) -> float:
    """The threshold of least total cost on the *validation* split (``p >= threshold`` means positive).

    With ``cost_fn=10, cost_fp=1`` a missed defect costs ten false alarms, and the threshold
    drops below 0.5. The threshold sits halfway between two validation probabilities, so it
    does not hang on a single cell. Among equally cheap thresholds, the lowest (fewest misses).
    """
    p = _positive(val_probs)
    y = _binary_labels(val_labels, len(p))
    candidates = _candidate_thresholds(p)
    positives, negatives = np.sort(p[y == 1]), np.sort(p[y == 0])
    misses = np.searchsorted(positives, candidates, side="left")  # positives below each threshold
    false_alarms = len(negatives) - np.searchsorted(negatives, candidates, side="left")  # negatives at or above
    costs = cost_fn * misses + cost_fp * false_alarms  # what decision_cost gives, for every candidate at once
    return float(candidates[int(np.argmin(costs))])


def precision_recall(val_probs, val_labels, cost_fn: float = 1.0, cost_fp: float = 1.0) -> dict:
    """The precision-recall curve on validation, with the cheapest threshold's point.

    Returns ``precision``, ``recall`` and ``thresholds`` (arrays, as scikit-learn gives them),
    ``average_precision``, and ``best``: the ``threshold`` of :func:`choose_threshold` with its
    ``precision``, ``recall`` and ``cost``.
    """
    from sklearn.metrics import average_precision_score, precision_recall_curve

    p = _positive(val_probs)
    y = _binary_labels(val_labels, len(p))
    precision, recall, thresholds = precision_recall_curve(y, p)
    t = choose_threshold(p, y, cost_fn, cost_fp)
    called = p >= t
    best = {"threshold": t, "cost": decision_cost(p, y, t, cost_fn, cost_fp),
            "precision": float(y[called].mean()) if called.any() else 1.0,
            "recall": float(called[y == 1].mean()) if (y == 1).any() else 0.0}
    return {"precision": precision, "recall": recall, "thresholds": thresholds,
            "average_precision": float(average_precision_score(y, p)), "best": best,
            "cost_fn": cost_fn, "cost_fp": cost_fp}


def plot_precision_recall(curve: dict, label: str | None = None, ax=None):
    """Draw :func:`precision_recall`'s curve with its cheapest point marked; returns the axes."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(4.5, 4))[1]
    ax.plot(curve["recall"], curve["precision"], label=f"{label or 'model'} (AP {curve['average_precision']:.3f})")
    best = curve["best"]
    ax.scatter([best["recall"]], [best["precision"]], zorder=3, color="black",
               label=f"cheapest at a miss = {curve['cost_fn'] / curve['cost_fp']:g} false alarms "
                     f"(threshold {best['threshold']:.2f})")
    ax.set(xlabel="recall (defects caught)", ylabel="precision (alarms that are defects)",
           xlim=(0, 1.02), ylim=(0, 1.02), title="Precision and recall")
    ax.legend(loc="lower left", fontsize="small")
    return ax


def class_weights(labels, num_classes: int | None = None) -> torch.Tensor:
    """Loss weights ``n / (classes * count)`` per class, so that each class weighs the same in total.

    Use them as ``nn.CrossEntropyLoss(weight=class_weights(train_labels).to(tl.device()))`` with
    ``tl.fit(..., loss_fn=)``: the weights must be on the model's device. The same rule as
    scikit-learn's ``class_weight="balanced"``; compute them on the training labels.
    """
    y = np.asarray(labels).astype(int)
    counts = np.bincount(y, minlength=num_classes or 0)
    if (counts == 0).any():
        raise ValueError(f"Class(es) {np.flatnonzero(counts == 0).tolist()} have no examples; cannot weight them.")
    return torch.tensor(len(y) / (len(counts) * counts), dtype=torch.float32)


# ---------------------------------------------------------------- calibration

def _class_probs(probs) -> np.ndarray:
    p = np.asarray(probs, dtype=float)
    return np.stack([1 - p, p], axis=1) if p.ndim == 1 else p


def reliability_curve(probs, labels, bins: int = 10) -> dict:
    """Per confidence bin: mean confidence, accuracy and count (the data of a reliability diagram).

    Confidence is the probability of the predicted class; ``bins`` equal-width bins over [0, 1].
    A calibrated model has ``accuracy == confidence`` in every bin. Empty bins give NaN.
    """
    p = _class_probs(probs)
    y = np.asarray(labels)
    confidence, correct = p.max(axis=1), (p.argmax(axis=1) == y).astype(float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)  # bin i holds (e_i, e_i+1]
    count = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(which, confidence, minlength=bins) / count
        accuracy = np.bincount(which, correct, minlength=bins) / count
    return {"edges": edges, "confidence": mean_confidence, "accuracy": accuracy, "count": count}


def expected_calibration_error(probs, labels, bins: int = 15) -> float:
    """ECE: the gap between accuracy and confidence, averaged over confidence bins weighted by their size.

    0 for a calibrated model; 0.1 means "ten points more (or less) sure than right", on average.
    """
    curve = reliability_curve(probs, labels, bins)
    filled = curve["count"] > 0
    gaps = np.abs(curve["accuracy"][filled] - curve["confidence"][filled])
    return float(np.sum(curve["count"][filled] * gaps) / curve["count"].sum())


def plot_reliability(probs, labels, bins: int = 10, label: str | None = None, ax=None):
    """A reliability diagram: accuracy against confidence per bin, beside the diagonal; returns the axes.

    Call it twice on the same ``ax`` to compare a model before and after temperature scaling.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        ax = plt.subplots(figsize=(4.5, 4))[1]
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="calibrated")
    curve = reliability_curve(probs, labels, bins)
    filled = curve["count"] > 0
    ece = expected_calibration_error(probs, labels)
    ax.plot(curve["confidence"][filled], curve["accuracy"][filled], marker="o",
            label=f"{label or 'model'} (ECE {ece:.3f})")
    ax.set(xlabel="confidence (probability of the predicted class)", ylabel="accuracy",
           xlim=(0, 1), ylim=(0, 1.02), title="Reliability diagram")
    ax.legend(loc="upper left", fontsize="small")
    return ax


def to_logits(probs) -> np.ndarray:
    """Log-probabilities: logits up to a constant per row, which softmax ignores (``tl.predict`` gives probabilities)."""
    return np.log(np.clip(_class_probs(probs), 1e-12, 1.0))


def fit_temperature(val_logits, val_labels, max_iter: int = 100) -> float:
    """The temperature ``T`` that minimises the cross-entropy of ``softmax(logits / T)`` on the *validation* split.

    ``T > 1`` softens an over-confident model, ``T < 1`` sharpens a timid one. Dividing by one
    number never changes which class is most probable, so accuracy stays the same.
    """
    logits = torch.as_tensor(np.asarray(val_logits), dtype=torch.float64)
    labels = torch.as_tensor(np.asarray(val_labels), dtype=torch.long)
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)  # T = exp(log_t) stays positive
    optimizer = torch.optim.LBFGS([log_t], lr=0.5, max_iter=max_iter, line_search_fn="strong_wolfe")

    def loss():
        optimizer.zero_grad()
        value = torch.nn.functional.cross_entropy(logits / log_t.exp(), labels)
        value.backward()
        return value

    optimizer.step(loss)
    return float(log_t.detach().exp())


def apply_temperature(logits, temperature: float) -> np.ndarray:
    """Class probabilities ``softmax(logits / temperature)``."""
    z = torch.as_tensor(np.asarray(logits), dtype=torch.float64) / temperature
    return z.softmax(dim=1).numpy()
