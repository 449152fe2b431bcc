"""In-notebook checks for the exercises, and the registry of tasks that the grader scores.

A learner runs ``tl.check("01.head", elpv_model)`` after a task and reads a pass or a hint.
Every task is one :class:`Task`, registered by its lesson's module in ``tlcourse/grading/tasks/``:

* ``evidence(answer, strict)`` runs where the answer lives (the learner's kernel) and turns
  the answer into plain data: numbers, strings, lists, dicts and tensors;
* ``judge(evidence, strict)`` compares that data with a reference computation and returns a
  :class:`Verdict` (a pass, or a hint).

``tl.check`` runs both in the notebook with ``strict=False``. The grader runs ``evidence``
with ``strict=True`` in the submission's kernel, from a fresh copy of this package, and
``judge`` outside the kernel, where the submission cannot reach it (see ``tlcourse.grading``).
"""
from __future__ import annotations

import importlib
import random
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import torch

from ..utils import torch_threads


@dataclass(frozen=True)
class Verdict:
    """The outcome of a check: ``passed``, and a message (the hint when it did not pass)."""

    passed: bool
    message: str = ""
    attempted: bool = True

    def markdown(self, task_id: str) -> str:
        if not self.attempted:
            head = f"**⏳ {task_id}: not attempted yet.**"
        elif self.passed:
            head = f"**✅ {task_id}: correct.**"
        else:
            head = f"**❌ {task_id}: not yet.**"
        return f"{head} {self.message}".strip()


def passed(message: str = "") -> Verdict:
    """A pass, with an optional remark (what the learner can take away)."""
    return Verdict(True, message)


def hint(message: str) -> Verdict:
    """A fail, with a hint that names the likely mistake and what to do about it."""
    return Verdict(False, message)


def not_attempted(message: str = "") -> Verdict:
    """The answer is still the placeholder."""
    return Verdict(False, message or "Replace the `...` in the answer cell with your code, run it, "
                   "then run this check again.", attempted=False)


def describe_error(err: BaseException, limit: int = 300) -> str:
    """``"ValueError: message"``, cut to ``limit`` characters: how evidence records an exception."""
    return f"{type(err).__name__}: {err}"[:limit]


def call_answer(answer: Callable, *args, none_ok: bool = False) -> tuple[Any, dict | None]:
    """Call a learner's function; returns ``(result, None)``, or ``(None, problem)`` where the
    problem is ``{"error": "..."}`` when it raised or ``{"none": True}`` when it returned None
    (with ``none_ok``, a None result is no problem)."""
    try:
        result = answer(*args)
    except KeyboardInterrupt:
        raise
    except BaseException as err:  # SystemExit too: a learner's exit must not stop the check
        return None, {"error": describe_error(err)}
    return (None, {"none": True}) if result is None and not none_ok else (result, None)


@dataclass(frozen=True)
class Task:
    """One graded exercise task (see the module docstring and INSTRUCTORS.md)."""

    id: str  # "<lesson>.<name>", e.g. "01.head"; answer cells carry the tag "answer:<id>"
    title: str
    points: int
    answer: str  # the notebook variable the task's answer is stored in
    evidence: Callable[[Any, bool], dict]
    judge: Callable[[dict, bool], Verdict]
    time_limit: float | None = None  # seconds for the hidden test's evidence (None: the cell timeout)

    @property
    def lesson(self) -> str:
        return self.id.split(".", 1)[0]


_TASKS: dict[str, Task] = {}


def register(task: Task) -> Task:
    """Add a task to the registry (called by the lesson modules in ``tlcourse/tasks/``)."""
    if "." not in task.id or task.points <= 0:
        raise ValueError(f"A task id looks like '01.head' and its points are positive, not {task.id!r}, {task.points}.")
    _TASKS[task.id] = task
    return task


def _load_lesson(lesson: str) -> None:
    """Import ``tasks/l<lesson>.py`` relative to this package (so the grader's fresh copy stays fresh)."""
    try:
        importlib.import_module(f"{__package__}.tasks.l{lesson}")
    except ModuleNotFoundError as err:
        if err.name != f"{__package__}.tasks.l{lesson}":
            raise


def lesson_tasks(lesson: str) -> list[Task]:
    """The tasks of a lesson (``"01"``), in the order their module registers them."""
    _load_lesson(lesson)
    return [task for task in _TASKS.values() if task.lesson == lesson]


def get_task(task_id: str) -> Task:
    """The task called ``task_id``; ``KeyError`` with the known ids when there is none."""
    _load_lesson(task_id.split(".", 1)[0])
    if task_id not in _TASKS:
        known = ", ".join(t.id for t in lesson_tasks(task_id.split(".", 1)[0])) or "none for this lesson"
        raise KeyError(f"There is no task {task_id!r} (known: {known}).")
    return _TASKS[task_id]


# ---------------------------------------------------------------- fresh inputs for the hidden tests

_CHALLENGE: ContextVar[int] = ContextVar("tlcourse_challenge", default=0)


