"""The learning-rate range test on cached activations (lesson 07): measure the rate instead of guessing it.

Leslie Smith's test, as fastai's ``lr_find`` runs it: train a *copy* of the model for a few
dozen batches while the learning rate grows exponentially, and watch the loss. It falls slowly
at tiny rates, fast at good ones, then blows up. A tenth of the rate at the lowest loss is a
safe, fast choice. :func:`lr_range_test` takes the same inputs as ``tl.fine_tune_top``, and
sweeps its ``head_lr`` with ``body_lr = body_ratio * head_lr``, so its suggestion plugs in:
``tl.fine_tune_top(top, acts, labels, train_idx, epochs, head_lr=s, body_lr=s * body_ratio)``.
"""
from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from .freezing import set_batchnorm
from .models import stage_names
from .train import param_groups, tensor_loader
from .utils import device as default_device, seed_everything


def _endless(loader):
    """Batches from ``loader``, epoch after epoch (reshuffled each time)."""
    while True:
        yield from loader


def lr_range_test(top: nn.Module, activations, labels, train_idx, start_lr: float = 1e-6, end_lr: float = 1.0,
                  steps: int = 100, body_ratio: float = 0.1, batchnorm: str = "eval", batch_size: int = 32,
                  smoothing: float = 0.05, diverge: float = 4.0, seed: int = 0,
                  device: torch.device | str | None = None) -> dict:
    """Train a copy of ``top`` for up to ``steps`` batches at exponentially growing learning rates.

    Returns ``lrs`` and ``losses`` (the training loss, smoothed by an exponential moving average
    with weight ``smoothing``), stopped early once the loss exceeds ``diverge`` times its best,
    and ``suggested_lr``: a tenth of the rate at the lowest loss. ``top`` itself is left untouched.
    """
    seed_everything(seed)
    device = torch.device(device) if device is not None else default_device()
    model = copy.deepcopy(top).to(device)
    set_batchnorm(model, batchnorm)
    groups = param_groups(model, {stage_names(model)[-1]: 1.0}, default=body_ratio)  # each group's share of the rate
    optimizer = torch.optim.AdamW([{**g, "share": g["lr"]} for g in groups], lr=start_lr)
    views = list(activations) if isinstance(activations, (list, tuple)) else [activations]
    train_idx = np.asarray(train_idx)
    x = [torch.as_tensor(v)[train_idx] for v in views]
    batches = _endless(tensor_loader(x if len(x) > 1 else x[0], np.asarray(labels)[train_idx], batch_size,
                                     shuffle=True, seed=seed))
    growth = (end_lr / start_lr) ** (1 / max(steps - 1, 1))
    lrs, losses, smoothed = [], [], None
    for step in range(steps):
        lr = start_lr * growth**step
        for group in optimizer.param_groups:
            group["lr"] = lr * group["share"]
        inputs, targets = next(batches)
        loss = nn.functional.cross_entropy(model(inputs.to(device)), targets.to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        smoothed = loss.item() if smoothed is None else smoothing * loss.item() + (1 - smoothing) * smoothed
        lrs.append(lr)
        losses.append(smoothed)
        if not np.isfinite(smoothed) or smoothed > diverge * min(losses):
            break
    return {"lrs": lrs, "losses": losses, "suggested_lr": lrs[int(np.nanargmin(losses))] / 10}


def plot_lr_range(result: dict, ax=None):
    """The loss against the learning rate (log scale), with the suggested rate marked; returns the axes."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(5, 3.5))[1]
    ax.plot(result["lrs"], result["losses"])
    ax.axvline(result["suggested_lr"], color="black", linestyle="--",
               label=f"suggested {result['suggested_lr']:.1e}")
    ax.set(xscale="log", xlabel="learning rate (head)", ylabel="training loss (smoothed)",
           title="Learning-rate range test")
    ax.legend()
    return ax
