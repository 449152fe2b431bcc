"""The sandbox that each submission's kernel runs in, and the attacks of issue 15 against the grader.

The attacking notebooks (tests/attacks/) are graded in tests/test_grading.py's single batch,
next to the correct solution, so each test here reads one row of that gradebook: the attack
must score what its answers deserve (0, they are blank exercises) and the solution full marks.
"""
from __future__ import annotations

import csv
import json
import os
import sys
import tempfile
from pathlib import Path

import nbformat
import pytest
import torch

from tlcourse.cli import main
from tlcourse.grading import Gradebook, Invalid, Result, read_submission
from tlcourse.grading import sandbox as sandboxes
from tlcourse.grading.kernel import run_notebook

from test_grading import (ATTACKS, EXERCISES, FORMULA_NAME, MARKER, ROOT, SANDBOX_FLAGS, SANDBOXED, SOLUTION,
                          _processes_with, attack_row, graded)  # noqa: F401  (graded: the shared fixture)

needs_bwrap = pytest.mark.skipif(not SANDBOXED, reason=f"no bubblewrap sandbox here: {sandboxes.bwrap_problem()}")


# ---------------------------------------------------------------- the attacks, graded in one batch

@needs_bwrap
@pytest.mark.slow
@pytest.mark.parametrize("attack", [a.stem for a in ATTACKS])
def test_an_attack_earns_what_its_answers_deserve_and_the_solution_keeps_full_marks(graded, attack):
    rows, *_ = graded
    assert rows[attack_row(attack)]["total"] == "0", rows[attack_row(attack)]
    assert rows["solution"]["total"] == "8" and rows["solution"]["status"] == "ok"


def _feedback_of(graded, name: str) -> str:
    _, feedback, _, _ = graded
    return next(f.read_text() for f in feedback.glob("*.md") if f"`{name}.ipynb`" in f.read_text().splitlines()[0])


@needs_bwrap
@pytest.mark.slow
def test_forged_evidence_gets_the_hint_that_the_real_answer_would_have_got(graded):
    text = _feedback_of(graded, "attack_forges_evidence")
    assert "01.head: not yet" in text and "01.batchnorm: not yet" in text and "01.topk: not yet" in text


@needs_bwrap
@pytest.mark.slow
def test_oversized_evidence_is_refused_unread(graded):
    assert "over the grader's limit" in _feedback_of(graded, "attack_floods_evidence")


@needs_bwrap
@pytest.mark.slow
def test_nothing_a_submission_starts_outlives_it_or_touches_the_gradebook(graded):
    rows, _, folder, _ = graded
    assert not _processes_with(MARKER), "a process started by a submission outlived the grading"
    assert (folder / "gradebook.csv").read_bytes() == (folder / "gradebook_at_exit.csv").read_bytes()
    assert rows["attack_kills_the_grader"]["status"] in ("ok", "error")  # its row, and every other, was written


@needs_bwrap
@pytest.mark.slow
def test_a_flood_of_files_stays_out_of_the_graders_folders(graded):
    *_, folder, _ = graded
    # a kernel's io holds its sockets (5 per start), its connection file and one evidence file per task
    assert json.loads((folder / "most_files_in_io.json").read_text()) < 50


@needs_bwrap
@pytest.mark.slow
def test_no_submission_can_write_into_the_package_the_import_path_or_the_feature_cache(graded):
    import hashlib

    *_, folder, _ = graded
    protected = json.loads((folder / "protected.json").read_text())  # the task modules, the shared feature cache
    assert {p: hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in protected} == protected
    cache = folder / "cache" / "features"
    assert sorted(map(str, cache.iterdir())) == sorted(p for p in protected if p.startswith(str(cache)))
    places = [ROOT, ROOT / "tests", ROOT / "tlcourse", ROOT / "tlcourse" / "grading" / "tasks", *map(Path, sys.path)]
    written = [p / f"{MARKER}.py" for p in places if (p / f"{MARKER}.py").exists()]
    for path in written:
        path.unlink()
    assert not written


@pytest.mark.slow
def test_a_cell_that_would_be_a_spreadsheet_formula_is_escaped(graded):
    *_, folder, _ = graded
    lines = (folder / "gradebook.csv").read_text().splitlines()
    assert any(line.startswith(f"'{FORMULA_NAME}.ipynb,") for line in lines)
    assert not any(line.startswith("=") for line in lines)


# ---------------------------------------------------------------- one sandboxed kernel, probed from inside

