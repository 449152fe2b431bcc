"""The data-efficiency curve of lesson 04: three strategies, the curve, its summary and the verdict (tlcourse/curves.py)."""
from __future__ import annotations


import numpy as np
import pytest
import torch

import tlcourse as tl
from tlcourse.curves import accuracy_claim, data_claim, disagreement, gap, time_claim
from tiny_models import tiny_top


def _data(n=40):
    labels = np.arange(n) % 2
    features = np.random.default_rng(0).normal(size=(n, 8)) + labels[:, None]
    activations = torch.randn(n, 4, 5, 5, generator=torch.Generator().manual_seed(0))
    images = torch.randn(n, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    return labels, features, activations, images


# ---------------------------------------------------------------- the three strategies

def test_strategies_return_test_probabilities():
    labels, features, activations, images = _data()
    train_idx, test_idx = np.arange(30), np.arange(30, 40)
    for probs in (
        tl.curves.linear_probe_strategy(features, labels, test_idx, train_idx=train_idx, seed=0),
        tl.curves.fine_tuning_strategy(tiny_top(), activations, features, labels, test_idx, train_idx=train_idx,
                                seed=0, min_steps=2, max_epochs=2, device="cpu"),
        tl.curves.from_scratch_strategy(images, labels, test_idx, train_idx=train_idx, seed=0, min_steps=2, max_epochs=2,
                                 width=4, device="cpu"),
    ):
        assert probs.shape == (10, 2)
        np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)


def test_linear_probe_strategy_is_a_probe_on_the_training_cells():
    labels, features, _, _ = _data()
    order = np.random.default_rng(0).permutation(40)
    train_idx, test_idx = order[:25], order[25:]
    expected = tl.predict(tl.fit_probe(features[train_idx], labels[train_idx], C=0.3), features[test_idx], device="cpu")
    np.testing.assert_allclose(tl.curves.linear_probe_strategy(features, labels, test_idx, train_idx, C=0.3), expected)


def test_fine_tuning_strategy_fine_tunes_the_top_from_a_probe_for_epochs_sized_to_the_data():
    labels, features, activations, _ = _data()
    train_idx, test_idx = np.arange(30), np.arange(30, 40)
    probe = tl.fit_probe(features[train_idx], labels[train_idx], C=0.05)
    epochs = tl.epochs_for(30, 16, min_steps=5, max_epochs=3)
    model, _ = tl.fine_tune_top(tiny_top(), activations, labels, train_idx, epochs, head_init=probe, batch_size=16,
                                batchnorm="train", seed=3, device="cpu", progress=False)
    expected = tl.predict(model, activations[test_idx], device="cpu")
    probs = tl.curves.fine_tuning_strategy(tiny_top(), activations, features, labels, test_idx, train_idx, seed=3,
                                    min_steps=5, max_epochs=3, batch_size=16, device="cpu", batchnorm="train")
    np.testing.assert_allclose(probs, expected, atol=1e-6)


def test_from_scratch_strategy_repeats_with_a_seed_and_honours_fixed_epochs():
    labels, _, _, images = _data()
    train_idx, test_idx = np.arange(30), np.arange(30, 40)
    settings = dict(width=4, device="cpu", epochs=1)
    first = tl.curves.from_scratch_strategy(images, labels, test_idx, train_idx, seed=0, **settings)
    np.testing.assert_allclose(tl.curves.from_scratch_strategy(images, labels, test_idx, train_idx, seed=0, **settings), first)
    assert not np.allclose(tl.curves.from_scratch_strategy(images, labels, test_idx, train_idx, seed=1, **settings), first)
    longer = tl.curves.from_scratch_strategy(images, labels, test_idx, train_idx, seed=0, width=4, device="cpu", epochs=3)
    assert not np.allclose(longer, first)


# ---------------------------------------------------------------- the curve and its summary

