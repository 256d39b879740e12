"""The ASGI adapter of the endpoint: ASGI messages in, :class:`~laios.execution._http.Endpoint`
answers out.

Rendering ``/metrics`` or ``/status`` is CPU work (about 5 to 20 ms for 200 tools), too long
to hold an event loop: under asyncio each request is answered in the loop's default executor
(a thread), so other requests go on meanwhile. Under another event loop (trio), the answer is
computed in place. ``/healthz`` is always answered in place: it renders nothing and checks no
credentials, and a liveness probe must not wait for a thread of an executor the service's own
blocking work (``asyncio.to_thread``) may be holding.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from laios.execution._http import Endpoint, Request, Response, joined_headers

__all__ = ["ASGIApplication", "asgi_app"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
#: Routes answered on the event loop itself: nothing to render, no credentials to check.
_IN_PLACE = ("/healthz",)
#: An ASGI 3 application.
ASGIApplication = Callable[[Scope, Receive, Send], Awaitable[None]]


def _route_path(scope: Scope) -> str:
    """The path below the mount point: ``path`` without ``root_path`` when it starts with it.

    Servers and routers differ: some leave the mount prefix in ``path`` and name it in
    ``root_path`` (the ASGI spec, Starlette since 0.33, uvicorn ``--root-path``), older ones
    strip it from ``path``. Both give ``/metrics`` here.
    """
    path: str = scope.get("path") or "/"
    root: str = scope.get("root_path") or ""
    if root and path.startswith(root) and (len(path) == len(root) or path[len(root)] == "/"):
        return path[len(root) :] or "/"
    return path


def _request(scope: Scope) -> Request:
    pairs = (
        (bytes(name).decode("latin-1"), bytes(value).decode("latin-1"))
        for name, value in scope.get("headers") or ()
    )
    return Request(
        method=str(scope.get("method", "GET")),
        path=_route_path(scope),
        query=bytes(scope.get("query_string") or b"").decode("latin-1"),
        headers=joined_headers(pairs),
    )


async def _answer(endpoint: Endpoint, request: Request) -> Response:
    if request.path in _IN_PLACE:
        return endpoint.handle(request)
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # not asyncio: answer in place
        return endpoint.handle(request)
    return await loop.run_in_executor(None, endpoint.handle, request)


async def _lifespan(receive: Receive, send: Send) -> None:
    # Nothing to start or stop; answering lets the app be a server's root app.
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def asgi_app(endpoint: Endpoint) -> ASGIApplication:
    """The ASGI 3 application serving ``endpoint``."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope.get("type")
        if kind == "lifespan":
            await _lifespan(receive, send)
            return
        if kind == "websocket":
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": 1003})  # refused: not served here
            return
        if kind != "http":
            raise ValueError(f"laios' metrics app serves HTTP, not {kind!r} connections")
        response = await _answer(endpoint, _request(scope))
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": [
                    (name.lower().encode("latin-1"), value.encode("latin-1"))
                    for name, value in response.headers
                ],
            }
        )
        await send({"type": "http.response.body", "body": response.body})

    return app
