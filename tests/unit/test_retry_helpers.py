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
from collections.abc import Callable, Generator, Iterator
from decimal import Decimal
from fractions import Fraction

import pytest

from laios.execution import retry
from laios.execution.retry import RetryPolicy


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


@pytest.mark.parametrize("stop", [5, "stop", object()], ids=["int", "str", "object"])
def test_a_sleep_given_a_stop_that_is_no_event_is_refused_naming_it(stop: object) -> None:
    """sleep() and sleep_async() given a ``stop`` that is no event failed with
    "'int' object has no attribute 'wait'", naming no argument, and only when there was a
    wait to do: a wait of 0, or any wait with waits turned off, took it. They refuse it at
    once, whatever the wait and whether waits are on or off."""
    for disabled in (False, True):
        with retry.sleeps_disabled() if disabled else contextlib.nullcontext():
            for seconds in (0, 0.001):
                with pytest.raises(TypeError, match=r"^stop must be a threading\.Event or None"):
                    retry.sleep(seconds, stop=stop)  # type: ignore[arg-type]
                with pytest.raises(TypeError, match=r"^stop must be an asyncio\.Event or None"):
                    asyncio.run(retry.sleep_async(seconds, stop=stop))  # type: ignore[arg-type]


@pytest.mark.parametrize("rng", [5, None, "random"], ids=["int", "None", "str"])
def test_a_delay_given_an_rng_that_is_no_callable_is_refused_naming_it(rng: object) -> None:
    """RetryPolicy.delay() given an ``rng`` that cannot be called failed with "'int' object
    is not callable", naming no argument."""
    policy = RetryPolicy(retry_delay=1, jitter=0.5)
    with pytest.raises(TypeError, match=r"^rng must be a callable returning a number from 0"):
        policy.delay(1, rng=rng)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "number", [math.nan, 1.5, "2", None, True], ids=["nan", "1.5", "str", "None", "True"]
)
def test_a_delay_for_no_retry_number_is_refused_naming_it(number: object) -> None:
    """RetryPolicy.delay() of what is no whole number raises a TypeError naming it: NaN gave
    a NaN delay (no wait at all), 1.5 a delay between two retries', "2" an error about
    subtracting an int from a str."""
    policy = RetryPolicy(retry_delay=1, backoff=2)
    with pytest.raises(TypeError, match=r"^retry_number must be a whole number"):
        policy.delay(number)  # type: ignore[arg-type]


@pytest.mark.parametrize("drawn", [5.0, -1.0, math.nan, "x"], ids=["5", "-1", "nan", "str"])
def test_a_delay_whose_rng_draws_outside_0_to_1_is_refused(drawn: object) -> None:
    """A delay is never outside [delay * (1 - jitter), delay] (negative, NaN): an rng() that
    draws outside 0 to 1, or no number, raises naming what it drew."""
    policy = RetryPolicy(retry_delay=1, jitter=1)
    with pytest.raises((ValueError, TypeError), match=r"^rng\(\) must return a number from 0"):
        policy.delay(1, rng=lambda: drawn)  # type: ignore[arg-type,return-value]


def test_a_delay_takes_whole_numbers_of_any_kind() -> None:
    """A NumPy integer is a retry number; a number below 1 counts as 1, as it always has."""
    policy = RetryPolicy(retry_delay=1, backoff=2)
    assert [policy.delay(n) for n in (0, -3, 1, 2, 3)] == [1.0, 1.0, 1.0, 2.0, 4.0]
    np = pytest.importorskip("numpy")
    assert policy.delay(np.int64(3)) == 4.0
    assert policy.delay(3, rng=lambda: np.float64(0.5)) == 4.0


@pytest.mark.parametrize("value", ["no", "false", None, 2], ids=["no", "false", "None", "2"])
def test_sleeps_disabled_refuses_what_is_no_switch(value: object) -> None:
    """sleeps_disabled(all_threads="no") raises a TypeError naming the option, turning no
    waits off anywhere: a string read as true turned them off in every thread."""
    with pytest.raises(TypeError, match=r"^all_threads must be True or False"):
        retry.sleeps_disabled(value)  # type: ignore[arg-type]
    assert retry.sleeping_enabled()
    with retry.sleeps_disabled(0):  # (0 and 1 say the same as False and True)
        assert not retry.sleeping_enabled()
    assert retry.sleeping_enabled()


def _in_thread(work: Callable[[], None]) -> None:
    """Run ``work`` in a thread of its own and wait for it; re-raise what it raised."""
    raised: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(10)
    assert not thread.is_alive()
    if raised:
        raise raised[0]


@pytest.mark.parametrize("other_in_a_block", [False, True], ids=["other-free", "other-in-block"])
def test_a_this_thread_block_ended_on_another_thread_turns_the_waits_back_on(
    other_in_a_block: bool,
) -> None:
    """A ``sleeps_disabled(all_threads=False)`` block held by a generator closed on another
    thread ends the block of the thread it began in. It raised ``AttributeError`` there (or
    ended that thread's own block instead), and the waits of the thread it began in stayed off
    for good."""

    def holding() -> Generator[None, None, None]:
        with retry.sleeps_disabled(all_threads=False):
            yield

    held = [holding()]
    next(held[0])
    assert not retry.sleeping_enabled()
    seen: list[bool] = []

    def close_elsewhere() -> None:
        own = retry.sleeps_disabled(all_threads=False)
        with own if other_in_a_block else contextlib.nullcontext():
            held.pop().close()
            seen.append(retry.sleeping_enabled())
        seen.append(retry.sleeping_enabled())

    _in_thread(close_elsewhere)
    assert seen == [not other_in_a_block, True]
    assert retry.sleeping_enabled()


@pytest.mark.parametrize(
    ("outcome", "error_type", "retried"),
    [("error", ["ValueError"], True), ("error", {"a": 1}, True), ("rejected", ["x"], False)],
)
def test_the_default_rule_reads_an_error_type_that_is_no_name(
    outcome: str, error_type: object, retried: bool
) -> None:
    """A hand-built result whose ``error_type`` is a list or a dict (no name of an error
    type) made ``default_retry_if`` raise ``TypeError: unhashable type``; such an error type
    is none of those never retried."""
    from laios.core.types import TaskResult

    result = TaskResult(
        task_id="t",
        success=False,
        error="failed",
        metadata={"outcome": outcome, "error_type": error_type},
    )
    assert retry.default_retry_if(result) is retried


def test_sleep_async_with_a_stop_event_of_another_loop_raises_instead_of_not_waiting() -> None:
    """sleep_async() given an asyncio.Event already bound to another event loop (its wait()
    raises RuntimeError on this one) returned at once, as if the event had been set: the wait
    was skipped with no error. That RuntimeError now comes out of the call."""
    stop = asyncio.Event()

    async def bind() -> None:  # (waiting on it binds the event to this loop)
        waiter = asyncio.ensure_future(stop.wait())
        await asyncio.sleep(0)
        waiter.cancel()

    asyncio.run(bind())
    with pytest.raises(RuntimeError, match="bound to a different event loop"):
        asyncio.run(retry.sleep_async(30, stop=stop))
