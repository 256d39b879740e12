"""The guarded reads of other packages' internals (``laios._compat``).

Each fast path must still be taken with the installed dependency (a test fails loudly when an
upgrade changes the shape it reads), and each fallback must give the same answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib.machinery
import os
import sys
import threading
import time
from collections.abc import AsyncGenerator, Callable
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import NoOpTracerProvider

from laios._compat import otel
from laios._compat import pydantic as fast_pydantic
from laios._compat.asyncio import (
    cancel_requested_while_running,
    in_a_task_group_that_cancelled_its_task,
    raising_handle,
    suspended_async_generators,
)
from laios._compat.functools import partialmethod_of
from laios.core.types import Task, TaskResult, TaskStatus


def make_task() -> Task:
    return Task(plan_id="p", description="d", tool_name="echo")


def test_opentelemetry_still_keeps_the_global_provider_where_it_is_read() -> None:
    """The API still keeps its global tracer provider in ``trace._TRACER_PROVIDER``: when
    this fails, the per-task tracing check has fallen back to the slower public call."""
    assert otel.PROVIDER_SLOT_READABLE


def test_opentelemetry_still_keeps_the_global_meter_provider_where_it_is_read() -> None:
    """The metrics API still keeps its global provider in ``_METER_PROVIDER``: when this fails,
    an executor's check for an installed meter provider has fallen back to the public call."""
    assert otel.METER_SLOT_READABLE


def test_opentelemetry_still_keeps_the_suppress_instrumentation_key_where_it_is_read() -> None:
    """suppress_instrumentation() sets a private key of the API's context module: if it moves,
    tasks run under it would be traced again (only the plain key would still be read)."""
    from opentelemetry import context as otel_context

    key = otel._SUPPRESS_KEY
    assert isinstance(key, str)
    token = otel_context.attach(otel_context.set_value(key, True))
    try:
        assert otel.instrumentation_suppressed()
    finally:
        otel_context.detach(token)
    assert not otel.instrumentation_suppressed()


def test_pydantic_still_has_the_slots_results_are_built_through() -> None:
    """pydantic's ``BaseModel`` still has the slot descriptors the fast construction writes:
    when this fails, every result is built through ``model_construct`` (slower)."""
    assert fast_pydantic.FAST_CONSTRUCT


def test_functools_still_marks_the_function_a_partialmethod_makes() -> None:
    """The function a ``partialmethod`` gives through its class still carries it: when this
    fails, a tool whose ``_execute`` is a partialmethod is described by its signature alone,
    and its string annotations naming local classes take any value."""

    def helper(self: object, mode: str, x: int = 1) -> tuple[str, int]:
        return mode, x

    made = functools.partialmethod(helper, "pm")

    class Holder:
        run = made

    assert partialmethod_of(Holder.run) is made
    assert partialmethod_of(helper) is None


def test_asyncio_still_keeps_a_loops_async_generators_where_they_are_named() -> None:
    """asyncio's loop still keeps the async generators it will close in ``_asyncgens``: when
    this fails, the warning about a generator that did not close at a loop thread's stop no
    longer names it (the generators are still closed)."""

    async def items() -> AsyncGenerator[int, None]:
        yield 1

    async def start() -> AsyncGenerator[int, None]:
        generator = items()
        await generator.__anext__()
        return generator

    loop = asyncio.new_event_loop()
    try:
        generator = loop.run_until_complete(start())
        assert suspended_async_generators(loop) == [generator]
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()


def test_asyncio_still_runs_a_callback_in_a_frame_of_its_handle() -> None:
    """A callback that raises ``SystemExit`` out of ``run_forever()`` is still found in the
    traceback's frame of ``Handle._run``: when this fails, a task a tool left on the
    executor's loop that raises ``SystemExit`` quoting a secret is logged unscrubbed on
    Python 3.12+ (before 3.12 the task it ran in is found another way)."""

    def leave() -> None:
        raise SystemExit("bye")

    loop = asyncio.new_event_loop()
    try:
        handle = loop.call_soon(leave)
        with pytest.raises(SystemExit) as caught:
            loop.run_forever()
        assert raising_handle(caught.value) is handle
        assert raising_handle(SystemExit("raised elsewhere")) is None
    finally:
        loop.close()


