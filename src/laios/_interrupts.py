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

__all__ = ["sigint_held"]


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
        # (a pending signal whose action is SIG_IGN is discarded)
        handler = signal.signal(signal.SIGINT, signal.SIG_IGN) if came and drop else None
        signal.pthread_sigmask(signal.SIG_SETMASK, before)
        if handler is not None:
            signal.signal(signal.SIGINT, handler)
