"""Benchmark on the published ELPV protocol (Deitsch et al., Solar Energy 2019), on a CPU.

    python benchmarks/elpv.py --out results.json --predictions predictions.csv

Protocol: ``tl.elpv_split(seed=0)`` (1968 train / 656 test, stratified on probability x module
type); binary target "probability > 0.5"; every choice (regularisation, ...) is made on
``tl.validation_split(train_idx, seed=<training seed>)``, never on the test cells; training
seeds 0, 1, 2 with the split fixed. Frozen-feature extraction is cached on disk, counted once
and reported on its own. ``--quick`` is a smoke run on a small subset (structure, not accuracy).

Levers of the recipe (issue 16) are flags: ``--backbone``, ``--map-size``, ``--pooling``,
``--average-last``, ``--head-from-probe``. Choose them with ``--validation``, which trains each
seed on the fit part of the training cells and scores it on that seed's validation part, never
reading a test label (and writes no report); ``--strategies`` runs only some strategies::

    python benchmarks/elpv.py --validation --strategies fine_tune_top --pooling avgmax --out val.json

Time is reported in seconds and in *CPU units* (:func:`cpu_unit_seconds`), measured at the start
of the same run, so that a budget travels between machines: the whole benchmark's is
``BUDGET_UNITS``.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
import threading
import time
from math import inf
from pathlib import Path

import numpy as np
import psutil
import torch

import tlcourse as tl
from tlcourse.data import elpv_strata

HERE = Path(__file__).resolve().parent

#: ``fine_tune_top`` trains every stage after this one (and a new head) on its cached maps, with the library's
#: recipe (``tl.finetune.BENCHMARK_RECIPE``): the cut, the epochs, the maps' size and the settings were chosen on
#: validation splits of the training cells (RESULTS.md). BatchNorm adapts (the cells are not ImageNet photos);
#: label smoothing because a third of the "defective" labels come from raters who disagreed; a one-cycle
#: schedule with a short warm-up.
RECIPE = tl.finetune.BENCHMARK_RECIPE
FINE_TUNE_CUT, FINE_TUNE_EPOCHS, FINE_TUNE_MAP_SIZE = RECIPE["cut"], RECIPE["epochs"], RECIPE["map_size"]
FINE_TUNE = RECIPE["settings"]
#: The views the probes train on: the cell as it is and turned by a quarter turn (a quarter turn changes
#: the features most; half turns and flips much less), and the views of the fine-tuned top: all four turns.
PROBE_TURNS, MAP_TURNS = (0, 1), tuple(RECIPE["turns"])
#: The stages whose pooled outputs the multi-stage probe concatenates.
PROBE_LAYERS = ("stage3", "stage4", "stage5", "stage6", "stage7", "features")
#: The whole benchmark's time budget, in CPU units (issue 16: about 30 minutes on a 2-core AMD EPYC).
BUDGET_UNITS = 45
#: One CPU unit is the wall time of this work: EfficientNet-Lite0's forward pass over as many images as
#: ELPV has (164 batches of 16 = 2,624), at 160 px, on 2 threads.
UNIT_BATCHES, UNIT_BATCH_SIZE, UNIT_SIZE, UNIT_THREADS = 164, 16, 160, 2


# ---------------------------------------------------------------- measuring

class PeakMemory:
    """Peak resident memory (MiB) of this process while the block runs, sampled every 20 ms."""

    def __enter__(self) -> "PeakMemory":
        self.peak_mb, self._stop = _rss_mb(), threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak_mb = max(self.peak_mb, _rss_mb())

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, _rss_mb())


def _rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages (psutil emulates them on Windows, where they start at 0)."""
    return list(psutil.getloadavg())


def cpu_unit_seconds(batches: int = UNIT_BATCHES, repeats: int = 2) -> float:
    """Seconds that one CPU unit takes on this machine, now: the yardstick of the time budget.

    A plain EfficientNet-Lite0 (timm, random weights, eval mode, channels last) runs 164 batches of
    16 random 3x160x160 images on 2 threads under ``torch.inference_mode``: one warm-up batch, then
    the best of ``repeats`` timed passes (the unit that issue 16 defines). Fewer
    ``batches`` (the smoke run) are timed and scaled to 164: an estimate. The global random state
    and the thread count are left as they were.
    """
    import timm

    with torch.random.fork_rng(devices=[]), tl.torch_threads(UNIT_THREADS):
        torch.manual_seed(0)
        model = timm.create_model("efficientnet_lite0", pretrained=False).eval()
        model = model.to(memory_format=torch.channels_last)
        batch = torch.randn(UNIT_BATCH_SIZE, 3, UNIT_SIZE, UNIT_SIZE).contiguous(memory_format=torch.channels_last)
        best = inf
        with torch.inference_mode():
            model(batch)  # warm-up: allocations and kernel selection happen on the first call
            for _ in range(repeats):
                start = time.perf_counter()
                for _ in range(batches):
                    model(batch)
                best = min(best, time.perf_counter() - start)
    return best * UNIT_BATCHES / batches


