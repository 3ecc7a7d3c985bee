"""The study's data, single-label and multi-label side by side: three splits as tensors.

Single-label (:class:`StudyData`, :func:`load_study_data`): a shipped name, a ``.npz``, a CSV
manifest of images or a table of numeric features. Everything is loaded and checked here, before
any training starts: a missing or unreadable file, a missing column, unreadable images (all of
them, in one message), labels that are not class indices, an empty split, a split with a single
class, splits whose images disagree in shape, and a class that appears in the validation or test
split but not in training are reported with the argument, the value and the fix.

Multi-label (:class:`MultiLabelData`, :func:`load_multilabel_data`): features ``(N, F)`` and 0/1
labels ``(N, L)``, from

- the default, **semi-synthetic** ChestX-ray14 set (:func:`semisynthetic_chestxray14`): real
  label rows and patient ids of the shipped NIH table, with features *generated from the
  labels* by a seeded generator. No image is involved; the features are not real data.
- a user's ``.npz`` with ``X`` ``(N, F)`` and ``Y`` ``(N, L)`` (optional ``groups``, ``split``
  or ``is_train``, ``names`` or ``label_names``), :func:`load_multilabel_npz`;
- a user's CSV table with several 0/1 label columns or one ``|``-separated column of findings,
  :func:`load_multilabel_table`;
- an ARFF file (MULAN's format: the nominal ``{0,1}`` attributes are the labels),
  :func:`load_arff`, so a developer can run on the classic MULAN sets.

Without a split, rows are split 70/10/20 (``--split``) by :func:`grouped_multilabel_split`:
whole groups (patients) when a group column is given, each label's positives spread over the
three splits.

Both tasks share the reading of files (npz, CSV), group columns, the splits
(:func:`resolve_splits`: a given split checked and, without val rows, a validation split carved
from train; or an automatic one, by ``--split``; no group in two splits), the feature checks
and the standardisation with the train split's statistics.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import re
import sys
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from balancer.datasets import SHIPPED_DATASETS
from balancer.labels import encode_multilabels

__all__ = ["SPLITS", "MultiLabelData", "StudyData", "carve_multilabel_val", "data_identity",
           "grouped_multilabel_split", "load_arff",
           "load_csv", "load_features", "load_multilabel_data", "load_multilabel_npz",
           "load_multilabel_table", "load_npz", "load_study_data", "load_table", "resolve_splits",
           "semisynthetic_chestxray14"]

SPLITS = ("train", "val", "test")

# Fractions used to split data that has no split column (seeded; by class or by label).
_DEFAULT_FRACTIONS = (0.7, 0.1, 0.2)
_SHOWN = 5  # how many bad rows or paths an error message lists before "..."
#: Name of the default multi-label data set in configs, reports and run-folder names.
SEMISYNTHETIC = "chestxray14-semisynthetic"
# The second word of each generator's Philox key.
_SPLIT_KEY = 0x73706C6974  # "split": the single-label automatic split
_ML_SPLIT_KEY = 0x6D6C73706C6974  # "mlsplit": the multi-label automatic split
_FEATURE_KEY = 0x6D6C66656174  # "mlfeat": the semi-synthetic features
_CARVE_KEY = 0x6361727665  # "carve": the validation split carved from train


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
        groups: per split, the group id (e.g. patient) of each row as strings, or ``None``
            without a group column; no group is in two splits.
    """

    images: dict[str, torch.Tensor]
    labels: dict[str, torch.Tensor]
    class_names: tuple[str, ...]
    source: str
    groups: dict[str, np.ndarray] | None = None

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
        groups = None if self.groups is None else dict(
            self.groups, **{split: self.groups[split][np.asarray(indices, dtype=np.int64)]})
        return StudyData(images, labels, self.class_names, self.source, groups)


@dataclass(frozen=True)
class MultiLabelData:
    """Three splits of a multi-label data set, ready for training.

    Attributes:
        features: per split, ``float32`` ``(N, F)``, standardised with the train split's mean and
            standard deviation.
        targets: per split, ``float32`` ``(N, L)`` 0/1.
        label_names: the labels, in column order.
        source: where the data came from (for the report).
        groups: per split, the group id of each row (``None`` without groups).
    """

    features: dict[str, torch.Tensor]
    targets: dict[str, torch.Tensor]
    label_names: tuple[str, ...]
    source: str
    groups: dict[str, np.ndarray] | None = None

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    @property
    def num_features(self) -> int:
        return int(self.features["train"].shape[1])

    def counts(self, split: str = "train") -> np.ndarray:
        """Positives per label in ``split``, shape ``(L,)``."""
        return self.targets[split].sum(0).to(torch.int64).numpy()


def split_fractions(value: Any, flag: str = "--split") -> tuple[float, float, float]:
    """``value`` (``"0.7,0.1,0.2"`` or three numbers) as checked train/val/test fractions:
    three finite non-negative numbers summing to 1, val and test above 0."""
    parts = value.split(",") if isinstance(value, str) else list(value)
    try:
        numbers = tuple(float(part) for part in parts)
    except (TypeError, ValueError):
        numbers = ()
    if len(numbers) != 3 or not all(np.isfinite(numbers)):
        raise ValueError(f"{flag}={value!r} should be three numbers train,val,test such as "
                         f"0.7,0.1,0.2")
    if min(numbers) < 0 or numbers[1] <= 0 or numbers[2] <= 0:
        raise ValueError(f"{flag}={value!r}: the fractions must be non-negative and val and test "
                         f"above 0 (every split needs samples), e.g. {flag} 0.7,0.1,0.2")
    if abs(sum(numbers) - 1.0) > 1e-6:
        raise ValueError(f"{flag}={value!r} sums to {sum(numbers):g}; the train, val and test "
                         f"fractions must sum to 1, e.g. {flag} 0.7,0.1,0.2")
    return numbers


def _shown(items: list) -> str:
    head = ", ".join(str(item) for item in items[:_SHOWN])
    return head + (", ..." if len(items) > _SHOWN else "")


def _generator(seed: int, word: int) -> np.random.Generator:
    return np.random.Generator(np.random.Philox(key=[seed, word]))


def _feature_matrix(X: Any, where: str) -> np.ndarray:
    """``X`` as an array, refused unless it is 2-D and numeric."""
    X = np.asarray(X)
    if X.ndim != 2 or not np.issubdtype(X.dtype, np.number):
        raise ValueError(f"{where}: X should be a 2-D numeric array (samples x features), but got "
                         f"shape {X.shape} and dtype {X.dtype}")
    return X


IMPUTE = ("median", "mean")


def _check_impute(impute: str | None) -> None:
    if impute is not None and impute not in IMPUTE:
        raise ValueError(f"impute={impute!r} is not one of {list(IMPUTE)}; pass --impute median "
                         f"or --impute mean (or leave it out to refuse missing values)")


def _impute(X: np.ndarray, splits: np.ndarray, impute: str | None, where: str) -> np.ndarray:
    """``X`` with each missing (NaN) value replaced by its column's median or mean over the
    **train split only**; val and test rows get the train statistics, never their own."""
    if impute is None or not np.isnan(X).any():
        return X
    train = X[splits == "train"]
    empty = np.flatnonzero(np.isnan(train).all(axis=0)) if len(train) else np.arange(X.shape[1])
    if empty.size:
        raise ValueError(f"{where}: feature column(s) {_shown(empty.tolist())} have no value in "
                         f"the train split, so --impute {impute} has nothing to fill them with; "
                         f"drop those columns")
    fill = np.nanmedian(train, axis=0) if impute == "median" else np.nanmean(train, axis=0)
    return np.where(np.isnan(X), fill[None, :], X)


def _standardise(X: np.ndarray, splits: np.ndarray, impute: str | None = None,
                 where: str = "X") -> np.ndarray:
    """``X`` (missing values filled per ``impute`` from the train split) scaled with the train
    split's mean and standard deviation, as ``float32``."""
    X = _impute(X, splits, impute, where)
    train = X[splits == "train"]
    mean, std = train.mean(axis=0), train.std(axis=0)
    std[std == 0] = 1.0  # a constant training column stays 0, whatever val and test hold
    return ((X - mean) / std).astype(np.float32)


