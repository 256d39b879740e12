"""The shared directory of multiprocess mode: its files, their liveness, folding, adding up.

See :mod:`laios.execution.multiprocess` for the design. Files (``laios-*``; never ``*.db``,
which ``prometheus_client`` reads):

- ``laios-proc-<pid>-<token>.json``: one process's totals (:mod:`._totals_files`) and its
  ``pid``, replaced whole at each write; ``.lock`` beside it, held with an exclusive ``flock``
  by that process for as long as it lives. A data file whose lock file is missing (deleted
  under its process: a temp-file cleaner, an ``rm``) belongs to a gone process only when its
  ``pid`` is gone too, asked only of a file of this process's pid namespace
  (:func:`pid_namespace`); while that process runs, its file is left alone and its counters are
  counted (its gauges are not: the pid may be another process's now), and the process moves
  its totals to a new name at its next write. A lock file without a data file is a process's
  that has not written yet: a live one's while its lock is held, a gone one's (killed as it
  started) once it is free, deleted by a fold, which any scrape then starts. A process whose
  new lock file is folded in the instant before it locks it takes another name
  (:meth:`SharedDirectory.claim`).
- ``laios-retired.json``: the totals of processes that are gone, added up, without gauges,
  with the names of the process files it has absorbed and that may still be on disk.
- The directory's lock: an ``flock`` on the directory itself and then on
  ``laios-dir.lock`` inside it (which laios 0.1.0 locks alone), shared while a scrape reads
  the files, exclusive while a fold moves a batch of files into the retired one. The
  directory cannot be deleted under its holder, so deleting ``laios-dir.lock`` does not let
  two processes in at once. Nobody waits for it more than :data:`LOCK_TIMEOUT` seconds.
- ``laios-dir.wait``: held shared by each process while it waits for the directory's lock. A
  fold lets go of the directory's lock between its batches and, before its next batch,
  waits until nobody holds this file (until every waiter has had the directory's lock):
  waiters poll the lock, and would rarely find it free in a gap of microseconds.

An ``flock`` belongs to the open file, not to the process: a child forked while this process
has a lock file open gets a copy of the descriptor and, with it, the lock, for as long as the
child lives (a scrape's shared lock on the directory would block every later fold; a liveness
check's lock on a gone process's file would keep it looking alive). So every descriptor this
module opens is tracked, and a forked child closes its copies at once (``os.register_at_fork``;
a fork waits for an open in progress to be tracked). They are opened non-inheritable
(``O_CLOEXEC``, as ``os.open`` does), so a program a child executes never has them either.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import functools
import logging
import math
import operator
import os
import secrets
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, NoReturn

from laios.execution import _totals_files
from laios.execution._aggregates import LabelSet
from laios.execution._families import STORE_GAUGE_FIELDS
from laios.execution._legacy_totals import bucket_slots, moved_histogram
from laios.execution._logs import LoggedRefusal, WarningLimiter, give_reason
from laios.execution._store_options import MAX_COUNTED_LIMIT
from laios.execution._totals import (
    MAX_LABEL_SETS,
    ExportedTotals,
    capped_totals,
    is_other_label_set,
    other_label_set,
    sum_totals,
)
from laios.execution._totals_files import (
    DEFAULT_LIMITS,
    FILE_MODE,
    Limits,
    NotPermitted,
    OtherVersion,
    Section,
    TooLarge,
    UnreadableFile,
    counts_fit,
    dump,
    read_document,
    section_data,
    sections_of,
    set_file_mode,
    write_document,
)

try:
    import fcntl
except ImportError:  # not POSIX: multiprocess.enable() refuses
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "FOLD_BATCH",
    "HAS_LOCKS",
    "LOCK_TIMEOUT",
    "NO_ROOM",
    "PROCESS_PREFIX",
    "RETIRED",
    "SCRAPE_FOLD_SECONDS",
    "Refusals",
    "SharedDirectory",
    "add_up",
    "close_lock",
    "common_buckets",
    "fold",
    "gather",
    "is_directory",
    "pid_namespace",
    "refuse",
    "retire",
    "what_to_do",
    "without_gauges",
]

_log = logging.getLogger("laios.execution.multiprocess")

#: Whether this platform has ``flock`` (POSIX).
HAS_LOCKS = fcntl is not None
#: How the files of processes begin.
PROCESS_PREFIX = "laios-proc-"
#: The name of the retired file.
RETIRED = "laios-retired.json"
_DIRECTORY_LOCK = "laios-dir.lock"
#: Held shared by the processes waiting for the directory's lock (see above).
_WAITING = "laios-dir.wait"
#: Opens a directory, refusing anything else (0 where the platform has no such flag).
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
#: The longest a process waits for the directory's lock, in seconds: then the call fails (a
#: scrape leaves its fold to a later one) instead of hanging behind a stuck process.
LOCK_TIMEOUT = 5.0
#: The fields of ExportedTotals that are added up (``live``: any of them); any other one (the
#: constant labels, the bucket bounds) keeps sections apart, so a field added to ExportedTotals
#: is one more name here or keeps sections apart.
SUMMED_FIELDS = frozenset({"tools", "custom", "live", *STORE_GAUGE_FIELDS})
_IDENTITY_FIELDS = tuple(
    field.name for field in dataclasses.fields(ExportedTotals) if field.name not in SUMMED_FIELDS
)
#: The fields of ExportedTotals that hold bucket bounds (besides a section's own ``bounds``).
_BUCKET_FIELDS = ("duration_buckets", "queue_wait_buckets")
#: The identity fields other than bucket bounds: what makes one series set.
_LABEL_FIELDS = tuple(name for name in _IDENTITY_FIELDS if name not in _BUCKET_FIELDS)
_warnings = WarningLimiter(60.0)
#: The warnings given once per process (files of another laios version), by key.
_warned_once = WarningLimiter(math.inf)
#: The descriptors this process has open on lock files of the directory (see above).
_lock_fds: set[int] = set()
#: Held across a fork by the forking thread, so that no descriptor is open and not yet tracked
#: at that moment; reentrant, for in the child that thread may close descriptors (another
#: handler, before this module's has replaced it).
_lock_fds_lock = threading.RLock()


def _before_fork() -> None:
    _lock_fds_lock.acquire()


def _after_fork_in_parent() -> None:
    _lock_fds_lock.release()


def _after_fork_in_child() -> None:
    # (The warning limiters need nothing here: each replaces its own lock in a forked child,
    # see WarningLimiter.after_fork_in_child.)
    global _lock_fds_lock
    _lock_fds_lock = threading.RLock()
    pid_namespace.cache_clear()  # (the child may be in another: read again)
    for fd in _lock_fds:  # the parent's locks stay the parent's
        with contextlib.suppress(OSError):
            os.close(fd)
    _lock_fds.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before_fork,
        after_in_parent=_after_fork_in_parent,
        after_in_child=_after_fork_in_child,
    )


@functools.cache
def pid_namespace() -> str | None:
    """What names the pid namespace of this process's pids, written beside the ``pid`` in its
    file: the machine's boot id and the namespace's device and inode (Linux, where
    containers have namespaces of their own); ``None`` where the platform does not say.
    Read once per process (a forked child reads its own)."""
    try:
        namespace = os.stat("/proc/self/ns/pid")
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as handle:
            boot = handle.read().strip()
    except (OSError, ValueError):
        return None
    return f"{boot}/{namespace.st_dev}:{namespace.st_ino}"


#: Lock files are opened without waiting for a writer: a named pipe under a lock file's name
#: would otherwise block its opener for ever (0 where the platform has no such flag).
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
#: Lock files are never opened through a symbolic link: laios makes none, and creating one's
#: target would make an empty file wherever a link planted in the directory points.
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def _open_lock(path: Path, flags: int) -> int:
    """Open a lock file (non-inheritable, as ``os.open`` opens), tracked for forks."""
    with _lock_fds_lock:
        fd = os.open(path, flags | _O_NONBLOCK, FILE_MODE)
        _lock_fds.add(fd)
    return fd


def _create_lock(path: Path, flags: int) -> int:
    """Create a lock file that is not there yet (``O_EXCL``: never one that exists, nor
    through a symbolic link), with :data:`~._totals_files.FILE_MODE` whatever the umask: every
    process sharing the directory opens it, also one of another user.

    Raises:
        FileExistsError: When something is there already.
    """
    fd = _open_lock(path, flags | os.O_CREAT | os.O_EXCL)
    set_file_mode(fd)
    return fd


def _open_lock_file(path: Path) -> int:
    """Open (creating it when missing) a lock file of a fixed name, replacing a symbolic link
    found under that name instead of creating the file it points to.

    Opened for reading only: ``flock`` needs no more, and the file may belong to another user
    (gunicorn's master, started as root, creates it before its workers switch to ``--user``).
    """
    flags = os.O_RDONLY | _O_NOFOLLOW
    for _ in range(8):
        try:
            return _open_lock(path, flags)
        except FileNotFoundError:
            pass
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
            path.unlink(missing_ok=True)  # (laios makes no links: this one was planted)
        try:
            return _create_lock(path, flags)
        except FileExistsError:
            continue  # another process created it meanwhile: open that one
    raise OSError(f"could not open the lock file {path}: it keeps being replaced")


def _stop_waiting(waiting: list[int]) -> None:
    """Close the descriptor of ``laios-dir.wait`` in ``waiting``, if any (see
    :meth:`SharedDirectory.locked`)."""
    while waiting:
        close_lock(waiting.pop())


def close_lock(fd: int) -> None:
    """Close a descriptor of a lock file opened here, and with it its lock; nothing when a fork
    has closed it already (in a child, the descriptors of the parent's locks)."""
    with _lock_fds_lock:
        if fd not in _lock_fds:
            return
        _lock_fds.discard(fd)
        os.close(fd)


#: The longest a fold waits between two batches for the waiters to have had the directory's
#: lock, in seconds: they try it every :data:`_MAX_PAUSE` at least, and one that does not
#: take it by then (a process stopped as it waits) must not slow every batch down.
_LET_IN_SECONDS = 0.5
#: The longest pause between two tries of a lock that is held, in seconds (short: a fold
#: waits for its waiters to have had the directory's lock between two of its batches).
_MAX_PAUSE = 0.01


def _flock(
    fd: int,
    operation: int,
    path: Path,
    deadline: float,
    waiting: Callable[[], None] | None = None,
) -> None:
    """``flock(fd, operation)``, waiting until ``deadline`` (``time.monotonic()``) at most;
    ``waiting`` is called each time the lock is found held.

    Raises:
        TimeoutError: When another process still holds the lock by then.
    """
    pause = 0.001
    while True:
        try:
            fcntl.flock(fd, operation | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if waiting is not None:
                waiting()
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"{path} stayed locked by another process for {LOCK_TIMEOUT:g} s"
                ) from None
        time.sleep(pause)
        pause = min(2 * pause, _MAX_PAUSE)


#: The errors of a file system with no room: full, or a quota or file size limit reached.
NO_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
#: The errors of a directory this process may not write in: its owner or mode, a read-only mount.
_NOT_WRITABLE = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})
#: The errors of a process (or a system) out of file descriptors.
_TOO_MANY_FILES = frozenset({errno.EMFILE, errno.ENFILE})


