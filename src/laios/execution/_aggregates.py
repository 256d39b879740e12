"""Per-tool aggregates (counts, sums, histogram buckets) and the snapshots exporters read.

Everything here is O(tools × outcomes × buckets): the number of tasks run never changes the
size of an aggregate. The store updates these under its lock; snapshots are plain copies.
"""

from __future__ import annotations

import functools
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from itertools import accumulate
from typing import Any, NamedTuple

__all__ = [
    "DURATION_BUCKETS",
    "DURATION_OUTCOMES",
    "ERROR_TYPE_OTHER",
    "MAX_RECENT_FAILURES",
    "OUTCOMES",
    "QUEUE_WAIT_BUCKETS",
    "TOOL_OTHER",
    "TOOL_UNKNOWN",
    "CounterSnapshot",
    "CustomMetricSnapshot",
    "Exemplar",
    "FailedTaskSnapshot",
    "HistogramSnapshot",
    "LabelSet",
    "RawHistogram",
    "RunningTaskSnapshot",
    "StoreAggregates",
    "StoreCounts",
    "StoreSnapshot",
    "ToolAggregates",
    "ToolSlot",
    "ToolSnapshot",
    "every_outcome",
    "seconds_between",
]

#: Default upper bounds (seconds) of the duration histogram buckets: 5 ms to 5 min, the span
#: of the calls tools make (a database query, an HTTP request, a model call). Twelve bounds,
#: 2 to 3 times apart from 0.1 s to 1 min (where HTTP and model calls spend their time), 4 to
#: 5 times apart below and above; a scrape of 200 tools stays under a megabyte with them (see
#: docs/metrics.md, "Why these buckets").
DURATION_BUCKETS: tuple[float, ...] = (
    0.005,
    0.025,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
)
#: Default upper bounds (seconds) of the queue-wait histogram buckets, ten times apart: most
#: tasks start at once (the first bucket); a wait of a second or more means a pool too small
#: or held by hung tools, and 1 s, a bound, is where the alerting guide draws the line.
QUEUE_WAIT_BUCKETS: tuple[float, ...] = (0.001, 0.01, 0.1, 1.0, 10.0, 60.0)

#: Most failed tasks a snapshot lists (the newest; see :class:`FailedTaskSnapshot`).
MAX_RECENT_FAILURES = 20
#: Outcomes whose ``error_type`` is counted (``laios_task_errors_total``).
ERROR_OUTCOMES = frozenset({"error", "timeout", "cancelled", "rejected"})

#: Every outcome a task can end with.
OUTCOMES: tuple[str, ...] = ("success", "error", "timeout", "cancelled", "rejected")
_OUTCOME_SET = frozenset(OUTCOMES)
#: Outcomes whose durations are exported (``laios_task_duration_seconds``) and make the
#: ``/status`` percentiles: the tool ran to an end of its own. A rejected task never ran
#: (its duration is 0), a timed-out one's duration is its timeout, and a cancelled one's is
#: when the caller gave up; ``laios_tasks_total`` counts those.
DURATION_OUTCOMES: tuple[str, ...] = ("success", "error")

#: Constant labels of a store, ``(name, value)`` sorted by name: the key of its series.
LabelSet = tuple[tuple[str, str], ...]

#: ``tool`` label of a tool name that is not registered.
TOOL_UNKNOWN = "unknown"
#: ``tool`` label shared by registered tools past the label cap.
TOOL_OTHER = "other"
#: ``error_type`` label shared by error types past the cap.
ERROR_TYPE_OTHER = "other"


def every_outcome(recorded: Iterable[str]) -> list[str]:
    """The outcomes a counter by outcome writes: every one of :data:`OUTCOMES` (at 0 until it
    happens), then any other one ``recorded`` has, sorted."""
    return [*OUTCOMES, *sorted(set(recorded) - _OUTCOME_SET)]


class Exemplar(NamedTuple):
    """The trace of one observation, for Prometheus exemplars.

    A named tuple rather than a frozen dataclass: one is built per traced task, and a tuple is
    several times cheaper to build.
    """

    trace_id: str
    span_id: str
    value: float
    timestamp: float


_INF = float("inf")


