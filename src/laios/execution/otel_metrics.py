"""OpenTelemetry metrics from the metric store: one store, one more view.

:func:`instrument_metrics` makes a store's numbers visible to an OpenTelemetry
``MeterProvider`` (and so to whatever exporter it has: OTLP to a Collector, a Prometheus reader,
the console), next to the Prometheus collector that reads the same store. The instruments, on
the meter ``laios.execution`` (see ``docs/metrics.md``):

- ``gen_ai.execute_tool.duration`` (Histogram, ``s``; ``gen_ai.operation.name``,
  ``gen_ai.tool.name``, and ``error.type`` on failure): the GenAI conventions' tool duration,
  equal to the task span's (submission to outcome)
- ``laios.task.queue_wait`` (Histogram, ``s``; ``gen_ai.tool.name``)
- ``laios.tasks`` (ObservableCounter, ``{task}``; ``gen_ai.tool.name``, ``laios.task.outcome``)
- ``laios.task.results`` (ObservableCounter, ``{result}``; ``gen_ai.tool.name``,
  ``laios.task.outcome``): results returned to callers, after retries
- ``laios.task.errors`` (ObservableCounter, ``{error}``; ``gen_ai.tool.name``, ``error.type``)
- ``laios.task.retries`` (ObservableCounter, ``{retry}``; ``gen_ai.tool.name``, ``error.type``)
- ``laios.task.in_flight`` (ObservableUpDownCounter, ``{task}``; ``gen_ai.tool.name``)
- ``laios.executor.worker.count`` (ObservableUpDownCounter, ``{worker}``)
- ``laios.executor.busy_worker.count`` (ObservableUpDownCounter, ``{worker}``)
- ``laios.executor.queue.depth`` (ObservableUpDownCounter, ``{task}``)
- ``laios.executor.abandoned_thread.count`` (ObservableUpDownCounter, ``{thread}``)

The counters and up-down counters are asynchronous: their callbacks read the stores'
aggregates (:meth:`MetricStore.aggregates() <laios.execution.store.MetricStore.aggregates>`,
added together as the Prometheus collector adds them) when the SDK collects, so they cost
nothing per task. The API has no asynchronous histogram, so the two histograms are recorded
once per task, from the store's finish listener (:meth:`MetricStore.add_finish_listener
<laios.execution.store.MetricStore.add_finish_listener>`). Attribute values are the Prometheus
label values: the store's ``tool`` label (``unknown`` for a tool that is not registered,
``other`` past the store's cap) and its bounded error types; never a task id. The SDK never
forgets a histogram's point, so the histograms keep those limits, and at most
``MAX_LABEL_SETS`` sets of constant labels (then as many with every value ``other``, one per
set of names, then none), over every store they have recorded, gone ones too.

A store is held weakly: instrumenting it does not keep it alive. Once it is garbage collected
its counts stay in the counters (folded as the Prometheus collector folds a gone store's, so
that no counter goes backwards), and its gauges leave.

Example:
    >>> from opentelemetry.sdk.metrics import MeterProvider
    >>> from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    >>> from laios.execution.store import MetricStore
    >>> reader = InMemoryMetricReader()
    >>> store = MetricStore()
    >>> handle = instrument_metrics(store, meter_provider=MeterProvider([reader]))
    >>> handle.active
    True
    >>> handle.uninstrument()
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.metrics import (
    CallbackOptions,
    Histogram,
    Meter,
    MeterProvider,
    NoOpMeterProvider,
    Observation,
)
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from laios._compat.otel import (
    global_meter_provider,
    is_proxy_meter_provider,
    meter_provider_shut_down,
    sdk_meter_provider_under,
)
from laios.execution._aggregates import (
    ERROR_TYPE_OTHER,
    TOOL_OTHER,
    TOOL_UNKNOWN,
    LabelSet,
    ToolAggregates,
    every_outcome,
)
from laios.execution._aggregates import QUEUE_WAIT_BUCKETS as DEFAULT_QUEUE_WAIT_BUCKETS
from laios.execution._checks import (
    METER_PROVIDER_INSTEAD,
    not_a_class,
    not_a_module,
    require_method,
)
from laios.execution._families import STORE_GAUGES
from laios.execution._forks import reset_after_fork
from laios.execution._totals import (
    MAX_LABEL_SETS,
    ExportedTotals,
    StoreTable,
    export_label,
    is_other_label_set,
    other_label_set,
    read_stores,
    sum_totals,
)
from laios.execution.store import FinishedTask, MetricStore, get_default_store
from laios.execution.tracing import SCHEMA_URL

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics.view import View

__all__ = [
    "ABANDONED_THREADS",
    "BUSY_WORKERS",
    "ERRORS",
    "IN_FLIGHT",
    "METER_NAME",
    "QUEUE_DEPTH",
    "QUEUE_WAIT",
    "QUEUE_WAIT_BUCKETS",
    "RESULTS",
    "RETRIES",
    "TASKS",
    "TOOL_DURATION",
    "TOOL_DURATION_BUCKETS",
    "WORKERS",
    "MetricsInstrumentation",
    "instrument_metrics",
    "metric_views",
]

#: The meter every instrument is created on (its version is the ``laios`` version).
METER_NAME = "laios.execution"

#: The GenAI semantic conventions' tool duration (a histogram, in seconds).
TOOL_DURATION = "gen_ai.execute_tool.duration"
#: Time from submission to start (a histogram, in seconds).
QUEUE_WAIT = "laios.task.queue_wait"
#: Tasks finished, by tool and outcome.
TASKS = "laios.tasks"
#: Results returned to callers (an ``execute_with_retry`` call once), by tool and final outcome.
RESULTS = "laios.task.results"
#: Tasks that did not succeed (error, timeout, cancelled, rejected), by tool and error type.
ERRORS = "laios.task.errors"
#: Retries by ``execute_with_retry``, by tool.
RETRIES = "laios.task.retries"
#: Tasks whose tool is running now, by tool.
IN_FLIGHT = "laios.task.in_flight"
#: Workers of the executors' runners.
WORKERS = "laios.executor.worker.count"
#: Workers of the executors' runners running a tool now.
BUSY_WORKERS = "laios.executor.busy_worker.count"
#: Tasks submitted and waiting to start.
QUEUE_DEPTH = "laios.executor.queue.depth"
#: Timed-out tools still holding a thread, and async tools left running.
ABANDONED_THREADS = "laios.executor.abandoned_thread.count"

#: The bucket boundaries the GenAI conventions advise for ``gen_ai.execute_tool.duration``.
TOOL_DURATION_BUCKETS: tuple[float, ...] = (
    0.01,
    0.02,
    0.04,
    0.08,
    0.16,
    0.32,
    0.64,
    1.28,
    2.56,
    5.12,
    10.24,
    20.48,
    40.96,
    81.92,
)
#: The queue-wait boundaries: the default ones of ``laios_task_queue_wait_seconds`` (1 ms to
#: 1 min).
QUEUE_WAIT_BUCKETS: tuple[float, ...] = DEFAULT_QUEUE_WAIT_BUCKETS
#: What the attributes of a task's histogram points are made of: tool label, error type,
#: the store's constant labels.
_AttributeKey = tuple[str, str | None, LabelSet]

_OPERATION = "gen_ai.operation.name"
_TOOL = "gen_ai.tool.name"
_ERROR_TYPE = "error.type"
_OUTCOME = "laios.task.outcome"
#: ``error.type`` of a failure that came without a type (the conventions' fallback value).
_OTHER_ERROR = "_OTHER"
#: Attribute sets kept for reuse before the cache starts again (tools × error types is bounded
#: by the store's caps; this bounds the cache whatever they are).
_MAX_CACHED_ATTRIBUTES = 4096
#: Seconds a read of the stores serves the other callbacks of the same collection, from its end.
_READ_REUSE_SECONDS = 1.0
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
#: The context of a point with no exemplar: no span (not empty, which the SDK would replace
#: with the current context, whose span, the caller's or another task's, is not this task's).
_NO_SPAN = trace.set_span_in_context(trace.INVALID_SPAN, Context())


def _histogram(meter: Meter, name: str, description: str, boundaries: Sequence[float]) -> Histogram:
    """A histogram in seconds, advising ``boundaries`` where the API takes advice (1.30 on)."""
    try:
        return meter.create_histogram(
            name,
            unit="s",
            description=description,
            explicit_bucket_boundaries_advisory=boundaries,  # type: ignore[call-arg,unused-ignore]
        )
    except TypeError:  # an API before 1.30: no advice (see metric_views)
        return meter.create_histogram(name, unit="s", description=description)


def _takes_context(histogram: Histogram) -> bool:
    """Whether ``record`` takes the context that exemplars are sampled from (API 1.28 on)."""
    try:
        return "context" in inspect.signature(histogram.record).parameters
    except (TypeError, ValueError):
        return False


def _exemplar_context(exemplar: tuple[str, str]) -> Context | None:
    """A context whose current span is the task's (sampled) span, for the SDK's exemplars."""
    try:
        span = SpanContext(int(exemplar[0], 16), int(exemplar[1], 16), False, _SAMPLED)
    except (TypeError, ValueError):
        return None
    return trace.set_span_in_context(NonRecordingSpan(span), Context())


#: The asynchronous instruments: name, whether a counter (else an up-down counter), the name of
#: the ``_Instruments`` method that observes it, unit and description.
_OBSERVABLES: tuple[tuple[str, bool, str, str, str], ...] = (
    (TASKS, True, "_tasks", "{task}", "Tasks finished, by outcome."),
    (
        RESULTS,
        True,
        "_results",
        "{result}",
        "Results returned to callers, by final outcome (after retries).",
    ),
    (
        ERRORS,
        True,
        "_errors",
        "{error}",
        "Tasks that did not succeed (error, timeout, cancelled, rejected), by error type.",
    ),
    (RETRIES, True, "_retries", "{retry}", "Retries of tasks."),
    (IN_FLIGHT, False, "_in_flight", "{task}", "Tasks whose tool is running now."),
)
#: Every asynchronous instrument's name: those above, then one up-down counter per store-wide
#: gauge of :data:`~laios.execution._families.STORE_GAUGES` (observed by
#: ``_Instruments._store_gauge``).
_OBSERVED = (
    *(name for name, *_rest in _OBSERVABLES),
    *(gauge.instrument for gauge in STORE_GAUGES),
)


class _Instruments:
    """The instruments of one meter, shared by every store instrumented through it.

    The SDK keeps one instrument per name and meter, so two stores on one provider report
    through the same instruments: the callbacks add the stores together, as the Prometheus
    collector does. So do two stores on two providers that hand out one meter (two wrappers
    over one SDK provider): the SDK would drop the callbacks of a second set of instruments.
    """

    def __init__(self) -> None:
        #: The instrumented stores, and the counts of those that are gone, folded as the
        #: Prometheus collector folds them: a counter never goes backwards when a store goes.
        self._table = StoreTable()
        #: The instrumentations whose store the table could not take (the same constant labels
        #: as another store's and other bucket bounds, or one set of labels too many): read
        #: live, and left out once gone. A dict, under ``_handles_lock``.
        self._loose: dict[MetricsInstrumentation, None] = {}
        #: Held only to change or copy ``_loose`` (and ``_recorded``, below), never while
        #: calling out: the callbacks take it inside the SDK's collection lock, and ``create``
        #: takes the SDK's lock.
        self._handles_lock = threading.Lock()
        reset_after_fork(self)
        #: The last read of the stores: when, the totals, and the instruments it has served.
        self._last_read: tuple[float, list[ExportedTotals], set[str]] | None = None
        #: (tool, error type) -> the attributes of its duration and of its queue wait.
        self._attributes: dict[_AttributeKey, tuple[dict[str, str], dict[str, str]]] = {}
        #: What the histograms have recorded, by set of constant labels: at most
        #: ``MAX_LABEL_SETS`` sets, as many more whose values are all ``other`` (one per set of
        #: names), and the empty set; each with its tools and their error types within its
        #: stores' largest limits. The SDK never
        #: forgets a histogram's point: stores that come and go, each with label values, tools
        #: or error types of its own, would otherwise add points for ever, where the counters
        #: fold them into ``other``. Under ``_handles_lock``.
        self._recorded: dict[LabelSet, _Recorded] = {}
        #: The sets in ``_recorded`` that count towards ``MAX_LABEL_SETS``.
        self._named_sets = 0
        #: The sets in ``_recorded`` with every value ``other`` (but the empty one): one per
        #: set of label names, so bounded apart (stores each with a label name of their own,
        #: ``shard_<n>``, would otherwise add one each for ever).
        self._other_sets = 0
        #: The instruments created so far, by name (see :meth:`create`).
        self._created: set[str] = set()
        self.tool_duration: Histogram
        self.queue_wait: Histogram
        self.with_context = False
        #: The SDK provider the instruments record into, held weakly (a provider holds its
        #: instruments, whose callbacks hold these): ``None`` until looked for (see
        #: :meth:`provider_under`).
        self._under: Callable[[], object | None] | None = None

    def after_fork_in_child(self) -> None:
        """In a forked child: a lock of its own (another thread may have held this one)."""
        self._handles_lock = threading.Lock()

    def add(self, handle: MetricsInstrumentation) -> None:
        """Report ``handle``'s store here."""
        store = handle.store
        if store is None:
            return
        try:
            self._table.add(store)
        except ValueError:
            with self._handles_lock:
                self._loose[handle] = None

    def discard(self, handle: MetricsInstrumentation) -> None:
        """Stop reporting ``handle``'s store here, its counts with it (nothing when it does
        not report here; a gone store's counts stay)."""
        with self._handles_lock:
            self._loose.pop(handle, None)
        store = handle.store
        if store is not None:
            self._table.remove(store)

    def provider_under(self, provider: MeterProvider) -> object | None:
        """The SDK meter provider these instruments record into, ``provider`` being one that
        hands out their meter: found the first time (a wrapper says nothing of the provider
        under it; see :func:`~laios._compat.otel.sdk_meter_provider_under`), or ``None`` when
        none is found (not the SDK's, or gone): its handles never read as shut down then.
        Caller holds ``_lock``, once every instrument is created."""
        if self._under is None:
            found = sdk_meter_provider_under(provider, self.tool_duration)
            self._under = _nothing if found is None else weakref.ref(found)
        return self._under()

    @property
    def complete(self) -> bool:
        """Whether every instrument is created."""
        return len(self._created) == len(_OBSERVED) + 2

    def create(self, provider: MeterProvider, meter: Meter | None = None) -> _Instruments:
        """Create on ``provider``'s meter (``meter`` when given) the instruments not created
        yet; returns the instruments to report to: these, or those made earlier through
        another provider whose meter gave back their first counter (and kept its callbacks).

        A provider that raises part way leaves those it created: the SDK keeps one instrument
        per name and meter, and gives the first one back (callbacks and all) for a second one
        of the same name, so the next call creates only the others, never one twice.
        """
        if self.complete:
            return self
        if meter is None:
            meter = _meter_of(provider)
        if TOOL_DURATION not in self._created:
            self.tool_duration = _histogram(
                meter,
                TOOL_DURATION,
                "Duration of tool executions: each task's execute_tool span, from submission "
                "to outcome.",
                TOOL_DURATION_BUCKETS,
            )
            self.with_context = _takes_context(self.tool_duration)
            self._created.add(TOOL_DURATION)
        if QUEUE_WAIT not in self._created:
            self.queue_wait = _histogram(
                meter,
                QUEUE_WAIT,
                "Time a task waited between submission and start.",
                QUEUE_WAIT_BUCKETS,
            )
            self._created.add(QUEUE_WAIT)
        for name, counter, callback, unit, description in _OBSERVABLES:
            if name not in self._created:
                create = (
                    meter.create_observable_counter
                    if counter
                    else meter.create_observable_up_down_counter
                )
                instrument = create(
                    name,
                    [_once_each(getattr(self, callback))],
                    unit=unit,
                    description=description,
                )
                self._created.add(name)
                if name == TASKS:
                    owner = _claim(instrument, self)
                    if owner is not self:  # (the rest would be the owner's too)
                        return owner
        for gauge in STORE_GAUGES:
            if gauge.instrument not in self._created:
                meter.create_observable_up_down_counter(
                    gauge.instrument,
                    [
                        _once_each(
                            functools.partial(self._store_gauge, gauge.instrument, gauge.field)
                        )
                    ],
                    unit=gauge.unit,
                    description=gauge.description,
                )
                self._created.add(gauge.instrument)
        return self

    # -- per task (the store's finish listener) ----------------------------------------------

    def record(self, event: FinishedTask, limits: tuple[int, int]) -> None:
        """Record one task's end in the two histograms; ``limits`` are its store's
        ``max_tool_labels`` and ``max_error_types``."""
        outcome = event.outcome
        error = None if outcome == "success" else (event.error_type or _OTHER_ERROR)
        key = (event.tool, error, event.labels)
        attributes = self._attributes.get(key)
        if attributes is None:
            attributes = self._new_attributes(key, limits)
        wait = event.queue_wait
        # A task's span opens at submission: its duration covers the queue wait.
        seconds = wait + event.duration
        waited = event.started or outcome != "rejected"  # a refused task never queued
        if not self.with_context:
            self.tool_duration.record(seconds, attributes[0])
            if waited:
                self.queue_wait.record(wait, attributes[1])
        else:  # (the keyword only where the API takes it: see with_context)
            context = _NO_SPAN
            if event.exemplar is not None:
                context = _exemplar_context(event.exemplar) or _NO_SPAN
            record: Any = self.tool_duration.record
            record(seconds, attributes[0], context=context)
            if waited:
                record = self.queue_wait.record
                record(wait, attributes[1], context=context)

    def _new_attributes(
        self, key: _AttributeKey, limits: tuple[int, int]
    ) -> tuple[dict[str, str], dict[str, str]]:
        """The attributes of a (tool, error type, constant labels) for the duration and the
        queue wait, within the bounds of what the histograms have recorded."""
        if len(self._attributes) >= _MAX_CACHED_ATTRIBUTES:
            self._attributes = {}
        tool, error, labels = key
        label, error, labels = self._bounded(export_label(tool), error, labels, limits)
        duration = {**dict(labels), _OPERATION: "execute_tool", _TOOL: label}
        if error is not None:
            duration[_ERROR_TYPE] = error
        attributes = (duration, {**dict(labels), _TOOL: label})
        self._attributes[key] = attributes
        return attributes

    def _bounded(
        self, tool: str, error: str | None, labels: LabelSet, limits: tuple[int, int]
    ) -> _AttributeKey:
        """``tool``, ``error`` and ``labels`` as the histograms record them: past
        ``MAX_LABEL_SETS`` sets of constant labels, the same names with every value ``other``,
        and past ``MAX_LABEL_SETS`` of those too (one per set of names), no constant labels;
        past the limits (the largest of the stores of the set), tool ``other`` and error type
        ``other``, as the counters fold them."""
        with self._handles_lock:
            recorded = self._recorded.get(labels)
            if recorded is None:
                named = not is_other_label_set(labels)
                if named and self._named_sets >= MAX_LABEL_SETS:
                    labels, named = other_label_set(labels), False
                    recorded = self._recorded.get(labels)
                if recorded is None and not named and labels and self._other_sets >= MAX_LABEL_SETS:
                    labels = ()
                    recorded = self._recorded.get(labels)
                if recorded is None:
                    recorded = self._recorded[labels] = _Recorded()
                    if named:
                        self._named_sets += 1
                    elif labels:
                        self._other_sets += 1
            recorded.max_tool_labels = max(recorded.max_tool_labels, limits[0])
            recorded.max_error_types = max(recorded.max_error_types, limits[1])
            errors = recorded.tools.get(tool)
            if errors is None:
                if tool not in (TOOL_UNKNOWN, TOOL_OTHER):
                    if recorded.named >= recorded.max_tool_labels:
                        tool = TOOL_OTHER
                    else:
                        recorded.named += 1
                errors = recorded.tools.setdefault(tool, set())
            if error is not None and error != ERROR_TYPE_OTHER and error not in errors:
                if len(errors) >= recorded.max_error_types:
                    error = ERROR_TYPE_OTHER
                else:
                    errors.add(error)
        return tool, error, labels

    # -- at collection (the asynchronous instruments' callbacks) -----------------------------

    def _read(self, instrument: str) -> list[ExportedTotals]:
        """The instrumented stores' aggregates and the folded counts of the gone ones, added
        together per set of constant labels, read once per collection.

        The SDK calls the callbacks of one provider's collection one after the other (and a
        collection at a time), each instrument once; so a read serves each instrument once and
        an instrument asking again starts a new collection, and a new read. (Not the callbacks'
        ``options``: the SDK gives each instrument one of its own when the collection's timeout
        is under 10 s, as the in-memory and Prometheus readers' default one is.) A read is
        reused for at most a second after it ended, however long it took: a read of tens of
        thousands of stores takes seconds, and the instruments of its collection still share
        it (each reading again would take the collection past the SDK's timeout).
        """
        last = self._last_read
        now = time.monotonic()
        if last is not None and instrument not in last[2] and now - last[0] < _READ_REUSE_SECONDS:
            last[2].add(instrument)
            return last[1]
        with self._handles_lock:
            loose = list(self._loose)
        totals = self._table.totals()
        stores = [store for handle in loose if (store := handle.store) is not None]
        if stores:
            totals = sum_totals([*totals, *read_stores(stores)])
        if not totals:
            self._last_read = None
            return []
        self._last_read = (time.monotonic(), totals, {instrument})  # (when the read ended)
        return totals

    def _tools(
        self, instrument: str, live: bool = False
    ) -> Iterator[tuple[dict[str, str], ToolAggregates]]:
        """Each tool of each set of constant labels (with ``live``, of those a live store
        exports only: a gauge leaves with the stores of its label set, as in Prometheus): its
        attributes and its aggregates."""
        for entry in self._read(instrument):
            if live and not entry.live:
                continue
            labels = dict(entry.labels)
            for tool, row in entry.tools.items():
                yield {**labels, _TOOL: tool}, row

    def _tasks(self, options: CallbackOptions) -> Iterator[Observation]:
        for attributes, row in self._tools(TASKS):
            for outcome in every_outcome(row.outcomes):
                histogram = row.outcomes.get(outcome)
                count = histogram[0] if histogram else 0
                yield Observation(count, {**attributes, _OUTCOME: outcome})

    def _results(self, options: CallbackOptions) -> Iterator[Observation]:
        for attributes, row in self._tools(RESULTS):
            for outcome in every_outcome(row.results):
                yield Observation(row.results.get(outcome, 0), {**attributes, _OUTCOME: outcome})

    def _errors(self, options: CallbackOptions) -> Iterator[Observation]:
        for attributes, row in self._tools(ERRORS):
            for error_type, (count, _exemplar) in row.errors.items():
                yield Observation(count, {**attributes, _ERROR_TYPE: error_type})

    def _retries(self, options: CallbackOptions) -> Iterator[Observation]:
        for attributes, row in self._tools(RETRIES):
            for error_type, count in row.retry_errors.items():
                yield Observation(count, {**attributes, _ERROR_TYPE: error_type})

    def _in_flight(self, options: CallbackOptions) -> Iterator[Observation]:
        for attributes, row in self._tools(IN_FLIGHT, live=True):
            yield Observation(row.in_flight, attributes)

    def _store_gauge(
        self, instrument: str, field: str, options: CallbackOptions
    ) -> Iterator[Observation]:
        """The callback of a store-wide gauge: the ``field`` of the totals of each set of
        constant labels that a live store exports."""
        for entry in self._read(instrument):
            if entry.live:
                yield Observation(getattr(entry, field), dict(entry.labels))


