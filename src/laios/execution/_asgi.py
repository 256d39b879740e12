"""The ASGI adapter of the endpoint: ASGI messages in, :class:`~laios.execution._http.Endpoint`
answers out.

Rendering ``/metrics`` or ``/status`` is CPU work (about 5 to 20 ms for 200 tools), too long
to hold an event loop: under asyncio each request is answered in a thread of the app's own
(:class:`_RenderPool`, at most :data:`RENDER_THREADS`), so other requests go on meanwhile.
Not the loop's default executor: the service's own blocking work (``asyncio.to_thread``)
shares that one, and a flood of scrapes would starve it, or it would delay every scrape. With
:data:`MAX_PENDING_RENDERS` requests being answered or waiting, one more is answered ``503``
with ``Retry-After: 1`` at once, as the built-in server answers when busy. Under another event
loop (trio), or when no thread can be started (a container's pids limit), the answer is
computed in place. ``/healthz`` is always answered in place: it renders nothing and checks no
credentials, so a liveness probe waits for no thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import logging
import queue
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import unquote

from laios.execution._forks import reset_after_fork
from laios.execution._http import ABSOLUTE_FORM, Endpoint, Request, Response, joined_headers
from laios.execution._shared_totals import what_to_do
from laios.execution.multiprocess import current as multiprocess_export

__all__ = ["MAX_PENDING_RENDERS", "RENDER_THREADS", "ASGIApplication", "asgi_app"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
#: Routes answered on the event loop itself: nothing to render, no credentials to check.
_IN_PLACE = ("/healthz",)
#: An ASGI 3 application.
ASGIApplication = Callable[[Scope, Receive, Send], Awaitable[None]]
#: Threads rendering one app's answers at most; each is started when a render waits for one.
RENDER_THREADS = 4
#: Most requests one app answers at once, being rendered or waiting for a thread; one more is
#: answered ``503`` with ``Retry-After: 1`` at once.
MAX_PENDING_RENDERS = 16
#: Seconds a render thread waits for work before it ends (a scrape every 15 s keeps one).
_IDLE_SECONDS = 60.0
_thread_numbers = itertools.count(1)
_log = logging.getLogger("laios.execution.server")


class _RenderPool:
    """A few daemon threads of one app rendering its answers, with a bound on renders running
    or waiting.

    Threads are started as renders wait for one, up to ``threads``, and end after
    :data:`_IDLE_SECONDS` without work. They are daemon threads: a render stuck in a collector
    (a hung network file system) does not hold the interpreter's exit, as a
    :class:`~concurrent.futures.ThreadPoolExecutor`'s threads, joined at exit, would. A forked
    child starts with no thread and nothing waiting (see :meth:`after_fork_in_child`).
    """

    def __init__(self, threads: int, limit: int) -> None:
        self._size = threads
        self._limit = limit
        self.after_fork_in_child()
        reset_after_fork(self)

    def after_fork_in_child(self) -> None:
        """Start empty: no thread, nothing waiting, a new lock (also how it starts; in a
        forked child, where the parent's threads do not exist, through
        :func:`~laios.execution._forks.reset_after_fork`)."""
        self._lock = threading.Lock()
        self._jobs: queue.SimpleQueue[
            tuple[concurrent.futures.Future[Response], Callable[[Request], Response], Request]
        ] = queue.SimpleQueue()
        self._threads = 0  # started and not ended
        self._pending = 0  # queued or running

    def submit(
        self, render: Callable[[Request], Response], request: Request
    ) -> concurrent.futures.Future[Response] | None:
        """``render(request)`` in one of the threads; ``None`` (nothing done) when ``limit``
        renders are already running or waiting.

        Raises:
            RuntimeError: When a thread was needed and none could be started (a container's
                pids limit); nothing is left queued or counted.
        """
        future: concurrent.futures.Future[Response] = concurrent.futures.Future()
        job = (future, render, request)
        with self._lock:
            if self._pending >= self._limit:
                return None
            self._pending += 1
            start = self._threads < min(self._size, self._pending)
            if start:
                self._threads += 1
            else:
                self._jobs.put(job)
        if start:
            try:
                threading.Thread(
                    target=self._work,
                    name=f"laios-asgi-render-{next(_thread_numbers)}",
                    daemon=True,
                ).start()
            except BaseException:
                with self._lock:
                    self._threads -= 1
                    self._pending -= 1
                raise
            self._jobs.put(job)  # (the new thread waits a minute for work: it takes this)
        return future

    def _work(self) -> None:
        while True:
            try:
                job = self._jobs.get(timeout=_IDLE_SECONDS)
            except queue.Empty:
                with self._lock:  # (a job is queued under the lock: none is left behind)
                    if self._jobs.empty():
                        self._threads -= 1
                        return
                continue
            self._run(*job)
            del job  # hold neither the endpoint nor the answer while idle

    def _run(
        self,
        future: concurrent.futures.Future[Response],
        render: Callable[[Request], Response],
        request: Request,
    ) -> None:
        if not future.set_running_or_notify_cancel():  # its request went away
            self._done()
            return
        try:
            response = render(request)
        except BaseException as exc:  # (the endpoint answers 500 to an Exception)
            self._done()
            future.set_exception(exc)
        else:
            self._done()  # before the answer: the next request finds the slot free
            future.set_result(response)

    def _done(self) -> None:
        with self._lock:
            self._pending -= 1


def _target_after_root(text: str, scope: Scope) -> str | None:
    """The request target that is no path and follows the mount point in ``text``, as
    uvicorn ``--root-path`` joins them: an absolute-form target (``http://host/metrics``
    in ``/laioshttp://host/metrics``) or ``*`` (in ``/laios*``); ``None`` when ``text``
    holds none.

    Only after a ``root_path`` that does not end with a slash: after ``/laios/``,
    ``/laios/http://host/metrics`` is also what a router passes for that path as sent, which
    names no route (a route is served at its path as written only).
    """
    root: str = scope.get("root_path") or ""
    if not root or root.endswith("/") or not text.startswith(root):
        return None
    rest = text[len(root) :]
    return rest if rest == "*" or ABSOLUTE_FORM.match(rest) else None


def _root_ends(root: str) -> list[str]:
    """The ends of ``root`` that start at a slash, longest first, ``root`` itself left out
    (``/v1/laios`` and ``/laios`` of ``/api/v1/laios``)."""
    bare = root.rstrip("/")
    ends: list[str] = []
    at = bare.find("/", 1)
    while at > 0:
        ends.append(bare[at:])
        at = bare.find("/", at + 1)
    return ends


def _is_whole_path(path: str, scope: Scope) -> bool:
    """Whether ``path`` is the whole path as the request carried it (``raw_path`` decoded),
    not one a router took the mount point off."""
    raw_path = scope.get("raw_path")
    return raw_path is not None and unquote(bytes(raw_path).decode("latin-1")) == path


def _route_path(scope: Scope) -> str:
    """The path below the mount point: ``path`` without ``root_path`` when it starts with it.

    Servers and routers differ: some leave the mount prefix in ``path`` and name it in
    ``root_path`` (the ASGI spec, Starlette since 0.33, uvicorn ``--root-path``), older ones
    strip it from ``path``. Both give ``/metrics`` here. A ``root_path`` written with a
    trailing slash (``/laios/``) is its slash-less form (``/laios``), whether ``path`` is
    ``/laios/metrics`` or, as uvicorn joins them, ``/laios//metrics``. A target that is no
    path after a prefix without a trailing slash (uvicorn's ``/laioshttp://host/metrics`` and
    ``/laios*``) is that target.

    ``FastAPI(root_path="/api")`` names ``/api`` in ``root_path`` without adding it to
    ``path`` (which holds the path as the proxy passed it, ``/api`` taken off): mounted at
    ``/laios`` there, this app gets ``root_path="/api/laios"`` and ``path="/laios/metrics"``.
    When ``path`` does not start with ``root_path`` and is the whole path as received (a
    router that strips the mount point passes less), the mount point is the longest end of
    ``root_path`` that ``path`` starts with (``/laios``), taken off once, when a path follows
    it: a server that leaves its root path out of ``path`` (Hypercorn) passes ``/metrics``
    for the route below ``root_path="/ops/metrics"``, not the end of it.
    """
    path: str = scope.get("path") or "/"
    target = _target_after_root(path, scope)
    if target is not None:
        return target
    root: str = scope.get("root_path") or ""
    for prefix in dict.fromkeys((root, root.rstrip("/"))):
        if prefix and path.startswith(prefix):
            rest = path[len(prefix) :]
            if not rest or rest.startswith("/"):
                return rest or "/"
    ends = _root_ends(root)
    if ends and _is_whole_path(path, scope):
        for end in ends:
            if path.startswith(f"{end}/"):
                return path[len(end) :]
    return path


def _request(scope: Scope) -> Request:
    pairs = (
        (bytes(name).decode("latin-1"), bytes(value).decode("latin-1"))
        for name, value in scope.get("headers") or ()
    )
    raw_path = scope.get("raw_path")  # (optional in ASGI; not percent-decoded)
    query = bytes(scope.get("query_string") or b"").decode("latin-1")
    target = None
    if raw_path is not None:
        raw = bytes(raw_path).decode("latin-1")
        # (a URL or * is the target alone, without the mount point before it)
        raw = _target_after_root(raw, scope) or raw
        target = raw + (f"?{query}" if query else "")
    return Request(
        method=str(scope.get("method", "GET")),
        path=_route_path(scope),
        query=query,
        headers=joined_headers(pairs),
        target=target,
    )


async def _answer(endpoint: Endpoint, pool: _RenderPool, request: Request) -> Response:
    if request.path in _IN_PLACE:
        return endpoint.handle(request)
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # not asyncio: answer in place
        return endpoint.handle(request)
    try:
        rendered = pool.submit(endpoint.handle, request)
    except RuntimeError:  # no thread to be had (a container's pids limit): answer in place
        return endpoint.handle(request)
    if rendered is None:
        return endpoint.busy(request, MAX_PENDING_RENDERS)
    return await asyncio.wrap_future(rendered)


def _write_multiprocess_totals() -> None:
    """Write this process's totals to its multiprocess file, when the mode is on.

    A uvicorn worker, stopped by ``SIGTERM``, shuts down (this lifespan ``shutdown``), then
    raises the signal again and ends by it, running no exit handler: without this write, what
    it counted since its last one (within ``interval``) would be lost from the sum. The mode
    stays on: a server that starts the app again (a test client used twice) keeps summing,
    and a process that does exit still writes at exit.
    """
    export = multiprocess_export()
    if export is None:
        return
    try:
        export.write()
    except OSError as exc:
        _log.warning(
            "writing this process's metrics to %s at the lifespan shutdown failed: %r; what it "
            "counted since its last write is lost from the other processes' sum if it ends "
            "without running exit handlers (as a uvicorn worker does); %s",
            export.directory,
            exc,
            what_to_do(exc),
        )


async def _lifespan(receive: Receive, send: Send) -> None:
    # Nothing to start; answering lets the app be a server's root app.
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            _write_multiprocess_totals()
            await send({"type": "lifespan.shutdown.complete"})
            return


def asgi_app(endpoint: Endpoint) -> ASGIApplication:
    """The ASGI 3 application serving ``endpoint``, rendering in threads of its own."""
    pool = _RenderPool(RENDER_THREADS, MAX_PENDING_RENDERS)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope.get("type")
        if kind == "lifespan":
            await _lifespan(receive, send)
            return
        if kind == "websocket":
            # Refused (not served here) when the handshake arrives; a client already gone
            # (websocket.disconnect) may be sent nothing more.
            if (await receive()).get("type") == "websocket.connect":
                await send({"type": "websocket.close", "code": 1003})
            return
        if kind != "http":
            raise ValueError(f"laios' metrics app serves HTTP, not {kind!r} connections")
        response = await _answer(endpoint, pool, _request(scope))
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
