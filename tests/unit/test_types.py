"""Tests for laios.core.types."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from laios.core.types import (
    Context,
    Memory,
    MemoryType,
    Message,
    Permission,
    Task,
    TaskResult,
    TaskStatus,
    ToolParameter,
    ensure_utc,
)

PLUS_TWO = timezone(timedelta(hours=2))


def make_task(**overrides: object) -> Task:
    fields: dict[str, object] = {"plan_id": "plan-1", "description": "do it", "tool_name": "echo"}
    fields.update(overrides)
    return Task.model_validate(fields)


def test_task_status_values() -> None:
    """TaskStatus members carry the documented string values."""
    assert {s.name: s.value for s in TaskStatus} == {
        "PENDING": "pending",
        "RUNNING": "running",
        "COMPLETED": "completed",
        "FAILED": "failed",
        "CANCELLED": "cancelled",
        "BLOCKED": "blocked",
    }


def test_task_status_is_a_str() -> None:
    """TaskStatus members compare equal to their plain string values."""
    plain: str = "running"
    assert plain == TaskStatus.RUNNING


def test_memory_type_values() -> None:
    """MemoryType values are lower snake case."""
    assert [m.value for m in MemoryType] == ["short_term", "long_term", "episodic"]


def test_permission_values() -> None:
    """Permission members carry the documented dotted values."""
    assert {p.name: p.value for p in Permission} == {
        "FILESYSTEM_READ": "filesystem.read",
        "FILESYSTEM_WRITE": "filesystem.write",
        "SHELL_EXECUTE": "shell.execute",
        "NETWORK_ACCESS": "network.access",
        "CODE_EXECUTE": "code.execute",
    }


def test_task_id_defaults_to_uuid4_string() -> None:
    """A new Task gets a UUID4 string id."""
    assert uuid.UUID(make_task().id).version == 4


def test_task_ids_are_unique() -> None:
    """Two new Tasks get different ids."""
    assert make_task().id != make_task().id


def test_task_defaults() -> None:
    """A Task built from the required fields has the documented defaults."""
    task = make_task()
    assert (task.parameters, task.dependencies, task.metadata) == ({}, [], {})
    assert task.status is TaskStatus.PENDING
    assert (task.result, task.error, task.started_at, task.completed_at) == (None,) * 4


def test_task_mutable_defaults_are_not_shared() -> None:
    """Mutating one Task's default dict does not leak into another Task."""
    first = make_task()
    first.parameters["x"] = 1
    assert make_task().parameters == {}


def test_task_requires_plan_description_and_tool() -> None:
    """A Task without plan_id, description and tool_name is refused."""
    with pytest.raises(ValidationError) as info:
        Task.model_validate({})
    assert {e["loc"][0] for e in info.value.errors()} == {"plan_id", "description", "tool_name"}


def test_task_status_assignment_is_coerced() -> None:
    """Assigning a status string stores the TaskStatus member."""
    task = make_task()
    task.status = "running"  # type: ignore[assignment]
    assert task.status is TaskStatus.RUNNING


def test_task_invalid_status_assignment_is_refused() -> None:
    """Assigning an unknown status raises a ValidationError."""
    task = make_task()
    with pytest.raises(ValidationError):
        task.status = "exploded"  # type: ignore[assignment]


def test_task_naive_started_at_assignment_becomes_utc() -> None:
    """A naive datetime assigned to started_at is taken as UTC."""
    task = make_task()
    task.started_at = datetime(2024, 5, 1, 12, 0)
    assert task.started_at == datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
    assert task.started_at.tzinfo is timezone.utc


def test_task_aware_completed_at_is_converted_to_utc() -> None:
    """An aware datetime in another zone is stored as the same instant in UTC."""
    task = make_task()
    task.completed_at = datetime(2024, 5, 1, 12, 0, tzinfo=PLUS_TWO)
    assert task.completed_at is not None
    assert (task.completed_at.tzinfo, task.completed_at.hour) == (timezone.utc, 10)


def test_task_naive_datetime_at_construction_becomes_utc() -> None:
    """A naive datetime passed to the constructor is taken as UTC."""
    task = make_task(started_at=datetime(2024, 5, 1, 12, 0))
    assert task.started_at is not None
    assert task.started_at.tzinfo is timezone.utc


