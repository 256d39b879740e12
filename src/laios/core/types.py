"""Core data types shared across ``laios``: tasks, results, conversation context and permissions.

All models are Pydantic v2 models. Every datetime they hold is timezone-aware UTC: a naive
datetime handed in by a caller is taken as UTC, and an aware datetime in another zone is
converted to UTC. :class:`Task`, :class:`Message` and :class:`Memory` validate on assignment, so
the same rule applies to values assigned after construction.
"""

from __future__ import annotations

import os
import random
import warnings
from datetime import datetime, timezone
from enum import Enum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

__all__ = [
    "Context",
    "Memory",
    "MemoryType",
    "Message",
    "Permission",
    "Task",
    "TaskResult",
    "TaskStatus",
    "ToolParameter",
    "UTCDateTime",
    "ensure_utc",
    "utc_now",
]


def ensure_utc(value: datetime) -> datetime:
    """Return ``value`` as a timezone-aware UTC datetime.

    Args:
        value: A naive datetime (taken to be UTC already) or an aware datetime in any zone.

    Returns:
        The same instant as an aware datetime whose ``tzinfo`` is :data:`datetime.timezone.utc`.
    """
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        return value.replace(tzinfo=timezone.utc)
    if value.tzinfo is timezone.utc:
        return value
    return value.astimezone(timezone.utc)


def utc_now() -> datetime:
    """Return the current time as a timezone-aware UTC datetime.

    Returns:
        ``datetime.now(timezone.utc)``.
    """
    return datetime.now(timezone.utc)


_id_random = random.Random(os.urandom(32))
if hasattr(os, "register_at_fork"):  # a forked child must not repeat its parent's ids
    os.register_at_fork(after_in_child=lambda: _id_random.seed(os.urandom(32)))


