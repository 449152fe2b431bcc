"""How far apart two data sets are, and images from elsewhere to compare with (lesson 05).

Distances are measured between samples of embeddings (features of the frozen backbone):
:func:`frechet_distance` (the idea behind FID) and :func:`mmd`, side by side for several
named samples by :func:`distance_matrix`. :func:`random_crops` and :func:`render_words` make the
other samples: crops of natural photos, and words drawn as images.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch


def mmd(a, b, bandwidth: float) -> float:
    """Squared maximum mean discrepancy between two samples of embeddings (RBF kernel, unbiased).

    About 0 when both samples come from the same distribution; larger means further apart.
    """
    a, b = torch.as_tensor(np.asarray(a), dtype=torch.float64), torch.as_tensor(np.asarray(b), dtype=torch.float64)

    def kernel(x, y):
        return torch.exp(-torch.cdist(x, y) ** 2 / (2 * bandwidth ** 2))

    kaa, kbb, kab = kernel(a, a), kernel(b, b), kernel(a, b)
    n, m = len(a), len(b)
    same_a = (kaa.sum() - kaa.diagonal().sum()) / (n * (n - 1))
    same_b = (kbb.sum() - kbb.diagonal().sum()) / (m * (m - 1))
    return float(same_a + same_b - 2 * kab.mean())


def frechet_distance(a, b) -> float:
    """Fréchet distance between Gaussians fitted to two samples of embeddings (the idea behind FID).

    ``||mean_a - mean_b||^2 + trace(cov_a + cov_b - 2 (cov_a cov_b)^(1/2))``: 0 for identical
    distributions, growing with both a shift of the centre and a change of the spread.
    """
    from scipy import linalg

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = linalg.sqrtm(cov_a @ cov_b).real
    return float(((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root))


def distance_matrix(samples: dict, distance: str = "frechet", dims: int = 32) -> np.ndarray:
    """The distance between every pair of named samples of embeddings.

    The embeddings are first projected on their ``dims`` main principal components (fitted on
    all samples together), so that small samples still give stable covariances. ``distance`` is
    ``"frechet"`` (:func:`frechet_distance`) or ``"mmd"`` (:func:`mmd`, median-distance bandwidth).
    """
    from sklearn.decomposition import PCA

    if distance not in ("frechet", "mmd"):
        raise ValueError("distance must be 'frechet' or 'mmd'")
    arrays = [np.asarray(v, dtype=np.float64) for v in samples.values()]
    pooled = np.concatenate(arrays)
    pca = PCA(n_components=min(dims, pooled.shape[1], len(pooled)), random_state=0).fit(pooled)
    projected = [pca.transform(x) for x in arrays]
    if distance == "mmd":
        everything = torch.as_tensor(pca.transform(pooled))
        bandwidth = float(torch.cdist(everything, everything).median())
        measure = lambda x, y: mmd(x, y, bandwidth)  # noqa: E731
    else:
        measure = frechet_distance
    n = len(projected)
    return np.array([[measure(projected[i], projected[j]) if i != j else 0.0 for j in range(n)] for i in range(n)])


def random_crops(image, count: int, seed: int = 0, min_fraction: float = 0.5) -> list[np.ndarray]:
    """``count`` random square crops of a photo, each ``min_fraction`` to all of its shorter side."""
    image = np.asarray(image)
    rng = np.random.default_rng(seed)
    side = min(image.shape[:2])
    crops = []
    for _ in range(count):
        size = int(rng.uniform(min_fraction, 1.0) * side)
        top, left = rng.integers(0, image.shape[0] - size + 1), rng.integers(0, image.shape[1] - size + 1)
        crops.append(np.ascontiguousarray(image[top:top + size, left:left + size]))
    return crops


def render_words(words: Sequence[str], bold: bool = False, size: int = 160, renders: int = 1, seed: int = 0) -> list[np.ndarray]:
    """Each word drawn ``renders`` times as black text on white, at a random size and position."""
    from matplotlib import font_manager
    from PIL import Image, ImageDraw, ImageFont

    path = font_manager.findfont(font_manager.FontProperties(family="DejaVu Sans", weight="bold" if bold else "normal"))
    rng = np.random.default_rng(seed)
    out = []
    for word in words:
        for _ in range(renders):
            font = ImageFont.truetype(path, int(rng.integers(20, 30)))
            canvas = Image.new("L", (size, size), 255)
            draw = ImageDraw.Draw(canvas)
            width = draw.textlength(word, font=font)
            x = rng.uniform(2, max(3, size - width - 2))
            draw.text((x, rng.uniform(20, size - 50)), word, fill=0, font=font)
            out.append(np.asarray(canvas))
    return out
