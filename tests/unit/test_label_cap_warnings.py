"""A store that first counts a tool, an error type or a custom metric under ``other``, past its
label cap, says so in a warning naming what was folded and the option that raises the cap;
once per store and kind, so that a service past a cap logs one line, not one per task."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from laios.execution.store import MetricStore

LOGGER = "laios.execution.store"


def finish(store: MetricStore, tool: str, error_type: str | None = None) -> None:
    """One task of ``tool`` recorded straight into ``store``: a failure of ``error_type``, or a
    success."""
    slot = store.tool_slot(tool, True)
    record = store.task_submitted(None, SimpleNamespace(id=f"{tool}-t"), tool, slot, running=True)
    outcome = "success" if error_type is None else "error"
    store.task_finished(record, outcome=outcome, status=None, error_type=error_type)


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == LOGGER and record.levelno == logging.WARNING
    ]


def test_the_first_tool_past_the_cap_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    store = MetricStore(max_tool_labels=2)
    with caplog.at_level(logging.WARNING, LOGGER):
        for tool in ("fetch", "parse"):
            finish(store, tool)
        assert warnings_of(caplog) == []
        for tool in ("index", "index", "render", "fetch"):
            finish(store, tool)
    (warning,) = warnings_of(caplog)
    assert "'index'" in warning
    assert 'tool="other"' in warning
    assert "max_tool_labels" in warning
    assert "2" in warning
    assert {tool.tool for tool in store.snapshot().tools} == {"fetch", "parse", "other"}


def test_the_first_error_type_past_the_cap_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = MetricStore(max_error_types=2)
    with caplog.at_level(logging.WARNING, LOGGER):
        for error_type in ("ValueError", "KeyError"):
            finish(store, "fetch", error_type)
        assert warnings_of(caplog) == []
        for error_type in ("OSError", "TimeoutError", "OSError"):
            finish(store, "fetch", error_type)
        finish(store, "parse", "OSError")  # (within the cap of its own tool)
        store.count_error(store.tool_slot("parse", True), "A")
        store.count_error(store.tool_slot("parse", True), "B")  # (past it: no second warning)
        store.task_retried(store.tool_slot("fetch", True), "LookupError")
    (warning,) = warnings_of(caplog)
    assert "'OSError'" in warning
    assert "'fetch'" in warning
    assert 'error_type="other"' in warning
    assert "max_error_types" in warning
    (fetch,) = [tool for tool in store.snapshot().tools if tool.tool == "fetch"]
    assert set(fetch.errors) == {"ValueError", "KeyError", "other"}
    assert fetch.errors["other"].value == 3


def test_a_retry_past_the_cap_of_error_types_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    store = MetricStore(max_error_types=1)
    slot = store.tool_slot("fetch", True)
    with caplog.at_level(logging.WARNING, LOGGER):
        store.task_retried(slot, "ValueError")
        assert warnings_of(caplog) == []
        store.task_retried(slot, "KeyError")
        store.task_retried(slot, "OSError")
    (warning,) = warnings_of(caplog)
    assert "'KeyError'" in warning
    assert "max_error_types" in warning


def test_the_first_custom_metric_past_the_cap_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = MetricStore(max_custom_metrics=2)
    with caplog.at_level(logging.WARNING, LOGGER):
        store.record_custom("t1", "rows", 1.0, "")
        store.record_custom("t2", "bytes", 1.0, "By")
        assert warnings_of(caplog) == []
        store.record_custom("t3", "pages", 1.0, "")
        store.record_custom("t4", "tokens", 1.0, "")
        store.record_custom("t5", "pages", 1.0, "")
    (warning,) = warnings_of(caplog)
    assert "'pages'" in warning
    assert 'name="other"' in warning
    assert "max_custom_metrics" in warning
    assert {(entry.name, entry.count) for entry in store.snapshot().custom} == {
        ("rows", 1),
        ("bytes", 1),
        ("other", 3),
    }


def test_each_store_warns_of_its_own_cap(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, LOGGER):
        for _ in range(2):
            store = MetricStore(max_tool_labels=1)
            finish(store, "fetch")
            finish(store, "parse")
    assert len(warnings_of(caplog)) == 2


def test_a_huge_name_past_the_cap_is_cut_in_the_warning(caplog: pytest.LogCaptureFixture) -> None:
    store = MetricStore(max_tool_labels=1, max_error_types=1)
    with caplog.at_level(logging.WARNING, LOGGER):
        finish(store, "fetch", "ValueError")
        finish(store, "x" * 1_000_000)
        finish(store, "fetch", "E" * 1_000_000)
    assert len(warnings_of(caplog)) == 2
    assert all(len(warning) < 2000 for warning in warnings_of(caplog))
