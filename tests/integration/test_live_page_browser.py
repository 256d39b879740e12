"""The live page at ``/`` in a real headless Chromium, against a server whose executor runs tasks.

An executor (traced with the OpenTelemetry SDK) runs a quick tool and a failing one in a loop,
and one long task that reports progress until the module ends; the page is opened at a desktop
and a phone size, and must show the tools, the running task's progress bar and the failures with
their trace ids, and follow them as they change. Playwright drives Debian's ``chromium`` (it
never downloads a browser). The page reads ``status`` every half second here (``?every=0.5``).
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest
from prometheus_client import CollectorRegistry

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.server import MetricsServer, make_wsgi_app, start_http_server
from laios.execution.store import MetricStore
from laios.execution.task_context import require_current_task
from laios.tools.base import BaseTool
from laios.tools.registry import ToolRegistry

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment
    from playwright.sync_api import Browser, ConsoleMessage, ElementHandle, Page

pytestmark = pytest.mark.integration

#: Flags that let Chromium run headless as root in a container, with nothing phoning home.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 375, "height": 667}
#: The long task's progress message: markup that the page must show as text.
MESSAGE = '<b>row</b> {rows} <img src="x">'
CONTEXT = Context(session_id="s", user_id="u")
RELEASE = threading.Event()  # lets the long task end


class Quick(BaseTool):
    name = "quick"
    description = "Answers in a few milliseconds"

    def _execute(self, **kwargs: Any) -> str:
        time.sleep(0.005)
        return "done"


class Flaky(BaseTool):
    name = "flaky"
    description = "Always fails"

    def _execute(self, **kwargs: Any) -> str:
        raise ConnectionError("upstream reset the connection")


class LongImport(BaseTool):
    name = "long_import"
    description = "Imports rows until released, reporting progress"

    def _execute(self, **kwargs: Any) -> int:
        task = require_current_task()
        for step in itertools.count(1):
            task.progress(min(5 + 2 * step, 95), MESSAGE.format(rows=100 * step))
            if RELEASE.wait(0.2) or step >= 1500:  # (five minutes at most)
                return step
        return 0


HELD_STARTED = threading.Event()
HELD_RELEASE = threading.Event()


class Held(BaseTool):
    name = "held"
    description = "Runs until released"

    def _execute(self, **kwargs: Any) -> str:
        HELD_STARTED.set()
        HELD_RELEASE.wait(60)
        return "done"


@dataclass
class Live:
    """The service the page watches."""

    store: MetricStore
    prometheus: CollectorRegistry
    executor: Executor
    server: MetricsServer
    long_task_id: str
    #: Task id -> trace id of each failed task the workload ran.
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.server.url

    def fail_once(self, task_id: str) -> str:
        """Run a failing task with this id; return its trace id."""
        task = Task(id=task_id, plan_id="p", description="fails", tool_name="flaky")
        result = self.executor.execute_task(task, CONTEXT)
        trace_id: str = result.metadata["trace_id"]
        self.failed[task_id] = trace_id
        return trace_id


def drive(live: Live, stop: threading.Event) -> None:
    """Run quick tasks, and a failing one now and then, until stopped (five minutes at most)."""
    deadline = time.monotonic() + 300
    for count in itertools.count(1):
        if stop.is_set() or time.monotonic() > deadline:
            return
        live.executor.execute_task(
            Task(plan_id="p", description="quick", tool_name="quick"), CONTEXT
        )
        if count % 5 == 0:
            live.fail_once(f"workload-failure-{count}")
        stop.wait(0.04)


@pytest.fixture(scope="module")
def live() -> Iterator[Live]:
    """A server whose executor runs the workload and the long task until the module ends."""
    from opentelemetry.sdk.trace import TracerProvider

    tools = ToolRegistry()
    tools.register_tools([Quick, Flaky, LongImport])
    store, prometheus, provider = MetricStore(), CollectorRegistry(), TracerProvider()
    executor = Executor(
        tools, max_workers=4, store=store, prometheus_registry=prometheus, tracer_provider=provider
    )
    server = start_http_server(0, store=store, registry=prometheus)
    long_task = Task(plan_id="p", description="import", tool_name="long_import")
    live = Live(store, prometheus, executor, server, long_task.id)
    RELEASE.clear()
    stop = threading.Event()
    threads = [
        threading.Thread(target=drive, args=(live, stop), daemon=True),
        threading.Thread(
            target=executor.execute_task,
            args=(long_task, CONTEXT),
            kwargs={"timeout": 600},
            daemon=True,
        ),
    ]
    for thread in threads:
        thread.start()
    try:
        yield live
    finally:
        stop.set()
        RELEASE.set()
        for thread in threads:
            thread.join(timeout=30)
        live.server.shutdown()
        executor.shutdown()
        provider.shutdown()


@pytest.fixture(scope="module")
def browser(chromium_binary: str) -> Iterator[Browser]:
    """Headless Chromium (a fresh temporary profile), driven by Playwright."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_binary, args=CHROMIUM_FLAGS)
        try:
            yield launched
        finally:
            launched.close()


