"""``tlcourse grade``: score submitted exercise notebooks into a CSV gradebook, with feedback files.

For each submission the grader

1. reads it (anything that is not a notebook of the assignment's lesson is ``invalid``);
2. rebuilds it from the exercise template (``exercises/``, never ``solutions/``), taking only
   the code of its ``answer:`` cells;
3. runs it in a fresh kernel in a sandbox of its own (``sandbox.py``: bubblewrap by default on
   Linux) with a timeout per cell and a hard limit per submission (``kernel.py``);
4. after the learner's cells, runs each task's hidden test from the package, loaded under a
   random name, on inputs drawn fresh for this run (a random seed), and saves plain-data
   evidence signed with a token that only this kernel is given (``evidence.py``);
5. judges the evidence here, outside the sandbox, against reference computations on the same
   fresh inputs.

Redefining ``tl.check`` or patching ``tlcourse`` inside the kernel changes nothing, forged
evidence must hold the right answers to questions drawn at grading time, and the sandbox keeps
the solutions, the other submissions and the gradebook out of reach.
"""
from __future__ import annotations

import ast
import csv
import os
import re
import secrets
import shutil
import sys
import tempfile
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .sandbox import RISKS, Limits, Sandbox, SandboxUnavailable, grader_feature_cache  # noqa: F401  (part of the grading API)

MAX_BYTES = 20_000_000  # a notebook larger than this is not a plausible submission
STATUSES = ("ok", "timeout", "error", "invalid")
WARM_UP = "import tlcourse  # the grader imports the heavy libraries first, under a longer time limit"
WARM_UP_TIMEOUT = 180.0
#: The calls whose results the feature cache keeps; the template's cells up to the last one are run once
#: per batch, before any submission, so that no submission spends its cell limit extracting features.
EXTRACTING = re.compile(r"\b(extract_features|extract_views)\s*\(")
CACHE_WARM_UP_TIMEOUT = 1800.0


@dataclass
class Settings:
    """How to grade: time limits, parallelism, the sandbox, and where the exercise templates are."""

    cell_timeout: float = 60.0
    submission_timeout: float = 600.0
    jobs: int = 1
    lesson: str | None = None  # None: the lesson the submissions declare (they must agree)
    exercises: Path = Path("exercises")
    sandbox: Sandbox = field(default_factory=Sandbox)
    evidence_limit: int = 64 << 20  # bytes of evidence per task


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


class MixedLessons(ValueError):
    """The submissions belong to several lessons, and no ``--lesson`` says which one to grade."""


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
    if isinstance(nb, dict) and "cells" not in nb and (isinstance(nb.get("worksheets"), list)
                                                       or isinstance(nb.get("nbformat"), int) and nb["nbformat"] < 4):
        raise Invalid(f"it is a notebook in an old format (nbformat {nb.get('nbformat', '3 or older')}); open it "
                      "in Jupyter and save it again, or convert it with `jupyter nbconvert --to notebook "
                      "--nbformat 4`, then hand it in again")
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
    """The lesson the submissions declare; :class:`MixedLessons` when they declare several."""
    declared = {path: declared_lesson(path) for path in paths}
    counts = Counter(lesson for lesson in declared.values() if lesson)
    if len(counts) > 1:
        groups = "; ".join(f"lesson {lesson}: {n} file(s), e.g. {next(p for p, d in declared.items() if d == lesson)}"
                           for lesson, n in sorted(counts.items()))
        raise MixedLessons(f"These submissions belong to {len(counts)} lessons ({groups}). Grade one lesson "
                           "at a time: put each lesson's files in a folder of its own, or pass --lesson NN "
                           "(the other lessons' files then get `invalid` rows).")
    return next(iter(counts), None)


def template_for(lesson: str, exercises: Path) -> Path:
    """The exercise notebook of ``lesson`` (kept identical to the generated one by ``exercises check``)."""
    matches = sorted(Path(exercises).glob(f"{lesson}_*.ipynb"))
    if not matches:
        raise FileNotFoundError(f"No exercise notebook {exercises}/{lesson}_*.ipynb to grade lesson {lesson} against.")
    return matches[0]


