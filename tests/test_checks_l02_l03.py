"""Checks of lessons 02 and 03: they pass the reference answers, name the typical mistakes, read
"not attempted yet" for placeholders, never raise, and refuse malformed evidence."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import tlcourse as tl
from tlcourse.grading.checks import lesson_tasks

from check_helpers import (Hostile, answer_of, check_output, fails_with, forged_evidence_never_passes,
                           hidden_test_verdict, lenient_evidence, notebook_fixtures, only_the_hidden_test_fails,
                           passes, reads_not_attempted, task_ids)

NOTEBOOKS = {"02": "02_feature_extraction.ipynb", "03": "03_fine_tuning.ipynb"}
TASKS = task_ids(NOTEBOOKS)
reference, placeholders = notebook_fixtures(NOTEBOOKS)


@pytest.fixture(autouse=True)
def private_cache():
    """Overrides conftest's private cache for this module. The ``reference`` fixture runs the solution
    notebooks, which extract the lessons' 160 px ELPV features into the lessons' cache; the checks
    judge with those same features, so they read that cache instead of extracting all 2,624
    cells again into a private one (about a minute on 2 cores). The notebooks write only entries
    a learner's own run of those notebooks would write (those features, solution 03's stage-6 maps)."""
    yield


def test_each_lesson_has_at_least_four_tasks():
    for lesson in NOTEBOOKS:
        assert len(lesson_tasks(lesson)) >= 4


@pytest.mark.parametrize("task_id", TASKS)
def test_every_check_passes_the_referenceanswer_of(reference, task_id):
    passes(task_id, answer_of(reference, task_id))


@pytest.mark.parametrize("task_id", TASKS)
def test_every_hidden_test_passes_the_referenceanswer_of(reference, task_id):
    verdict = hidden_test_verdict(task_id, answer_of(reference, task_id))
    assert verdict.passed, verdict.message


@pytest.mark.parametrize("task_id", TASKS)
def test_every_placeholder_reads_not_attempted_yet(placeholders, task_id):
    reads_not_attempted(task_id, answer_of(placeholders, task_id))


# ---------------------------------------------------------------- lesson 02

def _split_variant(mistake: str):
    def split_features(features, labels, seed=0):
        train_idx, test_idx = tl.elpv_split(0 if mistake == "ignores_seed" else seed)
        if mistake == "val_from_all":
            fit_idx, val_idx = tl.validation_split(np.arange(len(labels)), seed)
        else:
            fit_idx, val_idx = tl.validation_split(train_idx, 0 if mistake == "ignores_seed" else seed)
        if mistake == "fit_is_train":
            fit_idx = train_idx
        y_idx = {"shuffled_labels": np.roll(fit_idx, 1)}.get(mistake, fit_idx)
        return {"fit": (features[fit_idx], labels[y_idx]), "val": (features[val_idx], labels[val_idx]),
                "test": (features[test_idx], labels[test_idx])}

    return split_features


def test_split_names_the_typical_mistakes():
    fails_with("02.split", _split_variant("val_from_all"), "Test leakage")
    fails_with("02.split", _split_variant("fit_is_train"), "overlap")
    fails_with("02.split", _split_variant("shuffled_labels"), "same indices")
    fails_with("02.split", lambda f, y, seed=0: (f, y), "keys")
    only_the_hidden_test_fails("02.split", _split_variant("ignores_seed"), "another seed")


def _metrics_variant(mistake: str):
    def fair_metrics(y_true, y_pred, groups):
        right = y_true == y_pred
        if mistake == "plain":
            balanced = right.mean()
        elif mistake == "precision":
            balanced = np.mean([right[y_pred == c].mean() for c in np.unique(y_pred)])
        elif mistake == "by_group":
            balanced = np.mean([right[groups == g].mean() for g in np.unique(groups)])
        else:
            balanced = np.mean([right[y_true == c].mean() for c in np.unique(y_true)])
        result = {"accuracy": right.mean(), "balanced_accuracy": balanced}
        result.update({f"accuracy_{g}": right[groups == g].mean() for g in np.unique(groups)})
        if mistake == "percent":
            result = {k: 100 * v for k, v in result.items()}
        if mistake == "fixed_keys":
            result = {k: v for k, v in result.items() if not k.startswith("accuracy_")}
            result["accuracy_mono"] = result["accuracy_poly"] = right.mean()
        return result

    return fair_metrics


@pytest.mark.parametrize("mistake, phrase", [
    ("plain", "equals the plain accuracy"),
    ("precision", "precision"),
    ("by_group", "module types"),
    ("percent", "not percentages"),
    ("fixed_keys", "`accuracy_mono` is off"),
])
def test_metrics_names_the_typical_mistakes(mistake, phrase):
    fails_with("02.metrics", _metrics_variant(mistake), phrase)


def test_metrics_hidden_test_tries_other_groups():
    """Hard-coded mono/poly keys pass the check's case but not the hidden test's other group names."""
    def mono_poly_only(y_true, y_pred, groups):
        right = y_true == y_pred
        result = {"accuracy": right.mean(),
                  "balanced_accuracy": np.mean([right[y_true == c].mean() for c in np.unique(y_true)])}
        result.update({f"accuracy_{g}": right[groups == g].mean() for g in ("mono", "poly")})
        return result

    only_the_hidden_test_fails("02.metrics", mono_poly_only)


def _embed_variant(mistake: str):
    def embed(model, images):
        if mistake != "train_mode":
            model.eval()
        x = images
        with torch.set_grad_enabled(mistake == "grad"):
            if mistake == "logits":
                return model(x)
            for stage in list(tl.stages(model).values())[:-1]:
                x = stage(x)
        return {"unpooled": x, "flatten": x.flatten(1)}.get(mistake, x.mean(dim=(2, 3)))

    return embed


@pytest.mark.parametrize("mistake, phrase", [
    ("train_mode", "Call `model.eval()`"),
    ("logits", "classifier's outputs"),
    ("unpooled", "Average it over height and width"),
    ("flatten", "flattened"),
    ("grad", "carry gradients"),
])
def test_extract_names_the_typical_mistakes(mistake, phrase):
    fails_with("02.extract", _embed_variant(mistake), phrase)


def test_extract_hidden_test_tries_a_resnet():
    def efficientnet_only(model, images):
        model.eval()
        with torch.no_grad():
            return model.forward_head(model.forward_features(images), pre_logits=True)

    only_the_hidden_test_fails("02.extract", efficientnet_only, "ResNet")


def test_probe_names_the_typical_mistakes(reference):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    ns = reference["02"]
    x_all, labels, fit_idx, val_idx = ns["X"], ns["labels"], ns["fit_idx"], ns["val_idx"]
    train_idx = np.concatenate([fit_idx, val_idx])
    leaky = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=3000)).fit(x_all[train_idx], labels[train_idx])
    fails_with("02.probe", leaky, "Suspiciously good")
    weak = make_pipeline(StandardScaler(), LogisticRegression(C=1e-4)).fit(x_all[fit_idx[:40]], labels[fit_idx[:40]])
    fails_with("02.probe", weak, "below the target")
    four = make_pipeline(StandardScaler(), LogisticRegression(C=0.01, max_iter=2000)).fit(
        x_all[fit_idx], ns["cells"].labels4[fit_idx])
    fails_with("02.probe", four, "binary labels")
    fails_with("02.probe", 0.85, "fitted classifier")


def test_probe_accepts_a_linear_layer(reference):
    ns = reference["02"]
    passes("02.probe", tl.fit_probe(ns["x_fit"], ns["y_fit"]))


# ---------------------------------------------------------------- lesson 03

def _augment_variant(mistake: str):
    def augment(image):
        if mistake == "angle":
            from torchvision.transforms import v2
            return v2.RandomRotation(30)(image)
        if mistake == "crop":
            return image[..., 1:, 1:]
        flip = mistake != "rotations_only" and torch.rand(()) < 0.5
        if flip:
            image = image.flip(-1)
        if mistake == "flips_only":
            return image.flip(-2) if torch.rand(()) < 0.5 else image
        k = int(torch.randint(0, 4, ()))
        return torch.rot90(image, k, dims=(-2, -1))

    return augment


@pytest.mark.parametrize("mistake, phrase", [
    ("rotations_only", "add a random flip"),
    ("flips_only", "Only flips"),
    ("angle", "not a flip or a quarter turn"),
    ("crop", "shape"),
])
def test_augment_names_the_typical_mistakes(mistake, phrase):
    fails_with("03.augment", _augment_variant(mistake), phrase)


def test_augment_identity_is_not_an_augmentation():
    fails_with("03.augment", lambda image: image, "never changes")


def _groups_variant(mistake: str):
    def make_param_groups(model, head_lr, body_lr):
        head = list(tl.head(model).parameters())
        ids = {id(p) for p in head}
        body = [p for p in model.parameters() if id(p) not in ids and (p.requires_grad or mistake == "frozen")]
        if mistake == "swapped":
            head_lr, body_lr = body_lr, head_lr
        if mistake == "twice":
            return [{"params": head, "lr": head_lr}, {"params": list(model.parameters()), "lr": body_lr}]
        if mistake == "head_only":
            return [{"params": head, "lr": head_lr}]
        if mistake == "classifier_by_name":
            head = list(model.classifier.parameters())
        return [{"params": head, "lr": head_lr}, {"params": body, "lr": body_lr}]

    return make_param_groups


@pytest.mark.parametrize("mistake, phrase", [
    ("frozen", "frozen parameter tensors"),
    ("swapped", "swapped"),
    ("twice", "two groups"),
    ("head_only", "in no group"),
])
def test_groups_names_the_typical_mistakes(mistake, phrase):
    fails_with("03.groups", _groups_variant(mistake), phrase)


def test_groups_hidden_test_tries_a_resnet():
    only_the_hidden_test_fails("03.groups", _groups_variant("classifier_by_name"), "model.fc")


def _moved_variant(mistake: str):
    def relative_change(before, after):
        change = {}
        for (name, old), new in zip(tl.stages(before).items(), tl.stages(after).values()):
            if mistake == "per_tensor":
                change[name] = float(np.mean([((b - a).norm() / a.norm()).item()
                                              for a, b in zip(old.parameters(), new.parameters()) if a.norm() > 0]))
                continue
            tensors = (lambda m: m.state_dict().values()) if mistake == "buffers" else (lambda m: m.parameters())
            old_w = torch.cat([t.detach().flatten().float() for t in tensors(old)])
            new_w = torch.cat([t.detach().flatten().float() for t in tensors(new)])
            diff = (new_w - old_w).norm()
            change[name] = float({"absolute": diff, "after_norm": diff / new_w.norm()}.get(mistake, diff / old_w.norm()))
        return change

    return relative_change


@pytest.mark.parametrize("mistake, phrase", [
    ("absolute", "divide"),
    ("after_norm", "**before** training"),
    ("per_tensor", "one long"),
    ("buffers", "running statistics"),
])
def test_moved_names_the_typical_mistakes(mistake, phrase):
    fails_with("03.moved", _moved_variant(mistake), phrase)


def test_moved_matches_the_package_helper():
    passes("03.moved", tl.weight_change)


def _epoch_variant(mistake: str):
    def train_one_epoch(model, loader, optimizer, loss_fn):
        if mistake != "no_train":
            model.train()
        losses = []
        for x, y in loader:
            loss = loss_fn(model(x), y)
            if mistake != "no_zero_grad":
                optimizer.zero_grad()
            loss.backward()
            if mistake != "no_step":
                optimizer.step()
            losses.append(loss.item())
        return {"last": losses[-1], "sum": sum(losses)}.get(mistake, sum(losses) / len(losses))

    return train_one_epoch


@pytest.mark.parametrize("mistake, phrase", [
    ("no_step", "optimizer.step()"),
    ("no_zero_grad", "zero_grad"),
    ("no_train", "model.train()"),
    ("last", "last batch"),
    ("sum", "sum of the batch losses"),
])
def test_epoch_names_the_typical_mistakes(mistake, phrase):
    fails_with("03.epoch", _epoch_variant(mistake), phrase)


def test_epoch_accepts_the_unweighted_mean():
    passes("03.epoch", _epoch_variant("none"))


# ---------------------------------------------------------------- robustness

@pytest.mark.parametrize("task_id", TASKS)
def test_check_never_raises_on_hostile_answers(capsys, task_id):
    assert "❌" in check_output(capsys, task_id, Hostile())


@pytest.mark.parametrize("task_id", TASKS)
def test_malformed_or_partial_evidence_never_passes_a_hidden_test(reference, task_id):
    """The grader judges evidence written by a kernel it does not trust."""
    lenient = lenient_evidence(task_id, answer_of(reference, task_id))
    if task_id == "02.probe":  # the probe's evidence is the same in both modes, bar its flag
        lenient = {**lenient, "strict": False}
    forged_evidence_never_passes(task_id, lenient, may_raise=True)
