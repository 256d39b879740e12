"""Checks of constructor arguments shared by the executor and its runners."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["as_float", "number_repr", "positive_int"]


def positive_int(name: str, value: Any) -> int:
    """``value`` when it is a whole number of 1 or more (not a ``bool``).

    Raises:
        ValueError: Naming ``name`` and the value given, otherwise.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive whole number, got {value!r}")
    return value


def as_float(value: int | float) -> float:
    """``float(value)``, with an int too large for a float as infinity of its sign (where
    ``float()`` raises ``OverflowError``)."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def number_repr(value: object) -> str:
    """``repr(value)`` for an error message: an int too large for a float is described by its
    size instead of its hundreds of digits (or a ``ValueError`` past 4,300 of them)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 1024:
        sign = "-" if value < 0 else ""
        return f"{sign}<int of {value.bit_length()} bits>"
    return repr(value)
