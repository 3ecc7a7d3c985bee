"""Tables that hold labels: a pandas DataFrame, a CSV/TSV file, a list of dicts.

One reader for all three, with one rule for an empty CSV cell: it is a missing entry (``NaN``,
as in the DataFrame ``pd.read_csv`` gives for the same file), which the single-label and the
multi-label encodings both refuse, naming its row. Any other text, ``"NA"`` included, is a
label as written: an empty cell is the only way a CSV says "nothing here". In multi-label mode
a DataFrame's or list of dicts' cell without findings (``""``, ``" "``) is refused the same way:
"no finding" is said with ``"No Finding"`` (or ``[]``). A table without rows is refused here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

__all__ = ["Column", "fields_hint", "is_field_name", "is_records", "is_table_source",
           "read_column", "table_kind"]

_TABLE_SUFFIXES = (".csv", ".tsv", ".csv.gz", ".tsv.gz", ".txt")


@dataclass(frozen=True)
class Column:
    """Values of one column (or key) and where they came from, for the encodings' messages.

    Attributes:
        values: a pandas Series (DataFrame, CSV) or a list (list of dicts), one per row.
        field: the column name or key.
        where: the table, in words (``"the DataFrame"``, ``"'manifest.csv'"``, ...).
        kind: ``"column"`` or ``"key"``.
        text: whether the values are a CSV file's cells as written (strings, NaN if empty).
    """

    values: Any
    field: Any
    where: str
    kind: str = "column"
    text: bool = False


def read_column(source: Any, field: Any) -> Column:
    """Column ``field`` of a DataFrame or CSV/TSV file, or key ``field`` of a list of dicts."""
    if is_records(source):
        try:
            values = [record[field] for record in source]
        except KeyError:
            position = next(i for i, r in enumerate(source) if field not in r)
            raise ValueError(
                f"key {field!r} is missing from item {position} of the list of dicts (it has keys "
                f"{sorted(map(str, source[position]))[:8]}); give every item that key"
            ) from None
        return Column(values, field, "the list of dicts", kind="key")
    if isinstance(source, pd.DataFrame):
        if field not in source.columns:
            raise ValueError(f"column {field!r} is not in the DataFrame; pick one of "
                             f"{list(source.columns)[:20]}")
        if len(source) == 0:
            raise ValueError(f"the DataFrame has no rows (only the columns "
                             f"{list(source.columns)[:20]}); pass a table with one row per item "
                             f"of the dataset")
        return Column(source[field], field, "the DataFrame")
    path = os.fspath(source)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"CSV file {path!r} does not exist; pass the path of the "
                                f"manifest that holds the labels")
    separator = "\t" if ".tsv" in os.path.basename(path) else ","
    header = list(pd.read_csv(path, nrows=0, sep=separator).columns)
    if field not in header:
        raise ValueError(f"column {field!r} is not in {path!r}; pick one of {header[:20]}")
    column = pd.read_csv(path, usecols=[field], sep=separator, dtype={field: str},
                         keep_default_na=False, na_values=[""]).iloc[:, 0]
    if len(column) == 0:
        raise ValueError(f"CSV file {path!r} has no rows, only a header ({header[:20]}); pass a "
                         f"manifest with one row per item of the dataset")
    return Column(column, field, repr(path), text=True)


def is_records(value: Any) -> bool:
    """Whether ``value`` is a list of dicts (a MONAI-style data list)."""
    return isinstance(value, (list, tuple)) and len(value) > 0 and isinstance(value[0], Mapping)


def is_table_source(value: Any) -> bool:
    """Whether ``value`` is a DataFrame, a list of dicts or the path of a CSV/TSV file."""
    if isinstance(value, pd.DataFrame) or is_records(value) or isinstance(value, os.PathLike):
        return True
    return isinstance(value, str) and value.lower().endswith(_TABLE_SUFFIXES)


def is_field_name(value: Any) -> bool:
    """Whether ``value`` can name a column or key."""
    return isinstance(value, (str, int)) and not isinstance(value, bool)


def table_kind(source: Any) -> str:
    if isinstance(source, pd.DataFrame):
        return "DataFrame"
    return "list of dicts" if is_records(source) else "CSV file"


def fields_hint(source: Any) -> str:
    """What the columns or keys of ``source`` are, for a message that asks to name one."""
    if isinstance(source, pd.DataFrame):
        return f"; its columns are {list(source.columns)[:20]}"
    if is_records(source):
        return f"; its first item has keys {sorted(map(str, source[0]))[:20]}"
    return ""
