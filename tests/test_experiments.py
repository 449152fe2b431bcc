"""Specifications of the experiment helpers of lessons 03-05 (tiny inputs, seconds)."""
from __future__ import annotations

import copy
from collections import OrderedDict

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from torch import nn

import tlcourse as tl


def _blobs(n=120, d=6, shift=1.5, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    x = rng.normal(size=(n, d)) * rng.uniform(0.5, 3, size=d) + shift * y[:, None]
    return x.astype(np.float32), y


def _tiny_top():
    """A model shaped like the top of a split backbone: conv stages, then a classifier."""
    return tl.StagedModel(OrderedDict(
        stage6=nn.Sequential(nn.Conv2d(4, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU()),
        conv_head=nn.Sequential(nn.Conv2d(8, 8, 1), nn.BatchNorm2d(8), nn.ReLU()),
        classifier=nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(8, 2)),
    ))


def test_linear_probe_layer_gives_the_same_probabilities_as_scikit_learn():
    x, y = _blobs()
    probe = tl.fit_linear_probe(x, y, C=0.5)
    scaler = StandardScaler().fit(x)
    reference = LogisticRegression(C=0.5, max_iter=2000).fit(scaler.transform(x), y)
    np.testing.assert_allclose(tl.probe_probabilities(probe, x), reference.predict_proba(scaler.transform(x)), atol=1e-4)


def test_linear_probe_handles_more_than_two_classes():
    rng = np.random.default_rng(1)
    y = np.arange(90) % 3
    x = rng.normal(size=(90, 4)) + 2 * np.eye(3, 4)[y]
    probs = tl.probe_probabilities(tl.fit_linear_probe(x, y), x)
    assert probs.shape == (90, 3) and (probs.argmax(1) == y).mean() > 0.8


def test_stage_probes_score_every_layer_and_their_concatenation():
    x, y = _blobs()
    noise = np.random.default_rng(0).normal(size=(len(y), 3))
    rows = tl.stage_probes({"noise": noise, "signal": x}, y, np.arange(80), np.arange(80, 120))
    assert [r["layer"] for r in rows] == ["noise", "signal", "all stages"]
    assert rows[2]["dims"] == 9 and rows[1]["accuracy"] > rows[0]["accuracy"]


def test_kept_batchnorm_statistics_do_not_move_while_weights_train():
    top = tl.keep_batchnorm_statistics(_tiny_top())
    bn = top.parts["stage6"][1]
    before_stats, before_weight = bn.running_mean.clone(), bn.weight.detach().clone()
    top.train()
    loss = top(torch.randn(8, 4, 5, 5) * 3 + 2).sum()
    loss.backward()
    torch.optim.SGD(top.parameters(), lr=0.1).step()
    assert torch.equal(bn.running_mean, before_stats)
    assert not torch.equal(bn.weight, before_weight)


def test_recording_loss_keeps_training_batches_only():
    x, y = torch.randn(40, 3), torch.arange(40) % 2
    recorder = tl.RecordingLoss()
    tl.fit(nn.Linear(3, 2), tl.tensor_loader(x, y, 10), epochs=2, loss_fn=recorder,
           val_loader=tl.tensor_loader(x, y, 10), device="cpu", progress=False)
    assert len(recorder.losses) == 2 * 4  # 2 epochs x 4 training batches, no validation batches


def test_weight_change_is_zero_for_a_copy_and_grows_with_the_update():
    model = _tiny_top()
    before = copy.deepcopy(model)
    assert all(v == 0 for v in tl.weight_change(before, model).values())
    with torch.no_grad():
        model.parts["conv_head"][0].weight.mul_(1.5)
    change = tl.weight_change(before, model)
    assert set(change) == {"stage6", "conv_head", "classifier"}
    assert change["conv_head"] > 0 and change["stage6"] == 0


def test_epochs_are_sized_to_the_data():
    assert tl.epochs_for(10, batch_size=32, min_steps=40, max_epochs=30) == 30  # capped
    assert tl.epochs_for(320, batch_size=32, min_steps=40, max_epochs=30) == 4
    assert tl.epochs_for(2000, batch_size=32, min_steps=40, max_epochs=30) == 1
    assert tl.epochs_for(2000, batch_size=32, min_steps=40, max_epochs=30, min_epochs=3) == 3


def test_random_dihedral_turns_each_image_into_one_of_its_eight_poses():
    images = torch.arange(2 * 16, dtype=torch.float32).reshape(2, 1, 4, 4)
    out = tl.random_dihedral(images.repeat(16, 1, 1, 1), torch.Generator().manual_seed(0))
    for original, moved in zip(images.repeat(16, 1, 1, 1), out):
        poses = [torch.rot90(t, k, dims=(-2, -1)) for t in (original, original.flip(-1)) for k in range(4)]
        assert any(torch.equal(moved, pose) for pose in poses)
    assert len({tuple(o.flatten().tolist()) for o in out[::2]}) > 1  # not always the same pose


def test_fine_tune_top_starts_from_the_probe_and_leaves_the_template_untouched():
    top = _tiny_top()
    template = copy.deepcopy(top)
    activations, labels = torch.randn(24, 4, 5, 5), np.arange(24) % 2
    probe = nn.Linear(8, 2)
    model, history = tl.fine_tune_top(top, activations, labels, np.arange(16), epochs=0, head_init=probe,
                                      device="cpu", progress=False)
    assert torch.equal(tl.head(model).weight, probe.weight) and history.epochs == 0
    model, history = tl.fine_tune_top(top, activations, labels, np.arange(16), epochs=2, val_idx=np.arange(16, 24),
                                      device="cpu", progress=False)
    assert history.epochs == 2 and len(history["val_accuracy"]) == 2
    assert all(torch.equal(a, b) for a, b in zip(top.state_dict().values(), template.state_dict().values()))


def test_strategies_return_test_probabilities():
    labels = np.arange(40) % 2
    train_idx, test_idx = np.arange(30), np.arange(30, 40)
    features = np.random.default_rng(0).normal(size=(40, 8)) + labels[:, None]
    activations = torch.randn(40, 4, 5, 5)
    images = torch.randn(40, 1, 16, 16)
    for probs in (
        tl.linear_probe_strategy(features, labels, test_idx, train_idx=train_idx, seed=0),
        tl.fine_tuning_strategy(_tiny_top(), activations, features[:, :8], labels, test_idx, train_idx=train_idx,
                                seed=0, min_steps=2, max_epochs=2, device="cpu"),
        tl.from_scratch_strategy(images, labels, test_idx, train_idx=train_idx, seed=0, min_steps=2, max_epochs=2,
                                 width=4, device="cpu"),
    ):
        assert probs.shape == (10, 2)
        np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)


