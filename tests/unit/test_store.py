"""The metric store: record scoping, retained-record capacity, aggregates and snapshots."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

import pytest

from laios.core.types import Context
from laios.execution.executor import Executor
from laios.execution.store import MetricStore, get_default_store


def counts(store: MetricStore, tool: str) -> dict[str, int]:
    """Finished tasks of ``tool`` by outcome."""
    for snapshot in store.snapshot().tools:
        if snapshot.tool == tool:
            return {name: h.count for name, h in snapshot.outcomes.items()}
    return {}


# -- construction --------------------------------------------------------------------------


def test_store_defaults() -> None:
    """MetricStore() has the documented default capacities."""
    store = MetricStore()
    assert store.record_capacity == 10_000
    assert store.max_tool_labels == 200
    assert store.max_error_types == 50
    assert store.max_tracked_ids == 10_000
    assert store.max_custom_metrics == 100


@pytest.mark.parametrize(
    "option",
    ["record_capacity", "max_tool_labels", "max_error_types", "max_tracked_ids"],
)
@pytest.mark.parametrize("value", [0, -1, 1.5, True])
def test_store_refuses_bad_capacities(option: str, value: Any) -> None:
    """Every capacity must be a positive integer."""
    with pytest.raises(ValueError, match=option):
        MetricStore(**{option: value})


@pytest.mark.parametrize(
    "clock",
    [
        time.perf_counter,
        3,
        SimpleNamespace(time=time.time),
        SimpleNamespace(time=1, perf_counter=2),
    ],
)
def test_store_refuses_a_clock_without_time_and_perf_counter(clock: Any) -> None:
    """A clock that cannot be read (time.perf_counter itself, say) is refused when the store
    is made, not by every task later as an internal error."""
    with pytest.raises(TypeError, match="clock"):
        MetricStore(clock=clock)


def test_store_takes_a_clock_of_its_own() -> None:
    """Any object with time() and perf_counter() is a clock; the time module is the default."""
    clock = SimpleNamespace(time=lambda: 1.0, perf_counter=lambda: 2.0)
    assert MetricStore(clock=clock).clock is clock
    assert MetricStore().clock is time


def test_default_store_is_one_object() -> None:
    """get_default_store() returns the same store every time."""
    assert get_default_store() is get_default_store()


def test_executor_uses_the_default_store_when_given_none(registry: Any) -> None:
    """An executor built without a store writes to the process-wide default store."""
    executor = Executor(registry, register_prometheus=False)
    try:
        assert executor.store is get_default_store()
    finally:
        executor.shutdown()


# -- scoping by executor -------------------------------------------------------------------


def test_executors_sharing_a_store_do_not_see_each_others_records(
    make_executor: Any, make_task: Any, context: Context, store: MetricStore
) -> None:
    """Two executors on one store each see only their own tasks, even with the same ids."""
    first = make_executor(store=store)
    second = make_executor(store=store)
    first.execute_task(make_task("echo", task_id="shared-id", text="first"), context)
    second.execute_task(make_task("fail", task_id="shared-id"), context)
    first.execute_task(make_task("echo", task_id="only-first"), context)
    assert [m.task_id for m in first.get_all_metrics()] == ["shared-id", "only-first"]
    assert [m.task_id for m in second.get_all_metrics()] == ["shared-id"]
    assert first.get_metrics("shared-id").outcome == "success"  # type: ignore[union-attr]
    assert second.get_metrics("shared-id").outcome == "error"  # type: ignore[union-attr]
    assert second.get_metrics("only-first") is None


def test_executors_sharing_a_store_share_the_aggregates(
    make_executor: Any, make_task: Any, context: Context, store: MetricStore
) -> None:
    """The store's aggregates count the tasks of every executor writing to it."""
    make_executor(store=store).execute_task(make_task("echo"), context)
    make_executor(store=store).execute_task(make_task("echo"), context)
    assert counts(store, "echo") == {"success": 2}


def test_cancel_does_not_reach_another_executors_task(
    make_executor: Any, make_task: Any, context: Context, store: MetricStore
) -> None:
    """A finished task of one executor is unknown to another executor on the same store."""
    first = make_executor(store=store)
    second = make_executor(store=store)
    first.execute_task(make_task("echo", task_id="done-here"), context)
    assert first.cancel_task("done-here") is False
    assert second.get_task_status("done-here") is None


def test_reused_task_id_starts_a_fresh_record(
    executor: Executor, make_task: Any, context: Context
) -> None:
    """Running a second task with the same id gives a new record; get_metrics returns it."""
    executor.execute_task(make_task("fail", task_id="again"), context)
    executor.execute_task(make_task("echo", task_id="again"), context)
    metrics = executor.get_metrics("again")
    assert metrics is not None
    assert metrics.outcome == "success"
    assert [c["name"] for c in metrics.checkpoints] == ["started", "finished"]
    assert [m.task_id for m in executor.get_all_metrics()] == ["again"]