def open_page(browser: Browser, url: str, **options: Any) -> tuple[Page, list[str]]:
    """Open ``url`` in a new page; return it and the list its console errors go to."""
    page = browser.new_page(**options)
    page.set_default_timeout(20_000)
    errors: list[str] = []

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(message.text)

    page.on("console", console)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(url)
    return page, errors


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    """Poll ``condition`` until it holds (reading the page from Python: the page's policy
    forbids evaluating strings in it)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what} after {timeout:g} s")
        time.sleep(0.1)


def text_of(item: ElementHandle, selector: str) -> str | None:
    """The text of the element under ``item`` that ``selector`` finds."""
    found = item.query_selector(selector)
    assert found is not None, selector
    return found.text_content()


def tool_row(tool: str) -> str:
    return f'#tools-body tr[data-tool="{tool}"]'


def total_of(page: Page, tool: str) -> int:
    text = page.locator(f'{tool_row(tool)} [data-field="total"]').text_content() or ""
    return int(re.sub(r"\D", "", text) or "0")


def test_the_page_draws_tools_the_running_task_and_failures(browser: Browser, live: Live) -> None:
    """At a desktop size the page shows a row per tool with its rate, the long task with its
    progress bar and message (markup shown as text), and failures with their trace ids, with
    nothing refused by the Content-Security-Policy and no script error."""
    page, errors = open_page(browser, live.url + "/?every=0.5", viewport=DESKTOP)
    for tool in ("quick", "flaky", "long_import"):
        page.wait_for_selector(tool_row(tool))
    rate = page.locator(f'{tool_row("quick")} [data-field="rate"]')
    wait_until(lambda: re.search("[1-9]", rate.text_content() or "") is not None, "a rate")
    assert page.locator(f'{tool_row("flaky")} [data-field="failed"]').text_content() == "100%"

    task = page.locator(f'#running li[data-task-id="{live.long_task_id}"]')
    task.wait_for()
    assert task.locator(".tool").text_content() == "long_import"
    bar = task.locator('[role="progressbar"]')
    wait_until(lambda: int(bar.get_attribute("aria-valuenow") or 0) > 5, "progress")
    assert bar.bounding_box()["width"] > 600
    message = task.locator(".message").text_content() or ""
    assert message.startswith("<b>row</b> ")
    assert message.endswith('<img src="x">')
    assert task.locator("b, img").count() == 0

    page.wait_for_selector("#failures li[data-trace-id]")
    shown = 0
    # (Handles on the items themselves, not ``locator(...).all()``, whose n-th locators are
    # looked up again at each read: a failure drawn meanwhile shifts them to another item.)
    for item in page.query_selector_all("#failures li"):
        task_id = item.get_attribute("data-task-id") or ""
        if task_id in live.failed:
            assert text_of(item, ".trace-id") == live.failed[task_id]
            assert text_of(item, ".outcome") == "error"
            assert text_of(item, ".error-type") == "ConnectionError"
            shown += 1
    assert shown > 0
    assert errors == []
    page.close()


def test_the_page_follows_counts_and_new_failures(browser: Browser, live: Live) -> None:
    """A tool's count grows between two reads, and a failure that happens while the page is
    open appears with its trace id."""
    page, _ = open_page(browser, live.url + "/?every=0.5", viewport=DESKTOP)
    page.wait_for_selector(tool_row("quick"))
    before = total_of(page, "quick")
    wait_until(lambda: total_of(page, "quick") > before, "a greater count")
    assert total_of(page, "quick") > before

    trace_id = live.fail_once("the-newest-failure")
    item = page.locator('#failures li[data-task-id="the-newest-failure"]')
    item.wait_for()
    assert item.locator(".trace-id").text_content() == trace_id
    assert item.get_attribute("data-trace-id") == trace_id
    page.close()


def test_the_page_fits_a_phone(browser: Browser, live: Live) -> None:
    """At 375×667 the page does not scroll sideways, keeps the rate and p95 columns, hides
    the less important ones, and the progress bar fits the screen."""
    page, errors = open_page(
        browser,
        live.url + "/?every=0.5",
        viewport=PHONE,
        is_mobile=True,
        device_scale_factor=2,
    )
    page.wait_for_selector(tool_row("quick"))
    task = page.locator(f'#running li[data-task-id="{live.long_task_id}"]')
    task.wait_for()
    page.wait_for_selector("#failures li[data-trace-id]")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    row = tool_row("quick")
    for visible in ("tool", "rate", "failed", "p95"):
        assert page.locator(f'{row} [data-field="{visible}"]').is_visible()
    for hidden in ("p50", "p99", "total", "in_flight"):
        assert page.locator(f'{row} [data-field="{hidden}"]').is_hidden()
    box = task.locator('[role="progressbar"]').bounding_box()
    assert box is not None
    assert box["x"] >= 0
    assert box["x"] + box["width"] <= 375
    assert box["width"] > 250
    assert errors == []
    page.close()


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No access log."""


