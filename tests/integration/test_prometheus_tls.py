"""A real Prometheus scrapes the endpoint over TLS with credentials, as it would in a cluster.

One endpoint (``start_http_server`` with a web configuration file: a certificate made by the
test, a bcrypt user and a bearer token) and one Prometheus with four jobs against it: basic
authentication, a bearer token, a bearer token to the target named ``localhost``, and a wrong
password. The first three must be up (the first with ``laios_tasks_total`` queryable); the
last must be down; a request without credentials gets ``401`` and no data.
"""

from __future__ import annotations

import base64
import json
import ssl
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry
from service_support import NO_PROXY, stop, wait_for

from laios.execution.server import MetricsServer, start_http_server
from laios.execution.store import MetricStore
from laios.execution.web import hash_password

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from tls_certs import Authority, authority

pytestmark = pytest.mark.integration

USER, PASSWORD = "prometheus", "scrape-password-for-the-test"
TOKEN = "5d41402abc4b2a76b9719d911017c592"


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Authority:
    return authority(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def endpoint(ca: Authority, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MetricsServer]:
    """The endpoint over HTTPS, from a web configuration file, with a few finished tasks."""
    directory = tmp_path_factory.mktemp("web")
    server_cert = ca.issue(directory, "laios endpoint", server=True)
    (directory / "token").write_text(TOKEN + "\n", encoding="utf-8")
    config = {
        "tls_server_config": {
            "cert_file": server_cert.cert_file.name,
            "key_file": server_cert.key_file.name,
        },
        "basic_auth_users": {USER: hash_password(PASSWORD, cost=4)},
        "bearer_token_file": "token",
    }
    (directory / "web.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    store = MetricStore()
    slot = store.tool_slot("fetch", True)
    for index in range(3):
        record = store.task_submitted(
            None, SimpleNamespace(id=f"t-{index}"), "fetch", slot, running=True
        )
        store.task_finished(record, status=None, outcome="success")
    with start_http_server(
        0, store=store, registry=CollectorRegistry(), web_config=directory / "web.yml"
    ) as server:
        yield server


@pytest.fixture(scope="module")
def prometheus(
    prometheus_binary: str,
    endpoint: MetricsServer,
    ca: Authority,
    tmp_path_factory: pytest.TempPathFactory,
    free_port: Callable[[], int],
) -> Iterator[str]:
    """Prometheus scraping the endpoint every second with four jobs; its URL."""
    directory = tmp_path_factory.mktemp("prometheus")
    target = {"targets": [f"127.0.0.1:{endpoint.port}"]}
    tls = {"ca_file": str(ca.cert_file)}
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
        "scrape_configs": [
            {
                "job_name": "laios-basic",
                "scheme": "https",
                "tls_config": tls,
                "basic_auth": {"username": USER, "password": PASSWORD},
                "static_configs": [target],
            },
            {
                "job_name": "laios-bearer",
                "scheme": "https",
                "tls_config": tls,
                "authorization": {"type": "Bearer", "credentials": TOKEN},
                "static_configs": [target],
            },
            {
                # By name: the Host header then says localhost:PORT, which the server, on
                # loopback only, must accept (it refuses other names against DNS rebinding).
                "job_name": "laios-localhost",
                "scheme": "https",
                "tls_config": tls,
                "authorization": {"type": "Bearer", "credentials": TOKEN},
                "static_configs": [{"targets": [f"localhost:{endpoint.port}"]}],
            },
            {
                "job_name": "laios-wrong-password",
                "scheme": "https",
                "tls_config": tls,
                "basic_auth": {"username": USER, "password": "not-the-password"},
                "static_configs": [target],
            },
        ],
    }
    (directory / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    port = free_port()
    log = directory / "prometheus.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                prometheus_binary,
                f"--config.file={directory / 'prometheus.yml'}",
                f"--storage.tsdb.path={directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    url = f"http://127.0.0.1:{port}"
    try:

        def ready() -> bool:
            if process.poll() is not None:
                pytest.fail(f"prometheus exited early:\n{log.read_text()[-2000:]}")
            with NO_PROXY.open(f"{url}/-/ready", timeout=2) as response:
                return bool(response.status == 200)

        wait_for("Prometheus to be ready", ready)
        yield url
    finally:
        stop(process)


def api(url: str, path: str, **params: str) -> dict[str, Any]:
    with NO_PROXY.open(f"{url}{path}?{urllib.parse.urlencode(params)}", timeout=10) as response:
        document: dict[str, Any] = json.load(response)
    return document


def target(url: str, job: str) -> dict[str, Any] | None:
    """Prometheus' target of ``job`` once it has been scraped, else ``None``."""
    active = api(url, "/api/v1/targets", state="active")["data"]["activeTargets"]
    for candidate in active:
        if candidate["labels"]["job"] == job and candidate["health"] != "unknown":
            return dict(candidate)
    return None


def is_up(url: str, job: str) -> bool:
    scraped = target(url, job)
    return scraped is not None and scraped["health"] == "up"


def test_prometheus_scrapes_over_tls_with_basic_auth(prometheus: str) -> None:
    """The basic-auth job is up, and laios_tasks_total is queryable from it."""
    wait_for("the basic-auth job to be up", lambda: is_up(prometheus, "laios-basic"))

    def counted() -> list[Any]:
        query = 'laios_tasks_total{job="laios-basic",tool="fetch",outcome="success"}'
        return list(api(prometheus, "/api/v1/query", query=query)["data"]["result"])

    (series,) = wait_for("laios_tasks_total from the basic-auth job", counted)
    assert float(series["value"][1]) == 3.0


def test_prometheus_scrapes_over_tls_with_a_bearer_token(prometheus: str) -> None:
    """The bearer-token job (``authorization``) is up too."""
    wait_for("the bearer-token job to be up", lambda: is_up(prometheus, "laios-bearer"))


def test_prometheus_scrapes_by_the_name_localhost(prometheus: str) -> None:
    """A target named localhost:PORT is up: its Host header names loopback."""
    wait_for("the localhost job to be up", lambda: is_up(prometheus, "laios-localhost"))


def test_a_wrong_password_leaves_the_target_down(prometheus: str) -> None:
    """With a wrong password Prometheus gets 401: the target is down and says so."""
    job = wait_for(
        "the wrong-password job to be scraped",
        lambda: target(prometheus, "laios-wrong-password"),
    )
    assert job["health"] == "down"
    assert "401" in job["lastError"]


def test_a_request_without_credentials_gets_401_and_no_data(
    endpoint: MetricsServer, ca: Authority
) -> None:
    """Over the same TLS, a request without credentials gets 401 and no metric."""
    context = ssl.create_default_context(cafile=str(ca.cert_file))
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        opener.open(f"{endpoint.url}/metrics", timeout=10)
    with caught.value as answer:
        assert answer.code == 401
        assert answer.headers.get_all("WWW-Authenticate")
        assert b"laios_" not in answer.read()
    credentials = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    request = urllib.request.Request(
        f"{endpoint.url}/metrics", headers={"Authorization": f"Basic {credentials}"}
    )
    with opener.open(request, timeout=10) as response:
        assert b"laios_tasks_total" in response.read()
