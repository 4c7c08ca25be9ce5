"""Image sources: the embedded CIFAR-10 mini set, npz folders, ImageFolder trees, torchvision CIFAR."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ofa_edge.errors import FileFormatError, InvalidValueError, OfaEdgeError

EMBEDDED = Path(__file__).with_name("cifar10_mini.npz")
EMBEDDED_FORMAT = "ofa-edge-cifar10-mini-v1"
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


@dataclass(frozen=True, eq=False)
class ImageSet:
    """Labelled images (uint8 HWC array or image files) seen through an index list."""

    labels: np.ndarray                      # label of every image in the source, int64
    classes: tuple[str, ...]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    array: np.ndarray | None = None         # (N, H, W, 3) uint8, or None for file sources
    files: tuple[str, ...] | None = None    # image paths when array is None
    indices: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.indices is None:
            object.__setattr__(self, "indices", np.arange(len(self.labels)))

    def __len__(self) -> int:
        return int(self.indices.size)

    @property
    def targets(self) -> np.ndarray:
        """Labels of the images in this view, in order."""
        return self.labels[self.indices]

    def subset(self, positions: Sequence[int] | np.ndarray) -> "ImageSet":
        """A view of this set's items at ``positions``."""
        pos = np.asarray(positions, dtype=np.int64)
        return ImageSet(self.labels, self.classes, self.mean, self.std, self.array, self.files,
                        self.indices[pos])

    def image(self, i: int) -> torch.Tensor:
        """Item ``i`` as a uint8 CHW tensor."""
        j = int(self.indices[i])
        if self.array is not None:
            return torch.from_numpy(np.ascontiguousarray(self.array[j])).permute(2, 0, 1)
        from PIL import Image

        with Image.open(self.files[j]) as im:
            arr = np.asarray(im.convert("RGB"))
        return torch.from_numpy(arr.copy()).permute(2, 0, 1)

    def label(self, i: int) -> int:
        return int(self.labels[self.indices[i]])


@dataclass(frozen=True)
class Splits:
    """A source's predefined train and test sets (test may be None: carved later)."""

    train: ImageSet
    test: ImageSet | None
    name: str


def load_embedded() -> Splits:
    """The committed class-balanced CIFAR-10 slice (500 train + 100 test per class)."""
    try:
        d = np.load(EMBEDDED)
        if str(d["format"]) != EMBEDDED_FORMAT:
            raise FileFormatError(EMBEDDED, f"unknown format {str(d['format'])!r}")
        classes = tuple(str(c) for c in d["classes"])
        tr = ImageSet(d["train_labels"].astype(np.int64), classes, CIFAR10_MEAN, CIFAR10_STD,
                      d["train_images"])
        te = ImageSet(d["test_labels"].astype(np.int64), classes, CIFAR10_MEAN, CIFAR10_STD,
                      d["test_images"])
    except (OSError, KeyError, ValueError) as exc:
        raise FileFormatError(EMBEDDED, f"embedded data set unreadable ({exc}); reinstall ofa-edge") from None
    return Splits(tr, te, "cifar10-mini (embedded)")


def _npz_part(path: Path) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    try:
        d = np.load(path)
        images, labels, classes = d["images"], d["labels"].astype(np.int64), tuple(str(c) for c in d["classes"])
    except (OSError, KeyError, ValueError) as exc:
        raise FileFormatError(path, f"not an images/labels/classes npz ({exc})") from None
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8 or len(images) != len(labels):
        raise FileFormatError(path, f"images must be (N, H, W, 3) uint8 with one label each, got "
                                    f"{images.shape} {images.dtype} and {labels.shape} labels")
    return images, labels, classes