class _Recorded:
    """What the histograms have recorded for one set of constant labels: its tools (but
    ``unknown`` and ``other``, ``named`` of them) with their error types (but ``other``), and
    the largest limits of its stores."""

    __slots__ = ("max_error_types", "max_tool_labels", "named", "tools")

    def __init__(self) -> None:
        self.max_tool_labels = 0
        self.max_error_types = 0
        self.named = 0
        self.tools: dict[str, set[str]] = {}


def _once_each(
    callback: Callable[[CallbackOptions], Iterable[Observation]],
) -> Callable[[CallbackOptions], list[Observation]]:
    """``callback`` observing each attribute set once, the values of repeated ones added.

    Stores of the same constant labels with other bucket bounds (which a meter provider
    accepts: its histograms are recorded as tasks end) are read as totals of their own, whose
    counts and gauges carry the same attributes; the API leaves what an SDK does with one
    attribute set observed twice in a collection undefined."""

    def observe(options: CallbackOptions) -> list[Observation]:
        values: dict[frozenset[tuple[str, Any]], tuple[float, Any]] = {}
        for observation in callback(options):
            attributes = observation.attributes or {}
            key = frozenset(attributes.items())
            seen = values.get(key)
            value = observation.value if seen is None else seen[0] + observation.value
            values[key] = (value, attributes)
        return [Observation(value, attributes) for value, attributes in values.values()]

    return observe


