"""``laios demo``: a realistic workload through the real executor, served for Prometheus.

Six tools with different characters run as single tasks, retried tasks and parallel batches
until Ctrl-C (or ``--duration``), on worker threads, in worker processes (``--runner process``)
where a hung tool is killed at its timeout, or on an embedded Dask cluster (``--runner dask``).
Metrics and status are served on ``/metrics`` and ``/status``, the live page on ``/``; spans go
to an OTLP/HTTP receiver with ``--otlp-endpoint`` (or when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is
set), to the console with ``--console-spans``, and otherwise stay in-process (their ids still
mark the exemplars).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import errno
import hashlib
import ipaddress
import logging
import os
import random
import socket
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from laios._interrupts import sigint_held
from laios._output import (
    printable_text,
    shell_quote,
    shown_url,
    without_credentials,
)
from laios._stops import Stops as _Stops
from laios._stops import stop_signals_as_ctrl_c as _stop_signals_as_ctrl_c
from laios._stops import stop_signals_ignored as _stop_signals_ignored
from laios._terminal import (
    LiveScreen,
    clip,
    is_a_terminal,
    stream_is_terminal,
    terminal_size,
    text_width,
    why_not_a_terminal,
)
from laios._text import quoted
from laios.core.types import Context, Task
from laios.execution.executor import Executor, ResourceLimits
from laios.execution.monitor import get_performance_monitor
from laios.execution.retry import sleeps_disabled
from laios.execution.task_context import require_current_task
from laios.tools.base import BaseTool, ToolInput, ToolOutput
from laios.tools.registry import ToolRegistry

__all__ = ["build_registry", "live_frame", "run"]

#: Seconds between frames of the live view.
_FRAME = 1.0
#: Seconds between progress lines when there is no live view.
_PLAIN_EVERY = 10.0


class _FetchInput(ToolInput):
    url: str


class FetchFast(BaseTool):
    """A quick I/O-like call: a few milliseconds, with a long tail."""

    name = "fetch_fast"
    description = "Fetches a small document from a nearby service."
    input_model = _FetchInput

    def _execute(self, input_data: _FetchInput) -> dict[str, Any]:
        time.sleep(min(random.lognormvariate(-4.6, 0.6), 0.5))
        return {"url": input_data.url, "bytes": random.randint(200, 4000)}


class FetchSlow(BaseTool):
    """A slow I/O-like call: hundreds of milliseconds."""

    name = "fetch_slow"
    description = "Queries a slow upstream report service."

    def _execute(self, **kwargs: Any) -> dict[str, Any]:
        time.sleep(random.uniform(0.1, 0.6))
        return {"rows": random.randint(10, 500)}


#: The share of ``flaky_api``'s attempts that fail (``http_503``), as the docs say. Its failed
#: attempts per call are more: the demo retries most calls, up to four attempts each.
FLAKY_FAILURE_SHARE = 0.35


class FlakyApi(BaseTool):
    """Fails transiently on 35 % of its attempts (:data:`FLAKY_FAILURE_SHARE`); retried with
    backoff by the demo."""

    name = "flaky_api"
    description = "Calls a rate-limited partner API that sometimes answers 503."

    def _execute(self, **kwargs: Any) -> Any:
        time.sleep(random.uniform(0.005, 0.05))
        if random.random() < FLAKY_FAILURE_SHARE:
            return ToolOutput(
                success=False, error="partner API answered 503", metadata={"error_type": "http_503"}
            )
        return {"status": 200}


class ComputeHash(BaseTool):
    """CPU-bound work: repeated hashing."""

    name = "compute_hash"
    description = "Hashes a payload many times (CPU-bound)."

    def _execute(self, **kwargs: Any) -> str:
        digest = b"laios"
        for _ in range(random.randint(5_000, 40_000)):
            digest = hashlib.sha256(digest).digest()
        return digest.hex()[:16]


class SometimesHangs(BaseTool):
    """Usually quick; now and then it hangs past its timeout (and returns much later)."""

    name = "sometimes_hangs"
    description = "Talks to a legacy system that occasionally stops answering."

    def _execute(self, **kwargs: Any) -> str:
        if random.random() < 0.08:
            # Hung: it returns much later, or (``forever``) not within the hour.
            time.sleep(3600.0 if kwargs.get("forever") else random.uniform(1.5, 3.0))
        else:
            time.sleep(random.uniform(0.02, 0.15))
        return "ok"


class BatchImport(BaseTool):
    """Reports progress and checkpoints from inside, and honours cancellation."""

    name = "batch_import"
    description = "Imports a file in chunks, reporting progress."

    def _execute(self, **kwargs: Any) -> dict[str, int]:
        task = require_current_task()
        chunks = random.randint(5, 12)
        rows = 0
        for index in range(chunks):
            task.raise_if_cancelled()
            time.sleep(random.uniform(0.05, 0.2))
            rows += random.randint(100, 1000)
            task.progress(100 * (index + 1) / chunks, f"chunk {index + 1}/{chunks}")
            if index == chunks // 2:
                task.checkpoint("halfway", {"rows": rows})
        task.checkpoint("loaded", {"rows": rows, "chunks": chunks})
        get_performance_monitor().record_metric(task.task_id, "rows_imported", rows, "rows")
        return {"rows": rows}


def build_registry() -> ToolRegistry:
    """The demo's tools, registered."""
    registry = ToolRegistry()
    registry.register_tools(
        [FetchFast, FetchSlow, FlakyApi, ComputeHash, SometimesHangs, BatchImport]
    )
    return registry


