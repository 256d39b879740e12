"""The process worker's CPU budget timer judged by its own clock, not the precise one.

``ITIMER_PROF`` counts the CPU time the kernel charged the process, tick by tick; on a busy
machine that runs ahead of the precise clock ``time.process_time()`` reads (a process running
when a tick comes is charged the whole tick). A tool that handled the timer's signal (and
raised from its handler, or ran on) was judged by the precise clock, with 50 ms of slack: when
the timer ran out further ahead than that, the tool's own error came back in place of
``cpu_limit``, and its worker, past its budget, served again.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator

import pytest

from laios.execution._runners.process_worker import _CpuTimer

pytestmark = pytest.mark.skipif(
    not hasattr(signal, "setitimer"), reason="needs ITIMER_PROF (POSIX)"
)


@pytest.fixture(autouse=True)
def _put_back_sigprof() -> Iterator[None]:
    before = signal.getsignal(signal.SIGPROF)
    yield
    signal.setitimer(signal.ITIMER_PROF, 0)
    signal.signal(signal.SIGPROF, before)


def _spin_until(flag: list[int], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not flag and time.monotonic() < deadline:
        pass
    assert flag, "the CPU timer never ran out"


def _lagging(monkeypatch: pytest.MonkeyPatch, by: float) -> None:
    """From now on ``time.process_time()`` reads ``by`` seconds less than it did: the precise
    clock behind the CPU the kernel charged (and the timer counts)."""
    precise = time.process_time
    monkeypatch.setattr(time, "process_time", lambda: precise() - by)


@pytest.mark.parametrize("how", ["handled", "ignored"])
def test_a_budget_timer_that_ran_out_ahead_of_the_precise_clock_is_past_the_budget(
    monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    fired: list[int] = []
    with _CpuTimer(0.1) as timer:
        # the tool takes the signal its budget sends: a handler of its own, or none at all
        if how == "handled":
            signal.signal(signal.SIGPROF, lambda signum, frame: fired.append(signum))
            _spin_until(fired)
        else:
            signal.signal(signal.SIGPROF, signal.SIG_IGN)
            _burn(0.2)  # well past the budget's 0.1
        # the timer ran out when, by the precise clock, 0.04 s of the 0.1 had been used
        _lagging(monkeypatch, 0.06 if how == "handled" else 0.16)
    assert timer.exceeded
    assert not timer.taken


def _burn(seconds: float) -> None:
    """Burn ``seconds`` of CPU time."""
    start = time.process_time()
    while time.process_time() - start < seconds:
        pass


def _profile_every_10_ms() -> None:
    """Set the CPU timer for a profiler of the tool's own, in place of the budget's."""
    signal.signal(signal.SIGPROF, lambda signum, frame: None)
    signal.setitimer(signal.ITIMER_PROF, 0.01, 0.01)


def test_a_tool_that_stopped_the_budget_timer_within_its_budget_is_not_past_it() -> None:
    """The tool set the timer for its own use and stopped it, within its budget: nothing
    ran out on the budget."""
    with _CpuTimer(0.5) as timer:
        _profile_every_10_ms()
        _burn(0.05)
        signal.setitimer(signal.ITIMER_PROF, 0)
    assert not timer.exceeded
    assert not timer.taken


def test_a_tool_that_left_its_own_timer_running_past_the_budget_is_past_it() -> None:
    with _CpuTimer(0.05) as timer:
        _profile_every_10_ms()
        _burn(0.1)
    assert timer.exceeded
    assert timer.taken


def test_a_tool_within_its_budget_is_not_past_it() -> None:
    with _CpuTimer(5.0) as timer:
        _burn(0.02)
    assert not timer.exceeded
    assert not timer.taken


@pytest.mark.parametrize("budget", [6e6, 2e7])
def test_a_budget_of_months_is_not_past_it_at_once(budget: float) -> None:
    """A budget of months (a long timeout with a high percentage) is kept by ``RLIMIT_CPU``
    and the runner's watch: the timer must not read as run out."""
    with _CpuTimer(budget) as timer:
        pass
    assert not timer.exceeded
