"""Per-tool aggregates (counts, sums, histogram buckets) and the snapshots exporters read.

Everything here is O(tools × outcomes × buckets): the number of tasks run never changes the
size of an aggregate. The store updates these under its lock; snapshots are plain copies.
"""

from __future__ import annotations

import functools
import time
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import accumulate
from typing import NamedTuple

__all__ = [
    "DURATION_BUCKETS",
    "ERROR_TYPE_OTHER",
    "OUTCOMES",
    "TOOL_OTHER",
    "TOOL_UNKNOWN",
    "CounterSnapshot",
    "CustomMetricSnapshot",
    "Exemplar",
    "FailedTaskSnapshot",
    "HistogramSnapshot",
    "RawHistogram",
    "RunningTaskSnapshot",
    "StoreAggregates",
    "StoreSnapshot",
    "ToolAggregates",
    "ToolSlot",
    "ToolSnapshot",
]

#: Upper bounds (seconds) of the duration and queue-wait histogram buckets: 1 ms to 5 min.
DURATION_BUCKETS: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
)

#: Upper bound of the first bucket: a value up to it is counted without a search.
FIRST_BOUND = DURATION_BUCKETS[0]
#: Outcomes whose ``error_type`` is counted (``laios_task_errors_total``).
ERROR_OUTCOMES = frozenset({"error", "timeout", "cancelled", "rejected"})

#: Every outcome a task can end with.
OUTCOMES: tuple[str, ...] = ("success", "error", "timeout", "cancelled", "rejected")

#: ``tool`` label of a tool name that is not registered.
TOOL_UNKNOWN = "unknown"
#: ``tool`` label shared by registered tools past the label cap.
TOOL_OTHER = "other"
#: ``error_type`` label shared by error types past the cap.
ERROR_TYPE_OTHER = "other"


class Exemplar(NamedTuple):
    """The trace of one observation, for Prometheus exemplars.

    A named tuple rather than a frozen dataclass: one is built per traced task, and a tuple is
    several times cheaper to build.
    """

    trace_id: str
    span_id: str
    value: float
    timestamp: float


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
    __slots__ = ("buckets", "count", "exemplars", "sum")

    def __init__(self) -> None:
        self.buckets = [0] * (len(DURATION_BUCKETS) + 1)  # last one is +Inf
        self.exemplars: list[Exemplar | None] = [None] * (len(DURATION_BUCKETS) + 1)
        self.count = 0
        self.sum = 0.0

    def observe(
        self, value: float, exemplar: tuple[str, str] | None, timestamp: float | None = None
    ) -> None:
        """Count ``value``; with ``exemplar`` (trace id, span id) at ``timestamp`` (Unix time,
        now when ``None``), its bucket's exemplar is replaced unless the one it holds is less
        than :data:`EXEMPLAR_INTERVAL` old."""
        # Most values (quick tasks, short waits) land in the first bucket: no search for them.
        index = 0 if value <= FIRST_BOUND else bisect_left(DURATION_BUCKETS, value)
        self.buckets[index] += 1
        self.count += 1
        self.sum += value
        if exemplar is not None:
            if timestamp is None:
                timestamp = time.time()
            held = self.exemplars[index]
            if held is None or not 0 <= timestamp - held.timestamp < EXEMPLAR_INTERVAL:
                self.exemplars[index] = _exemplar((exemplar[0], exemplar[1], value, timestamp))

    def snapshot(self) -> HistogramSnapshot:
        return HistogramSnapshot.from_raw(self.raw())

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
        "errors",
        "in_flight",
        "label",
        "max_error_types",
        "outcomes",
        "queue_wait",
        "results",
        "retries",
    )

    def __init__(self, label: str, max_error_types: int) -> None:
        """Create empty aggregates for ``label``."""
        self.label = label
        self.max_error_types = max_error_types
        self.outcomes: dict[str, _Histogram] = {}
        self.queue_wait = _Histogram()
        self.retries = 0
        self.in_flight = 0
        self.errors: dict[str, _ErrorCount] = {}
        # Results returned to callers, by final outcome (after the retries of a call).
        self.results: dict[str, int] = {}

    def outcome(self, outcome: str) -> _Histogram:
        """The duration histogram of ``outcome``, created on its first use (the store holds its
        lock; it counts durations into it directly, see ``MetricStore.task_finished``)."""
        histogram = self.outcomes.get(outcome)
        if histogram is None:
            histogram = self.outcomes[outcome] = _Histogram()
        return histogram

    def count_error(self, error_type: str, exemplar: tuple[str, str] | None) -> str:
        """Count one failure of ``error_type`` (past the cap, as ``other``) and return the type
        it was counted as; the store holds its lock."""
        entry = self.errors.get(error_type)
        if entry is None:
            if len(self.errors) >= self.max_error_types:
                error_type = ERROR_TYPE_OTHER
            entry = self.errors.get(error_type)
            if entry is None:
                entry = self.errors[error_type] = _ErrorCount()
        entry.count += 1
        if exemplar is not None:
            entry.exemplar = _exemplar((exemplar[0], exemplar[1], 1.0, time.time()))
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
            retries=self.retries,
            in_flight=self.in_flight,
            errors={name: (entry.count, entry.exemplar) for name, entry in self.errors.items()},
            results=dict(self.results),
        )


