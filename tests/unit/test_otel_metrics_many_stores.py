"""Many stores on one meter provider: instrumenting (and uninstrumenting) one store takes the
same time however many others report there, so that ten thousand executors, each with its own
store, do not take seconds to start (each new store used to walk every one before it)."""

from __future__ import annotations

import gc
import sys
import threading
import time
import weakref
from types import FrameType, SimpleNamespace
from typing import Any

from multiprocess_work import run_tasks
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from laios.execution._aggregates import StoreAggregates
from laios.execution._totals import MAX_LABEL_SETS
from laios.execution.otel_metrics import (
    ERRORS,
    QUEUE_WAIT,
    RETRIES,
    TASKS,
    TOOL_DURATION,
    instrument_metrics,
)
from laios.execution.store import MetricStore

#: The stores already reporting in the second count of :func:`steps_per_store`.
OTHERS = 500


def steps_per_store(others: int) -> float:
    """The Python steps (calls, lines, returns, as ``sys.settrace`` sees them) this thread
    takes to instrument and then uninstrument one store, on average over 50, on a provider
    that ``others`` stores (instrumented beforehand, outside the count) report to.

    A count of work done, not a time: a loaded machine does not change it. One store is
    instrumented and uninstrumented first: the provider's instruments are created, and a
    prune of the gone stores that was due (it walks them all, once the registry has doubled)
    is done, so that the stores counted, each uninstrumented before the next, make none.
    """
    provider = MeterProvider([InMemoryMetricReader()])
    reporting = [MetricStore() for _ in range(others)]
    handles = [instrument_metrics(store, meter_provider=provider) for store in reporting]
    stores = [MetricStore() for _ in range(50)]
    first = MetricStore()  # (kept: a store gone would make the next one added look for more)
    instrument_metrics(first, meter_provider=provider).uninstrument()
    steps = 0

    def count(frame: FrameType, event: str, arg: object) -> Any:
        nonlocal steps
        steps += 1
        return count

    gc.collect()
    gc.disable()  # (no collection, nor the weak references' callbacks it runs, in the count)
    before = sys.gettrace()
    sys.settrace(count)
    try:
        for store in stores:
            instrument_metrics(store, meter_provider=provider).uninstrument()
    finally:
        sys.settrace(before)
        gc.enable()
    for handle in handles:
        handle.uninstrument()
    provider.shutdown()
    return steps / len(stores)


def test_instrumenting_a_store_does_the_same_work_however_many_others_report() -> None:
    """Instrumenting and uninstrumenting a store does not walk the other stores: with five
    hundred others reporting, it takes the steps it takes with none. A walk over them, as
    each call used to make (n stores took n^2 / 2 steps), is a step or more for each; the
    bound is a tenth of one."""
    alone = steps_per_store(0)
    among_others = steps_per_store(OTHERS)
    assert among_others - alone < OTHERS / 10, (alone, among_others)


def test_many_stores_are_added_together_and_each_leaves_on_uninstrument_not_when_gone() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider([reader])
    stores = [MetricStore() for _ in range(300)]
    handles = [instrument_metrics(store, meter_provider=provider) for store in stores]
    assert instrument_metrics(stores[7], meter_provider=provider) is handles[7]
    for store in stores:
        store.task_retried(store.tool_slot("echo", True), "timeout")

    def results() -> int:
        data = reader.get_metrics_data()
        assert data is not None
        return sum(
            point.value
            for rm in data.resource_metrics
            for sm in rm.scope_metrics
            for metric in sm.metrics
            if metric.name == RETRIES
            for point in metric.data.data_points
        )

    assert results() == 300
    for handle in handles[:100]:
        handle.uninstrument()
        assert not handle.active
    assert results() == 200
    del stores[100:150], handles[100:150]
    gc.collect()
    assert results() == 200  # (the counts of gone stores stay: a counter never goes back)
    again = instrument_metrics(stores[0], meter_provider=provider)
    assert again.active
    assert again is not handles[0]
    assert results() == 201
    provider.shutdown()


