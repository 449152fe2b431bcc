"""The feature cache: computed once, identical when read back, keyed on everything that matters."""
from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torch.utils.data import Subset

import tlcourse as tl
from tlcourse import features
from tlcourse.models import StagedModel, fingerprint
from tlcourse.utils import cache_dir


def _cells(size=64, n=12):
    return Subset(tl.load_elpv(transform=tl.preprocess(size)), list(range(n)))


def test_cache_hit_returns_identical_tensors_without_running_the_model(backbone, monkeypatch):
    first = tl.extract_features(backbone, _cells(), progress=False)
    assert first.shape == (12, 1280)

    def must_not_run(*args, **kwargs):
        raise AssertionError("the model ran although the features were cached")

    monkeypatch.setattr(features, "forward_stages", must_not_run)
    second = tl.extract_features(backbone, _cells(), progress=False)
    assert torch.equal(first, second)


def test_features_match_the_model_without_the_classifier(backbone):
    data = _cells(n=4)
    feats = tl.extract_features(backbone, data, cache=False, progress=False)
    x = torch.stack([data[i][0] for i in range(4)])
    with torch.no_grad():
        expected = backbone.forward_head(backbone.forward_features(x), pre_logits=True)
    torch.testing.assert_close(feats, expected, rtol=1e-4, atol=1e-4)


def test_cache_key_covers_transform_data_and_weights(backbone):
    base = tl.extract_features(backbone, _cells(64), progress=False)
    other_size = tl.extract_features(backbone, _cells(96), progress=False)
    other_cells = tl.extract_features(backbone, Subset(_cells(64).dataset, list(range(1, 13))), progress=False)
    assert not torch.equal(base, other_size) and not torch.equal(base, other_cells)
    changed = tl.replace_head(tl.load_backbone(), 1000)  # same architecture, new random classifier weights
    assert fingerprint(changed) != fingerprint(backbone)
    assert len(list((cache_dir() / "features").glob("*.pt"))) >= 3


def test_stage_activations_feed_the_top_of_the_network(backbone):
    data = _cells(n=3)
    maps = tl.extract_features(backbone, data, layer="stage5", pool=False, progress=False)
    assert maps.shape == (3, 112, 4, 4)
    _, top = tl.split_at(backbone, "stage5")
    x = torch.stack([data[i][0] for i in range(3)])
    with torch.no_grad():
        torch.testing.assert_close(top(maps), backbone(x), rtol=1e-4, atol=1e-4)


def test_several_layers_in_one_pass(backbone):
    out = tl.extract_features(backbone, _cells(n=3), layer=["stage3", "features"], progress=False)
    assert out["stage3"].shape == (3, 40) and out["features"].shape == (3, 1280)


def test_writes_are_atomic_and_damaged_entries_are_recomputed(backbone):
    data = _cells(n=2)
    first = tl.extract_features(backbone, data, progress=False)
    folder = cache_dir() / "features"
    assert not list(folder.glob("*.tmp"))  # no half-written files left behind
    for entry in folder.glob("*.pt"):
        entry.write_bytes(b"truncated")
    again = tl.extract_features(backbone, data, progress=False)
    torch.testing.assert_close(first, again)
    assert tl.cache_size() > 0 and features.clear_cache() > 0 and tl.cache_size() == 0


def test_cache_folder_follows_the_environment_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("TLCOURSE_CACHE", str(tmp_path / "elsewhere"))
    assert cache_dir() == tmp_path / "elsewhere"


def test_embedding_images_in_memory_matches_the_model(backbone):
    photos = [np.full((50, 50), 128, dtype=np.uint8), np.eye(64, dtype=np.uint8) * 255]
    embedded = tl.extract_features(backbone, tl.ImageList(photos, tl.preprocess(64)), cache=False, device="cpu",
                                   progress=False)
    batch = torch.stack([tl.preprocess(64)(p) for p in photos])
    with torch.no_grad():
        reference = tl.forward_stages(backbone, batch, ["conv_head"], pool=True)["conv_head"]
    assert embedded.shape == (2, 1280)
    torch.testing.assert_close(embedded, reference)


def test_images_in_memory_cannot_be_cached_by_mistake(backbone):
    with pytest.raises(TypeError, match="cache=False"):
        tl.extract_features(backbone, tl.ImageList([np.zeros((8, 8), np.uint8)], tl.preprocess(32)), progress=False)


