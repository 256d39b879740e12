"""Counts given as any whole number (a NumPy integer, as a computed configuration gives) are
taken, as plain ints; they were refused with "must be a positive whole number, got
np.int64(2)", a message that contradicts itself. A bool is still refused."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from laios.execution._totals_files import read_document, sections_of
from laios.execution.executor import Executor
from laios.execution.runners import AsyncSlots, ProcessRunner, ThreadRunner
from laios.execution.store import MetricStore
from laios.execution.task_monitor import TaskMonitor
from laios.tools.registry import ToolRegistry

np = pytest.importorskip("numpy")


def _executor(**options: Any) -> Executor:
    executor = Executor(ToolRegistry(), register_prometheus=False, **options)
    executor.shutdown()
    return executor


BUILDS: dict[str, Callable[[Any], object]] = {
    "max_workers": lambda n: _executor(max_workers=n).max_workers,
    "max_async_tools": lambda n: _executor(max_async_tools=n).get_all_metrics() is not None,
    "record_capacity": lambda n: _executor(record_capacity=n) is not None,
    "replacement_threads": lambda n: _executor(replacement_threads=n) is not None,
    "thread_runner": lambda n: ThreadRunner(n, n).max_workers,
    "async_slots": lambda n: AsyncSlots(n).limit,
    "process_runner": lambda n: ProcessRunner(n).max_workers,
    "task_monitor": lambda n: TaskMonitor(MetricStore(), capacity=n) is not None,
    "store_record_capacity": lambda n: MetricStore(record_capacity=n).record_capacity,
    "store_max_tool_labels": lambda n: MetricStore(max_tool_labels=n).max_tool_labels,
}


@pytest.mark.parametrize("build", BUILDS.values(), ids=BUILDS.keys())
@pytest.mark.parametrize("kind", [np.int64, np.int32, np.uint8])
def test_a_numpy_integer_is_a_whole_number(build: Callable[[Any], object], kind: Any) -> None:
    made = build(kind(2))
    if not isinstance(made, bool):
        assert made == 2
        assert type(made) is int


@pytest.mark.parametrize("build", BUILDS.values(), ids=BUILDS.keys())
@pytest.mark.parametrize("value", [True, np.bool_(True), np.float64(2.0), 2.0, "2"])
def test_what_is_no_whole_number_is_still_refused(
    build: Callable[[Any], object], value: Any
) -> None:
    with pytest.raises((ValueError, TypeError)):
        build(value)


def test_the_server_takes_numpy_numbers_for_its_port_and_limits() -> None:
    """``port=np.int64(0)`` was refused with "port must be a whole number from 0 to 65535,
    not np.int64(0)"; the connection limits likewise."""
    from laios.execution.server import start_http_server

    server = start_http_server(
        np.int64(0),
        connection_timeout=np.float32(5),
        max_connections=np.int32(8),
        backlog=np.int64(16),
    )
    try:
        assert type(server.port) is int
        with urllib.request.urlopen(f"{server.url}/metrics", timeout=10) as answer:
            assert answer.status == 200
    finally:
        server.shutdown()


def test_multiprocess_and_dask_take_numpy_numbers_of_seconds(tmp_path: Any) -> None:
    from laios.execution import multiprocess

    try:
        export = multiprocess.enable(str(tmp_path), interval=np.float32(0.5))
        assert export.interval == 0.5
        assert type(export.interval) is float
    finally:
        multiprocess.disable()
    dask = pytest.importorskip("laios.execution._runners.dask")
    # (the timeout is checked first: taken, the runner is then refused for its other options)
    with pytest.raises(ValueError, match="not both"):
        dask.DaskRunner("tcp://127.0.0.1:1", client=object(), connect_timeout=np.float32(5))


def test_a_store_with_numpy_label_limits_writes_its_multiprocess_file(tmp_path: Path) -> None:
    """A store's label limits given as NumPy integers are kept as plain ints: kept as given,
    they made every write of the process's multiprocess file fail ("cannot write a int64 to a
    totals file"), so that the other workers never saw its counts and lost them at its exit."""
    from laios.execution import multiprocess

    store = MetricStore(
        max_tool_labels=np.int64(3), max_error_types=np.int32(2), max_custom_metrics=np.uint8(4)
    )
    counts = store.counts
    limits = (counts.max_tool_labels, counts.max_error_types, counts.max_custom_metrics)
    assert limits == (3, 2, 4)
    assert all(type(limit) is int for limit in limits)
    slot = store.tool_slot("fetch", True)
    record = store.task_submitted(None, SimpleNamespace(id="t"), "fetch", slot, running=True)
    store.task_finished(record, outcome="success", status=None)
    try:
        export = multiprocess.enable(str(tmp_path), registry=CollectorRegistry(), store=store)
        export.write()
        assert export.path is not None
        (section,) = sections_of(read_document(export.path))
    finally:
        multiprocess.disable()
    assert section.limits == (3, 2, 4)
    assert section.totals.tools["fetch"].results == {"success": 1}
