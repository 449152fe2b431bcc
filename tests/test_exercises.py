"""Exercises are generated from the solutions, byte for byte, and both are committed clean."""
from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest

from tlcourse.cli import main
from tlcourse.grading.checks import lesson_tasks
from tlcourse.tooling.exercises import (
    BEGIN,
    END,
    ExerciseError,
    answer_task,
    build,
    check,
    lesson_of,
    merge_answers,
    read_notebook,
    strip_solution,
    unclean,
)

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS, EXERCISES = ROOT / "solutions", ROOT / "exercises"
SOLUTION_FILES = sorted(SOLUTIONS.glob("[0-9][0-9]_*.ipynb"))


def test_tlcourse_exercises_check_passes_on_the_repository(capsys):
    assert main(["exercises", "check", "--solutions", str(SOLUTIONS), "--exercises", str(EXERCISES)]) == 0


def test_check_names_a_stale_or_missing_exercise_and_build_fixes_it(tmp_path, capsys):
    solutions, exercises = tmp_path / "solutions", tmp_path / "exercises"
    shutil.copytree(SOLUTIONS, solutions)
    shutil.copytree(EXERCISES, exercises)
    stale = exercises / SOLUTION_FILES[0].name
    stale.write_text(stale.read_text().replace("your code here", "edited by hand"))
    (exercises / "99_orphan.ipynb").write_text("{}")
    args = ["--solutions", str(solutions), "--exercises", str(exercises)]
    assert main(["exercises", "check", *args]) == 1
    err = capsys.readouterr().err
    assert stale.name in err and "out of sync" in err and "99_orphan.ipynb" in err
    assert main(["exercises", "build", *args]) == 0
    assert stale.read_text() == (EXERCISES / stale.name).read_text()
    stale.unlink()
    assert any("missing" in p for p in check(solutions, exercises))


def test_build_is_byte_stable(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    build(SOLUTIONS, first)
    build(SOLUTIONS, second)
    assert build(SOLUTIONS, first) == []  # nothing changes the second time
    for path in first.glob("*.ipynb"):
        assert path.read_bytes() == (second / path.name).read_bytes() == (EXERCISES / path.name).read_bytes()


@pytest.mark.parametrize("folder", [SOLUTIONS, EXERCISES])
def test_notebooks_are_committed_clean(folder):
    for path in folder.glob("*.ipynb"):
        assert unclean(read_notebook(path)) == [], path


@pytest.mark.parametrize("solution", SOLUTION_FILES, ids=lambda p: p.name)
def test_exercise_has_lesson_id_and_no_solution_code(solution):
    exercise = read_notebook(EXERCISES / solution.name)
    lesson = solution.name[:2]
    assert exercise.metadata["tlcourse"]["lesson"] == lesson
    assert lesson_of(exercise) == lesson
    for sol_cell, ex_cell in zip(read_notebook(solution).cells, exercise.cells):
        if not answer_task(sol_cell):
            assert ex_cell.source == sol_cell.source
            continue
        assert BEGIN not in ex_cell.source and "your code here" in ex_cell.source
        hidden = sol_cell.source.split(BEGIN)[1].split(END)[0]
        for line in filter(None, (line.strip() for line in hidden.splitlines())):
            assert line not in ex_cell.source, f"solution line leaked into the exercise: {line}"


@pytest.mark.parametrize("solution", SOLUTION_FILES, ids=lambda p: p.name)
def test_every_task_has_one_answer_cell_and_a_check_cell(solution):
    cells = read_notebook(solution).cells
    tagged = [answer_task(c) for c in cells if answer_task(c)]
    registered = [t.id for t in lesson_tasks(solution.name[:2])]
    assert sorted(tagged) == sorted(registered)
    for task_id in registered:
        assert any(f'tl.check("{task_id}"' in c.source for c in cells), f"no check cell for {task_id}"


def test_placeholders_stay_valid_python():
    assert strip_solution(f"x = 1\n{BEGIN}\nhelper = 2\nanswer = helper * 3\n{END}\nanswer") == \
        "x = 1\nhelper = ...  # your code here\nanswer = ...\nanswer"
    inside = strip_solution(f"def f(model):\n    {BEGIN}\n    model.eval()\n    {END}\n    return model")
    assert inside == "def f(model):\n    ...  # your code here\n    return model"
    compile(inside, "cell", "exec")
    assert strip_solution(f"{BEGIN}\nprint('no assignment')\n{END}") == "...  # your code here"


@pytest.mark.parametrize("source", [f"{BEGIN}\nx = 1", f"x = 1\n{END}", f"{BEGIN}\n{BEGIN}\n{END}"])
def test_unbalanced_markers_are_an_error(source):
    with pytest.raises(ExerciseError):
        strip_solution(source)


def test_merge_answers_takes_only_answer_cells_and_joins_split_ones():
    exercise = read_notebook(EXERCISES / SOLUTION_FILES[0].name)
    submission = nbformat.from_dict(exercise)
    first_answer = next(c for c in submission.cells if answer_task(c))
    first_answer.source = "part_one = 1"
    split = nbformat.v4.new_code_cell("part_two = 2", metadata={"tags": list(first_answer.metadata.tags)})
    submission.cells.insert(submission.cells.index(first_answer) + 1, split)
    for cell in submission.cells:
        if cell.cell_type == "code" and not answer_task(cell):
            cell.source = "raise SystemExit('edited')"
    submission.cells.append(nbformat.v4.new_code_cell("print('an extra cell')"))
    merged = merge_answers(exercise, submission.cells)
    assert len(merged.cells) == len(exercise.cells)
    for before, after in zip(exercise.cells, merged.cells):
        if answer_task(before) == answer_task(first_answer):
            assert after.source == "part_one = 1\npart_two = 2"
        else:
            assert after.source == before.source
