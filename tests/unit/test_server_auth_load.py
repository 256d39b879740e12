"""Basic authentication under load: what bcrypt checks a client can make the endpoint run.

A right password is checked once and then remembered, whatever wrong ones arrive meanwhile;
checks that cannot start soon are refused with ``503`` at once rather than queued. The checks
are counted by wrapping ``bcrypt.checkpw``, the function the endpoint calls.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from http_drivers import Answer, call_wsgi
from prometheus_client import CollectorRegistry

from laios.execution._auth import CACHE_SIZE, MAX_PENDING_CHECKS
from laios.execution.server import make_wsgi_app
from laios.execution.store import MetricStore
from laios.execution.web import WebConfig

bcrypt = pytest.importorskip("bcrypt")

USER, PASSWORD = "prometheus", "s3cret-scrape-password"
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
#: Generous: the machine is shared.
WAIT = 10.0


def basic(user: str, password: str) -> dict[str, str]:
    credentials = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {credentials}"}


class Checks:
    """Counts the bcrypt checks the endpoint runs, and can hold them until released."""

    def __init__(self) -> None:
        self.count = 0
        self.running = 0
        self.most_at_once = 0
        self.entered = threading.Event()
        self.release = threading.Event()
        self.release.set()
        self._lock = threading.Lock()
        self._real = bcrypt.checkpw

    def __call__(self, password: bytes, hashed: bytes) -> bool:
        with self._lock:
            self.count += 1
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        self.entered.set()
        try:
            self.release.wait(WAIT)
            return bool(self._real(password, hashed))
        finally:
            with self._lock:
                self.running -= 1


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> Iterator[Checks]:
    counter = Checks()
    monkeypatch.setattr(bcrypt, "checkpw", counter)
    yield counter
    counter.release.set()


def app_for(users: dict[str, str]) -> Callable[..., Answer]:
    wsgi = make_wsgi_app(
        MetricStore(), CollectorRegistry(), web_config=WebConfig(basic_auth_users=users)
    )
    return lambda headers: call_wsgi(wsgi, "GET", "/metrics", headers)


def test_the_right_password_is_checked_by_bcrypt_once(checks: Checks) -> None:
    """Ten scrapes with the right password run one bcrypt check: the rest are remembered."""
    call = app_for({USER: HASH})
    assert [call(basic(USER, PASSWORD)).status for _ in range(10)] == [200] * 10
    assert checks.count == 1


def test_a_flood_of_wrong_passwords_does_not_evict_the_right_one(checks: Checks) -> None:
    """More distinct wrong passwords than the cache holds leave the right one remembered."""
    call = app_for({USER: HASH})
    assert call(basic(USER, PASSWORD)).status == 200
    for attempt in range(CACHE_SIZE + 10):
        assert call(basic(USER, f"guess-{attempt}")).status == 401
    before = checks.count
    assert call(basic(USER, PASSWORD)).status == 200
    assert checks.count == before


def test_a_wrong_password_is_never_remembered_as_right(checks: Checks) -> None:
    """After the right password passed, wrong ones (repeated, or of another user) still fail."""
    call = app_for({USER: HASH, "grafana": HASH})
    assert call(basic(USER, PASSWORD)).status == 200
    for _ in range(3):
        assert call(basic(USER, PASSWORD + "x")).status == 401
        assert call(basic(USER, "")).status == 401
        assert call(basic("mallory", PASSWORD)).status == 401
    assert call(basic("grafana", PASSWORD)).status == 200


def test_remembered_passwords_are_bounded(checks: Checks) -> None:
    """With more users than the cache holds, the first user's password is checked again."""
    users = {f"user-{index}": HASH for index in range(CACHE_SIZE + 1)}
    call = app_for(users)
    for user in users:
        assert call(basic(user, PASSWORD)).status == 200
    assert checks.count == CACHE_SIZE + 1
    assert call(basic("user-0", PASSWORD)).status == 200
    assert checks.count == CACHE_SIZE + 2


def test_a_new_hash_is_not_served_from_the_old_one(checks: Checks) -> None:
    """A configuration with a new password refuses the old one, though it passed just before."""
    old = app_for({USER: HASH})
    assert old(basic(USER, PASSWORD)).status == 200
    new_hash = bcrypt.hashpw(b"the-new-password", bcrypt.gensalt(rounds=4)).decode()
    new = app_for({USER: new_hash})
    assert new(basic(USER, PASSWORD)).status == 401
    assert new(basic(USER, "the-new-password")).status == 200


def test_checks_beyond_the_limit_are_refused_at_once(
    checks: Checks, caplog: pytest.LogCaptureFixture
) -> None:
    """With MAX_PENDING_CHECKS bcrypt checks running or waiting, more get 503 without waiting
    (and one warning), and the checks run one at a time."""
    call = app_for({USER: HASH})
    checks.release.clear()
    extra = 3
    answers: list[Answer] = []
    answered = threading.Condition()

    def request(attempt: int) -> None:
        answer = call(basic(USER, f"flood-{attempt}"))
        with answered:
            answers.append(answer)
            answered.notify_all()

    threads = [
        threading.Thread(target=request, args=(attempt,), daemon=True)
        for attempt in range(MAX_PENDING_CHECKS + extra)
    ]
    try:
        for thread in threads:
            thread.start()
        with answered:
            answered.wait_for(lambda: len(answers) >= extra, WAIT)
            early: list[Any] = [answer.status for answer in answers]
        assert early == [503] * extra
        assert all(answer.header("retry-after") == "1" for answer in answers)
    finally:
        checks.release.set()
        for thread in threads:
            thread.join(WAIT)
    statuses = sorted(answer.status for answer in answers)
    assert statuses == [401] * MAX_PENDING_CHECKS + [503] * extra
    assert checks.most_at_once == 1
    assert checks.count == MAX_PENDING_CHECKS
    warnings = [r.getMessage() for r in caplog.records if "password checks" in r.getMessage()]
    assert len(warnings) == 1
