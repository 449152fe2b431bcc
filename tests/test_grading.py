"""The grader: full marks for the solution, zero for the blank exercise, and the right row for
submissions that loop, crash, exit, flood, tamper, or are not notebooks at all.

Every submission is graded in one ``tlcourse grade`` call (two at a time) to keep this quick: in
the bubblewrap sandbox where it works, else bare (``--unsafe-no-sandbox``), so whichever path this
machine has is the one tested here (tests/test_sandbox.py covers the other, and the attacks).
"""
from __future__ import annotations

import csv
import json
import os
import tempfile
import threading
import time
from pathlib import Path

import nbformat
import pytest
from filelock import FileLock

from tlcourse.cli import main
from tlcourse.grading import Settings, feedback_name, grade
from tlcourse.grading.kernel import run_notebook
from tlcourse.grading.sandbox import Sandbox, bwrap_problem
from tlcourse.tooling.exercises import answer_task

from check_helpers import FREEZE_PARAMETERS_ONLY, ROOT, define

SOLUTION = ROOT / "solutions" / "01_transfer_learning_basics.ipynb"
EXERCISE = ROOT / "exercises" / "01_transfer_learning_basics.ipynb"
TASKS = ["01.predict", "01.count", "01.head", "01.batchnorm", "01.topk"]
CELL_TIMEOUT = 10
EXERCISES = ROOT / "exercises"
SANDBOXED = bwrap_problem() is None
SANDBOX_FLAGS = [] if SANDBOXED else ["--unsafe-no-sandbox"]
SANDBOX = Sandbox() if SANDBOXED else Sandbox(mode="none")
ATTACKS = sorted((Path(__file__).parent / "attacks").glob("*.py"))
FORMULA_NAME = "=1+2"  # a file name a spreadsheet would run as a formula
CHILD_MARKER = "600.0157"  # `sleep 600.0157`: a child no other process on this machine runs

pytestmark = pytest.mark.slow


def _answers(path: Path) -> dict[str, str]:
    return {answer_task(c): c.source for c in nbformat.read(str(path), 4).cells if answer_task(c)}


SOLVED = _answers(SOLUTION)


def _submission(folder: Path, name: str, answers: dict[str, str], base: Path = EXERCISE, edit=None) -> Path:
    """The exercise notebook with some answer cells filled in (and an optional edit of the rest)."""
    nb = nbformat.read(str(base), 4)
    for cell in nb.cells:
        if answer_task(cell) in answers:
            cell.source = answers[answer_task(cell)]
    if edit:
        edit(nb)
    path = folder / f"{name}.ipynb"
    nbformat.write(nb, str(path))
    return path


def _tamper_with_the_rest(nb) -> None:
    """Edit the setup and check cells and add an untagged cell: the grader must ignore all of it."""
    for cell in nb.cells:
        if cell.cell_type == "code" and not answer_task(cell):
            cell.source = "import tlcourse as tl\ntl.check = lambda *a, **k: print('correct')\nraise SystemExit"
    nb.cells.append(nbformat.v4.new_code_cell("import os\nos._exit(1)"))


TAMPERING = """
import torch
import tlcourse
import tlcourse.grading.checks
import tlcourse.models
tl.check = lambda *args, **kwargs: print("correct")
tlcourse.grading.checks.passed = tlcourse.grading.checks.hint
tlcourse.grading.checks.judge_evidence = lambda *args, **kwargs: tlcourse.grading.checks.Verdict(True, "ok")
tlcourse.grading.checks.evidence_for = lambda *args, **kwargs: {"kind": "number", "value": 1.0}
tlcourse.grading.checks.collect_evidence = lambda *args, **kwargs: None
tlcourse.models.count_parameters = lambda *args, **kwargs: 42
tlcourse.models.load_backbone = lambda *args, **kwargs: torch.nn.Linear(1, 1)
torch.equal = lambda *args, **kwargs: True
torch.allclose = lambda *args, **kwargs: True
"""

STRICTER = """
def freeze_body(model):
    tl.freeze(model)
    tl.unfreeze(model.classifier)
    return model
"""


@pytest.fixture(scope="session")
def graded(tmp_path_factory, request):
    """Grade every submission of this module in one CLI call; returns (rows by name, feedback dir, folder, seconds).

    Under pytest-xdist the first worker grades and the others read its results, so the class is
    graded once however the tests are spread.
    """
    shared = tmp_path_factory.getbasetemp()
    if hasattr(request.config, "workerinput"):
        shared = shared.parent
    results = shared / "graded.json"
    with FileLock(str(shared / "graded.lock")):
        if not results.is_file():
            results.write_text(json.dumps(_grade_everything(shared / "submissions")))
    rows, feedback, folder, seconds = json.loads(results.read_text())
    return rows, Path(feedback), Path(folder), seconds


