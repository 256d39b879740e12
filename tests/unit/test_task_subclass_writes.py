"""The executor writes a task's status, result, error and times as an assignment would: a
frozen ``Task`` subclass (or a frozen field) is not changed, its outcome still in the
``TaskResult``, and a subclass's validators of those fields run on what the executor writes."""

from __future__ import annotations

import gc
import logging
import weakref
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import ConfigDict, Field, ValidationError, field_validator

from laios.core.types import Context, Task, TaskStatus
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.tools.base import create_simple_tool
from laios.tools.registry import ToolRegistry

CONTEXT = Context(session_id="s", user_id="u")


class FrozenTask(Task):
    model_config = ConfigDict(frozen=True)


class FrozenStatusTask(Task):
    status: TaskStatus = Field(default=TaskStatus.PENDING, frozen=True)


SEEN: list[Any] = []


class WatchedTask(Task):
    @field_validator("status")
    @classmethod
    def _seen(cls, status: TaskStatus) -> TaskStatus:
        SEEN.append(status)
        return status


class NoFailingTask(Task):
    @field_validator("status")
    @classmethod
    def _refuse_failed(cls, status: TaskStatus) -> TaskStatus:
        if status == TaskStatus.FAILED:
            raise ValueError("this task may not fail")
        return status


@pytest.fixture
def executor() -> Iterator[Executor]:
    registry = ToolRegistry()
    registry.register_tool(create_simple_tool("work", "Works.", lambda: "done"))

    def broken() -> str:
        raise RuntimeError("broken")

    registry.register_tool(create_simple_tool("broken", "Fails.", broken))
    with Executor(registry, store=MetricStore(), register_prometheus=False) as executor:
        yield executor


def test_a_frozen_task_is_not_changed(executor: Executor) -> None:
    """A task of a frozen class keeps its fields; the outcome is in the TaskResult."""
    task = FrozenTask(plan_id="p", description="d", tool_name="work")
    before = task.model_dump()
    result = executor.execute_task(task, CONTEXT)
    assert result.success
    assert result.output == "done"
    assert task.model_dump() == before
    assert task.status is TaskStatus.PENDING
    assert task.result is None
    with pytest.raises(ValidationError):
        task.status = TaskStatus.COMPLETED  # (still frozen as its class says)


def test_a_frozen_task_that_fails_is_not_changed(executor: Executor) -> None:
    """A failure of a frozen task is reported in the TaskResult only."""
    task = FrozenTask(plan_id="p", description="d", tool_name="broken")
    result = executor.execute_task(task, CONTEXT)
    assert not result.success
    assert result.error == "broken"
    assert task.status is TaskStatus.PENDING
    assert task.error is None
    assert task.completed_at is None


def test_a_frozen_field_is_not_written_and_the_others_are(executor: Executor) -> None:
    """A frozen status stays; the result and the times are written as usual."""
    task = FrozenStatusTask(plan_id="p", description="d", tool_name="work")
    assert executor.execute_task(task, CONTEXT).success
    assert task.status is TaskStatus.PENDING
    assert task.result == "done"
    assert task.started_at is not None
    assert task.completed_at is not None


def test_a_status_validator_sees_what_the_executor_writes(executor: Executor) -> None:
    """A validator of status runs on the executor's RUNNING and COMPLETED."""
    SEEN.clear()
    task = WatchedTask(plan_id="p", description="d", tool_name="work")
    SEEN.clear()
    assert executor.execute_task(task, CONTEXT).success
    assert SEEN == [TaskStatus.RUNNING, TaskStatus.COMPLETED]
    assert task.status is TaskStatus.COMPLETED


def test_a_status_the_validator_refuses_is_left_and_logged(
    executor: Executor, caplog: pytest.LogCaptureFixture
) -> None:
    """A status the task's validator refuses is not written (logged); the result says the
    outcome and the other fields are written."""
    task = NoFailingTask(plan_id="p", description="d", tool_name="broken")
    with caplog.at_level(logging.WARNING, logger="laios.execution"):
        result = executor.execute_task(task, CONTEXT)
    assert not result.success
    assert result.error == "broken"
    assert task.status is TaskStatus.RUNNING
    assert task.error == "broken"
    assert "this task may not fail" in caplog.text
    assert "NoFailingTask" in caplog.text


def test_a_plain_task_is_written_as_before(executor: Executor) -> None:
    """A plain Task gets its status, result and times."""
    task = Task(plan_id="p", description="d", tool_name="work")
    assert executor.execute_task(task, CONTEXT).success
    assert task.status is TaskStatus.COMPLETED
    assert task.result == "done"
    assert task.started_at is not None
    assert task.completed_at is not None


def test_task_subclasses_made_per_call_are_not_kept(executor: Executor) -> None:
    """Code that makes a ``Task`` subclass per call (in a function, say) ran each on the
    executor, which kept every such class for good, with what it had learnt of its fields:
    memory grew with every call. A class the program no longer holds is let go."""

    def one_call(number: int) -> weakref.ref[type[Task]]:
        class PerCallTask(Task):
            @field_validator("status")
            @classmethod
            def _seen(cls, status: TaskStatus) -> TaskStatus:
                return status

        task = PerCallTask(plan_id="p", description=f"call {number}", tool_name="work")
        assert executor.execute_task(task, CONTEXT).success
        assert task.status is TaskStatus.COMPLETED  # (written: the class was looked at)
        return weakref.ref(PerCallTask)

    classes = [one_call(number) for number in range(20)]
    gc.collect()
    kept = [kind for kind in classes if kind() is not None]
    assert len(kept) <= 1, f"{len(kept)} of 20 Task subclasses made per call are still alive"


def test_a_refusal_is_logged_for_each_class_of_the_same_name(
    executor: Executor, caplog: pytest.LogCaptureFixture
) -> None:
    """Two ``Task`` subclasses of one name in two modules each log their validator's refusal
    once: the second was held back as the first's, named alike."""

    def refusing_class(module: str) -> type[Task]:
        class Refusing(Task):
            @field_validator("status")
            @classmethod
            def _refuse_failed(cls, status: TaskStatus) -> TaskStatus:
                if status == TaskStatus.FAILED:
                    raise ValueError(f"no failure in {module}")
                return status

        Refusing.__module__ = module
        return Refusing

    with caplog.at_level(logging.WARNING, logger="laios.execution"):
        for module in ("billing.tasks", "search.tasks"):
            kind = refusing_class(module)
            task = kind(plan_id="p", description="d", tool_name="broken")
            assert not executor.execute_task(task, CONTEXT).success
    assert "no failure in billing.tasks" in caplog.text
    assert "no failure in search.tasks" in caplog.text
