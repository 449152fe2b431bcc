"""Fair evaluation: the metrics Deitsch et al. report, per module type too (lessons 02-05)."""
from __future__ import annotations

import numpy as np


def classification_metrics(y_true, probabilities, groups=None) -> dict:
    """Accuracy, balanced accuracy, ROC AUC and the confusion matrix from class probabilities.

    ``probabilities`` is ``(n, classes)`` (or ``(n,)`` for the positive class of a binary task).
    With ``groups`` (e.g. the module types 'mono'/'poly') it adds ``accuracy_<group>``.
    """
    from sklearn import metrics as skm

    y_true = np.asarray(y_true)
    probabilities = np.asarray(probabilities, dtype=float)
    if probabilities.ndim == 1:
        probabilities = np.stack([1 - probabilities, probabilities], axis=1)
    if len(probabilities) != len(y_true):
        raise ValueError(f"{len(probabilities)} predictions for {len(y_true)} labels.")
    y_pred = probabilities.argmax(axis=1)
    labels = np.arange(probabilities.shape[1])
    result = {
        "accuracy": skm.accuracy_score(y_true, y_pred),
        "balanced_accuracy": skm.balanced_accuracy_score(y_true, y_pred),
        "roc_auc": _roc_auc(y_true, probabilities),
        "confusion_matrix": skm.confusion_matrix(y_true, y_pred, labels=labels),
    }
    if groups is not None:
        groups = np.asarray(groups)
        for group in np.unique(groups):
            mask = groups == group
            result[f"accuracy_{group}"] = skm.accuracy_score(y_true[mask], y_pred[mask])
    return result


def _roc_auc(y_true, probabilities) -> float:
    from sklearn import metrics as skm

    if len(np.unique(y_true)) < 2:
        return float("nan")  # undefined with a single class present
    if probabilities.shape[1] == 2:
        return skm.roc_auc_score(y_true, probabilities[:, 1])
    return skm.roc_auc_score(y_true, probabilities, multi_class="ovr", labels=np.arange(probabilities.shape[1]))


def format_metrics(result: dict) -> str:
    """One readable line of the scalar metrics, as percentages."""
    return ", ".join(f"{k} {100 * v:.1f}%" for k, v in result.items() if np.isscalar(v))