def budget_verdict(seconds: float, unit_seconds: float, budget_units: float = BUDGET_UNITS) -> str:
    """One line: the run's wall time in seconds and in CPU units, and whether it kept the budget."""
    units = seconds / unit_seconds
    within = "within" if units <= budget_units else "OVER"
    return (f"whole benchmark: {seconds:.0f} s = {units:.1f} CPU units of {unit_seconds:.1f} s "
            f"({within} the budget of {budget_units:g} units = {budget_units * unit_seconds:.0f} s here)")


def machine_description() -> dict:
    """What ran the benchmark: CPU, cores, threads, library versions, and how busy the machine was."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": model,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(tl.device()),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "tlcourse": tl.__version__,
        "load_average_start": load_average(),
    }


# ---------------------------------------------------------------- the data

def select_cells(quick: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(cells, train_idx, test_idx)``: every cell, or a small stratified subset for ``--quick``."""
    train_idx, test_idx = tl.elpv_split(seed=0)
    if not quick:
        return np.arange(len(tl.load_elpv())), train_idx, test_idx
    strata = elpv_strata()  # 10 training and 4 test cells of each module type x defect probability
    train_idx = tl.per_class_subset(strata, 10, indices=train_idx)
    test_idx = tl.per_class_subset(strata, 4, indices=test_idx)
    return np.union1d(train_idx, test_idx), train_idx, test_idx


def subset_factory(cells: np.ndarray):
    """``load_elpv``, restricted to ``cells`` (features row i belongs to cell ``cells[i]``)."""
    everything = len(cells) == len(tl.load_elpv())

    def factory(transform=None):
        ds = tl.load_elpv(transform=transform)
        return ds if everything else torch.utils.data.Subset(ds, cells.tolist())

    return factory


# ---------------------------------------------------------------- strategies
# Each strategy maps (seed, train positions, test positions) to test probabilities of "defective".

def majority(ctx, seed, train, test):
    """Always the training set's majority class (its frequency as the probability, so AUC is 0.5)."""
    return np.full(len(test), ctx.y[train].mean())


def probe_strategy(views_key):
    """A logistic-regression probe on cached views; C chosen on the validation split of this seed."""
    def run(ctx, seed, train, test):
        views = ctx.views[views_key]
        fit, val = ctx.validation(seed)
        C, scores = tl.probes.choose_C(views, ctx.y, fit, val, candidates=ctx.Cs)
        ctx.notes.setdefault(views_key, {})[seed] = {"C": C, "validation_accuracy": scores[C]}
        probe = tl.fit_probe([v[train] for v in views], ctx.y[train], C=C)
        return tl.predict(probe, [v[test] for v in views])[:, 1]
    return run


def small_cnn(ctx, seed, train, test):
    """tl.SmallCNN from scratch on 64 px grey cells in random poses, one-cycle AdamW (lesson 04's strategy)."""
    return tl.curves.from_scratch_strategy(ctx.small, ctx.y, test, train, seed=seed, epochs=ctx.cnn_epochs,
                                           batch_size=64, width=ctx.cnn_width)[:, 1]


def fine_tune_top(ctx, seed, train, test):
    """The stages above ``ctx.cut`` plus a new head, fine-tuned on cached maps of the four quarter
    turns of every cell (eight poses with ``--mirrors``; one random view per cell and step),
    predictions averaged over the views.
    ``ctx.levers`` holds the options of the third round (pooling, weight averaging, a warm start)."""
    tl.seed_everything(seed)  # the new head's initial weights
    _, top = tl.split_at(ctx.backbone, ctx.cut)
    levers = dict(ctx.levers)
    if levers.pop("head_from_probe", False):  # LP-FT: the head starts from a probe on the pooled final features
        fit, val = ctx.validation(seed)
        C, _ = tl.probes.choose_C(ctx.views["final"], ctx.y, fit, val, candidates=ctx.Cs)
        levers["head_init"] = tl.fit_probe([v[train] for v in ctx.views["final"]], ctx.y[train], C=C)
    model, _ = tl.fine_tune_top(tl.replace_head(top, 2), ctx.maps, ctx.y, train, epochs=ctx.ft_epochs, seed=seed,
                                progress=False, **FINE_TUNE, **levers)
    return tl.predict(model, [view[test] for view in ctx.maps], channels_last=True)[:, 1]


