"""Core data types of ``laios``: tasks, results, conversation context and permissions."""

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
    UTCDateTime,
    ensure_utc,
    utc_now,
)

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
