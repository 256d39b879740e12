"""The inline runner: a synchronous tool runs on the caller's own thread.

Used for a synchronous tool when there is no timeout to enforce: no thread hop at all. Nothing
can interrupt the call (a thread cannot be stopped from outside), so :meth:`abandon` is never
needed; ``cancel_task`` only asks the tool to stop, as on a worker thread.
"""

from __future__ import annotations

from laios.execution._checks import switch
from laios.execution._runners.base import (
    Handle,
    Refusal,
    RunEvents,
    RunnerStats,
    StopResult,
    ToolCall,
)
from laios.execution._runners.invoke import call_tool_here

__all__ = ["InlineRunner"]


class InlineRunner:
    """Runs each call to its end inside :meth:`submit`, on the calling thread."""

    name = "inline"
    can_stop = False

    def __init__(self) -> None:
        """An inline runner (it holds no threads and no state)."""
        self.closed = False

    def submit(self, call: ToolCall, events: RunEvents) -> Handle | Refusal:
        """Run ``call`` now (unless ``events.started()`` says no) and report its outcome.

        A call with a context of its own (the executor's copy of the caller's, with the task
        span current when traced) is run in it with its events, as on a worker thread: what
        the tool sets in its context stays there, and the caller's ``on_progress`` sees the
        task span on ``started`` and ``completed`` as on ``progress``.
        """
        context = call.context
        if context is not None:
            context.run(_run_here, call, events)
        elif events.started():
            events.finished(call_tool_here(call, events))
        return call

    def abandon(self, handle: Handle) -> StopResult:
        """A call on the caller's thread ends before :meth:`submit` returns: nothing to stop."""
        return "stopped"

    def shutdown(self, wait: bool = True) -> None:
        """Nothing to release.

        Raises:
            TypeError: When ``wait`` is not ``True`` or ``False`` (or ``0``/``1``), as
                ``Executor.shutdown`` says. Nothing is shut down then.
        """
        switch("wait", wait)
        self.closed = True

    @property
    def stats(self) -> RunnerStats:
        """An inline runner holds no capacity of its own."""
        return RunnerStats()


def _run_here(call: ToolCall, events: RunEvents) -> None:
    """Run ``call`` and its events in the current context (``call.context``, entered)."""
    if events.started():
        events.finished(call_tool_here(call, events))