def _sticky_directory(exc: BaseException) -> Path | None:
    """The directory of the file ``exc`` (a refused write, rename or delete) is about, when
    this process may write to it and it has the sticky bit: the refusal is then the sticky
    bit's (another user's file), which no mode of the directory lifts."""
    name = getattr(exc, "filename", None)
    if not isinstance(name, str):
        return None
    parent = Path(name).parent
    try:
        sticky = bool(os.stat(parent).st_mode & stat.S_ISVTX)
    except OSError:
        return None
    return parent if sticky and os.access(parent, os.W_OK) else None


def what_to_do(exc: BaseException) -> str:
    """What to do about a write or fold in the directory that failed with ``exc``."""
    if isinstance(exc, TimeoutError):
        return (
            "another process held the directory's lock too long: if this keeps failing, "
            "look for a stuck process with the directory open (fuser, lsof)"
        )
    code = getattr(exc, "errno", None)
    if code in NO_ROOM:
        return "make room on the directory's file system (full, or a quota or size limit)"
    if code in _TOO_MANY_FILES:
        return (
            "this process has too many files open (its connections among them): raise its "
            "limit of open files (ulimit -n)"
        )
    if code in _NOT_WRITABLE:
        sticky = _sticky_directory(exc)
        if sticky is not None:
            return (
                f"{sticky} has the sticky bit (as /dev/shm and /tmp have): there only a file's "
                "owner may replace or delete it, and the processes sharing it run as other "
                "users; give them a directory of its own inside it (such as "
                f"{sticky / 'myservice-laios'}), owned by the workers' user"
            )
        return (
            "make the directory writable by every process that shares it (its owner, its "
            "mode, a read-only mount)"
        )
    return "check that the directory exists, is writable by this process and has room"


def warn(key: str, message: str, *args: object) -> None:
    """Log a warning, at most once a minute per ``key``."""
    if _warnings.should_log(key) is not None:
        _log.warning(message, *args)


class _DirectoryGone(LoggedRefusal, FileNotFoundError):
    """The scrape refused for the directory deleted under the processes (warned in words
    already: the server logs no traceback for it)."""