def test_data_efficiency_curve_gives_every_strategy_the_same_subsets():
    labels = np.arange(60) % 2
    train_idx, test_idx = np.arange(40), np.arange(40, 60)
    seen = {}

    def recorder(name):
        def strategy(train_idx, seed):
            seen[(name, len(train_idx), seed)] = tuple(train_idx)
            return np.tile([0.3, 0.7], (len(test_idx), 1))
        return strategy

    rows = tl.data_efficiency_curve({"a": recorder("a"), "b": recorder("b")}, labels, train_idx, test_idx,
                                    sizes=[2, 5, None], seeds=[0, 1])
    assert len(rows) == 2 * 3 * 2
    assert sorted({r["n_train"] for r in rows}) == [4, 10, 40]
    for (name, n, seed), subset in seen.items():
        assert seen[("b" if name == "a" else "a", n, seed)] == subset
    assert seen[("a", 4, 0)] != seen[("a", 4, 1)]  # a new seed draws new cells
    assert rows[0]["accuracy"] == pytest.approx(0.5)


def _rows(scratch_acc, transfer_acc, sizes=(5, None), seconds=(10.0, 1.0)):
    rows = []
    for size, s_acc, t_acc in zip(sizes, scratch_acc, transfer_acc):
        for seed, noise in enumerate((-0.01, 0.0, 0.01)):
            n = 1000 if size is None else 2 * size
            rows.append({"strategy": "from scratch", "per_class": size, "n_train": n, "seed": seed,
                         "seconds": seconds[0], "accuracy": s_acc + noise})
            rows.append({"strategy": "feature extraction", "per_class": size, "n_train": n, "seed": seed,
                         "seconds": seconds[1], "accuracy": t_acc + noise})
    return rows


def test_verdict_follows_the_numbers():
    good = " ".join(tl.data_efficiency_verdict(_rows([0.6, 0.8], [0.85, 0.9])))
    assert "clearly better at 2 of 2 sizes" in good
    assert "YES for feature extraction" in good and "with 5 per class, 10 images instead of 1000 (100x less)" in good
    assert "(10.0x faster)" in good
    bad = " ".join(tl.data_efficiency_verdict(_rows([0.6, 0.9], [0.6, 0.85], seconds=(1.0, 10.0))))
    assert "NOT shown" in bad and "(10.0x SLOWER)" in bad and "clearly better at 0 of 2" in bad
    late = " ".join(tl.data_efficiency_verdict(_rows([0.6, 0.8], [0.5, 0.85])))
    assert "NOT shown" in late and "(it does with the full split)" in late


