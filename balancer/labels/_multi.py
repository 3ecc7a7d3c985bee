"""Multi-label targets: every accepted form becomes one compact, CSR-like canonical form.

# Design note: why CSR, never a dense matrix
# A multi-label target set is a sparse 0/1 matrix: NIH ChestX-ray14 has 112,120 images and 14
# findings but only 81,176 positives (0.72 per image); a synthetic 10M x 100 table would be 4 GB
# as float32 but holds a few positives per row. Rows are kept as ``indptr`` (N + 1 offsets) and
# ``indices`` (the label ids of each row, ascending), so memory is O(N + positives) whatever L is.
# A dense 0/1 array the caller already holds is read in blocks of rows, so converting it never
# allocates more than one block's worth of temporaries.
"""

from __future__ import annotations

import collections
import numbers
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, TypedDict

import numpy as np
import pandas as pd
import torch

from balancer.labels._single import check_length, encode_labels
from balancer.labels._tables import Column

__all__ = ["NO_FINDING", "MultiLabelReader", "MultiLabels", "encode_multilabels"]

#: The ChestX-ray14 token for an image without findings; read as the empty set.
NO_FINDING = "No Finding"

# Rows of a dense matrix checked and converted per step (bounds temporary memory).
_DENSE_BLOCK_ROWS = 1 << 16


@dataclass(frozen=True, eq=False)
class MultiLabels:
    r"""Multi-label targets of ``N`` samples over ``L`` labels, stored row-compressed.

    Sample ``i`` carries the labels ``indices[indptr[i]:indptr[i + 1]]`` (ascending label ids,
    positions in :attr:`names`); a sample with none is in the *no-finding* bucket. Memory is
    ``O(N + P)`` for ``P`` positives, never ``O(N L)``.

    Attributes:
        names: the label names, shape ``(L,)``, in label-id order.
        indptr: row offsets, shape ``(N + 1,)``, ``int64``.
        indices: label ids, shape ``(P,)``, ``int32``.

    Example:
        >>> targets = encode_multilabels(["Effusion|Mass", "No Finding", "Mass"])
        >>> targets.names.tolist(), targets.counts.tolist(), int(targets.no_finding.sum())
        (['Effusion', 'Mass'], [1, 2], 1)
    """

    names: np.ndarray
    indptr: np.ndarray
    indices: np.ndarray

    @property
    def num_samples(self) -> int:
        return len(self.indptr) - 1

    @property
    def num_labels(self) -> int:
        return len(self.names)

    @cached_property
    def counts(self) -> np.ndarray:
        """Positives per label, shape ``(L,)``."""
        return np.bincount(self.indices, minlength=self.num_labels).astype(np.int64)

    @property
    def labels_per_sample(self) -> np.ndarray:
        """How many labels each sample carries, shape ``(N,)``."""
        return np.diff(self.indptr)

    @property
    def no_finding(self) -> np.ndarray:
        """Boolean mask of the samples with no label, shape ``(N,)``."""
        return self.labels_per_sample == 0

    def rows(self) -> np.ndarray:
        """The sample of every stored positive, aligned with :attr:`indices`, shape ``(P,)``."""
        index_dtype = np.int32 if self.num_samples < 2**31 else np.int64
        return np.repeat(np.arange(self.num_samples, dtype=index_dtype), self.labels_per_sample)

    def dense(self, dtype: Any = np.float32) -> np.ndarray:
        """The ``(N, L)`` 0/1 matrix. ``O(N L)`` memory: for small data, tests and losses only."""
        out = np.zeros((self.num_samples, self.num_labels), dtype=dtype)
        out[self.rows(), self.indices] = 1
        return out

    def __len__(self) -> int:
        return self.num_samples

    def __repr__(self) -> str:
        return (f"MultiLabels(samples={self.num_samples}, labels={self.num_labels}, "
                f"positives={len(self.indices)}, no_finding={int(self.no_finding.sum())})")


def _index_dtype(n: int) -> type:
    return np.int32 if n < 2**31 else np.int64


