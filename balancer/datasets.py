"""Small real medical-imaging datasets shipped with the project (MedMNIST v2, 28x28).

The files in ``balancer/data`` are copies of the official MedMNIST v2 releases, licensed
CC BY 4.0: Yang et al., "MedMNIST v2", Scientific Data 10:41 (2023). See
``balancer/data/README.md`` for the per-file sources and counts.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

__all__ = ["SHIPPED_DATASETS", "MedMNIST", "load_chestxray14_labels", "load_medmnist"]

_DATA_DIR = Path(__file__).resolve().parent / "data"

#: Names accepted by :func:`load_medmnist` without a path.
SHIPPED_DATASETS: tuple[str, ...] = ("breastmnist", "pneumoniamnist", "retinamnist")

_SPLITS = ("train", "val", "test")


def _resolve(name_or_path: str | os.PathLike) -> Path:
    if isinstance(name_or_path, str) and name_or_path.lower() in SHIPPED_DATASETS:
        return _DATA_DIR / f"{name_or_path.lower()}.npz"
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(
            f"dataset should be a shipped name {SHIPPED_DATASETS} or a path to a .npz file, "
            f"but got {type(name_or_path).__name__}"
        )
    path = Path(name_or_path)
    if not path.is_file():
        raise FileNotFoundError(
            f"dataset={str(name_or_path)!r} is neither a shipped dataset {SHIPPED_DATASETS} "
            f"nor an existing file; pass one of those names or the path of a MedMNIST-layout .npz"
        )
    return path


def load_medmnist(
    name_or_path: str | os.PathLike = "retinamnist", split: str = "train"
) -> tuple[np.ndarray, np.ndarray]:
    """Load one split of a MedMNIST-layout ``.npz`` file.

    Args:
        name_or_path: one of :data:`SHIPPED_DATASETS` or the path of a ``.npz`` file with the
            keys ``{split}_images`` (uint8, ``(N, H, W)`` or ``(N, H, W, 3)``) and
            ``{split}_labels`` (integers, ``(N,)`` or ``(N, 1)``).
        split: ``"train"``, ``"val"`` or ``"test"``.

    Returns:
        ``(images, labels)``: the images as stored and the labels as a 1-D ``int64`` array.

    Example:
        >>> images, labels = load_medmnist("breastmnist", "train")
        >>> images.shape, np.bincount(labels).tolist()
        ((546, 28, 28), [147, 399])
    """
    if split not in _SPLITS:
        raise ValueError(f"split should be one of {_SPLITS}, but got split={split!r}")
    path = _resolve(name_or_path)
    with np.load(path) as data:
        keys = (f"{split}_images", f"{split}_labels")
        missing = [k for k in keys if k not in data.files]
        if missing:
            raise KeyError(
                f"{path} lacks the key(s) {missing} of the MedMNIST layout; it has {sorted(data.files)}. "
                f"Store the images as '{split}_images' and the labels as '{split}_labels'."
            )
        images = data[keys[0]]
        labels = data[keys[1]]
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise ValueError(
            f"{path}: '{split}_labels' has shape {labels.shape}; expected (N,) or (N, 1) class indices "
            f"(multi-label MedMNIST files are not supported here)"
        )
    if len(images) != len(labels):
        raise ValueError(
            f"{path}: {len(images)} images but {len(labels)} labels in split {split!r}; they must match"
        )
    return images, labels.astype(np.int64)


class MedMNIST(Dataset):
    """A MedMNIST split as a map-style dataset of ``(image, label)`` pairs.

    Images come out as ``float32`` tensors of shape ``(channels, 28, 28)`` scaled to ``[0, 1]``;
    labels as Python ints. The labels are also exposed as the array :attr:`labels`, so samplers
    can read them without loading any image.

    Args:
        name_or_path: a shipped name (see :data:`SHIPPED_DATASETS`) or a MedMNIST-layout ``.npz``.
        split: ``"train"``, ``"val"`` or ``"test"``.
        transform: optional callable applied to each image tensor.
    """

    def __init__(self, name_or_path: str | os.PathLike = "retinamnist", split: str = "train",
                 transform=None) -> None:
        images, self.labels = load_medmnist(name_or_path, split)
        if images.ndim == 3:
            images = images[:, None]
        else:
            images = images.transpose(0, 3, 1, 2)
        self.images = torch.from_numpy(np.ascontiguousarray(images))
        self.transform = transform

    @property
    def num_classes(self) -> int:
        return int(self.labels.max()) + 1

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = self.images[index].float().div_(255.0)
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.labels[index])


def load_chestxray14_labels() -> pd.DataFrame:
    """The NIH ChestX-ray14 label table shipped with the project (labels only, no images).

    112,120 rows, one per image, with the columns ``Image Index`` (file name),
    ``Finding Labels`` (findings joined by ``|``; ``No Finding`` for none) and ``Patient ID``.
    Source: the NIH Clinical Center's ``Data_Entry_2017_v2020.csv``; cite Wang et al.,
    "ChestX-ray8", CVPR 2017 (see ``balancer/data/README.md``).

    Example:
        >>> table = load_chestxray14_labels()
        >>> table.shape, int((table["Finding Labels"] == "No Finding").sum())
        ((112120, 3), 60361)
        >>> from balancer import labels_of
        >>> int(labels_of(table, "Finding Labels", multilabel=True).counts.min())  # Hernia
        227
    """
    return pd.read_csv(_DATA_DIR / "chestxray14_labels.csv.gz",
                       dtype={"Image Index": str, "Finding Labels": str, "Patient ID": np.int64},
                       keep_default_na=False)
