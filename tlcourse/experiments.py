"""The experiments of lessons 03-05: probes, fine-tuning on cached activations, data-efficiency curves.

Each training helper here is a *strategy*: it trains on the cells ``train_idx`` and returns class
probabilities for the cells ``test_idx``. Lesson 04 runs three of them over training-set sizes and
seeds with :func:`data_efficiency_curve`, and :func:`data_efficiency_verdict` reads the verdict
off the results. Nothing here reads notebook state: every input is an argument.
"""
from __future__ import annotations

import copy
import math
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn
from torchvision.transforms import v2
from tqdm.auto import tqdm

from .data import per_class_subset
from .evaluate import classification_metrics
from .models import SmallCNN, freeze, head, stages
from .train import History, fit, predict, tensor_loader
from .utils import Timer, device as default_device, seed_everything

FULL = None  # the size that means "the whole training split" in a data-efficiency curve


# ---------------------------------------------------------------- linear probes (lessons 03-05)

def fit_linear_probe(features, labels, C: float = 0.05, max_iter: int = 2000) -> nn.Linear:
    """Logistic regression on (cached) features, returned as an ``nn.Linear`` that gives the same logits.

    The features are standardised inside scikit-learn, and the scaling is folded into the
    layer, so the result is an ordinary head: use it on raw features, or copy it into a model
    to start fine-tuning from the probe instead of from a random head (lessons 03-04).
    """
    from sklearn.linear_model import LogisticRegression

    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels)
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
    model = LogisticRegression(C=C, max_iter=max_iter).fit((x - mean) / scale, y)
    weight, bias = model.coef_ / scale, model.intercept_ - (model.coef_ / scale) @ mean
    if len(model.classes_) == 2:  # scikit-learn keeps one row for two classes: logits (0, z)
        weight, bias = np.vstack([np.zeros_like(weight), weight]), np.concatenate([[0.0], bias])
    layer = nn.Linear(x.shape[1], len(weight))
    with torch.no_grad():
        layer.weight.copy_(torch.as_tensor(weight))
        layer.bias.copy_(torch.as_tensor(bias))
    return layer


@torch.no_grad()
def probe_probabilities(probe: nn.Linear, features) -> np.ndarray:
    """Class probabilities of a linear head on features, as a NumPy array."""
    x = torch.as_tensor(np.asarray(features), dtype=torch.float32)
    return probe.cpu()(x).softmax(dim=1).numpy()


def probe_accuracy(features, labels, fit_idx, eval_idx, C: float = 0.05) -> float:
    """Accuracy on ``eval_idx`` of a linear probe trained on ``fit_idx``."""
    features, labels = np.asarray(features), np.asarray(labels)
    probe = fit_linear_probe(features[fit_idx], labels[fit_idx], C=C)
    return float((probe_probabilities(probe, features[eval_idx]).argmax(1) == labels[eval_idx]).mean())


def stage_probes(features: dict, labels, fit_idx, eval_idx, C: float = 0.05, concat: bool = True) -> list[dict]:
    """One linear probe per layer of ``features`` (a dict from ``tl.extract_features``), in order.

    Returns rows ``{"layer", "dims", "accuracy"}``; with ``concat`` a last row probes all
    layers side by side (lesson 05: which layers transfer).
    """
    layers = dict(features)
    if concat:
        layers["all stages"] = np.concatenate([np.asarray(f) for f in features.values()], axis=1)
    rows = []
    for name, values in tqdm(layers.items(), desc="Probing layers", unit="layer"):
        values = np.asarray(values)
        rows.append({"layer": name, "dims": values.shape[1], "accuracy": probe_accuracy(values, labels, fit_idx, eval_idx, C)})
    return rows


# ---------------------------------------------------------------- fine-tuning helpers (lesson 03)

