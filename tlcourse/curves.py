"""The data-efficiency curve: three strategies, trained at shrinking data sizes over seeds (lesson 04).

Each *strategy* trains on the cells ``train_idx`` and returns class probabilities for the cells
``test_idx``. :func:`data_efficiency_curve` runs them over sizes and seeds on the same subsets;
:func:`summarise` gives mean ± std per strategy and size; :func:`data_efficiency_verdict` judges
the three claims of transfer learning from the results, one small function per claim.
Nothing here reads notebook state: every input is an argument.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

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


def fine_tuning_strategy(
    top: nn.Module, activations, features, labels, test_idx, train_idx, seed: int = 0,
    min_steps: int = 30, max_epochs: int = 10, batch_size: int = 32, C: float = DEFAULT_C, device=None, **settings,
) -> np.ndarray:
    """Fine-tuning: start the head from a linear probe, then ``tl.fine_tune_top`` on cached activations.

    Epochs are sized to the data with ``tl.epochs_for``; ``settings`` go to ``fine_tune_top``
    (learning rates, BatchNorm policy, ...). Returns test probabilities.
    """
    features, labels = np.asarray(features), np.asarray(labels)
    probe = fit_probe(features[train_idx], labels[train_idx], C=C)
    epochs = epochs_for(len(train_idx), batch_size, min_steps, max_epochs)
    model, _ = fine_tune_top(top, activations, labels, train_idx, epochs, head_init=probe, batch_size=batch_size,
                             seed=seed, device=device, progress=False, **settings)
    views = activations if isinstance(activations, (list, tuple)) else [activations]
    return predict(model, [torch.as_tensor(view)[test_idx] for view in views], device=device)


def from_scratch_strategy(
    images: torch.Tensor, labels, test_idx, train_idx, seed: int = 0, min_steps: int = 80,
    max_epochs: int = 20, min_epochs: int = 4, epochs: int | None = None, batch_size: int = 32,
    lr: float = 3e-3, width: int = 16, device=None,
) -> np.ndarray:
    """From scratch: ``tl.SmallCNN`` on small images in random poses, one-cycle AdamW.

    Epochs are sized to the data with ``tl.epochs_for`` unless ``epochs`` is given. Returns test probabilities.
    """
    seed_everything(seed)
    labels = np.asarray(labels)
    model = SmallCNN(num_classes=int(labels.max()) + 1, in_channels=images.shape[1], width=width)
    loader = tensor_loader(images[train_idx], labels[train_idx], batch_size, shuffle=True, seed=seed)
    epochs = epochs or epochs_for(len(train_idx), batch_size, min_steps, max_epochs, min_epochs)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    fit(model, loader, epochs, optimizer=optimizer, scheduler="onecycle", augment=random_dihedral,
        device=device, progress=False)
    return predict(model, images[test_idx], device=device)


# ---------------------------------------------------------------- the curve and its summary

def data_efficiency_curve(
    strategies: dict[str, Strategy], labels, train_idx, test_idx, sizes: Sequence[int | None],
    seeds: Sequence[int], groups=None,
) -> list[dict]:
    """Train every strategy at every size (images per class; ``None`` = the full split) and seed.

    All strategies see the same subset for a given size and seed, and are scored on the same
    test cells. Returns one row per run: strategy, per_class, n_train, seed, seconds and the
    metrics of ``tl.classification_metrics``.
    """
    labels = np.asarray(labels)
    rows = []
    runs = [(size, seed, name) for size in sizes for seed in seeds for name in strategies]
    for size, seed, name in tqdm(runs, desc="Data-efficiency runs", unit="run"):
        idx = np.asarray(train_idx) if size is None else per_class_subset(labels, size, seed=seed, indices=train_idx)
        with Timer() as timer:
            probs = strategies[name](train_idx=idx, seed=seed)
        metrics = classification_metrics(labels[test_idx], probs, groups=groups)
        metrics.pop("confusion_matrix")
        rows.append({"strategy": name, "per_class": size, "n_train": len(idx), "seed": seed,
                     "seconds": timer.seconds, **metrics})
    return rows


def summarise(rows: list[dict], metrics: Sequence[str] = ("accuracy", "seconds")) -> list[dict]:
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


def format_summary(summary: list[dict], metric: str = "accuracy") -> str:
    """A plain-text table: one line per strategy and size, mean ± std of ``metric`` (in %) and of the seconds."""
    lines = [f"{'strategy':<20}{'per class':>10}{'images':>8}{metric + ' (%)':>20}{'seconds':>16}"]
    for row in summary:
        score = f"{100 * row[metric + '_mean']:.1f} ± {100 * row[metric + '_std']:.1f}"
        seconds = f"{row['seconds_mean']:.1f} ± {row['seconds_std']:.1f}"
        lines.append(f"{row['strategy']:<20}{size_label(row['per_class']):>10}{row['n_train']:>8}{score:>20}{seconds:>16}")
    return "\n".join(lines)


def size_label(size: int | None) -> str:
    """``"full"`` for the whole split, else the number of images per class."""
    return "full" if size is None else str(size)


# ---------------------------------------------------------------- the verdict, one claim per function

def _where(size: int | None) -> str:
    return "the full split" if size is None else f"{size} per class"


def gap(by: dict, a: str, b: str, size: int | None) -> tuple[float, bool]:
    """Mean accuracy of ``a`` minus ``b`` at ``size``, and whether it exceeds two standard errors."""
    ra, rb = by[(a, size)], by[(b, size)]
    se = math.sqrt(ra["accuracy_std"] ** 2 / ra["runs"] + rb["accuracy_std"] ** 2 / rb["runs"])
    diff = ra["accuracy_mean"] - rb["accuracy_mean"]
    return diff, abs(diff) > 2 * se


def accuracy_claim(by: dict, sizes: list, strategy: str, scratch: str) -> str:
    """Better accuracy: at how many sizes ``strategy`` beats from-scratch beyond the noise."""
    gaps = {size: gap(by, strategy, scratch, size) for size in sizes}
    unclear = [_where(size) for size, (diff, real) in gaps.items() if diff <= 0 or not real]
    diffs = [100 * diff for diff, _ in gaps.values()]
    return (f"Better accuracy than from scratch: {strategy} is clearly better at {len(sizes) - len(unclear)} of "
            f"{len(sizes)} sizes (gap {min(diffs):+.1f} to {max(diffs):+.1f} points)"
            + (f"; not clearly at {', '.join(unclear)}." if unclear else "."))


def data_claim(by: dict, sizes: list, strategy: str, scratch: str) -> str:
    """Less data needed: the smallest size at which ``strategy`` matches from-scratch on the full split."""
    full = sizes[-1]
    target, n_full = by[(scratch, full)]["accuracy_mean"], by[(scratch, full)]["n_train"]
    enough = [size for size in sizes if by[(strategy, size)]["accuracy_mean"] >= target]
    if enough and enough[0] != full:
        n_needed = by[(strategy, enough[0])]["n_train"]
        return (f"Less data needed: YES for {strategy}: it matches from-scratch on {_where(full)} ({100 * target:.1f}%) "
                f"with {_where(enough[0])}, {n_needed} images instead of {n_full} ({n_full / n_needed:.0f}x less).")
    return (f"Less data needed: NOT shown for {strategy}: below the full split it never reaches from-scratch's "
            f"{100 * target:.1f}% on {_where(full)}" + (" (it does with the full split)." if enough else "."))


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


def disagreement(by: dict, sizes: list, a: str, b: str) -> str:
    """Where two transfer strategies differ beyond the noise."""
    gaps = {size: gap(by, b, a, size) for size in sizes}
    wins = [_where(s) for s, (diff, real) in gaps.items() if real and diff > 0]
    losses = [_where(s) for s, (diff, real) in gaps.items() if real and diff < 0]
    return (f"Where the data disagree: {b} beats {a} clearly at {', '.join(wins) or 'no size'}, "
            f"loses clearly at {', '.join(losses) or 'no size'}, and is within the noise elsewhere.")


def data_efficiency_verdict(rows: list[dict], scratch: str = "from scratch", overhead_seconds: dict | None = None) -> list[str]:
    """The three claims of transfer learning, judged from the results (one sentence each, plus disagreements).

    A gap counts as real when it exceeds two standard errors of the difference of the means over
    seeds. ``overhead_seconds`` maps a strategy to one-off costs per training image (e.g. feature
    extraction), added to its training time for the time claim.
    """
    summary = summarise(rows)
    by = {(r["strategy"], r["per_class"]): r for r in summary}
    transfer = [s for s in dict.fromkeys(r["strategy"] for r in summary) if s != scratch]
    sizes = list(dict.fromkeys(r["per_class"] for r in summary))
    overhead = overhead_seconds or {}
    return ([accuracy_claim(by, sizes, s, scratch) for s in transfer]
            + [data_claim(by, sizes, s, scratch) for s in transfer]
            + [time_claim(by, sizes[-1], s, scratch, overhead.get(s, 0.0)) for s in transfer]
            + [disagreement(by, sizes, a, b) for a, b in zip(transfer, transfer[1:])])
