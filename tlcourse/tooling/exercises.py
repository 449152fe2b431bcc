"""Exercise notebooks generated from the solutions: ``tlcourse exercises build|check``.

``solutions/NN_name.ipynb`` is the single source. A cell tagged ``answer:<task-id>`` holds a
learner's answer; the code between ``# BEGIN SOLUTION`` and ``# END SOLUTION`` becomes a
placeholder that still runs (``name = ...  # your code here``, or ``...  # your code here``
inside a block). Outputs and execution counts are cleared, the lesson id goes into the
notebook metadata, and the JSON is written the same way every time, so ``check`` can compare
bytes. The grader rebuilds submissions with :func:`merge_answers`.
"""
from __future__ import annotations

import ast
import hashlib
import re
import textwrap
from pathlib import Path

import nbformat

BEGIN, END = "# BEGIN SOLUTION", "# END SOLUTION"
ANSWER_TAG = "answer:"
PLACEHOLDER = "...  # your code here"
LESSON_FILE = re.compile(r"^(\d\d)_[a-z0-9_]+\.ipynb$")
_KEEP_CELL_METADATA = ("tags",)


class ExerciseError(ValueError):
    """A solution notebook cannot be turned into an exercise; the message names the file and cell."""


# ---------------------------------------------------------------- notebooks as files

def read_notebook(path: str | Path) -> nbformat.NotebookNode:
    return nbformat.read(str(path), as_version=4)


def notebook_text(nb: nbformat.NotebookNode) -> str:
    """The notebook as JSON, formatted the same way every time (sorted keys, one-space indent)."""
    return nbformat.writes(nb).rstrip("\n") + "\n"


def write_notebook(nb: nbformat.NotebookNode, path: str | Path) -> None:
    Path(path).write_text(notebook_text(nb), encoding="utf-8")


def answer_task(cell) -> str | None:
    """The task id of an answer cell (from its ``answer:<task-id>`` tag), else None."""
    for tag in cell.get("metadata", {}).get("tags", []) or []:
        if isinstance(tag, str) and tag.startswith(ANSWER_TAG):
            return tag[len(ANSWER_TAG):]
    return None


def lesson_of(nb, path: str | Path | None = None) -> str | None:
    """The lesson a notebook belongs to: its metadata, else its answer tags, else its file name."""
    meta = nb.get("metadata", {}).get("tlcourse", {})
    if isinstance(meta, dict) and isinstance(meta.get("lesson"), str):
        return meta["lesson"]
    lessons = {task.split(".", 1)[0] for task in map(answer_task, nb.get("cells", [])) if task}
    if len(lessons) == 1:
        return lessons.pop()
    match = LESSON_FILE.match(Path(path).name) if path else None
    return match.group(1) if match else None


def unclean(nb) -> list[str]:
    """What keeps a notebook from being committed clean: outputs, execution counts, kernel metadata."""
    problems = []
    for i, cell in enumerate(nb.cells):
        if cell.get("outputs"):
            problems.append(f"cell {i} has outputs")
        if cell.get("execution_count") is not None:
            problems.append(f"cell {i} has an execution count")
    extra = sorted(set(nb.metadata) - {"tlcourse"})
    if extra:
        problems.append(f"notebook metadata has {', '.join(extra)}")
    return problems


