"""Several worker processes, one ``/metrics``: each process's totals in a shared directory.

A service run under gunicorn or ``uvicorn --workers`` has one metric store per worker process,
and a scrape reaches whichever worker the server hands it to: alone, each worker's ``/metrics``
shows its own counts, and Prometheus, seeing the numbers of another process at each scrape,
reads counter resets. With multiprocess mode on (:func:`enable`, or ``LAIOS_MULTIPROC_DIR`` set
when ``/metrics`` comes from :func:`~laios.execution.server.make_wsgi_app` or
:func:`~laios.execution.server.start_http_server`), every worker's ``/metrics`` shows the same
numbers: the sum over the workers, which never goes backwards, also when workers are replaced.

How:

- **A snapshot per process, not a write per task.** Each process writes what its own
  ``/metrics`` would show (:meth:`StoreCollector.totals()
  <laios.execution.prometheus.StoreCollector.totals>`: every ``laios_*`` family, histograms
  with their bucket bounds, custom metrics, gauges) to a file of its own in the directory,
  whole (a temporary file renamed over the old one): from a daemon thread every ``interval``
  seconds (default 1), when it serves a scrape (before it answers, so that any later scrape,
  by any worker, shows at least as much), and at exit. Running a task costs nothing more (a
  write-through per task, as ``prometheus_client``'s multiprocess mode does for its own
  metrics, would put file I/O on every task's path); a write takes 0.5 ms for 10 tools, 6 ms
  for 200, and one with nothing new is skipped (unless the file is no longer as written:
  deleted, truncated or overwritten, it is written again).
- **A scrape adds the files up.** The serving process takes its own totals as it writes them
  and adds every other process's file and the *retired* file, per label set. Where processes
  count one set of constant labels in other histogram bucket bounds (two executors configured
  apart, a deploy with other buckets), their histograms are added in the bounds all of them
  have in common, with a warning naming the bounds found and the directory: a bucket of a
  common bound holds exactly what it holds in each process, so the sum is exact, only
  coarser, and every worker shows the same sum whichever answers the scrape (kept apart,
  the same series would appear twice; left out, the sum would depend on who answers). A
  live process's file that cannot be read (truncated or overwritten under it) fails the
  scrape, naming it, for twice ``interval`` (at most 10 s) from when the serving process
  finds it, time for its process to write it again: left out, its counts would drop from
  the sum, a counter reset to Prometheus. A gone process's is left out with a warning.
- **Files of other laios versions** (a rolling deploy): each file says its layout's format.
  This version writes format 2 and reads laios 0.1.0's format 1 too (see
  :mod:`laios.execution._legacy_totals`); a file of a format it does not know is a newer
  version's: left out of the sum and left in place, never folded, deleted or moved, with one
  warning naming it (a retired file of that kind stops folds while it is there).
- **Liveness from a lock, not a pid.** Each process holds an exclusive ``flock`` on a lock file
  of its own, named with its pid and a random token, for as long as it lives; the kernel drops
  it when the process dies, however it dies (``SIGKILL`` too). A file whose lock can be taken
  belongs to a process that is gone. Unlike a pid check this cannot be fooled by a new
  process reusing the pid, needs no ``/proc`` and works the same on Linux and macOS. Only a
  file whose lock file is missing (deleted under its process by a temp-file cleaner or an
  ``rm``) falls back on the ``pid`` it holds: gone once that pid is (its counters are counted
  meanwhile, its gauges not: the pid may have been reused); the process, at its next
  write, renames its old file to a new name and writes its totals there in the same step
  (under the directory's exclusive lock), so that they are counted once, also when it is
  killed in the middle of that step. The lock works across pid
  namespaces (containers sharing the directory); the pid does not, so each file names its
  pid namespace, and a file of another one (or that does not say) is never folded while its
  lock file is missing (its process may be alive).
- **Gone processes are folded into one retired file**, under an exclusive ``flock`` on the
  directory itself and its lock file (a scrape reads under a shared one, so it sees a file
  either before or after its fold, never both or neither): their counters are added to it and
  their gauges dropped (the lock file of a process gone before its first write, with no data
  file, is deleted too), so after a fold the directory holds the data and lock files of each
  live process, the retired file and the directory's lock files, however often workers are
  replaced. The retired totals keep the label limits of the stores that wrote them
  (each section of a file carries them): past ``max_tool_labels`` tools, further new ones add
  into ``other``, and likewise error types and custom metrics, so the retired file stays bounded
  too; but one that a live process's file still exports keeps its own label until none does
  (added into ``other`` at once, its series would drop by the gone processes' part), so the
  labels past the limits are never more than the live processes export. Likewise past 100
  sets of constant labels (as many as one process exports), further sets add into one whose
  values are all ``other``. The retired file names the files it has absorbed until they are
  deleted, so a fold cut short between the two steps never counts a file twice. A fold
  takes 64 gone processes at a time, each batch whole under the lock, and lets go of it
  between batches, letting in the processes that wait for it (a fold of thousands of files
  takes seconds: holding the lock throughout, it failed the other workers' scrapes and
  ``enable()``). Any scrape folds the files of gone processes (for 1 s at most); gunicorn's
  ``child_exit`` hook (:func:`gunicorn_child_exit`) does it as soon as a worker exits.
- **Gauges are summed over live processes**: ``laios_tasks_in_flight``,
  ``laios_executor_workers``, ``laios_executor_busy_workers``, ``laios_executor_queue_depth``
  and ``laios_executor_abandoned_threads`` are the sum of each live process's value (the serving
  process's as of now, the others' as of their last write, at most ``interval`` old).
- **What a SIGKILLed worker loses**: what it counted since its last write, about ``interval``
  at most (measured with a worker running tasks flat out, ``interval`` 1 s, 20 kills: 0.55 s
  of its work on average, 1.12 s at most; ``tests/benchmarks/multiprocess.py``); no scrape
  has shown those counts, so no counter goes backwards. A gunicorn worker that exits
  (``SIGTERM``, ``max_requests``, a reload) writes at exit and loses nothing; so does a
  ``multiprocessing`` worker whose target returns, which ends with ``os._exit()`` and no
  ``atexit`` handler (the write is one of ``multiprocessing.util``'s exit finalizers too). A
  uvicorn worker ends by ``SIGTERM`` without exit handlers, after its lifespan shutdown:
  :func:`~laios.execution.server.make_asgi_app`'s app writes at that shutdown (an application
  that mounts it calls :func:`disable` in its own).
- **A process that leaves the mode keeps its file** (:func:`disable`): written one last time
  with its gauges at zero and still locked, so the others' sum keeps its counters, once; an
  :func:`enable` on the same directory and registry takes the same file up again (a second
  file would count the same tasks twice), and once the process is gone a fold retires it.
- **A forked child starts its own file** (see :mod:`laios.execution._forks`): it closes its copy
  of the parent's lock (and of any lock file the parent had open at the fork: a scrape's lock
  on the directory, a liveness check's) and, once its stores have started from zero, takes a
  new name and a writer thread of its own; it never writes the parent's file. A process that
  :func:`gunicorn_on_starting` marked as gunicorn's master writes nothing: it serves no
  request, and its workers (forked from it) write their own.

Exemplars travel with the histograms (of two, the newer is shown). The directory must be on a
local file system (``flock``); ``/dev/shm`` or a ``tmpfs`` suits. It may be the directory of
``PROMETHEUS_MULTIPROC_DIR``: laios's files are named ``laios-*`` and never end in ``.db``.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import logging
import math
import os
import secrets
import stat
import threading
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry

from laios.execution._checks import as_float, conversion_hint, is_real, number_repr
from laios.execution._forks import reset_after_fork
from laios.execution._logs import WarningLimiter, give_reason, public_reason
from laios.execution._shared_totals import (
    HAS_LOCKS,
    NO_ROOM,
    PROCESS_PREFIX,
    RETIRED,
    Refusals,
    SharedDirectory,
    close_lock,
    fold,
    gather,
    is_directory,
    pid_namespace,
    refuse,
    warn,
    what_to_do,
    without_gauges,
    write_totals,
)
from laios.execution._totals import ExportedTotals
from laios.execution._totals_files import Section, dump, section_data
from laios.execution.prometheus import StoreCollector, ensure_collector
from laios.execution.store import MetricStore

__all__ = [
    "DEFAULT_INTERVAL",
    "ENV_VAR",
    "MultiprocessExport",
    "current",
    "disable",
    "enable",
    "enable_from_environment",
    "gunicorn_child_exit",
    "gunicorn_on_starting",
    "prepare_directory",
    "sweep",
]

_log = logging.getLogger("laios.execution.multiprocess")
#: Failures of gunicorn's ``child_exit`` hook logged at most once a minute per kind.
_CHILD_EXIT_FAILURES = WarningLimiter(60.0)

#: The environment variable naming the shared directory.
ENV_VAR = "LAIOS_MULTIPROC_DIR"
#: Seconds between two writes of a process's file.
DEFAULT_INTERVAL = 1.0
#: The shortest ``interval`` accepted, in seconds (shorter, the writer thread would only write).
_MIN_INTERVAL = 0.05
#: The longest ``interval`` accepted, in seconds.
_MAX_INTERVAL = 3600.0
#: How the file written to check that the directory is writable begins.
_PROBE_PREFIX = "laios-probe-"
#: A directory created anew under the running processes, or a live process's file damaged:
#: scrapes fail for this many intervals (at most :data:`_MAX_REWRITE_WAIT` seconds) from when
#: this process finds it, time for the other live processes to write their files again.
_REWRITE_WAIT_INTERVALS = 2
#: The longest scrapes fail for a directory created anew or a damaged file, in seconds (a
#: scrape that fails still writes the serving process's file: with a long interval, each
#: process's file is there once it has served a scrape).
_MAX_REWRITE_WAIT = 10.0
#: How many times a scrape reads the directory at most, when this process's file moves to a
#: new name while it reads (its lock file deleted: see ``MultiprocessExport.totals``).
_GATHER_ATTEMPTS = 3
#: What ``flock`` fails with on a file system without file locks (a network file system
#: mounted without them, some FUSE file systems).
_NO_FILE_LOCKS = frozenset({errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS})
#: What a process that started while the directory was missing takes for the directory it knew
#: (see ``MultiprocessExport.start``): the one it finds later is one created anew.
_NO_DIRECTORY = (-1, -1)
#: The trouble of a directory created anew, in ``MultiprocessExport._replaced``.
_CREATED_ANEW = "created anew"


# -- the export of one process --------------------------------------------------------------

#: The pid of gunicorn's master, marked by gunicorn_on_starting: it writes no file.
_master_pid: int | None = None


class MultiprocessExport:
    """This process's part in multiprocess mode; made by :func:`enable`.

    Attributes:
        directory: The shared directory.
        interval: Seconds between two writes of this process's file.
        registry: The registry whose ``laios_*`` families are shared.
    """

    def __init__(
        self,
        directory: Path,
        interval: float,
        registry: CollectorRegistry,
        collector: StoreCollector,
    ) -> None:
        self.directory = directory
        self.interval = interval
        self.registry = registry
        self._collector = collector
        self._files = SharedDirectory(directory)
        self._closed = False
        self._fresh_state()
        reset_after_fork(self)

    def _fresh_state(self) -> None:
        self._lock = threading.Lock()
        self._stem: str | None = None
        self._lock_fd: int | None = None
        self._written: list[Section] = []  # what this process's file holds
        self._body = b""
        self._on_disk: tuple[int, int, int] | None = None  # what _file_id() said after writing
        #: The directory this process's file is in (device, inode): another one under the same
        #: path is the directory created anew (deleted under the running processes).
        self._directory_id: tuple[int, int] | None = None
        #: When this process found the directory created anew: scrapes fail for a while, until
        #: the other live processes have written their files there.
        self._replaced = Refusals()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: The writer thread was refused (a container's pids limit): the next write (a
        #: scrape) tries to start it again (under ``self._lock``).
        self._thread_refused = False

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    @property
    def path(self) -> Path | None:
        """This process's file, once written (``None`` in gunicorn's master)."""
        return None if self._stem is None else self._files.data(self._stem)

    def _writing(self) -> bool:
        return not self._closed and os.getpid() != _master_pid

    def _still_claimed(self) -> bool:
        if self._stem is None or self._lock_fd is None:
            return False
        return self._files.holds(self._stem, self._lock_fd)

    def _sections(self) -> list[Section]:
        """This process's totals now, each with the label limits its stores had (the largest
        of each, of the live stores and the gone ones: this process keeps the gone ones'
        counts within them, and so does the retired file once this process is gone)."""
        totals = self._collector.totals()
        limits = self._collector.limits()
        return [Section(t.duration_buckets, t, limits.get(t.labels)) for t in totals]

    def _write_locked(self, *, gauges: bool = True) -> None:
        """Write this process's totals now (the caller holds ``self._lock``); ``gauges=False``:
        as a process's that no longer runs tasks here (the gauges at zero)."""
        sections = self._sections()
        if not gauges:
            sections = [without_gauges(section) for section in sections]
        document: dict[str, Any] = {"kind": "process", "pid": os.getpid()}
        namespace = pid_namespace()
        if namespace is not None:  # (whose pids ``pid`` is one of: see owner_runs)
            document["pid_namespace"] = namespace
        document["sections"] = [section_data(s) for s in sections]
        body = dump(document)
        if not self._still_claimed():
            self._move(body)
            self._on_disk = self._file_id()
        elif body != self._body or not self._file_unchanged():
            # (also when nothing changed but the file did: deleted by a temp-file cleaner or
            # an rm, truncated, overwritten; the other processes' scrapes would go without
            # this process's counts until its next task)
            assert self._stem is not None
            write_totals(self._files.data(self._stem), body)
            self._body = body
            self._on_disk = self._file_id()
        self._written = sections

    def _file_unchanged(self) -> bool:
        """Whether this process's file is still there as it last wrote it."""
        found = self._file_id()
        return found is not None and found == self._on_disk

    def _file_id(self) -> tuple[int, int, int] | None:
        """What tells this process's file on disk from another one put in its place or
        changed since: its inode, size and modification time; ``None`` when it cannot be
        read (missing)."""
        if self._stem is None:
            return None
        try:
            found = os.stat(self._files.data(self._stem), follow_symlinks=False)
        except OSError:
            return None
        return found.st_ino, found.st_size, found.st_mtime_ns

    def _move(self, body: bytes) -> None:
        """Write ``body`` to a file under a new name: at the first write, and whenever this
        process's lock file is no longer its own (deleted by a temp-file cleaner or an ``rm``;
        the directory cleared by a new server). An old file still on disk is renamed to the new
        name first, then written over, in the same step, under the directory's exclusive lock:
        a scrape counts this process's totals in the old file or the new one, never both, never
        neither; and so does a fold once the process is gone, also when it was killed between
        the rename and the write (its totals as of its last write, as for any ``SIGKILL``). On
        failure nothing changes (the next write tries again), but that a file renamed stays
        under its new name.

        Raises:
            OSError: When the new name cannot be taken or written.
        """
        old = self._stem
        found = os.stat(self.directory)
        directory_id = (found.st_dev, found.st_ino)
        stem, fd = self._files.claim(os.getpid())
        new = self._files.data(stem)
        renamed = False
        failed: BaseException | None = None
        try:
            with self._files.locked(shared=False) if old else contextlib.nullcontext():
                try:
                    if old:
                        with contextlib.suppress(FileNotFoundError):
                            os.rename(self._files.data(old), new)
                            renamed = True
                    write_totals(new, body)
                except BaseException as exc:
                    if not renamed:
                        self._files.unlink(stem)
                        raise
                    # The totals it last wrote are under the new name, whose lock it holds: it
                    # takes that name (and writes there again at its next write).
                    failed = exc
        except BaseException:
            close_lock(fd)
            raise
        if old:
            with contextlib.suppress(OSError):  # what is left of it counts nothing
                self._files.unlink(old)
        self._release()
        self._stem, self._lock_fd, self._body = stem, fd, body
        if self._directory_id not in (None, directory_id):
            self._replaced.found(_CREATED_ANEW)  # (the other processes' files are not there)
        self._directory_id = directory_id
        if failed is not None:
            self._body = b""  # (not what the file holds)
            raise failed

    def write(self) -> None:
        """Write this process's totals to its file now (nothing in gunicorn's master); a
        writer thread the system refused is tried again, also when the write fails.

        Raises:
            OSError: When the file cannot be written.
        """
        with self._lock:
            if self._writing():
                try:
                    self._write_locked()
                finally:  # (a write that failed too: as at a scrape)
                    self._retry_thread_locked()

    def _write_quietly(self) -> None:
        try:
            self.write()
        except Exception as exc:
            self._warn_write(exc)

    def _warn_write(self, exc: Exception) -> None:
        where = self.directory
        warn(
            f"write {where}",
            "writing this process's metrics to %s failed: %r. Until a write succeeds (tried "
            "again every %g s, and at each scrape this process serves), /metrics counts this "
            "process's tasks as of its last write, and a SIGKILL loses what it counted since; "
            "%s",
            where,
            exc,
            self.interval,
            what_to_do(exc),
        )

    def totals(self) -> list[ExportedTotals]:
        """The totals of every process added up, as ``/metrics`` shows them; writes this
        process's file first, so that no later scrape, by any process, shows less. After
        :meth:`close`, the sum the other processes show (this process as its file holds it).

        Raises:
            OSError: When the directory cannot be read (the scrape fails rather than show a
                number that goes backwards); also for a while after this process found the
                directory created anew (deleted under the running processes), until the other
                live processes have had twice ``interval`` (at most 10 s) to write their files
                there again.
        """
        try:
            for _attempt in range(_GATHER_ATTEMPTS):
                stem, merged = self._gather_once()
                with self._lock:
                    if self._stem == stem:
                        break
                # Moved to a new name meanwhile (its lock file deleted, by the writer thread):
                # the read may have counted that file beside the totals taken, this process's
                # twice.
        except OSError as exc:
            if public_reason(exc) is None:
                give_reason(exc, _scrape_failure(exc))
            raise
        return [section.totals for section in merged]

    def _gather_once(self) -> tuple[str | None, list[Section]]:
        """One scrape's sum: the name of this process's file as it wrote its totals there
        first, and every process's totals added up."""
        with self._lock:
            if self._writing():
                try:
                    self._write_locked()
                except OSError as exc:  # shown: what the file holds, which others see too
                    self._warn_write(exc)
                self._retry_thread_locked()
                own, stem = list(self._written), self._stem
                waiting = self._replaced_wait_locked()
            elif self._stem is not None:  # closed: its file holds what the others count
                own, stem = list(self._written), self._stem
                waiting = 0.0
            else:  # (gunicorn's master: no file of its own)
                own = self._sections()
                stem = None
                waiting = 0.0
        if waiting > 0.0:
            message = (
                f"the multiprocess directory {self.directory} was created anew (deleted under "
                f"the running workers?): /metrics fails for {waiting:.1f} s more, until the "
                "live workers have written their files there again, rather than show a sum "
                "without their counts (Prometheus would read a counter reset, then count "
                "their tasks twice). The counts of the workers that were gone are lost with "
                "the old directory. Keep the directory out of temp-file cleaners' reach"
            )
            reason = (
                "the multiprocess directory was created anew (deleted under the running "
                "workers?): /metrics fails for a few seconds, until the live workers have "
                "written their files there again; the server's log names it"
            )
            refuse(f"created anew {self.directory}", message, reason)
        return stem, gather(self._files, stem, own, interval=self.interval, wait=self._wait())

    def _wait(self) -> float:
        """How long scrapes fail for the live processes' files missing or damaged, time for
        them to write those again."""
        return min(_REWRITE_WAIT_INTERVALS * self.interval, _MAX_REWRITE_WAIT)

    def _replaced_wait_locked(self) -> float:
        """Seconds the scrapes still fail for the directory created anew (0 once they need not;
        the caller holds ``self._lock``)."""
        if _CREATED_ANEW not in self._replaced:
            return 0.0
        return self._replaced.left(_CREATED_ANEW, self._wait())

    def start(self) -> None:
        """Write now and start the writer thread (called by :func:`enable`, also to take up
        again an export that :meth:`close` left, and in a forked child).

        A write that fails (a full disk) is warned and left to the writer thread, which tries
        again every ``interval``: a worker starting at such a moment starts all the same.

        When the system refuses the writer thread ("can't start new thread": a container's
        pids limit), that is warned too and the mode is on all the same: the file is written
        at each scrape this process serves (and at :meth:`write`), each of which tries to
        start the thread again.
        """
        self._closed = False
        with self._lock:
            if self._directory_id is None and not self.directory.is_dir():
                # (a gunicorn worker started while the directory was deleted: once it is back,
                # the other live processes' files are not there at once)
                self._directory_id = _NO_DIRECTORY
        try:
            self.write()
        except OSError as exc:
            self._warn_write(exc)
        with self._lock:
            if self._writing() and self._thread is None:
                self._thread_refused = not self._start_thread_locked()

    def _start_thread_locked(self) -> bool:
        """Start the writer thread (the caller holds ``self._lock``); ``False``, warned, when
        the system refuses it."""
        stop, interval = self._stop, self.interval

        def run() -> None:
            while not stop.wait(interval):
                self._write_quietly()

        thread = threading.Thread(target=run, name="laios-multiprocess", daemon=True)
        try:
            thread.start()
        except RuntimeError as exc:
            where = self.directory
            warn(
                f"no thread {where}",
                "could not start the thread that writes this process's metrics to %s every "
                "%g s (%r: the system refused a new thread; check the process limit, such as "
                "a container's pids limit): the file is written at each scrape this process "
                "serves, which tries to start the thread again",
                where,
                interval,
                exc,
            )
            return False
        self._thread = thread
        return True

    def _retry_thread_locked(self) -> None:
        """Start the writer thread that was refused, now (the caller holds ``self._lock``)."""
        if self._thread_refused and self._thread is None:
            self._thread_refused = not self._start_thread_locked()

    def _stop_thread(self) -> None:
        with self._lock:
            self._stop.set()
            self._thread_refused = False
            thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        self._stop = threading.Event()

    def _release(self) -> None:
        """Let go of this process's lock: its file now reads as a gone process's."""
        if self._lock_fd is not None:
            close_lock(self._lock_fd)
        self._lock_fd = None
        self._stem = None

    def park(self) -> None:
        """Stop writing in this process (gunicorn's master) and remove its file."""
        self._stop_thread()
        with self._lock:
            stem = self._stem
            self._release()
            if stem is not None:
                self._files.unlink(stem)

    def close(self) -> None:
        """Leave multiprocess mode: a last write of this process's counters (its gauges at
        zero), then ``/metrics`` shows this process alone again. The file stays this process's
        while it lives, so its counters stay in the others' sum, once: :func:`enable` with the
        same directory and registry takes the file up again (rather than add a second one),
        and once the process is gone the file is folded into the retired one. Idempotent."""
        if self._closed:
            return
        self._stop_thread()
        with self._lock:
            if self._writing():
                try:
                    self._write_locked(gauges=False)
                except OSError as exc:
                    _log.warning(
                        "the last write of this process's metrics to %s failed: %r; what it "
                        "counted since its previous write (if anything) is lost from the "
                        "other processes' sum; %s",
                        self.directory,
                        exc,
                        what_to_do(exc),
                    )
            self._closed = True
        self._collector.use_totals(None)

    def after_fork_in_child(self) -> None:
        """In a forked child: forget the parent's file (its lock stays the parent's). The
        child's own file and writer thread start once every store has been reset too."""
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                close_lock(self._lock_fd)  # the parent's lock stays held by the parent
        self._fresh_state()


