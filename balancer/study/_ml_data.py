"""The multi-label study's data: features ``(N, F)`` and 0/1 labels ``(N, L)`` in three splits.

Sources (each checked here, before any training):

- the default, **semi-synthetic** ChestX-ray14 set (:func:`semisynthetic_chestxray14`): real
  label rows and patient ids of the shipped NIH table, with features *generated from the
  labels* by a seeded generator. No image is involved; the features are not real data.
- a user's ``.npz`` with ``X`` ``(N, F)`` and ``Y`` ``(N, L)`` (optional ``groups``, ``split``,
  ``names``), :func:`load_multilabel_npz`;
- a user's CSV table with several 0/1 label columns or one ``|``-separated column of findings,
  :func:`load_multilabel_table`;
- an ARFF file (MULAN's format: the nominal ``{0,1}`` attributes are the labels),
  :func:`load_arff`, so a developer can run on the classic MULAN sets.

Without a split, rows are split 70/10/20 by :func:`grouped_multilabel_split`: whole groups
(patients) when a group column is given, each label's positives spread over the three splits.
"""

from __future__ import annotations

import gzip
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from balancer.labels import encode_multilabels
from balancer.study._data import (
    SPLITS,
    _check_groups_disjoint,
    _read_npz,
    _read_table,
    _shown,
    check_finite_features,
    read_groups,
)

__all__ = ["MultiLabelData", "grouped_multilabel_split", "load_arff", "load_multilabel_npz",
           "load_multilabel_table", "semisynthetic_chestxray14"]

_FRACTIONS = {"train": 0.7, "val": 0.1, "test": 0.2}
#: Name of the default data set in configs, reports and run-folder names.
SEMISYNTHETIC = "chestxray14-semisynthetic"
_SPLIT_KEY = 0x6D6C73706C6974  # "mlsplit": the split generator's second word
_FEATURE_KEY = 0x6D6C66656174  # "mlfeat": the feature generator's second word


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


def _generator(seed: int, word: int) -> np.random.Generator:
    return np.random.Generator(np.random.Philox(key=[seed, word]))