def test_the_page_reads_status_where_it_is_mounted(browser: Browser, live: Live) -> None:
    """Mounted under /ops in another WSGI server, the page at /ops/ and at /ops reads
    /ops/status, and draws the tools."""
    app = make_wsgi_app(live.store, live.prometheus)

    def mounted(environ: WSGIEnvironment, start_response: StartResponse) -> Any:
        path = environ.get("PATH_INFO", "")
        if path != "/ops" and not path.startswith("/ops/"):
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not here"]
        environ["SCRIPT_NAME"], environ["PATH_INFO"] = "/ops", path[len("/ops") :]
        return app(environ, start_response)

    with make_server("127.0.0.1", 0, mounted, handler_class=_QuietHandler) as httpd:
        thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1})
        thread.start()
        try:
            base = f"http://127.0.0.1:{httpd.server_port}"
            for address in (f"{base}/ops/?every=0.5", f"{base}/ops?every=0.5"):
                page = browser.new_page()
                page.set_default_timeout(20_000)
                with page.expect_request(lambda request: "status" in request.url) as read:
                    page.goto(address)
                page.wait_for_selector(tool_row("quick"))
                assert read.value.url == f"{base}/ops/status"
                page.close()
        finally:
            httpd.shutdown()
            thread.join(timeout=10)


def test_the_page_at_a_doubled_slash_reads_status_of_its_own_server(
    browser: Browser, live: Live
) -> None:
    """Served by a server that merges the slashes (``wsgiref``, as ``http.server`` does), ``//``
    (an address built as ``url + "/"`` from one ending in ``/``) is the page; the page reads
    ``/status`` of its own server and its links lead there, not to a host named ``status`` or
    ``metrics`` (``//status`` is a URL without a scheme). The built-in server serves a path
    as written only: ``//`` gets 404."""
    assert urlopen_status(f"{live.url}//") == 404
    app = make_wsgi_app(live.store, live.prometheus)
    with make_server("127.0.0.1", 0, app, handler_class=_QuietHandler) as httpd:
        thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1})
        thread.start()
        try:
            base = f"http://127.0.0.1:{httpd.server_port}"
            for slashes in ("//", "///"):
                page, _ = open_page(browser, f"{base}{slashes}?every=0.5", viewport=DESKTOP)
                page.wait_for_selector(tool_row("quick"))
                assert (page.locator("#state-text").text_content() or "").startswith("live")
                for link, route in (("status-link", "status"), ("metrics-link", "metrics")):
                    href = page.evaluate(f"document.getElementById('{link}').href")
                    assert href == f"{base}/{route}"
                page.close()
        finally:
            httpd.shutdown()
            thread.join(timeout=10)


def urlopen_status(url: str) -> int:
    """The status ``url`` answers a GET with."""
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        with error:
            return error.code


def test_the_page_says_when_the_server_is_gone_and_recovers(browser: Browser, live: Live) -> None:
    """When the server stops, the page says it cannot read status and greys out what it last
    showed; when the server is back on the same port, the page is live again by itself."""
    page, _ = open_page(browser, live.url + "/?every=0.5", viewport=DESKTOP)
    page.wait_for_selector(tool_row("quick"))
    port = live.server.port
    live.server.shutdown()
    banner = page.locator("#banner")
    banner.wait_for(state="visible")
    assert (banner.text_content() or "").startswith("Cannot read status:")
    assert page.locator("#state-text").text_content() == "disconnected"
    assert "stale" in (page.locator("main").get_attribute("class") or "")
    assert page.locator(tool_row("quick")).is_visible()  # the last picture stays

    live.server = start_http_server(port, store=live.store, registry=live.prometheus)
    banner.wait_for(state="hidden")
    assert (page.locator("#state-text").text_content() or "").startswith("live")
    assert "stale" not in (page.locator("main").get_attribute("class") or "")
    page.close()


def test_a_store_with_buckets_of_its_own_gets_its_percentiles_from_them(
    browser: Browser,
) -> None:
    """A store with duration buckets of its own (as many as the default's, 100 times as
    wide): its row's percentiles of the last minute are read with its own bounds, as its
    since-start ones are. The ~5 ms tasks all fall in its first bucket (0 to 0.5 s), so its
    p50 is 250 ms, as Prometheus' ``histogram_quantile`` would say; read with the default
    bounds, the page said 2.5 ms."""
    tools = ToolRegistry()
    tools.register_tools([Quick])
    registry = CollectorRegistry()
    default = Executor(tools, store=MetricStore(), prometheus_registry=registry)
    wide_bounds = [bound * 100 for bound in MetricStore().duration_buckets]
    wide = Executor(
        tools,
        store=MetricStore(labels={"pool": "wide"}, duration_buckets=wide_bounds),
        prometheus_registry=registry,
    )
    server = start_http_server(0, store=MetricStore(), registry=registry)
    stop = threading.Event()

    def work() -> None:
        deadline = time.monotonic() + 120
        while not stop.is_set() and time.monotonic() < deadline:
            for executor in (default, wide):
                executor.execute_task(
                    Task(plan_id="p", description="x", tool_name="quick"), CONTEXT
                )
            stop.wait(0.02)

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    try:
        page, errors = open_page(browser, server.url + "/?every=0.5", viewport=DESKTOP)
        row = page.locator(f'{tool_row("quick")}[data-labels="pool=wide"]')
        row.wait_for()
        p50 = row.locator('[data-field="p50"]')
        wait_until(  # a percentile of the last minute (not grey: not the since-start one)
            lambda: (
                "since" not in (p50.get_attribute("class") or "")
                and (p50.text_content() or "–") != "–"
            ),
            "a windowed p50",
        )
        assert p50.text_content() == "250 ms"
        assert errors == []
        page.close()
    finally:
        stop.set()
        worker.join(timeout=30)
        server.shutdown()
        default.shutdown()
        wide.shutdown()