class Context:
    """Everything the strategies share: labels, cached views, the validation split per seed.

    With ``nested`` (the ``--validation`` mode), each seed is scored on its validation part, so the
    choices a strategy makes inside (its C, ...) use a validation part carved from the fit part.
    """

    def __init__(self, cells, train_cells, y, types, Cs, nested: bool = False):
        self.cells, self.train_cells, self.y, self.types, self.Cs = cells, train_cells, y, types, Cs
        self.position = {int(c): i for i, c in enumerate(cells)}
        self.views: dict[str, list[np.ndarray]] = {}
        self.notes: dict = {}
        self.levers: dict = {}
        self.nested = nested

    def positions(self, cells) -> np.ndarray:
        """Rows of the cached arrays that hold these cells."""
        return np.array([self.position[int(c)] for c in cells], dtype=int)

    def scored(self, seed, test_cells) -> tuple[np.ndarray, np.ndarray]:
        """``(train, scored)`` positions of this seed: the train and test splits, or with ``nested``
        the fit and validation parts of the training cells (the test cells are never read)."""
        if not self.nested:
            return self.positions(self.train_cells), self.positions(test_cells)
        fit_cells, val_cells = tl.validation_split(self.train_cells, seed=seed)
        return self.positions(fit_cells), self.positions(val_cells)

    def validation(self, seed):
        """Rows of the fit and validation parts carved from the cells this seed trains on (``tl.validation_split``)."""
        fit_cells, val_cells = tl.validation_split(self.train_cells, seed=seed)
        if self.nested:  # the validation part is what this seed is scored on: choose inside the fit part
            fit_cells, val_cells = tl.validation_split(fit_cells, seed=seed)
        return self.positions(fit_cells), self.positions(val_cells)


# ---------------------------------------------------------------- main

METRICS = ("accuracy", "balanced_accuracy", "roc_auc", "accuracy_mono", "accuracy_poly")
STRATEGY_NAMES = ["majority", "raw_pixels_logreg", "small_cnn_scratch", "linear_probe", "multi_stage_probe",
                  "rotation_ensemble_probe", "fine_tune_top"]


def summarise(name: str, runs: list[dict]) -> dict:
    """Mean and std over seeds of every reported metric (``tl.curves.summarise``), and the accuracy per seed."""
    summary = tl.curves.summarise([{"strategy": name, **run} for run in runs], metrics=METRICS)[0]
    out = {key: float(value) for key, value in summary.items() if key.endswith(("_mean", "_std"))}
    out["accuracy_per_seed"] = [float(r["accuracy"]) for r in runs]
    return out


