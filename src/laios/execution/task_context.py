"""The running task, as seen from inside a tool.

While an executor runs a tool, :func:`current_task` returns a :class:`TaskContext` for the
task being executed (in the tool's thread, and in any code the tool calls). Through it a tool
adds checkpoints, reports progress and notices cancellation::

    from laios.execution.task_context import current_task

    class Import(BaseTool):
        name = "import_rows"
        description = "Imports rows in chunks."

        def _execute(self, **kwargs):
            task = current_task()
            for i, chunk in enumerate(chunks):
                task.raise_if_cancelled()          # stop early when cancel_task() was called
                load(chunk)
                task.progress(100 * (i + 1) / len(chunks), f"chunk {i + 1}")
            task.checkpoint("loaded", {"chunks": len(chunks)})
            return "done"

Outside a task, ``current_task()`` returns ``None``; :func:`require_current_task` raises.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

__all__ = [
    "TaskCancelledError",
    "TaskContext",
    "current_task",
    "require_current_task",
]


class TaskCancelledError(Exception):
    """Raised inside a tool by :meth:`TaskContext.raise_if_cancelled` after ``cancel_task``.

    The executor turns it into a ``cancelled`` outcome (never a tool error, never retried).
    """

    _laios_propagate = True


class TaskContext:
    """Access to the task a tool is running for. Created by the executor; do not build one."""

    __slots__ = ()

    #: The running task's id.
    task_id: str

    @property
    def tool_name(self) -> str:
        """The tool being run."""
        raise NotImplementedError

    @property
    def cancelled(self) -> bool:
        """Whether the task should stop: ``cancel_task`` was called for it, it timed out, or
        the coroutine awaiting it (``execute_async``/``execute_parallel``) was cancelled."""
        raise NotImplementedError

    def raise_if_cancelled(self) -> None:
        """Raise :class:`TaskCancelledError` when :attr:`cancelled` is true."""
        if self.cancelled:
            raise TaskCancelledError(f"task {self.task_id!r} was cancelled")

    def checkpoint(self, name: str, data: dict[str, Any] | None = None) -> None:
        """Record a named milestone (a checkpoint in the metrics and a child span)."""
        raise NotImplementedError

    def progress(self, percent: float, message: str | None = None, **details: Any) -> None:
        """Report progress: ``percent`` (0–100; out-of-range values are clamped, NaN is 0).

        The update reaches the ``on_progress`` callback (event ``"progress"``), the global
        ``ExecutionMonitor`` and ``/status``.

        Raises:
            TypeError: When ``percent`` is not a number.
        """
        raise NotImplementedError


_current: ContextVar[TaskContext | None] = ContextVar("laios_current_task", default=None)


def current_task() -> TaskContext | None:
    """The task whose tool is running in this context, or ``None`` outside a task."""
    return _current.get()


def require_current_task() -> TaskContext:
    """Like :func:`current_task`, but raise ``RuntimeError`` outside a task."""
    task = _current.get()
    if task is None:
        raise RuntimeError(
            "no task is running here: current_task() works only inside a tool run by an Executor"
        )
    return task
