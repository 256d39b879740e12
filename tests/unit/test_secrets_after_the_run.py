"""What the monitors are told about a task after it has finished (a custom metric, a progress
message) is scrubbed of the task's secrets as it is while the task runs: the finished task's
record keeps its secret values for as long as it is kept, within a bound."""

from __future__ import annotations

import logging
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from pydantic import SecretStr

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.monitor import ExecutionMonitor, PerformanceMonitor
from laios.execution.prometheus import StoreCollector
from laios.execution.redaction import REDACTED
from laios.execution.store import MAX_KEPT_SECRET_CHARS, MetricStore
from laios.execution.task_monitor import TaskMonitor
from laios.tools.base import BaseTool, ToolInput
from laios.tools.registry import ToolRegistry

SECRET = "sk-live-AFTER-THE-RUN-5151"


class DsnInput(ToolInput):
    dsn: SecretStr | None = None
    headers: dict[str, str] | None = None


class Connects(BaseTool):
    name = "connects"
    description = "Connects with the key it is given, and says nothing of it."
    input_model = DsnInput

    def _execute(self, **kwargs: Any) -> Any:
        return "connected"


#: The executors the tests ran their tasks on: their records live as long as they do.
EXECUTORS: list[Executor] = []


@pytest.fixture(autouse=True)
def _executors_kept() -> Iterator[None]:
    yield
    EXECUTORS.clear()


def ran(store: MetricStore, parameters: dict[str, Any], **options: Any) -> Task:
    """Run the tool with ``parameters`` on an executor over ``store``, kept until the test
    ends; the task, finished."""
    registry = ToolRegistry()
    registry.register_tool(Connects)
    task = Task(plan_id="p", description="d", tool_name=Connects.name, parameters=parameters)
    with Executor(registry, store=store, register_prometheus=False, **options) as executor:
        result = executor.execute_task(task, Context(session_id="s", user_id="u"))
    assert result.success, result.error
    EXECUTORS.append(executor)
    return task


def last_message(store: MetricStore, task_id: str) -> str | None:
    """The message of the latest progress update of ``task_id``."""
    latest = ExecutionMonitor(store).get_progress(task_id)
    assert latest is not None
    return latest.message


def exposition(store: MetricStore) -> str:
    prometheus = CollectorRegistry()
    prometheus.register(StoreCollector(store))
    return generate_latest(prometheus).decode()


SECRET_PARAMETERS = [
    {"api_key": SECRET},  # by name, flat
    {"dsn": SECRET},  # by the tool's type
    {"headers": {"Authorization": f"Bearer {SECRET}"}},  # in a container
    {"api_key": SECRET, "document": "x" * 100_000},  # beside a large text
    # (in text under an ordinary name, beside another: kept for the secret it writes)
    {"url": f"postgres://app:{SECRET}@db/x", "prompt": "hello"},
    {"query": f"?api_key={SECRET}", "n": 3},
    {"body": f'{{"token": "{SECRET}"}}', "path": "/tmp/x"},
]


@pytest.mark.parametrize("parameters", SECRET_PARAMETERS)
def test_a_custom_metric_recorded_after_the_run_is_exported_scrubbed(
    parameters: dict[str, Any],
) -> None:
    store = MetricStore()
    task = ran(store, parameters)
    PerformanceMonitor(store).record_metric(task.id, f"calls_{SECRET}", 1.0, SECRET)
    shown = exposition(store)
    assert f'name="calls_{REDACTED}",unit="{REDACTED}"' in shown
    assert SECRET not in shown
    # (the task's own samples keep the name as given, as while it runs)
    assert f"calls_{SECRET}" in PerformanceMonitor(store).get_metrics(task.id)


@pytest.mark.parametrize("parameters", SECRET_PARAMETERS)
def test_a_progress_message_given_after_the_run_is_kept_scrubbed(
    parameters: dict[str, Any],
) -> None:
    store = MetricStore()
    heard: list[str | None] = []
    monitor = ExecutionMonitor(store)
    monitor.add_progress_listener(lambda update: heard.append(update.message))
    task = ran(store, parameters)
    monitor.update_task_progress(task.id, 100, f"cleaned up after {SECRET}")
    # (as while it runs: the text around a secret quoted after its scheme, "Bearer ", may go
    # with it)
    kept = monitor.get_progress(task.id)
    assert kept is not None
    assert kept.message is not None
    assert kept.message.startswith("cleaned up aft")
    assert kept.message.endswith(REDACTED)
    assert heard[-1] == kept.message
    assert not any(SECRET in (message or "") for message in heard)


