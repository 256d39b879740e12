"""Drawing in a terminal: measuring and clipping text, fitting tables, writing what an
output's encoding cannot hold, and a live screen.

Only the standard library is used: ``laios status`` renders with it too.

A :class:`LiveScreen` draws whole frames on the terminal's alternate screen, each line at its
own row (so nothing scrolls and nothing reaches the scrollback), and gives the terminal back as
it found it when the ``with`` block ends, however it ends: normally, by Ctrl-C or by an
exception.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import re
import select
import shutil
import signal
import sys
import threading
import unicodedata
from collections.abc import Sequence
from types import FrameType, TracebackType
from typing import Any, TextIO

__all__ = [
    "QUESTION_MARKS",
    "LiveScreen",
    "clip",
    "stream_is_terminal",
    "table_lines",
    "terminal_size",
    "text_width",
    "why_not_a_terminal",
]

#: Marks text cut short to fit its column or line.
MORE = "..."
#: Alternate screen on (saves the cursor), cursor hidden, line wrapping off, screen cleared.
_ENTER = "\x1b[?1049h\x1b[?25l\x1b[?7l\x1b[H\x1b[2J"
#: Line wrapping on, cursor shown, back to the normal screen (restores the cursor).
_LEAVE = "\x1b[?7h\x1b[?25h\x1b[?1049l"
#: What a function or cursor key sends (a CSI sequence, ``ESC [ 1 ; 5 Q``, or an SS3 one,
#: ``ESC O Q`` for F2): no text typed, though its letters would read as keys.
_KEY_SEQUENCE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|O.)")


def _char_width(char: str) -> int:
    if unicodedata.combining(char):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def text_width(text: str) -> int:
    """Return the number of terminal columns ``text`` takes (wide characters count two).

    Example:
        >>> text_width("abc"), text_width("日本")
        (3, 4)
    """
    if text.isascii():
        return len(text)
    return sum(_char_width(char) for char in text)


#: The size a terminal is drawn at when it does not say its own (columns, lines).
FALLBACK_SIZE = (80, 24)


def terminal_size() -> os.terminal_size:
    """Return the size of the terminal on stdout, as :func:`shutil.get_terminal_size` reads it
    (``COLUMNS`` and ``LINES`` first), with 80 columns or 24 lines for a size it gives as 0.

    A terminal whose size was never set (a pseudo-terminal from :func:`pty.fork`) says 0 by
    0; Python 3.11 and later give the fallback for it, Python 3.10 gives the 0.
    """
    columns, lines = shutil.get_terminal_size()  # (its own fallback is 80 by 24 too)
    return os.terminal_size(
        (columns if columns > 0 else FALLBACK_SIZE[0], lines if lines > 0 else FALLBACK_SIZE[1])
    )


#: The name of an encoding error handler (:func:`codecs.register_error`) that writes a
#: character the encoding cannot hold as a ``?`` per column it takes, so that tables stay
#: aligned on an output in ASCII, Latin-1 or a Windows code page:
#: ``text.encode("ascii", QUESTION_MARKS)``, or ``stream.reconfigure(errors=QUESTION_MARKS)``.
QUESTION_MARKS = "laios.question-marks"


def _question_marks(error: UnicodeError) -> tuple[str, int]:
    if not isinstance(error, UnicodeEncodeError):
        raise error
    return "?" * text_width(error.object[error.start : error.end]), error.end


codecs.register_error(QUESTION_MARKS, _question_marks)


def clip(text: str, width: int) -> str:
    """Return ``text`` cut to at most ``width`` columns, ending in ``...`` when it was cut.

    Example:
        >>> clip("page 3 of 6", 8)
        'page ...'
    """
    if text_width(text) <= width:
        return text
    if width < len(MORE):
        keep, mark = max(width, 0), ""
    else:
        keep, mark = width - len(MORE), MORE
    out: list[str] = []
    used = 0
    for char in text:
        size = _char_width(char)
        if used + size > keep:
            break
        out.append(char)
        used += size
    return "".join(out) + mark


def _pad(text: str, width: int, right: bool) -> str:
    fill = " " * max(width - text_width(text), 0)
    return fill + text if right else text + fill


def table_lines(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    right: set[int] | frozenset[int] = frozenset(),
    width: int | None = None,
    steps: Sequence[tuple[int, int]] = (),
) -> list[str]:
    """Lay out a table: two spaces of indent, two between columns (one when that makes it fit
    ``width``), trailing blanks removed.

    Args:
        header: The column titles.
        rows: The cells, one sequence per row, as many as there are titles.
        right: Indexes of the columns aligned to the right.
        width: Columns available; ``None`` for no limit.
        steps: What to give up, in order, while the table is wider than ``width`` even with
            one space between columns: ``(column, n)`` narrows that column to ``n`` columns
            (its cells cut short with ``...``), ``(column, 0)`` leaves it out. A table still
            too wide has its lines cut.

    Returns:
        The header line followed by one line per row, none wider than ``width``.
    """
    count = len(header)
    widths = [max(text_width(str(row[i])) for row in [header, *rows]) for i in range(count)]
    shown = list(range(count))
    gap = 2

    def total() -> int:
        return 2 + sum(widths[i] for i in shown) + gap * (len(shown) - 1)

    if width is not None and total() > width:
        gap = 1
    for column, narrow in steps:
        if width is None or total() <= width:
            break
        if column not in shown:
            continue
        if narrow <= 0:
            if len(shown) > 1:
                shown.remove(column)
        else:
            widths[column] = max(min(narrow, widths[column]), widths[column] - (total() - width))
    lines = []
    for row in [header, *rows]:
        cells = [_pad(clip(str(row[i]), widths[i]), widths[i], i in right) for i in shown]
        line = ("  " + (" " * gap).join(cells)).rstrip()
        lines.append(line if width is None else clip(line, width))
    return lines


def _in_foreground(fd: int) -> bool:
    """Whether this process may change the terminal's modes (it is in the foreground)."""
    try:
        return os.tcgetpgrp(fd) == os.getpgrp()
    except OSError:
        return False