def challenge() -> int:
    """The seed of the hidden tests' inputs: 0 for ``tl.check``, drawn anew for every grading run.

    A task's ``evidence`` (in the kernel) and ``judge`` (in the grader) both read it, so the judge
    recomputes the expected answer on the very inputs the learner's code was given, and a learner
    cannot prepare an answer for inputs that are drawn only when the hidden test starts.
    """
    return _CHALLENGE.get()


@contextmanager
def challenge_seed(seed: int):
    """Run the block with :func:`challenge` returning ``seed`` (the grader's side of a run)."""
    token = _CHALLENGE.set(int(seed))
    try:
        yield
    finally:
        _CHALLENGE.reset(token)


def fresh_generator(salt: int = 0) -> torch.Generator:
    """A torch generator seeded by this run's challenge (and ``salt``, one per use)."""
    return torch.Generator().manual_seed((challenge() * 1_000_003 + salt) % 2**63)


def fresh_random(salt: int = 0) -> random.Random:
    """A Python ``random.Random`` seeded by this run's challenge (and ``salt``): for choices."""
    return random.Random(challenge() * 1_000_003 + salt)


# ---------------------------------------------------------------- running a task

def evidence_for(task: Task, answer: Any, strict: bool, seed: int | None = None) -> dict:
    """The task's evidence for ``answer``; placeholders and crashes become evidence too."""
    if answer is Ellipsis:
        return {"not_attempted": True}
    try:
        with torch_threads(1), challenge_seed(challenge() if seed is None else seed):
            return task.evidence(answer, strict)
    except KeyboardInterrupt:
        raise
    except BaseException as err:  # the learner's code may raise anything, SystemExit included
        return {"error": describe_error(err, 500)}


def judge_evidence(task: Task, evidence: Any, strict: bool, seed: int | None = None) -> Verdict:
    """The task's verdict on ``evidence`` (made with challenge ``seed``); evidence that is not a
    dict or holds an error fails."""
    if not isinstance(evidence, dict):
        return hint("The grader could not read any evidence for this task.")
    if evidence.get("not_attempted"):
        return not_attempted()
    if "error" in evidence:
        return hint(f"Running your answer raised `{evidence['error']}`. Fix the error, then check again.")
    with torch_threads(1), challenge_seed(challenge() if seed is None else seed):
        return task.judge(evidence, strict)


def run_check(task_id: str, answer: Any = Ellipsis) -> Verdict:
    """What :func:`check` shows, as a :class:`Verdict` (tests use this). The evidence goes through
    the grader's file format first, so the check judges exactly what the grader would read."""
    from .evidence import roundtrip

    task = get_task(task_id)
    evidence = evidence_for(task, answer, strict=False)
    try:
        evidence = roundtrip(evidence)
    except (TypeError, ValueError) as err:
        return hint(f"The answer could not be turned into plain data for the grader ({err}).")
    return judge_evidence(task, evidence, strict=False)


def check(task_id: str, answer: Any = Ellipsis) -> None:
    """Check your answer to an exercise task: shows a pass or a hint, and never raises.

    Use it in the cell below a task, e.g. ``tl.check("01.head", elpv_model)``.
    """
    try:
        text = run_check(task_id, answer).markdown(task_id)
    except KeyboardInterrupt:
        raise
    except BaseException as err:  # a check must never stop the notebook
        text = (f"**⚠️ {task_id}: the check could not run** ({type(err).__name__}: {err}). "
                "Check the task id, re-run the cells above, and ask your instructor if it persists.")
    _show_markdown(text)


def _show_markdown(text: str) -> None:
    """Render Markdown in a notebook; print the text anywhere else."""
    try:
        from IPython import get_ipython
        from IPython.display import Markdown, display

        if getattr(get_ipython(), "kernel", None) is not None:
            display(Markdown(text))
            return
    except Exception:
        pass
    print(text)


# ---------------------------------------------------------------- the grader's kernel-side step

def collect_evidence(task_id: str, namespace: dict, path: str, seed: int = 0, run: str = "") -> None:
    """Grader only: compute a task's strict evidence from the notebook's variables and save it.

    The grader calls this from the package loaded afresh under a random name (a copy of it when the
    kernel runs bare), after the learner's cells, with the
    run's fresh ``seed`` (see :func:`challenge`) and ``run``, a token that only this kernel is
    given; it reads ``path`` (plain data, see ``evidence.py``) once the kernel is gone. Never raises.
    """
    from . import evidence as files

    try:
        task = get_task(task_id)
        answer = namespace.get(task.answer, _Missing) if isinstance(namespace, dict) else _Missing
        if answer is _Missing:
            evidence = {"error": f"NameError: the variable `{task.answer}` is not defined"}
        else:
            evidence = evidence_for(task, answer, strict=True, seed=seed)
    except KeyboardInterrupt:
        raise
    except BaseException as err:
        evidence = {"error": describe_error(err, 500)}
    try:
        files.save(files.signed(evidence, run, task_id), path)
    except Exception as err:  # e.g. the evidence held an object that is not plain data
        files.save(files.signed({"error": f"the evidence could not be saved ({type(err).__name__}: {err})"[:300]},
                                run, task_id), path)


class _Missing:
    """Marks a variable the notebook never defined."""


