"""The course's one training loop, its loaders, learning-rate groups and schedules (lessons 02-04).

:func:`fit` trains any model on any loader of ``(inputs, labels)`` batches, with a progress bar
and a per-epoch :class:`History`. Everything a recipe varies is an argument: the optimizer (or
a learning rate), a schedule, label smoothing, augmentation of each batch, and the memory
layout. :func:`predict` turns a model and its inputs (a loader, a tensor, or several views of
the same examples) into class probabilities.
"""
from __future__ import annotations

import math
import time
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset
from tqdm.auto import tqdm

from .models import stage_names, stages
from .utils import channels_last_on_cpu, device as default_device

SCHEDULES = ("onecycle", "cosine")


class History(dict):
    """Records of a run: per epoch ``history["train_loss"]``, ``history["val_accuracy"]``, ...
    and per training step ``history["batch_loss"]`` (lists)."""

    def append(self, **values) -> None:
        for key, value in values.items():
            self.setdefault(key, []).append(value)

    def extend(self, other: "History") -> "History":
        """Add another run's records after these ones (e.g. the phases of gradual unfreezing)."""
        for key, values in other.items():
            self.setdefault(key, []).extend(values)
        return self

    @property
    def epochs(self) -> int:
        return len(self.get("train_loss", []))


def param_groups(model: nn.Module, lrs: dict[str, float], default: float | None = None) -> list[dict]:
    """Optimizer parameter groups with one learning rate per stage (discriminative learning rates).

    ``lrs`` maps stage names to learning rates; stages not named get ``default`` (or are left
    out when it is None). Frozen parameters are left out.
    """
    names = stage_names(model)
    unknown = set(lrs) - set(names)
    if unknown:
        raise ValueError(f"Unknown stage(s) {sorted(unknown)}; this model has {', '.join(names)}.")
    groups = []
    for name, part in stages(model).items():
        lr = lrs.get(name, default)
        params = [p for p in part.parameters() if p.requires_grad]
        if lr is not None and params:
            groups.append({"params": params, "lr": lr, "name": name})
    return groups


def make_schedule(optimizer: torch.optim.Optimizer, name: str, total_steps: int, warmup: float = 0.3):
    """A learning-rate schedule stepped once per batch, peaking at each group's learning rate.

    ``"onecycle"``: warm up for the first ``warmup`` share of the steps, then anneal (Smith's
    one-cycle policy). ``"cosine"``: start at the full rate and decay along a cosine.
    """
    total_steps = max(1, int(total_steps))
    if name == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=[g["lr"] for g in optimizer.param_groups],
                                                   total_steps=total_steps, pct_start=warmup)
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, None, or a scheduler; not {name!r}")


def epochs_for(n_train: int, batch_size: int, min_steps: int, max_epochs: int, min_epochs: int = 1) -> int:
    """Epochs that give at least ``min_steps`` updates: small sets get more epochs, never more than ``max_epochs``."""
    steps_per_epoch = math.ceil(n_train / batch_size)
    return int(min(max_epochs, max(min_epochs, math.ceil(min_steps / steps_per_epoch))))


