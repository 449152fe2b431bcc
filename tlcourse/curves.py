"""The data-efficiency curve: three strategies, trained at shrinking data sizes over seeds (lesson 04).

Each *strategy* trains on the cells ``train_idx`` and returns class probabilities for the cells
``test_idx``. :func:`data_efficiency_curve` runs them over sizes and seeds on the same subsets and
scores every run fairly (:func:`fair_metrics`); :func:`summarise` gives mean ± std per strategy and
size; :func:`data_efficiency_verdict` judges the three claims of transfer learning from the results,
one small function per claim, on the metric you name. :func:`transfer_gains` compares data sets.
Nothing here reads notebook state: every input is an argument.
"""
from __future__ import annotations

import math
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .data import per_class_subset
from .evaluate import classification_metrics
from .finetune import fine_tune_top
from .models import SmallCNN
from .probes import DEFAULT_C, fit_probe
from .train import epochs_for, fit, predict, tensor_loader
from .transforms import random_dihedral
from .utils import Timer, seed_everything

FULL = None  # the size that means "the whole training split"
Strategy = Callable[..., np.ndarray]  # strategy(train_idx=..., seed=...) -> test probabilities


# ---------------------------------------------------------------- the three strategies

def linear_probe_strategy(features, labels, test_idx, train_idx, seed: int = 0, C: float = DEFAULT_C) -> np.ndarray:
    """Feature extraction: a linear probe on cached features; returns test probabilities."""
    features, labels = np.asarray(features), np.asarray(labels)
    return predict(fit_probe(features[train_idx], labels[train_idx], C=C), features[test_idx], device="cpu")


def budget(n_train: int, batch_size: int, min_steps: int, min_epochs: int = 1, max_epochs: int | None = None) -> dict:
    """A run's training budget: the epochs that give at least ``min_steps`` updates, and those updates.

    No cap by default, so every run gets its minimum (ten images make one batch, so they get
    ``min_steps`` epochs of one step); ``max_epochs`` caps it, and may then starve small sets.
    """
    epochs = epochs_for(n_train, batch_size, min_steps, max_epochs or 10**9, min_epochs)
    return {"epochs": epochs, "updates": epochs * math.ceil(n_train / batch_size)}


def fine_tuning_strategy(
    top: nn.Module, activations, features, labels, test_idx, train_idx, seed: int = 0,
    min_steps: int = 30, min_epochs: int = 1, max_epochs: int | None = None, batch_size: int = 32,
    C: float = DEFAULT_C, test_views: int | None = None, device=None, **settings,
) -> np.ndarray:
    """Fine-tuning: start the head from a linear probe, then ``tl.fine_tune_top`` on cached activations.

    ``activations`` may be a list of views (e.g. the four quarter turns, ``tl.extract_views``):
    training shows each cell in a random view, prediction averages the first ``test_views`` of
    them (default: all; ``1``: the cells as they are, the cheapest prediction). The epochs follow
    :func:`budget`; ``settings`` go to ``fine_tune_top`` (learning rates, schedule, BatchNorm
    policy, label smoothing, ...). Returns test probabilities.
    """
    features, labels = np.asarray(features), np.asarray(labels)
    probe = fit_probe(features[train_idx], labels[train_idx], C=C)
    epochs = budget(len(train_idx), batch_size, min_steps, min_epochs, max_epochs)["epochs"]
    model, _ = fine_tune_top(top, activations, labels, train_idx, epochs, head_init=probe, batch_size=batch_size,
                             seed=seed, device=device, progress=False, **settings)
    views = list(activations) if isinstance(activations, (list, tuple)) else [activations]
    views = views[:test_views] if test_views else views
    return predict(model, [torch.as_tensor(view)[test_idx] for view in views], device=device, channels_last=True)


def from_scratch_strategy(
    images: torch.Tensor, labels, test_idx, train_idx, seed: int = 0, min_steps: int = 80,
    min_epochs: int = 4, max_epochs: int | None = None, epochs: int | None = None, batch_size: int = 32,
    lr: float = 3e-3, width: int = 16, augment: Callable | None = random_dihedral, device=None,
) -> np.ndarray:
    """From scratch: ``tl.SmallCNN`` on small images, one-cycle AdamW.

    Every batch goes through ``augment`` (default: random flips and quarter turns, the symmetries
    of a solar cell; ``None`` for data without them, such as digits). Epochs follow :func:`budget`
    unless ``epochs`` is given. Returns test probabilities.
    """
    seed_everything(seed)
    labels = np.asarray(labels)
    model = SmallCNN(num_classes=int(labels.max()) + 1, in_channels=images.shape[1], width=width)
    loader = tensor_loader(images[train_idx], labels[train_idx], batch_size, shuffle=True, seed=seed)
    epochs = epochs or budget(len(train_idx), batch_size, min_steps, min_epochs, max_epochs)["epochs"]
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    fit(model, loader, epochs, optimizer=optimizer, scheduler="onecycle", augment=augment,
        device=device, progress=False)
    return predict(model, images[test_idx], device=device)


