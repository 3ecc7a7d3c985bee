"""The class of one item as it is read from a stream: a key of the item or a function of it.

A stream has no column to read ahead of time, so its labels are taken item by item, and each
failure names the item's position in the stream and what the item holds.
"""

from __future__ import annotations

import numbers
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

__all__ = ["DEFAULT_LABEL_KEYS", "ItemLabels"]

#: Keys tried, in order, on a dict item when ``labels=None``.
DEFAULT_LABEL_KEYS = ("label", "labels", "target", "targets", "cls", "class", "y")

_MULTILABEL = ("multi-label streams are not supported: each balanced batch holds a fixed number "
               "of items per class, which needs one class per item (the per-class buffers have no "
               "cheap counterpart for label sets); pass one class per item (e.g. the primary "
               "finding), or materialise the data into a map-style dataset and use "
               "balance(..., sampler='label-balanced')")


class ItemLabels:
    """Read the class code (``0 .. C-1``) of stream items.

    Args:
        labels: ``None`` (a dict item's first key among :data:`DEFAULT_LABEL_KEYS`, or the second
            element of a pair), a key or index of the item (``"cls"``, ``1``), or a function of
            the item returning its label.
        classes: the number of classes ``C`` (labels are the integers ``0 .. C-1``) or the list
            of label values (a label's code is its position in the list).
    """

    def __init__(self, labels: Any, classes: Any) -> None:
        if labels is not None and not callable(labels) and not isinstance(labels, (str, int)):
            raise TypeError(
                f"labels should be a key of the item (str or int), a function of the item, or "
                f"None, but got labels={labels!r} of type {type(labels).__name__}; a stream's "
                f"labels are read from each item as it arrives"
            )
        if isinstance(labels, bool):
            raise TypeError(f"labels should be a key of the item or a function, but got "
                            f"labels={labels!r}")
        self.labels = labels
        if classes is None:
            raise TypeError(
                "classes is required for a stream: its labels cannot be scanned ahead of time; "
                "pass classes=C (labels are 0..C-1) or classes=[the label values]"
            )
        if isinstance(classes, numbers.Integral) and not isinstance(classes, bool):
            classes = int(classes)
            if classes < 2:
                raise ValueError(f"classes should be at least 2, but got classes={classes}; "
                                 f"balancing needs two or more classes")
            self.names: list[Any] = list(range(int(classes)))
            self._codes: dict[Any, int] | None = None
        elif isinstance(classes, Sequence) and not isinstance(classes, (str, bytes)):
            names = [_plain(value) for value in classes]
            if len(names) < 2:
                raise ValueError(f"classes should list at least 2 label values, but got "
                                 f"classes={list(classes)!r}")
            if not all(isinstance(name, Hashable) for name in names):
                raise TypeError(f"classes should list hashable label values (ints, strings), but "
                                f"got classes={list(classes)!r}")
            if len(set(names)) != len(names):
                raise ValueError(f"classes should list each label value once, but got "
                                 f"classes={list(classes)!r}")
            self.names = names
            self._codes = {name: code for code, name in enumerate(names)}
        else:
            raise TypeError(
                f"classes should be the number of classes (int) or the list of label values, "
                f"but got classes={classes!r} of type {type(classes).__name__}"
            )

    @property
    def num_classes(self) -> int:
        return len(self.names)

    def code(self, item: Any, position: int, where: str) -> int:
        """The class code of ``item``, the ``position``-th (0-based) item of ``where``."""
        label = self._label(item, position, where)
        # Fast path for the common case (one call per item of a stream): a plain int code.
        if type(label) is int and self._codes is None and 0 <= label < len(self.names):
            return label
        label = _plain(label)
        if isinstance(label, (list, tuple, set, frozenset)) or _size(label) > 1:
            raise ValueError(f"item {position} of {where} has several labels ({label!r}): "
                             f"{_MULTILABEL}")
        if self._codes is None:
            if isinstance(label, numbers.Integral) and not isinstance(label, bool) \
                    and 0 <= int(label) < len(self.names):
                return int(label)
            raise ValueError(
                f"item {position} of {where} has label {label!r}, which is not one of the "
                f"classes 0..{len(self.names) - 1} (classes={len(self.names)}); pass "
                f"classes=[the label values] if the labels are not 0..C-1"
            )
        try:
            return self._codes[label]
        except (KeyError, TypeError):
            raise ValueError(
                f"item {position} of {where} has label {label!r}, which is not in "
                f"classes={self.names!r}; add it to classes, or filter the stream"
            ) from None

    def _label(self, item: Any, position: int, where: str) -> Any:
        labels = self.labels
        if callable(labels):
            try:
                return labels(item)
            except Exception as error:
                # The same exception type, so that callers catching it still do, now saying
                # which item raised; a type that cannot be rebuilt from a message is wrapped.
                message = (f"labels={getattr(labels, '__name__', labels)!r} raised "
                           f"{type(error).__name__} on item {position} of {where} "
                           f"({_describe(item)}): {error}")
                try:
                    rebuilt = type(error)(message)
                except Exception:
                    rebuilt = ValueError(message)
                raise rebuilt from error
        if labels is None:
            if isinstance(item, Mapping):
                for key in DEFAULT_LABEL_KEYS:
                    if key in item:
                        return item[key]
            elif isinstance(item, (tuple, list)) and len(item) == 2:
                return item[1]
            raise ValueError(
                f"item {position} of {where} has no label where labels=None looks (a dict key "
                f"among {list(DEFAULT_LABEL_KEYS)}, or the second of a pair): it is "
                f"{_describe(item)}; pass labels='<key>' or labels=<function of the item>"
            )
        try:
            return item[labels]
        except (KeyError, IndexError, TypeError):
            raise ValueError(
                f"item {position} of {where} has no label at labels={labels!r}: it is "
                f"{_describe(item)}; pass the key that holds the class, or a function"
            ) from None


def _plain(value: Any) -> Any:
    """A one-element tensor or array as its Python value; anything else unchanged."""
    if hasattr(value, "ndim") and hasattr(value, "item") and _size(value) == 1:
        return value.item()
    return value


def _size(value: Any) -> int:
    if hasattr(value, "numel"):
        return int(value.numel())
    return int(getattr(value, "size", 1)) if hasattr(value, "ndim") else 1


def _describe(item: Any) -> str:
    if isinstance(item, Mapping):
        return f"a {type(item).__name__} with keys {list(item)[:12]}"
    if isinstance(item, (tuple, list)):
        return f"a {type(item).__name__} of {len(item)} elements"
    return f"a {type(item).__name__}"