class MetricsInstrumentation:
    """A store reporting to a meter provider; what :func:`instrument_metrics` returns.

    Attributes:
        meter_provider: The provider the store reports to (the first one given, of those
            that hand out its meter; ``None`` for an instrumentation that never became
            active: no provider was given and none was installed).

    Once an SDK provider is shut down (one per test, or per reload of a service's
    configuration), the handle is inactive: it records nothing, and a later
    :func:`instrument_metrics` call takes its listener off the store. So it is once the SDK
    provider under a provider of one's own (a wrapper whose meter is the SDK provider's, or
    wraps it) is shut down.
    """

    def __init__(
        self,
        store: MetricStore,
        meter_provider: MeterProvider | None,
        instruments: _Instruments | None = None,
        provider_under: object | None = None,
    ) -> None:
        """Create the handle of ``store`` reporting to ``instruments`` (inactive without); the
        caller adds :meth:`record` as the store's finish listener. ``provider_under`` is the
        SDK provider the instruments record into (``meter_provider`` when not given): the
        handle is inactive once it is shut down."""
        self.meter_provider = meter_provider
        #: Whose shutdown ends the reporting (held here: read at every task's end).
        self._provider_under = meter_provider if provider_under is None else provider_under
        #: The key of this handle in the registry (the store's may be gone at uninstrument).
        self._key = (id(store), id(instruments))
        # Weak, and with no callback: a collected store is noticed when it is read (the
        # callbacks skip it) and forgotten by a later instrument_metrics() call. (A callback
        # would run inside any allocation, perhaps in a thread holding a store's lock.)
        self._store = weakref.ref(store)
        #: The store's limits, which the histograms keep within (see ``_Instruments.record``).
        self._limits = (store.max_tool_labels, store.max_error_types)
        self._instruments = instruments

    @property
    def store(self) -> MetricStore | None:
        """The instrumented store, or ``None`` once it was garbage collected."""
        return self._store()

    @property
    def active(self) -> bool:
        """Whether the store is reporting: instrumented, not uninstrumented, the store alive
        and the provider not shut down."""
        return (
            self._instruments is not None
            and self._store() is not None
            and not meter_provider_shut_down(self._provider_under)
        )

    def uninstrument(self) -> None:
        """Stop reporting the store: its listener is removed and the callbacks leave it out.

        The instruments stay registered with the provider (the OpenTelemetry API cannot remove
        one); without a store they report only what gone stores left. Calling it again is
        harmless.
        """
        with _lock:
            instruments = self._instruments
            self._instruments = None
            if instruments is not None:
                instruments.discard(self)
            entry = _registry.get(self._key)
            if entry is not None and entry[0] is self:
                del _registry[self._key]
                _forgot_one()
        # Inactive first, then the listener out: instrument_metrics() adds it outside the lock
        # and takes it out again when it finds the handle inactive, so whichever of the two
        # comes last leaves no listener behind.
        store = self._store()
        if store is not None:
            store.remove_finish_listener(self.record)

    def record(self, event: FinishedTask) -> None:
        """The store's finish listener: record one task's end in the two histograms."""
        instruments = self._instruments
        if instruments is not None and not meter_provider_shut_down(self._provider_under):
            instruments.record(event, self._limits)

    def __repr__(self) -> str:
        state = "active" if self.active else "inactive"
        return f"<MetricsInstrumentation {state} provider={self.meter_provider!r}>"