def _task(tool: str, **parameters: Any) -> Task:
    return Task(plan_id="demo", description=f"demo {tool}", tool_name=tool, parameters=parameters)


class _Workload:
    """Drives the executor from a few threads until stopped."""

    def __init__(self, executor: Executor, context: Context, *, isolated: bool = False) -> None:
        self.executor = executor
        self.context = context
        #: Tools run in worker processes: a hung tool may hang for good (it is killed).
        self.isolated = isolated
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        for target in (self._singles, self._singles, self._retries, self._batches, self._imports):
            thread = threading.Thread(target=target, name=f"demo-{target.__name__}", daemon=True)
            self.threads.append(thread)
            thread.start()

    def join(self, timeout: float) -> bool:
        """Stop sending tasks and wait up to ``timeout`` seconds for the ones under way; return
        whether every driving thread has finished."""
        self.stop.set()
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(deadline - time.monotonic(), 0.0))
        return not any(thread.is_alive() for thread in self.threads)

    def _pause(self, low: float, high: float) -> None:
        self.stop.wait(random.uniform(low, high))

    def _singles(self) -> None:
        while not self.stop.is_set():
            tool = random.choice(["fetch_fast", "fetch_fast", "fetch_slow", "compute_hash"])
            params = (
                {"url": f"https://svc.example/doc/{random.randint(1, 99)}"}
                if tool == "fetch_fast"
                else {}
            )
            self.executor.execute_task(_task(tool, **params), self.context, timeout=2.0)
            if random.random() < 0.3:
                hangs = _task("sometimes_hangs", **({"forever": True} if self.isolated else {}))
                self.executor.execute_task(hangs, self.context, timeout=1.0)
            if random.random() < 0.02:
                self.executor.execute_task(_task("fetch_legacy"), self.context)  # not registered
            self._pause(0.01, 0.1)

    def _retries(self) -> None:
        while not self.stop.is_set():
            self.executor.execute_with_retry(
                _task("flaky_api"),
                self.context,
                max_retries=3,
                retry_delay=0.05,
                backoff=2.0,
                jitter=0.5,
                timeout=1.0,
            )
            self._pause(0.05, 0.3)

    def _batches(self) -> None:
        while not self.stop.is_set():
            tools = random.choices(["fetch_fast", "fetch_slow", "compute_hash", "flaky_api"], k=8)
            tasks = [
                _task(t, url="https://svc.example/batch") if t == "fetch_fast" else _task(t)
                for t in tools
            ]
            asyncio.run(self.executor.execute_parallel(tasks, self.context, timeout=2.0))
            self._pause(0.5, 1.5)

    def _imports(self) -> None:
        while not self.stop.is_set():
            task = _task("batch_import")
            if random.random() < 0.1:
                timer = threading.Timer(0.4, self.executor.cancel_task, args=(task.id,))
                timer.daemon = True
                timer.start()
            asyncio.run(self.executor.execute_async(task, self.context, timeout=10.0))
            self._pause(0.2, 1.0)


