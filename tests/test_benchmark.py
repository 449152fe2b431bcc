"""The ELPV benchmark's smoke run writes results that anyone can re-score (structure, not accuracy)."""
from __future__ import annotations

import contextlib
import csv
import importlib.util
import io
import json
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest

import tlcourse as tl

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
STRATEGIES = {"majority", "raw_pixels_logreg", "small_cnn_scratch", "linear_probe", "multi_stage_probe",
              "rotation_ensemble_probe", "fine_tune_top"}
METRICS = {"accuracy_mean", "accuracy_std", "balanced_accuracy_mean", "balanced_accuracy_std", "roc_auc_mean",
           "roc_auc_std", "accuracy_mono_mean", "accuracy_poly_mean", "wall_seconds", "extraction_seconds",
           "units", "peak_memory_mb"}


def _load(name):
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class QuickRun(NamedTuple):
    results: dict  # results.json, read back
    predictions: Path
    results_path: Path
    printed: str  # what the run printed
    report: str  # the Markdown report it wrote


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory) -> QuickRun:
    out = tmp_path_factory.mktemp("benchmark")
    results, predictions, report = out / "results.json", out / "predictions.csv", out / "RESULTS.md"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        _load("elpv").main(["--quick", "--out", str(results), "--predictions", str(predictions), "--threads", "1",
                            "--report", str(report)])
    return QuickRun(json.loads(results.read_text()), predictions, results, printed.getvalue(), report.read_text())


@pytest.mark.slow
def test_results_json_has_every_strategy_with_its_metrics_and_the_machine(quick_run):
    results = quick_run.results
    assert set(results["strategies"]) == STRATEGIES
    for name, metrics in results["strategies"].items():
        assert METRICS <= set(metrics), f"{name} lacks {METRICS - set(metrics)}"
        assert 0 <= metrics["accuracy_mean"] <= 1 and metrics["wall_seconds"] >= 0
    assert {"cpu", "cpu_count", "torch_threads", "torch"} <= set(results["machine"])
    assert results["extraction"]["views"] and all(v["seconds"] >= 0 for v in results["extraction"]["views"])


@pytest.mark.slow
def test_time_is_reported_in_cpu_units_measured_in_the_same_run(quick_run):
    results = quick_run.results
    unit = results["cpu_unit"]
    assert unit["seconds"] > 0 and unit["threads"] == 2 and unit["estimated"] and unit["measured_batches"] < 164
    assert results["budget_units"] == 45
    assert results["units_total"] == pytest.approx(results["wall_seconds_total"] / unit["seconds"])
    assert unit["measuring_seconds"] < results["wall_seconds_total"]  # measured inside the run it bounds
    for metrics in results["strategies"].values():
        assert metrics["units"] == pytest.approx(metrics["total_seconds"] / unit["seconds"])
    printed = quick_run.printed
    assert printed.index(f"CPU unit: {unit['seconds']:.1f} s") < printed.index("features, ")  # at the start
    assert f"= {results['units_total']:.1f} CPU units of {unit['seconds']:.1f} s" in printed.splitlines()[-1]
    assert f"**{unit['seconds']:.1f} s**" in quick_run.report and f"{results['units_total']:.1f} CPU units" in quick_run.report
    assert "| units |" in quick_run.report and f"| {results['strategies']['fine_tune_top']['units']:.2f} |" in quick_run.report


def test_cpu_unit_times_lite0_forward_on_2_threads_and_restores_the_threads(monkeypatch):
    import timm
    import torch

    elpv = _load("elpv")
    calls = []
    real_create = timm.create_model

    def spy_create(name, pretrained):
        model = real_create(name, pretrained=pretrained)
        calls.append(("create", name, pretrained))
        real_forward = model.forward

        def forward(x):
            calls.append(("forward", tuple(x.shape), x.is_contiguous(memory_format=torch.channels_last),
                          torch.get_num_threads(), torch.is_inference_mode_enabled(), model.training))
            return real_forward(x)

        model.forward = forward
        return model

    monkeypatch.setattr(timm, "create_model", spy_create)
    threads, rng = torch.get_num_threads(), torch.random.get_rng_state()
    seconds = elpv.cpu_unit_seconds(batches=2, repeats=2)
    assert seconds > 0
    assert calls[0] == ("create", "efficientnet_lite0", False)
    assert calls[1:] == [("forward", (16, 3, 160, 160), True, 2, True, False)] * (1 + 2 * 2)  # warm-up, 2 x 2
    assert torch.get_num_threads() == threads and torch.equal(torch.random.get_rng_state(), rng)


