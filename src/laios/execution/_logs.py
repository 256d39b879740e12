"""Warnings that could repeat without end (a batch of timeouts, a flood of connections) are
logged at most once a minute per key."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from laios.execution._forks import reset_after_fork

__all__ = ["WarningLimiter"]


class WarningLimiter:
    """Decides, per key, whether a warning is logged now: at most one every ``interval``
    seconds, the next one told how many were held back meanwhile. Keeps at most ``max_keys``
    keys (past that, it starts over).

    Args:
        interval: Seconds between two warnings of one key (``math.inf``: one per key, for as
            long as the key is remembered).
        max_keys: Keys remembered at most.
    """

    def __init__(self, interval: float = 60.0, max_keys: int = 1000) -> None:
        self.interval = interval
        self.max_keys = max_keys
        self._lock = threading.Lock()
        self._seen: dict[str, list[float]] = {}  # key -> [last logged at, held back since]
        reset_after_fork(self)

    def after_fork_in_child(self) -> None:
        """In a child made by ``os.fork()``: a lock of its own (another thread of the parent
        may have held this one at the fork, and would never release it in the child)."""
        self._lock = threading.Lock()

    def should_log(self, key: str) -> int | None:
        """``None``: hold this one back; else log it, and this many were held back since the
        last one of ``key``."""
        now = time.monotonic()
        with self._lock:
            seen = self._seen.get(key)
            if seen is None:
                if len(self._seen) >= self.max_keys:
                    self._seen.clear()
                self._seen[key] = [now, 0.0]
                return 0
            if now - seen[0] < self.interval:
                seen[1] += 1
                return None
            held = int(seen[1])
            seen[0], seen[1] = now, 0.0
            return held

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
