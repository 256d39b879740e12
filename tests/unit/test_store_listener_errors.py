"""A store listener that keeps raising is logged once a minute, not once per task.

A finish or progress listener runs on every task's path; one that is broken (an exporter whose
backend went away, an instrument that raises) would otherwise log a full ERROR traceback for
every task of a busy service.
"""

from __future__ import annotations

import logging

import pytest

from laios import Context, Task
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.tools.base import create_simple_tool
from laios.tools.registry import ToolRegistry

TASKS = 40


def broken(_: object) -> None:
    raise RuntimeError("the backend is gone")


def also_broken(_: object) -> None:
    raise ValueError("another one")


def run_tasks(store: MetricStore, count: int = TASKS) -> None:
    registry = ToolRegistry()
    registry.register_tool(create_simple_tool("noop", "Does nothing.", lambda: None))
    executor = Executor(registry, store=store, register_prometheus=False)
    context = Context(session_id="s", user_id="u")
    try:
        for _ in range(count):
            task = Task(plan_id="p", description="d", tool_name="noop")
            result = executor.execute_task(task, context)
            assert result.success, result.error
    finally:
        executor.shutdown()


def errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("laios") and r.levelno >= logging.ERROR]


@pytest.mark.parametrize("kind", ["finish", "progress"])
def test_a_listener_that_keeps_raising_is_logged_once_with_its_traceback(
    kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = MetricStore()
    getattr(store, f"add_{kind}_listener")(broken)
    with caplog.at_level(logging.DEBUG, logger="laios"):
        run_tasks(store)
    logged = errors(caplog)
    assert len(logged) == 1, [r.getMessage()[:120] for r in logged]
    text = logged[0].getMessage() + (logged[0].exc_text or "")
    if logged[0].exc_info:
        text += repr(logged[0].exc_info[1])
    assert "the backend is gone" in text
    assert f"{kind} listener" in logged[0].getMessage()
    assert "once a minute" in logged[0].getMessage()
    assert "more failures" not in logged[0].getMessage()  # (none held back before the first)


def test_each_broken_listener_is_logged_and_the_others_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = MetricStore()
    heard: list[object] = []
    store.add_finish_listener(broken)
    store.add_finish_listener(also_broken)
    store.add_finish_listener(heard.append)
    with caplog.at_level(logging.ERROR, logger="laios"):
        run_tasks(store)
    assert len(heard) == TASKS
    messages = [r.getMessage() for r in errors(caplog)]
    assert len(messages) == 2, messages
    assert any("broken" in m and "also_broken" not in m for m in messages)
    assert any("also_broken" in m for m in messages)