# -- turning it on and off ------------------------------------------------------------------

_current: MultiprocessExport | None = None
#: Exports closed in this process, by directory and registry: enable() takes them up again, for
#: their files still hold this process's counters (a second file would count them twice).
_closed_exports: dict[tuple[Path, CollectorRegistry], MultiprocessExport] = {}
_state_lock = threading.Lock()


def _after_fork_in_child() -> None:
    """Start the child's own file and writer thread.

    Registered after :mod:`laios.execution._forks` registered its own handler, so it runs
    after every store has started from zero in the child: a write before that would put the
    parent's counts in the child's file.
    """
    global _state_lock
    _state_lock = threading.Lock()  # another thread may have held it at the fork
    export = _current
    if export is not None and not export.closed:
        try:
            export.start()
        except Exception:
            _log.exception("starting multiprocess mode in a forked child failed")


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _scrape_failure(exc: OSError) -> str:
    """What the HTTP answer to a scrape that failed with ``exc`` says: what failed, without
    the path (the log names it)."""
    if isinstance(exc, TimeoutError):
        return (
            "another process held the multiprocess directory's lock too long (a stuck process "
            "with it open?); the server's log names the directory"
        )
    # (only the system's words for the error number: a message of laios's own names the path)
    why = f": {exc.strerror}" if exc.errno is not None and exc.strerror else ""
    return (
        f"the multiprocess directory could not be read{why}; the server's log names it and "
        "says more"
    )


