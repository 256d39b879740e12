"""Where the time of one inline ``execute_task`` goes, step by step.

Usage::

    python tests/benchmarks/steps.py [--calls N] [--rounds N]

The inline road (a plain synchronous tool, no timeout, no callback, no SDK: case P1 of
``run.py``) is taken apart into public pieces, run in the order an inline run goes through
them, with a ``perf_counter_ns()`` reading between pieces (the cost of a reading is measured
and subtracted):

* build the ``Task`` (both sides of P1 do);
* find the tool (``ToolRegistry.get_tool``);
* the tool's aggregate slot (``MetricStore.tool_slot``);
* record the task as running (``MetricStore.task_submitted(..., running=True)``);
* run the tool (build a ``laios.execution.runners.ToolCall`` and ``call_tool`` it, with a
  minimal events object);
* record the finish (``MetricStore.task_finished``);
* build the ``TaskResult`` (``TaskResult(...)``, validated: the executor builds its result
  without validation, which no public constructor does as cheaply; ``model_construct`` is
  slower still, see the primitives, so this step reads a little more than the executor pays).

A whole ``execute_task(Task(...))`` is timed alongside, on the same executor: what it costs
beyond the sum of the pieces is the rest of the executor's work (its job object, the task's
``status`` and timestamps, the callback and span checks, the calls between the pieces). The
pooled road's record path (queued, then ``MetricStore.task_started``) is timed for comparison,
outside the sum. Then the primitives the pieces are made of are timed on their own.

The process is pinned to one CPU like ``run.py``. Figures are medians over rounds (the first
round warms up and is not counted), in microseconds per task, with each step's share of the
whole ``execute_task``. ``tests/unit/test_benchmark_smoke.py`` runs this with tiny sizes.
"""

from __future__ import annotations

import argparse
import contextvars
import gc
import statistics
import sys
import threading
import time
import timeit
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import Bench, pin_to_one_cpu

from laios.core.types import Task, TaskResult, TaskStatus
from laios.execution.runners import RawOutcome, Refusal, ToolCall, call_tool

STEPS = (
    "build the Task (Task(...))",
    "find the tool (registry.get_tool)",
    "the tool's slot (store.tool_slot)",
    "record it as running (store.task_submitted, running=True)",
    "run the tool (ToolCall + runners.call_tool)",
    "record the finish (store.task_finished)",
    "build the result (TaskResult(...))",
)
POOLED = "pooled road: queued, then started (task_submitted + task_started)"
SUM = "sum of the steps"
WHOLE = "execute_task(Task(...)), whole"
REST = "the rest (job, task fields, checks, calls between the steps)"

_COMPLETED = TaskStatus.COMPLETED


class Events:
    """The least a runner reports to: every event accepted, nothing recorded."""

    cancel_requested = False

    def started(self) -> bool:
        return True

    def progress(self, percent: float, message: str | None, details: dict[str, Any]) -> None:
        pass

    def checkpoint(self, name: str, data: dict[str, Any] | None) -> None:
        pass

    def finished(self, outcome: RawOutcome) -> None:
        pass

    def refused(self, refusal: Refusal) -> None:
        pass


class Road:
    """The public pieces of an inline run over one executor's registry, store and scope."""

    def __init__(self, bench: Bench, executor: Any) -> None:
        self.bench = bench
        self.registry = executor.tool_registry
        self.store = executor.store
        self.scope = executor.task_monitor.scope
        self.events = Events()

    def stepped(self, totals: list[int]) -> TaskResult:
        """One run, piece by piece, adding each piece's nanoseconds to ``totals``."""
        clock = time.perf_counter_ns
        store, events = self.store, self.events
        t0 = clock()
        task = self.bench.task()
        t1 = clock()
        name = task.tool_name
        tool = self.registry.get_tool(name)
        t2 = clock()
        slot = store.tool_slot(name, tool is not None)
        t3 = clock()
        rec = store.task_submitted(self.scope, task, name, slot, running=True)
        t4 = clock()
        outcome = call_tool(ToolCall(task.id, name, task.parameters, tool), events)
        t5 = clock()
        store.task_finished(rec, "success", _COMPLETED)
        t6 = clock()
        result = TaskResult(
            task_id=rec.task_id,
            success=outcome.error is None,
            output=outcome.value,
            error=None,
            logs=[],
            execution_time_seconds=rec.execution_time,
            metadata={"tool_name": name, "outcome": "success"},
        )
        t7 = clock()
        totals[0] += t1 - t0
        totals[1] += t2 - t1
        totals[2] += t3 - t2
        totals[3] += t4 - t3
        totals[4] += t5 - t4
        totals[5] += t6 - t5
        totals[6] += t7 - t6
        return result

    def pooled_record(self) -> int:
        """Nanoseconds of the pooled road's record path: submitted queued, then started."""
        clock = time.perf_counter_ns
        store = self.store
        task = self.bench.task()
        name = task.tool_name
        slot = store.tool_slot(name, True)
        t0 = clock()
        rec = store.task_submitted(self.scope, task, name, slot, running=False)
        store.task_started(rec)
        t1 = clock()
        store.task_finished(rec, "success", _COMPLETED)
        return t1 - t0


