"""The metric store: one in-memory, thread-safe home for every number the executor produces.

Every view reads from here: :class:`~laios.execution.metrics.ExecutionMetrics` (one task's
record), :class:`~laios.execution.task_monitor.TaskMonitor` (the live view of one executor),
the global :class:`~laios.execution.monitor.ExecutionMonitor` and
:class:`~laios.execution.monitor.PerformanceMonitor`, the Prometheus collector and the
``/status`` endpoint. None of them keeps a copy of a number.

Memory is bounded: finished-task records live in a ring per executor (``record_capacity``),
each record keeps a bounded number of bytes of checkpoints and progress history (the data that
tools attach is copied as a summary: see :func:`~laios.execution._records.summarize`),
progress histories and custom metrics are kept for a bounded number of task ids, and the
aggregates that Prometheus reads are O(tools × outcomes), never O(tasks).
"""

from __future__ import annotations

import logging
import math
import threading
import time
import weakref
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any, NamedTuple, Protocol

from laios._exceptions import qualified_type_name
from laios._text import quoted, shorten
from laios.execution._aggregates import (
    DURATION_BUCKETS,
    ERROR_OUTCOMES,
    MAX_RECENT_FAILURES,
    QUEUE_WAIT_BUCKETS,
    TOOL_OTHER,
    TOOL_UNKNOWN,
    FailedTaskSnapshot,
    RunningTaskSnapshot,
    StoreAggregates,
    StoreCounts,
    StoreSnapshot,
    ToolSlot,
    ToolSnapshot,
    seconds_between,
)
from laios.execution._callables import refuse_unawaited
from laios.execution._checks import (
    as_text,
    check_listener,
    not_a_class,
    positive_int,
    task_key,
)
from laios.execution._families import STORE_GAUGE_FIELDS
from laios.execution._forks import reset_after_fork
from laios.execution._locks import wait_while_held
from laios.execution._logs import WarningLimiter
from laios.execution._records import (
    MAX_ID_CHARS,
    MAX_TEXT,
    UNPRINTABLE_NAME,
    Checkpoint,
    ProgressStatus,
    ProgressUpdate,
    copy_update,
    data_size,
    printable,
    record_id,
    summarize,
    text_size,
)
from laios.execution._store_options import MAX_COUNTED_LIMIT, check_buckets, check_labels
from laios.execution.redaction import (
    REDACTED,
    SecretFields,
    is_secret_key,
    may_write_a_secret,
    scrubbed_traceback,
    secret_values,
)

__all__ = [
    "MAX_CHECKPOINTS_PER_TASK",
    "MAX_FINISH_LISTENERS",
    "MAX_GAUGE",
    "MAX_KEPT_SECRET_CHARS",
    "MAX_PROGRESS_HISTORY",
    "MAX_PROGRESS_LISTENERS",
    "MAX_RECENT_FAILURES",
    "MAX_RECORD_BYTES",
    "Clock",
    "FinishListener",
    "FinishedTask",
    "MetricStore",
    "RecordScope",
    "TaskRecord",
    "get_default_store",
    "store_or_private",
]

_log = logging.getLogger("laios.execution.store")

_INF = math.inf

#: One log a minute per kind of runner whose ``stats`` raises (read at every scrape), whatever
#: the store.
_STATS_ERRORS = WarningLimiter()

#: Seconds between two logs of one store listener's failures (the ones between are counted and
#: the next log says how many): a listener runs on every task's path.
LISTENER_ERROR_INTERVAL = 60.0
#: Most checkpoints kept on one task record; later ones are counted but not kept.
MAX_CHECKPOINTS_PER_TASK = 256
#: Most progress updates kept per task id.
MAX_PROGRESS_HISTORY = 100
#: Most progress listeners a store holds at once. Each is called with every update, so one
#: added per task and never removed would slow every update and hold memory for ever; past
#: the limit, adding one fails and says so.
MAX_PROGRESS_LISTENERS = 1000
#: Most finish listeners a store holds at once, for the same reason: each is called at the end
#: of every task until it is removed.
MAX_FINISH_LISTENERS = 1000
#: Most bytes of checkpoints kept on one record (their names and data, as
#: :func:`~laios.execution._records.data_size` estimates them), and likewise of one task id's
#: progress history (messages and details). A checkpoint that would pass it is counted but not
#: kept; a progress history keeps the newest updates that fit.
MAX_RECORD_BYTES = 48 * 1024
#: Most a runner gauge reads (``laios_executor_workers``, busy workers, abandoned threads): 2**53,
#: the largest whole number below which every one is a float. ``max_workers`` has no upper
#: bound (threads start as calls need them), but each exporter writes these gauges as floats,
#: and a multiprocess file refuses a count past 2**63.
MAX_GAUGE = 2**53
#: Most custom metric samples kept per task id, all its metrics together (the newest).
MAX_CUSTOM_SAMPLES = 1000
#: Most characters of secret values a finished task's record keeps (see
#: :meth:`TaskRecord.keep_secrets`), to scrub what the monitors are told about the task after
#: its run. A task whose secrets take more keeps none: text about it after its run is written
#: ``[REDACTED]`` whole.
MAX_KEPT_SECRET_CHARS = 16 * 1024
#: Most parameters, and characters of their text, that a finished record keeps a copy of to
#: read its secrets from only when asked (see :meth:`TaskRecord.keep_secrets`).
_MAX_KEPT_PARAMETERS = 64
_MAX_KEPT_PARAMETER_CHARS = 4096


class _Withheld:
    """What a finished record keeps in place of secret values past
    ``MAX_KEPT_SECRET_CHARS`` (:data:`WITHHELD`)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "WITHHELD"


#: What a finished record keeps in place of secret values past ``MAX_KEPT_SECRET_CHARS``.
WITHHELD = _Withheld()

_FINAL_PROGRESS = {"success": ProgressStatus.COMPLETED, "cancelled": ProgressStatus.CANCELLED}

#: The custom metric, ``(name, unit)``, that those past ``max_custom_metrics`` are counted as.
_CUSTOM_OTHER = ("other", "")
#: What a store logs the first time it counts something under ``other`` past one of its label
#: caps, by the option that sets the cap (once per store and cap: past a cap, every task could
#: fold); the cap is quoted last.
_FOLDED = {
    "max_tool_labels": (
        'tool %r is counted under tool="other": this store has as many tool labels as its '
        'max_tool_labels, %d, and further tools share "other" in every laios_* series. Pass a '
        "larger MetricStore(max_tool_labels=...) if the service has that many tools (further "
        "tools past the cap are not logged)"
    ),
    "max_error_types": (
        'error type %r of tool %r is counted under error_type="other": the tool has as many '
        'error types as the store\'s max_error_types, %d, and further ones share "other". Pass '
        "a larger MetricStore(max_error_types=...), or have tools report fewer distinct error "
        "types (further error types past the cap are not logged)"
    ),
    "max_custom_metrics": (
        'custom metric %r (unit %r) is counted under name="other", unit="": this store exports '
        'as many custom metrics as its max_custom_metrics, %d, and further ones share "other". '
        "Reuse metric names instead of encoding values in them, or pass a larger "
        "MetricStore(max_custom_metrics=...) (further metrics past the cap are not logged)"
    ),
}


class _ProgressHistory(deque[ProgressUpdate]):
    """The retained progress updates of one task id, oldest first.

    Holds at most ``MAX_PROGRESS_HISTORY`` updates whose messages and details take at most
    ``MAX_RECORD_BYTES`` in all; adding one drops the oldest that no longer fit.
    """

    __slots__ = ("size",)

    def __init__(self) -> None:
        """Create an empty history."""
        super().__init__()
        #: Bytes of the retained updates' messages and details (see :func:`_update_size`).
        self.size = 0

    def add(self, update: ProgressUpdate, size: int) -> None:
        """Append ``update``, of ``size`` bytes, then drop the oldest past the bounds."""
        self.append(update)
        self.size += size
        while len(self) > MAX_PROGRESS_HISTORY or (self.size > MAX_RECORD_BYTES and len(self) > 1):
            self.size -= _update_size(self.popleft())


class _CustomSamples:
    """The retained custom metric samples of one task id: the newest ``MAX_CUSTOM_SAMPLES`` of
    all its metrics together, oldest first, as ``(name, value, unit, timestamp)`` tuples (a
    dict each would take about twice the memory), and the metric names it has recorded."""

    __slots__ = ("names", "samples")

    def __init__(self) -> None:
        #: Each name recorded, mapped to itself: samples share one string object per name.
        self.names: dict[str, str] = {}
        self.samples: deque[tuple[str, float, str, float]] = deque(maxlen=MAX_CUSTOM_SAMPLES)


def _update_size(update: ProgressUpdate) -> int:
    """The bytes an update's message and details count for in its history."""
    size = data_size(update.details) if update.details else 0
    return size + (text_size(update.message) if update.message is not None else 0)


def _kept_update(update: ProgressUpdate) -> tuple[ProgressUpdate, int]:
    """The update as a history keeps it (message cut, details summarized) and its size."""
    message = update.message
    changes: dict[str, Any] = {}
    if len(update.task_id) > MAX_ID_CHARS:
        changes["task_id"] = record_id(update.task_id)
    size = 0
    if message is not None:
        if len(message) > MAX_TEXT:
            message = changes["message"] = shorten(message, MAX_TEXT)
        size += text_size(message)
    if update.details:
        changes["details"], details_size = summarize(update.details)
        size += details_size
    return (replace(update, **changes) if changes else update), size


def _scope_key(task_id: object) -> str | None:
    """The key a scope keeps the records of ``task_id`` under: a string as plain text (a
    ``str`` subclass's own hash and ``==`` are never called), bounded as records keep it
    (:func:`record_id`); ``None`` for an id that is not a string, which no record has."""
    if not isinstance(task_id, str):
        return None
    return record_id(as_text(task_id))


def _shown_run(scope: RecordScope, task_id: str) -> TaskRecord | None:
    """The run of ``task_id`` (a record id) that ``scope``'s views show (the caller holds the
    store's lock): its newest run in progress, rather than a newer run of the id still queued;
    else its newest active run; else its latest finished one."""
    rec = scope.active_by_id.get(task_id) or scope.finished.get(task_id)
    if rec is not None and rec.state == "queued" and scope.shadowed:
        for older in reversed(scope.shadowed.get(task_id, ())):
            if older.state == "running":
                return older
    return rec


def _utc(timestamp: float) -> datetime:
    """``timestamp`` as a UTC ``datetime``; the system's time when a ``datetime`` cannot hold
    it (a broken clock's reading past year 9999, or before year 1)."""
    try:
        return datetime.fromtimestamp(timestamp, timezone.utc)
    except (ValueError, OverflowError, OSError):
        return datetime.now(timezone.utc)


def _starting(rec: TaskRecord) -> ProgressUpdate:
    """The ``STARTING`` update of a record that has started."""
    return ProgressUpdate(
        rec.task_id, ProgressStatus.STARTING, 0.0, None, {}, _utc(rec.start_time or 0.0)
    )


