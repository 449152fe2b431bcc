"""Helpers shared by the tests of the exercise checks (test_checks*.py) and of the grader."""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
import torch

import tlcourse as tl
from tlcourse.grading.checks import Verdict, evidence_for, get_task, judge_evidence, lesson_tasks, run_check

ROOT = Path(__file__).resolve().parent.parent

# Evidence a tampered kernel could write: the judges must never pass any of it.
FORGED_EVIDENCE = [
    None, 42, [], {}, {"error": "boom"},
    {"kind": "function"}, {"kind": "function", "cases": []}, {"kind": "function", "cases": [{"case": "x"}]},
    {"kind": "int", "value": 3}, {"kind": "number"}, {"kind": "module", "state": {}},
    {"kind": "list", "items": None}, {"kind": "model"}, {"kind": "model", "predictions": torch.zeros(3)},
]

# 01.batchnorm's "BatchNorm trap": every parameter but the head's frozen, BatchNorm left in train mode.
FREEZE_PARAMETERS_ONLY = """
def freeze_body(model):
    for name, p in model.named_parameters():
        p.requires_grad = False
    for p in tl.head(model).parameters():
        p.requires_grad = True
    return model
"""


def run_cells(path: Path, answers_only: bool = False) -> dict:
    """Run a notebook's code cells in a plain namespace: no kernel, no check cells.

    With ``answers_only`` only the answer cells run (after the usual imports), for tasks whose
    answers are functions of their arguments.
    """
    namespace: dict = {}
    if answers_only:
        exec("import numpy as np\nimport tlcourse as tl", namespace)
    with tl.torch_threads(1):
        for cell in nbformat.read(str(path), 4).cells:
            if cell.cell_type != "code" or "tl.check(" in cell.source:
                continue
            if answers_only and not any(t.startswith("answer:") for t in cell.metadata.get("tags", [])):
                continue
            exec(compile(cell.source, str(path), "exec"), namespace)
    return namespace


def notebook_fixtures(notebooks: dict[str, str], answers_only: bool = False):
    """The module-scoped fixtures ``reference`` and ``placeholders``: per lesson (``{"02": {...}}``),
    the namespace of the lesson's notebook in ``solutions/`` and in ``exercises/``.

    Use it as ``reference, placeholders = notebook_fixtures({"02": "02_feature_extraction.ipynb"})``.
    """
    def namespaces(folder: str) -> dict:
        return {lesson: run_cells(ROOT / folder / name, answers_only) for lesson, name in notebooks.items()}

    @pytest.fixture(scope="module")
    def reference():
        return namespaces("solutions")

    @pytest.fixture(scope="module")
    def placeholders():
        return namespaces("exercises")

    return reference, placeholders


def task_ids(notebooks: dict[str, str]) -> list[str]:
    """The ids of every task of the lessons that key ``notebooks``."""
    return [task.id for lesson in notebooks for task in lesson_tasks(lesson)]


def answer_of(namespaces: dict, task_id: str):
    """The learner's answer to ``task_id`` from per-lesson namespaces ``{"02": {...}, ...}``."""
    return namespaces[task_id[:2]][get_task(task_id).answer]


def define(source: str, name: str):
    """What an answer cell's ``source`` (run after ``import tlcourse as tl``) defines as ``name``."""
    namespace: dict = {}
    exec("import tlcourse as tl\n" + source, namespace)
    return namespace[name]


def hidden_test_verdict(task_id: str, answer) -> Verdict:
    """The grader's verdict on ``answer``: strict evidence, strict judge."""
    task = get_task(task_id)
    return judge_evidence(task, evidence_for(task, answer, strict=True), strict=True)


def lenient_evidence(task_id: str, answer) -> dict:
    """The evidence that the in-notebook check collects (fewer cases than the hidden test's)."""
    return evidence_for(get_task(task_id), answer, strict=False)


def passes(task_id: str, answer, hidden_test: bool = False) -> None:
    """Assert that the check passes ``answer``, and with ``hidden_test`` the grader's hidden test too."""
    verdict = run_check(task_id, answer)
    assert verdict.passed, verdict.message
    if hidden_test:
        verdict = hidden_test_verdict(task_id, answer)
        assert verdict.passed, verdict.message


def _is_hint_with(verdict: Verdict, phrases: tuple[str, ...]) -> None:
    assert not verdict.passed and verdict.attempted, verdict
    for phrase in phrases:
        assert phrase in verdict.message, verdict.message


def fails_with(task_id: str, answer, *phrases: str) -> None:
    """Assert that the check fails (as an attempt) with a hint containing every phrase."""
    _is_hint_with(run_check(task_id, answer), phrases)


def only_the_hidden_test_fails(task_id: str, answer, *phrases: str) -> None:
    """Assert that the check passes ``answer`` but the hidden test fails it, with every phrase in its hint."""
    passes(task_id, answer)
    _is_hint_with(hidden_test_verdict(task_id, answer), phrases)


def reads_not_attempted(task_id: str, answer) -> None:
    """Assert that the check reads "not attempted yet" for ``answer`` (a placeholder)."""
    verdict = run_check(task_id, answer)
    assert not verdict.passed and not verdict.attempted, verdict
    assert "not attempted yet" in verdict.markdown(task_id)


def check_output(capsys, task_id: str, answer) -> str:
    """What ``tl.check`` prints for ``answer``; asserts that it returns None and names the task."""
    assert tl.check(task_id, answer) is None
    out = capsys.readouterr().out
    assert task_id in out and out.strip()
    return out


def forged_evidence_never_passes(task_id: str, *extra, may_raise: bool = False) -> None:
    """Assert that the hidden test's judge passes none of ``FORGED_EVIDENCE`` and ``extra``.

    With ``may_raise`` a judge may raise instead (the grader turns that into 0 points).
    """
    task = get_task(task_id)
    for evidence in [*FORGED_EVIDENCE, *extra]:
        try:
            verdict = judge_evidence(task, evidence, strict=True)
        except Exception:
            if may_raise:
                continue
            raise
        assert not verdict.passed, (task_id, evidence, verdict)


class Hostile:
    """An answer that breaks whatever a check does with it."""

    def __iter__(self):
        raise RuntimeError("no iterating me")

    def __call__(self, *args):
        raise SystemExit("bye")

    def predict(self, x):
        raise RuntimeError("no predicting")