def test_asyncio_tasks_still_flag_a_cancellation_requested_while_they_run() -> None:
    """A task cancelled while it runs a step still flags it (``_must_cancel``) until it
    delivers it: when this fails, a tool that cancels its own task on Python 3.10 is no
    longer told from one whose task something else cancelled."""

    async def scenario() -> tuple[bool, bool, bool]:
        this = asyncio.current_task()
        assert this is not None
        before = cancel_requested_while_running(this)
        this.cancel()
        flagged = cancel_requested_while_running(this)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(0)
        return before, flagged, cancel_requested_while_running(this)

    assert asyncio.run(scenario()) == (False, True, False)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="TaskGroup is Python 3.11+")
def test_asyncio_task_groups_still_say_they_cancelled_the_task_they_run_in() -> None:
    """A TaskGroup whose task fails while it waits in ``__aexit__`` still flags that it
    cancelled the task running it (``_parent_cancel_requested``) as that cancellation is
    delivered: when this fails, a tool awaited in the caller's task that catches its group's
    failure makes the caller's await raise CancelledError again (before Python 3.12.3)."""
    seen: list[bool] = []

    class Watch:
        def __init__(self, coroutine: Any) -> None:
            self.coroutine = coroutine

        def __await__(self) -> Any:
            return self

        def __next__(self) -> Any:
            return self.coroutine.send(None)

        def send(self, value: Any) -> Any:
            return self.coroutine.send(value)

        def throw(self, exc: BaseException, *rest: Any) -> Any:
            if isinstance(exc, asyncio.CancelledError):
                seen.append(in_a_task_group_that_cancelled_its_task(self.coroutine))
            return self.coroutine.throw(exc)

    async def tool() -> str:
        async def fails() -> None:
            raise KeyError("no row")

        try:
            async with asyncio.TaskGroup() as group:  # type: ignore[attr-defined]
                group.create_task(fails())
        except Exception:  # (an ExceptionGroup)
            return "fallback"
        return "never"

    async def scenario() -> str:
        result: str = await Watch(tool())
        return result

    assert asyncio.run(scenario()) == "fallback"
    assert seen == [True]
    assert in_a_task_group_that_cancelled_its_task(object()) is False


@pytest.mark.parametrize(
    ("provider", "expected"),
    [(None, False), (NoOpTracerProvider(), False), (TracerProvider(), True)],
    ids=["none-set", "no-op", "sdk"],
)
def test_both_provider_checks_agree(
    monkeypatch: pytest.MonkeyPatch, provider: object, expected: bool
) -> None:
    """The fast read and the public call give the same answer for every kind of provider."""
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", provider)
    assert otel._from_slot() is expected
    if provider is not None:  # the public call installs a proxy when none is set
        assert otel._from_api() is expected
    assert otel.global_provider_is_sdk() is expected
    assert otel.global_tracer_provider() is (provider if expected else None)


@pytest.mark.parametrize(
    "build", [fast_pydantic._fast, fast_pydantic._public], ids=["fast", "public"]
)
def test_both_constructions_build_an_equal_result(build) -> None:
    """A result built either way equals one built with validation, fields set included."""
    values = {
        "task_id": "t",
        "success": True,
        "output": 1,
        "error": None,
        "logs": [],
        "execution_time_seconds": 0.5,
        "metadata": {"a": 1},
    }
    built = build(TaskResult, dict(values))
    assert built == TaskResult(**values)
    assert built.model_fields_set == set(values)


@pytest.mark.parametrize(
    "assign", [fast_pydantic._assign_fast, fast_pydantic._assign_public], ids=["fast", "public"]
)
def test_assigned_fields_show_in_model_dump_and_fields_set(assign) -> None:
    """Values set either way show in ``model_dump()`` and ``model_fields_set``."""
    task = make_task()
    started = datetime(2024, 1, 1, tzinfo=timezone.utc)
    assign(task, {"status": TaskStatus.RUNNING, "started_at": started, "error": "boom"})
    dumped = task.model_dump(exclude_unset=True)
    assert (dumped["status"], dumped["started_at"], dumped["error"]) == (
        TaskStatus.RUNNING,
        started,
        "boom",
    )