def _grade_everything(folder: Path):
    folder.mkdir()
    paths = {
        "solution": _submission(folder, "solution", SOLVED),
        "exercise": _submission(folder, "exercise", {}),
        # the predict cell ignores SIGINT and spawns a child (killed with the kernel's group);
        # the count cell loops but can be interrupted; head and topk are right; freeze_body
        # passes the in-notebook check but not the hidden test (a ResNet's head is not `classifier`)
        "loops": _submission(folder, "loops", {
            **SOLVED,
            "01.batchnorm": STRICTER,
            "01.predict": "import signal, subprocess, time\n"
                          f"child = subprocess.Popen(['sleep', '{CHILD_MARKER}'])\n"
                          "signal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    time.sleep(0.01)",
            "01.count": "n_trainable = 1\nwhile True:\n    pass",
        }),
        # right answers, but the cells flood, exit, raise and kill the kernel afterwards
        "crashes": _submission(folder, "crashes", {
            **SOLVED,
            "01.predict": SOLVED["01.predict"] + "\nfor i in range(100_000):\n    print('spam' * 20)",
            "01.head": SOLVED["01.head"] + "\nimport sys\nsys.exit('bye')",
            "01.topk": SOLVED["01.topk"] + "\nraise ValueError('oops')",
            "01.batchnorm": SOLVED["01.batchnorm"] + "\nimport os\nos._exit(3)",
        }),
        # blank or wrong answers, with tampering inside the answer cells and outside them
        "tamper": _submission(folder, "tamper", {
            "01.predict": "brick_top3 = ..." + TAMPERING,
            "01.count": "n_trainable = 42" + TAMPERING,
            "01.batchnorm": FREEZE_PARAMETERS_ONLY + TAMPERING,
        }, edit=_tamper_with_the_rest),
    }
    if SANDBOXED:  # bare, some attacks would do real harm (read the solutions, kill pytest)
        paths.update(_attacks(folder, paths["solution"]))
    for name, content in {"not_json": b'{"cells": [', "zero_bytes": b"", "binary": bytes(range(256)),
                          FORMULA_NAME: b"not a notebook",
                          "empty": json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}).encode(),
                          "list": b"[1, 2, 3]"}.items():
        paths[name] = folder / f"{name}.ipynb"
        paths[name].write_bytes(content)
    wrong = nbformat.read(str(SOLUTION), 4)
    wrong.metadata["tlcourse"] = {"lesson": "02", "notebook": "02_feature_extraction"}
    paths["wrong_lesson"] = folder / "wrong_lesson.ipynb"
    nbformat.write(wrong, str(paths["wrong_lesson"]))

    out = folder / "gradebook.csv"
    protected = {**_protected_files(), **_planted_cache(folder / "cache")}
    start = time.perf_counter()
    here, cache = os.getcwd(), os.environ.get("TLCOURSE_CACHE")
    os.chdir(folder)  # relative names, as `tlcourse grade *.ipynb` gives them (the formula name leads its cell)
    os.environ["TLCOURSE_CACHE"] = str(folder / "cache")  # the feature cache the sandboxes read
    watch = _IoWatch()
    watch.start()
    try:
        code = main(["grade", *(p.name for p in paths.values()), "--out", str(out), "--jobs", "2",
                     "--cell-timeout", str(CELL_TIMEOUT), "--timeout", "300", "--lesson", "01",
                     "--exercises", str(EXERCISES), *SANDBOX_FLAGS])
    finally:
        os.chdir(here)
        if cache is None:
            os.environ.pop("TLCOURSE_CACHE", None)
        else:
            os.environ["TLCOURSE_CACHE"] = cache
        watch.stop()
    seconds = time.perf_counter() - start
    (folder / "most_files_in_io.json").write_text(json.dumps(watch.most))
    assert code == 0
    (folder / "gradebook_at_exit.csv").write_bytes(out.read_bytes())
    (folder / "protected.json").write_text(json.dumps(protected))
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle))
    by_name = {Path(row["submission"].lstrip("'")).stem: row for row in rows}
    assert len(rows) == len(paths)
    return by_name, str(folder / "gradebook_feedback"), str(folder), seconds