# ---------------------------------------------------------------- judging a run fairly

def class_prior(labels, classes: int) -> np.ndarray:
    """The share of each class among ``labels``."""
    return np.bincount(np.asarray(labels), minlength=classes) / len(labels)


def correct_prior(probabilities, trained_at, judged_at) -> np.ndarray:
    """Move class probabilities from the prior a model was trained at to another one.

    Bayes' rule: multiply each class's probability by ``judged_at / trained_at`` and renormalise
    (Saerens et al., 2002). Ranking within a class, hence a binary ROC AUC, does not change.
    """
    p = np.asarray(probabilities, dtype=float) * (np.asarray(judged_at) / np.asarray(trained_at))
    return p / p.sum(axis=1, keepdims=True)


def fair_metrics(y_true, probabilities, trained_at, natural, groups=None) -> dict:
    """The scores of one run, each at the class prior it assumes.

    * ``balanced_accuracy``: decisions at equal priors (the mean recall of the classes; 50% for
      any constant answer of a two-class task);
    * ``accuracy`` (and ``accuracy_<group>``): decisions at the ``natural`` prior of the data
      (prior-corrected accuracy);
    * ``roc_auc``: the ranking, which needs no prior;
    * ``plain_accuracy``: the model's own decisions, uncorrected (what the trap looks like);
    * ``called_positive``: the share of test items the model, as trained, puts in class 1
      (two classes only): near 0 or 1 unmasks a constant predictor.

    ``trained_at`` is the class prior of the training subset; ``natural`` that of the whole
    training split. Neither looks at the test labels.
    """
    probabilities = np.asarray(probabilities, dtype=float)
    classes = probabilities.shape[1]
    balanced = classification_metrics(y_true, correct_prior(probabilities, trained_at, np.full(classes, 1 / classes)))
    natural_ = classification_metrics(y_true, correct_prior(probabilities, trained_at, natural), groups=groups)
    plain = probabilities.argmax(axis=1)
    result = {"balanced_accuracy": balanced["balanced_accuracy"], "roc_auc": classification_metrics(y_true, probabilities)["roc_auc"],
              "accuracy": natural_["accuracy"], "plain_accuracy": float((plain == np.asarray(y_true)).mean())}
    result.update({k: v for k, v in natural_.items() if k.startswith("accuracy_")})
    if classes == 2:
        result["called_positive"] = float(plain.mean())
    return result


# ---------------------------------------------------------------- the curve and its summary

def data_efficiency_curve(
    strategies: dict[str, Strategy], labels, train_idx, test_idx, sizes: Sequence[int | None],
    seeds: Sequence[int] | Mapping[int | None, Sequence[int]], groups=None,
) -> list[dict]:
    """Train every strategy at every size (images per class; ``None`` = the full split) and seed.

    ``seeds`` is one list for every size, or a dict ``{size: seeds}``: the large sizes, where
    runs cost most and vary least, may get fewer seeds than the small ones (at least two, so
    that a spread can be measured). All strategies see the same subset for a given size and
    seed, and are scored on the same test cells by :func:`fair_metrics`: the small subsets are balanced while the full split has
    the data's own prior, so each metric is read at the prior it assumes, for every size alike.
    Returns one row per run: strategy, per_class, n_train, seed, seconds and the metrics.
    """
    labels = np.asarray(labels)
    classes = int(labels.max()) + 1
    natural = class_prior(labels[np.asarray(train_idx)], classes)
    rows = []
    seeds_at = seeds if isinstance(seeds, Mapping) else {size: seeds for size in sizes}
    runs = [(size, seed, name) for size in sizes for seed in seeds_at[size] for name in strategies]
    for size, seed, name in tqdm(runs, desc="Data-efficiency runs", unit="run"):
        idx = np.asarray(train_idx) if size is None else per_class_subset(labels, size, seed=seed, indices=train_idx)
        with Timer() as timer:
            probs = strategies[name](train_idx=idx, seed=seed)
        metrics = fair_metrics(labels[test_idx], probs, class_prior(labels[idx], classes), natural, groups=groups)
        rows.append({"strategy": name, "per_class": size, "n_train": len(idx), "seed": seed,
                     "seconds": timer.seconds, **metrics})
    return rows


