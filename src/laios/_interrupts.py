"""Holding Ctrl-C back from the processes a thread starts.

A terminal's Ctrl-C (SIGINT) goes to every process of its foreground group: the processes this
one starts (a forkserver, a Dask cluster's workers) would get it in the middle of their imports
and die with a traceback of their own. Started while this thread holds SIGINT back, they inherit
the hold, and this process decides when they stop.
"""

from __future__ import annotations

import contextlib
import multiprocessing.resource_tracker
import signal
from collections.abc import Callable, Iterator

__all__ = ["discard_pending_sigint", "sigint_held"]


@contextlib.contextmanager
def sigint_held(*, drop: bool = False) -> Iterator[Callable[[], bool]]:
    """Hold SIGINT back in this thread while inside; yield a function saying whether one came
    meanwhile (known on leaving).

    On leaving, the thread's mask is restored: a SIGINT that came meanwhile is then delivered,
    or with ``drop`` discarded. Where the platform has no signal masks, nothing is held.
    """
    came = False
    if not hasattr(signal, "pthread_sigmask"):
        yield lambda: came
        return
    # multiprocessing starts its resource tracker on the first process start, and unblocks
    # SIGINT in the starting thread after that, undoing the hold: start it first.
    multiprocessing.resource_tracker.ensure_running()
    before = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield lambda: came
    finally:
        came = signal.SIGINT in signal.sigpending()
        if came and drop:
            discard_pending_sigint()
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


def discard_pending_sigint() -> bool:
    """Discard a SIGINT pending for this thread (one held back: blocked here); return whether
    one was.

    The SIGINT handler is left as it is: the signal is taken with ``sigtimedwait`` where the
    platform has it. Elsewhere (macOS; then only in the main thread) the action is set to
    ``SIG_IGN`` for a moment, which discards a pending signal, and set back; a handler set
    from C (one Python knows as ``None``) cannot be set back, and ``SIG_DFL`` takes its place
    rather than leaving SIGINT ignored for good.
    """
    if not hasattr(signal, "sigpending") or signal.SIGINT not in signal.sigpending():
        return False
    if hasattr(signal, "sigtimedwait"):
        signal.sigtimedwait({signal.SIGINT}, 0)
        return True
    handler = signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_DFL if handler is None else handler)
    return True