def _path(directory: str | os.PathLike[str] | None) -> Path:
    """The directory named (``None``: ``$LAIOS_MULTIPROC_DIR``), absolute; not checked further."""
    if not HAS_LOCKS:
        raise RuntimeError("multiprocess mode needs POSIX file locks (fcntl.flock)")
    if directory is None:
        directory = os.environ.get(ENV_VAR)
        if directory is None:
            raise ValueError(f"no directory for multiprocess mode: pass one, or set {ENV_VAR}")
        if not directory:  # (set, to nothing: the mode off in silence was not what was meant)
            raise ValueError(_EMPTY_VARIABLE)
    if not isinstance(directory, (str, os.PathLike)):
        raise TypeError(f"directory must be a path, not {number_repr(directory)}")
    if not os.fspath(directory):  # not taken for the working directory, whose files it clears
        raise ValueError(
            'the multiprocess directory is an empty path: name a directory ("." for the '
            "working directory)"
        )
    if "\0" in str(os.fspath(directory)):  # (which no system call takes)
        raise ValueError(
            f"the multiprocess directory {os.fspath(directory)!r} has a NUL character in its "
            "name: name a directory without one"
        )
    return Path(directory).absolute()


_EMPTY_VARIABLE = (
    f"{ENV_VAR} is set but empty: name the shared directory in it to turn multiprocess mode "
    "on, or unset it to leave the mode off (each worker's /metrics then shows that worker "
    "alone)"
)


