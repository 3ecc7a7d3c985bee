"""Generic argument checks: a wrong type or value is refused with a message naming both.

Labels have their own home, :mod:`balancer.labels`."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

__all__ = ["check_bool", "check_int"]


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

