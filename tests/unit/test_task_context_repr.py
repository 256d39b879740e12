"""``repr()`` of the handle a tool gets (``current_task()``) cuts a huge task id or tool name
as every message does: a tool logging its handle given an id of a million characters used to
write all of them."""

from __future__ import annotations

from typing import Any

from laios._text import SHOWN_NAME_CHARS
from laios.execution.task_context import TaskContext


class _Events:
    """Events that are never reported: only the handle's repr is read."""

    cancel_requested = False

    def progress(self, percent: float, message: str | None, details: dict[str, Any]) -> None:
        raise AssertionError("not reported")

    def checkpoint(self, name: str, data: Any) -> None:
        raise AssertionError("not reported")


def test_the_repr_of_a_handle_shows_its_id_and_tool() -> None:
    """An ordinary id and name are shown whole, quoted."""
    handle = TaskContext("task-1", "echo", _Events())
    assert repr(handle) == "TaskContext(task_id='task-1', tool_name='echo')"


def test_the_repr_of_a_handle_cuts_a_huge_id_and_tool_name() -> None:
    """An id (or a tool name) of a million characters is cut to the length a message shows,
    marked with an ellipsis."""
    handle = TaskContext("i" * 1_000_000, "n" * 1_000_000, _Events())
    shown = repr(handle)
    assert len(shown) < 3 * SHOWN_NAME_CHARS, len(shown)
    cut_id = "i" * (SHOWN_NAME_CHARS - 1) + "…"
    cut_name = "n" * (SHOWN_NAME_CHARS - 1) + "…"
    assert shown == f"TaskContext(task_id={cut_id!r}, tool_name={cut_name!r})"
