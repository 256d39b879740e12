"""`laios demo` hung up in a real terminal: by `kill -HUP`, and by its terminal closing.

The demo runs as the session leader of a pseudo-terminal of its own (its controlling terminal,
so closing the terminal's other side sends it SIGHUP, as closing a terminal window does).
"""

from __future__ import annotations

import os
import select
import signal
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from pseudo_terminals import start_in_terminal

pytestmark = pytest.mark.integration

SRC = Path(__file__).resolve().parents[2] / "src"
#: Takes the terminal on stdin as its controlling terminal, then becomes `laios demo`.
LAUNCH = (
    "import fcntl, os, sys, termios\n"
    "fcntl.ioctl(0, termios.TIOCSCTTY, 0)\n"
    "os.execv(sys.executable, [sys.executable, '-m', 'laios.cli', 'demo', '--port', '0'])\n"
)
#: What the live view's title starts with, once the demo runs.
HEADLINE = b"laios demo \xe2\x80\x94 "


def _read_until(master: int, wanted: bytes, seconds: float) -> bytes:
    output = b""
    deadline = time.monotonic() + seconds
    while wanted not in output and time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the demo has closed the terminal
                break
            if not chunk:
                break
            output += chunk
    return output


@pytest.mark.parametrize(("how", "code"), [("kill -HUP", 0), ("terminal closed", 1)])
def test_a_hang_up_stops_the_demo(how: str, code: int) -> None:
    """A SIGHUP sent to the demo stops it with its summary, exit code 0; its terminal
    closing sends the same SIGHUP, but the summary can no longer be written: exit code 1."""
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    process, master = start_in_terminal([sys.executable, "-c", LAUNCH], env)
    try:
        output = _read_until(master, HEADLINE, 60)
        assert HEADLINE in output, output.decode(errors="replace")
        if how == "kill -HUP":
            process.send_signal(signal.SIGHUP)
            output += _read_until(master, b"laios demo: done.", 60)
            assert b"laios demo: done." in output, output.decode(errors="replace")
        else:
            os.close(master)
            master = -1
        assert process.wait(timeout=60) == code
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if master != -1:
            os.close(master)
