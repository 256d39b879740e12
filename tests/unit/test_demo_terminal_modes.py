"""What `laios demo` shows in the terminal it is given: a live view, or plain lines.

A live view needs a terminal on stdout and nothing else printing to it: output to a file or
pipe, ``--no-live``, or console spans printed to the same terminal all get plain progress lines
instead (with no escape sequences), and the banner says which one and why.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import re
import shutil
import signal
import socket
import sys
import time
from collections.abc import Iterator
from typing import TextIO

import pytest

from laios import _demo
from laios.core.types import Context
from laios.execution.executor import Executor


def _args(**options: object) -> argparse.Namespace:
    return argparse.Namespace(**{"no_live": False, "console_spans": False, **options})


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> Iterator[TextIO]:
    """A real pseudo-terminal, opened as a text stream; TERM names a capable terminal."""
    monkeypatch.setenv("TERM", "xterm")
    master, slave = os.openpty()
    stream = open(slave, "w", encoding="utf-8")  # noqa: SIM115 (closed below)
    try:
        yield stream
    finally:
        stream.close()
        os.close(master)


def test_a_terminal_gets_the_live_view(monkeypatch: pytest.MonkeyPatch, terminal: TextIO) -> None:
    """With stdout and stderr on a terminal, the demo draws the live view."""
    monkeypatch.setattr(sys, "stdout", terminal)
    monkeypatch.setattr(sys, "stderr", terminal)
    live, said = _demo._terminal_mode(_args())
    assert live
    assert "live view" in said


def test_output_that_is_not_a_terminal_gets_progress_lines(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Output to a file or a pipe gets progress lines, and the banner says why."""
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    live, said = _demo._terminal_mode(_args())
    assert not live
    assert said == "a progress line every 10 s (the output is not a terminal)"


@pytest.mark.parametrize(
    ("term", "why"), [("dumb", "TERM is dumb"), (None, "TERM is not set")], ids=["dumb", "unset"]
)
def test_a_terminal_without_a_usable_term_gets_progress_lines_and_is_told_why(
    monkeypatch: pytest.MonkeyPatch, terminal: TextIO, term: str | None, why: str
) -> None:
    """A terminal whose TERM is dumb (an editor's shell, a CI console) or unset gets progress
    lines; the banner says it is for TERM, not that the output is not a terminal."""
    if term is None:
        monkeypatch.delenv("TERM")
    else:
        monkeypatch.setenv("TERM", term)
    monkeypatch.setattr(sys, "stdout", terminal)
    live, said = _demo._terminal_mode(_args())
    assert not live
    assert said == f"a progress line every 10 s ({why})"


def test_no_live_gets_progress_lines(monkeypatch: pytest.MonkeyPatch, terminal: TextIO) -> None:
    """--no-live turns the live view off on a terminal too."""
    monkeypatch.setattr(sys, "stdout", terminal)
    live, said = _demo._terminal_mode(_args(no_live=True))
    assert not live
    assert "--no-live" in said


def test_console_spans_on_the_same_terminal_turn_the_live_view_off(
    monkeypatch: pytest.MonkeyPatch, terminal: TextIO
) -> None:
    """Spans printed to the terminal would be wiped by the next frame: no live view then."""
    monkeypatch.setattr(sys, "stdout", terminal)
    monkeypatch.setattr(sys, "stderr", terminal)
    live, said = _demo._terminal_mode(_args(console_spans=True))
    assert not live
    assert "spans print to this terminal" in said
    assert "2>" in said


def test_console_spans_sent_to_a_file_keep_the_live_view(
    monkeypatch: pytest.MonkeyPatch, terminal: TextIO
) -> None:
    """With stderr redirected away from the terminal, spans and the live view both work."""
    monkeypatch.setattr(sys, "stdout", terminal)
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    live, _ = _demo._terminal_mode(_args(console_spans=True))
    assert live


