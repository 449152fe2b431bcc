#!/usr/bin/env python3
"""Set up and run the course with one command, on Linux, macOS and Windows.

    python course.py lab     install the course (first time only) and open JupyterLab on lessons/
    python course.py test    install the course and its test tools, then run the whole test suite

It installs into ./.venv, which it creates, unless you run it from an activated virtual
environment or conda environment (not conda's base), in which case it installs there.
Extra arguments go to JupyterLab or pytest: python course.py test tests/test_project.py -x

Option, before or right after the command:
    --cpu    Linux only: take PyTorch's CPU-only build (a smaller download, no CUDA libraries)
             when this environment has no PyTorch yet. macOS and Windows get CPU builds anyway.

pip runs only when pyproject.toml asks for something this environment lacks; after the first
install the course runs offline.
"""
# This file runs on any Python 3.6 or newer, so that an unsupported one can say what to do.
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PYPROJECT = ROOT / "pyproject.toml"
SUPPORTED = ((3, 10), (3, 14))  # oldest and newest Python, as in pyproject.toml's requires-python
CPU_TORCH_INDEX = "https://download.pytorch.org/whl/cpu"
COMMANDS = ("lab", "test")


def python_problem(version=None, system=None, machine=None, argv=()):
    """Why this Python or machine cannot run the course, with what to do instead; None when it can."""
    version = tuple(version or sys.version_info[:2])
    system, machine = system or platform.system(), machine or platform.machine()
    if system == "Darwin" and machine == "x86_64":
        return ("This is an x86_64 Python on a Mac (an Intel Mac, or Rosetta). PyTorch has no release for it "
                "newer than 2.2.2, older than this course needs (it predates numpy 2 and Python 3.13). "
                "Use a Mac with Apple silicon and its native Python, Linux, Windows, or a cloud notebook.")
    if SUPPORTED[0] <= version[:2] <= SUPPORTED[1]:
        return None
    low, high = ("{}.{}".format(*v) for v in SUPPORTED)
    lines = ["The course needs Python {} to {}; this is Python {}.{}.".format(low, high, *version[:2])]
    found = supported_pythons_on_path()
    if found:
        lines.append("A supported Python is installed: run  {} course.py {}".format(
            found[0], " ".join(argv) or "lab"))
    lines.append(("Or: " if found else "") + how_to_get_python(system))
    return "\n".join(lines)


def supported_pythons_on_path():
    """Commands on PATH that start a supported Python, newest first (python3.14 ... python3.10)."""
    found = []
    for minor in range(SUPPORTED[1][1], SUPPORTED[0][1] - 1, -1):
        command = "python3.{}".format(minor)
        path = shutil.which(command)
        try:  # a pyenv shim exists for every installed Python but runs only the selected ones
            if path and subprocess.run([path, "-c", ""], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                       timeout=20).returncode == 0:
                found.append(command)
        except (OSError, subprocess.TimeoutExpired):
            pass
    return found


def how_to_get_python(system):
    """One line per platform: the usual way to install a supported Python there."""
    if system == "Windows":
        return ("Install Python 3.13 from https://www.python.org/downloads/ (or the Microsoft Store), "
                "then run  py -3.13 course.py lab")
    if system == "Darwin":
        return "Install Python 3.13 from https://www.python.org/downloads/ or with  brew install python@3.13"
    return ("Install Python 3.13 with your package manager (Debian/Ubuntu: sudo apt install python3.13 "
            "python3.13-venv; Fedora: sudo dnf install python3.13), or with pyenv, uv or conda.")


# --- where to install ----------------------------------------------------------------------------