# --------------------------------------------------------------------- forms
def encode_multilabels(labels: Any, name: str = "labels", *, names: Sequence[Any] | None = None,
                       no_finding: str = NO_FINDING, separator: str = "|",
                       require_positives: bool = True, min_labels: int = 2,
                       classes: bool = False) -> MultiLabels:
    """Turn any accepted form of multi-label targets into :class:`MultiLabels`.

    Accepted forms (one per call; mixing them is an error):

    - an ``(N, L)`` 0/1 numpy array or torch tensor (bool, integer or float holding exactly 0
      and 1), or a DataFrame of ``L`` such columns (their names become the label names; bool,
      nullable ``Int64``/``boolean``, sparse and integer-category columns read as 0/1, and a
      missing cell is refused, naming its row and column);
    - a sparse ``(N, L)`` 0/1 matrix: a torch COO, CSR or CSC tensor, or a scipy sparse matrix,
      read from its stored entries (never made dense);
    - one string per sample joining findings with ``separator`` (``"Effusion|Mass"``), where
      ``no_finding`` (``"No Finding"``) and ``""`` mean the empty set: a list, array or pandas
      Series, such as ChestX-ray14's ``Finding Labels`` column (``no_finding`` joined with a
      finding is refused);
    - one list (tuple, set) of label names per sample, ``[]`` or ``[no_finding]`` being the
      empty set (``no_finding`` listed with a finding is refused);
    - a :class:`MultiLabels` (returned as it is, after the checks).

    Args:
        labels: the targets, as above.
        name: what to call them in error messages.
        names: the label names of a matrix, in column order (default: its column numbers, or a
            DataFrame's column names); for strings and lists, the label set (default: the
            sorted names that occur), so a label of the task with no positive is reported.
        no_finding: the token meaning "no label", for strings and lists.
        separator: the separator of joined strings.
        require_positives: reject a label without a positive sample (a sampler cannot draw it).
        min_labels: the fewest labels accepted (2 for multi-label balancing; 1 for
            repeat-factor sampling).
        classes: read a 1-D sequence of integers (or booleans) as one class per sample, each
            sample carrying one label (its class); otherwise such input is refused.
    """
    if classes and _is_float_column(labels):
        first = np.asarray(labels[:1]).reshape(-1)[0].item() if len(labels) else None
        raise TypeError(
            f"{name}[0] is a float ({first!r}); one class per sample should be an integer "
            f"class id: pass np.asarray({name}).astype(int) (after checking that every "
            f"value is a whole number), or multi-label targets as an (N, L) 0/1 matrix, one "
            f"'|'-joined string or one list of label names per sample"
        )
    if classes and _is_class_column(labels):
        encoded = encode_labels(labels, name)
        n = len(encoded.codes)
        labels = MultiLabels(names=encoded.classes, indptr=np.arange(n + 1, dtype=np.int64),
                             indices=encoded.codes.astype(np.int32))
    if isinstance(labels, MultiLabels):
        targets = labels
    elif isinstance(labels, pd.DataFrame):
        if names is None:
            _check_distinct(labels.columns, f"{name} (a DataFrame)", "the column ")
            names = list(labels.columns)
        targets = _from_matrix(_frame_matrix(labels, name), name, names)
    elif _is_sparse(labels):
        targets = _from_sparse(labels, name, names)
    elif isinstance(labels, torch.Tensor) or (isinstance(labels, np.ndarray) and labels.ndim >= 2):
        targets = _from_matrix(labels, name, names)
    else:
        targets = _from_sets(labels, name, names, no_finding, separator)
    _check(targets, name, require_positives, min_labels)
    return targets


def _is_class_column(labels: Any) -> bool:
    """Whether ``labels`` is a 1-D sequence of integers or booleans (one class per sample)."""
    if isinstance(labels, (list, tuple)):
        return bool(labels) and isinstance(labels[0], numbers.Integral)
    if isinstance(labels, (np.ndarray, torch.Tensor, pd.Series, pd.Index)):
        if labels.ndim != 1 or _is_sparse(labels):
            return False  # a matrix ((N, 1): L = 1, refused with its own message)
        return np.asarray(labels[:1]).dtype.kind in "biu"
    return False