def test_summary_reports_mean_and_spread_over_seeds():
    summary = tl.summarise(_rows([0.6, 0.8], [0.85, 0.9]))
    first = summary[0]
    assert first["runs"] == 3 and first["accuracy_mean"] == pytest.approx(0.6) and first["accuracy_std"] == pytest.approx(0.01)
    assert "full" in tl.format_summary(summary)


def test_mmd_separates_shifted_samples_from_samples_of_one_distribution():
    rng = np.random.default_rng(0)
    a, b, shifted = rng.normal(size=(200, 5)), rng.normal(size=(200, 5)), rng.normal(size=(200, 5)) + 1.0
    assert abs(tl.mmd(a, b, bandwidth=2.0)) < 0.01 < tl.mmd(a, shifted, bandwidth=2.0)


def test_frechet_distance_matches_the_closed_form_for_gaussians():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(20000, 2))
    b = rng.normal(size=(20000, 2)) * 2 + 3     # mean shift 3 per axis, std 1 -> 2
    # closed form: |3,3|^2 + trace(I + 4I - 2*2I) = 18 + 2
    assert tl.frechet_distance(a, b) == pytest.approx(20, rel=0.03)


@pytest.mark.parametrize("distance", ["frechet", "mmd"])
def test_distance_matrix_is_symmetric_and_puts_shifted_samples_further(distance):
    rng = np.random.default_rng(0)
    samples = {"a": rng.normal(size=(150, 8)), "b": rng.normal(size=(150, 8)), "shifted": rng.normal(size=(150, 8)) + 1}
    matrix = tl.distance_matrix(samples, distance=distance, dims=4)
    assert matrix.shape == (3, 3) and np.allclose(matrix, matrix.T, atol=1e-6)
    assert matrix[0, 1] < matrix[0, 2] and matrix[0, 1] < matrix[1, 2]


def test_cells_as_tensor_scales_to_minus_one_one():
    x = tl.cells_as_tensor(np.array([[[0, 255], [255, 0]]], dtype=np.uint8).repeat(4, 1).repeat(4, 2), size=4)
    assert x.shape == (1, 1, 4, 4) and x.min() == -1 and x.max() == 1


def test_random_crops_are_square_pieces_of_the_photo():
    photo = np.arange(40 * 60 * 3, dtype=np.uint8).reshape(40, 60, 3)
    crops = tl.random_crops(photo, count=5, seed=0, min_fraction=0.5)
    assert len(crops) == 5
    assert all(c.shape[0] == c.shape[1] and 20 <= c.shape[0] <= 40 and c.shape[2] == 3 for c in crops)


def test_rendered_words_are_dark_text_on_white_and_bold_is_darker():
    regular = tl.render_words(["defect", "crack"], bold=False, renders=2, seed=0)
    bold = tl.render_words(["defect", "crack"], bold=True, renders=2, seed=0)
    assert len(regular) == 4 and regular[0].shape == (160, 160) and regular[0].max() == 255 and regular[0].min() < 50
    assert np.mean([b.mean() for b in bold]) < np.mean([r.mean() for r in regular])


def test_grouped_cross_validation_never_tests_on_a_trained_group():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(20), 3)
    y = groups % 2
    # each group has its own random code: memorising groups cannot predict a held-out group's label
    x = rng.normal(size=(20, 16))[groups] + 0.01 * rng.normal(size=(60, 16))
    memorised, _ = tl.grouped_cv_accuracy(x, y, groups, folds=4)
    assert memorised < 0.8
    separable, error = tl.grouped_cv_accuracy(y[:, None] + 0.01 * rng.normal(size=(60, 1)), y, groups, folds=4)
    assert separable == 1.0 and error == 0.0


def test_stage_costs_cover_every_stage():
    model = _tiny_top()
    rows = tl.stage_costs(model, torch.randn(2, 4, 5, 5), repeats=1)
    assert [r["stage"] for r in rows] == ["stage6", "conv_head", "classifier"]
    assert rows[0]["parameters"] == sum(p.numel() for p in model.parts["stage6"].parameters())
    assert all(r["seconds"] >= 0 for r in rows)


def test_embedding_images_matches_the_cached_feature_path(backbone):
    photos = [np.full((50, 50), 128, dtype=np.uint8), np.eye(64, dtype=np.uint8) * 255]
    embedded = tl.embed_images(backbone, photos, size=64, device="cpu")
    batch = torch.stack([tl.preprocess(64)(p) for p in photos])
    with torch.no_grad():
        reference = tl.forward_stages(backbone, batch, ["conv_head"], pool=True)["conv_head"]
    assert embedded.shape == (2, 1280)
    torch.testing.assert_close(embedded, reference)
