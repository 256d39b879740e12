"""A progress message is scrubbed of the secrets its own details hold under secret-looking
names, as a checkpoint's name is of those its data holds: a token the tool reports under its
name, which no parameter held, does not reach ``/status`` where the message quotes it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from secret_runs import statuses_at_progress

from laios.execution.monitor import ExecutionMonitor, ProgressTracker
from laios.execution.redaction import REDACTED
from laios.execution.server import status_document
from laios.execution.store import MetricStore
from laios.execution.task_context import require_current_task
from laios.tools.base import BaseTool

TOKEN = "at-REFRESHED-9f8e7d6c5b4a"


class ReportsItsNewToken(BaseTool):
    name = "reports_its_new_token"
    description = "Refreshes a token and reports it in a progress message and its details."

    def _execute(self, **kwargs: Any) -> Any:
        require_current_task().progress(50, f"refreshed {TOKEN}", access_token=TOKEN, page=2)
        return "ok"


@pytest.mark.parametrize("parameters", [{}, {"query": "q"}, {"api_key": "sk-other-1234"}])
def test_a_progress_message_is_scrubbed_of_the_secrets_its_details_hold(
    parameters: dict[str, Any],
) -> None:
    (status,) = statuses_at_progress(ReportsItsNewToken, parameters)
    assert TOKEN[:8] not in status
    assert f"refreshed {REDACTED}" in status


def test_a_message_given_to_the_execution_monitor_is_scrubbed_of_its_details_secrets() -> None:
    """The same for a message given to ``ProgressTracker.update_progress`` (through which
    ``ExecutionMonitor.update_task_progress`` reports) with details holding the token, for a
    task no executor runs."""
    store = MetricStore()
    kept = ProgressTracker(store).update_progress(
        "t-1", "in_progress", 40, f"refreshed {TOKEN}", {"access_token": TOKEN, "page": 2}
    )
    assert kept.message == f"refreshed {REDACTED}"
    ExecutionMonitor(store).update_task_progress("t-1", 50, f"again {TOKEN}", {"token": TOKEN})
    assert ProgressTracker(store).get_progress("t-1").message == f"again {REDACTED}"
    assert TOKEN[:8] not in json.dumps(status_document(store.snapshot()))