_lock = threading.Lock()
_log = logging.getLogger("laios.execution")
#: The SDK providers found shut down when given, each warned of once (held weakly: a new
#: provider at a collected one's address is warned of too). Under ``_lock``.
_warned_shut_down: weakref.WeakSet[object] = weakref.WeakSet()


def _first_shut_down(provider_under: object) -> bool:
    """Whether ``provider_under``, an SDK provider found shut down, is so for the first time
    (then remembered). Caller holds ``_lock``."""
    try:
        if provider_under in _warned_shut_down:
            return False
        _warned_shut_down.add(provider_under)
    except TypeError:  # (a provider that cannot be weakly referenced: warned of each time)
        pass
    return True


def _warn_shut_down(given: MeterProvider, provider_under: object, installed: bool) -> None:
    """Warn that ``provider_under`` (``given`` itself, or the SDK provider under it) was shut
    down when a store was instrumented through it: the store then reports nothing there, and
    would otherwise say nothing of it."""
    which = "installed globally" if installed else "given"
    under = "" if provider_under is given else f" (over the SDK's {type(provider_under).__name__})"
    advice = "" if installed else " Give one that is not shut down, or None for the global one."
    _log.warning(
        "the OpenTelemetry meter provider %s, a %s%s, is shut down: no OpenTelemetry metrics "
        "will be recorded through it (the store, Prometheus and traces are unaffected).%s",
        which,
        type(given).__name__,
        under,
        advice,
    )