def _white_space_hint(path: Path) -> str:
    """A sentence to add to a refusal of ``path`` when a part of its name begins or ends with
    white space, which the message would not show (``""`` otherwise)."""
    if all(part == part.strip() for part in path.parts):
        return ""
    # A line break or a space left at the end of a configuration value
    # (LAIOS_MULTIPROC_DIR="/dev/shm/laios\n") names a directory other than the one created.
    return (
        f" (its name, {str(path)!r}, has white space at the start or end of a part: a space "
        "or line break left in the configuration value?)"
    )


def _file_above(path: Path) -> Path | None:
    """The part of ``path`` above it that is something other than a directory (a regular
    file: ``/etc/hosts`` of ``/etc/hosts/laios``), which makes creating ``path`` impossible;
    ``None`` when there is none (or it cannot be told)."""
    for parent in reversed(path.parents):
        try:
            mode = parent.stat().st_mode
        except OSError:
            return None  # (missing from here on: creating it is what to do)
        if not stat.S_ISDIR(mode):
            return parent
    return None


def _directory(directory: str | os.PathLike[str] | None) -> Path:
    """The directory to use, checked: it exists, and this process can lock and write in it."""
    path = _path(directory)
    try:
        path.stat()
    except (FileNotFoundError, NotADirectoryError):
        missing = True
    except OSError as exc:
        # A name too long, a parent this process may not enter (a worker of another user
        # than the one who made the directory): the bare OSError of the look-up would not
        # say that it is about the multiprocess directory, nor what to do.
        raise ValueError(
            f"the multiprocess directory {path} cannot be looked up: {exc.strerror or exc} "
            "(make it and each directory above it reachable by this process's user, or "
            "choose another path)"
        ) from exc
    else:
        missing = False
    if missing:
        if _master_pid is not None and os.getpid() != _master_pid:
            # A gunicorn worker: its master checked the directory at start, so it was deleted
            # under the running service since. Refusing would fail the worker's boot, and
            # gunicorn would stop the whole service; the worker writes once it is back.
            warn(
                f"gone at start {path}",
                "the multiprocess directory %s is gone (deleted under the running service?): "
                "this worker starts without it and writes its file once it is back; create it "
                "again, or restart the service",
                path,
            )
            return path
        above = _file_above(path)
        if above is not None:
            raise ValueError(
                f"the multiprocess directory {path} cannot be created: {above} is a file, not "
                f"a directory (choose another path){_white_space_hint(path)}"
            )
        raise ValueError(
            f"the multiprocess directory {path} does not exist; create it first"
            f"{_white_space_hint(path)}"
        )
    if not path.is_dir():
        raise ValueError(f"the multiprocess directory {path} is not a directory")
    try:
        with SharedDirectory(path).locked(shared=True):
            probe = path / f"{_PROBE_PREFIX}{os.getpid()}-{secrets.token_hex(4)}.tmp"
            probe.write_bytes(b"")
            probe.unlink()
    except TimeoutError as exc:
        raise ValueError(
            f"the multiprocess directory {path} cannot be used now: {exc} (a stuck process "
            "holding it open: find it with fuser or lsof; or try again)"
        ) from exc
    except OSError as exc:
        if exc.errno in _NO_FILE_LOCKS:
            raise ValueError(
                f"the multiprocess directory {path} is on a file system without file locks "
                f"(flock: {exc.strerror or exc}), which tell the live processes from the gone "
                "ones: put it on a local file system, such as /dev/shm or a tmpfs"
            ) from exc
        if exc.errno in NO_ROOM:
            # Full (no room for a new file: no inodes left, an inode quota): the directory is
            # usable once there is room, and refusing would fail the worker's boot, which
            # makes gunicorn stop the whole service. The writes are tried again meanwhile.
            warn(
                f"no room at start {path}",
                "the multiprocess directory %s has no room for a new file (%s): this process "
                "starts all the same and writes its file once there is room; %s",
                path,
                exc,
                what_to_do(exc),
            )
            return path
        raise ValueError(
            f"the multiprocess directory {path} is not writable by this process: {exc}"
        ) from exc
    return path