def _configure_tracing(console: bool, otlp_endpoint: str | None = None) -> tuple[Any, str]:
    """Install an OpenTelemetry SDK provider; return it and the banner's text saying where
    spans go (its ``Spans`` line).

    ``otlp_endpoint`` (``--otlp-endpoint``) is the base URL of an OTLP/HTTP receiver, as
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` would be: spans go to its ``/v1/traces``. Without it the
    environment variable is honoured.

    Raises:
        ImportError: With the ``pip install`` to run, when ``--otlp-endpoint`` or
            ``--console-spans`` was given and the packages it needs are missing.
        ValueError: When, without ``--otlp-endpoint``, ``OTEL_EXPORTER_OTLP_ENDPOINT`` or
            ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is no URL the exporter could send to
            (checked as ``--otlp-endpoint`` is).
    """
    if not otlp_endpoint:
        _check_otlp_environment()
    if otlp_endpoint:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
                OTLPSpanExporter,
            )
        except ImportError:
            raise ImportError(
                "--otlp-endpoint needs the OpenTelemetry SDK and its OTLP/HTTP exporter:"
                " pip install 'laios[otlp]'"
            ) from None
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
    except ImportError:
        if console:
            raise ImportError(
                "--console-spans needs the OpenTelemetry SDK: pip install 'laios[demo]'"
            ) from None
        if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
            return None, "OTLP asked for, but pip install 'laios[otlp]' is needed"
        return None, "off (pip install 'laios[demo]' to trace the demo)"
    # Shut down by the demo itself: at exit, after a second Ctrl-C, it must not wait again.
    provider = TracerProvider(
        resource=Resource.create({"service.name": "laios-demo"}), shutdown_on_exit=False
    )
    where = "kept in-process (their ids mark the exemplars); --console-spans prints them"
    if otlp_endpoint or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            where = "OTLP asked for, but pip install 'laios[otlp]' is needed"
        else:
            if otlp_endpoint:
                # The base URL; the traces URL itself (as a collector's docs give it) as it is.
                url = otlp_endpoint.rstrip("/").removesuffix("/v1/traces") + "/v1/traces"
                exporter = OTLPSpanExporter(endpoint=url)
            else:
                # As the exporter reads the environment: the traces endpoint as it is, or the
                # base endpoint's /v1/traces.
                url = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or (
                    os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"].rstrip("/") + "/v1/traces"
                )
                exporter = OTLPSpanExporter()
            provider.add_span_processor(BatchSpanProcessor(exporter))
            where = f"OTLP/HTTP to {without_credentials(url)}"
    elif console:
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter(out=sys.stderr)))
        where = "printed to stderr"
    trace.set_tracer_provider(provider)
    return provider, where


def _check_otlp_environment() -> None:
    """Refuse an OTLP endpoint variable that the exporter would read and never send to.

    Raises:
        ValueError: Naming the variable, its value and what is wrong with it.
    """
    from laios.cli import otlp_url_problem

    base = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if not base:
        return  # (the traces variable alone turns no exporting on)
    traces = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    variable, value = (
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", traces)
        if traces
        else ("OTEL_EXPORTER_OTLP_ENDPOINT", base)
    )
    problem = otlp_url_problem(value, base=not traces)
    if problem:
        raise ValueError(f"{variable}={quoted(shown_url(value))} {problem}; or unset it")


def _is_wildcard(host: str) -> bool:
    """Whether ``host`` (``''``, ``0.0.0.0``, ``::``, or a short form of ``0.0.0.0`` that the
    socket reads so, ``0``) names every address of this machine."""
    try:
        return not host or ipaddress.ip_address(host).is_unspecified
    except ValueError:  # a name, such as localhost, or an address in a short form
        pass
    try:
        return socket.inet_aton(host) == bytes(4)  # ("0", "0.0", "0x0", as inet_aton reads)
    except (OSError, ValueError):  # a name (ValueError: a NUL in it)
        return False


def _reachable_url(url: str) -> str:
    """``url`` as this machine's user can open it: a wildcard host, which names every address
    and none a browser can reach, becomes the loopback address of its family; any other host
    is kept."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if not _is_wildcard(host):
        return url
    loopback = "[::1]" if ":" in host else "127.0.0.1"
    netloc = f"{loopback}:{parts.port}" if parts.port is not None else loopback
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _labelled(label: str, text: str) -> str:
    """One line of the banner or of the live view's top: the label, then its text."""
    return f"  {label + ':':<11} {text}"


