"""From notebook to tool: save a trained model with what it needs, reload it, predict a file, export it (lesson 07).

A :class:`DeployedModel` is a trained network together with everything needed to use it: the
input size and normalisation, the class names, the decision threshold and the temperature.
It takes what a decoded image file is, ``uint8`` pixels ``(N, size, size, 3)``, and returns
class probabilities, so the preprocessing travels with the weights and never has to be
re-implemented, in Python or after an export to ONNX.

* :func:`save_model` writes the weights (a state dict) and the metadata (JSON) into one file;
  :func:`load_model` reads it with ``torch.load(weights_only=True)``, which runs no pickled
  code, and rebuilds the network from the backbone's name and the number of classes.
* :func:`predict_image` reads one image file and returns a :class:`Prediction`;
  ``tlcourse predict MODEL IMAGE...`` does the same from a shell.
* :func:`export_onnx`, :func:`onnx_parity` and :func:`latency` ship it to ONNX Runtime.

Recorded with the weights: the tlcourse and torch versions, the backbone's name and the input
format, so that a file says what it is (``read_model_file(path)[0]``).
"""
from __future__ import annotations

import copy
import io
import json
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from .models import StagedModel, load_backbone, replace_head, stages
from .transforms import MEAN, STD

FORMAT = "tlcourse-model"
FORMAT_VERSION = 1
REQUIRED_METADATA = {"backbone", "layout", "size", "class_names", "mean", "std", "threshold", "temperature",
                     "positive_class", "extra"}


class ModelFileError(ValueError):
    """A file is not a model saved by :func:`save_model`, or it is damaged; the message names the file."""


