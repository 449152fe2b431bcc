"""Run a notebook's cells in a fresh kernel, whatever the cells do (plumbing for the grader).

nbclient executes each cell with a time limit and errors allowed. On top of it:

* a cell that times out is interrupted (SIGINT); if the kernel does not answer within a grace
  period (the code ignores SIGINT, say) the kernel's whole process group is killed;
* after a killed or dead kernel (``os._exit``, ``exit()``), the run starts again in a fresh
  kernel, skipping every cell that timed out or killed a kernel so far, so the other tasks
  still count;
* a deadline bounds the whole run, and each cell's output is capped so a flood cannot eat memory;
* with a ``plan`` (``sandbox.py``), the kernel starts through the plan's command (bubblewrap),
  talks over UNIX sockets in the plan's ``io`` folder (the sandbox has no network), is interrupted
  by a message rather than a signal (it lives in a session of its own), its connection file is
  deleted when it stops, and once it has started it can add no file to that folder (``plan.lock``).
"""
from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from dataclasses import dataclass
from queue import Empty

from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError

OUTPUT_LIMIT = 200_000  # characters of output kept per cell
INTERRUPT_GRACE = 5.0  # seconds a kernel gets to answer an interrupt


@dataclass
class CellOutcome:
    """How one cell ended: ``ok``, ``error``, ``timeout``, ``died`` or ``skipped``."""

    status: str
    detail: str = ""


class _ThisPython(KernelSpecManager):
    """Kernels run on the grader's own Python (or the command given), whatever kernelspecs the machine has."""

    argv: list = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    interrupt: str = "signal"

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        return KernelSpec(argv=list(self.argv), display_name="tlcourse grader", language="python",
                          resource_dir="", interrupt_mode=self.interrupt)


class _Client(NotebookClient):
    """nbclient, with each cell's output capped at ``OUTPUT_LIMIT`` characters."""

    def output(self, outs, msg, display_id, cell_index):
        content = msg.get("content", {})
        size = len(str(content.get("text", ""))) + sum(len(str(v)) for v in content.get("data", {}).values())
        used = self._output_used.get(cell_index, 0) + size
        self._output_used[cell_index] = used
        if used > OUTPUT_LIMIT:
            if not self._output_cut.get(cell_index):
                self._output_cut[cell_index] = True
                outs.append(_note("[the grader cut this cell's output here: too long]"))
            return None
        return super().output(outs, msg, display_id, cell_index)


def _note(text: str):
    from nbformat.v4 import new_output

    return new_output("stream", name="stderr", text=text + "\n")


def _error_of(cell) -> str:
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            return f"{out.get('ename', 'Error')}: {out.get('evalue', '')}"[:500]
    return ""


