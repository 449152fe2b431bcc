"""A JupyterLab server for tests: on a free loopback port with a token, stopped however the test ends."""
from __future__ import annotations

import contextlib
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running(args: list[str], *, port: int, token: str, log: Path, cwd=None, env=None, start_timeout: float = 180,
            **popen):
    """Start ``args`` (a ``jupyter lab`` command on ``port`` with ``token``), wait until it answers, yield its
    URL; fail with the end of its log if it exits or stays silent for ``start_timeout`` seconds."""
    with open(log, "w", encoding="utf-8") as out:
        server = subprocess.Popen(args, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, **popen)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + start_timeout
            while True:
                try:
                    urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=5).read()
                    break
                except OSError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        pytest.fail("JupyterLab did not start:\n" + log.read_text(encoding="utf-8")[-3000:])
                    time.sleep(0.5)
            yield url
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
