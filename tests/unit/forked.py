"""Running a piece of a test in a forked child, with a bound on how long the child may take."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import time
import warnings
from collections.abc import Callable
from typing import Any

import pytest

#: Longest a forked child may take before the test gives up on it (a child that hangs on
#: broken code is killed, and the test fails).
CHILD_SECONDS = 20.0
#: The lowest descriptor number of the pipe the child answers on.
_HIGH_FD = 200


def in_child(work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Fork; run ``work`` in the child and return what it returned (as JSON).

    An exception in the child comes back as ``{"crashed": repr(exc)}``.
    """
    # On high descriptors: a file object left by an earlier test whose descriptor was closed
    # under it (so the pipe could reuse its number) would close the pipe when garbage is
    # collected, here or in the child (the fork handlers allocate).
    low = os.pipe()
    read_end, write_end = (fcntl.fcntl(fd, fcntl.F_DUPFD, _HIGH_FD) for fd in low)
    for fd in low:
        os.close(fd)
    with warnings.catch_warnings():  # (3.12+ warns about forking a threaded process)
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 0
        try:
            os.close(read_end)
            os.write(write_end, json.dumps(work()).encode())
        except BaseException as exc:
            os.write(write_end, json.dumps({"crashed": repr(exc)}).encode())
            code = 1
        finally:
            os._exit(code)
    os.close(write_end)
    deadline = time.monotonic() + CHILD_SECONDS
    while not os.waitpid(pid, os.WNOHANG)[0]:
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(read_end)
            pytest.fail(f"the forked child hung for more than {CHILD_SECONDS:g}s")
        time.sleep(0.02)
    with os.fdopen(read_end, "rb") as pipe:
        result: dict[str, Any] = json.loads(pipe.read())
    return result
