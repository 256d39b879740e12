"""Checks of constructor arguments shared by the executor and its runners."""

from __future__ import annotations

from typing import Any

__all__ = ["positive_int"]


def positive_int(name: str, value: Any) -> int:
    """``value`` when it is a whole number of 1 or more (not a ``bool``).

    Raises:
        ValueError: Naming ``name`` and the value given, otherwise.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive whole number, got {value!r}")
    return value