def _final(rec: TaskRecord) -> ProgressUpdate:
    """The final update of a finished record."""
    final = _FINAL_PROGRESS.get(rec.outcome or "", ProgressStatus.FAILED)
    percent = 100.0 if final is ProgressStatus.COMPLETED else rec.progress_percent
    details = {"outcome": rec.outcome}
    return ProgressUpdate(rec.task_id, final, percent, None, details, _utc(rec.end_time or 0.0))


#: A progress history in parts (see :meth:`MetricStore._history_parts`): the updates kept for
#: the id apart from any run, those of its run, where the run started and ended among them, and
#: the run's derived ``STARTING`` and final updates (``None`` when it shows none).
_HistoryParts = tuple[
    list[ProgressUpdate],
    list[ProgressUpdate],
    int,
    int,
    ProgressUpdate | None,
    ProgressUpdate | None,
]


def _joined_history(parts: _HistoryParts) -> list[ProgressUpdate]:
    """A progress history from its parts: the updates kept apart from the run, then the run's,
    its ``STARTING`` and final updates among them where the run started and ended."""
    history, kept, started, ended, starting, final = parts
    history.extend(kept[:started])
    if starting is not None:
        history.append(starting)
    history.extend(kept[started:ended])
    if final is not None:
        history.append(final)
    history.extend(kept[ended:])
    return history


#: A failed task as the store keeps it (a tuple: cheap to build under the lock): the fields of
#: :class:`FailedTaskSnapshot`, in order.
_Failure = tuple[str, str, str, str | None, float, float, str | None, int]


class Clock(Protocol):
    """Where a store reads the time: the ``time`` module, or a test's own clock."""

    def time(self) -> float:
        """Unix time in seconds (timestamps of records, checkpoints, exemplars, snapshots
        and progress updates)."""
        ...

    def perf_counter(self) -> float:
        """A monotonic clock in seconds (durations and queue waits)."""
        ...


ProgressListener = Callable[[ProgressUpdate], None]
#: Told of a checkpoint as it is added: the record, the checkpoint's name and time, and its
#: data as the tool passed it (read synchronously, never kept: the listener bounds it itself).
CheckpointListener = Callable[["TaskRecord", str, float, "Mapping[str, Any] | None"], None]


class _Unhashable:
    """The key of a listener that cannot be hashed (an object with ``__eq__`` and no
    ``__hash__``): such listeners are found by equality, one by one, as the values the keys
    map to."""

    __slots__ = ()


#: What a listener that returned a coroutine is told to do instead.
_PLAIN_LISTENER = "pass a plain function that does its work (or hands it to an event loop)"


def _listener_key(listeners: Mapping[object, object], listener: object) -> object:
    """The key of ``listener`` in ``listeners``: itself, so that a listener equal to one added
    (``updates.append`` twice) finds it in one hash lookup; for an unhashable one, the key of
    an equal one added, else a new key. One whose hash raises another error (an object of
    the caller's own) is taken as unhashable, and one whose ``==`` raises is equal to itself
    alone."""
    try:
        hash(listener)
    except Exception:
        for key, known in listeners.items():
            if isinstance(key, _Unhashable) and _same_listener(known, listener):
                return key
        return _Unhashable()
    return listener


def _same_listener(known: object, listener: object) -> bool:
    """Whether ``listener`` is the unhashable listener ``known`` or equal to it; not when
    comparing them raises."""
    if known is listener:
        return True
    try:
        return bool(known == listener)
    except Exception:
        return False


def _add_listener(listeners: dict[object, Any], listener: Any, most: int, too_many: str) -> bool:
    """Add ``listener`` to ``listeners`` (the caller holds the store's lock); ``False`` when
    it (or one equal to it) is there already. Raise ``ValueError`` saying ``too_many`` when
    ``most`` are there."""
    key = _listener_key(listeners, listener)
    if key in listeners:  # (added twice, called once)
        return False
    if len(listeners) >= most:
        raise ValueError(too_many)
    listeners[key] = listener
    return True


def _remove_listener(listeners: dict[object, Any], listener: Any) -> Any:
    """Take ``listener`` (or the one equal to it) out of ``listeners`` (the caller holds the
    store's lock): the listener taken out, ``None`` when it was not there."""
    return listeners.pop(_listener_key(listeners, listener), None)


class FinishedTask(NamedTuple):
    """One task's end, as :meth:`MetricStore.add_finish_listener` listeners are told it.

    Every value is bounded, as the Prometheus families are: no task id, no message.
    """

    #: The tool's label in the aggregates (``unknown``, ``other`` past the cap), as
    #: ``laios_tasks_total{tool}`` has it.
    tool: str
    #: ``success``, ``error``, ``timeout``, ``cancelled`` or ``rejected``.
    outcome: str
    #: Seconds from the tool's start to the outcome (``0.0`` when it never started).
    duration: float
    #: Seconds from submission to the start (to the outcome, when it never started).
    queue_wait: float
    #: Whether the tool was started.
    started: bool
    #: The error type as ``laios_task_errors_total`` counts it (past the cap, ``other``); for
    #: a cancellation, ``cancelled`` as the executor gives it; ``None`` on success.
    error_type: str | None
    #: ``(trace_id, span_id)`` of the task's sampled span, or ``None``.
    exemplar: tuple[str, str] | None
    #: The store's constant labels, ``(name, value)`` sorted by name.
    labels: tuple[tuple[str, str], ...] = ()


#: Called with a :class:`FinishedTask` after each task's end is recorded.
FinishListener = Callable[[FinishedTask], None]


class TaskRecord:
    """What the store knows about one run of one task.

    Fields are written by the store under its lock (or by the single owner of a detached
    record); views read them. A record stops referring to its ``Task`` once it finishes, so
    retained records never keep a task's parameters or result alive: only the secret values
    of its parameters, or a copy of a few plain ones to read them from, within a bound (see
    :meth:`keep_secrets`). Defaults live on the
    class, so creating a record (once per task) sets only what differs.
    """

    scope: RecordScope | None = None
    slot: ToolSlot | None = None
    task: Any = None
    state = "new"  # new -> queued -> running -> finished
    status: Any = None
    submitted_mono = 0.0
    started_mono = 0.0
    start_time: float | None = None
    end_time: float | None = None
    execution_time = 0.0
    cpu_time = 0.0
    memory_peak_mb = 0.0
    retries = 0
    #: An attempt of an ``execute_with_retry`` call: its failure is the call's result only
    #: when no retry follows (the retry loop then counts it, see ``MetricStore.result_returned``).
    attempt = False
    checkpoints: list[Checkpoint] | tuple[()] = ()  # a list once the first one is added
    checkpoints_dropped = 0
    checkpoints_size = 0  # bytes of the kept checkpoints' names and data (MAX_RECORD_BYTES)
    outcome: str | None = None
    error_type: str | None = None
    progress_percent = 0.0
    progress_message: str | None = None
    trace_id: str | None = None
    span_id: str | None = None
    abandoned = False
    checkpoint_listener: CheckpointListener | None = None
    # Progress reports and custom metrics of this run live on the record, so they are bounded
    # by the record ring instead of needing tables of their own.
    progress_updates: _ProgressHistory | None = None
    #: Progress updates recorded for this run so far, kept or not: their order, which the
    #: wall clock cannot give (it may stand still, or step back).
    progress_count = 0
    #: ``progress_count`` when the tool started, and when the run finished: where its derived
    #: ``STARTING`` and final updates go among the recorded ones.
    progress_at_start = 0
    progress_at_end = 0
    #: The run's ``state`` when ``ExecutionMonitor.clear_task()`` was last called for it: the
    #: executor's own updates up to then (``STARTING`` once running, the final one once
    #: finished) are forgotten, later ones are not.
    progress_cleared: str | None = None
    custom: _CustomSamples | None = None
    ran = False  # the tool was started (a task refused or cancelled while queued never is)
    #: Whether its metrics show the executor's own "started" and "finished" milestones (a task
    #: run by an executor); a record a standalone ``TaskMonitor`` keeps shows only what its
    #: user added.
    milestones = False
    #: What the record keeps of its task's secrets once it has let the task go (see
    #: :meth:`keep_secrets`): ``None`` (none; :meth:`MetricStore.finish` has it look, while
    #: the record still refers to the task), ``()`` (none: nothing to look at), the secret
    #: values, a copy of small plain parameters to read them from when first asked, or
    #: ``WITHHELD`` (too many to keep).
    kept_secrets: Any = None

    def __init__(self, task_id: str, tool: str = "") -> None:
        """Create a detached record (not yet known to any store)."""
        self.task_id = task_id
        self.tool = tool

    def parameter_secrets(self) -> Sequence[str]:
        """The secret values of the task's parameters (see
        :func:`~laios.execution.redaction.secret_values`), to scrub from text reported about
        it from outside its tool; once the record has let the task go, those it kept (see
        :meth:`finished_secrets`; none when they were too many to keep). Never raises."""
        task = self.task
        if task is None:
            return self.finished_secrets() or []
        parameters = getattr(task, "parameters", None)
        if not parameters:
            return []
        try:
            return secret_values(parameters, self.secret_fields())
        except Exception:  # parameters that cannot be walked: reported where the task runs
            return []

    def secret_fields(self) -> SecretFields | None:
        """Where the task's tool declares secrets by type (see
        :func:`~laios.execution.redaction.secret_fields`): ``None`` here, where the tool is
        not known."""
        return None

    def keep_secrets(self) -> None:
        """Keep what the record needs to scrub text about its task once it has let the task
        go (called as the task finishes, while the record still refers to it), for as long as
        the record is kept: text the monitors are told about a task after its run is scrubbed
        as it was while the task ran.

        Of parameters of a few plain values (text, numbers, bytes), those that may hold a
        secret are kept (under a secret-looking name, or one the tool declares secret by type;
        text that may write one, as :func:`~laios.execution.redaction.may_write_a_secret`
        says), their secrets read only if text about the task comes after its run (most tasks
        never see any: reading them at every task's end would cost more than running a small
        tool); of others, the secret values are read now. At most ``MAX_KEPT_SECRET_CHARS``
        characters of them are kept: past that, none, and text about the task after its run
        is written ``[REDACTED]`` whole. Never raises: a task whose parameters cannot be
        looked at keeps none, and text about it after its run is written ``[REDACTED]``."""
        try:
            parameters = getattr(self.task, "parameters", None)
            if not parameters:
                return
            copy = _small_plain_copy(parameters, self)
        except Exception:  # (a stand-in task of the caller's own: a raising property, bool())
            self.kept_secrets = WITHHELD
            return
        kept = copy if copy is not None else bounded_secrets(self.parameter_secrets())
        self.kept_secrets = kept if kept else ()

    def finished_secrets(self) -> Sequence[str] | None:
        """The secret values the record keeps of its task once it has let it go (see
        :meth:`keep_secrets`): ``None`` when they were too many to keep, and any text about
        the task must be withheld whole. Never raises."""
        kept = self.kept_secrets
        if type(kept) is dict:  # read when first asked (another thread may read it too)
            try:
                found = secret_values(kept, self.secret_fields())
            except Exception:  # (plain values: never seen to raise)
                found = []
            kept = self.kept_secrets = bounded_secrets(found)
        if kept is WITHHELD:
            return None
        return kept if kept is not None else ()


