"""Holding Ctrl-C back (``laios._interrupts``): what comes meanwhile, and the handler after."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import laios._interrupts as interrupts
from laios._interrupts import discard_pending_sigint, sigint_held

pytestmark = pytest.mark.skipif(
    not hasattr(signal, "pthread_sigmask") or sys.platform == "win32",
    reason="signal masks are POSIX",
)


@pytest.fixture(autouse=True)
def _handler_restored() -> Iterator[None]:
    """The test's SIGINT handler and mask are put back whatever it does."""
    handler = signal.getsignal(signal.SIGINT)
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, set())
    yield
    signal.signal(signal.SIGINT, handler)
    signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def _sigint_to_this_thread() -> None:
    """Send SIGINT to this thread alone (a signal sent to the process may be delivered to
    another of its threads, one that does not block it)."""
    signal.pthread_kill(threading.get_ident(), signal.SIGINT)


def _set_from_c(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``laios._interrupts`` see the SIGINT handler as one set from C: Python knows no
    handler for it (``None``), and cannot set it back."""
    real: Callable[..., Any] = signal.signal

    def from_c(number: int, handler: Any) -> Any:
        before = real(number, handler)
        return None if number == signal.SIGINT else before

    monkeypatch.setattr(interrupts.signal, "signal", from_c)


def test_a_ctrl_c_held_back_is_delivered_on_leaving() -> None:
    came: list[bool] = []
    with pytest.raises(KeyboardInterrupt):  # noqa: PT012 (raised on leaving the block)
        with sigint_held() as held:
            _sigint_to_this_thread()
            came.append(held())
    assert came == [False]
    assert held()


def test_a_ctrl_c_dropped_on_leaving_leaves_the_handler_as_it_was() -> None:
    def handler(number: int, frame: Any) -> None:
        raise AssertionError("the dropped Ctrl-C was delivered")

    signal.signal(signal.SIGINT, handler)
    with sigint_held(drop=True) as held:
        _sigint_to_this_thread()
    assert held()
    assert signal.getsignal(signal.SIGINT) is handler
    assert signal.SIGINT not in signal.sigpending()


def test_a_ctrl_c_dropped_under_a_handler_set_from_c_leaves_ctrl_c_working(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A handler set from C (Python sees ``None``) cannot be set back by ``signal.signal``:
    dropping a held Ctrl-C must not leave SIGINT ignored for the rest of the process."""
    _set_from_c(monkeypatch)
    with sigint_held(drop=True) as held:
        _sigint_to_this_thread()
    assert held()
    assert signal.getsignal(signal.SIGINT) is not signal.SIG_IGN, "Ctrl-C is ignored for good"
    with pytest.raises(KeyboardInterrupt):  # (pthread_kill runs the handlers at once)
        _sigint_to_this_thread()


def test_discarding_with_nothing_pending_says_so() -> None:
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    assert not discard_pending_sigint()
    _sigint_to_this_thread()
    assert discard_pending_sigint()
    assert signal.SIGINT not in signal.sigpending()
