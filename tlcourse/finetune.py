"""Fine-tuning the top of a backbone on cached activations (lesson 03, lesson 04, the benchmark).

Cut the backbone with ``tl.split_at``: the frozen ``bottom`` runs once over the data and its
activations are cached (``tl.extract_features(..., layer=cut, pool=False)``); the ``top`` is
trained on them, many times faster than on images. :func:`fine_tune_top` is that training,
with every choice lesson 03 discusses as an argument; the benchmark's recipe is the same
function with other settings (``benchmarks/elpv.py``).
"""
from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from .freezing import set_batchnorm
from .models import head, stage_names, stages
from .train import History, fit, make_schedule, param_groups, tensor_loader
from .utils import seed_everything


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

    ``top`` itself is left untouched. Returns the trained copy and its ``tl.History``
    (validation loss and accuracy per epoch when ``val_idx`` is given).
    """
    seed_everything(seed)
    model = copy.deepcopy(top)
    if head_init is not None:
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
    history = fit(model, loader, epochs, optimizer=optimizer, scheduler=scheduler, label_smoothing=label_smoothing,
                  val_loader=val_loader, channels_last=True, device=device, progress=progress)
    return model, history


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
