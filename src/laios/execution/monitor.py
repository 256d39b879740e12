"""Process-wide monitors: task progress (``ExecutionMonitor``) and custom metrics
(``PerformanceMonitor``), both views over a metric store.

``get_execution_monitor()`` and ``get_performance_monitor()`` return singletons over the default
store, which every ``Executor`` writes to unless given another store: running tasks show up in
the execution monitor, and custom metrics reach Prometheus. A monitor built directly,
``ExecutionMonitor()`` or ``PerformanceMonitor()``, works on a private store of its own.

A task id that is not a string is kept as ``str(task_id)``; a ``Task`` given where its id is
taken raises ``TypeError`` (pass ``task.id``), and so does an id whose ``str()`` raises (naming
``task_id``).

Example:
    >>> from laios.execution.monitor import get_execution_monitor, get_performance_monitor
    >>> monitor = get_execution_monitor()
    >>> monitor.update_task_progress("task-1", percent=50, message="Halfway done")
    >>> perf = get_performance_monitor()
    >>> perf.record_metric("task-1", "response_time", 1.23, "seconds")
    >>> perf.get_metric_summary("task-1", "response_time")["count"]
    1
"""

from __future__ import annotations

import math
import numbers
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

from laios._compat.pydantic import is_instance
from laios._text import member_of, quoted, shorten
from laios.core.types import Task, TaskStatus
from laios.execution._checks import (
    as_text,
    is_real,
    not_real,
    number_repr,
    require_task,
    switch,
    task_key,
)
from laios.execution._records import (
    MAX_TEXT,
    ProgressStatus,
    ProgressUpdate,
    clamp_percent,
    copy_update,
    summarize,
)
from laios.execution.redaction import REDACTED, scrub_head
from laios.execution.store import (
    MetricStore,
    ProgressListener,
    get_default_store,
    store_or_private,
)
from laios.execution.tracing import with_secrets_of_details

__all__ = [
    "ExecutionMonitor",
    "ExecutionStats",
    "PerformanceMonitor",
    "ProgressStatus",
    "ProgressStatusValue",
    "ProgressTracker",
    "ProgressUpdate",
    "get_execution_monitor",
    "get_performance_monitor",
]


#: The value of a :class:`ProgressStatus` member, which ``ProgressTracker.update_progress``
#: takes instead of the member (``"in_progress"``); the update holds the member.
ProgressStatusValue = Literal[
    "pending", "starting", "in_progress", "completing", "completed", "failed", "cancelled"
]