@needs_bwrap
def test_the_sandbox_sees_no_answers_cannot_write_reach_the_network_or_outlive_its_kernel(tmp_path):
    import tlcourse
    from tlcourse.utils import cache_dir

    package = Path(tlcourse.__file__).parent
    survivor = f"{MARKER}_kernel"
    (tmp_path / "secret.txt").write_text("the answers")
    shared = cache_dir() / "features"  # the grader's feature cache: the sandbox reads it, never writes it
    shared.mkdir(parents=True, exist_ok=True)
    (shared / "entry.pt").write_bytes(b"features")
    (shared / "entry.pt").chmod(0o644)
    with tempfile.TemporaryDirectory(prefix="tlgrade-test-") as work:  # short: UNIX socket paths are short
        plan = sandboxes.plan_kernel(sandboxes.Sandbox(), "bwrap", Path(work), package,
                                     [ROOT / "solutions", ROOT / ".git"], 300)
        evidence = plan.new_file("evidence-test.npz")
        cells = [
            "import os, socket, subprocess, sys\nprint(os.geteuid())",
            f"print([os.path.exists(p) for p in [{str(ROOT / 'solutions')!r}, {str(ROOT / '.git')!r}, "
            f"{str(ROOT / 'tests')!r}, {str(tmp_path / 'secret.txt')!r}]])",
            f"try:\n    open({str(package / 'grading' / 'tasks' / 'l01.py')!r}, 'a')\nexcept OSError as err:\n"
            "    print(type(err).__name__, err.errno)",
            "try:\n    socket.create_connection(('192.0.2.1', 80), timeout=3)\nexcept OSError as err:\n    print('no network', err.errno)",
            "try:\n    open('/tmp/big', 'wb').write(b'0' * (300 << 20))\nexcept OSError as err:\n    print('file too big', err.errno)",
            "try:\n    hog = bytearray(20 << 30)\nexcept MemoryError:\n    print('memory refused')",
            f"subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)', {survivor!r}], start_new_session=True)\n"
            "print(sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))",
            # io: no new file (an inode flood), no new folder, but the evidence file the grader made takes writes
            "made = []\nfor name in ['flood-0', 'flood-1']:\n    try:\n"
            f"        open(os.path.join({str(plan.io)!r}, name), 'w'); made.append(name)\n"
            "    except OSError as err:\n        made.append(err.errno)\n"
            f"try:\n    os.mkdir(os.path.join({str(plan.io)!r}, 'deep'))\nexcept OSError as err:\n    made.append(err.errno)\n"
            f"open({str(evidence)!r}, 'wb').write(b'evidence')\nprint(made)",
            "cache = os.path.join(os.environ['TLCOURSE_READ_ONLY_CACHE'], 'features')\n"
            "seen = open(os.path.join(cache, 'entry.pt'), 'rb').read().decode()\nrefused = []\n"
            "for name in ['entry.pt', 'poison.pt']:\n    try:\n        open(os.path.join(cache, name), 'wb')\n"
            "    except OSError as err:\n        refused.append(err.errno)\nprint(seen, refused)",
            # the private /tmp: a flood of empty files stops at the cap (root graders), each costs kernel memory
            "os.makedirs('/tmp/flood')\nmade = 0\ntry:\n    while made < 150_000:\n"
            "        open(f'/tmp/flood/{made}', 'w').close()\n        made += 1\nexcept OSError as err:\n"
            "    print(made, err.errno, os.statvfs('/tmp').f_files)\nelse:\n    print(made)",
        ]
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
        run = run_notebook(nb, cell_timeout=120, total_timeout=300, cwd=plan.cwd, env=plan.env, plan=plan)
        connection_left = (plan.io / "kernel.json").exists()
        in_io = sorted(p.name for p in plan.io.iterdir() if not p.is_socket())
        written = evidence.read_bytes()
    out = ["".join(o.get("text", "") for o in cell.outputs).strip() for cell in nb.cells]
    assert all(o.status == "ok" for o in run.outcomes.values()), (run.outcomes, out)
    assert int(out[0]) != 0  # root graders hand the kernel a uid of its own (or nobody, in a user namespace)
    if sandboxes.drops_to_own_uid():
        assert int(out[0]) >= sandboxes.UID_BASE
    assert out[1] == "[False, False, False, False]"
    assert out[2].startswith(("OSError 30", "PermissionError 13"))  # read-only file system
    assert out[3].startswith("no network")
    assert out[4] == "file too big 27"  # EFBIG: the file-size limit
    assert out[5] == "memory refused"
    assert len(json.loads(out[6])) <= 4  # the sandbox's init, the kernel, the child: nothing of the machine
    assert out[7] == "[13, 13, 13]" and in_io == ["evidence-test.npz"] and written == b"evidence"  # EACCES
    assert out[8] == "features [30, 30]"  # EROFS: the shared cache is read-only
    if sandboxes.drops_to_own_uid():  # ENOSPC at Limits.tmp_files inodes, the ones the kernel made included
        made, errno, inodes = map(int, out[9].split())
        assert errno == 28 and inodes == sandboxes.Limits().tmp_files and 90_000 < made < inodes
    assert (shared / "entry.pt").read_bytes() == b"features" and not (shared / "poison.pt").exists()
    assert not _processes_with(survivor), "a process left by the kernel outlived its sandbox"
    assert not connection_left, "the kernel's connection file was left behind"


