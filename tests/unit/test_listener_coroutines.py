"""A listener that returns a coroutine (an async function behind a plain callable, such as a
``lambda``) is reported as a failing listener and its coroutine closed, as an ``on_progress``
callback's and an ``on_retry`` hook's are: its work would never happen, and Python would only
warn, much later, that the coroutine was never awaited."""

from __future__ import annotations

import gc
import inspect
import logging
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

from laios.core.types import Task
from laios.execution.monitor import ProgressTracker
from laios.execution.store import MetricStore
from laios.execution.task_monitor import TaskMonitor


class _Errors(logging.Handler):
    """Keeps the text of each listener failure logged."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if "listener" in record.msg and record.exc_info:
            self.seen.append(f"{type(record.exc_info[1]).__name__}: {record.exc_info[1]}")


@pytest.fixture
def errors() -> Iterator[_Errors]:
    handler = _Errors()
    logger = logging.getLogger("laios.execution")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


async def _send(event: Any) -> None:
    """Work that would never happen."""


def _heard(errors: _Errors, notify: Any) -> list[str]:
    """The failures logged while ``notify()`` runs, failing on a never-awaited warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        notify()
        gc.collect()  # (an unclosed coroutine would warn as it is collected)
    return errors.seen


def test_a_progress_listener_returning_a_coroutine_is_reported(errors: _Errors) -> None:
    tracker = ProgressTracker()
    tracker.add_listener(lambda update: _send(update))
    seen = _heard(errors, lambda: tracker.update_progress("t", "in_progress", 5))
    assert len(seen) == 1
    assert seen[0].startswith("TypeError: the progress listener returned a coroutine")


def test_a_finish_listener_returning_a_coroutine_is_reported(errors: _Errors) -> None:
    store = MetricStore()
    monitor = TaskMonitor(store)
    store.add_finish_listener(lambda event: _send(event))
    task = Task(plan_id="p", description="d", tool_name="batch")

    def finish() -> None:
        monitor.start_monitoring(task)
        monitor.stop_monitoring(task.id)

    seen = _heard(errors, finish)
    assert len(seen) == 1
    assert seen[0].startswith("TypeError: the finish listener returned a coroutine")


def _yields(event: Any, made: list[Any]) -> Iterator[None]:
    made.append("ran")  # (work that never happens unless something iterates it)
    yield


async def _yields_async(event: Any, made: list[Any]) -> Any:
    made.append("ran")
    yield


def _handing_back(kind: str, made: list[Any]) -> Any:
    """A plain callable handing back a generator (or async generator) it made."""
    inner = _yields if kind == "generator" else _yields_async

    def listener(event: Any) -> Any:
        made.append(inner(event, made))
        return made[-1]

    return listener


@pytest.mark.parametrize("kind", ["generator", "async_generator"])
def test_a_listener_returning_a_generator_is_reported_and_the_generator_closed(
    errors: _Errors, kind: str
) -> None:
    """A progress or finish listener handing back a generator or an async generator (written
    with ``yield``, behind a plain callable) was silently never run. It is now reported as a
    listener returning a coroutine is, the generator closed."""
    made: list[Any] = []
    tracker = ProgressTracker()
    tracker.add_listener(_handing_back(kind, made))
    store = MetricStore()
    monitor = TaskMonitor(store)
    store.add_finish_listener(_handing_back(kind, made))
    task = Task(plan_id="p", description="d", tool_name="batch")

    def notify() -> None:
        tracker.update_progress("t", "in_progress", 5)
        monitor.start_monitoring(task)
        monitor.stop_monitoring(task.id)

    seen = _heard(errors, notify)
    assert [s.split(",")[0] for s in seen] == [
        f"TypeError: the progress listener returned a {kind}",
        f"TypeError: the finish listener returned a {kind}",
    ]
    assert "ran" not in made
    gens = [g for g in made if g != "ran"]
    assert len(gens) == 2
    for gen in gens:  # closed: nothing can start its body later
        if kind == "generator":
            assert inspect.getgeneratorstate(gen) == inspect.GEN_CLOSED
        else:
            with pytest.raises(StopAsyncIteration):
                gen.__anext__().send(None)
    assert "ran" not in made