class ProgressTracker:
    """Keeps the progress history of tasks (bounded) and tells listeners about every update.

    Args:
        store: Where the history lives; a new private ``MetricStore`` when ``None``.

    Raises:
        TypeError: When ``store`` is neither ``None`` nor a ``MetricStore``.
    """

    def __init__(self, store: MetricStore | None = None) -> None:
        self._store = store_or_private(store)

    def update_progress(
        self,
        task_id: str,
        status: ProgressStatus | ProgressStatusValue,
        progress_percent: float | numbers.Real = 0.0,
        message: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> ProgressUpdate:
        """Record an update (percent clamped to 0–100), notify listeners, and return the
        update as kept: its details summarized (see ``MetricStore.record_progress``), a copy
        of its own, equal to what :meth:`get_progress` reads back.

        The message is scrubbed of the secret values of the task's parameters while an
        executor runs it (one built with ``enable_monitoring=False`` too; as a tool's own
        ``current_task().progress`` message is), and after, while its record is kept (see
        ``MetricStore.task_secrets``; of a task whose secrets were too many to keep, it is
        ``[REDACTED]`` whole), then cut to 1,024 characters.

        Raises:
            TypeError: When ``progress_percent`` is not a number, ``details`` is not a
                mapping, ``status`` is neither a ``ProgressStatus`` nor a string, or
                ``str()`` of a ``task_id`` or ``message`` that is no string raises.
            ValueError: When ``status`` is a string that is not a ``ProgressStatus`` value, or
                ``progress_percent`` a number of a class of the caller's own whose
                ``float()`` raises.
        """
        return _record_progress(
            self._store, task_id, status, progress_percent, message, details, keep_percent=False
        )

    def get_progress(self, task_id: str) -> ProgressUpdate | None:
        """The latest update for ``task_id``, or ``None``."""
        return self._store.latest_progress(task_key(task_id))

    def get_history(self, task_id: str) -> list[ProgressUpdate]:
        """Every retained update for ``task_id``, oldest first (``[]`` if unknown)."""
        return self._store.progress_history(task_key(task_id))

    def clear_progress(self, task_id: str) -> None:
        """Forget the progress of ``task_id`` so far. A task still queued or running goes on,
        listed in ``/status`` with no progress and no message until it reports again."""
        self._store.clear_progress(task_key(task_id))

    def add_listener(self, listener: ProgressListener) -> None:
        """Call ``listener(update)`` for every update of the store until it is removed; a
        listener that raises is logged and skipped, never breaking the caller or the other
        listeners. Adding and removing one take the same time however many there are; a
        store holds at most ``MAX_PROGRESS_LISTENERS`` (1,000) of them.

        Raises:
            TypeError: When ``listener`` is not callable, or is an async function.
            ValueError: When the store holds ``MAX_PROGRESS_LISTENERS`` listeners already:
                remove those you no longer need (a listener outlives the tasks it heard).
        """
        self._store.add_progress_listener(listener)

    def remove_listener(self, listener: ProgressListener) -> None:
        """Stop calling ``listener``."""
        self._store.remove_progress_listener(listener)


@dataclass
class ExecutionStats:
    """Counts over a set of tasks (see :meth:`ExecutionMonitor.get_execution_stats`)."""

    total_tasks: int = 0
    completed_tasks: int = 0
    failed_tasks: int = 0
    cancelled_tasks: int = 0
    running_tasks: int = 0
    average_execution_time: float = 0.0
    success_rate: float = 0.0


class ExecutionMonitor:
    """Progress of tasks: where each is, how far along, and what it said last.

    Args:
        store: The store to read and write; a new private ``MetricStore`` when ``None``.
            ``get_execution_monitor()`` returns the one over the default store.

    Raises:
        TypeError: When ``store`` is neither ``None`` nor a ``MetricStore``.
    """

    def __init__(self, store: MetricStore | None = None) -> None:
        self._store = store_or_private(store)
        self.progress_tracker = ProgressTracker(self._store)

    def start_task(self, task: Task) -> None:
        """Mark ``task`` as starting (0 %).

        Raises:
            TypeError: When ``task`` is not a ``Task`` (it has no ``id``).
        """
        require_task(task, "start_task")
        self.progress_tracker.update_progress(task.id, ProgressStatus.STARTING, 0.0)

    def update_task_progress(
        self,
        task_id: str,
        progress_percent: float | numbers.Real | None = None,
        message: str | None = None,
        details: Mapping[str, Any] | None = None,
        *,
        percent: float | numbers.Real | None = None,
    ) -> None:
        """Report progress of a task (status ``IN_PROGRESS``).

        ``percent=`` and ``progress_percent`` are two spellings of the same value; when
        neither is given, the last known percentage is kept, read as the update is recorded
        (an update another thread records meanwhile is never taken back).

        Raises:
            TypeError: When both are given (``update_task_progress(task_id, 10, percent=20)``):
                which one to record would be a guess. Nothing is recorded then. Otherwise, as
                :meth:`ProgressTracker.update_progress`.
        """
        if percent is None:
            value = progress_percent
        elif progress_percent is None:
            value = percent
        else:
            raise TypeError(
                "update_task_progress() got the percentage twice, as progress_percent "
                f"({number_repr(progress_percent)}) and as percent= ({number_repr(percent)}): "
                "they are two names of one value, give one of them"
            )
        # (with no percentage, the last known one, read as the update is recorded)
        _record_progress(
            self._store,
            task_id,
            ProgressStatus.IN_PROGRESS,
            0.0 if value is None else value,
            message,
            details,
            keep_percent=value is None,
        )

    def complete_task(self, task: Task, success: bool = True) -> None:
        """Mark ``task`` completed (100 %) or failed (at the last known percentage, read as the
        update is recorded). Each call records one update: called twice, it records two.

        Raises:
            TypeError: When ``task`` is not a ``Task`` (it has no ``id``), or ``success`` is
                not ``True`` or ``False`` (``0`` and ``1`` say the same; a string like
                ``"false"`` would read as true).
        """
        require_task(task, "complete_task")
        if switch("success", success):
            self.progress_tracker.update_progress(task.id, ProgressStatus.COMPLETED, 100.0)
        else:  # (at the last known percentage, read as the update is recorded)
            _record_progress(
                self._store, task.id, ProgressStatus.FAILED, 0.0, None, None, keep_percent=True
            )

    def cancel_task(self, task_id: str) -> None:
        """Mark a task cancelled at its last known percentage, read as the update is recorded
        (this records progress; to stop a task use ``Executor.cancel_task``)."""
        # (at the last known percentage, read as the update is recorded)
        _record_progress(
            self._store, task_id, ProgressStatus.CANCELLED, 0.0, None, None, keep_percent=True
        )

    def get_progress(self, task_id: str) -> ProgressUpdate | None:
        """The latest progress of a task, or ``None``."""
        return self.progress_tracker.get_progress(task_id)

    def get_progress_history(self, task_id: str) -> list[ProgressUpdate]:
        """All retained progress updates of a task, oldest first."""
        return self.progress_tracker.get_history(task_id)

    def get_execution_stats(self, tasks: Iterable[Task]) -> ExecutionStats:
        """Counts and averages computed from the tasks' ``status``, ``started_at`` and
        ``completed_at`` (a ``completed_at`` before ``started_at`` is left out of the average,
        its duration unknown; an item without these times counts by its status alone; a naive
        time is taken as UTC).

        Raises:
            TypeError: When ``tasks`` is not an iterable of tasks (a string, a mapping or a
                single ``Task`` is not one), or one of its items has no ``status``, or a
                ``started_at`` or ``completed_at`` that is not a ``datetime``.
        """
        # A Task is iterable (over its fields), but it is one task, not a list of them.
        if is_instance(tasks, Task):
            raise TypeError(
                "get_execution_stats() needs an iterable of Tasks, got a single Task: pass [task]"
            )
        # A string or a mapping is iterable, but never a list of tasks.
        if not isinstance(tasks, Iterable) or isinstance(tasks, (str, bytes, Mapping)):
            raise TypeError(
                f"get_execution_stats() needs an iterable of Tasks, got {type(tasks).__name__}"
            )
        items = list(tasks)
        for position, item in enumerate(items):
            if not hasattr(item, "status"):
                raise TypeError(
                    "get_execution_stats() needs an iterable of Tasks: item "
                    f"{position} is {type(item).__name__}, not a Task"
                )
        stats = ExecutionStats(total_tasks=len(items))
        durations: list[float] = []
        for position, task in enumerate(items):
            given: object = task.status
            # (compared as text: a status that is no string, a stand-in's, counts under none,
            # its own ==, which may raise, never called)
            status = as_text(given) if isinstance(given, str) else None
            if status == TaskStatus.COMPLETED:
                stats.completed_tasks += 1
            elif status == TaskStatus.FAILED:
                stats.failed_tasks += 1
            elif status == TaskStatus.CANCELLED:
                stats.cancelled_tasks += 1
            elif status == TaskStatus.RUNNING:
                stats.running_tasks += 1
            # (an item without these times, a stand-in for a task: its time is unknown)
            started = getattr(task, "started_at", None)
            completed = getattr(task, "completed_at", None)
            if started is not None and completed is not None:
                started = _utc_time(started, position, "started_at")
                completed = _utc_time(completed, position, "completed_at")
                seconds = (completed - started).total_seconds()
                # (a wall clock stepped back, or times set by hand: how long it ran is unknown,
                # and 0 s would pull the average down)
                if seconds >= 0:
                    durations.append(seconds)
        if durations:
            stats.average_execution_time = sum(durations) / len(durations)
        if stats.total_tasks:
            stats.success_rate = stats.completed_tasks / stats.total_tasks
        return stats

    def add_progress_listener(self, listener: ProgressListener) -> None:
        """Call ``listener(update)`` with every progress update, until it is removed (see
        :meth:`ProgressTracker.add_listener`).

        Raises:
            TypeError: When ``listener`` is not callable, or is an async function.
            ValueError: When the store holds ``MAX_PROGRESS_LISTENERS`` (1,000) listeners
                already.
        """
        self.progress_tracker.add_listener(listener)

    def remove_progress_listener(self, listener: ProgressListener) -> None:
        """Stop calling ``listener``."""
        self.progress_tracker.remove_listener(listener)

    def clear_task(self, task_id: str) -> None:
        """Forget a task's progress so far (see :meth:`ProgressTracker.clear_progress`): a task
        still running goes on, listed in ``/status`` with no progress until it reports again."""
        self.progress_tracker.clear_progress(task_id)


class PerformanceMonitor:
    """Custom metrics per task, kept bounded and exported to Prometheus.

    Each task keeps its newest 1,000 samples, all its metrics together, and at most 100 metric
    names. Samples of a
    task an executor ran are kept on its record (and roll off with it); samples for other ids
    are kept for the newest 10,000 of them. Totals per (name, unit) of the values that are not
    negative are exported as ``laios_custom_metric`` (see the metric catalogue).

    Args:
        store: The store to write; a new private ``MetricStore`` when ``None``.

    Raises:
        TypeError: When ``store`` is neither ``None`` nor a ``MetricStore``.
    """

    def __init__(self, store: MetricStore | None = None) -> None:
        self._store = store_or_private(store)

    def record_metric(
        self,
        task_id: str,
        metric_name: str,
        value: float | numbers.Real,
        unit: str | None = "",
    ) -> None:
        """Record one sample.

        While an executor (or a ``TaskMonitor``) runs the task, and after, while its record
        is kept, the name and unit are exported (as Prometheus labels) scrubbed of the secret
        values of its parameters (of a finished task whose secrets were too many to keep,
        more than ``MAX_KEPT_SECRET_CHARS``, as ``[REDACTED]``); the task's own samples keep
        them as given.

        ``unit=None`` is no unit (``""``).

        Raises:
            TypeError: When ``metric_name`` is ``None``, ``value`` is not a real number
                (``int``, ``float``, ``Fraction``, a NumPy scalar, ...; not ``bool``), or
                ``str()`` of a ``task_id``, ``metric_name`` or ``unit`` that is no string
                raises.
            ValueError: When ``value`` is NaN, infinite or too large for a float, or the task
                already has 100 metric names.
        """
        if metric_name is None:  # (kept as "None", it would name a metric no one meant)
            raise TypeError("metric_name must be a string, got None")
        if not is_real(value):  # (NumPy's too)
            raise not_real("metric value", value)
        try:
            number = float(value)
        except OverflowError:  # an int (or a Fraction) too large for a float
            # (never its repr: hundreds of digits, or a ValueError past 4,300 of them)
            what = number_repr(value) if isinstance(value, int) else type(value).__name__
            raise ValueError(
                "metric value is too large for a float (the largest finite float is about "
                f"1.8e308), got {shorten(what, 64)}"
            ) from None
        if not math.isfinite(number):
            raise ValueError(f"metric value must be finite, got {shorten(repr(value), 64)}")
        key = task_key(task_id)
        name = as_text(metric_name, "metric_name")
        unit_text = "" if unit is None else as_text(unit, "unit")
        exported = None
        secrets = self._store.task_secrets(key)
        if secrets is None:  # (a finished run whose secrets were too many to keep)
            exported = (REDACTED, REDACTED if unit_text else "")
        elif secrets:  # (scrubbed before they are cut: a cut secret could not be found)
            exported = (scrub_head(name, secrets, 128), scrub_head(unit_text, secrets, 32))
        self._store.record_custom(key, shorten(name, 128), number, shorten(unit_text, 32), exported)

    def get_metrics(self, task_id: str) -> dict[str, list[dict[str, Any]]]:
        """All retained samples of a task by metric name (``{}`` when unknown)."""
        return self._store.custom_metrics(task_key(task_id))

    def get_metric_summary(self, task_id: str, metric_name: str) -> dict[str, float]:
        """``{"min", "max", "avg", "count"}`` over a metric's retained samples (``{}`` if none);
        ``avg`` is finite and between ``min`` and ``max`` (samples all of one value average to
        it exactly).

        Raises:
            TypeError: When ``metric_name`` is ``None`` (as :meth:`record_metric` refuses it),
                or ``str()`` of a ``task_id`` or ``metric_name`` that is no string raises.
        """
        if metric_name is None:  # (read as "None", it would find a metric no one meant)
            raise TypeError("metric_name must be a string, got None")
        name = shorten(as_text(metric_name, "metric_name"), 128)
        samples = self._store.custom_metrics(task_key(task_id)).get(name)
        if not samples:
            return {}
        values = [float(s["value"]) for s in samples]
        count = len(values)
        low, high = min(values), max(values)
        try:
            average = math.fsum(values) / count  # (one rounding of the sum, not one per sample)
        except OverflowError:  # the sum is past the largest float (every sample is finite)
            average = sum(value / count for value in values)
        # (rounding may still land a step outside the samples: 0.1 three times, or the largest
        # float three times, whose thirds add up past it)
        average = min(max(average, low), high)
        return {"min": low, "max": high, "avg": average, "count": count}

    def clear_metrics(self, task_id: str | None = None) -> None:
        """Forget the samples of one task, or of all tasks (exported totals are counters and
        stay)."""
        self._store.clear_custom(None if task_id is None else task_key(task_id))


def _record_progress(
    store: MetricStore,
    task_id: str,
    status: ProgressStatus | ProgressStatusValue,
    progress_percent: float | numbers.Real,
    message: str | None,
    details: Mapping[str, Any] | None,
    *,
    keep_percent: bool,
) -> ProgressUpdate:
    """Record an update in ``store`` as :meth:`ProgressTracker.update_progress` does.

    With ``keep_percent``, the update is recorded at the percentage of the task's latest update
    (0 when it has none) in place of ``progress_percent``, read as the update is recorded,
    under one hold of the store's lock: an update another thread records meanwhile is never
    undone, as it was when the percentage was read first (``[40, 90, 40]``).
    """
    if details is not None and not isinstance(details, Mapping):
        raise TypeError(
            f"details must be a mapping of names to values, got {type(details).__name__}"
        )
    key = task_key(task_id)
    progress_status = member_of(ProgressStatus, "status", status, quoted)
    text = None
    if message is not None:
        text = as_text(message, "message")
        # (the run whose progress this is, else any run of the id)
        secrets = store.task_secrets(key, progress=True)
        if secrets is None:  # (a finished run whose secrets were too many to keep)
            text = REDACTED
        else:
            if details is not None:  # and a token the caller reports in the details by name
                secrets = with_secrets_of_details(details, secrets)
            text = scrub_head(text, secrets, MAX_TEXT) if secrets else shorten(text, MAX_TEXT)
    update = ProgressUpdate(
        task_id=key,
        status=progress_status,
        progress_percent=0.0 if keep_percent else clamp_percent(progress_percent),
        message=text,
        # (read only as far as the summary kept goes: never a huge mapping whole)
        details=summarize(details)[0],
        timestamp=store.now(),
    )
    # The update as the history keeps it (details summarized), in a copy of its own.
    return copy_update(store.record_progress(update, keep_percent=keep_percent))


_lock = threading.Lock()
_execution_monitor: ExecutionMonitor | None = None
_performance_monitor: PerformanceMonitor | None = None


def get_execution_monitor() -> ExecutionMonitor:
    """The process-wide ``ExecutionMonitor`` over the default store (same object every call)."""
    global _execution_monitor
    if _execution_monitor is None:
        with _lock:
            if _execution_monitor is None:
                _execution_monitor = ExecutionMonitor(get_default_store())
    return _execution_monitor


def get_performance_monitor() -> PerformanceMonitor:
    """The process-wide ``PerformanceMonitor`` over the default store (same object every call)."""
    global _performance_monitor
    if _performance_monitor is None:
        with _lock:
            if _performance_monitor is None:
                _performance_monitor = PerformanceMonitor(get_default_store())
    return _performance_monitor


def _utc_time(value: object, position: int, field: str) -> datetime:
    """The ``field`` time of item ``position`` of ``get_execution_stats``, a naive one taken as
    UTC (as ``Task`` takes it).

    Raises:
        TypeError: When it is not a ``datetime``.
    """
    if not isinstance(value, datetime):
        raise TypeError(
            f"get_execution_stats() needs datetimes: item {position} has a {field} of type "
            f"{type(value).__name__}, not a datetime"
        )
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
