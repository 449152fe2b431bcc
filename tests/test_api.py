"""The learner's API: ``tl.__all__`` is short, literal and used, the notebooks call only what it exports or
what a lesson's own module holds (``tl.curves.X``), and ``import tlcourse`` does nothing but define names."""
from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import types
from pathlib import Path

import tlcourse as tl

ROOT = Path(__file__).resolve().parents[1]
INIT = ROOT / "tlcourse" / "__init__.py"
NOTEBOOK_DIRS = ("lessons", "solutions", "exercises")
MAX_NAMES = 60  # issue 12: "at most about 60"; a lesson's own experiment is reached by module path instead
# `tl.fit(`, `tl.fit??` or `tl.curves.summarise(`; not `x.tl.fit` or `mytl.fit`
TL_NAME = re.compile(r"(?<![\w.])tl\.([A-Za-z_]\w*)(?:\.([A-Za-z_]\w*))?")


def _literal_all() -> ast.List:
    assignments = [node for node in ast.parse(INIT.read_text()).body if isinstance(node, (ast.Assign, ast.AnnAssign))
                   and any(isinstance(t, ast.Name) and t.id == "__all__"
                           for t in (node.targets if isinstance(node, ast.Assign) else [node.target]))]
    assert len(assignments) == 1, "tlcourse/__init__.py must assign __all__ exactly once"
    return assignments[0].value


def _sources() -> dict[str, str]:
    """The code of every notebook (code cells only) and of every benchmark script, by relative path."""
    sources = {}
    for folder in NOTEBOOK_DIRS:
        for path in sorted((ROOT / folder).glob("*.ipynb")):
            cells = json.loads(path.read_text())["cells"]
            sources[str(path.relative_to(ROOT))] = "\n".join(
                "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
                for c in cells if c["cell_type"] == "code")
    for path in sorted((ROOT / "benchmarks").glob("*.py")):
        sources[str(path.relative_to(ROOT))] = path.read_text()
    return sources


def _uses() -> dict[str, set[str]]:
    """Every ``tl.<name>`` (or ``tl.<module>.<name>``) and the files that use it. Dunder metadata
    (``tl.__version__``) is not API."""
    uses: dict[str, set[str]] = {}
    for where, source in _sources().items():
        for name, attribute in TL_NAME.findall(source):
            if name.startswith("__") and name.endswith("__"):
                continue
            if isinstance(getattr(tl, name, None), types.ModuleType) and attribute:
                name = f"{name}.{attribute}"
            uses.setdefault(name, set()).add(where)
    return uses


def test_all_is_a_short_literal_list_of_distinct_names_that_are_not_modules():
    value = _literal_all()
    assert isinstance(value, ast.List), "__all__ must be a literal list, not computed"
    assert all(isinstance(e, ast.Constant) and isinstance(e.value, str) for e in value.elts), \
        "__all__ must hold string literals only"
    names = [e.value for e in value.elts]
    assert names == tl.__all__  # nothing appends to it later
    duplicates = sorted({n for n in names if names.count(n) > 1})
    assert not duplicates, f"listed twice in __all__: {duplicates}"
    missing = [n for n in names if not hasattr(tl, n)]
    assert not missing, f"in __all__ but not defined in tlcourse: {missing}"
    modules = [n for n in names if isinstance(getattr(tl, n), types.ModuleType)]
    assert not modules, f"modules in __all__ (export their functions instead): {modules}"
    assert len(names) <= MAX_NAMES, f"__all__ has {len(names)} names; keep the learner's API at {MAX_NAMES} or fewer"


def test_every_exported_name_is_used_by_a_notebook_or_the_benchmark():
    uses = _uses()
    unused = [name for name in tl.__all__ if name not in uses]
    if unused:
        print("exported but used by no notebook or benchmark:", ", ".join(unused))
    assert not unused, (f"{len(unused)} name(s) of tl.__all__ are used nowhere in {', '.join(NOTEBOOK_DIRS)} "
                        f"or benchmarks/: {', '.join(unused)}. Use them or stop exporting them.")


def test_notebooks_and_the_benchmark_call_only_exported_names():
    exported = set(tl.__all__)
    unexported = {name: sorted(where) for name, where in sorted(_uses().items())
                  if "." not in name and name not in exported}
    for name, where in unexported.items():
        print(f"tl.{name} is not in tl.__all__ but is used in: {', '.join(where)}")
    assert not unexported, "notebooks or benchmarks use names tl.__all__ does not export: " + "; ".join(
        f"tl.{name} ({', '.join(where)})" for name, where in unexported.items())


def test_module_paths_name_real_functions_that_are_not_also_exported():
    """``tl.curves.summarise`` must exist in its module, and one name has one way in: a function reached by
    module path is not in ``tl.__all__`` too."""
    paths = {name: sorted(where) for name, where in _uses().items() if "." in name}
    assert paths, "no notebook reaches a lesson's module (tl.curves.X, tl.shift.X): the finder is broken"
    missing = [f"tl.{p} ({', '.join(w)})" for p, w in paths.items() if not hasattr(tl, p.split(".")[0])
               or not hasattr(getattr(tl, p.split(".")[0]), p.split(".")[1])]
    assert not missing, f"notebooks call functions that do not exist: {'; '.join(missing)}"
    both = sorted(p for p in paths if p.split(".")[1] in tl.__all__)
    assert not both, f"reached both as tl.X and by module path (pick one): {both}"


def test_the_use_finder_sees_calls_and_help_lookups_only_on_tl():
    found = TL_NAME.findall("tl.fit(model)\nprobe = tl.fit_probe??\nx.tl.nope()\nmytl.nope\n  tl.Timer() as t\n"
                            "tl.curves.summarise(rows)")
    assert [name for name, _ in found] == ["fit", "fit_probe", "Timer", "curves"]
    assert found[-1] == ("curves", "summarise")


HEAVY = ("matplotlib", "sklearn", "scipy", "timm", "ipywidgets", "IPython", "pandas", "skimage", "nbformat",
         "nbclient", "jupyter_client")

IMPORT_PROBE = """
import json, random, sys
import numpy as np, torch
state = (random.getstate(), np.random.get_state()[1].copy(), torch.random.get_rng_state().clone())
import tlcourse
after = (random.getstate(), np.random.get_state()[1].copy(), torch.random.get_rng_state().clone())
print(json.dumps({
    "modules": sorted({m.split(".")[0] for m in sys.modules} & set(HEAVY)),
    "seeded": not (state[0] == after[0] and (state[1] == after[1]).all() and torch.equal(state[2], after[2])),
    "threads_changed": torch.get_num_threads() != THREADS,
}))
"""


def test_importing_tlcourse_does_no_work(tmp_path):
    """No heavy libraries (plots, scikit-learn, timm, widgets), no seeding, no cache folder, no thread settings."""
    import os

    import torch

    cache = tmp_path / "cache"
    env = {**os.environ, "TLCOURSE_CACHE": str(cache), "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    code = f"HEAVY = {HEAVY!r}\nTHREADS = {torch.get_num_threads()}\n" + IMPORT_PROBE
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env,
                         cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["modules"] == [], f"import tlcourse imported {report['modules']} (import them inside the functions)"
    assert not report["seeded"], "import tlcourse changed a random generator's state"
    assert not report["threads_changed"], "import tlcourse changed torch's thread count"
    assert not cache.exists() and not (tmp_path / "xdg").exists(), "import tlcourse touched the cache folder"