def warm_feature_cache(template: Path, timeout: float = CACHE_WARM_UP_TIMEOUT) -> dict | None:
    """Fill the grader's feature cache with what the exercise ``template`` extracts, before any submission.

    A sandboxed kernel reads the grader's cache but cannot write it, and a cold cache makes every
    submission extract the features itself (a minute or more on a laptop CPU), past the cell
    limit: the correct solution would lose its tasks. So the template's code cells up to the last
    one that extracts features, without its answer and check cells, run once in a kernel of the
    grader's own, with the grader's cache. The template is the instructor's file (``exercises/``,
    kept identical to the generated one), never a student's. Returns the cells' outcomes, or
    None when the template extracts nothing (lesson 01).
    """
    import nbformat

    from .kernel import run_notebook
    from ..tooling.exercises import answer_task, read_notebook
    from ..utils import Timer

    nb = read_notebook(template)
    code = [c for c in nb.cells if c.cell_type == "code" and not answer_task(c) and not _is_check_cell(c.source)]
    last = max((i for i, c in enumerate(code) if EXTRACTING.search(c.source)), default=None)
    if last is None:
        return None
    nb.cells = [nbformat.v4.new_code_cell(c.source) for c in code[:last + 1]]
    env = {**os.environ, "TQDM_DISABLE": "1", "MPLBACKEND": "Agg"}
    print(f"Filling the feature cache from {Path(template).name}'s set-up cells, once for the batch "
          "(a few seconds when it is warm, a few minutes the first time)...", file=sys.stderr, flush=True)
    with Timer() as timer, tempfile.TemporaryDirectory(prefix="tlgrade-warm-") as tmp:
        run = run_notebook(nb, cell_timeout=timeout, total_timeout=timeout, cwd=tmp, env=env)
    failed = [f"cell {i + 1}: {o.status} {o.detail}".strip() for i, o in sorted(run.outcomes.items()) if o.status != "ok"]
    print(f"... done in {timer.seconds:.0f} s" + (f"; the template failed ({failed[0]}), so each "
          "submission may extract features itself" if failed else ""), file=sys.stderr, flush=True)
    return run.outcomes


def _readable_to_sandboxes(folder: Path | None) -> None:
    """Entries of the grader's feature cache that only their owner may read (tlcourse before 0644
    entries) made readable, so that a sandboxed kernel's own user reads them instead of extracting."""
    for entry in folder.glob("*.pt") if folder else []:
        try:
            mode = entry.stat().st_mode
            if mode & 0o044 != 0o044:
                os.chmod(entry, mode | 0o044)
        except OSError:  # not ours: that kernel extracts the features itself
            pass


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
_tlg_importlib.import_module({name!r} + ".grading.checks").collect_evidence(
    {task!r}, globals(), {path!r}, seed={seed!r}, run={run!r})
