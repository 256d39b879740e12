"""Which ``functools.partialmethod`` made a function.

A ``partialmethod`` read through its class gives a new function whose ``__globals__`` are
``functools``' and whose own annotations are none; the function it wraps, which a tool's
string annotations are written against, is reachable only through the ``partialmethod``, kept
on that function under a private name: ``__partialmethod__`` from Python 3.13,
``_partialmethod`` before. Where neither is set (another Python), no partialmethod is found:
such an ``_execute`` is described by its signature alone, and its string annotations that name
local classes stay unresolved (they then take any value).
"""

from __future__ import annotations

import functools
from typing import Any

__all__ = ["partialmethod_of"]

#: Where ``functools`` keeps the partialmethod on the function it makes (newest first).
_ATTRIBUTES = ("__partialmethod__", "_partialmethod")


def partialmethod_of(func: Any) -> functools.partialmethod[Any] | None:
    """The ``functools.partialmethod`` that made ``func`` (read through its class), or
    ``None`` for any other ``func``."""
    for name in _ATTRIBUTES:
        made_by = getattr(func, name, None)
        if isinstance(made_by, functools.partialmethod):
            return made_by
    return None
