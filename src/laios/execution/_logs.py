"""Warnings that could repeat without end (a batch of timeouts, a flood of connections) are
logged at most once a minute per key; warnings that hold off for a grace (a stopped tool that
may still return in time) are checked for on one thread, once their grace has passed."""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from laios.execution._forks import reset_after_fork

__all__ = [
    "LateChecks",
    "LoggedRefusal",
    "WarningLimiter",
    "give_reason",
    "public_reason",
    "unknown_setting",
]

_log = logging.getLogger("laios.execution")

#: Values of environment variables already warned about, once each: (variable, value read).
_warned_settings: set[tuple[str, str]] = set()


class LoggedRefusal(OSError):
    """An answer refused on purpose, for a reason its refuser has already logged in words (at
    most once a minute): the HTTP server answers it ``500`` without logging it again as a
    failure of its own, with a traceback."""


#: The attribute holding an exception's reason that an HTTP answer may show (see below).
_REASON = "laios_public_reason"


def give_reason(exc: BaseException, reason: str) -> None:
    """Give ``exc`` a reason that the HTTP server's ``500`` answer shows: what failed, in words
    that name no path nor anything else the answer's client should not learn (the log, which
    the exception's own message reaches, says more)."""
    setattr(exc, _REASON, reason)  # (every exception has a __dict__)


def public_reason(exc: BaseException) -> str | None:
    """The reason :func:`give_reason` gave ``exc``, if any."""
    reason = getattr(exc, _REASON, None)
    return reason if isinstance(reason, str) else None


def unknown_setting(variable: str, raw: str, outcome: str, known: str) -> None:
    """Warn, once per variable and value, that ``raw`` is not a known value of the
    environment variable ``variable``: ``outcome`` says what happens instead (``"content
    capture stays off"``), ``known`` which values are taken."""
    key = (variable, raw.strip().lower())
    if key in _warned_settings:
        return
    _warned_settings.add(key)
    _log.warning("%s=%r is not a known value; %s (use %s)", variable, raw[:64], outcome, known)


class WarningLimiter:
    """Decides, per key, whether a warning is logged now: at most one every ``interval``
    seconds, the next one told how many were held back meanwhile.

    Memory stays bounded with any number of keys: the ``max_keys`` keys seen last are kept by
    name, with their counts of warnings held back; a key seen longer ago is kept only by its
    hash and when it was last logged (``max_gone`` of them, ten times as many, at about half
    the memory each: some 1.5 MB in all for the default 1,000), so that it is still held back
    when it comes again, though its count is lost (its next warning claims none). Past those,
    the key seen longest ago is forgotten: it may be warned about again, as a first one (the
    first time, the limiter logs that it forgets). So a key's first warning is never held back
    for ever, and no key's warnings are counted as another's.

    Args:
        interval: Seconds between two warnings of one key (``math.inf``: one per key, for as
            long as the key is remembered).
        max_keys: Keys kept by name at most.
    """

    def __init__(self, interval: float = 60.0, max_keys: int = 1000) -> None:
        self.interval = interval
        self.max_keys = max_keys
        self.max_gone = 10 * max_keys
        self._lock = threading.Lock()
        # key -> [last logged at, held back since (-inf: not known)], the one seen longest
        # ago first
        self._seen: dict[str, list[float]] = {}
        # hash(key) -> last logged at, of keys pushed out of _seen, the one seen longest ago first
        self._gone: dict[int, float] = {}
        self._forgot = False  # a key was forgotten (and said so)
        reset_after_fork(self)

    def after_fork_in_child(self) -> None:
        """In a child made by ``os.fork()``: a lock of its own (another thread of the parent
        may have held this one at the fork, and would never release it in the child)."""
        self._lock = threading.Lock()

    def should_log(self, key: str) -> int | None:
        """``None``: hold this one back; else log it, and this many were held back since the
        last one of ``key`` (0 also when that is not known)."""
        now = time.monotonic()
        with self._lock:
            seen = self._seen.get(key)
            held: int | None
            if seen is not None:
                del self._seen[key]
                self._seen[key] = seen  # (last: seen last, so kept by name longest)
                if now - seen[0] < self.interval:
                    seen[1] += 1
                    return None
                held = int(seen[1]) if seen[1] > 0 else 0  # (-inf: not known)
                seen[0], seen[1] = now, 0.0
                return held
            # not kept by name: kept by its hash only, or a new key
            last = self._gone.pop(hash(key), None)
            forgot = len(self._seen) >= self.max_keys and self._push_out()
            if last is None or now - last >= self.interval:
                self._seen[key] = [now, 0.0]
                held = 0
            else:  # (held back: its count, lost with its name, starts at "not known")
                self._seen[key] = [last, -math.inf]
                held = None
        if forgot:  # (logged outside the lock: a handler may take its time)
            _log.warning(
                "a warning limiter has seen more than %d keys (the latest: %.100r): from now "
                "on it forgets the keys seen longest ago, whose warnings may then be logged "
                "again (said once)",
                self.max_keys + self.max_gone,
                key,
            )
        return held

    def _push_out(self) -> bool:
        """Keep the key seen longest ago by its hash only, making room for another by name;
        whether this forgot a key for the first time (which is then logged)."""
        oldest = next(iter(self._seen))
        self._gone[hash(oldest)] = self._seen.pop(oldest)[0]
        if len(self._gone) <= self.max_gone:
            return False
        del self._gone[next(iter(self._gone))]
        if self._forgot:
            return False
        self._forgot = True
        return True

    def forget(self, key: str) -> None:
        """Forget ``key``: its next warning is logged at once, as a first one (the key names
        something gone, such as a removed listener known by its ``id``, which a new one may
        reuse)."""
        with self._lock:
            if self._seen.pop(key, None) is None:
                self._gone.pop(hash(key), None)

    def warn(self, logger: logging.Logger, key: str, message: str, *args: Any) -> None:
        """Log ``message % args`` as a warning on ``logger`` unless one of ``key`` (a tool's
        name) was logged within the interval (then at debug level), telling how many were held
        back since."""
        held_back = self.should_log(key)
        if held_back is None:
            logger.debug(message, *args)
        elif held_back:
            more = " (and %d more for this tool since the last such warning)"
            logger.warning(message + more, *args, held_back)
        else:
            logger.warning(message, *args)