def _notice(message: str) -> None:
    """A one-line notice on stderr (what the loader decided for the user)."""
    print(f"balancer study: {message}", file=sys.stderr)


def carve_val(codes: np.ndarray, splits: np.ndarray, seed: int, *,
              groups: np.ndarray | None = None,
              fractions: tuple[float, float, float] = _DEFAULT_FRACTIONS,
              where: str = "data") -> tuple[np.ndarray, str | None]:
    """A validation split carved from the train rows of a train/test-only split.

    ``codes`` are the strata (a class per row). When ``splits`` has train and test rows but no
    val row, a seeded ``val / (train + val)`` share (by ``fractions``) of each class's train
    rows becomes val, whole groups when ``groups`` is given (each group with its most frequent
    class; at least one group of each class stays in train). Returns the new splits and a
    one-line notice, or the splits unchanged and ``None`` when there was nothing to carve.
    """
    if np.any(splits == "val") or not np.any(splits == "train") or not np.any(splits == "test"):
        return splits, None
    share = fractions[1] / (fractions[0] + fractions[1])
    generator = _generator(seed, _CARVE_KEY)
    train = np.flatnonzero(splits == "train")
    units = (np.asarray(groups)[train].astype(str) if groups is not None
             else train.astype(str))
    frame = pd.DataFrame({"unit": units, "code": codes[train]})
    dominant = frame.groupby("unit", sort=True)["code"].agg(lambda c: c.value_counts().index[0])
    sizes = frame.groupby("unit", sort=True).size()
    chosen: set[str] = set()
    for cls in np.unique(codes[train]):
        members = dominant.index[dominant.to_numpy() == cls].to_numpy()
        if len(members) < 2:
            kind = "group" if groups is not None else "sample"
            raise ValueError(f"{where}: the data has train and test rows but no val rows, and "
                             f"class {cls} has only {len(members)} training {kind}(s), too few "
                             f"to carve a validation split from train; give val rows in the "
                             f"split column (or the file's split array)")
        members = members[generator.permutation(len(members))]
        target, taken = share * int(sizes[members].sum()), 0
        for unit in members[:-1]:
            if taken and taken >= target:
                break
            chosen.add(unit)
            taken += int(sizes[unit])
    carved = splits.astype(object).copy()
    carved[train[np.isin(units, list(chosen))]] = "val"
    carved = carved.astype(str)
    how = "whole groups, " if groups is not None else ""
    return carved, (f"{where}: no val rows, so {int(np.sum(carved == 'val'))} of the "
                    f"{len(train)} train rows became the validation split ({how}stratified by "
                    f"class, val share {share:.3g} of train from --split); test is unchanged")


def _check_split(splits: np.ndarray, groups: np.ndarray | None, *, split_name: str,
                 group_name: str) -> None:
    """A given split holds only train/val/test, and no group is in two splits."""
    unknown = sorted(set(splits.tolist()) - set(SPLITS))
    if unknown:
        raise ValueError(f"{split_name} has value(s) {unknown}; use only {list(SPLITS)}")
    if groups is not None:
        _check_groups_disjoint(groups, splits, group_name)


def resolve_splits(split: Any, strata: np.ndarray, *, groups: np.ndarray | None, seed: int,
                   fractions: tuple[float, float, float], where: str,
                   split_name: str | None = None, group_name: str | None = None,
                   carve_where: str | None = None) -> tuple[np.ndarray, str | None]:
    """Each row's split, the one path of both tasks: ``split`` as given (``train``/``val``/
    ``test`` per row, checked, with a validation split carved from train when it has none),
    or, without it, a seeded automatic split by ``fractions``. Either way no group of
    ``groups`` is in two splits. ``strata`` are what the splits are stratified by: a class
    index per row (single-label: :func:`auto_split`, :func:`carve_val`) or the ``(N, L)`` 0/1
    labels (multi-label: :func:`grouped_multilabel_split`, :func:`carve_multilabel_val`).
    Returns the splits and the carving's notice (already printed), or ``None``."""
    rows = len(strata)
    split_name = split_name or f"{where}: split"
    group_name = group_name or f"{where} groups"
    multilabel = np.ndim(strata) == 2
    if split is None:
        splits = (grouped_multilabel_split(strata, groups=groups, seed=seed, fractions=fractions)
                  if multilabel else
                  auto_split(strata, seed, groups=groups, where=where, fractions=fractions))
        _check_split(splits, groups, split_name=f"{where}: automatic split",
                     group_name=group_name)
        return splits, None
    splits = np.char.lower(np.char.strip(np.asarray(split).astype(str)))
    if splits.shape != (rows,):
        raise ValueError(f"{where}: split should hold one of {list(SPLITS)} per row, shape "
                         f"({rows},), but got shape {splits.shape}")
    _check_split(splits, groups, split_name=split_name, group_name=group_name)
    carve = carve_multilabel_val if multilabel else carve_val
    splits, note = carve(strata, splits, seed, groups=groups, fractions=fractions,
                         where=carve_where or where)
    if note:
        _notice(note)
        _check_split(splits, groups, split_name=f"{where}: carved split", group_name=group_name)
    return splits, note


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


def _check_classes(labels: dict[str, np.ndarray], names: tuple[str, ...], what: str,
                   automatic: bool = False) -> None:
    """Every split has samples of at least two classes; every class of val and test is a
    training class, and every class is in every split. ``automatic``: the split was drawn here
    (``--split``), and a message says how to change it."""
    hint, small, sizes = "", [], []
    if automatic:
        total = np.sum([np.bincount(labels[s], minlength=len(names)) for s in SPLITS], axis=0)
        small = [names[c] for c in np.flatnonzero(total < 3)]
        sizes = [str(int(n)) for n in total[total < 3]]
        hint = (" The split was drawn automatically (--split); "
                + (f"class(es) {small} have fewer than 3 samples, too few for three splits: "
                   f"drop or merge them, or give your own split with --split-col"
                   if small else "change the fractions with --split (e.g. --split 0.6,0.2,0.2) "
                                 "or give your own split with --split-col"))
    if automatic and small:  # the cause, before its symptom (a class missing from a split)
        many = len(small) > _SHOWN  # e.g. a free-text label column: not hundreds of names
        raise ValueError(f"{what}: class(es) {small[:_SHOWN]}{' ...' if many else ''} have "
                         f"fewer than 3 samples ({', '.join(sizes[:_SHOWN])}"
                         f"{f', ...; {len(small)} classes in all' if many else ''}), too "
                         f"few for three splits drawn automatically (--split): drop or merge "
                         f"them, or give your own split with --split-col")
    for split in SPLITS:
        if labels[split].size == 0:
            raise ValueError(f"{what}: the {split} split is empty; every one of {list(SPLITS)} "
                             f"needs samples{hint}")
    for split in SPLITS:
        present = np.unique(labels[split])
        if present.size < 2:
            raise ValueError(
                f"{what}: the {split} split holds a single class "
                f"({names[int(present[0])]!r}); per-class recall, AUC and NLL need at least two "
                f"classes in every split. Add samples of the other classes to it{hint}")
    train = set(np.unique(labels["train"]).tolist())
    for split in ("val", "test"):
        extra = sorted(set(np.unique(labels[split]).tolist()) - train)
        if extra:
            shown = [names[c] if c < len(names) else str(c) for c in extra]
            raise ValueError(
                f"{what}: the {split} split has class(es) {shown} that are absent from the train "
                f"split; a model cannot learn them. Remove those samples or add training samples "
                f"of those classes.{hint}"
            )
    for split in SPLITS:
        missing = sorted(set(range(len(names))) - set(np.unique(labels[split]).tolist()))
        if missing:
            raise ValueError(
                f"{what}: the {split} split has no sample of class(es) "
                f"{[names[c] for c in missing]}, so per-class recall and AUC are undefined there; "
                f"every class needs samples in every split.{hint}"
            )