def _check_interval(interval: float) -> float:
    if not is_real(interval):  # (a NumPy number too; not a bool)
        raise TypeError(
            f"interval must be a number of seconds, not {number_repr(interval)}"
            f"{conversion_hint(interval)}"
        )
    seconds = as_float(interval)
    if not (math.isfinite(seconds) and _MIN_INTERVAL <= seconds <= _MAX_INTERVAL):
        raise ValueError(
            f"interval must be from {_MIN_INTERVAL:g} to {_MAX_INTERVAL:g} seconds, "
            f"got {number_repr(interval)}"
        )
    return seconds


def enable(
    directory: str | os.PathLike[str] | None = None,
    *,
    interval: float | None = None,
    registry: CollectorRegistry | None = None,
    store: MetricStore | None = None,
) -> MultiprocessExport:
    """Turn multiprocess mode on in this process: ``/metrics`` shows every process's sum.

    Call it in each worker process (at import of the application is fine: a forked worker
    carries it on with a file of its own). :func:`~laios.execution.server.make_wsgi_app` and
    :func:`~laios.execution.server.start_http_server` call it when ``LAIOS_MULTIPROC_DIR`` is
    set. Calling it again with the same directory and registry returns the same export (with
    no ``interval``, or the one in force: another is refused while the mode is on; a ``store``
    given is exported as well), also after :func:`disable`: it takes up this process's file
    where it was left, so that its counts stay counted once.

    Args:
        directory: The shared directory; defaults to ``$LAIOS_MULTIPROC_DIR``. It must exist
            and be writable, on a local file system.
        interval: Seconds between two writes of this process's file: the most a worker killed
            with ``SIGKILL`` loses, and how old the other processes' gauges may be. From 0.05
            to 3600. ``None``: the interval in force when the mode is on already, else
            :data:`DEFAULT_INTERVAL` (1 s).
        registry: The registry whose ``laios_*`` families are shared; defaults to
            ``prometheus_client.REGISTRY``.
        store: A store to export into ``registry`` as well (see
            :func:`~laios.execution.prometheus.ensure_collector`); defaults to the
            process-wide one.

    Returns:
        This process's export.

    Raises:
        ValueError: When there is no directory (or an empty path, or one with a NUL character;
            ``LAIOS_MULTIPROC_DIR`` set but empty is refused saying so), it
            cannot be looked up (a name too long, a parent this process may not enter), does not
            exist, is not a directory or is not writable; when ``interval`` is out of range; when
            multiprocess mode is already on in this process with another directory, registry or
            ``interval``; when it was on with the same directory and another registry (this
            process's file still holds its counts: a second file would count twice the stores both
            registries export). (In a gunicorn worker, whose master checked the directory at start,
            a directory deleted since is warned instead: the worker writes its file once it is back.
            So is a directory whose file system has no room for a new file, in any process: it
            writes its file once there is room.)
        TypeError: When ``directory`` is not a path or ``interval`` not a number.
        RuntimeError: Without POSIX file locks (Windows).
    """
    path = _directory(directory)
    seconds = None if interval is None else _check_interval(interval)
    the_registry = registry if registry is not None else REGISTRY
    global _current
    with _state_lock:
        current = _current
        if current is not None and not current.closed:
            if current.directory != path or current.registry is not the_registry:
                raise ValueError(
                    f"multiprocess mode is already on in this process (directory "
                    f"{current.directory}); call disable() first"
                )
            if seconds is not None and current.interval != seconds:
                raise ValueError(
                    f"multiprocess mode is already on in this process with interval "
                    f"{current.interval:g} s, not {seconds:g} s: call enable(interval=...) "
                    "before make_wsgi_app(), make_asgi_app() or start_http_server() (which "
                    "turn the mode on with the default interval), or disable() first"
                )
            if store is not None:  # (exported as well, as when the mode was turned on)
                ensure_collector(store, the_registry)
            return current
        if current is not None:  # closed (by its close(), not by disable())
            _closed_exports.setdefault((current.directory, current.registry), current)
        for (folder, used), closed in _closed_exports.items():
            if folder == path and used is not the_registry and closed.path is not None:
                # (its file holds this process's counts of the stores that registry exports:
                # a second file, of a registry exporting the same stores, would count them twice)
                raise ValueError(
                    f"multiprocess mode was on in this process with another registry, and "
                    f"its file {closed.path} still holds this process's counts: enable() "
                    "with that registry takes it up again (one export per process and "
                    "directory; a second file would count the stores both registries "
                    "export twice), or use another directory"
                )
        collector = ensure_collector(store, the_registry)
        if seconds is None:
            seconds = DEFAULT_INTERVAL
        export = _closed_exports.pop((path, the_registry), None)
        if export is None:
            export = MultiprocessExport(path, seconds, the_registry, collector)
        export.interval = seconds
        export.start()
        collector.use_totals(export.totals)
        _current = export
    _write_at_exit_of_multiprocessing_workers()
    return export


