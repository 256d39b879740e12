"""The metrics endpoint cannot be starved: idle or slow clients, bursts, running out of fds.

- a client that sends nothing, or a byte at a time, is dropped after ``connection_timeout``;
- at ``max_connections``, an idle connection makes way for a new one, and when every
  connection is busy a new one is answered ``503`` within about half a second, not queued;
- scrapes stuck in a collector never keep ``/healthz`` out (a liveness probe), and a flood of
  slow ``/healthz`` connections does not start a thread each;
- accept() failing for lack of file descriptors backs off instead of spinning;
- the listen backlog holds a burst of 200 scrapes.

The last two run the server in a child process (its own fd limit; stopped with SIGSTOP).
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _scripts import script_env
from http_drivers import send_raw
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from laios.execution.server import MetricsServer, start_http_server
from laios.execution.store import MetricStore
from laios.execution.web import WebConfig

LINUX = sys.platform.startswith("linux")
#: Generous bounds: the tests run on loaded two-core machines.
ANSWER_WITHIN = 5.0


def get(url: str, timeout: float = ANSWER_WITHIN) -> tuple[int, dict[str, str], bytes]:
    """GET ``url``; (status, headers, body), HTTP errors included."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, dict(exc.headers), exc.read()


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=ANSWER_WITHIN)


def seconds_until_dropped(client: socket.socket, trickle: bytes = b"", limit: float = 5.0) -> float:
    """Send ``trickle`` one byte every 0.1 s until the server closes; return the seconds taken."""
    started = time.monotonic()
    sent = 0
    client.settimeout(0.1)
    while time.monotonic() - started < limit:
        try:
            if sent < len(trickle):
                client.sendall(trickle[sent : sent + 1])
                sent += 1
            if client.recv(1024) == b"":
                return time.monotonic() - started
        except TimeoutError:
            continue
        except OSError:  # reset or broken pipe: dropped as well
            return time.monotonic() - started
    return float("inf")