def _new_lock_in_child() -> None:
    """A forked child gets a lock of its own: another thread of the parent may have held this
    one at the fork, and would never release it in the child."""
    global _lock
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_lock_in_child)
#: (id(store), id(instruments)) -> the instrumentation of that store through those instruments
#: (one per meter, whichever provider handed it out), and the instruments. An entry whose store
#: was collected is inactive (a new store with the same id replaces it, and leaves the
#: instruments) and is pruned by a later instrument_metrics() call.
_registry: dict[tuple[int, int], tuple[MetricsInstrumentation, _Instruments]] = {}
#: The registry's size after the last prune: the next comes once as many entries again (and
#: at least _PRUNE_EVERY) were added, so that each costs the same on average however many
#: stores report (a prune walks them all).
_pruned_size = 0
_PRUNE_EVERY = 64


class _ByObject:
    """The instruments found through each object (a provider, a meter, an instrument), held
    weakly where the object allows it, and by its id with the object where it does not."""

    def __init__(self) -> None:
        self._weak: weakref.WeakKeyDictionary[Any, _Instruments] = weakref.WeakKeyDictionary()
        self._by_id: dict[int, tuple[Any, _Instruments]] = {}

    def get(self, key: object) -> _Instruments | None:
        try:
            return self._weak.get(key)
        except TypeError:  # an object that cannot be weakly referenced (nor hashed)
            pair = self._by_id.get(id(key))
            return pair[1] if pair is not None and pair[0] is key else None

    def set(self, key: object, instruments: _Instruments) -> None:
        try:
            self._weak[key] = instruments
        except TypeError:
            self._by_id[id(key)] = (key, instruments)