def test_the_handles_of_gone_stores_are_let_go_as_new_stores_are_instrumented() -> None:
    """A gone store's handle is kept until a later instrument_metrics() call forgets it, at
    the latest once the handles kept have doubled: bounded memory for a program that makes and
    drops executors for ever."""
    provider = MeterProvider([InMemoryMetricReader()])
    stores = [MetricStore() for _ in range(200)]
    gone = [weakref.ref(instrument_metrics(store, meter_provider=provider)) for store in stores]
    del stores
    gc.collect()
    live: list[MetricStore] = []
    while any(ref() is not None for ref in gone) and len(live) < 10_000:
        for _ in range(100):
            live.append(MetricStore())
            instrument_metrics(live[-1], meter_provider=provider)
        gc.collect()
    assert all(ref() is None for ref in gone)
    provider.shutdown()


class SlowStore(MetricStore):
    """A store whose every read takes over a second, as reading tens of thousands of stores
    does; it counts its reads."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def aggregates(self) -> StoreAggregates:
        self.reads += 1
        time.sleep(1.1)
        return super().aggregates()


def test_a_collection_whose_read_takes_over_a_second_reads_the_stores_once() -> None:
    """The eight counters of one collection share one read of the stores however long it took:
    each used to read again once the first read had taken a second, so twenty thousand
    stores (two seconds a read) took eight reads and passed the SDK's ten-second timeout."""
    reader = InMemoryMetricReader()
    provider = MeterProvider([reader])
    store = SlowStore()
    store.task_retried(store.tool_slot("echo", True), "timeout")
    handle = instrument_metrics(store, meter_provider=provider)
    data = reader.get_metrics_data()
    assert store.reads == 1
    assert data is not None
    names = {m.name for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    assert RETRIES in names
    handle.uninstrument()
    provider.shutdown()


def test_two_readers_collecting_in_threads_see_one_read_each_and_never_less() -> None:
    """Two readers of one provider collecting at once, while tasks fail and stores come and go:
    each collection's counters agree with one another (failed tasks = errors: one read of the
    stores) and a reader's counter of a store kept throughout never goes backwards."""
    first, second = InMemoryMetricReader(), InMemoryMetricReader()
    provider = MeterProvider([first, second])
    kept = MetricStore()
    instrument_metrics(kept, meter_provider=provider)
    stop = threading.Event()

    def work() -> None:
        slot = kept.tool_slot("echo", True)
        n = 0
        while not stop.is_set():
            rec = kept.task_submitted(None, SimpleNamespace(id=f"t{n}"), "echo", slot, running=True)
            kept.task_finished(rec, "error", None, "Boom")
            passing = MetricStore()
            instrument_metrics(passing, meter_provider=provider).uninstrument()
            n += 1

    problems: list[object] = []

    def collect(reader: InMemoryMetricReader) -> None:
        seen = 0
        for _ in range(100):
            data = reader.get_metrics_data()
            assert data is not None
            sums = dict.fromkeys((TASKS, ERRORS), 0)
            for rm in data.resource_metrics:
                for sm in rm.scope_metrics:
                    for metric in sm.metrics:
                        if metric.name in sums:
                            sums[metric.name] += sum(
                                point.value
                                for point in metric.data.data_points
                                if point.attributes.get("laios.task.outcome", "error") == "error"
                            )
            if sums[TASKS] != sums[ERRORS] or sums[ERRORS] < seen:
                problems.append((sums, seen))
            seen = sums[ERRORS]

    threads = [threading.Thread(target=collect, args=(reader,)) for reader in (first, second)]
    worker = threading.Thread(target=work)
    worker.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stop.set()
    worker.join()
    assert problems == []
    provider.shutdown()


def _label_sets(reader: InMemoryMetricReader, name: str) -> set[tuple[tuple[str, Any], ...]]:
    """The sets of constant labels (``worker``) of ``name``'s points, in one collection."""
    data = reader.get_metrics_data()
    assert data is not None
    return {
        tuple((key, value) for key, value in point.attributes.items() if key == "worker")
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
        if metric.name == name
        for point in metric.data.data_points
    }


def test_stores_with_constant_labels_of_their_own_leave_bounded_histograms() -> None:
    """Stores that come and go, each with a label value of its own (a worker id), keep at most
    ``MAX_LABEL_SETS`` sets of constant labels in the histograms, as in the counters: those
    past it are recorded with every value ``other``. The SDK cannot forget a histogram's
    points, so one set per store would grow with every store (until the SDK's cardinality
    limit, past which even the live stores' new points would be lost to its overflow point);
    every task is still counted."""
    reader = InMemoryMetricReader()
    provider = MeterProvider([reader])
    stores = MAX_LABEL_SETS + 50
    for index in range(stores):
        store = MetricStore(labels={"worker": f"w{index}"})
        handle = instrument_metrics(store, meter_provider=provider)
        run_tasks(store, 1)
        handle.uninstrument()
    for name in (TOOL_DURATION, QUEUE_WAIT):
        sets = _label_sets(reader, name)
        assert len(sets) == MAX_LABEL_SETS + 1, name
        assert (("worker", "other"),) in sets
    data = reader.get_metrics_data()
    assert data is not None
    counted = sum(
        point.count
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
        if metric.name == TOOL_DURATION
        for point in metric.data.data_points
    )
    assert counted == stores
    provider.shutdown()


def test_stores_with_constant_label_names_of_their_own_leave_bounded_histograms() -> None:
    """Stores each with a label *name* of their own (``shard_<n>``) keep the histograms bounded
    too: past ``MAX_LABEL_SETS`` sets, a set recorded with every value ``other`` is one per set
    of names, so those are bounded as well (``MAX_LABEL_SETS`` of them), and the tasks of the
    stores past both are recorded with no constant labels. Every task is still counted."""
    reader = InMemoryMetricReader()
    provider = MeterProvider([reader])
    stores = 2 * MAX_LABEL_SETS + 50
    for index in range(stores):
        store = MetricStore(labels={f"shard_{index}": "a"})
        handle = instrument_metrics(store, meter_provider=provider)
        fail(store, "t", "E")
        handle.uninstrument()
    points = _points(reader, TOOL_DURATION)
    sets = {
        tuple((key, value) for key, value in point.attributes.items() if key.startswith("shard_"))
        for point in points
    }
    assert len(sets) == 2 * MAX_LABEL_SETS + 1
    assert (("shard_0", "a"),) in sets
    assert ((f"shard_{MAX_LABEL_SETS}", "other"),) in sets
    assert () in sets
    assert sum(point.count for point in points) == stores
    provider.shutdown()


def fail(store: MetricStore, tool: str, error_type: str) -> None:
    """One failed task of ``tool`` with ``error_type``, recorded straight into ``store``."""
    slot = store.tool_slot(tool, True)
    rec = store.task_submitted(None, SimpleNamespace(id=f"{tool}-t"), tool, slot, running=True)
    store.task_finished(rec, outcome="error", status=None, error_type=error_type)


def _points(reader: InMemoryMetricReader, name: str) -> list[Any]:
    data = reader.get_metrics_data()
    assert data is not None
    return [
        point
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
        if metric.name == name
        for point in metric.data.data_points
    ]


def test_stores_failing_their_own_ways_leave_the_duration_histogram_bounded() -> None:
    """Stores that come and go, each failing with an error type of its own, keep at most
    ``max_error_types`` types per tool in the duration histogram, as in ``laios.task.errors``:
    further ones are recorded as ``other``. (Each store's own type is within its cap, so each
    used to add a point the SDK keeps for good.) Every task is still counted."""
    reader = InMemoryMetricReader()
    provider = MeterProvider([reader])
    stores = 80
    for index in range(stores):
        store = MetricStore(max_error_types=20)
        handle = instrument_metrics(store, meter_provider=provider)
        fail(store, "fetch", f"Failure{index:03d}")
        handle.uninstrument()
    points = _points(reader, TOOL_DURATION)
    types = {point.attributes["error.type"] for point in points}
    assert len(types) == 20 + 1
    assert "other" in types
    assert sum(point.count for point in points) == stores
    provider.shutdown()


def test_stores_each_with_tools_of_their_own_leave_the_histograms_bounded() -> None:
    """Stores that come and go, each with a tool of its own, keep at most ``max_tool_labels``
    tools in the histograms, as in the counters: further ones are recorded as ``other``."""
    reader = InMemoryMetricReader()
    provider = MeterProvider([reader])
    stores = 80
    for index in range(stores):
        store = MetricStore(max_tool_labels=20)
        handle = instrument_metrics(store, meter_provider=provider)
        run_tasks(store, 1, f"tool{index:03d}")
        handle.uninstrument()
    for name in (TOOL_DURATION, QUEUE_WAIT):
        points = _points(reader, name)
        tools = {point.attributes["gen_ai.tool.name"] for point in points}
        assert len(tools) == 20 + 1, name
        assert "other" in tools
        assert sum(point.count for point in points) == stores
    provider.shutdown()
