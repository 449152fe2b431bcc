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
            ax.set_title(titles[i], fontsize=9, color=None if colours is None else colours[i])
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
