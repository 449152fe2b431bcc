"""Lesson 05's exercise tasks: the data set's own pixel statistics, a linear probe per stage, the
mono/poly shift, and the MMD between two samples of embeddings.

Learner functions are called on inputs built here: ELPV's images and split, and synthetic data
made from a seed. The in-notebook check uses fixed seeds; the hidden test adds inputs drawn fresh
for each grading run (:func:`checks.challenge`), and the judge, in the grader's process, recomputes
the answer on those inputs with the package's own helpers, never from a stored number.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from ... import data, probes, shift
from ..checks import (Task, Verdict, call_answer, describe_error, fresh_random, function_evidence, hint, judge_cases,
                      never_raises, passed, register)


def _number(value) -> float | None:
    """``value`` as a float when it is a single real number (Python, NumPy or torch), else None."""
    try:
        array = np.asarray(value.detach().cpu() if hasattr(value, "detach") else value)
    except Exception:
        return None
    if array.size != 1 or not np.issubdtype(array.dtype, np.number) or array.dtype == bool:
        return None
    return float(array.reshape(()))


# ---------------------------------------------------------------- 05.stats

STATS_STEP = 4  # every 4th pixel in each direction: the same statistics to 3 decimals, 16 times less work


def _stats_cases(strict: bool) -> list[tuple[str, str, int]]:
    """(case, kind, seed): ELPV's pixels with the training split of a seed, or synthetic images made
    from a seed. The hidden test's split seed and synthetic images are drawn for this run."""
    cases = [("ELPV (every 4th pixel), split seed 0", "elpv", 0)]
    if strict:
        rng = fresh_random(71)
        split = rng.randrange(1, 2**31)
        cases += [(f"ELPV (every 4th pixel), split seed {split}", "elpv", split),
                  ("synthetic images, brighter test part", "synthetic", rng.randrange(1, 2**31))]
    return cases


@lru_cache(maxsize=1)
def _elpv_pixels() -> np.ndarray:
    return np.ascontiguousarray(data.ELPV().images[:, ::STATS_STEP, ::STATS_STEP])


