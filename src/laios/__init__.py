"""laios: run tasks by invoking tools, and see every run.

The common types are re-exported here; the executor lives in :mod:`laios.execution.executor`.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from laios.core.types import Context, Task, TaskResult, TaskStatus

try:
    __version__ = version("laios")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["Context", "Task", "TaskResult", "TaskStatus", "__version__"]
