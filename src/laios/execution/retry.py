"""Retry policy for ``Executor.execute_with_retry``: which failures, how long to wait, when to stop.

Delays: attempt ``n`` (1 = the first retry) waits ``retry_delay * backoff ** (n - 1)`` seconds,
capped at ``max_delay`` (without one, at ``threading.TIMEOUT_MAX``: it never overflows), then
reduced by a random fraction of up to ``jitter`` (so the wait lies in ``[delay * (1 - jitter),
delay]``). With the defaults (``backoff=1``, ``jitter=0``) every wait is exactly
``retry_delay``, as the reference documents.

Test suites can turn the waits off without touching the code under test::

    from laios.execution.retry import sleeps_disabled

    with sleeps_disabled():
        executor.execute_with_retry(task, context, retry_delay=30)   # returns without waiting

Setting the environment variable ``LAIOS_RETRY_SLEEP=0`` does the same for a whole process.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import numbers
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from laios._exceptions import exception_message, type_name
from laios._text import shorten
from laios.core.types import TaskResult
from laios.execution import _waits
from laios.execution._checks import (
    as_float,
    conversion_hint,
    is_real,
    no_generator_function,
    not_real,
    number_repr,
    plain_callable,
    require_method,
    switch,
    takes_one_argument,
    whole_number,
)
from laios.execution._logs import unknown_setting

__all__ = [
    "InvalidCallbackError",
    "RetryDetails",
    "RetryHook",
    "RetryPolicy",
    "default_retry_if",
    "sleep",
    "sleep_async",
    "sleeping_enabled",
    "sleeps_disabled",
]

#: Error types that another attempt cannot change: invalid parameters, a tool's result (or the
#: tool itself) that cannot travel between processes, and a stop the caller asked for.
_NOT_RETRYABLE_ERROR_TYPES = frozenset(
    {"ValidationError", "callback_error", "not_picklable", "terminated", "tool_not_found"}
)
#: ``blocks``: this thread's open blocks of ``sleeps_disabled(all_threads=False)``, a set of
#: one token per block (a set's add and discard are atomic: no lock to hold): a block ended on
#: another thread (a generator holding it, closed there) takes its token out of the set of the
#: thread it began in.
_sleeps_off = threading.local()
#: Blocks of ``sleeps_disabled()`` (every thread) open now, in any thread; guarded by the lock.
_global_off = [0]
_global_off_lock = threading.Lock()
#: The longest wait :func:`sleep` hands to ``time.sleep`` at once (seconds: a day).
_LONGEST_SLEEP = 86_400.0


class InvalidCallbackError(TypeError, ValueError):
    """A ``retry_if`` or ``on_retry`` callback of ``execute_with_retry`` (or ``RetryPolicy``)
    refused because it cannot be called as it will be: not callable, an ``async def`` (nothing
    awaits it), a function written with ``yield`` (its call runs none of its body), or one
    whose signature cannot take its one positional argument. The message names the option and
    quotes the signature expected: ``retry_if(result: TaskResult) -> bool`` or
    ``on_retry(details: RetryDetails) -> None``.

    Both a ``TypeError`` and a ``ValueError``: these refusals used to be a ``ValueError`` for
    ``retry_if`` and a ``TypeError`` for ``on_retry``, and a handler of either still catches
    both. ``execute_with_retry`` never raises it: its result fails with outcome ``rejected``
    and ``error_type`` ``"InvalidCallbackError"``.
    """


#: What each retry callback is handed, and the signature its refusal quotes.
_CALLBACKS = {
    "retry_if": ("a TaskResult", "retry_if(result: TaskResult) -> bool"),
    "on_retry": ("a RetryDetails", "on_retry(details: RetryDetails) -> None"),
}


def check_callback(name: str, value: object) -> None:
    """Refuse a ``retry_if`` or ``on_retry`` (``name``) that cannot be called as it will be:
    a plain function taking one positional argument.

    Raises:
        InvalidCallbackError: Naming the option, what is wrong and the signature expected.
    """
    takes, signature = _CALLBACKS[name]
    error = InvalidCallbackError
    plain_callable(name, takes, value, error, signature=signature)
    no_generator_function(name, takes, value, error, signature=signature)
    takes_one_argument(name, takes, value, error, signature=signature)


def default_retry_if(result: TaskResult) -> bool:
    """The default rule: retry errors and timeouts, and rejections caused by saturation.

    Never retried: cancellations, unknown tools, a shut-down executor, parameters the tool's
    input model rejects, a call that cannot travel to or from its worker process
    (``not_picklable``: another attempt would run the tool again for nothing), a call whose
    process runner was terminated (``terminated``: another attempt would only be refused), and
    a task stopped by a ``KeyboardInterrupt`` raised in the caller's own ``on_progress``
    callback (``callback_error``). Any other exception of that callback leaves the tool's
    outcome as it is, so it neither causes nor prevents a retry.
    """
    outcome = result.metadata.get("outcome")
    error_type = result.metadata.get("error_type")
    if outcome == "rejected":
        return error_type == "saturated"
    if outcome not in ("error", "timeout"):
        return False
    # (a hand-built result may carry anything there: only a name can be one never retried)
    return not (isinstance(error_type, str) and error_type in _NOT_RETRYABLE_ERROR_TYPES)


def _brief(value: object) -> str:
    """A number for an error message: a whole number of more than 20 digits as a float
    (``1e+300``), or by its size when it is too large even for that."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        amount = as_float(value)
        if not math.isinf(amount):
            return f"{amount:.3g}"
    return number_repr(value)


