"""Recipes that beat a from-scratch CNN on ELPV on a laptop CPU (benchmarks/elpv.py, lessons 03-04).

The idea of the best recipe: a solar cell is still a solar cell when it is turned by a quarter
turn, but an ImageNet backbone does not see it that way (the features of a rotated cell differ
as much as those of two different cells). So we extract frozen features of every cell under
several rotations once, train a linear probe on all of them (data augmentation for free), and
average its predictions over the rotations of each test cell (test-time augmentation).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn
from torchvision.transforms import v2

from .data import load_elpv
from .features import extract_features
from .models import preprocess

#: The views of the best recipe: the cell as it is and turned by a quarter turn. Each view costs
#: one cached pass of the backbone; a quarter turn changes the features most (half turns and
#: flips change them much less), so it is the view worth paying for.
ROTATIONS = (0, 1)

#: The stages whose pooled outputs the multi-stage probe concatenates (EfficientNet names).
PROBE_LAYERS = ("stage3", "stage4", "stage5", "stage6", "stage7", "features")


class Rotate90(nn.Module):
    """Turn an image (or a batch) by ``turns`` quarter turns, counter-clockwise; always the same.

    Its ``repr`` names the turns, so features of each orientation get their own cache entry.
    """

    def __init__(self, turns: int) -> None:
        super().__init__()
        self.turns = int(turns) % 4

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return torch.rot90(image, self.turns, dims=(-2, -1)) if self.turns else image

    def __repr__(self) -> str:
        return f"Rotate90(turns={self.turns})"


def rotated_preprocess(size: int, turns: int) -> v2.Compose | v2.Transform:
    """The backbone's input pipeline at ``size`` px, then a fixed rotation by ``turns`` quarter turns.

    ``turns=0`` returns ``preprocess(size)`` itself, so it shares the feature cache with the lessons.
    """
    if turns % 4 == 0:
        return preprocess(size)
    return v2.Compose([preprocess(size), Rotate90(turns)])


def stack_layers(features: dict[str, torch.Tensor], layers: Sequence[str] = PROBE_LAYERS) -> np.ndarray:
    """Concatenate the pooled features of several layers into one matrix (one row per image)."""
    return torch.cat([features[name].flatten(1) for name in layers], dim=1).numpy()


def extract_rotated_features(
    model: nn.Module,
    size: int = 160,
    turns: Sequence[int] = ROTATIONS,
    layers: Sequence[str] = PROBE_LAYERS,
    progress: bool = True,
    dataset_factory=load_elpv,
) -> list[dict[str, torch.Tensor]]:
    """Pooled features of every ELPV cell under each rotation in ``turns``: one dict per rotation.

    Each rotation costs one pass of the backbone over the data, paid once thanks to the cache.
    """
    views = []
    for turn in turns:
        dataset = dataset_factory(transform=rotated_preprocess(size, turn))
        views.append(extract_features(model, dataset, layer=list(layers), progress=progress))
    return views


def fit_probe(x: np.ndarray, y: np.ndarray, C: float = 0.01, max_iter: int = 3000) -> Pipeline:
    """A linear probe: standardise the features, then L2-regularised logistic regression.

    Small ``C`` means strong regularisation; with thousands of features and a few thousand
    images the best ``C`` is small (choose it on a validation split, never on the test split).
    """
    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter)).fit(x, y)


def fit_probe_on_views(views: Sequence[np.ndarray], y: np.ndarray, C: float = 0.01) -> Pipeline:
    """Train one probe on every view of every training image (augmentation with cached features)."""
    x = np.concatenate(list(views))
    return fit_probe(x, np.tile(np.asarray(y), len(views)), C=C)


def predict_views(probe, views: Sequence[np.ndarray]) -> np.ndarray:
    """Class probabilities averaged over the views of each image (test-time augmentation)."""
    return np.mean([probe.predict_proba(view) for view in views], axis=0)


def choose_C(
    views: Sequence[np.ndarray], y: np.ndarray, fit_idx: np.ndarray, val_idx: np.ndarray,
    candidates: Sequence[float] = (0.001, 0.003, 0.01, 0.03),
) -> tuple[float, dict[float, float]]:
    """Pick the probe's ``C`` by validation accuracy (fit on ``fit_idx``, score on ``val_idx``)."""
    y = np.asarray(y)
    scores = {}
    for C in candidates:
        probe = fit_probe_on_views([v[fit_idx] for v in views], y[fit_idx], C=C)
        scores[C] = float((predict_views(probe, [v[val_idx] for v in views]).argmax(1) == y[val_idx]).mean())
    return max(scores, key=lambda c: (scores[c], -c)), scores

