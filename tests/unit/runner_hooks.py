"""A runner for tests: a real runner with hooks at chosen steps of a run.

Import it as ``from runner_hooks import HookedRunner`` (``tests/unit`` is on the path of its
tests).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class HookedRunner:
    """A runner that hands every call to ``inner`` (a real runner), calling the test's hooks at
    chosen steps: ``before_submit(call)`` just before the hand-over, ``before_start(call)`` on
    the runner's side just before the call may start, ``after_start(call, started)`` once the
    executor answered whether it may (``started``), before the runner acts on that answer,
    ``after_tool(call)`` once the tool
    returned and before its outcome is reported. A hook may block (to pause a task at that
    step) or act (cancel the task, say). ``hand_back(outcome)``, when given, is what the runner
    reports in place of the tool's outcome (a runner that misbehaves).

    Passed as ``Executor(..., runner=HookedRunner(ThreadRunner(4, 4)))``, every synchronous
    tool goes through it (no tool runs on the caller's thread).
    """

    def __init__(
        self,
        inner: Any,
        *,
        before_submit: Callable[[Any], None] | None = None,
        before_start: Callable[[Any], None] | None = None,
        after_start: Callable[[Any, bool], None] | None = None,
        after_tool: Callable[[Any], None] | None = None,
        hand_back: Callable[[Any], Any] | None = None,
    ) -> None:
        self.inner = inner
        self.name = f"hooked-{inner.name}"
        self.can_stop = inner.can_stop
        self.before_submit = before_submit
        self.before_start = before_start
        self.after_start = after_start
        self.after_tool = after_tool
        self.hand_back = hand_back
        self.submitted: list[Any] = []

    def submit(self, call: Any, events: Any) -> Any:
        self.submitted.append(call.task_id)
        if self.before_submit is not None:
            self.before_submit(call)
        return self.inner.submit(call, _HookedEvents(self, call, events))

    def abandon(self, handle: Any) -> Any:
        return self.inner.abandon(handle)

    def preparing(self, handle: Any) -> str | None:
        """What the inner runner says of a call it still prepares (``None`` when it has no
        ``preparing``)."""
        preparing = getattr(self.inner, "preparing", None)
        return None if preparing is None else preparing(handle)  # type: ignore[no-any-return]

    def shutdown(self, wait: bool = True) -> None:
        self.inner.shutdown(wait)

    @property
    def stats(self) -> Any:
        return self.inner.stats


class _HookedEvents:
    """The events of one call, with the runner's hooks around ``started`` and ``finished``."""

    def __init__(self, runner: HookedRunner, call: Any, events: Any) -> None:
        self._runner = runner
        self._call = call
        self._events = events

    @property
    def cancel_requested(self) -> bool:
        return bool(self._events.cancel_requested)

    def started(self) -> bool:
        if self._runner.before_start is not None:
            self._runner.before_start(self._call)
        started = bool(self._events.started())
        if self._runner.after_start is not None:
            self._runner.after_start(self._call, started)
        return started

    def progress(self, percent: float, message: Any, details: Any) -> None:
        self._events.progress(percent, message, details)

    def checkpoint(self, name: str, data: Any) -> None:
        self._events.checkpoint(name, data)

    def finished(self, outcome: Any) -> None:
        if self._runner.after_tool is not None:
            self._runner.after_tool(self._call)
        if self._runner.hand_back is not None:
            outcome = self._runner.hand_back(outcome)
        self._events.finished(outcome)

    def refused(self, refusal: Any) -> None:
        self._events.refused(refusal)