def load_npz_folder(root: Path) -> Splits:
    """A folder with ``train.npz`` (+ optional ``train_extra.npz``) and ``test.npz`` (keys images,
    labels, classes), e.g. ../shared/data/cifar10."""
    parts = [_npz_part(root / "train.npz")]
    if (root / "train_extra.npz").is_file():
        parts.append(_npz_part(root / "train_extra.npz"))
    classes = parts[0][2]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    mean, std = (CIFAR10_MEAN, CIFAR10_STD) if len(classes) == 10 else (IMAGENET_MEAN, IMAGENET_STD)
    train = ImageSet(labels, classes, mean, std, images)
    test = None
    if (root / "test.npz").is_file():
        ti, tl, _ = _npz_part(root / "test.npz")
        test = ImageSet(tl, classes, mean, std, ti)
    return Splits(train, test, f"npz:{root}")


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import pickle

    if not path.is_file():
        raise OfaEdgeError(f"data: {path} is missing; the folder is not a complete torchvision CIFAR copy")
    try:
        with open(path, "rb") as fh:
            d = pickle.load(fh, encoding="latin1")
        data = np.asarray(d["data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        labels = np.asarray(d["labels"] if "labels" in d else d["fine_labels"], dtype=np.int64)
    except (pickle.UnpicklingError, EOFError, KeyError, ValueError, TypeError) as exc:
        raise FileFormatError(path, f"not a CIFAR python batch ({exc})") from None
    return np.ascontiguousarray(data), labels


def load_torchvision_cifar(root: Path, which: str) -> Splits:
    """CIFAR-10/100 in torchvision's on-disk format (python pickle batches under ``root``); never downloads."""
    import pickle

    if which == "cifar10":
        folder, train_files, test_files, meta, key = (root / "cifar-10-batches-py",
                                                      [f"data_batch_{i}" for i in range(1, 6)],
                                                      ["test_batch"], "batches.meta", "label_names")
        mean, std = CIFAR10_MEAN, CIFAR10_STD
    else:
        folder, train_files, test_files, meta, key = (root / "cifar-100-python", ["train"], ["test"], "meta",
                                                      "fine_label_names")
        mean, std = CIFAR100_MEAN, CIFAR100_STD
    parts = [_read_cifar_batch(folder / f) for f in train_files]
    test = [_read_cifar_batch(folder / f) for f in test_files]
    try:
        with open(folder / meta, "rb") as fh:
            classes = tuple(str(c) for c in pickle.load(fh, encoding="latin1")[key])
    except (OSError, pickle.UnpicklingError, EOFError, KeyError, TypeError) as exc:
        raise FileFormatError(folder / meta, f"not a CIFAR meta file ({exc})") from None
    tr = ImageSet(np.concatenate([p[1] for p in parts]), classes, mean, std, np.concatenate([p[0] for p in parts]))
    te = ImageSet(np.concatenate([p[1] for p in test]), classes, mean, std, np.concatenate([p[0] for p in test]))
    return Splits(tr, te, f"{which}:{root}")


def _image_folder(root: Path) -> ImageSet:
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    files, labels = [], []
    for label, name in enumerate(classes):
        for dirpath, _, names in sorted(os.walk(root / name)):
            for n in sorted(names):
                if n.lower().endswith(IMAGE_EXTENSIONS):
                    files.append(str(Path(dirpath) / n))
                    labels.append(label)
    counts = np.bincount(np.asarray(labels, np.int64), minlength=len(classes)) if labels else []
    used = [c for c, n in zip(classes, counts) if n > 0]
    if len(used) < 2:
        raise OfaEdgeError(f"data: ImageFolder {root} has {len(used)} class folder(s) with images; "
                           "a classification task needs at least 2 (one sub-folder of images per class)")
    return ImageSet(np.asarray(labels, np.int64), tuple(classes), IMAGENET_MEAN, IMAGENET_STD,
                    files=tuple(files))


def load_image_folder(root: Path) -> Splits:
    """An ImageFolder tree: ``root/<class>/*.jpg``, or ``root/train/<class>`` with ``root/val|test/<class>``."""
    if (root / "train").is_dir():
        train = _image_folder(root / "train")
        for name in ("test", "val"):
            if (root / name).is_dir():
                test = _image_folder(root / name)
                if test.classes != train.classes:
                    raise OfaEdgeError(f"data: {root / name} has classes {list(test.classes)}, "
                                       f"but {root / 'train'} has {list(train.classes)}")
                return Splits(train, test, f"imagefolder:{root}")
        return Splits(train, None, f"imagefolder:{root}")
    return Splits(_image_folder(root), None, f"imagefolder:{root}")


def open_source(data: str | os.PathLike | None) -> Splits:
    """Resolve a data argument: None/"embedded", an npz folder, a torchvision CIFAR root, an ImageFolder."""
    if data is None or str(data) in ("", "embedded", "cifar10-mini"):
        return load_embedded()
    root = Path(data)
    if not root.exists():
        raise InvalidValueError(f"data: folder {root} does not exist; give an ImageFolder directory, a "
                                "torchvision CIFAR root, a folder with train.npz/test.npz, or none for the "
                                "embedded CIFAR-10 mini set", "data")
    if not root.is_dir():
        raise OfaEdgeError(f"data: {root} is not a folder")
    if (root / "train.npz").is_file():
        return load_npz_folder(root)
    for sub, which in (("cifar-10-batches-py", "cifar10"), ("cifar-100-python", "cifar100")):
        if (root / sub).is_dir():
            return load_torchvision_cifar(root, which)
        if root.name == sub:
            return load_torchvision_cifar(root.parent, which)
    return load_image_folder(root)