class LiveScreen:
    """Whole frames drawn in place on the terminal's alternate screen.

    Use it as a context manager around the drawing loop::

        with LiveScreen(sys.stdout, sys.stdin) as screen:
            while running:
                screen.draw(lines)
                if "q" in screen.wait(1.0):
                    break

    While it is open: the alternate screen is shown (the normal screen and its scrollback are
    left as they were), the cursor is hidden, lines do not wrap, and, when ``keys`` is the
    terminal and this process is in the foreground, typed keys are not echoed and are returned
    by :meth:`wait` one batch at a time (Ctrl-C still interrupts). A change of the terminal's
    size ends a :meth:`wait` early, so the caller can redraw at the new size. On leaving, by any
    way, all of this is undone.

    Args:
        out: The terminal to draw on.
        keys: Where keys are read from (usually ``sys.stdin``); ``None`` reads none.
    """

    def __init__(self, out: TextIO, keys: TextIO | None = None) -> None:
        self._out = out
        self._keys = keys
        self._key_fd: int | None = None
        self._saved_modes: list[Any] | None = None
        self._wake: tuple[int, int] | None = None
        self._saved_winch: Any = None
        self._keys_gone = False
        self._drawn = 0
        self._clear = False

    @property
    def reads_keys(self) -> bool:
        """Whether typed keys are read (and not echoed) while the screen is open."""
        return self._key_fd is not None

    def __enter__(self) -> LiveScreen:
        """Switch to the alternate screen and start reading keys when possible."""
        self._open_keys()
        try:
            self._watch_resizes()
            self._write(_ENTER)
        except BaseException:
            self._restore()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Give the terminal back as it was: normal screen, cursor, wrapping, key echo."""
        self._restore()

    def draw(self, lines: Sequence[str]) -> None:
        """Replace the frame with ``lines``, one per row from the top.

        The lines must fit the terminal (see :func:`clip`) and hold no control characters.
        """
        parts = ["\x1b[2J"] if self._clear else []
        self._clear = False
        parts.extend(f"\x1b[{row};1H\x1b[2K{line}" for row, line in enumerate(lines, 1))
        parts.extend(f"\x1b[{row};1H\x1b[2K" for row in range(len(lines) + 1, self._drawn + 1))
        self._drawn = len(lines)
        self._write("".join(parts))

    def wait(self, seconds: float) -> str:
        """Wait up to ``seconds``; return early with the keys typed (without the sequences
        of function and cursor keys), or ``""`` on a resize."""
        keys = None if self._keys_gone else self._key_fd
        fds = [fd for fd in (keys, self._wake[0] if self._wake else None) if fd is not None]
        if not fds:
            threading.Event().wait(max(seconds, 0.0))
            return ""
        ready, _, _ = select.select(fds, [], [], max(seconds, 0.0))
        typed = ""
        if self._wake is not None and self._wake[0] in ready:
            os.read(self._wake[0], 512)
            self._clear = True
        if keys is not None and keys in ready:
            try:
                data = os.read(keys, 512)
            except OSError:  # EIO: the terminal hung up
                data = b""
            if not data:  # the terminal hung up: stop watching it (its modes are still restored)
                self._keys_gone = True
            typed = _KEY_SEQUENCE.sub("", data.decode(errors="replace"))
        return typed

    def _write(self, text: str) -> None:
        self._out.write(text)
        self._out.flush()

    def _open_keys(self) -> None:
        if self._keys is None:
            return
        try:
            import termios
            import tty

            fd = self._keys.fileno()
            if not os.isatty(fd) or not _in_foreground(fd):
                return
            self._saved_modes = termios.tcgetattr(fd)
            tty.setcbreak(fd, termios.TCSANOW)
        except (ImportError, OSError, ValueError):
            self._saved_modes = None
            return
        self._key_fd = fd

    def _watch_resizes(self) -> None:
        winch = getattr(signal, "SIGWINCH", None)
        if winch is None or threading.current_thread() is not threading.main_thread():
            return
        read_end, write_end = os.pipe()
        os.set_blocking(write_end, False)
        self._wake = (read_end, write_end)

        def resized(signum: int, frame: FrameType | None) -> None:
            with contextlib.suppress(OSError):  # the pipe is full: a wake-up is pending anyway
                os.write(write_end, b"r")

        self._saved_winch = signal.signal(winch, resized)

    def _restore(self) -> None:
        with contextlib.suppress(OSError, ValueError):  # a terminal gone needs no restoring
            self._write(_LEAVE)
        if self._saved_modes is not None and self._key_fd is not None:
            import termios

            with contextlib.suppress(OSError, termios.error):
                termios.tcsetattr(self._key_fd, termios.TCSADRAIN, self._saved_modes)
        self._saved_modes = None
        self._key_fd = None
        if self._wake is not None:
            signal.signal(signal.SIGWINCH, self._saved_winch)
            for fd in self._wake:
                os.close(fd)
            self._wake = None


def is_a_terminal(stream: object) -> bool:
    """Whether ``stream`` is a terminal, whatever its ``TERM``."""
    try:
        return bool(stream.isatty())  # type: ignore[attr-defined]
    except (AttributeError, ValueError):  # (no such method; a closed file)
        return False


def why_not_a_terminal(stream: TextIO) -> str | None:
    """Why ``stream`` cannot show a live screen, in words for a banner (``"TERM is dumb"``);
    ``None`` when it can."""
    if not is_a_terminal(stream) or sys.platform == "win32":
        return "the output is not a terminal"
    term = os.environ.get("TERM", "")
    if term == "dumb":
        return "TERM is dumb"
    if not term:
        return "TERM is not set"
    return None


def stream_is_terminal(stream: TextIO) -> bool:
    """Whether ``stream`` is a terminal that can show a live screen (not ``TERM=dumb``)."""
    return why_not_a_terminal(stream) is None