def _small_plain_copy(parameters: Any, rec: TaskRecord) -> dict[Any, Any] | None:
    """Of ``parameters``, when it is a dict of at most ``_MAX_KEPT_PARAMETERS`` plain values
    (strings, bytes, numbers of at most 64 bits, ``None``) with at most
    ``_MAX_KEPT_PARAMETER_CHARS`` characters of text in all, a copy of the entries that may
    hold a secret (empty when none may), as they are now, which a caller changing the task's
    parameters later does not change; else ``None``. An entry may hold one when its name is
    secret-looking, or declared secret by the type of ``rec``'s tool (see
    :meth:`TaskRecord.secret_fields`), or its value is text that may write one (see
    :func:`~laios.execution.redaction.may_write_a_secret`) or bytes; a number under another
    name, and ``None`` or a bool under any, holds none (as
    :func:`~laios.execution.redaction.secret_values` reads them)."""
    if type(parameters) is not dict or len(parameters) > _MAX_KEPT_PARAMETERS:
        return None
    chars = 0
    kept: dict[Any, Any] = {}
    fields: SecretFields | None = None
    asked = False  # (for fields, once an entry needs them)
    for key, value in parameters.items():
        kind = type(value)
        if kind is str or kind is bytes:
            chars += len(value)
            if chars > _MAX_KEPT_PARAMETER_CHARS:
                return None
            if kind is bytes or may_write_a_secret(value):
                kept[key] = value
                continue
        elif kind is int:
            if value.bit_length() > 64:
                return None
        elif kind is float:
            pass
        elif value is None or kind is bool:  # (never a secret, under any name)
            continue
        else:
            return None
        secret = _secret_name(key)
        if not secret:
            if not asked:
                fields, asked = rec.secret_fields(), True
            secret = fields is not None and bool(fields.inner(key))  # (declared by type)
        if secret:
            kept[key] = value
    return kept


#: Parameter names :func:`_secret_name` has read, and whether each looks secret: tasks of a
#: tool pass the same few, and reading one costs a microsecond (at most ``_MAX_NAMES_READ``
#: kept, of at most 64 characters each; past that, the table starts anew).
_names_read: dict[str, bool] = {}
_MAX_NAMES_READ = 4096


def _secret_name(key: Any) -> bool:
    """Whether a parameter name is secret-looking (see
    :func:`~laios.execution.redaction.is_secret_key`); any name that is not text is taken
    for one (read as the text it is written as, it may be)."""
    if type(key) is not str:
        return True
    known = _names_read.get(key)
    if known is None:
        known = is_secret_key(key)
        if len(key) <= 64:
            if len(_names_read) >= _MAX_NAMES_READ:
                _names_read.clear()
            _names_read[key] = known
    return known


def bounded_secrets(secrets: Sequence[str]) -> tuple[str, ...] | _Withheld | None:
    """``secrets`` as a finished record keeps them: ``None`` when there are none, a tuple of
    plain values, or ``WITHHELD`` when they pass ``MAX_KEPT_SECRET_CHARS`` characters."""
    if not secrets:
        return None
    total = 0
    for secret in secrets:
        total += len(secret)
        if total > MAX_KEPT_SECRET_CHARS:
            return WITHHELD
    return tuple(secrets)


def _secrets_of(rec: TaskRecord) -> Sequence[str] | None:
    """The secrets to scrub from text about the task of ``rec``: its parameters' while the
    record refers to the task, else those it kept (``None``: too many to keep)."""
    if rec.task is None:
        return rec.finished_secrets()
    return rec.parameter_secrets()


class RecordScope:
    """The records of one executor (or one standalone ``TaskMonitor``) inside a store.

    Task ids are chosen by callers and repeat; scoping keeps two executors that share a store
    from seeing each other's records, and a reused id inside one scope starts a fresh record.
    """

    __slots__ = (
        "__weakref__",
        "active_by_id",
        "capacity",
        "finished",
        "shadowed",
        "track_progress",
    )

    def __init__(self, capacity: int, *, track_progress: bool = True) -> None:
        """Create an empty scope retaining at most ``capacity`` finished records.

        ``track_progress=False`` keeps the scope's tasks out of the progress histories that the
        ``ExecutionMonitor`` reads.
        """
        self.capacity = capacity
        self.track_progress = track_progress
        self.active_by_id: dict[str, TaskRecord] = {}
        #: Older runs of an id still active while a newer run of it is in ``active_by_id``
        #: (oldest first): the one shown again when the newer run finishes.
        self.shadowed: dict[str, list[TaskRecord]] = {}
        self.finished: OrderedDict[str, TaskRecord] = OrderedDict()


def _leave_active(scope: RecordScope, rec: TaskRecord, key: str) -> None:
    """Take ``rec`` out of its scope's active runs of id ``key`` (as
    :func:`~laios.execution._records.record_id` gives it; caller holds the lock): a newer run
    with the same id stays shown."""
    active = scope.active_by_id
    other = active.pop(key, rec)
    if other is not rec:  # a newer run with the same id: it stays
        active[key] = other
    if scope.shadowed:
        _unshadow(scope, rec, key, other is rec)


def _unshadow(scope: RecordScope, rec: TaskRecord, key: str, shown: bool) -> None:
    """Forget a finished run among the older active runs of its id (``key``, as
    :func:`~laios.execution._records.record_id` gives it; caller holds the lock); when it was
    the run shown (``shown``), show the newest older run still active instead."""
    older = scope.shadowed.get(key)
    if not older:
        return
    if shown:
        scope.active_by_id[key] = older.pop()
    elif rec in older:
        older.remove(rec)
    if not older:
        del scope.shadowed[key]