def test_rerunning_the_same_task_object_starts_a_fresh_record(
    executor: Executor, make_task: Any, context: Context
) -> None:
    """Executing one Task object twice keeps one record per run, the newest retained."""
    task = make_task("progress")
    executor.execute_task(task, context)
    executor.execute_task(task, context)
    metrics = executor.get_metrics(task.id)
    assert metrics is not None
    assert [c["name"] for c in metrics.checkpoints].count("loaded") == 1


# -- retained-record capacity --------------------------------------------------------------


def test_get_all_metrics_caps_at_record_capacity(
    make_executor: Any, make_task: Any, context: Context
) -> None:
    """With record_capacity=50, after 500 tasks only the newest 50 records are kept."""
    executor = make_executor(record_capacity=50)
    tasks = [make_task("echo", text=str(i)) for i in range(500)]
    for task in tasks:
        executor.execute_task(task, context)
    kept = executor.get_all_metrics()
    assert len(kept) == 50
    assert [m.task_id for m in kept] == [t.id for t in tasks[-50:]]
    assert executor.get_metrics(tasks[0].id) is None
    assert executor.get_metrics(tasks[-1].id) is not None


def test_store_record_capacity_is_the_default(
    make_executor: Any, make_task: Any, context: Context
) -> None:
    """An executor without record_capacity retains the store's record_capacity."""
    executor = make_executor(store=MetricStore(record_capacity=20))
    for _ in range(30):
        executor.execute_task(make_task("echo"), context)
    assert len(executor.get_all_metrics()) == 20


@pytest.mark.parametrize("capacity", [0, -5, 2.5])
def test_bad_record_capacity_is_refused(make_executor: Any, capacity: Any) -> None:
    """record_capacity must be a positive integer."""
    with pytest.raises(ValueError, match="capacity"):
        make_executor(record_capacity=capacity)


def test_hundred_thousand_tasks_keep_records_bounded(
    make_executor: Any, make_task: Any, context: Context
) -> None:
    """100,000 no-op tasks leave exactly 10,000 retained records (how fast they run is the
    benchmarks' to measure: a loaded machine once took over 30 s)."""
    store = MetricStore()
    executor = make_executor(store=store)
    for i in range(100_000):
        executor.execute_task(make_task("echo", text=i), context)
    assert len(executor.get_all_metrics()) == 10_000
    assert counts(store, "echo") == {"success": 100_000}
    assert store.snapshot().running == []


# -- aggregates and snapshots --------------------------------------------------------------


def test_snapshot_counts_outcomes_per_tool(
    executor: Executor, make_task: Any, context: Context, store: MetricStore
) -> None:
    """The snapshot counts each finished task once, by tool and outcome."""
    for tool in ("echo", "echo", "fail", "boom"):
        executor.execute_task(make_task(tool), context)
    executor.execute_task(make_task("blocked"), context, timeout=0.1)
    assert counts(store, "echo") == {"success": 2}
    assert counts(store, "fail") == {"error": 1}
    assert counts(store, "boom") == {"error": 1}
    assert counts(store, "blocked") == {"timeout": 1}


def test_snapshot_counts_errors_by_type(
    executor: Executor, make_task: Any, context: Context, store: MetricStore
) -> None:
    """Errors are counted by error type (exception class, tool_error, timeout...)."""
    executor.execute_task(make_task("boom"), context)
    executor.execute_task(make_task("boom"), context)
    executor.execute_task(make_task("fail"), context)
    tools = {t.tool: t for t in store.snapshot().tools}
    assert tools["boom"].errors["RuntimeError"].value == 2
    assert tools["fail"].errors["tool_error"].value == 1


def test_unknown_tools_share_the_unknown_label(
    executor: Executor, make_task: Any, context: Context, store: MetricStore
) -> None:
    """Unregistered tool names are counted under the 'unknown' tool label."""
    executor.execute_task(make_task("nope-1"), context)
    executor.execute_task(make_task("nope-2"), context)
    assert counts(store, "unknown") == {"rejected": 2}
    assert counts(store, "nope-1") == {}


def test_tool_labels_past_the_cap_fold_into_other(
    make_executor: Any, registry: Any, make_task: Any, context: Context
) -> None:
    """Past max_tool_labels distinct tools, further tools are counted as 'other'."""
    store = MetricStore(max_tool_labels=2)
    executor = make_executor(store=store)
    for tool in ("echo", "sleep", "fail", "boom"):
        executor.execute_task(make_task(tool), context)
    labels = {t.tool for t in store.snapshot().tools}
    assert {"echo", "sleep", "other"} <= labels
    assert "fail" not in labels
    assert counts(store, "other") == {"error": 2}