def test_fast_assignment_skips_validation() -> None:
    """The fast assignment stores a value as given, without validation or coercion."""
    task = make_task()
    naive = datetime(2024, 1, 1)
    fast_pydantic._assign_fast(task, {"started_at": naive})
    assert task.started_at is naive


def test_multiprocessing_still_names_the_main_file_its_processes_run_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``multiprocessing.spawn.get_preparation_data`` still names the main module's file a
    started process runs again (made absolute from where the program started), and none for
    a module run by name: what the process runner checks before it starts workers."""
    import multiprocessing.process
    import types

    from laios._compat import multiprocessing as fast_multiprocessing

    main = types.ModuleType("__main__")
    main.__file__ = "some_program.py"
    monkeypatch.setitem(sys.modules, "__main__", main)
    started_in = multiprocessing.process.ORIGINAL_DIR  # type: ignore[attr-defined]
    assert isinstance(started_in, str)
    expected = os.path.normpath(os.path.join(started_in, "some_program.py"))
    assert fast_multiprocessing.main_file() == expected
    main.__spec__ = importlib.machinery.ModuleSpec("package.program", None)
    assert fast_multiprocessing.main_file() is None


def test_multiprocessing_still_keeps_its_children_where_a_forked_child_drops_them() -> None:
    """``multiprocessing.process._children`` is still the set a forked child drops its
    parent's worker processes from: when this fails, such a child's exit waits for them."""
    import multiprocessing.process

    from laios._compat import multiprocessing as fast_multiprocessing

    assert fast_multiprocessing.CHILDREN_READABLE
    marker = object()
    children = multiprocessing.process._children  # type: ignore[attr-defined]
    children.add(marker)
    fast_multiprocessing.forget_child(marker)
    assert marker not in children


def test_the_forkserver_still_keeps_its_state_where_a_forked_child_resets_it() -> None:
    """The forkserver still keeps its pid, alive fd, address and lock on the module's
    instance: when this fails, a process runner in a forked child cannot start workers."""
    from laios._compat import multiprocessing as fast_multiprocessing

    assert fast_multiprocessing.FORKSERVER_READABLE


def test_the_dask_scheduler_still_keeps_topic_events_where_they_are_cleared() -> None:
    """A real scheduler keeps a topic's events in the broker that forget_topic clears: after
    it, get_events has none of that topic and another topic's are untouched."""
    distributed = pytest.importorskip("distributed")
    from laios._compat.dask import forget_topic

    with (
        distributed.LocalCluster(n_workers=0, processes=False, dashboard_address=":0") as cluster,
        distributed.Client(cluster) as client,
    ):
        client.log_event("laios-test-forget", {"secret": "kept until cleared"})
        client.log_event("laios-test-other", {"n": 1})
        assert client.get_events("laios-test-forget")
        cleared = client.run_on_scheduler(
            lambda dask_scheduler: forget_topic(dask_scheduler, "laios-test-forget")
        )
        assert cleared is True
        assert list(client.get_events("laios-test-forget")) == []
        assert len(client.get_events("laios-test-other")) == 1


def test_clearing_a_topic_on_a_scheduler_of_another_shape_does_nothing() -> None:
    """Without the broker (another Dask version) nothing is cleared and nothing fails."""
    from laios._compat.dask import forget_topic

    assert forget_topic(object(), "laios-test-forget") is False


