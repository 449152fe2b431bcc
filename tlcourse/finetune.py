"""Fine-tuning the top of a backbone on cached activations (lesson 03, lesson 04, the benchmark).

Cut the backbone with ``tl.split_at``: the frozen ``bottom`` runs once over the data and its
activations are cached (``tl.extract_features(..., layer=cut, pool=False)``); the ``top`` is
trained on them, many times faster than on images. :func:`fine_tune_top` is that training,
with every choice lesson 03 discusses as an argument; the benchmark's recipe is the same
function with other settings (:data:`BENCHMARK_RECIPE`, used by ``benchmarks/elpv.py``). Two options, off by default, are
levers of the benchmark's third round: a head that pools with the maximum too, for defects that
fill a small part of the cell (``pooling``, :func:`replace_pooling`), and weights averaged over
the last epochs (``average_last``).
"""
from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from .freezing import set_batchnorm
from .models import head, stage_names, stages
from .train import History, evaluate_loss, fit, make_schedule, param_groups, tensor_loader
from .utils import channels_last_on_cpu, seed_everything


#: The course benchmark's recipe (``benchmarks/elpv.py``; each choice made on validation splits of the
#: training cells, ``benchmarks/RESULTS.md``): :func:`fine_tune_top` with ``settings`` for ``epochs``
#: epochs, on the cached maps after ``cut`` of the ``turns`` quarter turns of every cell at
#: ``map_size`` px, the head starting from random weights. Lesson 03 runs a CPU-sized version.
BENCHMARK_RECIPE = {
    "cut": "stage5", "epochs": 6, "turns": (0, 1, 2, 3), "map_size": 224,
    "settings": dict(head_lr=1e-2, body_lr=1e-3, batchnorm="train", schedule="onecycle", warmup=0.2,
                     label_smoothing=0.1, weight_decay=1e-2, batch_size=64),
}


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
    schedule: str = "cosine",
    warmup: float = 0.3,
    label_smoothing: float = 0.0,
    weight_decay: float = 1e-4,
    batch_size: int = 32,
    seed: int = 0,
    val_idx=None,
    device: torch.device | str | None = None,
    progress: bool = True,
    pooling: str = "avg",
    average_last: int = 0,
) -> tuple[nn.Module, History]:
    """Fine-tune a copy of ``top`` (the stages above a cut) on cached activations of the cut.

    * ``activations``: a tensor ``(N, ...)``, or a list of such tensors holding *views* of the
      same cells (e.g. four quarter turns): each step then shows each cell in a random view.
    * Learning rates: the head at ``head_lr``, every other trainable stage at ``body_lr``
      (discriminative learning rates; AdamW with ``weight_decay``), following ``schedule``
      (``"cosine"`` or ``"onecycle"`` with ``warmup``, see ``tl.make_schedule``).
    * ``batchnorm``: ``"eval"`` keeps the stored statistics, ``"train"`` lets them adapt (``tl.set_batchnorm``).
    * ``head_init``: start the head from a linear probe (``tl.fit_probe``) instead of random weights.
    * ``label_smoothing``: soften the targets (useful when raters disagree about the labels).
    * ``pooling``: ``"avg"`` keeps the top's global average pooling; ``"avgmax"`` and ``"gem"``
      replace it (:func:`replace_pooling`), so that a small defect is not averaged away.
    * ``average_last``: with ``k > 0``, return the average of the weights at the end of each of
      the last ``k`` epochs (stochastic weight averaging, ``torch.optim.swa_utils``); when the
      BatchNorm statistics adapt, they are then re-estimated for the averaged weights with one
      pass over the training cells. The schedule is the same; only what is returned changes.
      With ``val_idx``, ``history["averaged_val_accuracy"]`` scores the averaged weights.

    ``top`` itself is left untouched. Returns the trained copy and its ``tl.History``
    (validation loss and accuracy per epoch when ``val_idx`` is given).
    """
    if not 0 <= average_last <= max(epochs, 0):
        raise ValueError(f"average_last must be between 0 and epochs ({epochs}), not {average_last}")
    seed_everything(seed)
    model = copy.deepcopy(top)
    if head_init is not None and head_init.in_features == head(model).in_features:
        head(model).load_state_dict(head_init.state_dict())  # before replace_pooling widens the head
        head_init = None
    if pooling != "avg":
        replace_pooling(model, pooling)
    if head_init is not None:
        if head_init.in_features != head(model).in_features:
            raise ValueError(f"head_init takes {head_init.in_features} features, but the head with "
                             f"pooling={pooling!r} takes {head(model).in_features}")
        head(model).load_state_dict(head_init.state_dict())
    set_batchnorm(model, batchnorm)
    optimizer = torch.optim.AdamW(param_groups(model, {stage_names(model)[-1]: head_lr}, default=body_lr),
                                  weight_decay=weight_decay)
    views = list(activations) if isinstance(activations, (list, tuple)) else [activations]
    labels, train_idx = np.asarray(labels), np.asarray(train_idx)
    train_views = [torch.as_tensor(v)[train_idx] for v in views]
    loader = tensor_loader(train_views if len(views) > 1 else train_views[0], labels[train_idx], batch_size,
                           shuffle=True, seed=seed)
    val_loader = None
    if val_idx is not None:  # validated on the first view, the cells as they are
        val_loader = tensor_loader(torch.as_tensor(views[0])[np.asarray(val_idx)], labels[val_idx], 256)
    scheduler = make_schedule(optimizer, schedule, epochs * len(loader), warmup=warmup)
    settings = dict(optimizer=optimizer, scheduler=scheduler, label_smoothing=label_smoothing,
                    val_loader=val_loader, channels_last=True, device=device, progress=progress)
    if not average_last:
        return model, fit(model, loader, epochs, **settings)
    # The same training, stopped after each of the last epochs to add its weights to the average.
    history = fit(model, loader, epochs - average_last, **settings)
    averaged = torch.optim.swa_utils.AveragedModel(model)
    for _ in range(average_last):
        history.extend(fit(model, loader, 1, **settings))
        averaged.update_parameters(model)
    history["epoch"] = list(range(1, epochs + 1))
    with torch.no_grad():
        for mine, mean in zip(model.parameters(), averaged.module.parameters()):
            mine.copy_(mean)
    where = next(model.parameters()).device
    if batchnorm == "train":  # statistics for the averaged weights: one pass over the training cells and views
        torch.optim.swa_utils.update_bn(loader, model, device=where)
    if val_loader is not None:  # the per-epoch records are of the weights before averaging
        loss, accuracy = evaluate_loss(model, val_loader, nn.CrossEntropyLoss(label_smoothing=label_smoothing),
                                       where, channels_last_on_cpu)
        history.append(averaged_val_loss=loss, averaged_val_accuracy=accuracy)
    return model.eval(), history


