"""The failures of a listener are logged at most once a minute per listener: a new listener
is never taken for one removed before it, whose memory (and so ``id``) it may reuse."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from laios.core.types import Task
from laios.execution.monitor import ProgressTracker
from laios.execution.store import MetricStore
from laios.execution.task_monitor import TaskMonitor


class _Errors(logging.Handler):
    """Keeps the text of each listener failure logged (never the record, whose traceback
    would keep the listener alive)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if "listener" in record.msg and record.exc_info:
            self.seen.append(f"{record.levelname} {record.exc_info[1]}")


@pytest.fixture
def errors() -> Iterator[_Errors]:
    handler = _Errors()
    logger = logging.getLogger("laios.execution")
    logger.addHandler(handler)
    level, propagate = logger.level, logger.propagate
    logger.setLevel(logging.DEBUG)
    logger.propagate = False  # (pytest's own capture keeps every record, tracebacks and all)
    try:
        yield handler
    finally:
        logger.setLevel(level)
        logger.propagate = propagate
        logger.removeHandler(handler)


def _broken(number: int) -> Callable[[Any], None]:
    def listener(event: Any) -> None:
        raise RuntimeError(f"listener {number} broke")

    return listener


def _reused(address: int) -> Callable[[Any], None]:
    """A new listener at ``address`` (the id of one that is gone), as CPython hands a freed
    object's memory to the next object of its size."""
    kept = []  # (kept alive meanwhile: each would otherwise free its own address again)
    for number in range(1, 200):
        candidate = _broken(number)
        if id(candidate) == address:
            return candidate
        kept.append(candidate)
    pytest.skip("no new listener took the address of the removed one")


def test_a_new_progress_listener_at_a_removed_ones_address_has_its_failure_logged(
    errors: _Errors,
) -> None:
    """A progress listener added after another was removed, at the same address, is a listener
    of its own: its first failure is logged, not held back as the removed one's next."""
    tracker = ProgressTracker()
    first = _broken(0)
    address = id(first)
    tracker.add_listener(first)
    tracker.update_progress("t", "in_progress", 1)
    tracker.remove_listener(first)
    del first
    second = _reused(address)
    tracker.add_listener(second)
    tracker.update_progress("t", "in_progress", 2)
    assert len(errors.seen) == 2
    assert errors.seen[0] == "ERROR listener 0 broke"
    assert errors.seen[1].startswith("ERROR listener ")


def test_a_new_finish_listener_at_a_removed_ones_address_has_its_failure_logged(
    errors: _Errors,
) -> None:
    """The same for finish listeners."""
    store = MetricStore()
    monitor = TaskMonitor(store)

    def finish_one() -> None:
        task = Task(plan_id="p", description="d", tool_name="batch")
        monitor.start_monitoring(task)
        monitor.stop_monitoring(task.id)

    first = _broken(0)
    address = id(first)
    store.add_finish_listener(first)
    finish_one()
    store.remove_finish_listener(first)
    del first
    second = _reused(address)
    store.add_finish_listener(second)
    finish_one()
    assert len(errors.seen) == 2
    assert errors.seen[1].startswith("ERROR listener ")


class _Texts(logging.Handler):
    """Keeps the message of each listener failure as a log handler formats it, or what
    formatting it raised (a handler of the standard library would print a ``Logging error``
    traceback instead of the failure)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []
        self.broken: list[BaseException] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.texts.append(record.getMessage())
        except Exception as exc:
            self.broken.append(exc)


@pytest.fixture
def texts() -> Iterator[_Texts]:
    handler = _Texts()
    logger = logging.getLogger("laios.execution")
    logger.addHandler(handler)
    level, propagate = logger.level, logger.propagate
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield handler
    finally:
        logger.setLevel(level)
        logger.propagate = propagate
        logger.removeHandler(handler)


class _Unshowable:
    """A listener whose ``repr`` raises (a proxy's, a half-built object's) and fails."""

    def __call__(self, event: Any) -> None:
        raise RuntimeError("listener broke")

    def __repr__(self) -> str:
        raise RuntimeError("no repr today")


class _Verbose:
    """A listener whose ``repr`` is huge (a partial bound to a big value, say) and fails."""

    def __call__(self, event: Any) -> None:
        raise RuntimeError("listener broke")

    def __repr__(self) -> str:
        return "Verbose(" + "x" * 1_000_000 + ")"


def _finish_one(monitor: TaskMonitor) -> None:
    task = Task(plan_id="p", description="d", tool_name="batch")
    monitor.start_monitoring(task)
    monitor.stop_monitoring(task.id)


@pytest.mark.parametrize("kind", ["progress", "finish"])
def test_a_failing_listener_whose_repr_raises_is_logged_by_its_type(
    texts: _Texts, kind: str
) -> None:
    """A failing listener whose ``repr`` raises is described by its type: the failure is
    logged, never replaced by the handler's own ``Logging error`` traceback."""
    store = MetricStore()
    listener = _Unshowable()
    if kind == "progress":
        tracker = ProgressTracker(store)
        tracker.add_listener(listener)
        tracker.update_progress("t", "in_progress", 1)
    else:
        store.add_finish_listener(listener)
        _finish_one(TaskMonitor(store))
    assert texts.broken == []
    assert len(texts.texts) == 1
    assert "<_Unshowable object>" in texts.texts[0]


@pytest.mark.parametrize("kind", ["progress", "finish"])
def test_a_failing_listener_with_a_huge_repr_is_logged_short(texts: _Texts, kind: str) -> None:
    """A failing listener's ``repr`` is cut in the log line, as every message quotes values:
    a listener bound to a big value does not make each failure a megabyte of log."""
    store = MetricStore()
    listener = _Verbose()
    if kind == "progress":
        tracker = ProgressTracker(store)
        tracker.add_listener(listener)
        tracker.update_progress("t", "in_progress", 1)
    else:
        store.add_finish_listener(listener)
        _finish_one(TaskMonitor(store))
    assert texts.broken == []
    assert len(texts.texts) == 1
    assert texts.texts[0].startswith(f"{kind} listener Verbose(xxx")
    assert len(texts.texts[0]) < 1_000