def test_data_efficiency_curve_gives_every_strategy_the_same_subsets():
    labels = np.arange(60) % 2
    train_idx, test_idx = np.arange(40), np.arange(40, 60)
    seen = {}

    def recorder(name):
        def strategy(train_idx, seed):
            seen[(name, len(train_idx), seed)] = tuple(train_idx)
            return np.tile([0.3, 0.7], (len(test_idx), 1))
        return strategy

    rows = tl.curves.data_efficiency_curve({"a": recorder("a"), "b": recorder("b")}, labels, train_idx, test_idx,
                                    sizes=[2, 5, None], seeds=[0, 1])
    assert len(rows) == 2 * 3 * 2
    assert sorted({r["n_train"] for r in rows}) == [4, 10, 40]
    for (name, n, seed), subset in seen.items():
        assert seen[("b" if name == "a" else "a", n, seed)] == subset
        assert set(subset) <= set(train_idx)  # never a test cell
    assert seen[("a", 4, 0)] != seen[("a", 4, 1)]  # a new seed draws new cells
    assert seen[("a", 40, 0)] == tuple(train_idx)  # None: the whole split
    assert rows[0]["accuracy"] == pytest.approx(0.5)
    assert "confusion_matrix" not in rows[0] and rows[0]["seconds"] >= 0


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


def test_summary_reports_mean_and_spread_over_seeds():
    summary = tl.curves.summarise(_rows([0.6, 0.8], [0.85, 0.9]))
    first = summary[0]
    assert first["strategy"] == "from scratch" and first["per_class"] == 5 and first["n_train"] == 10
    assert first["runs"] == 3 and first["accuracy_mean"] == pytest.approx(0.6) and first["accuracy_std"] == pytest.approx(0.01)
    assert [(r["strategy"], r["per_class"]) for r in summary] == [
        ("from scratch", 5), ("feature extraction", 5), ("from scratch", None), ("feature extraction", None)]
    single = tl.curves.summarise(_rows([0.6], [0.8])[:2])
    assert single[0]["accuracy_std"] == 0.0  # one seed: no spread, not NaN


def test_format_summary_has_a_line_per_strategy_and_size_in_percent():
    text = tl.curves.format_summary(tl.curves.summarise(_rows([0.6, 0.8], [0.85, 0.9])))
    lines = text.splitlines()
    assert len(lines) == 1 + 4
    assert "full" in lines[3] and "1000" in lines[3] and "80.0 ± 1.0" in lines[3]
    assert "60.0 ± 1.0" in lines[1] and "10.0 ± 0.0" in lines[1]


# ---------------------------------------------------------------- the verdict, claim by claim

def _summary_row(accuracy, std=0.01, runs=3, n_train=10, seconds=1.0):
    return {"accuracy_mean": accuracy, "accuracy_std": std, "runs": runs, "n_train": n_train, "seconds_mean": seconds}


def test_gap_counts_as_real_only_beyond_two_standard_errors():
    by = {("a", 5): _summary_row(0.80), ("b", 5): _summary_row(0.70),
          ("a", 9): _summary_row(0.80, std=0.1), ("b", 9): _summary_row(0.70, std=0.1)}
    diff, real = gap(by, "a", "b", 5)
    assert diff == pytest.approx(0.10) and real  # 2 se = 2 * sqrt(2 * 0.01**2 / 3) = 0.016
    diff, real = gap(by, "b", "a", 9)
    assert diff == pytest.approx(-0.10) and not real  # 2 se = 0.16


def test_accuracy_claim_counts_the_sizes_where_transfer_is_clearly_better():
    holds = {("t", 5): _summary_row(0.85), ("s", 5): _summary_row(0.60),
             ("t", None): _summary_row(0.90), ("s", None): _summary_row(0.80)}
    text = accuracy_claim(holds, [5, None], "t", "s")
    assert "clearly better at 2 of 2 sizes (gap +10.0 to +25.0 points)." in text and "not clearly" not in text
    fails = {**holds, ("t", None): _summary_row(0.79), ("t", 5): _summary_row(0.65, std=0.2)}
    text = accuracy_claim(fails, [5, None], "t", "s")
    assert "clearly better at 0 of 2 sizes" in text and "not clearly at 5 per class, the full split." in text