def keep_batchnorm_statistics(module: nn.Module) -> nn.Module:
    """Let ``module``'s weights train but normalise with its stored BatchNorm statistics.

    This is the "BatchNorm frozen" policy: ``tl.freeze`` fixes the statistics (and the weights),
    then the weights that were trainable are given back their gradients.
    """
    trainable = [p for p in module.parameters() if p.requires_grad]
    freeze(module, batchnorm="eval")
    for param in trainable:
        param.requires_grad_(True)
    return module


class RecordingLoss(nn.Module):
    """Cross-entropy that remembers the loss of every training batch (for step-by-step loss curves)."""

    def __init__(self) -> None:
        super().__init__()
        self.losses: list[float] = []

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        loss = nn.functional.cross_entropy(logits, labels)
        if torch.is_grad_enabled():  # tl.fit measures validation batches without gradients
            self.losses.append(loss.item())
        return loss


@torch.no_grad()
def weight_change(before: nn.Module, after: nn.Module) -> dict[str, float]:
    """How far each stage's weights moved: ``||w_after - w_before|| / ||w_before||`` per stage.

    Both models must have the same stages (take ``before`` with ``copy.deepcopy`` before training).
    """
    change = {}
    for (name, old), new in zip(stages(before).items(), stages(after).values()):
        old_w = torch.cat([p.flatten() for p in old.parameters()]).cpu()
        new_w = torch.cat([p.flatten() for p in new.parameters()]).cpu()
        change[name] = float((new_w - old_w).norm() / old_w.norm())
    return change


@torch.no_grad()
def stage_costs(model: nn.Module, images: torch.Tensor, repeats: int = 3) -> list[dict]:
    """Parameters and forward time (best of ``repeats``) of each stage on one batch of ``images``.

    Shows where a backbone keeps its weights (late stages) and spends its compute (early,
    high-resolution stages): the reason to freeze and cache the bottom (lesson 03).
    """
    model.eval()
    rows, x = [], images
    for name, part in stages(model).items():
        seconds = []
        for _ in range(repeats):
            with Timer() as timer:
                out = part(x)
                if out.is_cuda:
                    torch.cuda.synchronize()  # GPU work is asynchronous: wait for it before stopping the clock
            seconds.append(timer.seconds)
        rows.append({"stage": name, "parameters": sum(p.numel() for p in part.parameters()), "seconds": min(seconds)})
        x = out
    return rows


def epochs_for(n_train: int, batch_size: int, min_steps: int, max_epochs: int, min_epochs: int = 1) -> int:
    """Epochs that give at least ``min_steps`` updates: small sets get more epochs, never more than ``max_epochs``."""
    steps_per_epoch = math.ceil(n_train / batch_size)
    return int(min(max_epochs, max(min_epochs, math.ceil(min_steps / steps_per_epoch))))


def fine_tune_top(
    top: nn.Module,
    activations,
    labels,
    train_idx,
    epochs: int,
    head_lr: float = 1e-3,
    body_lr: float = 1e-4,
    batchnorm: str = "eval",
    head_init: nn.Linear | None = None,
    batch_size: int = 32,
    seed: int = 0,
    val_idx=None,
    loss_fn: nn.Module | None = None,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> tuple[nn.Module, History]:
    """Fine-tune a copy of ``top`` (the stages above a cut) on cached activations of the cut.

    The head learns at ``head_lr`` and every other stage at ``body_lr`` (discriminative
    learning rates, AdamW with cosine decay). ``batchnorm="eval"`` keeps the stored BatchNorm
    statistics, ``"train"`` lets them adapt to the new data. ``head_init`` starts the head from
    a linear probe instead of from random weights. Lesson 03 writes these steps out one by one.
    """
    seed_everything(seed)
    model = copy.deepcopy(top)
    if batchnorm not in ("eval", "train"):
        raise ValueError("batchnorm must be 'eval' (keep the stored statistics) or 'train' (let them adapt)")
    if head_init is not None:
        head(model).load_state_dict(head_init.state_dict())
    if batchnorm == "eval":
        keep_batchnorm_statistics(model)
    names = list(stages(model))
    groups = [{"params": [p for p in stages(model)[n].parameters() if p.requires_grad],
               "lr": head_lr if n == names[-1] else body_lr} for n in names]
    optimizer = torch.optim.AdamW([g for g in groups if g["params"]], weight_decay=1e-4)
    activations, labels = torch.as_tensor(activations), np.asarray(labels)
    train_loader = tensor_loader(activations[train_idx], labels[train_idx], batch_size, shuffle=True, seed=seed)
    val_loader = None if val_idx is None else tensor_loader(activations[val_idx], labels[val_idx], 256)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, epochs * len(train_loader)))
    history = fit(model, train_loader, epochs, optimizer=optimizer, val_loader=val_loader, scheduler=scheduler,
                  loss_fn=loss_fn, device=device, progress=progress)
    return model, history