class _IoWatch(threading.Thread):
    """Counts, twice a second, the entries in every kernel's io folder (``tlgrade-*/io``): ``most``."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.most, self._done = 0, threading.Event()

    def run(self) -> None:
        while not self._done.wait(0.5):
            for io in Path(tempfile.gettempdir()).glob("tlgrade-*/io"):
                try:
                    self.most = max(self.most, sum(1 for _ in os.scandir(io)))
                except OSError:
                    pass

    def stop(self) -> None:
        self._done.set()
        self.join()


MARKER = f"tlcourse_attack_{os.getpid()}"


# Attacks that can share a kernel are graded together, one per answer cell (in this order), to keep
# the batch short: a notebook per group. An input transformer rewrites every hidden cell, so the two
# attacks that install one get a notebook each, as does any attack not named here.
ATTACK_GROUPS = {
    "attack_forges_evidence": ["forges_evidence"],
    "attack_floods_evidence": ["floods_evidence"],
    "attack_kills_the_grader": ["floods_files", "kills_the_grader"],
    "attack_reads_and_writes": ["reads_answers", "edits_the_grader", "poisons_the_cache", "outlives_the_kernel",
                                "exhausts_resources"],  # last: it fills the private /tmp
}


def attack_row(attack: str) -> str:
    """The gradebook row (notebook name) that grades the attack ``attack`` (a file stem of tests/attacks/)."""
    return next((name for name, group in ATTACK_GROUPS.items() if attack in group), f"attack_{attack}")


def _attacks(folder: Path, classmate: Path) -> dict[str, Path]:
    """Blank exercises whose answer cells hold the attacks of tests/attacks/ (see ATTACK_GROUPS)."""
    fill = {"@SOLUTION@": str(SOLUTION), "@CLASSMATE@": str(classmate), "@ROOT@": str(ROOT), "@MARKER@": MARKER,
            "@CACHE@": str(folder / "cache" / "features"),
            "@GRADEBOOK@": str(folder / "gradebook.csv"), "@FEEDBACK@": str(folder / "gradebook_feedback")}
    groups: dict[str, list[str]] = {}
    for attack in ATTACKS:
        groups.setdefault(attack_row(attack.stem), []).append(attack.stem)
    made = {}
    for name, members in groups.items():
        order = ATTACK_GROUPS.get(name, members)
        answers = {}
        for slot, attack in zip(TASKS, [a for a in order if a in members]):
            code = (Path(__file__).parent / "attacks" / f"{attack}.py").read_text()
            for mark, value in fill.items():
                code = code.replace(mark, value)
            answers[slot] = code
        made[name] = _submission(folder, name, answers)
    return made


def _planted_cache(cache: Path) -> dict[str, str]:
    """A grader's feature cache with one entry, bound read-only into every sandbox of the batch;
    returns its files' hashes (an attack must leave them, and add none)."""
    import hashlib

    import torch

    entry = cache / "features" / ("c" * 24 + ".pt")
    entry.parent.mkdir(parents=True)
    torch.save({"features": torch.ones(3, 4)}, entry)
    entry.chmod(0o644)
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in entry.parent.iterdir()}


def _protected_files() -> dict[str, str]:
    """Hashes of the files an attack may try to edit (the package's task modules)."""
    import hashlib

    tasks = ROOT / "tlcourse" / "grading" / "tasks"
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(tasks.glob("*.py"))}


def _points(row) -> dict[str, int]:
    return {task: int(row[task]) for task in TASKS}


def test_gradebook_has_one_column_per_task_then_total_max_status(graded):
    rows, *_ = graded
    assert list(next(iter(rows.values()))) == ["submission", *TASKS, "total", "max", "status"]
    assert all(row["max"] == "8" for row in rows.values())
    assert all(int(row["total"]) == sum(_points(row).values()) for row in rows.values())


def test_solution_gets_full_marks_and_exercise_zero(graded):
    rows, *_ = graded
    assert rows["solution"]["total"] == "8" and rows["solution"]["status"] == "ok"
    assert rows["exercise"]["total"] == "0" and rows["exercise"]["status"] == "ok"


def test_looping_cells_score_zero_and_the_other_tasks_still_count(graded):
    rows, _, folder, _ = graded
    row = rows["loops"]
    assert row["status"] == "timeout"
    assert _points(row) == {"01.predict": 0, "01.count": 0, "01.head": 2, "01.batchnorm": 0, "01.topk": 2}
    assert not _processes_with(CHILD_MARKER), "the child of a killed kernel survived"


