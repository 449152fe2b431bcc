"""What the model looks at: occlusion maps and Grad-CAM on single images (lesson 07).

Set beside the rater's label, a map says whether a "defective" verdict rests on the crack or
on something else (a busbar, the cell's edge, the module type).

* :func:`occlusion_map` needs nothing but the model: hide one patch of the image at a time
  and measure how much the class's probability drops. Slow (one forward pass per patch) but
  easy to trust.
* :func:`grad_cam` uses the ``grad-cam`` package (``pip install "tlcourse[saliency]"``): one
  backward pass weighs a late stage's feature maps by their gradients (Selvaraju et al. 2017).
* :func:`show_saliency` lays the maps over the images.

Both take preprocessed images ``(3, H, W)`` (``tl.preprocess(size)(image)``) and return maps
``(H, W)`` at the image's resolution, larger where the evidence for ``target`` lies.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

from .models import stage_names, stages


@torch.no_grad()
def occlusion_map(model: nn.Module, image: torch.Tensor, target: int, patch: int = 16, stride: int = 8,
                  fill: float = 0.0, batch_size: int = 32) -> np.ndarray:
    """The drop in ``P(target)`` when each region of ``image`` is covered by a ``patch`` of ``fill``.

    ``fill=0`` is the mean pixel after normalisation (a grey square). A pixel's value is the
    mean drop over the patches that cover it; negative where hiding it makes ``target`` likelier.
    """
    model.eval()
    device = next(model.parameters()).device
    image = image.to(device)
    _, height, width = image.shape
    base = model(image[None]).softmax(dim=1)[0, target]
    corners = [(i, j) for i in range(0, height - patch + 1, stride) for j in range(0, width - patch + 1, stride)]
    drops = []
    for start in range(0, len(corners), batch_size):
        chunk = corners[start:start + batch_size]
        batch = image.repeat(len(chunk), 1, 1, 1)
        for k, (i, j) in enumerate(chunk):
            batch[k, :, i:i + patch, j:j + patch] = fill
        drops.append(base - model(batch).softmax(dim=1)[:, target])
    heat, covered = torch.zeros(height, width), torch.zeros(height, width)
    for (i, j), drop in zip(corners, torch.cat(drops).cpu()):
        heat[i:i + patch, j:j + patch] += drop
        covered[i:i + patch, j:j + patch] += 1
    return (heat / covered.clamp(min=1)).numpy()


def grad_cam(model: nn.Module, images: torch.Tensor, targets: Sequence[int], layer: str | None = None) -> np.ndarray:
    """Grad-CAM maps ``(N, H, W)`` in [0, 1] for a batch of preprocessed ``images`` and a class per image.

    ``layer``: the stage whose feature maps are weighed (``tl.stage_names(model)``); by default
    the last one before the classifier (``conv_head`` for EfficientNet), the usual choice.
    Works on frozen models too, and leaves the weights, their gradients and ``requires_grad`` as they were.
    """
    try:
        from pytorch_grad_cam import GradCAM
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    except ImportError as err:
        raise ImportError('Grad-CAM needs the grad-cam package: pip install "tlcourse[saliency]" '
                          "(or pip install grad-cam). tlcourse.saliency.occlusion_map needs nothing more.") from err
    names = stage_names(model)
    target = stages(model)[layer or names[names.index("classifier") - 1]]
    while isinstance(target, nn.Sequential) and len(target):  # tl.stages wraps modules that forward calls one by one:
        target = target[-1]  # hook the last of them, which gives the stage's output
    model.eval()
    images = images.to(next(model.parameters()).device).detach().requires_grad_(True)
    trainable = [p.requires_grad for p in model.parameters()]
    model.requires_grad_(False)  # gradients reach the feature maps (through the input), never the weights
    try:
        with GradCAM(model=model, target_layers=[target]) as cam:
            return cam(input_tensor=images, targets=[ClassifierOutputTarget(int(t)) for t in targets])
    finally:
        for parameter, flag in zip(model.parameters(), trainable):
            parameter.requires_grad_(flag)


def show_saliency(images, maps, titles: Sequence[str] | None = None, columns: int = 4, size: float = 2.6):
    """Each image in grey with its map laid over it in colour; returns the figure."""
    import matplotlib.pyplot as plt

    rows = -(-len(maps) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(size * columns, size * rows), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k >= len(maps):
            continue
        image = np.asarray(images[k], dtype=float)
        if image.ndim == 3 and image.shape[0] in (1, 3):  # a (C, H, W) tensor: show its mean channel
            image = image.mean(axis=0)
        ax.imshow(image if image.ndim == 2 else image.mean(axis=-1), cmap="gray")
        ax.imshow(np.asarray(maps[k]), cmap="jet", alpha=0.45, extent=(0, image.shape[1], image.shape[0], 0))
        if titles is not None:
            ax.set_title(titles[k], fontsize="small")
    fig.tight_layout()
    return fig
