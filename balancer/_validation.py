"""Input validation: every accepted form of an argument becomes one canonical form here."""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

__all__ = ["EncodedLabels", "check_bool", "check_int", "encode_labels", "label_array"]


def check_int(name: str, value: Any, *, minimum: int | None = None, maximum: int | None = None,
              fix: str = "") -> int:
    """Return ``value`` as an ``int`` or raise a ``TypeError``/``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} should be an integer, but got {name}={value!r} "
                        f"of type {type(value).__name__}{fix and '; ' + fix}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} should be an integer >= {minimum}, but got {name}={value}"
                         f"{fix and '; ' + fix}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} should be an integer <= {maximum}, but got {name}={value}"
                         f"{fix and '; ' + fix}")
    return value


def check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} should be True or False, but got {name}={value!r}")
    return bool(value)


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
        if isinstance(value, (list, tuple, set, frozenset, np.ndarray, torch.Tensor)):
            raise ValueError(
                f"{name} holds a {type(value).__name__} at position {position} "
                f"({_plain_repr(value)}): several labels per sample are multi-label targets, "
                f"which this sampler does not take; pass one class per sample (e.g. the primary "
                f"finding), or use balancer.MultiLabelBalancedSampler (balance(loader, "
                f"sampler='label-balanced'))"
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
                f"sequence. Multi-label targets are not supported: pass one class per sample "
                f"(e.g. the primary finding)"
            ) from error
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise ValueError(
            f"{name} should be 1-D with one class label per sample, but got shape {array.shape}. "
            f"Multi-label targets are not supported: pass one class per sample "
            f"(e.g. the primary finding)"
        )
    if length is not None and len(array) != length:
        raise ValueError(
            f"{name} has {len(array)} entries but {length_of} has {length} items; pass exactly "
            f"one label per item, in index order"
        )
    return array