def _is_float_column(labels: Any) -> bool:
    """Whether ``labels`` is a 1-D sequence of floats (class ids that came out as floats)."""
    if isinstance(labels, (list, tuple)):
        return bool(labels) and isinstance(labels[0], float)
    if isinstance(labels, (np.ndarray, torch.Tensor, pd.Series, pd.Index)):
        return labels.ndim == 1 and len(labels) > 0 and not _is_sparse(labels) and \
            np.asarray(labels[:1]).dtype.kind == "f"
    return False


def _from_matrix(matrix: Any, name: str, names: Sequence[Any] | None) -> MultiLabels:
    if isinstance(matrix, torch.Tensor):
        matrix = matrix.detach().cpu()
        if matrix.dtype == torch.bfloat16:
            matrix = matrix.float()
        matrix = matrix.numpy()
    if matrix.ndim != 2:
        fix = (f"reshape it to (N, L), e.g. {name}.reshape(len({name}), -1) for one label per "
               f"trailing entry" if matrix.ndim > 2 else
               "pass one row per sample and one column per label")
        raise ValueError(
            f"{name} should be an (N, L) 0/1 label matrix (one row per sample, one column per "
            f"label), but got a {matrix.ndim}-D array of shape {tuple(matrix.shape)}; {fix}"
        )
    if matrix.dtype.kind not in "biuf":
        raise TypeError(
            f"{name} should be an (N, L) matrix of 0/1 numbers, but got dtype {matrix.dtype}; for "
            f"label names pass one list (or '|'-joined string) of names per sample"
        )
    n, num_labels = matrix.shape
    if n == 0:
        raise ValueError(f"{name} is empty; pass one row of labels per sample of the dataset")
    label_names = _names_array(np.arange(num_labels) if names is None else names)
    if len(label_names) != num_labels:
        raise ValueError(f"names has {len(label_names)} entries but {name} has {num_labels} "
                         f"columns; pass one name per column")
    indptr = np.zeros(n + 1, dtype=np.int64)
    parts = []
    for start in range(0, n, _DENSE_BLOCK_ROWS):
        block = matrix[start: start + _DENSE_BLOCK_ROWS]
        if block.dtype.kind != "b":
            bad = (block != 0) & (block != 1)
            if bad.any():
                row, column = (int(v[0]) for v in np.nonzero(bad))
                value = block[row, column].item()
                raise ValueError(
                    f"{name} should hold only 0 and 1, but {name}[{start + row}, {column}] = "
                    f"{value!r}; pass a 0/1 (or boolean) matrix, e.g. (scores > 0.5) for "
                    f"probabilities, with one column per label"
                )
        rows, columns = np.nonzero(block)  # row-major: each row's labels ascending
        indptr[start + 1: start + len(block) + 1] = np.bincount(rows, minlength=len(block))
        parts.append(columns.astype(np.int32, copy=False))
    np.cumsum(indptr, out=indptr)
    indices = np.concatenate(parts) if parts else np.empty(0, dtype=np.int32)
    return MultiLabels(names=label_names, indptr=indptr, indices=indices)


def _check_distinct(values: Sequence[Any], argument: str, noun: str) -> None:
    """Refuse a label name given twice: two labels would be reported under one name."""
    try:
        repeated = [value for value, times in collections.Counter(values).items() if times > 1]
    except TypeError:  # an unhashable name: left to the checks that use the names
        return
    if repeated:
        raise ValueError(f"{argument} holds {noun}{repeated[0]!r} twice; give every label its "
                         f"own name (one per column, all different)")


