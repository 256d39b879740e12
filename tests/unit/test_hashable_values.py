"""The immutable values handed to listeners and hooks can be hashed (kept in a set, used as a
key), as frozen dataclasses are: equal values hash equal."""

from __future__ import annotations

from laios.core.types import TaskResult
from laios.execution.monitor import ProgressStatus, ProgressTracker, ProgressUpdate
from laios.execution.retry import RetryDetails


def test_progress_updates_can_be_hashed() -> None:
    """A ProgressUpdate with details (a dict) hashes; equal updates hash equal, and a set of a
    history keeps each update once."""
    tracker = ProgressTracker()
    update = tracker.update_progress("t", ProgressStatus.IN_PROGRESS, 5, "m", {"rows": [1, 2]})
    again = tracker.get_progress("t")
    assert again == update
    assert again is not update
    assert hash(again) == hash(update)
    assert len({update, again, *tracker.get_history("t")}) == 1
    other = ProgressUpdate("t", "in_progress", 5.0, "m", {"rows": [3]}, update.timestamp)
    assert other != update  # (details still count for equality)
    assert len({update, other}) == 2


def test_retry_details_can_be_hashed() -> None:
    """RetryDetails, with its TaskResult, hashes; equal details hash equal."""
    result = TaskResult(task_id="t", success=False, error="busy", metadata={"outcome": "error"})

    def details() -> RetryDetails:
        return RetryDetails("t", "tool", 1, 0.5, 0.1, "error", None, "busy", result.model_copy())

    assert details() == details()
    assert hash(details()) == hash(details())
    assert len({details(), details()}) == 1
