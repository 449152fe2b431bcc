"""``tlcourse grade``: score submitted exercise notebooks into a CSV gradebook, with feedback files.

For each submission the grader

1. reads it (anything that is not a notebook of the assignment's lesson is ``invalid``);
2. rebuilds it from the solution template, taking only the code of its ``answer:`` cells;
3. runs it in a fresh kernel (``kernel.py``: a timeout per cell, a hard limit per submission);
4. after the learner's cells, runs each task's evidence code from a fresh copy of this package,
   loaded under a random name and saving to a random path;
5. judges the evidence here, outside the kernel, against reference computations.

Redefining ``tl.check`` or patching ``tlcourse`` inside the kernel therefore changes nothing:
neither the evidence code nor the judge comes from the kernel's modules.
"""
from __future__ import annotations

import ast
import csv
import os
import re
import secrets
import shutil
import tempfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

MAX_BYTES = 20_000_000  # a notebook larger than this is not a plausible submission
STATUSES = ("ok", "timeout", "error", "invalid")
WARM_UP = "import tlcourse  # the grader imports the heavy libraries first, under a longer time limit"
WARM_UP_TIMEOUT = 180.0


@dataclass
class Settings:
    """How to grade: time limits, parallelism, and where the solution templates are."""

    cell_timeout: float = 60.0
    submission_timeout: float = 600.0
    jobs: int = 1
    lesson: str | None = None  # None: the lesson most submissions declare
    solutions: Path = Path("solutions")


@dataclass
class Result:
    """One gradebook row, plus the feedback shown to the learner."""

    submission: str
    lesson: str | None
    points: dict[str, int] = field(default_factory=dict)
    max_points: int = 0
    status: str = "ok"
    feedback: str = ""

    @property
    def total(self) -> int:
        return sum(self.points.values())


# ---------------------------------------------------------------- reading submissions

class Invalid(Exception):
    """The file cannot be graded; the message says why, for the learner."""


