"""Programs run in a pseudo-terminal of their own, as in a terminal window."""

from __future__ import annotations

import fcntl
import os
import struct
import subprocess
import termios

__all__ = ["set_size", "start_in_terminal"]


def set_size(fd: int, columns: int, lines: int) -> None:
    """Give the terminal of ``fd`` (either side) ``columns`` by ``lines``."""
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", lines, columns, 0, 0))


def start_in_terminal(
    argv: list[str], env: dict[str, str], *, pass_fds: tuple[int, ...] = ()
) -> tuple[subprocess.Popen[bytes], int]:
    """Start ``argv`` as the leader of a session of its own, its stdin, stdout and stderr a
    new 80 x 24 pseudo-terminal (which it can take as its controlling terminal); return the
    process and the terminal's other side, which the caller closes."""
    master, slave = os.openpty()
    set_size(slave, 80, 24)
    try:
        process = subprocess.Popen(
            argv,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            pass_fds=pass_fds,
            start_new_session=True,
            env={**env, "TERM": "xterm"},
        )
    except BaseException:
        os.close(master)
        raise
    finally:
        os.close(slave)
    return process, master