def test_the_page_keeps_apart_the_tools_of_stores_with_other_labels(browser: Browser) -> None:
    """Two executors with the same tool, whose stores have other constant labels (``pool``),
    give two rows: each named with its labels, each with its own numbers; only the busy
    pool's row has a rate."""
    tools = ToolRegistry()
    tools.register_tools([Quick])
    registry = CollectorRegistry()
    busy = Executor(
        tools, store=MetricStore(labels={"pool": "search"}), prometheus_registry=registry
    )
    idle = Executor(
        tools, store=MetricStore(labels={"pool": "batch"}), prometheus_registry=registry
    )
    server = start_http_server(0, store=MetricStore(), registry=registry)
    idle.execute_task(Task(plan_id="p", description="once", tool_name="quick"), CONTEXT)
    stop = threading.Event()

    def work() -> None:
        deadline = time.monotonic() + 120
        while not stop.is_set() and time.monotonic() < deadline:
            busy.execute_task(Task(plan_id="p", description="busy", tool_name="quick"), CONTEXT)
            stop.wait(0.02)

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    try:
        page, errors = open_page(browser, server.url + "/?every=0.5", viewport=DESKTOP)
        search = page.locator(f'{tool_row("quick")}[data-labels="pool=search"]')
        batch = page.locator(f'{tool_row("quick")}[data-labels="pool=batch"]')
        search.wait_for()
        batch.wait_for()
        assert page.locator(tool_row("quick")).count() == 2
        assert search.locator('[data-field="tool"]').text_content() == "quick {pool=search}"
        assert batch.locator('[data-field="tool"]').text_content() == "quick {pool=batch}"
        rate = search.locator('[data-field="rate"]')
        wait_until(lambda: re.search("[1-9]", rate.text_content() or "") is not None, "a rate")
        assert batch.locator('[data-field="rate"]').text_content() == "0/s"
        assert batch.locator('[data-field="total"]').text_content() == "1"
        assert errors == []
        page.close()
    finally:
        stop.set()
        worker.join(timeout=30)
        server.shutdown()
        busy.shutdown()
        idle.shutdown()


#: The x of the left edge of each character of an element's text, in the text's order.
CHARACTER_LEFTS = """element => {
    const lefts = [], walker = document.createTreeWalker(element, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        for (let i = 0; i < node.length; i++) {
            const range = document.createRange();
            range.setStart(node, i);
            range.setEnd(node, i + 1);
            lefts.push(range.getBoundingClientRect().left);
        }
    }
    return lefts;
}"""


def test_a_label_value_with_a_right_to_left_override_turns_no_other_text(
    browser: Browser,
) -> None:
    """A label value may hold any character, U+202E (right-to-left override) too; written
    after it in the same line, the other labels and the closing brace were drawn backwards
    (``quick {pool=search{ue=enoz,``). Each label is drawn on its own: what follows the value
    reads left to right."""
    tools = ToolRegistry()
    tools.register_tools([Quick])
    registry = CollectorRegistry()
    store = MetricStore(labels={"pool": "search\u202e", "zone": "eu"})
    executor = Executor(tools, store=store, prometheus_registry=registry)
    server = start_http_server(0, store=MetricStore(), registry=registry)
    try:
        executor.execute_task(Task(plan_id="p", description="x", tool_name="quick"), CONTEXT)
        page, errors = open_page(browser, server.url + "/?every=0.5", viewport=DESKTOP)
        cell = page.locator(f'{tool_row("quick")} [data-field="tool"]')
        cell.wait_for()
        text = cell.text_content() or ""
        assert text == "quick {pool=search\u202e,zone=eu}"
        lefts = cell.evaluate(CHARACTER_LEFTS)
        after = text.index("\u202e") + 1
        assert lefts[after:] == sorted(lefts[after:])  # ",zone=eu}" left to right
        assert lefts[after] > lefts[text.index("h")]  # and after "search"
        assert errors == []
        page.close()
    finally:
        server.shutdown()
        executor.shutdown()


