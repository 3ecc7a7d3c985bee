"""One class label per sample: every accepted form becomes one 1-D array, then codes and counts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from balancer.labels._tables import Column

__all__ = ["EncodedLabels", "SingleLabelReader", "encode_labels", "label_array"]


@dataclass(frozen=True)
class EncodedLabels:
    """Labels in canonical form.

    Attributes:
        classes: the sorted distinct labels, shape ``(C,)``.
        codes: for each sample, the position of its label in ``classes``, shape ``(N,)``.
        counts: samples per class, aligned with ``classes``, shape ``(C,)``, ``int64``.
    """

    classes: np.ndarray
    codes: np.ndarray
    counts: np.ndarray


# How to keep several labels per sample, for the messages that refuse them here.
_MULTILABEL_FIX = ("pass one class per sample (e.g. the primary finding), or keep every label: "
                   "labels_of(..., multilabel=True), or balance(loader, sampler='label-balanced') "
                   "(balancer.MultiLabelBalancedSampler)")
# What a sample's label must not be in single-label mode: several labels.
_LABEL_SETS = (list, tuple, set, frozenset, np.ndarray, torch.Tensor)

# torch floats that numpy has no dtype for.
_NUMPY_LESS_FLOATS = tuple(getattr(torch, name) for name in (
    "bfloat16", "float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz")
    if hasattr(torch, name))


def _to_numpy(labels: Any, name: str) -> np.ndarray:
    if isinstance(labels, torch.Tensor):
        if labels.device.type == "meta":
            raise TypeError(f"{name} is a tensor on the meta device, which holds no values; "
                            f"pass the labels themselves (a tensor on the CPU or a GPU)")
        labels = labels.detach().cpu()
        if labels.layout != torch.strided:
            labels = labels.to_dense()  # sparse: the absent entries are zeros, i.e. class 0
        if labels.dtype in _NUMPY_LESS_FLOATS:
            labels = labels.double()  # exact: every bf16 / fp8 value is a float64 value
        return labels.numpy()
    if isinstance(labels, (pd.Series, pd.Index)):
        if isinstance(labels.dtype, pd.api.extensions.ExtensionDtype) and labels.hasnans:
            # A nullable column (Int64, boolean, string[python]) turns pd.NA into NaN in a float
            # array; as objects its missing labels keep their identity for the error message.
            return labels.to_numpy(dtype=object)
        return labels.to_numpy()
    if isinstance(labels, pd.DataFrame):
        raise TypeError(
            f"{name} should be 1-D, but got a DataFrame with columns {list(labels.columns)[:5]}; "
            f"pass one column, e.g. df['label']"
        )
    if isinstance(labels, np.ndarray):
        return np.asarray(labels)  # a plain array, also for np.matrix
    if isinstance(labels, (list, tuple, range)):
        array = np.asarray(labels)
        if array.dtype.kind in "USO" and array.ndim == 1:
            # np.asarray would turn [1, "a"] into ["1", "a"], merging the classes 1 and "1":
            # keep the original objects instead.
            array = np.empty(len(labels), dtype=object)
            array[:] = labels
        return array
    raise TypeError(
        f"{name} should be a 1-D sequence of labels (list, tuple, numpy array, torch tensor or "
        f"pandas Series), but got {type(labels).__name__}"
    )


def _unmasked(labels: np.ma.MaskedArray, name: str) -> np.ndarray:
    hidden = np.ma.getmaskarray(labels)
    if hidden.any():
        position = int(np.flatnonzero(hidden.reshape(-1))[0])
        raise ValueError(
            f"{name} is a masked array with {int(hidden.sum())} masked (missing) label(s), the "
            f"first at position {position}; remove those samples or give them a class"
        )
    return np.asarray(labels.data)


def encode_labels(labels: Any, name: str = "labels") -> EncodedLabels:
    """Turn any accepted form of class labels into :class:`EncodedLabels`.

    Accepts a list, tuple, numpy array, torch tensor or pandas Series of hashable labels (ints,
    not necessarily contiguous, strings, ...). A column vector of shape ``(N, 1)`` is flattened.

    Example:
        >>> encoded = encode_labels(["nv", "mel", "nv", "bcc"])
        >>> encoded.classes.tolist(), encoded.codes.tolist(), encoded.counts.tolist()
        (['bcc', 'mel', 'nv'], [2, 1, 2, 0], [1, 1, 2])
    """
    array = label_array(labels, name)
    if array.size == 0:
        raise ValueError(f"{name} is empty; pass one class label per sample of the dataset")

    if array.dtype.kind in "biu":
        codes, classes = _encode_integers(array)
        if array.dtype.kind == "b":
            classes = classes.astype(np.bool_)  # [False True], not [0 1]
    else:
        if array.dtype.kind == "f":
            missing = np.isnan(array)
        elif array.dtype.kind in "USa":
            missing = None
        else:
            missing = pd.isna(array)
        if missing is not None and missing.any():
            position = int(np.flatnonzero(missing)[0])
            raise ValueError(
                f"{name} has a missing label ({_plain_repr(array[position])}) at position "
                f"{position} ({int(missing.sum())} missing in all); remove those samples or give "
                f"them a class"
            )
        if array.dtype.kind == "O" and pd.api.types.infer_dtype(array, skipna=False) in (
                "floating", "mixed-integer-float"):
            array = array.astype(np.float64)  # Python floats as objects: the same checks
        if array.dtype.kind == "f":
            array = _integral_floats(array, name)
        try:
            codes, uniques = pd.factorize(array, sort=True)
        except TypeError as error:  # unhashable or unorderable entries
            _reject_collections(array, name)
            kinds = sorted({type(value).__name__ for value in array[:10_000]})
            raise TypeError(
                f"{name} mixes labels that cannot be ordered against each other (types "
                f"{', '.join(kinds)}); pass labels of one kind, e.g. all strings "
                f"(labels.astype(str))"
            ) from error
        classes = np.asarray(uniques)
    counts = np.bincount(codes, minlength=len(classes)).astype(np.int64)
    if len(classes) < 2:
        raise ValueError(
            f"{name} holds a single class ({_plain_repr(classes[0])}); balancing needs at least "
            f"two: pass the labels of a data set with two or more classes (for a subset, take a "
            f"larger or stratified one)"
        )
    code_dtype = np.uint16 if len(classes) <= np.iinfo(np.uint16).max else np.int32
    return EncodedLabels(classes=classes, codes=codes.astype(code_dtype, copy=False), counts=counts)


def _reject_collections(array: np.ndarray, name: str) -> None:
    """Refuse entries that are themselves collections: several labels per sample."""
    for position, value in enumerate(array):
        if isinstance(value, _LABEL_SETS):
            raise ValueError(
                f"{name} holds a {type(value).__name__} at position {position} "
                f"({_plain_repr(value)}): several labels per sample are multi-label targets, "
                f"which this sampler does not take; {_MULTILABEL_FIX}"
            )


def _integral_floats(array: np.ndarray, name: str) -> np.ndarray:
    """Float labels must be whole numbers (class indices stored as floats): anything else is
    a continuous value (a score, a probability), not a class."""
    fractional = ~np.isfinite(array) | (array != np.floor(array))
    if fractional.any():
        position = int(np.flatnonzero(fractional)[0])
        raise ValueError(
            f"{name} holds non-integer floats ({_plain_repr(array[position])} at position "
            f"{position}, {int(fractional.sum())} in all): these look like continuous values "
            f"(scores, probabilities), not class labels. Pass one class index per sample, e.g. "
            f"labels.round().long(), or threshold the scores first"
        )
    return array


def _plain_repr(value: Any) -> str:
    """repr of a label as the Python value it stands for: 1 rather than np.int64(1), and pd.NA
    as <NA>."""
    if isinstance(value, np.generic):
        value = value.item()
    return repr(value)


def _encode_integers(array: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if array.dtype == np.uint64 and int(array.max()) > np.iinfo(np.int64).max:
        # Beyond int64: a cast would wrap them negative; sort them as they are.
        classes, codes = np.unique(array, return_inverse=True)
        return codes.reshape(-1), classes
    array = array.astype(np.int64, copy=False)
    low, high = int(array.min()), int(array.max())
    if high - low <= 4 * array.size + 1024:
        # Dense enough for a lookup table: O(N), no sort.
        present = np.bincount(array - low, minlength=high - low + 1) > 0
        classes = np.flatnonzero(present) + low
        table = np.cumsum(present) - 1
        return table[array - low], classes
    codes, uniques = pd.factorize(array, sort=True)
    return codes, np.asarray(uniques)


def label_array(labels: Any, name: str = "labels", *, length: int | None = None,
                length_of: str = "the dataset") -> np.ndarray:
    """Turn one label per sample, in any accepted form, into a 1-D numpy array.

    Accepts what :func:`encode_labels` accepts; a column vector ``(N, 1)`` is flattened.
    With ``length``, the number of labels must equal it (one label per item of ``length_of``).
    """
    if isinstance(labels, np.ma.MaskedArray):
        array = _unmasked(labels, name)
    else:
        try:
            array = _to_numpy(labels, name)
        except ValueError as error:  # ragged nested lists
            raise ValueError(
                f"{name} should be 1-D with one class label per sample; got a ragged nested "
                f"sequence (a list of labels per sample). Multi-label targets are not supported "
                f"by one-class-per-sample balancing: {_MULTILABEL_FIX}"
            ) from error
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim == 2:
        raise ValueError(
            f"{name} should be 1-D with one class label per sample, but got shape {array.shape}: "
            f"{array.shape[1]} labels per sample. Multi-label targets are not supported by "
            f"one-class-per-sample balancing: {_MULTILABEL_FIX}"
        )
    if array.ndim != 1:
        raise ValueError(
            f"{name} should be 1-D with one class label per sample (shape (N,)), but got a "
            f"{array.ndim}-D array of shape {array.shape}; pass one class per sample, or several "
            f"labels per sample as an (N, L) 0/1 matrix with labels_of(..., multilabel=True)"
        )
    if array.dtype == object and len(array) and isinstance(array[0], _LABEL_SETS):
        _reject_collections(array[:1], name)
    check_length(len(array), length, name, length_of)
    return array


def check_length(count: int, length: int | None, name: str,
                 length_of: str = "the dataset") -> None:
    """Refuse ``count`` labels for a dataset of ``length`` items (``None``: no len(), no check)."""
    if length is not None and count != length:
        raise ValueError(
            f"{name} has {count} entries but {length_of} has {length} items; pass exactly "
            f"one label per item, in index order"
        )


# --------------------------------------------------------------------- reader
class SingleLabelReader:
    """Turns what :mod:`balancer.labels._sources` finds into one label per item (a 1-D array).

    Every method takes raw labels from one source and returns them as stored (ints, strings,
    ...), checked for shape: the sampler encodes them with :func:`encode_labels`.
    """

    multilabel = False
    noun = "class labels"

    def sequence(self, values: Any, name: str, length: int | None) -> np.ndarray:
        """An attribute or argument holding one label per item."""
        return label_array(values, name, length=length)

    def given(self, values: Any, length: int | None) -> np.ndarray:
        """The ``labels`` argument itself."""
        if isinstance(values, pd.DataFrame):
            raise TypeError(
                f"labels should be one column, but got a DataFrame with columns "
                f"{list(values.columns)[:8]}; pass labels=(df, 'column') or labels=df['column']"
            )
        return label_array(values, "labels", length=length)

    def column(self, column: Column) -> np.ndarray:
        """A column (or key) of a table, a list of dicts or a Hugging Face dataset; a CSV
        file's cells (``column.text``) that are all integers written plainly become integers."""
        values, name = column.values, f"{column.kind} {column.field!r}"
        if column.text:
            values = _classes_of_text(values, name, column.where)
        _reject_label_sets(values, name, column.where)
        if isinstance(values, pd.Series):
            _reject_joined(values, column.field, name, column.where)
        return label_array(values, name)

    def items(self, values: list[Any], name: str) -> np.ndarray:
        """Labels collected item by item (pairs, a label function, a scan)."""
        return label_array(values, name)

    def item(self, value: Any) -> Any:
        """The label one item gives, as one value."""
        if isinstance(value, (torch.Tensor, np.ndarray)):
            size = value.size if isinstance(value, np.ndarray) else value.numel()
            if size != 1:
                raise ValueError(
                    f"labels='scan': an item's label has shape {tuple(value.shape)}; multi-label "
                    f"targets are not supported, pass one class per item (e.g. the primary "
                    f"finding) or read every label with labels_of(..., multilabel=True)"
                )
            return value.item()
        return value

    def take(self, labels: np.ndarray, indices: np.ndarray) -> np.ndarray:
        return labels[indices]

    def join(self, parts: Sequence[np.ndarray]) -> np.ndarray:
        if len({part.dtype.kind for part in parts}) > 1:
            parts = [part.astype(object) for part in parts]
        return np.concatenate(parts)


