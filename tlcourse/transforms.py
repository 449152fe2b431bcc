"""Input pipelines and the symmetries of a solar cell: resize, scale, flip and turn (lessons 01-05).

A solar cell is still the same solar cell when it is flipped or turned by a quarter turn (the
eight poses of a square, its *dihedral* group), so these are the augmentations of the course:

* :func:`preprocess` builds the backbone's input pipeline for one image, optionally with a
  fixed number of quarter turns (a *view* to cache) or random poses (augmentation);
* :func:`random_dihedral` puts every image of a batch tensor in a random pose (for training
  on tensors already in memory, e.g. with ``tl.fit(..., augment=random_dihedral)``).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torchvision.transforms import v2

#: The bundled weights were trained on inputs scaled to [-1, 1].
MEAN = (0.5, 0.5, 0.5)
STD = (0.5, 0.5, 0.5)


def preprocess(size: int = 224, augment: bool = False, turns: int = 0, mirror: bool = False,
               mean: Sequence[float] = MEAN, std: Sequence[float] = STD) -> v2.Compose:
    """The backbone's input pipeline: resize to ``size``, grey to 3 channels, scale, normalise.

    * ``augment=True`` puts each image in a random pose (flips and quarter turns), every time
      it is read: augmentation for training on images (lesson 03).
    * ``turns=k`` turns every image by ``k`` quarter turns, always the same: one *view* of the
      data whose features can be cached (the benchmark's recipe caches four). ``mirror=True``
      flips it left to right first: with the four turns, the eight poses of a square.
    * ``mean`` and ``std`` default to the statistics the weights were trained with; lesson 05
      tries the data set's own.

    The pipeline's ``repr`` names every step, so each variant gets its own feature-cache entry.
    """
    steps: list[nn.Module] = [
        v2.ToImage(),
        v2.Resize((size, size), antialias=True),
        v2.RGB(),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(mean, std),
    ]
    if mirror:
        steps.append(Mirror())
    if turns % 4:
        steps.append(QuarterTurn(turns))
    if augment:
        steps.append(RandomPose())
    return v2.Compose(steps)


class QuarterTurn(nn.Module):
    """Turn an image (or a batch) by ``turns`` quarter turns, counter-clockwise; always the same."""

    def __init__(self, turns: int) -> None:
        super().__init__()
        self.turns = int(turns) % 4

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return torch.rot90(image, self.turns, dims=(-2, -1)) if self.turns else image

    def __repr__(self) -> str:
        return f"QuarterTurn(turns={self.turns})"


class Mirror(nn.Module):
    """Flip an image (or a batch) left to right; always the same (a fixed view, unlike augmentation)."""

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return image.flip(-1)

    def __repr__(self) -> str:
        return "Mirror()"


def random_dihedral(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Each square image of a batch ``(N, C, H, W)`` in one of its 8 poses, drawn at random.

    A left-right flip, an up-down flip and a transpose, each with probability 1/2, reach all
    eight poses (the four quarter turns, with and without a mirror). A single image ``(C, H, W)``
    is treated as a batch of one.
    """
    if images.ndim == 3:
        return random_dihedral(images.unsqueeze(0), generator)[0]
    flips = torch.rand(3, len(images), generator=generator) < 0.5
    out = images.clone()
    out[flips[0]] = out[flips[0]].flip(-1)
    out[flips[1]] = out[flips[1]].flip(-2)
    out[flips[2]] = out[flips[2]].transpose(-1, -2)
    return out


class RandomPose(nn.Module):
    """:func:`random_dihedral` as a step of an image pipeline (``preprocess(augment=True)``)."""

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return random_dihedral(image)
