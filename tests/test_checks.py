"""In-notebook checks: they pass the reference answers, name the typical mistakes, read
"not attempted yet" for placeholders, and never raise."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import tlcourse as tl

from check_helpers import (FREEZE_PARAMETERS_ONLY, ROOT, Hostile, answer_of, check_output, define, fails_with,
                           forged_evidence_never_passes, lenient_evidence, notebook_fixtures, passes,
                           reads_not_attempted, task_ids)

NOTEBOOKS = {"01": "01_transfer_learning_basics.ipynb"}
TASKS = task_ids(NOTEBOOKS)
reference, placeholders = notebook_fixtures(NOTEBOOKS)


@pytest.mark.parametrize("task_id", TASKS)
def test_every_check_passes_the_reference_answer(reference, task_id):
    passes(task_id, answer_of(reference, task_id))


@pytest.mark.parametrize("task_id", TASKS)
def test_every_placeholder_reads_not_attempted_yet(placeholders, task_id):
    reads_not_attempted(task_id, answer_of(placeholders, task_id))


@tl.torch_threads(1)
def test_predict_names_the_typical_mistakes():
    backbone = tl.load_backbone()
    from skimage import data

    pairs = tl.classify_imagenet(backbone, data.brick(), topk=3)
    fails_with("01.predict", pairs, "keep only the names")
    fails_with("01.predict", [name for name, _ in pairs][::-1], "wrong order")
    fails_with("01.predict", [name for name, _ in tl.classify_imagenet(backbone, data.brick(), topk=5)], "3 most likely")
    fails_with("01.predict", [name for name, _ in tl.classify_imagenet(backbone, data.coffee(), topk=3)], "not the backbone's top 3")
    fails_with("01.predict", "window screen", "not a single string")


def _count_after(stage: str, trainable_only: bool = True) -> int:
    model = tl.freeze_until(tl.load_backbone(), stage)
    return tl.count_parameters(model, trainable_only=trainable_only)


def test_count_names_the_typical_mistakes():
    right = _count_after("stage4")
    total = _count_after("stage4", trainable_only=False)
    fails_with("01.count", total, "every parameter")
    fails_with("01.count", total - right, "frozen parameters")
    fails_with("01.count", _count_after("stage5"), "before `stage5`")
    fails_with("01.count", str(right), "whole number")
    passes("01.count", torch.tensor(right))  # a 0-d tensor is a number too


def _with_head(model: nn.Module) -> nn.Module:
    model.classifier = nn.Linear(1280, 2)
    return model


def test_head_names_the_typical_mistakes():
    fails_with("01.head", tl.load_backbone(), "still ends in the 1000-way")
    fails_with("01.head", nn.Sequential(tl.load_backbone(), nn.Linear(1000, 2)), "stacks a new layer")
    fails_with("01.head", _with_head(tl.load_backbone(pretrained=False)), "not the pretrained ones")
    wrong_layer = tl.load_backbone()
    wrong_layer.conv_head = nn.Conv2d(320, 2, 1)
    fails_with("01.head", wrong_layer, "wrong place")
    frozen = tl.freeze(_with_head(tl.load_backbone()))
    fails_with("01.head", frozen, "head is frozen")
    three = tl.load_backbone()
    three.classifier = nn.Linear(1280, 3)
    fails_with("01.head", three, "expect (1, 2)")
    fails_with("01.head", "model", "should be a model")


_requires_grad_only = define(FREEZE_PARAMETERS_ONLY, "freeze_body")


def _momentum_zero(model):
    _requires_grad_only(model)
    for layer in model.modules():
        if isinstance(layer, nn.BatchNorm2d):
            layer.momentum = 0.0
    return model


def _eval_inside(model):
    return _requires_grad_only(model).eval()


def _freeze_everything(model):
    return tl.freeze(model)


def _no_return(model):
    tl.freeze(model)
    tl.unfreeze(tl.head(model))


def test_batchnorm_names_the_typical_mistakes():
    fails_with("01.batchnorm", _requires_grad_only, "BatchNorm trap", "running mean")
    fails_with("01.batchnorm", _momentum_zero, "batch's own mean")
    fails_with("01.batchnorm", _eval_inside, "does not last")
    fails_with("01.batchnorm", _freeze_everything, "head is frozen too")
    fails_with("01.batchnorm", _no_return, "return model")


def _top_k_variant(mistake: str):
    def top_k(model, image, k=5):
        x = tl.preprocess(224)(image).unsqueeze(0)
        if mistake == "no_normalisation":
            x = x * 0.5 + 0.5
        if mistake != "no_eval":
            model.eval()
        with torch.no_grad():
            logits = model(x)
        scores = {"logits": logits, "dim0": logits.softmax(dim=0)}.get(mistake, logits.softmax(dim=1))[0]
        values, indices = scores.topk(k, largest=True)
        if mistake == "ascending":
            values, indices = values.flip(0), indices.flip(0)
        if mistake == "indices":
            return [(int(i), float(v)) for v, i in zip(values, indices)]
        names = tl.imagenet_classes()
        return [(names[i], float(v)) for v, i in zip(values, indices)]

    return top_k


@pytest.mark.parametrize("mistake, phrase", [
    ("no_eval", "Call `model.eval()`"),
    ("no_normalisation", "scaled to [-1, 1]"),
    ("logits", "logits, not probabilities"),
    ("dim0", "`dim=1`"),
    ("ascending", "most likely to the least likely"),
    ("indices", "not ints"),
])
def test_topk_names_the_typical_mistakes(mistake, phrase):
    fails_with("01.topk", _top_k_variant(mistake), phrase)


def test_topk_check_passes_a_correct_variant():
    passes("01.topk", _top_k_variant("none"))


@pytest.mark.parametrize("task_id, answer", [
    *((task_id, Hostile()) for task_id in TASKS),
    ("01.nope", 1),
    ("99.nope", 1),
    ("garbage", None),
])
def test_check_never_raises_and_always_says_something(capsys, task_id, answer):
    check_output(capsys, task_id, answer)


def test_check_without_an_answer_reads_not_attempted(capsys):
    tl.check("01.count")
    assert "not attempted yet" in capsys.readouterr().out


def test_task_modules_import_the_package_relatively():
    """The grader loads a fresh copy of the package; an absolute `import tlcourse` would bypass it."""
    paths = sorted((ROOT / "tlcourse" / "grading" / "tasks").glob("*.py"))
    assert paths, "no task modules found"
    for path in paths:
        text = path.read_text()
        assert "import tlcourse" not in text and "from tlcourse" not in text, path


@pytest.mark.parametrize("task_id", TASKS)
def test_malformed_or_partial_evidence_never_passes_a_hidden_test(reference, task_id):
    """The grader judges evidence written by a kernel it does not trust."""
    # the check's evidence lacks the hidden test's extra cases (01.predict and 01.count have none)
    partial = [lenient_evidence(task_id, answer_of(reference, task_id))] if task_id in (
        "01.batchnorm", "01.topk", "01.head") else []
    forged_evidence_never_passes(task_id, *partial, may_raise=True)