def test_a_task_of_an_unmonitored_executor_is_scrubbed_after_the_run() -> None:
    store = MetricStore()
    task = ran(store, {"api_key": SECRET}, enable_monitoring=False)
    monitor = ExecutionMonitor(store)
    monitor.update_task_progress(task.id, 100, f"done with {SECRET}")
    PerformanceMonitor(store).record_metric(task.id, f"calls_{SECRET}", 1.0)
    assert last_message(store, task.id) == f"done with {REDACTED}"
    assert SECRET not in exposition(store)


def test_a_task_monitor_run_is_scrubbed_after_it_stopped() -> None:
    store = MetricStore()
    tracker = TaskMonitor(store)
    task = Task(plan_id="p", description="d", tool_name="t", parameters={"api_key": SECRET})
    tracker.start_monitoring(task)
    tracker.stop_monitoring(task.id)
    PerformanceMonitor(store).record_metric(task.id, f"after_{SECRET}", 1.0)
    ExecutionMonitor(store).update_task_progress(task.id, 100, f"after {SECRET}")
    shown = exposition(store)
    assert f'name="after_{REDACTED}"' in shown
    assert SECRET not in shown
    assert last_message(store, task.id) == f"after {REDACTED}"


def test_the_secrets_go_with_the_record() -> None:
    """The record keeps the secrets only while it is kept: once it rolls off, nothing of the
    task is left (its id is then one the store does not know)."""
    store = MetricStore()
    registry = ToolRegistry()
    registry.register_tool(Connects)
    first, second = (
        Task(plan_id="p", description="d", tool_name=Connects.name, parameters={"api_key": key})
        for key in (SECRET, "sk-live-THE-NEXT-ONE-6262")
    )
    context = Context(session_id="s", user_id="u")
    with Executor(registry, store=store, register_prometheus=False, record_capacity=1) as executor:
        assert executor.execute_task(first, context).success
        assert list(store.task_secrets(first.id) or ()) == [SECRET]
        assert executor.execute_task(second, context).success
        assert list(store.task_secrets(first.id) or ()) == []
        assert list(store.task_secrets(second.id) or ()) == ["sk-live-THE-NEXT-ONE-6262"]