def test_data_claim_finds_the_smallest_size_that_matches_from_scratch_on_everything():
    holds = {("t", 5): _summary_row(0.70, n_train=10), ("t", 50): _summary_row(0.85, n_train=100),
             ("t", None): _summary_row(0.90, n_train=1000), ("s", None): _summary_row(0.80, n_train=1000)}
    text = data_claim(holds, [5, 50, None], "t", "s")
    assert "YES for t" in text and "with 50 per class, 100 images instead of 1000 (10x less)" in text
    only_full = {**holds, ("t", 50): _summary_row(0.75, n_train=100)}
    text = data_claim(only_full, [5, 50, None], "t", "s")
    assert "NOT shown for t" in text and "80.0%" in text and "(it does with the full split)" in text
    never = {**only_full, ("t", None): _summary_row(0.79, n_train=1000)}
    text = data_claim(never, [5, 50, None], "t", "s")
    assert "NOT shown" in text and "with the full split" not in text


def test_time_claim_counts_the_one_off_extraction_when_asked():
    by = {("t", None): _summary_row(0.9, n_train=1000, seconds=1.0), ("s", None): _summary_row(0.8, seconds=10.0)}
    assert "(10.0x faster); counting the one-off extraction of the training images, 1.0 s (10.0x faster)" \
        in time_claim(by, None, "t", "s")
    text = time_claim(by, None, "t", "s", overhead_per_image=0.02)  # 20 s of extraction for 1000 images
    assert "1.0 s against 10.0 s" in text and "(10.0x faster)" in text and "21.0 s (2.1x SLOWER)" in text


def test_disagreement_names_where_one_transfer_strategy_beats_the_other():
    by = {("a", 5): _summary_row(0.80), ("b", 5): _summary_row(0.70),
          ("a", 50): _summary_row(0.80), ("b", 50): _summary_row(0.90),
          ("a", None): _summary_row(0.80), ("b", None): _summary_row(0.801)}
    text = disagreement(by, [5, 50, None], "a", "b")
    assert "b beats a clearly at 50 per class, loses clearly at 5 per class" in text
    level = {key: _summary_row(0.8) for key in by}
    assert "clearly at no size, loses clearly at no size" in disagreement(level, [5, 50, None], "a", "b")


def test_verdict_follows_the_numbers():
    good = " ".join(tl.curves.data_efficiency_verdict(_rows([0.6, 0.8], [0.85, 0.9])))
    assert "clearly better at 2 of 2 sizes" in good
    assert "YES for feature extraction" in good and "with 5 per class, 10 images instead of 1000 (100x less)" in good
    assert "(10.0x faster)" in good
    bad = " ".join(tl.curves.data_efficiency_verdict(_rows([0.6, 0.9], [0.6, 0.85], seconds=(1.0, 10.0))))
    assert "NOT shown" in bad and "(10.0x SLOWER)" in bad and "clearly better at 0 of 2" in bad
    late = " ".join(tl.curves.data_efficiency_verdict(_rows([0.6, 0.8], [0.5, 0.85])))
    assert "NOT shown" in late and "(it does with the full split)" in late


def test_verdict_has_three_claims_per_transfer_strategy_and_compares_neighbours():
    rows = _rows([0.6, 0.8], [0.85, 0.9])
    rows += [{**r, "strategy": "fine-tuning", "accuracy": r["accuracy"] + 0.05} for r in rows
             if r["strategy"] == "feature extraction"]
    verdict = tl.curves.data_efficiency_verdict(rows, overhead_seconds={"fine-tuning": 0.1})
    assert len(verdict) == 3 * 2 + 1
    assert verdict[-1].startswith("Where the data disagree: fine-tuning beats feature extraction clearly at")
    assert "101.0 s (10.1x SLOWER)" in verdict[5]  # 1 s of training + 0.1 s for each of 1000 images