#: The banner's width: it fits an 80-column terminal.
_BANNER_WIDTH = 80

#: The source tree's ``grafana/`` directory, next to ``src/`` in a checkout (or an editable
#: install); a package installed from a wheel has none, and the banner then names none of it.
GRAFANA_DIR = Path(__file__).resolve().parents[2] / "grafana"
#: The port at which the Prometheus of the Compose setup there scrapes the demo
#: (``grafana/prometheus/prometheus.yml``).
COMPOSE_PORT = 8489


#: Stands for a space that a banner line is not broken at (see :func:`_unbroken`).
_KEPT_SPACE = "\xa0"


def _unbroken(text: str) -> str:
    """``text`` (a command to copy, an argument of it quoted for a shell with its spaces)
    never broken across the banner's lines (see :func:`_wrapped`)."""
    return text.replace(" ", _KEPT_SPACE)


def _wrapped(label: str, text: str) -> list[str]:
    """A banner line (see :func:`_labelled`), its text wrapped to :data:`_BANNER_WIDTH`
    under its own column; a URL, a word or an :func:`_unbroken` argument is never broken (one
    longer than the line's room overflows it)."""
    first = _labelled(label, "")
    lines = textwrap.wrap(
        text,
        width=_BANNER_WIDTH,
        initial_indent=first,
        subsequent_indent=" " * len(first),
        break_long_words=False,
        break_on_hyphens=False,
    )
    return [line.replace(_KEPT_SPACE, " ") for line in lines]


def _watch_command(url: str) -> str:
    """The command that shows the demo's status from another terminal, its URL quoted for a
    shell when it has to be: an IPv6 address's brackets, ``http://[::1]:8489``, read as a
    pattern, which zsh refuses when no file matches it."""
    return f"laios status --url {shell_quote(url)} --watch"


def _addresses(url: str) -> list[tuple[str, str]]:
    """What the demo serves and how to watch it, as (label, text): printed in the banner and
    kept at the top of the live view all the time."""
    return [
        ("Live page", f"{url}/ (open it in a browser)"),
        ("Metrics", f"{url}/metrics"),
        ("Status", f"{url}/status"),
        ("Watch", _watch_command(url)),
    ]


def _view_addresses(url: str, dask_dashboard: str | None) -> list[tuple[str, str]]:
    """The addresses the live view keeps on top: the banner's, three lines (to leave a 24-line
    screen its rows), and Dask's dashboard if any."""
    addresses = [
        ("Live page", f"{url}/"),
        ("Metrics", f"{url}/metrics and /status"),
        ("Watch", _watch_command(url)),
    ]
    if dask_dashboard is not None:
        addresses.append(("Dask", dask_dashboard))
    return addresses


def _terminal_mode(args: argparse.Namespace) -> tuple[bool, str]:
    """Whether to draw the live view, and what the banner says the terminal will show."""
    plain = f"a progress line every {_PLAIN_EVERY:g} s"
    why_not = why_not_a_terminal(sys.stdout)
    if why_not is not None:
        return False, f"{plain} ({why_not})"
    if getattr(args, "no_live", False):
        return False, f"{plain} (--no-live)"
    if getattr(args, "console_spans", False) and stream_is_terminal(sys.stderr):
        return False, (
            f"{plain}; no live view, since spans print to this terminal"
            " (send them to a file with 2>spans.txt to keep the live view)"
        )
    return True, "a live view (the alternate screen), then a summary here"