# ---------------------------------------------------------------- helpers for task authors

def as_plain_tensor(value: Any) -> torch.Tensor:
    """A detached CPU copy of ``value`` as a plain ``torch.Tensor`` (safe to save as evidence)."""
    tensor = torch.as_tensor(value).detach().cpu()
    return tensor.as_subclass(torch.Tensor).clone()


def close(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-4, rtol: float = 1e-3) -> bool:
    """Same shape and ``allclose``: tolerant enough for CPU-versus-GPU float differences."""
    a, b = torch.as_tensor(a).float().cpu(), torch.as_tensor(b).float().cpu()
    return a.shape == b.shape and bool(torch.allclose(a, b, atol=atol, rtol=rtol))


# ---------------------------------------------------------------- tasks whose answer is a function

def function_evidence(answer: Any, cases: Iterable[tuple], run_case: Callable[..., dict]) -> dict:
    """Evidence for an answer that should be a function: ``run_case(answer, *case)`` for every case.

    Each ``run_case`` returns the plain-data evidence of one case (the learner's function called
    through :func:`call_answer`, its problem or its result described); an answer that is not
    callable gives ``{"kind": <its type>}``.
    """
    if not callable(answer):
        return {"kind": type(answer).__name__}
    return {"kind": "function", "cases": [run_case(answer, *case) for case in cases]}


def dict_of_numbers(result: Any) -> dict:
    """Evidence for a result that should be a dict of numbers: ``{"values": {str(key): float}}``
    (None for a value that is not a number), or ``{"type": <its type's name>}`` for a non-dict."""
    if not isinstance(result, dict):
        return {"type": type(result).__name__}
    values = {}
    for key, value in result.items():
        try:
            values[str(key)] = float(value)
        except Exception:
            values[str(key)] = None
    return {"values": values}


def _case_name(case: dict) -> Any:
    return case.get("case")


def _first(expected_case: tuple) -> Any:
    return expected_case[0]


def _all_none(cases: list[dict]) -> bool:
    return all(case.get("none") for case in cases)


def _no_extra(error: str, expected_case: tuple) -> str:
    return ""


def judge_cases(evidence: dict, expected: Sequence[tuple],
                judge_case: Callable[[dict, tuple, str], Verdict | None], *,
                answer: str, should_be: str, where: str | Callable[[tuple], str],
                label: Callable[[dict], Any] = _case_name, expected_label: Callable[[tuple], Any] = _first,
                unattempted: Callable[[list[dict]], bool] | None = _all_none, unattempted_message: str = "",
                error_extra: Callable[[str, tuple], str] = _no_extra) -> Verdict | None:
    """Judge the evidence of :func:`function_evidence`, case by case; None when every case passes.

    In order: the answer is a function (else "`answer` should be `should_be`, not a ..."); the
    evidence holds exactly the ``expected`` cases (``label(case) == expected_label(expected case)``,
    else "incomplete"); ``unattempted(cases)`` reads "not attempted yet" (None: no such check);
    then for every case a case that raised gets "`answer` raised `...` <where>." (plus
    ``error_extra(error, expected case)``), and any other is ``judge_case(case, expected case, where)``:
    a :class:`Verdict` stops there, None goes on. ``where`` names the case in hints: a format
    string filled with the expected case's items (``"on {0}"``), or a function of the expected case.
    Use it as ``return judge_cases(...) or passed("...")``.
    """
    if evidence.get("kind") != "function":
        return hint(f"`{answer}` should be {should_be}, not a {evidence.get('kind')}.")
    cases = evidence.get("cases")
    if (not isinstance(cases, list) or not all(isinstance(case, dict) for case in cases)
            or [label(case) for case in cases] != [expected_label(e) for e in expected]):
        return hint("The evidence for this task is incomplete.")
    if unattempted is not None and unattempted(cases):
        return not_attempted(unattempted_message
                             or f"`{answer}` returns `None` so far (or it is missing its `return`).")
    for case, expected_case in zip(cases, expected):
        place = where.format(*expected_case) if isinstance(where, str) else where(expected_case)
        if "error" in case:
            return hint(f"`{answer}` raised `{case['error']}` {place}.{error_extra(case['error'], expected_case)}")
        verdict = judge_case(case, expected_case, place)
        if verdict is not None:
            return verdict
    return None


def extra_for_kind(kind: str, extra: str) -> Callable[[str, tuple], str]:
    """An ``error_extra`` for :func:`judge_cases`: ``extra`` for a case whose second item (its
    model kind) is ``kind``, nothing for the others."""
    def error_extra(error: str, expected_case: tuple) -> str:
        return extra if expected_case[1] == kind else ""
    return error_extra


def never_raises(judge: Callable[[dict, bool], Verdict]) -> Callable[[dict, bool], Verdict]:
    """A judge that answers a hint, never an exception, on malformed evidence (e.g. a forged file)."""
    def guarded(evidence: dict, strict: bool) -> Verdict:
        try:
            return judge(evidence, strict)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError):
            return hint("The evidence for this task is incomplete or malformed.")
    guarded.__name__ = judge.__name__
    return guarded