def test_tasks_with_equal_fields_compare_equal() -> None:
    """Two Tasks with the same field values are equal."""
    assert make_task(id="same") == make_task(id="same")


def test_tasks_with_different_fields_differ() -> None:
    """Two Tasks that differ in one field are not equal."""
    assert make_task(id="same") != make_task(id="same", error="boom")


def test_task_result_defaults() -> None:
    """A TaskResult built from task_id and success has the documented defaults."""
    result = TaskResult(task_id="t", success=True)
    assert (result.output, result.error, result.logs) == (None, None, [])
    assert (result.execution_time_seconds, result.metadata) == (0.0, {})


def test_message_defaults_to_uuid_and_utc_now() -> None:
    """A Message gets a UUID id and an aware UTC timestamp of the current time."""
    before = datetime.now(timezone.utc)
    message = Message(role="user", content="hi")
    assert uuid.UUID(message.id).version == 4
    assert message.timestamp.tzinfo is timezone.utc
    assert before <= message.timestamp <= datetime.now(timezone.utc)


def test_message_naive_timestamp_becomes_utc() -> None:
    """A naive Message timestamp is taken as UTC."""
    message = Message(role="tool", content="x", timestamp=datetime(2024, 1, 1))
    assert message.timestamp == datetime(2024, 1, 1, tzinfo=timezone.utc)


def test_memory_timestamps_default_to_aware_utc() -> None:
    """A Memory's created_at and accessed_at default to aware UTC datetimes."""
    memory = Memory(content="fact", memory_type=MemoryType.LONG_TERM)
    assert memory.created_at.tzinfo is timezone.utc
    assert memory.accessed_at.tzinfo is timezone.utc


def test_memory_naive_accessed_at_assignment_becomes_utc() -> None:
    """A naive datetime assigned to Memory.accessed_at is taken as UTC."""
    memory = Memory(content="fact", memory_type="episodic")
    memory.accessed_at = datetime(2024, 1, 1, 8)
    assert memory.accessed_at == datetime(2024, 1, 1, 8, tzinfo=timezone.utc)


def test_memory_rejects_unknown_type() -> None:
    """A Memory with an unknown memory_type is refused."""
    with pytest.raises(ValidationError):
        Memory(content="fact", memory_type="forever")


def test_context_validates_nested_messages() -> None:
    """Context turns message dicts into Message models."""
    context = Context.model_validate(
        {"session_id": "s", "user_id": "u", "messages": [{"role": "user", "content": "hi"}]}
    )
    assert isinstance(context.messages[0], Message)
    assert (context.relevant_memories, context.metadata) == ([], {})


def test_tool_parameter_keeps_schema_field() -> None:
    """ToolParameter stores and dumps its 'schema' field under that name."""
    param = ToolParameter(name="p", type="array", description="d", schema={"items": {}})
    assert param.schema == {"items": {}}
    assert param.model_dump()["schema"] == {"items": {}}
    assert param.required is True


def test_importing_types_emits_no_warning() -> None:
    """Importing laios.core.types raises no warning, even with warnings as errors."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-c", "import laios.core.types"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


def test_ensure_utc_keeps_an_utc_datetime() -> None:
    """ensure_utc returns an already-UTC datetime unchanged."""
    value = datetime(2024, 1, 1, tzinfo=timezone.utc)
    assert ensure_utc(value) is value


@pytest.mark.parametrize(
    "value",
    [
        "9999-12-31T23:59:59-01:00",
        datetime.max.replace(tzinfo=timezone(timedelta(hours=-1))),
        "0001-01-01T00:00:00+01:00",
    ],
)
def test_a_datetime_past_the_utc_range_is_a_validation_error(value: object) -> None:
    """An aware datetime that has no UTC form (the last day of year 9999 west of Greenwich)
    raised a bare ``OverflowError`` out of model validation, past callers that catch
    ``ValidationError`` for bad input (``Task.model_validate_json`` of a stored task)."""
    with pytest.raises(ValidationError, match="UTC"):
        Task(plan_id="p", description="d", tool_name="t", started_at=value)
    task = Task(plan_id="p", description="d", tool_name="t")
    with pytest.raises(ValidationError, match="UTC"):
        task.completed_at = value  # type: ignore[assignment]
    with pytest.raises(ValidationError, match="UTC"):
        Message(role="user", content="x", timestamp=value)
