"""The public helpers of ``laios.execution.retry`` called directly, as a retry loop of one's
own calls them: ``sleep``, ``sleep_async``, ``sleeps_disabled``, ``RetryPolicy.delay`` and
``default_retry_if``, given what a careless caller passes."""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import signal
import threading
from collections.abc import Iterator
from decimal import Decimal
from fractions import Fraction

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


@pytest.mark.parametrize("kind", ["Fraction", "numpy.float32", "numpy.int8"])
def test_a_sleep_takes_the_numbers_a_policy_takes(kind: str) -> None:
    """sleep() and sleep_async() take any real number, as RetryPolicy does: a Fraction waits
    as its float (time.sleep refused it with "'Fraction' object cannot be interpreted as an
    integer")."""
    if kind == "Fraction":
        seconds: object = Fraction(1, 1000)
    else:
        np = pytest.importorskip("numpy")
        seconds = np.float32(0.001) if kind == "numpy.float32" else np.int8(0)
    retry.sleep(seconds)  # type: ignore[arg-type]
    retry.sleep(seconds, stop=threading.Event())  # type: ignore[arg-type]
    asyncio.run(retry.sleep_async(seconds))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("seconds", "said"),
    [
        ("1", "got str"),
        (None, "got NoneType"),
        (True, "got bool"),
        (Decimal("0.01"), "got Decimal: pass float(value)"),
    ],
)
def test_a_sleep_of_something_else_is_refused_naming_it(seconds: object, said: str) -> None:
    """sleep() and sleep_async() of what is no real number raise a TypeError naming what was
    passed (not "'>' not supported between instances of 'str' and 'int'", and True is no
    one-second wait), whether waits are on or off."""
    for disabled in (False, True):
        with retry.sleeps_disabled() if disabled else contextlib.nullcontext():
            with pytest.raises(TypeError, match=rf"^seconds must be .*{re.escape(said)}$"):
                retry.sleep(seconds)  # type: ignore[arg-type]
            with pytest.raises(TypeError, match=rf"^seconds must be .*{re.escape(said)}$"):
                asyncio.run(retry.sleep_async(seconds))  # type: ignore[arg-type]


def test_a_sleep_given_the_other_kind_of_event_says_which_to_use() -> None:
    """sleep() given an asyncio.Event, and sleep_async() a threading.Event, raise a TypeError
    saying which function takes it (not an error about wait()'s arguments or awaitables)."""
    with pytest.raises(TypeError, match=r"asyncio\.Event.*sleep_async"):
        retry.sleep(0.001, stop=asyncio.Event())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"threading\.Event.*call retry\.sleep\("):
        asyncio.run(retry.sleep_async(0.001, stop=threading.Event()))  # type: ignore[arg-type]