def seconds_between(later: float, earlier: float) -> float:
    """``later - earlier``, two readings of a store's monotonic clock, as a span of seconds:
    ``0.0`` when that is negative (a clock that stepped back, or an end read by one thread
    before another recorded the start) or not a finite number (a clock that read NaN or an
    infinity). Every span a store or its views give is one of these."""
    span = later - earlier
    return span if 0.0 <= span < _INF else 0.0


#: Seconds a bucket's exemplar is kept before a newer observation replaces it. Prometheus reads
#: one exemplar per bucket per scrape (every few seconds at the most), so building one for every
#: traced task of a busy tool would be work nobody sees; a bucket that gets a new observation
#: still shows a trace from its last second.
EXEMPLAR_INTERVAL = 1.0

#: Builds an :class:`Exemplar` from a 4-tuple without the named tuple's Python-level
#: ``__new__`` (one is built per traced task).
_exemplar: Callable[[tuple[str, str, float, float]], Exemplar] = functools.partial(
    tuple.__new__, Exemplar
)

#: A histogram as it is stored: ``(count, sum, bucket counts, exemplars)``. The bucket counts are
#: per bucket, not cumulative (the last one is +Inf); an exemplar per bucket, or ``None``.
RawHistogram = tuple[int, float, tuple[int, ...], tuple[Exemplar | None, ...]]