def test_the_dask_scheduler_and_client_still_keep_topics_where_they_are_dropped(
    wait_until: Callable[..., bool],
) -> None:
    """A real scheduler keeps its topics, and a real client its event handlers, in the
    mappings drop_topic and drop_topic_handler remove them from; another topic stays."""
    distributed = pytest.importorskip("distributed")
    from laios._compat.dask import drop_topic, drop_topic_handler

    def topics(dask_scheduler: Any) -> list[str]:
        return sorted(name for name in dask_scheduler._broker._topics if "laios-test" in name)

    def events_arrived(dask_scheduler: Any) -> int:
        names = ("laios-test-drop", "laios-test-kept")
        return sum(1 for name in names if dask_scheduler.get_events(name))

    with (
        distributed.LocalCluster(n_workers=0, processes=False, dashboard_address=":0") as cluster,
        distributed.Client(cluster) as client,
    ):
        client.subscribe_topic("laios-test-drop", lambda event: None)
        client.subscribe_topic("laios-test-kept", lambda event: None)
        client.log_event("laios-test-drop", {"n": 1})
        client.log_event("laios-test-kept", {"n": 1})
        # The events travel on the client's batched stream, run_on_scheduler on a call of its
        # own: an event still on its way when its topic is dropped would make it anew.
        arrived = wait_until(lambda: client.run_on_scheduler(events_arrived) == 2, 30)
        assert arrived, "the events never reached the scheduler"
        assert client.run_on_scheduler(topics) == ["laios-test-drop", "laios-test-kept"]

        def drop_then_list(dask_scheduler: Any) -> tuple[bool, list[str]]:
            # (in one call on the scheduler's loop: nothing else of the scheduler's runs between
            # the drop and the listing, which a later message could make the topic anew in)
            return drop_topic(dask_scheduler, "laios-test-drop"), topics(dask_scheduler)

        dropped, left = client.run_on_scheduler(drop_then_list)
        assert dropped is True
        assert left == ["laios-test-kept"]
        assert drop_topic_handler(client, "laios-test-drop") is True
        assert "laios-test-drop" not in client._event_handlers
        assert "laios-test-kept" in client._event_handlers


def test_dropping_topics_on_dask_objects_of_another_shape_does_nothing() -> None:
    """Without the mappings (another Dask version) nothing is dropped and nothing fails."""
    from laios._compat.dask import drop_topic, drop_topic_handler

    assert drop_topic(object(), "laios-test-drop") is False
    assert drop_topic_handler(object(), "laios-test-drop") is False


def test_a_dask_client_still_shows_the_connection_it_reconnects_through() -> None:
    """A connected client's scheduler_connection is an object (replaced when it reconnects);
    one of another shape has none, and its reconnections go unnoticed."""
    distributed = pytest.importorskip("distributed")
    from laios._compat.dask import scheduler_connection

    with (
        distributed.LocalCluster(n_workers=0, processes=False, dashboard_address=":0") as cluster,
        distributed.Client(cluster) as client,
    ):
        assert scheduler_connection(client) is not None
    assert scheduler_connection(object()) is None


def test_a_dask_future_still_keeps_why_it_was_cancelled_where_cancel_reason_reads_it() -> None:
    """A real client that loses its scheduler cancels its futures for a reason that
    cancel_reason reads (the DaskRunner tells a lost scheduler by it); a future not cancelled,
    or of another shape, has none."""
    distributed = pytest.importorskip("distributed")
    from laios._compat.dask import cancel_reason, stop_client_loop

    cluster = distributed.LocalCluster(n_workers=0, processes=False, dashboard_address=":0")
    client = distributed.Client(cluster.scheduler_address, timeout=1)
    try:
        waiting = client.submit(sum, [1, 2], pure=False)  # (no worker: it waits)
        assert cancel_reason(waiting) is None
        cluster.close()
        give_up = time.monotonic() + 30
        while waiting.status != "cancelled" and time.monotonic() < give_up:
            time.sleep(0.01)
        assert cancel_reason(waiting) == "scheduler-connection-lost"
        while client.status != "closed" and time.monotonic() < give_up:
            time.sleep(0.05)  # (closed by Dask, past its timeout: nothing to cancel then)
    finally:
        client.close()
        stop_client_loop(client)  # (left running in a client Dask closed itself)
        cluster.close()
    assert cancel_reason(SimpleNamespace(status="cancelled")) is None