@lru_cache(maxsize=4)
def _stats_inputs(kind: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if kind == "elpv":
        return _elpv_pixels(), data.elpv_split(seed)[0]
    rng = np.random.default_rng(seed)
    n, side, n_train = int(rng.integers(50, 80)), int(rng.integers(12, 20)), int(rng.integers(30, 45))
    images = rng.integers(0, 120, size=(n, side, side)).astype(np.uint8)
    order = rng.permutation(n)
    train_idx, rest = np.sort(order[:n_train]), order[n_train:]
    images[rest] += np.uint8(100)              # the cells outside the training split are brighter
    images[train_idx[rng.integers(n_train)]] = 0  # one dark image: averaging per-image stds is then clearly wrong
    return images, train_idx


@lru_cache(maxsize=16)
def _stats_reference(kind: str, seed: int, variant: str = "right") -> tuple[float, float]:
    images, train_idx = _stats_inputs(kind, seed)
    pixels = (images if variant == "all" else images[train_idx]).astype(np.float64) / 255
    if variant == "per_image":
        return float(pixels.mean()), float(pixels.reshape(len(pixels), -1).std(axis=1).mean())
    return float(pixels.mean()), float(pixels.std())


def _stats_case(answer, name: str, kind: str, seed: int) -> dict:
    images, train_idx = _stats_inputs(kind, seed)
    result, problem = call_answer(answer, images.copy(), train_idx.copy())
    if problem:
        return {"case": name, **problem}
    try:
        mean, std = result
    except Exception:
        return {"case": name, "shape": type(result).__name__}
    return {"case": name, "mean": _number(mean), "std": _number(std)}


def stats_evidence(answer, strict: bool) -> dict:
    return function_evidence(answer, _stats_cases(strict), _stats_case)


def _stats_verdict(case: dict, expected: tuple, where: str) -> Verdict | None:
    _, kind, seed = expected
    tol = 2e-4
    if "mean" not in case:
        return hint(f"`pixel_stats` should return a pair `(mean, std)` {where}.")
    mean, std = case["mean"], case["std"]
    if mean is None or std is None:
        return hint("The mean and the std should each be a single number over all training pixels, "
                    "not an array: do not give an `axis`.")
    ref_mean, ref_std = _stats_reference(kind, seed)
    if abs(mean - ref_mean) <= tol and abs(std - ref_std) <= tol:
        return None
    if abs(mean - 255 * ref_mean) <= 255 * tol:
        return hint("These statistics are in pixel units (0-255). The model's input is scaled to [0, 1] "
                    "before normalising: divide by 255.")
    all_mean, all_std = _stats_reference(kind, seed, "all")
    if abs(mean - all_mean) <= tol and abs(std - all_std) <= tol:
        return hint(f"You used every image, test cells included {where}. Statistics that shape the "
                    "input are part of training: compute them on `images[train_idx]` only.")
    if abs(mean - ref_mean) <= tol and abs(std - _stats_reference(kind, seed, "per_image")[1]) <= tol:
        return hint(f"The std is the average of each image's own std {where}: that leaves out how much "
                    "the images differ from each other. Take one std over all training pixels together.")
    if abs(mean - ref_mean) <= tol:
        return hint(f"The mean is right; the std is {std:.4f} instead of the std of all training pixels "
                    f"in [0, 1] {where}.")
    return hint(f"The mean should be {'in [0, 1]' if mean > 1 else 'that of all training pixels'} {where}: "
                "select `images[train_idx]`, scale to [0, 1], and take one mean and one std.")


def stats_judge(evidence: dict, strict: bool) -> Verdict:
    return judge_cases(
        evidence, _stats_cases(strict), _stats_verdict, answer="pixel_stats",
        should_be="a function `pixel_stats(images, train_idx)`", where="(case: {0})",
    ) or passed("These are the statistics `tl.preprocess(size, mean=..., std=...)` takes. Lesson 05 found "
                "that they matter much less than the distance in content.")


register(Task("05.stats", "The data set's own pixel statistics", points=1, answer="pixel_stats",
              evidence=stats_evidence, judge=never_raises(stats_judge)))


# ---------------------------------------------------------------- 05.stages

def _stages_cases(strict: bool) -> list[tuple[str, int, bool]]:
    """(case name, data seed, maps as torch tensors): the hidden test's maps are drawn for this run."""
    cases = [("synthetic maps, 2 layers", 0, False)]
    if strict:
        cases += [("synthetic maps drawn for this run, torch tensors", fresh_random(72).randrange(1, 2**31), True)]
    return cases


@lru_cache(maxsize=4)
def _stages_data(seed: int) -> tuple[dict, np.ndarray, np.ndarray, np.ndarray]:
    """Activation maps (N, C, H, W) per layer; the label depends on spatial means and maxima.

    Seed 0 gives two fixed layers; another seed draws 3 or 4 layers, their names and shapes."""
    rng = np.random.default_rng(300 + seed)
    n = 240
    if seed == 0:
        shapes = {"layer_a": (4, 5, 5), "layer_b": (6, 3, 3)}
    else:
        names = rng.permutation(["early", "middle", "late", "stem", "block3", "top"])[:int(rng.integers(3, 5))]
        shapes = {str(name): (int(rng.integers(3, 9)), int(side), int(side))
                  for name, side in zip(names, rng.integers(2, 7, size=len(names)))}
    maps = {name: rng.normal(size=(n, *shape)).astype(np.float32) for name, shape in shapes.items()}
    first = next(iter(maps.values()))
    score = first[:, 0].mean(axis=(1, 2)) * 3 + first[:, 1].max(axis=(1, 2)) + rng.normal(scale=0.4, size=n)
    labels = (score > np.median(score)).astype(np.int64)
    order = rng.permutation(n)
    return maps, labels, np.sort(order[:160]), np.sort(order[160:])


@lru_cache(maxsize=32)
def _stages_reference(seed: int, variant: str = "right") -> tuple[tuple[str, int, float], ...]:
    maps, labels, fit_idx, eval_idx = _stages_data(seed)
    pool = {"right": lambda m: m.mean(axis=(2, 3)), "max": lambda m: m.max(axis=(2, 3)),
            "flatten": lambda m: m.reshape(len(m), -1), "channels": lambda m: m.mean(axis=1).reshape(len(m), -1),
            "fit": lambda m: m.mean(axis=(2, 3))}[variant]
    evaluate = fit_idx if variant == "fit" else eval_idx
    rows = []
    for name, m in maps.items():
        x = pool(m)
        rows.append((name, x.shape[1], probes.probe_accuracy(x, labels, fit_idx, evaluate)))
    return tuple(rows)


def _stages_case(answer, name: str, seed: int, as_tensor: bool) -> dict:
    import torch

    maps, labels, fit_idx, eval_idx = _stages_data(seed)
    given = {k: (torch.tensor(v) if as_tensor else v.copy()) for k, v in maps.items()}
    rows, problem = call_answer(answer, given, labels.copy(), fit_idx.copy(), eval_idx.copy())
    if problem:
        return {"case": name, **problem}
    try:
        described = [{"layer": str(r["layer"]), "dims": _number(r["dims"]), "accuracy": _number(r["accuracy"])}
                     for r in list(rows)[:20]]
    except Exception as err:
        return {"case": name, "malformed": describe_error(err)}
    return {"case": name, "rows": described}


def stages_evidence(answer, strict: bool) -> dict:
    return function_evidence(answer, _stages_cases(strict), _stages_case)


def _stages_verdict(case: dict, expected: tuple, where: str) -> Verdict | None:
    seed = expected[1]
    if "rows" not in case:
        return hint("`stage_probe` should return a list of dicts with the keys `layer`, `dims` and `accuracy`.")
    rows = case["rows"]
    reference = _stages_reference(seed)
    if [r["layer"] for r in rows] != [name for name, _, _ in reference]:
        return hint(f"Expected one row per layer, in the order of the dict: {[n for n, _, _ in reference]} {where}.")
    n_eval = len(_stages_data(seed)[3])
    tol = 1.01 / n_eval
    variants = {v: _stages_reference(seed, v) for v in ("flatten", "channels", "max", "fit")}
    for i, (row, (layer, dims, accuracy)) in enumerate(zip(rows, reference)):
        if row["dims"] == variants["flatten"][i][1]:
            return hint(f"Layer `{layer}` gives {row['dims']:g} features: you flattened the whole map. "
                        "Pool it first: average over the two spatial axes (`maps.mean(axis=(2, 3))`), "
                        "one number per channel.")
        if row["dims"] == variants["channels"][i][1] and row["dims"] != dims:
            return hint(f"Layer `{layer}` gives {row['dims']:g} features, one per position: you averaged "
                        "over the channels (axis 1). Average over height and width (axes 2 and 3) instead.")
        if row["dims"] != dims:
            return hint(f"Layer `{layer}` should give {dims} pooled features (one per channel), "
                        f"not {row['dims']}.")
        if row["accuracy"] is not None and abs(row["accuracy"] - accuracy) <= tol:
            continue
        if row["accuracy"] is not None and abs(row["accuracy"] - variants["fit"][i][2]) <= tol:
            return hint(f"The accuracy of `{layer}` is measured on the cells the probe trained on. "
                        f"Score it on `eval_idx` {where}.")
        if row["accuracy"] is not None and abs(row["accuracy"] - variants["max"][i][2]) <= tol:
            return hint(f"`{layer}` was max-pooled. The backbone's own head reads the *average* over "
                        "positions: pool with the mean, as the probes of lesson 05 do.")
        return hint(f"The accuracy of `{layer}` differs from the reference {where}: pool each map with "
                    "its mean over positions, then use `tl.probe_accuracy(pooled, labels, fit_idx, eval_idx)`.")
    return None


def stages_judge(evidence: dict, strict: bool) -> Verdict:
    return judge_cases(
        evidence, _stages_cases(strict), _stages_verdict, answer="stage_probe",
        should_be="a function `stage_probe(activations, labels, fit_idx, eval_idx)`", where="(case: {0})",
    ) or passed("One pooled vector per stage, one probe each: that is how lesson 05 read off which "
                "layers transfer.")


register(Task("05.stages", "A linear probe on every stage", points=2, answer="stage_probe",
              evidence=stages_evidence, judge=never_raises(stages_judge), time_limit=60))


# ---------------------------------------------------------------- 05.shift

def _shift_cases(strict: bool) -> list[tuple[str, int, str, str]]:
    """(case name, data seed, train_on, test_on): the hidden test adds cells drawn for this run."""
    cases = [("synthetic cells A, mono -> poly", 0, "mono", "poly"), ("synthetic cells A, mono -> mono", 0, "mono", "mono")]
    if strict:
        seed = fresh_random(73).randrange(1, 2**31)
        cases += [("synthetic cells drawn for this run, poly -> mono", seed, "poly", "mono"),
                  ("synthetic cells drawn for this run, poly -> poly", seed, "poly", "poly"),
                  ("synthetic cells drawn for this run, mono -> poly", seed, "mono", "poly")]
    return cases


@lru_cache(maxsize=4)
def _shift_data(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Features whose defect direction differs between two module types, and a 70/30 split."""
    rng = np.random.default_rng(400 + seed)
    n, dims = (400, 16) if seed == 0 else (int(rng.integers(360, 440)), int(rng.integers(12, 20)))
    types = np.where(rng.random(n) < 0.45, "mono", "poly")
    labels = (rng.random(n) < 0.35).astype(np.int64)
    direction = {"mono": rng.normal(size=dims), "poly": rng.normal(size=dims)}
    offset = {"mono": rng.normal(size=dims), "poly": rng.normal(size=dims)}
    features = rng.normal(size=(n, dims))
    for t in ("mono", "poly"):
        features[types == t] += offset[t] + 0.6 * np.outer(labels[types == t], direction[t])
    order = rng.permutation(n)
    cut = int(0.7 * n)
    return features.astype(np.float32), labels, types, np.sort(order[:cut]), np.sort(order[cut:])


@lru_cache(maxsize=64)
def _shift_reference(seed: int, train_on: str, test_on: str, variant: str = "right") -> float:
    features, labels, types, train_idx, test_idx = _shift_data(seed)
    everything = np.arange(len(labels))
    fit_pool = {"whole": everything, "notype": train_idx}.get(variant, train_idx)
    fit = fit_pool if variant == "notype" else fit_pool[types[fit_pool] == train_on]
    eval_pool = {"eval_train": train_idx}.get(variant, test_idx)
    evaluate = eval_pool if variant == "eval_all" else eval_pool[types[eval_pool] == test_on]
    return probes.probe_accuracy(features, labels, fit, evaluate)


def _shift_case(answer, name: str, seed: int, train_on: str, test_on: str) -> dict:
    features, labels, types, train_idx, test_idx = _shift_data(seed)
    value, problem = call_answer(answer, features.copy(), labels.copy(), types.copy(), train_idx.copy(),
                                 test_idx.copy(), train_on, test_on, none_ok=True)
    return {"case": name, **problem} if problem else {"case": name, "none": value is None, "value": _number(value)}


def shift_evidence(answer, strict: bool) -> dict:
    return function_evidence(answer, _shift_cases(strict), _shift_case)


def _shift_verdict(case: dict, expected: tuple, where: str) -> Verdict | None:
    _, seed, train_on, test_on = expected
    value = case["value"]
    if value is None:
        return hint(f"`cross_type_accuracy` should return one accuracy, a number {where}.")
    if value > 1:
        return hint("Give the accuracy as a fraction in [0, 1], not in percent.")
    n_test = len(_shift_data(seed)[4])
    tol = 1.01 / n_test / 2
    if abs(value - _shift_reference(seed, train_on, test_on)) <= tol:
        return None
    for variant, message in [
        ("whole", f"The probe trained on every {train_on} cell, test cells included: take the "
                  f"{train_on} cells of `train_idx` only, or the test set leaks into training."),
        ("eval_train", f"You scored the probe on {test_on} cells of the training split. Score it on the "
                       f"{test_on} cells of `test_idx`."),
        ("notype", f"The probe trained on every training cell, not only the {train_on} ones: select "
                   f"`train_idx[types[train_idx] == train_on]`."),
        ("eval_all", f"You scored the probe on every test cell, not only the {test_on} ones: select "
                     f"`test_idx[types[test_idx] == test_on]`."),
    ]:
        if abs(value - _shift_reference(seed, train_on, test_on, variant)) <= tol:
            return hint(f"{message} {where}")
    return hint(f"The accuracy differs from the reference {where}. Train with "
                "`tl.probe_accuracy(features, labels, fit_cells, test_cells)` on the `train_on` cells of "
                "the training split and score it on the `test_on` cells of the test split.")


def shift_judge(evidence: dict, strict: bool) -> Verdict:
    return judge_cases(
        evidence, _shift_cases(strict), _shift_verdict, answer="cross_type_accuracy",
        should_be="a function `cross_type_accuracy(features, labels, types, train_idx, test_idx, train_on, test_on)`",
        where="(case: {0})",
    ) or passed("Train on one kind, test on the other, and never let a test cell into training: "
                "the gap to the in-domain score is the price of the shift.")


register(Task("05.shift", "Train on one module type, test on the other", points=2, answer="cross_type_accuracy",
              evidence=shift_evidence, judge=never_raises(shift_judge)))


# ---------------------------------------------------------------- 05.mmd

def _mmd_cases(strict: bool) -> list[tuple[str, int, int, int, int, float, float, bool]]:
    """(case name, data seed, n_a, n_b, dims, offset of b, bandwidth, as torch tensors): the hidden
    test's samples, their sizes, the shift and the bandwidth are drawn for this run."""
    cases = [("30 vs 40 points in 5-D, b shifted", 0, 30, 40, 5, 0.8, 2.0, False)]
    if strict:
        rng = fresh_random(74)
        n, dims = rng.randint(15, 35), rng.randint(2, 6)
        cases.append((f"{n} vs {n} points in {dims}-D, same distribution, torch tensors", rng.randrange(1, 2**31),
                      n, n, dims, 0.0, round(rng.uniform(0.8, 2.0), 3), True))
        n_a, n_b, dims = rng.randint(35, 60), rng.randint(12, 30), rng.randint(6, 10)
        cases.append((f"{n_a} vs {n_b} points in {dims}-D, b shifted far", rng.randrange(1, 2**31), n_a, n_b, dims,
                      round(rng.uniform(1.5, 2.5), 3), round(rng.uniform(2.5, 4.5), 3), False))
    return cases


@lru_cache(maxsize=8)
def _mmd_data(seed: int, n_a: int, n_b: int, dims: int, offset: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(500 + seed)
    return rng.normal(size=(n_a, dims)), rng.normal(size=(n_b, dims)) + offset


def _mmd_variant(a: np.ndarray, b: np.ndarray, bandwidth: float, variant: str) -> float:
    if variant == "right":
        return shift.mmd(a, b, bandwidth)
    if variant == "sqrt":
        return float(np.sqrt(max(shift.mmd(a, b, bandwidth), 0.0)))

    def sq(x, y):
        return ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)

    kernels = {"biased": lambda d2: np.exp(-d2 / (2 * bandwidth ** 2)), "no_half": lambda d2: np.exp(-d2 / bandwidth ** 2),
               "no_square": lambda d2: np.exp(-np.sqrt(d2) / (2 * bandwidth ** 2))}
    k = kernels[variant]
    kaa, kbb, kab = k(sq(a, a)), k(sq(b, b)), k(sq(a, b))
    if variant == "biased":
        return float(kaa.mean() + kbb.mean() - 2 * kab.mean())
    n, m = len(a), len(b)
    return float((kaa.sum() - np.trace(kaa)) / (n * (n - 1)) + (kbb.sum() - np.trace(kbb)) / (m * (m - 1)) - 2 * kab.mean())


def _mmd_case(answer, name: str, seed: int, n_a: int, n_b: int, dims: int, offset: float, bandwidth: float,
              as_tensor: bool) -> dict:
    import torch

    a, b = _mmd_data(seed, n_a, n_b, dims, offset)
    if as_tensor:
        a, b = torch.tensor(a, dtype=torch.float32), torch.tensor(b, dtype=torch.float32)
    else:
        a, b = a.copy(), b.copy()
    value, problem = call_answer(answer, a, b, bandwidth, none_ok=True)
    return {"case": name, **problem} if problem else {"case": name, "none": value is None, "value": _number(value)}


def mmd_evidence(answer, strict: bool) -> dict:
    return function_evidence(answer, _mmd_cases(strict), _mmd_case)


def _mmd_verdict(case: dict, expected: tuple, where: str) -> Verdict | None:
    _, seed, n_a, n_b, dims, offset, bandwidth, _ = expected
    value = case["value"]
    if value is None:
        return hint(f"`mmd_squared` should return one number {where}.")
    a, b = _mmd_data(seed, n_a, n_b, dims, offset)

    def near(variant: str) -> bool:
        expected_value = _mmd_variant(a, b, bandwidth, variant)
        return abs(value - expected_value) <= 1e-5 + 1e-4 * abs(expected_value)

    if near("right"):
        return None
    for variant, message in [
        ("biased", "You kept the diagonal terms k(x, x) = 1 in the within-sample means: that is the biased "
                   "estimate, which stays above 0 even for two samples of one distribution. Leave the "
                   "diagonal out: divide the off-diagonal sum by n (n - 1)."),
        ("no_half", "The kernel should be exp(-||x - y||² / (2 · bandwidth²)): the factor 2 is missing."),
        ("no_square", "The kernel takes the *squared* distance: exp(-||x - y||² / (2 · bandwidth²))."),
        ("sqrt", "That is the MMD itself; the task asks for its square (do not take the square root)."),
    ]:
        if near(variant):
            return hint(f"{message} {where}")
    return hint(f"Got {value:.5f}, which differs from the reference {where}. Compute the RBF kernel on every "
                "pair, average within a (without the diagonal), within b (without the diagonal), and "
                "subtract twice the average across.")


def mmd_judge(evidence: dict, strict: bool) -> Verdict:
    return judge_cases(
        evidence, _mmd_cases(strict), _mmd_verdict, answer="mmd_squared",
        should_be="a function `mmd_squared(a, b, bandwidth)`", where="(case: {0}, bandwidth {6})",
    ) or passed("Close to 0 for two samples of one distribution, larger as they move apart: "
                "the same number as `tlcourse.shift.mmd`.")


register(Task("05.mmd", "The MMD between two samples of embeddings", points=2, answer="mmd_squared",
              evidence=mmd_evidence, judge=never_raises(mmd_judge)))