def test_budget_verdict_says_when_a_run_is_over_the_budget():
    elpv = _load("elpv")
    assert "900 s = 45.0 CPU units of 20.0 s (within the budget of 45 units = 900 s here)" in elpv.budget_verdict(900, 20)
    assert "OVER" in elpv.budget_verdict(901, 20) and "OVER" not in elpv.budget_verdict(10, 20)


def test_a_given_unit_is_refused_where_the_run_writes_the_report(tmp_path, capsys):
    elpv = _load("elpv")
    with pytest.raises(SystemExit):
        elpv.main(["--unit-seconds", "40", "--out", str(tmp_path / "r.json"), "--report", str(tmp_path / "R.md")])
    assert "--unit-seconds is for a series of --validation runs" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()


@pytest.mark.slow
def test_predictions_csv_names_test_cells_in_load_dataset_order(quick_run):
    results, predictions = quick_run.results, quick_run.predictions
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
    predictions, results = quick_run.predictions, quick_run.results_path
    problems = _load("rescore").rescore(predictions, results, check_order=False)
    assert problems == []


def test_rescorer_rebuilds_the_same_split_as_tlcourse():
    rescore = _load("rescore")
    labels, types, probabilities, _ = rescore.load_reference()
    ds = tl.load_elpv()
    assert np.array_equal(labels, ds.labels) and np.array_equal(types, ds.module_types)
    for mine, theirs in zip(rescore.reference_split(probabilities, types), tl.elpv_split(seed=0)):
        assert np.array_equal(mine, theirs)


def _validation_run(tmp_path, monkeypatch, flip_test_labels: bool) -> tuple[dict, list[dict]]:
    """A quick ``--validation`` run with every lever on; optionally with the test cells' labels flipped."""
    if flip_test_labels:
        real_load = tl.load_elpv
        _, test_idx = tl.elpv_split(seed=0)

        def flipped(*args, **kwargs):
            ds = real_load(*args, **kwargs)
            labels = ds.labels.copy()
            labels[test_idx] = 1 - labels[test_idx]
            monkeypatch.setattr(ds, "labels", labels)
            return ds

        monkeypatch.setattr(tl, "load_elpv", flipped)
    results, predictions = tmp_path / "val.json", tmp_path / "val.csv"
    with contextlib.redirect_stdout(io.StringIO()):
        _load("elpv").main(["--quick", "--validation", "--strategies", "linear_probe", "fine_tune_top",
                            "--pooling", "avgmax", "--average-last", "1", "--head-from-probe",
                            "--out", str(results), "--predictions", str(predictions), "--threads", "1"])
    with open(predictions, newline="") as handle:
        return json.loads(results.read_text()), list(csv.DictReader(handle))


@pytest.mark.slow
def test_validation_mode_scores_validation_parts_and_never_reads_a_test_label(tmp_path, monkeypatch):
    results, rows = _validation_run(tmp_path / "a", monkeypatch, flip_test_labels=False)
    assert set(results["strategies"]) == {"linear_probe", "fine_tune_top"}
    assert results["protocol"]["scored_on"].startswith("validation")
    assert results["levers"]["pooling"] == "avgmax" and results["levers"]["head_from_probe"]
    train_idx, test_idx = tl.elpv_split(seed=0)
    scored = {int(r["index"]) for r in rows}
    assert scored and scored <= set(train_idx.tolist()) and not scored & set(test_idx.tolist())
    quick_train = _load("elpv").select_cells(quick=True)[1]
    for seed in (0, 1):  # each seed is scored on its own validation part of the (quick) training cells
        for name in results["strategies"]:
            cells = [int(r["index"]) for r in rows if r["seed"] == str(seed) and r["strategy"] == name]
            assert sorted(cells) == sorted(tl.validation_split(quick_train, seed=seed)[1].tolist())
    flipped, flipped_rows = _validation_run(tmp_path / "b", monkeypatch, flip_test_labels=True)
    assert flipped_rows == rows  # the same predictions with every test label flipped: none was read
    for name in results["strategies"]:
        assert flipped["strategies"][name]["accuracy_mean"] == results["strategies"][name]["accuracy_mean"]


def test_validation_mode_writes_no_report(tmp_path):
    with pytest.raises(SystemExit):
        with contextlib.redirect_stderr(io.StringIO()):
            _load("elpv").main(["--quick", "--validation", "--report", str(tmp_path / "R.md")])