def test_a_dask_client_still_keeps_the_loop_thread_that_stop_client_loop_ends() -> None:
    """A client Dask closed itself (its scheduler gone past its timeout) keeps its event loop
    thread, which ``stop_client_loop`` ends; a client of another shape is left alone."""
    distributed = pytest.importorskip("distributed")
    from laios._compat.dask import stop_client_loop

    cluster = distributed.LocalCluster(n_workers=0, processes=False, dashboard_address=":0")
    before = set(threading.enumerate())
    client = distributed.Client(cluster.scheduler_address, timeout=1)
    own = [t for t in set(threading.enumerate()) - before if t.name == "IO loop"]
    cluster.close()
    give_up = time.monotonic() + 30
    while client.status != "closed" and time.monotonic() < give_up:
        time.sleep(0.05)
    client.close()
    assert own
    assert stop_client_loop(client) is True
    for thread in own:
        thread.join(30)
    assert not any(t.is_alive() for t in own)
    assert stop_client_loop(client) is True  # (a second time does nothing)
    assert stop_client_loop(object()) is False


def test_a_dask_worker_still_logs_a_failed_heartbeat_in_the_words_that_are_quieted() -> None:
    """Dask's worker logs a failed heartbeat with the words the filter looks for, on the
    logger it filters (were they changed, a heartbeat cut by a worker's close would be
    logged again as an error)."""
    pytest.importorskip("distributed")
    import inspect

    from distributed import worker

    from laios._compat.dask import _HEARTBEAT_FAILED

    assert worker.logger.name == "distributed.worker"
    assert repr(_HEARTBEAT_FAILED) in inspect.getsource(worker.Worker.heartbeat).replace('"', "'")


def test_a_failed_heartbeat_is_quieted_only_once_its_worker_closes() -> None:
    """The filter drops the failed heartbeat of a worker that is closing or closed, and lets
    it through while the worker runs (the scheduler lost), as it does any other record."""
    import logging
    from enum import Enum

    from laios._compat.dask import _HEARTBEAT_FAILED, quiet_heartbeats_cut_by_close

    status = Enum("Status", ["running", "closing", "closed"])

    class Worker:
        def __init__(self) -> None:
            self.status = status.running

    worker = Worker()
    logger = logging.getLogger("distributed.worker")
    kept = list(logger.filters)
    try:
        quiet_heartbeats_cut_by_close(worker)
        quiet_heartbeats_cut_by_close(worker)  # (once is enough)
        assert len(logger.filters) == len(kept) + 1

        def passes(message: str) -> bool:
            record = logger.makeRecord(logger.name, logging.ERROR, __file__, 1, message, (), None)
            return logger.filter(record) is not False

        assert passes(_HEARTBEAT_FAILED)
        for closing in (status.closing, status.closed):
            worker.status = closing
            assert not passes(_HEARTBEAT_FAILED)
            assert passes("Unexpected exception during heartbeat. Closing worker.")
    finally:
        logger.filters[:] = kept


def test_opentelemetry_sdk_spans_still_keep_their_limits_where_they_are_read() -> None:
    """An SDK span still keeps its provider's SpanLimits in ``_limits``: when this fails,
    captured content is cut to the limits the environment sets, not to a provider's own."""
    from opentelemetry.sdk.trace import SpanLimits

    limits = SpanLimits(max_attribute_length=10)
    span = (
        TracerProvider(span_limits=limits, shutdown_on_exit=False).get_tracer("t").start_span("s")
    )
    assert otel._sdk_limits(span) is limits
    assert otel.attribute_length_limit(span) == 10


def test_attribute_length_limit_falls_back_to_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Where a span keeps no limits of its own, those of the environment are followed; a span
    not of the SDK has none."""
    from opentelemetry.trace import INVALID_SPAN

    monkeypatch.setenv("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "25")
    span = TracerProvider(shutdown_on_exit=False).get_tracer("t").start_span("s")
    monkeypatch.setattr(otel, "_sdk_limits", lambda span: None)
    assert otel.attribute_length_limit(span) == 25
    assert otel.attribute_length_limit(INVALID_SPAN) is None


def test_opentelemetry_sdk_meter_providers_still_say_where_they_were_shut_down() -> None:
    """An SDK meter provider still keeps its shut-down flag in ``_shutdown``: when this fails,
    a store goes on reporting to the providers shut down under it (one listener each, until
    the store is full)."""
    from opentelemetry.sdk.metrics import MeterProvider

    provider = MeterProvider()
    assert otel.meter_provider_shut_down(provider) is False
    provider.shutdown()
    assert otel.meter_provider_shut_down(provider) is True


class _Hiding:
    """A provider of one's own that keeps the SDK provider under it in no attribute."""

    def __init__(self, inner: Any) -> None:
        self.get_meter = inner.get_meter