def test_a_reduced_status_is_not_shown_as_nothing_running_and_no_failure(
    browser: Browser,
) -> None:
    """With ``status="reduced"`` the document lists no running task and no failure, but
    counts the running ones and the tools' failures: the page said "Nothing is running." and
    "No task has failed." (and "0 longest of 1") beside a tool failing 100%. It now says that
    they are not listed, and how many tasks run."""
    tools = ToolRegistry()
    tools.register_tools([Flaky, Held])
    registry = CollectorRegistry()
    store = MetricStore()
    executor = Executor(tools, store=store, prometheus_registry=registry)
    server = start_http_server(0, store=store, registry=registry, status="reduced")
    held = threading.Thread(
        target=executor.execute_task,
        args=(Task(plan_id="p", description="held", tool_name="held"), CONTEXT),
        daemon=True,
    )
    try:
        executor.execute_task(Task(plan_id="p", description="x", tool_name="flaky"), CONTEXT)
        held.start()
        assert HELD_STARTED.wait(30)
        page, errors = open_page(browser, server.url + "/?every=0.5", viewport=DESKTOP)
        page.wait_for_selector(tool_row("flaky"))
        assert page.locator("#running-count").text_content() == "(1)"
        for empty in ("#running-empty", "#failures-empty"):
            assert page.locator(empty).is_visible()
            assert "not listed" in (page.locator(empty).text_content() or "")
        assert errors == []
        page.close()
    finally:
        HELD_RELEASE.set()
        held.join(timeout=30)
        server.shutdown()
        executor.shutdown()


def routed_status(page: Page, document: Callable[[int], dict[str, Any]]) -> None:
    """Answer the page's reads of ``status`` with ``document(n)`` for its ``n``-th read (from 1),
    dated now, instead of the server's own."""
    from playwright.sync_api import Route

    reads = itertools.count(1)

    def answer(route: Route) -> None:
        now = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        doc = {"generated_at": now.replace("+00:00", "Z"), **document(next(reads))}
        route.fulfill(status=200, content_type="application/json", body=json.dumps(doc))

    page.route("**/status", answer)


#: A count no service reaches, as a document from another source (or a broken one) may give.
ABSURD = 10**30


def absurd_document(read: int) -> dict[str, Any]:
    """A status document whose counts and durations are absurd (10**30 more tasks finished
    at each read, running for 10**30 seconds)."""
    total = read * ABSURD
    return {
        "running": [
            {
                "task_id": "absurd-task",
                "tool": "quick",
                "state": "running",
                "elapsed_seconds": 1e30,
                "progress_percent": 1e30,
                "message": "working",
            }
        ],
        "running_total": ABSURD,
        "tools": [
            {
                "tool": "quick",
                "total": total,
                "outcomes": {"success": total - ABSURD, "error": ABSURD},
                "error_rate": 1e30,
                "p50_seconds": 1e30,
                "p95_seconds": 1e30,
                "p99_seconds": 1e30,
                "retries": ABSURD,
                "in_flight": ABSURD,
            }
        ],
        "failures": [
            {
                "task_id": "absurd-failure",
                "tool": "quick",
                "outcome": "error",
                "error_type": "OverflowError",
                "finished_at": "-271821-04-20T00:00:00.000Z",
                "trace_id": None,
                "attempt": ABSURD,
            }
        ],
        "workers": ABSURD,
        "busy_workers": ABSURD,
        "queue_depth": ABSURD,
        "abandoned_threads": ABSURD,
    }


#: Whether an element's content is wider than the element (it spills out of it).
SPILLS = "element => element.scrollWidth > element.clientWidth + 1"


def test_absurd_numbers_are_shortened_and_never_widen_a_phone_page(browser: Browser) -> None:
    """Counts, rates and durations of 10**30 were written out in full (a 41-character count,
    "2.777777777777778e+26 h"): the tiles spilled over and the phone page scrolled sideways.
    They are written shortly (``1.0e30``), and the page stays as wide as the phone."""
    server = start_http_server(0, store=MetricStore(), registry=CollectorRegistry())
    try:
        page, errors = open_page(
            browser, server.url + "/?every=0.5", viewport=PHONE, is_mobile=True
        )
        routed_status(page, absurd_document)
        page.reload()
        rate = page.locator(f'{tool_row("quick")} [data-field="rate"]')
        wait_until(lambda: (rate.text_content() or "").endswith("/s"), "a rate")
        assert re.fullmatch(r"\d\.\de\d\d/s", rate.text_content() or ""), rate.text_content()
        # (10**30 in flight and 10**30 queued: the running tasks of every worker process)
        assert page.locator("#v-running").text_content() == "2.0e30"
        assert page.locator("#s-running").text_content() == (
            "1.0e30 queued · 1.0e30 workers, 1.0e30 busy · 1.0e30 abandoned"
        )
        assert page.locator("#running-count").text_content() == "(1 longest of 2.0e30)"
        row = tool_row("quick")
        assert page.locator(f'{row} [data-field="total"]').text_content() == "2.0e30"
        assert page.locator(f'{row} [data-field="p95"]').text_content() == "2.8e26 h"
        task = page.locator('#running li[data-task-id="absurd-task"]')
        assert task.locator(".elapsed").text_content() == "2.8e26 h"
        failure = page.locator('#failures li[data-task-id="absurd-failure"]')
        assert failure.locator(".error-type").text_content() == "OverflowError · attempt 1.0e30"
        assert failure.locator(".when").text_content() == "2.4e9 h ago"
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        for tile in page.query_selector_all(".tile .value"):
            assert not tile.evaluate(SPILLS), tile.text_content()
        assert errors == []
        page.close()
    finally:
        server.shutdown()


#: Names that a plain JavaScript object answers for itself, from its prototype.
PROTOTYPE_NAMES = ["constructor", "__proto__", "toString", "hasOwnProperty", "valueOf"]


