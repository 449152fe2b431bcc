"""The best ELPV recipe's pieces (tlcourse/recipes.py), on tiny inputs."""
from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import tlcourse as tl


def test_rotate90_turns_an_image_by_quarter_turns_like_torch_rot90():
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    for turns in range(4):
        assert torch.equal(tl.Rotate90(turns)(x), torch.rot90(x, turns, dims=(-2, -1)))
    assert torch.equal(tl.Rotate90(4)(x), x)


def test_each_rotation_gets_its_own_cache_key_and_no_rotation_shares_the_lessons_cache():
    reprs = {repr(tl.rotated_preprocess(32, turns)) for turns in range(4)}
    assert len(reprs) == 4
    assert repr(tl.rotated_preprocess(32, 0)) == repr(tl.preprocess(32))


def test_rotated_preprocess_equals_preprocess_then_rot90():
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 40), dtype=np.uint8))
    expected = torch.rot90(tl.preprocess(16)(image), 3, dims=(-2, -1))
    assert torch.allclose(tl.rotated_preprocess(16, 3)(image), expected)


def test_stack_layers_concatenates_pooled_features_in_the_order_asked():
    feats = {"a": torch.ones(5, 2), "b": torch.zeros(5, 3)}
    stacked = tl.stack_layers(feats, layers=("b", "a"))
    assert stacked.shape == (5, 5)
    assert (stacked[:, :3] == 0).all() and (stacked[:, 3:] == 1).all()


def _two_views(n=200, dim=6, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    base = rng.normal(size=(n, dim)) + 1.5 * y[:, None]
    return [base + 0.1 * rng.normal(size=base.shape) for _ in range(2)], y


def test_probe_on_views_trains_on_every_view_and_averages_predictions():
    views, y = _two_views()
    probe = tl.fit_probe_on_views(views, y, C=1.0)
    reference = tl.fit_probe(np.concatenate(views), np.concatenate([y, y]), C=1.0)
    for view in views:
        assert np.allclose(probe.predict_proba(view), reference.predict_proba(view))
    averaged = tl.predict_views(probe, views)
    assert np.allclose(averaged, (probe.predict_proba(views[0]) + probe.predict_proba(views[1])) / 2)
    assert (averaged.argmax(1) == y).mean() > 0.85


def test_choose_C_picks_a_candidate_by_validation_accuracy():
    views, y = _two_views()
    fit_idx, val_idx = np.arange(150), np.arange(150, 200)
    C, scores = tl.choose_C(views, y, fit_idx, val_idx, candidates=(1e-4, 1.0))
    assert set(scores) == {1e-4, 1.0}
    assert C in scores and scores[C] == max(scores.values())


class _Images(torch.utils.data.Dataset):
    """A few random grey images that apply a transform, with a fingerprint for the feature cache."""

    def __init__(self, transform=None):
        rng = np.random.default_rng(1)
        self.images = [Image.fromarray(rng.integers(0, 255, (20, 20), dtype=np.uint8)) for _ in range(6)]
        self.transform = transform
        self.fingerprint = f"tiny-{transform!r}"

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.transform(self.images[i]), 0


def _tiny_model():
    torch.manual_seed(0)
    return tl.StagedModel(OrderedDict(
        stem=nn.Conv2d(3, 4, 3, padding=1), stage1=nn.Conv2d(4, 5, 3, stride=2),
        classifier=nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(5, 2)))).eval()


def test_extract_rotated_features_gives_the_features_of_rotated_images():
    model = _tiny_model()
    views = tl.extract_rotated_features(model, size=12, turns=(0, 1), layers=("stem", "features"),
                                        progress=False, dataset_factory=_Images)
    x = torch.stack([img for img, _ in _Images(tl.preprocess(12))])
    with torch.no_grad():
        expected = tl.forward_stages(model, torch.rot90(x, 1, dims=(-2, -1)), ["stem", "stage1"], pool=True)
    assert views[1]["features"].shape == (6, 5)
    assert torch.allclose(views[1]["features"], expected["stage1"], atol=1e-5)
    assert torch.allclose(views[1]["stem"], expected["stem"], atol=1e-5)
    assert not torch.allclose(views[0]["features"], views[1]["features"])


@pytest.mark.parametrize("turns", [1, 2, 3])
def test_rotating_an_elpv_cell_keeps_its_label(turns):
    """The premise of the recipe: rotated cells are valid cells with the same label."""
    ds = tl.load_elpv(transform=tl.rotated_preprocess(16, turns))
    image, label = ds[0]
    assert image.shape == (3, 16, 16) and label == ds.labels[0]


def test_extract_rotated_maps_stacks_the_unpooled_maps_of_each_rotated_image():
    model = _tiny_model()
    maps = tl.extract_rotated_maps(model, "stem", size=12, turns=(0, 3), progress=False, dataset_factory=_Images)
    x = torch.stack([img for img, _ in _Images(tl.preprocess(12))])
    with torch.no_grad():
        expected = model.parts["stem"](torch.rot90(x, 3, dims=(-2, -1)))
    assert maps.shape == (2, 6, 4, 12, 12)
    assert torch.allclose(maps[1], expected, atol=1e-5)


def _separable_maps(n=120, seed=0):
    """Four 'views' of maps whose label is the sign of channel 0's mean, plus per-view noise."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    base = torch.randn(n, 4, 3, 3, generator=g)
    base[:, 0] += (2 * y - 1)[:, None, None] * 1.5
    return torch.stack([base + 0.3 * torch.randn(base.shape, generator=g) for _ in range(4)]), y.numpy()


def _tiny_top():
    torch.manual_seed(0)
    return tl.StagedModel(OrderedDict(
        stage2=nn.Sequential(nn.Conv2d(4, 8, 1), nn.BatchNorm2d(8), nn.ReLU()),
        classifier=nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(8, 2))))


def test_fine_tune_top_on_views_learns_and_leaves_the_given_top_untouched():
    maps, y = _separable_maps()
    top = _tiny_top()
    before = {k: v.clone() for k, v in top.state_dict().items()}
    train, test = np.arange(80), np.arange(80, 120)
    untrained = tl.predict_top_on_views(top, maps, test)
    model = tl.fine_tune_top_on_views(top, maps, y, train, epochs=15, lr=1e-2, head_lr=5e-2, batch_size=16,
                                      seed=0, progress=False)
    probs = tl.predict_top_on_views(model, maps, test)
    assert probs.shape == (40, 2) and np.allclose(probs.sum(1), 1, atol=1e-5)
    assert (probs.argmax(1) == y[test]).mean() >= 0.9 > (untrained.argmax(1) == y[test]).mean()
    assert all(torch.equal(before[k], v) for k, v in top.state_dict().items())
    assert not model.training


def test_predict_top_on_views_averages_the_probabilities_of_every_view():
    maps, _ = _separable_maps(n=10)
    top = _tiny_top().eval()
    with torch.no_grad():
        expected = torch.stack([top(maps[v]).softmax(1) for v in range(4)]).mean(0).numpy()
    assert np.allclose(tl.predict_top_on_views(top, maps, np.arange(10)), expected, atol=1e-6)
