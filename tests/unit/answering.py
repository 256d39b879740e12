"""Whether a call answers: run it on a thread of its own, so that one waiting for ever fails
the test that asked instead of hanging the run."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


def answers(call: Callable[[], Any], within: float) -> bool:
    """Whether ``call()`` returns within ``within`` seconds (run on a daemon thread)."""
    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(within)
    return not thread.is_alive()