def refuse(key: str, message: str, reason: str) -> NoReturn:
    """Fail a scrape with ``message``, warned at most once a minute per ``key``; ``reason``
    is what the HTTP answer says (see :func:`~laios.execution._logs.give_reason`).

    Raises:
        OSError: Always (a :class:`LoggedRefusal`: the server logs no traceback for it).
    """
    warn(key, "%s", message)
    refusal = LoggedRefusal(message)
    give_reason(refusal, reason)
    raise refusal


class Refusals:
    """When this process first found each of the troubles that fail its scrapes for a while
    (``time.monotonic()``, by trouble): a directory created anew, a live process's damaged
    file. Scrapes fail for a wait from then, time for the live processes to write their files
    again: a sum without their counts would go backwards."""

    def __init__(self) -> None:
        self._found: dict[str, float] = {}

    def __contains__(self, key: str) -> bool:
        return key in self._found

    def found(self, key: str) -> None:
        """Found ``key`` now (again: its wait starts over)."""
        self._found[key] = time.monotonic()

    def left(self, key: str, wait: float) -> float:
        """Seconds the scrapes still fail for ``key``: ``wait`` from when it was first found
        (now, when it was not found yet); 0 once they need not."""
        now = time.monotonic()
        return max(self._found.setdefault(key, now) + wait - now, 0.0)

    def forget(self, key: str) -> None:
        self._found.pop(key, None)

    def keep_only(self, keys: Iterable[str]) -> None:
        """Forget every trouble but ``keys`` (those still there: bounded)."""
        for key in self._found.keys() - set(keys):
            del self._found[key]


def warn_once(key: str, message: str, *args: object) -> None:
    """Log a warning once per ``key`` in this process (a key forgotten among more than
    11,000, seen longest ago, may be warned about again: see WarningLimiter)."""
    if _warned_once.should_log(key) is not None:
        _log.warning(message, *args)


def _warn_other_version(path: Path, exc: OtherVersion, *, retired: bool = False) -> None:
    what = (
        "the retired totals of processes of that version are left out, and no file is folded "
        "here while it is there (files of gone processes are counted where they are)"
        if retired
        else "its totals are left out of this sum"
    )
    warn_once(
        f"version {path} {exc}",
        "%s: %s. Its processes count it; %s. It is never folded, deleted or moved by this "
        "version: run one laios version per directory, or let the mixed versions end (the sum "
        "a scrape shows depends on the version of the worker that answers meanwhile)",
        path,
        exc,
        what,
    )


def _warn_not_permitted(path: Path, exc: NotPermitted, *, retired: bool = False) -> None:
    what = (
        "the retired totals of gone processes are left out of this sum, and no file is folded "
        "here while it is there (files of gone processes are counted where they are)"
        if retired
        else "its totals are left out of this sum"
    )
    warn(
        f"not permitted {path}",
        "%s %s: this process may not read it (its owner or mode), so %s. It is left where it "
        "is, never folded or moved aside: every process sharing the directory must be able "
        "to read the others' files (laios creates them 0644); give it an owner or mode they "
        "may read",
        path,
        exc,
        what,
    )


def write_totals(path: Path, body: bytes) -> None:
    """:func:`write_document`, warning first (at most once a minute per file) when ``body`` is
    larger than any process reads of one file: scrapes would leave it out."""
    if len(body) > _totals_files.MAX_FILE_BYTES:
        warn(
            f"too large {path}",
            "writing %s with %d bytes, more than the %d MiB read of one file: scrapes leave it "
            "out; lower the stores' max_tool_labels or max_error_types, or use fewer sets of "
            "constant labels",
            path,
            len(body),
            _totals_files.MAX_FILE_BYTES >> 20,
        )
    write_document(path, body)


# -- sections: adding up, dropping gauges ---------------------------------------------------


def _identity(section: Section) -> tuple[object, ...]:
    """What two sections must share to be added: bucket bounds and any label set."""
    return (section.bounds, *(getattr(section.totals, name) for name in _IDENTITY_FIELDS))


def add_up(sections: list[Section]) -> list[Section]:
    """The sections added together per :func:`_identity`, in order of first appearance."""
    groups: dict[tuple[object, ...], list[Section]] = {}
    for section in sections:
        groups.setdefault(_identity(section), []).append(section)
    added = []
    for group in groups.values():
        first = group[0].totals
        (total,) = sum_totals(section.totals for section in group)
        kept = {name: getattr(first, name) for name in _IDENTITY_FIELDS}
        added.append(
            Section(group[0].bounds, dataclasses.replace(total, **kept), _largest_limits(group))
        )
    return added


def _largest_limits(sections: list[Section]) -> Limits | None:
    """The largest of each limit the sections carry (``None`` when none carries any)."""
    known = [section.limits for section in sections if section.limits is not None]
    if not known:
        return None
    tools, errors, custom = zip(*known, strict=True)
    return (max(tools), max(errors), max(custom))


def retire(
    previous: list[Section], gone: list[Section], live: Callable[[], list[Section]] = list
) -> list[Section]:
    """The retired sections: ``previous`` (the retired file's) plus the sections of gone
    processes, added up and kept within the label limits of the processes that wrote them
    (:data:`DEFAULT_LIMITS` for those written without), so that the retired file stays
    bounded however many processes with tools, error types and custom metrics of their own
    come and go. Labels ``previous`` exports within the limits keep their place; a label past
    them that a live process still exports keeps it too, for as long as one does: ``live``
    returns the sections of the live processes' files, read once, when a limit is first
    reached (see :func:`~laios.execution._totals.capped_totals`)."""
    earlier: dict[tuple[object, ...], list[Section]] = {}
    for section in previous:
        earlier.setdefault(_identity(section), []).append(section)
    read_live = functools.cache(live)

    def exported(labels: LabelSet) -> list[ExportedTotals]:
        return [section.totals for section in read_live() if section.totals.labels == labels]

    retired = []
    for section in _within_label_sets(add_up([*previous, *gone]), read_live):
        before = earlier.get(_identity(section))
        prior = None
        if before is not None:  # (the order of its keys says which are within the limits:
            # one section, as this function writes, keeps it; several added up are sorted)
            prior = (before[0] if len(before) == 1 else add_up(before)[0]).totals
        limits = section.limits or DEFAULT_LIMITS
        read = functools.partial(exported, section.totals.labels)
        totals = capped_totals(section.totals, limits, prior, read)
        retired.append(section._replace(totals=totals, limits=limits))
    return retired