# ---------------------------------------------------------------- augmentation on tensors (lesson 04)

def random_dihedral(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Flip each square image left-right, up-down and across its diagonal at random (8 poses)."""
    n = len(images)
    flips = torch.rand(3, n, generator=generator) < 0.5
    out = images.clone()
    out[flips[0]] = out[flips[0]].flip(-1)
    out[flips[1]] = out[flips[1]].flip(-2)
    out[flips[2]] = out[flips[2]].transpose(-1, -2)
    return out


class DihedralLoader:
    """Wrap a loader of ``(images, labels)`` so that every batch is randomly flipped and transposed."""

    def __init__(self, loader, seed: int = 0) -> None:
        self.loader = loader
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for images, labels in self.loader:
            yield random_dihedral(images, self.generator), labels


def cells_as_tensor(images, size: int = 64) -> torch.Tensor:
    """ELPV's uint8 images as a ``(N, 1, size, size)`` float tensor scaled to [-1, 1] (for a CNN from scratch)."""
    x = torch.as_tensor(np.array(images, dtype=np.float32)).unsqueeze(1) / 255.0
    x = nn.functional.interpolate(x, size=(size, size), mode="area")
    return (x - 0.5) / 0.5


def preprocess_normalised(size: int, mean: Sequence[float], std: Sequence[float]) -> v2.Compose:
    """Like ``tl.preprocess(size)`` but normalised with other statistics (lesson 05: the dataset's own)."""
    return v2.Compose([v2.ToImage(), v2.Resize((size, size), antialias=True), v2.RGB(),
                       v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))])


# ---------------------------------------------------------------- the three strategies (lesson 04)

def linear_probe_strategy(features, labels, test_idx, train_idx, seed: int = 0, C: float = 0.05) -> np.ndarray:
    """Feature extraction: a linear probe on cached features; returns test probabilities."""
    features, labels = np.asarray(features), np.asarray(labels)
    probe = fit_linear_probe(features[train_idx], labels[train_idx], C=C)
    return probe_probabilities(probe, features[test_idx])


def fine_tuning_strategy(
    top: nn.Module, activations, features, labels, test_idx, train_idx, seed: int = 0,
    min_steps: int = 30, max_epochs: int = 10, batch_size: int = 32, head_lr: float = 1e-3,
    body_lr: float = 1e-4, batchnorm: str = "eval", C: float = 0.05, device=None,
) -> np.ndarray:
    """Fine-tuning: start the head from a linear probe, then fine-tune ``top`` on cached activations.

    Epochs are sized to the data with :func:`epochs_for`. Returns test probabilities.
    """
    features, labels = np.asarray(features), np.asarray(labels)
    probe = fit_linear_probe(features[train_idx], labels[train_idx], C=C)
    epochs = epochs_for(len(train_idx), batch_size, min_steps, max_epochs)
    model, _ = fine_tune_top(top, activations, labels, train_idx, epochs, head_lr=head_lr, body_lr=body_lr,
                             batchnorm=batchnorm, head_init=probe, batch_size=batch_size, seed=seed,
                             device=device, progress=False)
    probs, _ = predict(model, tensor_loader(torch.as_tensor(activations)[test_idx], labels[test_idx], 256), device=device)
    return probs


