"""What the commands (``laios``, ``python -m laios.mixin``) do when their output cannot be
written: which errors say so, and how to drop what is still buffered."""

from __future__ import annotations

import contextlib
import errno
import os
import sys

__all__ = ["OUTPUT_ERRNOS", "closed_stdout_status", "discard_stdout", "output_failure_status"]

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
