"""What is not a number although Python's number classes say it is (for the options of the
executor, its runners and the mixin alike)."""

from __future__ import annotations

import sys

from laios._compat.pydantic import is_instance

__all__ = ["is_numpy_timedelta"]


def is_numpy_timedelta(value: object) -> bool:
    """Whether ``value`` is a NumPy ``timedelta64``: a length of time in some unit, which NumPy
    registers as an integer (``numbers.Integral``), so that a check for a number takes
    ``numpy.timedelta64(5)`` for 5. It is no number, as a ``datetime.timedelta`` is none.
    ``False`` while NumPy is not imported (no such value exists then). Never raises."""
    if type(value) is int or type(value) is float:  # (the numbers every progress report gives)
        return False
    numpy = sys.modules.get("numpy")
    kind = getattr(numpy, "timedelta64", None) if numpy is not None else None
    return isinstance(kind, type) and is_instance(value, kind)
