#!/usr/bin/env python3
"""Set up and run the course with one command, on Linux, macOS and Windows.

    python course.py lab     install the course (first time only) and open JupyterLab on lessons/
    python course.py test    install the course and its test tools, then run the whole test suite

It installs into ./.venv, which it creates, unless you run it from an activated virtual or
conda environment, in which case it installs there. Extra arguments go to JupyterLab or pytest.
Everything is installed from pyproject.toml; after that the course runs offline.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
MIN_PYTHON, MAX_PYTHON = (3, 10), (3, 12)


def _in_environment() -> bool:
    return sys.prefix != sys.base_prefix or bool(os.environ.get("CONDA_PREFIX"))


def _venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def python_for_course() -> Path:
    """The interpreter to install into: the active environment, or ./.venv (created on demand)."""
    if _in_environment():
        return Path(sys.executable)
    if not _venv_python().exists():
        print(f"Creating a virtual environment in {VENV} ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    return _venv_python()


def install(python: Path, extras: str) -> None:
    """pip-install the course (editable) unless this exact pyproject.toml is installed already."""
    spec = f".[{extras}]" if extras else "."
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + spec.encode()).hexdigest()[:16]
    stamp = Path(subprocess.check_output(
        [str(python), "-c", "import sys; print(sys.prefix)"], text=True).strip()) / f".tlcourse-{digest}"
    if stamp.exists():
        return
    print(f"Installing the course ({spec}) into {python} - the first time takes a few minutes ...", flush=True)
    subprocess.run([str(python), "-m", "pip", "install", "--disable-pip-version-check", "-e", spec],
                   cwd=ROOT, check=True)
    stamp.touch()


def main(argv: list[str]) -> int:
    if sys.version_info[:2] < MIN_PYTHON or sys.version_info[:2] > MAX_PYTHON:
        print(f"The course needs Python 3.10 to 3.12; this is {sys.version.split()[0]}.", file=sys.stderr)
        return 2
    if not argv or argv[0] not in ("lab", "test"):
        print(__doc__, file=sys.stderr)
        return 2
    command, rest = argv[0], argv[1:]
    python = python_for_course()
    try:
        install(python, "dev" if command == "test" else "")
    except subprocess.CalledProcessError as err:
        print(f"Installation failed (exit {err.returncode}); see pip's message above.", file=sys.stderr)
        return err.returncode or 1
    if command == "lab":
        args = [str(python), "-m", "jupyter", "lab", "lessons/", *rest]
    else:
        args = [str(python), "-m", "pytest", *rest]
    return subprocess.run(args, cwd=ROOT).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