def _reject_label_sets(values: Any, name: str, where: str) -> None:
    """Refuse a column holding a list (array, ...) of labels per row: several labels per item."""
    if isinstance(values, (pd.Series, np.ndarray)) and values.dtype != object:
        return
    sets = np.fromiter((isinstance(value, _LABEL_SETS) for value in values), dtype=bool,
                       count=len(values))
    if sets.any():
        position = int(np.flatnonzero(sets)[0])
        value = values.iloc[position] if isinstance(values, pd.Series) else values[position]
        raise ValueError(
            f"{name} of {where} holds a {type(value).__name__} of labels per row "
            f"({_plain_repr(value)} at row {position}; {int(sets.sum())} such rows): several "
            f"labels per item are multi-label targets, which one-class-per-sample balancing "
            f"does not take; {_MULTILABEL_FIX}"
        )


def _reject_joined(column: pd.Series, field: Any, name: str, where: str) -> None:
    """Refuse a ``|``-joined findings column: several labels per item."""
    # Look at the distinct values only (few, however long the column), and locate rows only
    # when there is something to report.
    if isinstance(column.dtype, pd.CategoricalDtype):
        distinct = column.cat.categories
    elif column.dtype == object or isinstance(column.dtype, pd.StringDtype):
        distinct = column.unique()
    else:
        return
    joined = [value for value in distinct if isinstance(value, str) and "|" in value]
    if not joined:
        return
    rows = column.isin(joined).to_numpy(dtype=bool)
    position = int(np.flatnonzero(rows)[0])
    raise ValueError(
        f"{name} of {where} is multi-label: {column.iloc[position]!r} at row "
        f"{position} joins several findings with '|' ({int(rows.sum())} such rows). The "
        f"sampler needs one class per item: pass a primary finding, e.g. "
        f"labels=df[{field!r}].str.split('|').str[0], or a column with one class per row; or "
        f"keep every finding with labels_of(..., multilabel=True) and a multi-label sampler "
        f"(balancer.MultiLabelBalancedSampler, balancer.RepeatFactorSampler)"
    )


