"""course.py, the newcomer's two commands: which Pythons, where it installs, when pip runs, how JupyterLab starts."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path
from urllib.parse import quote

import lab_server
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import course  # noqa: E402

sys.path.remove(str(ROOT))

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _run_course(*args, python=sys.executable, env=None, timeout=600):
    return subprocess.run([str(python), str(ROOT / "course.py"), *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


# --- which Pythons -------------------------------------------------------------------------------

def test_the_supported_pythons_are_those_of_requires_python():
    from packaging.specifiers import SpecifierSet

    spec = SpecifierSet(PYPROJECT["project"]["requires-python"])
    (low_major, low), (high_major, high) = course.SUPPORTED
    assert f"{low_major}.{low}" in spec and f"{high_major}.{high}" in spec
    assert f"{low_major}.{low - 1}" not in spec and f"{high_major}.{high + 1}" not in spec
    assert course.python_problem((3, 10), "Linux", "x86_64") is None
    assert course.python_problem((3, 14), "Windows", "AMD64") is None


@pytest.mark.parametrize("version", [(3, 9), (3, 15)])
@pytest.mark.parametrize("system", ["Linux", "Darwin", "Windows"])
def test_a_python_outside_the_range_is_refused_with_a_way_to_get_one(version, system):
    message = course.python_problem(version, system, "arm64")
    assert message and "needs Python 3.10 to 3.14" in message and f"this is Python {version[0]}.{version[1]}" in message
    assert {"Linux": "apt install python3.13", "Darwin": "brew install python@3.13",
            "Windows": "py -3.13 course.py"}[system] in message


def test_intel_macs_are_refused_plainly():
    message = course.python_problem((3, 12), "Darwin", "x86_64")
    assert message and "2.2.2" in message and "Apple silicon" in message
    assert course.python_problem((3, 12), "Darwin", "arm64") is None


def _old_pythons():
    versions = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    return sorted(p for p in versions.glob("3.[6-9].*/bin/python3") if p.is_file())


@pytest.mark.skipif(not _old_pythons(), reason="no Python 3.6 to 3.9 here (pyenv) to refuse")
def test_an_old_python_running_course_py_gets_the_message_not_a_traceback():
    for python in _old_pythons():
        run = _run_course("lab", python=python, timeout=120)
        assert run.returncode == 2, (python, run.stderr)
        assert "needs Python 3.10 to 3.14" in run.stderr and "Traceback" not in run.stderr, run.stderr


# --- where it installs ---------------------------------------------------------------------------

def test_a_conda_environment_counts_only_when_it_is_the_running_one_and_not_base(tmp_path):
    env, base, other = tmp_path / "envs" / "tlcourse", tmp_path / "miniconda", tmp_path / "envs" / "other"
    for folder in (env, base / "condabin", other):
        folder.mkdir(parents=True)
    run = course.running_environment
    assert run({"CONDA_PREFIX": str(env), "CONDA_DEFAULT_ENV": "tlcourse"}, str(env), str(env)) == "conda"
    assert run({"CONDA_PREFIX": str(base), "CONDA_DEFAULT_ENV": "base"}, str(base), str(base)) is None
    assert run({"CONDA_PREFIX": str(base)}, str(base), str(base)) is None  # base has condabin/
    # An activated conda environment, but course.py was started by another Python: not that environment.
    assert run({"CONDA_PREFIX": str(other), "CONDA_DEFAULT_ENV": "other"}, "/usr", "/usr") is None
    assert run({}, str(tmp_path / ".venv"), "/usr") == "venv"
    assert run({}, "/usr", "/usr") is None


def test_without_ensurepip_the_half_made_venv_is_removed_and_the_package_named(tmp_path, monkeypatch):
    import venv

    def debian_without_python3_venv(self, context):  # what Debian's Python does without python3-venv
        raise subprocess.CalledProcessError(1, [context.env_exe, "-m", "ensurepip"], b"ensurepip is not available")

    monkeypatch.setattr(venv.EnvBuilder, "_setup_pip", debian_without_python3_venv)
    target = tmp_path / ".venv"
    message = course.make_venv(target)
    assert not target.exists()
    assert message and f"python3.{sys.version_info[1]}-venv" in message and "apt install" in message

    monkeypatch.setitem(sys.modules, "ensurepip", None)  # a Python built without it at all
    message = course.make_venv(target)
    assert not target.exists() and message and "python3-venv" in message


def test_a_venv_left_without_pip_is_replaced_not_reused(tmp_path, monkeypatch):
    target = tmp_path / ".venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(target)], check=True, timeout=120)
    monkeypatch.setattr(course, "VENV", target)
    python = course._venv_python(target)
    assert course.installation_state(python, [])["pip"] is None
    assert course.ensure_installed(python, []) == -1  # main() then makes a new one
    assert not target.exists()


def test_as_root_jupyterlab_gets_allow_root_and_course_py_says_so(monkeypatch, capsys):
    monkeypatch.setattr(course, "running_as_root", lambda: True)
    args = course.lab_command(Path("python"), ["--no-browser"])
    assert "--allow-root" in args and args[-1] == "--no-browser"
    assert "--allow-root" in capsys.readouterr().out
    assert course.lab_command(Path("python"), ["--allow-root"]).count("--allow-root") == 1
    monkeypatch.setattr(course, "running_as_root", lambda: False)
    assert "--allow-root" not in course.lab_command(Path("python"), [])


# --- when pip runs -------------------------------------------------------------------------------

def _installed_here():
    state = course.installation_state(sys.executable, ["dev"])
    if not (state and state["from_here"]):
        pytest.skip("this environment does not have the course installed (editable) from this folder")
    return state


def test_an_installed_course_is_recognised_from_pyproject_itself():
    state = _installed_here()
    assert course.is_installed(state), state
    assert set(state["requirements"]) >= {"torch", "torchvision", "jupyterlab", "pytest", "nbval"}


@pytest.mark.slow
def test_a_second_command_runs_without_pip(tmp_path):
    """Where pip would run, a stand-in pip leaves a mark and fails: course.py must not touch it."""
    _installed_here()
    if not course.running_environment():
        pytest.skip("course.py would install into ./.venv, not into the environment these tests run in")
    fake = tmp_path / "fake" / "pip"
    fake.mkdir(parents=True)
    mark = tmp_path / "pip-was-run"
    (fake / "__init__.py").write_text("")
    (fake / "__main__.py").write_text(f"open({str(mark)!r}, 'w').close()\nraise SystemExit('pip was run')\n")
    probe = tmp_path / "probe" / "test_probe.py"
    probe.parent.mkdir()
    probe.write_text("def test_probe():\n    pass\n")
    env = {**os.environ, "PYTHONPATH": str(fake.parent)}
    run = _run_course("test", "-q", "-p", "no:cacheprovider", str(probe), env=env, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "1 passed" in run.stdout
    assert not mark.exists(), "course.py ran pip although the course is installed"
    assert "Installing" not in run.stdout + run.stderr


def _changed_pyproject(tmp_path, old, new):
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "pyproject.toml"
    path.write_text(text.replace(old, new), encoding="utf-8")
    return path


def test_offline_after_a_version_change_it_says_so_and_goes_on(tmp_path, monkeypatch, capsys):
    _installed_here()
    numpy = next(d for d in PYPROJECT["project"]["dependencies"] if d.startswith("numpy"))
    monkeypatch.setattr(course, "PYPROJECT", _changed_pyproject(tmp_path, f'"{numpy}"', '"numpy>=99"'))
    monkeypatch.setattr(course, "pip_install", lambda python, args: 1)  # what pip does with no network
    assert course.ensure_installed(Path(sys.executable), ["dev"]) == 0
    err = capsys.readouterr().err
    assert "offline" in err and "numpy>=99" in err and "Going on with what is installed" in err


def test_offline_with_a_new_package_it_stops_and_names_it(tmp_path, monkeypatch, capsys):
    _installed_here()
    numpy = next(d for d in PYPROJECT["project"]["dependencies"] if d.startswith("numpy"))
    monkeypatch.setattr(course, "PYPROJECT", _changed_pyproject(
        tmp_path, f'"{numpy}"', f'"{numpy}", "tlcourse-no-such-package>=1"'))
    monkeypatch.setattr(course, "pip_install", lambda python, args: 1)
    assert course.ensure_installed(Path(sys.executable), ["dev"]) == 1
    err = capsys.readouterr().err
    assert "Not installed yet: tlcourse-no-such-package>=1" in err and "offline" in err


def test_cpu_torch_is_asked_for_within_pyprojects_ranges(monkeypatch):
    asked = []
    monkeypatch.setattr(course, "pip_install", lambda python, args: asked.append(args) or 0)
    monkeypatch.setattr(course.sys, "platform", "linux")
    requirements = {name: next(d for d in PYPROJECT["project"]["dependencies"] if re.match(name + r"\b[^-]", d))
                    for name in ("torch", "torchvision")}
    state = {"torch": None, "requirements": requirements}
    assert course.install_cpu_torch(Path("python"), state) == 0
    assert asked == [["--index-url", course.CPU_TORCH_INDEX, requirements["torch"], requirements["torchvision"]]]
    asked.clear()
    for installed in ("2.14.1", "2.14.1+cpu"):  # an installed torch stays: --cpu changes only a fresh install
        assert course.install_cpu_torch(Path("python"), {**state, "torch": installed}) == 0 and not asked
    monkeypatch.setattr(course.sys, "platform", "win32")
    assert course.install_cpu_torch(Path("python"), state) == 0 and not asked  # PyPI's wheels are CPU there


# --- JupyterLab ----------------------------------------------------------------------------------

def _markdown_links(notebook: dict) -> list[str]:
    text = "\n".join("".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "markdown")
    return [link for link in re.findall(r"\]\(([^)\s#]+)", text) if not re.match(r"[a-z]+:", link)]


@pytest.fixture()
def course_lab(tmp_path):
    """The JupyterLab that ``course.py lab`` starts, on a free loopback port with a token; yields (url, token)."""
    pytest.importorskip("jupyterlab")
    port, token, home = lab_server.free_port(), "tlcourse-lab-test", tmp_path / "jupyter"
    args = course.lab_command(sys.executable, [
        "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}", "--LabApp.extension_manager=readonly"])
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(home / "config"), "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
           "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces")}
    with lab_server.running(args, port=port, token=token, log=tmp_path / "lab.log", cwd=ROOT, env=env) as url:
        yield url, token


def _get(url: str) -> bytes:
    return urllib.request.urlopen(url, timeout=30).read()


@pytest.mark.slow
def test_course_lab_serves_every_link_of_lesson_01_and_opens_on_lessons(course_lab):
    url, token = course_lab
    page = _get(f"{url}/lab?token={token}").decode()
    assert re.search(r'"preferredPath":\s*"/?lessons"', page), "JupyterLab does not open on lessons/"
    lesson = json.loads(_get(f"{url}/api/contents/lessons/01_transfer_learning_basics.ipynb?token={token}"))
    links = _markdown_links(lesson["content"])
    targets = {os.path.normpath(os.path.join("lessons", link)).replace(os.sep, "/") for link in links}
    # The links this test is about leave lessons/: a server rooted there (the old command) could not serve them.
    assert {"exercises/01_transfer_learning_basics.ipynb", "GLOSSARY.md"} <= targets, targets
    for target in sorted(targets):
        served = _get(f"{url}/files/{quote(target)}?token={token}")
        assert served == (ROOT / target).read_bytes(), f"{target} is not served as it is on disk"


# --- how the suite runs --------------------------------------------------------------------------

def test_the_suite_is_spread_over_the_cores_a_file_at_a_time_unless_the_arguments_choose():
    assert course.test_command("py", [])[:2] == ["py", "-m"]
    assert course.test_workers([], cpus=2) == 2
    assert course.test_workers([], cpus=64) == course.MAX_TEST_WORKERS
    assert course.test_workers([], cpus=1) == 0  # one core: no workers, nothing to share
    for chosen in (["-n", "1"], ["-n3"], ["--numprocesses=2"], ["-p", "no:xdist"]):
        assert course.test_workers(chosen, cpus=8) == 0, chosen
    spread = course.test_command("py", ["tests/test_project.py", "-x"])
    if (os.cpu_count() or 1) > 1:
        assert spread[3:7] == ["-n", str(course.test_workers([])), "--dist", "loadfile"]
    assert spread[-2:] == ["tests/test_project.py", "-x"]
    assert "pytest-xdist" in " ".join(PYPROJECT["project"]["optional-dependencies"]["dev"])


def test_each_worker_gets_its_share_of_the_threads(tmp_path):
    """The root conftest.py hands each xdist worker (and the kernels it starts) cores // workers threads."""
    (tmp_path / "conftest.py").write_text((ROOT / "conftest.py").read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "test_threads.py").write_text(
        "import os\n\ndef test_threads():\n"
        "    open(os.environ['PYTEST_XDIST_WORKER'] + '.txt', 'w').write(os.environ.get('OMP_NUM_THREADS', ''))\n")
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "2", "-p", "no:cacheprovider",
                          "test_threads.py"], cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    (written,) = tmp_path.glob("gw*.txt")
    assert written.read_text() == str(max(1, (os.cpu_count() or 1) // 2))