#: The instruments of each provider and of each meter: two providers that hand out one meter
#: (two wrappers over one SDK provider) report through one set of instruments. A second set on
#: one SDK meter would be no set: the SDK gives back the first instrument of a name, and drops
#: the second one's callbacks (and so the stores they read).
_by_provider = _ByObject()
_by_meter = _ByObject()
#: The instruments of each ``laios.tasks`` counter, for meters that hand out one instrument
#: (two wrappers over one SDK meter). Weak both ways: the instruments reach the SDK's counter
#: through the SDK (their histograms' measurement consumer keeps it), and the counter keeps
#: its first instruments alive through their callbacks.
_by_counter: weakref.WeakKeyDictionary[Any, weakref.ref[_Instruments]] = weakref.WeakKeyDictionary()


def _nothing() -> None:
    """What a weak reference to a provider that was never found gives."""


def _meter_of(provider: MeterProvider) -> Meter:
    from laios import __version__

    return provider.get_meter(METER_NAME, __version__, schema_url=SCHEMA_URL)


def _claim(counter: object, instruments: _Instruments) -> _Instruments:
    """The instruments whose ``laios.tasks`` counter ``counter`` is: those that created it
    first (``instruments``, when they did, or when ``counter`` cannot be weakly referenced:
    not an SDK instrument). Caller holds ``_lock``."""
    try:
        ref = _by_counter.get(counter)
        owner = ref() if ref is not None else None
        if owner is None:
            _by_counter[counter] = weakref.ref(instruments)
    except TypeError:  # (nor hashed)
        return instruments
    return instruments if owner is None else owner