class NotebookRun:
    """Execute ``nb`` (in place) and record a :class:`CellOutcome` per code cell index."""

    def __init__(self, nb, *, cell_timeout: float, deadline: float, cwd: str, env: dict,
                 timeouts: dict[int, float] | None = None, plan=None) -> None:
        self.nb, self.cell_timeout, self.deadline = nb, cell_timeout, deadline
        self.cwd, self.env, self.timeouts = cwd, env, timeouts or {}
        self.plan = plan  # a sandbox.KernelPlan, or None: a bare kernel on this Python
        self.outcomes: dict[int, CellOutcome] = {}
        self.fatal: dict[int, CellOutcome] = {}  # cells skipped in later attempts
        self.kernel_pgid: int | None = None
        self.kernel_pgids: list[int] = []  # every kernel started, for tests and post-mortems
        self.out_of_time = False

    async def run(self) -> dict[int, CellOutcome]:
        while True:
            stopped_at = await self._attempt()
            if stopped_at is None:
                break
            self.fatal[stopped_at[0]] = stopped_at[1]
        self.outcomes.update(self.fatal)
        return self.outcomes

    def kill(self) -> None:
        """Kill the current kernel's whole process group (safe to call any time)."""
        if self.kernel_pgid and hasattr(os, "killpg"):  # on Windows, nbclient's shutdown has to do
            try:
                os.killpg(self.kernel_pgid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    async def _attempt(self):
        """One run in a fresh kernel; returns ``(index, outcome)`` when a cell kills the kernel."""
        if self.deadline - time.monotonic() <= 1:
            self.out_of_time = True
            self.outcomes = {i: CellOutcome("skipped", "the submission ran out of time")
                             for i, cell in enumerate(self.nb.cells)
                             if cell.cell_type == "code" and i not in self.fatal}
            return None
        km = self._kernel_manager()
        client = _Client(self.nb, km=km, allow_errors=True, shutdown_kernel="immediate",
                         timeout=int(self.cell_timeout), startup_timeout=120, iopub_timeout=2,
                         resources={"metadata": {"path": self.cwd}})
        client._output_used, client._output_cut = {}, {}
        self.outcomes = {}
        try:
            if self.plan is not None:
                self.plan.unlock()
            async with client.async_setup_kernel(env=self.env, cwd=self.cwd,
                                                 stdout=_devnull(), stderr=_devnull()):
                self.kernel_pgid = getattr(km.provisioner, "pgid", None)
                self.kernel_pgids.append(self.kernel_pgid)
                if self.plan is not None:  # its sockets are made: no more files in io (no flood of inodes)
                    self.plan.lock()
                for index, cell in enumerate(self.nb.cells):
                    if cell.cell_type != "code":
                        continue
                    cell.outputs, cell.execution_count = [], None
                    if index in self.fatal:
                        continue
                    remaining = self.deadline - time.monotonic()
                    if remaining <= 1:
                        self.out_of_time = True
                        self.outcomes[index] = CellOutcome("skipped", "the submission ran out of time")
                        continue
                    limit = min(self.timeouts.get(index, self.cell_timeout), remaining)
                    client.timeout_func = lambda cell, limit=limit: limit
                    try:
                        await client.async_execute_cell(cell, index)
                    except CellTimeoutError:
                        outcome = CellOutcome("timeout", f"stopped after {limit:.0f} s")
                        if not await self._interrupted(client):
                            return index, outcome
                        self.fatal[index] = outcome  # recovered, but never run it again
                        continue
                    except DeadKernelError:
                        return index, CellOutcome("died", "the kernel died (exit, os._exit or a crash)")
                    error = _error_of(cell)
                    self.outcomes[index] = CellOutcome("error", error) if error else CellOutcome("ok")
        finally:
            self.kill()
            self.kernel_pgid = None
            if self.plan is not None:  # the connection file holds the kernel's key: never leave it behind
                self.plan.release()
                (self.plan.io / "kernel.json").unlink(missing_ok=True)
        return None

    def _kernel_manager(self) -> AsyncKernelManager:
        specs = _ThisPython()
        if self.plan is None:
            return AsyncKernelManager(kernel_name="python3", kernel_spec_manager=specs)
        specs.argv, specs.interrupt = list(self.plan.argv), self.plan.interrupt_mode
        connection = self.plan.io / "kernel.json"
        if connection.exists():  # left by the previous attempt's kernel
            connection.unlink()
        km = AsyncKernelManager(kernel_name="python3", kernel_spec_manager=specs, transport=self.plan.transport,
                                connection_file=str(connection))
        if self.plan.transport == "ipc":  # UNIX sockets in the shared folder: no network needed
            km.ip = str(self.plan.io / f"kernel{len(self.kernel_pgids)}")
        return km

    async def _interrupted(self, client) -> bool:
        """Send SIGINT and wait for the kernel to answer; False when it does not."""
        try:
            await client.km.interrupt_kernel()
            end = time.monotonic() + INTERRUPT_GRACE
            while (left := end - time.monotonic()) > 0:
                msg = await client.kc.shell_channel.get_msg(timeout=left)
                if msg.get("msg_type") == "execute_reply":
                    return True
        except (Empty, asyncio.TimeoutError, RuntimeError, OSError):
            pass
        return False


def _devnull() -> int:
    """The kernel's own stdout and stderr go nowhere: a flood to fd 1 must not reach the terminal."""
    import subprocess

    return subprocess.DEVNULL


def run_notebook(nb, *, cell_timeout: float, total_timeout: float, cwd: str, env: dict,
                 timeouts: dict[int, float] | None = None, plan=None) -> NotebookRun:
    """Run ``nb`` in place; the returned run holds each code cell's ``outcomes`` and ``out_of_time``.

    ``total_timeout`` is a hard limit: when it passes, the kernel's process group is killed
    even if its code ignores SIGINT. ``plan`` (a :class:`tlcourse.grading.sandbox.KernelPlan`)
    says how to start the kernel (in a sandbox); without it the kernel runs bare on this Python.
    """
    run = NotebookRun(nb, cell_timeout=cell_timeout, deadline=time.monotonic() + total_timeout,
                      cwd=cwd, env=env, timeouts=timeouts, plan=plan)

    async def bounded():
        try:
            return await asyncio.wait_for(run.run(), timeout=total_timeout + 15)
        except asyncio.TimeoutError:
            run.kill()
            run.out_of_time = True
            run.outcomes.update(run.fatal)
            return run.outcomes

    try:
        run.outcomes = asyncio.run(bounded())
    finally:
        run.kill()
    return run
