"""Linear probes: logistic regression on frozen features, the measure of what a layer knows (lessons 02-05).

A probe is returned as an ordinary ``nn.Linear`` head, so the same object

* predicts with ``tl.predict(probe, features)`` (or a list of views, averaged);
* starts fine-tuning from a trained head instead of a random one (``fine_tune_top(head_init=probe)``).

Features may be one array, or a list of arrays holding *views* of the same images (the cells
under different turns): the probe then trains on every view of every image.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .train import predict

#: The regularisation the lessons use; the benchmark chooses it on validation with :func:`choose_C`.
DEFAULT_C = 0.05


def _views(features) -> list[np.ndarray]:
    views = features if isinstance(features, (list, tuple)) else [features]
    return [np.asarray(v, dtype=np.float64).reshape(len(v), -1) for v in views]


def fit_probe(features, labels, C: float = DEFAULT_C, max_iter: int = 3000) -> nn.Linear:
    """Logistic regression on standardised features, returned as an ``nn.Linear`` with the same logits.

    Small ``C`` means strong regularisation; choose it on a validation split, never on the test
    split. The standardisation is folded into the layer, so it takes raw features.
    """
    from sklearn.linear_model import LogisticRegression

    views = _views(features)
    x = np.concatenate(views)
    y = np.tile(np.asarray(labels), len(views))
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0  # a constant feature carries nothing; leave it unscaled
    model = LogisticRegression(C=C, max_iter=max_iter).fit((x - mean) / scale, y)
    weight, bias = model.coef_ / scale, model.intercept_ - (model.coef_ / scale) @ mean
    if len(model.classes_) == 2:  # scikit-learn keeps one row for two classes: logits (0, z)
        weight, bias = np.vstack([np.zeros_like(weight), weight]), np.concatenate([[0.0], bias])
    layer = nn.Linear(x.shape[1], len(weight))
    with torch.no_grad():
        layer.weight.copy_(torch.as_tensor(weight))
        layer.bias.copy_(torch.as_tensor(bias))
    return layer


def _rows(features, idx) -> list[np.ndarray]:
    return [v[idx] for v in _views(features)]


def probe_accuracy(features, labels, fit_idx, eval_idx, C: float = DEFAULT_C) -> float:
    """Accuracy on ``eval_idx`` of a probe trained on ``fit_idx`` (views averaged at prediction)."""
    labels = np.asarray(labels)
    probe = fit_probe(_rows(features, fit_idx), labels[fit_idx], C=C)
    return float((predict(probe, _rows(features, eval_idx), device="cpu").argmax(1) == labels[eval_idx]).mean())


def choose_C(features, labels, fit_idx, val_idx, candidates: Sequence[float] = (0.003, 0.01, 0.03, 0.1)
             ) -> tuple[float, dict[float, float]]:
    """The ``C`` with the best validation accuracy (ties: the strongest regularisation), and every score."""
    scores = {C: probe_accuracy(features, labels, fit_idx, val_idx, C=C) for C in candidates}
    return max(scores, key=lambda c: (scores[c], -c)), scores


def stage_probes(features: dict, labels, fit_idx, eval_idx, C: float = DEFAULT_C) -> list[dict]:
    """One probe per layer of ``features`` (a dict from ``tl.extract_features``), in order.

    Returns rows ``{"layer", "dims", "accuracy"}`` (lesson 05: which layers transfer).
    """
    return [{"layer": name, "dims": int(np.prod(np.shape(values)[1:])),
             "accuracy": probe_accuracy(values, labels, fit_idx, eval_idx, C)}
            for name, values in tqdm(features.items(), desc="Probing layers", unit="layer")]


def grouped_cv_accuracy(features, labels, groups, folds: int = 4, C: float = DEFAULT_C) -> tuple[float, float]:
    """Cross-validated probe accuracy, never testing on a group (e.g. a word) it trained on.

    Returns the accuracy and its standard error (binomial, over all held-out predictions).
    """
    from sklearn.model_selection import StratifiedGroupKFold

    x, y = np.asarray(features), np.asarray(labels)
    correct = np.zeros(len(y), dtype=bool)
    # Stratified: unbalanced folds would push a chance-level probe *below* chance.
    for fit_idx, held_out in StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=0).split(x, y, groups):
        probe = fit_probe(x[fit_idx], y[fit_idx], C=C)
        correct[held_out] = predict(probe, x[held_out], device="cpu").argmax(1) == y[held_out]
    accuracy = correct.mean()
    return float(accuracy), float(np.sqrt(accuracy * (1 - accuracy) / len(y)))