def _prune(now: bool = False) -> list[MetricsInstrumentation]:
    """Forget the instrumentations whose store is gone or provider shut down, once the
    registry has doubled since the last time, or with ``now`` (caller holds ``_lock``). Every
    instrumentation an ``_Instruments`` reports is in the registry (uninstrument() and a
    replaced entry leave both), so this bounds both by twice the live ones. Returns those
    whose store is alive: the caller takes their listeners off it, once it has let go of
    ``_lock``."""
    global _pruned_size
    if not now and len(_registry) < 2 * _pruned_size + _PRUNE_EVERY:
        return []
    stale = []
    for key in [key for key, (handle, _) in _registry.items() if not handle.active]:
        handle, instruments = _registry.pop(key)
        instruments.discard(handle)
        stale.append(handle)
    _pruned_size = len(_registry)
    return [handle for handle in stale if handle.store is not None]


def _forgot_one() -> None:
    """An entry left the registry (caller holds ``_lock``): the next prune comes no later than
    if it had been pruned."""
    global _pruned_size
    _pruned_size = min(_pruned_size, len(_registry))


def _instruments_for(provider: MeterProvider) -> _Instruments:
    """The instruments ``provider``'s stores report to: those of its meter, made the first time
    (by whichever provider handed it out). Caller holds ``_lock``."""
    found = _by_provider.get(provider)
    meter = None
    if found is None:
        meter = _meter_of(provider)
        found = _by_meter.get(meter)
        if found is None:
            found = _Instruments()
        # Kept before its instruments are created: a provider that raises part way is asked
        # for the rest only, the next time.
        _by_provider.set(provider, found)
        _by_meter.set(meter, found)
    owner = found.create(provider, meter)
    if owner is not found:  # (a meter of its own over another provider's meter)
        _by_provider.set(provider, owner)
        if meter is not None:
            _by_meter.set(meter, owner)
        owner.create(provider, meter)
    return owner


def _check_provider(meter_provider: object) -> None:
    not_a_class("meter_provider", meter_provider, "get_meter")
    # (the API module's get_meter would hand out the proxy's meter while no provider is
    # installed: instruments of their own beside those of the provider installed later)
    not_a_module(
        "meter_provider", meter_provider, "an OpenTelemetry MeterProvider", METER_PROVIDER_INSTEAD
    )
    require_method(
        "meter_provider",
        meter_provider,
        "get_meter",
        "an OpenTelemetry MeterProvider (with get_meter)",
    )