def markdown_table(results: dict) -> str:
    """The results table; ``units`` is the strategy's train+predict and features time in CPU units."""
    rows = ["| strategy | accuracy | balanced acc. | ROC AUC | mono | poly | train+predict s (3 seeds) | features s (once) | units | peak MiB |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in results["strategies"].items():
        pct = lambda k: f"{100 * r[k + '_mean']:.2f} ± {100 * r[k + '_std']:.2f}"
        rows.append(f"| {name} | {pct('accuracy')} | {pct('balanced_accuracy')} | {pct('roc_auc')} | "
                    f"{100 * r['accuracy_mono_mean']:.2f} | {100 * r['accuracy_poly_mean']:.2f} | "
                    f"{r['wall_seconds']:.1f} | {r['extraction_seconds']:.1f} | {r['units']:.2f} | {r['peak_memory_mb']:.0f} |")
    return "\n".join(rows)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("results.json"))
    parser.add_argument("--predictions", type=Path, default=Path("predictions.csv"))
    parser.add_argument("--report", type=Path, default=None,
                        help="Markdown report (default: benchmarks/RESULTS.md; none with --quick)")
    parser.add_argument("--quick", action="store_true", help="tiny smoke run: structure, not accuracy")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="training seeds (default 0 1 2; 0 1 with --quick)")
    parser.add_argument("--size", type=int, default=160, help="backbone input size in px")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all cores)")
    parser.add_argument("--unit-seconds", type=float, default=None, metavar="S",
                        help="reuse a CPU unit measured in this sitting (an earlier run's first line) instead of "
                             "measuring it again: for a series of --validation runs")
    levers = parser.add_argument_group("levers of the recipe (choose them with --validation)")
    levers.add_argument("--validation", action="store_true",
                        help="score each seed on the validation part of the training cells, never the test cells "
                             "(writes no report)")
    levers.add_argument("--strategies", nargs="+", choices=STRATEGY_NAMES, default=None, metavar="NAME",
                        help=f"run only these strategies ({', '.join(STRATEGY_NAMES)})")
    levers.add_argument("--backbone", default=tl.models.DEFAULT_BACKBONE, choices=list(tl.models.BUNDLED_BACKBONES))
    levers.add_argument("--map-size", type=int, default=FINE_TUNE_MAP_SIZE,
                        help=f"input size of the fine-tuned top's maps (default {FINE_TUNE_MAP_SIZE}, the recipe's)")
    levers.add_argument("--pooling", default="avg", choices=("avg", "avgmax", "gem"),
                        help="the fine-tuned head's pooling (tl.fine_tune_top's pooling)")
    levers.add_argument("--average-last", type=int, default=0, metavar="K",
                        help="average the weights of the last K epochs (SWA)")
    levers.add_argument("--head-from-probe", action="store_true", help="start the head from a fitted probe (LP-FT)")
    levers.add_argument("--mirrors", action="store_true",
                        help="cache the maps of the mirror images' four turns too: the top trains and predicts on "
                             "all eight poses of a cell (8-view test-time augmentation)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    size = 64 if args.quick else args.size
    seeds = args.seeds or ([0, 1] if args.quick else [0, 1, 2])
    turns = PROBE_TURNS
    report = args.report if args.report is not None else (None if args.quick or args.validation else HERE / "RESULTS.md")
    if args.validation and args.report is not None:
        parser.error("--validation scores the validation parts, not the protocol's test split: it writes no report")
    if args.unit_seconds and report is not None:
        parser.error("--unit-seconds is for a series of --validation runs: a run that writes the report measures its own unit")
    map_size = 64 if args.quick else args.map_size
    chosen = args.strategies or STRATEGY_NAMES
    command = "python " + " ".join([str(Path(sys.argv[0]))] + (argv if argv is not None else sys.argv[1:]))
    started = time.perf_counter()
    machine = machine_description()

    # ---- the yardstick first: one CPU unit on this machine, in this sitting
    unit_batches = 0 if args.unit_seconds else 2 if args.quick else UNIT_BATCHES
    with tl.Timer() as timer:
        unit = args.unit_seconds or cpu_unit_seconds(batches=unit_batches)
    cpu_unit = {"seconds": unit, "measured_batches": unit_batches, "estimated": unit_batches not in (0, UNIT_BATCHES),
                "given": bool(args.unit_seconds), "measuring_seconds": timer.seconds, "threads": UNIT_THREADS,
                "load_average": load_average()}
    how = ("given with --unit-seconds, not measured by this run" if cpu_unit["given"] else
           f"estimated from {unit_batches} batches" if cpu_unit["estimated"] else "")
    print(f"CPU unit: {unit:.1f} s (EfficientNet-Lite0 forward, {UNIT_BATCHES} x {UNIT_BATCH_SIZE} images at "
          f"{UNIT_SIZE} px, {UNIT_THREADS} threads{'; ' + how if how else ''})", flush=True)

    ds = tl.load_elpv()
    cells, train_cells, test_cells = select_cells(args.quick)
    ctx = Context(cells, train_cells, ds.labels[cells], ds.module_types[cells], Cs=(0.01,) if args.quick else (0.003, 0.01, 0.03),
                  nested=args.validation)
    ctx.levers = {"pooling": args.pooling, "average_last": args.average_last, "head_from_probe": args.head_from_probe}
    ctx.cnn_width, ctx.cnn_epochs = (8, 1) if args.quick else (16, 10)

    # ---- frozen features: one backbone pass per rotation, cached on disk, timed once
    backbone = tl.load_backbone(args.backbone)
    extraction = {"size": size, "layers": list(PROBE_LAYERS), "views": []}
    views = []
    for turn in turns:
        cache_before = tl.cache_size()
        with tl.Timer() as timer, PeakMemory() as memory:
            feats = tl.extract_views(backbone, size=size, turns=[turn], layer=list(PROBE_LAYERS),
                                     dataset=subset_factory(cells), progress=not args.quick)[0]
        views.append(feats)
        extraction["views"].append({"quarter_turns": turn, "seconds": timer.seconds,
                                    "from_cache": tl.cache_size() == cache_before,
                                    "images_per_second": len(cells) / timer.seconds, "peak_memory_mb": memory.peak_mb})
        print(f"features, {90 * turn:3d} deg: {timer.seconds:6.1f} s ({len(cells) / timer.seconds:.0f} images/s"
              f"{', from the cache' if extraction['views'][-1]['from_cache'] else ''})", flush=True)
    view_seconds = [v["seconds"] for v in extraction["views"]]
    # ---- activation maps below the fine-tuned stages: one pass per quarter turn, cached, timed once
    ctx.backbone, ctx.cut, ctx.ft_epochs = backbone, FINE_TUNE_CUT, 1 if args.quick else FINE_TUNE_EPOCHS
    map_turns = MAP_TURNS[:2] if args.quick else MAP_TURNS
    cache_before = tl.cache_size()
    with tl.Timer() as timer, PeakMemory() as memory:
        map_mirrors = (False, True) if args.mirrors else (False,)
        ctx.maps = [] if "fine_tune_top" not in chosen else tl.extract_views(
            backbone, size=map_size, turns=map_turns, layer=ctx.cut, pool=False, dataset=subset_factory(cells),
            progress=not args.quick, mirrors=map_mirrors)
    extraction["maps"] = {"stage": ctx.cut, "size": map_size, "quarter_turns": list(map_turns) if ctx.maps else [],
                          "mirrors": list(map_mirrors) if ctx.maps else [],
                          "shape": [len(ctx.maps), *ctx.maps[0].shape] if ctx.maps else [],
                          "seconds": timer.seconds, "from_cache": tl.cache_size() == cache_before,
                          "peak_memory_mb": memory.peak_mb}
    if ctx.maps:
        print(f"{ctx.cut} maps, {len(map_turns)} quarter turns{' of the cells and their mirror images' if args.mirrors else ''} "
              f"at {map_size} px: {timer.seconds:6.1f} s", flush=True)
    ctx.views["final"] = [views[0]["features"].numpy()]
    ctx.views["multi"] = [tl.stack_layers(views[0]).numpy()]
    ctx.views["rotations"] = [tl.stack_layers(v).numpy() for v in views]
    with tl.Timer() as timer:
        ctx.views["pixels"] = [tl.cells_as_tensor(ds.images[cells], 32).flatten(1).numpy()]
        ctx.small = tl.cells_as_tensor(ds.images[cells], 32 if args.quick else 64)
    extraction["small_images_seconds"] = timer.seconds

    strategies = {
        "majority": (majority, 0.0),
        "raw_pixels_logreg": (probe_strategy("pixels"), 0.0),
        "small_cnn_scratch": (small_cnn, 0.0),
        "linear_probe": (probe_strategy("final"), view_seconds[0]),
        "multi_stage_probe": (probe_strategy("multi"), view_seconds[0]),
        "rotation_ensemble_probe": (probe_strategy("rotations"), sum(view_seconds)),
        "fine_tune_top": (fine_tune_top, extraction["maps"]["seconds"]),
    }
    assert list(strategies) == STRATEGY_NAMES
    results = {"strategies": {}, "extraction": extraction}
    rows = []
    for name, (run, extraction_seconds) in strategies.items():
        if name not in chosen:
            continue
        per_seed = []
        with tl.Timer() as timer, PeakMemory() as memory:
            for seed in seeds:
                train, test = ctx.scored(seed, test_cells)
                prob = np.asarray(run(ctx, seed, train, test), dtype=float)
                metrics = tl.classification_metrics(ctx.y[test], prob, groups=ctx.types[test])
                per_seed.append(metrics)
                predicted = (prob >= 0.5).astype(int)
                rows += [(name, seed, int(c), int(p)) for c, p in zip(ctx.cells[test], predicted)]
        summary = summarise(name, per_seed)
        summary.update(wall_seconds=timer.seconds, extraction_seconds=extraction_seconds,
                       total_seconds=timer.seconds + extraction_seconds,
                       units=(timer.seconds + extraction_seconds) / unit, peak_memory_mb=memory.peak_mb,
                       seeds=list(seeds))
        if name in ("raw_pixels_logreg", "linear_probe", "multi_stage_probe", "rotation_ensemble_probe"):
            key = {"raw_pixels_logreg": "pixels", "linear_probe": "final", "multi_stage_probe": "multi",
                   "rotation_ensemble_probe": "rotations"}[name]
            summary["chosen_on_validation"] = {str(s): v for s, v in ctx.notes.get(key, {}).items()}
        results["strategies"][name] = summary
        print(f"{name:26s} accuracy {100 * summary['accuracy_mean']:.2f} ± {100 * summary['accuracy_std']:.2f}"
              f"  ({timer.seconds:.1f} s)", flush=True)

    machine["load_average_end"] = load_average()
    results["machine"] = machine
    results["protocol"] = {"split_seed": 0, "train": len(train_cells), "test": len(test_cells), "quick": args.quick,
                           "scored_on": "validation parts of the training cells" if args.validation else "test split",
                           "target": "probability > 0.5", "index": "position in elpv_dataset.utils.load_dataset() order"}
    results["levers"] = {"backbone": args.backbone, "size": size, "map_size": map_size, "mirrors": args.mirrors,
                         **ctx.levers}
    results["cpu_unit"] = cpu_unit
    results["budget_units"] = BUDGET_UNITS
    results["wall_seconds_total"] = time.perf_counter() - started  # the unit's own measurement included
    results["units_total"] = results["wall_seconds_total"] / unit
    results["command"] = command

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=_jsonable))
    with open(args.predictions, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["strategy", "seed", "index", "predicted"])
        writer.writerows(rows)
    table = markdown_table(results)
    print(table)
    print(budget_verdict(results["wall_seconds_total"], unit))
    if report is not None:
        write_report(report, results, table)
    return results