def prototype_names_document(read: int) -> dict[str, Any]:
    """A status document whose tools, and whose failures' outcomes, have the names of
    members of a plain object's prototype."""
    return {
        "running": [],
        "running_total": 0,
        "tools": [
            {"tool": name, "total": 10 * read, "outcomes": {"success": 10 * read}, "error_rate": 0}
            for name in PROTOTYPE_NAMES
        ],
        "failures": [
            {
                "task_id": f"failed-{outcome}",
                "tool": outcome,
                "outcome": outcome,
                "error_type": "RuntimeError",
                "finished_at": "2026-01-01T00:00:00.000Z",
                "trace_id": None,
                "attempt": 1,
            }
            for outcome in [*PROTOTYPE_NAMES, "timeout"]
        ],
    }


def test_names_of_an_objects_own_members_are_ordinary_names(browser: Browser) -> None:
    """An outcome named ``constructor`` (or ``toString``, ``__proto__``…) was looked up in a
    plain object, which answered with a member of its prototype: its badge got the classes
    ``function Object() { [native code] }``. Such an outcome gets no class of its own, as any
    unknown outcome, and tools with such names are drawn as any other."""
    server = start_http_server(0, store=MetricStore(), registry=CollectorRegistry())
    try:
        page, errors = open_page(browser, server.url + "/?every=0.5", viewport=DESKTOP)
        routed_status(page, prototype_names_document)
        page.reload()
        for name in PROTOTYPE_NAMES:
            row = page.locator(f'{tool_row(name)} [data-field="total"]')
            wait_until(lambda row=row: row.count() == 1 and row.text_content() != "–", name)
            failure = page.locator(f'#failures li[data-task-id="failed-{name}"] .outcome')
            assert failure.text_content() == name
            assert failure.get_attribute("class") == "badge outcome"
            assert page.locator(f'{tool_row(name)} [data-field="tool"]').text_content() == name
        timeout = page.locator('#failures li[data-task-id="failed-timeout"] .outcome')
        assert timeout.get_attribute("class") == "badge outcome timeout"
        assert errors == []
        page.close()
    finally:
        server.shutdown()


#: Durations just under a unit's end, as (tool, p50, p95, p99) and what each is shown as.
DURATIONS = [
    ("under-a-second", 0.9996, 0.99949, 0.009996),
    ("under-a-minute", 59.996, 59.994, 3599.99),
    ("under-1000-hours", 999.96 * 3600, 0.00994, 0.0),
]
SHOWN = {
    "under-a-second": ("1.00 s", "999 ms", "10 ms"),
    "under-a-minute": ("1.0 min", "59.99 s", "1.0 h"),
    "under-1000-hours": ("1,000 h", "9.9 ms", "0.0 ms"),
}


def durations_document(read: int) -> dict[str, Any]:
    """A status document whose tools' percentiles, and a running task's elapsed time, are
    just under the end of a unit."""
    return {
        "running": [
            {
                "task_id": "almost-a-minute",
                "tool": "under-a-minute",
                "state": "running",
                "elapsed_seconds": 59.96,
                "progress_percent": 50,
                "message": "working",
            }
        ],
        "running_total": 1,
        "tools": [
            {
                "tool": tool,
                "total": 10 * read,
                "outcomes": {"success": 10 * read},
                "error_rate": 0,
                "p50_seconds": p50,
                "p95_seconds": p95,
                "p99_seconds": p99,
            }
            for tool, p50, p95, p99 in DURATIONS
        ],
        "failures": [],
    }


def test_a_duration_that_rounds_up_to_the_next_unit_is_written_in_it(browser: Browser) -> None:
    """0.9996 s was shown as "1000 ms", 59.996 s as "60.00 s", 3599.99 s as "60.0 min" and an
    elapsed 59.96 s as "60.0 s": a duration that rounds up to the end of its unit is written in
    the next one ("1.00 s", "1.0 min", "1.0 h", "1 min 00 s"), as the command line writes it."""
    server = start_http_server(0, store=MetricStore(), registry=CollectorRegistry())
    try:
        page, errors = open_page(browser, server.url + "/?every=0.5", viewport=DESKTOP)
        routed_status(page, durations_document)
        page.reload()
        for tool, shown in SHOWN.items():
            cells = [page.locator(f'{tool_row(tool)} [data-field="{p}"]') for p in PERCENTILES]
            wait_until(lambda cells=cells: cells[0].text_content() != "–", tool)
            assert tuple(cell.text_content() for cell in cells) == shown, tool
        task = page.locator('#running li[data-task-id="almost-a-minute"]')
        assert task.locator(".elapsed").text_content() == "1 min 00 s"
        assert errors == []
        page.close()
    finally:
        server.shutdown()


PERCENTILES = ("p50", "p95", "p99")


def long_outcome_document(read: int) -> dict[str, Any]:
    """A status document with one failure whose outcome is 100 characters long."""
    return {
        "running": [],
        "running_total": 0,
        "tools": [{"tool": "quick", "total": read, "outcomes": {"error": read}, "error_rate": 1}],
        "failures": [
            {
                "task_id": "long-outcome",
                "tool": "quick",
                "outcome": "o" * 100,
                "error_type": "RuntimeError",
                "finished_at": "2026-01-01T00:00:00.000Z",
                "trace_id": None,
                "attempt": 1,
            }
        ],
    }