def read_submission(path: Path) -> dict:
    """The submission as a notebook dict, or :class:`Invalid`."""
    import json

    try:
        if path.stat().st_size > MAX_BYTES:
            raise Invalid(f"the file is larger than {MAX_BYTES // 1_000_000} MB")
        nb = json.loads(path.read_bytes().decode("utf-8"))
    except Invalid:
        raise
    except OSError as err:
        raise Invalid(f"the file cannot be read ({type(err).__name__})") from None
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise Invalid(f"it is not a readable notebook (not valid JSON: {type(err).__name__})") from None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise Invalid("it is JSON but not a Jupyter notebook (no list of cells)")
    cells = [c for c in nb["cells"] if isinstance(c, dict) and isinstance(c.get("cell_type"), str)]
    for cell in cells:
        source = cell.get("source", "")
        cell["source"] = "".join(map(str, source)) if isinstance(source, list) else str(source)
        meta = cell.get("metadata")
        cell["metadata"] = meta if isinstance(meta, dict) else {}
        tags = cell["metadata"].get("tags")
        cell["metadata"]["tags"] = [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []
    if not cells:
        raise Invalid("the notebook is empty")
    meta = nb.get("metadata")
    return {"cells": cells, "metadata": meta if isinstance(meta, dict) else {}}


def declared_lesson(path: Path) -> str | None:
    """The lesson a file says it belongs to, or None (cheap; never raises)."""
    from ..tooling.exercises import lesson_of

    try:
        return lesson_of(read_submission(path), path)
    except Exception:
        return None


def assignment_lesson(paths: list[Path]) -> str | None:
    """The lesson most submissions declare (ties: the lowest number)."""
    counts = Counter(lesson for lesson in map(declared_lesson, paths) if lesson)
    if not counts:
        return None
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[0][0]


def solution_for(lesson: str, solutions: Path) -> Path:
    matches = sorted(solutions.glob(f"{lesson}_*.ipynb"))
    if not matches:
        raise FileNotFoundError(f"No solution notebook {solutions}/{lesson}_*.ipynb to grade lesson {lesson} against.")
    return matches[0]


# ---------------------------------------------------------------- one submission

def _is_check_cell(source: str) -> bool:
    """A template cell that only calls ``check(...)``: feedback for learners, skipped when grading."""
    try:
        body = ast.parse(source).body
    except SyntaxError:
        return False
    return bool(body) and all(
        isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
        and getattr(node.value.func, "attr", getattr(node.value.func, "id", None)) == "check"
        for node in body)


_HARVEST = '''\
import importlib as _tlg_importlib, importlib.util as _tlg_util, sys as _tlg_sys
if {name!r} not in _tlg_sys.modules:
    _tlg_spec = _tlg_util.spec_from_file_location({name!r}, {init!r}, submodule_search_locations=[{pkg!r}])
    _tlg_sys.modules[{name!r}] = _tlg_util.module_from_spec(_tlg_spec)
    _tlg_spec.loader.exec_module(_tlg_sys.modules[{name!r}])
_tlg_importlib.import_module({name!r} + ".grading.checks").collect_evidence({task!r}, globals(), {path!r})
'''


def _gradable_notebook(submission: dict, solution: Path, lesson: str, package: Path, secret_dir: Path):
    """The template with the learner's answers, minus check cells, plus one evidence cell per task.

    Returns the notebook, ``{cell index: task id}`` for answer cells, ``{cell index: task id}``
    for evidence cells, and ``{task id: evidence path}``.
    """
    import nbformat

    from .checks import lesson_tasks
    from ..tooling.exercises import answer_task, expected_exercise, merge_answers

    nb = merge_answers(expected_exercise(solution), submission["cells"])
    nb.cells = [c for c in nb.cells if not (c.cell_type == "code" and not answer_task(c) and _is_check_cell(c.source))]
    nb.cells.insert(0, nbformat.v4.new_code_cell(WARM_UP))
    answer_cells = {i: answer_task(c) for i, c in enumerate(nb.cells) if answer_task(c)}
    name = f"_tlgrade_{secrets.token_hex(8)}"
    evidence_cells, paths = {}, {}
    for task in lesson_tasks(lesson):
        paths[task.id] = secret_dir / f"{secrets.token_hex(12)}.pt"
        source = _HARVEST.format(name=name, init=str(package / "__init__.py"), pkg=str(package),
                                 task=task.id, path=str(paths[task.id]))
        evidence_cells[len(nb.cells)] = task.id
        nb.cells.append(nbformat.v4.new_code_cell(source))
    return nb, answer_cells, evidence_cells, paths


def _kernel_env(workdir: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JPY_", "JUPYTER_RUNTIME"))}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", MPLBACKEND="Agg", PYTHONHASHSEED="0",
               IPYTHONDIR=str(workdir / "ipython"), TQDM_DISABLE="1")
    return env


def grade_submission(path: Path, lesson: str, settings: Settings, package: Path) -> Result:
    """Grade one file; never raises (a grader failure becomes status ``error``)."""
    from .checks import lesson_tasks

    tasks = lesson_tasks(lesson)
    result = Result(str(path), lesson, {t.id: 0 for t in tasks}, sum(t.points for t in tasks))
    try:
        submission = read_submission(path)
        from ..tooling.exercises import lesson_of

        declared = lesson_of(submission, path)
        if declared != lesson:
            raise Invalid(f"it is lesson {declared}'s notebook, and this gradebook grades lesson {lesson}"
                          if declared else "it is not an exercise notebook of this course (no lesson id, "
                          "no answer cells)")
        if not any(t.startswith(f"{lesson}.") for t in _answer_tags(submission)):
            raise Invalid(f"it has no answer cells of lesson {lesson} (tags `answer:{lesson}.…`)")
    except Invalid as err:
        result.status = "invalid"
        result.feedback = _feedback(result, tasks, {}, f"This file could not be graded: {err}.")
        return result
    try:
        _run_and_judge(submission, result, tasks, settings, package)
    except Exception as err:  # the grader must write a row whatever happens
        result.points = {t.id: 0 for t in tasks}
        result.status = "error"
        result.feedback = _feedback(result, tasks, {}, f"The grader failed on this file ({type(err).__name__}: "
                                    f"{err}). Please tell your instructor.")
    return result


def _answer_tags(submission: dict) -> list[str]:
    from ..tooling.exercises import answer_task

    return [t for t in map(answer_task, submission["cells"]) if t]


def _run_and_judge(submission: dict, result: Result, tasks, settings: Settings, package: Path) -> None:
    import torch

    from .checks import hint, judge_evidence
    from .kernel import run_notebook

    solution = solution_for(result.lesson, settings.solutions)
    with tempfile.TemporaryDirectory(prefix="tlgrade-") as tmp:
        workdir = Path(tmp)
        (workdir / "cwd").mkdir()
        secret_dir = workdir / secrets.token_hex(8)
        secret_dir.mkdir()
        nb, answer_cells, evidence_cells, paths = _gradable_notebook(
            submission, solution, result.lesson, package, secret_dir)
        limits = {i: t.time_limit for i, task_id in evidence_cells.items()
                  for t in tasks if t.id == task_id and t.time_limit}
        limits[0] = max(settings.cell_timeout, WARM_UP_TIMEOUT)  # the warm-up cell
        run = run_notebook(
            nb, cell_timeout=settings.cell_timeout, total_timeout=settings.submission_timeout,
            cwd=str(workdir / "cwd"), env=_kernel_env(workdir), timeouts=limits)
        outcomes, out_of_time = run.outcomes, run.out_of_time
        notes: dict[str, str] = {}
        for task in tasks:
            cells = [i for i, t in answer_cells.items() if t == task.id]
            failed = [outcomes.get(i) for i in cells if outcomes.get(i) and outcomes[i].status != "ok"]
            if failed:
                notes[task.id] = "Your answer cell " + _describe(failed[0]) + " No points for this task."
                continue
            harvest = next(i for i, t in evidence_cells.items() if t == task.id)
            if outcomes.get(harvest) and outcomes[harvest].status != "ok":
                notes[task.id] = "The hidden test " + _describe(outcomes[harvest]) + " No points for this task."
                continue
            try:
                evidence = torch.load(paths[task.id], map_location="cpu", weights_only=True)
                verdict = judge_evidence(task, evidence, strict=True)
            except Exception as err:  # missing, unreadable or malformed evidence earns nothing
                verdict = hint(f"The hidden test could not use this answer ({type(err).__name__}).")
            result.points[task.id] = task.points if verdict.passed else 0
            notes[task.id] = verdict.markdown(task.id)
    statuses = {o.status for o in outcomes.values()}
    result.status = ("timeout" if out_of_time or "timeout" in statuses
                     else "error" if statuses & {"error", "died"} else "ok")
    result.feedback = _feedback(result, tasks, notes)


def _describe(outcome) -> str:
    return {
        "error": f"raised `{outcome.detail}`.",
        "timeout": f"ran too long and was stopped ({outcome.detail}).",
        "died": "stopped the kernel (an exit or a crash).",
        "skipped": "never ran: the submission ran out of time.",
    }.get(outcome.status, f"ended with {outcome.status}.")


def _feedback(result: Result, tasks, notes: dict[str, str], preface: str = "") -> str:
    lines = [f"# Feedback on `{result.submission}`", "",
             f"Lesson {result.lesson or '?'}: **{result.total} / {result.max_points} points**, "
             f"status `{result.status}`.", ""]
    if preface:
        lines += [preface, ""]
    if tasks:
        lines += ["| task | points |", "|---|---|"]
        lines += [f"| {t.id}: {t.title} | {result.points.get(t.id, 0)} / {t.points} |" for t in tasks]
        lines.append("")
    for task in tasks:
        if task.id in notes:
            lines += [f"## {task.id}: {task.title}", "", notes[task.id], ""]
    return "\n".join(lines)


# ---------------------------------------------------------------- many submissions

def collect_submissions(items: list[str | Path]) -> list[Path]:
    """Files as given, folders searched for ``*.ipynb`` (checkpoints skipped), duplicates dropped."""
    found: list[Path] = []
    for item in map(Path, items):
        if item.is_dir():
            found += sorted(p for p in item.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
        else:
            found.append(item)
    return list(dict.fromkeys(found))


def _snapshot_package(dest: Path) -> Path:
    """Copy this package's source so kernels load evidence code no submission can have edited."""
    source = Path(__file__).resolve().parent.parent
    target = dest / "tlcourse"
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return target


def grade(items: list[str | Path], settings: Settings) -> list[Result]:
    """Grade every submission (in parallel with ``settings.jobs``); one :class:`Result` each."""
    from .checks import lesson_tasks

    paths = collect_submissions(items)
    lesson = settings.lesson or assignment_lesson(paths)
    problem = None
    if lesson is None:
        problem = "it is not an exercise notebook of this course (no lesson id, no answer cells)"
    elif not lesson_tasks(lesson):
        problem = f"lesson {lesson} has no graded tasks (no tlcourse/grading/tasks/l{lesson}.py)"
    elif not list(settings.solutions.glob(f"{lesson}_*.ipynb")):
        problem = f"there is no solution notebook {settings.solutions}/{lesson}_*.ipynb to grade lesson {lesson} against"
    if problem:
        results = [Result(str(p), lesson, status="invalid") for p in paths]
        for r in results:
            r.feedback = _feedback(r, [], {}, f"This file could not be graded: {problem}.")
        return results
    with tempfile.TemporaryDirectory(prefix="tlgrade-pkg-") as tmp:
        package = _snapshot_package(Path(tmp))
        with ThreadPoolExecutor(max_workers=max(1, settings.jobs)) as pool:
            return list(pool.map(lambda p: grade_submission(p, lesson, settings, package), paths))


def feedback_name(submission: str, taken: set[str]) -> str:
    """A file name for a submission's feedback, unique even when two files share a name."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", str(Path(submission).with_suffix(""))).strip("._") or "submission"
    name, n = f"{stem}.md", 2
    while name in taken:
        name, n = f"{stem}-{n}.md", n + 1
    taken.add(name)
    return name


def write_gradebook(results: list[Result], out: Path, feedback_dir: Path | None = None) -> Path:
    """Write the CSV (``submission, <tasks>, total, max, status``) and one feedback file per row."""
    from .checks import lesson_tasks

    lessons = [r.lesson for r in results if r.lesson]
    task_ids = [t.id for t in lesson_tasks(lessons[0])] if lessons else []
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    feedback_dir = Path(feedback_dir) if feedback_dir else out.with_name(out.stem + "_feedback")
    feedback_dir.mkdir(parents=True, exist_ok=True)
    taken: set[str] = set()
    with open(out, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["submission", *task_ids, "total", "max", "status"])
        for r in results:
            writer.writerow([r.submission, *(r.points.get(t, 0) for t in task_ids), r.total, r.max_points, r.status])
            (feedback_dir / feedback_name(r.submission, taken)).write_text(r.feedback, encoding="utf-8")
    return feedback_dir
