"""A bare TCP server, for tests of clients against endpoints that answer what no HTTP server
would (a body a byte at a time, a 400 before a TLS handshake, nothing at all)."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def serving(handle: Callable[[socket.socket], None]) -> Iterator[int]:
    """Serve on a free loopback port until the block ends; yield the port.

    A thread accepts one connection at a time and calls ``handle`` with it (its reads and
    writes time out after 5 s); an ``OSError`` in ``handle`` (the client gave up) ends that
    connection only. The connection is closed when ``handle`` returns.
    """
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                with contextlib.suppress(OSError):  # the client gave up
                    handle(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        done.set()
        thread.join(10)
        listener.close()
