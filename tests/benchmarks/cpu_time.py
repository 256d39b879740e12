"""What measuring CPU time costs a task: ``execute_task`` of a no-op tool on the inline road,
with ``measure_cpu_time=True`` (the default) against ``False``, interleaved in one process.

    python tests/benchmarks/cpu_time.py [--rounds N] [--calls N]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from laios import Context, Task
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.tools.base import BaseTool
from laios.tools.registry import ToolRegistry


class Noop(BaseTool):
    name = "noop"
    description = "Returns at once."

    def _execute(self, **kwargs: Any) -> int:
        return 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=3000)
    args = parser.parse_args()
    registry = ToolRegistry()
    registry.register_tool(Noop())
    context = Context(session_id="s", user_id="u")
    task = Task(plan_id="p", description="d", tool_name="noop", parameters={})
    executors = {
        measure: Executor(
            registry, store=MetricStore(), register_prometheus=False, measure_cpu_time=measure
        )
        for measure in (False, True)
    }
    times: dict[bool, list[float]] = {False: [], True: []}
    for round_ in range(args.rounds):
        for measure in (False, True) if round_ % 2 else (True, False):
            executor = executors[measure]
            started = time.perf_counter()
            for _ in range(args.calls):
                executor.execute_task(task, context)
            times[measure].append((time.perf_counter() - started) / args.calls * 1e6)
    off, on = statistics.median(times[False]), statistics.median(times[True])
    print(f"measure_cpu_time=False  {off:6.2f} µs/call")
    print(f"measure_cpu_time=True   {on:6.2f} µs/call  (+{on - off:.2f} µs, ratio {on / off:.3f})")
    for executor in executors.values():
        executor.shutdown()


if __name__ == "__main__":
    main()
