"""LiveScreen in a real terminal: a pseudo-terminal whose controlling process runs the screen.

Each test starts a small Python program in a new session on a fresh pseudo-terminal (80x24),
so that the terminal is the program's own, as a shell would give it: Ctrl-C typed there
interrupts it, and its keys and modes are its to change. The test reads what the program drew,
types into the terminal when asked, and gets a JSON report back on a pipe.
"""

from __future__ import annotations

import io
import json
import os
import select
import signal
import sys
import textwrap
import time
from dataclasses import dataclass

import pytest
from pseudo_terminals import set_size, start_in_terminal

from laios import _terminal as terminal
from laios._terminal import LiveScreen, stream_is_terminal

ENTER = b"\x1b[?1049h"
LEAVE = b"\x1b[?7h\x1b[?25h\x1b[?1049l"

# The module is loaded from its file: it needs only the standard library, and importing the
# whole package would add most of a second to every test.
PRELUDE = f"""
import importlib.util, json, os, sys, termios, time
spec = importlib.util.spec_from_file_location("terminal", {terminal.__file__!r})
terminal = importlib.util.module_from_spec(spec)
spec.loader.exec_module(terminal)
LiveScreen = terminal.LiveScreen
os.close(os.open(os.ttyname(0), os.O_RDWR))  # the terminal becomes this session's own
report = {{"modes_before": termios.tcgetattr(0)[3]}}
"""
EPILOGUE = """
report["modes_after"] = termios.tcgetattr(0)[3]
os.write(REPORT, json.dumps(report).encode())
"""


@dataclass
class Session:
    """What a program run in the pseudo-terminal drew and reported."""

    output: bytes
    report: dict[str, object]
    returncode: int


def run_in_terminal(
    body: str,
    *,
    type_after_start: bytes = b"",
    resize_after_start: bool = False,
    hang_up_after_start: bool = False,
) -> Session:
    """Run ``body`` (with ``report`` to fill) in its own terminal; type, resize or hang up
    once the alternate screen is on."""
    read_report, write_report = os.pipe()
    code = PRELUDE + f"REPORT = {write_report}\n" + textwrap.dedent(body) + EPILOGUE
    process, master = start_in_terminal(
        [sys.executable, "-c", code], dict(os.environ), pass_fds=(write_report,)
    )
    os.close(write_report)
    output = b""
    acted = False
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: every copy of the terminal's other side is closed
                    break
                if not chunk:
                    break
                output += chunk
            if not acted and ENTER in output:
                acted = True
                time.sleep(0.2)
                if type_after_start:
                    os.write(master, type_after_start)
                if resize_after_start:
                    set_size(master, 100, 30)
                if hang_up_after_start:
                    os.close(master)
                    master = -1
                    break
            if process.poll() is not None and not ready:
                break
        returncode = process.wait(timeout=10)
        with os.fdopen(read_report, "rb") as reader:
            raw = reader.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if master != -1:
            os.close(master)
    report = json.loads(raw) if raw else {}
    assert returncode == 0, output.decode(errors="replace")
    assert report, output.decode(errors="replace")
    return Session(output, report, returncode)


def test_a_screen_is_drawn_on_the_alternate_screen_and_given_back() -> None:
    """The frame is drawn between entering and leaving the alternate screen; the terminal's
    modes are the same afterwards."""
    session = run_in_terminal(
        """
        with LiveScreen(sys.stdout, sys.stdin) as screen:
            screen.draw(["hello"])
        """
    )
    assert session.output.index(ENTER) < session.output.index(b"hello")
    assert session.output.index(b"hello") < session.output.index(LEAVE)
    assert session.report["modes_after"] == session.report["modes_before"]


def test_the_terminal_is_given_back_after_an_exception() -> None:
    """An exception inside the block leaves the alternate screen and restores the modes."""
    session = run_in_terminal(
        """
        try:
            with LiveScreen(sys.stdout, sys.stdin) as screen:
                screen.draw(["frame"])
                raise RuntimeError("drawing failed")
        except RuntimeError as exc:
            report["error"] = str(exc)
        """
    )
    assert session.report["error"] == "drawing failed"
    assert session.output.rstrip(b"\r\n").endswith(LEAVE)
    assert session.report["modes_after"] == session.report["modes_before"]


def test_ctrl_c_typed_in_the_terminal_interrupts_and_gives_it_back() -> None:
    """Ctrl-C typed while the screen waits raises KeyboardInterrupt; the terminal is restored."""
    session = run_in_terminal(
        """
        try:
            with LiveScreen(sys.stdout, sys.stdin) as screen:
                screen.wait(20)
        except KeyboardInterrupt:
            report["interrupted"] = True
        """,
        type_after_start=b"\x03",
    )
    assert session.report["interrupted"] is True
    assert session.output.rstrip(b"\r\n").endswith(LEAVE)
    assert session.report["modes_after"] == session.report["modes_before"]


def test_a_typed_key_ends_the_wait_and_is_not_echoed() -> None:
    """A key typed while the screen is open is returned by wait(), and not shown."""
    session = run_in_terminal(
        """
        with LiveScreen(sys.stdout, sys.stdin) as screen:
            report["reads_keys"] = screen.reads_keys
            started = time.monotonic()
            report["typed"] = screen.wait(20)
            report["seconds"] = time.monotonic() - started
        """,
        type_after_start=b"q",
    )
    assert session.report["reads_keys"] is True
    assert session.report["typed"] == "q"
    assert session.report["seconds"] < 10
    assert b"q" not in session.output