def _within_label_sets(sections: list[Section], live: Callable[[], list[Section]]) -> list[Section]:
    """``sections`` (the retired file's first) with at most
    :data:`~laios.execution._totals.MAX_LABEL_SETS` sets of constant labels, as a process's
    registry keeps at most that many: those past it that no live process exports are added
    into one set with the same names and every value ``other``, as tools past their cap join
    ``other``. So workers replaced for ever, each with label values of its own (a worker id),
    leave a bounded retired file and ``/metrics``, and every count stays in the sum. Those sets
    of ``other`` values (one per set of names) are capped the same way: past
    :data:`~laios.execution._totals.MAX_LABEL_SETS` of them (workers each with a label name
    of its own), further ones are added into the set without constant labels, as the
    OpenTelemetry instruments record them. The sets within a cap keep their place; one past it
    that a live process exports keeps its own series while one does (moved at once, that
    series would drop by the gone part)."""
    exported: set[LabelSet] | None = None

    def exported_now() -> set[LabelSet]:
        nonlocal exported
        if exported is None:
            exported = {section.totals.labels for section in live()}
        return exported

    named = list(
        dict.fromkeys(s.totals.labels for s in sections if not is_other_label_set(s.totals.labels))
    )
    if len(named) > MAX_LABEL_SETS:
        moved = {labels for labels in named[MAX_LABEL_SETS:] if labels not in exported_now()}
        sections = _relabelled(sections, {labels: other_label_set(labels) for labels in moved})
    others = list(
        dict.fromkeys(
            s.totals.labels
            for s in sections
            if s.totals.labels and is_other_label_set(s.totals.labels)
        )
    )
    if len(others) > MAX_LABEL_SETS:
        moved = {labels for labels in others[MAX_LABEL_SETS:] if labels not in exported_now()}
        sections = _relabelled(sections, dict.fromkeys(moved, ()))
    return sections


def _relabelled(sections: list[Section], into: dict[LabelSet, LabelSet]) -> list[Section]:
    """``sections`` with those whose labels are keys of ``into`` given the labels it maps them
    to, added up (unchanged when ``into`` is empty)."""
    if not into:
        return sections
    # (those relabelled after the rest: a set they join keeps its place, and a set they make
    # comes after every set already there, so that it cannot push one within a cap past it)
    kept = [section for section in sections if section.totals.labels not in into]
    moved = [
        section._replace(
            totals=dataclasses.replace(section.totals, labels=into[section.totals.labels])
        )
        for section in sections
        if section.totals.labels in into
    ]
    return add_up([*kept, *moved])


def without_gauges(section: Section) -> Section:
    """``section`` as a process that is gone (or no longer runs tasks) leaves it: the gauges
    all zero, and not live, so that a label set no live process exports shows its counters
    and no gauges, as a label set whose stores are all gone does in one process."""
    totals = section.totals
    tools = {label: dataclasses.replace(t, in_flight=0) for label, t in totals.tools.items()}
    zeros: dict[str, Any] = dict.fromkeys(STORE_GAUGE_FIELDS, 0)
    return section._replace(totals=dataclasses.replace(totals, tools=tools, live=False, **zeros))


# -- the directory --------------------------------------------------------------------------


def _stem(name: str) -> str | None:
    """The process part of a file name (``laios-proc-<pid>-<token>``), or ``None``."""
    return name.split(".", 1)[0] if name.startswith(PROCESS_PREFIX) else None