'''


@dataclass
class _Run:
    """One grading run's secrets: the fresh inputs' seed, the token, where each task's evidence goes."""

    seed: int
    token: str
    paths: dict[str, Path]


def _gradable_notebook(submission: dict, template: Path, lesson: str, package: Path, plan):
    """The template with the learner's answers, minus check cells, plus one evidence cell per task.

    Returns the notebook, ``{cell index: task id}`` for answer cells, ``{cell index: task id}``
    for evidence cells, and the run's :class:`_Run`.
    """
    import nbformat

    from .checks import lesson_tasks
    from ..tooling.exercises import answer_task, merge_answers, read_notebook

    nb = merge_answers(read_notebook(template), submission["cells"])
    nb.cells = [c for c in nb.cells if not (c.cell_type == "code" and not answer_task(c) and _is_check_cell(c.source))]
    nb.cells.insert(0, nbformat.v4.new_code_cell(WARM_UP))
    answer_cells = {i: answer_task(c) for i, c in enumerate(nb.cells) if answer_task(c)}
    name = f"_tlgrade_{secrets.token_hex(8)}"
    run = _Run(seed=secrets.randbits(48), token=secrets.token_hex(16), paths={})
    evidence_cells = {}
    for task in lesson_tasks(lesson):
        run.paths[task.id] = plan.new_file(f"evidence-{secrets.token_hex(12)}.npz")
        source = _HARVEST.format(name=name, init=str(package / "__init__.py"), pkg=str(package), task=task.id,
                                 path=str(run.paths[task.id]), seed=run.seed, run=run.token)
        evidence_cells[len(nb.cells)] = task.id
        nb.cells.append(nbformat.v4.new_code_cell(source))
    return nb, answer_cells, evidence_cells, run


@dataclass
class _Batch:
    """What every submission of a batch shares: the resolved sandbox, the package the kernels load."""

    kind: str  # "bwrap", "command" or "none"
    package: Path
    hidden: list[Path]


def grade_submission(path: Path, lesson: str, settings: Settings, batch: _Batch, index: int = 0) -> Result:
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
        _run_and_judge(submission, result, tasks, settings, batch, index)
    except Exception as err:  # the grader must write a row whatever happens
        result.points = {t.id: 0 for t in tasks}
        result.status = "error"
        result.feedback = _feedback(result, tasks, {}, f"The grader failed on this file ({type(err).__name__}: "
                                    f"{err}). Please tell your instructor.")
    return result


def _answer_tags(submission: dict) -> list[str]:
    from ..tooling.exercises import answer_task

    return [t for t in map(answer_task, submission["cells"]) if t]


def _run_and_judge(submission: dict, result: Result, tasks, settings: Settings, batch: _Batch,
                   index: int) -> None:
    from . import evidence as files
    from .checks import hint, judge_evidence
    from .kernel import run_notebook
    from .sandbox import plan_kernel

    template = template_for(result.lesson, settings.exercises)
    with tempfile.TemporaryDirectory(prefix="tlgrade-") as tmp:
        workdir = Path(tmp)
        cpu = 2 * settings.submission_timeout + WARM_UP_TIMEOUT  # a backstop: the deadline kills first
        plan = plan_kernel(settings.sandbox, batch.kind, workdir, batch.package, batch.hidden, cpu, index)
        nb, answer_cells, evidence_cells, secrets_of_run = _gradable_notebook(
            submission, template, result.lesson, batch.package, plan)
        limits = {i: t.time_limit for i, task_id in evidence_cells.items()
                  for t in tasks if t.id == task_id and t.time_limit}
        limits[0] = max(settings.cell_timeout, WARM_UP_TIMEOUT)  # the warm-up cell
        run = run_notebook(
            nb, cell_timeout=settings.cell_timeout, total_timeout=settings.submission_timeout,
            cwd=plan.cwd, env=plan.env, timeouts=limits, plan=plan)
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
                evidence = files.verified(secrets_of_run.paths[task.id], secrets_of_run.token, task.id,
                                          settings.evidence_limit)
                verdict = judge_evidence(task, evidence, strict=True, seed=secrets_of_run.seed)
            except files.EvidenceRejected as err:
                verdict = hint(f"The hidden test could not use this answer: {err}.")
            except Exception as err:  # malformed evidence earns nothing
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
    """Copy this package's source (bare kernels only: they could write into the original)."""
    source = Path(__file__).resolve().parent.parent
    target = dest / "tlcourse"
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return target


def _hidden(paths: list[Path], extra: list[Path]) -> list[Path]:
    """Folders a sandbox must not see, should a read-only bind happen to contain them: the course's
    solutions and git history (an editable install is the repository), the submissions, the outputs."""
    root = Path(__file__).resolve().parent.parent.parent
    return [root / "solutions", root / ".git", *{p.resolve().parent for p in paths}, *extra]


def grade(items: list[str | Path], settings: Settings, on_result: Callable[[Result], None] | None = None,
          hide: list[Path] | None = None) -> list[Result]:
    """Grade every submission (in parallel with ``settings.jobs``); one :class:`Result` each.

    ``on_result`` is called with each result as soon as it is ready (the CLI writes the gradebook
    then). Raises :class:`SandboxUnavailable` when no sandbox can run and ``settings.sandbox`` does
    not allow bare kernels, and :class:`MixedLessons` for a batch of several lessons without
    ``settings.lesson``. ``hide`` names more folders the sandboxes must not see.
    """
    from .checks import lesson_tasks

    kind = settings.sandbox.resolve()
    paths = collect_submissions(items)
    lesson = settings.lesson or assignment_lesson(paths)
    problem = None
    if lesson is None:
        problem = "it is not an exercise notebook of this course (no lesson id, no answer cells)"
    elif not lesson_tasks(lesson):
        problem = f"lesson {lesson} has no graded tasks (no tlcourse/grading/tasks/l{lesson}.py)"
    elif not list(Path(settings.exercises).glob(f"{lesson}_*.ipynb")):
        problem = (f"there is no exercise notebook {settings.exercises}/{lesson}_*.ipynb to grade lesson {lesson} "
                   "against")
    if problem:
        results = [Result(str(p), lesson, status="invalid") for p in paths]
        for r in results:
            r.feedback = _feedback(r, [], {}, f"This file could not be graded: {problem}.")
            if on_result:
                on_result(r)
        return results

    warm_feature_cache(template_for(lesson, settings.exercises))
    if kind == "bwrap":
        _readable_to_sandboxes(grader_feature_cache())

    def one(numbered: tuple[int, Path]) -> Result:
        result = grade_submission(numbered[1], lesson, settings, batch, numbered[0])
        if on_result:
            on_result(result)
        return result

    with tempfile.TemporaryDirectory(prefix="tlgrade-pkg-") as tmp:
        package = Path(__file__).resolve().parent.parent
        if kind == "none":
            package = _snapshot_package(Path(tmp))
        batch = _Batch(kind, package, _hidden(paths, list(hide or [])))
        with ThreadPoolExecutor(max_workers=max(1, settings.jobs)) as pool:
            return list(pool.map(one, enumerate(paths)))


def feedback_name(submission: str, taken: set[str]) -> str:
    """A file name for a submission's feedback, unique even when two files share a name."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", str(Path(submission).with_suffix(""))).strip("._") or "submission"
    name, n = f"{stem}.md", 2
    while name in taken:
        name, n = f"{stem}-{n}.md", n + 1
    taken.add(name)
    return name


def spreadsheet_safe(value) -> str | int:
    """A CSV cell that a spreadsheet shows as text: a leading ``'`` before ``= + - @``, tab or CR."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _replace_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a reader sees the old file or the new one, never half of one."""
    handle = tempfile.NamedTemporaryFile("w", encoding="utf-8", newline="", dir=path.parent,
                                         prefix=f".{path.name}.", suffix=".tmp", delete=False)
    try:
        with handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise


class Gradebook:
    """The CSV (``submission, <tasks>, total, max, status``) and the feedback folder, rewritten
    atomically after every :meth:`add`, so a crash keeps every row finished so far."""

    def __init__(self, out: Path, feedback_dir: Path | None = None) -> None:
        self.out = Path(out)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.feedback_dir = Path(feedback_dir) if feedback_dir else self.out.with_name(self.out.stem + "_feedback")
        self.feedback_dir.mkdir(parents=True, exist_ok=True)
        self.results: list[Result] = []
        self._taken: set[str] = set()
        self._lock = threading.Lock()  # submissions finish on several threads (--jobs)

    def add(self, result: Result) -> None:
        with self._lock:
            self.results.append(result)
            _replace_atomically(self.feedback_dir / feedback_name(result.submission, self._taken), result.feedback)
            self._write_csv()

    def _write_csv(self) -> None:
        import io

        from .checks import lesson_tasks

        lessons = [r.lesson for r in self.results if r.lesson]
        task_ids = [t.id for t in lesson_tasks(lessons[0])] if lessons else []
        text = io.StringIO()
        writer = csv.writer(text)
        writer.writerow(["submission", *task_ids, "total", "max", "status"])
        for r in self.results:
            writer.writerow([spreadsheet_safe(r.submission), *(r.points.get(t, 0) for t in task_ids), r.total,
                             r.max_points, spreadsheet_safe(r.status)])
        _replace_atomically(self.out, text.getvalue())


def write_gradebook(results: list[Result], out: Path, feedback_dir: Path | None = None) -> Path:
    """Write the CSV and one feedback file per row (see :class:`Gradebook`); returns the feedback folder."""
    book = Gradebook(out, feedback_dir)
    for result in results:
        book.add(result)
    if not results:
        book._write_csv()
    return book.feedback_dir
