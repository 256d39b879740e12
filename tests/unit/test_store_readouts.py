"""What the store reads out while other threads write to it stays sane: no negative ages."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

from laios.execution.store import MetricStore


class HookedClock:
    """A monotonic clock that moves on by one second on each read, and runs ``hook`` once,
    right after the read it is set for: as if another thread got in just then."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.hook: Callable[[], None] | None = None

    def perf_counter(self) -> float:
        self.now += 1.0
        value = self.now
        hook, self.hook = self.hook, None
        if hook is not None:
            hook()
        return value

    def time(self) -> float:
        return 1_700_000_000.0 + self.now


def test_a_task_submitted_while_a_snapshot_is_taken_has_no_negative_age() -> None:
    """A task that starts between the moment a snapshot reads the clock and the moment it
    takes the lock shows as running for 0 seconds, never less."""
    clock = HookedClock()
    store = MetricStore(clock=clock)
    slot = store.tool_slot("fetch", True)

    def submit() -> None:
        store.task_submitted(None, SimpleNamespace(id="late"), "fetch", slot, running=True)

    clock.hook = submit
    running = store.snapshot().running
    clock.hook = submit
    running += store.running_snapshot()
    assert len(running) == 3  # (the first one, then it and the second)
    assert min(task.elapsed_seconds for task in running) >= 0.0
