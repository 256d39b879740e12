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
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.util
import os
import signal

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