class SharedDirectory:
    """The shared directory: its files, its lock, the liveness of their processes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        #: Processes whose files are left where they are, never folded: another laios
        #: version's (whose processes count and fold them), or files this process may not
        #: read (which a process that may read them folds). Each scrape forgets those whose
        #: files are gone, so that it stays bounded.
        self.left_alone: set[str] = set()
        #: When this process first found the file of a live process damaged (truncated,
        #: overwritten), by process; forgotten once the file reads again, or is gone (see
        #: :func:`gather`).
        self.damaged = Refusals()

    def data(self, stem: str) -> Path:
        return self.path / f"{stem}.json"

    def lock_file(self, stem: str) -> Path:
        return self.path / f"{stem}.lock"

    def stems(self, *, with_orphans: bool = False) -> list[str]:
        """Processes with a data file (and, ``with_orphans``, those with only a lock file or
        a temporary file: a process that has not written its data file yet)."""
        with_data, orphans = self.listing()
        return sorted(with_data | orphans) if with_orphans else sorted(with_data)

    def listing(self) -> tuple[set[str], set[str]]:
        """The processes with a data file, and those with other files only (see
        :meth:`stems`), from one read of the directory."""
        with_data: set[str] = set()
        others: set[str] = set()
        with os.scandir(self.path) as entries:
            for entry in entries:
                stem = _stem(entry.name)
                # (no file of a process is a directory; a link is read as unreadable, and
                # following a link loop here would fail every scrape)
                if stem is None or entry.is_dir(follow_symlinks=False):
                    continue
                # (only the data file's own name: one with another suffix before ".json" is
                # none that laios writes, and would be taken for a gone process's file that
                # no fold ever removes, making every scrape fold)
                (with_data if entry.name == f"{stem}.json" else others).add(stem)
        return with_data, others - with_data

    @contextlib.contextmanager
    def locked(self, *, shared: bool) -> Iterator[None]:
        """Hold the directory's lock: shared to read the files, exclusive to fold them.

        Raises:
            TimeoutError: When it stays held by another process for :data:`LOCK_TIMEOUT` s.
        """
        operation = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        deadline = time.monotonic() + LOCK_TIMEOUT
        waiting: list[int] = []  # (the descriptor of laios-dir.wait, while this one waits)
        announce = functools.partial(self._announce, waiting)
        # The directory itself first: it cannot be deleted under its holder, as a lock file
        # can (a newcomer would then create a new one and lock that). Then the lock file,
        # which processes of laios 0.1.0 lock, so they and this one keep each other out too.
        directory = _open_lock(self.path, os.O_RDONLY | _O_DIRECTORY)
        try:
            _flock(directory, operation, self.path, deadline, announce)
            path = self.path / _DIRECTORY_LOCK
            fd = _open_lock_file(path)
            try:
                _flock(fd, operation, path, deadline, announce)
                _stop_waiting(waiting)
                yield
            finally:
                close_lock(fd)  # releases the lock
        finally:
            _stop_waiting(waiting)
            close_lock(directory)

    def _announce(self, waiting: list[int]) -> None:
        """Say that this process waits for the directory's lock (``laios-dir.wait`` held
        shared, its descriptor in ``waiting``), so that a fold lets it in between its
        batches; nothing when it has said so already, or cannot (it polls all the same)."""
        if waiting:
            return
        try:
            fd = _open_lock_file(self.path / _WAITING)
        except OSError:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:  # (a fold looking for waiters this instant: said at the next try)
            close_lock(fd)
            return
        waiting.append(fd)

    def let_waiters_in(self) -> None:
        """Wait until every process that waits for the directory's lock has had it (at most
        :data:`_LET_IN_SECONDS`, then go on all the same): a fold calls it between two
        batches, not holding the lock."""
        path = self.path / _WAITING
        try:
            fd = _open_lock_file(path)
        except OSError:
            return
        try:
            _flock(fd, fcntl.LOCK_EX, path, time.monotonic() + _LET_IN_SECONDS)
        except OSError:  # (a waiter stopped, or waiters one after another: the fold goes on)
            pass
        finally:
            close_lock(fd)

    def _open_existing_lock(self, stem: str) -> int | None:
        """The lock file of ``stem``, opened to probe its lock; ``None`` when there is none.
        A symbolic link in its place counts as none: laios makes no links, and opening its
        target could open anything."""
        try:
            return _open_lock(self.lock_file(stem), os.O_RDONLY | _O_NOFOLLOW)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ELOOP):
                return None
            raise

    def alive(self, stem: str) -> bool:
        """Whether the process of ``stem`` still holds its lock; without a lock file, whether
        the process its data file names still runs (see :meth:`owner_runs`)."""
        held = self.lock_held(stem)
        return self.owner_runs(stem) if held is None else held

    def lock_held(self, stem: str) -> bool | None:
        """Whether a process holds the lock of ``stem``; ``None`` when it has no lock file.

        Only a held lock vouches for a file's gauges: a file without a lock file may be a dead
        process's whose pid another process has taken since (:meth:`owner_runs` cannot tell),
        and its live owner, if it has one, moves its totals to a new name at its next write.
        """
        fd = self._open_existing_lock(stem)
        if fd is None:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            close_lock(fd)
        return False

    def owner_runs(self, stem: str) -> bool:
        """Whether the process whose ``pid`` the data file of ``stem`` names still runs.

        Asked only of a file whose lock file is missing: the lock file of a live process
        deleted under it (which moves to a new name at its next write; folding its file
        meanwhile would count its totals twice), or a gone process's. ``False`` without a data
        file or a pid in it. A pid reused since is taken for the process: its file then waits
        for that pid to be gone, its counts counted once.

        A pid is asked only of a file written in this process's pid namespace (see
        :func:`pid_namespace`): one written in another (a container sharing the directory),
        or that does not say where, names a pid this process cannot ask about, so its
        process may be alive, and its file is never folded while its lock file is missing.
        """
        try:
            document = read_document(self.data(stem))
        except (FileNotFoundError, UnreadableFile):
            return False
        pid = document.get("pid")
        if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
            return False  # (0 and negative pids name process groups)
        namespace = pid_namespace()
        if namespace is not None and document.get("pid_namespace") != namespace:
            return True  # (not a pid of ours: its process may be alive)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True  # a process of another user
        except OverflowError:
            return False
        return True

    def claim(self, pid: int) -> tuple[str, int]:
        """Take a new name for process ``pid`` and lock its lock file, held for as long as the
        process lives (the lock says that it is alive). Returns the name and the descriptor (to
        close with :func:`close_lock`).

        Raises:
            OSError: When no lock file can be created.
        """
        for _ in range(8):
            stem = f"{PROCESS_PREFIX}{pid}-{secrets.token_hex(6)}"
            path = self.lock_file(stem)
            try:
                fd = _create_lock(path, os.O_RDWR | _O_NOFOLLOW)
            except FileExistsError:
                continue  # something under the new name (a planted link): take another one
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                if self.holds(stem, fd):
                    return stem, fd
            except BlockingIOError:
                # A fold removing the name this instant, or another process checking whether
                # it is alive: take another name, leaving nothing under this one.
                with contextlib.suppress(OSError):
                    if self.holds(stem, fd):
                        path.unlink()
            close_lock(fd)
        raise OSError(f"could not take a lock file in {self.path}")

    def holds(self, stem: str, fd: int) -> bool:
        """Whether ``fd`` is the lock file of ``stem`` on disk (not one removed meanwhile)."""
        try:
            on_disk = os.stat(self.lock_file(stem))
        except FileNotFoundError:
            return False
        held = os.fstat(fd)
        return (held.st_dev, held.st_ino) == (on_disk.st_dev, on_disk.st_ino)

    def claim_if_gone(self, stem: str) -> int | None:
        """Lock the lock file of a gone process and return its descriptor (to hold while the
        files are deleted, so that a process just starting under that name notices); ``None``
        while its process lives. ``-1`` when there is no lock file and the process its data
        file names is gone (:meth:`owner_runs`)."""
        fd = self._open_existing_lock(stem)
        if fd is None:
            return None if self.owner_runs(stem) else -1
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            close_lock(fd)
            return None
        return fd

    def read(self, stem: str) -> list[Section] | None:
        """The sections of the file of ``stem``; ``None`` (with a warning) when it cannot be
        read: garbage (at most once a minute), another laios version's (once) or one this
        process may not read (at most once a minute); ``stem`` is then in
        :attr:`left_alone` in the last two cases."""
        try:
            return self.read_or_raise(stem)
        except UnreadableFile as exc:
            self.warn_unreadable(stem, exc)
            return None

    def read_or_raise(self, stem: str) -> list[Section] | None:
        """As :meth:`read`, but raising for garbage instead of warning.

        Raises:
            UnreadableFile: When the file is garbage (truncated, overwritten, too large, not
                a regular file); neither another version's nor one this process may not read.
        """
        path = self.data(stem)
        try:
            sections = sections_of(read_document(path))
        except FileNotFoundError:
            sections = []
        except OtherVersion as exc:
            self.left_alone.add(stem)
            _warn_other_version(path, exc)
            return None
        except NotPermitted as exc:
            self.left_alone.add(stem)
            _warn_not_permitted(path, exc)
            return None
        self.left_alone.discard(stem)
        return sections

    def warn_unreadable(self, stem: str, exc: UnreadableFile) -> None:
        """Warn (at most once a minute per file) that the file of ``stem`` is left out."""
        path = self.data(stem)
        warn(f"unreadable {path}", "leaving out %s, which cannot be read: %s", path, exc)

    def damage_wait(self, stem: str, exc: UnreadableFile, wait: float) -> float:
        """Seconds the scrapes still fail for the damaged file of ``stem``, a live process's
        (``wait`` from when this process first found it damaged; 0 once they need not, and
        for a file too large, which its process's next write does not make smaller)."""
        if isinstance(exc, TooLarge):
            return 0.0
        return self.damaged.left(stem, wait)

    def read_retired(self) -> tuple[list[Section], frozenset[str]]:
        """The retired sections, and the names of the files they already hold."""
        path = self.path / RETIRED
        try:
            document = read_document(path)
            sections = sections_of(document)
        except FileNotFoundError:
            return [], frozenset()
        absorbed = document.get("absorbed", [])
        if not isinstance(absorbed, list) or not all(isinstance(s, str) for s in absorbed):
            raise UnreadableFile("its list of absorbed files is not a list of names")
        # (Earlier versions wrote the retired totals as live: gone processes never are.)
        sections = [without_gauges(s) if s.totals.live else s for s in sections]
        return sections, frozenset(absorbed)

    def unlink(self, stem: str) -> None:
        """Remove the files of ``stem``; a directory under one of its names, which laios
        never makes, is left where it is (failing on it, every fold would fail)."""
        for suffix in (".json", ".json.tmp", ".lock"):
            path = self.path / f"{stem}{suffix}"
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            except OSError as exc:  # (EISDIR on Linux, EPERM elsewhere)
                if exc.errno not in (errno.EISDIR, errno.EPERM) or not is_directory(path):
                    raise


def is_directory(path: Path) -> bool:
    """Whether ``path`` is a directory itself (not a link to one)."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


#: The most gone processes one round of a fold takes (it holds each one's lock file open until
#: its files are deleted): a fold of more goes round again, so that it never needs more
#: descriptors than that, whatever the number of files (``ulimit -n`` is often 1024).
FOLD_BATCH = 64
#: The longest a scrape folds, in seconds: it then reads the directory (counting the files of
#: the gone processes left where they are), and a later scrape folds the rest.
SCRAPE_FOLD_SECONDS = 1.0


def fold(directory: SharedDirectory, *, budget: float | None = None) -> int:
    """Fold the files of gone processes into the retired file; return how many were folded.

    Takes :data:`FOLD_BATCH` gone processes at a time, each batch under the directory's
    exclusive lock (written to the retired file, then deleted: the totals are exact between
    two batches), and lets go of the lock between batches, letting in whoever waits for it
    (scrapes, :func:`~laios.execution.multiprocess.enable`), until none is left, or until
    ``budget`` seconds have passed (the rest is left to a later fold).

    Raises:
        TimeoutError: When the directory's lock stays held for :data:`LOCK_TIMEOUT` seconds
            (the batches folded until then stay folded).
    """
    stop = None if budget is None else time.monotonic() + budget
    pending: list[str] | None = None
    alive: list[str] = []
    total = 0
    batch = FOLD_BATCH
    while True:
        with directory.locked(shared=False):
            if pending is None:
                pending = directory.stems(with_orphans=True)
            found_alive = len(alive)
            try:
                folded, pending = _fold_batch(directory, pending, alive, batch)
            except OSError as exc:
                if exc.errno not in _TOO_MANY_FILES or batch == 1:
                    raise
                # Fewer descriptors free than the batch needs (a process near its limit of
                # open files: a worker holding many connections). A batch that fails changes
                # nothing that counts (the retired file is written, and the files deleted, at
                # its end): a smaller one is tried, rather than no fold ever succeeding.
                del alive[found_alive:]
                batch = max(1, batch // 2)
                continue
        total += folded
        if not pending or (stop is not None and time.monotonic() >= stop):
            return total
        directory.let_waiters_in()


def _fold_batch(
    directory: SharedDirectory, pending: list[str], alive: list[str], batch: int
) -> tuple[int, list[str]]:
    """One round of :func:`fold` (the caller holds the directory's exclusive lock): folds the
    gone processes among ``pending``, in order, until ``batch`` lock files are held;
    returns how many it folded and the processes it did not look at yet. Adds those it found
    alive to ``alive``. A process whose files are gone (folded by another process between two
    rounds) is passed over."""
    try:
        retired, absorbed = directory.read_retired()
    except OtherVersion as exc:  # its counts are that version's: never replaced here
        _warn_other_version(directory.path / RETIRED, exc, retired=True)
        return 0, []
    except NotPermitted as exc:  # its counts are no garbage: left for one that may read it
        _warn_not_permitted(directory.path / RETIRED, exc, retired=True)
        return 0, []
    except UnreadableFile as exc:
        aside = directory.path / (RETIRED + ".unreadable")
        _log.warning("the retired file cannot be read (%s); moved to %s", exc, aside)
        os.replace(directory.path / RETIRED, aside)
        retired, absorbed = [], frozenset()
    leftovers = [stem for stem in absorbed if directory.data(stem).exists()]
    folded: list[str] = []
    gone: list[tuple[str, list[Section]]] = []
    held: list[int] = []
    # Gone processes without a data file (killed before their first write), and what a fold
    # cut short left of the files it absorbed: nothing to count, their files are removed.
    cleared: list[str] = []
    remnants: list[str] = []
    looked = 0
    try:
        for stem in pending:
            if len(held) >= batch:  # (no more lock files open: the rest next round)
                break
            looked += 1
            if stem in absorbed:
                if stem not in leftovers:  # (its data file deleted, its lock file left)
                    fd = directory.claim_if_gone(stem)
                    if fd is not None and fd >= 0:
                        held.append(fd)
                        remnants.append(stem)
                continue
            fd = directory.claim_if_gone(stem)
            if fd is None:
                alive.append(stem)
                continue
            if fd >= 0:
                held.append(fd)
                # Its lock, free, is held here: a process just starting under this name (its
                # lock file created, not locked yet) takes another name (see claim()).
                if not directory.data(stem).exists():
                    cleared.append(stem)
                    continue
            elif not os.path.lexists(directory.data(stem)):
                continue  # (no lock file, no data file: folded elsewhere meanwhile)
            sections = directory.read(stem)
            if stem in directory.left_alone:
                continue  # for its version's processes, or one that may read it, to fold
            gone.append((stem, [without_gauges(section) for section in sections or ()]))
            folded.append(stem)
        rest = pending[looked:]
        for stem in (*cleared, *remnants):
            directory.unlink(stem)
        if not folded and not leftovers:
            return len(cleared), rest

        def live() -> list[Section]:  # (the live processes' files, as a scrape reads them)
            found = [*alive, *(stem for stem in rest if directory.alive(stem))]
            return [s for stem in found for s in directory.read(stem) or ()]

        if folded:
            # Named until deleted: a fold cut short here must not count them again.
            body = dump(
                {
                    "kind": "retired",
                    "absorbed": [*leftovers, *folded],
                    "sections": [section_data(s) for s in _retired(directory, retired, gone, live)],
                }
            )
            write_totals(directory.path / RETIRED, body)
        for stem in (*leftovers, *folded):
            directory.unlink(stem)
    finally:
        for fd in held:
            close_lock(fd)
    return len(folded) + len(cleared), rest


def _readable(sections: list[Section]) -> bool:
    """Whether ``sections``, written to the retired file, read back: each whole number at most
    2**63 - 1 and each other number finite, as a file's must be (what
    :func:`~laios.execution._totals_files.sections_of` checks of them; the rest, written as
    these sections are, always reads back). Checked on the numbers, in one pass, rather than
    by writing and reading the file: a fold does it under the directory's lock."""
    pending: list[Any] = [section_data(section) for section in sections]
    while pending:
        data = pending.pop()
        kind = type(data)
        if kind is int:
            if not 0 <= data <= MAX_COUNTED_LIMIT:
                return False
        elif kind is float:
            if not math.isfinite(data):
                return False
        elif kind is str or kind is bool or data is None:
            continue
        elif kind is dict:
            pending.extend(data.keys())
            pending.extend(data.values())
        elif kind is list or isinstance(data, tuple):  # (named tuples too)
            fit = counts_fit(data)  # (bucket counts: checked at once)
            if fit is None:
                pending.extend(data)
            elif not fit:
                return False
        else:  # (a dataclass of the totals)
            pending.extend(_field_values(kind)(data))
    return True


def _field_values(kind: type[Any]) -> Callable[[Any], tuple[Any, ...]]:
    """What gives the fields' values of an instance of ``kind``, a dataclass of the totals."""
    found = _FIELD_VALUES.get(kind)
    if found is None:
        names = [field.name for field in dataclasses.fields(kind)]
        if len(names) == 1:  # (attrgetter gives the value itself, not a tuple, for one name)
            found = _FIELD_VALUES[kind] = lambda data: (getattr(data, names[0]),)
        else:
            found = _FIELD_VALUES[kind] = operator.attrgetter(*names)
    return found


_FIELD_VALUES: dict[type[Any], Callable[[Any], tuple[Any, ...]]] = {}


def _retired(
    directory: SharedDirectory,
    previous: list[Section],
    gone: list[tuple[str, list[Section]]],
    live: Callable[[], list[Section]],
) -> list[Section]:
    """:func:`retire` of the ``gone`` processes' sections (each with its process), leaving out
    those whose counts would take the retired totals past what a file may hold (files each
    readable whose counts add up past 2**63 - 1, or whose sums add up past the largest float):
    written so, the retired file could not be read back, and would be moved aside with the
    counts of every process gone before."""
    sections = [section for _, parts in gone for section in parts]
    retired = retire(previous, sections, live)
    if _readable(retired):
        return retired
    kept: list[Section] = []
    for stem, parts in gone:  # (rare: one at a time, to find the files that overflow)
        if _readable(retire(previous, [*kept, *parts], live)):
            kept.extend(parts)
            continue
        path = directory.data(stem)
        warn(
            f"overflow {path}",
            "the counts of %s, a gone process's file, are left out of the retired totals: "
            "added to them, a count would pass 2**63 - 1 or a sum the largest float, which "
            "no file may hold",
            path,
        )
    return retire(previous, kept, live)


def gather(
    directory: SharedDirectory,
    own_stem: str | None,
    own: list[Section],
    *,
    interval: float | None = None,
    wait: float = 0.0,
) -> list[Section]:
    """Every process's sections and the retired ones, added up (``own`` for ``own_stem``).

    A live process's file that cannot be read (truncated, overwritten) fails the scrape for
    ``wait`` seconds from when this process first finds it so, time for that process (which
    writes every ``interval`` seconds) to write it again: a sum without its counts would go
    backwards. Then, as a gone process's, it is left out with a warning.

    Raises:
        OSError: When the directory cannot be read; ``FileNotFoundError`` saying so when it
            is gone (deleted under the processes); ``OSError`` naming the damaged file of a
            live process, as above.
    """
    try:
        return _gather(directory, own_stem, own, interval, wait)
    except FileNotFoundError as exc:
        if directory.path.is_dir():
            raise
        message = (
            f"the multiprocess directory {directory.path} is gone (deleted?): /metrics fails "
            "until it is back, rather than show a sum without the counts of the workers that "
            "are gone. Create it again (the live workers write their files there within their "
            "interval) or restart the service; the gone workers' counts are lost with it, "
            "which Prometheus reads as one counter reset"
        )
        warn(f"gone {directory.path}", "%s", message)
        gone = _DirectoryGone(errno.ENOENT, message)
        give_reason(
            gone,
            "the multiprocess directory is gone (deleted?): /metrics fails until it is created "
            "again, or the service restarted; the server's log names it",
        )
        raise gone from exc


def _anything_to_fold(directory: SharedDirectory, own_stem: str | None) -> bool:
    """Whether the directory holds files of a gone process: a data file of a process that is
    not alive, or the lock file of a process that took it and is gone before it wrote its data
    file (a worker killed as it started: its lock file, free, would stay for ever, as no other
    gone process's data file may start a fold). A lock file without a data file that a process
    holds is a live one's, just starting; one not locked yet (created an instant before) is
    found free, and its process, seeing it folded, takes another name."""
    with_data, orphans = directory.listing()
    return any(
        s != own_stem and s not in directory.left_alone and not directory.alive(s)
        for s in sorted(with_data)
    ) or any(directory.lock_held(s) is False for s in sorted(orphans))


def _gather(
    directory: SharedDirectory,
    own_stem: str | None,
    own: list[Section],
    interval: float | None,
    wait: float,
) -> list[Section]:
    if _anything_to_fold(directory, own_stem):
        try:
            fold(directory, budget=SCRAPE_FOLD_SECONDS)
        except OSError as exc:  # left to a later scrape: the read below counts those files
            warn(
                f"fold {directory.path}",
                "folding the files of gone processes failed: %s. The scrapes count their files "
                "where they are meanwhile (their counters, not their gauges), and a later "
                "scrape folds them; %s",
                exc,
                what_to_do(exc),
            )
    parts: list[tuple[str, list[Section]]] = [("this process", own)]
    with directory.locked(shared=True):
        try:
            retired, absorbed = directory.read_retired()
        except OtherVersion as exc:
            _warn_other_version(directory.path / RETIRED, exc, retired=True)
            retired, absorbed = [], frozenset()
        except NotPermitted as exc:
            _warn_not_permitted(directory.path / RETIRED, exc, retired=True)
            retired, absorbed = [], frozenset()
        except UnreadableFile as exc:  # the next fold moves it aside
            warn(f"retired {directory.path}", "leaving out the retired file: %s", exc)
            retired, absorbed = [], frozenset()
        parts.append((str(directory.path / RETIRED), retired))
        stems = directory.stems()
        directory.left_alone.intersection_update(stems)  # (forget those gone since: bounded)
        directory.damaged.keep_only(stems)
        damaged: list[tuple[Path, UnreadableFile, float]] = []
        for stem in stems:
            if stem == own_stem or stem in absorbed:
                continue
            try:
                sections = directory.read_or_raise(stem) or []
            except UnreadableFile as exc:
                # A live process's file (its lock held) is written again within its interval:
                # a sum without its counts would go backwards, then count them twice.
                left = 0.0
                if interval is not None and directory.lock_held(stem) is True:
                    left = directory.damage_wait(stem, exc, wait)
                if left > 0.0:
                    damaged.append((directory.data(stem), exc, left))
                    continue
                directory.warn_unreadable(stem, exc)
                sections = []
            else:
                directory.damaged.forget(stem)
            # Gauges count only under a held lock: a file gone since the fold above, or one
            # without a lock file (a dead process's under a reused pid, or a live one's about
            # to move to a new name), keeps its counters alone.
            if directory.lock_held(stem) is not True:
                sections = [without_gauges(section) for section in sections]
            parts.append((str(directory.data(stem)), sections))
    if damaged:
        assert interval is not None
        _fail_for_damage(directory, damaged, interval)
    return add_up(common_buckets(parts, directory.path))


def _fail_for_damage(
    directory: SharedDirectory, damaged: list[tuple[Path, UnreadableFile, float]], interval: float
) -> None:
    """Fail the scrape for the ``damaged`` files of live processes (each with why it cannot
    be read and how many seconds more scrapes fail for it), saying so.

    Raises:
        OSError: Always.
    """
    path, exc, _ = damaged[0]
    more = f" (and {len(damaged) - 1} more)" if len(damaged) > 1 else ""
    message = (
        f"the multiprocess file {path}{more} of a live worker is damaged (truncated or "
        f"overwritten?): {exc}. Its worker writes it again within its interval "
        f"({interval:g} s): /metrics fails for {max(left for _, _, left in damaged):.1f} s "
        "more, rather than show a sum without that worker's counts (Prometheus would read a "
        "counter reset, then count its tasks twice); if it is still damaged then, it is left "
        "out. Keep the directory out of reach of anything but its workers"
    )
    reason = (
        "a live worker's file in the multiprocess directory is damaged (truncated or "
        "overwritten?): /metrics fails until that worker writes it again, within its "
        "interval; the server's log names the file"
    )
    refuse(f"damaged {path}", message, reason)


def common_buckets(parts: list[tuple[str, list[Section]]], where: Path) -> list[Section]:
    """The sections of ``parts`` (each with where it was read), those with the same constant
    labels in the same histogram bucket bounds: where processes sharing the directory ``where``
    count one label set in other bounds (two executors configured apart, a deploy with other
    buckets), each of its sections is moved into the bounds they all have in common, with a
    warning naming the bounds found. A bucket of a common bound holds exactly the counts it
    holds in each process (the other bounds' buckets fall whole into the next common one), so
    the sum stays exact, only coarser; and every process, whichever answers a scrape, adds up
    the same sections the same way (none is left out, and no series appears twice)."""
    found: dict[tuple[object, ...], dict[_Bounds, str]] = {}
    labels: dict[tuple[object, ...], LabelSet] = {}
    for source, sections in parts:
        for section in sections:
            key = _series_set(section)
            kinds = found.setdefault(key, {})
            kinds.setdefault(_bounds_of(section), source)
            labels.setdefault(key, section.totals.labels)
    common: dict[tuple[object, ...], tuple[tuple[float, ...], tuple[float, ...]]] = {}
    for key, kinds in found.items():
        if len(kinds) == 1:
            continue
        durations = sorted(set.intersection(*(set(bounds) for bounds, _, _ in kinds)))
        waits = sorted(set.intersection(*(set(waits) for _, _, waits in kinds)))
        common[key] = (tuple(durations), tuple(waits))
        _warn_other_buckets(where, labels[key], kinds, common[key])
    if not common:
        return [section for _, sections in parts for section in sections]
    moved = []
    for _, sections in parts:
        for section in sections:
            into = common.get(_series_set(section))
            moved.append(section if into is None else _moved_into(section, *into))
    return moved


#: A section's bucket bounds: its own (the duration histograms'), and those its totals carry
#: for durations and for queue waits.
_Bounds = tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]