def test_snapshot_shows_running_tasks_and_in_flight(
    executor: Executor,
    make_task: Any,
    context: Context,
    gate: Any,
    store: MetricStore,
    in_thread: Any,
) -> None:
    """While a tool runs, the snapshot lists it as running and counts it in flight."""
    task = make_task("blocked")
    waiter, _ = in_thread(executor.execute_task, task, context, timeout=5)
    assert gate.wait_entered(1)
    snapshot = store.snapshot()
    [running] = snapshot.running
    assert running.task_id == task.id
    assert running.tool == "blocked"
    assert running.state == "running"
    assert [t.in_flight for t in snapshot.tools if t.tool == "blocked"] == [1]
    gate.release.set()
    waiter.join(5)
    after = store.snapshot()
    assert after.running == []
    assert [t.in_flight for t in after.tools if t.tool == "blocked"] == [0]


def test_snapshot_counts_queue_depth(
    make_executor: Any, make_task: Any, context: Context, gate: Any, wait_until: Any
) -> None:
    """Tasks waiting for a worker are counted in queue_depth, which returns to 0."""
    store = MetricStore()
    executor = make_executor(max_workers=1, store=store)
    tasks = [make_task("blocked"), make_task("echo"), make_task("echo")]

    async def scenario() -> None:
        pending = asyncio.ensure_future(executor.execute_parallel(tasks, context))
        assert await asyncio.to_thread(gate.wait_entered, 1)
        assert store.snapshot().queue_depth == 2
        gate.release.set()
        await pending

    asyncio.run(scenario())
    assert store.snapshot().queue_depth == 0


def test_snapshot_counts_workers_of_open_executors(make_executor: Any, store: MetricStore) -> None:
    """workers sums max_workers of the store's open executors; a shut-down one drops out."""
    first = make_executor(max_workers=3, store=store)
    make_executor(max_workers=2, store=store)
    assert store.snapshot().workers == 5
    first.shutdown()
    assert store.snapshot().workers == 2


def test_snapshot_never_carries_parameters(
    executor: Executor, make_task: Any, context: Context, gate: Any, in_thread: Any
) -> None:
    """Running-task snapshots hold no parameters (they may be secrets)."""
    in_thread(executor.execute_task, make_task("blocked", api_key="s3cr3t-value"), context)
    assert gate.wait_entered(1)
    assert "s3cr3t-value" not in repr(executor.store.snapshot())


def test_retained_records_do_not_keep_tasks_alive(
    executor: Executor, make_task: Any, context: Context
) -> None:
    """A finished record drops its Task, so parameters and results are not retained."""
    import gc
    import weakref

    task = make_task("echo", text="x" * 1000)
    executor.execute_task(task, context)
    ref = weakref.ref(task)
    del task
    gc.collect()
    assert ref() is None


# -- exemplars -----------------------------------------------------------------------------------


class _WallClock:
    """A clock for ``MetricStore(clock=...)``: a settable wall clock, the real monotonic one."""

    def __init__(self) -> None:
        self.now = 1_000_000.0
        self.perf_counter = time.perf_counter

    def time(self) -> float:
        return self.now


def _finish_traced(store: MetricStore, trace_id: str) -> None:
    slot = store.tool_slot("fetch", True)
    rec = store.task_submitted(None, SimpleNamespace(id="t"), "fetch", slot, running=True)
    store.task_finished(rec, outcome="success", status=None, exemplar=(trace_id, "b" * 16))


def _first_bucket_exemplar(store: MetricStore) -> Any:
    (tool,) = [t for t in store.snapshot().tools if t.tool == "fetch"]
    return tool.outcomes["success"].exemplars[0]


def test_a_bucket_keeps_its_exemplar_for_a_second_then_takes_a_newer_one() -> None:
    """Prometheus reads one exemplar per bucket per scrape: a busy bucket does not build one per
    task, but never shows one older than a second when newer sampled tasks arrived."""
    clock = _WallClock()
    store = MetricStore(clock=clock)
    _finish_traced(store, "1" * 32)
    assert _first_bucket_exemplar(store).trace_id == "1" * 32
    clock.now += 0.5
    _finish_traced(store, "2" * 32)
    assert _first_bucket_exemplar(store).trace_id == "1" * 32  # kept: under a second old
    clock.now += 0.6
    _finish_traced(store, "3" * 32)
    exemplar = _first_bucket_exemplar(store)
    assert exemplar.trace_id == "3" * 32  # replaced: the held one was 1.1 s old
    assert exemplar.timestamp == clock.now


def test_a_clock_stepped_back_does_not_freeze_a_bucket_exemplar() -> None:
    """A wall clock set back (NTP) makes the held exemplar look from the future: it is replaced."""
    clock = _WallClock()
    store = MetricStore(clock=clock)
    _finish_traced(store, "1" * 32)
    clock.now -= 3600.0
    _finish_traced(store, "2" * 32)
    assert _first_bucket_exemplar(store).trace_id == "2" * 32
