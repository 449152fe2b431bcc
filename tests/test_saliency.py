"""What the model looks at (lesson 07): occlusion and Grad-CAM point at the region a model's decision
rests on, and Grad-CAM says how to install it when its package is missing."""
from __future__ import annotations

import sys
from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

import tlcourse as tl
from tlcourse import saliency
from tlcourse.models import StagedModel

SIZE = 32


class _KeepCorner(nn.Module):
    """Zero everything but the top-right quarter: the only region the model below can see."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mask = torch.zeros_like(x)
        mask[..., : SIZE // 2, SIZE // 2:] = 1  # not symmetric: swapped rows and columns would show
        return x * mask


def _corner_model() -> StagedModel:
    """Says class 1 when the top-right quarter is bright, whatever the rest of the image holds."""
    conv = nn.Conv2d(3, 1, 1)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.bias.zero_()
    linear = nn.Linear(1, 2)
    with torch.no_grad():
        linear.weight.copy_(torch.tensor([[-2.0], [2.0]]))  # far from saturating
        linear.bias.zero_()
    return StagedModel(OrderedDict(stage1=conv, stage2=_KeepCorner(),
                                   classifier=nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), linear)))


def _bright_image() -> torch.Tensor:
    return torch.full((3, SIZE, SIZE), 0.5) + 0.1 * torch.rand(3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))


def _share_in_corner(heat: np.ndarray) -> float:
    positive = np.clip(heat, 0, None)
    return float(positive[: SIZE // 2, SIZE // 2:].sum() / positive.sum())


def test_the_occlusion_map_lights_up_only_where_the_model_looks():
    heat = saliency.occlusion_map(_corner_model(), _bright_image(), target=1, patch=8, stride=4)
    assert heat.shape == (SIZE, SIZE)
    assert heat[:8, -8:].mean() > 0.01  # hiding part of the corner lowers P(class 1)
    assert np.abs(heat[SIZE // 2 + 4:, :]).max() < 1e-6 and np.abs(heat[:, : SIZE // 2 - 4]).max() < 1e-6


def test_grad_cam_points_at_the_region_the_decision_rests_on():
    pytest.importorskip("pytorch_grad_cam", reason='the optional grad-cam package: pip install "tlcourse[saliency]"')
    maps = saliency.grad_cam(_corner_model(), _bright_image()[None], targets=[1])
    assert maps.shape == (1, SIZE, SIZE) and maps.min() >= 0 and maps.max() <= 1 + 1e-6
    assert _share_in_corner(maps[0]) > 0.9
    frozen = tl.freeze(_corner_model())  # a frozen model (the bottom of a fine-tuned one) works the same
    np.testing.assert_allclose(saliency.grad_cam(frozen, _bright_image()[None], targets=[1]), maps, atol=1e-6)
    assert not any(p.requires_grad for p in frozen.parameters())


def test_grad_cam_says_how_to_install_its_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "pytorch_grad_cam", None)  # as if it were not installed
    with pytest.raises(ImportError, match=r"tlcourse\[saliency\]"):
        saliency.grad_cam(_corner_model(), _bright_image()[None], targets=[1])


@pytest.mark.slow
def test_grad_cam_runs_on_the_pretrained_backbone_at_its_last_stage(backbone):
    pytest.importorskip("pytorch_grad_cam", reason='the optional grad-cam package: pip install "tlcourse[saliency]"')
    from skimage import data

    x = tl.preprocess(128)(data.coffee()).unsqueeze(0)
    espresso = tl.imagenet_classes().index("espresso")
    maps = saliency.grad_cam(backbone, x, targets=[espresso])  # default layer: conv_head
    assert maps.shape == (1, 128, 128) and maps.std() > 0.05  # a map with a place in it, not a flat field
    assert all(p.grad is None for p in backbone.parameters())  # the backbone is left as it was


def test_show_saliency_draws_each_map_over_its_image():
    images = [np.random.default_rng(0).random((SIZE, SIZE)), _bright_image()]
    fig = saliency.show_saliency(images, [np.ones((SIZE, SIZE))] * 2, titles=["a", "b"], columns=3)
    assert [ax.get_title() for ax in fig.axes[:2]] == ["a", "b"] and len(fig.axes[0].images) == 2
