"""How long a scrape of the ASGI app holds the event loop: rendering in a thread vs in place.

Usage::

    python tests/benchmarks/asgi_loop.py [--tools 200] [--scrapes 30]

A store with ``--tools`` tools is scraped ``--scrapes`` times through ``make_asgi_app`` on one
event loop, while a timer on the same loop asks to wake every millisecond; the table shows how
late it woke (median, p95, max). "thread" is the app as shipped (the render runs in the loop's
default executor); "in place" is the same handler called on the loop, the baseline. Both run
in this process, one after the other. The render time itself is printed first.

Not a pytest module (its name does not match ``test_*.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from types import SimpleNamespace
from typing import Any

from prometheus_client import CollectorRegistry

from laios.execution._asgi import asgi_app
from laios.execution._auth import Authenticator
from laios.execution._http import Endpoint, Request
from laios.execution.prometheus import ensure_collector, render_for_accept
from laios.execution.server import status_document
from laios.execution.store import MetricStore

SCOPE: dict[str, Any] = {
    "type": "http",
    "method": "GET",
    "path": "/metrics",
    "root_path": "",
    "query_string": b"",
    "headers": [],
}


def filled_store(tools: int) -> tuple[MetricStore, CollectorRegistry]:
    store, registry = MetricStore(), CollectorRegistry()
    ensure_collector(store, registry)
    for number in range(tools):
        slot = store.tool_slot(f"tool_{number}", True)
        for index in range(20):
            task = SimpleNamespace(id=f"{number}-{index}")
            record = store.task_submitted(None, task, f"tool_{number}", slot, running=True)
            store.task_finished(record, status=None, outcome="success")
    return store, registry


async def scrape(app: Any) -> None:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        return None

    await app(dict(SCOPE), receive, send)


async def lateness(app: Any, scrapes: int) -> list[float]:
    """Seconds a 1 ms timer woke late while ``app`` was scraped ``scrapes`` times."""
    late: list[float] = []
    done = False

    async def ticker() -> None:
        while not done:
            started = time.perf_counter()
            await asyncio.sleep(0.001)
            late.append(time.perf_counter() - started - 0.001)

    task = asyncio.ensure_future(ticker())
    await asyncio.sleep(0.01)
    for _ in range(scrapes):
        await scrape(app)
        await asyncio.sleep(0)
    done = True
    await task
    return sorted(late)


def in_place(endpoint: Endpoint) -> Any:
    """The baseline: the same endpoint answered on the loop itself."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        response = endpoint.handle(Request(method=scope["method"], path=scope["path"]))
        await send({"type": "http.response.start", "status": response.status, "headers": []})
        await send({"type": "http.response.body", "body": response.body})

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tools", type=int, default=200)
    parser.add_argument("--scrapes", type=int, default=30)
    args = parser.parse_args()
    store, registry = filled_store(args.tools)
    renders = []
    for _ in range(args.scrapes):
        started = time.perf_counter()
        render_for_accept("", registry)
        renders.append(time.perf_counter() - started)
    print(
        f"render_for_accept, {args.tools} tools: median {statistics.median(renders) * 1e3:.2f} ms,"
        f" max {max(renders) * 1e3:.2f} ms"
    )
    endpoint = Endpoint(registry, lambda: status_document(store.snapshot()), Authenticator({}, ()))
    print(f"a 1 ms timer on the loop during {args.scrapes} scrapes woke late by:")
    for name, app in (("thread", asgi_app(endpoint)), ("in place", in_place(endpoint))):
        late = asyncio.run(lateness(app, args.scrapes))
        print(
            f"  {name:<9} median {statistics.median(late) * 1e3:6.2f} ms"
            f"   p95 {late[int(len(late) * 0.95)] * 1e3:6.2f} ms   max {late[-1] * 1e3:6.2f} ms"
        )


if __name__ == "__main__":
    main()