def _jsonable(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    raise TypeError(type(value))


def unit_line(results: dict) -> str:
    """The report's sentence on the CPU unit and the whole run's time in units."""
    unit = results["cpu_unit"]
    load = f"load average {unit['load_average'][0]:.1f}" if unit["load_average"] else "load average unknown"
    estimated = f"; estimated from {unit['measured_batches']} batches" if unit["estimated"] else ""
    verdict = budget_verdict(results["wall_seconds_total"], unit["seconds"], results["budget_units"])
    return (f"CPU unit: **{unit['seconds']:.1f} s**, measured at the start of this run ({load}{estimated}). "
            f"{verdict[0].upper()}{verdict[1:]}; measuring the unit took {unit['measuring_seconds']:.0f} s of it.")


def write_report(path: Path, results: dict, table: str) -> None:
    """Replace the generated block of RESULTS.md (between the markers) with this run's table."""
    m = results["machine"]
    block = "\n".join([
        "<!-- generated by benchmarks/elpv.py: begin -->",
        f"Command: `{results['command']}`",
        "",
        f"Machine: {m['cpu']}, {m['cpu_count']} cores, torch {m['torch']} with {m['torch_threads']} threads, "
        f"Python {m['python']}; load average {m['load_average_start'][0]:.1f} at start, "
        f"{m['load_average_end'][0]:.1f} at the end (the benchmark itself counts for about "
        f"{m['torch_threads']}; more means other jobs shared the cores).",
        "",
        unit_line(results),
        "",
        f"Whole benchmark: **{results['wall_seconds_total']:.0f} s** wall. Feature extraction (once, "
        f"{results['extraction']['size']} px): " + ", ".join(
            f"{90 * v['quarter_turns']}°: {v['seconds']:.0f} s{' (cache hit)' if v['from_cache'] else ' (computed)'}"
            for v in results["extraction"]["views"]) + "; "
        f"{results['extraction']['maps']['stage']} maps of {len(results['extraction']['maps']['quarter_turns'])} quarter turns"
        f"{' and their mirror images' if len(results['extraction']['maps'].get('mirrors', [])) > 1 else ''} at "
        f"{results['extraction']['maps']['size']} px: "
        f"{results['extraction']['maps']['seconds']:.0f} s{' (cache hit)' if results['extraction']['maps']['from_cache'] else ' (computed)'}.",
        "",
        table,
        "<!-- generated by benchmarks/elpv.py: end -->",
    ])
    text = path.read_text() if path.exists() else "# ELPV benchmark results\n\n<!-- generated by benchmarks/elpv.py: begin -->\n<!-- generated by benchmarks/elpv.py: end -->\n"
    begin, end = "<!-- generated by benchmarks/elpv.py: begin -->", "<!-- generated by benchmarks/elpv.py: end -->"
    if begin in text and end in text:
        text = text[: text.index(begin)] + block + text[text.index(end) + len(end):]
    else:
        text += "\n" + block + "\n"
    path.write_text(text)


if __name__ == "__main__":
    main()
