"""Progress listeners of a store: adding and removing one costs the same however many there
are, and a store holds at most ``MAX_PROGRESS_LISTENERS``, so a program that adds one per task
and never removes it fails loudly at the limit instead of slowing every update for ever."""

from __future__ import annotations

import pytest
from store_fakes import Counted, Unhashable

from laios.execution.monitor import ExecutionMonitor, ProgressStatus
from laios.execution.store import MAX_PROGRESS_LISTENERS, MetricStore


def test_adding_and_removing_a_listener_compares_it_with_no_other() -> None:
    """With hundreds of listeners, adding or removing one compares it with none of them (a
    hash lookup): the cost does not grow with their number."""
    store = MetricStore()
    many = [Counted() for _ in range(MAX_PROGRESS_LISTENERS - 1)]
    for listener in many:
        store.add_progress_listener(listener)
    Counted.comparisons = 0
    late = Counted()
    store.add_progress_listener(late)
    store.remove_progress_listener(many[0])
    store.remove_progress_listener(late)
    assert Counted.comparisons == 0


def test_every_listener_hears_an_update_once() -> None:
    """Listeners added, one removed and one added twice: each listener still there hears
    each update once, in the order they were added."""
    monitor = ExecutionMonitor()
    order: list[int] = []
    listeners = [lambda update, n=n: order.append(n) for n in range(5)]
    for listener in listeners:
        monitor.add_progress_listener(listener)
    monitor.add_progress_listener(listeners[3])
    monitor.remove_progress_listener(listeners[1])
    monitor.update_task_progress("t", 10)
    assert order == [0, 2, 3, 4]
    monitor.add_progress_listener(listeners[1])
    monitor.progress_tracker.update_progress("t", ProgressStatus.COMPLETED, 100)
    assert order == [0, 2, 3, 4, 0, 2, 3, 4, 1]


def test_a_listener_beyond_the_limit_is_refused_saying_how_to_stay_within_it() -> None:
    """One listener more than ``MAX_PROGRESS_LISTENERS`` is refused with a ValueError that
    names the limit and the removal; once one is removed, another may be added."""
    store = MetricStore()
    listeners = [Counted() for _ in range(MAX_PROGRESS_LISTENERS)]
    for listener in listeners:
        store.add_progress_listener(listener)
    store.add_progress_listener(listeners[0])  # (added already: no new listener)
    with pytest.raises(ValueError, match=rf"{MAX_PROGRESS_LISTENERS}.*remove_progress_listener"):
        store.add_progress_listener(Counted())
    with pytest.raises(ValueError, match="remove_progress_listener"):
        ExecutionMonitor(store).add_progress_listener(Counted())
    store.remove_progress_listener(listeners[0])
    extra = Counted()
    store.add_progress_listener(extra)
    ExecutionMonitor(store).update_task_progress("t", 50)
    assert extra.heard == 1
    assert listeners[0].heard == 0


def test_an_unhashable_listener_is_still_told_apart_by_equality() -> None:
    """A listener that cannot be hashed is added, found equal to another and removed as
    before: added twice (or an equal one), it is called once; an equal one removes it."""
    store = MetricStore()
    heard: list[str] = []
    store.add_progress_listener(Unhashable("a", heard))
    store.add_progress_listener(Unhashable("a", heard))
    store.add_progress_listener(Unhashable("b", heard))
    monitor = ExecutionMonitor(store)
    monitor.update_task_progress("t", 10)
    assert heard == ["a", "b"]
    store.remove_progress_listener(Unhashable("a", heard))
    monitor.update_task_progress("t", 20)
    assert heard == ["a", "b", "b"]
