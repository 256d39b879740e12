"""SIGTERM and SIGHUP taken as Ctrl-C by the commands that run until stopped.

``laios demo`` and ``laios status --watch`` run until stopped. Stopped by a service manager or
``timeout`` (SIGTERM), or by ``kill -HUP`` or their terminal closing (SIGHUP), they end the way
Ctrl-C ends them (the terminal given back, a summary, exit code 0) instead of being killed by
the signal's default action (exit code 143 or 129 in a shell).
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType

__all__ = [
    "SAME_STOP",
    "STOP_SIGNALS",
    "Stops",
    "stop_signals_as_ctrl_c",
    "stop_signals_ignored",
]

#: The signals that stop a command: Ctrl-C, and the others as if it were.
STOP_SIGNALS = (
    signal.SIGINT,
    signal.SIGTERM,
    *((signal.SIGHUP,) if hasattr(signal, "SIGHUP") else ()),
)
#: Seconds within which a stop signal after another is the same stop: ``timeout`` sends its
#: SIGTERM to the command, then at once to the command's whole process group, the command in it.
SAME_STOP = 0.2


class Stops:
    """Turns the stop signals into Ctrl-C, the ones repeated within :data:`SAME_STOP`
    seconds of the last taken left out."""

    def __init__(self) -> None:
        self.last = float("-inf")
        #: The signal last taken, if any.
        self.signal: int | None = None

    def interrupt(self, signum: int, frame: FrameType | None) -> None:
        """The signal handler: raise KeyboardInterrupt unless this is the same stop again."""
        now = time.monotonic()
        if now - self.last < SAME_STOP:
            return
        self.last = now
        self.signal = signum
        raise KeyboardInterrupt

    def last_taken(self) -> str:
        """The signal last taken, as a person names it: ``Ctrl-C`` (also when none was: a
        KeyboardInterrupt raised otherwise), ``SIGTERM``, ``SIGHUP``."""
        if self.signal is None or self.signal == signal.SIGINT:
            return "Ctrl-C"
        return signal.Signals(self.signal).name


@contextlib.contextmanager
def _stop_signals_to(
    handler: Callable[[int, FrameType | None], object] | signal.Handlers,
) -> Iterator[None]:
    """While inside (in the main thread), the stop signals go to ``handler``; on leaving, to
    the handlers they had. Elsewhere than in the main thread, which alone can set signal
    handlers, nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {number: signal.signal(number, handler) for number in STOP_SIGNALS}
    try:
        yield
    finally:
        for number, earlier in previous.items():
            signal.signal(number, earlier)


@contextlib.contextmanager
def stop_signals_as_ctrl_c(stops: Stops | None = None) -> Iterator[None]:
    """While inside (in the main thread), SIGTERM and SIGHUP stop the command the way Ctrl-C
    does; one of them, or a Ctrl-C, that comes again within :data:`SAME_STOP` seconds of the
    last taken by ``stops`` is the same stop, left out. Elsewhere than in the main thread,
    which alone can set signal handlers, nothing changes."""
    with _stop_signals_to((stops or Stops()).interrupt):
        yield


@contextlib.contextmanager
def stop_signals_ignored() -> Iterator[None]:
    """While inside (in the main thread), the stop signals (Ctrl-C, SIGTERM, SIGHUP) are
    ignored."""
    with _stop_signals_to(signal.SIG_IGN):
        yield