def grouped_multilabel_split(targets: np.ndarray, *, groups: np.ndarray | None = None,
                             seed: int = 0) -> np.ndarray:
    """A seeded 70/10/20 train/val/test split of multi-label rows, by group when given.

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
    generator = _generator(seed, _SPLIT_KEY)
    ranking = generator.permutation(num_groups)  # a seeded order of the groups
    names = ("test", "val", "train")
    shares = np.array([_FRACTIONS[s] for s in names])
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
            missing = np.flatnonzero(have[:, label] == 0)
            if missing.size:
                where = int(missing[0])
            else:
                deficit = shares * totals[label] - have[:, label]
                where = int(np.argmax(deficit + 1e-9 * (shares * n - rows)))
            assigned[group] = where
            have[where] += carried[group]
            rows[where] += sizes[group]
    for group in ranking:
        if assigned[group] < 0:
            where = int(np.argmax(shares * n - rows))
            assigned[group] = where
            rows[where] += sizes[group]
    return np.array(names)[assigned[codes]]


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
                f"{where}: the {split} split has no positive of label(s) {_shown(missing)}, so "
                f"their AUROC, AUPRC and F1 are undefined there; every label needs positives in "
                f"every split (a label needs at least 3 positive groups for the automatic "
                f"split). Drop those labels or give a split column that places them")
        full = [names[j] for j in np.flatnonzero(counts == int((splits == split).sum()))]
        if split == "train" and full:
            raise ValueError(f"{where}: label(s) {_shown(full)} are positive on every train row; "
                             f"a label needs negatives to be learned. Drop those labels")


def _assemble(X: np.ndarray, targets: np.ndarray, names: tuple[str, ...], *,
              split: np.ndarray | None, groups: np.ndarray | None, seed: int, source: str,
              where: str) -> MultiLabelData:
    """Check, split (when no split is given) and standardise with the train statistics."""
    X = np.asarray(X)
    if X.ndim != 2 or not np.issubdtype(X.dtype, np.number):
        raise ValueError(f"{where}: X should be a 2-D numeric array (samples x features), but got "
                         f"shape {X.shape} and dtype {X.dtype}")
    if X.shape[1] == 0:
        raise ValueError(f"{where}: X has no feature columns; pass at least one feature")
    if len(X) != len(targets):
        raise ValueError(f"{where}: {len(X)} rows of features but {len(targets)} rows of labels; "
                         f"they must match")
    check_finite_features(X, where)
    if groups is not None:
        groups = np.asarray(groups).astype(str)
        if groups.shape != (len(X),):
            raise ValueError(f"{where}: groups should hold one id per row, shape ({len(X)},), but "
                             f"got shape {groups.shape}")
    if split is not None:
        splits = np.char.lower(np.char.strip(np.asarray(split).astype(str)))
        if splits.shape != (len(X),):
            raise ValueError(f"{where}: split should hold one of {list(SPLITS)} per row, shape "
                             f"({len(X)},), but got shape {splits.shape}")
        unknown = sorted(set(splits.tolist()) - set(SPLITS))
        if unknown:
            raise ValueError(f"{where}: split has value(s) {unknown}; use only {list(SPLITS)}")
        if groups is not None:
            _check_groups_disjoint(groups, splits, f"{where} groups")
    else:
        splits = grouped_multilabel_split(targets, groups=groups, seed=seed)
    _check_targets(targets, names, splits, where)
    X = X.astype(np.float64)
    train = X[splits == "train"]
    mean, std = train.mean(axis=0), train.std(axis=0)
    std[std == 0] = 1.0  # a constant training column stays 0, whatever val and test hold
    scaled = ((X - mean) / std).astype(np.float32)
    dense = targets.astype(np.float32)
    return MultiLabelData(
        features={s: torch.from_numpy(scaled[splits == s]) for s in SPLITS},
        targets={s: torch.from_numpy(dense[splits == s]) for s in SPLITS},
        label_names=names, source=source,
        groups=None if groups is None else {s: groups[splits == s] for s in SPLITS})


def _encode(labels, where: str, names=None) -> tuple[np.ndarray, tuple[str, ...]]:
    """Any accepted form of multi-label targets as a dense 0/1 matrix and its label names."""
    encoded = encode_multilabels(labels, where, names=names)
    return encoded.dense(np.float32), tuple(str(n) for n in encoded.names)


def semisynthetic_chestxray14(*, samples: int = 8000, features: int = 32,
                              seed: int = 0) -> MultiLabelData:
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
                     seed=seed, source=source, where="semi-synthetic ChestX-ray14")


def load_multilabel_npz(path: str | os.PathLike, *, seed: int = 0) -> MultiLabelData:
    """A ``.npz`` with ``X`` ``(N, F)`` numbers and ``Y`` ``(N, L)`` 0/1; optionally ``names``
    (``L`` label names), ``groups`` (one id per row) and ``split`` (train/val/test per row)."""
    arrays = _read_npz(Path(path), "data")
    where = f"data={str(path)!r}"
    missing = [key for key in ("X", "Y") if key not in arrays]
    if missing:
        raise KeyError(f"{where} lacks the array(s) {missing} of a multi-label table; it has "
                       f"{sorted(arrays)}. Store the features as 'X' (N x F) and the 0/1 labels "
                       f"as 'Y' (N x L)")
    Y = arrays["Y"]
    if Y.ndim != 2:
        raise ValueError(f"{where}: Y should be an (N, L) 0/1 matrix, but got shape {Y.shape}; "
                         f"store one column per label")
    names = arrays["names"].astype(str).tolist() if "names" in arrays else None
    targets, label_names = _encode(Y, f"{where} Y", names=names)
    return _assemble(arrays["X"], targets, label_names, split=arrays.get("split"),
                     groups=arrays.get("groups"), seed=seed,
                     source=f"{path} (npz, X/Y, {targets.shape[1]} labels)", where=where)


def load_multilabel_table(path: str | os.PathLike, *, label_cols: tuple[str, ...] | None = None,
                          label_col: str | None = None, split_col: str = "split",
                          group_col: str | None = None, seed: int = 0) -> MultiLabelData:
    """A CSV table: labels in several 0/1 columns (``label_cols``) or in one column of
    ``|``-separated findings (``label_col``; ``No Finding`` or empty is the empty set); every
    other column but ``split_col`` and ``group_col`` is a feature (text one-hot encoded)."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"table={str(path)!r} does not exist; pass the path of a CSV "
                                f"table with one row per sample")
    if (label_cols is None) == (label_col is None):
        raise ValueError("a multi-label table needs its labels: pass --label-cols A,B,C (0/1 "
                         "columns) or --label-col NAME (one '|'-separated column), exactly one")
    frame = _read_table(file, "table")
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
        cells = frame[label_col].fillna("").astype(str).tolist()
        targets, names = _encode(cells, f"{where} label_col={label_col!r}")
    groups = read_groups(frame, group_col, file)
    split = frame[split_col].to_numpy() if split_col in frame.columns else None
    features = frame.drop(columns=[c for c in (*wanted, split_col, group_col)
                                   if c is not None and c in frame.columns])
    empty = [c for c in features.columns if features[c].isna().any()]
    if empty:
        raise ValueError(f"{file}: feature column(s) {empty} have empty cells; fill them (e.g. "
                         f"with the train median) or drop those columns")
    text = [c for c in features.columns if not pd.api.types.is_numeric_dtype(features[c])]
    if text:
        features = pd.get_dummies(features, columns=text, dtype=np.float64)
    return _assemble(features.to_numpy(np.float64), targets, names, split=split, groups=groups,
                     seed=seed, source=f"{file} (CSV table, {len(names)} labels, "
                                       f"{features.shape[1]} features)", where=where)


def load_arff(path: str | os.PathLike, *, label_cols: tuple[str, ...] | None = None,
              seed: int = 0) -> MultiLabelData:
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
                            f"features)", where=f"data={str(path)!r}")


def load_multilabel_data(*, data: str | None = None, table: str | None = None,
                         label_cols: tuple[str, ...] | None = None, label_col: str | None = None,
                         split_col: str = "split", group_col: str | None = None,
                         samples: int = 8000, seed: int = 0) -> MultiLabelData:
    """The study's data from ``data`` (``.npz`` or ``.arff[.gz]``), ``table`` (CSV) or, with
    neither, the semi-synthetic ChestX-ray14 set."""
    if data is not None and table is not None:
        raise ValueError("pass only one of data and table")
    if data is not None:
        if not Path(data).is_file():
            raise FileNotFoundError(f"data={str(data)!r} does not exist; pass a .npz file with "
                                    f"X and Y, or an .arff file")
        name = Path(data).name.lower()
        if name.endswith((".arff", ".arff.gz")):
            return load_arff(data, label_cols=label_cols, seed=seed)
        if label_cols is not None:
            raise ValueError(f"label_cols applies to a CSV table or an ARFF file, not to "
                             f"data={str(data)!r} (an .npz holds its labels as Y); remove "
                             f"--label-cols")
        return load_multilabel_npz(data, seed=seed)
    if table is not None:
        return load_multilabel_table(table, label_cols=label_cols, label_col=label_col,
                                     split_col=split_col, group_col=group_col, seed=seed)
    return semisynthetic_chestxray14(samples=samples, seed=seed)
