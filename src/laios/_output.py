"""What the commands (``laios``, ``python -m laios.mixin``) do when their output cannot be
written: which errors say so, and how to drop what is still buffered."""

from __future__ import annotations

import contextlib
import errno
import os
import sys

__all__ = ["OUTPUT_ERRNOS", "discard_stdout"]

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