def enable_from_environment(
    registry: CollectorRegistry | None = None, store: MetricStore | None = None
) -> MultiprocessExport | None:
    """:func:`enable` with the directory of ``LAIOS_MULTIPROC_DIR``, when it is set.

    Returns the export already on in this process, if any (whatever its registry); ``None``
    when the variable is not set.

    Raises:
        ValueError: As :func:`enable`, for the directory the variable names; when the variable
            is set but empty (whoever set it meant the mode on: unset it to leave it off).
    """
    if ENV_VAR not in os.environ:
        return None
    with _state_lock:
        current = _current
    if current is not None and not current.closed:
        return current
    return enable(registry=registry, store=store)


def current() -> MultiprocessExport | None:
    """This process's export while multiprocess mode is on, else ``None``."""
    with _state_lock:
        export = _current
    return None if export is None or export.closed else export


def disable() -> bool:
    """Turn multiprocess mode off in this process (see :meth:`MultiprocessExport.close`).

    Returns:
        Whether it was on.
    """
    global _current
    with _state_lock:
        current, _current = _current, None
        if current is None:
            return False
        _closed_exports[current.directory, current.registry] = current
    if current.closed:
        return False
    current.close()
    return True


def _at_exit() -> None:
    """This process's last write (its export's :meth:`~MultiprocessExport.close`): runs once,
    from ``atexit`` or from multiprocessing's finalizers, whichever comes first."""
    with _state_lock:
        current = _current
    if current is not None:
        current.close()


