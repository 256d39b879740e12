"""A listener added to a store twice is called once per event, as ``logging`` treats a handler
added twice: a setup function run twice (a reloaded module, a test fixture, an app factory
called per worker) used to count every task twice in the user's own metrics, and one removal
then took both additions back."""

from __future__ import annotations

from laios import Context, Task
from laios.execution.executor import Executor
from laios.execution.store import FinishedTask, MetricStore
from laios.execution.task_context import current_task
from laios.tools.base import create_simple_tool
from laios.tools.registry import ToolRegistry


def run_one(store: MetricStore) -> None:
    def tool() -> str:
        task = current_task()
        assert task is not None
        task.progress(50, "halfway")
        return "done"

    registry = ToolRegistry()
    registry.register_tool(create_simple_tool("halves", "Reports half its work.", tool))
    with Executor(registry, store=store, register_prometheus=False) as executor:
        task = Task(plan_id="p", description="d", tool_name="halves")
        result = executor.execute_task(task, Context(session_id="s", user_id="u"))
    assert result.success, result.error


def test_a_finish_listener_added_twice_is_called_once_and_listed_once() -> None:
    store = MetricStore()
    ended: list[FinishedTask] = []
    store.add_finish_listener(ended.append)
    store.add_finish_listener(ended.append)  # a bound method equal to the first
    assert store.finish_listeners == (ended.append,)
    run_one(store)
    assert len(ended) == 1
    store.remove_finish_listener(ended.append)
    assert store.finish_listeners == ()


def test_a_progress_listener_added_twice_is_called_once_per_update() -> None:
    store = MetricStore()
    updates: list[object] = []
    store.add_progress_listener(updates.append)
    store.add_progress_listener(updates.append)
    run_one(store)
    once = len(updates)
    assert once >= 1
    store.remove_progress_listener(updates.append)
    run_one(store)
    assert len(updates) == once
    # Added once more after its removal, it is called again, once.
    store.add_progress_listener(updates.append)
    run_one(store)
    assert len(updates) == 2 * once