def _frame_matrix(frame: pd.DataFrame, name: str) -> np.ndarray:
    """A DataFrame of 0/1 columns as one numpy matrix of their common dtype.

    Nullable columns (``Int64``, ``boolean``) count as their numpy dtype once complete, and a
    ``bool`` column among integer ones reads as 0/1: ``DataFrame.to_numpy`` would give objects.
    """
    dtypes = []
    for column, dtype in frame.dtypes.items():
        numpy_dtype = _numpy_dtype_of(dtype)
        if not isinstance(numpy_dtype, np.dtype) or numpy_dtype.kind not in "biuf":
            raise TypeError(
                f"{name} should be a DataFrame of 0/1 columns, but column {column!r} has dtype "
                f"{dtype}; convert it to 0/1 numbers (or booleans), or pass label names as one "
                f"list (or '|'-joined string) per sample"
            )
        dtypes.append(numpy_dtype)
    if len(frame) and len(dtypes):
        missing = frame.isna().to_numpy()
        if missing.any():
            row, column = (int(v[0]) for v in np.nonzero(missing))
            raise ValueError(
                f"{name} has a missing entry ({_plain(frame.iat[row, column])!r}) at row {row}, "
                f"column {frame.columns[column]!r} ({int(missing.sum())} missing in all); fill every "
                f"cell with 0 or 1 (e.g. {name}.fillna(0) if a missing finding means absent) or "
                f"drop those rows"
            )
    common = np.result_type(*dtypes) if dtypes else np.dtype(np.float64)
    return frame.to_numpy(dtype=common)


def _numpy_dtype_of(dtype: Any) -> Any:
    """The numpy dtype a DataFrame column's values have once complete: Int64 -> int64,
    boolean -> bool, Sparse[int8] -> int8, a category of integers -> int64."""
    if isinstance(dtype, pd.CategoricalDtype):
        return _numpy_dtype_of(dtype.categories.dtype)
    if isinstance(dtype, pd.SparseDtype):
        return dtype.subtype
    return getattr(dtype, "numpy_dtype", dtype)


def _is_sparse(labels: Any) -> bool:
    """Whether ``labels`` is a sparse torch tensor or a scipy sparse matrix or array."""
    if isinstance(labels, torch.Tensor):
        return labels.layout != torch.strided
    module = sys.modules.get("scipy.sparse")  # loaded whenever such a matrix exists
    return module is not None and module.issparse(labels)


def _from_sparse(labels: Any, name: str, names: Sequence[Any] | None) -> MultiLabels:
    """A sparse (N, L) 0/1 matrix, read from its stored entries: never made dense."""
    if labels.ndim != 2:
        raise ValueError(
            f"{name} should be an (N, L) 0/1 label matrix (one row per sample, one column per "
            f"label), but got a {labels.ndim}-D sparse matrix of shape {tuple(labels.shape)}; "
            f"pass a 2-D one"
        )
    if isinstance(labels, torch.Tensor):
        coo = labels.detach().cpu().to_sparse_coo().coalesce()  # row-major, duplicates summed
        if coo.values().ndim != 1:
            raise ValueError(f"{name} is a hybrid sparse tensor (dense values of shape "
                             f"{tuple(coo.values().shape[1:])}); pass a plain 2-D sparse tensor")
        rows, columns = (v.numpy() for v in coo.indices())
        values = coo.values()
        values = (values.float() if values.dtype in (torch.bfloat16, torch.float16)
                  else values).numpy()
    else:
        csr = labels.tocsr(copy=True)
        csr.sum_duplicates()  # also sorts each row's columns
        rows = np.repeat(np.arange(csr.shape[0]), np.diff(csr.indptr))
        columns, values = csr.indices, csr.data
    n, num_labels = (int(v) for v in labels.shape)
    if n == 0:
        raise ValueError(f"{name} is empty; pass one row of labels per sample of the dataset")
    if values.dtype.kind not in "biuf":
        raise TypeError(f"{name} should be a sparse matrix of 0/1 numbers, but got dtype "
                        f"{values.dtype}; store the positives as 1")
    bad = (values != 0) & (values != 1)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{name} should hold only 0 and 1, but {name}[{int(rows[first])}, "
            f"{int(columns[first])}] = {values[first].item()!r}; pass a 0/1 (or boolean) "
            f"sparse matrix (a repeated entry is summed), with one column per label"
        )
    keep = values != 0  # stored zeros are not positives
    rows, columns = rows[keep], columns[keep]
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
    label_names = _names_array(np.arange(num_labels) if names is None else names)
    if len(label_names) != num_labels:
        raise ValueError(f"names has {len(label_names)} entries but {name} has {num_labels} "
                         f"columns; pass one name per column")
    return MultiLabels(names=label_names, indptr=indptr,
                       indices=np.asarray(columns, dtype=np.int32))


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _is_missing(value: Any) -> bool:
    """Whether ``value`` is a missing entry: None, NaN, pd.NA or NaT."""
    return value is None or value is pd.NA or value is pd.NaT or (
        isinstance(value, float) and np.isnan(value))