def test_opentelemetry_sdk_instruments_still_lead_to_their_meter_provider() -> None:
    """An SDK instrument still records into its provider's measurement consumer
    (``_measurement_consumer``, kept by both): when this fails, a store reached through a
    provider of one's own over an SDK one goes on reporting to it once it is shut down (one
    listener each, until the store is full). Found through the wrapper's attributes; a wrapper
    that keeps its provider in none is not searched further, and reads as running."""
    from opentelemetry.sdk.metrics import MeterProvider

    provider = MeterProvider(shutdown_on_exit=False)
    other = MeterProvider(shutdown_on_exit=False)
    histogram = provider.get_meter("m").create_histogram("h")
    assert otel.sdk_meter_provider_under(provider, histogram) is provider
    wrapper = SimpleNamespace(decoy=other, inner=provider)
    assert otel.sdk_meter_provider_under(wrapper, histogram) is provider
    assert otel.sdk_meter_provider_under(_Hiding(provider), histogram) is None
    provider.shutdown()
    assert otel.meter_provider_shut_down(otel.sdk_meter_provider_under(wrapper, histogram))


def test_an_instrument_of_another_shape_leads_to_no_meter_provider(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Where an instrument keeps no measurement consumer (not the SDK's, or another SDK
    version), no provider is found: it reads as running."""
    from opentelemetry.metrics import NoOpMeterProvider
    from opentelemetry.sdk.metrics import MeterProvider

    provider = MeterProvider(shutdown_on_exit=False)
    histogram = provider.get_meter("m").create_histogram("h")
    wrapper = _Hiding(provider)
    no_op = NoOpMeterProvider().get_meter("m").create_histogram("h")
    assert otel.sdk_meter_provider_under(wrapper, no_op) is None
    assert otel.sdk_meter_provider_under(wrapper, object()) is None
    monkeypatch.setattr(otel, "_consumer", lambda sdk_object: None)
    assert otel.sdk_meter_provider_under(SimpleNamespace(inner=provider), histogram) is None
    assert otel.meter_provider_shut_down(None) is False


class _Raising:
    """An instrument or provider of one's own whose attribute reads raise (a forwarding
    wrapper over something gone, say)."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"no {name} here")


def test_objects_whose_attribute_reads_raise_lead_to_no_meter_provider() -> None:
    """An instrument (or a wrapper's attribute) whose attribute read raised something other
    than ``AttributeError`` let that error out of ``instrument_metrics``, under its lock and
    after the instruments were made, leaving the store with no handle. It reads as running
    now, as any object of another shape does."""
    from opentelemetry.sdk.metrics import MeterProvider

    provider = MeterProvider(shutdown_on_exit=False)
    histogram = provider.get_meter("m").create_histogram("h")
    assert otel.sdk_meter_provider_under(SimpleNamespace(inner=provider), _Raising()) is None
    assert otel.sdk_meter_provider_under(SimpleNamespace(inner=_Raising()), histogram) is None


def test_a_meter_provider_of_another_shape_reads_as_not_shut_down(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Where the flag is gone, and for providers not of the SDK, a provider reads as running."""
    from opentelemetry.metrics import NoOpMeterProvider
    from opentelemetry.sdk.metrics import MeterProvider

    provider = MeterProvider()
    provider.shutdown()
    monkeypatch.delattr(provider, "_shutdown")
    assert otel.meter_provider_shut_down(provider) is False
    assert otel.meter_provider_shut_down(NoOpMeterProvider()) is False
    assert otel.meter_provider_shut_down(object()) is False