class DeployedModel(nn.Module):
    """A trained network with its preprocessing and decision rule: ``uint8`` images in, probabilities out.

    ``forward`` takes RGB pixels ``(N, size, size, 3)`` (``uint8``, as ``np.asarray`` of an
    image gives them), scales them to [0, 1], normalises them with ``mean`` and ``std``, runs
    the network and returns ``softmax(logits / temperature)``. With two classes and a
    ``threshold``, :meth:`decide` calls an image ``class_names[positive_class]`` when that
    class's probability reaches the threshold; otherwise the most probable class wins.
    """

    def __init__(self, net: nn.Module, *, size: int, class_names: Sequence[str], mean: Sequence[float] = MEAN,
                 std: Sequence[float] = STD, threshold: float | None = None, temperature: float = 1.0,
                 positive_class: int = 1, backbone: str | None = None, extra: dict | None = None) -> None:
        super().__init__()
        if threshold is not None and (len(class_names) != 2 or not 0.0 <= threshold <= 1.0):
            raise ValueError(f"A threshold needs two classes and a value in [0, 1]; got {len(class_names)} "
                             f"classes and threshold={threshold}.")
        if temperature <= 0:
            raise ValueError(f"The temperature must be positive, not {temperature}.")
        self.net = net.eval()
        self.size, self.class_names, self.threshold = int(size), list(class_names), threshold
        self.temperature, self.positive_class, self.backbone = float(temperature), int(positive_class), backbone
        self.mean, self.std, self.extra = [float(m) for m in mean], [float(s) for s in std], dict(extra or {})
        self.register_buffer("_mean", torch.tensor(self.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("_std", torch.tensor(self.std).view(1, 3, 1, 1), persistent=False)
        self.eval()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.permute(0, 3, 1, 2).to(torch.float32) / 255.0  # (N, H, W, 3) uint8 -> (N, 3, H, W) in [0, 1]
        logits = self.net((x - self._mean) / self._std)
        return (logits / self.temperature).softmax(dim=1)

    def decide(self, probabilities) -> np.ndarray:
        """The class index of each row of ``probabilities``: the threshold rule, or the most probable class."""
        p = np.asarray(probabilities)
        if self.threshold is None:
            return p.argmax(axis=1)
        return np.where(p[:, self.positive_class] >= self.threshold, self.positive_class, 1 - self.positive_class)

    def metadata(self) -> dict:
        """What :func:`save_model` writes beside the weights (JSON types only)."""
        from . import __version__

        return {"format": FORMAT, "format_version": FORMAT_VERSION, "tlcourse_version": __version__,
                "torch_version": torch.__version__, "backbone": self.backbone,
                "layout": "stages" if isinstance(self.net, StagedModel) else "model",
                "size": self.size, "class_names": self.class_names, "mean": self.mean, "std": self.std,
                "threshold": self.threshold, "temperature": self.temperature,
                "positive_class": self.positive_class, "input": "uint8 RGB images (N, size, size, 3)",
                "extra": self.extra}


def assemble(bottom: StagedModel, top: StagedModel) -> StagedModel:
    """The whole network again from the two halves of ``tl.split_at`` (e.g. a fine-tuned top), ready to save."""
    return StagedModel(OrderedDict([*bottom.stages().items(), *top.stages().items()]))


# ---------------------------------------------------------------- save and load

def _skeleton(backbone: str, num_classes: int, layout: str) -> nn.Module:
    """The untrained network that ``save_model``'s weights fit: ``load_backbone`` + ``replace_head``."""
    net = replace_head(load_backbone(backbone, pretrained=False), num_classes)
    return StagedModel(stages(net)) if layout == "stages" else net


def _mismatch(expected: dict, given: dict) -> str | None:
    """The first difference between two state dicts' names and shapes, in words, or None."""
    for key in [*expected, *(k for k in given if k not in expected)]:
        if key not in given or key not in expected or expected[key].shape != given[key].shape:
            shapes = [tuple(d[key].shape) if key in d else "missing" for d in (expected, given)]
            return f"{key}: expected {shapes[0]}, found {shapes[1]}"
    return None


def save_model(path: str | Path, net: nn.Module, *, backbone: str, size: int, class_names: Sequence[str],
               threshold: float | None = None, temperature: float = 1.0, mean: Sequence[float] = MEAN,
               std: Sequence[float] = STD, positive_class: int = 1, extra: dict | None = None) -> Path:
    """Save ``net`` with everything needed to use it into one file that :func:`load_model` reads back.

    ``net`` is ``tl.replace_head(tl.load_backbone(backbone), len(class_names))`` after training,
    or the same network as stages (``assemble(bottom, fine_tuned_top)``). ``size``, ``mean`` and
    ``std`` are the preprocessing it was trained with (``tl.preprocess(size, mean=, std=)``).
    ``threshold`` and ``temperature`` are the decision rule chosen on validation (the threshold
    applies to the probabilities after the temperature). ``extra``: any JSON-able notes (metrics).
    """
    modes = [(module, module.training) for module in net.modules()]
    meta = DeployedModel(net, size=size, class_names=class_names, mean=mean, std=std, threshold=threshold,
                         temperature=temperature, positive_class=positive_class, backbone=backbone,
                         extra=extra).metadata()
    for module, training in modes:  # DeployedModel switched every module to eval mode; saving should not
        module.training = training
    weights = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    problem = _mismatch(_skeleton(backbone, len(class_names), meta["layout"]).state_dict(), weights)
    if problem:
        raise ValueError(f"save_model rebuilds the network as replace_head(load_backbone({backbone!r}), "
                         f"{len(class_names)}), but this network's weights do not fit it ({problem}). "
                         "Save a model built that way, or check backbone= and class_names=.")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": FORMAT, "metadata": json.dumps(meta), "state_dict": weights}, path)
    return path


def read_model_file(path: str | Path) -> tuple[dict, dict]:
    """The metadata and the weights of a saved model, read safely (``weights_only=True``), or a clear error."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Model file not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # not a zip, not a torch file, or pickled code that weights_only refuses
        reason = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise ModelFileError(f"{path} is not a model saved by tlcourse.deploy.save_model: torch cannot read "
                             f"it safely ({reason}).") from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT or "metadata" not in payload:
        raise ModelFileError(f"{path} is a PyTorch file, but not a model saved by tlcourse.deploy.save_model "
                             "(it has no tlcourse metadata; a bare state dict does not say how to use it).")
    try:
        meta = json.loads(payload["metadata"])
    except (TypeError, ValueError) as err:
        raise ModelFileError(f"{path}: its metadata is not valid JSON; the file is damaged ({err}).") from err
    missing = sorted(REQUIRED_METADATA - meta.keys()) if isinstance(meta, dict) else ["everything"]
    if missing:
        raise ModelFileError(f"{path}: its metadata lacks {', '.join(missing)}; the file is damaged.")
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise ModelFileError(f"{path} was saved by a newer tlcourse ({meta.get('tlcourse_version')}); "
                             "upgrade tlcourse to read it.")
    return meta, payload["state_dict"]


def load_model(path: str | Path) -> DeployedModel:
    """Rebuild a model saved by :func:`save_model`, in eval mode on the CPU (works in a fresh process)."""
    meta, weights = read_model_file(path)
    net = _skeleton(meta["backbone"], len(meta["class_names"]), meta["layout"])
    try:
        net.load_state_dict(weights)
    except RuntimeError as err:
        raise ModelFileError(f"{path}: its weights do not fit its own metadata; the file is damaged ({err}).") from err
    return DeployedModel(net, size=meta["size"], class_names=meta["class_names"], mean=meta["mean"],
                         std=meta["std"], threshold=meta["threshold"], temperature=meta["temperature"],
                         positive_class=meta["positive_class"], backbone=meta["backbone"], extra=meta["extra"])


# ---------------------------------------------------------------- predict a file

def read_image(path: str | Path, size: int) -> torch.Tensor:
    """One image file as the model's input, ``uint8 (1, size, size, 3)``, resized as ``tl.preprocess`` does."""
    from torchvision.transforms.v2 import functional as F

    from .data import _open_image

    image = F.pil_to_tensor(_open_image(Path(path)).convert("RGB"))  # (3, H, W) uint8; errors name the file
    image = F.resize(image, [size, size], antialias=True)
    return image.permute(1, 2, 0).unsqueeze(0).contiguous()


@dataclass
class Prediction:
    """What :func:`predict_image` says about one file; ``str()`` gives the line ``tlcourse predict`` prints."""

    file: str
    label: str
    probability: float  # the model's probability of ``label``
    probabilities: dict = field(default_factory=dict)
    threshold: float | None = None

    def __str__(self) -> str:
        rule = f", threshold {self.threshold:.3f}" if self.threshold is not None else ""
        return f"{self.file}: {self.label} (probability {self.probability:.3f}{rule})"


def predict_image(model: DeployedModel | str | Path, image_path: str | Path) -> Prediction:
    """The decision of ``model`` (a :class:`DeployedModel` or a saved file) on one image file."""
    model = load_model(model) if isinstance(model, (str, Path)) else model
    with torch.inference_mode():
        probs = model(read_image(image_path, model.size).to(model._mean.device)).cpu().numpy()
    index = int(model.decide(probs)[0])
    return Prediction(file=str(image_path), label=model.class_names[index], probability=float(probs[0, index]),
                      probabilities={n: float(p) for n, p in zip(model.class_names, probs[0])},
                      threshold=model.threshold)


# ---------------------------------------------------------------- ONNX

def export_onnx(model: DeployedModel | str | Path, path: str | Path, dynamo: bool = False) -> Path:
    """Export ``model``, preprocessing included, to one ONNX file: ``image`` in, ``probabilities`` out.

    The input is ``uint8`` RGB pixels ``(batch, size, size, 3)`` (any batch size), already resized
    to the model's size; scaling, normalisation and the temperature are inside the graph. The
    class names, threshold and the rest of the metadata are stored as the ONNX model's properties
    (``onnx.load(path).metadata_props``, JSON values).

    ``dynamo=False`` uses torch's TorchScript exporter: deprecated since torch 2.9, but it writes
    this network in about 2 s on a CPU core, where ``dynamo=True`` (``torch.export`` and
    onnxscript, the new default) took 35-50 s; both give the same probabilities. Where a torch
    no longer has the TorchScript exporter, the dynamo one is used.
    """
    import warnings

    import onnx

    model = load_model(model) if isinstance(model, (str, Path)) else copy.deepcopy(model).cpu()  # left where it is
    example = torch.zeros(2, model.size, model.size, 3, dtype=torch.uint8)
    names = dict(input_names=["image"], output_names=["probabilities"], verbose=False)
    proto = None
    if not dynamo:
        try:
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter's notice, on purpose
                buffer = io.BytesIO()
                torch.onnx.export(model, (example,), buffer, dynamo=False, dynamic_axes={"image": {0: "batch"}},
                                  **names)
            proto = onnx.load_from_string(buffer.getvalue())
        except (TypeError, NotImplementedError, RuntimeError, AttributeError):  # a torch without it
            proto = None
    if proto is None:
        program = torch.onnx.export(model, (example,), dynamo=True, dynamic_shapes={"images": {0: torch.export.Dim("batch")}},
                                    **names)
        proto = program.model_proto
    onnx.helper.set_model_props(proto, {k: json.dumps(v) for k, v in model.metadata().items()})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, str(path))
    return path


def _onnx_session(onnx_path: str | Path, threads: int | None = None):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    return onnxruntime.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])


