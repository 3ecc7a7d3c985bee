"""The study's data: three splits as tensors, from a shipped name, a ``.npz``, a CSV manifest of
images or a table of numeric features.

Everything is loaded and checked here, before any training starts: a missing or unreadable file,
a missing column, unreadable images (all of them, in one message), labels that are not class
indices, an empty split, a split with a single class, splits whose images disagree in shape, and
a class that appears in the validation or test split but not in training are reported with the
argument, the value and the fix.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from balancer.datasets import SHIPPED_DATASETS

__all__ = ["SPLITS", "StudyData", "load_csv", "load_features", "load_npz", "load_study_data",
           "load_table"]

SPLITS = ("train", "val", "test")

# Fractions used to split data that has no split column (stratified by class, seeded).
_AUTO_SPLIT = {"train": 0.7, "val": 0.1, "test": 0.2}
_SHOWN = 5  # how many bad rows or paths an error message lists before "..."


@dataclass(frozen=True)
class StudyData:
    """Three splits of a classification data set, ready for training.

    Attributes:
        images: per split, a ``uint8`` tensor ``(N, channels, H, W)`` of images, or for tabular
            data a ``float32`` tensor ``(N, features)`` already standardised with the train
            split's mean and standard deviation.
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
    def tabular(self) -> bool:
        """True for feature vectors ``(N, F)``, False for images ``(N, C, H, W)``."""
        return self.images["train"].dim() == 2

    @property
    def channels(self) -> int:
        """Image channels, or the number of features of tabular data."""
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


def _shown(items: list) -> str:
    head = ", ".join(str(item) for item in items[:_SHOWN])
    return head + (", ..." if len(items) > _SHOWN else "")


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


def _class_indices(raw: np.ndarray, where: str) -> np.ndarray:
    """Labels as stored (any numeric dtype, ``(N,)`` or ``(N, 1)``) to ``int64`` class indices.

    Rejects what a cast would silently change: NaN or infinite labels (a cast makes them huge
    negative numbers), fractional ones (0.7 would become class 0) and negative ones.
    """
    labels = np.asarray(raw)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise ValueError(f"{where}: labels should have shape (N,) or (N, 1), but got "
                         f"{labels.shape}; store one class index per sample (multi-label data is "
                         f"not supported)")
    if labels.dtype == np.bool_:
        return labels.astype(np.int64)
    if not np.issubdtype(labels.dtype, np.number):
        raise ValueError(f"{where}: labels should be integer class indices, but got dtype "
                         f"{labels.dtype}; store them as integers 0..C-1")
    if np.issubdtype(labels.dtype, np.floating):
        bad = np.flatnonzero(~np.isfinite(labels))
        if bad.size:
            raise ValueError(f"{where}: {bad.size} label(s) are NaN or infinite (at index "
                             f"{_shown(bad.tolist())}); give every sample a class index or drop "
                             f"those samples")
        bad = np.flatnonzero(labels != np.round(labels))
        if bad.size:
            raise ValueError(f"{where}: {bad.size} label(s) are not whole numbers (e.g. "
                             f"{labels[bad[0]].item()!r} at index {int(bad[0])}); labels must be class "
                             f"indices 0..C-1, not probabilities or scores")
    bad = np.flatnonzero(labels < 0)
    if bad.size:
        raise ValueError(f"{where}: {bad.size} label(s) are negative (e.g. {labels[bad[0]].item()!r} at "
                         f"index {int(bad[0])}); labels must be class indices 0..C-1 (drop "
                         f"unlabelled samples instead of marking them -1)")
    return labels.astype(np.int64)


def _check_classes(labels: dict[str, np.ndarray], names: tuple[str, ...], what: str) -> None:
    """Every split has samples of at least two classes; every class of val and test is a
    training class, and every class is in every split."""
    for split in SPLITS:
        if labels[split].size == 0:
            raise ValueError(f"{what}: the {split} split is empty; every one of {list(SPLITS)} "
                             f"needs samples")
    for split in SPLITS:
        present = np.unique(labels[split])
        if present.size < 2:
            raise ValueError(
                f"{what}: the {split} split holds a single class "
                f"({names[int(present[0])]!r}); per-class recall, AUC and NLL need at least two "
                f"classes in every split. Add samples of the other classes to it")
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
    for split in SPLITS:
        missing = sorted(set(range(len(names))) - set(np.unique(labels[split]).tolist()))
        if missing:
            raise ValueError(
                f"{what}: the {split} split has no sample of class(es) "
                f"{[names[c] for c in missing]}, so per-class recall and AUC are undefined there; "
                f"every class needs samples in every split"
            )