def _new_id() -> str:
    """A random (version 4) UUID string; several times cheaper than ``str(uuid.uuid4())``.

    Ids need to be unique, not secret, so a private generator seeded from ``os.urandom`` (and
    reseeded in forked children) replaces a system call per id. The version digit is written
    as ``4`` and the variant digit is one of ``89ab`` (RFC 4122).
    """
    h = _random_bytes(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


_random_bytes = _id_random.randbytes
# The variant digit keeps the random digit's two low bits under the RFC 4122 bits (0b10).
_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


def validated_utc(value: datetime) -> datetime:
    """:func:`ensure_utc` for a field: a datetime with no UTC form is a ``ValueError`` (which
    pydantic reports as a ``ValidationError``), not the ``OverflowError`` of the conversion."""
    try:
        return ensure_utc(value)
    except OverflowError:
        raise ValueError(
            f"{value.isoformat()} is outside the range of datetimes in UTC (year 1 to 9999)"
        ) from None


UTCDateTime = Annotated[datetime, AfterValidator(validated_utc)]
"""A datetime field type that normalises every value to aware UTC (a value that has no UTC
form, at the edge of year 1 or 9999, is refused)."""


class TaskStatus(str, Enum):
    """Lifecycle state of a :class:`Task`."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    BLOCKED = "blocked"


class MemoryType(str, Enum):
    """Kind of a stored :class:`Memory`."""

    SHORT_TERM = "short_term"
    LONG_TERM = "long_term"
    EPISODIC = "episodic"


class Permission(str, Enum):
    """A capability a tool needs in order to run."""

    FILESYSTEM_READ = "filesystem.read"
    FILESYSTEM_WRITE = "filesystem.write"
    SHELL_EXECUTE = "shell.execute"
    NETWORK_ACCESS = "network.access"
    CODE_EXECUTE = "code.execute"


class Task(BaseModel):
    """One unit of work: a call of the tool ``tool_name`` with ``parameters``.

    Tasks are mutable; the executor assigns ``status``, ``result``, ``error``, ``started_at``
    and ``completed_at`` as the task runs. Assignments are validated, so a naive datetime is
    stored as UTC. Two tasks with equal fields compare equal. The executor writes a subclass
    as an assignment would: a frozen one (or a frozen field) is not changed, its outcome only
    in the ``TaskResult``, and its validators of these fields run on what it writes.

    Attributes:
        id: Unique identifier; a new UUID4 string by default.
        plan_id: Identifier of the plan the task belongs to.
        description: Human-readable summary of the task.
        tool_name: Name of the tool to run, as registered in a tool registry.
        parameters: Keyword arguments passed to the tool.
        dependencies: Ids of tasks that must complete before this one.
        status: Current lifecycle state.
        result: The tool's output once the task has run.
        error: Error message when the task failed.
        started_at: When execution started (UTC): for an ``execute_with_retry`` call, when
            its first attempt to start started.
        completed_at: When execution finished (UTC).
        metadata: Free-form extra information.
    """

    model_config = ConfigDict(validate_assignment=True)

    id: str = Field(default_factory=_new_id)
    plan_id: str
    description: str
    tool_name: str
    parameters: dict[str, Any] = Field(default_factory=dict)
    dependencies: list[str] = Field(default_factory=list)
    status: TaskStatus = TaskStatus.PENDING
    result: Any = None
    error: str | None = None
    started_at: UTCDateTime | None = None
    completed_at: UTCDateTime | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class TaskResult(BaseModel):
    """Outcome of running one :class:`Task`.

    Attributes:
        task_id: Id of the task this result belongs to.
        success: Whether the task succeeded.
        output: The tool's output data.
        error: Error message when the task failed.
        logs: Log lines collected while the task ran.
        execution_time_seconds: Wall-clock duration of the run.
        metadata: Free-form extra information.
    """

    task_id: str
    success: bool
    output: Any = None
    error: str | None = None
    logs: list[str] = Field(default_factory=list)
    execution_time_seconds: float = 0.0
    metadata: dict[str, Any] = Field(default_factory=dict)


class Message(BaseModel):
    """One message of a conversation.

    Attributes:
        id: Unique identifier; a new UUID4 string by default.
        role: Who wrote the message: ``"user"``, ``"assistant"``, ``"system"`` or ``"tool"``.
        content: The message text.
        metadata: Free-form extra information.
        timestamp: When the message was created (UTC); now by default.
    """

    model_config = ConfigDict(validate_assignment=True)

    id: str = Field(default_factory=_new_id)
    role: str
    content: str
    metadata: dict[str, Any] = Field(default_factory=dict)
    timestamp: UTCDateTime = Field(default_factory=utc_now)


class Memory(BaseModel):
    """A piece of remembered information.

    Attributes:
        id: Unique identifier; a new UUID4 string by default.
        content: The remembered text.
        memory_type: How long-lived the memory is.
        embedding: Optional vector embedding of ``content``.
        metadata: Free-form extra information.
        created_at: When the memory was created (UTC); now by default.
        accessed_at: When the memory was last read (UTC); now by default.
    """

    model_config = ConfigDict(validate_assignment=True)

    id: str = Field(default_factory=_new_id)
    content: str
    memory_type: MemoryType
    embedding: list[float] | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: UTCDateTime = Field(default_factory=utc_now)
    accessed_at: UTCDateTime = Field(default_factory=utc_now)


class Context(BaseModel):
    """The conversation state a task runs in.

    Attributes:
        session_id: Identifier of the session.
        user_id: Identifier of the user.
        messages: Conversation so far, oldest first.
        relevant_memories: Memories that apply to the current work.
        metadata: Free-form extra information.
    """

    session_id: str
    user_id: str
    messages: list[Message] = Field(default_factory=list)
    relevant_memories: list[Memory] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)


# The field name ``schema`` is part of the public contract. It shadows the deprecated
# ``BaseModel.schema()`` class method, which Pydantic reports with a warning at class creation.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=r'Field name "schema"', category=UserWarning)

    class ToolParameter(BaseModel):
        """Description of one parameter a tool accepts.

        Attributes:
            name: Parameter name, as passed to the tool (a field's alias, or the first step of
                its ``AliasPath``; its own name where the model's configuration takes no alias
                or takes that name).
            type: JSON type: ``"string"``, ``"number"``, ``"integer"``, ``"boolean"``,
                ``"object"`` or ``"array"``.
            description: What the parameter means: the field's own description, or, for a
                tool described from a function's signature, what the function's docstring
                (Google, NumPy or Sphinx style) says of the parameter; empty when neither
                says anything.
            required: Whether the caller must supply it.
            default: Value used when the caller leaves it out.
            schema: Extra JSON-schema detail (items, properties, enum values, bounds) when the
                type alone does not describe the parameter.
        """

        name: str
        type: str
        description: str
        required: bool = True
        default: Any = None
        schema: dict[str, Any] | None = None  # type: ignore[assignment]
