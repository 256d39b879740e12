"""Stand-ins for what a ``MetricStore`` reads from outside: its clock and its runners.

Import them as ``from store_fakes import SteppedClock, StatsOnlyRunner`` (``tests/unit`` is on
the path of its tests).
"""

from __future__ import annotations

import time

from laios.execution.runners import RunnerStats


class SteppedClock:
    """A clock for ``MetricStore(clock=...)`` whose monotonic time moves only when a test sets
    ``now`` (durations are exact); wall time is the real one."""

    def __init__(self) -> None:
        self.now = 1000.0

    def perf_counter(self) -> float:
        return self.now

    def time(self) -> float:
        return time.time()


class StatsOnlyRunner:
    """The part of a runner the store reads: its stats (workers, abandoned threads)."""

    def __init__(self, max_workers: int, abandoned: int = 0) -> None:
        self.stats = RunnerStats(workers=max_workers, abandoned=abandoned)
