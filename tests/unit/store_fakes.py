"""Stand-ins for what a ``MetricStore`` reads from outside: its clock, its runners and its
listeners.

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


class ArmedClock:
    """A clock for ``MetricStore(clock=...)``: once armed, its next ``perf_counter()`` raises
    ``exc`` (as a Ctrl-C delivered in the executor's code there would); otherwise real time."""

    def __init__(self) -> None:
        self.armed: BaseException | None = None

    def time(self) -> float:
        return time.time()

    def perf_counter(self) -> float:
        exc, self.armed = self.armed, None
        if exc is not None:
            raise exc
        return time.perf_counter()


class StatsOnlyRunner:
    """The part of a runner the store reads: its stats (workers, busy workers, abandoned
    threads)."""

    def __init__(self, max_workers: int, abandoned: int = 0, busy: int = 0) -> None:
        self.stats = RunnerStats(workers=max_workers, busy=busy, abandoned=abandoned)


class Counted:
    """A (finish or progress) listener that counts the equality comparisons made against any
    ``Counted``, and how many events it heard."""

    comparisons = 0

    def __init__(self) -> None:
        self.heard = 0

    def __call__(self, event: object) -> None:
        self.heard += 1

    def __eq__(self, other: object) -> bool:
        Counted.comparisons += 1
        return self is other

    def __hash__(self) -> int:
        return id(self)


class Unhashable:
    """A listener equal to any other of the same name, and not hashable (as a callable
    dataclass instance); appends its name to ``heard`` for each event."""

    __hash__ = None  # type: ignore[assignment]

    def __init__(self, name: str, heard: list[str]) -> None:
        self.name = name
        self.heard = heard

    def __call__(self, event: object) -> None:
        self.heard.append(self.name)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Unhashable) and other.name == self.name