def fit(
    model: nn.Module,
    train_loader: Iterable,
    epochs: int,
    optimizer: torch.optim.Optimizer | None = None,
    lr: float = 1e-3,
    scheduler=None,
    label_smoothing: float = 0.0,
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
    loss_fn: Callable | None = None,
    val_loader: Iterable | None = None,
    channels_last: bool = False,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> History:
    """Train ``model`` for ``epochs`` and return its :class:`History`.

    * ``optimizer``: default AdamW at ``lr`` on the trainable parameters; build one from
      :func:`param_groups` for discriminative learning rates.
    * ``scheduler``: ``"onecycle"``, ``"cosine"`` (see :func:`make_schedule`) or any scheduler
      object; stepped after every batch.
    * ``label_smoothing``: for the default cross-entropy loss (``loss_fn`` replaces it).
    * ``augment``: applied to every training batch of inputs, e.g. ``tlcourse.transforms.random_dihedral``.
    * ``channels_last``: send CPU batches in the channels-last layout (faster convolutions;
      only for models that do not ``.view`` their activations).
    """
    device = torch.device(device) if device is not None else default_device()
    model.to(device)
    if optimizer is None:
        trainable = [p for p in model.parameters() if p.requires_grad]
        if not trainable:
            raise ValueError("The model has no trainable parameters: unfreeze something first.")
        optimizer = torch.optim.AdamW(trainable, lr=lr)
    if isinstance(scheduler, str):
        scheduler = make_schedule(optimizer, scheduler, epochs * len(train_loader))
    loss_fn = loss_fn or nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    layout = channels_last_on_cpu if channels_last else (lambda x: x)
    history = History()
    with tqdm(total=epochs * len(train_loader), desc="Training", unit="batch", disable=not progress) as bar:
        for epoch in range(1, epochs + 1):
            start = time.perf_counter()
            model.train()
            total_loss, correct, seen = 0.0, 0, 0
            for inputs, labels in train_loader:
                if augment is not None:
                    inputs = augment(inputs)
                inputs, labels = layout(inputs.to(device)), labels.to(device)
                logits = model(inputs)
                loss = loss_fn(logits, labels)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if scheduler is not None:
                    scheduler.step()
                history.append(batch_loss=loss.item())
                total_loss += history["batch_loss"][-1] * len(labels)
                correct += (logits.argmax(dim=1) == labels).sum().item()
                seen += len(labels)
                bar.update(1)
                bar.set_postfix(loss=f"{total_loss / seen:.3f}")
            history.append(epoch=epoch, train_loss=total_loss / max(seen, 1), train_accuracy=correct / max(seen, 1))
            if val_loader is not None:
                val_loss, val_acc = evaluate_loss(model, val_loader, loss_fn, device, layout)
                history.append(val_loss=val_loss, val_accuracy=val_acc)
                bar.set_description(f"Training (val acc {val_acc:.3f})")
            history.append(seconds=time.perf_counter() - start)
    model.eval()
    return history


@torch.no_grad()
def evaluate_loss(model: nn.Module, loader: Iterable, loss_fn: Callable, device, layout=lambda x: x) -> tuple[float, float]:
    """Mean loss and accuracy of ``model`` over ``loader``, in eval mode and without gradients."""
    model.eval()
    total_loss, correct, seen = 0.0, 0, 0
    for inputs, labels in loader:
        inputs, labels = layout(inputs.to(device)), labels.to(device)
        logits = model(inputs)
        total_loss += loss_fn(logits, labels).item() * len(labels)
        correct += (logits.argmax(dim=1) == labels).sum().item()
        seen += len(labels)
    return total_loss / max(seen, 1), correct / max(seen, 1)


class _RandomView(Dataset):
    """Example ``i`` in one of its views, drawn afresh each time it is read."""

    def __init__(self, views: Sequence[torch.Tensor], labels: torch.Tensor) -> None:
        self.views, self.labels = views, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        view = int(torch.randint(len(self.views), ()).item())
        return self.views[view][i], self.labels[i]


def _as_float(x) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x, dtype=torch.float32)


def tensor_loader(x, y, batch_size: int = 64, shuffle: bool = False, seed: int | None = None) -> DataLoader:
    """A DataLoader over in-memory inputs (features or cached activations) and labels.

    ``x`` is one tensor, or a list of tensors that hold *views* of the same examples (the same
    cells under different turns): then every time an example is drawn, it comes in one of its
    views at random (augmentation at the price of a lookup). ``seed`` fixes the order; the views
    are drawn from torch's global generator, which ``tl.seed_everything`` fixes.
    """
    y = torch.as_tensor(np.asarray(y), dtype=torch.long)
    if isinstance(x, (list, tuple)):
        dataset = _RandomView([_as_float(v) for v in x], y)
    else:
        dataset = TensorDataset(_as_float(x), y)
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator)


@torch.inference_mode()
def predict(model: nn.Module, inputs, batch_size: int = 256, device: torch.device | str | None = None,
            channels_last: bool = False) -> np.ndarray:
    """Class probabilities of ``model`` for every example of ``inputs``, as a NumPy array.

    ``inputs`` is a loader (of ``(inputs, labels)`` batches or of inputs), a tensor or array,
    or a list of tensors holding views of the same examples: then the probabilities are
    averaged over the views (test-time augmentation).
    """
    if isinstance(inputs, (list, tuple)):
        return np.mean([predict(model, view, batch_size, device, channels_last) for view in inputs], axis=0)
    device = torch.device(device) if device is not None else default_device()
    model.eval().to(device)
    if isinstance(inputs, (torch.Tensor, np.ndarray)):
        x = _as_float(inputs)
        batches: Iterable = (x[i:i + batch_size] for i in range(0, len(x), batch_size))
    else:
        batches = (batch[0] if isinstance(batch, (list, tuple)) else batch for batch in inputs)
    layout = channels_last_on_cpu if channels_last else (lambda t: t)
    probs = [model(layout(batch.to(device))).softmax(dim=1).float().cpu() for batch in batches]
    return torch.cat(probs).numpy()
