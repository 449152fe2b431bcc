"""The ELPV benchmark's smoke run writes results that anyone can re-score (structure, not accuracy)."""
from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

import tlcourse as tl

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
STRATEGIES = {"majority", "raw_pixels_logreg", "small_cnn_scratch", "linear_probe", "multi_stage_probe",
              "rotation_ensemble_probe", "fine_tune_top"}
METRICS = {"accuracy_mean", "accuracy_std", "balanced_accuracy_mean", "balanced_accuracy_std", "roc_auc_mean",
           "roc_auc_std", "accuracy_mono_mean", "accuracy_poly_mean", "wall_seconds", "extraction_seconds",
           "peak_memory_mb"}


def _load(name):
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("benchmark")
    results, predictions = out / "results.json", out / "predictions.csv"
    _load("elpv").main(["--quick", "--out", str(results), "--predictions", str(predictions), "--threads", "1"])
    return json.loads(results.read_text()), predictions, results


@pytest.mark.slow
def test_results_json_has_every_strategy_with_its_metrics_and_the_machine(quick_run):
    results, _, _ = quick_run
    assert set(results["strategies"]) == STRATEGIES
    for name, metrics in results["strategies"].items():
        assert METRICS <= set(metrics), f"{name} lacks {METRICS - set(metrics)}"
        assert 0 <= metrics["accuracy_mean"] <= 1 and metrics["wall_seconds"] >= 0
    assert {"cpu", "cpu_count", "torch_threads", "torch"} <= set(results["machine"])
    assert results["extraction"]["views"] and all(v["seconds"] >= 0 for v in results["extraction"]["views"])


@pytest.mark.slow
def test_predictions_csv_names_test_cells_in_load_dataset_order(quick_run):
    results, predictions, _ = quick_run
    with open(predictions, newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
    assert reader.fieldnames == ["strategy", "seed", "index", "predicted"]
    _, test_idx = tl.elpv_split(seed=0)
    assert {int(r["index"]) for r in rows} <= set(test_idx.tolist())
    assert {int(r["predicted"]) for r in rows} <= {0, 1}
    assert {r["strategy"] for r in rows} == STRATEGIES
    seeds = {int(r["seed"]) for r in rows}
    assert len(seeds) >= 2 and all(np.isfinite(results["strategies"][s]["accuracy_std"]) for s in STRATEGIES)


@pytest.mark.slow
def test_independent_rescoring_agrees_with_results_json(quick_run):
    _, predictions, results = quick_run
    problems = _load("rescore").rescore(predictions, results, check_order=False)
    assert problems == []


def test_rescorer_rebuilds_the_same_split_as_tlcourse():
    rescore = _load("rescore")
    labels, types, probabilities, _ = rescore.load_reference()
    ds = tl.load_elpv()
    assert np.array_equal(labels, ds.labels) and np.array_equal(types, ds.module_types)
    for mine, theirs in zip(rescore.reference_split(probabilities, types), tl.elpv_split(seed=0)):
        assert np.array_equal(mine, theirs)
