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
                                seed=0, min_steps=2, device="cpu"),
        tl.curves.from_scratch_strategy(images, labels, test_idx, train_idx=train_idx, seed=0, min_steps=2,
                                        min_epochs=1, width=4, device="cpu"),
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
    epochs = tl.curves.budget(30, 16, min_steps=5)["epochs"]
    assert epochs == 3  # 2 steps per epoch: 3 epochs give the 5 updates asked for
    model, _ = tl.fine_tune_top(tiny_top(), activations, labels, train_idx, epochs, head_init=probe, batch_size=16,
                                batchnorm="train", seed=3, device="cpu", progress=False)
    expected = tl.predict(model, [activations[test_idx]], device="cpu", channels_last=True)
    probs = tl.curves.fine_tuning_strategy(tiny_top(), activations, features, labels, test_idx, train_idx, seed=3,
                                           min_steps=5, batch_size=16, device="cpu", batchnorm="train")
    np.testing.assert_allclose(probs, expected, atol=1e-6)


def test_every_run_gets_at_least_its_minimum_number_of_updates():
    for n in (2, 10, 33, 200, 1968):
        plan = tl.curves.budget(n, 32, min_steps=80, min_epochs=4)
        assert plan["updates"] >= 80 and plan["epochs"] >= 4
        assert plan["updates"] == plan["epochs"] * -(-n // 32)
    assert tl.curves.budget(10, 32, min_steps=80)["updates"] == 80  # one batch per epoch: 80 epochs
    assert tl.curves.budget(10, 32, min_steps=80, max_epochs=20)["updates"] == 20  # a cap starves small sets


def test_from_scratch_strategy_takes_the_augmentation_of_the_data():
    labels, _, _, images = _data()
    train_idx, test_idx = np.arange(30), np.arange(30, 40)
    settings = dict(width=4, device="cpu", epochs=2)
    calls = []

    def mirror(batch):
        calls.append(len(batch))
        return batch.flip(-1)

    plain = tl.curves.from_scratch_strategy(images, labels, test_idx, train_idx, augment=None, **settings)
    mirrored = tl.curves.from_scratch_strategy(images, labels, test_idx, train_idx, augment=mirror, **settings)
    assert sum(calls) == 2 * 30 and not np.allclose(plain, mirrored)


def test_from_scratch_strategy_repeats_with_a_seed_and_honours_fixed_epochs():
    labels, _, _, images = _data()
    train_idx, test_idx = np.arange(30), np.arange(30, 40)
    settings = dict(width=4, device="cpu", epochs=1)
    first = tl.curves.from_scratch_strategy(images, labels, test_idx, train_idx, seed=0, **settings)
    np.testing.assert_allclose(tl.curves.from_scratch_strategy(images, labels, test_idx, train_idx, seed=0, **settings), first)
    assert not np.allclose(tl.curves.from_scratch_strategy(images, labels, test_idx, train_idx, seed=1, **settings), first)
    longer = tl.curves.from_scratch_strategy(images, labels, test_idx, train_idx, seed=0, width=4, device="cpu", epochs=3)
    assert not np.allclose(longer, first)


# ---------------------------------------------------------------- judging a run fairly

def test_prior_correction_moves_decisions_and_keeps_the_ranking():
    probs = np.array([[0.6, 0.4], [0.45, 0.55], [0.2, 0.8]])
    moved = tl.curves.correct_prior(probs, [0.5, 0.5], [0.7, 0.3])
    np.testing.assert_allclose(moved.sum(1), 1)
    assert moved[1].argmax() == 0 and moved[2].argmax() == 1  # 0.55 at a 50/50 prior is < 0.5 at 30%
    assert np.argsort(moved[:, 1]).tolist() == np.argsort(probs[:, 1]).tolist()
    np.testing.assert_allclose(tl.curves.correct_prior(probs, [0.3, 0.7], [0.3, 0.7]), probs)


def test_a_constant_predictor_shows_itself_in_the_fair_metrics():
    y = np.array([0] * 70 + [1] * 30)
    always_functional = np.tile([0.9, 0.1], (100, 1))
    m = tl.curves.fair_metrics(y, always_functional, trained_at=[0.5, 0.5], natural=[0.7, 0.3])
    assert m["balanced_accuracy"] == 0.5 and m["roc_auc"] == 0.5  # ties everywhere: no ranking at all
    assert m["plain_accuracy"] == pytest.approx(0.7) and m["called_positive"] == 0.0


def test_fair_metrics_judge_each_decision_at_the_prior_the_metric_assumes():
    rng = np.random.default_rng(0)
    y = (rng.random(400) < 0.3).astype(int)
    score = rng.normal(size=400) + 1.2 * y  # a model trained at 50/50: its threshold sits between the classes
    p1 = 1 / (1 + np.exp(-(score - 0.6)))
    probs = np.stack([1 - p1, p1], 1)
    m = tl.curves.fair_metrics(y, probs, trained_at=[0.5, 0.5], natural=[0.7, 0.3])
    assert m["called_positive"] == pytest.approx((p1 > 0.5).mean())
    corrected = tl.curves.correct_prior(probs, [0.5, 0.5], [0.7, 0.3]).argmax(1)
    assert m["accuracy"] == pytest.approx((corrected == y).mean()) and m["accuracy"] > m["plain_accuracy"]
    recalls = [(probs.argmax(1)[y == c] == c).mean() for c in (0, 1)]
    assert m["balanced_accuracy"] == pytest.approx(np.mean(recalls))  # trained at 50/50: no correction


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
    assert rows[0]["plain_accuracy"] == pytest.approx(0.5) and rows[0]["called_positive"] == 1.0
    assert rows[0]["balanced_accuracy"] == pytest.approx(0.5)
    assert "confusion_matrix" not in rows[0] and rows[0]["seconds"] >= 0


def test_data_efficiency_curve_takes_fewer_seeds_at_the_sizes_it_is_told():
    labels = np.arange(60) % 2
    train_idx, test_idx = np.arange(40), np.arange(40, 60)
    constant = lambda train_idx, seed: np.tile([0.3, 0.7], (20, 1))  # noqa: E731
    rows = tl.curves.data_efficiency_curve({"a": constant, "b": constant}, labels, train_idx, test_idx,
                                           sizes=[2, None], seeds={2: [0, 1, 2], None: [0, 1]})
    runs = {(r["strategy"], r["per_class"]): sorted(x["seed"] for x in rows if (x["strategy"], x["per_class"])
                                                    == (r["strategy"], r["per_class"])) for r in rows}
    assert runs == {("a", 2): [0, 1, 2], ("b", 2): [0, 1, 2], ("a", None): [0, 1], ("b", None): [0, 1]}
    assert [r["runs"] for r in tl.curves.summarise(rows)] == [3, 3, 2, 2]


def test_fine_tuning_strategy_predicts_on_as_many_views_as_asked():
    labels, features, activations, _ = _data()
    views = [activations, activations.flip(-1)]
    train_idx, test_idx = np.arange(30), np.arange(30, 40)
    settings = dict(seed=1, min_steps=3, batch_size=16, device="cpu")
    model, _ = tl.fine_tune_top(tiny_top(), views, labels, train_idx, tl.curves.budget(30, 16, 3)["epochs"],
                                head_init=tl.fit_probe(features[train_idx], labels[train_idx]), batch_size=16,
                                seed=1, device="cpu", progress=False)
    one = tl.curves.fine_tuning_strategy(tiny_top(), views, features, labels, test_idx, train_idx, test_views=1, **settings)
    both = tl.curves.fine_tuning_strategy(tiny_top(), views, features, labels, test_idx, train_idx, **settings)
    np.testing.assert_allclose(one, tl.predict(model, [activations[test_idx]], device="cpu", channels_last=True), atol=1e-6)
    np.testing.assert_allclose(both, tl.predict(model, [v[test_idx] for v in views], device="cpu", channels_last=True),
                               atol=1e-6)
    assert not np.allclose(one, both)


def test_data_efficiency_curve_judges_small_sets_and_the_full_split_at_the_same_prior():
    labels = np.array([0] * 30 + [1] * 10 + [0, 1] * 10)  # training split 75% class 0, test cells balanced
    train_idx, test_idx = np.arange(40), np.arange(40, 60)
    row = lambda train_idx, seed: np.tile([0.45, 0.55], (20, 1))  # noqa: E731  leans to class 1, constant
    rows = tl.curves.data_efficiency_curve({"a": row}, labels, train_idx, test_idx, sizes=[5, None], seeds=[0])
    small, full = rows
    # trained at 50/50, judged at the split's 75/25: 0.55 becomes class 0 for the accuracy...
    assert small["accuracy"] == pytest.approx(0.5) and small["plain_accuracy"] == pytest.approx(0.5)
    assert full["called_positive"] == 1.0 and small["called_positive"] == 1.0
    # ...and the full split's model, trained at 75/25, is judged at 50/50 for the balanced accuracy
    balanced = tl.curves.correct_prior(np.tile([0.45, 0.55], (20, 1)), [0.75, 0.25], [0.5, 0.5])
    assert balanced[0].argmax() == 1 and full["balanced_accuracy"] == pytest.approx(0.5)


def _rows(scratch_acc, transfer_acc, sizes=(5, None), seconds=(10.0, 1.0), metric="balanced_accuracy"):
    rows = []
    for size, s_acc, t_acc in zip(sizes, scratch_acc, transfer_acc):
        for seed, noise in enumerate((-0.01, 0.0, 0.01)):
            n = 1000 if size is None else 2 * size
            rows.append({"strategy": "from scratch", "per_class": size, "n_train": n, "seed": seed,
                         "seconds": seconds[0], metric: s_acc + noise, "roc_auc": 0.5})
            rows.append({"strategy": "feature extraction", "per_class": size, "n_train": n, "seed": seed,
                         "seconds": seconds[1], metric: t_acc + noise, "roc_auc": 0.5})
    return rows


def test_summary_reports_mean_and_spread_over_seeds():
    summary = tl.curves.summarise(_rows([0.6, 0.8], [0.85, 0.9]))
    first = summary[0]
    assert first["strategy"] == "from scratch" and first["per_class"] == 5 and first["n_train"] == 10
    assert first["runs"] == 3 and first["balanced_accuracy_mean"] == pytest.approx(0.6)
    assert first["balanced_accuracy_std"] == pytest.approx(0.01)
    assert [(r["strategy"], r["per_class"]) for r in summary] == [
        ("from scratch", 5), ("feature extraction", 5), ("from scratch", None), ("feature extraction", None)]
    single = tl.curves.summarise(_rows([0.6], [0.8])[:2])
    assert single[0]["balanced_accuracy_std"] == 0.0  # one seed: no spread, not NaN


def test_format_summary_has_a_line_per_strategy_and_size_in_percent():
    text = tl.curves.format_summary(tl.curves.summarise(_rows([0.6, 0.8], [0.85, 0.9])))
    lines = text.splitlines()
    assert len(lines) == 1 + 4 and "balanced acc." in lines[0] and "ROC AUC" in lines[0]
    assert "full" in lines[3] and "1000" in lines[3] and "80.0 ± 1.0" in lines[3] and "50.0 ± 0.0" in lines[3]
    assert "60.0 ± 1.0" in lines[1] and "10.0 ± 0.0" in lines[1]


# ---------------------------------------------------------------- the verdict, claim by claim

def _summary_row(accuracy, std=0.01, runs=3, n_train=10, seconds=1.0):
    return {"balanced_accuracy_mean": accuracy, "balanced_accuracy_std": std, "runs": runs, "n_train": n_train,
            "seconds_mean": seconds}


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
    assert "balanced acc." in text
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


def test_verdict_judges_the_metric_it_is_given():
    rows = _rows([0.6, 0.8], [0.85, 0.9])  # balanced accuracy says yes ...
    auc = [{**r, "roc_auc": 0.9 if r["strategy"] == "from scratch" else 0.7 + 0.001 * r["seed"]} for r in rows]
    on_auc = " ".join(tl.curves.data_efficiency_verdict(auc, metric="roc_auc"))  # ... AUC says no
    assert "Better ROC AUC than from scratch" in on_auc and "clearly better at 0 of 2" in on_auc and "NOT shown" in on_auc
    assert "clearly better at 2 of 2" in " ".join(tl.curves.data_efficiency_verdict(auc, metric="balanced_accuracy"))
    with pytest.raises(KeyError):
        tl.curves.data_efficiency_verdict(rows, metric="accuracy")  # not measured: no silent fallback


# ---------------------------------------------------------------- three situations side by side

def test_transfer_gains_are_the_mean_differences_with_their_standard_error():
    gains = tl.curves.transfer_gains(_rows([0.6, 0.8], [0.85, 0.9]), "feature extraction")
    assert list(gains) == [5, None]
    assert gains[5][0] == pytest.approx(0.25) and gains[None][0] == pytest.approx(0.1)
    assert gains[5][1] == pytest.approx(np.sqrt(2 * 0.01 ** 2 / 3))


def test_gain_follows_distance_says_yes_only_when_the_orders_agree():
    distances = {"faces": 1.0, "cells": 5.0, "digits": 9.0}
    yes = tl.curves.gain_follows_distance({"faces": 0.3, "cells": 0.1, "digits": -0.2}, distances)
    assert "shrinks in the same order" in yes and yes.index("faces") < yes.index("cells") < yes.index("digits")
    no = tl.curves.gain_follows_distance({"faces": 0.1, "cells": 0.3, "digits": -0.2}, distances)
    assert "does NOT shrink" in no and "cells +30.0" in no and "within two standard errors" not in no
    noisy = tl.curves.gain_follows_distance({"faces": 0.3, "cells": 0.1, "digits": -0.2}, distances,
                                            noise={"faces": 0.01, "cells": 0.06, "digits": 0.2})
    assert "shrinks in the same order" in noisy and "The gains of cells, digits are within two standard errors" in noisy


def test_verdict_has_three_claims_per_transfer_strategy_and_compares_neighbours():
    rows = _rows([0.6, 0.8], [0.85, 0.9])
    rows += [{**r, "strategy": "fine-tuning", "balanced_accuracy": r["balanced_accuracy"] + 0.05} for r in rows
             if r["strategy"] == "feature extraction"]
    verdict = tl.curves.data_efficiency_verdict(rows, overhead_seconds={"fine-tuning": 0.1})
    assert len(verdict) == 3 * 2 + 1
    assert verdict[-1].startswith("Where the data disagree (balanced acc.): fine-tuning beats feature extraction clearly at")
    assert "101.0 s (10.1x SLOWER)" in verdict[5]  # 1 s of training + 0.1 s for each of 1000 images