def _shown(path: Path) -> str:
    """``path`` as the banner names it: relative to the current directory when it is under
    it (``grafana/docker-compose.yml`` from the checkout's root), else absolute."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _monitoring(target: str, host: str, port: int) -> list[tuple[str, str]]:
    """The banner's Prometheus and Dashboard lines for the demo's ``target`` (``host:port``),
    served on ``host`` and ``port``: the Compose setup of the source tree's ``grafana/`` when
    it is there (a checkout), asking for the options its Prometheus needs to reach the demo
    that this one lacks; else what an installed package has, the mixin's command that writes
    the dashboard and rules."""
    compose = GRAFANA_DIR / "docker-compose.yml"
    config = GRAFANA_DIR / "prometheus" / "prometheus.yml"
    if compose.is_file() and config.is_file():
        # (it scrapes host.docker.internal, the docker bridge's address on Linux: not loopback)
        needs = [] if _is_wildcard(host) else ["--host 0.0.0.0"]
        if port != COMPOSE_PORT:
            needs.append(f"--port {COMPOSE_PORT}")
        advice = ""
        if needs:
            advice = (
                f" (run the demo with {' '.join(needs)} so the Prometheus container can reach it)"
            )
        return [
            (
                "Prometheus",
                f"scrape {target}; the Compose setup's {_shown(config)}"
                f" scrapes host.docker.internal:{COMPOSE_PORT}",
            ),
            (
                "Dashboard",
                _unbroken(f"docker compose -f {shell_quote(_shown(compose))} up")
                + f", then http://localhost:3000{advice}",
            ),
        ]
    return [
        ("Prometheus", f"scrape {target} (its /metrics)"),
        (
            "Dashboard",
            "laios mixin --out DIR writes the Grafana dashboard and the alert rules"
            " into DIR (see the Grafana page of laios' docs)",
        ),
    ]


def _banner(
    args: argparse.Namespace,
    url: str,
    port: int,
    spans: str,
    terminal: str,
    runner: Any,
) -> list[str]:
    """The lines printed when the demo starts: each labelled text wrapped to fit an
    80-column terminal. ``spans`` says where spans go (from :func:`_configure_tracing`)."""
    headline = f"laios demo: serving {url}"
    if _is_wildcard(args.host):
        headline += f" (listening on {args.host if ':' in args.host else '0.0.0.0'})"
    labelled = [
        *_addresses(url),
        *_monitoring(urlsplit(url).netloc, args.host, port),
        ("Spans", spans),
    ]
    kind = getattr(args, "runner", "thread")
    if kind == "process":
        labelled.append(
            (
                "Isolation",
                "every tool runs in one of 8 worker processes; a tool past its timeout is killed"
                " (sometimes_hangs hangs for good now and then: watch its timeouts)",
            )
        )
    elif kind == "dask":
        labelled.append(
            (
                "Dask",
                "tools run on an embedded cluster (2 workers x 4 threads), each in a process"
                f" of its worker; Dask's dashboard: {runner.dashboard_link}",
            )
        )
    labelled.append(("Terminal", terminal))
    lines = [headline]
    for label, text in labelled:
        lines += _wrapped(label, text)
    duration = args.duration
    lines.append("  Press Ctrl-C to stop." if duration is None else f"  Running {duration:g} s.")
    return lines


class _Clock:
    """The demo's elapsed time and task count, for the headline and the progress lines."""

    def __init__(self, executor: Executor, duration: float | None) -> None:
        self.executor = executor
        self.duration = duration
        self.started = time.monotonic()
        self.before = sum(t.total for t in executor.store.snapshot().tools)

    def document(self) -> dict[str, Any]:
        from laios.execution.server import status_document

        return status_document(self.executor.store.snapshot())

    def headline(self, document: dict[str, Any], *, final: bool = False) -> str:
        """``laios demo — 12 s, 345 tasks, 28.7 tasks/s`` (``12/30 s`` with a duration, while
        it runs)."""
        elapsed = max(time.monotonic() - self.started, 1e-9)
        total = sum(_int(t.get("total")) for t in document.get("tools", [])) - self.before
        shown = f"{elapsed:.0f}"
        if self.duration is not None and not final:
            shown += f"/{self.duration:g}"
        return f"laios demo — {shown} s, {total} tasks, {total / elapsed:.1f} tasks/s"

    def remaining(self) -> float | None:
        """Seconds left to run, or None when the demo runs until stopped."""
        if self.duration is None:
            return None
        return self.started + self.duration - time.monotonic()


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


#: Lines of the status that count both tables and show the gauges on the shortest screen
#: (``Running tasks (3)``, ``Tools: +7 more``, ``workers: ...``): a blank line above them is
#: kept only when they all fit under it.
_STATUS_COUNTS = 3