def _reading_cost(calls: int) -> float:
    clock = time.perf_counter_ns
    start = clock()
    for _ in range(calls):
        clock()
    return (clock() - start) / calls


def _timed(fn: Callable[[], object], calls: int) -> float:
    """Nanoseconds per call of ``fn`` over ``calls`` calls (collector off)."""
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter_ns()
        for _ in range(calls):
            fn()
        return (time.perf_counter_ns() - start) / calls
    finally:
        gc.enable()


def primitives(number: int) -> list[tuple[str, float]]:
    """Nanoseconds per call of the primitives the steps are made of."""
    utc = timezone.utc
    var: contextvars.ContextVar[int] = contextvars.ContextVar("var")
    lock = threading.Lock()
    values = {
        "task_id": "x",
        "success": True,
        "output": None,
        "error": None,
        "logs": [],
        "execution_time_seconds": 0.0,
        "metadata": {},
    }

    def context_var() -> None:
        var.reset(var.set(1))

    def lock_round() -> None:
        lock.acquire()
        lock.release()

    cases: list[tuple[str, Callable[[], object]]] = [
        (
            "Task(...) (both sides build one)",
            lambda: Task(plan_id="p", description="d", tool_name="noop"),
        ),
        ("datetime.now(timezone.utc)", lambda: datetime.now(utc)),
        ("time.time() / time.perf_counter()", time.perf_counter),
        ("time.thread_time() (measure_cpu_time=True)", time.thread_time),
        ("ContextVar set + reset", context_var),
        ("contextvars.copy_context() (pooled road)", contextvars.copy_context),
        ("Lock acquire + release", lock_round),
        ("TaskResult.model_construct(...)", lambda: TaskResult.model_construct(**values)),
        ("TaskResult(...) (validated)", lambda: TaskResult(**values)),
    ]
    return [
        (name, min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e9) for name, fn in cases
    ]


def _row(name: str, us: float, whole: float | None = None) -> str:
    share = "" if whole is None else f"{100 * us / whole:6.1f}%"
    return f"{name:68s} {us:8.2f} {share:>7s}".rstrip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000, help="tasks per round")
    parser.add_argument("--rounds", type=int, default=7, help="rounds (medians are reported)")
    args = parser.parse_args(argv)
    if args.calls < 1 or args.rounds < 1:
        parser.error("--calls and --rounds must be at least 1")
    cpu = pin_to_one_cpu(None)
    bench = Bench()
    executor = bench.executor()
    road = Road(bench, executor)
    context = bench.context
    calls = args.calls
    try:
        per_round: list[list[float]] = []
        pooled: list[float] = []
        whole: list[float] = []
        for _ in range(args.rounds + 1):  # the first round warms up
            totals = [0] * len(STEPS)
            pooled_ns = 0
            gc.collect()
            gc.disable()
            try:
                for _ in range(calls):
                    result = road.stepped(totals)
                    assert result.success, result
                for _ in range(calls):
                    pooled_ns += road.pooled_record()
            finally:
                gc.enable()
            reading = _reading_cost(calls)
            per_round.append([t / calls - reading for t in totals])
            pooled.append(pooled_ns / calls - reading)
            whole.append(_timed(lambda: executor.execute_task(bench.task(), context), calls))
        per_round, pooled, whole = per_round[1:], pooled[1:], whole[1:]
    finally:
        executor.shutdown()

    steps = [statistics.median(r[i] for r in per_round) / 1e3 for i in range(len(STEPS))]
    total = statistics.median(whole) / 1e3
    print(f"inline execute_task, step by step (CPU {cpu}, {calls} calls x {args.rounds} rounds)")
    print(f"{'step':68s} {'µs/task':>8s} {'share':>7s}")
    for name, us in zip(STEPS, steps, strict=True):
        print(_row(name, us, total))
    print(_row(SUM, sum(steps), total))
    print(_row(REST, total - sum(steps), total))
    print(_row(WHOLE, total, total))
    print(_row(POOLED, statistics.median(pooled) / 1e3))
    print()
    print(f"{'primitive':68s} {'ns/call':>8s}")
    for name, ns in primitives(max(1000, calls * 5)):
        print(f"{name:68s} {ns:8.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
