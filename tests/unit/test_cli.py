"""Tests for laios.cli: `laios status` rendering, live and dead endpoints, and `laios demo`."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
from cli_runs import interrupting_sleep, status_error
from command_output import run_to_a_full_disk, run_to_a_gone_reader, run_with_stdout_closed
from prometheus_client import CollectorRegistry
from tcp_servers import serving

import laios
from laios import cli
from laios.cli import format_seconds, main, progress_bar, render_status, status_url, watch_status
from laios.execution.monitor import ProgressStatus, ProgressUpdate
from laios.execution.server import MetricsServer, start_http_server
from laios.execution.store import MetricStore

DOCUMENT: dict[str, Any] = {
    "generated_at": "2025-01-01T00:00:00.000Z",
    "running": [
        {
            "task_id": "t-1",
            "tool": "fetch",
            "state": "running",
            "elapsed_seconds": 1.5,
            "progress_percent": 52.0,
            "message": "page 3 of 6",
        }
    ],
    "running_total": 1,
    "tools": [
        {
            "tool": "fetch",
            "total": 100,
            "outcomes": {"success": 90, "error": 8, "timeout": 2, "cancelled": 0, "rejected": 0},
            "error_rate": 0.1,
            "p50_seconds": 0.012,
            "p95_seconds": 0.25,
        }
    ],
    "workers": 4,
    "busy_workers": 2,
    "queue_depth": 3,
    "abandoned_threads": 1,
}


@pytest.fixture
def store() -> MetricStore:
    return MetricStore()


@pytest.fixture
def server(store: MetricStore) -> Iterator[MetricsServer]:
    slot = store.tool_slot("fetch", True)
    for index in range(3):
        rec = store.task_submitted(
            None, SimpleNamespace(id=str(index)), "fetch", slot, running=True
        )
        store.task_finished(rec, outcome="success", status=None)
    rec = store.task_submitted(
        store.new_scope(), SimpleNamespace(id="live"), "fetch", slot, running=True
    )
    store.record_progress(ProgressUpdate("live", ProgressStatus.IN_PROGRESS, 52.0, "halfway"), rec)
    with start_http_server(0, store=store, registry=CollectorRegistry()) as running:
        yield running


@pytest.fixture
def dead_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


Respond = Callable[[socket.socket, threading.Event], None]

#: The first byte of a TLS handshake record: what a ClientHello starts with. ``laios status``
#: sends one to an endpoint that gave no readable HTTP answer, to learn whether it speaks TLS;
#: the raw servers close such a connection at once, as an HTTP server does, rather than wait
#: for a request's end that never comes until the check gives up (2 s).
TLS_HANDSHAKE = b"\x16"


@pytest.fixture
def raw_server() -> Iterator[Callable[[Respond], str]]:
    """Start a one-connection-at-a-time TCP server; ``respond`` writes the whole answer (once
    the request's head is read)."""
    stop = threading.Event()
    with contextlib.ExitStack() as servers:

        def start(respond: Respond) -> str:
            def handle(conn: socket.socket) -> None:
                request = b""
                while b"\r\n\r\n" not in request:
                    chunk = conn.recv(4096)
                    if not request and chunk[:1] == TLS_HANDSHAKE:
                        return  # (status asks whether TLS is spoken here: it is not)
                    if not chunk:
                        break
                    request += chunk
                respond(conn, stop)

            return f"http://127.0.0.1:{servers.enter_context(serving(handle))}"

        yield start
        stop.set()


def _dribble(data: bytes, *, pause: float = 0.5, limit: float = 6.0) -> Respond:
    """Send ``data`` a byte every ``pause`` seconds (the rest at once after ``limit`` seconds)."""

    def respond(conn: socket.socket, stop: threading.Event) -> None:
        end = time.monotonic() + limit
        for index in range(len(data)):
            if time.monotonic() > end:
                conn.sendall(data[index:])
                return
            conn.sendall(data[index : index + 1])
            if stop.wait(pause):
                return

    return respond


def _http_answer(body: bytes) -> bytes:
    head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}"
    return head.encode() + b"\r\nConnection: close\r\n\r\n" + body


def _send(data: bytes) -> Respond:
    def respond(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(data)

    return respond


@contextlib.contextmanager
def _serving(app: Any) -> Iterator[int]:
    """Serve the WSGI ``app`` on a port of 127.0.0.1, in a thread, while the block runs;
    yields the port."""
    with make_server("127.0.0.1", 0, app, handler_class=_Quiet) as httpd:
        thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
        thread.start()
        try:
            yield httpd.server_port
        finally:
            httpd.shutdown()
            thread.join(timeout=10)


@pytest.fixture
def html_url() -> Iterator[str]:
    def app(environ: Any, start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/html")])
        return [b"<html>hello</html>"]

    with _serving(app) as port:
        yield f"http://127.0.0.1:{port}"


def test_progress_bar_draws_filled_and_empty_cells() -> None:
    """52% is five filled cells of ten and a right-aligned percentage."""
    assert progress_bar(52.0) == "[#####.....]  52%"


@pytest.mark.parametrize("value", [99.5, 99.7, 99.999])
def test_progress_bar_of_an_unfinished_task_never_says_100(value: float) -> None:
    """A task 99.5% done or more, but not done, showed ``100%`` beside a bar not full: it is
    ``99%``, as a share of failures that is not all is never rounded to all."""
    assert progress_bar(value) == "[#########.]  99%"
    assert progress_bar(100) == "[##########] 100%"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.5, "[..........]   1%"),
        (12.5, "[#.........]  13%"),
        (50.5, "[#####.....]  51%"),
        (0.49999999999999994, "[..........]   0%"),
        (12.499999, "[#.........]  12%"),
    ],
)
def test_progress_bar_rounds_a_half_up(value: float, expected: str) -> None:
    """A task 12.5% done was shown as 12% (Python rounds a half to even) while the live page
    showed it as 13%: both round a half up, so they show the same task alike."""
    assert progress_bar(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (150, "[##########] 100%"),
        (-5, "[..........]   0%"),
        ("x", "[..........]   0%"),
        (float("inf"), "[..........]   0%"),
        pytest.param(10**400, "[..........]   0%", id="10**400"),
    ],
)
def test_progress_bar_clamps_odd_values(value: Any, expected: str) -> None:
    """Values outside 0-100 are clamped and non-numbers count as 0."""
    assert progress_bar(value) == expected


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0.0009996, "1ms"),
        (0.9996, "1.00s"),
        (0.99949, "999ms"),
        (59.996, "1m00s"),
        (59.994, "59.99s"),
        (-0.0, "0us"),
        (-1.5, "0us"),
    ],
)
def test_format_seconds_rounds_into_the_next_unit(seconds: float, expected: str) -> None:
    """A duration that rounds up to the next unit is written in it: 0.9996 s as 1.00s, not
    1000ms, and 59.996 s as 1m00s, not 60.00s (a P95 or an elapsed time just under a second or a
    minute); -0.0 as 0us, not -0us."""
    assert format_seconds(seconds) == expected


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (None, "-"),
        (0.0004, "400us"),
        (0.012, "12ms"),
        (1.5, "1.50s"),
        (125, "2m05s"),
        (7300, "2h01m"),
        (float("inf"), "-"),
        (float("nan"), "-"),
        pytest.param(10**400, "-", id="10**400"),
        (1e300, "-"),
    ],
)
def test_format_seconds_picks_a_readable_unit(seconds: Any, expected: str) -> None:
    """Durations are shown in the unit that keeps them short."""
    assert format_seconds(seconds) == expected


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://127.0.0.1:8489", "http://127.0.0.1:8489/status"),
        ("http://127.0.0.1:8489/", "http://127.0.0.1:8489/status"),
        ("127.0.0.1:8489", "http://127.0.0.1:8489/status"),
        ("http://host/prefix/status", "http://host/prefix/status"),
        ("http://127.0.0.1:8489/metrics", "http://127.0.0.1:8489/status"),
        ("http://127.0.0.1:8489/metrics/", "http://127.0.0.1:8489/status"),
        ("host:8489/prefix/metrics", "http://host:8489/prefix/status"),
        ("http://127.0.0.1:8489/healthz", "http://127.0.0.1:8489/status"),
        ("http://host/metrics-proxy", "http://host/metrics-proxy/status"),
    ],
)
def test_status_url_points_at_status(given: str, expected: str) -> None:
    """A base URL, with or without scheme or /status, resolves to the /status route."""
    assert status_url(given) == expected


def test_render_shows_running_tasks_with_bar_and_message() -> None:
    """A running task is one line with its id, tool, bar, elapsed time and message."""
    (line,) = [line for line in render_status(DOCUMENT).splitlines() if "t-1" in line]
    for part in ("fetch", "[#####.....]  52%", "1.50s", "page 3 of 6"):
        assert part in line


def test_render_shows_the_tool_table() -> None:
    """The tool row shows total, each outcome (so that the row adds up), the error rate, p50
    and p95."""
    text = render_status(DOCUMENT)
    (row,) = [line for line in text.splitlines() if line.strip().startswith("fetch ")]
    assert row.split() == ["fetch", "100", "90", "8", "2", "0", "0", "10.0%", "12ms", "250ms"]
    header = next(line for line in text.splitlines() if line.strip().startswith("TOOL"))
    assert header.split() == [
        "TOOL",
        "TOTAL",
        "OK",
        "ERROR",
        "TIMEOUT",
        "CANCEL",
        "REJECT",
        "ERR%",
        "P50",
        "P95",
    ]


@pytest.mark.parametrize(
    ("failed", "shown"),
    [
        (0, "0.0%"),
        (1, "<0.1%"),
        (10, "0.1%"),
        (9_990, "99.9%"),
        (9_999, ">99.9%"),
        (10_000, "100.0%"),
    ],
)
def test_err_share_is_never_rounded_to_none_or_all(failed: int, shown: str) -> None:
    """One failure in 10,000 tasks is not shown as 0.0% (as if none failed), nor 9,999 as
    100.0% (as if all did): ERR% says <0.1% and >99.9%."""
    total = 10_000
    tool = {
        "tool": "fetch",
        "total": total,
        "outcomes": {"success": total - failed, "error": failed},
        "error_rate": round(failed / total, 6),
    }
    (row,) = [
        line.split()
        for line in render_status({"tools": [tool]}).splitlines()
        if line.strip().startswith("fetch ")
    ]
    assert row[7] == shown


@pytest.mark.parametrize(
    ("failed", "total", "shown"),
    [
        (1, 400, "0.3%"),
        (5, 400, "1.3%"),
        (3, 400, "0.8%"),
        (1, 1600, "<0.1%"),
        (1, 1000, "0.1%"),
    ],
)
def test_err_share_rounds_as_the_live_page_does(failed: int, total: int, shown: str) -> None:
    """One failure in 400 tasks (0.25%) was ``0.2%`` here (a half rounded to even) and
    ``0.3%`` on the live page, and one in 1,600 (0.0625%) ``0.1%`` here and ``<0.1%`` there:
    a half is rounded up, and a share below 0.1% is ``<0.1%``, as on the page."""
    tool = {
        "tool": "fetch",
        "total": total,
        "outcomes": {"success": total - failed, "error": failed},
        "error_rate": failed / total,
    }
    (row,) = [
        line.split()
        for line in render_status({"tools": [tool]}).splitlines()
        if line.strip().startswith("fetch ")
    ]
    assert row[7] == shown


def test_a_row_adds_up_with_cancelled_and_rejected_tasks() -> None:
    document = {
        "tools": [
            {
                "tool": "unknown",
                "total": 2,
                "outcomes": {"success": 0, "error": 0, "timeout": 0, "cancelled": 0, "rejected": 2},
                "error_rate": 1.0,
            },
            {
                "tool": "slow",
                "total": 5,
                "outcomes": {"success": 1, "error": 0, "timeout": 1, "cancelled": 3, "rejected": 0},
                "error_rate": 0.2,
            },
        ]
    }
    rows = {
        line.split()[0]: line.split()[1:7]
        for line in render_status(document).splitlines()
        if line.strip().split() and line.split()[0] in ("unknown", "slow")
    }
    assert rows["unknown"] == ["2", "0", "0", "0", "0", "2"]
    assert rows["slow"] == ["5", "1", "0", "1", "3", "0"]


def test_a_running_tasks_whole_id_is_shown_so_it_can_be_copied() -> None:
    task_id = "6f1c2a8e-93b4-4e0f-9a51-0c2d7b1e4f77"
    document = {"running": [{"task_id": task_id, "tool": "fetch", "state": "running"}]}
    assert task_id in render_status(document)


def test_long_ids_tool_names_and_labels_are_shown_whole() -> None:
    """A task id of the caller's (longer than a UUID), tool names that differ only past their
    32nd character and labels as long are shown whole, not cut short: an id can be copied, and
    two tools (or two pools) never show as the same row."""
    task_id = "orders-import/customer-00042/2026-12-07T05:28:44Z/attempt-1"
    names = ["mcp__github__list_pull_request_files", "mcp__github__list_pull_request_comments"]
    pools = [
        "search-eu-west-1-primary,tenant=acme-corp",
        "search-eu-west-1-primary,tenant=acme-inc",
    ]
    document = {
        "running": [{"task_id": task_id, "tool": names[1], "state": "running"}],
        "tools": [
            *({"tool": name, "total": 1, "outcomes": {"success": 1}} for name in names),
            *(
                {"tool": "fetch", "labels": {"pool": pool}, "total": 1, "outcomes": {"error": 1}}
                for pool in pools
            ),
        ],
    }
    rows = [line.split() for line in render_status(document).splitlines() if line.strip()]
    assert [task_id, names[1]] in [row[:2] for row in rows]
    assert [row[0] for row in rows if row[0].startswith("mcp__")] == names
    assert [row[1] for row in rows if row[0] == "fetch"] == [f"{{pool={p}}}" for p in pools]


def test_render_shows_the_executor_gauges() -> None:
    """Workers, busy workers, queue depth and abandoned threads are on one line."""
    text = render_status(DOCUMENT)
    assert "workers: 4   busy workers: 2   queue depth: 3   abandoned threads: 1" in text


def test_render_tolerates_missing_fields() -> None:
    """A sparse or malformed document renders with dashes instead of failing."""
    text = render_status({"running": [{}, "junk"], "tools": [{"outcomes": None}]})
    assert "[..........]   0%" in text
    assert "workers: -" in text


@pytest.mark.parametrize("value", [None, 7, ["fetch"], {"name": "fetch"}])
def test_names_that_are_not_strings_show_as_dashes(value: Any) -> None:
    """A task id, tool or state that is null or not a string (a malformed document) shows as
    ``-``, not as ``None`` or a Python repr taken for a name."""
    document = {
        "running": [{"task_id": value, "tool": value, "state": value, "message": value}],
        "tools": [{"tool": value, "total": 1, "outcomes": {"success": 1}}],
    }
    rows = [line.split() for line in render_status(document).splitlines()]
    task_row = rows[rows.index(["TASK", "TOOL", "PROGRESS", "ELAPSED", "STATE", "MESSAGE"]) + 1]
    tool_row = rows[rows.index(["TOOL", *cli._TOOL_HEADER[1:]]) + 1]
    assert task_row[:2] == ["-", "-"]
    assert task_row[5:] in (["-"], ["-", "-"])  # (the bar is two words; a null message is blank)
    assert tool_row[0] == "-"
    assert "None" not in render_status(document)


