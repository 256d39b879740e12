"""``shutdown(wait=...)`` takes ``True``/``False`` (or ``0``/``1``), as the constructor's
switches do: ``shutdown(wait="no")`` used to be taken as ``wait=True`` (a non-empty string is
truthy), and ``shutdown(wait=2)`` went unnoticed."""

from __future__ import annotations

from typing import Any

import pytest

from laios.core.types import Context, Task
from laios.execution.executor import Executor

CONTEXT = Context(session_id="s", user_id="u")


@pytest.mark.parametrize("value", ["no", "false", b"0", None, 0.0, 1.0, object()])
def test_shutdown_refuses_a_wait_that_is_not_a_bool(executor: Executor, value: Any) -> None:
    """A ``wait`` that is no bool (a string like "no" would read as true) is refused with a
    ``TypeError`` naming it, before anything is done: the executor still runs tasks."""
    with pytest.raises(TypeError, match=r"wait must be True or False, got "):
        executor.shutdown(wait=value)
    assert not executor.is_shutdown
    task = Task(plan_id="p", description="d", tool_name="echo", parameters={"x": 1})
    assert executor.execute_task(task, CONTEXT).success


@pytest.mark.parametrize("value", [2, -1, 10**20])
def test_shutdown_refuses_a_whole_number_other_than_zero_or_one(
    executor: Executor, value: int
) -> None:
    """Only 0 and 1 say False and True: ``shutdown(wait=2)`` is refused, naming the value."""
    with pytest.raises(TypeError, match=rf"wait must be True or False, got int {value} "):
        executor.shutdown(wait=value)
    assert not executor.is_shutdown


@pytest.mark.parametrize("value", [True, False, 1, 0])
def test_shutdown_takes_a_bool_or_zero_or_one(executor: Executor, value: Any) -> None:
    """``True``/``False`` and ``0``/``1`` are taken, positionally too."""
    executor.shutdown(value)
    assert executor.is_shutdown