def test_exit_raise_and_dead_kernel_score_zero_for_their_task_only(graded):
    rows, *_ = graded
    row = rows["crashes"]
    assert row["status"] == "error"
    assert _points(row) == {"01.predict": 1, "01.count": 1, "01.head": 0, "01.batchnorm": 0, "01.topk": 0}


def test_tampering_with_checks_and_tlcourse_earns_nothing(graded):
    rows, *_ = graded
    assert rows["tamper"]["total"] == "0"
    assert rows["tamper"]["status"] == "ok"  # the edited setup and check cells were never run


def test_hidden_tests_are_stricter_than_the_checks(graded):
    from tlcourse.grading.checks import run_check

    assert run_check("01.batchnorm", define(STRICTER, "freeze_body")).passed
    rows, *_ = graded
    assert _points(rows["loops"])["01.batchnorm"] == 0


@pytest.mark.parametrize("name", ["not_json", "zero_bytes", "binary", "empty", "list", "wrong_lesson", FORMULA_NAME])
def test_files_that_are_not_lesson_01_notebooks_are_invalid(graded, name):
    rows, *_ = graded
    assert rows[name]["status"] == "invalid" and rows[name]["total"] == "0"


def test_every_submission_gets_a_feedback_file_with_its_hints(graded):
    rows, feedback, _, _ = graded
    files = sorted(feedback.glob("*.md"))
    assert len(files) == len(rows)
    text = {f.stem.rsplit("_", 1)[-1]: f.read_text() for f in files}
    joined = "\n".join(text.values())
    assert "could not be graded" in joined and "lesson 02" in joined
    stricter = next(t for t in text.values() if "loops" in t.splitlines()[0])
    assert "ResNet" in stricter and "tl.head(model)" in stricter
    crashes = next(t for t in text.values() if "crashes" in t.splitlines()[0])
    assert "ValueError: oops" in crashes and "stopped the kernel" in crashes


def test_grading_time_is_reported(graded):
    *_, seconds = graded
    print(f"\ngraded {len(graded[0])} submissions in {seconds:.0f} s with --jobs 2")


def test_feedback_names_are_unique_for_files_with_the_same_name():
    taken: set[str] = set()
    names = [feedback_name(p, taken) for p in ["alice/01_x.ipynb", "bob/01_x.ipynb", "alice/01_x.ipynb"]]
    assert len(set(names)) == 3


# ---------------------------------------------------------------- the kernel runner on its own

def _alive(pid: int, wait: float = 5.0) -> bool:
    """Whether ``pid`` still runs (a zombie counts as dead) after up to ``wait`` seconds."""
    end = time.monotonic() + wait
    while True:
        try:
            with open(f"/proc/{pid}/status") as handle:
                running = "\nState:\tZ" not in handle.read()
        except FileNotFoundError:
            running = False
        if not running or time.monotonic() > end:
            return running
        time.sleep(0.1)


def _processes_with(marker: str, wait: float = 5.0) -> list[int]:
    """The live processes whose command line holds ``marker`` (after up to ``wait`` seconds)."""
    end = time.monotonic() + wait
    while True:
        found = []
        for entry in Path("/proc").iterdir():
            try:
                if entry.name.isdigit() and marker in (entry / "cmdline").read_bytes().decode(errors="replace") \
                        and _alive(int(entry.name), wait=0):
                    found.append(int(entry.name))
            except OSError:
                continue
        if not found or time.monotonic() > end:
            return found
        time.sleep(0.2)


def _notebook(*sources: str):
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])


def test_cell_timeout_bounds_wall_time_even_when_sigint_is_ignored(tmp_path):
    nb = _notebook("x = 1",
                   "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    time.sleep(0.01)",
                   "while True:\n    pass",
                   "y = x + 1\nprint(y)")
    start = time.perf_counter()
    run = run_notebook(nb, cell_timeout=3, total_timeout=120, cwd=str(tmp_path), env=dict(os.environ))
    elapsed = time.perf_counter() - start
    assert [run.outcomes[i].status for i in range(4)] == ["ok", "timeout", "timeout", "ok"]
    assert nb.cells[3].outputs[0]["text"] == "2\n"  # the run went on, in a fresh kernel, without the looping cells
    assert 6 <= elapsed < 60
    assert not any(_alive(pgid) for pgid in run.kernel_pgids)