atexit.register(_at_exit)

#: The process whose multiprocessing finalizers hold the last write (see below).
_finalizer_pid: int | None = None
_after_fork_registered = False
#: Of multiprocessing's exit finalizers, this one runs last (after its children are joined).
_EXIT_PRIORITY = -100


def _write_at_exit_of_multiprocessing_workers() -> None:
    """Have a ``multiprocessing`` worker (``fork``, ``forkserver``, ``spawn``) write at exit too.

    Such a worker runs ``multiprocessing.util``'s finalizers when its target returns, then ends
    with ``os._exit()``: the fork and forkserver ones without running ``atexit`` handlers. So
    the last write is also one of those finalizers: registered here, in the process that turns
    the mode on, and again in each worker that ``multiprocessing`` starts from it (which
    clears the finalizers it inherits). gunicorn's and uvicorn's workers, which exit through
    ``atexit``, write there, as before; the write runs once either way.
    """
    global _finalizer_pid, _after_fork_registered
    from multiprocessing import util  # imported here: only processes that use the mode need it

    if not _after_fork_registered:
        util.register_after_fork(_at_exit, _after_multiprocessing_fork)
        _after_fork_registered = True
    if _finalizer_pid != os.getpid():
        util.Finalize(None, _at_exit, exitpriority=_EXIT_PRIORITY)
        _finalizer_pid = os.getpid()


def _after_multiprocessing_fork(_: object) -> None:
    _write_at_exit_of_multiprocessing_workers()


# -- the directory's life: preparing it, folding it -----------------------------------------


def prepare_directory(directory: str | os.PathLike[str] | None = None) -> Path:
    """Create the directory if need be and remove laios's files from it (a fresh start).

    Run it once before the workers start: gunicorn's ``on_starting`` (see
    :func:`gunicorn_on_starting`), or the script that starts ``uvicorn --workers``. Other files
    (``prometheus_client``'s ``*.db``) are left alone. A directory that other live processes
    write to (another service's, or workers of an earlier run still running) is left as it is,
    with a warning naming their pids: clearing it would take their counts away.

    Args:
        directory: Defaults to ``$LAIOS_MULTIPROC_DIR``.

    Returns:
        The directory.

    Raises:
        ValueError: When there is no directory, an empty path or one with a NUL character;
            when it cannot be created
            (a parent is a file, or not writable), is not a directory, or its files cannot be
            removed or written; the message names the path.
        TypeError: When ``directory`` is not a path.
        RuntimeError: Without POSIX file locks (Windows).
    """
    return _prepare(_path(directory), None)


def _prepare(path: Path, owner: tuple[int, int] | None) -> Path:
    """:func:`prepare_directory`; ``owner``: the ``(uid, gid)`` to give the directories it
    creates (the directory and its missing parents), none that existed before."""
    created: list[Path] = []
    try:
        _make_directory(path, created)
    except FileExistsError as exc:
        raise ValueError(f"the multiprocess directory {path} is not a directory") from exc
    except NotADirectoryError as exc:
        raise ValueError(
            f"the multiprocess directory {path} cannot be created: a parent of it is a file"
        ) from exc
    except OSError as exc:
        raise ValueError(
            f"the multiprocess directory {path} cannot be created ({exc.strerror or exc}): "
            "create it, or choose another path"
        ) from exc
    if owner is not None and created:
        _give_away(path, created, owner)
    writers = _live_writers(path)
    if writers:
        _log.warning(
            "not clearing the multiprocess directory %s: live processes write to it (pids %s), "
            "another service given the same directory by mistake or workers of an earlier run "
            "still running, and clearing it would take their counts away. Every /metrics "
            "served from it sums all their processes: give each service its own directory",
            path,
            ", ".join(map(str, writers)),
        )
        return _directory(path)
    try:
        for entry in path.iterdir():
            # (a directory under a laios name is none of laios's, and never counted: left
            # where it is, as folds leave it, rather than stop the service from starting)
            ours = entry.name.startswith((PROCESS_PREFIX, RETIRED, _PROBE_PREFIX))
            if ours and not is_directory(entry):
                with contextlib.suppress(FileNotFoundError):
                    entry.unlink()
    except OSError as exc:
        raise ValueError(
            f"laios's files in the multiprocess directory {path} cannot be removed: {exc}"
        ) from exc
    return _directory(path)


def _make_directory(path: Path, created: list[Path]) -> None:
    """``path.mkdir(parents=True, exist_ok=True)``, adding to ``created`` each directory this
    call made, outermost first."""
    try:
        path.mkdir()
    except FileNotFoundError:
        if path.parent == path:
            raise
        _make_directory(path.parent, created)
        try:
            path.mkdir()
        except OSError:
            if not path.is_dir():
                raise
            return
    except OSError:
        if not path.is_dir():
            raise
        return
    created.append(path)