def _read_npz(path: Path, argument: str) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` file, never unpickling anything (a pickled array could run code).

    A file that is not a zip archive, a truncated one, a member that needs pickle: a
    ``ValueError`` that names ``argument`` and the file, instead of ``BadZipFile`` or numpy's
    advice to pass ``allow_pickle=True``.
    """
    try:
        with np.load(path, allow_pickle=False) as archive:
            if not isinstance(archive, np.lib.npyio.NpzFile):
                raise ValueError("it holds a single .npy array, not an .npz archive of named "
                                 "arrays")
            return {key: archive[key] for key in archive.files}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as error:
        reason = str(error).split("\n")[0]
        if "allow_pickle" in reason or "Object arrays" in reason:
            reason = "an array in it holds Python objects, which are never unpickled here"
        raise ValueError(f"{argument}={str(path)!r} is not a readable .npz file ({reason}); pass "
                         f"a file written by numpy.savez with numeric arrays") from None
    except Exception as error:  # zlib.error and friends from a damaged member
        raise ValueError(f"{argument}={str(path)!r} is not a readable .npz file "
                         f"({type(error).__name__}: {error}); the file is damaged or truncated, "
                         f"write it again with numpy.savez") from None


def _npz_images(arrays: dict[str, np.ndarray], name: str) -> StudyData:
    """The MedMNIST layout: ``{split}_images`` (uint8) and ``{split}_labels``."""
    keys = [f"{split}_{kind}" for split in SPLITS for kind in ("images", "labels")]
    missing = [k for k in keys if k not in arrays]
    if missing:
        raise KeyError(f"{name} lacks the key(s) {missing} of the MedMNIST layout; it has "
                       f"{sorted(arrays)}. Store the images as '<split>_images' and the labels "
                       f"as '<split>_labels' for split in train, val, test (or a table as 'X' "
                       f"and 'y')")
    labels = {s: _class_indices(arrays[f"{s}_labels"], f"{name} {s}_labels") for s in SPLITS}
    images = {s: _as_nchw(arrays[f"{s}_images"], f"{name} {s}_images") for s in SPLITS}
    for split in SPLITS:
        if len(images[split]) != len(labels[split]):
            raise ValueError(f"{name}: {len(images[split])} images but {len(labels[split])} "
                             f"labels in the {split} split; they must match")
    shapes = {s: tuple(images[s].shape[1:]) for s in SPLITS}
    if len(set(shapes.values())) > 1:
        raise ValueError(f"{name}: the splits' images differ in (channels, height, width): "
                         f"{shapes}; store every split in the same shape (e.g. convert grey "
                         f"images to RGB, or all to grey) so that a model sees one kind of input")
    num_classes = int(max(labels[s].max() for s in SPLITS if labels[s].size)) + 1 \
        if all(labels[s].size for s in SPLITS) else 0
    names = tuple(str(c) for c in range(num_classes))
    _check_classes(labels, names, name)
    return StudyData(images=images, labels={s: torch.from_numpy(labels[s]) for s in SPLITS},
                     class_names=names, source=name)


def load_npz(name_or_path: str | os.PathLike, *, seed: int = 0) -> StudyData:
    """Load a shipped MedMNIST name or any ``.npz``: images in the MedMNIST layout, or a table.

    The MedMNIST layout has ``{train,val,test}_images`` (uint8) and ``{train,val,test}_labels``
    (class indices ``0 .. C-1``). A table has ``X`` (``(N, F)`` numbers) and ``y`` (``(N,)``
    class indices), optionally ``split`` (``train``/``val``/``test`` per row) and ``groups``
    (one id per row: no group is in two splits); see :func:`load_features`.
    """
    shipped = isinstance(name_or_path, str) and name_or_path.lower() in SHIPPED_DATASETS
    path = (Path(__file__).resolve().parents[1] / "data" / f"{name_or_path.lower()}.npz"
            if shipped else Path(name_or_path))
    arrays = _read_npz(path, "dataset" if shipped else "data")
    name = f"data={str(name_or_path)!r}"
    if "X" in arrays and not any(k.endswith("_images") for k in arrays):
        if "y" not in arrays:
            raise KeyError(f"{name} has 'X' but no 'y'; store the class index of each row as 'y'")
        split = arrays.get("split")
        return load_features(arrays["X"], arrays["y"], split=split, groups=arrays.get("groups"),
                             seed=seed, source=f"{name_or_path} (npz table X/y)", where=name)
    data = _npz_images(arrays, name)
    source = (f"shipped {name_or_path.lower()} (MedMNIST v2, balancer/data)" if shipped
              else f"{name_or_path} (MedMNIST layout)")
    return StudyData(data.images, data.labels, data.class_names, source)


def _read_image(path: Path, size: int) -> np.ndarray:
    # Pillow is a dependency of matplotlib, so it is always there when matplotlib is.
    from PIL import Image

    with Image.open(path) as image:
        image.load()  # decode now: a truncated file fails here, inside the caller's try
        if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
            # 16-bit and float images (X-rays are often 12 bits stored in 16): convert("L")
            # would clip everything above 255, so stretch the image's own range to 0..255.
            pixels = np.asarray(image, dtype=np.float64)
            low, high = float(pixels.min()), float(pixels.max())
            scaled = (pixels - low) * (255.0 / (high - low)) if high > low else pixels * 0.0
            image = Image.fromarray(np.round(scaled).astype(np.uint8), mode="L")
        image = image.convert("L" if image.mode in ("1", "L", "LA") else "RGB")
        if image.size != (size, size):
            image = image.resize((size, size), Image.Resampling.BILINEAR)
        return np.asarray(image, dtype=np.uint8)


def _codes(table: pd.DataFrame, label_col: str, path: Path) -> tuple[np.ndarray, tuple[str, ...]]:
    if table[label_col].isna().any():
        rows = np.flatnonzero(table[label_col].isna().to_numpy()).tolist()
        raise ValueError(f"{path}: label_col={label_col!r} is empty in row {rows[0]}"
                         f"{f' and {len(rows) - 1} more' if len(rows) > 1 else ''}; give every "
                         f"row a class or remove those rows")
    column = table[label_col]
    if pd.api.types.is_float_dtype(column) and (column == column.round()).all():
        column = column.astype(np.int64)  # 0.0/1.0 read from a CSV are the classes 0 and 1
    values = column.astype(str)
    names = tuple(sorted(values.unique(), key=lambda v: (len(v), v) if v.isdigit() else (1e9, v)))
    if len(names) < 2:
        raise ValueError(f"{path}: label_col={label_col!r} holds a single class {names}; a "
                         f"classification study needs at least two")
    return values.map({n: i for i, n in enumerate(names)}).to_numpy().astype(np.int64), names


def check_finite_features(X: np.ndarray, where: Any) -> None:
    """Refuse a feature matrix with NaN or infinite values, naming the first rows."""
    if not np.isfinite(X).all():
        rows = np.flatnonzero(~np.isfinite(X).all(axis=1)).tolist()
        raise ValueError(f"{where}: X has NaN or infinite values in {len(rows)} row(s) (e.g. "
                         f"{_shown(rows)}); fill or drop them")


def read_groups(table: pd.DataFrame, group_col: str | None, where: Any) -> np.ndarray | None:
    """The group (e.g. patient id) of every row of ``table`` as strings, or None without a
    group column; a missing column or an empty cell is an error naming it."""
    if group_col is None:
        return None
    if group_col not in table.columns:
        raise ValueError(f"group_col={group_col!r} is not a column of {where} (it has "
                         f"{list(table.columns)}); pass --group-col with one of those")
    if table[group_col].isna().any():
        row = int(np.flatnonzero(table[group_col].isna().to_numpy())[0])
        raise ValueError(f"{where}: group_col={group_col!r} is empty in row {row}; give every "
                         f"row its group (e.g. the patient id)")
    return table[group_col].astype(str).to_numpy()


def _splits(table: pd.DataFrame, codes: np.ndarray, path: Path, *, split_col: str,
            group_col: str | None, seed: int) -> np.ndarray:
    groups = read_groups(table, group_col, path)
    if split_col in table.columns:
        splits = table[split_col].astype(str).str.strip().str.lower().to_numpy()
        unknown = sorted(set(splits) - set(SPLITS))
        if unknown:
            raise ValueError(f"{path}: split_col={split_col!r} has value(s) {unknown}; use only "
                             f"{list(SPLITS)}")
        if groups is not None:
            _check_groups_disjoint(groups, splits, f"{path}: group_col={group_col!r}")
        return splits
    return auto_split(codes, seed, groups=groups, where=f"{path}")


def _check_groups_disjoint(groups: np.ndarray, splits: np.ndarray, where: str) -> None:
    frame = pd.DataFrame({"group": groups, "split": splits})
    spread = frame.groupby("group")["split"].nunique()
    leaking = spread[spread > 1].index.tolist()
    if leaking:
        raise ValueError(f"{where}: {len(leaking)} group(s) appear in more than one split "
                         f"({_shown(leaking)}); a group (e.g. a patient) must stay in one split, "
                         f"or leave out the split column to split by group automatically")


def load_csv(
    manifest: str | os.PathLike,
    *,
    image_col: str = "path",
    label_col: str = "label",
    split_col: str = "split",
    group_col: str | None = None,
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
        group_col: a column of group ids (e.g. patient id): the automatic split keeps each
            group in one split; with a split column, a group in two splits is an error.
        image_size: images are resized to ``image_size x image_size`` (bilinear). 16-bit images
            are scaled from their own range to 0..255 (not clipped).
        seed: seed of the automatic split.

    Every row whose image is missing, empty or unreadable is reported in one error (the count
    and the first few paths), before any image is used.
    """
    path = Path(manifest)
    if not path.is_file():
        raise FileNotFoundError(f"csv={str(manifest)!r} does not exist; pass the path of a CSV "
                                f"manifest with one row per image")
    table = _read_table(path, "csv")
    for argument, column in (("image_col", image_col), ("label_col", label_col)):
        if column not in table.columns:
            raise ValueError(f"{argument}={column!r} is not a column of {path} (it has "
                             f"{list(table.columns)}); pass --{argument.replace('_', '-')} with "
                             f"one of those")
    codes, names = _codes(table, label_col, path)
    splits = _splits(table, codes, path, split_col=split_col, group_col=group_col, seed=seed)

    images, problems = [], []
    for row, value in enumerate(table[image_col]):
        if not isinstance(value, str) or not value.strip():
            problems.append(f"row {row}: empty {image_col!r} cell")
            continue
        file = Path(value)
        file = file if file.is_absolute() else path.parent / file
        if not file.is_file():
            problems.append(f"row {row}: {value!r} does not exist (looked for {file})")
            continue
        try:
            images.append(_read_image(file, image_size))
        except Exception as error:  # PIL raises many types for damaged files
            problems.append(f"row {row}: {value!r} is not a readable image "
                            f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})")
    if problems:
        raise ValueError(f"{path}: {len(problems)} of {len(table)} rows have no readable image: "
                         f"{'; '.join(problems[:_SHOWN])}{'; ...' if len(problems) > _SHOWN else ''}"
                         f". Fix or remove those rows (image_col={image_col!r})")
    if len({image.ndim for image in images}) > 1:  # mixed grey and colour: make all colour
        images = [np.repeat(image[..., None], 3, -1) if image.ndim == 2 else image
                  for image in images]
    stacked = np.stack(images)

    labels = {s: codes[splits == s] for s in SPLITS}
    _check_classes(labels, names, f"csv={str(manifest)!r}")
    return StudyData(
        images={s: _as_nchw(stacked[splits == s], f"{path}") for s in SPLITS},
        labels={s: torch.from_numpy(labels[s]) for s in SPLITS},
        class_names=names,
        source=f"{path} (CSV manifest, image_col={image_col!r}, label_col={label_col!r})",
    )


def _read_table(path: Path, argument: str) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise ValueError(f"{argument}={str(path)!r} is not a readable CSV file "
                         f"({str(error).splitlines()[0]}); pass a comma-separated table with a "
                         f"header row") from None


def load_table(
    table: str | os.PathLike,
    *,
    label_col: str = "label",
    split_col: str = "split",
    group_col: str | None = None,
    seed: int = 0,
) -> StudyData:
    """Load a CSV table of features: every column but the label, split and group columns is a
    feature. Numeric columns are used as they are, text columns are one-hot encoded (one 0/1
    column per value); empty cells are an error. Features are standardised with the train
    split's mean and standard deviation.

    Args:
        table: the CSV file.
        label_col, split_col, group_col, seed: as in :func:`load_csv`.
    """
    path = Path(table)
    if not path.is_file():
        raise FileNotFoundError(f"table={str(table)!r} does not exist; pass the path of a CSV "
                                f"table with one row per sample")
    frame = _read_table(path, "table")
    if label_col not in frame.columns:
        raise ValueError(f"label_col={label_col!r} is not a column of {path} (it has "
                         f"{list(frame.columns)}); pass --label-col with one of those")
    codes, names = _codes(frame, label_col, path)
    splits = _splits(frame, codes, path, split_col=split_col, group_col=group_col, seed=seed)
    features = frame.drop(columns=[c for c in (label_col, split_col, group_col)
                                   if c is not None and c in frame.columns])
    if features.shape[1] == 0:
        raise ValueError(f"{path}: no feature columns besides label_col={label_col!r}; a table "
                         f"needs at least one feature column")
    empty = [c for c in features.columns if features[c].isna().any()]
    if empty:
        raise ValueError(f"{path}: feature column(s) {empty} have empty cells "
                         f"({int(features[empty].isna().sum().sum())} in all); fill them (e.g. "
                         f"with the train median) or drop those columns")
    text = [c for c in features.columns if not pd.api.types.is_numeric_dtype(features[c])]
    if text:
        features = pd.get_dummies(features, columns=text, dtype=np.float64)
    labels = {s: codes[splits == s] for s in SPLITS}
    return _standardised(features.to_numpy(np.float64), labels, splits, names,
                         source=f"{path} (table, label_col={label_col!r}, "
                                f"{features.shape[1]} features)",
                         what=f"table={str(table)!r}")


def load_features(
    X: np.ndarray,
    y: np.ndarray,
    *,
    split: np.ndarray | None = None,
    groups: np.ndarray | None = None,
    seed: int = 0,
    source: str = "features",
    where: str = "X",
) -> StudyData:
    """Numeric features ``X`` ``(N, F)`` and class indices ``y`` ``(N,)`` as study data.

    Without ``split`` (``train``/``val``/``test`` per row) the rows are split 70/10/20 per class
    (by group when ``groups`` is given). Features are standardised with the train split's
    statistics only, so nothing of the validation or test split leaks into training.
    """
    X = np.asarray(X)
    if X.ndim != 2 or not np.issubdtype(X.dtype, np.number):
        raise ValueError(f"{where}: X should be a 2-D numeric array (samples x features), but got "
                         f"shape {X.shape} and dtype {X.dtype}")
    codes = _class_indices(y, f"{where} y")
    if len(codes) != len(X):
        raise ValueError(f"{where}: {len(X)} rows in X but {len(codes)} labels in y; they must "
                         f"match")
    check_finite_features(X, where)
    if split is not None:
        splits = np.asarray(split).astype(str)
        unknown = sorted(set(splits.tolist()) - set(SPLITS))
        if unknown:
            raise ValueError(f"{where}: split has value(s) {unknown}; use only {list(SPLITS)}")
        if groups is not None:
            _check_groups_disjoint(np.asarray(groups).astype(str), splits, f"{where} groups")
    else:
        splits = auto_split(codes, seed, groups=None if groups is None
                            else np.asarray(groups).astype(str), where=where)
    num_classes = int(codes.max()) + 1 if codes.size else 0
    names = tuple(str(c) for c in range(num_classes))
    labels = {s: codes[splits == s] for s in SPLITS}
    return _standardised(X.astype(np.float64), labels, splits, names, source=source, what=where)


def _standardised(X: np.ndarray, labels: dict[str, np.ndarray], splits: np.ndarray,
                  names: tuple[str, ...], *, source: str, what: str) -> StudyData:
    _check_classes(labels, names, what)
    train = X[splits == "train"]
    mean = train.mean(axis=0)
    std = train.std(axis=0)
    std[std == 0] = 1.0  # a constant training column stays 0, whatever val and test hold
    scaled = ((X - mean) / std).astype(np.float32)
    return StudyData(images={s: torch.from_numpy(scaled[splits == s]) for s in SPLITS},
                     labels={s: torch.from_numpy(labels[s]) for s in SPLITS},
                     class_names=names, source=source)


def auto_split(codes: np.ndarray, seed: int, *, groups: np.ndarray | None = None,
               where: str = "data") -> np.ndarray:
    """A seeded 70/10/20 train/val/test split, stratified by class.

    With ``groups`` whole groups are assigned: each group goes with its most frequent class, the
    groups of each class are shuffled and dealt to test, then val, until each holds its share
    of that class's samples (at least one group each), and the rest to train. So no group is in
    two splits, and every class is in every split.
    """
    generator = np.random.Generator(np.random.Philox(key=[seed, 0x73706C6974]))  # "split"
    splits = np.empty(len(codes), dtype=object)
    if groups is None:
        for cls in np.unique(codes):
            members = generator.permutation(np.flatnonzero(codes == cls))
            n_test = max(1, round(_AUTO_SPLIT["test"] * len(members)))
            n_val = max(1, round(_AUTO_SPLIT["val"] * len(members)))
            splits[members[:n_test]] = "test"
            splits[members[n_test:n_test + n_val]] = "val"
            splits[members[n_test + n_val:]] = "train"
        return splits.astype(str)
    frame = pd.DataFrame({"group": groups, "code": codes})
    dominant = frame.groupby("group", sort=True)["code"].agg(lambda c: c.value_counts().index[0])
    sizes = frame.groupby("group", sort=True).size()
    assigned: dict[str, str] = {}
    for cls in np.unique(codes):
        members = dominant.index[dominant.to_numpy() == cls].to_numpy()
        if len(members) < 3:
            raise ValueError(f"{where}: class {cls} is the main class of only {len(members)} "
                             f"group(s); a split by group needs at least 3 per class (one each "
                             f"for train, val and test). Give a split column instead")
        members = members[generator.permutation(len(members))]
        total = int(sizes[members].sum())
        position = 0
        for split in ("test", "val"):
            target, taken = _AUTO_SPLIT[split] * total, 0
            while position < len(members) - 1 and (taken == 0 or taken < target):
                group = members[position]
                assigned[group] = split
                taken += int(sizes[group])
                position += 1
        for group in members[position:]:
            assigned[group] = "train"
    return np.array([assigned[g] for g in groups], dtype=str)


def load_study_data(
    *,
    dataset: str | None = None,
    data: str | os.PathLike | None = None,
    csv: str | os.PathLike | None = None,
    table: str | os.PathLike | None = None,
    image_col: str = "path",
    label_col: str = "label",
    split_col: str = "split",
    group_col: str | None = None,
    image_size: int = 28,
    seed: int = 0,
) -> StudyData:
    """Load the study's data from exactly one of ``dataset``, ``data``, ``csv`` or ``table``."""
    given = [name for name, value in (("dataset", dataset), ("data", data), ("csv", csv),
                                      ("table", table)) if value is not None]
    if len(given) > 1:
        raise ValueError(f"pass only one of dataset, data, csv and table, but got {given}")
    if csv is not None:
        return load_csv(csv, image_col=image_col, label_col=label_col, split_col=split_col,
                        group_col=group_col, image_size=image_size, seed=seed)
    if table is not None:
        return load_table(table, label_col=label_col, split_col=split_col, group_col=group_col,
                          seed=seed)
    if data is not None:
        if not Path(data).is_file():
            raise FileNotFoundError(f"data={str(data)!r} does not exist; pass the path of a .npz "
                                    f"file in the MedMNIST layout (or with arrays X and y)")
        return load_npz(Path(data), seed=seed)
    name = "retinamnist" if dataset is None else dataset
    if name.lower() not in SHIPPED_DATASETS:
        raise ValueError(f"dataset={name!r} is not a shipped data set; choose one of "
                         f"{list(SHIPPED_DATASETS)}, or pass a file with --data PATH.npz")
    return load_npz(name.lower())
