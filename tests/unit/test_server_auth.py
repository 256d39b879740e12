"""Basic authentication and bearer tokens, the same in the WSGI app, the ASGI app and the server.

Without valid credentials a request gets ``401`` with ``WWW-Authenticate`` and no data;
``/healthz`` stays open. Password checks are cached so that a scrape every few seconds does not
cost a bcrypt hash each time.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from types import SimpleNamespace

import pytest
from http_drivers import Answer, call_asgi, call_http, call_wsgi
from prometheus_client import CollectorRegistry

from laios.execution._auth import CACHE_SIZE, Authenticator
from laios.execution.server import make_asgi_app, make_wsgi_app, start_http_server
from laios.execution.store import MetricStore
from laios.execution.web import WebConfig

bcrypt = pytest.importorskip("bcrypt")

USER, PASSWORD = "prometheus", "s3cret-scrape-password"
TOKEN = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
CONFIG = WebConfig(
    basic_auth_users={USER: HASH},
    bearer_tokens=[TOKEN],
    headers={"X-Content-Type-Options": "nosniff"},
)
Call = Callable[..., Answer]


def basic(user: str, password: str) -> dict[str, str]:
    credentials = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {credentials}"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(params=["wsgi", "asgi", "server"])
def call(request: pytest.FixtureRequest) -> Iterator[Call]:
    """One request at a time to an endpoint that requires credentials, served one way."""
    store, registry = MetricStore(), CollectorRegistry()
    slot = store.tool_slot("fetch", True)
    record = store.task_submitted(
        store.new_scope(), SimpleNamespace(id="task-secret-id"), "fetch", slot, running=True
    )
    store.task_finished(record, status=None, outcome="success")
    if request.param == "server":
        with start_http_server(0, store=store, registry=registry, web_config=CONFIG) as server:
            yield lambda *args, **kwargs: call_http(server.url, *args, **kwargs)
        return
    if request.param == "wsgi":
        wsgi = make_wsgi_app(store, registry, web_config=CONFIG)
        yield lambda *args, **kwargs: call_wsgi(wsgi, *args, **kwargs)
        return
    asgi = make_asgi_app(store, registry, web_config=CONFIG)
    yield lambda *args, **kwargs: call_asgi(asgi, *args, **kwargs)


def assert_refused(answer: Answer) -> None:
    assert answer.status == 401
    assert answer.headers["www-authenticate"] == [
        'Basic realm="laios", charset="UTF-8"',
        'Bearer realm="laios"',
    ]
    assert b"laios_" not in answer.body
    assert b"fetch" not in answer.body


def test_the_right_password_gets_the_metrics(call: Call) -> None:
    """Basic credentials of a configured user get /metrics."""
    answer = call(headers=basic(USER, PASSWORD))
    assert answer.status == 200
    assert b'laios_tasks_total{outcome="success",tool="fetch"} 1.0' in answer.body


def test_the_right_token_gets_the_status(call: Call) -> None:
    """A configured bearer token gets /status."""
    answer = call(path="/status", headers=bearer(TOKEN))
    assert answer.status == 200
    assert json.loads(answer.body)["tools"][0]["tool"] == "fetch"


def test_the_scheme_name_is_case_insensitive(call: Call) -> None:
    """``bearer`` in lower case is the same scheme (RFC 9110)."""
    assert call(headers={"Authorization": f"bearer {TOKEN}"}).status == 200


@pytest.mark.parametrize("path", ["/metrics", "/status"])
def test_no_credentials_get_401_and_no_data(call: Call, path: str) -> None:
    """Without Authorization: 401, both challenges, no metric and no task."""
    answer = call(path=path)
    assert_refused(answer)
    assert json.loads(answer.body) == {"error": "unauthorized"}


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(basic(USER, "wrong-password"), id="wrong-password"),
        pytest.param(basic("mallory", PASSWORD), id="unknown-user"),
        pytest.param(bearer(TOKEN[:-1] + "1"), id="wrong-token"),
        pytest.param(bearer(HASH), id="hash-as-token"),
        pytest.param({"Authorization": f"Basic {TOKEN}"}, id="token-as-basic"),
        pytest.param({"Authorization": "Basic !!not-base64!!"}, id="not-base64"),
        pytest.param(
            {"Authorization": "Basic " + base64.b64encode(b"nocolon").decode()}, id="no-colon"
        ),
        pytest.param({"Authorization": f"Digest {TOKEN}"}, id="other-scheme"),
        pytest.param({"Authorization": ""}, id="empty"),
    ],
)
def test_bad_credentials_get_401_and_no_data(call: Call, headers: dict[str, str]) -> None:
    """Wrong, unknown or malformed credentials are refused like missing ones."""
    assert_refused(call(headers=headers))


def test_head_without_credentials_gets_401_without_a_body(call: Call) -> None:
    """HEAD is refused too, and its answer has no body."""
    answer = call(method="HEAD", path="/status")
    assert answer.status == 401
    assert answer.body == b""


def test_head_with_credentials_gets_the_headers_only(call: Call) -> None:
    """An authenticated HEAD gets 200, the GET's Content-Length and no body."""
    get = call(headers=bearer(TOKEN))
    head = call(method="HEAD", headers=bearer(TOKEN))
    assert head.status == 200
    assert head.body == b""
    assert head.header("content-length") == str(len(get.body))


