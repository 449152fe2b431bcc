"""Re-score the ELPV benchmark from its predictions, without trusting tlcourse.

    python benchmarks/rescore.py predictions.csv results.json

Labels and module types come straight from ``elpv_dataset.utils.load_dataset()``; the 75/25
split is rebuilt here with scikit-learn (stratified on module type x defect probability, seed
0). The script checks that every (strategy, seed) predicts exactly the test cells, that its
accuracy, balanced accuracy and per-type accuracies match ``results.json``, and (with
``--check-order``) that ``tl.load_elpv()`` lists the cells in the same order as the package.
It exits with status 1 on any disagreement.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import defaultdict

import numpy as np
from sklearn.metrics import accuracy_score, balanced_accuracy_score
from sklearn.model_selection import train_test_split

TOLERANCE = 1e-9


def load_reference(with_images: bool = False):
    """Binary labels, module types (and images) in the order ``load_dataset()`` returns them."""
    from elpv_dataset.utils import load_dataset

    images, probabilities, types = load_dataset()
    labels = (probabilities > 0.5).astype(int)
    return labels, np.asarray(types), probabilities, (images if with_images else None)


def reference_split(probabilities, types, seed: int = 0):
    """Deitsch et al.'s split, rebuilt independently: (train, test) cell indices."""
    strata = [f"{t}{int(round(p * 3))}" for p, t in zip(probabilities, types)]
    train, test = train_test_split(np.arange(len(types)), test_size=0.25, random_state=seed, stratify=strata)
    return np.sort(train), np.sort(test)


def read_predictions(path) -> dict[tuple[str, int], tuple[np.ndarray, np.ndarray]]:
    """``{(strategy, seed): (indices, predicted)}`` from the CSV."""
    rows = defaultdict(list)
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames != ["strategy", "seed", "index", "predicted"]:
            raise ValueError(f"{path}: expected columns strategy,seed,index,predicted, got {reader.fieldnames}")
        for row in reader:
            rows[(row["strategy"], int(row["seed"]))].append((int(row["index"]), int(row["predicted"])))
    return {key: (np.array([i for i, _ in v]), np.array([p for _, p in v])) for key, v in rows.items()}


def rescore(predictions_path, results_path, check_order: bool = False) -> list[str]:
    """Every disagreement between the predictions, the reference labels and ``results.json`` (empty: all agree)."""
    labels, types, probabilities, images = load_reference(with_images=check_order)
    _, test = reference_split(probabilities, types)
    results = json.loads(open(results_path).read())
    quick = results.get("protocol", {}).get("quick", False)
    problems = []
    if check_order:
        problems += check_tlcourse_order(labels, types, probabilities, images)
    per_strategy = defaultdict(list)
    for (strategy, seed), (index, predicted) in sorted(read_predictions(predictions_path).items()):
        if len(set(index.tolist())) != len(index):
            problems.append(f"{strategy} seed {seed}: a cell is predicted twice")
        if not np.isin(index, test).all():
            problems.append(f"{strategy} seed {seed}: predicts cells outside the test split")
        if not quick and len(index) != len(test):
            problems.append(f"{strategy} seed {seed}: {len(index)} predictions for {len(test)} test cells")
        if not np.isin(predicted, (0, 1)).all():
            problems.append(f"{strategy} seed {seed}: predictions other than 0/1")
        y = labels[index]
        scores = {"accuracy": accuracy_score(y, predicted), "balanced_accuracy": balanced_accuracy_score(y, predicted)}
        for group in ("mono", "poly"):
            mask = types[index] == group
            scores[f"accuracy_{group}"] = accuracy_score(y[mask], predicted[mask])
        per_strategy[strategy].append(scores)
    reported = results["strategies"]
    if set(per_strategy) != set(reported):
        problems.append(f"strategies differ: CSV {sorted(per_strategy)}, JSON {sorted(reported)}")
    for strategy, runs in per_strategy.items():
        for key in ("accuracy", "balanced_accuracy", "accuracy_mono", "accuracy_poly"):
            mine = float(np.mean([r[key] for r in runs]))
            theirs = reported.get(strategy, {}).get(f"{key}_mean")
            if theirs is None or abs(mine - theirs) > TOLERANCE:
                problems.append(f"{strategy} {key}: rescored {mine:.6f}, results.json says {theirs}")
        accuracies = [100 * r["accuracy"] for r in runs]
        seeds = ", ".join(f"{a:.2f}" for a in accuracies)
        print(f"{strategy:26s} accuracy {np.mean(accuracies):6.2f} (per seed: {seeds})")
    return problems


def check_tlcourse_order(labels, types, probabilities, images) -> list[str]:
    """Does ``tl.load_elpv()`` hold the same cells, labels and split as the package itself?"""
    import tlcourse as tl

    ds = tl.load_elpv()
    problems = []
    if not np.array_equal(ds.images, images):
        problems.append("tl.load_elpv() images are not in load_dataset() order")
    if not np.array_equal(ds.labels, labels) or not np.array_equal(ds.module_types, types):
        problems.append("tl.load_elpv() labels or module types differ from load_dataset()")
    if not np.allclose(ds.probabilities, probabilities):
        problems.append("tl.load_elpv() probabilities differ from load_dataset()")
    for mine, theirs in zip(reference_split(probabilities, types), tl.elpv_split(seed=0)):
        if not np.array_equal(mine, theirs):
            problems.append("tl.elpv_split(0) differs from the independently rebuilt split")
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("predictions")
    parser.add_argument("results")
    parser.add_argument("--check-order", action="store_true",
                        help="also check tl.load_elpv() and tl.elpv_split() against the package (loads the images twice)")
    args = parser.parse_args(argv)
    problems = rescore(args.predictions, args.results, check_order=args.check_order)
    for problem in problems:
        print("DISAGREE:", problem)
    print("all agree" if not problems else f"{len(problems)} disagreement(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
