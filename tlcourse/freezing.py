"""Freezing: which weights learn, and what BatchNorm layers do with their statistics (lessons 01 and 03).

Two separate switches, and the course keeps them separate:

* ``requires_grad`` decides whether a weight gets gradients (:func:`freeze`, :func:`unfreeze`,
  :func:`freeze_until`);
* the BatchNorm policy decides whether BatchNorm layers normalise with the statistics stored
  at pretraining (``"eval"``) or with those of each new batch, updating the stored ones as they
  go (``"train"``). :func:`set_batchnorm` is the one place that sets it.

``requires_grad=False`` alone does not stop BatchNorm's running statistics from moving in train
mode: that is lesson 01's trap, and why :func:`freeze` also sets the policy.
"""
from __future__ import annotations

from typing import Iterable

from torch import nn

from .models import check_stage, stages

_BN_TYPES = (nn.modules.batchnorm._BatchNorm,)
POLICIES = ("eval", "train")


def iter_batchnorm(module: nn.Module) -> Iterable[nn.Module]:
    """All BatchNorm layers inside ``module``."""
    return (m for m in module.modules() if isinstance(m, _BN_TYPES))


def _keep_stored_statistics(layer: nn.Module, inputs) -> None:
    """Forward pre-hook: a layer under the "eval" policy normalises with its stored statistics."""
    if getattr(layer, "_tl_keep_statistics", False) and layer.training:
        layer.train(False)


def set_batchnorm(module: nn.Module, policy: str) -> nn.Module:
    """Set the BatchNorm policy of every BatchNorm layer in ``module``; weights are left as they are.

    ``"eval"``: keep the stored statistics, whatever ``model.train()`` says later (a hook puts
    the layer back in eval mode before each forward pass). ``"train"``: let them adapt to the
    new data in train mode, PyTorch's default.
    """
    if policy not in POLICIES:
        raise ValueError(f"batchnorm policy must be 'eval' (keep the stored statistics) or 'train' "
                         f"(let them adapt), not {policy!r}")
    for layer in iter_batchnorm(module):
        layer._tl_keep_statistics = policy == "eval"
        if not getattr(layer, "_tl_hooked", False):
            layer.register_forward_pre_hook(_keep_stored_statistics)
            layer._tl_hooked = True
        if policy == "eval":
            layer.eval()
    return module


def freeze(module: nn.Module, batchnorm: str = "eval") -> nn.Module:
    """Stop ``module`` from learning: no gradients, and (by default) BatchNorm statistics fixed."""
    for param in module.parameters():
        param.requires_grad_(False)
    return set_batchnorm(module, batchnorm)


def unfreeze(module: nn.Module, batchnorm: str = "train") -> nn.Module:
    """Let ``module`` learn again; by default its BatchNorm statistics adapt too."""
    for param in module.parameters():
        param.requires_grad_(True)
    return set_batchnorm(module, batchnorm)


def freeze_until(model: nn.Module, stage: str, batchnorm: str = "eval") -> nn.Module:
    """Freeze every stage before ``stage``; ``stage`` and all later stages train.

    The frozen stages get the BatchNorm policy ``batchnorm``; in the trainable ones the
    statistics adapt (as after :func:`unfreeze`).
    """
    names = check_stage(model, stage)
    parts = stages(model)
    for name in names[names.index(stage):]:
        unfreeze(parts[name])
    for name in names[: names.index(stage)]:
        freeze(parts[name], batchnorm=batchnorm)
    return model