def summarise(rows: list[dict], metrics: Sequence[str] = ("balanced_accuracy", "roc_auc", "seconds")) -> list[dict]:
    """Mean and standard deviation over seeds, one row per (strategy, size), in first-seen order."""
    keys = list(dict.fromkeys((r["strategy"], r.get("per_class")) for r in rows))
    summary = []
    for strategy, size in keys:
        runs = [r for r in rows if r["strategy"] == strategy and r.get("per_class") == size]
        row = {"strategy": strategy, "per_class": size, "n_train": runs[0].get("n_train"), "runs": len(runs)}
        for metric in metrics:
            values = np.array([r[metric] for r in runs], dtype=float)
            row[f"{metric}_mean"], row[f"{metric}_std"] = values.mean(), values.std(ddof=1) if len(values) > 1 else 0.0
        summary.append(row)
    return summary


LABELS = {"balanced_accuracy": "balanced acc.", "roc_auc": "ROC AUC", "accuracy": "accuracy (prior-corr.)",
          "plain_accuracy": "plain accuracy", "called_positive": "called class 1"}


def format_summary(summary: list[dict], metrics: str | Sequence[str] = ("balanced_accuracy", "roc_auc")) -> str:
    """A plain-text table: one line per strategy and size, mean ± std of each metric (in %) and of the seconds."""
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    heads = "".join(f"{LABELS.get(m, m) + ' (%)':>26}" for m in metrics)
    lines = [f"{'strategy':<20}{'per class':>10}{'images':>8}{heads}{'seconds':>16}"]
    for row in summary:
        scores = "".join(f"{_mean_std(row, m):>26}" for m in metrics)
        seconds = f"{row['seconds_mean']:.1f} ± {row['seconds_std']:.1f}"
        lines.append(f"{row['strategy']:<20}{size_label(row['per_class']):>10}{row['n_train']:>8}{scores}{seconds:>16}")
    return "\n".join(lines)


def _mean_std(row: dict, metric: str) -> str:
    return f"{100 * row[metric + '_mean']:.1f} ± {100 * row[metric + '_std']:.1f}"


def size_label(size: int | None) -> str:
    """``"full"`` for the whole split, else the number of images per class."""
    return "full" if size is None else str(size)


# ---------------------------------------------------------------- the verdict, one claim per function

def _where(size: int | None) -> str:
    return "the full split" if size is None else f"{size} per class"


def gap(by: dict, a: str, b: str, size: int | None, metric: str = "balanced_accuracy") -> tuple[float, bool]:
    """Mean ``metric`` of ``a`` minus ``b`` at ``size``, and whether it exceeds two standard errors."""
    ra, rb = by[(a, size)], by[(b, size)]
    se = math.sqrt(ra[metric + "_std"] ** 2 / ra["runs"] + rb[metric + "_std"] ** 2 / rb["runs"])
    diff = ra[metric + "_mean"] - rb[metric + "_mean"]
    return diff, abs(diff) > 2 * se


def accuracy_claim(by: dict, sizes: list, strategy: str, scratch: str, metric: str = "balanced_accuracy") -> str:
    """Better accuracy: at how many sizes ``strategy`` beats from-scratch on ``metric`` beyond the noise."""
    gaps = {size: gap(by, strategy, scratch, size, metric) for size in sizes}
    unclear = [_where(size) for size, (diff, real) in gaps.items() if diff <= 0 or not real]
    diffs = [100 * diff for diff, _ in gaps.values()]
    return (f"Better {LABELS.get(metric, metric)} than from scratch: {strategy} is clearly better at "
            f"{len(sizes) - len(unclear)} of {len(sizes)} sizes (gap {min(diffs):+.1f} to {max(diffs):+.1f} points)"
            + (f"; not clearly at {', '.join(unclear)}." if unclear else "."))


def data_claim(by: dict, sizes: list, strategy: str, scratch: str, metric: str = "balanced_accuracy") -> str:
    """Less data needed: the smallest size at which ``strategy`` matches from-scratch on the full split."""
    full = sizes[-1]
    target, n_full = by[(scratch, full)][metric + "_mean"], by[(scratch, full)]["n_train"]
    enough = [size for size in sizes if by[(strategy, size)][metric + "_mean"] >= target]
    label = LABELS.get(metric, metric)
    if enough and enough[0] != full:
        n_needed = by[(strategy, enough[0])]["n_train"]
        return (f"Less data needed: YES for {strategy}: it matches from-scratch's {label} on {_where(full)} "
                f"({100 * target:.1f}%) with {_where(enough[0])}, {n_needed} images instead of {n_full} "
                f"({n_full / n_needed:.0f}x less).")
    return (f"Less data needed: NOT shown for {strategy}: below the full split it never reaches from-scratch's "
            f"{label} of {100 * target:.1f}% on {_where(full)}" + (" (it does with the full split)." if enough else "."))