@dataclass(frozen=True, slots=True)
class HistogramSnapshot:
    """A histogram at one moment: count, sum and cumulative bucket counts (last is +Inf)."""

    count: int
    sum: float
    cumulative_buckets: tuple[int, ...]
    exemplars: tuple[Exemplar | None, ...]

    @classmethod
    def from_raw(cls, raw: RawHistogram) -> HistogramSnapshot:
        """The snapshot of a histogram copied as stored (per-bucket counts made cumulative)."""
        count, total, buckets, exemplars = raw
        return cls(count, total, tuple(accumulate(buckets)), exemplars)

    def quantile(self, q: float) -> float | None:
        """Estimate the ``q`` quantile (0–1) from the buckets, as Prometheus does.

        Returns ``None`` for an empty histogram. Values in the +Inf bucket report the highest
        finite bound.
        """
        if self.count == 0:
            return None
        rank = q * self.count
        lower_bound = 0.0
        lower_count = 0
        for index, cumulative in enumerate(self.cumulative_buckets):
            if cumulative >= rank:
                if index >= len(DURATION_BUCKETS):
                    return DURATION_BUCKETS[-1]
                upper = DURATION_BUCKETS[index]
                in_bucket = cumulative - lower_count
                if in_bucket == 0:
                    return upper
                return lower_bound + (upper - lower_bound) * (rank - lower_count) / in_bucket
            lower_count = cumulative
            lower_bound = DURATION_BUCKETS[index] if index < len(DURATION_BUCKETS) else lower_bound
        return DURATION_BUCKETS[-1]


@dataclass(frozen=True, slots=True)
class CounterSnapshot:
    """A counter's value with the exemplar of its latest sampled increment."""

    value: int
    exemplar: Exemplar | None = None


@dataclass(frozen=True, slots=True)
class ToolSnapshot:
    """Aggregates of one ``tool`` label value."""

    tool: str
    outcomes: dict[str, HistogramSnapshot]
    queue_wait: HistogramSnapshot
    retries: int
    in_flight: int
    errors: dict[str, CounterSnapshot]
    results: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_aggregates(cls, tool: ToolAggregates) -> ToolSnapshot:
        """The snapshot view of aggregates copied as stored."""
        return cls(
            tool=tool.tool,
            outcomes={name: HistogramSnapshot.from_raw(h) for name, h in tool.outcomes.items()},
            queue_wait=HistogramSnapshot.from_raw(tool.queue_wait),
            retries=tool.retries,
            in_flight=tool.in_flight,
            errors={name: CounterSnapshot(count, ex) for name, (count, ex) in tool.errors.items()},
            results=dict(tool.results),
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
    a final outcome to the results returned with it (after retries).
    """

    tool: str
    outcomes: dict[str, RawHistogram]
    queue_wait: RawHistogram
    retries: int
    in_flight: int
    errors: dict[str, tuple[int, Exemplar | None]]
    results: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RunningTaskSnapshot:
    """A task that is queued or running; never carries parameters."""

    task_id: str
    tool: str
    state: str
    elapsed_seconds: float
    progress_percent: float
    message: str | None


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
    """Count and sum of one custom metric (name, unit) across all tasks."""

    name: str
    unit: str
    count: int
    sum: float


@dataclass(frozen=True, slots=True)
class StoreSnapshot:
    """Everything the store aggregates, at one moment."""

    tools: list[ToolSnapshot]
    running: list[RunningTaskSnapshot]
    custom: list[CustomMetricSnapshot]
    workers: int
    queue_depth: int
    abandoned_threads: int
    taken_at: float = field(default_factory=time.time)
    #: The latest failed tasks, oldest first (at most the store's ``MAX_RECENT_FAILURES``).
    failures: tuple[FailedTaskSnapshot, ...] = ()


@dataclass(frozen=True, slots=True)
class StoreAggregates:
    """The exported aggregates of a store, copied as stored (no running tasks)."""

    tools: list[ToolAggregates]
    custom: list[CustomMetricSnapshot]
    workers: int
    queue_depth: int
    abandoned_threads: int
