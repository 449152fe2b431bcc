"""Datasets: ELPV solar cells (lessons 02-05), the Deitsch et al. split, two small offline data sets for
lesson 04's three situations (faces, digits), and folders of your own images."""
from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

ELPV_PACKAGE = "elpv-dataset"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def _elpv_labels_file() -> Path:
    try:
        import elpv_dataset
    except ImportError as err:
        raise FileNotFoundError(
            f"The ELPV solar-cell data is missing. Install it with: pip install {ELPV_PACKAGE}"
        ) from err
    path = Path(elpv_dataset.__file__).parent / "data" / "labels.csv"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing. Reinstall the data with: pip install --force-reinstall {ELPV_PACKAGE}"
        )
    return path


@lru_cache(maxsize=1)
def _elpv_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """Images, probabilities, module types and a content hash, read once per process."""
    labels = _elpv_labels_file()
    table = np.genfromtxt(labels, dtype=["U64", "<f8", "U4"], names=["path", "probability", "type"])
    images = np.empty((len(table), 300, 300), dtype=np.uint8)
    digest = hashlib.sha256(labels.read_bytes())
    for i, name in enumerate(table["path"]):
        image = _open_image(labels.parent / name)
        images[i] = np.asarray(image.convert("L"))
    digest.update(images.tobytes()[:: 4099])  # a cheap sample of the pixels
    images.setflags(write=False)
    return images, table["probability"].astype(np.float32), table["type"], digest.hexdigest()[:16]


def _open_image(path: Path) -> Image.Image:
    """Open an image fully, or raise an error that names the file."""
    try:
        with Image.open(path) as image:
            image.load()
            return image
    except FileNotFoundError:
        raise FileNotFoundError(f"Image file not found: {path}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ValueError(f"Cannot read image {path}: it is corrupt or not an image ({err}). "
                         "Replace or delete the file.") from err


class ELPV(Dataset):
    """The ELPV electroluminescence solar-cell crops: 2,624 grayscale 300x300 images of 44 modules.

    ``dataset[i]`` is ``(image, label)``: a PIL image (or ``transform(image)``) and the binary
    label (defective = probability > 0.5), or the 4-class label with ``target="4class"``.
    Arrays for every cell: ``images``, ``probabilities``, ``module_types`` ('mono'/'poly'),
    ``labels`` (binary), ``labels4`` (0-3).
    """

    classes_binary = ("functional", "defective")
    classes_4class = ("0", "1/3", "2/3", "1")

    def __init__(self, transform: Callable | None = None, target: str = "binary") -> None:
        if target not in ("binary", "4class"):
            raise ValueError("target must be 'binary' or '4class'")
        self.images, self.probabilities, self.module_types, self._hash = _elpv_arrays()
        self.transform = transform
        self.target = target
        self.labels = (self.probabilities > 0.5).astype(np.int64)
        self.labels4 = np.rint(self.probabilities * 3).astype(np.int64)

    @property
    def targets(self) -> np.ndarray:
        """The labels of the chosen target, one per cell."""
        return self.labels if self.target == "binary" else self.labels4

    @property
    def classes(self) -> tuple[str, ...]:
        return self.classes_binary if self.target == "binary" else self.classes_4class

    @property
    def fingerprint(self) -> str:
        """Identifies the data and the transform (part of the feature-cache key)."""
        return f"elpv-{self._hash}-{self.transform!r}"

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        image = Image.fromarray(self.images[index])
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.targets[index])

    def __repr__(self) -> str:
        return f"ELPV({len(self)} cells, target={self.target!r}, transform={self.transform!r})"


def load_elpv(transform: Callable | None = None, target: str = "binary") -> ELPV:
    """The ELPV dataset, offline, from the ``elpv-dataset`` pip package."""
    return ELPV(transform=transform, target=target)


def elpv_strata(indices=None) -> np.ndarray:
    """The stratum of each ELPV cell: its module type and defect probability, e.g. ``"mono2"``.

    The Deitsch split, the validation split and any subset that must keep the data's mix
    stratify on these (``indices`` picks cells; all of them by default).
    """
    _, probabilities, types, _ = _elpv_arrays()
    idx = np.arange(len(probabilities)) if indices is None else np.asarray(indices)
    return np.char.add(types[idx].astype(str), np.round(probabilities[idx] * 3).astype(int).astype(str))