def test_a_read_only_feature_cache_is_read_never_written_and_new_entries_go_to_the_own_cache(
        backbone, tmp_path, monkeypatch):
    """What a sandboxed kernel does with the grader's cache (``$TLCOURSE_READ_ONLY_CACHE``) and its own."""
    import hashlib

    from torch.utils.data import Subset

    import tlcourse as tl
    from tlcourse import features

    def cells(size):
        return Subset(tl.load_elpv(transform=tl.preprocess(size)), list(range(6)))

    def files(folder):
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()}

    shared, own = tmp_path / "shared", tmp_path / "own"
    monkeypatch.setenv("TLCOURSE_CACHE", str(shared))
    first = tl.extract_features(backbone, cells(64), progress=False)  # the grader's own run fills its cache
    before = files(shared)
    monkeypatch.setenv("TLCOURSE_CACHE", str(own))
    monkeypatch.setenv("TLCOURSE_READ_ONLY_CACHE", str(shared))
    real = features.forward_stages
    monkeypatch.setattr(features, "forward_stages", lambda *a, **k: pytest.fail("the model ran on a cached entry"))
    assert torch.equal(tl.extract_features(backbone, cells(64), progress=False), first)
    monkeypatch.setattr(features, "forward_stages", real)
    tl.extract_features(backbone, cells(48), progress=False)  # not in the shared cache: computed, kept in its own
    assert files(shared) == before
    assert len(list((own / "features").glob("*.pt"))) == 1

    class ReadOnly:  # an own cache that cannot be written either: compute, keep nothing, never raise
        def __init__(self, *args, **kwargs):
            pass

        def acquire(self):
            raise OSError(30, "Read-only file system")

    monkeypatch.setattr(features, "FileLock", ReadOnly)
    assert tl.extract_features(backbone, cells(40), progress=False).shape == (6, 1280)
    assert len(list((own / "features").glob("*.pt"))) == 1


# ---------------------------------------------------------------- no sandbox, old files, mixed lessons

def test_without_a_sandbox_grading_refuses_and_says_what_the_flag_risks(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sandboxes, "bwrap_problem", lambda: "bubblewrap (`bwrap`) is not installed")
    out = tmp_path / "book.csv"
    assert main(["grade", str(EXERCISES / SOLUTION.name), "--out", str(out), "--exercises", str(EXERCISES)]) == 2
    err = capsys.readouterr().err
    assert "bwrap" in err and "--unsafe-no-sandbox" in err and "read the solutions" in err
    assert not out.exists()


@needs_bwrap
@pytest.mark.slow
def test_the_unsafe_flag_grades_bare_and_warns(tmp_path, capsys):
    copy = tmp_path / "solution.ipynb"
    copy.write_bytes(SOLUTION.read_bytes())
    out = tmp_path / "book.csv"
    assert main(["grade", str(copy), "--out", str(out), "--exercises", str(EXERCISES), "--unsafe-no-sandbox"]) == 0
    assert "WARNING" in capsys.readouterr().err
    rows = list(csv.DictReader(out.open()))
    assert [(r["total"], r["status"]) for r in rows] == [("8", "ok")]


def test_a_notebook_in_an_old_format_is_told_so(tmp_path):
    old = tmp_path / "old.ipynb"
    old.write_text(json.dumps({"nbformat": 3, "nbformat_minor": 0, "metadata": {}, "worksheets": [{"cells": []}]}))
    with pytest.raises(Invalid, match="old format"):
        read_submission(old)


def test_a_batch_of_several_lessons_is_refused_without_lesson(tmp_path, capsys):
    first = tmp_path / "a.ipynb"
    first.write_bytes((EXERCISES / SOLUTION.name).read_bytes())
    second = tmp_path / "b.ipynb"
    second.write_bytes(next(EXERCISES.glob("02_*.ipynb")).read_bytes())
    assert main(["grade", str(first), str(second), "--out", str(tmp_path / "book.csv"), *SANDBOX_FLAGS]) == 2
    err = capsys.readouterr().err
    assert "lesson 01" in err and "lesson 02" in err and "--lesson" in err