def _names_array(names: Sequence[Any] | np.ndarray) -> np.ndarray:
    values = list(names)
    _check_distinct(values, "names", "")
    array = np.empty(len(values), dtype=object)
    array[:] = values
    if all(isinstance(v, str) for v in values):
        return array.astype(str)
    if all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in values):
        return array.astype(np.int64)
    return array


def _kind(value: Any) -> str:
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple, set, frozenset, np.ndarray)):
        return "list"
    return type(value).__name__


def _from_sets(labels: Any, name: str, names: Sequence[Any] | None, no_finding: str,
               separator: str) -> MultiLabels:
    if isinstance(labels, (pd.Series, pd.Index)):
        values = labels.to_numpy(dtype=object)
    elif isinstance(labels, np.ndarray) and labels.ndim == 1:
        values = labels.astype(object)
    elif isinstance(labels, (list, tuple)):
        values = np.empty(len(labels), dtype=object)
        for position, value in enumerate(labels):  # element-wise: equal-length lists stay lists
            values[position] = value
    else:
        raise TypeError(
            f"{name} should be multi-label targets: an (N, L) 0/1 array or tensor, one "
            f"'|'-joined string of findings per sample, or one list of label names per sample, "
            f"but got {type(labels).__name__}"
        )
    if len(values) == 0:
        raise ValueError(f"{name} is empty; pass the labels of every sample of the dataset")
    first = _kind(values[0])
    if first == "string":
        strings = pd.Series(values, dtype=object)
        is_string = strings.map(type).eq(str).to_numpy()
        if not is_string.all():
            return _mixed(values, name, np.flatnonzero(~is_string)[0], "'|'-joined strings")
        return _from_strings(strings, name, names, no_finding, separator)
    if first == "list":
        return _from_lists(values, name, names, no_finding)
    position = 0
    value = values[position]
    if _is_missing(value):
        raise ValueError(f"{name} has a missing entry ({value!r}) at position 0; give every "
                         f"sample its findings ('{no_finding}' or [] for none)")
    raise TypeError(
        f"{name}[0] is a {type(value).__name__} ({value!r}); multi-label targets are one "
        f"'|'-joined string or one list of label names per sample, or an (N, L) 0/1 matrix. "
        f"For one class per sample use balancer.BalancedBatchSampler"
    )


def _mixed(values: np.ndarray, name: str, position: int, expected: str) -> MultiLabels:
    value = values[position]
    if _is_missing(value):
        raise ValueError(
            f"{name} has a missing entry ({value!r}) at position {position}; give every sample "
            f"its findings (an empty set for none)"
        )
    raise ValueError(
        f"{name} mixes forms: item 0 is one of {expected}, but item {position} is a "
        f"{type(value).__name__} ({value!r}); pass one form for every sample (all strings, or "
        f"all lists of names)"
    )


