"""Task execution: the executor, its metric store and the views that read it."""

from __future__ import annotations

from laios.execution.executor import (
    ExecutionMetrics,
    ExecutionMode,
    Executor,
    ResourceLimits,
    TaskMonitor,
)
from laios.execution.retry import InvalidCallbackError
from laios.execution.store import MetricStore, get_default_store
from laios.execution.task_context import TaskCancelledError, TaskContext, current_task

__all__ = [
    "ExecutionMetrics",
    "ExecutionMode",
    "Executor",
    "InvalidCallbackError",
    "MetricStore",
    "ResourceLimits",
    "TaskCancelledError",
    "TaskContext",
    "TaskMonitor",
    "current_task",
    "get_default_store",
]