def test_the_sequence_a_function_or_cursor_key_sends_is_no_typed_text() -> None:
    """F2 sends ESC O Q, Ctrl-F2 ESC [ 1 ; 5 Q, an arrow ESC [ A: wait() returned them as
    typed text, so that F2 stopped `laios demo` as "q" does. Such sequences are left out of
    the keys returned; a key typed after them is kept."""
    session = run_in_terminal(
        """
        with LiveScreen(sys.stdout, sys.stdin) as screen:
            report["typed"] = screen.wait(20)
        """,
        type_after_start=b"\x1bOQ\x1b[1;5Q\x1b[Ax",
    )
    assert session.report["typed"] == "x"


def test_a_resize_ends_the_wait_early() -> None:
    """A change of the terminal's size ends wait() long before its time, with no keys."""
    session = run_in_terminal(
        """
        with LiveScreen(sys.stdout, sys.stdin) as screen:
            started = time.monotonic()
            report["typed"] = screen.wait(20)
            report["seconds"] = time.monotonic() - started
        """,
        resize_after_start=True,
    )
    assert session.report["typed"] == ""
    assert session.report["seconds"] < 10


def test_waits_after_the_terminal_hangs_up_still_last_their_time() -> None:
    """Once the terminal is gone, wait() does not spin: each wait lasts the time asked."""
    session = run_in_terminal(
        """
        import signal
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        with LiveScreen(sys.stdout, sys.stdin) as screen:
            time.sleep(1.0)  # (the terminal hangs up 0.2 s after the screen opened)
            started = time.monotonic()
            calls = 0
            while time.monotonic() - started < 0.5:
                screen.wait(0.1)
                calls += 1
            report["calls"] = calls
        try:
            report["modes_after"] = termios.tcgetattr(0)[3]
        except termios.error:
            report["modes_after"] = "gone"
        os.write(REPORT, json.dumps(report).encode())
        os._exit(0)
        """,
        hang_up_after_start=True,
    )
    assert session.report["calls"] <= 10  # (5 or 6 waits of 0.1 s; spinning makes thousands)


def test_a_wait_with_nothing_happening_lasts_its_time() -> None:
    """With nothing typed and no resize, wait() returns "" after the time asked."""
    session = run_in_terminal(
        """
        with LiveScreen(sys.stdout, sys.stdin) as screen:
            started = time.monotonic()
            report["typed"] = screen.wait(0.3)
            report["seconds"] = time.monotonic() - started
        """
    )
    assert session.report["typed"] == ""
    assert session.report["seconds"] >= 0.3


def test_keys_are_not_read_from_a_stream_that_is_not_a_terminal() -> None:
    """Without a terminal to read keys from, the screen reads none (and changes no modes)."""
    out = io.StringIO()
    with LiveScreen(out, io.StringIO()) as screen:
        assert not screen.reads_keys


def test_a_frame_is_drawn_row_by_row_without_newlines() -> None:
    """Each line is written at its own row after clearing it; nothing can scroll."""
    out = io.StringIO()
    with LiveScreen(out) as screen:
        start = len(out.getvalue())
        screen.draw(["one", "two"])
        frame = out.getvalue()[start:]
    assert frame == "\x1b[1;1H\x1b[2Kone\x1b[2;1H\x1b[2Ktwo"
    assert "\n" not in out.getvalue()


def test_a_shorter_frame_clears_the_rows_the_last_one_used() -> None:
    """Rows drawn by the previous frame and not by this one are cleared."""
    out = io.StringIO()
    with LiveScreen(out) as screen:
        screen.draw(["one", "two", "three"])
        start = len(out.getvalue())
        screen.draw(["four"])
        frame = out.getvalue()[start:]
    assert frame == "\x1b[1;1H\x1b[2Kfour\x1b[2;1H\x1b[2K\x1b[3;1H\x1b[2K"


def test_the_resize_handler_is_put_back_on_leaving() -> None:
    """The screen's SIGWINCH handler is only there while it is open."""
    before = signal.getsignal(signal.SIGWINCH)
    with LiveScreen(io.StringIO()):
        assert signal.getsignal(signal.SIGWINCH) is not before
    assert signal.getsignal(signal.SIGWINCH) is before


@pytest.mark.parametrize(("term", "expected"), [("xterm", True), ("dumb", False), ("", False)])
def test_a_terminal_can_show_a_live_screen_unless_it_is_dumb(
    monkeypatch: pytest.MonkeyPatch, term: str, expected: bool
) -> None:
    """A terminal counts, except with TERM=dumb or no TERM."""
    monkeypatch.setenv("TERM", term)
    master, slave = os.openpty()
    try:
        with open(slave, "w", closefd=False) as stream:
            assert stream_is_terminal(stream) is expected
    finally:
        os.close(master)
        os.close(slave)


def test_a_file_cannot_show_a_live_screen(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stream that is not a terminal never gets a live screen."""
    monkeypatch.setenv("TERM", "xterm")
    assert not stream_is_terminal(io.StringIO())
