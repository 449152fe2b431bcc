"""Small models shaped like the course's, for unit tests that must run in a fraction of a second."""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from tlcourse.models import StagedModel


def tiny_top() -> StagedModel:
    """A model shaped like the top of a split backbone: conv stages with BatchNorm, then a classifier."""
    torch.manual_seed(0)
    return StagedModel(OrderedDict(
        stage6=nn.Sequential(nn.Conv2d(4, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU()),
        conv_head=nn.Sequential(nn.Conv2d(8, 8, 1), nn.BatchNorm2d(8), nn.ReLU()),
        classifier=nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(8, 2)),
    ))