def test_a_long_outcome_is_cut_short_in_its_badge(browser: Browser) -> None:
    """A failure's outcome badge took the whole width of a long outcome, and its line spilled
    over the ids beside it. It is cut short with an ellipsis (the whole outcome in its
    title), and the line keeps to its place."""
    server = start_http_server(0, store=MetricStore(), registry=CollectorRegistry())
    try:
        page, errors = open_page(browser, server.url + "/?every=0.5", viewport=DESKTOP)
        routed_status(page, long_outcome_document)
        page.reload()
        failure = page.locator('#failures li[data-task-id="long-outcome"]')
        badge = failure.locator(".outcome")
        wait_until(lambda: badge.count() == 1 and badge.text_content() == "o" * 100, "a badge")
        assert badge.get_attribute("title") == "o" * 100
        assert not failure.locator(".line").evaluate(SPILLS)
        badge_box = badge.bounding_box()
        tool_box = failure.locator(".tool").bounding_box()
        ids_box = failure.locator(".ids").bounding_box()
        assert badge_box is not None
        assert tool_box is not None
        assert ids_box is not None
        assert badge_box["x"] + badge_box["width"] <= tool_box["x"]
        assert tool_box["x"] + tool_box["width"] <= ids_box["x"]  # (side by side on a desktop)
        assert page.evaluate("document.documentElement.scrollWidth") <= DESKTOP["width"]
        assert errors == []
        page.close()
    finally:
        server.shutdown()


def shares_document(read: int) -> dict[str, Any]:
    """A status document of a multiprocess endpoint: tools failing all but a few of their tasks
    (or a few of them), a running task nearly done in a store with labels, and tasks in flight
    in other worker processes, not listed."""
    return {
        "running": [
            {
                "task_id": "nearly-done",
                "tool": "fetch",
                "labels": {"pool": "search"},
                "state": "running",
                "elapsed_seconds": 12.0,
                "progress_percent": 99.6,
                "message": "last rows",
            }
        ],
        "running_total": 1,
        "queue_depth": 1,
        "tools": [
            # Counts that stay put: the since-start share (error_rate) is shown.
            {
                "tool": "nearly-all",
                "total": 10000,
                "outcomes": {"error": 9999},
                "error_rate": 0.9999,
            },
            {"tool": "most", "total": 1000, "outcomes": {"error": 996}, "error_rate": 0.996},
            {"tool": "rare", "total": 10000, "outcomes": {"error": 1}, "error_rate": 0.0001},
            # Counts that grow by 10,000 tasks, 9,999 failed, at each read: the last minute's.
            {
                "tool": "windowed",
                "total": 10000 * read,
                "outcomes": {"success": read, "error": 9999 * read},
                "error_rate": 0.9999,
            },
            # In flight in every worker process: 3, of which the answering one runs 1.
            {"tool": "fetch", "labels": {"pool": "search"}, "total": 0, "in_flight": 2},
            {"tool": "fetch", "labels": {"pool": "batch"}, "total": 0, "in_flight": 1},
        ],
        "failures": [],
    }


def open_routed(
    browser: Browser, document: Callable[[int], dict[str, Any]]
) -> tuple[Page, list[str]]:
    """A page of an empty server whose reads of ``status`` get ``document`` (see
    :func:`routed_status`)."""
    server = start_http_server(0, store=MetricStore(), registry=CollectorRegistry())
    try:
        page, errors = open_page(browser, server.url + "/?every=0.5", viewport=DESKTOP)
        routed_status(page, document)
        page.reload()
    finally:
        server.shutdown()  # (the page was served: its reads of status are routed)
    return page, errors


def test_a_share_of_failures_or_progress_is_never_rounded_to_all_or_none(browser: Browser) -> None:
    """A failure share of 99.6% or 99.99% was shown as "100%", as if every task had failed, and
    a running task 99.6% done as "100%" beside a bar not full. As ``laios status`` shows them,
    a share that is not all is never rounded to all (">99.9%", "99.6%"), nor one that is not
    none to none ("<0.1%"), and an unfinished task is at most "99%" done."""
    page, errors = open_routed(browser, shares_document)
    tile = page.locator("#v-failed")
    wait_until(lambda: tile.text_content() not in ("–", "0%"), "a failure share")
    assert tile.text_content() == ">99.9%"

    def failed(tool: str) -> str | None:
        return page.locator(f'{tool_row(tool)} [data-field="failed"]').text_content()

    assert failed("nearly-all") == ">99.9%"
    assert failed("most") == "99.6%"
    assert failed("rare") == "<0.1%"
    assert failed("windowed") == ">99.9%"
    task = page.locator('#running li[data-task-id="nearly-done"]')
    assert task.locator(".percent").text_content() == "99%"
    assert task.locator(".bar").get_attribute("aria-valuenow") == "99"
    assert errors == []
    page.close()