def _read_npz(path: Path, argument: str) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` file, never unpickling anything (a pickled array could run code).

    A file that is not a zip archive, a truncated one, a member that needs pickle: a
    ``ValueError`` that names ``argument`` and the file, instead of ``BadZipFile`` or numpy's
    advice to pass ``allow_pickle=True``.
    """
    # numpy takes any file that is not a zip or .npy for a pickle, and its advice would be about
    # pickled objects; a CSV passed as --data is the usual cause, so say what the file is.
    try:
        with open(path, "rb") as file:
            head = file.read(6)
    except OSError:
        head = b"PK"  # unreadable: np.load below reports it
    if not head.startswith(b"PK") and not head.startswith(b"\x93NUMPY"):
        raise ValueError(f"{argument}={str(path)!r} is not a readable .npz file (it is not a zip "
                         f"archive, which numpy.savez writes: it starts with {head!r}); for a "
                         f"CSV table pass "
                         f"--table FILE --label-col COLUMN, for a CSV of image paths --csv, "
                         f"or write the arrays with numpy.savez")
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


_NPZ_TABLE_KEYS = ("X", "y", "split", "is_train", "groups", "label_names")


def _npz_split(arrays: dict[str, np.ndarray], name: str) -> np.ndarray | None:
    """The split an npz table stores, for both tasks: ``split`` (train/val/test per row), or
    ``is_train`` (True/False per row; the rest is test, and val is carved from train), or
    ``None``."""
    split = arrays.get("split")
    if "is_train" not in arrays:
        return split
    if split is not None:
        raise ValueError(f"{name} has both 'split' and 'is_train'; keep one of them")
    mask = np.asarray(arrays["is_train"])
    if mask.shape != (len(arrays["X"]),) or not (
            mask.dtype == np.bool_ or np.isin(mask, (0, 1)).all()):
        raise ValueError(f"{name}: is_train should hold True/False per row, shape "
                         f"({len(arrays['X'])},), but got shape {mask.shape} and dtype "
                         f"{mask.dtype}")
    return np.where(mask.astype(bool), "train", "test")


def load_npz(name_or_path: str | os.PathLike, *, seed: int = 0,
             fractions: tuple[float, float, float] = _DEFAULT_FRACTIONS,
             impute: str | None = None) -> StudyData:
    """Load a shipped MedMNIST name or any ``.npz``: images in the MedMNIST layout, or a table.

    The MedMNIST layout has ``{train,val,test}_images`` (uint8) and ``{train,val,test}_labels``
    (class indices ``0 .. C-1``). A table has ``X`` (``(N, F)`` numbers) and ``y`` (``(N,)``
    class indices), optionally ``split`` (``train``/``val``/``test`` per row) or ``is_train``
    (a bool per row; the rest is test), ``groups`` (one id per row: no group is in two splits)
    and ``label_names`` (one name per class); any other array is refused. See
    :func:`load_features` (a train/test-only split gets val carved from train).
    """
    shipped = isinstance(name_or_path, str) and str(name_or_path).lower() in SHIPPED_DATASETS
    path = (Path(__file__).resolve().parents[1] / "data" / f"{str(name_or_path).lower()}.npz"
            if shipped else Path(name_or_path))
    arrays = _read_npz(path, "dataset" if shipped else "data")
    name = f"data={str(name_or_path)!r}"
    if "X" in arrays and not any(k.endswith("_images") for k in arrays):
        if "y" not in arrays:
            raise KeyError(f"{name} has 'X' but no 'y'; store the class index of each row as 'y'")
        unknown = sorted(set(arrays) - set(_NPZ_TABLE_KEYS))
        if unknown:
            raise ValueError(f"{name} has array(s) {unknown} that a table of X and y does not use; "
                             f"the study reads only {list(_NPZ_TABLE_KEYS)}. Rename them (e.g. a "
                             f"train mask as 'is_train', class names as 'label_names') or remove "
                             f"them, so that nothing in the file is ignored")
        return load_features(arrays["X"], arrays["y"], split=_npz_split(arrays, name),
                             groups=arrays.get("groups"),
                             seed=seed, source=f"{name_or_path} (npz table X/y)", where=name,
                             fractions=fractions, impute=impute,
                             class_names=arrays.get("label_names"))
    if tuple(fractions) != _DEFAULT_FRACTIONS or impute is not None:
        flag = "--split" if tuple(fractions) != _DEFAULT_FRACTIONS else "--impute"
        raise ValueError(f"{flag} applies to a table of X and y, but {name} holds images in the "
                         f"MedMNIST layout with its own train/val/test split; remove {flag}")
    data = _npz_images(arrays, name)
    source = (f"shipped {str(name_or_path).lower()} (MedMNIST v2, balancer/data)" if shipped
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
    if pd.api.types.is_float_dtype(column):
        # 0.0/1.0 read from a CSV are the classes 0 and 1; 0.5 is no class (a regression target
        # or a soft label), and as text every value would become a class of its own.
        fractional = np.flatnonzero((column != column.round()).to_numpy()).tolist()
        if fractional:
            raise ValueError(f"{path}: label_col={label_col!r} holds fractional numbers (e.g. "
                             f"{column.iloc[fractional[0]]!r} in row {fractional[0]}, "
                             f"{len(fractional)} row(s) in all); the study classifies, so pass "
                             f"a column of classes (whole numbers or names) as --label-col")
        column = column.astype(np.int64)
    values = column.astype(str)
    names = tuple(sorted(values.unique(), key=lambda v: (len(v), v) if v.isdigit() else (1e9, v)))
    if len(names) < 2:
        raise ValueError(f"{path}: label_col={label_col!r} holds a single class {names}; a "
                         f"classification study needs at least two")
    return values.map({n: i for i, n in enumerate(names)}).to_numpy().astype(np.int64), names


def check_finite_features(X: np.ndarray, where: Any, impute: str | None = None) -> None:
    """Refuse a feature matrix with infinite values, or NaN ones unless ``impute`` fills them,
    naming the first rows."""
    bad = np.isinf(X) if impute is not None else ~np.isfinite(X)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1)).tolist()
        kind = "infinite" if impute is not None else "NaN or infinite"
        fix = ("replace them" if impute is not None else
               "pass --impute median (or mean) to fill missing values with the train split's "
               "statistics, or fill or drop them")
        raise ValueError(f"{where}: X has {kind} values in {len(rows)} row(s) (e.g. "
                         f"{_shown(rows)}); {fix}")


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
            group_col: str | None, seed: int,
            fractions: tuple[float, float, float] = _DEFAULT_FRACTIONS) -> tuple[np.ndarray, bool]:
    """Each row's split and whether it was drawn here (no split column)."""
    given = split_col in table.columns
    column = f"{path}: split_col={split_col!r}"
    splits, _ = resolve_splits(table[split_col].to_numpy() if given else None, codes,
                               groups=read_groups(table, group_col, path), seed=seed,
                               fractions=fractions, where=f"{path}", split_name=column,
                               group_name=f"{path}: group_col={group_col!r}",
                               carve_where=column)
    return splits, not given


def _check_groups_disjoint(groups: np.ndarray, splits: np.ndarray, where: str) -> None:
    frame = pd.DataFrame({"group": groups, "split": splits})
    spread = frame.groupby("group")["split"].nunique()
    leaking = spread[spread > 1].index.tolist()
    if leaking:
        raise ValueError(f"{where}: {len(leaking)} group(s) appear in more than one split "
                         f"({_shown(leaking)}); a group (e.g. a patient) must stay in one split, "
                         f"or leave out the file's split (a split column, an npz's 'split' or "
                         f"'is_train') to split by group automatically")


def load_csv(
    manifest: str | os.PathLike,
    *,
    image_col: str = "path",
    label_col: str = "label",
    split_col: str = "split",
    group_col: str | None = None,
    image_size: int = 28,
    seed: int = 0,
    fractions: tuple[float, float, float] = _DEFAULT_FRACTIONS,
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
        fractions: train, val and test fractions of the automatic split (``--split``).

    Every row whose image is missing, empty or unreadable is reported in one error (the count
    and the first few paths), before any image is used.
    """
    path = Path(manifest)
    table = _read_table(manifest, "csv", "manifest with one row per image")
    for argument, column in (("image_col", image_col), ("label_col", label_col)):
        if column not in table.columns:
            raise ValueError(f"{argument}={column!r} is not a column of {path} (it has "
                             f"{list(table.columns)}); pass --{argument.replace('_', '-')} with "
                             f"one of those")
    codes, names = _codes(table, label_col, path)
    splits, automatic = _splits(table, codes, path, split_col=split_col, group_col=group_col,
                                seed=seed, fractions=split_fractions(fractions))

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
    _check_classes(labels, names, f"csv={str(manifest)!r}", automatic)
    groups = read_groups(table, group_col, path)
    return StudyData(
        images={s: _as_nchw(stacked[splits == s], f"{path}") for s in SPLITS},
        labels={s: torch.from_numpy(labels[s]) for s in SPLITS},
        class_names=names,
        source=f"{path} (CSV manifest, image_col={image_col!r}, label_col={label_col!r})",
        groups=None if groups is None else {s: groups[splits == s] for s in SPLITS},
    )


_TABLE = "table with one row per sample"


def _read_table(given: str | os.PathLike, argument: str, kind: str) -> pd.DataFrame:
    """The CSV file ``given`` (passed as ``argument``, a ``kind`` such as "table with one row
    per sample"); a missing or unreadable file is an error naming both."""
    path = Path(given)
    if not path.is_file():
        raise FileNotFoundError(f"{argument}={str(given)!r} does not exist; pass the path of a "
                                f"CSV {kind}")
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise ValueError(f"{argument}={str(path)!r} is not a readable CSV file "
                         f"({str(error).splitlines()[0]}); pass a comma-separated table with a "
                         f"header row") from None
    # One column whose header holds another separator: a ';' or tab export read as one column,
    # which would otherwise surface as "--label-col 'y' is not a column (it has ['a;b;y'])".
    if frame.shape[1] == 1:
        header = str(frame.columns[0])
        for sep, name in ((";", "';'"), ("\t", "tab"), ("|", "'|'")):
            if sep in header:
                raise ValueError(f"{argument}={str(path)!r} reads as one column {header!r}: its "
                                 f"fields look separated by {name}, but the study reads commas; "
                                 f"save it with commas (pandas: df.to_csv(path, index=False))")
    return frame


def _duplicates(names: Any) -> list[str]:
    names = [str(n) for n in names]
    return sorted({n for i, n in enumerate(names) if n in names[:i]})


_STRAY_SHARE = 0.1  # a text column with at most this share of non-numbers is a numeric one


def _check_stray_words(features: pd.DataFrame, path: Path) -> None:
    """Refuse a column that is numeric but for a few cells (``"n/a"``, ``"12,5"``, ``"?"``):
    one-hot encoding it would make a feature of every number."""
    for column in features.columns:
        if pd.api.types.is_numeric_dtype(features[column]):
            continue
        cells = features[column].dropna()
        numbers = pd.to_numeric(cells, errors="coerce")
        stray = cells[numbers.isna()]
        if len(cells) and len(stray) <= max(1, _STRAY_SHARE * len(cells)) and \
                numbers.notna().sum() >= 2:
            shown = [f"row {int(row)}: {value!r}" for row, value in stray.items()]
            raise ValueError(f"{path}: feature column {column!r} is numeric but for "
                             f"{len(stray)} cell(s) ({_shown(shown)}); as text it would be one-hot "
                             f"encoded into a feature per number. Fix those cells (a number, or "
                             f"empty with --impute) or drop the column")


_ID_ROWS = 20  # below this many rows, distinct values per row say nothing about identifiers


def _looks_like_id(column: Any) -> bool:
    """A column named as an identifier (``id``, ``patient_id``, ``PatientID``, ``subject``)."""
    name = re.sub(r"([a-z])([A-Z])", r"\1_\2", str(column)).lower().replace(" ", "_")
    words = [w for w in re.split(r"[^a-z0-9]+", name) if w]
    return bool(words) and (words[-1] == "id" or words in (["patient"], ["subject"]))


def _check_identifiers(features: pd.DataFrame, text: list[str], path: Path) -> None:
    """A column with a distinct value in every row is an identifier, not a feature: as text,
    one-hot encoding makes a feature of every row (each seen once, none in val or test), so it
    is refused; as integers (a row number, a record id) it stays a feature, but in a file sorted
    by class it predicts the class, so a notice names it. Both name ``--group-col``."""
    if len(features) < _ID_ROWS:
        return
    distinct = [c for c in features.columns if features[c].nunique(dropna=False) == len(features)]
    words = [str(c) for c in distinct if c in text]
    if words:
        raise ValueError(f"{path}: text column(s) {words} hold a distinct value in every row (an "
                         f"id?), which one-hot encoding would turn into one feature per row; drop "
                         f"them, or pass an id of a patient or group as --group-col {words[0]}")
    numbers = [str(c) for c in distinct if c not in text
               and pd.api.types.is_integer_dtype(features[c])]
    numbers += [str(c) for c in features.columns if str(c) not in numbers and _looks_like_id(c)]
    if numbers:
        _notice(f"{path}: column(s) {numbers} hold a distinct integer per row or are named as "
                f"an id, and are used as features; drop them if they are ids (in a file sorted "
                f"by class they predict the class, and a patient's id lets a model recognise "
                f"the patient across splits), or pass a group id as --group-col {numbers[0]}")


def _table_features(frame: pd.DataFrame, others: tuple[str | None, ...],
                    path: Path, impute: str | None = None) -> pd.DataFrame:
    """Every column of ``frame`` but ``others`` (label, split and group columns), text columns
    one-hot encoded; an empty cell is an error naming its column (unless ``impute`` fills the
    empty cells of numeric columns later, from the train split)."""
    features = frame.drop(columns=[c for c in others if c is not None and c in frame.columns])
    empty = [c for c in features.columns if features[c].isna().any()
             and (impute is None or not pd.api.types.is_numeric_dtype(features[c]))]
    if empty:
        fix = ("text columns are not imputed; fill them or drop those columns"
               if impute is not None else
               "pass --impute median (or mean) to fill them with the train split's statistics, "
               "or fill them or drop those columns")
        raise ValueError(f"{path}: feature column(s) {empty} have empty cells "
                         f"({int(features[empty].isna().sum().sum())} in all); {fix}")
    _check_stray_words(features, path)
    text = [c for c in features.columns if not pd.api.types.is_numeric_dtype(features[c])]
    _check_identifiers(features, text, path)
    if text:
        features = pd.get_dummies(features, columns=text, dtype=np.float64)
    return features


def load_table(
    table: str | os.PathLike,
    *,
    label_col: str = "label",
    split_col: str = "split",
    group_col: str | None = None,
    seed: int = 0,
    fractions: tuple[float, float, float] = _DEFAULT_FRACTIONS,
    impute: str | None = None,
) -> StudyData:
    """Load a CSV table of features: every column but the label, split and group columns is a
    feature. Numeric columns are used as they are, text columns are one-hot encoded (one 0/1
    column per value); empty cells are an error. Features are standardised with the train
    split's mean and standard deviation.

    Args:
        table: the CSV file.
        label_col, split_col, group_col, seed, fractions: as in :func:`load_csv`.
        impute: ``"median"`` or ``"mean"`` fills empty numeric cells with the train split's
            statistic (val and test use the train one); ``None`` refuses them.
    """
    path = Path(table)
    _check_impute(impute)
    frame = _read_table(table, "table", _TABLE)
    if label_col not in frame.columns:
        raise ValueError(f"label_col={label_col!r} is not a column of {path} (it has "
                         f"{list(frame.columns)}); pass --label-col with one of those")
    codes, names = _codes(frame, label_col, path)
    splits, automatic = _splits(frame, codes, path, split_col=split_col, group_col=group_col,
                                seed=seed, fractions=split_fractions(fractions))
    features = _table_features(frame, (label_col, split_col, group_col), path, impute)
    if features.shape[1] == 0:
        raise ValueError(f"{path}: no feature columns besides label_col={label_col!r}; a table "
                         f"needs at least one feature column")
    matrix = features.to_numpy(np.float64)
    # pandas reads "inf" and "Infinity" as floats: refused here, naming the column, since the
    # train statistics would turn them into NaN features (and --impute fills only empty cells).
    infinite = np.isinf(matrix)
    if infinite.any():
        columns = [str(c) for c in features.columns[infinite.any(axis=0)]]
        rows = np.flatnonzero(infinite.any(axis=1)).tolist()
        raise ValueError(f"{path}: feature column(s) {columns} hold infinite values "
                         f"({int(infinite.sum())} cell(s), {'row' if len(rows) == 1 else 'rows'} "
                         f"{_shown(rows)}); replace them (or empty them and pass --impute "
                         f"median) or drop those columns")
    labels = {s: codes[splits == s] for s in SPLITS}
    return _standardised(matrix, labels, splits, names,
                         source=f"{path} (table, label_col={label_col!r}, "
                                f"{features.shape[1]} features)",
                         what=f"table={str(table)!r}", automatic=automatic, impute=impute,
                         groups=read_groups(frame, group_col, path))


def load_features(
    X: np.ndarray,
    y: np.ndarray,
    *,
    split: np.ndarray | None = None,
    groups: np.ndarray | None = None,
    seed: int = 0,
    source: str = "features",
    where: str = "X",
    fractions: tuple[float, float, float] = _DEFAULT_FRACTIONS,
    impute: str | None = None,
    class_names: Any = None,
) -> StudyData:
    """Numeric features ``X`` ``(N, F)`` and class indices ``y`` ``(N,)`` as study data.

    Without ``split`` (``train``/``val``/``test`` per row) the rows are split 70/10/20 per class
    (by group when ``groups`` is given). A ``split`` with train and test rows only gets a
    validation split carved from train (:func:`carve_val`, with a notice). ``class_names`` names
    the classes ``0 .. C-1``. Features are standardised with the train split's statistics
    only, so nothing of the validation or test split leaks into training.
    """
    _check_impute(impute)
    X = _feature_matrix(X, where)
    codes = _class_indices(y, f"{where} y")
    if len(codes) != len(X):
        raise ValueError(f"{where}: {len(X)} rows in X but {len(codes)} labels in y; they must "
                         f"match")
    check_finite_features(X, where, impute)
    groups = None if groups is None else np.asarray(groups).astype(str)
    if groups is not None and groups.shape != (len(X),):
        raise ValueError(f"{where}: groups should hold one id per row, shape ({len(X)},), but "
                         f"got shape {groups.shape}")
    splits, note = resolve_splits(split, codes, groups=groups, seed=seed,
                                  fractions=split_fractions(fractions), where=where)
    if note:  # the source names the file already; the notice's prefix would repeat it
        source = f"{source}; {note.removeprefix(f'{where}: ')}"
    num_classes = int(codes.max()) + 1 if codes.size else 0
    names = tuple(str(c) for c in range(num_classes))
    if class_names is not None:
        names = _label_names(class_names, num_classes, where)
    labels = {s: codes[splits == s] for s in SPLITS}
    return _standardised(X.astype(np.float64), labels, splits, names, source=source, what=where,
                         automatic=split is None, impute=impute, groups=groups)


def _label_names(given: Any, num_classes: int, where: str) -> tuple[str, ...]:
    """The file's names of the classes ``0 .. C-1``: one per class, no duplicate."""
    names = [str(n) for n in np.asarray(given).ravel().tolist()]
    if len(names) < num_classes:
        raise ValueError(f"{where}: label_names holds {len(names)} name(s) but y has classes "
                         f"0..{num_classes - 1}; store one name per class")
    if len(names) > num_classes:  # a class with no sample at all, or names of another file
        raise ValueError(f"{where}: label_names holds {len(names)} name(s) but y has classes "
                         f"0..{num_classes - 1}, so {names[num_classes:]} name no sample; store "
                         f"one name per class of y, or add the samples of those classes")
    seen = [n for i, n in enumerate(names) if n in names[:i]]
    if seen:
        raise ValueError(f"{where}: label_names has the duplicate name(s) {sorted(set(seen))}; "
                         f"give every class its own name")
    return tuple(names[:num_classes])


def _standardised(X: np.ndarray, labels: dict[str, np.ndarray], splits: np.ndarray,
                  names: tuple[str, ...], *, source: str, what: str,
                  automatic: bool = False, impute: str | None = None,
                  groups: np.ndarray | None = None) -> StudyData:
    _check_classes(labels, names, what, automatic)
    scaled = _standardise(X, splits, impute, what)
    return StudyData(images={s: torch.from_numpy(scaled[splits == s]) for s in SPLITS},
                     labels={s: torch.from_numpy(labels[s]) for s in SPLITS},
                     class_names=names, source=source,
                     groups=None if groups is None else {s: groups[splits == s] for s in SPLITS})


def auto_split(codes: np.ndarray, seed: int, *, groups: np.ndarray | None = None,
               where: str = "data",
               fractions: tuple[float, float, float] = _DEFAULT_FRACTIONS) -> np.ndarray:
    """A seeded train/val/test split (``fractions``, 70/10/20 by default), stratified by class.

    With ``groups`` whole groups are assigned: each group goes with its most frequent class, the
    groups of each class are shuffled and dealt to test, then val, until each holds its share
    of that class's samples (at least one group each), and the rest to train. So no group is in
    two splits, and every class is in every split.
    """
    generator = _generator(seed, _SPLIT_KEY)
    share = dict(zip(SPLITS, fractions, strict=True))
    splits = np.empty(len(codes), dtype=object)
    if groups is None:
        for cls in np.unique(codes):
            members = generator.permutation(np.flatnonzero(codes == cls))
            n_test = max(1, round(share["test"] * len(members)))
            n_val = max(1, round(share["val"] * len(members)))
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
                             f"for train, val and test). Give a split column instead "
                             f"(--split-col)")
        members = members[generator.permutation(len(members))]
        total = int(sizes[members].sum())
        position = 0
        for split in ("test", "val"):
            target, taken = share[split] * total, 0
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
    fractions: tuple[float, float, float] = _DEFAULT_FRACTIONS,
    impute: str | None = None,
) -> StudyData:
    """Load the study's data from exactly one of ``dataset``, ``data``, ``csv`` or ``table``."""
    given = [name for name, value in (("dataset", dataset), ("data", data), ("csv", csv),
                                      ("table", table)) if value is not None]
    if len(given) > 1:
        raise ValueError(f"pass only one of dataset, data, csv and table, but got {given}")
    if csv is not None:
        return load_csv(csv, image_col=image_col, label_col=label_col, split_col=split_col,
                        group_col=group_col, image_size=image_size, seed=seed,
                        fractions=fractions)
    if table is not None:
        return load_table(table, label_col=label_col, split_col=split_col, group_col=group_col,
                          seed=seed, fractions=fractions, impute=impute)
    if data is not None:
        if not Path(data).is_file():
            raise FileNotFoundError(f"data={str(data)!r} does not exist; pass the path of a .npz "
                                    f"file in the MedMNIST layout (or with arrays X and y)")
        return load_npz(Path(data), seed=seed, fractions=fractions, impute=impute)
    name = "retinamnist" if dataset is None else dataset
    if name.lower() not in SHIPPED_DATASETS:
        raise ValueError(f"dataset={name!r} is not a shipped data set; choose one of "
                         f"{list(SHIPPED_DATASETS)}, or pass a file with --data PATH.npz")
    return load_npz(name.lower())

def data_identity(*, dataset: str | None = None, data: str | os.PathLike | None = None,
                  csv: str | os.PathLike | None = None, table: str | os.PathLike | None = None,
                  label_col: str | None = None, class_names: Sequence[Any],
                  task: str = "single") -> dict[str, Any]:
    """What a tuning record was made on, independent of where the file lies: the task kind,
    the SHA-256 of the data file's bytes (a shipped data set's ``.npz``; of a CSV manifest,
    the manifest's, not its images'), the label column of a CSV (another target of the same
    file is other data) and the class names. A moved or renamed copy has the same identity;
    edited data, another label column or other classes do not."""
    given = next((Path(p) for p in (data, csv, table) if p is not None), None)
    if given is None:
        name = (dataset or "retinamnist").lower()
        given = Path(__file__).resolve().parents[1] / "data" / f"{name}.npz"
    digest = hashlib.sha256()
    with open(given, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return {"task": task, "sha256": digest.hexdigest(),
            "label_col": label_col if (csv is not None or table is not None) else None,
            "classes": [str(name) for name in class_names]}


# ---------------------------------------------------------------------------------------------
# Multi-label: features (N, F), 0/1 labels (N, L)
# ---------------------------------------------------------------------------------------------


def grouped_multilabel_split(targets: np.ndarray, *, groups: np.ndarray | None = None,
                             seed: int = 0,
                             fractions: tuple[float, float, float] = _DEFAULT_FRACTIONS
                             ) -> np.ndarray:
    """A seeded train/val/test split of multi-label rows (``fractions``, 70/10/20 by default;
    a split of share 0 gets no row), by group when given.

    Groups (a row each without ``groups``) are dealt one at a time, label by label, the label
    carried by the fewest groups first (an iterative stratification after Sechidis et al. 2011,
    on groups): for label ``j``, each not yet dealt group carrying ``j`` goes to a split that
    has no positive of ``j`` yet (test, then val, then train), otherwise to the split furthest
    below its share of ``j``'s positives. Groups without a label fill the splits up to their
    share of rows. Hence no group is in two splits; the first label dealt reaches every split
    when it has at least three groups, and so does every label whose groups carry no other
    label. A label most of whose groups were already dealt with other labels may miss a split
    (no rule can avoid that for every co-occurrence); :func:`load_multilabel_data` then says
    which, before any training.

    Args:
        targets: ``(N, L)`` 0/1.
        groups: ``(N,)`` group ids (e.g. patient ids), or ``None``.
        seed: seed of the generator that orders the groups.
        fractions: the train, val and test shares (``--split``).

    Returns:
        ``(N,)`` strings ``"train"``, ``"val"`` or ``"test"``.

    Example:
        >>> Y = np.array([[1, 0]] * 6 + [[0, 1]] * 6 + [[0, 0]] * 8)
        >>> split = grouped_multilabel_split(Y, seed=0)
        >>> sorted(set(split[Y[:, 0] == 1].tolist())), sorted(set(split[Y[:, 1] == 1].tolist()))
        (['test', 'train', 'val'], ['test', 'train', 'val'])
    """
    targets = np.asarray(targets) > 0
    n, num_labels = targets.shape
    if groups is None:
        codes = np.arange(n)
    else:
        _, codes = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    num_groups = int(codes.max()) + 1 if n else 0
    sizes = np.bincount(codes, minlength=num_groups)
    carried = np.zeros((num_groups, num_labels), dtype=np.int64)
    np.add.at(carried, codes, targets.astype(np.int64))
    generator = _generator(seed, _ML_SPLIT_KEY)
    ranking = generator.permutation(num_groups)  # a seeded order of the groups
    names = ("test", "val", "train")
    shares = np.array([dict(zip(SPLITS, fractions, strict=True))[s] for s in names])
    # A split of share 0 (carving val from train deals to train and val only) takes nothing.
    closed = np.where(shares > 0, 0.0, -np.inf)
    assigned = np.full(num_groups, -1)
    have = np.zeros((3, num_labels), dtype=np.int64)
    rows = np.zeros(3, dtype=np.int64)
    totals = carried.sum(axis=0)
    spread = (carried > 0).sum(axis=0)  # groups carrying each label
    for label in np.lexsort((totals, spread)):
        members = ranking[np.isin(ranking, np.flatnonzero(carried[:, label] > 0))]
        for group in members:
            if assigned[group] >= 0:
                continue
            missing = np.flatnonzero((have[:, label] == 0) & (shares > 0))
            if missing.size:
                where = int(missing[0])
            else:
                deficit = shares * totals[label] - have[:, label]
                where = int(np.argmax(deficit + 1e-9 * (shares * n - rows) + closed))
            assigned[group] = where
            have[where] += carried[group]
            rows[where] += sizes[group]
    for group in ranking:
        if assigned[group] < 0:
            where = int(np.argmax(shares * n - rows + closed))
            assigned[group] = where
            rows[where] += sizes[group]
    return np.array(names)[assigned[codes]]


def carve_multilabel_val(targets: np.ndarray, splits: np.ndarray, seed: int, *,
                         groups: np.ndarray | None = None,
                         fractions: tuple[float, float, float] = _DEFAULT_FRACTIONS,
                         where: str = "data") -> tuple[np.ndarray, str | None]:
    """:func:`carve_val` of multi-label rows: when ``splits`` has train and test rows but no
    val row, a seeded ``val / (train + val)`` share (by ``fractions``) of the train rows
    becomes val, dealt by :func:`grouped_multilabel_split` (whole groups when ``groups`` is
    given, each label's positives spread over train and val). Returns the new splits and a
    one-line notice, or the splits unchanged and ``None`` when there was nothing to carve."""
    if np.any(splits == "val") or not np.any(splits == "train") or not np.any(splits == "test"):
        return splits, None
    share = fractions[1] / (fractions[0] + fractions[1])
    train = np.flatnonzero(splits == "train")
    dealt = grouped_multilabel_split(
        np.asarray(targets)[train], groups=None if groups is None else np.asarray(groups)[train],
        seed=seed, fractions=(1.0 - share, share, 0.0))
    carved = splits.astype(object).copy()
    carved[train[dealt == "val"]] = "val"
    carved = carved.astype(str)
    how = "whole groups, " if groups is not None else ""
    return carved, (f"{where}: no val rows, so {int(np.sum(carved == 'val'))} of the "
                    f"{len(train)} train rows became the validation split ({how}each label's "
                    f"positives spread over train and val, val share {share:.3g} of train from "
                    f"--split); test is unchanged")


def _check_targets(targets: np.ndarray, names: tuple[str, ...], splits: np.ndarray,
                   where: str) -> None:
    for split in SPLITS:
        if not np.any(splits == split):
            raise ValueError(f"{where}: the {split} split is empty; every one of {list(SPLITS)} "
                             f"needs samples")
    for split in SPLITS:
        counts = targets[splits == split].sum(axis=0)
        missing = [names[j] for j in np.flatnonzero(counts == 0)]
        if missing:
            raise ValueError(
                f"{where}: the {split} split has no positive of label(s) "
                f"{', '.join(missing)} ({len(missing)} in all), so their AUROC, AUPRC and F1 are undefined there; every label needs "
                f"positives in every split (a label needs at least 3 positive groups for the "
                f"automatic split). Pass --min-positives 1 (or more) to drop such labels, drop "
                f"them yourself, or give a split column that places them")
        full = [names[j] for j in np.flatnonzero(counts == int((splits == split).sum()))]
        if split == "train" and full:
            raise ValueError(f"{where}: label(s) {_shown(full)} are positive on every train row; "
                             f"a label needs negatives to be learned. Drop those labels")


def _drop_rare_labels(targets: np.ndarray, names: tuple[str, ...], splits: np.ndarray,
                      k: int, where: str) -> tuple[np.ndarray, tuple[str, ...], str | None]:
    """``targets`` without the labels that have fewer than ``k`` positives in some split, and
    the notice that names them all (printed, and kept for the report; None when none was
    dropped); fewer than two labels left is an error."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"--min-positives should be an integer >= 1, but got {k!r}")
    fewest = np.min([targets[splits == s].sum(axis=0) for s in SPLITS], axis=0)
    drop = np.flatnonzero(fewest < k)
    if not drop.size:
        return targets, names, None
    keep = np.flatnonzero(fewest >= k)
    dropped = [names[j] for j in drop]
    if keep.size < 2:
        raise ValueError(f"{where}: --min-positives {k} would drop {len(dropped)} of "
                         f"{len(names)} labels ({dropped}), leaving {keep.size}; a multi-label "
                         f"study needs at least 2. Pass a smaller --min-positives")
    note = (f"--min-positives {k} dropped {len(dropped)} label(s) with fewer than {k} "
            f"positive(s) in some split: {dropped}")
    _notice(f"{where}: {note}")
    return targets[:, keep], tuple(names[j] for j in keep), note


def _assemble(X: np.ndarray, targets: np.ndarray, names: tuple[str, ...], *,
              split: np.ndarray | None, groups: np.ndarray | None, seed: int, source: str,
              where: str, impute: str | None = None,
              min_positives: int | None = None,
              fractions: tuple[float, float, float] = _DEFAULT_FRACTIONS) -> MultiLabelData:
    """Check, split (:func:`resolve_splits`, as the single-label data) and standardise with
    the train statistics."""
    X = _feature_matrix(X, where)
    if X.shape[1] == 0:
        raise ValueError(f"{where}: X has no feature columns; pass at least one feature")
    if len(X) != len(targets):
        raise ValueError(f"{where}: {len(X)} rows of features but {len(targets)} rows of labels; "
                         f"they must match")
    check_finite_features(X, where, impute)
    if groups is not None:
        groups = np.asarray(groups).astype(str)
        if groups.shape != (len(X),):
            raise ValueError(f"{where}: groups should hold one id per row, shape ({len(X)},), but "
                             f"got shape {groups.shape}")
    splits, note = resolve_splits(split, targets, groups=groups, seed=seed,
                                  fractions=split_fractions(fractions), where=where)
    if note:  # the source names the file already; the notice's prefix would repeat it
        source = f"{source}; {note.removeprefix(f'{where}: ')}"
    if min_positives is not None:
        targets, names, dropped = _drop_rare_labels(targets, names, splits, min_positives,
                                                    where)
        if dropped:  # the report's data line keeps it (the notice scrolls away)
            source = f"{source}; {dropped}"
    _check_targets(targets, names, splits, where)
    scaled = _standardise(X.astype(np.float64), splits, impute, where)
    dense = targets.astype(np.float32)
    return MultiLabelData(
        features={s: torch.from_numpy(scaled[splits == s]) for s in SPLITS},
        targets={s: torch.from_numpy(dense[splits == s]) for s in SPLITS},
        label_names=names, source=source,
        groups=None if groups is None else {s: groups[splits == s] for s in SPLITS})


def _encode(labels: Any, where: str, names: Sequence[Any] | None = None
            ) -> tuple[np.ndarray, tuple[str, ...]]:
    """Any accepted form of multi-label targets as a dense 0/1 matrix and its label names."""
    encoded = encode_multilabels(labels, where, names=names)
    return encoded.dense(np.float32), tuple(str(n) for n in encoded.names)


def semisynthetic_chestxray14(*, samples: int = 8000, features: int = 32,
                              seed: int = 0, min_positives: int | None = None,
                              fractions: tuple[float, float, float] = _DEFAULT_FRACTIONS
                              ) -> MultiLabelData:
    r"""Semi-synthetic multi-label data: real ChestX-ray14 label rows, generated features.

    Whole patients of the shipped NIH ChestX-ray14 table (``balancer/data``) are drawn in a
    seeded order until ``samples`` rows are reached; their ``Finding Labels`` (14 findings,
    real co-occurrence and imbalance) and ``Patient ID`` (the groups of the split) are kept.
    The features are **generated from the labels**, not measured: label :math:`j` gets a
    direction :math:`w_j \sim \mathcal N(0, s_j^2 I / F)` with a strength :math:`s_j` drawn
    uniformly in ``[1.0, 2.5]``, each patient a shared offset :math:`u_p \sim \mathcal N(0,
    0.5^2 I)`, and image :math:`i` of patient :math:`p`

    .. math:: x_i = \sum_j y_{ij} w_j + u_p + \varepsilon_i, \qquad
        \varepsilon_i \sim \mathcal N(0, I_F),

    all from one generator seeded with ``seed``. The split is by patient
    (:func:`grouped_multilabel_split`).

    Example:
        >>> data = semisynthetic_chestxray14(samples=8000)
        >>> data.num_labels, data.num_features, sorted(data.label_names)[:2]
        (14, 32, ['Atelectasis', 'Cardiomegaly'])
    """
    from balancer.datasets import load_chestxray14_labels

    table = load_chestxray14_labels()
    all_names = sorted({f for cell in table["Finding Labels"] for f in cell.split("|")}
                       - {"No Finding"})
    generator = _generator(seed, _FEATURE_KEY)
    patients = table["Patient ID"].to_numpy()
    unique, codes = np.unique(patients, return_inverse=True)
    order = generator.permutation(len(unique))
    sizes = np.bincount(codes)[order]
    take = order[: int(np.searchsorted(np.cumsum(sizes), samples)) + 1]
    rows = np.flatnonzero(np.isin(codes, take))
    chosen = table.iloc[rows]
    targets, names = _encode(chosen["Finding Labels"].tolist(), "ChestX-ray14 labels",
                             names=all_names)
    strength = generator.uniform(1.0, 2.5, size=len(names))
    directions = generator.standard_normal((len(names), features)) * (
        strength[:, None] / np.sqrt(features))
    patient_codes = codes[rows]
    offsets = 0.5 * generator.standard_normal((len(unique), features))
    X = (targets @ directions + offsets[patient_codes]
         + generator.standard_normal((len(rows), features)))
    source = (f"semi-synthetic ChestX-ray14: {len(rows)} real label rows of "
              f"{len(take)} patients (NIH table, balancer/data), features generated from the "
              f"labels (seed {seed}, {features} features); not real image data")
    return _assemble(X, targets, names, split=None, groups=patients[rows].astype(str),
                     seed=seed, source=source, where="semi-synthetic ChestX-ray14",
                     min_positives=min_positives, fractions=fractions)


_NPZ_MULTILABEL_KEYS = ("X", "Y", "split", "is_train", "groups", "names", "label_names")


def load_multilabel_npz(path: str | os.PathLike, *, seed: int = 0,
                        impute: str | None = None,
                        min_positives: int | None = None,
                        fractions: tuple[float, float, float] = _DEFAULT_FRACTIONS
                        ) -> MultiLabelData:
    """A ``.npz`` with ``X`` ``(N, F)`` numbers and ``Y`` ``(N, L)`` 0/1; optionally
    ``names`` or ``label_names`` (``L`` label names), ``groups`` (one id per row) and
    ``split`` (train/val/test per row) or ``is_train`` (True/False per row, the rest test), as
    a single-label npz table; any other array is refused. Without a split the rows are split
    by ``fractions``; a train/test-only split gets val carved from train
    (:func:`resolve_splits`)."""
    arrays = _read_npz(Path(path), "data")
    where = f"data={str(path)!r}"
    missing = [key for key in ("X", "Y") if key not in arrays]
    if missing:
        raise KeyError(f"{where} lacks the array(s) {missing} of a multi-label table; it has "
                       f"{sorted(arrays)}. Store the features as 'X' (N x F) and the 0/1 labels "
                       f"as 'Y' (N x L)")
    unknown = sorted(set(arrays) - set(_NPZ_MULTILABEL_KEYS))
    if unknown:
        raise ValueError(f"{where} has array(s) {unknown} that a multi-label table does not use; "
                         f"the study reads only {list(_NPZ_MULTILABEL_KEYS)}. Rename them (e.g. "
                         f"a train mask as 'is_train') or remove them, so that nothing in the "
                         f"file is ignored")
    if "names" in arrays and "label_names" in arrays:
        raise ValueError(f"{where} has both 'names' and 'label_names'; keep one of them")
    Y = arrays["Y"]
    if Y.ndim != 2:
        raise ValueError(f"{where}: Y should be an (N, L) 0/1 matrix, but got shape {Y.shape}; "
                         f"store one column per label")
    key = "label_names" if "label_names" in arrays else "names"
    names = arrays[key].astype(str).tolist() if key in arrays else None
    if names is not None and len(names) != Y.shape[1]:  # before the library's "names has ..."
        raise ValueError(f"{where}: the array {key!r} holds {len(names)} name(s) but Y has "
                         f"{Y.shape[1]} columns; store one name per column of Y")
    if names is not None and _duplicates(names):
        raise ValueError(f"{where}: the array {key!r} has the duplicate label name(s) "
                         f"{_duplicates(names)}; give every label (column of Y) its own name")
    targets, label_names = _encode(Y, f"{where} Y", names=names)
    return _assemble(arrays["X"], targets, label_names, split=_npz_split(arrays, where),
                     groups=arrays.get("groups"), seed=seed,
                     source=f"{path} (npz, X/Y, {targets.shape[1]} labels)", where=where,
                     impute=impute, min_positives=min_positives, fractions=fractions)


def load_multilabel_table(path: str | os.PathLike, *, label_cols: tuple[str, ...] | None = None,
                          label_col: str | None = None, split_col: str = "split",
                          group_col: str | None = None, seed: int = 0,
                          impute: str | None = None,
                          min_positives: int | None = None,
                          fractions: tuple[float, float, float] = _DEFAULT_FRACTIONS
                          ) -> MultiLabelData:
    """A CSV table: labels in several 0/1 columns (``label_cols``) or in one column of
    ``|``-separated findings (``label_col``; ``No Finding`` is the empty set, an empty cell an
    error); every
    other column but ``split_col`` and ``group_col`` is a feature (text one-hot encoded)."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"table={str(path)!r} does not exist; pass the path of a CSV "
                                f"{_TABLE}")
    if (label_cols is None) == (label_col is None):
        raise ValueError("a multi-label table needs its labels: pass --label-cols A,B,C (0/1 "
                         "columns) or --label-col NAME (one '|'-separated column), exactly one")
    frame = _read_table(path, "table", _TABLE)
    if label_cols is not None and _duplicates(label_cols):
        raise ValueError(f"--label-cols {','.join(label_cols)} names the column(s) "
                         f"{_duplicates(label_cols)} more than once; list each label column once")
    wanted = list(label_cols) if label_cols is not None else [label_col]
    absent = [c for c in wanted if c not in frame.columns]
    if absent:
        option = "label_cols" if label_cols is not None else "label_col"
        raise ValueError(f"{option}: column(s) {absent} are not in {file} (it has "
                         f"{list(frame.columns)}); pass --{option.replace('_', '-')} with those")
    where = f"table={str(path)!r}"
    if label_cols is not None:
        if len(label_cols) < 2:
            raise ValueError(f"label_cols={list(label_cols)} names one label; a multi-label "
                             f"study needs at least 2 (for one binary label run the single-label "
                             f"study with --label-col)")
        if frame[list(label_cols)].isna().any().any():
            raise ValueError(f"{file}: a label column of {list(label_cols)} has empty cells; "
                             f"give every row 0 or 1")
        targets, names = _encode(frame[list(label_cols)], where)
    else:
        empty = np.flatnonzero(frame[label_col].isna().to_numpy()
                               | (frame[label_col].astype(str).str.strip() == "").to_numpy())
        if empty.size:
            raise ValueError(f"{file}: label_col={label_col!r} is empty in row "
                             f"{_shown(empty.tolist())} ({empty.size} in all); a missing "
                             f"finding is not 'no finding'. Write 'No Finding' for a row "
                             f"without findings, or remove those rows")
        cells = frame[label_col].astype(str).tolist()
        targets, names = _encode(cells, f"{where} label_col={label_col!r}")
    groups = read_groups(frame, group_col, file)
    split = frame[split_col].to_numpy() if split_col in frame.columns else None
    features = _table_features(frame, (*wanted, split_col, group_col), file, impute)
    return _assemble(features.to_numpy(np.float64), targets, names, split=split, groups=groups,
                     seed=seed, source=f"{file} (CSV table, {len(names)} labels, "
                                       f"{features.shape[1]} features)", where=where,
                     impute=impute, min_positives=min_positives, fractions=fractions)


def load_arff(path: str | os.PathLike, *, label_cols: tuple[str, ...] | None = None,
              seed: int = 0, min_positives: int | None = None,
              fractions: tuple[float, float, float] = _DEFAULT_FRACTIONS) -> MultiLabelData:
    """An ARFF file (``.arff`` or ``.arff.gz``) in MULAN's layout: the nominal attributes with
    values ``{0, 1}`` are the labels (or those named by ``label_cols``), the numeric ones the
    features. Read with ``scipy.io.arff``; split automatically (no groups)."""
    from scipy.io import arff

    file = Path(path)
    try:
        raw = gzip.decompress(file.read_bytes()) if file.name.endswith(".gz") else \
            file.read_bytes()
        records, meta = arff.loadarff(io.StringIO(raw.decode("utf-8")))
    except Exception as error:  # scipy's parser raises ValueError, StopIteration, KeyError...
        reason = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        raise ValueError(f"data={str(path)!r} is not a readable ARFF file ({reason}); pass a "
                         f"dense ARFF file (MULAN layout)") from None
    columns = list(meta.names())
    if label_cols is None:
        label_cols = tuple(c for c in columns if meta[c][0] == "nominal"
                           and set(meta[c][1]) == {"0", "1"})
    absent = [c for c in label_cols if c not in columns]
    if absent or len(label_cols) < 2:
        raise ValueError(f"data={str(path)!r}: label columns {list(label_cols)} "
                         f"{'are missing ' + str(absent) if absent else 'are fewer than 2'}; "
                         f"pass --label-cols with at least 2 of its attributes")
    Y = np.stack([np.asarray(records[c]).astype(str) == "1" for c in label_cols], axis=1)
    feature_cols = [c for c in columns if c not in label_cols and meta[c][0] == "numeric"]
    X = np.stack([np.asarray(records[c], dtype=np.float64) for c in feature_cols], axis=1) \
        if feature_cols else np.zeros((len(Y), 0))
    targets, names = _encode(Y.astype(np.float32), f"data={str(path)!r}", names=list(label_cols))
    return _assemble(X, targets, names, split=None, groups=None, seed=seed,
                     source=f"{file.name} (ARFF, {len(names)} labels, {len(feature_cols)} "
                            f"features)", where=f"data={str(path)!r}",
                     min_positives=min_positives, fractions=fractions)


def load_multilabel_data(*, data: str | None = None, table: str | None = None,
                         label_cols: tuple[str, ...] | None = None, label_col: str | None = None,
                         split_col: str = "split", group_col: str | None = None,
                         samples: int = 8000, seed: int = 0,
                         impute: str | None = None,
                         min_positives: int | None = None,
                         fractions: tuple[float, float, float] = _DEFAULT_FRACTIONS
                         ) -> MultiLabelData:
    """The study's data from ``data`` (``.npz`` or ``.arff[.gz]``), ``table`` (CSV) or, with
    neither, the semi-synthetic ChestX-ray14 set; ``fractions`` are the train, val and test
    shares of an automatic split (``--split``), and of a validation split carved from train."""
    if data is not None and table is not None:
        raise ValueError("pass only one of data and table")
    _check_impute(impute)
    if data is not None:
        if not Path(data).is_file():
            raise FileNotFoundError(f"data={str(data)!r} does not exist; pass a .npz file with "
                                    f"X and Y, or an .arff file")
        name = Path(data).name.lower()
        if name.endswith((".arff", ".arff.gz")):
            return load_arff(data, label_cols=label_cols, seed=seed, min_positives=min_positives,
                             fractions=fractions)
        if label_cols is not None:
            raise ValueError(f"label_cols applies to a CSV table or an ARFF file, not to "
                             f"data={str(data)!r} (an .npz holds its labels as Y); remove "
                             f"--label-cols")
        return load_multilabel_npz(data, seed=seed, impute=impute, min_positives=min_positives,
                                   fractions=fractions)
    if table is not None:
        return load_multilabel_table(table, label_cols=label_cols, label_col=label_col,
                                     split_col=split_col, group_col=group_col, seed=seed,
                                     impute=impute, min_positives=min_positives,
                                     fractions=fractions)
    return semisynthetic_chestxray14(samples=samples, seed=seed, min_positives=min_positives,
                                     fractions=fractions)
