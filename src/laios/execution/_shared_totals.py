"""The shared directory of multiprocess mode: its files, their liveness, folding, adding up.

See :mod:`laios.execution.multiprocess` for the design. Files (``laios-*``; never ``*.db``,
which ``prometheus_client`` reads):

- ``laios-proc-<pid>-<token>.json``: one process's totals (:mod:`._totals_files`), replaced
  whole at each write; ``.lock`` beside it, held with an exclusive ``flock`` by that process
  for as long as it lives.
- ``laios-retired.json``: the totals of processes that are gone, added up, without gauges,
  with the names of the process files it has absorbed and that may still be on disk.
- ``laios-dir.lock``: shared while a scrape reads the files, exclusive while a fold moves
  files into the retired one; never deleted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from laios.execution._logs import WarningLimiter
from laios.execution._totals import ExportedTotals, sum_totals
from laios.execution._totals_files import (
    Section,
    UnreadableFile,
    dump,
    read_document,
    section_data,
    sections_of,
    write_document,
)

try:
    import fcntl
except ImportError:  # not POSIX: multiprocess.enable() refuses
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "HAS_LOCKS",
    "PROCESS_PREFIX",
    "RETIRED",
    "SharedDirectory",
    "add_up",
    "fold",
    "gather",
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
#: The fields of ExportedTotals that are added up (``live``: any of them); any other one (the
#: constant labels, the bucket bounds) keeps sections apart, so a field added to ExportedTotals
#: is one more name here or keeps sections apart.
SUMMED_FIELDS = frozenset(
    {"tools", "custom", "workers", "queue_depth", "abandoned_threads", "live"}
)
_IDENTITY_FIELDS = tuple(
    field.name for field in dataclasses.fields(ExportedTotals) if field.name not in SUMMED_FIELDS
)
_warnings = WarningLimiter(60.0)


def _new_warnings() -> None:
    global _warnings
    _warnings = WarningLimiter(60.0)  # its lock may have been held by another thread at a fork


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_warnings)


def warn(key: str, message: str, *args: object) -> None:
    """Log a warning, at most once a minute per ``key``."""
    if _warnings.should_log(key) is not None:
        _log.warning(message, *args)


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
        added.append(Section(group[0].bounds, dataclasses.replace(total, **kept)))
    return added


def without_gauges(section: Section) -> Section:
    """``section`` with the gauges of a process that is gone: all zero."""
    totals = section.totals
    tools = {label: dataclasses.replace(t, in_flight=0) for label, t in totals.tools.items()}
    return Section(
        section.bounds,
        dataclasses.replace(totals, tools=tools, workers=0, queue_depth=0, abandoned_threads=0),
    )


# -- the directory --------------------------------------------------------------------------


def _stem(name: str) -> str | None:
    """The process part of a file name (``laios-proc-<pid>-<token>``), or ``None``."""
    return name.split(".", 1)[0] if name.startswith(PROCESS_PREFIX) else None


class SharedDirectory:
    """The shared directory: its files, its lock, the liveness of their processes."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def data(self, stem: str) -> Path:
        return self.path / f"{stem}.json"

    def lock_file(self, stem: str) -> Path:
        return self.path / f"{stem}.lock"

    def stems(self, *, with_orphans: bool = False) -> list[str]:
        """Processes with a data file (and, ``with_orphans``, those with only a lock file)."""
        found: set[str] = set()
        with os.scandir(self.path) as entries:
            for entry in entries:
                stem = _stem(entry.name)
                if stem is not None and (with_orphans or entry.name.endswith(".json")):
                    found.add(stem)
        return sorted(found)

    @contextlib.contextmanager
    def locked(self, *, shared: bool) -> Iterator[None]:
        """Hold the directory's lock: shared to read the files, exclusive to fold them."""
        fd = os.open(self.path / _DIRECTORY_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def alive(self, stem: str) -> bool:
        """Whether the process of ``stem`` still holds its lock (``False`` without one)."""
        try:
            fd = os.open(self.lock_file(stem), os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    def claim(self, pid: int) -> tuple[str, int]:
        """Take a new name for process ``pid`` and lock its lock file, held for as long as the
        process lives (the lock says that it is alive). Returns the name and the descriptor.

        Raises:
            OSError: When no lock file can be created.
        """
        for _ in range(8):
            stem = f"{PROCESS_PREFIX}{pid}-{secrets.token_hex(6)}"
            path = self.lock_file(stem)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                if self.holds(stem, fd):
                    return stem, fd
            except BlockingIOError:
                pass  # a fold is removing the name this instant: take another one
            os.close(fd)
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
        while its process lives. ``-1`` when there is no lock file."""
        try:
            fd = os.open(self.lock_file(stem), os.O_RDONLY)
        except FileNotFoundError:
            return -1
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return fd

    def read(self, path: Path) -> list[Section] | None:
        """The sections of a file; ``None`` (with a warning) when it cannot be read."""
        try:
            return sections_of(read_document(path))
        except FileNotFoundError:
            return []
        except UnreadableFile as exc:
            warn(f"unreadable {path}", "leaving out %s, which cannot be read: %s", path, exc)
            return None

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
        return sections, frozenset(absorbed)

    def unlink(self, stem: str) -> None:
        for suffix in (".json", ".json.tmp", ".lock"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path / f"{stem}{suffix}")


def fold(directory: SharedDirectory) -> int:
    """Fold the files of gone processes into the retired file; return how many were folded.

    Holds the directory's exclusive lock throughout.
    """
    with directory.locked(shared=False):
        try:
            retired, absorbed = directory.read_retired()
        except UnreadableFile as exc:
            aside = directory.path / (RETIRED + ".unreadable")
            _log.warning("the retired file cannot be read (%s); moved to %s", exc, aside)
            os.replace(directory.path / RETIRED, aside)
            retired, absorbed = [], frozenset()
        leftovers = [stem for stem in absorbed if directory.data(stem).exists()]
        folded: list[str] = []
        held: list[int] = []
        try:
            for stem in directory.stems(with_orphans=True):
                if stem in absorbed:
                    continue
                fd = directory.claim_if_gone(stem)
                if fd is None:
                    continue  # alive
                if fd >= 0:
                    held.append(fd)
                sections = directory.read(directory.data(stem))
                retired.extend(without_gauges(section) for section in sections or ())
                folded.append(stem)
            if not folded and not leftovers:
                return 0
            if folded:
                # Named until deleted: a fold cut short here must not count them again.
                body = dump(
                    {
                        "kind": "retired",
                        "absorbed": [*leftovers, *folded],
                        "sections": [section_data(s) for s in add_up(retired)],
                    }
                )
                write_document(directory.path / RETIRED, body)
            for stem in (*leftovers, *folded):
                directory.unlink(stem)
        finally:
            for fd in held:
                os.close(fd)
        return len(folded)


def gather(directory: SharedDirectory, own_stem: str | None, own: list[Section]) -> list[Section]:
    """Every process's sections and the retired ones, added up (``own`` for ``own_stem``)."""
    if any(s != own_stem and not directory.alive(s) for s in directory.stems()):
        fold(directory)
    parts = list(own)
    with directory.locked(shared=True):
        try:
            retired, absorbed = directory.read_retired()
        except UnreadableFile as exc:  # the next fold moves it aside
            warn(f"retired {directory.path}", "leaving out the retired file: %s", exc)
            retired, absorbed = [], frozenset()
        parts.extend(retired)
        for stem in directory.stems():
            if stem == own_stem or stem in absorbed:
                continue
            sections = directory.read(directory.data(stem)) or []
            if not directory.alive(stem):  # gone since the fold above: its gauges are dropped
                sections = [without_gauges(section) for section in sections]
            parts.extend(sections)
    return add_up(parts)
