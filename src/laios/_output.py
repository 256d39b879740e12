"""What the commands (``laios``, ``python -m laios.mixin``) do when their output cannot be
written: which errors say so, how to drop what is still buffered, and an argument parser whose
``--help`` and ``--version`` text fails as their output does; and how they show a URL, without
the user and password it may carry."""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import re
import shlex
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn, TextIO
from urllib.parse import unquote_plus, urlsplit

from laios._text import MAX_QUOTED_CHARS, quoted, shorten

if TYPE_CHECKING:
    from _typeshed import SupportsWrite

__all__ = [
    "OUTPUT_ERRNOS",
    "OutputParser",
    "StdoutClosed",
    "briefly_refused",
    "closed_stdout_status",
    "discard_stdout",
    "number_argument",
    "output_failure_status",
    "parse_command_line",
    "shell_quote",
    "shown_url",
    "without_credentials",
]

#: Why writing the output fails where no reader closed it: the file system or the device.
OUTPUT_ERRNOS = frozenset(
    code
    for code in (
        getattr(errno, name, None) for name in ("ENOSPC", "EDQUOT", "EFBIG", "EIO", "EROFS")
    )
    if code is not None
)


def discard_stdout() -> None:
    """Point stdout at the null device, so that what is still buffered for it goes nowhere
    instead of failing again (and being reported) when Python flushes it on the way out."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def output_failure_status(exc: OSError, prog: str) -> int | None:
    """The exit status when ``exc`` is a failure to write the command's own output: ``1``,
    what is still buffered for stdout dropped, and (unless the reader is gone) one line on
    stderr saying so; ``None`` when ``exc`` is another error (a file's, with its name), for
    the caller to raise again.

    Args:
        exc: What writing raised.
        prog: The command's name, for the line on stderr.
    """
    if isinstance(exc, BrokenPipeError):  # the reader is gone (``laios demo | head -1``)
        discard_stdout()
        return 1
    if exc.errno not in OUTPUT_ERRNOS or exc.filename is not None:
        return None
    # The output cannot be written (a full disk, a quota, a device gone): say so in one line.
    discard_stdout()
    _say_unwritable(prog, exc.strerror or str(exc))
    return 1


def closed_stdout_status(prog: str) -> int | None:
    """The exit status when the command was started with stdout closed (``laios status >&-``:
    Python has no ``sys.stdout``): ``1``, with one line on stderr saying so; ``None`` when
    stdout is there.

    Args:
        prog: The command's name, for the line on stderr.
    """
    if sys.stdout is not None:
        return None
    _say_unwritable(prog, "stdout is closed")
    return 1


def _say_unwritable(prog: str, reason: str) -> None:
    """One line on stderr saying that ``prog`` could not write its output, and why (nothing
    when stderr cannot be written either)."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        print(f"{prog}: could not write its output ({reason})", file=sys.stderr)


class StdoutClosed(Exception):
    """``--help`` or ``--version`` was asked for with no stdout to write it to."""


#: An argument that an :class:`OutputParser` takes for a negative number, not an option: a
#: minus sign before a digit (``-1e999``; ``-1x`` too, which the option then refuses as not a
#: number) or a point and a digit, or before a name of infinity or nan (``-inf``), as
#: ``argparse`` matches it, from the start.
_NEGATIVE_NUMBER = re.compile(r"-(?:\.?\d|(?:inf|infinity|nan)\Z)", re.IGNORECASE)


class OutputParser(argparse.ArgumentParser):
    """An argument parser whose ``--help`` and ``--version`` text, the command's output then,
    fails as the commands' output does when it cannot be written: argparse drops the error
    and exits 0, or writes the text to stderr when there is no stdout.

    It overrides argparse's ``_print_message``, where both texts are written: the tests of
    both commands' ``--help`` to a full disk, a closed stdout and a gone reader fail if
    argparse stops writing them there.

    An argument that starts as a negative number (``-1e999``, ``-inf``) after an option is
    that option's value, refused by the option's own check: argparse reads only ``-1`` and
    ``-.5`` so, and refused ``--latency-p95 -1e999`` as "expected one argument".
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # A value that starts as a negative number is an option's value, to be refused by the
        # option's own check if it must: argparse takes only ``-1`` and ``-.5`` for numbers,
        # and reads ``--latency-p95 -1e999`` as missing its value, followed by an option.
        self._negative_number_matcher = _NEGATIVE_NUMBER

    def error(self, message: str) -> NoReturn:
        """Print the usage and ``message`` (see :func:`briefly_refused`) to stderr, and exit
        with status 2."""
        super().error(briefly_refused(message))

    def _print_message(self, message: str, file: SupportsWrite[str] | None = None) -> None:
        out: TextIO | None = sys.stdout
        if not message or file is not out:
            super()._print_message(message, file)
            return
        if out is None:
            raise StdoutClosed
        out.write(message)
        out.flush()  # (a full disk fails here, not unseen at the interpreter's exit)


def parse_command_line(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None
) -> argparse.Namespace | int:
    """``parser.parse_args(argv)``; or, when ``--help`` or ``--version`` text could not be
    written (see :class:`OutputParser`), the exit status to end with (``1``)."""
    try:
        return parser.parse_args(argv)
    except StdoutClosed:
        return closed_stdout_status(parser.prog) or 1
    except OSError as exc:
        status = output_failure_status(exc, parser.prog)
        if status is None:
            raise
        return status


#: A number as an option of the commands takes one: ASCII digits with an optional sign,
#: decimal point and exponent, or ``inf``, ``infinity`` or ``nan`` in any case (left to each
#: option's own check), nothing around it. Python's ``float()`` reads more: any script's
#: digits (``٣`` is 3), an underscore between digits, white space around.
#: (The digits before a decimal point are one run: a pattern that could split them between
#: two runs would try every split of a long run of digits before refusing what follows it.)
_NUMBER = re.compile(
    r"[+-]?(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:e[+-]?[0-9]+)?|inf|infinity|nan)",
    re.ASCII | re.IGNORECASE,
)


#: A value argparse quotes in a usage error (``invalid choice: 'x'``), as ``repr`` writes it:
#: after white space, a parenthesis or nothing; its own quotes inside escaped; before white
#: space, a parenthesis, a comma or nothing. (Where it starts, an earlier quote has ended:
#: finding them takes one pass, whatever the arguments hold.)
_QUOTED_VALUE = re.compile(r"""(?<![^\s(])(?:'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")(?![^\s),])""")
#: A word (a value argparse shows unquoted: an argument it does not recognise) longer than
#: a quoted value is shown.
_LONG_WORD = re.compile(rf"\S{{{MAX_QUOTED_CHARS + 1},}}")
#: The longest usage error message shown (many arguments it does not recognise, say).
_MAX_MESSAGE = 1000


def briefly_refused(message: str) -> str:
    """argparse's usage error ``message`` with each value it shows described briefly, as
    :func:`quoted` describes one: a quoted value, or a word, cut to 200 characters,
    and a character a terminal would not show as text (argparse shows an argument it does
    not recognise as given) as ``?``; the whole at most 1,000 characters."""
    message = _QUOTED_VALUE.sub(lambda found: shorten(found[0], MAX_QUOTED_CHARS), message)
    message = _LONG_WORD.sub(lambda word: shorten(word[0], MAX_QUOTED_CHARS), message)
    return shorten(printable_text(message), _MAX_MESSAGE)


def number_argument(text: str) -> float:
    """An option's number (see :data:`_NUMBER`), as an ``argparse`` ``type``: a ``float``, or
    ``argparse.ArgumentTypeError`` showing ``text`` by :func:`quoted`."""
    if not _NUMBER.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"not a number: {quoted(text)} (digits 0-9, with an optional sign, "
            "decimal point and exponent: 2.5, 1e3)"
        )
    return float(text)


#: The ``user:password@`` part of a URL (after its scheme, if any): up to the last ``@`` before
#: the path, as :func:`urllib.parse.urlsplit` reads it (a password may hold an ``@`` that was
#: not percent-encoded).
_USERINFO = re.compile(r"^((?:[A-Za-z][A-Za-z0-9+.\-]*://)?)[^/?#]*@")


#: A ``name=value`` pair of a URL's query (``&`` or ``;`` between pairs), its value not empty.
_QUERY_PAIR = re.compile(r"(?<=[?&;])([^=&;#]*)=([^&;#]+)")


def printable_text(text: str, keep: str = "") -> str:
    """``text`` with each character a terminal would not show as text (an escape sequence's,
    a carriage return, a right-to-left override) as ``?``, but those in ``keep``: text that
    came from elsewhere (a URL given, a message another program sent) is shown, never run."""
    if text.isascii() and text.isprintable():
        return text
    return "".join(char if char.isprintable() or char in keep else "?" for char in text)


def without_credentials(url: str) -> str:
    """``url`` without the ``user:password@`` it may carry, and with the values of the query's
    secret-looking names (``token``, ``api_key``, ``password``: as the executor's redaction
    reads names) as ``[REDACTED]``, to be shown (a malformed URL too: it is shown, without
    them, all the same)."""
    shown = _USERINFO.sub(r"\1", url.strip(), count=1)
    start = shown.find("?")
    if start < 0:
        return shown
    end = shown.find("#", start)
    end = len(shown) if end < 0 else end
    query = _QUERY_PAIR.sub(_hidden_if_secret, shown[start:end])
    return shown[:start] + query + shown[end:]


def _hidden_if_secret(pair: re.Match[str]) -> str:
    # (imported here: ``python -m laios.mixin`` uses this module without the executor)
    from laios.execution.redaction import REDACTED, is_secret_key

    name = pair.group(1)
    return f"{name}={REDACTED}" if is_secret_key(unquote_plus(name)) else pair.group(0)


#: A URL's scheme, and what ends its host and port: its path, query or fragment.
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")
_HOST_END = re.compile(r"[/?#]")
#: What starts a URL's query or fragment.
_QUERY_START = re.compile(r"[?#]")
#: Why a URL with an ``@`` after the end of its host is refused, in words that follow it.
CREDENTIALS_PAST_HOST = (
    "is not a usable URL (it has an @ after the end of its host: a /, ? or # of the "
    "credentials before that @ ends the host there, so write them percent-encoded, %2F, %3F "
    "and %23, and an @ as %40)"
)


def _a_host_and_port(authority: str) -> bool:
    """Whether ``authority`` (what a URL holds between ``//`` and its path, query or
    fragment) ends in a host and port: not ``prom:s3cr``, a user and the start of a
    password, whose port is no number."""
    try:
        parts = urlsplit("http://" + authority.rpartition("@")[2])
        _ = parts.port  # (reading the port parses it)
    except ValueError:
        return False
    return bool(parts.hostname)


def credentials_past_host(url: str) -> str | None:
    """``url`` as a message shows it when an ``@`` after the end of its host and port (the
    first ``/``, ``?`` or ``#`` after its scheme) is that of a user and password, else
    ``None``.

    A ``/``, ``?`` or ``#`` of a user or password that was not percent-encoded ends the host
    there, and the rest of them reads as a path (or a query, or a fragment) holding an
    ``@``: no part of them may be shown. It is shown as its scheme, ``USER:PASSWORD@`` and
    what follows its last ``@``. An ``@`` in the path is taken so; one only in the query or
    fragment, where it may be (RFC 3986), only when what precedes the host's end reads as no
    host and port (``prom:s3cr?et@10.0.0.7:8489``: ``s3cr`` is no port).

    >>> credentials_past_host("http://prom:s3cr/et@10.0.0.7:8489")
    'http://USER:PASSWORD@10.0.0.7:8489'
    >>> credentials_past_host("http://prom:s3cr?et@10.0.0.7:8489")
    'http://USER:PASSWORD@10.0.0.7:8489'
    >>> credentials_past_host("http://prom:s3cr%2Fet@10.0.0.7:8489/metrics") is None
    True
    >>> credentials_past_host("http://10.0.0.7:8489/status?to=ops@example.com") is None
    True
    """
    text = url.strip()
    scheme = _SCHEME.match(text)
    start = scheme.end() if scheme else 0
    end = _HOST_END.search(text, start)
    if end is None or "@" not in text[end.start() :]:
        return None
    rest = text[end.start() :]
    in_the_path = "@" in _QUERY_START.split(rest, maxsplit=1)[0]
    if not in_the_path and _a_host_and_port(text[start : end.start()]):
        return None
    return text[:start] + "USER:PASSWORD@" + text.rpartition("@")[2]


def shown_url(url: str) -> str:
    """``url`` as a message shows it: :func:`without_credentials`, or
    :func:`credentials_past_host` when an ``@`` follows the end of its host."""
    return credentials_past_host(url) or without_credentials(url)


#: How bash's $'...' writes the characters it has a letter for.
_SHELL_ESCAPES = {"\\": "\\\\", "'": "\\'", "\t": "\\t", "\n": "\\n", "\r": "\\r"}


def shell_quote(text: str) -> str:
    """``text`` (an argument or a path, perhaps holding bytes that are not UTF-8 as lone
    surrogates, as Python reads them) quoted so that a POSIX shell gives it back: as
    :func:`shlex.quote` does when it is printable UTF-8; otherwise in bash's ``$'...'``, with
    each byte that is not UTF-8 or of a character that cannot be shown as ``\\xNN``.
    """
    try:
        data = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # (a lone surrogate no byte gave: no file has it in its name)
        data = text.encode("utf-8", "surrogatepass")
    try:
        plain = data.decode("utf-8")
    except UnicodeDecodeError:
        plain = None
    if plain is not None and plain.isprintable():
        return shlex.quote(plain)
    parts: list[str] = []
    for char in data.decode("utf-8", "surrogateescape"):
        if char in _SHELL_ESCAPES:
            parts.append(_SHELL_ESCAPES[char])
        elif "\udc80" <= char <= "\udcff":  # (a byte that is not UTF-8)
            parts.append(f"\\x{ord(char) - 0xDC00:02x}")
        elif char.isprintable():
            parts.append(char)
        else:
            parts.append("".join(f"\\x{byte:02x}" for byte in char.encode("utf-8", "replace")))
    return "$'" + "".join(parts) + "'"
