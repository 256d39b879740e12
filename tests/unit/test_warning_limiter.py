"""The limiter that keeps a repeating warning from flooding the log stays a limit past its
number of keys: more distinct keys than it keeps by name (a directory holding more foreign
files than that, each warned about by name) must not have every one of them logged at every
turn; nor may a key past them have its warning never logged, or told of others' counts."""

from __future__ import annotations

import logging
import math

import pytest

from laios.execution._logs import WarningLimiter


def test_keys_past_the_limit_are_not_logged_again_at_each_round() -> None:
    """With more distinct keys coming round than it keeps by name, the limiter used to forget
    them all and start over, so that each key was logged again at each round: the flood it is
    there to stop. Each is logged once, and held back at the next rounds of its interval."""
    limiter = WarningLimiter(60.0, max_keys=3)
    keys = [f"file {n}" for n in range(10)]
    rounds = [[key for key in keys if limiter.should_log(key) is not None] for _ in range(3)]
    assert rounds[0] == keys
    assert rounds[1:] == [[], []]


def test_a_key_once_per_process_is_logged_once_past_the_limit_too() -> None:
    """``interval=math.inf`` (once per key): each key past those kept by name is logged once,
    and not again at each round."""
    limiter = WarningLimiter(math.inf, max_keys=3)
    keys = [f"file {n}" for n in range(10)]
    logged = [key for _ in range(5) for key in keys if limiter.should_log(key) is not None]
    assert logged == keys


def test_a_key_kept_by_its_hash_only_is_held_back_and_claims_no_count(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A key pushed out of those kept by name is still held back within its interval, and
    logged after it; its count of warnings held back is lost with its name, so it claims none,
    while a key kept by name tells its own."""
    now = [1000.0]
    monkeypatch.setattr("laios.execution._logs.time.monotonic", lambda: now[0])
    limiter = WarningLimiter(60.0, max_keys=2)
    assert [limiter.should_log(key) for key in "abc"] == [0, 0, 0]  # (a kept by hash)
    assert limiter.should_log("a") is None  # (b kept by hash now)
    assert limiter.should_log("c") is None
    assert limiter.should_log("b") is None  # (a kept by hash again)
    now[0] += 61.0
    assert limiter.should_log("c") == 1
    assert limiter.should_log("b") == 0  # (held back once, since it was kept by hash)
    assert limiter.should_log("a") == 0
    assert limiter.should_log("b") is None


def _warnings_of(limiter: WarningLimiter, calls: list[str]) -> list[str]:
    """The messages ``limiter.warn`` logs at WARNING for each tool of ``calls`` in turn."""
    logger = logging.getLogger("laios.test.warning_limiter")
    logged: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.WARNING:
                logged.append(record.getMessage())

    handler = Keep()
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        for tool in calls:
            limiter.warn(logger, tool, "tool %s left running", tool)
    finally:
        logger.removeHandler(handler)
    return logged


def test_every_tool_past_the_first_thousand_gets_its_once_per_tool_warning() -> None:
    """Once per tool, for ever: the tools past the first 1,000 shared one slot, so only the
    1,001st was ever warned about; the 1,002nd to the 1,005th never were."""
    limiter = WarningLimiter(math.inf)
    tools = [f"tool{n}" for n in range(1005)]
    logged = _warnings_of(limiter, tools)
    missing = [tool for tool in tools if f"tool {tool} left running" not in logged]
    assert missing == [], f"never warned about: {missing}"
    assert len(logged) == len(tools), "a tool was warned about twice"
    # ... and each of them once only, also when they all come round again
    assert _warnings_of(limiter, tools * 2) == []


def test_a_tool_is_not_told_of_other_tools_warnings_held_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past the first 1,000 tools, the held-back count was shared: a tool's next warning said
    "(and N more for this tool ...)" counting the warnings of the other tools past them."""
    now = [1000.0]
    monkeypatch.setattr("laios.execution._logs.time.monotonic", lambda: now[0])
    limiter = WarningLimiter(60.0)
    tools = [f"tool{n}" for n in range(1005)]
    _warnings_of(limiter, tools)
    held = {"tool1001": 0, "tool1002": 2, "tool1003": 0, "tool1004": 5}
    _warnings_of(limiter, [tool for tool, n in held.items() for _ in range(n)])
    now[0] += 61.0
    _warnings_of(limiter, tools[:1000])  # (the first thousand warn again: none is stale)
    logged = _warnings_of(limiter, list(held))
    wrong = []
    for tool, n in held.items():
        said = [message for message in logged if message.startswith(f"tool {tool} ")]
        if len(said) != 1:
            wrong.append(f"{tool}: logged {len(said)} times a minute later")
            continue
        told = said[0].split("(and ")[1].split()[0] if "(and " in said[0] else "0"
        if int(told) > n:
            wrong.append(f"{tool}: held back {n}, told {told}")
    assert wrong == []


def test_more_keys_than_it_remembers_are_logged_again_in_time_not_never(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Memory stays bounded: once more keys come round than the limiter can remember, the ones
    unseen longest are forgotten, so that each may be warned about again, rather than a new
    one never being; the limiter says so once."""
    limiter = WarningLimiter(math.inf, max_keys=2)
    keys = [f"file {n}" for n in range(1000)]
    with caplog.at_level(logging.WARNING, "laios.execution"):
        first = [key for key in keys if limiter.should_log(key) is not None]
        second = [key for key in keys if limiter.should_log(key) is not None]
        assert limiter.should_log("file 999") is None  # (the one seen last is remembered)
    assert first == keys
    assert second != [], "keys more than it can remember were all remembered"
    notices = [r.getMessage() for r in caplog.records if "warning limiter" in r.getMessage()]
    assert len(notices) == 1, notices
    assert len(limiter._seen) <= 2
    assert len(limiter._gone) <= limiter.max_gone


def test_the_keys_seen_last_keep_their_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    """A key seen again before the limiter was full stayed where it was first seen: the key
    seen most recently was the first pushed out to its hash, losing its count."""
    now = [100.0]
    monkeypatch.setattr("laios.execution._logs.time.monotonic", lambda: now[0])
    limiter = WarningLimiter(60.0, max_keys=3)
    for key in ("hot", "b", "hot", "hot", "c", "d"):
        limiter.should_log(key)
    now[0] += 61.0
    assert limiter.should_log("hot") == 2  # (two held back, kept by name: seen among the last)
