"""The study's data: three splits as tensors, from a shipped name, a ``.npz`` or a CSV manifest.

Everything is loaded and checked here, before any training starts: a missing file, a missing
column, an unreadable image or a class that appears in the validation or test split but not in
training is reported with the argument, the value and the fix.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from balancer.datasets import SHIPPED_DATASETS, load_medmnist

__all__ = ["SPLITS", "StudyData", "load_csv", "load_npz", "load_study_data"]

SPLITS = ("train", "val", "test")

# Fractions used to split a CSV manifest that has no split column (stratified, seeded).
_AUTO_SPLIT = {"train": 0.7, "val": 0.1, "test": 0.2}


@dataclass(frozen=True)
class StudyData:
    """Three splits of a classification data set, ready for training.

    Attributes:
        images: per split, a ``uint8`` tensor ``(N, channels, H, W)``.
        labels: per split, an ``int64`` tensor ``(N,)`` of class indices in ``[0, C)``.
        class_names: the original label of each class index, as strings.
        source: a short description of where the data came from (for the report).
    """

    images: dict[str, torch.Tensor]
    labels: dict[str, torch.Tensor]
    class_names: tuple[str, ...]
    source: str

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def channels(self) -> int:
        return int(self.images["train"].shape[1])

    def counts(self, split: str = "train") -> np.ndarray:
        """Samples per class in ``split``, length ``num_classes``."""
        return np.bincount(self.labels[split].numpy(), minlength=self.num_classes)

    def subset(self, split: str, indices: np.ndarray) -> StudyData:
        """A copy with ``split`` reduced to ``indices`` (the other splits shared)."""
        index = torch.as_tensor(indices, dtype=torch.long)
        images = dict(self.images, **{split: self.images[split][index]})
        labels = dict(self.labels, **{split: self.labels[split][index]})
        return StudyData(images, labels, self.class_names, self.source)


def _as_nchw(images: np.ndarray, where: str) -> torch.Tensor:
    if images.dtype != np.uint8:
        raise ValueError(f"{where}: images should be uint8 (0-255), but got dtype {images.dtype}; "
                         f"store them as uint8 as MedMNIST does")
    if images.ndim == 3:
        images = images[:, None]
    elif images.ndim == 4 and images.shape[-1] in (1, 3):
        images = images.transpose(0, 3, 1, 2)
    else:
        raise ValueError(f"{where}: images should have shape (N, H, W) or (N, H, W, 1|3), but got "
                         f"{images.shape}")
    return torch.from_numpy(np.ascontiguousarray(images))


def _check_classes(labels: dict[str, np.ndarray], names: tuple[str, ...], what: str) -> None:
    """Every class of val and test must be a training class, and every class must be tested."""
    train = set(np.unique(labels["train"]).tolist())
    for split in ("val", "test"):
        extra = sorted(set(np.unique(labels[split]).tolist()) - train)
        if extra:
            shown = [names[c] if c < len(names) else str(c) for c in extra]
            raise ValueError(
                f"{what}: the {split} split has class(es) {shown} that are absent from the train "
                f"split; a model cannot learn them. Remove those samples or add training samples "
                f"of those classes"
            )
    for split in ("train", "val", "test"):
        missing = sorted(set(range(len(names))) - set(np.unique(labels[split]).tolist()))
        if missing:
            raise ValueError(
                f"{what}: the {split} split has no sample of class(es) "
                f"{[names[c] for c in missing]}, so per-class recall and AUC are undefined there; "
                f"every class needs samples in every split"
            )


def load_npz(name_or_path: str | os.PathLike) -> StudyData:
    """Load a shipped MedMNIST name or any ``.npz`` in the MedMNIST layout.

    The file needs ``{train,val,test}_images`` (uint8) and ``{train,val,test}_labels``; the
    classes are ``0 .. max(train label)``.
    """
    arrays = {split: load_medmnist(name_or_path, split) for split in SPLITS}
    labels = {split: arrays[split][1] for split in SPLITS}
    if labels["train"].min() < 0:
        raise ValueError(f"data={str(name_or_path)!r}: train labels should be class indices >= 0, "
                         f"but the smallest is {int(labels['train'].min())}")
    num_classes = int(max(labels[s].max() for s in SPLITS)) + 1
    names = tuple(str(c) for c in range(num_classes))
    _check_classes(labels, names, f"data={str(name_or_path)!r}")
    shipped = isinstance(name_or_path, str) and name_or_path.lower() in SHIPPED_DATASETS
    source = (f"shipped {name_or_path.lower()} (MedMNIST v2, balancer/data)" if shipped
              else f"{name_or_path} (MedMNIST layout)")
    return StudyData(
        images={s: _as_nchw(arrays[s][0], f"{name_or_path} {s}_images") for s in SPLITS},
        labels={s: torch.from_numpy(labels[s]) for s in SPLITS},
        class_names=names,
        source=source,
    )


def _read_image(path: Path, size: int) -> np.ndarray:
    # Pillow is a dependency of matplotlib, so it is always there when matplotlib is.
    from PIL import Image

    with Image.open(path) as image:
        mode = "L" if image.mode in ("1", "L", "LA", "I", "I;16", "F") else "RGB"
        image = image.convert(mode)
        if image.size != (size, size):
            image = image.resize((size, size), Image.Resampling.BILINEAR)
        array = np.asarray(image, dtype=np.uint8)
    return array


def load_csv(
    manifest: str | os.PathLike,
    *,
    image_col: str = "path",
    label_col: str = "label",
    split_col: str = "split",
    image_size: int = 28,
    seed: int = 0,
) -> StudyData:
    """Load a folder of images described by a CSV manifest (one row per image).

    Args:
        manifest: the CSV file. Relative image paths are read relative to its folder.
        image_col: the column with each image's path.
        label_col: the column with each image's class (any values; sorted as strings).
        split_col: a column with ``train``/``val``/``test`` per row. If the manifest has no such
            column, the rows are split 70/10/20 per class with a generator seeded by ``seed``.
        image_size: images are resized to ``image_size x image_size`` (bilinear).
        seed: seed of the automatic split.
    """
    path = Path(manifest)
    if not path.is_file():
        raise FileNotFoundError(f"csv={str(manifest)!r} does not exist; pass the path of a CSV "
                                f"manifest with one row per image")
    table = pd.read_csv(path)
    for argument, column in (("image_col", image_col), ("label_col", label_col)):
        if column not in table.columns:
            raise ValueError(f"{argument}={column!r} is not a column of {path} (it has "
                             f"{list(table.columns)}); pass --{argument.replace('_', '-')} with "
                             f"one of those")
    if table[label_col].isna().any():
        row = int(np.flatnonzero(table[label_col].isna().to_numpy())[0])
        raise ValueError(f"{path}: label_col={label_col!r} is empty in row {row}; give every image "
                         f"a class or remove the row")
    names = tuple(sorted(table[label_col].astype(str).unique()))
    if len(names) < 2:
        raise ValueError(f"{path}: label_col={label_col!r} holds a single class {names}; a "
                         f"classification study needs at least two")
    codes = table[label_col].astype(str).map({n: i for i, n in enumerate(names)}).to_numpy()

    if split_col in table.columns:
        splits = table[split_col].astype(str).str.lower().to_numpy()
        unknown = sorted(set(splits) - set(SPLITS))
        if unknown:
            raise ValueError(f"{path}: split_col={split_col!r} has value(s) {unknown}; use only "
                             f"{list(SPLITS)}")
    else:
        splits = _auto_split(codes, seed)

    files = []
    for value in table[image_col].astype(str):
        file = Path(value)
        file = file if file.is_absolute() else path.parent / file
        if not file.is_file():
            raise FileNotFoundError(f"{path}: image_col={image_col!r} names {value!r}, which does "
                                    f"not exist (looked for {file}); fix the path or the row")
        files.append(file)
    images = [_read_image(file, image_size) for file in files]
    if len({image.ndim for image in images}) > 1:  # mixed grey and colour: make all colour
        images = [np.repeat(image[..., None], 3, -1) if image.ndim == 2 else image
                  for image in images]
    stacked = np.stack(images)

    labels = {s: codes[splits == s].astype(np.int64) for s in SPLITS}
    empty = [s for s in SPLITS if labels[s].size == 0]
    if empty:
        raise ValueError(f"{path}: the split(s) {empty} are empty; every one of {list(SPLITS)} "
                         f"needs images")
    _check_classes(labels, names, f"csv={str(manifest)!r}")
    return StudyData(
        images={s: _as_nchw(stacked[splits == s], f"{path}") for s in SPLITS},
        labels={s: torch.from_numpy(labels[s]) for s in SPLITS},
        class_names=names,
        source=f"{path} (CSV manifest, image_col={image_col!r}, label_col={label_col!r})",
    )


def _auto_split(codes: np.ndarray, seed: int) -> np.ndarray:
    generator = np.random.Generator(np.random.Philox(key=[seed, 0x73706C6974]))  # "split"
    splits = np.empty(len(codes), dtype=object)
    for cls in np.unique(codes):
        members = generator.permutation(np.flatnonzero(codes == cls))
        n_test = max(1, round(_AUTO_SPLIT["test"] * len(members)))
        n_val = max(1, round(_AUTO_SPLIT["val"] * len(members)))
        splits[members[:n_test]] = "test"
        splits[members[n_test:n_test + n_val]] = "val"
        splits[members[n_test + n_val:]] = "train"
    return splits.astype(str)


def load_study_data(
    *,
    dataset: str | None = None,
    data: str | os.PathLike | None = None,
    csv: str | os.PathLike | None = None,
    image_col: str = "path",
    label_col: str = "label",
    split_col: str = "split",
    image_size: int = 28,
    seed: int = 0,
) -> StudyData:
    """Load the study's data from exactly one of ``dataset``, ``data`` or ``csv``."""
    given = [name for name, value in (("dataset", dataset), ("data", data), ("csv", csv))
             if value is not None]
    if len(given) > 1:
        raise ValueError(f"pass only one of dataset, data and csv, but got {given}")
    if csv is not None:
        return load_csv(csv, image_col=image_col, label_col=label_col, split_col=split_col,
                        image_size=image_size, seed=seed)
    if data is not None:
        if not Path(data).is_file():
            raise FileNotFoundError(f"data={str(data)!r} does not exist; pass the path of a .npz "
                                    f"file in the MedMNIST layout")
        return load_npz(Path(data))
    name = "retinamnist" if dataset is None else dataset
    if name.lower() not in SHIPPED_DATASETS:
        raise ValueError(f"dataset={name!r} is not a shipped data set; choose one of "
                         f"{list(SHIPPED_DATASETS)}, or pass a file with --data PATH.npz")
    return load_npz(name.lower())