def from_scratch_strategy(
    images: torch.Tensor, labels, test_idx, train_idx, seed: int = 0, min_steps: int = 80,
    max_epochs: int = 20, min_epochs: int = 4, batch_size: int = 32, lr: float = 3e-3, width: int = 16,
    device=None,
) -> np.ndarray:
    """From scratch: ``tl.SmallCNN`` on small images with flips and transposes; returns test probabilities."""
    seed_everything(seed)
    labels = np.asarray(labels)
    model = SmallCNN(num_classes=int(labels.max()) + 1, in_channels=images.shape[1], width=width)
    loader = DihedralLoader(tensor_loader(images[train_idx], labels[train_idx], batch_size, shuffle=True, seed=seed), seed)
    epochs = epochs_for(len(train_idx), batch_size, min_steps, max_epochs, min_epochs)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=epochs * len(loader))
    fit(model, loader, epochs, optimizer=optimizer, scheduler=scheduler, device=device, progress=False)
    probs, _ = predict(model, tensor_loader(images[test_idx], labels[test_idx], 256), device=device)
    return probs


# ---------------------------------------------------------------- the data-efficiency curve (lesson 04)

Strategy = Callable[..., np.ndarray]  # strategy(train_idx=..., seed=...) -> test probabilities


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
    keys = list(dict.fromkeys((r["strategy"], r["per_class"]) for r in rows))
    summary = []
    for strategy, size in keys:
        runs = [r for r in rows if r["strategy"] == strategy and r["per_class"] == size]
        row = {"strategy": strategy, "per_class": size, "n_train": runs[0]["n_train"], "runs": len(runs)}
        for metric in metrics:
            values = np.array([r[metric] for r in runs], dtype=float)
            row[f"{metric}_mean"], row[f"{metric}_std"] = values.mean(), values.std(ddof=1) if len(values) > 1 else 0.0
        summary.append(row)
    return summary


def format_summary(summary: list[dict], metric: str = "accuracy") -> str:
    """A plain-text table: one line per strategy and size, mean ± std of ``metric`` (in %) and of the seconds."""
    lines = [f"{'strategy':<20}{'per class':>10}{'images':>8}{metric + ' (%)':>20}{'seconds':>16}"]
    for row in summary:
        size = "full" if row["per_class"] is None else str(row["per_class"])
        score = f"{100 * row[metric + '_mean']:.1f} ± {100 * row[metric + '_std']:.1f}"
        seconds = f"{row['seconds_mean']:.1f} ± {row['seconds_std']:.1f}"
        lines.append(f"{row['strategy']:<20}{size:>10}{row['n_train']:>8}{score:>20}{seconds:>16}")
    return "\n".join(lines)


