"""Helpers shared by the tests of the exercise checks (test_checks*.py)."""
from __future__ import annotations

from pathlib import Path

import nbformat

import tlcourse as tl
from tlcourse.checks import get_task, run_check

ROOT = Path(__file__).resolve().parent.parent


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


def answer_of(namespaces: dict, task_id: str):
    """The learner's answer to ``task_id`` from per-lesson namespaces ``{"02": {...}, ...}``."""
    return namespaces[task_id[:2]][get_task(task_id).answer]


def fails_with(task_id: str, answer, *phrases: str) -> None:
    """Assert that the check fails (as an attempt) with a hint containing every phrase."""
    verdict = run_check(task_id, answer)
    assert not verdict.passed and verdict.attempted, verdict
    for phrase in phrases:
        assert phrase in verdict.message, verdict.message
