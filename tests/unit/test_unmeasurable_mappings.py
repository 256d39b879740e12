"""Checkpoint data and progress details whose ``len()`` raises (a closed ``shelve``, a mapping
over a backend that is gone) are kept as their description, as data whose items cannot be read
is: the checkpoint, the update and the tool go on. Such data raised its own error out of every
checkpoint and progress call."""

from __future__ import annotations

import logging
import shelve
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from checkpoint_runs import run_checkpoint

from laios.core.types import Task
from laios.execution.metrics import ExecutionMetrics
from laios.execution.monitor import ExecutionMonitor, ProgressTracker
from laios.execution.store import MetricStore
from laios.execution.task_monitor import TaskMonitor


class Gone(Mapping[str, Any]):
    """A mapping over a backend that is gone: measuring it raises, as reading it does."""

    def __len__(self) -> int:
        raise ConnectionError("backend is down")

    def __iter__(self) -> Iterator[str]:
        raise ConnectionError("backend is down")

    def __getitem__(self, key: str) -> Any:
        raise ConnectionError("backend is down")


def closed_shelf(tmp_path: Path) -> Any:
    """A ``shelve`` closed after use: its ``len()`` raises ``ValueError``."""
    with shelve.open(str(tmp_path / "rows")) as shelf:
        shelf["rows"] = 3
    return shelf


@pytest.fixture(params=["gone", "closed shelf"])
def unmeasurable(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    return Gone() if request.param == "gone" else closed_shelf(tmp_path)


@pytest.mark.parametrize("traced", [False, True], ids=["untraced", "traced"])
def test_a_tool_checkpointing_such_data_succeeds_and_keeps_the_checkpoint(
    unmeasurable: Any, traced: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """The task succeeds with the checkpoint kept, described; traced, its span is recorded
    with no data attributes, and no internal error is logged for it."""
    with caplog.at_level(logging.WARNING, logger="laios"):
        result, checkpoints, spans = run_checkpoint("saved", unmeasurable, traced=traced)
    assert result.success, result.error
    (point,) = [c for c in checkpoints if c["name"] == "saved"]
    assert point["data"] == {"…": f"<{type(unmeasurable).__name__} object>"}
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    if traced:
        (span,) = [s for s in spans if s.name == "checkpoint saved"]
        assert not dict(span.attributes or {})


def test_a_task_monitor_and_its_metrics_keep_such_a_checkpoint(unmeasurable: Any) -> None:
    monitor = TaskMonitor()
    task = Task(plan_id="p", description="d", tool_name="batch")
    metrics = monitor.start_monitoring(task)
    monitor.checkpoint(task.id, "through the monitor", unmeasurable)
    metrics.checkpoint("through the metrics", unmeasurable)
    detached = ExecutionMetrics("detached")
    detached.checkpoint("detached", unmeasurable)
    described = {"…": f"<{type(unmeasurable).__name__} object>"}
    assert [(c["name"], c["data"]) for c in metrics.checkpoints] == [
        ("through the monitor", described),
        ("through the metrics", described),
    ]
    assert [c["data"] for c in detached.checkpoints] == [described]


def test_progress_details_of_such_a_mapping_are_described_not_raised(unmeasurable: Any) -> None:
    store = MetricStore()
    ExecutionMonitor(store).update_task_progress("task-1", 20, "working", unmeasurable)
    ProgressTracker(store).update_progress("task-1", "in_progress", 30, None, unmeasurable)
    described = {"…": f"<{type(unmeasurable).__name__} object>"}
    history = store.progress_history("task-1")
    assert [(u.progress_percent, u.details) for u in history] == [
        (20.0, described),
        (30.0, described),
    ]
