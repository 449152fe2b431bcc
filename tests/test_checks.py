"""In-notebook checks: they pass the reference answers, name the typical mistakes, read
"not attempted yet" for placeholders, and never raise."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import tlcourse as tl
from tlcourse.checks import get_task, lesson_tasks, run_check

from check_helpers import ROOT, fails_with, run_cells


@pytest.fixture(scope="module")
def reference():
    return run_cells(ROOT / "solutions" / "01_transfer_learning_basics.ipynb")


@pytest.fixture(scope="module")
def placeholders():
    return run_cells(ROOT / "exercises" / "01_transfer_learning_basics.ipynb")


@pytest.mark.parametrize("task_id", [t.id for t in lesson_tasks("01")])
def test_every_check_passes_the_reference_answer(reference, task_id):
    verdict = run_check(task_id, reference[get_task(task_id).answer])
    assert verdict.passed, verdict.message


@pytest.mark.parametrize("task_id", [t.id for t in lesson_tasks("01")])
def test_every_placeholder_reads_not_attempted_yet(placeholders, task_id):
    verdict = run_check(task_id, placeholders[get_task(task_id).answer])
    assert not verdict.passed and not verdict.attempted
    assert "not attempted yet" in verdict.markdown(task_id)


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
    assert run_check("01.count", torch.tensor(right)).passed  # a 0-d tensor is a number too


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


def _requires_grad_only(model):
    for name, p in model.named_parameters():
        p.requires_grad = False
    for p in tl.head(model).parameters():
        p.requires_grad = True
    return model


def _momentum_zero(model):
    _requires_grad_only(model)
    for layer in tl.iter_batchnorm(model):
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
    assert run_check("01.topk", _top_k_variant("none")).passed


class _Hostile:
    def __iter__(self):
        raise RuntimeError("no iterating me")

    def __call__(self, *args):
        raise SystemExit("bye")


@pytest.mark.parametrize("task_id, answer", [
    ("01.predict", _Hostile()),
    ("01.count", _Hostile()),
    ("01.head", _Hostile()),
    ("01.batchnorm", _Hostile()),
    ("01.topk", _Hostile()),
    ("01.nope", 1),
    ("99.nope", 1),
    ("garbage", None),
])
def test_check_never_raises_and_always_says_something(capsys, task_id, answer):
    assert tl.check(task_id, answer) is None
    out = capsys.readouterr().out
    assert task_id in out and out.strip()


def test_check_without_an_answer_reads_not_attempted(capsys):
    tl.check("01.count")
    assert "not attempted yet" in capsys.readouterr().out


def test_task_modules_import_the_package_relatively():
    """The grader loads a fresh copy of the package; an absolute `import tlcourse` would bypass it."""
    for path in (ROOT / "tlcourse" / "tasks").glob("*.py"):
        text = path.read_text()
        assert "import tlcourse" not in text and "from tlcourse" not in text, path


@pytest.mark.parametrize("task_id", [t.id for t in lesson_tasks("01")])
def test_malformed_or_partial_evidence_never_passes_a_hidden_test(reference, task_id):
    """The grader judges evidence written by a kernel it does not trust."""
    from tlcourse.checks import evidence_for, judge_evidence

    task = get_task(task_id)
    lenient = evidence_for(task, reference[task.answer], strict=False)
    forged = [{}, {"kind": "function", "cases": []}, {"kind": "number"}, {"kind": "module", "state": {}},
              {"kind": "list", "items": None}, None, 42]
    if task_id in ("01.batchnorm", "01.topk", "01.head"):
        forged.append(lenient)  # the check's evidence lacks the hidden test's extra cases
    for evidence in forged:
        try:
            verdict = judge_evidence(task, evidence, strict=True)
        except Exception:
            continue  # the grader turns this into 0 points
        assert not verdict.passed, (task_id, evidence)