class _Histogram:
    __slots__ = ("bounds", "buckets", "count", "exemplars", "first", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.first = bounds[0]  # a value up to it is counted without a search
        self.buckets = [0] * (len(bounds) + 1)  # last one is +Inf
        self.exemplars: list[Exemplar | None] = [None] * (len(bounds) + 1)
        self.count = 0
        self.sum = 0.0

    def observe(
        self, value: float, exemplar: tuple[str, str] | None, timestamp: float = 0.0
    ) -> None:
        """Count ``value``; with ``exemplar`` (trace id, span id) at ``timestamp`` (Unix time,
        from the store's clock), its bucket's exemplar is replaced unless the one it holds is
        less than :data:`EXEMPLAR_INTERVAL` old."""
        # Most values (quick tasks, short waits) land in the first bucket: no search for them.
        if value <= self.first:
            index = 0
            if value < 0.0:
                # An end read before its start: a clock that stepped back, or a task's end read
                # by one thread while another recorded its start. A negative value would take
                # the sum down (a counter reset to Prometheus) and below 0 (invalid OpenMetrics).
                value = 0.0
        else:
            index = bisect_left(self.bounds, value)
        self.buckets[index] += 1
        self.count += 1
        self.sum += value
        if exemplar is not None:
            held = self.exemplars[index]
            if held is None or not 0 <= timestamp - held.timestamp < EXEMPLAR_INTERVAL:
                self.exemplars[index] = _exemplar((exemplar[0], exemplar[1], value, timestamp))

    def snapshot(self) -> HistogramSnapshot:
        return HistogramSnapshot.from_raw(self.raw(), self.bounds)

    def raw(self) -> RawHistogram:
        return (self.count, self.sum, tuple(self.buckets), tuple(self.exemplars))


class _ErrorCount:
    __slots__ = ("count", "exemplar")

    def __init__(self) -> None:
        self.count = 0
        self.exemplar: Exemplar | None = None


class ToolSlot:
    """Aggregates of one ``tool`` label value: one histogram per outcome, and the rest."""

    __slots__ = (
        "duration_bounds",
        "errors",
        "in_flight",
        "label",
        "max_error_types",
        "outcomes",
        "queue_wait",
        "results",
        "retry_errors",
    )

    def __init__(
        self,
        label: str,
        max_error_types: int,
        duration_bounds: tuple[float, ...] = DURATION_BUCKETS,
        queue_wait_bounds: tuple[float, ...] = QUEUE_WAIT_BUCKETS,
    ) -> None:
        """Create empty aggregates for ``label``, with these histogram bucket bounds."""
        self.label = label
        self.max_error_types = max_error_types
        self.duration_bounds = duration_bounds
        self.outcomes: dict[str, _Histogram] = {}
        self.queue_wait = _Histogram(queue_wait_bounds)
        self.in_flight = 0
        self.errors: dict[str, _ErrorCount] = {}
        # Results returned to callers, by final outcome (after the retries of a call).
        self.results: dict[str, int] = {}
        # Retries by the error type of the attempt that was retried (bounded as ``errors``).
        self.retry_errors: dict[str, int] = {}

    def outcome(self, outcome: str) -> _Histogram:
        """The duration histogram of ``outcome``, created on its first use (the store holds its
        lock; it counts durations into it directly, see ``MetricStore.task_finished``)."""
        histogram = self.outcomes.get(outcome)
        if histogram is None:
            histogram = self.outcomes[outcome] = _Histogram(self.duration_bounds)
        return histogram

    def _bounded(self, counted: dict[str, Any], error_type: str) -> str:
        """``error_type``, or ``other`` when ``counted`` has no place left for a new type."""
        if error_type in counted or len(counted) < self.max_error_types:
            return error_type
        return ERROR_TYPE_OTHER

    def count_error(
        self, error_type: str, exemplar: tuple[str, str] | None, timestamp: float = 0.0
    ) -> str:
        """Count one failure of ``error_type`` (past the cap, as ``other``) and return the type
        it was counted as; with ``exemplar`` (trace id, span id), it becomes the type's
        exemplar at ``timestamp`` (Unix time, from the store's clock). The store holds its
        lock."""
        entry = self.errors.get(error_type)
        if entry is None:
            error_type = self._bounded(self.errors, error_type)
            entry = self.errors.get(error_type)
            if entry is None:
                entry = self.errors[error_type] = _ErrorCount()
        entry.count += 1
        if exemplar is not None:
            entry.exemplar = _exemplar((exemplar[0], exemplar[1], 1.0, timestamp))
        return error_type

    def count_retry(self, error_type: str) -> str:
        """Count one retry caused by a failure of ``error_type`` (past the cap, as ``other``)
        and return the type it was counted as; the store holds its lock."""
        retry_errors = self.retry_errors
        error_type = self._bounded(retry_errors, error_type)
        retry_errors[error_type] = retry_errors.get(error_type, 0) + 1
        return error_type

    def snapshot(self) -> ToolSnapshot:
        """A copy of these aggregates (see :meth:`ToolSnapshot.from_aggregates`)."""
        return ToolSnapshot.from_aggregates(self.aggregates())

    def aggregates(self) -> ToolAggregates:
        """A copy of these aggregates as they are stored (cheaper than :meth:`snapshot`)."""
        return ToolAggregates(
            tool=self.label,
            outcomes={name: h.raw() for name, h in self.outcomes.items()},
            queue_wait=self.queue_wait.raw(),
            in_flight=self.in_flight,
            errors={name: (entry.count, entry.exemplar) for name, entry in self.errors.items()},
            results=dict(self.results),
            retry_errors=dict(self.retry_errors),
            duration_bounds=self.duration_bounds,
            queue_wait_bounds=self.queue_wait.bounds,
        )


@dataclass(frozen=True, slots=True)
class HistogramSnapshot:
    """A histogram at one moment: count, sum and cumulative bucket counts (last is +Inf).

    ``bounds`` are the finite upper bounds of the buckets (one fewer than the counts).
    """

    count: int
    sum: float
    cumulative_buckets: tuple[int, ...]
    exemplars: tuple[Exemplar | None, ...]
    bounds: tuple[float, ...] = DURATION_BUCKETS

    @classmethod
    def from_raw(
        cls, raw: RawHistogram, bounds: tuple[float, ...] = DURATION_BUCKETS
    ) -> HistogramSnapshot:
        """The snapshot of a histogram copied as stored (per-bucket counts made cumulative)."""
        count, total, buckets, exemplars = raw
        return cls(count, total, tuple(accumulate(buckets)), exemplars, bounds)

    def quantile(self, q: float) -> float | None:
        """Estimate the ``q`` quantile (0–1) from the buckets, as Prometheus does.

        Returns ``None`` for an empty histogram. Values in the +Inf bucket report the highest
        finite bound.
        """
        if self.count == 0:
            return None
        bounds = self.bounds
        rank = q * self.count
        lower_bound = 0.0
        lower_count = 0
        for index, cumulative in enumerate(self.cumulative_buckets):
            if cumulative >= rank:
                if index >= len(bounds):
                    return bounds[-1]
                upper = bounds[index]
                in_bucket = cumulative - lower_count
                if in_bucket == 0:
                    return upper
                return lower_bound + (upper - lower_bound) * (rank - lower_count) / in_bucket
            lower_count = cumulative
            lower_bound = bounds[index] if index < len(bounds) else lower_bound
        return bounds[-1]


@dataclass(frozen=True, slots=True)
class CounterSnapshot:
    """A counter's value with the exemplar of its latest sampled increment."""

    value: int
    exemplar: Exemplar | None = None


@dataclass(frozen=True, slots=True)
class ToolSnapshot:
    """Aggregates of one ``tool`` label value (of the stores with the constant ``labels``)."""

    tool: str
    outcomes: dict[str, HistogramSnapshot]
    queue_wait: HistogramSnapshot
    retries: int
    in_flight: int
    errors: dict[str, CounterSnapshot]
    results: dict[str, int] = field(default_factory=dict)
    labels: LabelSet = ()

    @classmethod
    def from_aggregates(cls, tool: ToolAggregates, labels: LabelSet = ()) -> ToolSnapshot:
        """The snapshot view of aggregates copied as stored."""
        durations = tool.duration_bounds
        return cls(
            tool=tool.tool,
            outcomes={
                name: HistogramSnapshot.from_raw(h, durations) for name, h in tool.outcomes.items()
            },
            queue_wait=HistogramSnapshot.from_raw(tool.queue_wait, tool.queue_wait_bounds),
            retries=tool.retries,
            in_flight=tool.in_flight,
            errors={name: CounterSnapshot(count, ex) for name, (count, ex) in tool.errors.items()},
            results=dict(tool.results),
            labels=labels,
        )

    @property
    def total(self) -> int:
        """Tasks finished, all outcomes."""
        return sum(h.count for h in self.outcomes.values())


@dataclass(frozen=True, slots=True)
class ToolAggregates:
    """Aggregates of one ``tool`` label value, copied as stored: for the exposition.

    ``outcomes`` and ``queue_wait`` are :data:`RawHistogram` tuples (bucket counts not
    cumulative); ``errors`` maps an error type to its ``(count, exemplar)``; ``results`` maps
    a final outcome to the results returned with it (after retries); ``retry_errors`` maps the
    error type of each retried attempt to its retries (:attr:`retries` is their sum). The bucket
    bounds
    travel with the counts, so that every exporter writes the ``le`` they were counted under:
    ``duration_bounds`` of every ``outcomes`` histogram, ``queue_wait_bounds`` of
    ``queue_wait``.
    """

    tool: str
    outcomes: dict[str, RawHistogram]
    queue_wait: RawHistogram
    in_flight: int
    errors: dict[str, tuple[int, Exemplar | None]]
    duration_bounds: tuple[float, ...] = DURATION_BUCKETS
    queue_wait_bounds: tuple[float, ...] = QUEUE_WAIT_BUCKETS
    results: dict[str, int] = field(default_factory=dict)
    retry_errors: dict[str, int] = field(default_factory=dict)

    @property
    def retries(self) -> int:
        """Retries of the tool, whatever caused them."""
        return sum(self.retry_errors.values())


@dataclass(frozen=True, slots=True)
class RunningTaskSnapshot:
    """A task that is queued or running; never carries parameters."""

    task_id: str
    tool: str
    state: str
    elapsed_seconds: float
    progress_percent: float
    message: str | None
    labels: LabelSet = ()


@dataclass(frozen=True, slots=True)
class FailedTaskSnapshot:
    """A task that ended with a failure (``error``, ``timeout`` or ``rejected``); never carries
    parameters or error messages."""

    task_id: str
    tool: str
    outcome: str
    error_type: str | None
    finished_at: float  # Unix time
    duration_seconds: float
    trace_id: str | None
    attempt: int = 1  # of an execute_with_retry call: 1, then 2 for its first retry, ...


@dataclass(frozen=True, slots=True)
class CustomMetricSnapshot:
    """Count and sum of one custom metric (name, unit) across all tasks (of the stores with the
    constant ``labels``)."""

    name: str
    unit: str
    count: int
    sum: float
    labels: LabelSet = ()


@dataclass(frozen=True, slots=True)
class StoreSnapshot:
    """Everything the store aggregates, at one moment.

    The gauges of the store as a whole (``workers`` to ``abandoned_threads``) are the fields of
    ``STORE_GAUGES``, in its order.
    """

    tools: list[ToolSnapshot]
    running: list[RunningTaskSnapshot]
    custom: list[CustomMetricSnapshot]
    workers: int = 0
    busy_workers: int = 0
    queue_depth: int = 0
    abandoned_threads: int = 0
    taken_at: float = field(default_factory=time.time)
    #: The latest failed tasks, oldest first (at most the store's ``MAX_RECENT_FAILURES``).
    failures: tuple[FailedTaskSnapshot, ...] = ()


@dataclass(frozen=True, slots=True)
class StoreAggregates:
    """The exported aggregates of a store, copied as stored (no running tasks).

    The gauges of the store as a whole (``workers`` to ``abandoned_threads``) are the fields of
    ``STORE_GAUGES``, in its order, 0 for a store that is gone. ``labels`` are the store's
    constant labels, added to every series it exports.
    """

    tools: list[ToolAggregates]
    custom: list[CustomMetricSnapshot]
    #: Worker threads (or processes) of the registered runners.
    workers: int = 0
    #: Those of them running a tool now.
    busy_workers: int = 0
    #: Tasks submitted and waiting to start.
    queue_depth: int = 0
    #: Timed-out tools still holding a thread, and async tools left running.
    abandoned_threads: int = 0
    labels: LabelSet = ()


class StoreCounts:
    """The cumulative part of a store's aggregates, in an object of its own.

    A :class:`~laios.execution.store.MetricStore` counts into this object (its tool slots and
    custom-metric totals, under the store's lock) and holds it; nothing in here refers back to
    the store. So an exporter can keep a store's counts without keeping the store: when the store
    is garbage collected, its counts are still here, final (no method of a dead store can run),
    and :meth:`final` reads them, to be added to a process total, so that counters never go
    backwards. The gauges (tasks in flight, workers, queue depth) are the store's own and leave
    with it.

    Attributes:
        slots: The tool slots by ``tool`` label.
        custom: ``[count, sum]`` of each custom metric ``(name, unit)``.
        labels: The store's constant labels.
        duration_bounds: Bucket bounds of the duration histograms.
        queue_wait_bounds: Bucket bounds of the queue-wait histograms.
        max_tool_labels: The store's cap of ``tool`` labels.
        max_error_types: The store's cap of ``error_type`` labels per tool.
        max_custom_metrics: The store's cap of exported custom metrics.
    """

    __slots__ = (
        "custom",
        "duration_bounds",
        "labels",
        "max_custom_metrics",
        "max_error_types",
        "max_tool_labels",
        "queue_wait_bounds",
        "slots",
    )

    def __init__(
        self,
        labels: LabelSet,
        duration_bounds: tuple[float, ...],
        queue_wait_bounds: tuple[float, ...],
        limits: tuple[int, int, int],
    ) -> None:
        """Create empty counts; ``limits`` are the tool-label, error-type and custom-metric
        caps."""
        self.labels = labels
        self.duration_bounds = duration_bounds
        self.queue_wait_bounds = queue_wait_bounds
        self.max_tool_labels, self.max_error_types, self.max_custom_metrics = limits
        self.slots: dict[str, ToolSlot] = {}
        self.custom: dict[tuple[str, str], list[float]] = {}

    def new_slot(self, label: str) -> ToolSlot:
        """Add an empty slot for ``label`` (the caller holds the store's lock)."""
        slot = ToolSlot(label, self.max_error_types, self.duration_bounds, self.queue_wait_bounds)
        self.slots[label] = slot
        return slot

    def read(self) -> tuple[list[ToolAggregates], list[CustomMetricSnapshot]]:
        """Copy the tool aggregates and custom totals (the caller holds the store's lock, unless
        the store is gone)."""
        tools = [slot.aggregates() for slot in self.slots.values()]
        custom = [
            CustomMetricSnapshot(name, unit, int(t[0]), t[1])
            for (name, unit), t in self.custom.items()
        ]
        return tools, custom

    def final(self) -> StoreAggregates:
        """The counts as a gone store leaves them: counters and histograms, no gauges (tasks in
        flight, workers, busy workers, queue depth and abandoned threads are 0).

        Only for the counts of a store that is gone: nothing writes to them any more, so they
        are read without the store's lock. (A collector may fold them from a garbage
        collector's callback, in a thread that may be reading them already.)
        """
        tools, custom = self.read()
        tools = [replace(tool, in_flight=0) if tool.in_flight else tool for tool in tools]
        return StoreAggregates(tools, custom, labels=self.labels)

    def reset(self) -> None:
        """Forget every count, in place (in a child made by ``fork()``)."""
        self.slots.clear()
        self.custom.clear()
