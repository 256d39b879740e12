"""What a tool reports through the monitors (``ExecutionMonitor``, ``PerformanceMonitor``)
about its own task is scrubbed of the task's secrets before ``/status`` and ``/metrics``
show it, as what it reports through ``current_task()`` is."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from pydantic import SecretStr

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.monitor import ExecutionMonitor, PerformanceMonitor
from laios.execution.prometheus import StoreCollector
from laios.execution.redaction import REDACTED
from laios.execution.server import status_document
from laios.execution.store import MetricStore
from laios.execution.task_context import require_current_task
from laios.tools.base import BaseTool, ToolInput
from laios.tools.registry import ToolRegistry

SECRET = "sk-live-MONITORED-4242"


class DsnInput(ToolInput):
    dsn: SecretStr | None = None


class ReportsThroughMonitors(BaseTool):
    name = "reports_through_monitors"
    description = "Quotes its key in the monitors' progress and custom metric names."
    input_model = DsnInput
    store: MetricStore
    statuses: list[str]

    def _execute(self, **kwargs: Any) -> Any:
        key = kwargs.get("api_key") or kwargs["dsn"].get_secret_value()
        task_id = require_current_task().task_id
        ExecutionMonitor(self.store).update_task_progress(task_id, 40, f"connected with {key}")
        type(self).statuses.append(json.dumps(status_document(self.store.snapshot())))
        PerformanceMonitor(self.store).record_metric(task_id, f"latency_{key}", 0.5, key)
        return "ok"


def reporting_into(store: MetricStore, parameters: dict[str, Any]) -> tuple[ToolRegistry, Task]:
    """Have the tool report into ``store``; return a registry holding it and a task calling it
    with ``parameters``."""
    ReportsThroughMonitors.store = store
    ReportsThroughMonitors.statuses = []
    registry = ToolRegistry()
    registry.register_tool(ReportsThroughMonitors)
    task = Task(
        plan_id="p", description="d", tool_name=ReportsThroughMonitors.name, parameters=parameters
    )
    return registry, task


def run(parameters: dict[str, Any]) -> tuple[str, str]:
    """Run the tool with ``parameters``; return ``/status`` as it was while the tool ran,
    and the Prometheus exposition of the store after."""
    store = MetricStore()
    registry, task = reporting_into(store, parameters)
    with Executor(registry, store=store, register_prometheus=False) as executor:
        result = executor.execute_task(task, Context(session_id="s", user_id="u"))
    assert result.success, result.error
    (status,) = ReportsThroughMonitors.statuses
    prometheus = CollectorRegistry()
    prometheus.register(StoreCollector(store))
    return status, generate_latest(prometheus).decode()


@pytest.mark.parametrize("parameters", [{"api_key": SECRET}, {"dsn": SECRET}])
def test_a_progress_message_given_to_the_execution_monitor_is_scrubbed(
    parameters: dict[str, Any],
) -> None:
    """A message given to ``ExecutionMonitor.update_task_progress`` for a running task keeps
    its secrets (by name or by type) out of ``/status``."""
    status, _ = run(parameters)
    assert f"connected with {REDACTED}" in status
    assert SECRET not in status


@pytest.mark.parametrize("parameters", [{"api_key": SECRET}, {"dsn": SECRET}])
def test_a_custom_metric_name_and_unit_are_exported_scrubbed(
    parameters: dict[str, Any],
) -> None:
    """A metric name and unit given to ``PerformanceMonitor.record_metric`` for a running
    task are exported without its secrets (by name or by type)."""
    _, exposition = run(parameters)
    assert f'name="latency_{REDACTED}"' in exposition
    assert SECRET not in exposition


class ReportsDetails(BaseTool):
    name = "reports_details"
    description = "Reports progress with its key among the details."
    input_model = DsnInput

    def _execute(self, **kwargs: Any) -> Any:
        require_current_task().progress(30, "working", used=kwargs["dsn"].get_secret_value())
        return "ok"


def test_a_progress_listener_that_raises_quoting_an_update_is_logged_scrubbed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A progress listener raising with the update (its details quote a secret) is logged
    with its traceback scrubbed of the task's secrets."""
    store = MetricStore()

    def listener(update: Any) -> None:
        if update.details.get("used"):
            raise RuntimeError(f"cannot handle {update.details}")

    ExecutionMonitor(store).add_progress_listener(listener)
    registry = ToolRegistry()
    registry.register_tool(ReportsDetails)
    parameters = {"dsn": SECRET}
    task = Task(plan_id="p", description="d", tool_name="reports_details", parameters=parameters)
    caplog.set_level(logging.DEBUG, logger="laios")
    with Executor(registry, store=store, register_prometheus=False) as executor:
        result = executor.execute_task(task, Context(session_id="s", user_id="u"))
    assert result.success, result.error
    assert "progress listener" in caplog.text
    assert "cannot handle" in caplog.text
    assert SECRET not in caplog.text


@pytest.mark.parametrize("parameters", [{"api_key": SECRET}, {"dsn": SECRET}])
def test_a_progress_message_about_a_task_of_an_unmonitored_executor_is_scrubbed(
    parameters: dict[str, Any],
) -> None:
    """A message given to ``ExecutionMonitor.update_task_progress`` for a task that an executor
    built with ``enable_monitoring=False`` runs is scrubbed as for any other executor's task:
    it was kept and handed to the progress listeners as given, the monitor looking for the
    task's secrets only among the runs whose progress it reads."""
    store = MetricStore()
    heard: list[str | None] = []
    monitor = ExecutionMonitor(store)
    monitor.add_progress_listener(lambda update: heard.append(update.message))
    registry, task = reporting_into(store, parameters)
    with Executor(
        registry, store=store, register_prometheus=False, enable_monitoring=False
    ) as executor:
        result = executor.execute_task(task, Context(session_id="s", user_id="u"))
    assert result.success, result.error
    kept = [update.message for update in monitor.get_progress_history(task.id)]
    assert kept == [f"connected with {REDACTED}"]
    assert heard == kept
