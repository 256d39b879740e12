"""Where the time of one inline ``execute_task`` goes, step by step.

Usage::

    python tests/benchmarks/steps.py [--calls N] [--rounds N]

The inline road (no timeout, no callback, a plain tool: case P1 of ``run.py``) is run through
the executor's own methods, called in the order ``Executor._attempt`` calls them, with a
``perf_counter_ns()`` reading between steps. The cost of a reading is measured and subtracted.
Two parts of ``Job.run`` are timed on their own as well, on jobs prepared the same way: marking
the task running, and the finish. A plain ``execute_task`` runs alongside, so that the steps'
sum can be checked against the real call (the difference is the calls that tie the steps
together). Then the primitives the steps are made of are timed on their own.

The process is pinned to one CPU like ``run.py``. Figures are medians over rounds, in
nanoseconds per task. ``tests/unit/test_benchmark_smoke.py`` runs this with tiny sizes.
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

from laios.core.types import Task, TaskResult, _construct
from laios.execution._job import DONE, RUNNING

STEPS = (
    "find the tool, build the job (get_tool, Executor._new_job)",
    "record it as running (MetricStore.submit_record)",
    "run the tool and finish (Job.run)",
    "hand the result over",
)
PARTS = (
    "  of which: task status and started_at (Job._mark_running)",
    "  of which: finish: store, task fields, TaskResult (Job._conclude)",
)


def _prepared(bench: Bench, executor: Any, context: Any) -> Any:
    """A job recorded as running, as ``Executor._attempt`` makes it before running it."""
    task = bench.task()
    tool = executor.tool_registry.get_tool(task.tool_name)
    job = executor._new_job(task, tool, None, context, None, None, 0, True)
    job.phase = RUNNING
    executor._store.submit_record(job, True)
    return job


def _stepped(bench: Bench, executor: Any, context: Any, totals: list[int]) -> Any:
    clock = time.perf_counter_ns
    task = bench.task()
    t0 = clock()
    tool = executor.tool_registry.get_tool(task.tool_name)
    job = executor._new_job(task, tool, None, context, None, None, 0, True)
    t1 = clock()
    job.phase = RUNNING
    executor._store.submit_record(job, True)
    t2 = clock()
    job.run()
    t3 = clock()
    result = job.result
    job.result = None
    t4 = clock()
    totals[0] += t1 - t0
    totals[1] += t2 - t1
    totals[2] += t3 - t2
    totals[3] += t4 - t3
    return result


def _parts(bench: Bench, executor: Any, context: Any, totals: list[int]) -> None:
    clock = time.perf_counter_ns
    job = _prepared(bench, executor, context)
    t0 = clock()
    job._mark_running()
    t1 = clock()
    job.phase = DONE
    job.result = job._conclude("success", None, None, 0.0, None, {}, None)
    t2 = clock()
    totals[0] += t1 - t0
    totals[1] += t2 - t1


def _reading_cost(calls: int) -> float:
    clock = time.perf_counter_ns
    start = clock()
    for _ in range(calls):
        clock()
    return (clock() - start) / calls


def _timed(fn: Callable[[], object], calls: int) -> float:
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
        ("Lock acquire + release", lock_round),
        ("TaskResult without validation", lambda: _construct(TaskResult, dict(values))),
    ]
    return [
        (name, min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e9) for name, fn in cases
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000, help="tasks per round")
    parser.add_argument("--rounds", type=int, default=7, help="rounds (medians are reported)")
    args = parser.parse_args(argv)
    cpu = pin_to_one_cpu(None)
    bench = Bench()
    executor = bench.executor()
    context = bench.context
    calls = args.calls
    try:
        per_round: list[list[float]] = []
        part_rounds: list[list[float]] = []
        whole: list[float] = []
        for _ in range(args.rounds + 1):  # the first round warms up
            totals = [0] * len(STEPS)
            parts = [0] * len(PARTS)
            gc.collect()
            gc.disable()
            try:
                for _ in range(calls):
                    result = _stepped(bench, executor, context, totals)
                    assert result.success, result
                for _ in range(calls):
                    _parts(bench, executor, context, parts)
            finally:
                gc.enable()
            reading = _reading_cost(calls)
            per_round.append([t / calls - reading for t in totals])
            part_rounds.append([t / calls - reading for t in parts])
            whole.append(_timed(lambda: executor.execute_task(bench.task(), context), calls))
        per_round, part_rounds, whole = per_round[1:], part_rounds[1:], whole[1:]
        build = _timed(bench.task, calls)
    finally:
        executor.shutdown()

    steps = [statistics.median(r[i] for r in per_round) for i in range(len(STEPS))]
    total = statistics.median(whole)
    print(f"inline execute_task, step by step (CPU {cpu}, {calls} calls x {args.rounds} rounds)")
    print(f"{'step':66s} {'ns/task':>8s}")
    part_costs = [statistics.median(r[i] for r in part_rounds) for i in range(len(PARTS))]
    for name, ns in zip(STEPS, steps, strict=True):
        print(f"{name:66s} {ns:8.0f}")
        if name.endswith("(Job.run)"):
            for part, cost in zip(PARTS, part_costs, strict=True):
                print(f"{part:66s} {cost:8.0f}")
    print(f"{'sum of the steps':66s} {sum(steps):8.0f}")
    print(f"{'execute_task(Task(...)) minus Task(...)':66s} {total - build:8.0f}")
    print()
    print(f"{'primitive':66s} {'ns/call':>8s}")
    for name, ns in primitives(max(1000, calls * 5)):
        print(f"{name:66s} {ns:8.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
