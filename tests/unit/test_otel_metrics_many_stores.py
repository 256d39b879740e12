"""Many stores on one meter provider: instrumenting (and uninstrumenting) one store takes the
same time however many others report there, so that ten thousand executors, each with its own
store, do not take seconds to start (each new store used to walk every one before it)."""

from __future__ import annotations

import gc
import threading
import time
import weakref
from types import SimpleNamespace

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from laios.execution._aggregates import StoreAggregates
from laios.execution.otel_metrics import ERRORS, RETRIES, TASKS, instrument_metrics
from laios.execution.store import MetricStore


def seconds_for(count: int) -> float:
    """The best of three times to instrument and then uninstrument ``count`` live stores on
    one provider (the stores made beforehand, outside the time)."""
    best = float("inf")
    for _ in range(3):
        provider = MeterProvider([InMemoryMetricReader()])
        stores = [MetricStore() for _ in range(count)]
        gc.collect()
        gc.disable()
        try:
            start = time.perf_counter()
            handles = [instrument_metrics(store, meter_provider=provider) for store in stores]
            for handle in handles:
                handle.uninstrument()
            best = min(best, time.perf_counter() - start)
        finally:
            gc.enable()
        provider.shutdown()
    return best


def test_instrumenting_four_times_the_stores_takes_about_four_times_as_long() -> None:
    """Linear: 4x the stores take about 4x the time (the bound is generous); quadratic, as
    before, they took about 16x."""
    seconds_for(100)  # (warm up)
    small = seconds_for(1000)
    large = seconds_for(4000)
    assert large / small < 9, (small, large)


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