def _classes_of_text(column: pd.Series, name: str, where: str) -> pd.Series:
    """A CSV column's cells as classes: each distinct label kept once, as a category.

    The multi-label check and the integer test then look only at the distinct labels. Parsing
    the cells as numbers would merge distinct names: "1" and "1.0", or "007" and "7".
    """
    column = column.astype("category")
    categories = column.cat.categories
    integers = _as_integers(categories)
    if integers is not None:
        return column.cat.rename_categories(integers)
    numbers = pd.to_numeric(pd.Series(categories), errors="coerce")
    if len(categories) and numbers.notna().all():
        fractional = numbers[numbers != np.floor(numbers)]
        if len(fractional):
            raise ValueError(
                f"{name} of {where} holds non-integer floats (e.g. "
                f"{categories[fractional.index[0]]!r}; {len(fractional)} distinct such values): "
                f"these look like continuous values (scores, probabilities), not class labels. "
                f"Pass a column with one class per row, or threshold the scores first"
            )
    return column


def _as_integers(texts: pd.Index) -> np.ndarray | None:
    """The labels as int64 when every one is an integer written plainly, else None."""
    if not len(texts):
        return None
    try:
        values = [int(text) for text in texts]
    except ValueError:
        return None
    if any(str(value) != text for value, text in zip(values, texts, strict=True)):
        return None  # "007", "+7", " 7": a name, not a number
    return np.asarray(values, dtype=np.int64)
