"""What a child made by ``os.fork()`` needs from ``multiprocessing`` to start processes of its
own, where no public call exists.

* ``multiprocessing`` keeps every process it started in the module-level set
  ``multiprocessing.process._children`` and joins those still running at interpreter exit. A
  forked child inherits the set: the parent's worker processes would make the child's exit wait
  until they end. :func:`forget_child` drops one.
* The ``forkserver`` start method keeps its server's pid in the module's ``ForkServer``
  instance and checks it with ``os.waitpid``, which fails in a forked child (the server is the
  parent's child, not its own): every process start there fails. :func:`forkserver_in_child`
  makes the child start a server of its own on its next process start.
* In a process that ignores ``SIGCHLD`` (``signal.signal(signal.SIGCHLD, signal.SIG_IGN)``:
  the kernel reaps its children at once), a forkserver that ended is gone before
  ``multiprocessing`` checks it, whose ``os.waitpid`` then raises ``ChildProcessError``
  instead of finding it dead: every process start fails from then on.
  :func:`forget_ended_forkserver` makes the next start start a new server, as it would have.
* ``multiprocessing`` has each process it starts with ``spawn`` or ``forkserver`` run the
  program's main module again from the file named by ``multiprocessing.spawn``'s
  ``get_preparation_data``; :func:`main_file` asks it which file that is.

When the attributes read here are gone (a future Python), nothing is changed and nothing
fails; the test of this module fails loudly instead.
"""

from __future__ import annotations

import contextlib
import multiprocessing.forkserver
import multiprocessing.process
import multiprocessing.spawn
import os
import threading
from typing import Any

__all__ = [
    "CHILDREN_READABLE",
    "FORKSERVER_READABLE",
    "forget_child",
    "forget_ended_forkserver",
    "forkserver_in_child",
    "main_file",
]

#: Whether ``multiprocessing.process._children`` still exists as a set.
CHILDREN_READABLE: bool = isinstance(getattr(multiprocessing.process, "_children", None), set)

_SERVER_FIELDS = ("_forkserver_pid", "_forkserver_alive_fd", "_forkserver_address", "_lock")

#: Whether the forkserver still keeps its state where :func:`forkserver_in_child` resets it.
FORKSERVER_READABLE: bool = all(
    hasattr(getattr(multiprocessing.forkserver, "_forkserver", None), name)
    for name in _SERVER_FIELDS
)


def forget_child(process: Any) -> None:
    """Stop ``multiprocessing`` from waiting for ``process`` at exit (in a forked child)."""
    if CHILDREN_READABLE:
        children: set[Any] = getattr(multiprocessing.process, "_children")  # noqa: B009
        children.discard(process)


def forkserver_in_child() -> None:
    """In a forked child: forget the parent's forkserver, so that the next process started
    with ``forkserver`` starts a server for this process (the parent's is left running)."""
    if not FORKSERVER_READABLE:
        return
    server: Any = getattr(multiprocessing.forkserver, "_forkserver")  # noqa: B009
    alive = server._forkserver_alive_fd  # noqa: SLF001 (the guarded read this module is for)
    if alive is not None:
        with contextlib.suppress(OSError):
            os.close(alive)  # (the child's copy: the server lives as long as its parent)
    server._forkserver_pid = None  # noqa: SLF001
    server._forkserver_alive_fd = None  # noqa: SLF001
    server._forkserver_address = None  # noqa: SLF001
    server._lock = threading.Lock()  # noqa: SLF001 (another thread may have held it)


def forget_ended_forkserver() -> bool:
    """Forget this process's forkserver if it is no longer a child of this process (it ended
    and was reaped already: ``SIGCHLD`` is ignored here), as ``multiprocessing`` forgets one
    it finds dead, so that the next process started with ``forkserver`` starts a new server.
    Whether it was forgotten (``False``: none, or it is still running)."""
    if not FORKSERVER_READABLE:
        return False
    server: Any = getattr(multiprocessing.forkserver, "_forkserver")  # noqa: B009
    with server._lock:  # noqa: SLF001 (the guarded read this module is for)
        pid = server._forkserver_pid  # noqa: SLF001
        if pid is None:
            return False
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == 0:
                return False  # (running)
        except ChildProcessError:
            pass  # (ended, and reaped already)
        alive = server._forkserver_alive_fd  # noqa: SLF001
        if alive is not None:
            with contextlib.suppress(OSError):
                os.close(alive)
        server._forkserver_pid = None  # noqa: SLF001
        server._forkserver_alive_fd = None  # noqa: SLF001
        server._forkserver_address = None  # noqa: SLF001
    return True


def main_file() -> str | None:
    """The file of the program's main module that ``multiprocessing`` has each process it
    starts with ``spawn`` or ``forkserver`` run again, as it would send it (made absolute
    from the directory the program started in); ``None`` when it sends none (a module run by
    name, ``python -m``; a session without a file; a Windows frozen program or service) or
    cannot be asked (while a process is still being started: its own check refuses that; or
    another Python, whose shape the test of this module checks)."""
    try:
        data = multiprocessing.spawn.get_preparation_data("laios")
    except Exception:
        return None
    path = data.get("init_main_from_path") if isinstance(data, dict) else None
    return path if isinstance(path, str) else None
