"""Where a dataset's labels are: one dispatch tree for single-label and multi-label data.

# Design note: one tree, two readers
# Every source (an argument, an attribute, (path, class) pairs, a table column, a list of dicts,
# a Hugging Face column, a MONAI data list, a function, a scan, Subset and ConcatDataset at any
# depth) is found here once. What the raw labels become is the reader's business:
# ``SingleLabelReader`` gives one label per item (a 1-D array), ``MultiLabelReader`` gives
# ``MultiLabels``. A Subset or ConcatDataset takes or joins what its datasets' readers gave, so a
# nested subset of a table works in both modes without a mode-specific branch.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

import numpy as np
import pandas as pd
from torch.utils.data import ConcatDataset, Subset, TensorDataset
from tqdm.auto import tqdm

from balancer._validation import check_bool
from balancer.labels import _tables
from balancer.labels._multi import NO_FINDING, MultiLabelReader, MultiLabels
from balancer.labels._single import SingleLabelReader
from balancer.labels._tables import Column

__all__ = ["labels_of", "multilabels_of"]

T = TypeVar("T")

# Attributes holding one label per item, in the order they are tried: torchvision (`targets`),
# MedMNIST and MONAI's ImageDataset (`labels`), scikit-learn-style containers (`y`).
_LABEL_ATTRIBUTES = ("targets", "labels", "y")
# Attributes holding (path, class) pairs: torchvision's DatasetFolder / ImageFolder.
_PAIR_ATTRIBUTES = ("samples", "imgs")
# Columns tried, in order, on a Hugging Face `datasets.Dataset` (its usual names for the class).
_HF_COLUMNS = ("label", "labels")
# MONAI's Dataset, CacheDataset, PersistentDataset and SmartCacheDataset keep their items as a
# `data` list of dicts; its key for the class is "label".
_DATA_LIST, _DATA_KEY = "data", "label"
# Keys tried, in order, when labels="scan" reads items that are dicts.
_SCAN_KEYS = ("label", "target", "y", "labels")

_OPTIONS = """\
  - labels=<sequence>: one label per item (list, numpy array, torch tensor, pandas Series);
  - a `targets`, `labels` or `y` attribute on the dataset (torchvision, MedMNIST, scikit-learn);
  - a `samples` or `imgs` list of (path, class) pairs on the dataset (ImageFolder);
  - a `data` list of dicts with a "label" key (MONAI's Dataset, CacheDataset, ...);
  - a Hugging Face datasets.Dataset: its `label` or `labels` column, or labels="column";
  - torch.utils.data.Subset / ConcatDataset of datasets that have one of these;
  - a table and a column: labels_of(dataframe, "dx"), labels_of("manifest.csv", "dx"), or
    labels=(dataframe_or_csv_path, "dx") next to any dataset;
  - a list of dicts and a key: labels_of(data_list, "label"), or labels=(data_list, "label");
  - labels="dx" when the dataset holds such a DataFrame or list of dicts as an attribute;
  - labels="my_labels": the name of the dataset's attribute holding one label per item;
  - labels=label_fn: a function returning the label of item `index`, called as label_fn(index);
  - labels="scan": read every item once and take its label (loads all the data; slow)."""


class Reader(Protocol[T]):
    """What raw labels become: ``SingleLabelReader`` or ``MultiLabelReader``."""

    multilabel: bool
    noun: str

    def sequence(self, values: Any, name: str, length: int | None) -> T: ...
    def given(self, values: Any, length: int | None) -> T: ...
    def column(self, column: Column) -> T: ...
    def items(self, values: list[Any], name: str) -> T: ...
    def item(self, value: Any) -> Any: ...
    def take(self, labels: T, indices: np.ndarray) -> T: ...
    def join(self, parts: Sequence[T]) -> T: ...


def labels_of(dataset: Any, labels: Any = None, *, multilabel: bool = False) -> Any:
    """One class label per item of ``dataset``, as a 1-D numpy array, without loading any item.

    With ``multilabel=True``, the item's *set* of labels instead, as a
    :class:`~balancer.MultiLabels` (row-compressed, label names kept): from an ``(N, L)`` 0/1
    array, tensor, sparse matrix or DataFrame, a ``|``-separated column such as ChestX-ray14's ``Finding Labels``
    (``"No Finding"`` is the empty set), a column of lists, a 0/1 array or tensor per item, or
    a list of dicts with a list under a key, e.g.
    ``labels_of("Data_Entry_2017.csv", "Finding Labels", multilabel=True)``. Every source below
    works in both modes.

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
      (``labels_of(dataset, "diagnoses")``). A CSV file reads only that column; an empty cell is
      a missing label (in multi-label mode, so is a DataFrame's ``""``), any other text a label
      as written; a table without rows is refused. A ``|``-separated multi-label column
      (``"Effusion|Mass"``) is rejected in single-label mode: the sampler needs one class per
      item, so pass a primary finding, or read every finding with ``multilabel=True``.
    - a Hugging Face ``datasets.Dataset``: its ``label`` or ``labels`` column with no ``labels``,
      or the column ``labels="name"`` names, read from the Arrow table (no row is decoded, so an
      image column is never touched); ``select``/``shuffle``/``filter`` views are followed.
    - with no ``labels``: the dataset's ``targets``, ``labels`` or ``y`` attribute
      (torchvision, MedMNIST, scikit-learn style, MONAI's ``ImageDataset``), else its
      ``samples``/``imgs`` list of ``(path, class)`` pairs (ImageFolder), else the ``"label"``
      key of its ``data`` list of dicts (MONAI's ``Dataset``, ``CacheDataset``,
      ``PersistentDataset``, ``SmartCacheDataset``: no item is read, no transform run), else,
      for a :class:`~torch.utils.data.Subset`, the labels of its dataset at its indices (nested
      subsets too), and for a :class:`~torch.utils.data.ConcatDataset`, its datasets' labels one
      after the other.

    Args:
        dataset: a map-style dataset, a pandas DataFrame, a CSV path or a list of dicts.
        labels: see above; ``None`` looks for labels on ``dataset``.
        multilabel: read each item's set of labels (see above) instead of one class.

    Returns:
        The labels in index order, shape ``(len(dataset),)``, as stored (ints, strings, ...);
        with ``multilabel=True``, a :class:`~balancer.MultiLabels` of ``len(dataset)`` rows.

    Raises:
        ValueError: no source applies (the message lists them), the number of labels differs
            from the dataset's length, a column or key is missing, or labels are multi-label
            in single-label mode.

    Example:
        >>> from torch.utils.data import Subset
        >>> from balancer import MedMNIST
        >>> train = MedMNIST("pneumoniamnist", "train")
        >>> labels_of(train).shape  # read from train.labels; no image is loaded
        (4708,)
        >>> labels_of(Subset(train, [0, 1, 2])).tolist()
        [1, 1, 1]
        >>> labels_of([{"image": "1.nii", "label": "Mass|Effusion"}, {"image": "2.nii",
        ...            "label": "No Finding"}], "label", multilabel=True)
        MultiLabels(samples=2, labels=2, positives=2, no_finding=1)
    """
    if check_bool("multilabel", multilabel):
        return multilabels_of(dataset, labels)
    return find_labels(dataset, labels, SingleLabelReader())


def multilabels_of(dataset: Any, labels: Any = None, *, no_finding: str = NO_FINDING,
                   separator: str = "|", classes: bool = False) -> MultiLabels:
    """Multi-label targets of ``dataset`` without loading its items: :func:`labels_of` with
    ``multilabel=True`` and :func:`~balancer.labels.encode_multilabels`'s settings.

    With ``classes=True``, one integer class per item is read as a one-label set (for
    repeat-factor sampling of single-label data). Labels without positives and a single label
    are accepted: the samplers check what they need.
    """
    reader = MultiLabelReader(no_finding=no_finding, separator=separator,
                              classes=check_bool("classes", classes))
    return find_labels(dataset, labels, reader)


def find_labels(dataset: Any, labels: Any, reader: Reader[T]) -> T:
    """The labels of ``dataset`` that ``labels`` points at, as ``reader`` makes them."""
    length = _length(dataset)
    if labels is None:
        return _from_dataset(dataset, length, reader)
    if isinstance(labels, str) and labels == "scan":
        return _scan(dataset, length, reader)
    if _tables.is_table_source(dataset) and _tables.is_field_name(labels):
        return reader.column(_tables.read_column(dataset, labels))
    if isinstance(labels, str):
        return _from_named_field(dataset, labels, length, reader)
    if isinstance(labels, tuple) and len(labels) == 2 and _tables.is_table_source(labels[0]) \
            and _tables.is_field_name(labels[1]):
        return _checked(reader.column(_tables.read_column(*labels)), length, "labels")
    if callable(labels):
        return _from_function(labels, length, reader)
    return reader.given(labels, length)


# --------------------------------------------------------------------- sources
def _from_dataset(dataset: Any, length: int | None, reader: Reader[T]) -> T:
    if _tables.is_table_source(dataset):
        raise ValueError(
            f"dataset is a {_tables.table_kind(dataset)}; name the column or key that holds the "
            f"labels, e.g. labels_of(dataset, 'label'{', multilabel=True' * reader.multilabel})"
            f"{_tables.fields_hint(dataset)}"
        )
    if _is_hf_dataset(dataset):
        for name in _HF_COLUMNS:
            if name in dataset.column_names:
                return reader.column(_hf_column(dataset, name))
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
            return reader.sequence(value, f"dataset.{name}", length)
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
            return reader.items([pair[1] for pair in value], f"dataset.{name}[:][1]")
        except (TypeError, IndexError, KeyError, ValueError) as error:
            skipped.append(f"`{name}` (not (path, class) pairs: {error})")
    records = _attribute(dataset, _DATA_LIST)
    if _tables.is_records(records) and _DATA_KEY in records[0]:
        try:
            found = reader.column(_tables.read_column(records, _DATA_KEY))
            return _windowed(dataset, found, len(records), length, reader, "dataset.data")
        except (TypeError, ValueError) as error:
            skipped.append(f"`data` ({error})")
    if isinstance(dataset, Subset):
        return reader.take(_from_dataset(dataset.dataset, _length(dataset.dataset), reader),
                           np.asarray(dataset.indices, dtype=np.int64))
    if isinstance(dataset, ConcatDataset):
        return reader.join([_from_dataset(part, _length(part), reader)
                            for part in dataset.datasets])
    tried = f" Looked at but could not use: {'; '.join(skipped)}." if skipped else ""
    if isinstance(dataset, TensorDataset) and len(dataset.tensors) > 1:
        # Which tensor holds the labels is a convention, not something to guess silently.
        tried += (f" For a TensorDataset of {len(dataset.tensors)} tensors whose labels are "
                  f"the last one, pass labels=dataset.tensors[-1].")
    raise ValueError(
        f"found no {reader.noun} on dataset of type {type(dataset).__name__} without reading "
        f"its items.{tried} Give them in one of these ways (balance(loader, labels=...) takes "
        f"the same):\n{_OPTIONS}"
    )


def _from_named_field(dataset: Any, field: str, length: int | None, reader: Reader[T]) -> T:
    """``labels="dx"`` next to a dataset: find the DataFrame or list of dicts holding ``dx``."""
    if _is_hf_dataset(dataset):
        if field not in dataset.column_names:
            raise ValueError(f"labels={field!r} is not a column of the datasets.Dataset; pick one "
                             f"of {list(dataset.column_names)[:20]}")
        return reader.column(_hf_column(dataset, field))
    if isinstance(dataset, Subset):
        inner = _from_named_field(dataset.dataset, field, _length(dataset.dataset), reader)
        return reader.take(inner, np.asarray(dataset.indices, dtype=np.int64))
    if isinstance(dataset, ConcatDataset):
        return reader.join([_from_named_field(part, field, _length(part), reader)
                            for part in dataset.datasets])
    holders = []
    for name, value in _public_attributes(dataset):
        if (isinstance(value, pd.DataFrame) and field in value.columns) or (
                _tables.is_records(value) and field in value[0]):
            holders.append((name, value))
    if len(holders) > 1:
        # MONAI's caching datasets hold their data list and, privately, the cached items.
        public = [(name, value) for name, value in holders if not name.startswith("_")]
        holders = public if len(public) == 1 else holders
    attribute = _attribute(dataset, field)
    if not holders and attribute is not None and not _tables.is_table_source(attribute):
        # labels="labels": the dataset's own attribute holding one label per item.
        try:
            return reader.sequence(attribute, f"dataset.{field}", length)
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
    name, table = holders[0]
    read = reader.column(_tables.read_column(table, field))
    return _windowed(dataset, read, len(table), length, reader, f"dataset.{name}")


def _windowed(dataset: Any, found: T, count: int, length: int | None, reader: Reader[T],
              name: str) -> T:
    """``found``, ``count`` labels read from a table the dataset holds, for its ``length`` items.

    MONAI's SmartCacheDataset serves ``cache_num`` items of its (shuffled) data list at a time:
    item ``i`` is ``data[(_start_pos + i) % len(data)]`` until the window moves on.
    """
    start = getattr(dataset, "_start_pos", None)
    if length is not None and count > length and getattr(dataset, "cache_num", None) == length \
            and isinstance(start, int):
        return reader.take(found, (start + np.arange(length, dtype=np.int64)) % count)
    return _checked(found, length, name)


def _from_function(label_fn: Callable[[int], Any], length: int | None, reader: Reader[T]) -> T:
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
    return reader.items(values, "label_fn(index)")


def _scan(dataset: Any, length: int | None, reader: Reader[T]) -> T:
    if length is None or not hasattr(dataset, "__getitem__"):
        raise TypeError(
            f"labels='scan' reads dataset[i] for i in range(len(dataset)), but dataset of type "
            f"{type(dataset).__name__} has no len() or indexing; pass the labels as a sequence"
        )
    start = time.perf_counter()
    values = [
        reader.item(_label_of_item(dataset[index], index))
        for index in tqdm(range(length), desc="labels_of: scanning items", unit="item",
                          file=sys.stderr, mininterval=0.5)
    ]
    elapsed = time.perf_counter() - start
    tqdm.write(f"labels_of: read {length} items in {elapsed:.2f} s to find their labels; pass "
               f"labels= as a sequence, attribute, column or function to skip this",
               file=sys.stderr)
    return reader.items(values, "the scanned labels")


def _label_of_item(item: Any, index: int) -> Any:
    if isinstance(item, Mapping):
        for key in _SCAN_KEYS:
            if key in item:
                return item[key]
        raise ValueError(
            f"labels='scan': item {index} is a dict without any of the keys {_SCAN_KEYS} (it has "
            f"{sorted(map(str, item))[:8]}); pass labels=(data_list, 'key') or a label_fn"
        )
    if isinstance(item, Sequence) and not isinstance(item, str) and len(item) >= 2:
        return item[1]
    raise ValueError(
        f"labels='scan': item {index} is a {type(item).__name__}, not an (input, label, ...) "
        f"tuple or a dict with a 'label' key; pass labels=label_fn returning item {index}'s label"
    )


def _is_hf_dataset(value: Any) -> bool:
    # A datasets.Dataset exists only once `datasets` is imported: look it up, never import it.
    module = sys.modules.get("datasets")
    return module is not None and isinstance(value, getattr(module, "Dataset", ()))


def _hf_column(dataset: Any, name: str) -> Column:
    """Column ``name`` of a ``datasets.Dataset`` in index order, straight from its Arrow table."""
    values = dataset.data.column(name).to_numpy()  # the whole table, before any index mapping
    indices = getattr(dataset, "_indices", None)  # select/shuffle/filter keep a mapping table
    if indices is not None:
        values = values[indices.column(0).to_numpy()]
    if values.dtype == object and len(values) and isinstance(values[0], np.ndarray):
        values = [row.tolist() for row in values]  # a sequence per row: lists of label names
    return Column(values, name, "the datasets.Dataset")


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


def _checked(found: Any, length: int | None, name: str) -> Any:
    if length is not None and len(found) != length:
        raise ValueError(f"{name} gives {len(found)} labels but the dataset has {length} items; "
                         f"pass a table with one row per item, in index order")
    return found