UNUSABLE_NUMBERS = [float("inf"), float("-inf"), float("nan"), 10**400, 1e300, -(10**20)]


def _hostile_document(value: Any) -> dict[str, Any]:
    """DOCUMENT with ``value`` in every numeric field."""
    task = {**DOCUMENT["running"][0], "elapsed_seconds": value, "progress_percent": value}
    outcomes = dict.fromkeys(DOCUMENT["tools"][0]["outcomes"], value)
    tool = {
        **DOCUMENT["tools"][0],
        "total": value,
        "outcomes": outcomes,
        "error_rate": value,
        "p50_seconds": value,
        "p95_seconds": value,
    }
    return {
        **DOCUMENT,
        "generated_at": value,
        "running": [task],
        "running_total": value,
        "tools": [tool],
        "workers": value,
        "busy_workers": value,
        "queue_depth": value,
        "abandoned_threads": value,
    }


@pytest.mark.parametrize(
    "value", UNUSABLE_NUMBERS, ids=["inf", "-inf", "nan", "10**400", "1e300", "-10**20"]
)
def test_render_shows_unusable_numbers_as_dashes(value: Any) -> None:
    """Infinite, NaN and absurdly large numbers show as '-' (progress as 0%) in every field."""
    lines = render_status(_hostile_document(value)).splitlines()
    assert lines[0] == "laios status at -"
    assert "Running tasks (1)" in lines
    (task,) = [line for line in lines if "t-1" in line]
    assert task.split()[2:6] == ["[..........]", "0%", "-", "running"]
    (row,) = [line for line in lines if line.strip().startswith("fetch ")]
    assert row.split() == ["fetch", "-", "-", "-", "-", "-", "-", "-", "-", "-"]
    assert lines[-1] == "workers: -   busy workers: -   queue depth: -   abandoned threads: -"


def test_render_keeps_control_characters_out_of_the_terminal() -> None:
    """Escape sequences and newlines in names and messages are replaced."""
    task = {**DOCUMENT["running"][0], "message": "\x1b[2Jgone\nnext", "tool": "t\x1b[31m"}
    text = render_status({**DOCUMENT, "running": [task]})
    assert "\x1b" not in text
    assert "gone?next" in text