def _give_away(path: Path, created: list[Path], owner: tuple[int, int]) -> None:
    """Give ``path``, which this process just created, to ``owner``, and let everyone pass
    through the parents of it that it ``created`` too (they stay this process's: a worker
    owning one could put a symbolic link in the directory's place, for the master to write
    through). Failing that, remove them again (still empty) and refuse the start."""
    uid, gid = owner
    made = path
    try:
        for made in created:
            if made == path:
                os.chown(made, uid, gid, follow_symlinks=False)
            else:  # (a umask of 077 made it 0700: the workers could not reach the directory)
                os.chmod(made, stat.S_IMODE(os.lstat(made).st_mode) | 0o111)
    except OSError as exc:
        for empty in reversed(created):
            with contextlib.suppress(OSError):
                empty.rmdir()
        raise ValueError(
            f"the multiprocess directory {path} cannot be given to the workers' user "
            f"(uid {uid}, gid {gid}): {'chown' if made == path else 'chmod'} of {made} failed "
            f"({exc.strerror or exc}); create the directory before starting gunicorn, "
            f"writable by that user (mkdir -p, then chown {uid}:{gid})"
        ) from exc


def _workers_owner(server: Any) -> tuple[int, int] | None:
    """The ``(uid, gid)`` gunicorn's workers run as (``--user``/``--group``), when it is not
    this process's; ``None`` when it is, or when ``server`` does not say."""
    cfg = getattr(server, "cfg", None)
    uid: Any = getattr(cfg, "uid", None)
    gid: Any = getattr(cfg, "gid", None)
    if not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in (uid, gid)):
        return None
    if (uid, gid) == (os.getuid(), os.getgid()):
        return None
    return uid, gid


def _live_writers(path: Path) -> list[int]:
    """The pids of the other processes that hold the lock of a file in ``path`` (sorted)."""
    files = SharedDirectory(path)
    pids = set()
    try:
        for stem in files.stems(with_orphans=True):
            if files.lock_held(stem):
                pid = stem.removeprefix(PROCESS_PREFIX).split("-", 1)[0]
                if pid.isdigit() and int(pid) != os.getpid():
                    pids.add(int(pid))
    except OSError:
        return []  # the removal below says what is wrong with the directory
    return sorted(pids)


def sweep(directory: str | os.PathLike[str] | None = None) -> int:
    """Fold the files of processes that are gone into the retired file.

    Scrapes do it too; call it when a worker exits (:func:`gunicorn_child_exit`) to keep the
    directory tidy between scrapes. It takes them 64 at a time (fewer when this process has
    fewer files left to open), and lets the other processes waiting for the directory's lock
    (scrapes, :func:`enable`) in between two batches.

    Args:
        directory: Defaults to ``$LAIOS_MULTIPROC_DIR``.

    Returns:
        How many processes' files were folded.

    Raises:
        ValueError: As :func:`enable`, for the directory.
        TimeoutError: When another process holds the directory's lock for more than 5 s.
        OSError: When a file in the directory cannot be written or deleted (a full disk;
            another user's file in a directory with the sticky bit). The batches folded until
            then stay folded.
    """
    return fold(SharedDirectory(_directory(directory)))


def gunicorn_on_starting(server: Any = None) -> None:
    """gunicorn's ``on_starting`` hook: prepare ``$LAIOS_MULTIPROC_DIR`` and mark the master.

    Put ``on_starting = gunicorn_on_starting`` in ``gunicorn.conf.py`` (or call it from your
    own hook). The master writes no file of its own (with ``--preload`` it may have turned
    multiprocess mode on while importing the application): its workers write theirs.

    The directory is created if need be (see :func:`prepare_directory`). When gunicorn's
    workers run as another user or group than the master (gunicorn started as root with
    ``--user``/``--group``), a directory the hook creates is given to that user and group
    (``chown``), so that the workers can write there; the master, as root, still writes its
    own files there. Parents of it that the hook creates stay the master's, and everyone may
    pass through them (``o+x``, whatever the umask). A directory that existed already is left
    as it is: it is the operator's, who makes it writable by the workers' user.

    Args:
        server: gunicorn's arbiter: its ``cfg.uid`` and ``cfg.gid`` say which user and group the
            workers run as. ``None``, or an object without them: the master's own.

    Raises:
        ValueError: When ``LAIOS_MULTIPROC_DIR`` is not set, is empty or cannot be used, or when a
            directory the hook created cannot be given to the workers' user (it is removed
            again; the message names it and says what to do); gunicorn then does not start.
    """
    global _master_pid
    _master_pid = os.getpid()
    with _state_lock:
        current = _current
    if current is not None:
        current.park()
    if "GUNICORN_PID" in os.environ:
        # A master re-executed by USR2 (a binary upgrade): the old master's workers still
        # serve and write here, and the totals go on from theirs.
        _directory(None)
    else:
        _prepare(_path(None), _workers_owner(server))


def gunicorn_child_exit(server: Any = None, worker: Any = None) -> None:
    """gunicorn's ``child_exit`` hook: fold the files of the workers that are gone.

    Put ``child_exit = gunicorn_child_exit`` in ``gunicorn.conf.py``. Never raises (a failure
    is logged): the next scrape folds what it could not.

    Args:
        server: gunicorn's arbiter (unused).
        worker: The worker that exited (unused: every gone worker's file is folded).
    """
    try:
        sweep()
    except Exception as exc:
        # (while the directory stays unusable, every worker's exit fails alike)
        held = _CHILD_EXIT_FAILURES.should_log(type(exc).__name__)
        if held is None:
            _log.debug("folding the files of exited workers failed again: %r", exc)
            return
        _log.error(
            "folding the files of exited workers failed; the next scrape folds them (the same "
            "failure is logged at most once a minute%s)",
            f"; {held} more since the last report" if held else "",
            exc_info=exc,
        )