def live_frame(
    document: dict[str, Any],
    *,
    headline: str,
    addresses: list[tuple[str, str]],
    stop: str,
    width: int,
    height: int,
) -> list[str]:
    """One frame of the live view: at most ``height`` lines, none wider than ``width``.

    The top never scrolls away: the headline (with ``stop``, how to stop, at its right when
    there is room, else on a line of its own) and the addresses. Under them comes the status
    (see :func:`laios.cli.status_lines`), fitted to the rest of the screen.
    """
    from laios.cli import status_lines

    top = [headline]
    gap = width - text_width(headline) - text_width(stop)
    if gap >= 2:
        top[0] = headline + " " * gap + stop
    top += [_labelled(label, text) for label, text in addresses]
    if gap < 2:
        top.append(_labelled("Stop", stop))
    top = [clip(line, width) for line in top][: max(height, 0)]
    room = height - len(top)
    if room <= 0:
        return top
    if room <= _STATUS_COUNTS:  # (the blank line goes before the lines counting the tables)
        return [*top, *status_lines(document, width=width, height=room)]
    return [*top, "", *status_lines(document, width=width, height=room - 1)]


def _progress_line(clock: _Clock) -> str:
    """The plain line printed now and then when there is no live view."""
    document = clock.document()
    running = _int(document.get("running_total"))
    return f"{clock.headline(document).replace(' —', ':', 1)}, {running} running"


#: Log messages kept while the live view is up (the latest; the others are counted).
_HELD_LOGS = 20


def _printable(text: str) -> str:
    """``text`` as the demo prints a log message: shown, never run (see
    :func:`~laios._output.printable_text`), the line breaks of a traceback kept. A message may
    quote what another program sent: the OTLP exporter logs the reason phrase of a collector's
    answer as it is."""
    return printable_text(text, "\n")