def _unconverted(
    name: str,
    what: str,
    value: object,
    call: str,
    exc: Exception,
    error: type[Exception] = ValueError,
) -> Exception:
    """The error (an ``error``) for an option whose conversion (``float()``, ``int()``)
    raised ``exc``."""
    return error(
        f"{name} must be {what}, got {number_repr(value)}: {call}() of it raised "
        f"{type_name(type(exc))}: {shorten(exception_message(exc), 200)}"
    )


@dataclass(frozen=True, slots=True)
class RetryDetails:
    """What an ``on_retry`` hook of ``execute_with_retry`` is told before each retry's wait.

    Attributes:
        task_id: The task being retried.
        tool_name: Its tool.
        retry_number: The retry about to happen: 1 for the first (the second attempt).
        delay: Seconds the call now waits before that retry.
        elapsed: Seconds since the call started.
        outcome: The failed attempt's outcome (``error``, ``timeout``, ``rejected``).
        error_type: Why it failed (as in ``laios_task_errors_total``), or ``None``.
        error: The failed attempt's error message, or ``None``; scrubbed of the task's
            secret values and cut to 1,024 bytes, as the executor's own log records are, so
            that a hook may log it.
        result: The failed attempt's result, as the caller would get it (its ``error``
            neither scrubbed nor cut); left out of the details' ``repr``, so that logging the
            details whole shows only the scrubbed ``error``.
    """

    task_id: str
    tool_name: str
    retry_number: int
    delay: float
    elapsed: float
    outcome: str | None
    error_type: str | None
    error: str | None
    # (left out of the hash, a TaskResult being unhashable: equal details still hash equal)
    result: TaskResult = field(repr=False, hash=False)


