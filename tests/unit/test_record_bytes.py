"""Task records are bounded in bytes: checkpoint data and progress details are kept as copies,
summarized to a budget, never as references to the tool's own objects."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from _scripts import ROOT, run_script

from laios.core.types import Context, Task
from laios.execution._records import (
    MAX_DATA_BYTES,
    MAX_DATA_ITEMS,
    MAX_DATA_STRING,
    ProgressStatus,
    ProgressUpdate,
    data_size,
    summarize,
    text_size,
)
from laios.execution.executor import Executor
from laios.execution.monitor import ExecutionMonitor
from laios.execution.server import status_document
from laios.execution.store import (
    MAX_CHECKPOINTS_PER_TASK,
    MAX_PROGRESS_HISTORY,
    MAX_RECORD_BYTES,
    MetricStore,
    TaskRecord,
)
from laios.execution.task_context import current_task
from laios.tools.base import BaseTool
from laios.tools.registry import ToolRegistry

#: Traced memory that 3,000 tasks with 100 kB blobs may add (it was about 600 MB).
MAX_GROWTH_MB = 30

_MEMORY_SCRIPT = """
    import gc
    import json
    import tracemalloc

    from laios.core.types import Context, Task
    from laios.execution.executor import Executor
    from laios.execution.store import MetricStore
    from laios.execution.task_context import current_task
    from laios.tools.base import BaseTool
    from laios.tools.registry import ToolRegistry


    class Blob(BaseTool):
        name = "blob"
        description = "Adds a checkpoint and a progress update, each with a 100 kB bytearray."

        def _execute(self, **kwargs):
            task = current_task()
            task.checkpoint("x", {"blob": bytearray(100_000)})
            task.progress(50, "m", blob=bytearray(100_000))
            return "ok"


    def run(executor, count):
        for _ in range(count):
            task = Task(plan_id="p", description="blob", tool_name="blob")
            result = executor.execute_task(task, Context(session_id="s", user_id="u"))
            assert result.success, result.error


    tools = ToolRegistry()
    tools.register_tool(Blob())
    with Executor(tools, store=MetricStore(), register_prometheus=False) as executor:
        run(executor, 20)  # warm up: first-use caches are not the records' cost
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        run(executor, 3000)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
        report = {"grown": grown, "checkpoints": executor.get_all_metrics()[-1].checkpoints}
        print(json.dumps(report, default=lambda value: type(value).__name__))
