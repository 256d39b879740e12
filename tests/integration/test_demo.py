"""`laios demo` as a user runs it: it serves its endpoints while it runs, then stops by itself.

The demo runs once for the module (5 seconds, its output to a file); the fixture reads
/metrics, /status and /healthz while it runs, waits for it to exit and keeps what it saw for
the tests.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from service_support import NO_PROXY

DURATION = 5
#: Start-up, the run, and the workload's wind-down (its join waits up to 15 s) with room to spare.
EXIT_BOUND = DURATION + 40
DEMO = [sys.executable, "-m", "laios.cli", "demo"]


@dataclass
class Answer:
    status: int
    content_type: str
    body: bytes


@dataclass
class DemoRun:
    """What one run of the demo showed."""

    base: str = ""
    answers: dict[str, Answer] = field(default_factory=dict)
    running_after_reads: bool = False
    returncode: int | None = None
    seconds: float = 0.0
    stdout: str = ""


def fetch(url: str) -> Answer:
    """GET ``url`` without a proxy."""
    try:
        with NO_PROXY.open(url, timeout=5) as response:
            return Answer(response.status, response.headers["Content-Type"], response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return Answer(exc.code, exc.headers.get("Content-Type", ""), exc.read())


@pytest.fixture(scope="module")
def run(
    tmp_path_factory: pytest.TempPathFactory, free_port: Callable[[], int]
) -> Iterator[DemoRun]:
    """Run the demo for DURATION seconds, reading its endpoints meanwhile."""
    directory: Path = tmp_path_factory.mktemp("demo")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    started = time.monotonic()
    with (directory / "stdout").open("wb") as out, (directory / "stderr").open("wb") as err:
        process = subprocess.Popen(
            [*DEMO, "--duration", str(DURATION), "--port", str(port)],
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            env=env,
        )
    result = DemoRun(base=base)
    try:
        deadline = time.monotonic() + 20
        while "/healthz" not in result.answers:
            if process.poll() is not None or time.monotonic() > deadline:
                break
            try:
                result.answers["/healthz"] = fetch(f"{base}/healthz")
            except OSError:
                time.sleep(0.1)
        if "/healthz" in result.answers:
            for path in ("/metrics", "/status", "/"):
                result.answers[path] = fetch(base + path)
        result.running_after_reads = process.poll() is None
        try:
            result.returncode = process.wait(
                timeout=max(EXIT_BOUND - (time.monotonic() - started), 1)
            )
        except subprocess.TimeoutExpired:
            result.returncode = None
        result.seconds = time.monotonic() - started
        result.stdout = (directory / "stdout").read_text(encoding="utf-8", errors="replace")
        yield result
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def test_healthz_answers_while_the_demo_runs(run: DemoRun) -> None:
    """/healthz answers 200 "ok"."""
    answer = run.answers["/healthz"]
    assert (answer.status, answer.body.strip()) == (200, b"ok")


def test_metrics_answers_while_the_demo_runs(run: DemoRun) -> None:
    """/metrics answers 200 in the Prometheus text format with laios' metrics."""
    answer = run.answers["/metrics"]
    assert answer.status == 200
    assert answer.content_type.startswith("text/plain")
    assert b"\nlaios_executor_workers " in answer.body
    assert b"# TYPE laios_tasks_total counter" in answer.body


def test_status_answers_while_the_demo_runs(run: DemoRun) -> None:
    """/status answers 200 with a status document for the demo's 8 workers."""
    answer = run.answers["/status"]
    assert answer.status == 200
    document = json.loads(answer.body)
    assert isinstance(document["tools"], list)
    assert isinstance(document["running"], list)
    assert document["workers"] == 8


def test_the_demo_prints_and_serves_its_live_page(run: DemoRun) -> None:
    """The banner names the live page's address, and that address answers the HTML page."""
    banner = run.stdout.split("laios demo —", 1)[0]
    (line,) = [line for line in banner.splitlines() if "Live page:" in line]
    assert line.split("Live page:", 1)[1].split()[0] == run.base + "/"
    answer = run.answers["/"]
    assert answer.status == 200
    assert answer.content_type.startswith("text/html")
    assert b"<title>laios live</title>" in answer.body