def test_status_against_a_live_endpoint(
    server: MetricsServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """`laios status --url` prints the running task and the tool table, exit 0."""
    assert main(["status", "--url", server.url]) == 0
    out = capsys.readouterr().out
    assert "[#####.....]  52%" in out
    assert "halfway" in out
    (row,) = [line for line in out.splitlines() if line.strip().startswith("fetch ")]
    assert row.split()[:3] == ["fetch", "3", "3"]


def test_status_runs_as_a_module(server: MetricsServer) -> None:
    """`python -m laios.cli status` works as a separate process."""
    src = str(Path(laios.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [sys.executable, "-m", "laios.cli", "status", "--url", server.url],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "halfway" in result.stdout


def test_status_against_a_dead_port(dead_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Nothing listening: exit 2, one line on stderr naming the URL and how to start a server."""
    assert main(["status", "--url", dead_url, "--timeout", "2"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.splitlines()
    assert dead_url + "/status" in line
    assert "start_http_server" in line


@pytest.mark.parametrize(
    ("url", "tried", "suggested"),
    [
        ("localhost", "port 80 (http's default)", "--url localhost:8489"),
        ("http://127.0.0.1/", "port 80 (http's default)", "--url http://127.0.0.1:8489/"),
        ("https://localhost", "port 443 (https's default)", "--url https://localhost:8489"),
        ("[::1]", "port 80 (http's default)", "--url [::1]:8489"),
    ],
)
def test_a_url_without_a_port_says_which_port_was_tried(
    url: str, tried: str, suggested: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A --url without a port that gets no status says the URL named no port, which port was
    tried instead, and suggests the same URL with the endpoint's default port, 8489."""
    assert main(["status", "--url", url, "--timeout", "2"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert f"names no port, so {tried} was tried" in line
    assert f"{suggested}." in line


def test_a_url_that_is_not_http_gets_no_port_suggestion(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A --url whose scheme is not http(s) was never tried on any port: the message says it is
    not an http(s) URL and claims no port was tried."""
    assert main(["status", "--url", "ftp://127.0.0.1", "--timeout", "2"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "is not an http(s) URL" in line
    assert "was tried" not in line
    assert "ftp://127.0.0.1:8489" not in line


@pytest.mark.parametrize(
    "url", ["ftp://127.0.0.1", "http://[::1", "127.0.0.1:port", "", ":8489", "http:///metrics"]
)
def test_a_url_that_cannot_be_fetched_is_told_how_to_write_one(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A --url that was never tried (not http(s), or not a URL at all) is a mistake in the
    URL, not a missing endpoint: the message shows the form a --url takes, and does not tell
    the user to start an endpoint, which may well be running."""
    assert main(["status", "--url", url, "--timeout", "2"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "--url http://HOST:PORT" in line
    assert "start_http_server" not in line
    assert "laios demo" not in line


def test_the_port_suggestion_never_shows_the_password(capsys: pytest.CaptureFixture[str]) -> None:
    """A --url with credentials and no port: the suggestion keeps their place, not their text."""
    assert main(["status", "--url", "http://prom:s3cret@127.0.0.1", "--timeout", "2"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "s3cret" not in line
    assert "--url http://USER:PASSWORD@127.0.0.1:8489." in line


def test_a_url_with_a_port_gets_no_port_suggestion(
    dead_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A --url naming its port is tried as given; no other port is suggested."""
    assert main(["status", "--url", dead_url, "--timeout", "2"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "no port" not in line
    assert "--url" not in line


def test_an_endpoint_serving_no_status_says_so(
    store: MetricStore, capsys: pytest.CaptureFixture[str]
) -> None:
    """A laios endpoint started with status="off" answers /status 404, listing its routes: it
    runs, so the message says that it serves no /status, not to start an endpoint."""
    with start_http_server(0, store=store, registry=CollectorRegistry(), status="off") as off:
        assert main(["status", "--url", off.url, "--timeout", "5"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "HTTP 404" in line
    assert 'status="off"' in line
    assert "start_http_server(" not in line


def test_status_against_a_non_status_endpoint(
    html_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """An endpoint that answers HTML is reported as not a status endpoint, exit 2."""
    assert main(["status", "--url", html_url]) == 2
    assert "did not answer with a laios status document" in capsys.readouterr().err


@pytest.mark.parametrize("watch", [False, True], ids=["once", "watch"])
def test_an_answer_that_is_no_status_says_what_answered_instead_of_starting_an_endpoint(
    watch: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    """Something that is not a laios endpoint answers 200 with JSON that is no status (its
    ``running`` is no list): the message says that something else answers at that address,
    names its content type and first bytes, and says to check the URL; it advised starting an
    endpoint there with start_http_server(<port>)."""
    body = b'{"running": {"a": 1}, "tools": []}'

    def app(environ: Any, start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]

    with _serving(app) as port:
        argv = ["status", "--url", f"127.0.0.1:{port}", "--timeout", "5"]
        assert main(argv + (["--watch"] if watch else [])) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "did not answer with a laios status document" in line, line
    assert "application/json" in line, line
    assert body.decode() in line, line
    assert "something else answers" in line, line
    assert "check" in line, line
    assert "start_http_server" not in line, line
    assert "laios demo" not in line, line


def test_an_answer_that_is_no_status_after_a_redirect_names_where_it_led(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A redirect to a page that is no status: the message names the redirect's target as
    what answered, and the URL asked as what redirected there."""

    def app(environ: Any, start_response: Any) -> list[bytes]:
        if environ["PATH_INFO"] == "/status":
            start_response("302 Found", [("Location", "/login")])
            return [b""]
        start_response("200 OK", [("Content-Type", "text/html")])
        return [b"<html>sign in</html>"]

    with _serving(app) as port:
        url = f"http://127.0.0.1:{port}"
        assert main(["status", "--url", url, "--timeout", "5"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert f"{url}/login, where a redirect from {url}/status led," in line, line
    assert "<html>sign in</html>" in line, line
    assert "start_http_server" not in line, line


def test_what_an_answer_that_is_no_status_begins_with_is_shown_cut_and_clean(
    raw_server: Callable[[Respond], str], capsys: pytest.CaptureFixture[str]
) -> None:
    """The content type and first bytes the message quotes of an answer that is no status come
    from whatever answered: they are shown cut short, with no control character and no
    escape sequence reaching the terminal, a byte that is not UTF-8 as ``\\xNN``."""
    body = b"\x1b[2J\x1b]0;owned\x07<html>\n\xff" + b"A" * 5000
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/\x1b[31mhtml" + b"B" * 500
    head += f"\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
    url = raw_server(_send(head + body))
    line = status_error(url, capsys)
    assert "did not answer with a laios status document" in line, line
    assert "\x1b" not in line, line
    assert "\x07" not in line, line
    assert "<html> \\xff" in line, line
    assert "text/?[31mhtml" in line, line
    assert "A" * 100 not in line, line
    assert "B" * 100 not in line, line
    assert len(line) < 600, line
    assert "start_http_server" not in line, line


def test_status_against_a_404(server: MetricsServer, capsys: pytest.CaptureFixture[str]) -> None:
    """An HTTP error status is reported with its code, exit 2."""
    assert main(["status", "--url", server.url + "/elsewhere"]) == 2
    assert "HTTP 404" in capsys.readouterr().err


def test_status_renders_a_hostile_document(
    raw_server: Callable[[Respond], str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Infinity and a 400-digit integer in the JSON (both valid for Python) render as '-'."""
    body = json.dumps(_hostile_document(float("inf")) | {"workers": 10**400}).encode()
    assert b"Infinity" in body
    url = raw_server(_send(_http_answer(body)))
    assert main(["status", "--url", url, "--timeout", "5"]) == 0
    out = capsys.readouterr().out
    assert "workers: -   busy workers: -   queue depth: -   abandoned threads: -" in out
    (row,) = [line for line in out.splitlines() if line.strip().startswith("fetch ")]
    assert row.split() == ["fetch", "-", "-", "-", "-", "-", "-", "-", "-", "-"]


#: A status whose names and message are not ASCII (nor Latin-1: a CJK task id).
UNICODE_DOCUMENT: dict[str, Any] = {
    **DOCUMENT,
    "running": [{**DOCUMENT["running"][0], "task_id": "tâche-日本", "tool": "récupérer"}],
    "tools": [{**DOCUMENT["tools"][0], "tool": "récupérer"}],
}


@pytest.mark.parametrize("encoding", ["ascii", "cp1252"])
def test_status_writes_names_its_output_cannot_encode(
    encoding: str,
    raw_server: Callable[[Respond], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An output whose encoding lacks characters of a name (Windows writing to a file in its
    ANSI code page, a Latin-1 locale, PYTHONIOENCODING=ascii) gets them as "?": the status is
    shown (exit 0), not a UnicodeEncodeError's traceback; the same for --watch."""
    url = raw_server(_send(_http_answer(json.dumps(UNICODE_DOCUMENT).encode())))
    written = io.BytesIO()
    stdout = io.TextIOWrapper(written, encoding=encoding, newline="\n")
    monkeypatch.setattr(sys, "stdout", stdout)
    assert main(["status", "--url", url, "--timeout", "5"]) == 0
    stdout.flush()
    text = written.getvalue().decode(encoding)
    assert "Running tasks (1)" in text
    # (a "?" per column: 日本 takes four)
    assert ("tâche-????" if encoding == "cp1252" else "t?che-????") in text
    header, row = [line for line in text.splitlines() if "PROGRESS" in line or "[" in line]
    assert header.index("PROGRESS") == row.index("[")
    watched = io.BytesIO()
    out = io.TextIOWrapper(watched, encoding=encoding, newline="\n")
    assert watch_status(url, timeout=5, out=out, sleep=_interrupt) == 0
    out.flush()
    assert "Running tasks (1)" in watched.getvalue().decode(encoding)


def test_a_loopback_endpoint_asked_by_another_name_says_which_names_it_answers(
    server: MetricsServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An endpoint on loopback answers 421 to a request naming another host (here a name
    that resolves to 127.0.0.1, as the machine's own name often does): it runs, so the
    message says to use localhost or 127.0.0.1, not to start an endpoint."""
    real = socket.getaddrinfo

    def resolve(host: Any, *args: Any, **kwargs: Any) -> Any:
        return real("127.0.0.1" if host == "build-host.example" else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    for proxy in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(proxy, raising=False)
    url = server.url.replace("127.0.0.1", "build-host.example")
    line = status_error(url, capsys)
    assert "HTTP 421" in line
    assert "localhost or 127.0.0.1" in line
    assert "start_http_server" not in line


def test_status_says_when_the_answer_is_too_large(
    raw_server: Callable[[Respond], str], capsys: pytest.CaptureFixture[str]
) -> None:
    """A body of more than 16 MiB is reported as too large (not as something other than a
    status document, which it may well be), exit 2."""
    body = b'{"tools":[],"running":[],"pad":"' + b"x" * (17 << 20) + b'"}'
    url = raw_server(_send(_http_answer(body)))
    assert main(["status", "--url", url, "--timeout", "20"]) == 2
    err = capsys.readouterr().err
    assert "answered with more than 16 MiB" in err
    assert "did not answer with a laios status document" not in err


def test_status_refuses_deeply_nested_json(
    raw_server: Callable[[Respond], str], capsys: pytest.CaptureFixture[str]
) -> None:
    """A body nested too deeply for the JSON decoder is not a status document: exit 2."""
    url = raw_server(_send(_http_answer(b"[" * 200_000)))
    assert main(["status", "--url", url, "--timeout", "5"]) == 2
    assert "did not answer with a laios status document" in capsys.readouterr().err


def test_a_garbage_status_line_stays_out_of_the_terminal(
    raw_server: Callable[[Respond], str], capsys: pytest.CaptureFixture[str]
) -> None:
    """A status line with escape sequences, quoted in the error, reaches stderr cleaned and cut."""
    url = raw_server(_send(b"HTTP/1.1 99999 \x1b[2J\x1b]0;owned\x07" + b"A" * 5000 + b"\r\n\r\n"))
    line = status_error(url, capsys)
    assert "\x1b" not in line
    assert "\x07" not in line
    assert "99999" in line
    assert len(line) < 600


@pytest.mark.parametrize(
    "answer",
    [
        b"+OK this server speaks another protocol\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nnot a chunk size\r\n",
    ],
    ids=["another protocol", "a huge header line", "a broken chunked body"],
)
def test_an_answer_that_is_not_readable_http_is_not_called_nothing_answering(
    raw_server: Callable[[Respond], str], capsys: pytest.CaptureFixture[str], answer: bytes
) -> None:
    """Something answered, but not with HTTP that can be read: the message says so and to
    check the URL, not that nothing answered, nor to start an endpoint there."""
    url = raw_server(_send(answer))
    line = status_error(url, capsys)
    assert "nothing answered" not in line, line
    assert "start_http_server" not in line, line
    assert "answered, but not with HTTP" in line, line
    assert "check the host, port and path of the URL" in line, line


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_an_answer_cut_short_says_so_and_not_that_something_else_answers(
    raw_server: Callable[[Respond], str], capsys: pytest.CaptureFixture[str], chunked: bool
) -> None:
    """The connection closed before the whole body came (the process stopped while it
    answered): the message says the answer was cut short and to try again, not that
    something other than a laios endpoint answers there."""
    start = json.dumps(DOCUMENT).encode()[:40]
    if chunked:
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked"
        answer = head + b"\r\n\r\n" + b"%x\r\n" % 4000 + start
    else:
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 4000"
        answer = head + b"\r\n\r\n" + start
    url = raw_server(_send(answer))
    line = status_error(url, capsys)
    assert "cut short" in line, line
    assert "40 bytes" in line, line
    assert "try again" in line, line
    assert "something else answers" not in line, line


def test_a_connection_accepted_and_never_answered_is_not_told_to_start_an_endpoint(
    raw_server: Callable[[Respond], str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Something accepted the connection and sent nothing within --timeout (a busy process):
    the message says it accepted the connection and to give a larger --timeout, not to start
    an endpoint there."""
    url = raw_server(lambda conn, stop: stop.wait(30))
    assert main(["status", "--url", url, "--timeout", "1"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert f"no complete answer from {url}/status within 1 s" in line, line
    assert "accepted the connection" in line, line
    assert "--timeout" in line, line
    assert "start_http_server" not in line, line


@pytest.mark.parametrize("url", ["::1:8489", "http://::1:8489", "fe80::1:8489/metrics"])
def test_an_ipv6_address_without_brackets_is_told_to_put_it_in_brackets(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """An IPv6 address written without brackets (its port cannot be told from it): the
    message says to write it in brackets, as [::1]:8489."""
    assert main(["status", "--url", url, "--timeout", "1"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "is not a usable URL" in line, line
    assert "an IPv6 address goes in brackets" in line, line
    assert "[::1]:8489" in line, line


def test_credentials_in_the_url_are_sent_and_never_shown(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`--url http://user:password@host:port` reads an endpoint that requires basic
    authentication, and the password appears neither in the output nor in an error."""
    seen: list[str | None] = []

    def app(environ: Any, start_response: Any) -> list[bytes]:
        seen.append(environ.get("HTTP_AUTHORIZATION"))
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(DOCUMENT).encode()]

    with _serving(app) as port:
        url = f"http://prom%40ops:s3cret%3A1@127.0.0.1:{port}"
        assert main(["status", "--url", url, "--timeout", "5"]) == 0
    assert seen == ["Basic " + base64.b64encode(b"prom@ops:s3cret:1").decode()]
    captured = capsys.readouterr()
    assert "page 3 of 6" in captured.out
    assert "s3cret" not in captured.out + captured.err


@pytest.mark.parametrize("userinfo", ["@", ":@"])
def test_an_empty_user_and_password_send_no_authorization(
    userinfo: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A URL whose user information is empty (``http://@host:port``, ``http://:@host:port``)
    carries no credentials: no ``Authorization`` header is sent (not ``Basic Og==``, an
    empty user and password), as requests and browsers read it."""
    seen: list[str | None] = []

    def app(environ: Any, start_response: Any) -> list[bytes]:
        seen.append(environ.get("HTTP_AUTHORIZATION"))
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(DOCUMENT).encode()]

    with _serving(app) as port:
        url = f"http://{userinfo}127.0.0.1:{port}"
        assert main(["status", "--url", url, "--timeout", "5"]) == 0, capsys.readouterr().err
    assert seen == [None]
    assert "page 3 of 6" in capsys.readouterr().out


def test_a_password_with_an_at_sign_is_never_shown(capsys: pytest.CaptureFixture[str]) -> None:
    """A password whose ``@`` was not percent-encoded (``http://prom:p@ss@host:port``) is sent
    whole, as URLs are read (the user information ends at the last ``@``), and no part of it
    is shown: not in the title, not in an error."""
    seen: list[str | None] = []

    def app(environ: Any, start_response: Any) -> list[bytes]:
        seen.append(environ.get("HTTP_AUTHORIZATION"))
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(DOCUMENT).encode()]

    with _serving(app) as port:
        url = f"http://prom:s3c@r3t@127.0.0.1:{port}"
        assert main(["status", "--url", url, "--timeout", "5"]) == 0
    assert seen == ["Basic " + base64.b64encode(b"prom:s3c@r3t").decode()]
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith(f"laios status - http://127.0.0.1:{port}/status")
    assert "r3t" not in out
    assert main(["status", "--url", "http://prom:s3c@r3t@127.0.0.1:1", "--timeout", "2"]) == 2
    assert "r3t" not in capsys.readouterr().err


@pytest.mark.parametrize("password", ["s3cr/et", "s3cr?et", "s3cr#et", "4711/s3cret"])
def test_a_password_with_a_character_that_ends_the_host_is_never_shown(
    password: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A ``/``, ``?`` or ``#`` of a password that was not percent-encoded ends the URL's host
    there, and the rest reads as a path holding an ``@``: the URL is refused before anything
    is asked of it (``prom`` is no host to look up), no part of the user or password is shown,
    and the message says to percent-encode them."""
    url = f"http://prom:{password}@127.0.0.1:1"
    assert main(["status", "--url", url, "--timeout", "2"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "s3cr" not in line
    assert "prom" not in line
    assert "4711" not in line
    assert "'http://USER:PASSWORD@127.0.0.1:1' is not a usable URL" in line
    assert "%2F" in line


@pytest.mark.parametrize(
    ("userinfo", "suffix"),
    [
        ("", "/status?a=b@c"),
        ("", "/?a=b@c"),
        ("", "?a=b@c#x@y"),
        ("", "#x@y"),
        ("prom:s3cret@", "/?a=b@c"),
    ],
)
def test_an_at_sign_in_the_query_or_fragment_is_no_password(
    userinfo: str, suffix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The user information of a URL ends at the first ``/``, ``?`` or ``#`` after its
    scheme: an ``@`` in its query or fragment is part of them, not of a password, and the
    status is read (only an ``@`` after a host that cannot be one is taken for a password's
    ``?`` or ``#``)."""
    seen: list[tuple[str, str | None]] = []

    def app(environ: Any, start_response: Any) -> list[bytes]:
        seen.append((environ.get("QUERY_STRING", ""), environ.get("HTTP_AUTHORIZATION")))
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(DOCUMENT).encode()]

    with _serving(app) as port:
        url = f"http://{userinfo}127.0.0.1:{port}{suffix}"
        assert main(["status", "--url", url, "--timeout", "5"]) == 0, capsys.readouterr().err
    sent = "Basic " + base64.b64encode(b"prom:s3cret").decode() if userinfo else None
    assert seen == [("a=b@c" if "?" in suffix else "", sent)]
    captured = capsys.readouterr()
    assert "page 3 of 6" in captured.out
    assert "s3cret" not in captured.out + captured.err


def test_credentials_in_the_url_stay_out_of_an_error(
    dead_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Nothing listening: the message names the URL without its password."""
    url = dead_url.replace("http://", "http://prom:s3cret@")
    assert main(["status", "--url", url, "--timeout", "2"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "s3cret" not in line
    assert dead_url.removeprefix("http://") + "/status" in line


@pytest.mark.parametrize(
    "query",
    ["token=s3cret", "a=1&access_token=s3cret", "api-key=s3cret&b=2", "x=1;password=s3cret"],
)
def test_a_secret_in_the_query_stays_out_of_what_is_shown(
    query: str, dead_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A token in the URL's query (``?token=...``, as some endpoints take one) is not shown in
    a message nor in the title of the status: its value is ``[REDACTED]``, the names and the
    other values stay."""
    assert main(["status", "--url", f"{dead_url}/status?{query}", "--timeout", "2"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "s3cret" not in line
    assert "[REDACTED]" in line
    assert query.replace("s3cret", "[REDACTED]") in line

    def app(environ: Any, start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(DOCUMENT).encode()]

    with _serving(app) as port:
        url = f"http://127.0.0.1:{port}/status?{query}"
        assert main(["status", "--url", url, "--timeout", "5"]) == 0
    captured = capsys.readouterr()
    assert "s3cret" not in captured.out + captured.err
    assert query.replace("s3cret", "[REDACTED]") in captured.out.splitlines()[0]


@pytest.mark.parametrize(
    "credentials",
    [
        "pr\udcffom:s3cret",
        "prom:s3cr\udcffet",
        "prom:s3cr%FFet",
        "pr%C3om:s3cret",
        "prom:s3cr%E2%82",
    ],
)
def test_credentials_with_a_byte_not_utf8_are_said_to_be_unusable(
    credentials: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A user or password holding a byte of the argument that is not UTF-8 (``--url
    http://prom:$'\\xff'@host``) is said to be unusable, and not shown: it ended in a
    traceback (UnicodeEncodeError) before anything was tried. So is one holding such a byte
    percent-encoded (``%FF``, a password written in Latin-1), which was sent with U+FFFD in
    its place, and refused as a wrong password."""
    url = f"http://{credentials}@127.0.0.1:1"
    assert main(["status", "--url", url, "--timeout", "2"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "is not a usable URL" in line
    assert "not UTF-8" in line
    assert "s3cr" not in line


@pytest.mark.parametrize("url", ["http://127.0.0.1:0", "127.0.0.1:0/status", "https://[::1]:0"])
@pytest.mark.parametrize("watch", [False, True], ids=["once", "watch"])
def test_port_0_is_said_to_be_no_port_to_connect_to(
    url: str, watch: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    """--url with port 0 (the port a server is given to have one picked) is a URL no request
    can reach: the message says so, and does not suggest start_http_server(8489) as though
    nothing answered."""
    argv = ["status", "--url", url, "--timeout", "2"] + (["--watch"] if watch else [])
    assert main(argv) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "port 0" in line, line
    assert "nothing answered" not in line, line
    assert "start_http_server" not in line, line


def _interrupt(seconds: float) -> None:
    raise KeyboardInterrupt


def _assert_timed_out(url: str, capsys: pytest.CaptureFixture[str], *, watch: bool) -> None:
    start = time.monotonic()
    if watch:
        code = watch_status(url, timeout=1.0, sleep=_interrupt)
    else:
        code = main(["status", "--url", url, "--timeout", "1"])
    elapsed = time.monotonic() - start
    captured = capsys.readouterr()
    assert (code, captured.out) == (2, ""), captured.err
    (line,) = captured.err.splitlines()
    assert f"no complete answer from {url}/status within 1 s" in line
    assert "--timeout" in line
    assert elapsed < 4, elapsed


@pytest.mark.parametrize("watch", [False, True], ids=["once", "watch"])
def test_timeout_covers_headers_sent_a_byte_at_a_time(
    raw_server: Callable[[Respond], str], capsys: pytest.CaptureFixture[str], watch: bool
) -> None:
    """A server that sends its headers a byte every half second is given up on after
    --timeout seconds in all, not after --timeout seconds of silence."""
    url = raw_server(_dribble(_http_answer(json.dumps(DOCUMENT).encode())))
    _assert_timed_out(url, capsys, watch=watch)


@pytest.mark.parametrize("watch", [False, True], ids=["once", "watch"])
def test_timeout_covers_a_name_lookup_that_does_not_answer(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, watch: bool
) -> None:
    """A host name whose lookup does not answer (a resolver that is down) is given up on
    after --timeout seconds too: looking the name up is part of connecting."""
    released = threading.Event()
    real = socket.getaddrinfo

    def stuck(*args: Any, **kwargs: Any) -> Any:
        released.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", stuck)
    try:
        _assert_timed_out("http://localhost:1", capsys, watch=watch)
    finally:
        released.set()


def test_timeout_covers_a_body_sent_a_byte_at_a_time(
    raw_server: Callable[[Respond], str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Prompt headers followed by a dribbled body are given up on after --timeout seconds."""
    answer = _http_answer(json.dumps(DOCUMENT).encode())
    head, body = answer.split(b"\r\n\r\n", 1)

    def respond(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(head + b"\r\n\r\n")
        _dribble(body)(conn, stop)

    _assert_timed_out(raw_server(respond), capsys, watch=False)


def test_timeout_with_a_silent_server(
    raw_server: Callable[[Respond], str], capsys: pytest.CaptureFixture[str]
) -> None:
    """A server that accepts the connection and never answers is reported as a timeout."""

    def respond(conn: socket.socket, stop: threading.Event) -> None:
        stop.wait(10)

    _assert_timed_out(raw_server(respond), capsys, watch=False)


def test_watch_redraws_until_ctrl_c(server: MetricsServer) -> None:
    """--watch draws a frame per interval and exits 0 on Ctrl-C."""
    out = io.StringIO()
    sleep, pauses = interrupting_sleep(3)

    assert watch_status(server.url, interval=0.5, out=out, sleep=sleep) == 0
    assert out.getvalue().count("Running tasks") == 3
    assert pauses == [0.5, 0.5, 0.5]


SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGHUP])
def test_watch_stops_on_sigterm_or_sighup_with_exit_code_0(
    server: MetricsServer, number: signal.Signals
) -> None:
    """`laios status --watch` stopped with SIGTERM (`kill`, `timeout`, a service manager) or
    SIGHUP sent to it ends as after Ctrl-C, exit code 0, as `laios demo` does, instead of
    being killed by the signal (exit code 143 or 129 in a shell)."""
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    command = [sys.executable, "-m", "laios.cli", "status", "--watch", "--interval", "0.2"]
    process = subprocess.Popen(
        [*command, "--url", server.url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()  # (the first picture is under way)
        assert first, process.stderr.read() if process.stderr else ""
        process.send_signal(number)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err.decode(errors="replace")
    assert b"Traceback" not in err


class _Terminal(io.StringIO):
    """An output that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("term", "clears"), [("xterm-256color", True), ("dumb", False)])
def test_watch_clears_the_screen_only_on_a_terminal_that_takes_escape_sequences(
    term: str, clears: bool, server: MetricsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a terminal --watch clears the screen before each picture; on TERM=dumb (an editor's
    shell, a serial console) no escape sequence is written, only the pictures."""
    monkeypatch.setenv("TERM", term)
    out = _Terminal()
    assert watch_status(server.url, interval=0.5, out=out, sleep=_interrupt) == 0
    assert ("\x1b" in out.getvalue()) is clears
    assert "Running tasks" in out.getvalue()


@pytest.mark.parametrize("lines", [1, 2, 3, 24])
def test_watch_on_a_terminal_never_scrolls_its_picture(
    lines: int, server: MetricsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a terminal of any height, 1 line included, a picture of --watch takes no more lines
    than the terminal has, its cursor's line included: its title stays on screen. On a
    1-line terminal the picture was written with a newline after its one line, which
    scrolled the title off."""
    monkeypatch.setenv("TERM", "xterm")
    monkeypatch.setattr(shutil, "get_terminal_size", lambda *_, **__: os.terminal_size((80, lines)))
    out = _Terminal()
    pictures: list[str] = []

    def sleep(seconds: float) -> None:
        pictures.append(out.getvalue())
        raise KeyboardInterrupt

    assert watch_status(server.url, interval=0.5, out=out, sleep=sleep) == 0
    (picture,) = pictures
    assert picture.startswith("\x1b[H\x1b[2J")
    shown = picture.removeprefix("\x1b[H\x1b[2J")
    assert shown.startswith("laios status - ")
    assert shown.count("\n") + 1 <= lines, shown


@pytest.mark.parametrize("size", [(0, 0), (0, 24), (80, 0)])
def test_watch_on_a_terminal_of_unknown_size_draws_at_80_by_24(
    size: tuple[int, int], server: MetricsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A terminal that gives 0 for its width or height (a pseudo-terminal whose size was never
    set, as Python 3.10 reports it) is drawn as 80 by 24: every line was cut to nothing."""
    monkeypatch.setenv("TERM", "xterm")
    monkeypatch.setattr(shutil, "get_terminal_size", lambda *_, **__: os.terminal_size(size))
    out = _Terminal()
    assert watch_status(server.url, interval=0.5, out=out, sleep=_interrupt) == 0
    shown = out.getvalue().removeprefix("\x1b[H\x1b[2J").rstrip("\n").split("\n")
    assert shown[0].startswith("laios status - ")
    assert any(line.startswith("Running tasks") for line in shown), shown
    assert shown[-1] == "refreshing every 0.5s, Ctrl-C to stop"
    assert 1 < len(shown) <= 23
    assert max(len(line) for line in shown) <= 80


def test_watch_through_main_exits_zero_on_ctrl_c(
    server: MetricsServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`laios status --watch` returns 0 when interrupted."""

    def interrupt(seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "time", SimpleNamespace(sleep=interrupt))
    assert main(["status", "--url", server.url, "--watch", "--interval", "0.1"]) == 0
    assert "refreshing every 0.1s" in capsys.readouterr().out


def test_a_huge_timeout_is_waited_not_a_traceback(
    dead_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """--timeout 1e10 (longer than the platform can wait at once) is accepted: nothing
    listening gives the usual one-line message, exit 2, not an OverflowError."""
    assert main(["status", "--url", dead_url, "--timeout", "1e10"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "nothing answered at" in line


def test_a_huge_interval_is_slept_in_steps_the_platform_takes(server: MetricsServer) -> None:
    """--watch with an interval of 1e10 s sleeps in steps the platform can wait (a socket
    timeout takes what time.sleep takes), not one that raises OverflowError."""
    pauses: list[float] = []

    def sleep(seconds: float) -> None:
        with socket.socket() as sock:
            sock.settimeout(seconds)  # OverflowError past the platform's time_t
        pauses.append(seconds)
        if len(pauses) == 2:
            raise KeyboardInterrupt

    assert watch_status(server.url, interval=1e10, out=io.StringIO(), sleep=sleep) == 0
    assert len(pauses) == 2


@pytest.mark.parametrize("interval", [0, -1.0, float("nan"), float("inf")])
def test_watch_refuses_an_interval_that_is_not_a_positive_number(interval: float) -> None:
    """An interval of 0, below 0, NaN or infinite raises ValueError at the call instead of
    redrawing without a pause."""
    with pytest.raises(ValueError, match="interval must be a finite positive number of seconds"):
        watch_status("http://127.0.0.1:1", interval=interval, out=io.StringIO())


@pytest.mark.parametrize("timeout", [0, -1.0, float("nan"), float("inf"), True])
def test_fetch_status_refuses_a_timeout_that_is_not_a_positive_number(timeout: float) -> None:
    """fetch_status with a timeout of 0, below 0, NaN, infinite or a bool raises ValueError
    at the call, instead of a confusing "nothing answers" message."""
    with pytest.raises(ValueError, match="timeout must be a finite positive number of seconds"):
        cli.fetch_status("http://127.0.0.1:1", timeout=timeout)


def test_fetch_status_refuses_an_int_timeout_too_large_for_a_float() -> None:
    """A timeout of 10**400 seconds (an int no float holds) raises the documented ValueError
    at the call, not an OverflowError from the clock arithmetic."""
    with pytest.raises(ValueError, match="timeout must be a finite positive number of seconds"):
        cli.fetch_status("http://127.0.0.1:1", timeout=10**400)


def test_watch_refuses_an_int_interval_too_large_for_a_float(server: MetricsServer) -> None:
    """An interval of 10**400 seconds raises ValueError at the call, not an OverflowError
    while the first picture is drawn."""
    with pytest.raises(ValueError, match="interval must be a finite positive number of seconds"):
        watch_status(server.url, interval=10**400, out=io.StringIO(), sleep=lambda _: None)


def test_watch_against_a_dead_port(dead_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """--watch with nothing listening exits 2 at once."""
    assert main(["status", "--url", dead_url, "--watch", "--timeout", "2"]) == 2
    assert dead_url in capsys.readouterr().err


def test_interval_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    """--interval 0 is a usage error."""
    with pytest.raises(SystemExit) as exit_info:
        main(["status", "--interval", "0"])
    assert exit_info.value.code == 2
    assert "positive" in capsys.readouterr().err


@pytest.mark.parametrize("text", ["1e-9", "5e-324", "0.05", "0.0999"])
def test_an_interval_below_a_tenth_of_a_second_is_refused(
    text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """--interval 1e-9 (positive, but far shorter than a terminal can show a picture) was
    taken, and --watch then polled the endpoint and redrew as fast as it could; it is a usage
    error now, naming the shortest interval and the value as given."""
    with pytest.raises(SystemExit) as exit_info:
        main(["status", "--watch", "--interval", text])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "error: argument --interval: must be at least 0.1 seconds " in err
    assert err.endswith(f", got {text!r}\n")


def test_an_interval_of_a_tenth_of_a_second_is_taken() -> None:
    """0.1 s, the shortest interval, is taken (and --timeout may be shorter)."""
    parser = cli.build_parser()
    assert parser.parse_args(["status", "--interval", "0.1"]).interval == 0.1
    assert parser.parse_args(["status", "--timeout", "0.01"]).timeout == 0.01
    assert "0.1 or more" in " ".join(parser.commands["status"].format_help().split())


@pytest.mark.parametrize("interval", [1e-9, 5e-324, 0.05])
def test_watch_refuses_an_interval_below_a_tenth_of_a_second(interval: float) -> None:
    """watch_status with an interval below 0.1 s raises ValueError at the call, as --interval
    refuses it, instead of polling and redrawing as fast as it can."""
    with pytest.raises(ValueError, match=r"^interval must be at least 0\.1 seconds .*, not "):
        watch_status("http://127.0.0.1:1", interval=interval, out=io.StringIO())


def test_no_command_prints_help_and_returns_2(capsys: pytest.CaptureFixture[str]) -> None:
    """`laios` alone shows the usage on stderr."""
    assert main([]) == 2
    assert "status" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "command", "unknown"),
    [
        (["status", "--wach"], "laios status", "--wach"),
        (["status", "--url", "127.0.0.1:1", "extra"], "laios status", "extra"),
        (["demo", "--bogus"], "laios demo", "--bogus"),
        (["--bogus", "status"], "laios", "--bogus"),
    ],
    ids=["status-option", "status-argument", "demo-option", "before-the-command"],
)
def test_an_unknown_argument_is_refused_by_the_command_it_follows(
    argv: list[str], command: str, unknown: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A misspelt option after `laios status` is an error of `laios status`, with its usage
    (the options it does take), not of `laios`, whose usage lists no option of the command."""
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"usage: {command} [-h]"), err
    assert err.splitlines()[-1] == f"{command}: error: unrecognized arguments: {unknown}"


def test_demo_forwards_its_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    """`laios demo` hands its parsed options to laios._demo.run and returns its code."""
    received: list[Any] = []
    fake = ModuleType("laios._demo")
    fake.run = lambda args: received.append(args) or 7  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "laios._demo", fake)
    argv = ["demo", "--duration", "1.5", "--host", "0.0.0.0", "--port", "0", "--no-live"]
    assert main([*argv, "--console-spans", "--runner", "process"]) == 7
    (args,) = received
    assert (args.duration, args.host, args.port) == (1.5, "0.0.0.0", 0)
    assert (args.no_live, args.console_spans) == (True, True)
    assert args.runner == "process"


def test_demo_defaults() -> None:
    """Demo options default to no duration, 127.0.0.1:8489, live view and no console spans."""
    args = cli.build_parser().parse_args(["demo"])
    assert (args.duration, args.host, args.port) == (None, "127.0.0.1", 8489)
    assert (args.no_live, args.console_spans) == (False, False)
    assert args.runner == "thread"
    assert args.otlp_endpoint is None


def test_demo_takes_an_otlp_endpoint_url() -> None:
    """--otlp-endpoint keeps the URL it is given, for the demo's OTLP/HTTP exporter."""
    args = cli.build_parser().parse_args(["demo", "--otlp-endpoint", "http://localhost:4318"])
    assert args.otlp_endpoint == "http://localhost:4318"


@pytest.mark.parametrize(
    "value",
    [
        "http://localhost:99999",
        "http://[::1",
        "http://h:port",
        "http://col lector:4318",
        "http://\udcff:4318",
        "http://col\x1blector:4318",
        "http://" + "a" * 64 + ".example:4318",
    ],
)
def test_demo_refuses_an_otlp_endpoint_that_is_not_a_usable_url(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """--otlp-endpoint with a port past 65535 or a broken host is a usage error, not a late
    export failure; so is a host no request can name (a space, a control character or a byte
    that is not UTF-8 in it, a label longer than 63 characters), which was taken, each batch
    of spans then failing to export ("Failed to parse")."""
    with pytest.raises(SystemExit) as exit_info:
        cli.build_parser().parse_args(["demo", "--otlp-endpoint", value])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"{value!r} is not a usable URL" in err
    assert "_otlp_endpoint" not in err


@pytest.mark.parametrize(
    "value", ["http://localhost:4318/a\x1b[2Jb", "http://localhost:4318/\n", "http://u:p\x07@h:1"]
)
def test_demo_refuses_an_otlp_endpoint_with_a_control_character(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A control character after the host (an escape sequence in the path, a line break) was
    taken, and the banner's Spans line wrote it to the terminal as it was. Like one in the
    host, it is a usage error, named without its user and password."""
    with pytest.raises(SystemExit) as exit_info:
        cli.build_parser().parse_args(["demo", "--otlp-endpoint", value])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "is not a usable URL (" in err
    assert "a control character" in err
    assert all(char.isprintable() or char == "\n" for char in err)
    assert "p\\x07" not in err  # (the password is not shown)


def test_demo_refuses_an_otlp_endpoint_with_a_byte_not_utf8_after_its_host(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A byte that is not UTF-8 in the path (``$'\\xff'``, a lone surrogate as Python reads
    it) was taken, and the spans were sent to another path than the one given
    (``/%ED%B3%BF/v1/traces``). Like one in the host, it is a usage error."""
    with pytest.raises(SystemExit) as exit_info:
        cli.build_parser().parse_args(["demo", "--otlp-endpoint", "http://localhost:4318/\udcff"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "is not a usable URL (it holds '\\udcff', a byte that is not UTF-8)" in err


@pytest.mark.parametrize("value", ["localhost:4318", "grpc://collector:4317", "http://"])
def test_demo_refuses_an_otlp_endpoint_that_is_not_an_http_url(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """--otlp-endpoint without http:// or https:// and a host is a usage error."""
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--otlp-endpoint", value])
    assert exit_info.value.code == 2
    assert "http:// or https:// URL" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("http://:4318", "names no host"),
        ("http://user@:4318", "names no host"),
        ("http://localhost:4318?x=1", "a query"),
        ("http://localhost:4318#traces", "a fragment"),
    ],
)
def test_demo_refuses_an_otlp_endpoint_the_spans_could_not_reach(
    value: str, said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """--otlp-endpoint without a host, or with a query or fragment (before which /v1/traces
    would be put), is a usage error saying why, not an export failing at every batch."""
    with pytest.raises(SystemExit) as exit_info:
        cli.build_parser().parse_args(["demo", "--otlp-endpoint", value])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert repr(value.replace("user@", "")) in err  # (named without its user)
    assert said in err


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("http://user:s3cret@localhost:99999", "'http://localhost:99999' is not a usable URL"),
        ("http://user:s3cret@[::1", "'http://[::1' is not a usable URL"),
        ("http://user:s3cret@col lector:4318", "'http://col lector:4318' is not a usable URL"),
        ("grpc://user:s3cret@collector:4317", "'grpc://collector:4317' is not an http://"),
        ("http://user:s3cret@:4318", "'http://:4318' names no host"),
        ("http://user:s3cret@localhost:4318?x=1", "'http://localhost:4318?x=1' has a query"),
        ("http://user:s3c/ret@localhost:4318", "'http://USER:PASSWORD@localhost:4318' is not"),
        ("http://user:s3c#ret@localhost:4318", "'http://USER:PASSWORD@localhost:4318' is not"),
        ("http://user:4318/s3cret@localhost:4318", "'http://USER:PASSWORD@localhost:4318' is"),
    ],
)
def test_demo_names_a_refused_otlp_endpoint_without_its_password(
    value: str, shown: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A refused --otlp-endpoint is named without the user and password it carries, as the
    banner and a refused OTEL_EXPORTER_OTLP_ENDPOINT name it: the message goes to stderr, and
    from there to a terminal's scrollback, a CI log or a journal."""
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--otlp-endpoint", value])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert shown in err
    assert "s3cret" not in err
    assert "user" not in err


def test_the_command_says_its_version(capsys: pytest.CaptureFixture[str]) -> None:
    import laios

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"laios {laios.__version__}"


def test_python_dash_m_laios_runs_the_command() -> None:
    import subprocess
    import sys

    import laios

    done = subprocess.run(
        [sys.executable, "-m", "laios", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"laios {laios.__version__}"


def test_a_tools_constant_labels_follow_its_name() -> None:
    """Two pools' rows of one tool are told apart by their stores' labels."""
    document = {
        "tools": [
            {"tool": "fetch", "total": 1, "outcomes": {"success": 1}},
            {"labels": {"pool": "search"}, "tool": "fetch", "total": 2, "outcomes": {"success": 2}},
        ]
    }
    rows = [line.split() for line in render_status(document).splitlines() if "fetch" in line]
    assert [row[:3] for row in rows] == [["fetch", "1", "1"], ["fetch", "{pool=search}", "2"]]


@pytest.mark.parametrize("width", [None, 80])
def test_the_tasks_of_other_worker_processes_are_counted_as_running(width: int | None) -> None:
    """In multiprocess mode ``/status`` lists (and counts in ``running_total``) the running
    tasks of the worker process that answered only, while the tools' ``in_flight`` and the
    queue depth are those of every worker: the title counts them all, the tasks not listed on
    a ``+N more`` line. It said "Running tasks (1)" beside three tools' tasks in flight and
    one queued."""
    document = {
        "running": [{"task_id": "t-here", "tool": "slow", "state": "running"}],
        "running_total": 1,
        "tools": [
            {"tool": "slow", "total": 2, "outcomes": {"success": 2}, "in_flight": 2},
            {"tool": "fast", "total": 0, "outcomes": {}, "in_flight": 1},
        ],
        "queue_depth": 1,
    }
    lines = [line.strip() for line in cli.status_lines(document, width=width)]
    assert lines[0] == "Running tasks (4)"
    assert "+3 more" in lines


def test_a_running_tasks_count_is_never_below_those_listed() -> None:
    """A document whose tools count fewer tasks in flight than it lists (a malformed one) is
    counted by what it lists."""
    task = {"task_id": "t-1", "tool": "slow", "state": "running"}
    document = {"running": [task, {**task, "task_id": "t-2"}], "running_total": 2, "tools": []}
    assert cli.status_lines(document)[0] == "Running tasks (2)"


@pytest.mark.parametrize("width", [None, 120])
def test_a_running_tasks_constant_labels_follow_its_tool(width: int | None) -> None:
    """Two pools running one tool: each running task says which pool it runs in, as the
    tool table does, on a terminal of ordinary width too."""
    document = {
        "running": [
            {"task_id": f"t-{pool}", "tool": "fetch", "labels": {"pool": pool}, "state": "running"}
            for pool in ("search", "batch")
        ]
        + [{"task_id": "t-plain", "tool": "fetch", "state": "running"}],
        "tools": [],
    }
    rows = [line.split() for line in cli.status_lines(document, width=width) if "t-" in line]
    assert [row[1:3] for row in rows] == [
        ["fetch", "{pool=search}"],
        ["fetch", "{pool=batch}"],
        ["fetch", "[..........]"],
    ]


@pytest.mark.parametrize("url", ["http://[::1", "http://127.0.0.1:99999", "127.0.0.1:port"])
@pytest.mark.parametrize("watch", [False, True])
def test_status_refuses_a_malformed_url(
    url: str, watch: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    """A --url that is not a URL (bad IPv6 host, port out of range): exit 2, one line."""
    assert main(["status", "--url", url, *(["--watch"] if watch else [])]) == 2
    err = capsys.readouterr().err
    assert "is not a usable URL" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("port", ["70000", "-1", "http"])
def test_demo_refuses_a_port_out_of_range(port: str, capsys: pytest.CaptureFixture[str]) -> None:
    """--port outside 0-65535 is a usage error (exit 2), not a traceback from bind()."""
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--port", port])
    assert exit_info.value.code == 2
    assert "0 to 65535" in capsys.readouterr().err


@pytest.mark.parametrize("duration", ["nan", "-1", "0", "inf"])
def test_demo_refuses_a_duration_that_is_not_a_positive_number(
    duration: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """--duration nan (which ran for ever) and -1 (which stopped at once) are usage errors."""
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--duration", duration])
    assert exit_info.value.code == 2
    assert "positive" in capsys.readouterr().err


@pytest.mark.parametrize(
    "port",
    [
        "٣",
        "３",
        "8_489",
        " 80",
        "80 ",
        "80\n",
        "+80",
        "0x50",
        "8\x1b[2J",
        pytest.param("1" * 5000, id="5000-digits"),
    ],
)
def test_demo_refuses_a_port_not_in_ascii_digits(
    port: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """--port takes ASCII digits only: not another script's digits, which int() reads (``٣``
    served on port 3), an underscore, a sign or white space; the message shows the value
    printably and briefly."""
    with pytest.raises(SystemExit) as exit_info:
        cli.build_parser().parse_args(["demo", "--port", port])  # (the old reading ran it)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "error: argument --port: must be a port number from 0 to 65535" in err
    assert "\x1b" not in err
    assert len(err) < 1000


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["demo", "--host", "a " * 50_000], id="host"),
        pytest.param(["demo", "--host", f"[{'a' * 10**5}]"], id="host-in-brackets"),
        pytest.param(["demo", "--otlp-endpoint", "http://h:99999/" + "a" * 10**5], id="otlp"),
        pytest.param(["demo", "--allowed-host", "a" * 10**5], id="allowed-host"),
    ],
)
def test_a_huge_refused_value_is_described_briefly(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """A refused value of a hundred thousand characters is shown cut short in the usage
    error, not written out whole."""
    with pytest.raises(SystemExit) as exit_info:
        cli.build_parser().parse_args(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"error: argument {argv[1]}: " in err
    assert len(err) < 2000


#: Long enough that a message quoting it whole is long, short enough for a URL a request sends.
HUGE = "a" * 100_000


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("http://[::1/" + HUGE, id="unparseable"),
        pytest.param("http://h:99999/" + HUGE, id="bad-port"),
        pytest.param("http://h:x" + HUGE, id="port-not-a-number"),
        pytest.param("ftp://h/" + HUGE, id="not-http"),
        pytest.param("http:///" + HUGE, id="no-host"),
        pytest.param("http://127.0.0.1:0/" + HUGE, id="port-0"),
        pytest.param("http://[fe80::1%25zz]/" + HUGE, id="zone-id"),
        pytest.param("http://u:p@x@" + HUGE + "/", id="credentials-past-host"),
        pytest.param("http://" + HUGE + "/", id="a-huge-label"),
        pytest.param("http://" + "a." * 50_000 + "invalid/", id="a-huge-host-name"),
        pytest.param("http://u:%ff@127.0.0.1:1/" + HUGE, id="password-not-utf-8"),
        pytest.param("DEAD/" + HUGE, id="nothing-answers"),
        pytest.param("DEAD/?" + HUGE, id="nothing-answers-to-a-query"),
        pytest.param("http://127.0.0.1/" + HUGE, id="nothing-answers-without-a-port"),
    ],
)
def test_a_huge_url_is_described_briefly(
    url: str, dead_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A --url of 100,000 characters that cannot be used, or where nothing answers, is named
    cut short in the one line that says so: it was quoted whole (once or twice)."""
    line = status_error(url.replace("DEAD", dead_url), capsys)
    assert line.startswith("laios status: ")
    assert "a" * 100 in line or "a." * 50 in line
    assert len(line) < 2000, line[:2000]


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        pytest.param(
            ["demo", "--runner", "x" * 300],
            "argument --runner: invalid choice: 'xxx",
            id="choice",
        ),
        pytest.param(
            ["demo", "--runner", "x " * 50_000],
            "argument --runner: invalid choice: 'x x x",
            id="choice-of-words",
        ),
        pytest.param(["x" * 100_000], "invalid choice: 'xxx", id="command"),
        pytest.param(["demo", "x" * 100_000], "unrecognized arguments: xxx", id="unrecognized"),
        pytest.param(
            ["demo", *["x"] * 50_000], "unrecognized arguments: x x x", id="many-unrecognized"
        ),
        pytest.param(
            ["demo", "\x1b[2J" + "'x\\' " * 20_000], "unrecognized arguments: ", id="quotes"
        ),
    ],
)
def test_a_huge_value_argparse_refuses_is_described_briefly(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A value of a hundred thousand characters that argparse itself refuses (not one of the
    choices, an argument no option takes) is shown cut short and printable in the usage
    error, which keeps its usage line, the choices and exit status 2: it was written out
    whole."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: laios")
    assert said in err
    if argv[1:2] == ["--runner"]:
        assert "(choose from 'thread', 'process', 'dask')" in err
    whole = "x" * 250 in err or "x " * 500 in err or "\x1b" in err  # (no diff of 100 kB)
    assert not whole, err[:2000]
    assert len(err) < 2000, err[:2000]


def test_a_short_value_argparse_refuses_is_shown_whole(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A value of ordinary length is quoted whole, as argparse quotes it."""
    with pytest.raises(SystemExit):
        main(["demo", "--runner", "threads", "--what's-this"])
    err = capsys.readouterr().err
    assert "argument --runner: invalid choice: 'threads' (choose from " in err
    with pytest.raises(SystemExit):
        main(["demo", "--what's-this", "x y"])
    assert "unrecognized arguments: --what's-this x y" in capsys.readouterr().err


@pytest.mark.parametrize("option", ["--bearer-token-file", "--cacert", "--cert", "--key"])
def test_an_empty_file_option_is_said_to_name_no_file(
    option: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--cacert ""`` (as ``--cacert "$CA"`` gives with CA unset) is refused saying that the
    path is empty, not that a file of no name cannot be read (nor, for ``--key``, that
    ``--key  is given without --cert``, naming no file)."""
    assert main(["status", option, ""]) == 2
    err = capsys.readouterr().err
    assert f"laios status: {option} is given an empty path, which names no file" in err


def test_a_long_run_of_digits_that_is_no_number_is_refused_at_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``--interval 111...1x`` (20,000 digits, then a letter) was refused only after the
    number pattern had tried every way of splitting the digits between an integer part and a
    fraction: seconds for this one, minutes for an argument of the largest length Linux takes.
    It is refused at once now (the margin is generous: it takes milliseconds)."""
    parser = cli.build_parser()
    started = time.monotonic()
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(["status", "--interval", "1" * 20_000 + "x"])
    took = time.monotonic() - started
    assert exit_info.value.code == 2
    assert "not a number" in capsys.readouterr().err
    assert took < 3.0, f"refused after {took:.1f}s"
    for number in ("0.5", "5.", ".5", "1e3", "1E+3", "+2.5e-1"):
        assert parser.parse_args(["status", "--interval", number]).interval == float(number)


def test_demo_takes_a_port_with_leading_zeros() -> None:
    """A port of ASCII digits is read as the number they write, leading zeros and all."""
    parser = cli.build_parser()
    assert parser.parse_args(["demo", "--port", "08489"]).port == 8489
    assert parser.parse_args(["demo", "--port", "0" * 5000 + "80"]).port == 80


@pytest.mark.parametrize(
    ("option", "value"),
    [
        pytest.param(option, value, id=f"{option[1]}-{value[:20]!r}")
        for option in (["status", "--interval"], ["status", "--timeout"], ["demo", "--duration"])
        for value in ("٣", "３", "1_000", " 3", "3 ", "3\n", "0x10", "3\x1b[2J", "x" * 10**6)
    ],
)
def test_seconds_not_in_ascii_digits_are_refused(
    option: list[str], value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """--interval, --timeout and --duration take a number written in ASCII digits: not
    another script's digits, which float() reads (``٣`` was 3 seconds), an underscore or white
    space; the message shows the value printably and briefly."""
    with pytest.raises(SystemExit) as exit_info:
        cli.build_parser().parse_args([*option, value])  # (the old reading ran the demo)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"error: argument {option[1]}: not a number: " in err
    assert "\x1b" not in err
    assert len(err) < 1000


@pytest.mark.parametrize("value", ["0.5", "+2", "1e3", "1E-2", ".5", "5.", "3"])
def test_seconds_in_ascii_digits_are_taken(value: str) -> None:
    """A sign, a decimal point and an exponent are part of a number of seconds."""
    assert cli.build_parser().parse_args(["status", "--timeout", value]).timeout == float(value)


@pytest.mark.parametrize("command", [["demo"], ["status"]])
def test_ctrl_c_before_a_command_is_under_way_ends_it_without_a_traceback(
    command: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ctrl-C while the demo starts or a status is fetched: exit 130, no traceback."""

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    fake = ModuleType("laios._demo")
    fake.run = interrupted  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "laios._demo", fake)
    monkeypatch.setattr(cli, "fetch_status", interrupted)
    assert main(command) == 130
    assert "Traceback" not in capsys.readouterr().err


def test_output_closed_by_the_reader_ends_the_demo_without_a_traceback() -> None:
    """`laios demo | head -1`: once the reader is gone the demo ends, exit 1, no traceback."""
    done = run_to_a_gone_reader("laios", ["demo", "--port", "0", "--duration", "30"])
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "BrokenPipeError" not in done.stderr


@pytest.mark.parametrize("command", ["status", "demo"])
def test_a_closed_stdout_ends_the_command_with_one_line_and_exit_1(
    command: str, server: MetricsServer
) -> None:
    """`laios status >&-` (stdout closed, so Python has no sys.stdout): exit 1 and one line
    on stderr, not a traceback from the demo nor a status shown to no one with exit 0."""
    argv = ["status", "--url", server.url] if command == "status" else ["demo", "--port", "0"]
    done = run_with_stdout_closed("laios", argv)
    assert done.returncode == 1, done.stderr
    assert done.stderr == f"laios {command}: could not write its output (stdout is closed)\n"


def test_demo_on_a_host_that_does_not_resolve_says_to_pick_another_host() -> None:
    """--host that names no address: exit 2, and the advice is about the host, not the port."""
    done = subprocess.run(
        [sys.executable, "-m", "laios", "demo", "--host", "no-such-host.invalid", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("laios demo: cannot listen on no-such-host.invalid:0")
    assert done.stderr.count("\n") == 1, done.stderr  # one line
    assert done.stderr.count("cannot listen on") == 1
    assert "--host" in done.stderr
    assert "--port" not in done.stderr
    assert "Traceback" not in done.stderr


def test_demo_on_a_busy_port_names_the_address_once() -> None:
    """A port in use: exit 2, one line naming the address and the reason, said once."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "laios", "demo", "--port", str(port), "--no-live"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()  # one line, which says what to do
    assert line.startswith(f"laios demo: cannot listen on 127.0.0.1:{port}: Address already in use")
    assert line.count("cannot listen on") == 1
    assert "[Errno" not in line
    assert "pick another port with --port, or --port 0 for a free one" in line
    assert line.lower().count("pick another port") == 1


@pytest.fixture
def guarded(store: MetricStore) -> Iterator[str]:
    """A laios endpoint that requires basic authentication (user ``prom``, password
    ``s3cret``); yields its base URL, without credentials."""
    pytest.importorskip("bcrypt")
    from laios.execution.web import WebConfig, hash_password

    config = WebConfig(basic_auth_users={"prom": hash_password("s3cret", cost=4)})
    with start_http_server(0, store=store, web_config=config) as server:
        yield server.url


def test_an_endpoint_that_asks_for_credentials_says_how_to_give_them(
    guarded: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 401 without credentials: the message says the endpoint wants a user and password and
    how to put them in --url, not to start an endpoint that is already running."""
    line = status_error(guarded, capsys)
    assert "HTTP 401" in line
    assert f"http://USER:PASSWORD@{guarded.removeprefix('http://')}" in line
    assert "start_http_server" not in line


def test_the_credentials_hint_keeps_the_mount_prefix(
    raw_server: Callable[[Respond], str], capsys: pytest.CaptureFixture[str]
) -> None:
    """An endpoint mounted under a prefix that asks for credentials: the URL the message
    suggests keeps the prefix, so that following it reaches the same endpoint."""
    url = raw_server(
        _send(
            b'HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm="laios"\r\n'
            b"Content-Length: 0\r\n\r\n"
        )
    )
    line = status_error(f"{url}/ops/laios/", capsys)
    host = url.removeprefix("http://")
    assert line.endswith(f"percent-encoded: http://USER:PASSWORD@{host}/ops/laios."), line


@pytest.mark.parametrize("credentials", ["", "prom:s3cret@"], ids=["none", "given"])
def test_an_endpoint_that_takes_bearer_tokens_only_is_not_asked_for_a_password(
    credentials: str, store: MetricStore, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 401 from an endpoint that takes a bearer token and no password (its
    ``WWW-Authenticate`` offers ``Bearer`` only): no user and password can pass, so the
    message says it asks for a bearer token and to give one with --bearer-token-file, instead
    of how to give a user and password, or that the ones given were refused."""
    from laios.execution.web import WebConfig

    config = WebConfig(bearer_tokens=["0123456789abcdef0123456789abcdef"])
    with start_http_server(0, store=store, web_config=config) as server:
        url = server.url.replace("http://", f"http://{credentials}")
        line = status_error(url, capsys)
    assert "HTTP 401" in line
    assert "asks for a bearer token" in line
    assert "give it in a file with --bearer-token-file" in line
    assert "does not send" not in line
    assert "USER:PASSWORD" not in line
    assert "refused" not in line
    assert "s3cret" not in line


def test_an_endpoint_offering_basic_among_other_schemes_is_asked_for_a_password(
    raw_server: Callable[[Respond], str], capsys: pytest.CaptureFixture[str]
) -> None:
    """``WWW-Authenticate`` offering both schemes, in one header with a quoted comma or in two:
    a user and password can pass, and the message says how to give them (or a bearer token,
    which it offers too)."""
    url = raw_server(
        _send(
            b'HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm="a, Basic b"\r\n'
            b'WWW-Authenticate: Digest realm="x", Basic realm="laios"\r\n'
            b"Content-Length: 0\r\n\r\n"
        )
    )
    line = status_error(url, capsys)
    assert f"http://USER:PASSWORD@{url.removeprefix('http://')}, or a bearer token" in line
    assert "asks for a bearer token" not in line


def test_refused_credentials_are_said_to_be_refused(
    guarded: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 401 with credentials in --url: the message says they were refused, without the
    password."""
    url = guarded.replace("http://", "http://prom:wr0ng@")
    line = status_error(url, capsys)
    assert "refused the user and password" in line
    assert "wr0ng" not in line
    assert "start_http_server" not in line


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_status_follows_every_redirect_of_a_get(
    code: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every redirect status of a GET is followed, 308 as well (a permanent redirect to
    https, as proxies such as Traefik send it), which Python 3.10's urllib does not follow by
    itself."""
    document = json.dumps(DOCUMENT).encode()

    def app(environ: Any, start_response: Any) -> list[bytes]:
        if environ["PATH_INFO"] == "/status":
            start_response(f"{code} Moved", [("Location", "/moved/status")])
            return [b""]
        start_response("200 OK", [("Content-Type", "application/json")])
        return [document]

    with _serving(app) as port:
        assert main(["status", "--url", f"http://127.0.0.1:{port}", "--timeout", "5"]) == 0
    assert "Running tasks (1)" in capsys.readouterr().out


@pytest.fixture
def redirecting() -> Iterator[tuple[str, list[tuple[str, str]]]]:
    """A server whose ``/status`` redirects to ``/laios/status`` on the same host and port, which
    requires user ``prom`` with password ``s3cret``; ``/away`` redirects to ``ftp://``. Yields
    its base URL and the (path, Authorization) of every request it got."""
    seen: list[tuple[str, str]] = []
    good = "Basic " + base64.b64encode(b"prom:s3cret").decode()
    document = json.dumps({"generated_at": "now", "running": [], "tools": []}).encode()

    def app(environ: Any, start_response: Any) -> list[bytes]:
        path, authorization = environ["PATH_INFO"], environ.get("HTTP_AUTHORIZATION", "")
        seen.append((path, authorization))
        if path == "/status":
            start_response("302 Found", [("Location", "/laios/status")])
            return [b""]
        if path == "/elsewhere/status":
            port = environ["SERVER_PORT"]
            start_response("302 Found", [("Location", f"http://127.0.0.1:{port}/laios/status")])
            return [b""]
        if path == "/away/status":
            start_response("302 Found", [("Location", "ftp://127.0.0.1:1/status")])
            return [b""]
        if path.startswith("/broken/"):  # /broken/<code>/status: a Location no URL is
            code = path.split("/")[2]
            start_response(f"{code} Moved", [("Location", "http://[::1/status")])
            return [b""]
        if path == "/port-x/status":  # a port that is no number
            port = environ["SERVER_PORT"]
            start_response("302 Found", [("Location", f"http://127.0.0.1:{port}x/status")])
            return [b""]
        if path == "/port-over/status":  # a port past 65535, which the system wraps round
            port = int(environ["SERVER_PORT"]) + 65536
            start_response("302 Found", [("Location", f"http://127.0.0.1:{port}/status")])
            return [b""]
        if path == "/spaced/status":  # a host with a space (percent-encoded by urllib)
            start_response("302 Found", [("Location", "http://local host/status")])
            return [b""]
        if path.startswith("/userinfo/"):  # /userinfo/<kind>/status: a user and password
            userinfo = {"both": "admin:hunter2", "user": "admin", "empty": "", "colon": ":"}
            port = environ["SERVER_PORT"]
            location = f"http://{userinfo[path.split('/')[2]]}@127.0.0.1:{port}/laios/status"
            start_response("302 Found", [("Location", location)])
            return [b""]
        if authorization != good:
            start_response("401 Unauthorized", [("WWW-Authenticate", 'Basic realm="x"')])
            return [b""]
        start_response("200 OK", [("Content-Type", "application/json")])
        return [document]

    with _serving(app) as port:
        yield f"127.0.0.1:{port}", seen


def test_credentials_follow_a_redirect_on_the_same_host_and_port(
    redirecting: tuple[str, list[tuple[str, str]]], capsys: pytest.CaptureFixture[str]
) -> None:
    """A redirect to another path of the same scheme, host and port keeps the user and
    password: the status is shown, not 'refused the user and password'."""
    address, seen = redirecting
    assert main(["status", "--url", f"http://prom:s3cret@{address}", "--timeout", "5"]) == 0
    assert "laios status" in capsys.readouterr().out
    assert [path for path, authorization in seen if authorization] == [
        "/status",
        "/laios/status",
    ]


def test_credentials_do_not_follow_a_redirect_to_another_host(
    redirecting: tuple[str, list[tuple[str, str]]], capsys: pytest.CaptureFixture[str]
) -> None:
    """Given ``localhost`` in --url, a redirect to ``127.0.0.1`` (another host name) does not
    take the password along."""
    address, seen = redirecting
    port = address.rsplit(":", 1)[1]
    url = f"http://prom:s3cret@localhost:{port}/elsewhere"
    assert main(["status", "--url", url, "--timeout", "5"]) == 2
    assert "s3cret" not in capsys.readouterr().err
    assert ("/laios/status", "") in seen
    assert all(not authorization for path, authorization in seen if path == "/laios/status")


def test_a_redirect_to_another_scheme_than_http_is_not_followed(
    redirecting: tuple[str, list[tuple[str, str]]], capsys: pytest.CaptureFixture[str]
) -> None:
    """A redirect to ``ftp://`` is an answer that is not a status: the message says HTTP 302
    from the URL asked, not that nothing answered."""
    address, _seen = redirecting
    line = status_error(f"http://{address}/away", capsys)
    assert "answered HTTP 302" in line
    assert "nothing answered" not in line


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_a_redirect_to_a_location_that_is_no_url_is_not_followed(
    code: int, redirecting: tuple[str, list[tuple[str, str]]], capsys: pytest.CaptureFixture[str]
) -> None:
    """A redirect whose Location is no URL (``http://[::1/status``) is an answer that is not
    a status: the message says HTTP 3xx from the URL asked; it said that nothing answered
    there ("Invalid IPv6 URL")."""
    address, _seen = redirecting
    line = status_error(f"http://{address}/broken/{code}", capsys)
    assert f"answered HTTP {code}" in line
    assert "nothing answered" not in line


@pytest.mark.parametrize("path", ["/port-x", "/port-over", "/spaced"])
def test_a_redirect_to_a_location_no_connection_can_be_made_to_is_not_followed(
    path: str, redirecting: tuple[str, list[tuple[str, str]]], capsys: pytest.CaptureFixture[str]
) -> None:
    """A redirect whose Location urllib reads but no connection can be made to as it is
    written is a Location that is no URL too: the message says HTTP 302 from the URL asked
    and why it was not followed. A port that is no number (``:8489x``) or a space in the host
    was said to have "answered, but not with HTTP" ("nonnumeric port"), though nothing was
    asked there; a port past 65535 was connected to modulo 65536 (here, the port asked)."""
    address, seen = redirecting
    line = status_error(f"http://{address}{path}", capsys)
    assert "answered HTTP 302" in line, line
    assert "a redirect that laios status did not follow (its Location is no URL)" in line, line
    assert "answered, but" not in line
    assert len(seen) == 1


@pytest.fixture
def looked_up(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The host names looked up from now on; a name holding an ``@`` (no host's) is not sent
    to the resolver but fails as an unknown name."""
    names: list[str] = []
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        names.append(str(host))
        if "@" in str(host):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return names


@pytest.mark.parametrize("kind", ["both", "user"])
def test_a_redirect_whose_location_holds_a_user_and_password_is_not_followed(
    kind: str,
    redirecting: tuple[str, list[tuple[str, str]]],
    looked_up: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A Location with a user and password (``http://admin:hunter2@127.0.0.1:8489/...``) is
    not followed, and says why: laios status sends the credentials of --url only. It was
    connected to as a host named ``admin:hunter2@127.0.0.1``: the password went to the name
    resolver, and the message said that nothing answered there."""
    address, seen = redirecting
    line = status_error(f"http://{address}/userinfo/{kind}", capsys)
    assert "answered HTTP 302" in line, line
    assert "its Location holds a user and password" in line, line
    assert "nothing answered" not in line, line
    assert "admin" not in line
    assert not [name for name in looked_up if "@" in name]
    assert [path for path, _ in seen] == [f"/userinfo/{kind}/status"]


@pytest.mark.parametrize("kind", ["empty", "colon"])
def test_a_redirect_whose_location_holds_an_empty_user_and_password_is_followed(
    kind: str,
    redirecting: tuple[str, list[tuple[str, str]]],
    looked_up: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An empty user and password in a Location (``http://@127.0.0.1:8489/...``) are no
    credentials, as in --url: the redirect is followed to that host (with the credentials of
    --url, the same scheme, host and port). It was looked up as a host named ``@127.0.0.1``."""
    address, seen = redirecting
    url = f"http://prom:s3cret@{address}/userinfo/{kind}"
    assert main(["status", "--url", url, "--timeout", "5"]) == 0
    assert "Running tasks (0)" in capsys.readouterr().out
    assert not [name for name in looked_up if "@" in name]
    assert [path for path, authorization in seen if authorization] == [
        f"/userinfo/{kind}/status",
        "/laios/status",
    ]


@pytest.mark.parametrize(
    ("head", "why"),
    [
        (b"302 Found\r\nLocation: /status", "went round in a loop"),
        (b"302 Found", "names no Location"),
        (b"300 Multiple Choices\r\nLocation: /elsewhere", "follows 301, 302, 303, 307 and 308"),
        (b"302 Found\r\nLocation: ftp://example.com/status", "not an http:// or https:// URL"),
    ],
    ids=["loop", "no-location", "300", "ftp"],
)
def test_a_redirect_not_followed_says_why(
    head: bytes, why: str, raw_server: Callable[[Respond], str], capsys: pytest.CaptureFixture[str]
) -> None:
    """A redirect that is not followed says why, not that its target is no http(s) URL when
    it is one: a redirect to itself, one without a Location, a code laios status does not
    follow, a Location of another scheme."""
    url = raw_server(_send(b"HTTP/1.1 " + head + b"\r\nContent-Length: 0\r\n\r\n"))
    line = status_error(url, capsys)
    assert "HTTP 30" in line
    assert why in line, line
    assert "nothing answered" not in line


def test_a_connection_closed_without_an_answer_is_not_said_to_have_no_listener(
    raw_server: Callable[[Respond], str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Something that accepts the connection and closes it without a word (a container's
    published port with an endpoint that listens on its container's loopback address only
    behind it): the message says so and how to listen beyond loopback, not to start an
    endpoint where one may well run (it said "nothing answered", and to start one with
    start_http_server)."""
    url = raw_server(lambda conn, stop: None)  # (the request is read, then the connection closed)
    line = status_error(url, capsys)
    assert f"{url}/status accepted the connection, then closed it without answering" in line
    assert 'host="0.0.0.0"' in line, line
    assert "nothing answered" not in line, line
    assert "Start the endpoint" not in line, line


def test_a_redirect_to_where_nothing_answers_names_where_it_led(
    dead_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A redirect to a port where nothing listens: the message says nothing answered at the
    redirect's target, reached by a redirect from the URL asked, and does not advise starting
    an endpoint at the URL asked (something answered there); it said that nothing answered at
    the URL asked."""

    def app(environ: Any, start_response: Any) -> list[bytes]:
        start_response("302 Found", [("Location", f"{dead_url}/status")])
        return [b""]

    with _serving(app) as port:
        url = f"http://127.0.0.1:{port}"
        assert main(["status", "--url", url, "--timeout", "5"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert f"nothing answered at {dead_url}/status" in line, line
    assert f"redirect from {url}/status" in line, line
    assert f"nothing answered at {url}" not in line, line
    assert "start_http_server" not in line, line


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize("watch", [False, True], ids=["once", "watch"])
def test_output_that_cannot_be_written_is_one_line_not_a_traceback(
    server: MetricsServer, watch: bool
) -> None:
    """`laios status > /dev/full` (a full disk): exit 1, one line saying the output could not
    be written and why, no traceback."""
    command = [sys.executable, "-m", "laios", "status", "--url", server.url]
    if watch:
        command += ["--watch", "--interval", "0.1"]
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            command, stdout=full, stderr=subprocess.PIPE, text=True, timeout=60, check=False
        )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr, done.stderr
    assert "Exception ignored" not in done.stderr, done.stderr
    assert "could not write its output" in done.stderr, done.stderr
    assert "No space left on device" in done.stderr, done.stderr


def test_demo_takes_allowed_hosts() -> None:
    """--allowed-host, repeated, collects the names a proxy may forward; none by default."""
    assert cli.build_parser().parse_args(["demo"]).allowed_hosts == []
    args = cli.build_parser().parse_args(
        ["demo", "--allowed-host", "metrics.example.com", "--allowed-host", ".corp.example"]
    )
    assert args.allowed_hosts == ["metrics.example.com", ".corp.example"]


@pytest.mark.parametrize(
    "value", ["metrics.example.com:443", "https://metrics.example.com", "", ".com"]
)
def test_demo_refuses_an_allowed_host_that_is_not_a_host_name(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """--allowed-host with a port, a scheme or nothing, or a leading dot on a top-level
    domain, is a usage error naming the value."""
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--allowed-host", value])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--allowed-host" in err
    assert repr(value) in err


@pytest.mark.parametrize("value", ["1.2.3.4", "::1", "fe80::1", "[::1]", "[FE80::1]"])
def test_demo_takes_an_ip_address_as_allowed_host(value: str) -> None:
    """--allowed-host takes an IP address, IPv6 (bracketed or not) as IPv4 (an IPv6 address
    was refused while an IPv4 one was taken); the server answers every address anyway."""
    args = cli.build_parser().parse_args(["demo", "--allowed-host", value])
    assert args.allowed_hosts == [value]


#: A /status document whose rows are wider than 80 columns: long names and messages, whole
#: task ids, every outcome counted.
WIDE_DOCUMENT: dict[str, Any] = {
    "generated_at": "2025-01-01T00:00:00.000Z",
    "running": [
        {
            "task_id": "4a1c9e2b-7d3f-4c1a-9b8e-2f6d5c4b3a21",
            "tool": "fetch_the_quarterly_report_pages",
            "state": "running",
            "elapsed_seconds": 1.5,
            "progress_percent": 52.0,
            "message": "page 3 of 6 of the quarterly report for the northern region",
        }
    ],
    "running_total": 1,
    "tools": [
        {
            "tool": "fetch_the_quarterly_report_pages",
            "labels": {"pool": "search-and-indexing"},
            "total": 123456,
            "outcomes": {
                "success": 100000,
                "error": 20000,
                "timeout": 3000,
                "cancelled": 456,
                "rejected": 0,
            },
            "error_rate": 0.186,
            "p50_seconds": 0.012,
            "p95_seconds": 2.5,
        }
    ],
    "workers": 4,
    "busy_workers": 2,
    "queue_depth": 3,
    "abandoned_threads": 1,
}


@pytest.mark.parametrize(("term", "clears"), [(None, False), ("xterm-256color", True)])
def test_watch_decides_it_is_on_a_terminal_as_the_demo_does(
    term: str | None, clears: bool, server: MetricsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--watch clears the screen only where `laios demo` would draw its live view: a terminal
    with TERM set (not unset, not dumb)."""
    if term is None:
        monkeypatch.delenv("TERM", raising=False)
    else:
        monkeypatch.setenv("TERM", term)
    out = _Terminal()
    assert watch_status(server.url, interval=0.5, out=out, sleep=_interrupt) == 0
    assert ("\x1b" in out.getvalue()) is clears


def _watch_on_a_24x80_terminal(
    monkeypatch: pytest.MonkeyPatch, document: dict[str, Any], url: str
) -> str:
    """What --watch writes on an 80x24 terminal in three pictures: ``document``, then a failed
    refresh (a long reason: the warning line), then ``document`` again; Ctrl-C after them."""
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setenv("LINES", "24")
    answers: list[Any] = [document, cli.StatusUnavailable("no answer " * 20)]

    def fetch(url: str, timeout: float = 5.0, **credentials: Any) -> dict[str, Any]:
        answer = answers.pop(0) if answers else document
        if isinstance(answer, Exception):
            raise answer
        return answer

    sleep, _ = interrupting_sleep(3)
    monkeypatch.setattr(cli, "fetch_status", fetch)
    out = _Terminal()
    assert watch_status(url, interval=0.5, out=out, sleep=sleep) == 0
    return out.getvalue()


def test_watch_fits_every_picture_to_the_terminals_height(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On a 24-line terminal each picture of --watch takes at most 23 lines (the cursor's line
    below it stays on screen), with or without a warning, so its title never scrolls off; the
    rows left out are counted on a "+N more" line."""
    crowded = dict(WIDE_DOCUMENT)
    crowded["running"] = [
        {**WIDE_DOCUMENT["running"][0], "task_id": f"task-{index:04d}"} for index in range(40)
    ]
    crowded["running_total"] = 40
    written = _watch_on_a_24x80_terminal(monkeypatch, crowded, "http://127.0.0.1:8489")
    pictures = [picture for picture in written.split(cli._CLEAR) if picture.strip()]
    assert len(pictures) == 3
    for picture in pictures:
        lines = picture.rstrip("\n").split("\n")
        assert len(lines) <= 23, picture
        assert any(line.startswith("laios status") for line in lines), picture
        assert any("more" in line for line in lines), picture


@pytest.mark.parametrize(("columns", "rows"), [(40, 12), (80, 8), (80, 5), (60, 3)])
def test_watch_keeps_its_title_on_a_small_terminal(
    columns: int, rows: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a terminal of few lines (a split pane), and with a warning that wraps to many
    lines there, no picture of --watch is taller than the terminal less the cursor's line:
    its title never scrolls off. The warning is cut short (with "...") to leave it room."""
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.setenv("COLUMNS", str(columns))
    monkeypatch.setenv("LINES", str(rows))
    problem = cli.StatusUnavailable(
        "the TLS handshake with https://10.0.0.7:8489/status failed ([SSL: WRONG_VERSION_NUMBER]"
        " wrong version number (_ssl.c:1006)); if the endpoint serves plain HTTP, use "
        "http://10.0.0.7:8489/status"
    )
    answers: list[Any] = [WIDE_DOCUMENT, problem]

    def fetch(url: str, timeout: float = 5.0, **credentials: Any) -> dict[str, Any]:
        answer = answers.pop(0) if answers else WIDE_DOCUMENT
        if isinstance(answer, Exception):
            raise answer
        return answer

    sleep, _ = interrupting_sleep(2)
    monkeypatch.setattr(cli, "fetch_status", fetch)
    out = _Terminal()
    assert watch_status("https://10.0.0.7:8489", interval=0.5, out=out, sleep=sleep) == 0
    pictures = [p for p in out.getvalue().split(cli._CLEAR) if p.strip()]
    assert len(pictures) == 2
    for picture in pictures:
        lines = picture.rstrip("\n").split("\n")
        assert len(lines) <= rows - 1, picture
        assert any(line.startswith("laios status") for line in lines), picture
        assert all(len(line) <= columns for line in lines), picture
    warned = pictures[1].split("\n")
    title = next(i for i, line in enumerate(warned) if line.startswith("laios status"))
    assert warned[0].startswith("! ")
    assert warned[title - 1].endswith("...")


def test_watch_fits_every_line_to_an_80_column_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """On an 80-column terminal every line of --watch's pictures fits, a warning about a failed
    refresh and a long URL's title included; the tables close up or leave out columns."""
    url = "http://status-endpoint-of-the-orders-service.internal.example.com:8489"
    written = _watch_on_a_24x80_terminal(monkeypatch, WIDE_DOCUMENT, url)
    lines = written.replace(cli._CLEAR, "").splitlines()
    assert [line for line in lines if len(line) > 80] == []
    assert sum(1 for line in lines if line.startswith("! ")) == 1
    assert sum(1 for line in lines if line.startswith("  fetch_the_quarterly")) >= 3


def test_status_takes_the_metrics_url_of_a_prometheus_config(
    server: MetricsServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--url http://host:port/metrics` (the scrape URL an operator copies from Prometheus's
    configuration) shows the status of that endpoint, from its /status."""
    assert main(["status", "--url", f"{server.url}/metrics"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith(f"laios status - {server.url}/status")
    assert "Running tasks (1)" in out


@pytest.mark.parametrize(("given", "host"), [("[::1]", "::1"), ("[fe80::1%lo]", "fe80::1%lo")])
def test_demo_takes_a_bracketed_ipv6_host(
    given: str, host: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--host '[::1]', as an IPv6 address is written in a URL, is the address ::1."""
    received: list[Any] = []
    fake = ModuleType("laios._demo")
    fake.run = lambda args: received.append(args) or 0  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "laios._demo", fake)
    assert main(["demo", "--host", given]) == 0
    assert received[0].host == host


@pytest.mark.parametrize("given", ["[127.0.0.1]", "[localhost]", "[::1"])
def test_demo_refuses_brackets_around_what_is_not_an_ipv6_address(
    given: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Brackets hold an IPv6 address only: around anything else (or unclosed) they are a
    usage error that says so, not a host name that does not resolve."""
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--host", given])
    assert exit_info.value.code == 2
    assert "IPv6" in capsys.readouterr().err


@pytest.mark.parametrize("given", ["\udcff", "127.0.0.1\udcfe", "local\x1bhost"])
def test_demo_refuses_a_host_with_a_byte_not_utf8_or_a_control_character(
    given: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--host $'\\xff'`` (a byte that is not UTF-8) or a control character is a usage error
    naming the option; it ended in a traceback from the socket ("encoding of hostname
    failed")."""
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--host", given])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--host" in err
    assert "not UTF-8" in err


def test_demo_refuses_a_host_longer_than_any_host_name(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``--host`` of 100,000 characters is a usage error naming the option and the longest
    host name, the host cut short; it failed when the server was bound, quoting it whole."""
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--host", "a" * 100_000])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--host" in err
    assert "253" in err
    assert len(err) <= 2000


def test_demo_refuses_a_host_with_white_space(capsys: pytest.CaptureFixture[str]) -> None:
    """``--host '127.0.0.1 '`` (a space left in a value) is a usage error naming the option
    and saying the host holds white space; it failed as a host name that does not resolve,
    with the advice to give 127.0.0.1."""
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--host", "127.0.0.1 "])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--host" in err
    assert "white space" in err


def test_demo_refuses_a_host_name_idna_cannot_encode(capsys: pytest.CaptureFixture[str]) -> None:
    """``--host`` holding a right-to-left override (U+202E), which no host name's IDNA form
    can hold, is a usage error naming the option and the character; it ended in a traceback
    from the socket ("encoding of hostname failed")."""
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--host", "\u202eevil"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--host" in err
    assert "U+202E" in err
    assert "\u202e" not in err  # (named as \\u202e, which turns no text around)


def _loopback_interface() -> str:
    """The name of this machine's loopback interface, when it has an IPv6 loopback."""
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("this machine has no IPv6 loopback")
    names = [name for _, name in socket.if_nameindex() if name.startswith("lo")]
    if not names:
        pytest.skip("no loopback interface named lo...")
    return names[0]


@pytest.mark.parametrize("by_index", [False, True])
def test_an_ipv6_zone_id_is_used_and_left_out_of_the_host_header(
    by_index: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    """``http://[::1%25lo]:port`` (RFC 6874: the zone id after ``%25``) connects through
    that interface, named or by its index, and the ``Host`` header names the address
    without it (the zone id means something on this machine only)."""
    interface = _loopback_interface()
    zone = str(socket.if_nametoindex(interface)) if by_index else interface
    hosts: list[str | None] = []

    def app(environ: Any, start_response: Any) -> list[bytes]:
        hosts.append(environ.get("HTTP_HOST"))
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(DOCUMENT).encode()]

    class Server(WSGIServer):
        address_family = socket.AF_INET6

    with make_server("::1", 0, app, server_class=Server, handler_class=_Quiet) as httpd:
        thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
        thread.start()
        try:
            port = httpd.server_port
            url = f"http://[::1%25{zone}]:{port}"
            assert main(["status", "--url", url, "--timeout", "5"]) == 0, capsys.readouterr().err
        finally:
            httpd.shutdown()
            thread.join(timeout=10)
    assert hosts == [f"[::1]:{port}"]
    assert "page 3 of 6" in capsys.readouterr().out


def test_a_zone_id_naming_no_interface_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    """A zone id that names no network interface of this machine is refused before anything
    is asked, with a message saying so (not that the name is unknown)."""
    taken = {name for _, name in socket.if_nameindex()}
    name = next(f"nosuch{index}" for index in range(100) if f"nosuch{index}" not in taken)
    assert main(["status", "--url", f"http://[fe80::1%25{name}]:8489", "--timeout", "2"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert f"its zone id {name!r} names no network interface of this machine" in line
    assert "Name or service not known" not in line


def test_demo_serves_on_a_bracketed_ipv6_host() -> None:
    """`laios demo --host '[::1]'` serves on ::1 (exit 0), as `--host ::1` does."""
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("this machine has no IPv6 loopback")
    command = ["demo", "--host", "[::1]", "--port", "0", "--duration", "1", "--no-live"]
    done = subprocess.run(
        [sys.executable, "-m", "laios", *command],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "laios demo: serving http://[::1]:" in done.stdout


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize("argv", [["--version"], ["--help"], ["status", "--help"]])
def test_help_and_version_that_cannot_be_written_end_with_exit_1(argv: list[str]) -> None:
    """`laios --version > /dev/full` (or --help) ends as a command whose output cannot be
    written does: exit 1 and one line saying why, not exit 0 with the text lost."""
    done = run_to_a_full_disk("laios", argv)
    assert done.returncode == 1
    assert done.stderr == "laios: could not write its output (No space left on device)\n"


@pytest.mark.parametrize("argv", [["--version"], ["--help"]])
def test_help_and_version_on_a_closed_stdout_end_with_exit_1(argv: list[str]) -> None:
    """`laios --version >&-`: exit 1 and the one line the commands give, not the text sent to
    stderr instead with exit 0."""
    done = run_with_stdout_closed("laios", argv)
    assert done.returncode == 1
    assert done.stderr == "laios: could not write its output (stdout is closed)\n"


def test_help_to_a_reader_that_is_gone_ends_quietly_with_exit_1() -> None:
    """`laios --help | true`: the reader is gone before the text is written; exit 1, nothing on
    stderr, as for the commands."""
    done = run_to_a_gone_reader("laios", ["--help"])
    assert done.returncode == 1
    assert done.stderr == ""


def test_the_package_loads_no_models_before_the_command_runs() -> None:
    """`import laios` (which runs before the command's own code, outside its Ctrl-C handling)
    imports no pydantic: a Ctrl-C then is in the command's import, ended quietly with 130, and
    `laios status` starts without loading the models it does not use. `from laios import Task`
    still works."""
    code = (
        "import sys, laios\n"
        "assert 'pydantic' not in sys.modules, 'import laios loaded pydantic'\n"
        "from laios import Context, Task, TaskResult, TaskStatus\n"
        "from laios.core import types\n"
        "assert (Context, Task, TaskResult, TaskStatus) == "
        "(types.Context, types.Task, types.TaskResult, types.TaskStatus)\n"
        "assert {'Context', 'Task', 'TaskResult', 'TaskStatus'} <= set(dir(laios))\n"
        "try:\n"
        "    laios.Nothing\n"
        "except AttributeError as exc:\n"
        "    assert 'Nothing' in str(exc)\n"
        "else:\n"
        "    raise AssertionError('laios.Nothing exists')\n"
    )
    env = dict(os.environ)
    src = str(Path(laios.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


#: Installed as ``sitecustomize``: makes the import of LAIOS_TEST_BLOCKED (a module of the
#: command) say so on the pipe LAIOS_TEST_READY_FD, then wait on LAIOS_TEST_WAIT_FD for ever.
_BLOCKING_IMPORT = """
import os, sys

class _Blocker:
    def find_spec(self, name, path=None, target=None):
        if name == os.environ["LAIOS_TEST_BLOCKED"]:
            os.write(int(os.environ["LAIOS_TEST_READY_FD"]), b"importing")
            os.read(int(os.environ["LAIOS_TEST_WAIT_FD"]), 1)
        return None

sys.meta_path.insert(0, _Blocker())
"""


#: The two ways the command starts: ``python -m laios``, and what the installed ``laios``
#: script runs (see test_the_laios_script_runs_the_guarded_entry_point).
_STARTS = {
    "python -m laios": ["-m", "laios"],
    "laios script": ["-c", "import sys; from laios.__main__ import main; sys.exit(main())"],
}


def test_the_laios_script_runs_the_guarded_entry_point() -> None:
    """The ``laios`` script of the package's metadata calls laios.__main__.main, which imports
    the command itself (a Ctrl-C during that import is then handled)."""
    tomllib = pytest.importorskip("tomllib")
    project = Path(__file__).resolve().parents[2] / "pyproject.toml"
    scripts = tomllib.loads(project.read_text(encoding="utf-8"))["project"]["scripts"]
    assert scripts["laios"] == "laios.__main__:main"


@pytest.mark.parametrize("start", sorted(_STARTS))
@pytest.mark.parametrize("blocked", ["laios.cli", "laios._output"])
def test_ctrl_c_while_the_command_is_imported_ends_it_quietly_with_130(
    blocked: str, start: str, tmp_path: Path
) -> None:
    """Ctrl-C while the command's modules are still being imported (a slow disk, a slow
    import) ends it with exit code 130 and no traceback, as a Ctrl-C later does."""
    (tmp_path / "sitecustomize.py").write_text(_BLOCKING_IMPORT, encoding="utf-8")
    ready_read, ready_write = os.pipe()
    wait_read, wait_write = os.pipe()
    env = dict(os.environ)
    src = str(Path(laios.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), src, env.get("PYTHONPATH", "")])
    env.update(
        LAIOS_TEST_BLOCKED=blocked,
        LAIOS_TEST_READY_FD=str(ready_write),
        LAIOS_TEST_WAIT_FD=str(wait_read),
    )
    try:
        process = subprocess.Popen(
            [sys.executable, *_STARTS[start], "status", "--url", "http://127.0.0.1:1"],
            env=env,
            pass_fds=(ready_write, wait_read),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        os.close(ready_write)
        os.close(wait_read)
        try:
            assert os.read(ready_read, 64) == b"importing"  # (EOF, b"", if it ended first)
            process.send_signal(signal.SIGINT)
            out, err = process.communicate(timeout=60)
        finally:
            process.kill()
            process.wait(timeout=60)
    finally:
        os.close(ready_read)
        os.close(wait_write)
    assert process.returncode == 130, err
    assert err == ""
    assert out == ""


def _answering_a_status(requests: list[bytes]) -> Callable[[socket.socket], None]:
    """A ``serving`` handler that keeps each request's head and answers an empty status."""

    def handle(conn: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = conn.recv(65536)
            if not chunk:
                return
            head += chunk
        requests.append(head)
        conn.sendall(_http_answer(b'{"running": [], "tools": []}'))

    return handle


def test_status_sends_a_path_that_is_not_ascii_percent_encoded(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An endpoint mounted under a prefix that is not ASCII is asked for that prefix's
    /status, percent-encoded as UTF-8 (a request line holds only ASCII)."""
    requests: list[bytes] = []
    with serving(_answering_a_status(requests)) as port:
        assert main(["status", "--url", f"http://127.0.0.1:{port}/métriques"]) == 0
    assert requests[0].startswith(b"GET /m%C3%A9triques/status HTTP/1.1\r\n")
    out = capsys.readouterr().out
    assert f"http://127.0.0.1:{port}/métriques/status" in out


def test_status_asks_for_a_host_name_that_is_not_ascii_in_its_idna_form(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An internationalised host name is looked up, and sent in the Host header, in its
    ASCII (IDNA) form, as a browser does."""
    requests: list[bytes] = []
    looked_up: list[str] = []
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        looked_up.append(host)
        return real_getaddrinfo("127.0.0.1", *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    with serving(_answering_a_status(requests)) as port:
        assert main(["status", "--url", f"http://bücher.test:{port}"]) == 0
    assert looked_up[0] == "xn--bcher-kva.test"
    assert f"\r\nHost: xn--bcher-kva.test:{port}\r\n".encode() in requests[0]
    assert f"http://bücher.test:{port}/status" in capsys.readouterr().out


@pytest.mark.parametrize(
    "url",
    [
        "http://a b:8489",  # a space
        "http://\udcff:8489",  # a byte of an argument that is not UTF-8
        "http://" + "a" * 64 + ".example:8489",  # a label longer than a host name's 63
    ],
    ids=["space", "not-utf-8", "label-too-long"],
)
def test_status_refuses_a_host_that_no_request_can_name(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A host no request can name is a --url that is not usable (exit 2, one line, the form
    a --url takes), not "nothing answered" with an encoder's error."""
    assert main(["status", "--url", url]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "is not a usable URL" in err
    assert "http://HOST:PORT" in err
    assert "ordinal" not in err


def _answering(code: int, headers: list[tuple[str, str]] | None = None) -> Any:
    """A WSGI app answering every request with HTTP ``code`` and an empty body."""

    def app(environ: Any, start_response: Any) -> list[bytes]:
        start_response(f"{code} Whatever", headers or [("Content-Type", "text/plain")])
        return [b""]

    return app


def _redirect_to(location: str) -> Any:
    """A WSGI app answering every request with a 302 to ``location``."""

    def app(environ: Any, start_response: Any) -> list[bytes]:
        start_response("302 Found", [("Location", location)])
        return [b""]

    return app


@pytest.mark.parametrize("code", [500, 502, 401, 421])
def test_an_http_error_after_a_redirect_is_that_of_the_redirects_target(
    code: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """A redirect to a server answering an HTTP error: the message names the redirect's target
    as what answered (and the URL asked as what redirected there), and any advice to start an
    endpoint names the target's port; it blamed the URL asked and advised
    start_http_server(<port asked>)."""
    with _serving(_answering(code)) as target_port:
        target = f"http://127.0.0.1:{target_port}/status"
        with _serving(_redirect_to(target)) as port:
            url = f"http://127.0.0.1:{port}"
            assert main(["status", "--url", url, "--timeout", "5"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert f"{target}, where a redirect from {url}/status led, answered HTTP {code}" in line, line
    assert f"{url}/status answered" not in line, line
    assert f"start_http_server({port})" not in line, line
    if code == 502:
        assert f"start_http_server({target_port})" in line, line


@pytest.mark.parametrize(
    ("code", "advice"),
    [
        (404, "check the host, port and path of the URL"),
        (403, "check the host, port and path of the URL"),
        (500, "the server there failed"),
        (501, "the server there failed"),
        (502, "start_http_server("),
        (503, "start_http_server("),
        (504, "start_http_server("),
    ],
)
def test_an_http_error_gets_advice_that_fits_its_code(
    code: int, advice: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Only a proxy's 502, 503 or 504 (no server behind it) is told to start an endpoint;
    something else answering 404, 403 or 500 there is told to check the URL, or that it
    failed; every HTTP error was told to start an endpoint there."""
    with _serving(_answering(code)) as port:
        url = f"http://127.0.0.1:{port}"
        assert main(["status", "--url", url, "--timeout", "5"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert f"{url}/status answered HTTP {code}" in line, line
    assert advice in line, line
    if code in (502, 503, 504):
        assert f"start_http_server({port})" in line, line
    else:
        assert "start_http_server" not in line, line
        assert "laios demo" not in line, line


class _Blocking:
    """A collector whose collection waits for ``release``: a scrape held in progress."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def collect(self) -> Iterator[Any]:
        self.entered.set()
        self.release.wait(30)
        return iter(())


def test_a_busy_laios_endpoint_is_said_to_be_busy(capsys: pytest.CaptureFixture[str]) -> None:
    """A laios endpoint with every connection busy answers 503 (Retry-After: 1, a JSON error
    saying why): the message says the endpoint there is busy and to try again, instead of
    taking it for a proxy with no server behind it and advising start_http_server there."""
    blocking = _Blocking()
    registry = CollectorRegistry()
    registry.register(blocking)  # type: ignore[arg-type]
    server = start_http_server(0, store=MetricStore(), registry=registry, max_connections=1)
    try:
        with socket.create_connection(("127.0.0.1", server.port)) as scrape:
            scrape.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
            assert blocking.entered.wait(10)
            line = status_error(server.url, capsys)
            blocking.release.set()
    finally:
        blocking.release.set()
        server.shutdown()
    assert f"{server.url}/status answered HTTP 503" in line, line
    assert "the laios endpoint there is busy (too many connections)" in line, line
    assert "try again" in line, line
    assert "start_http_server" not in line, line
    assert "proxy" not in line, line


def test_a_laios_endpoint_answering_404_at_another_path_says_to_check_the_path(
    server: MetricsServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """A laios endpoint answers a path it does not serve with 404, listing its routes: the
    message says a laios endpoint answers there, lists its routes and says to check the path;
    it advised starting an endpoint there."""
    line = status_error(server.url + "/elsewhere", capsys)
    assert "HTTP 404" in line, line
    assert "a laios endpoint answers at that address, but not at that path" in line, line
    assert "/status" in line.rpartition("serves")[2], line
    assert "start_http_server" not in line, line


def test_credentials_not_sent_to_a_redirects_other_host_are_not_said_to_be_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A user and password given in --url are not sent after a redirect to another port: a
    401 there says that they were not sent, and the URL to give them in; it said they were
    refused."""
    with _serving(_answering(401)) as target_port:
        target = f"http://127.0.0.1:{target_port}/status"
        with _serving(_redirect_to(target)) as port:
            url = f"http://prom:s3cret@127.0.0.1:{port}"
            assert main(["status", "--url", url, "--timeout", "5"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "refused" not in line, line
    assert "not sent to another scheme, host or port" in line, line
    assert f"http://USER:PASSWORD@127.0.0.1:{target_port}" in line, line
    assert "s3cret" not in line, line


@pytest.mark.parametrize("option", ["--interval", "--timeout"])
@pytest.mark.parametrize("text", ["1e400", "inf"])
def test_an_infinite_option_is_called_not_finite(
    option: str, text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """--interval 1e400 (positive, but infinite as a float) is refused as not finite, not as
    not positive."""
    with pytest.raises(SystemExit) as exit_info:
        main(["status", option, text])
    assert exit_info.value.code == 2
    assert f"must be a finite positive number of seconds, got {text!r}" in capsys.readouterr().err


@pytest.mark.parametrize("value", [float("inf"), 10**400])
def test_an_infinite_interval_or_timeout_is_called_not_finite(value: float) -> None:
    """watch_status and fetch_status given an infinite interval or timeout (or an int no float
    holds) say it must be finite."""
    with pytest.raises(ValueError, match="interval must be a finite positive number of seconds"):
        watch_status("http://127.0.0.1:1", interval=value, out=io.StringIO())
    with pytest.raises(ValueError, match="timeout must be a finite positive number of seconds"):
        cli.fetch_status("http://127.0.0.1:1", timeout=value)


def _screen(line: str) -> list[str]:
    """``line`` as the cells of a screen row: a wide character fills two."""
    from laios._terminal import text_width

    cells: list[str] = []
    for char in line:
        cells += [char] + [""] * (text_width(char) - 1)
    return cells


def _aligned(table: list[str]) -> bool:
    """Whether every row of ``table`` has a blank in the screen column just before each
    column title but the first (its cells begin where the titles do)."""
    header = _screen(table[0])
    starts = [i for i in range(3, len(header)) if header[i] != " " and header[i - 1] == " "]
    for line in table[1:]:
        row = _screen(line)
        if any(start - 1 < len(row) and row[start - 1] != " " for start in starts):
            return False
    return True


@pytest.mark.parametrize("width", [None, 200, 100, 60])
def test_wide_names_and_messages_take_the_columns_of_narrow_ones(width: int | None) -> None:
    """A tool name, state or message in wide (CJK) characters is cut to as many screen columns
    as a Latin one, not as many characters (twice the columns), and every column of both
    tables lines up by screen width."""
    from laios._terminal import text_width

    wide, latin = "工具" * 16, "t" * 32
    document = {
        "running": [
            {
                "task_id": "a" * 36,
                "tool": wide,
                "progress_percent": 50,
                "elapsed_seconds": 1.5,
                "state": "运行中运行中",
                "message": "进度" * 40,
            },
            {
                "task_id": "b" * 36,
                "tool": latin,
                "progress_percent": 5,
                "elapsed_seconds": 2,
                "state": "running",
                "message": "m" * 80,
            },
        ],
        "running_total": 2,
        "tools": [
            {"tool": wide, "total": 3, "outcomes": {"success": 3}, "error_rate": 0},
            {"tool": latin, "total": 1, "outcomes": {"success": 1}, "error_rate": 0},
        ],
    }
    lines = cli.status_lines(document, width=width)
    running, tools = lines[1:4], lines[6:9]
    for table in (running, tools):
        assert _aligned(table), table
        # (the wide row is no wider than the Latin one: the same limits, in columns)
        assert text_width(table[1]) <= text_width(table[2]), table
        assert all(width is None or text_width(line) <= width for line in table)


#: A --url whose path holds an escape sequence (one that clears the screen).
ESCAPING_URL = "http://127.0.0.1:1/a\x1b[2Jb"


def test_a_status_message_shows_no_control_character_of_the_url(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A message naming the URL (nothing answered there) wrote a control character of
    ``--url`` to the terminal as it was, where the title of ``--watch`` shows it as ``?``:
    the messages do the same."""
    assert main(["status", "--url", ESCAPING_URL, "--timeout", "5"]) == 2
    err = capsys.readouterr().err
    assert "http://127.0.0.1:1/a?[2Jb/status" in err
    assert all(char.isprintable() or char == "\n" for char in err)


def test_a_failed_refresh_shows_no_control_character_of_the_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The warning of a failed refresh of --watch, which names the URL, wrote its control
    characters as they were; they are shown as ``?``."""
    answers: list[Any] = [
        DOCUMENT,
        cli.StatusUnavailable(f"nothing answered at {ESCAPING_URL}/status (refused)"),
    ]

    def fetch(url: str, timeout: float = 5.0, **credentials: Any) -> dict[str, Any]:
        answer = answers.pop(0) if answers else DOCUMENT
        if isinstance(answer, Exception):
            raise answer
        return answer

    sleep, _ = interrupting_sleep(2)
    monkeypatch.setattr(cli, "fetch_status", fetch)
    out = io.StringIO()  # (not a terminal: pictures whole, no escape sequence of their own)
    assert watch_status(ESCAPING_URL, interval=0.5, out=out, sleep=sleep) == 0
    written = out.getvalue()
    assert "! nothing answered at http://127.0.0.1:1/a?[2Jb/status (refused)" in written
    assert all(char.isprintable() or char == "\n" for char in written)
