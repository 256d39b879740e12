"""The latest failed tasks: kept by the store (bounded), listed by /status newest first."""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry
from store_fakes import SteppedClock

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.server import MAX_STATUS_TEXT, status_document
from laios.execution.store import MAX_RECENT_FAILURES, MetricStore
from laios.tools.base import BaseTool
from laios.tools.registry import ToolRegistry


def finish(store: MetricStore, task_id: str, outcome: str, **kwargs: Any) -> None:
    """Run one task of the tool ``fetch`` to ``outcome`` through the store's lifecycle."""
    slot = store.tool_slot("fetch", True)
    rec = store.task_submitted(None, SimpleNamespace(id=task_id), "fetch", slot, running=True)
    store.task_finished(rec, outcome, None, **kwargs)


def test_the_snapshot_lists_failed_tasks_oldest_first() -> None:
    """Errors, timeouts and rejections are listed with their tool, outcome, error type and
    duration; successes and cancellations are not."""
    clock = SteppedClock()
    store = MetricStore(clock=clock)
    finish(store, "ok", "success")
    slot = store.tool_slot("fetch", True)
    rec = store.task_submitted(None, SimpleNamespace(id="broken"), "fetch", slot, running=True)
    clock.now += 0.25
    store.task_finished(rec, "error", None, "ValueError")
    finish(store, "stopped", "cancelled")
    finish(store, "late", "timeout", error_type="timeout")
    finish(store, "refused", "rejected", error_type="tool_not_found")
    failures = store.snapshot().failures
    assert [(f.task_id, f.tool, f.outcome, f.error_type) for f in failures] == [
        ("broken", "fetch", "error", "ValueError"),
        ("late", "fetch", "timeout", "timeout"),
        ("refused", "fetch", "rejected", "tool_not_found"),
    ]
    assert failures[0].duration_seconds == pytest.approx(0.25)
    assert failures[0].finished_at == pytest.approx(store.snapshot().taken_at, abs=5)


def test_the_store_keeps_only_the_newest_failures() -> None:
    """Past MAX_RECENT_FAILURES failures, the oldest ones roll off."""
    store = MetricStore()
    for index in range(MAX_RECENT_FAILURES + 7):
        finish(store, f"t-{index}", "error", error_type="ValueError")
    failures = store.snapshot().failures
    assert len(failures) == MAX_RECENT_FAILURES
    assert failures[0].task_id == "t-7"
    assert failures[-1].task_id == f"t-{MAX_RECENT_FAILURES + 6}"


def test_a_forked_child_starts_with_no_failures() -> None:
    """A child process made by fork lists only its own failures."""
    store = MetricStore()
    finish(store, "parent's", "error", error_type="ValueError")
    store.after_fork_in_child()
    assert store.snapshot().failures == ()


def test_status_lists_failures_newest_first_without_messages() -> None:
    """/status lists each failure's id, tool, outcome, error type, time, duration and trace id,
    newest first, and never an error message."""
    store = MetricStore()
    finish(store, "first", "error", error_type="KeyError")
    finish(store, "second", "timeout", error_type="timeout")
    document = status_document(store.snapshot())
    assert [f["task_id"] for f in document["failures"]] == ["second", "first"]
    newest = document["failures"][0]
    assert set(newest) == {
        "task_id",
        "tool",
        "outcome",
        "error_type",
        "finished_at",
        "duration_seconds",
        "trace_id",
        "attempt",
    }
    assert (newest["tool"], newest["outcome"], newest["error_type"]) == (
        "fetch",
        "timeout",
        "timeout",
    )
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", newest["finished_at"])
    assert newest["trace_id"] is None
    assert newest["attempt"] == 1


def test_status_cuts_a_failed_tasks_huge_id_and_tool_name() -> None:
    """A failed task's id and tool name are cut to MAX_STATUS_TEXT characters in /status."""
    store = MetricStore()
    name = "t" * 5000
    slot = store.tool_slot(name, True)
    rec = store.task_submitted(None, SimpleNamespace(id="i" * 100_000), name, slot, running=True)
    store.task_finished(rec, "error", None, "ValueError")
    (failure,) = status_document(store.snapshot())["failures"]
    assert len(failure["task_id"]) <= MAX_STATUS_TEXT
    assert failure["task_id"].endswith("…")
    assert len(failure["tool"]) <= MAX_STATUS_TEXT
    assert len(store.snapshot().failures[0].task_id) <= 1024  # the store keeps a cut copy


class Refuses(BaseTool):
    """Fails with a message that must not reach /status."""

    name = "refuses"
    description = "Always fails"

    def _execute(self, **kwargs: Any) -> Any:
        raise PermissionError("token sk-live-0123456789 was refused")


def test_a_traced_failure_shows_its_results_trace_id() -> None:
    """A task that fails in a traced Executor is listed with the trace id of its result, and
    without its parameters or error message."""
    tools = ToolRegistry()
    tools.register_tool(Refuses)
    store = MetricStore()
    provider = TracerProvider()
    with Executor(
        tools, store=store, tracer_provider=provider, prometheus_registry=CollectorRegistry()
    ) as executor:
        task = Task(
            plan_id="p", description="d", tool_name="refuses", parameters={"api_key": "hunter2"}
        )
        result = executor.execute_task(task, Context(session_id="s", user_id="u"))
    provider.shutdown()
    (failure,) = status_document(store.snapshot())["failures"]
    assert failure["task_id"] == task.id
    assert failure["trace_id"] == result.metadata["trace_id"]
    assert re.fullmatch(r"[0-9a-f]{32}", failure["trace_id"])
    assert (failure["outcome"], failure["error_type"]) == ("error", "PermissionError")
    assert "sk-live" not in repr(failure)
    assert "hunter2" not in repr(failure)


class AlwaysDown(BaseTool):
    """Fails every attempt."""

    name = "always_down"
    description = "Always fails"

    def _execute(self, **kwargs: Any) -> Any:
        raise ConnectionError("down")


def test_each_failed_attempt_of_a_retried_task_is_listed_with_its_number() -> None:
    """execute_with_retry's failed attempts are listed as attempts 1, 2 and 3 of one task."""
    tools = ToolRegistry()
    tools.register_tool(AlwaysDown)
    store = MetricStore()
    with Executor(tools, store=store, prometheus_registry=CollectorRegistry()) as executor:
        task = Task(plan_id="p", description="d", tool_name="always_down")
        executor.execute_with_retry(
            task, Context(session_id="s", user_id="u"), max_retries=2, retry_delay=0.001
        )
    failures = status_document(store.snapshot())["failures"]
    assert [(f["task_id"], f["attempt"]) for f in failures] == [
        (task.id, 3),
        (task.id, 2),
        (task.id, 1),
    ]


def test_a_reduced_status_lists_no_failures() -> None:
    """status="reduced" shows counts, not task ids or trace ids: the failures list is empty
    while the tool's counts still show them."""
    store = MetricStore()
    finish(store, "secret-task-id", "error", error_type="ValueError")
    document = status_document(store.snapshot(), reduced=True)
    assert document["failures"] == []
    assert "secret-task-id" not in repr(document)
    assert document["tools"][0]["outcomes"]["error"] == 1
