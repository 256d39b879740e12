"""Imported by the process runner's forkserver only (it is the last of its preloads): gives
the processes the forkserver starts for other code SIGINT back.

The forkserver is started with SIGINT held back (see the process runner's
``_start_with_interrupts_held``), so that a terminal's Ctrl-C never stops it while it imports
its preloads, and every process it forks inherits that hold. The runner's own workers take
SIGINT again once they lead a process group of their own. The forkserver is one per Python
process, though: a process the program starts itself with the ``forkserver`` method (a
``multiprocessing.Pool`` of that context) would keep SIGINT blocked, and a Ctrl-C would no
longer raise ``KeyboardInterrupt`` there. So in every process the forkserver starts,
``multiprocessing`` runs :func:`_take_interrupts_unless_a_worker` once it knows which process
it is (its after-fork hooks, run before the process's target), and SIGINT is unblocked there
unless the process is one of the runner's workers. The forkserver itself keeps it held (it
ignores SIGINT anyway once its preloads are imported).

The forkserver ends when the program that started it ends, however it ends (it reads the end
of a pipe only that program holds). On Linux it then kills the process group of each runner
worker it started that still runs (see :func:`_end_the_workers`): a worker ends with its
parent by itself, from a thread of its own, but that thread cannot run while a tool holds the
worker's GIL in a long C call (a regular expression, a computation in an extension).
"""

from __future__ import annotations

import atexit
import contextlib
import multiprocessing
import multiprocessing.util
import os
import signal
import sys

from laios.execution._runners.process_worker import WORKER_NAME

__all__: list[str] = []

#: The forkserver's pid: only the processes it forks are given SIGINT back (a process they
#: start in turn inherits their own mask, as usual).
_SERVER = os.getpid()


def _take_interrupts_unless_a_worker(_: object) -> None:
    """Unblock SIGINT in a process the forkserver started, unless it is a runner's worker."""
    if os.getppid() != _SERVER or multiprocessing.current_process().name == WORKER_NAME:
        return
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


if hasattr(signal, "pthread_sigmask"):
    multiprocessing.util.register_after_fork(
        _take_interrupts_unless_a_worker, _take_interrupts_unless_a_worker
    )


def _end_the_workers() -> None:
    """At the forkserver's exit: kill the process group of each worker it started that is
    still there (alive, or ended and not waited for yet, so that its pid is still its own).

    A worker is known by what it made itself: the leader of a session of its own (its group
    too). Found in ``/proc``; never raises."""
    if os.getpid() != _SERVER:  # (a process it forked, inheriting the registration)
        return
    with contextlib.suppress(Exception):
        server = str(_SERVER).encode()
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/stat", "rb") as handle:
                    stat = handle.read(512)
            except OSError:
                continue  # (gone meanwhile)
            # After the command's closing parenthesis: state, parent pid, group, session.
            fields = stat.rsplit(b")", 1)[-1].split(None, 4)
            pid = name.encode()
            if len(fields) > 3 and fields[1] == server and fields[2] == pid == fields[3]:
                with contextlib.suppress(OSError):
                    os.killpg(int(name), signal.SIGKILL)


if sys.platform == "linux":
    atexit.register(_end_the_workers)