def test_secrets_past_the_bound_leave_late_text_redacted_whole(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Secrets too large to keep are not kept: text about the task after its run is then
    written ``[REDACTED]`` whole, never shown with them."""
    huge = "sk-live-" + "Q" * MAX_KEPT_SECRET_CHARS
    store = MetricStore()
    caplog.set_level(logging.DEBUG, logger="laios")
    task = ran(store, {"api_key": huge})
    PerformanceMonitor(store).record_metric(task.id, f"calls_{huge}", 1.0, "seconds")
    ExecutionMonitor(store).update_task_progress(task.id, 100, f"done {huge}")
    shown = exposition(store)
    assert f'name="{REDACTED}",unit="{REDACTED}"' in shown
    assert "QQQQ" not in shown
    assert last_message(store, task.id) == REDACTED
    assert "QQQQ" not in caplog.text


def test_a_task_without_secrets_is_recorded_as_given_after_the_run() -> None:
    store = MetricStore()
    task = ran(store, {"dsn": None, "headers": {"Accept": "text/plain"}})
    PerformanceMonitor(store).record_metric(task.id, "calls_plain", 1.0, "calls")
    ExecutionMonitor(store).update_task_progress(task.id, 100, "cleaned up")
    assert 'name="calls_plain",unit="calls"' in exposition(store)
    assert last_message(store, task.id) == "cleaned up"


def test_a_finished_record_keeps_the_secrets_not_a_large_parameter() -> None:
    """Beside a large text, the record keeps the secret values alone, not the parameters
    (a copy is kept only of a few short plain ones, read for secrets when asked)."""
    store = MetricStore()
    document = "x" * 100_000
    task = ran(store, {"api_key": SECRET, "document": document})
    (executor,) = EXECUTORS
    record = store.find(executor._engine.scope, task.id)
    assert record is not None
    assert record.kept_secrets == (SECRET,)
    small = ran(store, {"api_key": SECRET, "path": "/tmp/x"})
    record = store.find(EXECUTORS[-1]._engine.scope, small.id)
    assert record is not None
    assert record.kept_secrets == {"api_key": SECRET}  # (not "path": it holds none)
    assert list(store.task_secrets(small.id) or ()) == [SECRET]
    assert record.kept_secrets == (SECRET,)  # (read once, then kept as read)


def _retained_by_records(prompts: bool) -> int:
    """Bytes still traced once ten thousand tasks have run on a fresh executor that keeps
    all their records, each task with a prompt of 4,000 characters of its own (``prompts``)
    or with a number only."""
    registry = ToolRegistry()
    registry.register_tool(Connects)
    context = Context(session_id="s", user_id="u")
    count = 10_000
    with Executor(registry, register_prometheus=False, record_capacity=count) as executor:
        EXECUTORS.append(executor)
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for n in range(count):
                parameters: dict[str, Any] = {"n": n}
                if prompts:
                    parameters["prompt"] = f"{n:05d}" + "x" * 3995  # (one of its own per task)
                task = Task(
                    plan_id="p", description="d", tool_name=Connects.name, parameters=parameters
                )
                assert executor.execute_task(task, context).success
            del task, parameters
            return int(tracemalloc.get_traced_memory()[0] - before)
        finally:
            tracemalloc.stop()


def test_finished_records_keep_no_copy_of_parameters_that_hold_no_secret() -> None:
    """A finished record keeps what can hold a secret, not the task's parameters: ten
    thousand tasks of a prompt of 4,000 characters (no secret in it) leave their records as
    small as tasks without one do (each prompt held would take some 40 MB more). Compared
    with those, as a record's own size differs across Python versions."""
    without = _retained_by_records(prompts=False)
    retained = _retained_by_records(prompts=True)
    assert retained - without < 8_000_000, (
        f"{retained:,} bytes retained after the run, against {without:,} without prompts"
    )


def _withheld_record() -> Any:
    """The finished record of a task whose secrets were too many to keep."""
    store = MetricStore()
    task = ran(store, {"api_key": "k" * 20_000, "token2": SECRET})
    (executor,) = EXECUTORS
    record = store.find(executor._engine.scope, task.id)
    assert record is not None
    return record


def test_a_listener_failure_about_a_task_whose_secrets_were_withheld_is_logged_whole(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A progress listener's exception about a finished task whose secrets were too many to
    keep is logged without its text (the secrets it may quote are not known), never with
    them."""
    store = MetricStore()
    caplog.set_level(logging.DEBUG, logger="laios")
    task = ran(store, {"api_key": "k" * 20_000, "token2": SECRET})

    def quoting(update: Any) -> None:
        raise RuntimeError(f"cannot send {update.details!r}")

    monitor = ExecutionMonitor(store)
    monitor.add_progress_listener(quoting)
    monitor.update_task_progress(task.id, 50, "after", {"note": f"value {SECRET}"})
    assert "progress listener" in caplog.text
    assert SECRET not in caplog.text


def test_an_internal_error_about_a_task_whose_secrets_were_withheld_is_logged_whole(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An internal error logged about a finished task whose secrets were too many to keep
    (a span or log step failing after its run) is logged without its traceback, never with
    the secrets it may quote."""
    caplog.set_level(logging.DEBUG, logger="laios")
    record = _withheld_record()
    record.observability_failed("exporting", RuntimeError(f"cannot export {SECRET}"))
    assert "internal error while exporting" in caplog.text
    assert SECRET not in caplog.text


def test_an_on_progress_failure_about_a_task_whose_secrets_were_withheld_is_logged_whole(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An ``on_progress`` exception reported about a finished task whose secrets were too many
    to keep (a report under way as the task ended) is logged without its text."""
    caplog.set_level(logging.DEBUG, logger="laios")
    record = _withheld_record()

    def callback(*_: Any) -> None:
        """A callback."""

    record.callback_failed(callback, "progress", RuntimeError(f"cannot show {SECRET}"))
    assert "on_progress callback" in caplog.text
    assert SECRET not in caplog.text