def _from_strings(strings: pd.Series, name: str, names: Sequence[Any] | None, no_finding: str,
                  separator: str) -> MultiLabels:
    # Split each distinct string once: ChestX-ray14's 112,120 rows hold only 836 combinations.
    codes, uniques = pd.factorize(strings, sort=False)
    sets: list[list[str]] = []
    for text in uniques:
        parts = [p.strip() for p in text.split(separator)] if text else []
        parts = [p for p in parts if p]
        if no_finding in parts and any(part != no_finding for part in parts):
            position = int(np.flatnonzero(codes == len(sets))[0])
            raise ValueError(
                f"{name}[{position}] = {text!r} joins {no_finding!r} with findings; an image "
                f"either has findings or none: fix that row"
            )
        sets.append([] if no_finding in parts else parts)
    return _encode_sets(sets, codes, name, names)


def _from_lists(values: np.ndarray, name: str, names: Sequence[Any] | None,
                no_finding: str) -> MultiLabels:
    codes = np.arange(len(values))
    sets = []
    for position, value in enumerate(values):
        if _kind(value) != "list":
            return _mixed(values, name, position, "lists of label names")
        items = list(value)
        for item in items:
            if isinstance(item, (list, tuple, set, dict)) or item is None:
                raise ValueError(
                    f"{name}[{position}] holds {item!r}; each sample's list should hold label "
                    f"names (strings or integers)"
                )
        if any(_is_no_finding(item, no_finding) for item in items):
            if any(not _is_no_finding(item, no_finding) for item in items):
                raise ValueError(
                    f"{name}[{position}] = {value!r} lists {no_finding!r} with findings; an image "
                    f"either has findings or none: fix that row"
                )
            items = []
        sets.append(items)
    lengths = {len(s) for s in sets}
    if len(lengths) == 1 and lengths.pop() >= 2 and all(
            isinstance(v, (numbers.Integral, bool)) and v in (0, 1) for s in sets[:1000] for v in s):
        raise ValueError(
            f"{name} is a list of equal-length lists of 0s and 1s: it reads as lists of label "
            f"names 0 and 1, which is surely not meant. For an indicator matrix pass "
            f"np.asarray({name}) (or a tensor); for names pass them as strings"
        )
    return _encode_sets(sets, codes, name, names)


def _is_no_finding(item: Any, no_finding: str) -> bool:
    return isinstance(item, str) and item == no_finding


def _encode_sets(sets: list[list[Any]], codes: np.ndarray, name: str,
                 names: Sequence[Any] | None) -> MultiLabels:
    """Rows ``codes`` (one per sample) into the distinct label sets ``sets``."""
    found: set[Any] = set()
    for labels in sets:
        found.update(labels)
    if names is None:
        try:
            ordered = sorted(found)
        except TypeError:
            raise ValueError(
                f"{name} mixes label names of types that cannot be sorted "
                f"({sorted({type(v).__name__ for v in found})}); use one type for every name"
            ) from None
    else:
        ordered = list(names)
        unknown = found - set(ordered)
        if unknown:
            raise ValueError(
                f"{name} uses label(s) {sorted(unknown, key=repr)[:5]} that are not in names; add "
                f"them to names or fix the labels"
            )
    lookup = {label: k for k, label in enumerate(ordered)}
    set_ids = [sorted({lookup[label] for label in labels}) for labels in sets]
    set_lengths = np.array([len(s) for s in set_ids], dtype=np.int64)
    flat = np.array([k for s in set_ids for k in s], dtype=np.int32)
    set_starts = np.concatenate(([0], np.cumsum(set_lengths)))
    lengths = set_lengths[codes]
    indptr = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
    # Each sample's labels: flat[set_starts[code] + j] for j < length (vectorised gather).
    within = np.arange(indptr[-1], dtype=np.int64) - np.repeat(indptr[:-1], lengths)
    indices = flat[np.repeat(set_starts[:-1][codes], lengths) + within]
    return MultiLabels(names=_names_array(ordered), indptr=indptr,
                       indices=indices.astype(np.int32, copy=False))