def test_forward_stages_stops_after_the_last_layer_asked_for():
    ran = []
    model = StagedModel(OrderedDict(
        (name, _Record(name, ran)) for name in ("stem", "stage1", "stage2", "classifier")))
    out = features.forward_stages(model, torch.ones(2, 3, 4, 4), ["stem", "stage1"], pool=True)
    assert ran == ["stem", "stage1"] and out["stage1"].shape == (2, 3)
    maps = features.forward_stages(model, torch.ones(2, 3, 4, 4), ["stage1"], pool=False)
    assert maps["stage1"].shape == (2, 3, 4, 4)


class _Record(nn.Module):
    def __init__(self, name, ran):
        super().__init__()
        self.name, self.ran = name, ran

    def forward(self, x):
        self.ran.append(self.name)
        return x


# ---------------------------------------------------------------- views under quarter turns

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
    return StagedModel(OrderedDict(
        stem=nn.Conv2d(3, 4, 3, padding=1), stage1=nn.Conv2d(4, 5, 3, stride=2),
        classifier=nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(5, 2)))).eval()


def test_extract_views_gives_the_features_of_turned_images():
    model = _tiny_model()
    views = tl.extract_views(model, size=12, turns=(0, 1), layer=("stem", "features"), progress=False,
                             dataset=_Images)
    x = torch.stack([img for img, _ in _Images(tl.preprocess(12))])
    assert isinstance(views, list) and len(views) == 2
    with torch.no_grad():
        for turns, view in enumerate(views):
            expected = tl.forward_stages(model, torch.rot90(x, turns, dims=(-2, -1)), ["stem", "stage1"], pool=True)
            assert view["features"].shape == (6, 5)
            torch.testing.assert_close(view["features"], expected["stage1"], atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(view["stem"], expected["stem"], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(views[0]["features"], views[1]["features"])


def test_unpooled_views_are_the_maps_of_each_turned_image():
    model = _tiny_model()
    maps = tl.extract_views(model, size=12, turns=(0, 3), layer="stem", pool=False, progress=False, dataset=_Images)
    x = torch.stack([img for img, _ in _Images(tl.preprocess(12))])
    with torch.no_grad():
        expected = model.parts["stem"](torch.rot90(x, 3, dims=(-2, -1)))
    assert torch.stack(maps).shape == (2, 6, 4, 12, 12)
    torch.testing.assert_close(maps[1], expected, atol=1e-5, rtol=1e-5)


def test_mirrors_add_the_turns_of_the_mirror_image_after_the_plain_ones():
    model = _tiny_model()
    maps = tl.extract_views(model, size=12, turns=(0, 1), layer="stem", pool=False, progress=False, dataset=_Images,
                            mirrors=(False, True))
    x = torch.stack([img for img, _ in _Images(tl.preprocess(12))])
    assert len(maps) == 4
    with torch.no_grad():
        for k, (mirror, turns) in enumerate([(False, 0), (False, 1), (True, 0), (True, 1)]):
            image = x.flip(-1) if mirror else x
            expected = model.parts["stem"](torch.rot90(image, turns, dims=(-2, -1)))
            torch.testing.assert_close(maps[k], expected, atol=1e-5, rtol=1e-5)


def test_the_unturned_view_shares_its_cache_entry_with_extract_features(monkeypatch):
    model = _tiny_model()
    plain = tl.extract_features(model, _Images(tl.preprocess(12)), progress=False)

    def must_not_run(*args, **kwargs):
        raise AssertionError("the model ran although the features were cached")

    monkeypatch.setattr(features, "forward_stages", must_not_run)
    (view,) = tl.extract_views(model, size=12, turns=(0,), progress=False, dataset=_Images)
    assert torch.equal(view, plain)


def test_stack_layers_puts_pooled_features_side_by_side_in_the_order_asked():
    feats = {"a": torch.ones(5, 2), "b": torch.zeros(5, 3)}
    stacked = tl.stack_layers(feats, layers=("b", "a"))
    assert isinstance(stacked, torch.Tensor) and stacked.shape == (5, 5)
    assert (stacked[:, :3] == 0).all() and (stacked[:, 3:] == 1).all()
    assert torch.equal(tl.stack_layers(feats), torch.cat([feats["a"], feats["b"]], dim=1))  # all, in dict order