# -- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"connection_timeout": 0}, ValueError, "connection_timeout"),
        ({"connection_timeout": -1.0}, ValueError, "connection_timeout"),
        ({"connection_timeout": float("nan")}, ValueError, "connection_timeout"),
        ({"connection_timeout": float("inf")}, ValueError, "connection_timeout"),
        ({"connection_timeout": 1e9}, ValueError, "connection_timeout"),
        ({"connection_timeout": "10"}, TypeError, "connection_timeout"),
        ({"connection_timeout": True}, TypeError, "connection_timeout"),
        ({"max_connections": 0}, ValueError, "max_connections"),
        ({"max_connections": 2.5}, TypeError, "max_connections"),
        ({"max_connections": False}, TypeError, "max_connections"),
        ({"backlog": 0}, ValueError, "backlog"),
        ({"backlog": 1 << 40}, ValueError, "backlog"),
        ({"backlog": "128"}, TypeError, "backlog"),
    ],
)
def test_bad_limits_are_refused_with_a_clear_error(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    """Each limit is checked before anything is bound; the error names the parameter."""
    with pytest.raises(error, match=message):
        start_http_server(0, store=MetricStore(), registry=CollectorRegistry(), **kwargs)


def test_good_limits_are_accepted() -> None:
    """Small but valid limits start a server that answers."""
    with start_http_server(
        0,
        store=MetricStore(),
        registry=CollectorRegistry(),
        connection_timeout=0.5,
        max_connections=1,
        backlog=1,
    ) as server:
        assert get(server.url + "/healthz")[0] == 200


# -- slow and idle clients --------------------------------------------------------------------


@pytest.fixture
def quick_server() -> Iterator[MetricsServer]:
    """A server that drops a client after 0.5 s and serves at most 8 connections."""
    with start_http_server(
        0,
        store=MetricStore(),
        registry=CollectorRegistry(),
        connection_timeout=0.5,
        max_connections=8,
    ) as server:
        yield server


def test_a_silent_client_is_dropped_after_the_timeout(
    quick_server: MetricsServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A client that connects and sends nothing is closed after connection_timeout, quietly."""
    with connect(quick_server.port) as client:
        elapsed = seconds_until_dropped(client)
    assert 0.3 <= elapsed < 3.0
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_a_slowloris_client_is_dropped_after_the_timeout(
    quick_server: MetricsServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A client sending its request a byte at a time is closed after connection_timeout, not
    kept while the bytes keep trickling in; no warning or traceback is logged for it."""
    request = b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n" + b"X-Slow: " + b"a" * 200
    with connect(quick_server.port) as client:
        elapsed = seconds_until_dropped(client, trickle=request)
    assert 0.3 <= elapsed < 3.0
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_idle_connections_do_not_block_a_scrape(quick_server: MetricsServer) -> None:
    """100 idle connections against a cap of 8: a real scrape still answers 200, promptly."""
    idle: list[socket.socket] = []
    try:
        for _ in range(100):
            idle.append(connect(quick_server.port))
        started = time.monotonic()
        status, _, body = get(quick_server.url + "/metrics")
        elapsed = time.monotonic() - started
    finally:
        for client in idle:
            client.close()
    assert status == 200
    assert b"laios_executor_workers" in body
    assert elapsed < ANSWER_WITHIN


class BlockingCollector(Collector):
    """A collector whose collect() waits for ``release``: it keeps scrapes busy."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Semaphore(0)

    def collect(self) -> Iterable[Metric]:
        self.entered.release()
        self.release.wait(ANSWER_WITHIN)
        yield GaugeMetricFamily("app_blocked", "A gauge behind a slow collector.", value=1.0)


def test_beyond_the_cap_busy_connections_get_503_quickly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """When every connection is rendering a request, new scrapes get 503 quickly (not
    queued), one warning is logged for all of them, and the server serves again as soon as a
    slot frees. (``/healthz`` is answered meanwhile: see the test after next.)"""
    registry = CollectorRegistry()
    blocking = BlockingCollector()
    registry.register(blocking)
    results: list[int] = []
    with start_http_server(0, store=MetricStore(), registry=registry, max_connections=2) as server:
        scrapes = [
            threading.Thread(target=lambda: results.append(get(server.url + "/metrics")[0]))
            for _ in range(2)
        ]
        try:
            for thread in scrapes:
                thread.start()
            for _ in scrapes:
                assert blocking.entered.acquire(timeout=ANSWER_WITHIN)
            started = time.monotonic()
            status, headers, _ = get(server.url + "/metrics")
            refused_in = time.monotonic() - started
            more = [get(server.url + "/status")[0] for _ in range(3)]
        finally:
            blocking.release.set()
            for thread in scrapes:
                thread.join(ANSWER_WITHIN)
        assert status == 503
        assert headers.get("Retry-After") == "1"
        assert headers.get("X-Content-Type-Options") == "nosniff"
        assert refused_in < 2.0
        assert more == [503, 503, 503]
        warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(warnings) == 1
        assert "max_connections" in warnings[0].getMessage()
        assert results == [200, 200]
        assert get(server.url + "/healthz")[0] == 200


class HangingCollector(Collector):
    """A collector whose collect() never returns until ``release`` is set: a scrape of it
    holds its connection for good, as a user's collector stuck on a hung resource does."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Semaphore(0)

    def collect(self) -> Iterable[Metric]:
        self.entered.release()
        self.release.wait()
        yield GaugeMetricFamily("app_hung", "A gauge behind a hung collector.", value=1.0)


def connection_threads(server: MetricsServer) -> list[threading.Thread]:
    """The threads serving ``server``'s connections."""
    name = f"laios-metrics-{server.port}-connection"
    return [thread for thread in threading.enumerate() if thread.name == name]


@contextlib.contextmanager
def stuck_scrapes(count: int, **options: Any) -> Iterator[MetricsServer]:
    """A server whose every one of ``count`` scrapes of ``/metrics`` is stuck in a collector
    that never returns (``max_connections`` is ``count`` unless ``options`` say otherwise);
    the collector is released at the end, and no connection thread outlives the server."""
    registry = CollectorRegistry()
    hanging = HangingCollector()
    registry.register(hanging)
    options.setdefault("max_connections", count)
    server = start_http_server(0, store=MetricStore(), registry=registry, **options)
    scrapes = [
        threading.Thread(target=get, args=(server.url + "/metrics", 60.0), daemon=True)
        for _ in range(count)
    ]
    try:
        for thread in scrapes:
            thread.start()
        for _ in scrapes:
            assert hanging.entered.acquire(timeout=ANSWER_WITHIN)
        yield server
    finally:
        hanging.release.set()
        for thread in scrapes:
            thread.join(ANSWER_WITHIN)
        server.shutdown()
    assert not any(thread.is_alive() for thread in scrapes)
    assert connection_threads(server) == []


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_healthz_is_answered_while_every_scrape_is_stuck(method: str) -> None:
    """With every one of ``max_connections`` scrapes stuck in a collector that never returns,
    ``/healthz`` is still answered ``200`` promptly: a liveness probe does not restart a
    process that serves its work for a stuck metrics collector. It was answered ``503``, as
    any connection beyond the limit."""
    with stuck_scrapes(4) as server:
        for _ in range(3):
            started = time.monotonic()
            answer = send_raw(
                server.port, f"{method} /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n".encode()
            )
            assert answer.startswith(b"HTTP/1.0 200 "), answer[:200]
            assert time.monotonic() - started < ANSWER_WITHIN
            assert answer.endswith(b"\r\n\r\n" if method == "HEAD" else b"\r\n\r\nok\n")
        # (a scrape beyond the limit is still refused, quickly)
        status, headers, _ = get(server.url + "/metrics")
        assert status == 503
        assert headers.get("Retry-After") == "1"


#: Connections of the flood below. Where a connection's idle time cannot be read (not Linux),
#: each one past the limit waits for an idle one to have been open ``_IDLE_GRACE`` (0.1 s)
#: before it is dropped, two slots rotating here, so the probe behind them waits about 0.05 s
#: per connection: 60 took 3.0 s on an idle host, too near ``ANSWER_WITHIN`` for a loaded one.
FLOOD = 30


def test_a_flood_of_slow_healthz_connections_stays_bounded() -> None:
    """With every scrape stuck, a flood of connections sending ``/healthz`` without ever
    ending the request neither starts a thread each nor keeps a prompt ``/healthz`` out: the
    server serves at most two connections beyond ``max_connections`` (dropping the idle ones),
    and a probe is answered ``200``."""
    clients: list[socket.socket] = []
    peak = 0
    with stuck_scrapes(2, connection_timeout=30) as server:
        try:
            for _ in range(FLOOD):
                client = connect(server.port)
                clients.append(client)
                client.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")
                peak = max(peak, len(connection_threads(server)))
            started = time.monotonic()
            status, _, body = get(server.url + "/healthz")
            elapsed = time.monotonic() - started
            peak = max(peak, len(connection_threads(server)))
        finally:
            for client in clients:
                client.close()
    assert (status, body) == (200, b"ok\n")
    assert elapsed < ANSWER_WITHIN
    # (the two stuck scrapes, two more, and a thread or two ending as their slot is freed)
    assert peak <= 2 + 2 + 2, peak


#: Connections opened in a burst ahead of the probe below: the old server waited for each to
#: have been open ``_IDLE_GRACE`` (0.1 s) after it took it in before dropping it for the next,
#: so the probe behind 40 waited 4 s with one slot.
BURST = 40


@pytest.mark.skipif(not LINUX, reason="a connection's idle time is read from Linux' TCP_INFO")
@pytest.mark.parametrize(
    "sent", [b"", b"GET /metrics HTTP/1.1\r\nHost: localho"], ids=["nothing", "part of a request"]
)
def test_healthz_behind_a_burst_of_idle_connections_is_answered_promptly(sent: bytes) -> None:
    """A burst of connections that send nothing (or part of a request, then stall) delayed a
    ``/healthz`` behind them by 0.1 s each over ``max_connections``: each was taken in, then
    given 0.1 s to send before it was dropped for the next, though it had waited longer than
    that to be taken in. The time a connection waited is counted: the probe is answered in
    about 0.1 s, however many came before it."""
    with start_http_server(
        0,
        store=MetricStore(),
        registry=CollectorRegistry(),
        max_connections=1,
        connection_timeout=30,
    ) as server:
        clients: list[socket.socket] = []
        try:
            for _ in range(BURST):
                client = connect(server.port)
                clients.append(client)
                client.sendall(sent)
            started = time.monotonic()
            status, _, body = get(server.url + "/healthz")
            elapsed = time.monotonic() - started
        finally:
            for client in clients:
                client.close()
    assert (status, body) == (200, b"ok\n")
    assert elapsed < 1.5, f"/healthz took {elapsed:.2f} s behind {BURST} idle connections"


def _answer_beyond_the_limit(request: bytes, **options: Any) -> bytes:
    """What a server of ``max_connections=1`` answers ``request`` (a scrape) on a second
    connection, while a scrape holds the first (each call a fresh server: the first request
    refused waits for a place, so its request has arrived when it is answered)."""
    registry = CollectorRegistry()
    blocking = BlockingCollector()
    registry.register(blocking)
    with start_http_server(
        0, store=MetricStore(), registry=registry, max_connections=1, **options
    ) as server:
        scrape = threading.Thread(target=get, args=(server.url + "/metrics",))
        try:
            scrape.start()
            assert blocking.entered.acquire(timeout=ANSWER_WITHIN)
            with connect(server.port) as client:
                client.sendall(request)
                answer = b""
                while chunk := client.recv(65536):
                    answer += chunk
        finally:
            blocking.release.set()
            scrape.join(ANSWER_WITHIN)
    return answer


def test_the_503_at_the_connection_limit_carries_the_configured_headers() -> None:
    """The ``503`` of a connection beyond ``max_connections`` carries the web configuration's
    headers, as every other answer does, and ``nosniff`` once."""
    config = WebConfig(headers={"X-Frame-Options": "deny", "X-Content-Type-Options": "nosniff"})
    answer = _answer_beyond_the_limit(
        b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n", web_config=config
    )
    lines = answer.partition(b"\r\n\r\n")[0].split(b"\r\n")
    assert lines[0] == b"HTTP/1.0 503 Service Unavailable", lines
    assert lines.count(b"X-Frame-Options: deny") == 1, lines
    assert lines.count(b"X-Content-Type-Options: nosniff") == 1, lines
    # (as the apps' 503 says, and every other 503 of the server: it lacked it)
    assert lines.count(b"Cache-Control: no-store") == 1, lines


@pytest.mark.parametrize(
    "start", [b"HEAD /", b"HEAD\t/", b"\r\n HEAD /"], ids=["head", "tab", "empty-line-space"]
)
def test_the_503_at_the_connection_limit_to_a_head_request_has_no_body(start: bytes) -> None:
    """A ``HEAD`` request beyond ``max_connections`` gets the ``503`` headers without the body
    (``Content-Length`` still says its size, as for ``GET``): a body after the headers of an
    answer to ``HEAD`` is read as the start of the next answer. It got the JSON body; and
    then, once a ``HEAD `` request got none, one whose words are parted by a tab, or that
    begins with a space after an empty line, still got it, though the server answers such a
    request as ``HEAD`` when it serves it."""
    answer = _answer_beyond_the_limit(start + b"metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 503 Service Unavailable\r\n"), answer
    assert b"\r\nContent-Length: " in head
    assert body == b"", answer


def test_shutdown_closes_the_connections_being_served(wait_until: Any) -> None:
    """A connection still sending its request when the server shuts down is closed, not
    answered afterwards, and its thread does not outlive shutdown()."""
    server = start_http_server(
        0, store=MetricStore(), registry=CollectorRegistry(), connection_timeout=60
    )
    before = set(threading.enumerate())
    with connect(server.port) as client:
        client.sendall(b"GET /metr")
        assert wait_until(lambda: len(set(threading.enumerate()) - before) == 1)
        (handler,) = set(threading.enumerate()) - before
        server.shutdown()
        assert not handler.is_alive()
        with contextlib.suppress(OSError):
            client.sendall(b"ics HTTP/1.1\r\n\r\n")
        client.settimeout(ANSWER_WITHIN)
        try:
            answer = client.recv(1024)
        except ConnectionResetError:
            answer = b""
        assert answer == b""


# -- the server in a child process ------------------------------------------------------------

_SERVER = """
import resource, sys
from prometheus_client import CollectorRegistry
from laios.execution.server import start_http_server
from laios.execution.store import MetricStore

limit = int(sys.argv[1])
if limit:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
server = start_http_server(0, store=MetricStore(), registry=CollectorRegistry())
print(server.port, flush=True)
sys.stdin.read()
server.shutdown()
"""


@contextlib.contextmanager
def child_server(tmp_path: Path, fd_limit: int = 0) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """Run a default server in a child process; yield the process and its port."""
    stderr = (tmp_path / "server.stderr").open("w")
    process = subprocess.Popen(
        [sys.executable, "-c", _SERVER, str(fd_limit)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=stderr,
        env=script_env(),
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.strip():
            process.wait(10)
            pytest.fail(f"the server did not start:\n{(tmp_path / 'server.stderr').read_text()}")
        yield process, int(line)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGCONT)
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        if process.stdout is not None:
            process.stdout.close()
        stderr.close()


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process ``pid`` (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def open_fds(pid: int) -> int:
    """How many file descriptors process ``pid`` has open."""
    return len(os.listdir(f"/proc/{pid}/fd"))


@pytest.mark.skipif(not LINUX, reason="needs RLIMIT_NOFILE and /proc")
def test_running_out_of_file_descriptors_does_not_spin(tmp_path: Path) -> None:
    """With 64 fds and 100 idle clients, accept() fails with EMFILE: the server backs off
    (little CPU) and logs it once, and it answers again once the clients have gone."""
    with child_server(tmp_path, fd_limit=64) as (process, port):
        idle: list[socket.socket] = []
        try:
            for _ in range(100):
                try:
                    idle.append(socket.create_connection(("127.0.0.1", port), timeout=2.5))
                except OSError:  # the listen backlog is full: enough clients
                    break
            deadline = time.monotonic() + 2.0
            while open_fds(process.pid) < 64 and time.monotonic() < deadline:
                time.sleep(0.05)  # the server takes what it can, up to the limit
            assert open_fds(process.pid) == 64, "the server never reached its fd limit"
            before = cpu_seconds(process.pid)
            time.sleep(1.0)
            used = cpu_seconds(process.pid) - before
        finally:
            for client in idle:
                client.close()
        status, _, body = get(f"http://127.0.0.1:{port}/metrics")
    assert used < 0.15, f"the server used {used:.2f}s of CPU in 1s while out of fds"
    assert status == 200
    assert b"laios_executor_workers" in body
    log = (tmp_path / "server.stderr").read_text()
    assert log.count("file descriptors") == 1, log


def burst(port: int, count: int, resume: Any) -> tuple[list[int], float]:
    """Open ``count`` connections at once and GET /metrics on each; call ``resume()`` 0.3 s
    later; return the status codes received within ANSWER_WITHIN s of it, and the slowest."""
    selector = selectors.DefaultSelector()
    request = b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n"
    answers: dict[socket.socket, bytes] = {}
    for _ in range(count):
        client = socket.socket()
        client.setblocking(False)
        client.connect_ex(("127.0.0.1", port))
        selector.register(client, selectors.EVENT_WRITE)
    started = time.monotonic()
    resumed_at: float | None = None
    slowest = 0.0
    try:
        while selector.get_map() and (
            resumed_at is None or time.monotonic() - resumed_at < ANSWER_WITHIN
        ):
            if resumed_at is None and time.monotonic() - started > 0.3:
                resume()
                resumed_at = time.monotonic()
            for key, events in selector.select(0.05):
                client = key.fileobj
                assert isinstance(client, socket.socket)
                if events & selectors.EVENT_WRITE:
                    answers[client] = b""
                    try:
                        client.send(request)
                    except OSError:  # refused or reset: no answer
                        selector.unregister(client)
                        continue
                    selector.modify(client, selectors.EVENT_READ)
                    continue
                try:
                    chunk = client.recv(65536)
                except OSError:
                    chunk = b""
                answers[client] += chunk
                if not chunk:
                    selector.unregister(client)
                    slowest = time.monotonic() - (resumed_at or started)
    finally:
        for key in list(selector.get_map().values()):
            selector.unregister(key.fileobj)
        for client in answers:
            client.close()
        selector.close()
    statuses = [int(reply.split(b" ", 2)[1]) for reply in answers.values() if reply]
    return statuses, slowest


@pytest.mark.skipif(not LINUX, reason="stops the server process with SIGSTOP")
def test_a_burst_of_200_scrapes_is_answered(tmp_path: Path) -> None:
    """200 scrapes arrive while the server is busy (stopped): the listen backlog holds them
    (none waits on SYN retries), and all are answered 200 within a few seconds."""
    with child_server(tmp_path) as (process, port):
        os.kill(process.pid, signal.SIGSTOP)
        statuses, slowest = burst(port, 200, lambda: os.kill(process.pid, signal.SIGCONT))
    assert len(statuses) == 200, f"{len(statuses)} of 200 answered; slowest {slowest:.1f}s"
    assert set(statuses) == {200}
    assert slowest < ANSWER_WITHIN


def test_a_connection_without_a_thread_gets_503_and_shutdown_still_works(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """When no thread can be started for a connection (a container's pids limit,
    RLIMIT_NPROC), the connection gets 503 and a warning is logged; the server serves again
    once threads can be had, and shutdown() works (it raised "cannot join thread before it is
    started", leaving the other connections open)."""
    start = threading.Thread.start

    def no_connection_thread(thread: threading.Thread) -> None:
        if thread.name.endswith("-connection"):
            raise RuntimeError("can't start new thread")
        start(thread)

    server = start_http_server(0, store=MetricStore(), registry=CollectorRegistry())
    try:
        with monkeypatch.context() as patch:
            patch.setattr(threading.Thread, "start", no_connection_thread)
            status, headers, _ = get(server.url + "/healthz")
        assert status == 503
        assert headers.get("Retry-After") == "1"
        warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert any("thread" in message for message in warnings), warnings
        assert get(server.url + "/healthz")[0] == 200
    finally:
        server.shutdown()
