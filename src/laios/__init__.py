"""laios: run tasks by invoking tools, and see every run.

The common types are re-exported here; the executor lives in :mod:`laios.execution.executor`.
They are imported on first use (``from laios import Task``), so that ``import laios`` alone (the
``laios`` command starting, ``laios.__version__``) does not load pydantic and the models.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from laios.core.types import Context, Task, TaskResult, TaskStatus

try:
    __version__ = version("laios")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["Context", "Task", "TaskResult", "TaskStatus", "__version__"]

#: The names re-exported from :mod:`laios.core.types`.
_TYPES = frozenset({"Context", "Task", "TaskResult", "TaskStatus"})


def __getattr__(name: str) -> Any:
    """The common types, imported on first use (and kept in the module from then on)."""
    if name in _TYPES:
        from laios.core import types

        value = getattr(types, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'laios' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_TYPES})