def clean(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Clear outputs, execution counts and every metadata key but cell tags and ``tlcourse``."""
    nb = nbformat.from_dict(nb)
    nb.metadata = nbformat.from_dict({k: v for k, v in nb.metadata.items() if k == "tlcourse"})
    for i, cell in enumerate(nb.cells):
        cell.metadata = nbformat.from_dict({k: v for k, v in cell.metadata.items() if k in _KEEP_CELL_METADATA})
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        if not cell.get("id"):
            cell.id = hashlib.sha1(f"{i}:{cell.source}".encode()).hexdigest()[:8]
    nb.nbformat, nb.nbformat_minor = 4, 5
    return nb


# ---------------------------------------------------------------- solution -> exercise

def _placeholder(region: list[str], indent: str) -> list[str]:
    """``name = ...`` for each name the region assigns at top level; ``...`` inside a block."""
    names: list[str] = []
    if not indent:
        try:
            tree = ast.parse(textwrap.dedent("\n".join(region)))
        except SyntaxError:
            tree = None
        for node in tree.body if tree else []:
            targets = node.targets if isinstance(node, ast.Assign) else (
                [node.target] if isinstance(node, (ast.AnnAssign, ast.AugAssign)) else [])
            for target in targets:
                if isinstance(target, ast.Name) and target.id not in names:
                    names.append(target.id)
    if not names:
        return [indent + PLACEHOLDER]
    return [f"{names[0]} = {PLACEHOLDER}"] + [f"{name} = ..." for name in names[1:]]


def strip_solution(source: str, where: str = "cell") -> str:
    """Replace every ``# BEGIN SOLUTION`` ... ``# END SOLUTION`` region by a placeholder."""
    out: list[str] = []
    region: list[str] | None = None
    indent = ""
    for line in source.split("\n"):
        marker = line.strip()
        if marker == BEGIN:
            if region is not None:
                raise ExerciseError(f"{where}: '{BEGIN}' inside another solution region.")
            region, indent = [], line[: len(line) - len(line.lstrip())]
        elif marker == END:
            if region is None:
                raise ExerciseError(f"{where}: '{END}' without a '{BEGIN}' above it.")
            out += _placeholder(region, indent)
            region = None
        elif region is not None:
            region.append(line)
        else:
            out.append(line)
    if region is not None:
        raise ExerciseError(f"{where}: '{BEGIN}' is never closed by '{END}'.")
    return "\n".join(out)


def make_exercise(solution: nbformat.NotebookNode, lesson: str, name: str) -> nbformat.NotebookNode:
    """The exercise version of a solution notebook (a new notebook; the solution is untouched)."""
    nb = clean(solution)
    nb.metadata["tlcourse"] = {"lesson": lesson, "notebook": name}
    answers = 0
    for i, cell in enumerate(nb.cells):
        has_markers = BEGIN in cell.source or END in cell.source
        if answer_task(cell):
            if cell.cell_type != "code" or not has_markers:
                raise ExerciseError(f"{name}.ipynb cell {i}: an answer cell must be code with a "
                                    f"'{BEGIN}' ... '{END}' region.")
            cell.source = strip_solution(cell.source, f"{name}.ipynb cell {i}")
            answers += 1
        elif has_markers:
            raise ExerciseError(f"{name}.ipynb cell {i} has solution markers but no "
                                f"'{ANSWER_TAG}<task-id>' tag, so the grader would never read it.")
    if not answers:
        raise ExerciseError(f"{name}.ipynb has no answer cells (tag '{ANSWER_TAG}<task-id>').")
    return nb


def _pairs(solutions: Path, exercises: Path) -> list[tuple[Path, Path]]:
    return [(path, exercises / path.name) for path in sorted(solutions.glob("*.ipynb"))
            if LESSON_FILE.match(path.name)]


def expected_exercise(solution_path: Path) -> nbformat.NotebookNode:
    lesson = LESSON_FILE.match(solution_path.name).group(1)
    return make_exercise(read_notebook(solution_path), lesson, solution_path.stem)


def build(solutions: str | Path = "solutions", exercises: str | Path = "exercises") -> list[Path]:
    """Write ``exercises/NN_*.ipynb`` for every ``solutions/NN_*.ipynb``; returns the files that changed."""
    solutions, exercises = Path(solutions), Path(exercises)
    exercises.mkdir(parents=True, exist_ok=True)
    changed = []
    for solution, exercise in _pairs(solutions, exercises):
        text = notebook_text(expected_exercise(solution))
        if not exercise.is_file() or exercise.read_text(encoding="utf-8") != text:
            exercise.write_text(text, encoding="utf-8")
            changed.append(exercise)
    return changed


def check(solutions: str | Path = "solutions", exercises: str | Path = "exercises") -> list[str]:
    """Problems that ``build`` would fix, or a person must: one line per file, empty when in sync."""
    solutions, exercises = Path(solutions), Path(exercises)
    problems = []
    pairs = _pairs(solutions, exercises)
    for solution, exercise in pairs:
        dirty = unclean(read_notebook(solution))
        if dirty:
            problems.append(f"{solution}: not clean ({'; '.join(dirty[:3])}); clear its outputs and "
                            "metadata (`tlcourse exercises build --clean-solutions`)")
        try:
            text = notebook_text(expected_exercise(solution))
        except ExerciseError as err:
            problems.append(f"{solution}: {err}")
            continue
        if not exercise.is_file():
            problems.append(f"{exercise}: missing; run `tlcourse exercises build`")
        elif exercise.read_text(encoding="utf-8") != text:
            problems.append(f"{exercise}: out of sync with {solution}; run `tlcourse exercises build`")
    expected = {exercise.name for _, exercise in pairs}
    for stray in sorted(exercises.glob("*.ipynb")):
        if stray.name not in expected:
            problems.append(f"{stray}: has no solution {solutions / stray.name}; add it or delete the exercise")
    return problems


def clean_solutions(solutions: str | Path = "solutions") -> list[Path]:
    """Clear outputs and kernel metadata of the solution notebooks in place; returns those changed."""
    changed = []
    for path in sorted(Path(solutions).glob("*.ipynb")):
        text = notebook_text(clean(read_notebook(path)))
        if path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            changed.append(path)
    return changed


# ---------------------------------------------------------------- submission -> gradable notebook

def merge_answers(exercise: nbformat.NotebookNode, submission_cells: list) -> nbformat.NotebookNode:
    """The exercise with each answer cell's code taken from the submission (by tag, split cells joined).

    Everything else comes from the exercise, so edits to setup or check cells change nothing.
    Tasks the submission has no cell for keep their placeholder.
    """
    answers: dict[str, list[str]] = {}
    for cell in submission_cells:
        task = answer_task(cell)
        if task and cell.get("cell_type") == "code":
            source = cell.get("source", "")
            answers.setdefault(task, []).append("".join(source) if isinstance(source, list) else str(source))
    nb = nbformat.from_dict(exercise)
    for cell in nb.cells:
        task = answer_task(cell)
        if task in answers:
            cell.source = "\n".join(answers[task])
    return nb
