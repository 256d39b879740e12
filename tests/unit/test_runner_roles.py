"""The executor's ``runner`` runs synchronous tools off the caller's thread: the runners made
for other roles (``InlineRunner``, which runs a tool on the caller's thread, and
``LoopRunner``, which runs only coroutine tools) are refused at the constructor, saying what
to pass, rather than run tasks with no timeout enforced and the event loop blocked, or fail
every synchronous tool with an error about internals."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from laios.execution.executor import Executor
from laios.execution.runners import AsyncSlots, InlineRunner, LoopRunner, LoopThread
from laios.execution.store import MetricStore
from laios.tools.registry import ToolRegistry


@pytest.mark.parametrize(
    "make",
    [
        InlineRunner,
        lambda: LoopRunner(AsyncSlots(2)),
        lambda: LoopRunner(AsyncSlots(2), LoopThread()),
    ],
    ids=["InlineRunner", "LoopRunner", "LoopRunner-thread"],
)
def test_a_runner_made_for_another_role_is_refused(
    make: Callable[[], InlineRunner | LoopRunner],
) -> None:
    runner = make()
    with pytest.raises(TypeError) as raised:
        Executor(ToolRegistry(), store=MetricStore(), register_prometheus=False, runner=runner)
    message = str(raised.value)
    assert type(runner).__name__ in message
    assert "ThreadRunner" in message
    assert not runner.closed  # (refused: still the caller's, untouched)
