"""The `tlcourse` command a learner runs first: doctor."""
from __future__ import annotations

import subprocess
import sys

from tlcourse import models
from tlcourse.tooling import doctor


def test_doctor_reports_a_ready_course():
    run = subprocess.run([sys.executable, "-m", "tlcourse.cli", "doctor"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    for expected in ("torch", "Device", models.WEIGHTS_SHA256, "2624 cells", "Cache", "Ready to run the course offline"):
        assert expected in run.stdout


def test_doctor_fails_when_the_weights_are_damaged(tmp_path, monkeypatch):
    bad = tmp_path / "w.pth"
    bad.write_bytes(b"x")
    monkeypatch.setattr(models, "weights_path", lambda name="efficientnet_lite0": bad)
    lines = []
    assert doctor.run_doctor(out=lines.append) is False
    text = "\n".join(lines)
    assert "MISMATCH" in text and "NOT ready" in text