class AvgMaxPool(nn.Module):
    """Global average and max pooling side by side, ``(N, C, H, W) -> (N, 2C)``.

    The average says how a cell looks overall; the maximum keeps a crack or a dark spot that
    fills a few positions of the map, which the average alone dilutes.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=1)


class GeMPool(nn.Module):
    """Generalised-mean pooling, ``(mean of x^p)^(1/p)`` per channel, ``(N, C, H, W) -> (N, C)``.

    ``p = 1`` is the average, a large ``p`` tends to the maximum; ``p`` starts at ``p`` and is
    learnt with the head (Radenovic et al., 2018). Inputs are clamped at ``eps`` (after a ReLU
    they are non-negative anyway).
    """

    def __init__(self, p: float = 3.0, eps: float = 1e-6) -> None:
        super().__init__()
        self.p, self.eps = nn.Parameter(torch.tensor(float(p))), eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clamp(min=self.eps).pow(self.p).mean(dim=(2, 3)).pow(1.0 / self.p)


POOLINGS = ("avg", "avgmax", "gem")


def replace_pooling(model: nn.Module, pooling: str) -> nn.Module:
    """Swap the global pooling in front of the head, in place; returns ``model``.

    ``"avgmax"`` (:class:`AvgMaxPool`) doubles the head's inputs: the new head starts with the
    old weights on the average half and zeros on the max half, so the model's outputs do not
    change until it trains. ``"gem"`` (:class:`GeMPool`) keeps the head. ``"avg"`` changes nothing.
    """
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, not {pooling!r}")
    if pooling == "avg":
        return model
    pools = [m for m in stages(model)["classifier"].modules()
             if isinstance(m, nn.AdaptiveAvgPool2d) or type(m).__name__ == "SelectAdaptivePool2d"]  # timm's
    if not pools:
        raise TypeError(f"No global average pooling found in front of the head of {type(model).__name__}.")
    _swap(model, pools[0], AvgMaxPool() if pooling == "avgmax" else GeMPool())
    if pooling == "avgmax":
        old = head(model)
        wide = nn.Linear(2 * old.in_features, old.out_features, bias=old.bias is not None)
        wide = wide.to(device=old.weight.device, dtype=old.weight.dtype)
        with torch.no_grad():
            wide.weight.copy_(torch.cat([old.weight, torch.zeros_like(old.weight)], dim=1))
            if old.bias is not None:
                wide.bias.copy_(old.bias)
        _swap(model, old, wide)
    return model


def _swap(model: nn.Module, old: nn.Module, new: nn.Module) -> None:
    """Put ``new`` where ``old`` sits in ``model`` (by identity, wherever it is nested)."""
    for parent in model.modules():
        for name, child in parent.named_children():
            if child is old:
                setattr(parent, name, new.to(next(model.parameters()).device))
                return
    raise ValueError(f"{type(old).__name__} is not part of the model")


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


def margin_over_seeds(scores, reference: float) -> dict:
    """How far runs with several seeds beat one reference score (lesson 03: fine-tuning against the probe).

    ``scores`` holds one score per seed (e.g. validation accuracy). Returns the mean ``margin`` over
    the reference, its standard error over the seeds (``se``: sample std / sqrt(seeds)) and a
    ``verdict``: "beats" or "loses to" when the margin exceeds two standard errors, else "is within
    the noise of". One seed gives no estimate of the noise, so it is always within it.
    """
    margins = np.asarray(scores, dtype=float) - reference
    se = float(margins.std(ddof=1) / np.sqrt(len(margins))) if len(margins) > 1 else float("inf")
    margin = float(margins.mean())
    verdict = "beats" if margin > 2 * se else "loses to" if margin < -2 * se else "is within the noise of"
    return {"margin": margin, "se": se, "seeds": len(margins), "verdict": verdict}