def elpv_split(seed: int = 0, test_size: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """Deitsch et al.'s protocol: ``(train_idx, test_idx)``, 75/25, stratified on probability x type.

    With the defaults that is 1968 training and 656 test cells. Never tune on the test part:
    carve a validation split out of ``train_idx`` with :func:`validation_split`.
    """
    from sklearn.model_selection import train_test_split

    strata = elpv_strata()
    train, test = train_test_split(np.arange(len(strata)), test_size=test_size, random_state=seed, stratify=strata)
    return np.sort(train), np.sort(test)


def validation_split(train_idx, seed: int = 0, val_size: float = 0.2, labels=None) -> tuple[np.ndarray, np.ndarray]:
    """Carve ``(fit_idx, val_idx)`` out of training indices, stratified like the test split.

    ELPV's strata by default; pass ``labels`` (one per item of the whole data set) for any other data.
    """
    from sklearn.model_selection import train_test_split

    train_idx = np.asarray(train_idx)
    strata = elpv_strata(train_idx) if labels is None else np.asarray(labels)[train_idx]
    fit, val = train_test_split(train_idx, test_size=val_size, random_state=seed, stratify=strata)
    return np.sort(fit), np.sort(val)


def stratified_split(labels, test_size: float = 0.25, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(train_idx, test_idx)`` of any labelled data, stratified on the labels (ELPV has :func:`elpv_split`)."""
    from sklearn.model_selection import train_test_split

    labels = np.asarray(labels)
    train, test = train_test_split(np.arange(len(labels)), test_size=test_size, random_state=seed, stratify=labels)
    return np.sort(train), np.sort(test)


def cells_as_tensor(images, size: int = 64) -> torch.Tensor:
    """Grey uint8 images (ELPV's cells, faces, digits) as a ``(N, 1, size, size)`` float tensor in [-1, 1] (for a CNN from scratch)."""
    x = torch.as_tensor(np.array(images, dtype=np.float32)).unsqueeze(1) / 255.0
    x = torch.nn.functional.interpolate(x, size=(size, size), mode="area")
    return (x - 0.5) / 0.5


def per_class_subset(labels, per_class: int, seed: int = 0, indices=None) -> np.ndarray:
    """Pick ``per_class`` random indices of each label from ``indices`` (lesson 04's small training sets)."""
    labels = np.asarray(labels)
    indices = np.arange(len(labels)) if indices is None else np.asarray(indices)
    rng = np.random.default_rng(seed)
    chosen = []
    for label in np.unique(labels[indices]):
        pool = indices[labels[indices] == label]
        if per_class > len(pool):
            raise ValueError(f"Only {len(pool)} examples of class {label}; cannot take {per_class}.")
        chosen.append(rng.choice(pool, size=per_class, replace=False))
    return np.sort(np.concatenate(chosen))


# ---------------------------------------------------------------- two small data sets, offline (lesson 04)

class LabelledImages(Dataset):
    """Small grey images held in memory, with labels: lesson 04's other two situations.

    Shaped like ``ELPV`` so the same strategies run on it: ``images`` (uint8, ``N x H x W``),
    ``labels``, ``classes``, ``name``; ``dataset[i]`` is ``(image, label)`` with ``transform`` applied.
    """

    def __init__(self, images, labels, classes, name: str, transform: Callable | None = None) -> None:
        self.images = np.ascontiguousarray(images, dtype=np.uint8)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.classes, self.name, self.transform = tuple(classes), name, transform
        self._hash = hashlib.sha256(self.images.tobytes() + self.labels.tobytes()).hexdigest()[:16]

    @property
    def fingerprint(self) -> str:
        """Identifies the pixels, the labels and the transform (part of the feature-cache key)."""
        return f"{self.name}-{self._hash}-{self.transform!r}"

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        image = Image.fromarray(self.images[index])
        return (self.transform(image) if self.transform is not None else image), int(self.labels[index])

    def __repr__(self) -> str:
        return f"LabelledImages({self.name!r}, {len(self)} images of {self.images.shape[1:]}, classes={self.classes})"


def load_faces(transform: Callable | None = None) -> LabelledImages:
    """Data *similar* to ImageNet: 100 faces and 100 non-faces, 25x25 grey crops of natural photos.

    From Labeled Faces in the Wild, as scikit-image bundles them (``skimage.data.lfw_subset``); label 1 = face.
    """
    from skimage.data import lfw_subset

    images = np.rint(lfw_subset() * 255).astype(np.uint8)
    labels = np.r_[np.ones(100), np.zeros(100)]  # lfw_subset gives the 100 faces first
    return LabelledImages(images, labels, ("non-face", "face"), "lfw-faces", transform)


def load_digits(transform: Callable | None = None) -> LabelledImages:
    """Data where ImageNet features are not expected to help: 1,797 handwritten digits, 8x8 grey.

    scikit-learn's ``load_digits`` (pixel values 0-16, scaled here to 0-255); labels 0-9.
    """
    from sklearn.datasets import load_digits as sklearn_digits

    digits = sklearn_digits()
    images = np.rint(digits.images * (255 / 16)).astype(np.uint8)
    return LabelledImages(images, digits.target, tuple(str(d) for d in range(10)), "sklearn-digits", transform)


# ---------------------------------------------------------------- your own images

class ImageFolderData(Dataset):
    """An ``ImageFolder``-style dataset (``root/<class>/<image>``), checked up front.

    Every image is opened once when the dataset is made, so a corrupt file is reported by
    name before training starts. Nothing is silently skipped.
    """

    def __init__(self, root: str | Path, transform: Callable | None = None, verify: bool = True) -> None:
        root = Path(root).expanduser()
        if not root.exists():
            raise FileNotFoundError(f"No such folder: {root}. Check the path (it is read relative to {Path.cwd()}).")
        if not root.is_dir():
            raise NotADirectoryError(f"{root} is a file; give the folder that holds one sub-folder per class.")
        class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not class_dirs:
            raise ValueError(f"{root} has no class folders. Put each class's images in root/<class name>/.")
        self.root, self.transform = root, transform
        self.classes = [p.name for p in class_dirs]
        self.samples: list[tuple[Path, int]] = []
        for label, class_dir in enumerate(class_dirs):
            files = sorted(p for p in class_dir.rglob("*") if p.is_file() and not p.name.startswith("."))
            images = [p for p in files if p.suffix.lower() in IMAGE_EXTENSIONS]
            others = [p for p in files if p.suffix.lower() not in IMAGE_EXTENSIONS]
            if others:
                raise ValueError(
                    f"{others[0]} is not an image file (expected one of {', '.join(IMAGE_EXTENSIONS)}). "
                    "Move it out of the dataset folder."
                )
            if not images:
                raise ValueError(f"The class folder {class_dir} is empty: add images or remove the folder.")
            self.samples += [(p, label) for p in images]
        if verify:
            for path, _ in self.samples:
                _open_image(path)
        self.targets = np.array([label for _, label in self.samples], dtype=np.int64)

    @property
    def fingerprint(self) -> str:
        """Identifies the files (paths, sizes, modification times) and the transform."""
        digest = hashlib.sha256()
        for path, label in self.samples:
            stat = path.stat()
            digest.update(f"{path}|{label}|{stat.st_size}|{stat.st_mtime_ns}".encode())
        return f"folder-{digest.hexdigest()[:16]}-{self.transform!r}"

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        path, label = self.samples[index]
        image = _open_image(path).convert("RGB")
        if self.transform is not None:
            image = self.transform(image)
        return image, label


class ImageList(Dataset):
    """Images already in memory (arrays, grey or RGB, or PIL images) as a dataset with no labels.

    For photos, crops or renderings that are not a folder: ``tl.extract_features(model,
    tl.ImageList(images, tl.preprocess(160)), cache=False)`` embeds them.
    """

    def __init__(self, images, transform: Callable | None = None) -> None:
        self.images, self.transform = list(images), transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        image = self.images[index]
        if isinstance(image, np.ndarray):
            image = np.ascontiguousarray(image)  # e.g. a crop, which torchvision cannot read as a view
        return (self.transform(image) if self.transform is not None else image), -1


def load_image_folder(root: str | Path, transform: Callable | None = None) -> ImageFolderData:
    """Your own images, one sub-folder per class, with clear errors for every common mistake."""
    return ImageFolderData(root, transform=transform)


def dataset_fingerprint(dataset) -> str:
    """A string that changes when the data or its transform changes (used by the feature cache)."""
    if hasattr(dataset, "fingerprint"):
        return str(dataset.fingerprint)
    if isinstance(dataset, torch.utils.data.Subset):
        ids = hashlib.sha256(np.asarray(dataset.indices, dtype=np.int64).tobytes()).hexdigest()[:16]
        return f"{dataset_fingerprint(dataset.dataset)}[{ids}]"
    if isinstance(dataset, torch.utils.data.TensorDataset):
        digest = hashlib.sha256()
        for tensor in dataset.tensors:
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return f"tensors-{digest.hexdigest()[:16]}"
    raise TypeError(
        f"Cannot tell whether a {type(dataset).__name__} has changed, so it cannot be cached. "
        "Give it a `fingerprint` attribute, or pass cache=False."
    )
