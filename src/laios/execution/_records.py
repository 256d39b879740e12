"""Immutable records of things that happened: checkpoints and progress updates.

They live in their own module so that the store, the monitors and the executor can share them
without importing each other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from typing import Any

__all__ = [
    "MAX_TEXT",
    "Checkpoint",
    "ProgressStatus",
    "ProgressUpdate",
    "clamp_percent",
    "shorten",
]

#: Longest text (a message, a checkpoint name, a string value) the store keeps, in characters.
MAX_TEXT = 1024


def shorten(text: str, limit: int = MAX_TEXT) -> str:
    """Return ``text`` cut to ``limit`` characters, marking the cut with an ellipsis.

    Args:
        text: Any string.
        limit: The longest result, in characters.

    Returns:
        ``text`` itself when it fits, otherwise its first characters followed by ``"…"``.
    """
    if len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)] + "…"


def clamp_percent(value: Any) -> float:
    """Turn a caller's progress value into a percentage between 0 and 100.

    Args:
        value: A number. ``NaN`` counts as 0; values outside 0–100 are clamped.

    Returns:
        A float in ``[0.0, 100.0]``.

    Raises:
        TypeError: When ``value`` is not a real number (``bool`` included).
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"progress percent must be a number, got {type(value).__name__}")
    try:
        number = float(value)
    except OverflowError:  # an int too large for a float: far past either end
        return 100.0 if value > 0 else 0.0
    if math.isnan(number):
        return 0.0
    return min(max(number, 0.0), 100.0)


class ProgressStatus(str, Enum):
    """Where a task is in its life, as progress listeners see it."""

    PENDING = "pending"
    STARTING = "starting"
    IN_PROGRESS = "in_progress"
    COMPLETING = "completing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True, slots=True)
class ProgressUpdate:
    """One progress report about a task (an immutable value).

    Attributes:
        task_id: The task the update is about.
        status: The task's phase.
        progress_percent: 0–100.
        message: A short human-readable note, or ``None``.
        details: Extra data supplied by the reporter.
        timestamp: When the update was made (UTC).
    """

    task_id: str
    status: ProgressStatus
    progress_percent: float = 0.0
    message: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    timestamp: datetime = field(default_factory=_utc_now)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A named milestone of a task (an immutable value).

    Attributes:
        name: The milestone's name.
        timestamp: Unix time (seconds) when it was reached.
        data: Data attached by whoever added it.
    """

    name: str
    timestamp: float
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the checkpoint as ``{"name", "timestamp", "data"}``."""
        return {"name": self.name, "timestamp": self.timestamp, "data": dict(self.data)}
