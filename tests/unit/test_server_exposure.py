"""What the endpoint shows, and the warning when it shows it to everyone.

- ``status="reduced"`` serves counts and percentiles, no task ids or progress messages;
  ``status="off"`` serves no ``/status`` at all; ``/metrics`` is the same in every mode.
- A server listening beyond loopback without authentication logs one warning at start.
"""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace

import pytest
from http_drivers import call_asgi, call_http, call_wsgi
from prometheus_client import CollectorRegistry

from laios.cli import render_status
from laios.execution.monitor import ProgressStatus, ProgressUpdate
from laios.execution.server import (
    make_asgi_app,
    make_wsgi_app,
    start_http_server,
    status_document,
)
from laios.execution.store import MetricStore
from laios.execution.web import WebConfig

SECRET_ID = "task-7f3a-customer-acme"
SECRET_MESSAGE = "exporting invoices of ACME Corp"
TOKEN = "a1b2c3d4e5f60718293a4b5c6d7e8f90"


@pytest.fixture
def store() -> MetricStore:
    """One finished task and one running with a progress message."""
    store = MetricStore()
    slot = store.tool_slot("export", True)
    done = store.task_submitted(None, SimpleNamespace(id="done-1"), "export", slot, running=True)
    store.task_finished(done, status=None, outcome="success")
    running = store.task_submitted(
        store.new_scope(), SimpleNamespace(id=SECRET_ID), "export", slot, running=True
    )
    store.record_progress(
        ProgressUpdate(SECRET_ID, ProgressStatus.IN_PROGRESS, 40.0, SECRET_MESSAGE), running
    )
    return store


def test_reduced_status_keeps_counts_and_percentiles(store: MetricStore) -> None:
    """The reduced document has the per-tool numbers and how many tasks run, and says so."""
    document = json.loads(
        call_wsgi(make_wsgi_app(store, CollectorRegistry(), status="reduced"), path="/status").body
    )
    (tool,) = document["tools"]
    assert (tool["tool"], tool["total"], tool["in_flight"]) == ("export", 1, 1)
    assert "p95_seconds" in tool
    assert document["running_total"] == 1
    assert document["detail"] == "reduced"


def test_reduced_status_shows_no_task_id_or_message(store: MetricStore) -> None:
    """No task id and no progress message reach a reduced /status."""
    answer = call_wsgi(make_wsgi_app(store, CollectorRegistry(), status="reduced"), path="/status")
    assert answer.status == 200
    assert SECRET_ID.encode() not in answer.body
    assert SECRET_MESSAGE.encode() not in answer.body
    assert json.loads(answer.body)["running"] == []


def test_full_status_is_unchanged(store: MetricStore) -> None:
    """The default still lists the running task with its message, and has no "detail"."""
    document = json.loads(call_wsgi(make_wsgi_app(store, CollectorRegistry()), path="/status").body)
    assert [task["task_id"] for task in document["running"]] == [SECRET_ID]
    assert "detail" not in document


def test_status_off_answers_404_and_lists_no_status_route(store: MetricStore) -> None:
    """With status="off", /status is not found and the 404 lists only the other routes."""
    answer = call_asgi(make_asgi_app(store, CollectorRegistry(), status="off"), path="/status")
    assert answer.status == 404
    assert json.loads(answer.body)["routes"] == ["/metrics", "/healthz"]


@pytest.mark.parametrize("status", ["full", "reduced", "off"])
def test_metrics_are_the_same_in_every_status_mode(store: MetricStore, status: str) -> None:
    """/metrics does not depend on the status mode."""
    registry = CollectorRegistry()
    answer = call_wsgi(make_wsgi_app(store, registry, status=status))  # type: ignore[arg-type]
    assert answer.status == 200
    assert b'laios_tasks_total{outcome="success",tool="export"} 1.0' in answer.body


@pytest.mark.parametrize(
    ("status", "error"), [("minimal", ValueError), (None, TypeError), (True, TypeError)]
)
def test_an_unknown_status_mode_is_refused_at_the_call(status: object, error: type) -> None:
    """A status mode that is not full, reduced or off fails before anything is served."""
    with pytest.raises(error, match="status must be one of full, reduced, off"):
        start_http_server(0, store=MetricStore(), registry=CollectorRegistry(), status=status)  # type: ignore[arg-type]


def test_laios_status_says_tasks_are_not_listed(store: MetricStore) -> None:
    """`laios status` on a reduced document counts the running tasks and says why none show."""
    text = render_status(status_document(store.snapshot(), reduced=True))
    assert "Running tasks (1)" in text
    assert "not listed: this endpoint serves a reduced /status" in text
    assert "(none)" not in text


# -- the warning at start ---------------------------------------------------------------------


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "laios.execution.server" and record.levelno == logging.WARNING
    ]


def test_beyond_loopback_without_authentication_warns_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Listening on every interface with no authentication logs one warning: where, what to do."""
    with caplog.at_level(logging.WARNING, logger="laios.execution.server"):
        with start_http_server(
            0, "0.0.0.0", store=MetricStore(), registry=CollectorRegistry()
        ) as server:
            call_http(f"http://127.0.0.1:{server.port}", path="/healthz")
            call_http(f"http://127.0.0.1:{server.port}", path="/healthz")
    (warning,) = warnings_of(caplog)
    assert f"0.0.0.0:{server.port}" in warning
    assert "without authentication" in warning
    assert "task ids" in warning
    assert "web_config=" in warning


def test_the_warning_names_what_a_reduced_status_shows(caplog: pytest.LogCaptureFixture) -> None:
    """With status="reduced" the warning does not claim task ids are shown."""
    with caplog.at_level(logging.WARNING, logger="laios.execution.server"):
        with start_http_server(
            0, "0.0.0.0", store=MetricStore(), registry=CollectorRegistry(), status="reduced"
        ):
            pass
    (warning,) = warnings_of(caplog)
    assert "per-tool counts" in warning
    assert "task ids" not in warning


def test_loopback_does_not_warn(caplog: pytest.LogCaptureFixture) -> None:
    """The default loopback address reaches only this machine: no warning."""
    with caplog.at_level(logging.WARNING, logger="laios.execution.server"):
        with start_http_server(0, store=MetricStore(), registry=CollectorRegistry()):
            pass
    assert warnings_of(caplog) == []


def test_authentication_beyond_loopback_does_not_warn(caplog: pytest.LogCaptureFixture) -> None:
    """A bearer token protects the endpoint: no warning."""
    with caplog.at_level(logging.WARNING, logger="laios.execution.server"):
        with start_http_server(
            0,
            "0.0.0.0",
            store=MetricStore(),
            registry=CollectorRegistry(),
            web_config=WebConfig(bearer_tokens=[TOKEN]),
        ):
            pass
    assert warnings_of(caplog) == []
