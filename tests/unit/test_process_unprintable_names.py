"""A checkpoint name or a progress message that can be neither pickled nor printed is recorded
for a tool on the process runner as for one on a thread: as ``<unprintable name>`` and
``<unprintable message>``, not as the name of its class (``<W>``), which the worker used to
send in its place."""

from __future__ import annotations

import logging
from typing import Any

import process_tools
import pytest

from laios.core.types import Context, Task
from laios.execution._logs import WarningLimiter
from laios.execution.executor import Executor
from laios.execution.runners import ProcessRunner, ThreadRunner
from laios.execution.store import MetricStore
from laios.tools.registry import ToolRegistry


def _reported(runner: Any) -> tuple[list[str], list[tuple[str, Any]]]:
    """The progress messages and the checkpoints (name and data) a run of
    ``reports_unprintably`` left."""
    registry = ToolRegistry()
    registry.register_tool(process_tools.ReportsUnprintably())
    messages: list[str] = []

    def on_progress(event: str, data: dict[str, Any]) -> None:
        if event == "progress":
            messages.append(data["message"])

    task = Task(plan_id="p", description="d", tool_name="reports_unprintably")
    with Executor(
        registry, runner=runner, store=MetricStore(), register_prometheus=False
    ) as executor:
        result = executor.execute_task(
            task, Context(session_id="s", user_id="u"), on_progress=on_progress
        )
        assert result.success, result.error
        metrics = executor.get_metrics(task.id)
    assert metrics is not None
    return messages, [(point["name"], point["data"]) for point in metrics.checkpoints]


@pytest.mark.timeout(120)
def test_the_process_runner_shows_what_cannot_be_printed_as_a_thread_does() -> None:
    """The placeholders are those of a tool on a thread, for the message and the name."""
    on_threads = _reported(ThreadRunner(max_workers=1, replacement_cap=1))
    in_a_process = _reported(ProcessRunner(1))
    assert on_threads[0] == ["<unprintable message>"]
    assert ("<unprintable name>", {"rows": 1}) in on_threads[1]
    assert in_a_process == on_threads


class _Warnings(logging.Handler):
    """The warnings that something could not be printed, as a handler on the ``laios`` logger
    of the application's process sees them."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "could not be printed" in message:
            self.messages.append(message)


@pytest.mark.timeout(120)
def test_the_process_runner_warns_of_what_cannot_be_printed_as_a_thread_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The worker process wrote the placeholders itself, and warned there, where the
    application's logging does not reach: a handler on the ``laios`` logger saw the warnings
    for a tool on a thread, and none for one in a process. It sees the same for both."""
    handler = _Warnings()
    logger = logging.getLogger("laios")
    logger.addHandler(handler)
    seen = []
    try:
        for runner in (ThreadRunner(max_workers=1, replacement_cap=1), ProcessRunner(1)):
            # (at most one warning a minute of each placeholder: a fresh count for each run)
            monkeypatch.setattr("laios.execution._records._unprintable_warnings", WarningLimiter())
            handler.messages.clear()
            _reported(runner)
            seen.append(list(handler.messages))
    finally:
        logger.removeHandler(handler)
    on_threads, in_a_process = seen
    assert len(on_threads) == 2, on_threads
    assert all("_Unprintable" in message for message in on_threads), on_threads
    assert any("<unprintable message>" in message for message in on_threads), on_threads
    assert any("<unprintable name>" in message for message in on_threads), on_threads
    assert in_a_process == on_threads
