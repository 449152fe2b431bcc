"""Devices, seeds, timing and the cache folder: the small plumbing every lesson uses."""
from __future__ import annotations

import os
import random
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch


def device() -> torch.device:
    """Pick the fastest device available: CUDA, then Apple's MPS, then the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def channels_last_on_cpu(x: torch.Tensor) -> torch.Tensor:
    """A batch of images in the channels-last memory layout when it lives on the CPU.

    Convolutions on a CPU run 30-50% faster with channels last (``benchmarks/throughput.py``);
    the values agree up to rounding, only their order in memory changes. Other tensors pass unchanged.
    """
    if x.ndim == 4 and x.device.type == "cpu" and x.is_floating_point():
        return x.contiguous(memory_format=torch.channels_last)
    return x


def seed_everything(seed: int = 0) -> None:
    """Seed Python, NumPy and torch (all devices) so that a run can be repeated."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds CUDA and MPS generators


def cache_dir() -> Path:
    """The folder where features and activations are cached (override with $TLCOURSE_CACHE)."""
    env = os.environ.get("TLCOURSE_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.environ.get("LOCALAPPDATA") or Path.home() / ".cache"
    return Path(base) / "tlcourse"


class Timer:
    """Wall-clock timer used as ``with tl.Timer() as t: ...; t.seconds``."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def __enter__(self) -> "Timer":
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self._start

    def __repr__(self) -> str:
        return f"Timer({self.seconds:.2f} s)"


@contextmanager
def torch_threads(n: int | None):
    """Temporarily set the number of CPU threads torch uses (None leaves it unchanged)."""
    old = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)
