"""Mounting laios' ``/metrics`` and ``/status`` routes in a WSGI server.

Runs a few tasks, then serves ``laios.execution.server.make_wsgi_app`` with the standard
library's ``wsgiref`` on 127.0.0.1 and a free port (port 0), fetches ``/metrics``,
``/status`` and ``/healthz`` once with ``urllib``, prints the interesting parts, and shuts the
server down. The same app mounts in any WSGI server (gunicorn, uWSGI, a framework's WSGI
dispatcher). To serve ``/metrics`` from a route of your own instead, the last part shows
``laios.execution.prometheus.render_for_accept``: the very body and content type the app serves.

Run it with::

    python examples/serve_metrics_wsgi.py
"""

from __future__ import annotations

import json
import threading
import urllib.request
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry

from laios import Context, Task
from laios.execution.executor import Executor
from laios.execution.prometheus import render_for_accept
from laios.execution.server import make_wsgi_app
from laios.execution.store import MetricStore
from laios.tools.base import create_simple_tool
from laios.tools.registry import ToolRegistry


class QuietHandler(WSGIRequestHandler):
    """No access-log line on stderr for every request."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


def fetch(url: str, accept: str | None = None) -> tuple[str, str]:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.headers.get("Content-Type", ""), response.read().decode("utf-8")


def divide(a: float, b: float) -> float:
    return a / b


def main() -> None:
    store = MetricStore()
    prometheus_registry = CollectorRegistry()
    tools = ToolRegistry()
    tools.register_tool(create_simple_tool("divide", "Divides a by b.", divide))
    context = Context(session_id="wsgi-demo", user_id="ops")
    with Executor(tools, store=store, prometheus_registry=prometheus_registry) as executor:
        for a, b in [(1, 2), (3, 4), (5, 0), (8, 2)]:
            task = Task(
                plan_id="p", description="divide", tool_name="divide", parameters={"a": a, "b": b}
            )
            executor.execute_task(task, context)

    app = make_wsgi_app(store=store, registry=prometheus_registry)
    server = make_server("127.0.0.1", 0, app, handler_class=QuietHandler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        content_type, text = fetch(f"{base}/metrics")
        print(f"GET /metrics -> {content_type}")
        for line in text.splitlines():
            if line.startswith("laios_tasks_total{") and not line.endswith(" 0.0"):
                print("  " + line)
            if line.startswith("laios_task_errors_total{"):
                print("  " + line)
        content_type, text = fetch(f"{base}/metrics", accept="application/openmetrics-text")
        kind = content_type.split(";")[0]
        print(f"GET /metrics (OpenMetrics) -> {kind}, ends with {text.split()[-1]!r}")

        content_type, text = fetch(f"{base}/status")
        status = json.loads(text)
        tool = status["tools"][0]
        print(f"GET /status -> {content_type}")
        print(f"  tool={tool['tool']} total={tool['total']} outcomes={tool['outcomes']}")
        print(f"  error_rate={tool['error_rate']} errors={tool['errors']}")
        print(f"  running={status['running_total']} workers={status['workers']}")

        _, text = fetch(f"{base}/healthz")
        print(f"GET /healthz -> {text.strip()!r}")

        # A route of your own (Flask, Django, FastAPI, ...) answers the same with one call.
        body, content_type = render_for_accept("application/openmetrics-text", prometheus_registry)
        served_type, served = fetch(f"{base}/metrics", accept="application/openmetrics-text")
        same = body.decode("utf-8") == served and content_type == served_type
        print(f"render_for_accept(...) -> {len(body):,} bytes, same as GET /metrics: {same}")
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    print("server stopped")


if __name__ == "__main__":
    main()