class MetricStore:
    """A thread-safe, bounded, in-memory store of task records and aggregates.

    Args:
        record_capacity: Default number of finished-task records each scope retains (the
            newest are kept; older ones roll off).
        max_tool_labels: Distinct ``tool`` label values before further tools fold into
            ``"other"`` (the first tool folded is logged as a warning, as are the first error
            type and custom metric folded past the two caps below).
        max_error_types: Distinct ``error_type`` label values per tool before further ones fold
            into ``"other"``.
        max_tracked_ids: Task ids for which progress histories and custom metrics are kept
            (those reported about most recently; each table on its own).
        max_custom_metrics: Distinct (name, unit) pairs of custom metrics exported as
            aggregates before further ones fold into ``"other"``.
        clock: Where the store reads the time (``time()`` for timestamps, ``perf_counter()``
            for durations); the ``time`` module by default. Tests pass a clock they control.
        duration_buckets: Upper bounds (seconds) of the ``laios_task_duration_seconds``
            buckets: finite, greater than 0, strictly increasing, at most 40 (``+Inf`` is
            added); by default twelve bounds from 5 ms to 5 min (0.005, 0.025, 0.1, 0.25, 0.5,
            1, 2.5, 5, 10, 30, 60, 300).
        queue_wait_buckets: The same for ``laios_task_queue_wait_seconds``; by default 0.001,
            0.01, 0.1, 1, 10 and 60.
        labels: Constant labels added to every ``laios_*`` series of this store (not to
            ``laios_build_info``), such as ``{"pool": "search"}``, so that two pools of one
            process can be told apart. Stores with the same labels add up into the same
            series; stores with different ones are separate series. Names of at most 128
            characters follow Prometheus' rules and may not be ``tool``, ``outcome``, ``le``,
            ``error_type``, ``name``, ``unit``, ``version``, ``quantile`` or start with
            ``__``; values are non-empty strings of at most 128 characters; at most 10
            labels.

    Raises:
        ValueError: When a capacity is not a positive integer, or a bucket bound or a label
            breaks its rules.
        TypeError: When ``duration_buckets``, ``queue_wait_buckets`` or ``labels`` has the
            wrong type, or ``clock`` has no ``time()`` and ``perf_counter()`` methods.
    """

    def __init__(
        self,
        *,
        record_capacity: int = 10_000,
        max_tool_labels: int = 200,
        max_error_types: int = 50,
        max_tracked_ids: int = 10_000,
        max_custom_metrics: int = 100,
        clock: Clock | None = None,
        duration_buckets: Iterable[float] = DURATION_BUCKETS,
        queue_wait_buckets: Iterable[float] = QUEUE_WAIT_BUCKETS,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        self.record_capacity = positive_int("record_capacity", record_capacity)
        self.max_tool_labels = positive_int("max_tool_labels", max_tool_labels)
        self.max_error_types = positive_int("max_error_types", max_error_types)
        self.max_tracked_ids = positive_int("max_tracked_ids", max_tracked_ids)
        self.max_custom_metrics = positive_int("max_custom_metrics", max_custom_metrics)
        #: Upper bounds (seconds) of the duration histogram buckets (``+Inf`` not included).
        self.duration_buckets = check_buckets("duration_buckets", duration_buckets)
        #: Upper bounds (seconds) of the queue-wait histogram buckets.
        self.queue_wait_buckets = check_buckets("queue_wait_buckets", queue_wait_buckets)
        label_set = check_labels(labels)
        if clock is not None and not all(
            callable(getattr(clock, name, None)) for name in ("time", "perf_counter")
        ):
            # Read on every task: a wrong clock would fail each one as an internal error.
            raise TypeError(
                "clock must be an object with time() and perf_counter() methods (such as the "
                f"time module), got {type(clock).__name__}"
            )
        self.clock: Clock = time if clock is None else clock
        self._lock = threading.Lock()
        # The counters live in an object of their own, which exporters may keep after this
        # store is gone (see StoreCounts); the store reaches its parts directly (hot path).
        self._counts = StoreCounts(
            label_set,
            self.duration_buckets,
            self.queue_wait_buckets,
            # As checked (plain ints, not a NumPy integer) and at most MAX_COUNTED_LIMIT: what a
            # multiprocess file holds, and the other workers read.
            (
                min(self.max_tool_labels, MAX_COUNTED_LIMIT),
                min(self.max_error_types, MAX_COUNTED_LIMIT),
                min(self.max_custom_metrics, MAX_COUNTED_LIMIT),
            ),
        )
        self._active: dict[TaskRecord, None] = {}  # queued and running, in submission order
        self._slots = self._counts.slots
        self._slot_by_name: dict[str, ToolSlot] = {}
        # The ``unknown`` slot is made when an unknown tool is first asked for, so that a store
        # exports no ``tool="unknown"`` series before then.
        self._unknown: ToolSlot | None = None
        self._queue_depth = 0
        self._runners: weakref.WeakSet[Any] = weakref.WeakSet()
        self._progress: OrderedDict[str, _ProgressHistory] = OrderedDict()
        self._scopes: weakref.WeakSet[RecordScope] = weakref.WeakSet()
        # Keyed for O(1) adding and removal (see _listener_key), in the order added;
        # _notify calls a snapshot, made again after a change (None until then).
        self._progress_listeners: dict[object, ProgressListener] = {}
        self._progress_snapshot: tuple[ProgressListener, ...] | None = ()
        # Likewise keyed (the one check per task is whether it is empty), called through a
        # snapshot made again after a change.
        self._finish_listeners: dict[object, FinishListener] = {}
        self._finish_snapshot: tuple[FinishListener, ...] | None = ()
        #: One log of a listener's failures a minute, per listener: it runs on every task.
        self._listener_errors = WarningLimiter(LISTENER_ERROR_INTERVAL)
        #: One warning a minute per custom metric whose samples would overflow its sum.
        self._sum_overflows = WarningLimiter()
        self._custom: OrderedDict[str, _CustomSamples] = OrderedDict()
        self._custom_totals = self._counts.custom
        self._failures: deque[_Failure] = deque(maxlen=MAX_RECENT_FAILURES)
        #: Runs a ``TaskMonitor`` started and has not stopped, oldest first (see
        #: :meth:`monitor_started`): at most ``record_capacity``.
        self._standalone: dict[TaskRecord, None] = {}
        self._evicted_runs = 0
        #: The caps (keys of _FOLDED) past which this store has counted a label under
        #: ``other``, which it has logged (see _first_fold).
        self._folded: set[str] = set()
        #: Whether a non-finite reading of the clock was warned of (see _clock_fault).
        self._clock_faulted = False
        #: Whether a reading of the clock's time() that is no Unix time was (see _wall_fault).
        self._wall_faulted = False
        reset_after_fork(self)

    def __reduce_ex__(self, protocol: Any) -> Any:
        """Refuse to be pickled or copied, saying why: a store is its process's own.

        Raises:
            TypeError: Always (also for ``copy.copy`` and ``copy.deepcopy``).
        """
        raise TypeError(
            "a MetricStore cannot be pickled or copied, it is its process's own: call "
            "get_performance_monitor() where it is used (in a tool's method), not kept on an "
            "object sent to another process"
        )

    def after_fork_in_child(self) -> None:
        """In a child made by ``os.fork()``: start from zero (the child counts and keeps its
        own tasks only; the parent's are the parent's), with a lock of its own.

        Registered runners and progress listeners stay (they belong to the executors and
        monitors the child inherited, which reset themselves).

        The parent's tasks in flight read as finished here: one still running on the thread
        that forked (a tool that forked, and returns in the child too) ends in the child
        counting nothing, as a task finished already does (the run is the parent's).
        """
        self._lock = threading.Lock()
        self._counts.reset()  # in place: an exporter may hold the counts
        for rec in self._active:
            rec.state = "finished"
        self._active = {}
        self._slot_by_name = {}
        self._unknown = None
        self._queue_depth = 0
        self._progress = OrderedDict()
        self._custom = OrderedDict()
        self._failures = deque(maxlen=MAX_RECENT_FAILURES)
        self._standalone = {}
        self._evicted_runs = 0
        self._folded = set()
        for scope in list(self._scopes):
            scope.active_by_id = {}
            scope.shadowed = {}
            scope.finished = OrderedDict()

    # -- labels -------------------------------------------------------------------------

    @property
    def labels(self) -> dict[str, str]:
        """The constant labels of this store's series (a copy; empty when none were given)."""
        return dict(self._counts.labels)

    @property
    def counts(self) -> StoreCounts:
        """The counters and histograms of this store, in an object that does not refer back to
        the store: what an exporter keeps so that a gone store's counts are not lost (see
        :class:`~laios.execution.prometheus.StoreCollector`)."""
        return self._counts

    def _new_slot(self, label: str) -> ToolSlot:
        return self._counts.new_slot(label)

    def tool_slot(self, name: str, registered: bool) -> ToolSlot:
        """Return the aggregate slot for a tool, applying the label rules.

        A name that is not registered is labelled ``unknown`` and never takes a place under the
        cap, so unknown names cannot crowd out registered tools; so is an empty name (no tool
        is registered without a name, and Prometheus reads ``tool=""`` as no label at all).
        Past ``max_tool_labels`` distinct registered names, further names share the ``other``
        slot. A name longer than ``MAX_ID_CHARS`` is kept (as its slot's label, and to find the
        slot again) as :func:`~laios.execution._records.record_id` gives it: its first
        characters and a digest of the whole name, so that huge names cost what short ones do.
        """
        if not registered or not name:
            unknown = self._unknown
            if unknown is None:
                with self._lock:
                    unknown = self._unknown
                    if unknown is None:
                        unknown = self._unknown = self._slots.get(TOOL_UNKNOWN) or self._new_slot(
                            TOOL_UNKNOWN
                        )
            return unknown
        slot = self._slot_by_name.get(name)
        if slot is not None:
            return slot
        if len(name) > MAX_ID_CHARS:  # (never a key of _slot_by_name: looked up as kept)
            name = record_id(name)
        first_fold = False
        with self._lock:
            slot = self._slot_by_name.get(name)
            if slot is None:
                named = (
                    len(self._slots) - (TOOL_UNKNOWN in self._slots) - (TOOL_OTHER in self._slots)
                )
                if name in (TOOL_UNKNOWN, TOOL_OTHER) or named >= self.max_tool_labels:
                    slot = self._slots.get(TOOL_OTHER) or self._new_slot(TOOL_OTHER)
                    # (a tool named unknown is no tool past the cap)
                    first_fold = name != TOOL_UNKNOWN and self._first_fold(
                        "max_tool_labels", name, TOOL_OTHER
                    )
                else:
                    slot = self._new_slot(name)
                if len(self._slot_by_name) < self.max_tool_labels * 4:
                    self._slot_by_name[name] = slot
        if first_fold:
            self._warn_folded("max_tool_labels", name)
        return slot

    def _first_fold(self, cap: str, given: object, counted: object) -> bool:
        """Whether ``given``, counted as ``counted``, is the first label the store counts under
        ``other`` past ``cap`` (the option setting it, a key of ``_FOLDED``); the caller holds
        the lock, and calls :meth:`_warn_folded` once it is released when it is."""
        if counted == given or cap in self._folded:
            return False
        self._folded.add(cap)
        return True

    def _warn_folded(self, cap: str, *names: str) -> None:
        """Log that a label was first counted under ``other`` past ``cap``: ``names`` are what
        the message quotes (cut: a tool's name may be any size), then the cap's value."""
        _log.warning(_FOLDED[cap], *(shorten(name, 200) for name in names), getattr(self, cap))

    # -- scopes and pools ---------------------------------------------------------------

    def new_scope(self, capacity: int | None = None, *, track_progress: bool = True) -> RecordScope:
        """Create a scope for one executor or monitor (``capacity`` defaults to the store's)."""
        records = self.record_capacity if capacity is None else positive_int("capacity", capacity)
        scope = RecordScope(records, track_progress=track_progress)
        with self._lock:
            self._scopes.add(scope)
        return scope

    def register_runner(self, runner: Any) -> None:
        """Count a runner in ``laios_executor_workers``, ``laios_executor_busy_workers`` and
        ``laios_executor_abandoned_threads`` while it lives (read from its ``stats`` when the
        gauges are read: ``workers``, ``busy`` and ``abandoned``)."""
        with self._lock:
            self._runners.add(runner)

    # -- the task lifecycle ---------------------------------------------------------------

    def task_submitted(
        self,
        scope: RecordScope | None,
        task: Any,
        tool: str,
        slot: ToolSlot,
        *,
        running: bool,
    ) -> TaskRecord:
        """Record that a task was accepted; ``running=True`` when it starts at once.

        A ``scope`` of ``None`` keeps no per-task record (monitoring disabled); the aggregates
        are still counted.
        """
        rec = TaskRecord(task.id, tool)
        rec.scope = scope
        rec.slot = slot
        rec.task = task
        return self.submit_record(rec, running=running)

    def submit_record(self, rec: TaskRecord, running: bool) -> TaskRecord:
        """Like :meth:`task_submitted`, for a record the caller built (with ``task_id``,
        ``tool``, ``scope``, ``slot`` and ``task`` set)."""
        now = self.clock.perf_counter()
        if now - now != 0.0:  # NaN or an infinity (one comparison for a sound clock)
            self._clock_fault(now)
        scope = rec.scope
        slot = rec.slot
        assert slot is not None
        rec.submitted_mono = now
        if running:  # the record is not shared yet: fill it in before taking the lock
            rec.state = "running"
            rec.started_mono = now
            start_time = self.clock.time()
            if start_time - start_time != 0.0:  # NaN or an infinity (one comparison)
                start_time = self._wall_fault(start_time)
            rec.start_time = start_time
            rec.ran = True
        else:
            rec.state = "queued"
        lock = self._lock
        if lock.locked():  # (no lock convoy between callers: see _locks)
            wait_while_held(lock)
        with lock:  # (not acquire(): a Ctrl-C there would leave it held, see _locks)
            if scope is not None:
                key = rec.task_id
                if len(key) > MAX_ID_CHARS:
                    key = record_id(key)
                shadowed = scope.active_by_id.get(key)
                if shadowed is not None and shadowed is not rec:
                    # The id is running already: that run stays known (once, when recorded
                    # again after a Ctrl-C landed here).
                    older = scope.shadowed.setdefault(key, [])
                    if not older or older[-1] is not shadowed:
                        older.append(shadowed)
                scope.active_by_id[key] = rec
            # From here on, no call: nowhere for a Ctrl-C to land (Python 3.11+ handles a
            # signal as a function begins or a C call returns; 3.10 may between any two of
            # these few steps), so a record is active exactly when it is counted in flight or
            # queued (see record_submission).
            self._active[rec] = None
            if running:
                slot.in_flight += 1
                wait = slot.queue_wait  # a wait of zero: counted into the first bucket
                wait.buckets[0] += 1
                wait.count += 1
            else:
                self._queue_depth += 1
            notify = running and bool(self._progress_listeners)
        if notify and scope is not None and scope.track_progress:
            self._notify(_starting(rec), rec)
        return rec

    def record_submission(self, rec: TaskRecord, running: bool) -> None:
        """Record ``rec`` as :meth:`submit_record` does, unless that is done: after an
        exception (a Ctrl-C) escaped :meth:`submit_record`, which may have landed before the
        record was made active, or came from a progress listener once it was."""
        with self._lock:
            done = rec in self._active or rec.state == "finished"
        if not done:
            self.submit_record(rec, running)

    def monitor_started(
        self, scope: RecordScope, task: Any, tool: str, slot: ToolSlot
    ) -> TaskRecord:
        """Record that a ``TaskMonitor`` started tracking ``task`` as running
        (``start_monitoring``): a run only :meth:`monitor_stopped` finishes.

        A store tracks at most ``record_capacity`` such runs in flight at once, across all its
        monitors: one more evicts the oldest, which stops being tracked (it leaves the running
        tasks and ``laios_tasks_in_flight``, lets its task go and counts under no outcome) and
        is counted in :attr:`evicted_runs`; the first eviction of a store is logged. Tasks an
        executor runs are never evicted.
        """
        rec = self.task_submitted(scope, task, tool, slot, running=True)
        evicted: TaskRecord | None = None
        with self._lock:
            if rec.state == "running":  # (not stopped by another thread meanwhile)
                standalone = self._standalone
                standalone[rec] = None
                if len(standalone) > self.record_capacity:
                    evicted = next(iter(standalone))
                    del standalone[evicted]
                    self._evict(evicted)
                    self._evicted_runs += 1
                    if self._evicted_runs > 1:
                        evicted = None  # (logged once per store)
        if evicted is not None:
            _log.warning(
                "more than %d runs started with TaskMonitor.start_monitoring() are in flight in "
                "one store (its record_capacity): the oldest, of task %r (tool %r), is no longer "
                "tracked as running. Call stop_monitoring() for every run started; further "
                "evictions are counted in MetricStore.evicted_runs, not logged",
                self.record_capacity,
                shorten(evicted.task_id, 64),
                shorten(evicted.tool, 64),
            )
        return rec

    def monitor_stopped(self, rec: TaskRecord, outcome: str, status: Any) -> bool:
        """Finish a run :meth:`monitor_started` recorded (as :meth:`task_finished`)."""
        with self._lock:
            self._standalone.pop(rec, None)
        return self.task_finished(rec, outcome=outcome, status=status)

    def _evict(self, rec: TaskRecord) -> None:
        """Stop tracking a running record, counting no outcome (caller holds the lock)."""
        if rec.state != "running":
            return
        self._active.pop(rec, None)
        slot = rec.slot
        assert slot is not None
        slot.in_flight -= 1
        scope = rec.scope
        if scope is not None:
            _leave_active(scope, rec, record_id(rec.task_id))
        rec.state = "finished"  # (with no outcome: it is in no table of the store any more)
        rec.task = None
        rec.checkpoint_listener = None

    @property
    def evicted_runs(self) -> int:
        """Runs started with ``TaskMonitor.start_monitoring`` and never stopped that this store
        stopped tracking, because more than ``record_capacity`` were in flight at once."""
        return self._evicted_runs

    def _read_mono(self) -> float:
        """The clock's ``perf_counter()``, warned of when it is not a finite number."""
        now = self.clock.perf_counter()
        if now - now != 0.0:  # NaN or an infinity
            self._clock_fault(now)
        return now

    def _clock_fault(self, reading: float) -> None:
        """The clock's ``perf_counter()`` read ``reading``, NaN or an infinity: warn once per
        store (the caller does not hold the lock). Every span it is part of counts as 0 s."""
        with self._lock:
            if self._clock_faulted:
                return
            self._clock_faulted = True
        _log.warning(
            "the clock of a MetricStore (%s) read %r from perf_counter(): every duration or "
            "queue wait that involves such a reading counts as 0 s. Pass a clock whose "
            "perf_counter() gives finite seconds (further such readings are not logged)",
            shorten(qualified_type_name(type(self.clock)), 200),
            reading,
        )

    def _read_wall(self) -> float:
        """The clock's ``time()``; the system's time in place of a reading that is not a
        finite number (warned of)."""
        now = self.clock.time()
        if now - now != 0.0:  # NaN or an infinity
            now = self._wall_fault(now)
        return now

    def _wall_fault(self, reading: float) -> float:
        """The clock's ``time()`` read ``reading``, which is no Unix time (NaN, an infinity, or
        out of a ``datetime``'s range): warn once per store (the caller does not hold the
        lock), and return the system's time, to use in its place."""
        with self._lock:
            warned, self._wall_faulted = self._wall_faulted, True
        if not warned:
            _log.warning(
                "the clock of a MetricStore (%s) read %r from time(), which is no Unix time: "
                "the system's time.time() is used in place of every such reading. Pass a "
                "clock whose time() gives finite Unix seconds (further such readings are not "
                "logged)",
                shorten(qualified_type_name(type(self.clock)), 200),
                reading,
            )
        return time.time()

    def task_started(self, rec: TaskRecord) -> None:
        """Record that a queued task's tool is about to run (observes its queue wait)."""
        now = self.clock.perf_counter()
        start_time = self.clock.time()
        if now - now != 0.0:  # NaN or an infinity (one comparison for a sound clock)
            self._clock_fault(now)
        if start_time - start_time != 0.0:  # (likewise)
            start_time = self._wall_fault(start_time)
        # Its submission time is written once, before the record is shared. A wait that is
        # negative (a clock that stepped back) or not finite (a reading of NaN or an infinity,
        # now or then, warned of as it was read) is no time.
        wait = now - rec.submitted_mono
        if not 0.0 <= wait < _INF:
            wait = 0.0
        lock = self._lock
        if lock.locked():  # (no lock convoy between callers: see _locks)
            wait_while_held(lock)
        with lock:  # (not acquire(): a Ctrl-C there would leave it held, see _locks)
            if rec.state != "queued":
                return
            self._queue_depth -= 1
            rec.state = "running"
            rec.started_mono = now
            rec.start_time = start_time
            rec.ran = True
            slot = rec.slot
            assert slot is not None
            slot.in_flight += 1
            slot.queue_wait.observe(wait, None)
            if rec.progress_count:  # (updates made while it was queued come before STARTING)
                rec.progress_at_start = rec.progress_count
            # The STARTING update is derived from the record when read; built here to notify.
            notify = False
            if self._progress_listeners:
                scope = rec.scope
                notify = scope is not None and scope.track_progress
        if notify:
            self._notify(_starting(rec), rec)

    def _settle(self, rec: TaskRecord) -> ProgressUpdate | None:
        """Move a record that reads as finished from the active ones to its scope's ring of
        finished ones (caller holds the lock). Done again, it changes nothing: a record still
        active has not settled, as this leaves the active ones last.

        Returns:
            The record's final progress update, when its scope's listeners are to hear it.
        """
        update = None
        scope = rec.scope
        if len(rec.tool) > MAX_ID_CHARS:  # (a name nobody registered may be any size)
            rec.tool = shorten(rec.tool, MAX_ID_CHARS)
        if scope is not None:  # from its active records to its ring of finished ones
            task_id = rec.task_id
            if len(task_id) > MAX_ID_CHARS:  # kept bounded from now on (see record_id)
                task_id = rec.task_id = record_id(task_id)
            _leave_active(scope, rec, task_id)
            finished = scope.finished
            if finished.setdefault(task_id, rec) is not rec:  # the id ran before
                del finished[task_id]
                finished[task_id] = rec
            if len(finished) > scope.capacity:
                finished.popitem(last=False)
            if scope.track_progress and self._progress_listeners:
                update = _final(rec)
        del self._active[rec]
        return update

    def task_finished(
        self,
        rec: TaskRecord,
        outcome: str,
        status: Any,
        error_type: str | None = None,
        cpu_time: float = 0.0,
        exemplar: tuple[str, str] | None = None,
        unstarted: bool = False,
    ) -> bool:
        """Record a task's one and only outcome.

        Args:
            rec: The record returned by :meth:`task_submitted`.
            outcome: ``success``, ``error``, ``timeout``, ``cancelled`` or ``rejected``.
            status: The task's final ``TaskStatus``.
            error_type: A bounded category for failures (class name or a fixed word).
            cpu_time: CPU seconds the tool spent in its thread.
            exemplar: ``(trace_id, span_id)`` of the task's sampled span, if any.
            unstarted: Its tool never began, although :meth:`task_started` may have counted
                it as started (ended as its worker took it up): recorded as never started.

        Returns:
            ``False`` when the record had already finished (nothing is counted twice).
        """
        if rec.kept_secrets is None and rec.task is not None and rec.state != "finished":
            # For text about the task after its end (it lets the task go); before the lock,
            # as it may read the parameters. (Of one with no parameters, nothing: see Job.)
            rec.keep_secrets()
        now = self.clock.perf_counter()
        end_time = self.clock.time()
        if now - now != 0.0:  # NaN or an infinity (one comparison for a sound clock)
            self._clock_fault(now)
        if end_time - end_time != 0.0:  # (likewise)
            end_time = self._wall_fault(end_time)
        folded: str | None = None  # an error type first counted under other past its cap
        lock = self._lock
        if lock.locked():  # (no lock convoy between callers: see _locks)
            wait_while_held(lock)
        with lock:  # (not acquire(): a Ctrl-C there would leave it held, see _locks)
            state = rec.state
            if state == "finished":
                if rec in self._active:  # a Ctrl-C landed as it was recorded: settle it
                    self._settle(rec)
                return False
            slot = rec.slot
            assert slot is not None
            started = state == "running" and not unstarted
            duration = now - rec.started_mono if started else 0.0
            # Its end read (by another thread) before its start, a clock that stepped back, or
            # one that read NaN or an infinity (warned of above): no time.
            if not 0.0 <= duration < _INF:
                duration = 0.0
            # From here to its state, no call: nowhere for a Ctrl-C to land (Python 3.11+
            # handles a signal as a function begins or a C call returns; 3.10 may between any
            # two of these few steps), so a record reads as finished exactly when its counts in
            # flight and queued are settled. Its end first, then its
            # state: views read a record without the lock, and one that reads as finished must
            # show how it ended.
            if state == "running":
                slot.in_flight -= 1
                if not started:  # counted as started (its queue wait too), yet never was
                    rec.ran = False
            elif state == "queued":
                self._queue_depth -= 1
            if not started:  # never started: queued (timed out or cancelled), or rejected
                rec.start_time = end_time
                rec.started_mono = now
            rec.end_time = end_time
            rec.execution_time = duration
            rec.outcome = outcome
            rec.status = status
            rec.task = None
            rec.state = "finished"
            try:
                # (a Ctrl-C that lands from here on costs the task at most its counts, its
                # final progress update and its finish listeners' event: see Job._conclude)
                if state == "queued" and outcome != "rejected":
                    # Its wait counts too, or queue-wait quantiles would hide the longest ones;
                    # but a rejected task was refused, it never waited for a worker.
                    slot.queue_wait.observe(seconds_between(now, rec.submitted_mono), None)
                # Fields still at their class defaults are left alone: setting them would add
                # entries to every retained record.
                if cpu_time:
                    rec.cpu_time = cpu_time
                if error_type is not None:
                    rec.error_type = error_type
                if rec.checkpoint_listener is not None:
                    rec.checkpoint_listener = None
                if rec.progress_count:  # (they come before the final update)
                    rec.progress_at_end = rec.progress_count
                histogram = slot.outcomes.get(outcome) or slot.outcome(outcome)
                histogram.observe(duration, exemplar, end_time)
                if outcome == "success" or not rec.attempt:  # a success is never retried
                    results = slot.results
                    results[outcome] = results.get(outcome, 0) + 1
                if outcome != "success" and outcome in ERROR_OUTCOMES:
                    if error_type is not None:
                        # (as counted: bounded)
                        counted = slot.count_error(error_type, exemplar, end_time)
                        if self._first_fold("max_error_types", error_type, counted):
                            folded = error_type
                        error_type = counted
                    if outcome != "cancelled":  # (the caller's choice: not a failure to show)
                        task_id, tool = rec.task_id, rec.tool
                        self._failures.append(
                            (
                                task_id if len(task_id) <= MAX_TEXT else shorten(task_id, MAX_TEXT),
                                tool if len(tool) <= MAX_TEXT else shorten(tool, MAX_TEXT),
                                outcome,
                                error_type,
                                end_time,
                                duration,
                                rec.trace_id,
                                rec.retries + 1,
                            )
                        )
            finally:
                update = self._settle(rec)
        if folded is not None:
            self._warn_folded("max_error_types", folded, slot.label)
        try:
            if update is not None:
                self._notify(update, rec)
        finally:  # (a progress listener's Ctrl-C goes on once the finish listeners heard)
            if self._finish_listeners:  # (the only cost of the seam while nobody listens)
                wait = seconds_between(rec.started_mono, rec.submitted_mono)
                self._tell_finished(
                    FinishedTask(
                        slot.label,
                        outcome,
                        duration,
                        wait,
                        rec.ran,
                        error_type,
                        exemplar,
                        self._counts.labels,
                    )
                )
        return True

    def _tell_finished(self, event: FinishedTask) -> None:
        listeners = self._finish_snapshot
        if listeners is None:  # (changed since the last task: as many calls as listeners)
            with self._lock:
                listeners = self._finish_snapshot = tuple(self._finish_listeners.values())
        interrupt: KeyboardInterrupt | None = None
        for listener in listeners:
            try:
                refuse_unawaited(listener(event), "the finish listener", _PLAIN_LISTENER)
            except KeyboardInterrupt as exc:  # (the user's Ctrl-C is theirs: it goes on once
                # the other listeners, the OpenTelemetry metrics among them, heard the task)
                if interrupt is None:
                    interrupt = exc
            except BaseException as exc:  # (SystemExit, CancelledError: skipped all the same)
                self._listener_failed("finish", listener, exc, [])
        if interrupt is not None:
            raise interrupt

    def _listener_failed(
        self, kind: str, listener: object, exc: BaseException, secrets: Sequence[str] | None
    ) -> None:
        """Log a listener's exception with its traceback (scrubbed of ``secrets``; ``None``:
        secrets too many to keep, and the traceback is written ``[REDACTED]`` whole), at most
        once a minute per listener, saying how many failures were held back since. A listener
        is known by its ``id`` while it is added; removing it forgets its failures, so that a
        new listener given the same ``id`` has its own first failure logged."""
        held_back = self._listener_errors.should_log(f"{kind}:{id(listener)}")
        if held_back is None:
            return
        since = f"; {held_back} more failures of it since the last log" if held_back else ""
        message = (
            f"{kind} listener %s raised; it was skipped (logged at most once a minute per "
            f"listener{since})"
        )
        # (its repr, cut: a listener's own may raise, or be huge, and the log handler would
        # print a traceback of its own, or a megabyte of log, instead of the failure)
        shown = quoted(listener)
        if secrets is None:  # (a finished task whose secrets were too many to keep)
            _log.error(message + "\n%s", shown, REDACTED)
        elif not secrets:
            _log.error(message, shown, exc_info=exc)
        else:
            _log.error(message + "\n%s", shown, scrubbed_traceback(exc, secrets))

    def add_finish_listener(self, listener: FinishListener) -> None:
        """Call ``listener`` with a :class:`FinishedTask` at the end of every task from now on.

        It is called once per task, on the thread that recorded the outcome, after the store's
        lock is released, so it must be quick (the OpenTelemetry histograms of
        :mod:`laios.execution.otel_metrics` record there). An exception it raises is logged
        (at most once a minute per listener) and skipped. While no listener is added, the
        seam costs one check per task. Adding a listener that is added already (one equal to
        it: ``ended.append`` twice) changes nothing, as :meth:`logging.Logger.addHandler`.

        Adding and removing take the same time however many listeners there are (a hash
        lookup; a listener that cannot be hashed is compared with the others of its kind).
        A store holds at most :data:`MAX_FINISH_LISTENERS`: a listener lives as long as the
        store, so remove one you no longer need (an :func:`~laios.execution.otel_metrics.
        instrument_metrics` handle's ``uninstrument()`` removes its own).

        Raises:
            TypeError: When ``listener`` is not a plain callable (an async function's
                coroutines would never be awaited).
            ValueError: When the store holds :data:`MAX_FINISH_LISTENERS` listeners already
                (nothing is added).
        """
        check_listener(listener)
        with self._lock:
            if _add_listener(
                self._finish_listeners,
                listener,
                MAX_FINISH_LISTENERS,
                f"this store has {MAX_FINISH_LISTENERS} finish listeners, the most it holds: "
                "each is called at the end of every task until it is removed, so one added per "
                "task, executor or meter provider and never removed would slow every task for "
                "ever. Remove those you no longer need (remove_finish_listener; uninstrument() "
                "for an instrument_metrics handle)",
            ):
                self._finish_snapshot = None

    def remove_finish_listener(self, listener: FinishListener) -> None:
        """Stop calling ``listener``, or the listener added that is equal to it (no error when
        none was added)."""
        with self._lock:
            removed = _remove_listener(self._finish_listeners, listener)
            if removed is not None:
                self._finish_snapshot = None
        if removed is not None:  # (a new listener may get its id: see _listener_failed)
            self._listener_errors.forget(f"finish:{id(removed)}")

    @property
    def finish_listeners(self) -> tuple[FinishListener, ...]:
        """The listeners :meth:`add_finish_listener` added, in order."""
        with self._lock:
            return tuple(self._finish_listeners.values())

    def count_error(self, slot: ToolSlot, error_type: str) -> None:
        """Count a failure that has no task record (``laios_task_errors_total``): an error
        inside the executor before a task could be recorded."""
        with self._lock:
            counted = slot.count_error(error_type, None)
            first_fold = self._first_fold("max_error_types", error_type, counted)
        if first_fold:
            self._warn_folded("max_error_types", error_type, slot.label)

    def task_retried(self, slot: ToolSlot, error_type: str | None = None) -> None:
        """Count one retry of a tool (``laios_task_retries_total``), under the error type of the
        attempt that failed (``error`` when it had none)."""
        error_type = error_type or "error"
        with self._lock:
            counted = slot.count_retry(error_type)
            first_fold = self._first_fold("max_error_types", error_type, counted)
        if first_fold:
            self._warn_folded("max_error_types", error_type, slot.label)

    def result_returned(self, slot: ToolSlot, outcome: str) -> None:
        """Count the failed result of an ``execute_with_retry`` call after its last attempt
        (``laios_task_results_total``; its successes are counted as their attempt finishes)."""
        with self._lock:
            slot.results[outcome] = slot.results.get(outcome, 0) + 1

    def note_end(self, rec: TaskRecord, end_time: float, execution_time: float | None) -> bool:
        """Set ``end_time`` (and ``execution_time``, unless ``None``) of a record that has not
        finished, as :meth:`ExecutionMetrics.end <laios.execution.metrics.ExecutionMetrics.end>`
        reads them; the store sets them again when the task finishes.

        A record that has finished (on another thread, since its caller saw it running) keeps
        the end the store recorded: the one its result, its duration histogram and its
        ``"finished"`` milestone give.

        Returns:
            ``False`` when the record had finished, and was left as it was.
        """
        with self._lock:
            if rec.state == "finished":
                return False
            rec.end_time = end_time
            if execution_time is not None:
                rec.execution_time = execution_time
            return True

    def add_checkpoint(
        self, rec: TaskRecord, name: str, data: Mapping[str, Any] | None
    ) -> Checkpoint:
        """Append a checkpoint to a record and tell the record's listener (the task span).

        The record keeps a summary of ``data`` (see
        :func:`~laios.execution._records.summarize`), never ``data`` itself: at most
        ``MAX_DATA_BYTES`` of it, and changing ``data`` afterwards does not change it. The
        record keeps the name cut to 256 characters; the listener is given it whole. Past
        ``MAX_CHECKPOINTS_PER_TASK`` checkpoints, or ``MAX_RECORD_BYTES`` of names and data, a
        checkpoint is counted in ``checkpoints_dropped`` instead of being kept. The listener is
        given the checkpoint's name and time and ``data`` as passed, not copied: the span path
        reads only the part it records (bounded and redacted), however large ``data`` is.

        A record of a store that has finished (on another thread, since its caller saw it
        running) takes no checkpoint, and its listener is not told.

        Returns:
            The checkpoint as the record keeps it (even when it was dropped or ignored).
        """
        whole = printable(name, UNPRINTABLE_NAME)
        text = shorten(whole, 256)
        summary, size = summarize(data) if data is not None else ({}, 0)
        if not summary:  # (empty data costs what none does)
            size = 0
        point = Checkpoint(text, self._read_wall(), summary)
        size += text_size(text)
        with self._lock:
            if rec.state == "finished" and rec.slot is not None:
                # It finished (on another thread) since its caller saw it running: its
                # checkpoints stay as they were at its end (a detached record, with no slot,
                # takes checkpoints after its end).
                return point
            points = rec.checkpoints
            if len(points) >= MAX_CHECKPOINTS_PER_TASK or (
                rec.checkpoints_size + size > MAX_RECORD_BYTES
            ):
                rec.checkpoints_dropped += 1
            else:
                if points:
                    points.append(point)
                else:
                    rec.checkpoints = [point]
                rec.checkpoints_size += size
            listener = rec.checkpoint_listener
        if listener is not None:  # (the whole name: a secret across the cut is scrubbed whole)
            listener(rec, whole, point.timestamp, data)
        return point

    @property
    def abandoned_threads(self) -> int:
        """Abandoned calls still holding capacity across the registered runners: timed-out
        tools whose threads have not returned yet, async tools left running."""
        failed: list[tuple[object, Exception]] = []
        with self._lock:
            # Read from the runners, which track the threads themselves; a shut-down runner's
            # hung threads still count.
            _workers, _busy, abandoned = self._runner_stats(failed)
        self._stats_failed(failed)
        return abandoned

    def _runner_stats(self, failed: list[tuple[object, Exception]]) -> tuple[int, int, int]:
        """The registered runners' ``(workers, busy, abandoned)``, summed (each at most
        :data:`MAX_GAUGE`); a runner whose ``stats`` raises (one of the user's) is left out and
        added to ``failed``, to be logged once the lock is released (caller holds the lock)."""
        workers = busy = abandoned = 0
        for runner in self._runners:
            try:
                stats = runner.stats
                read = (int(stats.workers), int(stats.busy), int(stats.abandoned))
            except Exception as exc:
                failed.append((runner, exc))
                continue
            workers += read[0]
            busy += read[1]
            abandoned += read[2]
        return min(workers, MAX_GAUGE), min(busy, MAX_GAUGE), min(abandoned, MAX_GAUGE)

    def _stats_failed(self, failed: list[tuple[object, Exception]]) -> None:
        """Log the runners whose ``stats`` raised, at most once a minute per kind of runner."""
        for runner, exc in failed:
            kind = type(runner).__qualname__
            held_back = _STATS_ERRORS.should_log(kind)
            if held_back is None:
                continue
            since = f"; {held_back} more failures since the last log" if held_back else ""
            _log.warning(
                "the stats of runner %s raised; its workers, busy workers and abandoned threads "
                "are left out of the gauges (logged at most once a minute per kind of runner%s)",
                kind,
                since,
                exc_info=exc,
            )

    # -- progress (the ExecutionMonitor's data) -----------------------------------------------

    def now(self) -> datetime:
        """The store clock's wall time as a UTC ``datetime``: the timestamp of every progress
        update made for this store (by a ``ProgressTracker``, or a tool's own
        ``current_task().progress``), on the same clock as the updates derived from the task's
        record."""
        reading = self._read_wall()
        try:
            return datetime.fromtimestamp(reading, timezone.utc)
        except (ValueError, OverflowError, OSError):  # past what a datetime holds
            return _utc(self._wall_fault(reading))

    def _latest(self, task_id: str, *, progress: bool) -> TaskRecord | None:
        """The newest record of ``task_id`` in any scope (caller holds the lock): in each
        scope, its newest run in progress, else its newest run queued, else its latest finished.

        With ``progress``, only scopes that feed the ``ExecutionMonitor`` count.
        """
        best: TaskRecord | None = None
        for scope in self._scopes:
            if progress and not scope.track_progress:
                continue
            rec = _shown_run(scope, task_id)
            if rec is not None and (best is None or rec.submitted_mono > best.submitted_mono):
                best = rec
        return best

    def _runs(self, task_id: str, *, progress: bool) -> list[TaskRecord]:
        """Every record of ``task_id`` in any scope: active, shadowed by a newer run, or
        finished (caller holds the lock). What a clear forgets, so that none of them shows it
        again once it is the newest. With ``progress``, only scopes that feed the
        ``ExecutionMonitor`` count."""
        runs: list[TaskRecord] = []
        for scope in self._scopes:
            if progress and not scope.track_progress:
                continue
            runs.extend(scope.shadowed.get(task_id, ()))
            for table in (scope.active_by_id, scope.finished):
                rec = table.get(task_id)
                if rec is not None:
                    runs.append(rec)
        return runs

    def task_secrets(self, task_id: str, *, progress: bool = False) -> Sequence[str] | None:
        """The secret values of the parameters of the newest run of ``task_id`` (see
        :meth:`TaskRecord.parameter_secrets`), for the monitors to scrub what they are told
        about it; of a run that has finished, those its record kept (see
        :meth:`TaskRecord.keep_secrets`), and ``None`` when they were too many to keep: text
        about the task is then to be withheld whole. ``[]`` when no run is known.

        With ``progress``, those of the newest run whose progress the ``ExecutionMonitor``
        reads, or, when it has none, of the newest run of any kind (one an executor built with
        ``enable_monitoring=False`` runs, whose progress is kept apart).
        """
        key = record_id(task_id)
        with self._lock:
            rec = self._latest(key, progress=progress)
            newest = self._latest(key, progress=False) if progress else rec
        secrets = [] if rec is None else _secrets_of(rec)
        if secrets is not None and not secrets and newest is not rec and newest is not None:
            secrets = _secrets_of(newest)
        return secrets

    def record_progress(
        self, update: ProgressUpdate, rec: TaskRecord | None = None, *, keep_percent: bool = False
    ) -> ProgressUpdate:
        """Store a progress update (bounded history) and notify progress listeners.

        The history keeps the update with its message cut to ``MAX_TEXT`` characters and a
        summary of its details (see :func:`~laios.execution._records.summarize`), never the
        reporter's objects; listeners are given the update as kept (its details a copy, so that
        a listener changing them changes nothing kept). A history holds the newest
        ``MAX_PROGRESS_HISTORY`` updates that fit in ``MAX_RECORD_BYTES``.

        Args:
            update: The update.
            rec: The task's record when the caller has it (the run's own report: ignored,
                neither kept nor told to listeners, once the run has finished); otherwise
                the newest record with the update's task id keeps it (and, while running,
                shows the new progress).
                Updates about an id no executor knows are kept on their own, for the
                ``max_tracked_ids`` ids reported about most recently.
            keep_percent: Record the update at the percentage of the task's latest update
                (0 when it has none) in place of its own, read under the same hold of the
                lock as the update is kept: an update another thread records meanwhile is
                never undone (as it would be were the percentage read first, then recorded).

        Returns:
            The update as kept (shared with the history: copy it before handing it out).
        """
        update, size = _kept_update(update)
        own_report = rec is not None
        with self._lock:
            if keep_percent:
                latest = self._latest_locked(update.task_id)
                percent = latest.progress_percent if latest is not None else 0.0
                if percent != update.progress_percent:
                    update = replace(update, progress_percent=percent)
            if rec is None:
                rec = self._latest(update.task_id, progress=True)
            elif rec.state == "finished":
                # The run's own report, under way as the run finished on another thread (a
                # tool left running past its timeout): ignored, as one made after its end is,
                # so that its final update stays the last.
                return update
            if rec is not None:
                if rec.state != "finished":
                    rec.progress_percent = update.progress_percent
                    if update.message is not None:
                        rec.progress_message = update.message
                history = rec.progress_updates
                if history is None:
                    history = rec.progress_updates = _ProgressHistory()
                history.add(update, size)
                rec.progress_count += 1
            else:
                history = self._progress.get(update.task_id)
                if history is None:
                    history = _ProgressHistory()
                    self._progress[update.task_id] = history
                    if len(self._progress) > self.max_tracked_ids:
                        self._progress.popitem(last=False)
                else:  # (the least recently reported goes first, not one that keeps reporting)
                    self._progress.move_to_end(update.task_id)
                history.add(update, size)
            listeners = bool(self._progress_listeners)
        if listeners:
            self._notify(copy_update(update), rec, own_report=own_report)
        return update

    def _notify(
        self, update: ProgressUpdate, rec: TaskRecord | None, *, own_report: bool = False
    ) -> None:
        """Call the progress listeners with ``update``; for a run's ``own_report``, only
        while the run has not finished: a listener never hears it after the final update
        (a report a tool's thread made as the task ended, held up by a slow listener)."""
        listeners = self._progress_snapshot
        if listeners is None:  # (changed since the last update: as many calls as listeners)
            with self._lock:
                listeners = self._progress_snapshot = tuple(self._progress_listeners.values())
        interrupt: KeyboardInterrupt | None = None
        for listener in listeners:
            if own_report and rec is not None and rec.state == "finished":
                break
            try:
                refuse_unawaited(listener(update), "the progress listener", _PLAIN_LISTENER)
            except KeyboardInterrupt as exc:  # (the user's Ctrl-C is theirs: it goes on once
                # the other listeners have heard the update too)
                if interrupt is None:
                    interrupt = exc
            except BaseException as exc:  # (SystemExit, CancelledError: skipped all the same)
                # The update's details are the tool's own: its exception may quote a secret
                # (of a finished run whose secrets were too many to keep, any: ``None``).
                secrets = _secrets_of(rec) if rec is not None else []
                self._listener_failed("progress", listener, exc, secrets)
        if interrupt is not None:
            raise interrupt

    def latest_progress(self, task_id: str) -> ProgressUpdate | None:
        """The newest progress update for ``task_id``, or ``None``.

        The id is read as the monitors keep it, ``str(task_id)`` (see
        :func:`~laios.execution._checks.task_key`); so are those of :meth:`progress_history`
        and :meth:`custom_metrics`.

        Raises:
            TypeError: When ``task_id`` is a ``Task`` (pass ``task.id``).
        """
        history = self._kept_history(task_id)
        return copy_update(history[-1]) if history else None

    def progress_history(self, task_id: str) -> list[ProgressUpdate]:
        """Every retained progress update for ``task_id``, oldest first.

        The executor's own lifecycle updates (``STARTING`` and the final ``COMPLETED``,
        ``FAILED`` or ``CANCELLED``) are derived from the task's latest record instead of being
        stored, which keeps the per-task cost of progress tracking near zero. Each update's
        ``details`` are a copy: a reader changing them changes nothing kept.
        """
        return [copy_update(update) for update in self._kept_history(task_id)]

    def _kept_history(self, task_id: str) -> list[ProgressUpdate]:
        """The progress history of ``task_id`` as kept (see :meth:`progress_history`).

        Updates kept for the id before its latest run come first, then the run's, in the order
        they were recorded, the derived ``STARTING`` and final updates among them where the run
        started and ended: never ordered by their timestamps, which a wall clock that stands
        still or steps back would mix up. The id is read as the monitors keep it (see
        :func:`~laios.execution._checks.task_key`), then as records keep it (``record_id``).
        """
        task_id = record_id(task_key(task_id))
        with self._lock:
            parts = self._history_parts(task_id)
        return _joined_history(parts)

    def _latest_locked(self, task_id: str) -> ProgressUpdate | None:
        """The newest update of :meth:`_kept_history` for ``task_id`` (a record id; the
        caller holds the lock), or ``None``."""
        history = _joined_history(self._history_parts(task_id))
        return history[-1] if history else None

    def _history_parts(self, task_id: str) -> _HistoryParts:
        """What :meth:`_kept_history` is made of (caller holds the lock; see
        :func:`_joined_history`)."""
        history = list(self._progress.get(task_id, ()))
        rec = self._latest(task_id, progress=True)
        if rec is None:
            return history, [], 0, 0, None, None
        kept = list(rec.progress_updates or ())
        # (updates of the executor's own up to a clear_progress stay forgotten)
        cleared = rec.progress_cleared
        starting = final = None
        if rec.ran and rec.start_time is not None and cleared not in ("running", "finished"):
            starting = _starting(rec)
        if rec.state == "finished" and cleared != "finished":
            final = _final(rec)
        first = rec.progress_count - len(kept)  # the place of kept[0] among the run's updates
        started = max(rec.progress_at_start - first, 0)
        ended = max(rec.progress_at_end - first, started)
        return history, kept, started, ended, starting, final

    def clear_progress(self, task_id: str) -> None:
        """Forget the progress of ``task_id`` so far, of each of its runs the store knows;
        later updates are kept as usual. A run still queued or running stays listed (in
        :meth:`snapshot` and ``/status``), with no progress and no message until it reports
        again."""
        task_id = record_id(task_id)
        with self._lock:
            self._progress.pop(task_id, None)
            for rec in self._runs(task_id, progress=True):
                rec.progress_updates = None
                rec.progress_cleared = rec.state
                if rec.state != "finished":  # (what /status shows of it: forgotten too)
                    rec.progress_percent = 0.0
                    rec.progress_message = None

    def add_progress_listener(self, listener: ProgressListener) -> None:
        """Call ``listener`` with every progress update from now on (once: adding it again, or
        one equal to it, changes nothing), until :meth:`remove_progress_listener`.

        Adding and removing take the same time however many listeners there are (a hash
        lookup; a listener that cannot be hashed is compared with the others of its kind).
        A store holds at most :data:`MAX_PROGRESS_LISTENERS`: a listener lives as long as
        the store, not as a task, so remove one you no longer need; to follow one call, pass
        ``on_progress=`` to it instead, which goes away with the task.

        Raises:
            TypeError: When ``listener`` is not a plain callable (an async function's
                coroutines would never be awaited).
            ValueError: When the store holds :data:`MAX_PROGRESS_LISTENERS` listeners
                already (nothing is added).
        """
        check_listener(listener)
        with self._lock:
            if _add_listener(
                self._progress_listeners,
                listener,
                MAX_PROGRESS_LISTENERS,
                f"this store has {MAX_PROGRESS_LISTENERS} progress listeners, the most it "
                "holds: each is called with every update until it is removed, so one added "
                "per task and never removed would slow every update for ever. Remove those "
                "you no longer need (remove_progress_listener), or follow one call with "
                "its on_progress= instead",
            ):
                self._progress_snapshot = None

    def remove_progress_listener(self, listener: ProgressListener) -> None:
        """Stop calling ``listener``, or the listener added that is equal to it (no error when
        none was added)."""
        with self._lock:
            removed = _remove_listener(self._progress_listeners, listener)
            if removed is not None:
                self._progress_snapshot = None
        if removed is not None:  # (a new listener may get its id: see _listener_failed)
            self._listener_errors.forget(f"progress:{id(removed)}")

    # -- custom metrics (the PerformanceMonitor's data) ------------------------------------

    def record_custom(
        self,
        task_id: str,
        name: str,
        value: float,
        unit: str,
        exported: tuple[str, str] | None = None,
    ) -> None:
        """Keep a custom metric sample and add it to the exported aggregates, under
        ``exported`` (the name and unit as exported: scrubbed of the task's secrets) when
        given, else under ``name`` and ``unit``.

        A task id keeps its newest ``MAX_CUSTOM_SAMPLES`` samples, of all its metrics together,
        and may record at most ``max_custom_metrics`` distinct names. A negative or NaN
        sample, and one that would carry the exported sum past the largest float (it would
        stay ``+Inf`` for good), is kept with the task but not exported; the latter with a
        warning, at most one a minute per metric.
        """
        overflowed, folded = self._record_custom(task_id, name, value, unit, exported)
        if folded is not None:
            self._warn_folded("max_custom_metrics", *folded)
        if overflowed is not None and self._sum_overflows.should_log(repr(overflowed)) is not None:
            _log.warning(
                "a sample of custom metric %r (unit %r) would carry its exported sum past the "
                "largest float; it is kept with its task but not exported "
                "(laios_custom_metric_count and _sum stay as they were)",
                *overflowed,
            )

    def _record_custom(
        self, task_id: str, name: str, value: float, unit: str, exported: tuple[str, str] | None
    ) -> tuple[tuple[str, str] | None, tuple[str, str] | None]:
        """:meth:`record_custom`'s work: the exported key when the sample would overflow the
        sum (and was not exported), else ``None``; and the key when it is the first the store
        counts under ``other`` past ``max_custom_metrics``, else ``None``."""
        timestamp = self._read_wall()
        task_id = record_id(task_id)
        with self._lock:
            rec = self._latest(task_id, progress=False)
            if rec is not None:  # kept with the task's record, bounded by the record ring
                per_task = rec.custom
                if per_task is None:
                    # Samples recorded before the run move onto its record: one place, one
                    # bound of samples and of names per task id.
                    per_task = self._custom.pop(task_id, None) or _CustomSamples()
                    rec.custom = per_task
            else:
                per_task = self._custom.get(task_id)
                if per_task is None:
                    per_task = _CustomSamples()
                    self._custom[task_id] = per_task
                    if len(self._custom) > self.max_tracked_ids:
                        self._custom.popitem(last=False)
                else:  # (the least recently recorded for goes first, not one that keeps recording)
                    self._custom.move_to_end(task_id)
            names = per_task.names
            known = names.get(name)
            if known is None:
                if len(names) >= self.max_custom_metrics:
                    raise ValueError(
                        f"task {shorten(task_id, 64)!r} already has {self.max_custom_metrics} "
                        "distinct custom metrics; reuse metric names instead of encoding values"
                    )
                known = names[name] = name
            per_task.samples.append((known, value, unit, timestamp))
            if not value >= 0:  # (negative, or NaN: a sum it joined would stay NaN for good)
                return None, None  # kept with the task, but a summary's sum may never go down
            key = (name, unit) if exported is None else exported
            folded = None
            totals = self._custom_totals.get(key)
            if totals is None:
                if len(self._custom_totals) >= self.max_custom_metrics:
                    if self._first_fold("max_custom_metrics", key, _CUSTOM_OTHER):
                        folded = key
                    key = _CUSTOM_OTHER
                    totals = self._custom_totals.setdefault(key, [0.0, 0.0])
                else:
                    totals = self._custom_totals[key] = [0.0, 0.0]
            total = totals[1] + value
            if total == math.inf:  # (both finite): a sum at +Inf would never move again
                return key, folded
            totals[0] += 1
            totals[1] = total
            return None, folded

    def custom_metrics(self, task_id: str) -> dict[str, list[dict[str, Any]]]:
        """The retained custom metric samples of ``task_id`` (copies)."""
        task_id = record_id(task_key(task_id))
        with self._lock:
            rec = self._latest(task_id, progress=False)
            sources = [self._custom.get(task_id), rec.custom if rec is not None else None]
            samples = [list(source.samples) for source in sources if source is not None]
        merged: dict[str, list[dict[str, Any]]] = {}
        for kept in samples:
            for name, value, unit, timestamp in kept:
                entry = {"value": value, "unit": unit, "timestamp": timestamp}
                merged.setdefault(name, []).append(entry)
        return merged

    def clear_custom(self, task_id: str | None = None) -> None:
        """Forget the custom samples of one task id (of each of its runs the store knows), or
        of all (exported totals stay: counters)."""
        with self._lock:
            if task_id is None:
                self._custom.clear()
                for scope in self._scopes:
                    for record in (*scope.finished.values(), *scope.active_by_id.values()):
                        record.custom = None
                    for older in scope.shadowed.values():
                        for record in older:
                            record.custom = None
            else:
                task_id = record_id(task_id)
                self._custom.pop(task_id, None)
                for record in self._runs(task_id, progress=False):
                    record.custom = None

    # -- reading ---------------------------------------------------------------------------

    def scope_records(self, scope: RecordScope) -> list[TaskRecord]:
        """Finished (oldest first) then active records of a scope."""
        with self._lock:
            return [*scope.finished.values(), *(r for r in self._active if r.scope is scope)]

    def find(self, scope: RecordScope, task_id: str) -> TaskRecord | None:
        """The record of ``task_id`` in ``scope`` that its views show (see
        :func:`_shown_run`), or ``None`` (also for an id that is not a string: no record has
        one)."""
        key = _scope_key(task_id)
        if key is None:
            return None
        with self._lock:
            return _shown_run(scope, key)

    def running(self, scope: RecordScope | None = None) -> list[TaskRecord]:
        """Records whose tool is running now (of one scope, or of the whole store)."""
        with self._lock:
            return [
                r
                for r in self._active
                if r.state == "running" and (scope is None or r.scope is scope)
            ]

    def active(self, scope: RecordScope, task_id: str) -> list[TaskRecord]:
        """Queued and running records of ``task_id`` in ``scope``, oldest first."""
        key = _scope_key(task_id)
        if key is None:
            return []
        with self._lock:
            shown = scope.active_by_id.get(key)
            if shown is None:
                return []
            return [*scope.shadowed.get(key, ()), shown]

    def clear_scope(self, scope: RecordScope, task_id: str | None = None) -> None:
        """Drop finished records of a scope (one id, or all)."""
        key = None if task_id is None else _scope_key(task_id)
        with self._lock:
            if task_id is None:
                scope.finished.clear()
            elif key is not None:
                scope.finished.pop(key, None)

    def snapshot(self) -> StoreSnapshot:
        """A consistent copy of every aggregate and the running tasks, for ``/status``.

        The copy is :meth:`aggregates` plus the running tasks and the latest failed tasks (at
        most :data:`MAX_RECENT_FAILURES`, oldest first); the cumulative buckets that quantiles
        need are computed after the lock is released.
        """
        read, running, failures = self.read_together()
        return StoreSnapshot(
            tools=[ToolSnapshot.from_aggregates(tool, read.labels) for tool in read.tools],
            running=running,
            custom=read.custom,
            **{field: getattr(read, field) for field in STORE_GAUGE_FIELDS},
            taken_at=self._read_wall(),
            failures=failures,
        )

    def read_together(
        self,
    ) -> tuple[StoreAggregates, list[RunningTaskSnapshot], tuple[FailedTaskSnapshot, ...]]:
        """:meth:`aggregates`, :meth:`running_snapshot` and :meth:`failures_snapshot`, read at
        one moment (under one hold of the store's lock), so that they agree: a task in flight
        in the counts is among the running tasks, and a failure listed is counted. Read one
        after the other, a task ending in between would be in flight in one and failed in
        another. What ``/status`` reads of each store."""
        now = self._read_mono()
        failed: list[tuple[object, Exception]] = []
        with self._lock:
            read = self._aggregates(failed)
            running = self._running(now)
            failures = list(self._failures)
        self._stats_failed(failed)
        return read, running, tuple(FailedTaskSnapshot(*failure) for failure in failures)

    def failures_snapshot(self) -> tuple[FailedTaskSnapshot, ...]:
        """The latest failed tasks, oldest first (``snapshot().failures`` without the
        aggregates)."""
        with self._lock:
            failures = list(self._failures)
        return tuple(FailedTaskSnapshot(*failure) for failure in failures)

    def running_snapshot(self) -> list[RunningTaskSnapshot]:
        """The tasks queued or running now, in submission order (``snapshot().running``
        without the aggregates)."""
        now = self._read_mono()
        with self._lock:
            return self._running(now)

    def _running(self, now: float) -> list[RunningTaskSnapshot]:
        # Caller holds the lock.
        labels = self._counts.labels
        return [
            RunningTaskSnapshot(
                task_id=r.task_id,
                tool=r.tool,
                state=r.state,
                # (a task recorded after ``now`` was read, before the lock was taken: 0)
                elapsed_seconds=seconds_between(now, r.started_mono or r.submitted_mono),
                progress_percent=r.progress_percent,
                message=r.progress_message,
                labels=labels,
            )
            for r in self._active
        ]

    def aggregates(self) -> StoreAggregates:
        """The exported aggregates only, copied as stored, for the fast ``/metrics`` rendering.

        Cheaper than :meth:`snapshot`: no running tasks, and histogram buckets are copied as
        they are (per bucket, not cumulative), so the lock is held only for the copying.
        """
        failed: list[tuple[object, Exception]] = []
        with self._lock:
            read = self._aggregates(failed)
        self._stats_failed(failed)
        return read

    def _aggregates(self, failed: list[tuple[object, Exception]]) -> StoreAggregates:
        # Caller holds the lock, and logs the runners added to ``failed`` once it is released.
        tools, custom = self._counts.read()
        workers, busy, abandoned = self._runner_stats(failed)
        return StoreAggregates(
            tools,
            custom,
            workers=workers,
            busy_workers=busy,
            queue_depth=self._queue_depth,
            abandoned_threads=abandoned,
            labels=self._counts.labels,
        )


_default_store: MetricStore | None = None
_default_lock = threading.Lock()


def get_default_store() -> MetricStore:
    """Return the process-wide store that every ``Executor`` shares unless given another."""
    global _default_store
    store = _default_store
    if store is None:
        with _default_lock:
            if _default_store is None:
                _default_store = MetricStore()
            store = _default_store
    return store


def store_or_private(store: object) -> MetricStore:
    """``store`` when it is a :class:`MetricStore`; a new private store when it is ``None``.

    Raises:
        TypeError: Otherwise (a monitor would fail at its first call instead).
    """
    if store is None:
        return MetricStore()
    not_a_class("store", store, "new_scope")
    if not isinstance(store, MetricStore):
        raise TypeError(f"store must be a MetricStore or None, got {type(store).__name__}")
    return store
