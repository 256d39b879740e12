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


@pytest.mark.parametrize(
    ("host", "problem"),
    [
        # A link-local IPv6 address without its scope (fe80::1%eth0): the system says EINVAL.
        ("fe80::1", OSError(errno.EINVAL, "cannot listen on [fe80::1]:8489: Invalid argument")),
        # IPv6 on a machine (a container) that has none.
        (
            "::1",
            OSError(
                errno.EAFNOSUPPORT,
                "cannot listen on [::1]:8489: Address family not supported by protocol",
            ),
        ),
    ],
    ids=["link-local-without-scope", "no-ipv6"],
)
def test_a_host_that_cannot_be_served_on_says_to_pick_another_host(
    host: str, problem: OSError, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An address the system refuses to serve on whatever the port: exit 2, and the advice is
    about --host (another port would fail the same way)."""

    def start(*args: Any, **kwargs: Any) -> Any:
        raise problem

    monkeypatch.setattr(server_module, "start_http_server", start)
    monkeypatch.setattr(_demo, "_configure_tracing", lambda *args: (None, "off"))
    args = argparse.Namespace(
        duration=1.0, host=host, port=8489, no_live=True, console_spans=False, runner="thread"
    )
    assert _demo.run(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"laios demo: {problem.strerror}; pick another address with --host")
    assert err.count("\n") == 1  # one line
    assert "--host" in err
    assert "--port" not in err


@pytest.mark.parametrize("kind", ["file", "missing", "empty"])
def test_a_multiprocess_directory_it_cannot_use_is_one_line_and_exit_2(
    kind: str,
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``LAIOS_MULTIPROC_DIR`` naming a file or no directory at all: the endpoint cannot start
    in multiprocess mode, and the demo says so on one line (naming the variable) with exit
    code 2, no traceback, its executor shut down. Set but empty, it is refused alike (not
    taken for unset), saying that it is empty."""
    path = tmp_path / "not-a-directory"
    if kind == "file":
        path.write_text("")
    monkeypatch.setenv("LAIOS_MULTIPROC_DIR", "" if kind == "empty" else str(path))
    shut_down: list[bool] = []

    class Executor(_demo.Executor):
        def shutdown(self, *args: Any, **kwargs: Any) -> None:
            shut_down.append(True)
            super().shutdown(*args, **kwargs)

    monkeypatch.setattr(_demo, "Executor", Executor)
    monkeypatch.setattr(_demo, "_configure_tracing", lambda *args: (None, "off"))
    args = argparse.Namespace(
        duration=1.0, host="127.0.0.1", port=0, no_live=True, console_spans=False, runner="thread"
    )
    assert _demo.run(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("laios demo: LAIOS_MULTIPROC_DIR")
    assert ("is set but empty" if kind == "empty" else str(path)) in err
    assert shut_down, "the executor was left running"
