"""The limiter that keeps a repeating warning from flooding the log stays a limit past its
number of keys: more distinct keys than it remembers (a directory holding more foreign files
than that, each warned about by name) must not have every one of them logged at every turn."""

from __future__ import annotations

import math

import pytest

from laios.execution._logs import WarningLimiter


def test_keys_past_the_limit_share_one_limit_instead_of_starting_over() -> None:
    """With more distinct keys coming round than it remembers, the limiter used to forget them
    all and start over, so that each key was logged again at each round: the flood it is there
    to stop. Past its keys, the new ones share one limit: one more warning per interval."""
    limiter = WarningLimiter(60.0, max_keys=3)
    keys = [f"file {n}" for n in range(10)]
    rounds = [[key for key in keys if limiter.should_log(key) is not None] for _ in range(3)]
    assert rounds[0] == ["file 0", "file 1", "file 2", "file 3"]
    assert rounds[1:] == [[], []]


def test_a_key_once_per_process_is_logged_once_past_the_limit_too() -> None:
    """``interval=math.inf`` (once per key): past the keys remembered, no key is logged again
    at each round either."""
    limiter = WarningLimiter(math.inf, max_keys=3)
    keys = [f"file {n}" for n in range(10)]
    logged = [key for _ in range(5) for key in keys if limiter.should_log(key) is not None]
    assert logged == ["file 0", "file 1", "file 2", "file 3"]


def test_keys_whose_interval_passed_make_room_for_new_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A full limiter drops the keys logged longest ago whose interval has passed, so a new
    key gets a place of its own (and its own warning) once the old ones are stale."""
    now = [1000.0]
    monkeypatch.setattr("laios.execution._logs.time.monotonic", lambda: now[0])
    limiter = WarningLimiter(60.0, max_keys=2)
    assert limiter.should_log("a") == 0
    assert limiter.should_log("b") == 0
    now[0] += 61.0
    assert limiter.should_log("b") == 0  # (logged again: it stays, a is the stale one)
    assert limiter.should_log("c") == 0  # a dropped: c has a place of its own
    assert limiter.should_log("d") == 0  # past the keys: the shared limit's first warning
    assert limiter.should_log("e") is None  # the shared limit holds it back
    assert limiter.should_log("c") is None
    assert limiter.should_log("b") is None