def test_the_gradebook_keeps_its_finished_rows_when_the_grader_dies(tmp_path, monkeypatch):
    book = Gradebook(tmp_path / "book.csv")
    book.add(Result("first.ipynb", "01", {"01.count": 1}, 8))
    real_replace = os.replace

    def crash(src, dst):
        if str(dst).endswith(".csv"):
            raise KeyboardInterrupt  # the grader killed mid-write
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        book.add(Result("second.ipynb", "01", {"01.count": 1}, 8))
    rows = list(csv.DictReader((tmp_path / "book.csv").open()))
    assert [r["submission"] for r in rows] == ["first.ipynb"]
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".tmp"]


# ---------------------------------------------------------------- fresh inputs for the hidden tests

FRESH = {"01.head": ("01", "elpv_model"), "01.batchnorm": ("01", "freeze_body"), "01.topk": ("01", "top_k"),
         "02.split": ("02", "split_features"), "02.metrics": ("02", "fair_metrics"), "02.extract": ("02", "embed"),
         "03.augment": ("03", "augment"), "03.groups": ("03", "make_param_groups"),
         "03.moved": ("03", "relative_change"), "03.epoch": ("03", "train_one_epoch"),
         "05.stats": ("05", "pixel_stats"), "05.stages": ("05", "stage_probe"), "05.shift": ("05", "cross_type_accuracy"),
         "04.subset": ("04", "pick_per_class"), "04.epochs": ("04", "epochs_needed"), "04.curve": ("04", "probe_curve"),
         "04.summary": ("04", "mean_std_by_size"), "04.choice": ("04", "choose_and_test"), "05.mmd": ("05", "mmd_squared")}
LABELS = ("case", "seed", "photo", "k")  # what names a case in a function task's evidence


def _relabelled(replayed: dict, fresh: dict) -> dict:
    """``replayed`` evidence with the case names of ``fresh`` (what a forger who reads this run's case
    names in the kernel would write): only its numbers can then fail it."""
    cases, names = replayed.get("cases"), fresh.get("cases")
    if not (isinstance(cases, list) and isinstance(names, list) and len(cases) == len(names)):
        return replayed
    return {**replayed, "cases": [{**case, **{k: new[k] for k in LABELS if k in new}} for case, new in zip(cases, names)]}


@pytest.mark.slow
@pytest.mark.parametrize("task_id", list(FRESH))
def test_evidence_made_for_one_run_fails_the_next_run_while_the_answer_passes_both(task_id):
    from check_helpers import define

    from tlcourse.grading import evidence as files
    from tlcourse.grading.checks import evidence_for, get_task, judge_evidence
    from tlcourse.tooling.exercises import answer_task

    lesson, name = FRESH[task_id]
    solution = next((ROOT / "solutions").glob(f"{lesson}_*.ipynb"))
    nb = nbformat.read(str(solution), 4)
    setup = "import numpy as np\nimport torch\nfrom torch import nn\nfrom skimage import data\n"
    source = next(c.source for c in nb.cells if answer_task(c) == task_id)
    answer = define(setup + source, name)
    task = get_task(task_id)
    seeds = (11, 2**40 + 3)  # the grader draws seeds from 48 bits
    first, later = (files.roundtrip(evidence_for(task, answer, strict=True, seed=seed)) for seed in seeds)
    assert judge_evidence(task, first, strict=True, seed=seeds[0]).passed
    assert judge_evidence(task, later, strict=True, seed=seeds[1]).passed
    assert not judge_evidence(task, first, strict=True, seed=seeds[1]).passed
    assert not judge_evidence(task, _relabelled(first, later), strict=True, seed=seeds[1]).passed


def test_a_kernel_command_of_your_own_gets_the_kernel_and_its_folder(tmp_path):
    argv = sandboxes.custom_argv("podman run --rm -v {io}:{io} image {kernel}", tmp_path)
    assert argv[:5] == ["podman", "run", "--rm", "-v", f"{tmp_path}:{tmp_path}"]
    assert argv[6:] == [sys.executable, "-m", "ipykernel_launcher", "-f", str(tmp_path / "kernel.json")]
    with pytest.raises(ValueError, match="{kernel}"):
        sandboxes.custom_argv("podman run image python", tmp_path)
    assert sandboxes.Sandbox(command="env {kernel}").resolve() == "command"
