"""A plain training loop with a progress bar and a per-epoch history (lessons 02-04)."""
from __future__ import annotations

import time
from typing import Callable, Iterable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from tqdm.auto import tqdm

from .utils import device as default_device


class History(dict):
    """Per-epoch records: ``history["train_loss"]``, ``history["val_accuracy"]``, ... (lists)."""

    def append(self, **values) -> None:
        for key, value in values.items():
            self.setdefault(key, []).append(value)

    @property
    def epochs(self) -> int:
        return len(self.get("train_loss", []))


def _run_epoch(model, loader, loss_fn, device, optimizer=None, scheduler=None, bar=None) -> tuple[float, float]:
    """One pass over ``loader``: trains when an optimizer is given, else only measures."""
    training = optimizer is not None
    model.train(training)
    total_loss, correct, seen = 0.0, 0, 0
    with torch.set_grad_enabled(training):
        for inputs, labels in loader:
            inputs, labels = inputs.to(device), labels.to(device)
            logits = model(inputs)
            loss = loss_fn(logits, labels)
            if training:
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if scheduler is not None:
                    scheduler.step()
            total_loss += loss.item() * len(labels)
            correct += (logits.argmax(dim=1) == labels).sum().item()
            seen += len(labels)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{total_loss / seen:.3f}")
    return total_loss / max(seen, 1), correct / max(seen, 1)


def fit(
    model: nn.Module,
    train_loader: Iterable,
    epochs: int,
    optimizer: torch.optim.Optimizer | None = None,
    lr: float = 1e-3,
    loss_fn: Callable | None = None,
    val_loader: Iterable | None = None,
    scheduler=None,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> History:
    """Train ``model`` for ``epochs`` and return its :class:`History`.

    Without an ``optimizer`` it uses AdamW at ``lr`` on the trainable parameters; pass one
    built from :func:`tlcourse.param_groups` for discriminative learning rates. A
    ``scheduler`` is stepped after every batch (e.g. ``OneCycleLR``).
    """
    device = torch.device(device) if device is not None else default_device()
    model.to(device)
    if optimizer is None:
        trainable = [p for p in model.parameters() if p.requires_grad]
        if not trainable:
            raise ValueError("The model has no trainable parameters: unfreeze something first.")
        optimizer = torch.optim.AdamW(trainable, lr=lr)
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    history = History()
    steps = epochs * len(train_loader)
    with tqdm(total=steps, desc="Training", unit="batch", disable=not progress) as bar:
        for epoch in range(1, epochs + 1):
            start = time.perf_counter()
            train_loss, train_acc = _run_epoch(model, train_loader, loss_fn, device, optimizer, scheduler, bar)
            history.append(epoch=epoch, train_loss=train_loss, train_accuracy=train_acc)
            if val_loader is not None:
                val_loss, val_acc = _run_epoch(model, val_loader, loss_fn, device)
                history.append(val_loss=val_loss, val_accuracy=val_acc)
                bar.set_description(f"Training (val acc {val_acc:.3f})")
            history.append(seconds=time.perf_counter() - start)
    model.eval()
    return history


def tensor_loader(x, y, batch_size: int = 64, shuffle: bool = False, seed: int | None = None) -> DataLoader:
    """A DataLoader over in-memory tensors (features or cached activations) and labels."""
    x = torch.as_tensor(x, dtype=torch.float32)
    y = torch.as_tensor(np.asarray(y), dtype=torch.long)
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=shuffle, generator=generator)


@torch.inference_mode()
def predict(model: nn.Module, loader: Iterable, device: torch.device | str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities and true labels for every example in ``loader``."""
    device = torch.device(device) if device is not None else default_device()
    model.eval().to(device)
    probs, labels = [], []
    for inputs, targets in loader:
        probs.append(model(inputs.to(device)).softmax(dim=1).float().cpu())
        labels.append(torch.as_tensor(targets))
    return torch.cat(probs).numpy(), torch.cat(labels).numpy()