#: An ``on_retry`` hook: called with the :class:`RetryDetails` of each retry before its wait.
RetryHook = Callable[[RetryDetails], object]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How ``execute_with_retry`` spaces and bounds its attempts.

    Attributes:
        max_retries: Attempts after the first (so at most ``max_retries + 1`` runs).
        retry_delay: Seconds before the first retry.
        backoff: Multiplier applied to the delay after each retry (``>= 1``).
        max_delay: Ceiling of one delay in seconds (``None``: no ceiling).
        jitter: Fraction (0–1) of each delay that is randomly removed.
        deadline: Seconds for the whole call, attempts and waits included (``None``: none).
            No retry starts when its wait would cross the deadline, and an attempt's timeout is
            cut to the time left.
        retry_if: Decides whether a failed result is worth another attempt: a plain function
            (it is called, never awaited).

    Raises:
        ValueError: When a value is out of range.
        InvalidCallbackError: (a ``ValueError`` and a ``TypeError``) When ``retry_if`` is
            not a plain function taking one positional argument.
    """

    max_retries: int = 3
    retry_delay: float = 1.0
    backoff: float = 1.0
    max_delay: float | None = None
    jitter: float = 0.0
    deadline: float | None = None
    retry_if: Callable[[TaskResult], bool] = default_retry_if

    def __post_init__(self) -> None:
        def number(name: str, value: object) -> float:
            if not is_real(value):  # (a Fraction or a NumPy scalar is a number too)
                raise ValueError(
                    f"{name} must be a real number, got {number_repr(value)}"
                    f"{conversion_hint(value)}"
                )
            # (an int or a Fraction too large for a float: infinite, and refused by the
            # option's bounds below, which show the value given)
            try:
                amount = as_float(value)  # type: ignore[arg-type]
            except Exception as exc:  # (a number class of its own whose float() raises)
                raise _unconverted(name, "a real number", value, "float", exc) from None
            exact = isinstance(value, numbers.Rational)
            if math.isnan(amount) or (math.isinf(amount) and not exact):
                raise ValueError(f"{name} must be finite, got {number_repr(value)}")
            if name == "jitter":  # (not seconds: its bounds say the rest)
                return amount
            if name != "backoff" and amount > threading.TIMEOUT_MAX:
                raise ValueError(
                    f"{name} must be at most {threading.TIMEOUT_MAX:.0f} seconds (the longest "
                    f"wait this platform supports), got {_brief(value)}"
                )
            if math.isinf(amount) and amount > 0:  # a number past any float: finite, but
                # no use (one far below zero is refused by the option's lower bound)
                raise ValueError(f"{name} is too large, got {_brief(value)}")
            return amount

        try:
            retries = whole_number(self.max_retries)
        except Exception as exc:  # (a number class of its own whose int() raises)
            raise _unconverted(
                "max_retries", "a whole number", self.max_retries, "int", exc
            ) from None
        if retries is None:
            raise ValueError(
                f"max_retries must be a whole number, got {number_repr(self.max_retries)}"
            )
        if retries is not self.max_retries:  # (a NumPy integer: kept as a plain int)
            object.__setattr__(self, "max_retries", retries)
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be 0 or more, got {number_repr(self.max_retries)}")
        if number("retry_delay", self.retry_delay) < 0:
            raise ValueError(
                f"retry_delay must be 0 or more seconds, got {_brief(self.retry_delay)}"
            )
        if number("backoff", self.backoff) < 1:
            raise ValueError(f"backoff must be 1 or more, got {_brief(self.backoff)}")
        if self.max_delay is not None and number("max_delay", self.max_delay) < 0:
            raise ValueError(f"max_delay must be 0 or more seconds, got {_brief(self.max_delay)}")
        if not 0 <= number("jitter", self.jitter) <= 1:
            raise ValueError(f"jitter must be between 0 and 1, got {_brief(self.jitter)}")
        if self.deadline is not None and number("deadline", self.deadline) <= 0:
            raise ValueError(f"deadline must be more than 0 seconds, got {_brief(self.deadline)}")
        if self.retry_if is not default_retry_if:  # (the default needs no look)
            check_callback("retry_if", self.retry_if)
        for name in ("retry_delay", "backoff", "max_delay", "jitter", "deadline"):
            value = getattr(self, name)
            if value is not None and type(value) is not int and type(value) is not float:
                # (kept as a plain float: NumPy arithmetic would warn where floats overflow)
                object.__setattr__(self, name, as_float(value))

    def delay(self, retry_number: int, rng: Callable[[], float] = random.random) -> float:
        """Seconds to wait before retry ``retry_number`` (1 for the first retry).

        Never more than ``max_delay``, nor than the longest wait the platform supports
        (``threading.TIMEOUT_MAX``): a long run of exponential backoff stays at its ceiling
        instead of overflowing. A ``retry_number`` below 1 counts as 1.

        Raises:
            TypeError: When ``retry_number`` is not a whole number (an ``int``, a NumPy
                integer; not a ``bool``), or ``rng`` cannot be called.
            ValueError: When ``rng()`` returns something other than a number from 0 to 1
                (``TypeError`` when it is no number): the wait would leave
                ``[delay * (1 - jitter), delay]``.
        """
        number = whole_number(retry_number)
        if number is None:
            raise TypeError(
                "retry_number must be a whole number (1 for the first retry), got "
                f"{number_repr(retry_number)}"
            )
        if not callable(rng):
            raise TypeError(
                "rng must be a callable returning a number from 0 to 1 (as random.random), "
                f"got {type(rng).__name__}"
            )
        drawn = rng()
        if not is_real(drawn):
            raise TypeError(f"rng() must return a number from 0 to 1, got {number_repr(drawn)}")
        if not 0 <= drawn <= 1:  # (NaN too)
            raise ValueError(f"rng() must return a number from 0 to 1, got {number_repr(drawn)}")
        retry_number = number
        base = 0.0
        if self.retry_delay > 0 and self.backoff == 1:  # (whatever the retry number)
            base = self.retry_delay
        elif self.retry_delay > 0:
            try:
                # (in floats: an int backoff would make an exact power of ever more digits)
                base = self.retry_delay * float(self.backoff) ** max(retry_number - 1, 0)
            except OverflowError:  # (a float power past 1.8e308 raises; a product is inf)
                base = math.inf
        ceiling = threading.TIMEOUT_MAX if self.max_delay is None else self.max_delay
        return min(base, ceiling) * (1.0 - self.jitter * float(drawn))


#: Values of ``LAIOS_RETRY_SLEEP`` that turn retry waits off, and that keep them (unset too).
_SLEEP_OFF = frozenset({"0", "false", "no", "off"})
_SLEEP_ON = frozenset({"", "1", "true", "yes", "on"})


def sleeping_enabled() -> bool:
    """Whether retry waits happen (not turned off by :func:`sleeps_disabled` or
    ``LAIOS_RETRY_SLEEP=0``, ``false``, ``no`` or ``off``, in any case). Another value than
    those and ``1``, ``true``, ``yes`` or ``on`` keeps the waits, with one warning."""
    if getattr(_sleeps_off, "blocks", None) or _global_off[0]:
        return False
    raw = os.environ.get("LAIOS_RETRY_SLEEP", "1")
    setting = raw.strip().lower()
    if setting in _SLEEP_OFF:
        return False
    if setting not in _SLEEP_ON:
        unknown_setting(
            "LAIOS_RETRY_SLEEP",
            raw,
            "retry waits stay on",
            "0, false, no or off to turn them off; 1, true, yes or on to keep them",
        )
    return True


def _seconds(seconds: object) -> float:
    """The seconds of a wait as a float (a ``Fraction`` or a NumPy number as its value; an
    int past the largest float as infinity).

    Raises:
        TypeError: When ``seconds`` is not a real number (a ``bool``, a string, ``None``, a
            ``Decimal``: the message says to pass ``float(value)``).
    """
    if type(seconds) is float:  # (the common case: a policy's delay)
        return seconds
    if not is_real(seconds):
        raise not_real("seconds", seconds)
    try:
        return as_float(seconds)  # type: ignore[arg-type]
    except Exception as exc:  # (a number class of its own whose float() raises)
        raise _unconverted("seconds", "a real number", seconds, "float", exc, TypeError) from None


def sleep(seconds: float, stop: threading.Event | None = None) -> None:
    """Wait between attempts (returns early when ``stop`` is set, or when sleeps are off).

    A wait longer than the platform supports (``threading.TIMEOUT_MAX``) is that long; NaN or
    a negative number is no wait.

    Raises:
        TypeError: When ``seconds`` is not a real number (``int``, ``float``, ``Fraction``, a
            NumPy number; not a ``bool``), or ``stop`` is an ``asyncio.Event`` (that is
            :func:`sleep_async`'s) or no event at all (whatever the wait).
    """
    seconds = _seconds(seconds)
    if isinstance(stop, asyncio.Event):
        raise TypeError(
            "stop must be a threading.Event, got an asyncio.Event: in async code, await "
            "retry.sleep_async(seconds, stop) instead"
        )
    # (refused at the call, not once there is a wait to do: whatever the wait)
    require_method("stop", stop, "wait", "a threading.Event or None")
    if not seconds > 0 or not sleeping_enabled():
        return
    seconds = min(seconds, threading.TIMEOUT_MAX)
    if stop is not None:
        if isinstance(stop, threading.Event):
            _waits.wait(stop, seconds)  # (a slice at a time on the main thread: see _waits)
        else:  # (an object of the caller's own: its wait may not say whether it was set)
            stop.wait(seconds)
    elif seconds <= _LONGEST_SLEEP:
        _waits.sleep(seconds)
    else:
        # (time.sleep refuses a wait whose end is past what its clock can hold, OSError
        # "Invalid argument" for threading.TIMEOUT_MAX: a long wait is slept a day at a time)
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            _waits.sleep(min(left, _LONGEST_SLEEP))


async def sleep_async(seconds: float, stop: asyncio.Event | None = None) -> None:
    """Like :func:`sleep`, without blocking the event loop. No wait (``0``, or waits
    disabled) still gives the loop a turn, as ``asyncio.sleep(0)`` does: a retry loop whose
    attempts never yield (an async tool failing at once, run inside the awaiting task) would
    otherwise hold the loop for all its attempts.

    Raises:
        TypeError: As :func:`sleep`, and when ``stop`` is a ``threading.Event`` (that is
            :func:`sleep`'s).
        RuntimeError: When ``stop`` is an ``asyncio.Event`` bound to another event loop
            (what its ``wait()`` raises), instead of returning at once as if it were set.
    """
    seconds = _seconds(seconds)
    if isinstance(stop, threading.Event):
        raise TypeError(
            "stop must be an asyncio.Event, got a threading.Event: in blocking code, call "
            "retry.sleep(seconds, stop) instead"
        )
    require_method("stop", stop, "wait", "an asyncio.Event or None")
    if not seconds > 0 or not sleeping_enabled():
        await asyncio.sleep(0)
        return
    seconds = min(seconds, threading.TIMEOUT_MAX)
    if stop is None:
        await asyncio.sleep(seconds)
        return
    # (not asyncio.wait_for: before Python 3.12 it loses a cancellation of the caller that
    # arrives as the event is set, and the caller would go on as if never cancelled)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        done, _ = await asyncio.wait((stopped,), timeout=seconds)
    finally:
        # (a wait closed on a loop its owner closed, when it is collected: nothing to cancel)
        if not stopped.get_loop().is_closed():
            stopped.cancel()
    if done:
        # (set, or its wait() failed: an event bound to another loop raises RuntimeError
        # there, which must not pass for a stop)
        stopped.result()


def sleeps_disabled(all_threads: bool = True) -> contextlib.AbstractContextManager[None]:
    """Skip retry waits inside the block (in every thread, or only this one).

    Raises:
        TypeError: When ``all_threads`` is not ``True`` or ``False`` (``0`` and ``1`` say the
            same), at the call: a string like ``"no"`` would read as true.
    """
    return _sleeps_disabled(switch("all_threads", all_threads))


@contextlib.contextmanager
def _sleeps_disabled(all_threads: bool) -> Iterator[None]:
    """:func:`sleeps_disabled`'s block, its option checked."""
    if all_threads:
        # A count, not a flag: blocks of two threads may end in any order.
        with _global_off_lock:
            _global_off[0] += 1
        try:
            yield
        finally:
            with _global_off_lock:
                _global_off[0] -= 1
    else:
        # (this thread's set, held here: the block may end on another thread)
        blocks: set[object] | None = getattr(_sleeps_off, "blocks", None)
        if blocks is None:
            blocks = _sleeps_off.blocks = set()
        token = object()
        blocks.add(token)
        try:
            yield
        finally:
            blocks.discard(token)