def _venv_python(venv=None):
    venv = venv or VENV
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def running_environment(environ=None, prefix=None, base_prefix=None):
    """'venv', 'conda' or None: the environment this Python runs in, if it is one the course may install into.

    A conda environment counts only when it is the one running (CONDA_PREFIX is this Python's prefix)
    and it is not conda's base environment, which conda asks you not to install projects into."""
    environ = os.environ if environ is None else environ
    prefix, base_prefix = prefix or sys.prefix, base_prefix or sys.base_prefix
    if os.path.normcase(os.path.realpath(prefix)) != os.path.normcase(os.path.realpath(base_prefix)):
        return "venv"
    conda = environ.get("CONDA_PREFIX")
    if conda and os.path.normcase(os.path.realpath(conda)) == os.path.normcase(os.path.realpath(prefix)):
        is_base = environ.get("CONDA_DEFAULT_ENV") == "base" or (Path(conda) / "condabin").is_dir()
        return None if is_base else "conda"
    return None


def make_venv(venv=None):
    """Create ./.venv with pip; on failure remove what was made and say which package is missing."""
    venv = venv or VENV
    print("Creating a virtual environment in {} ...".format(venv), flush=True)
    try:
        import ensurepip  # noqa: F401  (Debian and Ubuntu ship it only in python3-venv)
        import venv as venv_module
        venv_module.EnvBuilder(with_pip=True).create(str(venv))
        return None
    except (ImportError, OSError, subprocess.CalledProcessError) as err:
        shutil.rmtree(str(venv), ignore_errors=True)
        minor = "python3.{}".format(sys.version_info[1])
        return ("Python could not create a virtual environment with pip ({}: {}); the half-made {} was "
                "removed.\nOn Debian or Ubuntu install the missing package:  sudo apt install {}-venv  "
                "(or python3-venv), then run this again. Elsewhere, reinstall Python from python.org "
                "or use a conda environment (see environment.yml).".format(
                    type(err).__name__, err, venv.name, minor))


def python_for_course():
    """(interpreter to install into, problem or None): the running environment, else ./.venv."""
    kind = running_environment()
    if kind:
        return Path(sys.executable), None
    if os.environ.get("CONDA_PREFIX") and Path(os.environ["CONDA_PREFIX"]).resolve() == Path(sys.prefix).resolve():
        print("Conda's base environment is active: the course installs into ./.venv instead "
              "(for a conda environment of its own, see environment.yml).", flush=True)
    python = _venv_python()
    if VENV.exists() and not python.exists():
        print("{} has no Python (left by an earlier failed set-up); making a new one.".format(VENV), flush=True)
        shutil.rmtree(str(VENV), ignore_errors=True)
    if not python.exists():
        problem = make_venv()
        if problem:
            return None, problem
    return python, None


# --- what is installed ---------------------------------------------------------------------------

# Runs inside the target environment; prints what pyproject.toml asks for that is not installed there.
_STATE = r'''
import json, os, sys
from importlib import metadata
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname
root, pyproject, extras = Path(sys.argv[1]), Path(sys.argv[2]), [e for e in sys.argv[3].split(",") if e]
sys.path[:] = [p for p in sys.path if p and os.path.abspath(p) != os.path.abspath(str(root))]  # not ./*.egg-info
state = {"unknown": False, "pip": None, "from_here": False, "stale": [], "missing": [], "torch": None,
         "requirements": {}}
try:
    state["pip"] = metadata.version("pip")
except metadata.PackageNotFoundError:
    pass
try:
    import tomllib
except ImportError:
    try:
        import tomli as tomllib
    except ImportError:
        try:
            from pip._vendor import tomli as tomllib
        except ImportError:
            tomllib = None
try:
    from packaging.requirements import Requirement
except ImportError:
    try:
        from pip._vendor.packaging.requirements import Requirement
    except ImportError:
        Requirement = None
if tomllib is None or Requirement is None:
    print(json.dumps(dict(state, unknown=True)))
    sys.exit()
project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
try:
    dist = metadata.distribution(project["name"])
    direct = json.loads(dist.read_text("direct_url.json") or "{}")
    url = direct.get("url", "")
    here = url.startswith("file:") and direct.get("dir_info", {}).get("editable")
    state["from_here"] = bool(here and os.path.samefile(url2pathname(urlparse(url).path), str(root)))
    scripts = {e.name: e.value for e in dist.entry_points if e.group == "console_scripts"}
    if dist.version != project["version"] or scripts != project.get("scripts", {}):
        state["stale"].append(project["name"] + " (its version or commands changed)")
except (metadata.PackageNotFoundError, OSError):
    pass
lines = list(project.get("dependencies", []))
for extra in extras:
    lines += project.get("optional-dependencies", {}).get(extra, [])
for line in lines:
    req = Requirement(line)
    if req.marker and not req.marker.evaluate({"extra": ""}):
        continue
    state["requirements"][req.name] = str(req)
    try:
        installed = metadata.version(req.name)
    except metadata.PackageNotFoundError:
        state["missing"].append(str(req))
        continue
    if req.name == "torch":
        state["torch"] = installed
    if not req.specifier.contains(installed, prereleases=True):
        state["stale"].append("{} (installed: {})".format(req, installed))
print(json.dumps(state))
'''