def _check(targets: MultiLabels, name: str, require_positives: bool, min_labels: int) -> None:
    if targets.num_labels < min_labels:
        listed = targets.names.tolist()
        raise ValueError(
            f"{name} has L = {targets.num_labels} label(s) {listed}; multi-label balancing needs "
            f"at least {min_labels}. For one label (positive or not) use "
            f"balancer.BalancedBatchSampler on the 0/1 column, which balances its two classes"
        )
    if require_positives:
        counts = targets.counts
        empty = np.flatnonzero(counts == 0)
        if empty.size:
            listed = [targets.names[k].item() if hasattr(targets.names[k], "item")
                      else targets.names[k] for k in empty[:5]]
            raise ValueError(
                f"{name}: label(s) {listed} have no positive sample ({empty.size} such); a "
                f"sampler cannot draw a label nobody carries. Drop those labels (columns or "
                f"names) or add samples that carry them"
            )


# --------------------------------------------------------------------- reader
class _EncodeOptions(TypedDict):
    """:func:`encode_multilabels`'s keywords, as a :class:`MultiLabelReader` passes them."""

    no_finding: str
    separator: str
    require_positives: bool
    min_labels: int
    classes: bool


class MultiLabelReader:
    """Turns what :mod:`balancer.labels._sources` finds into :class:`MultiLabels`.

    The settings are :func:`encode_multilabels`'s; the targets are checked for form, not for
    the needs of a sampler (a label without positives or a single label passes: the samplers
    check those).
    """

    multilabel = True
    noun = "multi-label targets"

    def __init__(self, *, no_finding: str = NO_FINDING, separator: str = "|",
                 classes: bool = False) -> None:
        self.options = _EncodeOptions(no_finding=no_finding, separator=separator,
                                      require_positives=False, min_labels=1, classes=classes)

    def _encode(self, values: Any, name: str) -> MultiLabels:
        return encode_multilabels(values, name, **self.options)

    def sequence(self, values: Any, name: str, length: int | None) -> MultiLabels:
        targets = self._encode(values, name)
        check_length(targets.num_samples, length, name)
        return targets

    def given(self, values: Any, length: int | None) -> MultiLabels:
        return self.sequence(values, "labels", length)

    def column(self, column: Column) -> MultiLabels:
        # A CSV's cells stay text: "1" is a label named "1", as in the file.
        name = f"{column.kind} {column.field!r}"
        _refuse_missing_cells(column, name, self.options["separator"], self.options["no_finding"])
        return self._encode(_stacked_rows(column.values, name), name)

    def items(self, values: list[Any], name: str) -> MultiLabels:
        return self._encode(_stacked_rows(values, name), name)

    def item(self, value: Any) -> Any:
        if isinstance(value, (torch.Tensor, np.ndarray)) and value.ndim == 0:
            return value.item()  # one class (classes=True)
        return value

    def take(self, targets: MultiLabels, indices: np.ndarray) -> MultiLabels:
        return take_rows(targets, indices)

    def join(self, parts: Sequence[MultiLabels]) -> MultiLabels:
        return join_rows(parts)


def _refuse_missing_cells(column: Column, name: str, separator: str, no_finding: str) -> None:
    """Refuse a table cell without findings: an empty or missing cell is not "no finding".

    A CSV file's empty cell reads as NaN; a DataFrame or a list of dicts can also hold ``""``
    (or ``" "``, ``"|"``), which the string form reads as the empty set: a row whose labels
    were never filled in would silently join the no-finding bucket. Both name the table and row.
    """
    values = column.values
    if isinstance(values, np.ndarray) and values.dtype != object:
        return  # numbers (classes=True) or a 0/1 matrix: the encoding checks them
    cells = values if isinstance(values, pd.Series) else pd.Series(list(values), dtype=object)
    if not (cells.dtype == object or isinstance(cells.dtype, pd.StringDtype)):
        return  # numbers (classes=True): the encoding checks them
    missing = cells.isna().to_numpy().copy()
    is_text = (cells.map(type).eq(str).to_numpy() if cells.dtype == object else ~missing)
    text = cells[is_text].astype(object)
    # The distinct strings only: a findings column holds few combinations however long it is.
    blank = [value for value in pd.unique(text.to_numpy())
             if not value.replace(separator, "").strip()]
    if blank:
        missing[np.flatnonzero(is_text)[text.isin(blank).to_numpy()]] = True
    if not missing.any():
        return
    rows = np.flatnonzero(missing)
    value = cells.iloc[rows[0]]
    cell = ("an empty cell" if column.text or isinstance(value, str)
            else f"a missing entry ({value!r})")
    raise ValueError(
        f"{name} of {column.where} has {cell} at row {int(rows[0])} ({len(rows)} such rows in "
        f"all): a cell without findings is a missing entry, not {no_finding!r}; give every row "
        f"its findings ({no_finding!r} for none) or drop those rows"
    )


