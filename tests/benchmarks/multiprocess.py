"""What multiprocess mode costs, and what a worker killed with SIGKILL loses.

Usage::

    python tests/benchmarks/multiprocess.py [--kills N] [--interval S] [--quick]

- **SIGKILL loss**: a forked worker runs no-op tasks through an ``Executor`` as fast as it can
  (counting them in shared memory), with multiprocess mode on; it is killed with ``SIGKILL``
  at a random moment; the tasks it ran minus those its file kept are the loss, shown also as
  seconds of its work. Repeated ``--kills`` times.
- **Write**: one write of a process's file (read the store, encode, write, rename), for 10 and
  200 tools, against one render of the same store's ``/metrics`` (a ratio, same process).
- **Scrape**: ``render_metrics`` in multiprocess mode with 3 other processes' files, against
  the same registry rendered without the mode.

Not a pytest module; ``tests/unit/test_benchmark_smoke.py`` runs it with ``--quick``.
"""

from __future__ import annotations

import argparse
import fcntl
import multiprocessing
import os
import random
import signal
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

from prometheus_client import CollectorRegistry

from laios import Context, Task
from laios.execution import multiprocess
from laios.execution.executor import Executor
from laios.execution.prometheus import ensure_collector, render_metrics
from laios.execution.store import MetricStore
from laios.tools.base import create_simple_tool
from laios.tools.registry import ToolRegistry


def _fill(store: MetricStore, tools: int) -> None:
    for index in range(tools):
        name = f"tool_{index:03d}"
        slot = store.tool_slot(name, True)
        for outcome in ("success", "error"):
            for task in range(5):
                rec = store.task_submitted(
                    None, SimpleNamespace(id=f"{name}-{task}"), name, slot, running=False
                )
                store.task_started(rec)
                store.task_finished(rec, outcome=outcome, status=None, error_type="ValueError")


def _best_ms(call: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - started)
    return best * 1000


def _killed_worker(directory: Path, interval: float, ran: multiprocessing.Value) -> None:  # type: ignore[valid-type]
    multiprocess.disable()
    registry = CollectorRegistry()
    store = MetricStore()
    multiprocess.enable(directory, interval=interval, registry=registry, store=store)
    tools = ToolRegistry()
    tools.register_tool(create_simple_tool("noop", "Does nothing.", lambda: None))
    context = Context(session_id="s", user_id="u")
    with Executor(tools, store=store, prometheus_registry=registry) as executor:
        while True:
            executor.execute_task(Task(plan_id="p", description="n", tool_name="noop"), context)
            ran.value += 1  # type: ignore[attr-defined]


def sigkill_loss(kills: int, interval: float) -> None:
    """Kill a busy worker ``kills`` times; print what its file kept against what it ran."""
    context = multiprocessing.get_context("fork")
    losses, seconds = [], []
    for _ in range(kills):
        with tempfile.TemporaryDirectory() as name:
            directory = Path(name)
            ran = context.Value("q", 0, lock=False)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                worker = context.Process(target=_killed_worker, args=(directory, interval, ran))
                worker.start()
            time.sleep(interval * random.uniform(1.5, 3.5))
            first = ran.value
            started = time.perf_counter()
            time.sleep(0.2)
            rate = (ran.value - first) / (time.perf_counter() - started)
            os.kill(worker.pid or 0, signal.SIGKILL)
            worker.join()
            total = ran.value
            store, registry = MetricStore(), CollectorRegistry()
            ensure_collector(store, registry)
            multiprocess.enable(directory, interval=interval, registry=registry, store=store)
            text = render_metrics(registry).decode()
            multiprocess.disable()
            kept = sum(
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith('laios_tasks_total{outcome="success",tool="noop"}')
            )
            losses.append(total - kept)
            seconds.append((total - kept) / rate)
    print(
        f"SIGKILL, interval {interval:g} s, {kills} kills: lost {statistics.mean(losses):.0f} "
        f"tasks on average (max {max(losses):.0f}), i.e. {statistics.mean(seconds):.2f} s of "
        f"work on average, at most {max(seconds):.2f} s"
    )


def costs(repeat: int) -> None:
    """Print the cost of a write and of a scrape, against a plain render."""
    for tools in (10, 200):
        with tempfile.TemporaryDirectory() as name:
            _costs_for(tools, Path(name), repeat)


def _costs_for(tools: int, directory: Path, repeat: int) -> None:
    store, registry, plain = MetricStore(), CollectorRegistry(), CollectorRegistry()
    _fill(store, tools)
    ensure_collector(store, plain)
    export = multiprocess.enable(directory, interval=3600, registry=registry, store=store)
    assert export.path is not None
    held = []
    for other in range(3):  # three other processes' files, their locks held: alive
        (directory / f"laios-proc-{other}-x.json").write_bytes(export.path.read_bytes())
        lock = os.open(directory / f"laios-proc-{other}-x.lock", os.O_RDWR | os.O_CREAT)
        fcntl.flock(lock, fcntl.LOCK_EX)
        held.append(lock)
    render = _best_ms(lambda: render_metrics(plain), repeat)

    def write() -> None:
        store.task_retried(store.tool_slot("tool_000", True))  # a change to write
        export.write()

    written = _best_ms(write, repeat)
    size = export.path.stat().st_size
    scraped = _best_ms(lambda: render_metrics(registry), repeat)
    multiprocess.disable()
    for lock in held:
        os.close(lock)
    print(
        f"{tools} tools: a write {written:.2f} ms ({size / 1024:.0f} KiB), "
        f"{written / render:.2f}x a plain render ({render:.2f} ms); a scrape over 4 "
        f"processes' files {scraped:.2f} ms, {scraped / render:.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke test")
    args = parser.parse_args()
    if args.quick:
        args.kills, args.interval = 1, 0.1
    costs(3 if args.quick else 30)
    sigkill_loss(args.kills, args.interval)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