def _as_images(images, size: int) -> torch.Tensor:
    """A batch ``uint8 (N, size, size, 3)`` from such a tensor or array, or from a list of image files."""
    if isinstance(images, (list, tuple)) and images and isinstance(images[0], (str, Path)):
        return torch.cat([read_image(p, size) for p in images])
    images = torch.as_tensor(np.asarray(images))
    if images.dtype != torch.uint8 or images.ndim != 4 or tuple(images.shape[1:]) != (size, size, 3):
        raise ValueError(f"Expected uint8 images of shape (N, {size}, {size}, 3), got {images.dtype} "
                         f"{tuple(images.shape)}; or pass a list of image files.")
    return images


def onnx_parity(model: DeployedModel, onnx_path: str | Path, images) -> float:
    """The largest absolute difference between the probabilities of ``model`` and of ONNX Runtime on ``images``.

    ``images``: ``uint8 (N, size, size, 3)`` pixels, or a list of image files. A faithful
    export differs by float rounding only (well under 1e-4).
    """
    x = _as_images(images, model.size)
    with torch.inference_mode():
        expected = copy.deepcopy(model).cpu()(x).numpy()  # on the CPU, as ONNX Runtime runs here
    got = _onnx_session(onnx_path).run(["probabilities"], {"image": x.numpy()})[0]
    return float(np.abs(expected - got).max())


