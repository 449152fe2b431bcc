"""Evidence files: plain data written by the hidden tests in the kernel, read by the grader.

A file is an uncompressed ``.npz`` archive (NumPy's format, read with ``allow_pickle=False``):
the member ``tree`` holds the evidence as JSON, where every tensor or array is replaced by
``{"__array__": i}`` and stored as member ``a<i>``. Dicts are written as ``{"__dict__": [[key,
value], ...]}``, tuples as ``{"__tuple__": [...]}`` and sets as ``{"__set__": [...]}`` (or
``__frozenset__``), so no learner-chosen key can pass for a tensor. Reading refuses a file over the size limit, a compressed member (no zip bombs), an
object array, or a tree that is not what the grader asked for (``run`` and ``task`` must match
the values handed to that kernel alone).

Nothing here unpickles anything: a forged file can hold wrong numbers, never code.
"""
from __future__ import annotations

import io
import json
import math
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

LIMIT = 64 << 20  # bytes of evidence per task; more is refused unread


class EvidenceRejected(ValueError):
    """The evidence file is missing, too large, malformed, or not from this run."""


def _encode(value: Any, arrays: list) -> Any:
    import torch

    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu()
        if tensor.dtype in (torch.bfloat16, torch.float16):
            tensor = tensor.float()
        arrays.append(tensor.numpy().copy())  # not ascontiguousarray: it makes 0-d arrays 1-d
        return {"__array__": len(arrays) - 1}
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            raise TypeError("an object array is not plain data")
        arrays.append(value.copy())
        return {"__array__": len(arrays) - 1}
    if isinstance(value, dict):
        return {"__dict__": [[_encode(k, arrays), _encode(v, arrays)] for k, v in value.items()]}
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, arrays) for v in value]}
    if isinstance(value, (set, frozenset)):
        return {"__frozenset__" if isinstance(value, frozenset) else "__set__": [_encode(v, arrays) for v in value]}
    if isinstance(value, list):
        return [_encode(v, arrays) for v in value]
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else {"__float__": repr(value)}
    raise TypeError(f"a {type(value).__name__} is not plain data")


def save(tree: Any, path: str | Path | io.BytesIO) -> None:
    """Write ``tree`` (dicts, lists, tuples, sets, strings, numbers, tensors, arrays) to ``path``."""
    arrays: list = []
    encoded = json.dumps(_encode(tree, arrays), allow_nan=False)
    members = {"tree": np.frombuffer(encoded.encode("utf-8"), dtype=np.uint8)}
    members.update({f"a{i}": a for i, a in enumerate(arrays)})
    if isinstance(path, io.BytesIO):
        np.savez(path, **members)
        return
    with open(path, "wb") as handle:
        np.savez(handle, **members)


def roundtrip(tree: Any) -> Any:
    """``tree`` as the grader would read it back (``tl.check`` judges exactly that)."""
    buffer = io.BytesIO()
    save(tree, buffer)
    with np.load(io.BytesIO(buffer.getvalue()), allow_pickle=False) as arrays:
        return _decode(json.loads(bytes(arrays["tree"]).decode("utf-8")), arrays)


def _decode(value: Any, arrays) -> Any:
    if isinstance(value, list):
        return [_decode(v, arrays) for v in value]
    if isinstance(value, dict):
        if set(value) == {"__array__"}:
            import torch

            return torch.from_numpy(np.array(arrays[f"a{int(value['__array__'])}"]))
        if set(value) == {"__dict__"}:
            return {_hashable(_decode(k, arrays)): _decode(v, arrays) for k, v in value["__dict__"]}
        if set(value) == {"__tuple__"}:
            return tuple(_decode(v, arrays) for v in value["__tuple__"])
        if set(value) in ({"__set__"}, {"__frozenset__"}):
            items = [_hashable(_decode(v, arrays)) for v in next(iter(value.values()))]
            return frozenset(items) if "__frozenset__" in value else set(items)
        if set(value) == {"__float__"}:
            return float(value["__float__"])
        raise EvidenceRejected("the evidence has a malformed entry")
    return value


def _hashable(key: Any) -> Any:
    if isinstance(key, (str, int, float, bool, tuple)) or key is None:
        return key
    raise EvidenceRejected("the evidence has a key that is not plain data")


def load(path: str | Path, limit: int = LIMIT) -> Any:
    """The tree saved by :func:`save`, or :class:`EvidenceRejected` (never unpickles)."""
    path = Path(path)
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size == 0:  # the grader made it empty
            raise EvidenceRejected("the hidden test wrote no evidence")
        size = path.stat().st_size
        if size > limit:
            raise EvidenceRejected(f"the evidence is {size / 2**20:.0f} MiB, over the grader's limit of "
                                   f"{limit / 2**20:.0f} MiB")
        data = path.read_bytes()
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
            if any(i.compress_type != zipfile.ZIP_STORED for i in infos) or sum(i.file_size for i in infos) > limit:
                raise EvidenceRejected("the evidence file is not one the hidden tests write")
        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
            tree = json.loads(bytes(arrays["tree"]).decode("utf-8"))
            return _decode(tree, arrays)
    except EvidenceRejected:
        raise
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, RecursionError, IndexError) as err:
        raise EvidenceRejected(f"the evidence file could not be read ({type(err).__name__})") from None


def signed(tree: Any, run: str, task: str) -> dict:
    """What the kernel writes: the evidence with the run's token and the task id."""
    return {"run": run, "task": task, "evidence": tree}


def verified(path: str | Path, run: str, task: str, limit: int = LIMIT) -> Any:
    """The evidence of ``task`` from this run's kernel, or :class:`EvidenceRejected`."""
    tree = load(path, limit)
    if not isinstance(tree, dict) or tree.get("run") != run or tree.get("task") != task:
        raise EvidenceRejected("the evidence file does not come from this submission's hidden test")
    return tree.get("evidence")
