"""Plots people would rather look at than read: curves, confusion matrices, image grids."""
from __future__ import annotations

from typing import Sequence

import numpy as np


def _plt():
    import matplotlib.pyplot as plt  # imported on first use: nothing happens at package import

    return plt


def plot_history(history, metrics: Sequence[str] = ("loss", "accuracy"), title: str | None = None):
    """Learning curves: training (and validation, when recorded) loss and accuracy per epoch."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.5), squeeze=False)
    epochs = history.get("epoch") or list(range(1, len(history[f"train_{metrics[0]}"]) + 1))
    for ax, metric in zip(axes[0], metrics):
        for split, style in (("train", "-o"), ("val", "-s")):
            values = history.get(f"{split}_{metric}")
            if values:
                ax.plot(epochs[: len(values)], values, style, label=split, markersize=4)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_confusion_matrix(matrix, class_names: Sequence[str], title: str = "Confusion matrix", ax=None):
    """A confusion matrix with counts in each cell (rows: true class, columns: predicted)."""
    plt = _plt()
    matrix = np.asarray(matrix)
    if ax is None:
        _, ax = plt.subplots(figsize=(1.2 * len(class_names) + 2, 1.2 * len(class_names) + 1.5))
    ax.imshow(matrix, cmap="Blues")
    ticks = np.arange(len(class_names))
    ax.set_xticks(ticks, class_names, rotation=30, ha="right")
    ax.set_yticks(ticks, class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            colour = "white" if matrix[i, j] > matrix.max() / 2 else "black"
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center", color=colour)
    ax.figure.tight_layout()
    return ax


def show_images(images, titles: Sequence[str] | None = None, columns: int = 6, size: float = 2.0, colours=None):
    """A grid of images (arrays, PIL images or CHW tensors) with optional titles.

    ``colours`` can give each title a colour, e.g. green for right and red for wrong.
    """
    plt = _plt()
    images = list(images)
    rows = max(1, int(np.ceil(len(images) / columns)))
    fig, axes = plt.subplots(rows, columns, figsize=(size * columns, size * rows + 0.3), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, (ax, image) in enumerate(zip(axes.flat, images)):
        ax.imshow(_as_displayable(image), cmap="gray")
        if titles is not None:
            ax.set_title(titles[i], fontsize=9, color="black" if colours is None else colours[i])
    fig.tight_layout()
    return fig


def _as_displayable(image) -> np.ndarray:
    """HWC or HW array in [0, 1] or uint8, from a PIL image, array or normalised CHW tensor."""
    array = np.asarray(image.detach().cpu() if hasattr(image, "detach") else image)
    if array.ndim == 3 and array.shape[0] in (1, 3) and array.shape[-1] not in (1, 3):
        array = array.transpose(1, 2, 0)
    if array.dtype != np.uint8:
        low, high = float(array.min()), float(array.max())
        array = (array - low) / (high - low + 1e-8)
    return array.squeeze()


def plot_stage_parameters(rows: Sequence[dict], title: str = "Parameters per stage", ax=None):
    """Bar chart of ``tl.parameters_per_stage`` rows: trainable part in colour, frozen part in grey (lesson 01)."""
    plt = _plt()
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3.2))
    names = [row["stage"] for row in rows]
    total = np.array([row["parameters"] for row in rows], dtype=float)
    trainable = np.array([row["trainable"] for row in rows], dtype=float)
    ax.bar(names, trainable, color="tab:blue", label="trainable")
    ax.bar(names, total - trainable, bottom=trainable, color="lightgrey", label="frozen")
    for i, value in enumerate(total):
        ax.text(i, value, f"{value / 1e6:.2f}M" if value >= 1e5 else f"{int(value):,}", ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("parameters")
    ax.set_title(title)
    ax.tick_params(axis="x", rotation=30)
    ax.legend()
    ax.figure.tight_layout()
    return ax


def show_predictions(images, predictions: Sequence[Sequence[tuple[str, float]]], titles: Sequence[str] | None = None, size: float = 2.6):
    """Each image above a bar chart of its top-k predictions ``[(name, probability), ...]`` (lesson 01)."""
    plt = _plt()
    images = list(images)
    fig, axes = plt.subplots(2, len(images), figsize=(size * len(images), 2 * size), squeeze=False,
                             gridspec_kw={"height_ratios": [1.2, 1]})
    for i, (image, top) in enumerate(zip(images, predictions)):
        axes[0, i].imshow(_as_displayable(image), cmap="gray")
        axes[0, i].axis("off")
        if titles is not None:
            axes[0, i].set_title(titles[i], fontsize=10)
        names = [name[:18] for name, _ in top][::-1]
        probs = [100 * p for _, p in top][::-1]
        axes[1, i].barh(names, probs, color="tab:blue")
        axes[1, i].set_xlim(0, 100)
        axes[1, i].set_xlabel("probability (%)", fontsize=8)
        axes[1, i].tick_params(labelsize=8)
    fig.tight_layout()
    return fig


def show_feature_maps(activations, channels: int = 6, size: float = 1.5):
    """One row per layer: the ``channels`` most active feature maps of one image (lesson 01).

    ``activations`` maps layer names to a ``(C, H, W)`` or ``(1, C, H, W)`` tensor or array.
    Channels are ranked by how much they vary across the image (a flat map shows nothing);
    each map is scaled on its own.
    """
    plt = _plt()
    fig, axes = plt.subplots(len(activations), channels, figsize=(size * channels, size * len(activations)), squeeze=False)
    for row, (name, maps) in enumerate(activations.items()):
        maps = np.asarray(maps.detach().cpu() if hasattr(maps, "detach") else maps, dtype=float)
        maps = maps[0] if maps.ndim == 4 else maps
        order = np.argsort(-maps.std(axis=(1, 2)), kind="stable")[:channels]
        for col, ax in enumerate(axes[row]):
            ax.set_xticks([])
            ax.set_yticks([])
            if col < len(order):
                ax.imshow(maps[order[col]], cmap="viridis")
        axes[row, 0].set_ylabel(f"{name}\n{maps.shape[1]}x{maps.shape[2]}", fontsize=9)
    fig.tight_layout()
    return fig


def plot_embeddings(points, labels, class_names: Sequence[str] | None = None, title: str | None = None, ax=None):
    """A 2-D scatter of embeddings (from PCA or t-SNE), one colour per label (lesson 02)."""
    plt = _plt()
    points, labels = np.asarray(points), np.asarray(labels)
    if points.ndim != 2 or points.shape[1] != 2 or len(points) != len(labels):
        raise ValueError(f"points must be (n, 2) with one label each; got {points.shape} and {len(labels)} labels.")
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 4.5))
    for value in np.unique(labels):
        mask = labels == value
        name = class_names[value] if class_names is not None else str(value)
        ax.scatter(points[mask, 0], points[mask, 1], s=8, alpha=0.6, label=f"{name} ({mask.sum()})")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title)
    ax.legend(markerscale=2, fontsize=8)
    ax.figure.tight_layout()
    return ax


def plot_data_efficiency(rows: list[dict], metric: str = "accuracy", baseline: float | None = None, ax=None,
                         baseline_label: str = "always 'functional'"):
    """Test ``metric`` against training-set size (log scale), mean ± std over seeds, one line per strategy.

    ``rows`` come from ``tl.curves.data_efficiency_curve`` (lesson 04); ``baseline`` draws a dotted
    reference line (e.g. 0.5 for a balanced accuracy: what any constant answer scores).
    """
    from .curves import summarise

    if ax is None:
        _, ax = _plt().subplots(figsize=(7, 4.5))
    summary = summarise(rows, metrics=(metric,))
    for strategy in dict.fromkeys(r["strategy"] for r in summary):
        part = [r for r in summary if r["strategy"] == strategy]
        x = [r["n_train"] for r in part]
        mean = np.array([r[f"{metric}_mean"] for r in part])
        std = np.array([r[f"{metric}_std"] for r in part])
        ax.errorbar(x, 100 * mean, yerr=100 * std, marker="o", capsize=4, label=strategy)
        ax.fill_between(x, 100 * (mean - std), 100 * (mean + std), alpha=0.15)
    if baseline is not None:
        ax.axhline(100 * baseline, color="grey", linestyle=":", label=f"{baseline_label} ({100 * baseline:.1f}%)")
    sizes = sorted({(r["n_train"], r["per_class"]) for r in summary})
    ax.set_xscale("log")
    ax.set_xticks([n for n, _ in sizes], [f"{n}\n({'full' if k is None else f'{k}/class'})" for n, k in sizes])
    ax.minorticks_off()
    ax.set_xlabel("training images")
    names = {"roc_auc": "ROC AUC", "called_positive": "share called class 1", "accuracy": "accuracy at the data's prior"}
    ax.set_ylabel(f"test {names.get(metric, metric.replace('_', ' '))} (%)")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.figure.tight_layout()
    return ax