def installation_state(python, extras):
    """What the environment of ``python`` has of this project and its requirements (a dict), or None if unknown."""
    run = subprocess.run([str(python), "-", str(ROOT), str(PYPROJECT), ",".join(extras)], input=_STATE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    if run.returncode != 0:
        return None
    return json.loads(run.stdout)


def is_installed(state):
    return bool(state and state["from_here"] and not state["stale"] and not state["missing"])


def pip_install(python, args):
    return subprocess.run([str(python), "-m", "pip", "install", "--disable-pip-version-check", *args],
                          cwd=str(ROOT)).returncode


def install_cpu_torch(python, state):
    """Linux: PyTorch's CPU-only build, within pyproject.toml's ranges, before the rest (returns pip's status)."""
    if not sys.platform.startswith("linux"):
        print("--cpu: PyTorch's builds for macOS and Windows are CPU (or MPS) builds already; nothing to change.")
        return 0
    if state["torch"] and "+cpu" in state["torch"]:
        return 0
    if state["torch"]:
        print("--cpu: torch {} is already installed here, so it stays. For the CPU-only build, delete {} "
              "and run again with --cpu.".format(state["torch"], VENV if python == _venv_python() else "it"))
        return 0
    wanted = [state["requirements"][name] for name in ("torch", "torchvision")]
    print("Installing PyTorch's CPU-only build ({}) ...".format(", ".join(wanted)), flush=True)
    return pip_install(python, ["--index-url", CPU_TORCH_INDEX, *wanted])


def ensure_installed(python, extras, cpu=False):
    """pip-install the course from this folder unless it is installed already; returns an exit status."""
    state = installation_state(python, extras)
    if is_installed(state):
        return install_cpu_torch(python, state) if cpu else 0  # --cpu then only says why nothing changes
    spec = ".[{}]".format(",".join(extras)) if extras else "."
    if state and state["pip"] is None:
        return _no_pip(python)
    if state and state["from_here"] and not state["unknown"]:
        print("pyproject.toml asks for what this environment lacks: {}; updating it with pip ...".format(
            "; ".join(state["missing"] + state["stale"])), flush=True)
    else:
        print("Installing the course ({}) into {}: the first time downloads PyTorch and the rest (about "
              "3.3 GB on Linux, less elsewhere; less with --cpu) and takes several minutes ...".format(spec, python),
              flush=True)
    state = state if state and not state["unknown"] else None
    if cpu and state:
        status = install_cpu_torch(python, state)
        if status:
            print("Installing PyTorch's CPU-only build failed (exit {}); see pip's message above.".format(status),
                  file=sys.stderr)
            return status
    if state and state["pip"] and tuple(int(p) for p in state["pip"].split(".")[:2] if p.isdigit()) < (21, 3):
        pip_install(python, ["--upgrade", "pip>=21.3"])  # older pip cannot install pyproject.toml projects editable
    status = pip_install(python, ["-e", spec])
    if status == 0:
        return 0
    if state and state["from_here"] and not state["missing"]:
        print("\npip could not update the installation (are you offline?). Going on with what is installed, "
              "which differs from pyproject.toml only in: {}.\nRun the same command again when you are "
              "online.\n".format("; ".join(state["stale"])), file=sys.stderr, flush=True)
        return 0
    print("Installation failed (exit {}); see pip's message above.".format(status), file=sys.stderr)
    if state and state["missing"]:
        print("Not installed yet: {}. If you are offline, connect and run this again.".format(
            "; ".join(state["missing"])), file=sys.stderr)
    return status or 1


def _no_pip(python):
    if python == _venv_python():
        print("{} has no pip (left by an earlier failed set-up); removing it and making a new one.".format(VENV))
        shutil.rmtree(str(VENV), ignore_errors=True)
        return -1  # the caller starts over
    print("{} has no pip: install pip into that environment, or deactivate it so that the course makes "
          "its own .venv.".format(python), file=sys.stderr)
    return 1


# --- the two commands ----------------------------------------------------------------------------

def running_as_root():
    return hasattr(os, "geteuid") and os.geteuid() == 0


def lab_command(python, rest):
    """JupyterLab served from the repository root, so every link between folders resolves; lessons/ first."""
    args = [str(python), "-m", "jupyter", "lab", "--ServerApp.root_dir={}".format(ROOT),
            "--ContentsManager.preferred_dir=lessons"]
    if running_as_root() and "--allow-root" not in rest:
        print("Running as root (a container or WSL?): passing --allow-root, without which JupyterLab "
              "refuses to start.", flush=True)
        args.append("--allow-root")
    return args + list(rest)


MAX_TEST_WORKERS = 4  # each worker runs one notebook kernel at a time, with torch and ELPV in memory


def test_workers(rest, cpus=None):
    """How many pytest-xdist workers to ask for: one per CPU core, at most MAX_TEST_WORKERS, and none when
    the arguments choose (-n, --numprocesses, -p no:xdist) or there is a single core."""
    if any(a in ("-n", "--numprocesses", "no:xdist") or a.startswith(("-n", "--numprocesses=")) for a in rest):
        return 0
    cpus = cpus or os.cpu_count() or 1
    return min(cpus, MAX_TEST_WORKERS) if cpus > 1 else 0


def test_command(python, rest):
    """pytest, spread over the CPU cores a file at a time (lessons, solutions and test modules run side by side;
    the root conftest.py gives each worker its share of the cores' threads)."""
    workers = test_workers(rest)
    spread = ["-n", str(workers), "--dist", "loadfile"] if workers else []
    return [str(python), "-m", "pytest", *spread, *rest]


def main(argv):
    problem = python_problem(argv=argv)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    cpu = "--cpu" in argv[:2]  # before or right after the command
    argv = [a for i, a in enumerate(argv) if not (i < 2 and a == "--cpu")]
    if not argv or argv[0] not in COMMANDS:
        print(__doc__, file=sys.stderr)
        return 2
    command, rest = argv[0], argv[1:]
    for _attempt in range(2):
        python, problem = python_for_course()
        if problem:
            print(problem, file=sys.stderr)
            return 1
        status = ensure_installed(python, ["dev"] if command == "test" else [], cpu=cpu)
        if status != -1:
            break
    if status:
        return max(status, 1)
    args = (lab_command if command == "lab" else test_command)(python, rest)
    return run_in_place(args)


def run_in_place(args):
    """Become JupyterLab or pytest (POSIX), so that a signal to course.py reaches it; Windows waits for it."""
    os.chdir(str(ROOT))
    sys.stdout.flush()
    sys.stderr.flush()
    if os.name == "posix":
        os.execv(args[0], args)
    return subprocess.run(args).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