def test_an_unknown_path_without_credentials_gets_401_not_404(call: Call) -> None:
    """A client without credentials cannot even learn which paths exist."""
    assert_refused(call(path="/admin"))


def test_healthz_needs_no_credentials(call: Call) -> None:
    """/healthz (it says only ``ok``) answers probes that carry no credentials."""
    answer = call(path="/healthz")
    assert (answer.status, answer.body) == (200, b"ok\n")


def test_configured_headers_are_on_every_answer(call: Call) -> None:
    """http_server_config.headers are sent with 200 and 401 answers alike."""
    assert call(headers=bearer(TOKEN)).header("x-content-type-options") == "nosniff"
    assert call().header("x-content-type-options") == "nosniff"


# -- the authenticator ------------------------------------------------------------------------


def test_a_scrape_every_few_seconds_costs_one_bcrypt_check() -> None:
    """Ten requests with the same password run bcrypt once; the rest come from the cache."""
    authenticator = Authenticator({USER: HASH}, ())
    header = basic(USER, PASSWORD)["Authorization"]
    assert all(authenticator.allows(header) for _ in range(10))
    assert authenticator.bcrypt_checks == 1


def test_a_wrong_password_is_cached_as_wrong() -> None:
    """A cached failure stays a failure (and costs no second bcrypt check)."""
    authenticator = Authenticator({USER: HASH}, ())
    header = basic(USER, "wrong")["Authorization"]
    assert not any(authenticator.allows(header) for _ in range(3))
    assert authenticator.bcrypt_checks == 1


def test_an_unknown_user_costs_a_bcrypt_check_too() -> None:
    """An unknown user is checked against a fixed hash: the time does not reveal users."""
    authenticator = Authenticator({USER: HASH}, ())
    assert not authenticator.allows(basic("mallory", PASSWORD)["Authorization"])
    assert authenticator.bcrypt_checks == 1


def test_an_unknown_user_is_checked_at_the_users_bcrypt_cost() -> None:
    """An unknown user costs a hash of the configured users' cost (4 here), not a fixed one,
    so the time taken does not tell known and unknown users apart."""
    authenticator = Authenticator({USER: HASH}, ())
    real, costs = authenticator._bcrypt, []

    def checkpw(password: bytes, hashed: bytes) -> bool:
        costs.append(hashed[:7])
        return bool(real.checkpw(password, hashed))

    authenticator._bcrypt = SimpleNamespace(checkpw=checkpw)
    assert not authenticator.allows(basic("mallory", PASSWORD)["Authorization"])
    assert not authenticator.allows(basic(USER, "wrong")["Authorization"])
    assert costs == [HASH[:7].encode()] * 2


def test_the_cache_is_bounded_and_holds_no_password() -> None:
    """Many different passwords keep at most CACHE_SIZE failures, none of them a password."""
    authenticator = Authenticator({USER: HASH}, ())
    assert authenticator.allows(basic(USER, PASSWORD)["Authorization"])
    for attempt in range(CACHE_SIZE + 20):
        authenticator.allows(basic(USER, f"guess-{attempt}")["Authorization"])
    assert len(authenticator._failed) == CACHE_SIZE
    remembered = [*authenticator._passed, *authenticator._failed]
    assert all(b"guess" not in key and PASSWORD.encode() not in key for key in remembered)


def test_a_password_longer_than_bcrypt_reads_is_refused() -> None:
    """bcrypt reads 72 bytes: a longer password sharing them must not pass for the real one."""
    long_password = "p" * 72
    hashed = bcrypt.hashpw(long_password.encode(), bcrypt.gensalt(rounds=4)).decode()
    authenticator = Authenticator({USER: hashed}, ())
    assert authenticator.allows(basic(USER, long_password)["Authorization"])
    assert not authenticator.allows(basic(USER, long_password + "-and-more")["Authorization"])


def test_an_htpasswd_hash_is_accepted() -> None:
    """A ``$2y$`` hash as htpasswd writes it (exporter-toolkit's docs) checks its password."""
    hashed = bcrypt.hashpw(b"pw-from-htpasswd", bcrypt.gensalt(rounds=4)).decode()
    authenticator = Authenticator({USER: "$2y$" + hashed[4:]}, ())
    assert authenticator.allows(basic(USER, "pw-from-htpasswd")["Authorization"])


def test_without_users_or_tokens_everyone_is_let_in() -> None:
    """No credentials configured: nothing is asked and no challenge is sent."""
    authenticator = Authenticator({}, ())
    assert authenticator.allows("")
    assert authenticator.challenges == ()
