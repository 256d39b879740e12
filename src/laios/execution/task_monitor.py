"""``TaskMonitor``: the live view of one executor's (or a caller's own) task records."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, cast

from laios.core.types import Task, TaskStatus
from laios.execution._checks import (
    as_text,
    check_task_fields,
    no_task_as_id,
    number_repr,
    require_task,
    switch,
)
from laios.execution._records import checkpoint_data
from laios.execution.metrics import ExecutionMetrics
from laios.execution.store import MetricStore, RecordScope, TaskRecord, store_or_private

__all__ = ["TaskMonitor"]

_log = logging.getLogger("laios.execution.monitor")

_OUTCOME_OF_STATUS = {
    TaskStatus.FAILED: "error",
    TaskStatus.CANCELLED: "cancelled",
}


class TaskMonitor:
    """Tracks running tasks and the metrics of finished ones.

    An ``Executor`` uses one internally, reading and writing its records in the executor's
    store. ``TaskMonitor()`` on its own works on a private store, for tests or custom
    orchestration. Every method is thread-safe (the store's lock guards every record). A
    method that takes a ``task_id`` reads it as ``ExecutionMonitor`` does: an id that is not a
    string as ``str(task_id)`` (``get_metrics(12)`` finds task ``"12"``; one whose ``str()``
    raises is refused with ``TypeError``), and raises ``TypeError`` when given a ``Task``:
    pass ``task.id``. An id of a ``str`` subclass of the caller's own is looked up by its text
    (its own hash and ``==`` are never called).

    Args:
        store: The store to keep records in; a new private ``MetricStore`` when ``None``.
        capacity: How many finished records to retain (the newest; older ones roll off).
            Defaults to the store's ``record_capacity`` (10,000).

    A store tracks at most its ``record_capacity`` runs started with
    :meth:`start_monitoring` and not stopped (across its monitors): one more evicts the oldest,
    which then counts under no outcome (see ``MetricStore.monitor_started``). Tasks an executor
    runs are never evicted.

    Example:
        >>> from laios.core.types import Task
        >>> monitor = TaskMonitor()
        >>> task = Task(plan_id="p", description="d", tool_name="echo")
        >>> metrics = monitor.start_monitoring(task)
        >>> monitor.checkpoint(task.id, "halfway")
        >>> [point["name"] for point in monitor.stop_monitoring(task.id).checkpoints]
        ['halfway']
    """

    def __init__(
        self,
        store: MetricStore | None = None,
        *,
        capacity: int | None = None,
        track_progress: bool = True,
    ) -> None:
        """Create a monitor (see the class docstring); ``track_progress=False`` keeps its
        tasks out of the progress histories the ``ExecutionMonitor`` reads.

        Raises:
            TypeError: When ``store`` is neither ``None`` nor a ``MetricStore``, or
                ``track_progress`` is not ``True`` or ``False``.
            ValueError: When ``capacity`` is not a positive integer.
        """
        self._store = store_or_private(store)
        self._scope: RecordScope = self._store.new_scope(
            capacity, track_progress=switch("track_progress", track_progress)
        )

    @property
    def store(self) -> MetricStore:
        """The store this monitor reads."""
        return self._store

    @property
    def scope(self) -> RecordScope:
        """This monitor's records in the store (an executor records its tasks there)."""
        return self._scope

    def _view(self, rec: TaskRecord | None) -> ExecutionMetrics | None:
        if rec is None:
            return None
        return ExecutionMetrics(rec.task_id, _record=rec, _store=self._store)

    def start_monitoring(self, task: Task) -> ExecutionMetrics:
        """Start tracking ``task`` as running and return its (live) metrics.

        Raises:
            TypeError: When ``task`` is not a ``Task``, or was built without validation
                (``Task.model_construct``) and its ``id`` or ``tool_name`` is not a string (it
                would become a record key and a metric label).
        """
        require_task(task, "start_monitoring")
        check_task_fields(task, "id", "tool_name")
        slot = self._store.tool_slot(task.tool_name, registered=True)
        rec = self._store.monitor_started(self._scope, task, task.tool_name, slot)
        return ExecutionMetrics(rec.task_id, _record=rec, _store=self._store)

    def stop_monitoring(self, task_id: str) -> ExecutionMetrics | None:
        """Stop tracking a running task; its outcome is taken from ``task.status``.

        Only runs this monitor started are finished: a task an executor runs (in an
        executor's ``task_monitor``) is finished by the executor, which records its real
        outcome and hands its result to the caller; for one, its live metrics are returned.

        Returns:
            The task's final metrics, or ``None`` when no such task is being tracked.
        """
        key = _lookup_id(task_id)
        if key is None:
            return None
        while True:
            # (the newest of its runs started here: an executor's run has milestones of its own)
            own = [r for r in self._store.active(self._scope, key) if not r.milestones]
            if not own:
                return self._view(self._store.find(self._scope, key))
            rec = own[-1]
            task = rec.task
            status = getattr(task, "status", TaskStatus.COMPLETED)
            outcome = _OUTCOME_OF_STATUS.get(status, "success")
            if self._store.monitor_stopped(rec, outcome, status):
                return self._view(rec)
            # Another thread's stop finished this run meanwhile: each call finishes one run,
            # so this one finishes the next (the older runs would otherwise run on for good).

    def get_running_tasks(self) -> list[Task]:
        """Tasks whose tool is running now."""
        # (one read of each task: a task finishing meanwhile is let go by its record)
        return [task for r in self._store.running(self._scope) if (task := r.task) is not None]

    def get_task_status(self, task_id: str) -> TaskStatus | None:
        """The task's current status (final status for a retained finished task), or ``None``.

        While a run of the id is running, that run's status, even when a newer run of the same
        id waits in the queue (the run :meth:`get_metrics` shows).
        """
        key = _lookup_id(task_id)
        if key is None:
            return None
        rec = self._store.find(self._scope, key)
        if rec is None:
            return None
        task = rec.task
        if task is not None:
            status: TaskStatus = task.status
            return status
        final: TaskStatus | None = rec.status
        return final

    def get_metrics(self, task_id: str) -> ExecutionMetrics | None:
        """Metrics of the newest run of ``task_id`` that is running or retained (a run in
        progress first, rather than a newer run of the same id waiting in the queue)."""
        key = _lookup_id(task_id)
        if key is None:
            return None
        return self._view(self._store.find(self._scope, key))

    def get_all_metrics(self) -> list[ExecutionMetrics]:
        """Metrics of every retained finished task (oldest first), then of the running ones."""
        return [
            ExecutionMetrics(r.task_id, _record=r, _store=self._store)
            for r in self._store.scope_records(self._scope)
        ]

    def checkpoint(self, task_id: str, name: str, data: Mapping[str, Any] | None = None) -> None:
        """Add a named checkpoint to a running task (ignored, with a debug log, if unknown): to
        the run :meth:`get_metrics` shows.

        Raises:
            TypeError: When ``data`` is neither ``None`` nor a mapping (also for a task that
                is not running: the mistake shows at once).
        """
        key = _lookup_id(task_id)
        data = checkpoint_data(data)
        rec = self._store.find(self._scope, key) if key is not None else None
        if rec is None or rec.state == "finished":
            # (not its name: made by a tool, it may quote a secret of a task that has ended)
            _log.debug(
                "a checkpoint ignored: task %s is not running",
                # (the id as it was looked up: one of the caller's own, str subclass or not,
                # may raise in its repr, and the log handler would print a traceback instead;
                # one whose class cannot even be read was looked up as no id)
                number_repr(str.__str__(key)) if key is not None else "(an unreadable id)",
            )
            return
        self._store.add_checkpoint(rec, name, data)

    def is_running(self, task_id: str) -> bool:
        """Whether a task with this id is running now (also while a newer run of the same id
        waits in the queue)."""
        key = _lookup_id(task_id)
        if key is None:
            return False
        rec = self._store.find(self._scope, key)
        return rec is not None and rec.state == "running"

    def clear_metrics(self, task_id: str | None = None) -> None:
        """Forget retained finished records: one task's, or all (running tasks stay)."""
        if task_id is None:
            self._store.clear_scope(self._scope, None)
            return
        key = _lookup_id(task_id)
        if key is not None:  # (an id whose hash raises has no records to forget)
            self._store.clear_scope(self._scope, key)


def _lookup_id(task_id: object) -> str | None:
    """``task_id`` as the monitor looks it up: a string as it is, any other id as its
    ``str()`` (as ``ExecutionMonitor`` and ``PerformanceMonitor`` read it); ``None`` for a
    string of the caller's own whose hash raises, or an id whose ``__class__`` raises (no
    record has it).

    Raises:
        TypeError: When ``task_id`` is a ``Task`` (pass ``task.id``), or is no string and its
            ``str()`` raises (naming ``task_id``).
    """
    if type(task_id) is str:  # (the common case)
        return task_id
    try:
        text = isinstance(task_id, str)
    except Exception:  # (a proxy standing for nothing)
        return None
    if text:  # (a str subclass: looked up by its text, unless its hash raises)
        return cast(str, task_id) if no_task_as_id(task_id) else None
    no_task_as_id(task_id)  # (a Task: raises)
    return as_text(task_id, "task_id")