class LateChecks:
    """Runs checks some seconds from now (each decides then whether to warn), in the order they
    fall due, on one daemon thread: started when a check is added while none runs, it ends once
    no check is left (nothing runs while there is nothing to check).

    Args:
        name: The thread's name.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._added = threading.Condition(self._lock)
        self._due: list[tuple[float, int, Callable[[], None]]] = []  # a heap; guarded by _lock
        self._order = itertools.count()  # (checks due at the same moment keep their order)
        self._running = False  # the thread runs (or is starting); guarded by _lock
        reset_after_fork(self)

    def after_fork_in_child(self) -> None:
        """In a child made by ``os.fork()``: no thread, nothing to check (the parent's)."""
        self._lock = threading.Lock()
        self._added = threading.Condition(self._lock)
        self._due = []
        self._running = False

    def after(self, seconds: float, check: Callable[[], None]) -> None:
        """Call ``check()`` ``seconds`` from now; at once when no thread can be started for
        it (the system refused one). Never raises for ``check``: what it raises is logged."""
        with self._lock:
            heapq.heappush(self._due, (time.monotonic() + seconds, next(self._order), check))
            if self._running:
                self._added.notify()  # (it may fall due before the one waited for)
                return
            self._running = True
        try:
            self._start()
        except RuntimeError:  # "can't start new thread": check now, rather than never
            with self._lock:
                due, self._due = self._due, []
                self._running = False
            for _, _, waiting in sorted(due):
                self._call(waiting)

    def _start(self) -> None:
        """Start the thread that runs the checks.

        Raises:
            RuntimeError: When the system refuses a new thread.
        """
        threading.Thread(target=self._run, name=self.name, daemon=True).start()

    def _run(self) -> None:
        while True:
            with self._lock:
                while True:
                    if not self._due:
                        self._running = False
                        return
                    wait = self._due[0][0] - time.monotonic()
                    if wait <= 0:
                        check = heapq.heappop(self._due)[2]
                        break
                    self._added.wait(wait)
            self._call(check)
            del check  # (a check must not keep what it holds alive while this waits)

    @staticmethod
    def _call(check: Callable[[], None]) -> None:
        try:
            check()
        except Exception:  # a check must not end the thread with others still due
            _log.exception("a delayed check raised")