def test_hard_limit_kills_the_kernel_process_group(tmp_path):
    pid_file = tmp_path / "child.pid"
    nb = _notebook("import signal, subprocess, time\n"
                   f"child = subprocess.Popen(['sleep', '600'])\nopen({str(pid_file)!r}, 'w').write(str(child.pid))\n"
                   "signal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    time.sleep(0.01)")
    start = time.perf_counter()
    run = run_notebook(nb, cell_timeout=600, total_timeout=6, cwd=str(tmp_path), env=dict(os.environ))
    elapsed = time.perf_counter() - start
    assert run.out_of_time and run.outcomes[0].status == "timeout"
    assert elapsed < 40
    assert not _alive(int(pid_file.read_text()))
    assert not any(_alive(pgid) for pgid in run.kernel_pgids)


def test_output_flood_is_capped(tmp_path):
    nb = _notebook("for i in range(30_000):\n    print('flood', i)")
    run = run_notebook(nb, cell_timeout=60, total_timeout=120, cwd=str(tmp_path), env=dict(os.environ))
    assert run.outcomes[0].status == "ok"
    assert sum(len(o.get("text", "")) for o in nb.cells[0].outputs) < 300_000
    assert "cut this cell's output" in nb.cells[0].outputs[-1]["text"]


def test_grading_a_folder_without_course_notebooks_writes_invalid_rows(tmp_path):
    (tmp_path / "a.ipynb").write_text("not json")
    results = grade([tmp_path, tmp_path / "missing.ipynb"], Settings(exercises=EXERCISES, sandbox=SANDBOX))
    assert [r.status for r in results] == ["invalid", "invalid"]


def test_a_lesson_without_solution_or_tasks_still_writes_a_gradebook(tmp_path):
    nb = nbformat.read(str(SOLUTION), 4)
    nb.metadata["tlcourse"] = {"lesson": "97"}
    nbformat.write(nb, str(tmp_path / "alone.ipynb"))
    out = tmp_path / "book.csv"
    assert main(["grade", str(tmp_path / "alone.ipynb"), "--out", str(out), "--exercises", str(EXERCISES),
                 *SANDBOX_FLAGS]) == 0
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["status"], r["total"]) for r in rows] == [("invalid", "0")]
    assert "no graded tasks" in next((tmp_path / "book_feedback").glob("*.md")).read_text()


def _template(tmp_path: Path, cells: list) -> Path:
    nb = nbformat.v4.new_notebook(cells=cells)
    path = tmp_path / "02_warm.ipynb"
    nbformat.write(nb, str(path))
    return path


def test_the_feature_cache_is_warmed_once_from_the_template_before_the_batch(tmp_path, monkeypatch):
    """A sandbox reads the grader's cache but cannot write it; a cold one made the correct lesson-02
    solution time out (4/6). The template's cells up to its last extraction run first, in the grader's
    own kernel: its answer cells, its check cells and the cells after the extraction do not."""
    from tlcourse.grading import warm_feature_cache
    from tlcourse.utils import cache_dir

    monkeypatch.setenv("TLCOURSE_CACHE", str(tmp_path / "cache"))  # empty: other tests share the session's cache
    before, after = tmp_path / "before", tmp_path / "after"
    answer = nbformat.v4.new_code_cell(f"open({str(tmp_path / 'answer')!r}, 'w')")
    answer.metadata["tags"] = ["answer:02.split"]
    cells = [
        nbformat.v4.new_code_cell(f"import numpy as np\nimport tlcourse as tl\nopen({str(before)!r}, 'w')"),
        answer,
        nbformat.v4.new_code_cell('tl.check("02.split", split_features)'),
        nbformat.v4.new_code_cell("images = np.random.default_rng(0).integers(0, 255, (2, 32, 32), dtype=np.uint8)\n"
                                  "data = tl.ImageList(images, tl.preprocess(32))\n"
                                  "data.fingerprint = 'two random images'\n"
                                  "features = tl.extract_features(tl.load_backbone(), data, progress=False)"),
        nbformat.v4.new_code_cell(f"open({str(after)!r}, 'w')"),
    ]
    entries = lambda: sorted((cache_dir() / "features").glob("*.pt"))  # noqa: E731
    assert not entries()
    outcomes = warm_feature_cache(_template(tmp_path, cells))
    assert outcomes and {o.status for o in outcomes.values()} == {"ok"}, outcomes
    assert len(entries()) == 1 and before.exists()
    assert not after.exists() and not (tmp_path / "answer").exists()


def test_a_template_that_extracts_nothing_starts_no_kernel(tmp_path):
    from tlcourse.grading import warm_feature_cache

    template = _template(tmp_path, [nbformat.v4.new_code_cell("import tlcourse as tl\nmodel = tl.load_backbone()")])
    assert warm_feature_cache(template) is None