class _Logs(logging.Handler):
    """Prints the log messages (warnings and errors) to stderr, control characters as ``?``
    (see :func:`_printable`). While the live view is up (:meth:`held`) it keeps them, to print
    them once the terminal is back: printed at once they would be drawn over the view and
    then lost with the alternate screen (an OTLP receiver that is down warns at every
    export)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        self.hold = False
        self.held_records: collections.deque[logging.LogRecord] = collections.deque(
            maxlen=_HELD_LOGS
        )
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        """Keep ``record`` (the oldest is dropped past the limit), or print it."""
        if not self.hold:
            self._print(record)
            return
        self.count += 1
        self.held_records.append(record)

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """While inside, messages are printed here where logging is not set up (the root
        logger has no handler: Python would print them as they are); where it is, they go
        where the process sends them."""
        root = logging.getLogger()
        if root.handlers:
            yield
            return
        root.addHandler(self)
        try:
            yield
        finally:
            root.removeHandler(self)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """While inside, messages that would go to stderr are kept here; printed after."""
        root = logging.getLogger()
        added = self not in root.handlers
        if added:
            root.addHandler(self)
        self.hold = True
        try:
            yield
        finally:
            self.hold = False
            if added:
                root.removeHandler(self)
            self.print_held()

    def print_held(self) -> None:
        """Print the kept messages to stderr, saying how many were left out."""
        if self.count > len(self.held_records):
            print(
                f"laios demo: {self.count} log messages while the live view was up; the last"
                f" {len(self.held_records)}:",
                file=sys.stderr,
            )
        while self.held_records:
            self._print(self.held_records.popleft())
        self.count = 0

    def _print(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):  # a message that cannot be formatted or written
            print(_printable(self.format(record)), file=sys.stderr)


def _show_live(clock: _Clock, addresses: list[tuple[str, str]], logs: _Logs | None = None) -> None:
    """Draw the live view until the duration is over or q is pressed (Ctrl-C raises); the log
    messages meanwhile are kept by ``logs``, and printed once the terminal is back."""
    with (logs or _Logs()).held(), LiveScreen(sys.stdout, sys.stdin) as screen:
        stop = "q or Ctrl-C to stop" if screen.reads_keys else "Ctrl-C to stop"
        while True:
            size = terminal_size()
            document = clock.document()
            frame = live_frame(
                document,
                headline=clock.headline(document),
                addresses=addresses,
                stop=stop,
                width=size.columns,
                height=size.lines,
            )
            screen.draw(frame)
            left = clock.remaining()
            if left is not None and left <= 0:
                return
            if "q" in screen.wait(_FRAME if left is None else min(_FRAME, left)).lower():
                return


def _show_plain(clock: _Clock) -> None:
    """Print a progress line every _PLAIN_EVERY seconds until the duration is over."""
    next_line = clock.started + _PLAIN_EVERY
    while True:
        left = clock.remaining()
        if left is not None and left <= 0:
            return
        wait = next_line - time.monotonic()
        time.sleep(max(wait if left is None else min(wait, left), 0.0))
        if time.monotonic() >= next_line:
            print(_progress_line(clock), flush=True)
            next_line += _PLAIN_EVERY


#: Why an address cannot be served on, whatever the port: not this machine's
#: (EADDRNOTAVAIL), a link-local IPv6 address without its scope, ``fe80::1`` (EINVAL), or IPv6
#: on a machine without it (EAFNOSUPPORT).
_HOST_ERRORS = frozenset({errno.EADDRNOTAVAIL, errno.EINVAL, errno.EAFNOSUPPORT})


#: start_http_server's advice for a port in use, in terms of the demo's options.
_DEMO_PORT_ADVICE = "pick another port with --port, or --port 0 for a free one"


def _listen_failure(exc: OSError, host: str, port: int) -> str:
    """Why the endpoint could not listen on ``host:port`` and what to do, on one line."""
    from laios.execution.server import PORT_IN_USE_ADVICE

    reason = exc.strerror or ""
    if not reason.startswith("cannot listen on "):
        reason = f"cannot listen on {host}:{port}: {exc}"
    if isinstance(exc, socket.gaierror) or exc.errno in _HOST_ERRORS:
        # The host names no address to serve on here: another port would not help.
        return f"{reason}; pick another address with --host (127.0.0.1, 0.0.0.0)"
    if exc.errno == errno.EADDRINUSE and PORT_IN_USE_ADVICE in reason:
        # (start_http_server's message says already to pick another port: said once, here)
        return reason.replace(PORT_IN_USE_ADVICE, _DEMO_PORT_ADVICE)
    return f"{reason}; pick another port with --port"


def run(args: argparse.Namespace) -> int:
    """Run the demo with the parsed ``laios demo`` arguments; return the exit code."""
    # The live view owns the terminal; the status table shows what warnings would say. The
    # level is given back at the end, for a process that goes on (a test, an embedding).
    logger = logging.getLogger("laios")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        return _run(args)
    finally:
        logger.setLevel(level)


def _run(args: argparse.Namespace) -> int:
    from laios.cli import status_lines
    from laios.execution import multiprocess
    from laios.execution.server import start_http_server

    try:
        provider, spans_line = _configure_tracing(
            bool(getattr(args, "console_spans", False)), getattr(args, "otlp_endpoint", None)
        )
    except (ImportError, ValueError) as exc:
        print(f"laios demo: {exc}", file=sys.stderr)
        return 2
    registry = build_registry()
    context = Context(session_id="demo-session", user_id="demo-user")
    kind = getattr(args, "runner", "thread")
    isolated = kind in ("process", "dask")
    runner: Any = None
    if kind == "process":
        from laios.execution.runners import ProcessRunner

        runner = ProcessRunner(8, preload=[__name__])
    elif kind == "dask":
        from laios.execution.runners import DaskRunner

        try:
            with _ctrl_c_held() as interrupted:
                runner = DaskRunner(n_workers=2, threads_per_worker=4)
        except ImportError as exc:
            print(f"laios demo: {exc}", file=sys.stderr)
            return 2
        if interrupted():
            # (the cluster is whole: closing it now leaves no process and says nothing)
            with _stop_signals_ignored():
                runner.shutdown(wait=True)
            raise KeyboardInterrupt
    executor = Executor(
        registry,
        ResourceLimits(timeout_seconds=5.0),
        max_workers=8,
        measure_cpu_time=True,
        runner=runner,
    )
    try:
        server = start_http_server(
            args.port,
            args.host,
            store=executor.store,
            allowed_hosts=getattr(args, "allowed_hosts", None) or (),
        )
    except OSError as exc:
        executor.shutdown(wait=False)
        # start_http_server's message names the address already ("cannot listen on ...");
        # str(exc) would put "[Errno 98]" and the address in front of it a second time.
        print(f"laios demo: {_listen_failure(exc, args.host, args.port)}", file=sys.stderr)
        return 2
    except ValueError as exc:
        # The one environment the endpoint reads: a LAIOS_MULTIPROC_DIR it cannot use (the
        # options it is given were checked when the command line was read).
        executor.shutdown(wait=False)
        if multiprocess.ENV_VAR not in os.environ:
            raise
        print(
            f"laios demo: {multiprocess.ENV_VAR} cannot be used: {exc} (it turns on "
            "multiprocess mode for the demo's endpoint: unset it, or name a directory this "
            "process can write in)",
            file=sys.stderr,
        )
        return 2
    live, terminal = _terminal_mode(args)
    url = _reachable_url(server.url)
    try:
        for line in _banner(args, url, server.port, spans_line, terminal, runner):
            print(line)
        sys.stdout.flush()
    except BaseException:
        # The output is gone (`laios demo | true`, a full disk) or Ctrl-C came: nothing has
        # run yet, so the executor (a Dask cluster's closing with it) is waited for, with the
        # endpoint stopped too, before the command line says how it ended.
        with _stop_signals_ignored():
            _stop(executor, server, provider, wait=True)
        raise
    clock = _Clock(executor, args.duration)
    workload = _Workload(executor, context, isolated=isolated)
    # One handler from the start to the end of the stop: a signal repeated at once (as
    # `timeout` sends it) is the same stop, and never meets the default handler in between.
    stops = _Stops()
    logs = _Logs()
    with logs.installed(), _stop_signals_as_ctrl_c(stops):
        try:
            workload.start()
            if live:
                dashboard = str(runner.dashboard_link) if kind == "dask" else None
                _show_live(clock, _view_addresses(url, dashboard), logs)
            else:
                _show_plain(clock)
        except KeyboardInterrupt:
            pass
        finally:
            summary = _wind_down(workload, clock, executor, server, provider, stops)
    if summary is None:
        print(
            "\nlaios demo: stopped without waiting for the running tasks"
            f" ({stops.last_taken()} again)",
            file=sys.stderr,
        )
        return 0
    headline, document = summary
    # (fitted to a terminal, a dumb one too, which draws no live view but has a width)
    width = terminal_size().columns if is_a_terminal(sys.stdout) else None
    # (the headline wrapped between words to the width, whole, as the tables are fitted to it)
    print("\n" + "\n".join(textwrap.wrap(headline, width) if width else [headline]) + "\n")
    print("\n".join(status_lines(document, width=width)))
    print("laios demo: done.")
    return 0


@contextlib.contextmanager
def _ctrl_c_held() -> Iterator[Callable[[], bool]]:
    """While inside (in the main thread), Ctrl-C (SIGINT) is held back; on leaving, one that
    came meanwhile is dropped, and the function yielded says whether one came.

    The processes started inside (a local Dask cluster's) inherit the hold, so the Ctrl-C a
    terminal sends to its whole foreground group never reaches them: it does not cut one
    short in its imports with a traceback of its own, nor a cluster half started, whose
    closing fails with more; this process stops them.
    """
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    with sigint_held(drop=True) as came:
        yield came


def _wind_down(
    workload: _Workload,
    clock: _Clock,
    executor: Executor,
    server: Any,
    provider: Any,
    stops: _Stops | None = None,
) -> tuple[str, dict[str, Any]] | None:
    """Stop the workload, the executor, the endpoint and the tracing, waiting for the running
    tasks and the spans still to be sent; return the summary's headline and status document.

    A Ctrl-C or SIGTERM during the waits cuts them short: the executor and the endpoint are
    still stopped (with both signals ignored, so it is quick and whole), the spans not yet sent
    are dropped, and None is returned. (The signal that stopped the demo, repeated at once,
    is left out: ``stops`` knows when it came.)
    """
    try:
        with _stop_signals_as_ctrl_c(stops):
            with sleeps_disabled():
                finished = workload.join(timeout=15.0)
            document = clock.document()
            headline = clock.headline(document, final=True)
            # With every task answered there is nothing left to wait for but the runner's own
            # closing (a Dask cluster's, which must not be cut short by the interpreter's exit).
            # Console spans still buffered print now, before the summary.
            _stop(executor, server, provider, wait=finished)
    except KeyboardInterrupt:
        with _stop_signals_ignored():
            _stop(executor, server, None, wait=False)
        return None
    return headline, document


def _stop(executor: Executor, server: Any, provider: Any, *, wait: bool) -> None:
    """Stop the executor (waiting for its runner's closing when ``wait``), the endpoint, and
    the tracing when ``provider`` is given (its spans still held are sent or printed)."""
    executor.shutdown(wait=wait)
    server.shutdown()
    if provider is not None:
        provider.shutdown()