def test_the_banner_says_what_the_terminal_shows() -> None:
    """The banner lists the addresses (the live page first), then a Terminal line with the
    chosen mode."""
    args = _args(host="127.0.0.1", duration=None, runner="thread")
    url = "http://127.0.0.1:8489"
    lines = _demo._banner(args, url, 8489, "printed to stderr", "PLAIN, SAID WHY", None)
    assert lines[1:5] == [
        f"  Live page:  {url}/ (open it in a browser)",
        f"  Metrics:    {url}/metrics",
        f"  Status:     {url}/status",
        f"  Watch:      laios status --url {url} --watch",
    ]
    assert "  Terminal:   PLAIN, SAID WHY" in lines
    assert "  Spans:      printed to stderr" in lines
    assert lines[-1] == "  Press Ctrl-C to stop."


def test_the_live_view_keeps_the_dask_dashboard_on_top_with_the_addresses() -> None:
    """The view's top lines name every address of the banner (metrics and status on one
    line); with --runner dask, they add the Dask dashboard."""
    url = "http://127.0.0.1:8489"
    top = _demo._view_addresses(url, None)
    assert [label for label, _ in top] == ["Live page", "Metrics", "Watch"]
    shown = " ".join(text for _, text in top)
    for _label, text in _demo._addresses(url):
        assert text.split(" (")[0].removeprefix(url) in shown
    with_dask = _demo._view_addresses(url, "http://127.0.0.1:8787/status")
    assert with_dask == [*top, ("Dask", "http://127.0.0.1:8787/status")]


