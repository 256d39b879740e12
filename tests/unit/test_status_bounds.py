"""/status never repeats an unbounded value: a running task's id and its tool's name are cut."""

from __future__ import annotations

from laios.execution.server import MAX_STATUS_TEXT, status_document
from laios.execution.store import MetricStore


class _Task:
    def __init__(self, task_id: str) -> None:
        self.id = task_id


def test_a_huge_task_id_and_tool_name_are_cut_in_the_status_document() -> None:
    store = MetricStore()
    scope = store.new_scope()
    name = "t" * 5000
    slot = store.tool_slot(name, True)
    store.task_submitted(scope, _Task("i" * 1_000_000), name, slot, running=True)
    document = status_document(store.snapshot())
    (running,) = document["running"]
    assert len(running["task_id"]) <= MAX_STATUS_TEXT
    assert running["task_id"].endswith("…")
    assert len(running["tool"]) <= MAX_STATUS_TEXT
    (tool,) = document["tools"]
    assert len(tool["tool"]) <= MAX_STATUS_TEXT
