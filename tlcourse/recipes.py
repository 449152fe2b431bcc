"""Recipes that beat a from-scratch CNN on ELPV on a laptop CPU (benchmarks/elpv.py, lessons 03-04).

The idea behind both recipes: a solar cell is still a solar cell when it is turned by a quarter
turn, but an ImageNet backbone does not see it that way (the features of a rotated cell differ
as much as those of two different cells). So we run the frozen backbone over every cell under
several rotations once, cache what it computes, and train on all the views (data augmentation
at the price of a cache lookup), averaging the predictions over the views of each test cell
(test-time augmentation).

* The rotation-ensemble probe: a linear probe on pooled multi-stage features of two views.
* The best recipe, ``fine_tune_top``: the stages above ``stage5`` and a new head, fine-tuned on
  cached ``stage5`` activation maps of four quarter turns (``extract_rotated_maps``,
  ``fine_tune_top_on_views``, ``predict_top_on_views``). It runs on the CPU, where the cache is
  what makes it affordable.
"""
from __future__ import annotations

import copy
from typing import Sequence

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn
from torchvision.transforms import v2
from tqdm.auto import tqdm

from .data import load_elpv
from .features import extract_features
from .models import head, preprocess
from .utils import channels_last_on_cpu, seed_everything

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


# ---------------------------------------------------------------- fine-tuning the top on cached views

def extract_rotated_maps(
    model: nn.Module,
    stage: str,
    size: int = 160,
    turns: Sequence[int] = (0, 1, 2, 3),
    progress: bool = True,
    dataset_factory=load_elpv,
) -> torch.Tensor:
    """Activation maps of ``stage`` (not pooled) for every cell under each rotation: ``(views, N, C, H, W)``.

    The backbone runs on the *rotated image* (so every view is a true view of the cell, unlike a
    rotated activation map), once per rotation, cached on disk like any other features.
    """
    maps = []
    for turn in turns:
        dataset = dataset_factory(transform=rotated_preprocess(size, turn))
        maps.append(extract_features(model, dataset, layer=stage, pool=False, progress=progress))
    return torch.stack(maps)


def fine_tune_top_on_views(
    top: nn.Module,
    views: torch.Tensor,
    labels,
    train_idx,
    epochs: int = 6,
    lr: float = 1e-3,
    head_lr: float = 1e-2,
    batch_size: int = 64,
    label_smoothing: float = 0.1,
    weight_decay: float = 1e-2,
    seed: int = 0,
    progress: bool = True,
) -> nn.Module:
    """Fine-tune a copy of ``top`` (the stages above a cut, ending in a fresh head) on cached maps.

    ``views`` is ``(views, N, C, H, W)`` from :func:`extract_rotated_maps`. Every step shows each
    training cell under one of its views, picked at random (augmentation at the price of a cache
    lookup). AdamW with a one-cycle schedule, the head at ``head_lr`` and the stages at ``lr``;
    BatchNorm statistics adapt (the cells are not ImageNet photos); label smoothing, because a
    third of the "defective" labels come from raters who disagreed. Runs on the CPU; batches go
    in channels-last order there (30% faster; the values agree up to rounding).
    """
    seed_everything(seed)
    model = copy.deepcopy(top).train()
    head_params = list(head(model).parameters())
    head_ids = {id(p) for p in head_params}
    body_params = [p for p in model.parameters() if id(p) not in head_ids]
    optimizer = torch.optim.AdamW([{"params": body_params, "lr": lr}, {"params": head_params, "lr": head_lr}],
                                  weight_decay=weight_decay)
    train_idx = torch.as_tensor(np.asarray(train_idx))
    labels = torch.as_tensor(np.asarray(labels))
    steps_per_epoch = -(-len(train_idx) // batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=[lr, head_lr],
                                                    total_steps=epochs * steps_per_epoch, pct_start=0.2)
    generator = torch.Generator().manual_seed(seed)
    for _ in tqdm(range(epochs), desc="Fine-tuning the top", unit="epoch", disable=not progress):
        order = train_idx[torch.randperm(len(train_idx), generator=generator)]
        view = torch.randint(0, len(views), (len(order),), generator=generator)
        for start in range(0, len(order), batch_size):
            idx, v = order[start:start + batch_size], view[start:start + batch_size]
            loss = nn.functional.cross_entropy(model(channels_last_on_cpu(views[v, idx].float())), labels[idx],
                                               label_smoothing=label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
    return model.eval()


def predict_top_on_views(top: nn.Module, views: torch.Tensor, idx, batch_size: int = 256) -> np.ndarray:
    """Class probabilities of ``top`` averaged over every view of the cells ``idx`` (test-time augmentation)."""
    idx = torch.as_tensor(np.asarray(idx))
    top.eval()
    with torch.inference_mode():
        probs = [torch.cat([top(channels_last_on_cpu(views[v, idx[i:i + batch_size]].float())).softmax(1)
                            for i in range(0, len(idx), batch_size)]) for v in range(len(views))]
    return torch.stack(probs).mean(0).numpy()
