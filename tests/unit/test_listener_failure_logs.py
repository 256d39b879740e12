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