def test_endpoints_were_read_before_the_demo_ended(run: DemoRun) -> None:
    """The demo was still running after all its endpoints had answered."""
    assert run.running_after_reads


def test_demo_exits_zero_within_the_bound(run: DemoRun) -> None:
    """The demo stops by itself with exit code 0 well within DURATION + 40 seconds."""
    assert run.returncode == 0, run.stdout
    assert run.seconds < EXIT_BOUND


def test_demo_prints_a_summary(run: DemoRun) -> None:
    """The demo's last output is the per-tool summary table and its closing line."""
    summary = run.stdout.rsplit("laios demo —", 1)[-1]
    assert "Tools" in summary
    assert "fetch_fast" in summary
    assert "workers: 8" in summary
    assert run.stdout.rstrip().endswith("laios demo: done.")


def test_output_to_a_file_is_plain_lines(run: DemoRun) -> None:
    """With stdout not a terminal, the demo writes plain lines (no escape sequence) and says
    why there is no live view."""
    assert "\x1b" not in run.stdout
    assert "  Terminal:   a progress line every 10 s (the output is not a terminal)" in run.stdout


def test_the_demo_runs_tools_in_killable_processes(free_port: Callable[[], int]) -> None:
    """`laios demo --runner process`: tools run in worker processes, a tool that hangs for
    good is killed at its timeout (no thread is abandoned), and the demo exits cleanly."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    argv = [*DEMO, "--runner", "process", "--duration", "4", "--no-live"]
    started = time.monotonic()
    done = subprocess.run(
        [*argv, "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=EXIT_BOUND,
        env=env,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < EXIT_BOUND
    assert "Isolation:" in done.stdout
    summary = done.stdout.rsplit("laios demo —", 1)[-1]
    assert "sometimes_hangs" in summary
    assert "workers: 8" in summary
    assert "abandoned threads: 0" in summary
    assert done.stdout.rstrip().endswith("laios demo: done.")


def test_the_demo_runs_on_an_embedded_dask_cluster(free_port: Callable[[], int]) -> None:
    """`laios demo --runner dask`: the workload runs on an embedded Dask cluster, the demo
    prints Dask's dashboard address, and exits cleanly with nothing abandoned."""
    pytest.importorskip("distributed")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    argv = [*DEMO, "--runner", "dask", "--duration", "4", "--no-live"]
    done = subprocess.run(
        [*argv, "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=EXIT_BOUND + 30,
        env=env,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    # (the banner wraps its lines to 80 columns: the address may start the next line)
    assert re.search(r"Dask's dashboard:\s+http://", done.stdout)
    summary = done.stdout.rsplit("laios demo —", 1)[-1]
    assert "fetch_fast" in summary
    assert "abandoned threads: 0" in summary
    assert done.stdout.rstrip().endswith("laios demo: done.")


def test_the_banner_says_what_the_compose_setup_scrapes(run: DemoRun) -> None:
    """The banner gives the address being served and the target the shipped Prometheus
    configuration really scrapes (not a file that says something else)."""
    banner = run.stdout.split("laios demo —", 1)[0]
    config = Path(__file__).resolve().parents[2] / "grafana" / "prometheus" / "prometheus.yml"
    assert "host.docker.internal:8489" in config.read_text()
    assert "host.docker.internal:8489" in banner


def test_the_demo_runs_with_an_output_that_cannot_write_its_dashes(
    free_port: Callable[[], int],
) -> None:
    """An output in ASCII (``PYTHONIOENCODING=ascii``, a C locale, a Windows code page) gets
    ``?`` for a character it cannot write, such as the headline's dash: the demo runs to its
    end instead of failing on its first line with a ``UnicodeEncodeError``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["PYTHONIOENCODING"] = "ascii"
    done = subprocess.run(
        [*DEMO, "--duration", "1", "--no-live", "--port", str(free_port())],
        capture_output=True,
        timeout=EXIT_BOUND,
        env=env,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    stderr = done.stderr.decode("ascii", errors="replace")
    assert done.returncode == 0, stderr
    assert "Traceback" not in stderr
    stdout = done.stdout.decode("ascii")  # (every byte written is ASCII)
    assert "laios demo ? " in stdout
    assert stdout.rstrip().endswith("laios demo: done.")