def test_progress_lines_are_plain_and_periodic(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without a live view, a one-line summary is printed every period until the end."""
    monkeypatch.setattr(_demo, "_PLAIN_EVERY", 0.2)
    with Executor(_demo.build_registry(), max_workers=2) as executor:
        clock = _demo._Clock(executor, duration=0.7)
        executor.execute_task(_demo._task("compute_hash"), Context(session_id="s", user_id="u"))
        _demo._show_plain(clock)
    lines = capsys.readouterr().out.splitlines()
    assert 2 <= len(lines) <= 4
    for line in lines:
        assert line.startswith("laios demo: ")
        assert line.endswith(" running")
        assert "\x1b" not in line


@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGHUP])
def test_a_stop_signal_stops_the_demo_the_way_ctrl_c_does(number: signal.Signals) -> None:
    """While the demo runs, SIGTERM, and SIGHUP (`kill -HUP`, or the terminal closing), raise
    KeyboardInterrupt, so the demo stops with its terminal restored; the old handler comes
    back."""
    before = signal.getsignal(number)
    interrupted = False
    with _demo._stop_signals_as_ctrl_c():
        try:
            os.kill(os.getpid(), number)
            time.sleep(5)  # (the handler's exception ends the sleep)
        except KeyboardInterrupt:
            interrupted = True
    assert interrupted
    assert signal.getsignal(number) is before


def test_a_second_ctrl_c_while_the_demo_stops_cuts_the_wait_short(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ctrl-C again while the demo winds down: no traceback, the endpoint closed, exit 0."""
    from laios.execution import server as server_module

    servers: list[server_module.MetricsServer] = []
    real_start = server_module.start_http_server

    def start(*args: object, **kwargs: object) -> server_module.MetricsServer:
        servers.append(real_start(*args, **kwargs))  # type: ignore[arg-type]
        return servers[-1]

    class Workload:
        def __init__(self, *args: object, **kwargs: object) -> None:
            pass

        def start(self) -> None:
            pass

        def join(self, timeout: float) -> None:
            raise KeyboardInterrupt  # the second Ctrl-C, while waiting for the tasks

    def first_ctrl_c(clock: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(server_module, "start_http_server", start)
    monkeypatch.setattr(_demo, "_Workload", Workload)
    monkeypatch.setattr(_demo, "_show_plain", first_ctrl_c)
    monkeypatch.setattr(_demo, "_configure_tracing", lambda *args: (None, "off"))
    args = _args(no_live=True, duration=None, host="127.0.0.1", port=0, runner="thread")
    try:
        code = _demo.run(args)
    except KeyboardInterrupt:
        pytest.fail("the second Ctrl-C escaped as KeyboardInterrupt")
    assert code == 0
    assert "stopped without waiting" in capsys.readouterr().err
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", servers[0].port), timeout=5).close()


class _SignalledWorkload:
    """Stands in for the demo's workload; while the demo waits for it to finish, the process
    gets ``number`` after ``delay`` seconds."""

    def __init__(self, number: signal.Signals, delay: float) -> None:
        self.number = number
        self.delay = delay

    def __call__(self, *args: object, **kwargs: object) -> _SignalledWorkload:
        return self

    def start(self) -> None:
        pass

    def join(self, timeout: float) -> bool:
        time.sleep(self.delay)
        os.kill(os.getpid(), self.number)
        time.sleep(0.05)  # (the handler runs here at the latest)
        return True


def _stopped_by(number: signal.Signals) -> object:
    def show(clock: object) -> None:
        os.kill(os.getpid(), number)
        time.sleep(5)  # (the handler's exception ends the sleep)

    return show


@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_repeated_at_once_is_the_same_stop(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], number: signal.Signals
) -> None:
    """`timeout 60 laios demo` sends its SIGTERM twice, to the demo and then to its whole
    process group, the demo in it: the second, a moment later, must not cut the stop short
    (summary skipped, "Ctrl-C again" said of one Ctrl-C)."""
    monkeypatch.setattr(_demo, "_Workload", _SignalledWorkload(number, 0.0))
    monkeypatch.setattr(_demo, "_show_plain", _stopped_by(number))
    monkeypatch.setattr(_demo, "_configure_tracing", lambda *args: (None, "off"))
    args = _args(no_live=True, duration=None, host="127.0.0.1", port=0, runner="thread")
    assert _demo.run(args) == 0
    out, err = capsys.readouterr()
    assert "stopped without waiting" not in err
    assert out.rstrip().endswith("laios demo: done.")


def test_a_stop_signal_some_time_after_the_first_still_cuts_the_wait_short(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A SIGTERM sent again once the demo is stopping (half a second on) is a second stop."""
    monkeypatch.setattr(_demo, "_Workload", _SignalledWorkload(signal.SIGTERM, 0.5))
    monkeypatch.setattr(_demo, "_show_plain", _stopped_by(signal.SIGTERM))
    monkeypatch.setattr(_demo, "_configure_tracing", lambda *args: (None, "off"))
    args = _args(no_live=True, duration=None, host="127.0.0.1", port=0, runner="thread")
    assert _demo.run(args) == 0
    assert "stopped without waiting" in capsys.readouterr().err


def test_the_line_of_a_stop_cut_short_names_the_signal_that_cut_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A second SIGTERM (a service manager's, ``kill``) while the demo stops cuts the wait
    short as Ctrl-C does: the line on stderr said "(Ctrl-C again)" of it, which no one
    pressed. It names the signal that came."""
    monkeypatch.setattr(_demo, "_Workload", _SignalledWorkload(signal.SIGTERM, 0.3))
    monkeypatch.setattr(_demo, "_show_plain", _stopped_by(signal.SIGTERM))
    monkeypatch.setattr(_demo, "_configure_tracing", lambda *args: (None, "off"))
    args = _args(no_live=True, duration=None, host="127.0.0.1", port=0, runner="thread")
    assert _demo.run(args) == 0
    err = capsys.readouterr().err
    assert "laios demo: stopped without waiting for the running tasks (SIGTERM again)" in err


class _FinishedWorkload:
    """Stands in for the demo's workload: it sends nothing, and is finished at once."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def start(self) -> None:
        pass

    def join(self, timeout: float) -> bool:
        return True


def test_the_summary_on_a_dumb_terminal_is_fitted_to_its_width(
    monkeypatch: pytest.MonkeyPatch, terminal: TextIO
) -> None:
    """With TERM=dumb (an editor's shell) there is no live view, but there is a terminal:
    the summary at the end is fitted to its width, as the docs say. It was printed whole, and
    a 40-column terminal wrapped every table row in two."""
    monkeypatch.setenv("TERM", "dumb")
    monkeypatch.setenv("COLUMNS", "40")
    written = io.StringIO()
    monkeypatch.setattr(terminal, "write", written.write)  # (what is written, kept)
    monkeypatch.setattr(sys, "stdout", terminal)
    monkeypatch.setattr(_demo, "_Workload", _FinishedWorkload)
    monkeypatch.setattr(_demo, "_show_plain", lambda clock: None)  # (at once at its end)
    monkeypatch.setattr(_demo, "_configure_tracing", lambda *args: (None, "off"))
    args = _args(no_live=True, duration=None, host="127.0.0.1", port=0, runner="thread")
    assert _demo.run(args) == 0
    summary = written.getvalue().split("Press Ctrl-C to stop.")[1]
    assert "workers: 8" in summary
    assert max(len(line) for line in summary.splitlines()) <= 40, summary


def test_the_summarys_headline_is_fitted_to_a_narrow_terminal(
    monkeypatch: pytest.MonkeyPatch, terminal: TextIO
) -> None:
    """On a terminal narrower than the summary's headline (``laios demo — 12 s, 345 tasks,
    28.7 tasks/s``), the headline was printed whole, and the terminal broke it in mid-word
    while the tables under it were fitted. It is wrapped between words, whole."""
    monkeypatch.setenv("COLUMNS", "20")
    written = io.StringIO()
    monkeypatch.setattr(terminal, "write", written.write)  # (what is written, kept)
    monkeypatch.setattr(sys, "stdout", terminal)
    monkeypatch.setattr(_demo, "_Workload", _FinishedWorkload)
    monkeypatch.setattr(_demo, "_show_live", lambda *args: None)  # (at once at its end)
    monkeypatch.setattr(_demo, "_configure_tracing", lambda *args: (None, "off"))
    args = _args(no_live=False, duration=None, host="127.0.0.1", port=0, runner="thread")
    assert _demo.run(args) == 0
    summary = written.getvalue().split("Press Ctrl-C to stop.")[1].strip("\n")
    lines = summary.splitlines()
    assert max(len(line) for line in lines) <= 20, summary
    headline = " ".join(lines[: lines.index("")])
    assert re.fullmatch(r"laios demo — \d+ s, 0 tasks, 0\.0 tasks/s", headline), headline


class _ShortClock:
    """Stands in for the demo's clock: a few frames, then the duration is over."""

    def __init__(self, frames: int) -> None:
        self.frames = frames

    def document(self) -> dict[str, object]:
        return {"tools": [], "running": []}

    def headline(self, document: object) -> str:
        return "laios demo"

    def remaining(self) -> float:
        self.frames -= 1
        return 0.01 if self.frames > 0 else 0.0


def test_log_messages_wait_until_the_live_view_is_gone(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A warning logged while the view is up (an OTLP receiver down) is printed after it."""
    import logging

    monkeypatch.setattr(logging.root, "handlers", [])  # as in the command: no logging set up
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    monkeypatch.setattr(sys, "stdin", io.StringIO())
    monkeypatch.setattr(_demo, "_FRAME", 0.01)
    seen_while_up: list[str] = []
    draw = _demo.live_frame

    def frame(*args: object, **kwargs: object) -> list[str]:
        if not seen_while_up:
            logging.getLogger("opentelemetry.exporter").warning("export to 127.0.0.1:9 failed")
        seen_while_up.append(capsys.readouterr().err)
        return draw(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(_demo, "live_frame", frame)
    _demo._show_live(_ShortClock(3), [])  # type: ignore[arg-type]
    assert len(seen_while_up) >= 2
    assert all("export" not in err for err in seen_while_up)
    assert "export to 127.0.0.1:9 failed" in capsys.readouterr().err


#: A reason phrase an OTLP collector may answer with, which the exporter logs as it is: it
#: sets the terminal's title and clears its screen.
HOSTILE_REASON = "\x1b]0;owned\x07\x1b[2J\x1b[31mBad\u202e Request\r"


def _without_controls(text: str) -> bool:
    return all(char.isprintable() or char == "\n" for char in text)


def test_log_messages_printed_after_the_live_view_hold_no_escape_sequence(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A warning logged while the view is up is printed once the terminal is back, by the demo
    itself: an escape sequence in it (a collector's reason phrase, which the OTLP exporter
    logs) reached the terminal. Control characters are printed as ``?``."""
    monkeypatch.setattr(logging.root, "handlers", [])  # as in the command: no logging set up
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    monkeypatch.setattr(sys, "stdin", io.StringIO())
    monkeypatch.setattr(_demo, "_FRAME", 0.01)
    draw = _demo.live_frame
    logged: list[bool] = []

    def frame(*args: object, **kwargs: object) -> list[str]:
        if not logged:
            logged.append(True)
            logging.getLogger("opentelemetry.exporter").error("export failed: %s", HOSTILE_REASON)
        return draw(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(_demo, "live_frame", frame)
    _demo._show_live(_ShortClock(2), [])  # type: ignore[arg-type]
    err = capsys.readouterr().err
    assert "export failed: ?]0;owned??[2J?[31mBad? Request?" in err
    assert _without_controls(err)


def test_log_messages_beside_progress_lines_hold_no_escape_sequence(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without a live view a warning is printed when it comes, while the demo runs as while it
    stops (its spans still sent then), as Python prints it where logging is not set up, but
    with its control characters as ``?``: they reached the terminal as they were."""
    monkeypatch.setattr(logging.root, "handlers", [])  # as in the command: no logging set up

    def export_failed() -> None:
        logging.getLogger("opentelemetry.exporter").error("export failed: %s", HOSTILE_REASON)

    class Workload:
        def __init__(self, *args: object, **kwargs: object) -> None:
            pass

        def start(self) -> None:
            pass

        def join(self, timeout: float) -> bool:
            export_failed()  # (as spans are sent while the demo stops)
            return True

    monkeypatch.setattr(_demo, "_Workload", Workload)
    monkeypatch.setattr(_demo, "_show_plain", lambda clock: export_failed())
    monkeypatch.setattr(_demo, "_configure_tracing", lambda *args: (None, "off"))
    args = _args(no_live=True, duration=None, host="127.0.0.1", port=0, runner="thread")
    assert _demo.run(args) == 0
    err = capsys.readouterr().err
    assert err.count("export failed: ?]0;owned??[2J?[31mBad? Request?") == 2
    assert _without_controls(err)


def test_a_terminal_of_unknown_size_gets_the_live_view_at_80_by_24(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A terminal that gives 0 by 0 for its size (a pseudo-terminal whose size was never set,
    as Python 3.10 reports it) gets the live view drawn at 80 by 24: it was drawn at 0 by 0,
    a blank screen."""
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    monkeypatch.setattr(sys, "stdin", io.StringIO())
    monkeypatch.setattr(_demo, "_FRAME", 0.01)
    monkeypatch.setattr(shutil, "get_terminal_size", lambda *_, **__: os.terminal_size((0, 0)))
    drawn: list[list[str]] = []
    draw = _demo.live_frame

    def frame(*args: object, **kwargs: object) -> list[str]:
        lines = draw(*args, **kwargs)  # type: ignore[arg-type]
        drawn.append(lines)
        return lines

    monkeypatch.setattr(_demo, "live_frame", frame)
    _demo._show_live(_ShortClock(2), [])  # type: ignore[arg-type]
    assert drawn
    for lines in drawn:
        assert lines[0].startswith("laios demo"), lines
        assert 1 < len(lines) <= 24
        assert max(len(line) for line in lines) <= 80


def test_the_demo_gives_the_laios_loggers_level_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo quiets the laios loggers while its view owns the terminal, and gives their
    level back when it ends: in a process that goes on, warnings are not lost afterwards."""

    class Workload:
        def __init__(self, *args: object, **kwargs: object) -> None:
            pass

        def start(self) -> None:
            pass

        def join(self, timeout: float) -> bool:
            return True  # (as the real one: every driving thread finished)

    def ctrl_c(clock: object) -> None:
        raise KeyboardInterrupt

    logger = logging.getLogger("laios")
    monkeypatch.setattr(logger, "level", logging.INFO)
    monkeypatch.setattr(_demo, "_Workload", Workload)
    monkeypatch.setattr(_demo, "_show_plain", ctrl_c)
    monkeypatch.setattr(_demo, "_configure_tracing", lambda *args: (None, "off"))
    args = _args(no_live=True, duration=None, host="127.0.0.1", port=0, runner="thread")
    assert _demo.run(args) == 0
    assert logger.level == logging.INFO
