"""Settings for the whole test run, notebooks included (their kernels inherit this environment)."""
import os

# Under nbval no one can click a widget: show the static views (tests/test_browser.py turns this off).
os.environ.setdefault("TLCOURSE_STATIC", "1")

# Under pytest-xdist (`python course.py test` asks for one worker per core), each worker and the notebook
# kernels it starts share the cores: give each its slice of threads, so two workers on two cores do not
# run four busy threads. An explicit OMP_NUM_THREADS wins.
_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _workers > 1:
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // _workers)))
