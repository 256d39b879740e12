"""Reading the declared fields of a dataclass or ``TypedDict`` from its annotations.

One definition for the two readers of a tool's input model: which fields are secret
(:mod:`laios.execution._secret_fields`) and which names a validation error may quote
(:mod:`laios.tools._input_errors`). Kept apart from both packages, as ``laios.tools`` cannot
import ``laios.execution`` (whose executor imports ``laios.tools``).
"""

from __future__ import annotations

import typing
from typing import Any

__all__ = ["is_typeddict", "resolved_hints"]


def is_typeddict(cls: type) -> bool:
    """Whether ``cls`` is a ``TypedDict`` (of ``typing`` or of ``typing_extensions``, the one
    pydantic wants before Python 3.12)."""
    return issubclass(cls, dict) and hasattr(cls, "__required_keys__")


def resolved_hints(cls: type) -> dict[str, Any]:
    """The resolved annotations of ``cls`` (also those written as text), empty when they
    cannot be resolved."""
    try:
        return typing.get_type_hints(cls)
    except Exception:
        return {}