def latency(model: DeployedModel, onnx_path: str | Path | None = None, batch_size: int = 1, threads: int | None = 1,
            repeats: int = 20, warmup: int = 3, seed: int = 0) -> dict[str, float]:
    """Median milliseconds per image on the CPU, for PyTorch and (given ``onnx_path``) ONNX Runtime.

    Both runtimes get the same ``threads`` (default 1: one request on one core, the fairest
    and steadiest comparison; None lets each choose). Runs ``repeats`` timed batches of
    ``batch_size`` random images after ``warmup`` untimed ones. The numbers depend on the
    machine and on what else runs on it: compare them side by side, in the same sitting.
    """
    from .utils import torch_threads

    x = torch.randint(0, 256, (batch_size, model.size, model.size, 3), dtype=torch.uint8,
                      generator=torch.Generator().manual_seed(seed))
    model = copy.deepcopy(model).cpu()
    runners = {"pytorch_ms": lambda: model(x)}
    if onnx_path is not None:
        session, feed = _onnx_session(onnx_path, threads), {"image": x.numpy()}
        runners["onnxruntime_ms"] = lambda: session.run(["probabilities"], feed)
    result = {}
    with torch.inference_mode(), torch_threads(threads):
        for name, run in runners.items():
            for _ in range(warmup):
                run()
            seconds = []
            for _ in range(repeats):
                start = time.perf_counter()
                run()
                seconds.append(time.perf_counter() - start)
            result[name] = 1000 * float(np.median(seconds)) / batch_size
        result["threads"] = torch.get_num_threads()
    return result


# ---------------------------------------------------------------- the `tlcourse predict` command

def run_cli(args) -> int:
    """``tlcourse predict``: one line per image on stdout, one per unreadable file on stderr.

    Exit status 0 when every image was classified, 1 when an image could not be read, 2 when
    the model file could not be used.
    """
    import sys
    from dataclasses import asdict

    try:
        model = load_model(args.model)
    except (FileNotFoundError, ValueError) as err:  # ModelFileError is a ValueError
        print(f"tlcourse predict: {err}", file=sys.stderr)
        return 2
    failures = 0
    for image in args.images:
        try:
            prediction = predict_image(model, image)
        except (FileNotFoundError, ValueError) as err:  # the message names the file
            print(f"tlcourse predict: {err}", file=sys.stderr)
            failures += 1
            continue
        print(json.dumps(asdict(prediction)) if args.json else prediction, flush=True)
    return 1 if failures else 0
