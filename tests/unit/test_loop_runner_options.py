"""``LoopRunner`` refuses options of the wrong type at the call, naming the option and what was
given, as the other runners do, rather than fail its first call with an error about
internals."""

from __future__ import annotations

from typing import Any

import pytest

from laios.execution.runners import AsyncSlots, LoopRunner, LoopThread


@pytest.mark.parametrize(
    ("slots", "said"),
    [
        (5, "slots must be an AsyncSlots (the limit on async tools running at once), got int"),
        (
            None,
            "slots must be an AsyncSlots (the limit on async tools running at once), got NoneType",
        ),
        (
            AsyncSlots,
            "slots must be an instance, got the class AsyncSlots itself: pass an instance "
            "(AsyncSlots(...))",
        ),
    ],
)
def test_slots_of_another_type_are_refused(slots: Any, said: str) -> None:
    with pytest.raises(TypeError) as raised:
        LoopRunner(slots)
    assert str(raised.value) == said


@pytest.mark.parametrize(
    ("loop_thread", "said"),
    [
        (5, "loop_thread must be a LoopThread or None, got int"),
        ("laios-loop", "loop_thread must be a LoopThread or None, got str"),
        (
            LoopThread,
            "loop_thread must be an instance, got the class LoopThread itself: pass an "
            "instance (LoopThread(...))",
        ),
    ],
)
def test_a_loop_thread_of_another_type_is_refused(loop_thread: Any, said: str) -> None:
    with pytest.raises(TypeError) as raised:
        LoopRunner(AsyncSlots(1), loop_thread=loop_thread)
    assert str(raised.value) == said


def test_good_options_are_taken() -> None:
    thread = LoopThread()
    runner = LoopRunner(AsyncSlots(1), loop_thread=thread)
    assert runner.loop_thread is thread
    assert LoopRunner(AsyncSlots(1)).loop_thread is None