def _stacked_rows(values: Any, name: str) -> Any:
    """One 0/1 array or tensor per item (a MONAI ``"label"``, an item's target) as a matrix.

    A *list* per item stays a list of label names; only arrays and tensors are indicator rows.
    """
    if isinstance(values, (pd.Series, np.ndarray)) and values.dtype == object:
        values = list(values)  # a DataFrame column or an object array holding one row per item
    if not isinstance(values, (list, tuple)) or not values or not isinstance(
            values[0], (np.ndarray, torch.Tensor)) or values[0].ndim != 1:
        return values
    shape = tuple(values[0].shape)
    rows = []
    for position, value in enumerate(values):
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu()
            value = (value.float() if value.dtype == torch.bfloat16 else value).numpy()
        if not isinstance(value, np.ndarray) or value.shape != shape:
            raise ValueError(
                f"{name}[{position}] is {type(value).__name__} of shape {np.shape(value)}, but "
                f"{name}[0] is a 0/1 row of shape {shape}; give every item a "
                f"row of the same length (one column per label)"
            )
        rows.append(value)
    if rows[0].dtype.kind not in "biuf":
        return [row.tolist() for row in rows]  # arrays of label names
    return np.stack(rows)


def take_rows(targets: MultiLabels, rows: np.ndarray) -> MultiLabels:
    """The samples ``rows`` of ``targets``, in that order (repeats allowed), names kept."""
    rows = np.asarray(rows, dtype=np.int64)
    lengths = targets.labels_per_sample[rows]
    indptr = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    within = np.arange(indptr[-1], dtype=np.int64) - np.repeat(indptr[:-1], lengths)
    indices = targets.indices[np.repeat(targets.indptr[:-1][rows], lengths) + within]
    return MultiLabels(names=targets.names, indptr=indptr, indices=indices)


def join_rows(parts: Sequence[MultiLabels]) -> MultiLabels:
    """The samples of ``parts`` one after the other, over the union of their label names.

    Parts with the same names keep them; otherwise the names are sorted (as names read from
    strings or lists are) and each part's label ids are mapped onto them.
    """
    first = parts[0].names
    if all(np.array_equal(part.names, first) for part in parts):
        names = first
        mapped = [part.indices for part in parts]
    else:
        union: set[Any] = set()
        for part in parts:
            union.update(part.names.tolist())
        try:
            ordered = sorted(union)
        except TypeError:
            raise ValueError(
                f"the datasets joined hold label names of types that cannot be sorted together "
                f"({sorted({type(v).__name__ for v in union})}); give every part names of one "
                f"type"
            ) from None
        names = _names_array(ordered)
        lookup = {name: k for k, name in enumerate(ordered)}
        mapped = [np.asarray([lookup[name] for name in part.names.tolist()],
                             dtype=np.int32)[part.indices] for part in parts]
    offsets = np.cumsum([0] + [len(part.indices) for part in parts[:-1]])
    indptr = np.concatenate([[0]] + [part.indptr[1:] + offset
                                     for part, offset in zip(parts, offsets, strict=True)])
    return MultiLabels(names=names, indptr=indptr.astype(np.int64),
                       indices=np.concatenate(mapped).astype(np.int32, copy=False))