def instrument_metrics(
    store: MetricStore | None = None, *, meter_provider: MeterProvider | None = None
) -> MetricsInstrumentation:
    """Report a metric store's numbers as OpenTelemetry metrics through a meter provider.

    Idempotent per (store, meter): while a store reports to a provider, calling this again,
    with it or with another provider that hands out the same meter (two wrappers over one SDK
    provider), returns the same handle. Several stores may report to one provider, or to
    providers of one meter (their numbers are added together, told apart by their constant
    labels) and one store to several providers.

    Args:
        store: The store to report; the process-wide :func:`get_default_store` when ``None``.
        meter_provider: The provider to report to; when ``None``, the one installed globally
            (``opentelemetry.metrics.set_meter_provider``, as ``opentelemetry-instrument``
            does). With none given and none installed, nothing is instrumented and the handle
            is inactive: call this again once a provider is installed. The API's proxy (what
            ``metrics.get_meter_provider()`` returns while none is installed) is taken as
            ``None``. The API's ``NoOpMeterProvider`` instruments nothing (an inactive
            handle). An SDK provider already shut down gives an inactive handle too, and one
            WARNING per provider saying that no OpenTelemetry metrics will be recorded.

    Returns:
        The handle: its ``uninstrument()`` stops the reporting.

    Raises:
        TypeError: When ``store`` is not a ``MetricStore`` (or is the class itself, not an
            instance) or ``meter_provider`` is not a meter provider (or is the class of one,
            not an instance, or the module ``opentelemetry.metrics``), or looking it over
            raises.
        ValueError: When the store holds :data:`~laios.execution.store.MAX_FINISH_LISTENERS`
            finish listeners already (each provider a store reports to adds one: uninstrument
            those you no longer need); nothing is instrumented.
    """
    not_a_class("store", store, "new_scope")
    if store is None:
        store = get_default_store()
    elif not isinstance(store, MetricStore):
        raise TypeError(f"store must be a MetricStore, got {type(store).__name__}")
    if meter_provider is not None:
        _check_provider(meter_provider)
        if isinstance(meter_provider, NoOpMeterProvider):  # (metrics turned off: no listener
            # recording each task into nothing, one per executor given one)
            return MetricsInstrumentation(store, None)  # inactive
    installed = False  # (the provider is the one installed globally)
    if meter_provider is None or is_proxy_meter_provider(meter_provider):
        # The API's proxy forwards to the provider installed later: instruments made through
        # it would be a second set on that provider's meter, beside those of the executors
        # that follow the installed one (each task recorded twice, a store's counters lost).
        # So it stands for the installed provider, as None does.
        meter_provider = global_meter_provider()
        if meter_provider is None:
            return MetricsInstrumentation(store, None)  # inactive
        installed = True
    with _lock:
        # (Before the registry: a store given again with another provider of the same meter
        # has the handle it has.)
        instruments = _instruments_for(meter_provider)
        key = (id(store), id(instruments))
        entry = _registry.get(key)
        stale = []
        if entry is not None:
            if entry[0].active:
                return entry[0]
            # (a gone store's, whose id this store has now; or one whose provider is shut down)
            entry[1].discard(entry[0])
            stale.append(entry[0])
        stale += _prune()
        provider_under = instruments.provider_under(meter_provider)
        handle = MetricsInstrumentation(store, meter_provider, instruments, provider_under)
        under = meter_provider if provider_under is None else provider_under
        # (inactive from the start: said once, or a store would report nothing without a word)
        shut_down = meter_provider_shut_down(under) and _first_shut_down(under)
        instruments.add(handle)
        _registry[key] = (handle, instruments)
    # Outside the lock: the store takes its own (no order between the two locks to keep),
    # and a logging handler may do anything.
    if shut_down:
        _warn_shut_down(meter_provider, under, installed)
    for gone in stale:  # (a shut-down provider's listener, on a store still alive)
        gone.uninstrument()
    try:
        try:
            store.add_finish_listener(handle.record)
        except ValueError:  # (a store at MAX_FINISH_LISTENERS: some may be shut-down
            # providers')
            with _lock:
                stale = _prune(now=True)
            if not stale:
                raise
            for gone in stale:
                gone.uninstrument()
            store.add_finish_listener(handle.record)
    except BaseException:  # (still at MAX_FINISH_LISTENERS: no handle that records nothing)
        handle.uninstrument()
        raise
    if not handle.active:  # uninstrumented meanwhile, before the listener was there to remove
        store.remove_finish_listener(handle.record)
    return handle


def metric_views() -> list[View]:
    """SDK views that give both histograms the boundaries laios advises.

    The OpenTelemetry API takes bucket advice from version 1.30 on (and an SDK's OTLP
    exporter honours it for several histograms from 1.32); with an older SDK, pass these to
    the provider instead: ``MeterProvider(metric_readers=[...], views=metric_views())``.

    Raises:
        ImportError: When ``opentelemetry-sdk`` is not installed (``pip install
            'laios[sdk]'``).
    """
    try:
        from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
    except ImportError as exc:  # pragma: no cover - the dev extra installs the SDK
        raise ImportError(
            "metric_views() needs the OpenTelemetry SDK: pip install 'laios[sdk]'"
        ) from exc
    views: list[View] = []
    for name, boundaries in (
        (TOOL_DURATION, TOOL_DURATION_BUCKETS),
        (QUEUE_WAIT, QUEUE_WAIT_BUCKETS),
    ):
        aggregation = ExplicitBucketHistogramAggregation(boundaries)
        views.append(View(instrument_name=name, meter_name=METER_NAME, aggregation=aggregation))
    return views
