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

import numbers
from collections.abc import Mapping, Sequence
from contextvars import Context, ContextVar, Token
from typing import Any, Protocol

from laios._text import SHOWN_NAME_CHARS, shorten, shown_name
from laios.execution._records import checkpoint_data, clamp_percent

__all__ = [
    "TaskCancelledError",
    "TaskContext",
    "TaskEvents",
    "current_task",
    "require_current_task",
    "reset_current_task",
    "set_current_task",
]


class TaskCancelledError(Exception):
    """Raised inside a tool by :meth:`TaskContext.raise_if_cancelled` after ``cancel_task``.

    The executor turns it into a ``cancelled`` outcome (never a tool error, never retried).
    """

    _laios_propagate = True


class TaskEvents(Protocol):
    """What a :class:`TaskContext` reports to: the run's events on the caller's side."""

    @property
    def cancel_requested(self) -> bool:
        """Whether the task should stop."""
        ...

    def progress(self, percent: float, message: str | None, details: dict[str, Any]) -> None:
        """A progress report (``percent`` already clamped to 0–100)."""

    def checkpoint(self, name: str, data: Mapping[str, Any] | None) -> None:
        """A named milestone, with ``data`` as the tool passed it (a mapping, not copied)."""


class TaskContext:
    """The running task, as its tool sees it: the handle :func:`current_task` returns.

    Created by the executor's runners for each run; tools use it, they do not build one.

    Attributes:
        task_id: The running task's id.
        tool_name: The tool being run.
    """

    __slots__ = ("_events", "_parameters", "_tool", "task_id", "tool_name")

    def __init__(
        self,
        task_id: str,
        tool_name: str,
        events: TaskEvents,
        *,
        parameters: Any = None,
        tool: Any = None,
    ) -> None:
        """A handle on one run, reporting to ``events``; ``parameters`` and ``tool``, those of
        the call, say what its secrets are once its run has let them go (see
        :func:`task_secrets`)."""
        self.task_id = task_id
        self.tool_name = tool_name
        self._events = events
        self._parameters = parameters
        self._tool = tool

    @property
    def cancelled(self) -> bool:
        """Whether the task should stop: ``cancel_task`` was called for it, it timed out, the
        coroutine awaiting it (``execute_async``/``execute_parallel``) was cancelled, or it has
        finished (as work the tool left behind, such as an asyncio task it created, sees it)."""
        return self._events.cancel_requested

    def raise_if_cancelled(self) -> None:
        """Raise :class:`TaskCancelledError` when :attr:`cancelled` is true."""
        if self._events.cancel_requested:
            # (a huge id is cut, as error texts and log records quote ids)
            raise TaskCancelledError(f"task {shorten(self.task_id, 128)!r} was cancelled")

    def checkpoint(self, name: str, data: Mapping[str, Any] | None = None) -> None:
        """Record a named milestone (a checkpoint in the metrics and a child span); ignored
        once the task has finished.

        ``data`` may be any mapping (a dict, a ``TypedDict``, a read-only view). Only the part
        that is kept is read (a summary of at most 100 items per container, 4 KiB in all), and
        a mapping that cannot be read is kept as its description: the tool goes on.

        Raises:
            TypeError: When ``data`` is neither ``None`` nor a mapping.
        """
        if data is not None and type(data) is not dict:
            data = checkpoint_data(data)  # (TypeError when not a mapping)
        self._events.checkpoint(name, data)

    def progress(
        self, /, percent: float | numbers.Real, message: str | None = None, **details: Any
    ) -> None:
        """Report progress: ``percent`` (0–100; out-of-range values are clamped, NaN is 0).

        The update reaches the ``on_progress`` callback (event ``"progress"``), the global
        ``ExecutionMonitor`` and ``/status``; ignored once the task has finished.

        Raises:
            TypeError: When ``percent`` is not a number.
            ValueError: When it is a number of a class of the caller's own whose ``float()``
                raises.
        """
        self._events.progress(clamp_percent(percent), message, details)

    def __repr__(self) -> str:
        # (a huge id or name is cut, as every message shows them: a tool may log its handle)
        task_id, tool_name = shorten(self.task_id, SHOWN_NAME_CHARS), shown_name(self.tool_name)
        return f"TaskContext(task_id={task_id!r}, tool_name={tool_name!r})"


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


def set_current_task(task: TaskContext) -> Token[TaskContext | None]:
    """Make ``task`` what :func:`current_task` returns in this context (for runners).

    Returns:
        The token to hand to :func:`reset_current_task` when the tool returns.
    """
    return _current.set(task)


def reset_current_task(token: Token[TaskContext | None]) -> None:
    """Undo :func:`set_current_task` (for runners, in a ``finally`` block).

    Nothing to undo when called outside the context it was set in: a coroutine tool closed
    by the collector after its event loop was closed runs its ``finally`` blocks there.
    """
    try:  # (not contextlib.suppress: this is on every async tool's path)  # noqa: SIM105
        _current.reset(token)
    except ValueError:
        pass


def task_in(context: Context) -> TaskContext | None:
    """The task running in ``context`` (a copy of a tool's context, as a task the tool
    started keeps), if any."""
    return context.get(_current)


def reports_to(task: TaskContext | None, events: object) -> bool:
    """Whether ``task`` is a handle reporting to ``events`` (for runners: a report made where
    :func:`current_task` returns another handle, or none, comes from a thread the tool started
    itself, with a context of its own)."""
    return task is not None and task._events is events  # noqa: SLF001  (its own)


def task_secrets(task: TaskContext | None) -> Sequence[str]:
    """The secret values of ``task``'s parameters, as the executor's record of its run knows
    them (the tool's typed secret fields, and values it took out of its parameters, too), or,
    once the run has let them go (it finished), as read from the call's parameters the handle
    keeps (a task the tool left behind keeps the handle); ``[]`` when none are known. Never
    raises."""
    if task is None:
        return []
    try:
        read = getattr(task._events, "parameter_secrets", None)  # noqa: SLF001  (its own)
        found: Sequence[str] = read() if callable(read) else ()
        if found:
            return found
        parameters = task._parameters  # noqa: SLF001
        if parameters:
            from laios.execution.redaction import secret_fields_of_tool, secret_values

            return secret_values(parameters, secret_fields_of_tool(task._tool))  # noqa: SLF001
    except Exception:  # (events whose secrets cannot be read: none known)
        pass
    return []
