"""Class labels of a dataset, found without loading its items."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import ConcatDataset, Subset, TensorDataset
from tqdm.auto import tqdm

from balancer._validation import check_bool, label_array

__all__ = ["labels_of"]

# Attributes holding one label per item, in the order they are tried: torchvision (`targets`),
# MedMNIST (`labels`), scikit-learn-style containers (`y`).
_LABEL_ATTRIBUTES = ("targets", "labels", "y")
# Attributes holding (path, class) pairs: torchvision's DatasetFolder / ImageFolder.
_PAIR_ATTRIBUTES = ("samples", "imgs")
# Columns tried, in order, on a Hugging Face `datasets.Dataset` (its usual names for the class).
_HF_COLUMNS = ("label", "labels")
# Keys tried, in order, when labels="scan" reads items that are dicts.
_SCAN_KEYS = ("label", "target", "y", "labels")
_TABLE_SUFFIXES = (".csv", ".tsv", ".csv.gz", ".tsv.gz", ".txt")

_OPTIONS = """\
  - labels=<sequence>: one label per item (list, numpy array, torch tensor, pandas Series);
  - a `targets`, `labels` or `y` attribute on the dataset (torchvision, MedMNIST, scikit-learn);
  - a `samples` or `imgs` list of (path, class) pairs on the dataset (ImageFolder);
  - a Hugging Face datasets.Dataset: its `label` or `labels` column, or labels="column";
  - torch.utils.data.Subset / ConcatDataset of datasets that have one of these;
  - a table and a column: labels_of(dataframe, "dx"), labels_of("manifest.csv", "dx"), or
    labels=(dataframe_or_csv_path, "dx") next to any dataset;
  - a list of dicts and a key: labels_of(data_list, "label"), or labels=(data_list, "label");
  - labels="dx" when the dataset holds such a DataFrame or list of dicts as an attribute;
  - labels="my_labels": the name of the dataset's attribute holding one label per item;
  - labels=label_fn: a function returning the label of item `index`, called as label_fn(index);
  - labels="scan": read every item once and take its label (loads all the data; slow)."""


def labels_of(dataset: Any, labels: Any = None, *, multilabel: bool = False) -> Any:
    """One class label per item of ``dataset``, as a 1-D numpy array, without loading any item.

    With ``multilabel=True``, the item's *set* of labels instead, as a
    :class:`~balancer.MultiLabels` (row-compressed, label names kept): from an ``(N, L)`` 0/1
    array or tensor, a ``|``-separated column such as ChestX-ray14's ``Finding Labels``
    (``"No Finding"`` is the empty set), a column of lists, or a list of dicts with a list under
    a key, e.g. ``labels_of("Data_Entry_2017.csv", "Finding Labels", multilabel=True)``.

    ``dataset[i]`` is never called unless ``labels="scan"``: the labels come from metadata the
    dataset already holds, or from what you pass. The sources, most explicit first:

    - ``labels`` as a sequence (list, numpy array, torch tensor, pandas Series): used as given.
    - ``labels`` as a callable: ``label_fn(index)`` for every index of ``dataset``.
    - ``labels="scan"``: the last resort. Reads every item once (with a progress bar) and takes
      the label from a ``(input, label, ...)`` tuple or a dict's ``"label"``/``"target"``/``"y"``
      key; prints how long it took.
    - a table and a column (``labels_of(df, "dx")``, ``labels_of("manifest.csv", "dx")``,
      ``labels=(df_or_csv_path, "dx")``) or a list of dicts and a key (``labels_of(data, "label")``,
      MONAI-style data lists); ``labels="dx"`` finds such a DataFrame or list of dicts among the
      dataset's attributes, or names the dataset's own attribute holding one label per item
      (``labels_of(dataset, "diagnoses")``). A CSV file reads only that column. A ``|``-separated multi-label
      column (``"Effusion|Mass"``) is rejected: the sampler needs one class per item, so pass a
      primary finding, or read every finding with ``multilabel=True`` (see above).
    - a Hugging Face ``datasets.Dataset``: its ``label`` or ``labels`` column with no ``labels``,
      or the column ``labels="name"`` names, read from the Arrow table (no row is decoded, so an
      image column is never touched); ``select``/``shuffle``/``filter`` views are followed.
    - with no ``labels``: the dataset's ``targets``, ``labels`` or ``y`` attribute
      (torchvision, MedMNIST, scikit-learn style), else its ``samples``/``imgs`` list of
      ``(path, class)`` pairs (ImageFolder), else, for a :class:`~torch.utils.data.Subset`, the
      labels of its dataset at its indices (nested subsets too), and for a
      :class:`~torch.utils.data.ConcatDataset`, its datasets' labels one after the other.

    Args:
        dataset: a map-style dataset, a pandas DataFrame, a CSV path or a list of dicts.
        labels: see above; ``None`` looks for labels on ``dataset``.

    Returns:
        The labels in index order, shape ``(len(dataset),)``, as stored (ints, strings, ...).

    Raises:
        ValueError: no source applies (the message lists them), the number of labels differs
            from the dataset's length, a column or key is missing, or labels are multi-label.

    Example:
        >>> from balancer import MedMNIST
        >>> train = MedMNIST("pneumoniamnist", "train")
        >>> labels_of(train).shape  # read from train.labels; no image is loaded
        (4708,)
        >>> labels_of(torch.utils.data.Subset(train, [0, 1, 2])).tolist()
        [1, 1, 1]
    """
    if check_bool("multilabel", multilabel):
        from balancer._multilabel_labels import multilabels_of

        return multilabels_of(dataset, labels)
    length = _length(dataset)
    if labels is None:
        return _from_dataset(dataset, length)
    if isinstance(labels, str) and labels == "scan":
        return _scan(dataset, length)
    if _is_table_source(dataset) and _is_field_name(labels):
        return _from_table(dataset, labels)
    if isinstance(labels, str):
        return _from_named_field(dataset, labels, length)
    if isinstance(labels, tuple) and len(labels) == 2 and _is_table_source(labels[0]) \
            and _is_field_name(labels[1]):
        return _checked(_from_table(*labels), length, "labels")
    if isinstance(labels, pd.DataFrame):
        raise TypeError(
            f"labels should be one column, but got a DataFrame with columns "
            f"{list(labels.columns)[:8]}; pass labels=(df, 'column') or labels=df['column']"
        )
    if callable(labels):
        return _from_function(labels, length)
    return label_array(labels, "labels", length=length)


# --------------------------------------------------------------------- sources
def _from_dataset(dataset: Any, length: int | None) -> np.ndarray:
    if _is_table_source(dataset):
        kind = "DataFrame" if isinstance(dataset, pd.DataFrame) else (
            "list of dicts" if _is_records(dataset) else "CSV file")
        raise ValueError(
            f"dataset is a {kind}; name the column or key that holds the labels, e.g. "
            f"labels_of(dataset, 'label'){_fields_hint(dataset)}"
        )
    if _is_hf_dataset(dataset):
        for name in _HF_COLUMNS:
            if name in dataset.column_names:
                return _hf_column(dataset, name)
        raise ValueError(
            f"the datasets.Dataset has no {' or '.join(map(repr, _HF_COLUMNS))} column (its "
            f"columns are {list(dataset.column_names)[:20]}); name the one holding the class, "
            f"e.g. balance(loader, labels='fine_label')"
        )
    skipped: list[str] = []
    for name in _LABEL_ATTRIBUTES:
        value = _attribute(dataset, name)
        if value is None:
            continue
        try:
            return label_array(value, f"dataset.{name}", length=length)
        except (TypeError, ValueError) as error:
            skipped.append(f"`{name}` ({error})")
    for name in _PAIR_ATTRIBUTES:
        value = _attribute(dataset, name)
        if value is None:
            continue
        if length is not None and len(value) != length:
            skipped.append(f"`{name}` ({len(value)} entries for {length} items)")
            continue
        try:
            return label_array([pair[1] for pair in value], f"dataset.{name}[:][1]")
        except (TypeError, IndexError, KeyError, ValueError) as error:
            skipped.append(f"`{name}` (not (path, class) pairs: {error})")
    if isinstance(dataset, Subset):
        return labels_of(dataset.dataset)[np.asarray(dataset.indices, dtype=np.int64)]
    if isinstance(dataset, ConcatDataset):
        return _concatenate([labels_of(part) for part in dataset.datasets])
    tried = f" Looked at but could not use: {'; '.join(skipped)}." if skipped else ""
    if isinstance(dataset, TensorDataset) and len(dataset.tensors) > 1:
        # Which tensor holds the labels is a convention, not something to guess silently.
        tried += (f" For a TensorDataset of {len(dataset.tensors)} tensors whose labels are "
                  f"the last one, pass labels=dataset.tensors[-1].")
    raise ValueError(
        f"found no class labels on dataset of type {type(dataset).__name__} without reading its "
        f"items.{tried} Give them in one of these ways (balance(loader, labels=...) takes the "
        f"same):\n{_OPTIONS}"
    )


def _from_named_field(dataset: Any, field: str, length: int | None) -> np.ndarray:
    """``labels="dx"`` next to a dataset: find the DataFrame or list of dicts holding ``dx``."""
    if _is_hf_dataset(dataset):
        if field not in dataset.column_names:
            raise ValueError(f"labels={field!r} is not a column of the datasets.Dataset; pick one "
                             f"of {list(dataset.column_names)[:20]}")
        return _hf_column(dataset, field)
    if isinstance(dataset, Subset):
        inner = _from_named_field(dataset.dataset, field, _length(dataset.dataset))
        return inner[np.asarray(dataset.indices, dtype=np.int64)]
    if isinstance(dataset, ConcatDataset):
        return _concatenate([_from_named_field(d, field, _length(d)) for d in dataset.datasets])
    holders = []
    for name, value in _public_attributes(dataset):
        if (isinstance(value, pd.DataFrame) and field in value.columns) or (
                _is_records(value) and field in value[0]):
            holders.append((name, value))
    attribute = _attribute(dataset, field)
    if not holders and attribute is not None and not _is_table_source(attribute):
        # labels="labels": the dataset's own attribute holding one label per item.
        try:
            return label_array(attribute, f"dataset.{field}", length=length)
        except (TypeError, ValueError) as error:
            raise ValueError(f"labels={field!r} names the attribute dataset.{field}, but "
                             f"{error}") from error
    if len(holders) != 1:
        found = ("none of its attributes is a DataFrame or list of dicts with it" if not holders
                 else f"several attributes have it ({', '.join(n for n, _ in holders)})")
        own = (f"has no attribute {field!r}" if attribute is None else
               f"its attribute {field!r} is a {type(attribute).__name__}, not one label per item")
        raise ValueError(
            f"labels={field!r} names a column or key, but dataset of type "
            f"{type(dataset).__name__} is not a table, {own} and {found}; "
            f"pass the table with it, labels=(dataframe_or_csv_path, {field!r}), or one "
            f"of:\n{_OPTIONS}"
        )
    return _checked(_from_table(holders[0][1], field), length, f"dataset.{holders[0][0]}")


def _from_table(source: Any, field: Any) -> np.ndarray:
    """A column of a DataFrame or CSV file, or a key of a list of dicts."""
    if _is_records(source):
        try:
            values = [record[field] for record in source]
        except KeyError:
            position = next(i for i, r in enumerate(source) if field not in r)
            raise ValueError(
                f"key {field!r} is missing from item {position} of the list of dicts (it has keys "
                f"{sorted(map(str, source[position]))[:8]}); give every item that key"
            ) from None
        return label_array(values, f"key {field!r}")
    if isinstance(source, pd.DataFrame):
        if field not in source.columns:
            raise ValueError(f"column {field!r} is not in the DataFrame; pick one of "
                             f"{list(source.columns)[:20]}")
        column = source[field]
        where = "the DataFrame"
    else:
        path = os.fspath(source)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"CSV file {path!r} does not exist; pass the path of the "
                                    f"manifest that holds the labels")
        separator = "\t" if ".tsv" in os.path.basename(path) else ","
        try:
            column = _read_csv_column(path, field, separator)
        except ValueError as error:
            header = list(pd.read_csv(path, nrows=0, sep=separator).columns)
            if field in header:
                raise
            raise ValueError(f"column {field!r} is not in {path!r}; pick one of "
                             f"{header[:20]}") from error
        where = repr(path)
    _reject_multilabel(column, field, where)
    return label_array(column, f"column {field!r}")


def _reject_multilabel(column: pd.Series, field: Any, where: str) -> None:
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
        f"column {field!r} of {where} is multi-label: {column.iloc[position]!r} at row "
        f"{position} joins several findings with '|' ({int(rows.sum())} such rows). The "
        f"sampler needs one class per item: pass a primary finding, e.g. "
        f"labels=df[{field!r}].str.split('|').str[0], or a column with one class per row; or "
        f"keep every finding with labels_of(..., multilabel=True) and a multi-label sampler "
        f"(balancer.MultiLabelBalancedSampler, balancer.RepeatFactorSampler)"
    )


def _read_csv_column(path: str, field: Any, separator: str) -> pd.Series:
    # Read as text (empty cells and "NA" still become missing), then keep each distinct label
    # once as a category: the multi-label check and the integer test look only at those.
    # Parsing as numbers would merge distinct names: "1" and "1.0", or "007" and "7".
    column = pd.read_csv(path, usecols=[field], sep=separator,
                         dtype={field: str}).iloc[:, 0].astype("category")
    categories = column.cat.categories
    integers = _as_integers(categories)
    if integers is not None:
        column = column.cat.rename_categories(integers)
    else:
        _reject_continuous(categories, field, path)
    return column


def _reject_continuous(texts: pd.Index, field: Any, path: str) -> None:
    """A column whose every label is a number, some not whole, holds scores, not classes."""
    numbers = pd.to_numeric(pd.Series(texts), errors="coerce")
    if len(texts) and numbers.notna().all():
        fractional = numbers[numbers != np.floor(numbers)]
        if len(fractional):
            raise ValueError(
                f"column {field!r} of {path} holds non-integer floats (e.g. "
                f"{texts[fractional.index[0]]!r}; {len(fractional)} distinct such values): "
                f"these look like continuous values (scores, probabilities), not class labels. "
                f"Pass a column with one class per row, or threshold the scores first"
            )


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


def _from_function(label_fn: Callable[[int], Any], length: int | None) -> np.ndarray:
    if length is None:
        raise TypeError("labels=label_fn needs a dataset with len(); pass a sequence of labels")
    values = []
    for index in range(length):
        try:
            values.append(label_fn(index))
        except Exception as error:
            name = getattr(label_fn, "__name__", None) or repr(label_fn)
            raise RuntimeError(
                f"label_fn {name}(index) raised {type(error).__name__} at index {index} of "
                f"{length}: {error}; fix the function for that item (the original error is "
                f"chained above)"
            ) from error
    return label_array(values, "label_fn(index)")


def _scan(dataset: Any, length: int | None) -> np.ndarray:
    if length is None or not hasattr(dataset, "__getitem__"):
        raise TypeError(
            f"labels='scan' reads dataset[i] for i in range(len(dataset)), but dataset of type "
            f"{type(dataset).__name__} has no len() or indexing; pass the labels as a sequence"
        )
    start = time.perf_counter()
    values = [
        _label_of_item(dataset[index], index)
        for index in tqdm(range(length), desc="labels_of: scanning items", unit="item",
                          file=sys.stderr, mininterval=0.5)
    ]
    elapsed = time.perf_counter() - start
    tqdm.write(f"labels_of: read {length} items in {elapsed:.2f} s to find their labels; pass "
               f"labels= as a sequence, attribute, column or function to skip this",
               file=sys.stderr)
    return label_array(values, "the scanned labels")


def _label_of_item(item: Any, index: int) -> Any:
    if isinstance(item, Mapping):
        for key in _SCAN_KEYS:
            if key in item:
                return _scalar(item[key])
        raise ValueError(
            f"labels='scan': item {index} is a dict without any of the keys {_SCAN_KEYS} (it has "
            f"{sorted(map(str, item))[:8]}); pass labels=(data_list, 'key') or a label_fn"
        )
    if isinstance(item, Sequence) and not isinstance(item, str) and len(item) >= 2:
        return _scalar(item[1])
    raise ValueError(
        f"labels='scan': item {index} is a {type(item).__name__}, not an (input, label, ...) "
        f"tuple or a dict with a 'label' key; pass labels=label_fn returning item {index}'s label"
    )


def _scalar(value: Any) -> Any:
    if isinstance(value, (torch.Tensor, np.ndarray)):
        if value.size != 1 if isinstance(value, np.ndarray) else value.numel() != 1:
            raise ValueError(
                f"labels='scan': an item's label has shape {tuple(value.shape)}; multi-label "
                f"targets are not supported, pass one class per item (e.g. the primary finding)"
            )
        return value.item()
    return value


def _is_hf_dataset(value: Any) -> bool:
    # A datasets.Dataset exists only once `datasets` is imported: look it up, never import it.
    module = sys.modules.get("datasets")
    return module is not None and isinstance(value, getattr(module, "Dataset", ()))


def _hf_column(dataset: Any, name: str) -> np.ndarray:
    """Column ``name`` of a ``datasets.Dataset`` in index order, straight from its Arrow table."""
    values = dataset.data.column(name).to_numpy()  # the whole table, before any index mapping
    indices = getattr(dataset, "_indices", None)  # select/shuffle/filter keep a mapping table
    if indices is not None:
        values = values[indices.column(0).to_numpy()]
    if values.dtype == object and len(values) and isinstance(values[0], (np.ndarray, list)):
        raise ValueError(
            f"column {name!r} of the datasets.Dataset holds a sequence per row (multi-label); the "
            f"sampler needs one class per item: pass a column with one class per row"
        )
    return label_array(values, f"column {name!r}")


# --------------------------------------------------------------------- helpers
def _length(dataset: Any) -> int | None:
    try:
        return len(dataset)
    except TypeError:
        return None


def _attribute(dataset: Any, name: str) -> Any:
    try:
        value = getattr(dataset, name, None)
    except Exception:  # a property that fails is no label source
        return None
    if value is None or callable(value):
        return None
    return value


def _public_attributes(dataset: Any) -> list[tuple[str, Any]]:
    try:
        items = vars(dataset).items()
    except TypeError:
        return []
    return [(name, value) for name, value in items if not name.startswith("__")]


def _is_records(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and len(value) > 0 and isinstance(value[0], Mapping)


def _is_table_path(value: Any) -> bool:
    if isinstance(value, os.PathLike):
        return True
    return isinstance(value, str) and value.lower().endswith(_TABLE_SUFFIXES)


def _is_table_source(value: Any) -> bool:
    return isinstance(value, pd.DataFrame) or _is_records(value) or _is_table_path(value)


def _is_field_name(value: Any) -> bool:
    return isinstance(value, (str, int)) and not isinstance(value, bool)


def _fields_hint(source: Any) -> str:
    if isinstance(source, pd.DataFrame):
        return f"; its columns are {list(source.columns)[:20]}"
    if _is_records(source):
        return f"; its first item has keys {sorted(map(str, source[0]))[:20]}"
    return ""


def _checked(array: np.ndarray, length: int | None, name: str) -> np.ndarray:
    if length is not None and len(array) != length:
        raise ValueError(f"{name} gives {len(array)} labels but the dataset has {length} items; "
                         f"pass a table with one row per item, in index order")
    return array


def _concatenate(parts: list[np.ndarray]) -> np.ndarray:
    if len({part.dtype.kind for part in parts}) > 1:
        parts = [part.astype(object) for part in parts]
    return np.concatenate(parts)
