"""``ExecutionMetrics``: the view of one task's record in the metric store."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from laios.execution._aggregates import seconds_between
from laios.execution._checks import as_float, as_text, is_real, number_repr, whole_number
from laios.execution._records import checkpoint_data
from laios.execution.store import TaskRecord, get_default_store

if TYPE_CHECKING:
    from laios.execution.store import Clock, MetricStore

__all__ = ["ExecutionMetrics"]


def _finite_real(name: str, value: Any, or_none: str = "") -> float:
    """``value`` as a ``float`` when it is a real number (see
    :func:`~laios.execution._checks.is_real`) that is finite as a float (an int past a float's
    range is not: the read-outs compute with floats). A ``Fraction`` or a NumPy scalar is kept
    as its float value, as the fields are documented: read back, and in ``to_dict()``, a
    ``float``. ``or_none`` ends the messages of a field that also takes ``None``.

    Raises:
        TypeError: When it is no real number, naming ``name`` and the type given.
        ValueError: When it is not finite.
    """
    if not is_real(value):
        raise TypeError(f"{name} must be a number{or_none}, got {type(value).__name__}")
    number = as_float(value)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number{or_none}, got {number_repr(value)}")
    return number


def _number(name: str, value: Any) -> float:
    """``value`` when it is a finite real number of 0 or more: what the store reads from a
    record's assignable durations when the task ends (a value of another type would break it;
    NaN or a negative one would be read back as the task's figure).

    Raises:
        TypeError: When it is no real number, naming ``name`` and the type given.
        ValueError: When it is not finite, or below 0.
    """
    number = _finite_real(name, value)
    if value < 0:  # (the value given: a tiny negative Fraction is below 0, its float is not)
        raise ValueError(f"{name} must be 0 or more, got {number_repr(value)}")
    return number


def _time(name: str, value: Any) -> float | None:
    """``value`` as a ``float`` when it is a finite real number, or ``None`` (see
    :func:`_number`)."""
    if value is None:
        return value
    return _finite_real(name, value, " or None")


def _timed(rec: TaskRecord) -> bool:
    """Whether ``rec.started_mono`` is the clock's reading at its start: a stored record once
    started (a test's clock may read ``0.0`` then), or a detached one ``start()`` timed; not
    a copy of a stored one, which holds the time read as it was copied."""
    return bool(rec.started_mono) or (rec.slot is not None and rec.ran)


#: The fields of a record a pickled or copied ``ExecutionMetrics`` keeps (see ``__reduce__``).
_SNAPSHOT_FIELDS = (
    "state",
    "start_time",
    "end_time",
    "cpu_time",
    "memory_peak_mb",
    "retries",
    "checkpoints_dropped",
    "checkpoints_size",
    "outcome",
    "trace_id",
    "span_id",
    "ran",
    "milestones",
)


def _detached(task_id: str, tool: str, values: dict[str, Any]) -> ExecutionMetrics:
    """Detached metrics of ``task_id`` holding ``values`` (an unpickled or copied snapshot)."""
    rec = TaskRecord(task_id, tool)
    for name, value in values.items():
        setattr(rec, name, value)
    return ExecutionMetrics(task_id, _record=rec)


class ExecutionMetrics:
    """Metrics of one task run, read from (and written to) its record in the store.

    An executor hands these out through ``get_metrics`` and ``get_all_metrics``; they read the
    store, so a running task's metrics change as it runs. Built on its own,
    ``ExecutionMetrics(task_id)`` is a detached record that ``start()``, ``end()`` and
    ``checkpoint()`` fill in.

    Attributes:
        task_id: The task's id.
        start_time: Unix time the tool started, or ``None``.
        end_time: Unix time the task finished, or ``None``.
        execution_time: Wall-clock seconds from start to finish.
        cpu_time: CPU seconds the tool spent in its own thread (``time.thread_time``; a tool
            that hands work to other threads or processes is not charged for it); ``0.0`` when
            the executor was created with ``measure_cpu_time=False``, and for async tools.
        memory_peak_mb: Peak memory; not measured by the thread runner, always ``0.0``.
        retries: How many retries preceded this run (``execute_with_retry``).
        checkpoints: Named milestones, each ``{"name", "timestamp", "data"}``. The executor adds
            ``"started"`` and ``"finished"`` (with the outcome) itself.
        checkpoints_dropped: How many checkpoints were added past the record's bounds and
            not kept.

    Example:
        >>> m = ExecutionMetrics("task-1")
        >>> m.start(); m.checkpoint("loaded", {"rows": 10}); m.end()
        >>> [c["name"] for c in m.checkpoints]
        ['loaded']
    """

    __slots__ = ("_record", "_store")

    def __init__(
        self,
        task_id: str,
        *,
        _record: TaskRecord | None = None,
        _store: MetricStore | None = None,
    ) -> None:
        """A detached record of ``task_id`` (the executor and monitors pass their own record).

        Raises:
            TypeError: When ``task_id`` is not a string.
        """
        if _record is None:
            if not isinstance(task_id, str):
                raise TypeError(f"task_id must be a string, got {type(task_id).__name__}")
            # (a str subclass as its text: its own hash, == or repr may raise)
            _record = TaskRecord(as_text(task_id))
        self._record = _record
        self._store = _store

    def _clock(self) -> Clock:
        """The clock of the store keeping the record (the ``time`` module when detached)."""
        return self._store.clock if self._store is not None else time

    def _wall(self) -> float:
        """Unix time now, as the store keeping the record reads it (a broken clock's reading
        replaced, see :meth:`MetricStore.now`); the system's when detached."""
        store = self._store
        return time.time() if store is None else store.now().timestamp()

    @property
    def task_id(self) -> str:
        """The task's id."""
        return self._record.task_id

    @property
    def start_time(self) -> float | None:
        """Unix time the tool started."""
        return self._record.start_time

    @start_time.setter
    def start_time(self, value: float | None) -> None:
        self._record.start_time = _time("start_time", value)

    @property
    def end_time(self) -> float | None:
        """Unix time the task finished."""
        return self._record.end_time

    @end_time.setter
    def end_time(self, value: float | None) -> None:
        self._record.end_time = _time("end_time", value)

    @property
    def execution_time(self) -> float:
        """Wall-clock seconds; for a running task, the time so far."""
        rec = self._record
        if rec.state == "running" and _timed(rec):
            return seconds_between(self._clock().perf_counter(), rec.started_mono)
        return rec.execution_time

    @execution_time.setter
    def execution_time(self, value: float) -> None:
        self._record.execution_time = _number("execution_time", value)

    @property
    def cpu_time(self) -> float:
        """CPU seconds the tool spent in its thread."""
        return self._record.cpu_time

    @cpu_time.setter
    def cpu_time(self, value: float) -> None:
        self._record.cpu_time = _number("cpu_time", value)

    @property
    def memory_peak_mb(self) -> float:
        """Peak memory in MB (not measured; ``0.0``)."""
        return self._record.memory_peak_mb

    @memory_peak_mb.setter
    def memory_peak_mb(self, value: float) -> None:
        self._record.memory_peak_mb = _number("memory_peak_mb", value)

    @property
    def retries(self) -> int:
        """Retries that preceded this run."""
        return self._record.retries

    @retries.setter
    def retries(self, value: int) -> None:
        # (not a bool, nor NumPy's timedelta64: a length of time NumPy calls an integer)
        number = whole_number(value)
        if number is None:
            raise TypeError(f"retries must be a whole number, got {type(value).__name__}")
        if number < 0:
            raise ValueError(f"retries must be 0 or more, got {number}")
        self._record.retries = number

    @property
    def checkpoints(self) -> list[dict[str, Any]]:
        """Milestones as dicts (a copy), oldest first.

        For a task run by an executor the first is ``"started"`` and, once it has finished,
        the last is ``"finished"`` with ``{"outcome": ...}``; a task a ``TaskMonitor`` tracks
        on its own shows only the checkpoints its user added. Names and data are as the tool
        gave them, secrets included (only the checkpoint's span is scrubbed): they are for
        the caller's own code, in this process.
        """
        rec = self._record
        points = [point.to_dict() for point in list(rec.checkpoints)]
        if rec.milestones:  # run by an executor: it adds the "started"/"finished" milestones
            if rec.ran and rec.start_time is not None:
                points.insert(0, {"name": "started", "timestamp": rec.start_time, "data": {}})
            if rec.state == "finished" and rec.end_time is not None:
                points.append(
                    {
                        "name": "finished",
                        "timestamp": rec.end_time,
                        "data": {"outcome": rec.outcome},
                    }
                )
        return points

    @property
    def checkpoints_dropped(self) -> int:
        """How many checkpoints were added past the record's bounds (at most
        ``MAX_CHECKPOINTS_PER_TASK``, 256, and ``MAX_RECORD_BYTES`` of names and data) and
        not kept: ``0`` when :attr:`checkpoints` holds every one added."""
        return self._record.checkpoints_dropped

    @property
    def outcome(self) -> str | None:
        """The outcome (``success``, ``error``, ``timeout``, ``cancelled``, ``rejected``);
        ``None`` while running."""
        return self._record.outcome

    @property
    def tool_name(self) -> str:
        """The tool the task invoked."""
        return self._record.tool

    @property
    def trace_id(self) -> str | None:
        """The task span's trace id (32 hex digits) when the task was traced."""
        return self._record.trace_id

    @property
    def span_id(self) -> str | None:
        """The task span's span id (16 hex digits) when the task was traced."""
        return self._record.span_id

    def start(self) -> None:
        """Mark the start (sets ``start_time`` to now).

        On detached metrics already ended (also by an ``end()`` before any ``start()``), a
        new measurement begins: ``end_time`` is cleared, and ``execution_time`` counts from
        this start.

        A record in a store (the metrics of a task an executor or a ``TaskMonitor`` tracks)
        was started by the store, as the task started: ``start()`` leaves it as it is.
        Restarting it here would cut the task's duration short everywhere the store reports
        it (the result, the duration histogram), and put its start after its end once it
        has finished.
        """
        rec = self._record
        if rec.slot is not None:  # (in a store: its start is the store's)
            return
        if rec.state == "finished" or rec.end_time is not None:  # (detached: its own start)
            rec.end_time = None
            rec.execution_time = 0.0
            rec.state = "running"
        rec.start_time = self._wall()
        rec.started_mono = self._clock().perf_counter()
        if rec.state == "new":
            rec.state = "running"

    def end(self) -> None:
        """Mark the end (sets ``end_time`` and ``execution_time``). On detached metrics, a
        second ``end()`` keeps the first end (``start()`` begins a new measurement).

        A record in a store (the metrics of a task an executor or a ``TaskMonitor`` tracks)
        is finished by the store alone, when the task ends (``stop_monitoring`` for a
        ``TaskMonitor``'s own): ``end()`` does not finish it, and what it sets is replaced
        then. Finishing it here would leave the task counted in flight and listed as running
        for ever, its outcome never counted. Once such a task has finished, ``end()`` leaves
        its end as the store recorded it, also when the task finishes on another thread while
        ``end()`` reads the clock.
        """
        rec = self._record
        if rec.state == "finished":  # (the store's end, or a detached record's first: kept)
            return
        end_time = self._wall()
        execution_time = None
        if _timed(rec):
            execution_time = seconds_between(self._clock().perf_counter(), rec.started_mono)
        elif rec.start_time is not None:
            execution_time = seconds_between(end_time, rec.start_time)
        store = self._store
        if rec.slot is not None and store is not None:
            # Under the store's lock: a task that finished meanwhile, on another thread, keeps
            # the end the store recorded.
            store.note_end(rec, end_time, execution_time)
            return
        rec.end_time = end_time
        if execution_time is not None:
            rec.execution_time = execution_time
        if rec.slot is None:  # (a detached record: its own end, which a second end() keeps)
            rec.state = "finished"

    def checkpoint(self, name: str, data: Mapping[str, Any] | None = None) -> None:
        """Add a named milestone with the current time, within the bounds a stored record
        keeps (see :meth:`MetricStore.add_checkpoint
        <laios.execution.store.MetricStore.add_checkpoint>`), also on a detached record.
        Ignored once a task in a store has finished (one an executor ran: its ``"finished"``
        milestone closes the list; or one a ``TaskMonitor`` stopped), as
        ``current_task().checkpoint`` and ``TaskMonitor.checkpoint`` ignore it.

        Args:
            name: The milestone's name.
            data: Extra values to keep with it: a mapping, or ``None``.

        Raises:
            TypeError: When ``data`` is neither ``None`` nor a mapping.
        """
        data = checkpoint_data(data)
        rec = self._record
        if rec.state == "finished" and self._store is not None:
            return
        # A detached record keeps its checkpoints within the same bounds as a stored one
        # (the default store only lends its lock and its clock: the record stays detached).
        store = self._store if self._store is not None else get_default_store()
        store.add_checkpoint(rec, name, data)

    def to_dict(self) -> dict[str, Any]:
        """The metrics as a plain dict (with ``checkpoints_dropped`` when checkpoints were
        dropped, ``trace_id``/``span_id`` when traced)."""
        rec = self._record
        out: dict[str, Any] = {
            "task_id": rec.task_id,
            "start_time": rec.start_time,
            "end_time": rec.end_time,
            "execution_time": self.execution_time,
            "cpu_time": rec.cpu_time,
            "memory_peak_mb": rec.memory_peak_mb,
            "retries": rec.retries,
            "checkpoints": self.checkpoints,
        }
        if rec.checkpoints_dropped:
            out["checkpoints_dropped"] = rec.checkpoints_dropped
        if rec.tool:
            out["tool_name"] = rec.tool
        if rec.outcome is not None:
            out["outcome"] = rec.outcome
        if rec.trace_id is not None:
            out["trace_id"] = rec.trace_id
            out["span_id"] = rec.span_id
        return out

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled and copied (``copy.copy``, ``copy.deepcopy``) as a detached snapshot: the
        values read now, in a record of its own, with no store (an executor's metrics read
        a record under the store's lock, which cannot be pickled); changing the copy leaves
        the task's record alone."""
        rec = self._record
        values = {name: getattr(rec, name) for name in _SNAPSHOT_FIELDS}
        values["execution_time"] = self.execution_time
        values["checkpoints"] = list(rec.checkpoints)
        if self._store is None and rec.state == "running":  # (a detached run goes on timing)
            values["started_mono"] = rec.started_mono
        return (_detached, (rec.task_id, rec.tool, values))

    def __repr__(self) -> str:
        rec = self._record
        return (
            f"ExecutionMetrics(task_id={rec.task_id!r}, outcome={rec.outcome!r}, "
            f"execution_time={self.execution_time:.6f}, retries={rec.retries})"
        )