def _bounds_of(section: Section) -> _Bounds:
    """The bucket bounds of ``section`` (see :data:`_Bounds`)."""
    totals = section.totals
    return section.bounds, totals.duration_buckets, totals.queue_wait_buckets


def _series_set(section: Section) -> tuple[object, ...]:
    """What makes ``section``'s series one set, bucket bounds apart: its constant labels."""
    return tuple(getattr(section.totals, name) for name in _LABEL_FIELDS)


def _moved_into(
    section: Section, durations: tuple[float, ...], waits: tuple[float, ...]
) -> Section:
    """``section`` with its histograms moved into the bounds ``durations`` and ``waits``, each
    a subset of its own (each of its buckets falls whole into one of theirs)."""
    if _bounds_of(section) == (durations, durations, waits):
        return section
    to_durations = bucket_slots(section.bounds, durations)
    to_waits = bucket_slots(section.totals.queue_wait_buckets, waits)
    # (common bounds are a subset of each section's own: no bucket is split)
    assert to_durations is not None
    assert to_waits is not None
    totals = section.totals
    tools = {
        label: dataclasses.replace(
            tool,
            outcomes={
                outcome: moved_histogram(histogram, to_durations, len(durations) + 1)
                for outcome, histogram in tool.outcomes.items()
            },
            queue_wait=moved_histogram(tool.queue_wait, to_waits, len(waits) + 1),
            duration_bounds=durations,
            queue_wait_bounds=waits,
        )
        for label, tool in totals.tools.items()
    }
    moved = dataclasses.replace(
        totals, tools=tools, duration_buckets=durations, queue_wait_buckets=waits
    )
    return section._replace(bounds=durations, totals=moved)


def _warn_other_buckets(
    where: Path,
    labels: LabelSet,
    kinds: dict[_Bounds, str],
    common: tuple[tuple[float, ...], tuple[float, ...]],
) -> None:
    """Warn (at most once a minute for the same bounds) that processes sharing ``where``
    count the label set ``labels`` in other bucket bounds (``kinds``: each with where it was
    first read), added up in the ``common`` ones."""
    found = "; ".join(
        f"duration {durations}, queue wait {waits} ({source})"
        for (durations, _, waits), source in kinds.items()
    )
    warn(
        f"bounds {where} {labels!r} {sorted(kinds)!r}",
        "processes sharing the multiprocess directory %s count the tasks with labels %s in "
        "other histogram buckets: %s. Their histograms are added up in the bounds they have in "
        "common (duration %s, queue wait %s; exact, but coarser), their counters in full. Give "
        "every store with these labels the same duration_buckets and queue_wait_buckets (or "
        "other constant labels, or another directory); after a deploy with other buckets, the "
        "retired totals keep the old ones until the directory is cleared (a restart of the "
        "service, see prepare_directory)",
        where,
        dict(labels),
        found,
        common[0] or "none but +Inf",
        common[1] or "none but +Inf",
    )
