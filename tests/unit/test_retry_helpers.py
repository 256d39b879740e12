"""The public helpers of ``laios.execution.retry`` called directly, as a retry loop of one's
own calls them: ``sleep``, ``sleep_async``, ``sleeps_disabled``, ``RetryPolicy.delay`` and
``default_retry_if``, given what a careless caller passes."""

from __future__ import annotations

import math
import signal
import threading
from collections.abc import Iterator

import pytest

from laios.execution import retry


class _Woken(Exception):
    """Raised by the alarm that ends a wait meant to go on."""


@pytest.fixture
def alarm() -> Iterator[None]:
    """Raise ``_Woken`` in the main thread 50 ms from now (a wait that goes on is ended by it;
    one that fails at once fails before it)."""
    if not hasattr(signal, "setitimer"):
        pytest.skip("needs signal.setitimer")
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals reach the main thread only")

    def wake(signum: int, frame: object) -> None:
        raise _Woken

    previous = signal.signal(signal.SIGALRM, wake)
    signal.setitimer(signal.ITIMER_REAL, 0.05)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize(
    "seconds",
    [threading.TIMEOUT_MAX, 1e300, math.inf, 10**400],
    ids=["TIMEOUT_MAX", "1e300", "inf", "10**400"],
)
def test_a_sleep_longer_than_the_platform_can_wait_waits_with_no_stop_event(
    alarm: None, seconds: float
) -> None:
    """sleep() of more than threading.TIMEOUT_MAX with no stop event waits (that long), as it
    does with one, instead of raising OSError ("Invalid argument") at once."""
    with pytest.raises(_Woken):
        retry.sleep(seconds)
