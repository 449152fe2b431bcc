"""The feature cache: computed once, identical when read back, keyed on everything that matters."""
from __future__ import annotations

import torch
from torch.utils.data import Subset

import tlcourse as tl
from tlcourse import features


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
    assert tl.fingerprint(changed) != tl.fingerprint(backbone)
    assert len(list((tl.cache_dir() / "features").glob("*.pt"))) >= 3


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
    folder = tl.cache_dir() / "features"
    assert not list(folder.glob("*.tmp"))  # no half-written files left behind
    for entry in folder.glob("*.pt"):
        entry.write_bytes(b"truncated")
    again = tl.extract_features(backbone, data, progress=False)
    torch.testing.assert_close(first, again)
    assert tl.cache_size() > 0 and tl.clear_cache() > 0 and tl.cache_size() == 0


def test_cache_folder_follows_the_environment_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("TLCOURSE_CACHE", str(tmp_path / "elsewhere"))
    assert tl.cache_dir() == tmp_path / "elsewhere"
