"""Settings for the whole test run, notebooks included (their kernels inherit this environment)."""
import os

# Under nbval no one can click a widget: show the static views (tests/test_browser.py turns this off).
os.environ.setdefault("TLCOURSE_STATIC", "1")