def plot_data_efficiency(rows: list[dict], metric: str = "accuracy", baseline: float | None = None, ax=None):
    """Test ``metric`` against training-set size (log scale), mean ± std over seeds, one line per strategy."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4.5))
    summary = summarise(rows, metrics=(metric,))
    for strategy in dict.fromkeys(r["strategy"] for r in summary):
        part = [r for r in summary if r["strategy"] == strategy]
        x = [r["n_train"] for r in part]
        mean = np.array([r[f"{metric}_mean"] for r in part])
        std = np.array([r[f"{metric}_std"] for r in part])
        ax.errorbar(x, 100 * mean, yerr=100 * std, marker="o", capsize=4, label=strategy)
        ax.fill_between(x, 100 * (mean - std), 100 * (mean + std), alpha=0.15)
    if baseline is not None:
        ax.axhline(100 * baseline, color="grey", linestyle=":", label=f"always 'functional' ({100 * baseline:.1f}%)")
    sizes = sorted({(r["n_train"], r["per_class"]) for r in summary})
    ax.set_xscale("log")
    ax.set_xticks([n for n, _ in sizes], [f"{n}\n({'full' if k is None else f'{k}/class'})" for n, k in sizes])
    ax.minorticks_off()
    ax.set_xlabel("training images")
    ax.set_ylabel(f"test {'ROC AUC' if metric == 'roc_auc' else metric.replace('_', ' ')} (%)")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.figure.tight_layout()
    return ax


def data_efficiency_verdict(rows: list[dict], scratch: str = "from scratch", overhead_seconds: dict | None = None) -> list[str]:
    """The three claims of transfer learning, judged from the results (one sentence each, plus disagreements).

    A gap counts as real when it exceeds two standard errors of the difference of the means over seeds.
    ``overhead_seconds`` maps a strategy to one-off costs per training image (e.g. feature
    extraction) that are added to its training time for the time claim.
    """
    summary = summarise(rows)
    by = {(r["strategy"], r["per_class"]): r for r in summary}
    transfer = [s for s in dict.fromkeys(r["strategy"] for r in summary) if s != scratch]
    sizes = list(dict.fromkeys(r["per_class"] for r in summary))
    full = sizes[-1]

    def gap(a, b, size):  # mean difference of a minus b, and whether it is beyond the noise
        ra, rb = by[(a, size)], by[(b, size)]
        se = math.sqrt(ra["accuracy_std"] ** 2 / ra["runs"] + rb["accuracy_std"] ** 2 / rb["runs"])
        diff = ra["accuracy_mean"] - rb["accuracy_mean"]
        return diff, abs(diff) > 2 * se

    def label(size):
        return "the full split" if size is None else f"{size} per class"

    verdict = []
    for strategy in transfer:
        gaps = {s: gap(strategy, scratch, s) for s in sizes}
        unclear = [label(s) for s, (diff, real) in gaps.items() if diff <= 0 or not real]
        diffs = [100 * diff for diff, _ in gaps.values()]
        verdict.append(f"Better accuracy than from scratch: {strategy} is clearly better at "
                       f"{len(sizes) - len(unclear)} of {len(sizes)} sizes (gap {min(diffs):+.1f} to "
                       f"{max(diffs):+.1f} points)" + (f"; not clearly at {', '.join(unclear)}." if unclear else "."))
    target = by[(scratch, full)]["accuracy_mean"]
    for strategy in transfer:
        enough = [s for s in sizes if by[(strategy, s)]["accuracy_mean"] >= target]
        n_full = by[(scratch, full)]["n_train"]
        if enough and enough[0] != full:
            n_needed = by[(strategy, enough[0])]["n_train"]
            verdict.append(f"Less data needed: YES for {strategy}: it matches from-scratch on {label(full)} "
                           f"({100 * target:.1f}%) with {label(enough[0])}, {n_needed} images instead of "
                           f"{n_full} ({n_full / n_needed:.0f}x less).")
        else:
            verdict.append(f"Less data needed: NOT shown for {strategy}: below the full split it never reaches "
                           f"from-scratch's {100 * target:.1f}% on {label(full)}"
                           + (" (it does with the full split)." if enough else "."))
    overhead_seconds = overhead_seconds or {}
    scratch_time = by[(scratch, full)]["seconds_mean"]
    for strategy in transfer:
        run = by[(strategy, full)]["seconds_mean"]
        total = run + overhead_seconds.get(strategy, 0.0) * by[(strategy, full)]["n_train"]
        ratio = lambda t: f"{scratch_time / t:.1f}x faster" if t < scratch_time else f"{t / scratch_time:.1f}x SLOWER"  # noqa: E731
        verdict.append(f"Less training time: on {label(full)}, {strategy} trains in {run:.1f} s against "
                       f"{scratch_time:.1f} s from scratch ({ratio(run)}); counting the one-off extraction of the "
                       f"training images, {total:.1f} s ({ratio(total)}).")
    for a, b in zip(transfer, transfer[1:]):
        wins = [label(s) for s in sizes if gap(b, a, s)[0] > 0 and gap(b, a, s)[1]]
        losses = [label(s) for s in sizes if gap(b, a, s)[0] < 0 and gap(b, a, s)[1]]
        verdict.append(f"Where the data disagree: {b} beats {a} clearly at {', '.join(wins) or 'no size'}, "
                       f"loses clearly at {', '.join(losses) or 'no size'}, and is within the noise elsewhere.")
    return verdict


# ---------------------------------------------------------------- distances between distributions (lesson 05)

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
    """The distance between every pair of named samples of embeddings (lesson 05).

    The embeddings are first projected on their ``dims`` main principal components (fitted on
    all samples together), so that small samples still give stable covariances. ``distance`` is
    ``"frechet"`` (:func:`frechet_distance`) or ``"mmd"`` (:func:`mmd`, median-distance bandwidth).
    """
    from sklearn.decomposition import PCA

    arrays = [np.asarray(v, dtype=np.float64) for v in samples.values()]
    pooled = np.concatenate(arrays)
    pca = PCA(n_components=min(dims, pooled.shape[1], len(pooled)), random_state=0).fit(pooled)
    projected = [pca.transform(x) for x in arrays]
    if distance == "mmd":
        everything = torch.as_tensor(pca.transform(pooled))
        bandwidth = float(torch.cdist(everything, everything).median())
        measure = lambda x, y: mmd(x, y, bandwidth)  # noqa: E731
    elif distance == "frechet":
        measure = frechet_distance
    else:
        raise ValueError("distance must be 'frechet' or 'mmd'")
    n = len(projected)
    return np.array([[measure(projected[i], projected[j]) if i != j else 0.0 for j in range(n)] for i in range(n)])


# ---------------------------------------------------------------- images from elsewhere (lesson 05)

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


@torch.no_grad()
def embed_images(model: nn.Module, images, size: int = 160, batch_size: int = 64, device=None) -> torch.Tensor:
    """Pooled final features of a list of images (arrays, grey or RGB) that are not a cached dataset."""
    from .features import forward_stages
    from .models import preprocess

    device = torch.device(device) if device is not None else default_device()
    transform = preprocess(size)
    model.eval().to(device)
    chunks = []
    for start in range(0, len(images), batch_size):
        batch = torch.stack([transform(np.ascontiguousarray(im)) for im in images[start:start + batch_size]])
        chunks.append(forward_stages(model, batch.to(device), [list(stages(model))[-2]], pool=True)
                      [list(stages(model))[-2]].float().cpu())
    return torch.cat(chunks)


def render_words(words: Sequence[str], bold: bool = False, size: int = 160, renders: int = 1, seed: int = 0) -> list[np.ndarray]:
    """Each word drawn ``renders`` times as black text on white, at a random size and position (lesson 05)."""
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


def grouped_cv_accuracy(features, labels, groups, folds: int = 4, C: float = 0.05) -> tuple[float, float]:
    """Cross-validated accuracy of a linear probe, never testing on a group (e.g. a word) it trained on.

    Returns the accuracy and its standard error (binomial, over all held-out predictions).
    """
    from sklearn.model_selection import StratifiedGroupKFold

    x, y = np.asarray(features), np.asarray(labels)
    correct = np.zeros(len(y), dtype=bool)
    # Stratified: unbalanced folds would push a chance-level probe *below* chance.
    for fit_idx, held_out in StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=0).split(x, y, groups):
        probe = fit_linear_probe(x[fit_idx], y[fit_idx], C=C)
        correct[held_out] = probe_probabilities(probe, x[held_out]).argmax(1) == y[held_out]
    accuracy = correct.mean()
    return float(accuracy), float(np.sqrt(accuracy * (1 - accuracy) / len(y)))
