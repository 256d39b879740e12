"""`laios demo` whose start is cut short after its endpoint is up (the banner cannot be
written: `laios demo | true`, a full disk; or Ctrl-C) still stops its endpoint and its
executor, and ends as the command line says (exit 1 or 130, no traceback)."""

from __future__ import annotations

import argparse
import errno
import io
import socket
import sys
from typing import Any

import pytest

from laios import _demo
from laios.execution import server as server_module


class _FailingOutput(io.StringIO):
    """A stdout whose writes fail with ``problem``, as a pipe whose reader is gone does."""

    def __init__(self, problem: BaseException) -> None:
        super().__init__()
        self._problem = problem

    def write(self, text: str) -> int:
        raise self._problem

    def flush(self) -> None:
        raise self._problem


@pytest.mark.parametrize(
    "problem",
    [
        BrokenPipeError(errno.EPIPE, "Broken pipe"),
        OSError(errno.ENOSPC, "No space"),
        KeyboardInterrupt(),
    ],
    ids=["reader-gone", "disk-full", "ctrl-c"],
)
def test_a_banner_that_cannot_be_written_still_stops_the_endpoint_and_the_executor(
    problem: BaseException, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The endpoint no longer answers and the executor (with its runner) is shut down once
    the banner's failure reaches the command line."""
    servers: list[Any] = []
    real_start = server_module.start_http_server

    def start(*args: Any, **kwargs: Any) -> Any:
        servers.append(real_start(*args, **kwargs))
        return servers[-1]

    shut_down: list[bool] = []

    class Executor(_demo.Executor):
        def shutdown(self, *args: Any, **kwargs: Any) -> None:
            shut_down.append(True)
            super().shutdown(*args, **kwargs)

    monkeypatch.setattr(server_module, "start_http_server", start)
    monkeypatch.setattr(_demo, "Executor", Executor)
    monkeypatch.setattr(_demo, "_configure_tracing", lambda *args: (None, "off"))
    monkeypatch.setattr(sys, "stdout", _FailingOutput(problem))
    args = argparse.Namespace(
        duration=30.0,
        host="127.0.0.1",
        port=0,
        no_live=True,
        console_spans=False,
        otlp_endpoint=None,
        runner="thread",
    )
    with pytest.raises(type(problem)):
        _demo.run(args)
    assert shut_down, "the executor was left running"
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", servers[0].port), timeout=5).close()