def test_a_running_task_shows_the_labels_of_its_store(browser: Browser) -> None:
    """A running task's tool was shown without its store's constant labels, though the tool
    table shows them: a task of one pool could not be told from another's. It now shows them
    (``fetch {pool=search}``), as ``laios status`` does."""
    page, errors = open_routed(browser, shares_document)
    tool = page.locator('#running li[data-task-id="nearly-done"] .tool')
    wait_until(lambda: tool.count() == 1, "the running task")
    assert tool.text_content() == "fetch {pool=search}"
    assert (
        page.locator('#running li[data-task-id="nearly-done"] .bar').get_attribute("aria-label")
        == "progress of fetch {pool=search}"
    )
    assert errors == []
    page.close()


def test_the_running_tasks_of_every_worker_process_are_counted(browser: Browser) -> None:
    """In multiprocess mode the page counted the running tasks of the worker that answered
    only (its ``running_total``), and said "Nothing is running." while the other workers ran
    tasks. As ``laios status`` does, it counts those in flight and queued in every worker (the
    tools' ``in_flight`` and the queue depth), and says that the others' are not listed."""
    page, errors = open_routed(browser, shares_document)
    count = page.locator("#running-count")
    wait_until(lambda: count.text_content() != "", "the running count")
    assert count.text_content() == "(1 listed of 4)"
    assert page.locator("#v-running").text_content() == "4"
    page.close()

    # The answering worker runs nothing: the others' tasks are counted, not "nothing".
    page, more_errors = open_routed(
        browser, lambda read: {**shares_document(read), "running": [], "running_total": 0}
    )
    wait_until(lambda: page.locator("#running-count").text_content() != "", "the count")
    assert page.locator("#running-count").text_content() == "(4)"
    assert page.locator("#v-running").text_content() == "4"
    empty = page.locator("#running-empty")
    assert empty.is_visible()
    assert "other worker processes" in (empty.text_content() or "")
    assert errors + more_errors == []
    page.close()


#: Progress halfway between two whole percents (and just below a half), as tools report it.
HALVES = (0.5, 2.5, 12.5, 50.5, 98.5, 0.49999999999999994, 12.499999)


def halves_document(read: int) -> dict[str, Any]:
    """A status document whose running tasks are each at one of :data:`HALVES`."""
    running = [
        {
            "task_id": f"half-{index}",
            "tool": "fetch",
            "state": "running",
            "elapsed_seconds": 1.0,
            "progress_percent": percent,
        }
        for index, percent in enumerate(HALVES)
    ]
    return {"running": running, "running_total": len(running), "tools": [], "failures": []}


def test_the_page_and_laios_status_round_progress_alike(browser: Browser) -> None:
    """A task 12.5% done showed "13%" on the page and "12%" in ``laios status`` (which rounded
    half to even): both round a half up, and show the same whole percent."""
    from laios.cli import progress_bar

    page, errors = open_routed(browser, halves_document)
    last = page.locator(f'#running li[data-task-id="half-{len(HALVES) - 1}"] .percent')
    wait_until(lambda: (last.text_content() or "").endswith("%"), "the running tasks")
    for index, percent in enumerate(HALVES):
        shown = page.locator(f'#running li[data-task-id="half-{index}"] .percent').text_content()
        assert progress_bar(percent).split()[-1] == shown, percent
    assert errors == []
    page.close()


#: Failure shares that the page shows to a tenth of a percent (below 10% and above 90%): on
#: a half (0.25%, 1.25%, 99.75%) and between 0.05% and 0.1%.
SHARES = (1 / 400, 5 / 400, 3 / 400, 399 / 400, 1 / 1600, 1 / 1000, 1 / 10000, 9999 / 10000)


def shares_alike_document(read: int) -> dict[str, Any]:
    """A status document of one tool for each of :data:`SHARES`, whose counts stay put."""
    tools = [
        {
            "tool": f"share-{index}",
            "total": 160000,
            "outcomes": {"error": round(share * 160000)},
            "error_rate": share,
        }
        for index, share in enumerate(SHARES)
    ]
    return {"running": [], "running_total": 0, "tools": tools, "failures": []}


def test_the_page_and_laios_status_show_a_share_of_failures_alike(browser: Browser) -> None:
    """One failure in 400 tasks (0.25%) showed "0.3%" on the page and "0.2%" in ``laios
    status`` (which rounded half to even), and one in 1,600 (0.0625%) "<0.1%" on the page and
    "0.1%" in ``laios status``: where the page shows a tenth of a percent, both show the same."""
    from laios.cli import render_status

    page, errors = open_routed(browser, shares_alike_document)
    last = page.locator(f'{tool_row(f"share-{len(SHARES) - 1}")} [data-field="failed"]')
    wait_until(lambda: (last.text_content() or "").endswith("%"), "the tools")
    rows = {
        line.split()[0]: line.split()[7]
        for line in render_status(shares_alike_document(1)).splitlines()
        if line.strip().startswith("share-")
    }
    for index, share in enumerate(SHARES):
        cell = page.locator(f'{tool_row(f"share-{index}")} [data-field="failed"]')
        assert cell.text_content() == rows[f"share-{index}"], share
    assert errors == []
    page.close()