def time_claim(by: dict, full, strategy: str, scratch: str, overhead_per_image: float = 0.0) -> str:
    """Less training time: training seconds on the full split, with and without the one-off extraction."""
    scratch_time = by[(scratch, full)]["seconds_mean"]
    run = by[(strategy, full)]["seconds_mean"]
    total = run + overhead_per_image * by[(strategy, full)]["n_train"]

    def ratio(t: float) -> str:
        return f"{scratch_time / t:.1f}x faster" if t < scratch_time else f"{t / scratch_time:.1f}x SLOWER"

    return (f"Less training time: on {_where(full)}, {strategy} trains in {run:.1f} s against {scratch_time:.1f} s "
            f"from scratch ({ratio(run)}); counting the one-off extraction of the training images, "
            f"{total:.1f} s ({ratio(total)}).")


def disagreement(by: dict, sizes: list, a: str, b: str, metric: str = "balanced_accuracy") -> str:
    """Where two transfer strategies differ beyond the noise."""
    gaps = {size: gap(by, b, a, size, metric) for size in sizes}
    wins = [_where(s) for s, (diff, real) in gaps.items() if real and diff > 0]
    losses = [_where(s) for s, (diff, real) in gaps.items() if real and diff < 0]
    return (f"Where the data disagree ({LABELS.get(metric, metric)}): {b} beats {a} clearly at "
            f"{', '.join(wins) or 'no size'}, loses clearly at {', '.join(losses) or 'no size'}, "
            "and is within the noise elsewhere.")


def data_efficiency_verdict(rows: list[dict], metric: str = "balanced_accuracy", scratch: str = "from scratch",
                            overhead_seconds: dict | None = None) -> list[str]:
    """The three claims of transfer learning, judged on ``metric`` from the results (plus disagreements).

    A gap counts as real when it exceeds two standard errors of the difference of the means over
    seeds. ``overhead_seconds`` maps a strategy to one-off costs per training image (e.g. feature
    extraction), added to its training time for the time claim (which no metric changes).
    """
    summary = summarise(rows, metrics=(metric, "seconds"))
    by = {(r["strategy"], r["per_class"]): r for r in summary}
    transfer = [s for s in dict.fromkeys(r["strategy"] for r in summary) if s != scratch]
    sizes = list(dict.fromkeys(r["per_class"] for r in summary))
    overhead = overhead_seconds or {}
    return ([accuracy_claim(by, sizes, s, scratch, metric) for s in transfer]
            + [data_claim(by, sizes, s, scratch, metric) for s in transfer]
            + [time_claim(by, sizes[-1], s, scratch, overhead.get(s, 0.0)) for s in transfer]
            + [disagreement(by, sizes, a, b, metric) for a, b in zip(transfer, transfer[1:])])


# ---------------------------------------------------------------- three situations side by side

def transfer_gains(rows: list[dict], strategy: str, scratch: str = "from scratch",
                   metric: str = "balanced_accuracy") -> dict:
    """``{size: (gain, standard error)}``: mean ``metric`` of ``strategy`` minus from-scratch's, per size."""
    summary = summarise(rows, metrics=(metric,))
    by = {(r["strategy"], r["per_class"]): r for r in summary}
    sizes = dict.fromkeys(r["per_class"] for r in summary)
    out = {}
    for size in sizes:
        a, b = by[(strategy, size)], by[(scratch, size)]
        se = math.sqrt(a[metric + "_std"] ** 2 / a["runs"] + b[metric + "_std"] ** 2 / b["runs"])
        out[size] = (a[metric + "_mean"] - b[metric + "_mean"], se)
    return out


def gain_follows_distance(gains: dict[str, float], distances: dict[str, float], noise: dict[str, float] | None = None) -> str:
    """One sentence: does the gain of transfer shrink as the data set lies further from the pretraining data?

    ``noise`` (optional) maps a data set to the standard error of its gain: gains within two of
    them are named, since an order among gains that are all noise is no evidence.
    """
    by_distance = sorted(distances, key=distances.get)
    by_gain = sorted(gains, key=gains.get, reverse=True)
    order = " < ".join(f"{name} ({distances[name]:.3g})" for name in by_distance)
    gains_text = ", ".join(f"{name} {100 * gains[name]:+.1f}" for name in by_distance)
    unclear = [name for name in by_distance if noise and abs(gains[name]) <= 2 * noise.get(name, 0.0)]
    caveat = f" The gains of {', '.join(unclear)} are within two standard errors of zero." if unclear else ""
    if by_distance == by_gain:
        return (f"From nearest to furthest: {order}. The gain of transfer shrinks in the same order "
                f"({gains_text} points): the further the data, the less the borrowed features give.{caveat}")
    return (f"From nearest to furthest: {order}. The gain of transfer does NOT shrink in that order here "
            f"({gains_text} points): distance alone does not predict it on this run.{caveat}")