"""


def _plain(value: Any) -> Any:
    """``value`` as JSON would round-trip it (for comparing what users see)."""
    return json.loads(json.dumps(value))


def _record(store: MetricStore) -> TaskRecord:
    slot = store.tool_slot("tool", True)
    task = SimpleNamespace(id="t-1")
    return store.task_submitted(store.new_scope(), task, "tool", slot, running=True)


class Stash(BaseTool):
    """Adds a checkpoint and reports progress with the dicts it is given, then mutates them."""

    name = "stash"
    description = "Checkpoints and reports dicts, then changes them."

    def _execute(self, **kwargs: Any) -> Any:
        task = current_task()
        assert task is not None
        data = kwargs["data"]
        task.checkpoint("stashed", data)
        task.progress(40, "stashing", **data)
        data["rows"] = -1
        data["nested"]["inner"].append("late")
        data["added"] = True
        return "ok"


@pytest.fixture
def stash_executor() -> Iterator[Callable[[MetricStore], Executor]]:
    """Build executors running the ``stash`` tool; all shut down after the test."""
    built: list[Executor] = []

    def make(store: MetricStore) -> Executor:
        tools = ToolRegistry()
        tools.register_tool(Stash())
        executor = Executor(tools, store=store, register_prometheus=False)
        built.append(executor)
        return executor

    yield make
    for executor in built:
        executor.shutdown(wait=True)


# -- (a) memory ------------------------------------------------------------------------------


def test_blobs_in_checkpoints_and_progress_do_not_grow_memory(tmp_path: Path) -> None:
    """3,000 tasks each checkpointing and reporting a 100 kB bytearray add under 30 MB."""
    script = tmp_path / "blobs.py"
    script.write_text(textwrap.dedent(_MEMORY_SCRIPT), encoding="utf-8")
    run = run_script(script, ROOT)
    assert run.returncode == 0, run.describe()
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["grown"] < MAX_GROWTH_MB * 1_000_000, report["grown"]
    names = [point["name"] for point in report["checkpoints"]]
    assert names == ["started", "x", "finished"]
    assert report["checkpoints"][1]["data"] == {"blob": "<bytearray 100000 bytes>"}


# -- (b) small plain data is unchanged -------------------------------------------------------

SMALL = {
    "rows": 3,
    "ratio": 0.5,
    "done": True,
    "skipped": False,
    "note": "loaded the first page",
    "missing": None,
    "big": 2**62,
    "negative": -7,
}


def test_small_plain_checkpoint_data_is_kept_equal(store: MetricStore) -> None:
    """A dict of str/int/float/bool/None values is kept equal, with its key order."""
    rec = _record(store)
    point = store.add_checkpoint(rec, "loaded", dict(SMALL))
    assert point.data == SMALL
    assert list(point.data) == list(SMALL)
    assert rec.checkpoints[0].data == SMALL


def test_small_nested_data_is_kept_equal(store: MetricStore) -> None:
    """Small lists, tuples, sets and nested dicts keep their values and types."""
    data = {
        "pages": [1, 2, 3],
        "span": (0, 10),
        "tags": {"a", "b"},
        "frozen": frozenset({1}),
        "meta": {"source": "s3", "sizes": [10, 20], "deep": {"x": {"y": [None]}}},
        "raw": b"abc",
        "buffer": bytearray(b"xyz"),
        7: "int key",
    }
    rec = _record(store)
    point = store.add_checkpoint(rec, "nested", data)
    assert point.data == data
    assert type(point.data["span"]) is tuple
    assert type(point.data["tags"]) is set
    assert type(point.data["frozen"]) is frozenset
    assert point.data["buffer"] is not data["buffer"]


def test_small_plain_progress_details_are_kept_equal(store: MetricStore) -> None:
    """Progress details of plain values are kept equal, through every reader."""
    rec = _record(store)
    update = ProgressUpdate("t-1", ProgressStatus.IN_PROGRESS, 30.0, "reading", dict(SMALL))
    seen: list[ProgressUpdate] = []
    store.add_progress_listener(seen.append)
    store.record_progress(update, rec)
    (stored,) = [u for u in store.progress_history("t-1") if u.message == "reading"]
    assert stored.details == SMALL
    assert seen[0].details == SMALL
    assert store.latest_progress("t-1") == update


def test_the_checkpoint_listener_is_given_the_data_as_passed(store: MetricStore) -> None:
    """The listener (the task span) sees the caller's data itself, read while it is told (a
    copy would read all of it); the record keeps the summary."""
    rec = _record(store)
    seen: list[Any] = []
    rec.checkpoint_listener = lambda _rec, name, _when, data: seen.append((name, data))
    data = {"note": "y" * 5000, "rows": 3}
    point = store.add_checkpoint(rec, "loaded", data)
    assert seen == [("loaded", data)]
    assert seen[0][1] is data
    assert point.data == {"note": "y" * (MAX_DATA_STRING - 1) + "…", "rows": 3}


def test_checkpoint_name_only_keeps_empty_data(store: MetricStore) -> None:
    """A checkpoint without data has ``{}``, as before."""
    rec = _record(store)
    assert store.add_checkpoint(rec, "bare", None).data == {}
    assert store.add_checkpoint(rec, "empty", {}).data == {}


# -- (c) big values are summarized within the budget -------------------------------------------


class Opaque:
    """An object the store does not know: kept as a short repr."""

    def __repr__(self) -> str:
        return "Opaque(" + "z" * 10_000 + ")"


class BadRepr:
    """An object whose repr raises."""

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth):
        value = {"down": value}
    return value


HUGE = {
    "string": "s" * 1_000_000,
    "list": list(range(1_000_000)),
    "dict": {f"k{i}": i for i in range(100_000)},
    "bytes": b"b" * 100_000,
    "bytearray": bytearray(100_000),
    "memoryview": memoryview(b"m" * 5_000),
    "nested": _nested(100),
    "opaque": Opaque(),
    "bad": BadRepr(),
    "int": 10**400,
    "set": set(range(10_000)),
    "k" * 10_000: "long key",
}


@pytest.mark.parametrize("name", list(HUGE), ids=lambda name: name[:12])
def test_each_huge_value_is_summarized_within_the_budget(store: MetricStore, name: str) -> None:
    """Each kind of big value alone is summarized to at most the per-value budget."""
    rec = _record(store)
    point = store.add_checkpoint(rec, "huge", {name: HUGE[name]})
    assert data_size(point.data) <= MAX_DATA_BYTES
    assert summarize({name: HUGE[name]}) == (point.data, data_size(point.data))
    assert len(json.dumps(point.data, default=repr)) <= MAX_DATA_BYTES
    assert all(len(key) <= MAX_DATA_STRING for key in point.data)
    for value in point.data.values():
        assert isinstance(value, (str, int)) or value is not HUGE[name]


def test_huge_values_are_summarized_readably(store: MetricStore) -> None:
    """Strings are cut, bytes described, containers cut with a count of what was left out."""
    rec = _record(store)
    data = store.add_checkpoint(rec, "a", {"string": "s" * 1_000_000}).data
    assert data["string"] == "s" * (MAX_DATA_STRING - 1) + "…"
    data = store.add_checkpoint(rec, "b", {"blob": bytearray(102_400)}).data
    assert data == {"blob": "<bytearray 102400 bytes>"}
    data = store.add_checkpoint(rec, "c", {"raw": b"b" * 100_000}).data
    assert data == {"raw": "<bytes 100000 bytes>"}
    data = store.add_checkpoint(rec, "d", {"list": list(range(1_000_000))}).data
    *kept, more = data["list"]
    assert 10 < len(kept) <= MAX_DATA_ITEMS
    assert kept == list(range(len(kept)))
    assert more == f"… {1_000_000 - len(kept)} more items"
    data = store.add_checkpoint(rec, "d2", {"flags": [None] * 1000}).data
    assert data["flags"] == [None] * MAX_DATA_ITEMS + [f"… {1000 - MAX_DATA_ITEMS} more items"]
    data = store.add_checkpoint(rec, "e", {"opaque": Opaque(), "bad": BadRepr()}).data
    assert data["opaque"].startswith("Opaque(zzz")
    assert len(data["opaque"]) <= MAX_DATA_STRING
    assert data["bad"] == "<BadRepr object>"
    data = store.add_checkpoint(rec, "f", {"int": 10**400}).data
    assert data == {"int": "<int of 1329 bits>"}


def test_many_keys_are_cut_with_a_count(store: MetricStore) -> None:
    """A dict of 100,000 keys keeps its first keys and says how many were left out."""
    rec = _record(store)
    data = store.add_checkpoint(rec, "keys", {f"k{i}": i for i in range(100_000)}).data
    kept = [key for key in data if key != "…"]
    assert kept == [f"k{i}" for i in range(len(kept))]
    assert data["…"] == f"{100_000 - len(kept)} more items"
    assert data_size(data) <= MAX_DATA_BYTES


def test_deep_nesting_is_cut(store: MetricStore) -> None:
    """Nesting past the depth bound is replaced by a description of the container."""
    rec = _record(store)
    data = store.add_checkpoint(rec, "deep", _nested(100)).data
    text = json.dumps(data)
    assert text.count("down") < 12
    assert "<dict of 1 items>" in text


def test_all_huge_values_together_stay_within_the_budget(store: MetricStore) -> None:
    """One checkpoint, or one update, holding every kind of huge value keeps the budget."""
    rec = _record(store)
    point = store.add_checkpoint(rec, "huge", dict(HUGE))
    assert data_size(point.data) <= MAX_DATA_BYTES
    assert point.data["…"].endswith("more items")
    update = ProgressUpdate("t-1", ProgressStatus.IN_PROGRESS, 1.0, None, dict(HUGE))
    store.record_progress(update, rec)
    details = store.latest_progress("t-1").details  # type: ignore[union-attr]
    assert details == point.data


def test_a_record_keeps_a_bounded_number_of_bytes(store: MetricStore) -> None:
    """Past the record's byte budget, checkpoints are counted but not kept, and only the
    newest progress updates that fit are."""
    rec = _record(store)
    big = {f"k{i}": "v" * 200 for i in range(20)}
    for index in range(MAX_CHECKPOINTS_PER_TASK):
        store.add_checkpoint(rec, f"c{index}", big)
        rec_update = ProgressUpdate("t-1", ProgressStatus.IN_PROGRESS, 1.0, "m" * 1000, big)
        store.record_progress(rec_update, rec)
    kept = sum(text_size(p.name) + data_size(p.data) for p in rec.checkpoints)
    assert kept == rec.checkpoints_size <= MAX_RECORD_BYTES
    assert len(rec.checkpoints) + rec.checkpoints_dropped == MAX_CHECKPOINTS_PER_TASK
    assert rec.checkpoints_dropped > 0
    history = [u for u in store.progress_history("t-1") if u.message]
    assert 1 <= len(history) < MAX_PROGRESS_HISTORY
    size = sum(text_size(u.message or "") + data_size(u.details) for u in history)
    assert size <= MAX_RECORD_BYTES
    assert size + text_size("m" * 1000) + data_size(history[0].details) > MAX_RECORD_BYTES


def test_small_checkpoints_and_updates_keep_the_count_bounds(store: MetricStore) -> None:
    """Small checkpoints and updates are still kept up to 256 and 100 per record."""
    rec = _record(store)
    for index in range(300):
        store.add_checkpoint(rec, f"checkpoint {index}", None)
        details = {"done": index, "total": 300}
        update = ProgressUpdate("t-1", ProgressStatus.IN_PROGRESS, index / 3, f"u{index}", details)
        store.record_progress(update, rec)
    assert len(rec.checkpoints) == MAX_CHECKPOINTS_PER_TASK
    assert rec.checkpoints_dropped == 300 - MAX_CHECKPOINTS_PER_TASK
    history = [u.message for u in store.progress_history("t-1") if u.message]
    assert history == [f"u{i}" for i in range(300 - MAX_PROGRESS_HISTORY, 300)]


def test_progress_of_an_id_without_a_record_is_summarized() -> None:
    """Updates about ids no executor knows are summarized and bounded the same way."""
    monitor = ExecutionMonitor(MetricStore())
    tracker = monitor.progress_tracker
    for _ in range(MAX_PROGRESS_HISTORY):
        tracker.update_progress("free", ProgressStatus.IN_PROGRESS, 5, "m", {"blob": b"x" * 10**6})
    history = tracker.get_history("free")
    assert history[-1].details == {"blob": "<bytes 1000000 bytes>"}
    assert len(history) == MAX_PROGRESS_HISTORY


# -- (d) copies, not references ----------------------------------------------------------------


def test_mutating_the_dict_after_checkpoint_does_not_change_the_record(
    store: MetricStore, stash_executor: Callable[..., Executor], context: Context
) -> None:
    """The tool changing its dicts after checkpoint() and progress() changes no record."""
    executor = stash_executor(store)
    data = {"rows": 3, "nested": {"inner": ["a"]}}
    task = Task(plan_id="p", description="stash", tool_name="stash", parameters={"data": data})
    result = executor.execute_task(task, context)
    assert result.success, result.error
    metrics = executor.get_metrics(task.id)
    assert metrics is not None
    (point,) = [c for c in metrics.checkpoints if c["name"] == "stashed"]
    assert point["data"] == {"rows": 3, "nested": {"inner": ["a"]}}
    (update,) = [u for u in store.progress_history(task.id) if u.message == "stashing"]
    assert update.details == {"rows": 3, "nested": {"inner": ["a"]}}


def test_mutating_after_add_checkpoint_does_not_change_the_record(store: MetricStore) -> None:
    """Nested containers are copied too."""
    rec = _record(store)
    data: dict[str, Any] = {"items": [1, 2], "meta": {"k": "v"}, "buffer": bytearray(b"ab")}
    store.add_checkpoint(rec, "copied", data)
    data["items"].append(3)
    data["meta"]["k"] = "changed"
    data["buffer"][0] = 0
    data["new"] = 1
    assert rec.checkpoints[0].data == {"items": [1, 2], "meta": {"k": "v"}, "buffer": b"ab"}


# -- (e) what readers show ---------------------------------------------------------------------


def test_get_metrics_and_status_show_names_and_small_data(
    executor: Executor, make_task: Any, context: Context
) -> None:
    """get_metrics shows checkpoint names and small data; /status the progress message."""
    task = make_task("progress")
    assert executor.execute_task(task, context).success
    metrics = executor.get_metrics(task.id)
    assert metrics is not None
    assert [c["name"] for c in metrics.checkpoints] == ["started", "loaded", "saved", "finished"]
    assert metrics.checkpoints[1]["data"] == {"rows": 3}
    assert metrics.to_dict()["checkpoints"][1]["data"] == {"rows": 3}
    history = ExecutionMonitor(executor.store).get_progress_history(task.id)
    (update,) = [u for u in history if u.message == "halfway"]
    assert update.details == {"step": 1}


def test_status_shows_the_progress_of_a_task_reporting_blobs(store: MetricStore) -> None:
    """/status of a running task with a blob in its details shows percent and message."""
    rec = _record(store)
    store.add_checkpoint(rec, "x", {"blob": bytearray(100_000)})
    update = ProgressUpdate(
        "t-1", ProgressStatus.IN_PROGRESS, 50.0, "m", {"blob": bytearray(100_000)}
    )
    store.record_progress(update, rec)
    (running,) = status_document(store.snapshot())["running"]
    assert (running["progress_percent"], running["message"]) == (50.0, "m")
    assert _plain(rec.checkpoints[0].to_dict()["data"]) == {"blob": "<bytearray 100000 bytes>"}
