"""Multiprocess mode with real processes: forked children stand in for a server's workers.

Each child inherits the parent's export (as a gunicorn worker forked from its master does),
records tasks into its store, and reports to the parent over a pipe. The parent's ``/metrics``
(``render_metrics`` of its registry) must show the sum, never go backwards, and keep the
counts of children that are gone, however they went.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import json
import logging
import math
import multiprocessing
import os
import resource
import select
import shutil
import signal
import stat
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from forked import in_child
from http_drivers import call_wsgi, exchange
from multiprocess_work import CHILD_SECONDS, Child, become_nobody, fork, run_tasks, tasks_total
from process_tools import wait_until
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from prometheus_client.parser import text_string_to_metric_families as parse_text
from store_fakes import StatsOnlyRunner

from laios.execution import _shared_totals, _totals_files, multiprocess
from laios.execution._logs import WarningLimiter
from laios.execution._shared_totals import SharedDirectory
from laios.execution._totals_files import read_document, sections_of
from laios.execution.multiprocess import (
    DEFAULT_INTERVAL,
    ENV_VAR,
    MultiprocessExport,
    current,
    disable,
    enable,
    gunicorn_child_exit,
    gunicorn_on_starting,
    prepare_directory,
    sweep,
)
from laios.execution.prometheus import ensure_collector, render_metrics
from laios.execution.server import make_asgi_app, make_wsgi_app
from laios.execution.store import MetricStore

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

#: The writer thread's interval in these tests (seconds).
INTERVAL = 0.1
Report = Callable[[dict[str, Any]], None]


@pytest.fixture(autouse=True)
def _off_afterwards(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test inherits multiprocess mode, the variable or a master mark from another."""
    monkeypatch.delenv(ENV_VAR, raising=False)
    yield
    disable()
    multiprocess._master_pid = None


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    path = tmp_path / "multiproc"
    path.mkdir()
    return path


@pytest.fixture
def store() -> MetricStore:
    return MetricStore()


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def export(directory: Path, store: MetricStore, registry: CollectorRegistry) -> MultiprocessExport:
    return enable(directory, interval=INTERVAL, registry=registry, store=store)


def scrape(registry: CollectorRegistry) -> str:
    return render_metrics(registry).decode()


def answered_scrape(registry: CollectorRegistry) -> str:
    """The first scrape of ``registry`` that answers: they may fail for a while (polled for
    ``CHILD_SECONDS`` at most)."""

    def attempt() -> str | None:
        try:
            return scrape(registry)
        except OSError:
            return None

    text: str | None = wait_until(attempt, CHILD_SECONDS)
    assert text is not None, "the scrapes never answered again"
    return text


def delete_directory(directory: Path) -> None:
    """Delete ``directory`` under the running processes (which may write a file again in it
    as it is deleted: deleted again until it is gone)."""
    deadline = time.monotonic() + CHILD_SECONDS
    while directory.exists():
        assert time.monotonic() < deadline, "the directory could not be deleted"
        shutil.rmtree(directory, ignore_errors=True)


def files(directory: Path) -> list[str]:
    return sorted(
        p.name for p in directory.iterdir() if p.name not in ("laios-dir.lock", "laios-dir.wait")
    )


def _writers() -> list[threading.Thread]:
    """The multiprocess writer threads running now."""
    return [t for t in threading.enumerate() if t.name == "laios-multiprocess"]


def _refuse_writer_threads(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Make a writer thread's start() raise as under a pids limit ("can't start new thread");
    clearing the returned event lets them start again."""
    refused = threading.Event()
    refused.set()
    start = threading.Thread.start

    def refusing(self: threading.Thread) -> None:
        if refused.is_set() and self.name == "laios-multiprocess":
            raise RuntimeError("can't start new thread")
        start(self)

    monkeypatch.setattr(threading.Thread, "start", refusing)
    return refused


def child_writing(setup: Callable[[], object]) -> Callable[[Report], None]:
    """A child's work: ``setup()``, write its file, report its pid and file, then wait to be
    killed."""

    def work(report: Report) -> None:
        setup()
        export = current()  # inherited from the parent, as a gunicorn worker's
        assert export is not None
        export.write()
        report({"pid": os.getpid(), "path": str(export.path)})
        time.sleep(60)

    return work


def child_running(store: MetricStore, count: int) -> Callable[[Report], None]:
    """A child's work: run ``count`` tasks, write, report, then wait to be killed."""
    return child_writing(lambda: run_tasks(store, count))


def test_the_sum_of_every_process_is_shown(
    export: MultiprocessExport, store: MetricStore, registry: CollectorRegistry
) -> None:
    """The parent's /metrics counts its own tasks and those of two live children."""
    run_tasks(store, 3)
    children = [fork(child_running(store, n)) for n in (5, 7)]
    try:
        for child in children:
            child.report()
        assert tasks_total(scrape(registry)) == 3 + 5 + 7
    finally:
        for child in children:
            child.kill()


def test_status_shows_the_sum_of_every_process_as_metrics_does(
    export: MultiprocessExport, store: MetricStore, registry: CollectorRegistry
) -> None:
    """/status (and so `laios status` and the live page) counts the tasks of every process, as
    /metrics does, instead of those of the one that answers: under gunicorn each request
    reaches another worker, whose own counts went up and down from one reading to the next
    (the live page read that as a restart, or as a burst of tasks). Its running tasks and
    latest failures are still those of the process that answers; the in-flight counts and the
    gauges are summed over the live processes."""

    def setup() -> None:
        run_tasks(store, 5)
        run_tasks(store, 2, outcome="error")
        slot = store.tool_slot("echo", True)
        store.task_submitted(None, SimpleNamespace(id="busy"), "echo", slot, running=True)

    run_tasks(store, 3)
    child = fork(child_writing(setup))
    try:
        child.report()
        app = make_wsgi_app(store, registry)
        (tool,) = json.loads(call_wsgi(app, path="/status").body)["tools"]
        assert tool["total"] == 3 + 5 + 2 == tasks_total(scrape(registry))
        assert tool["outcomes"]["success"] == 8
        assert tool["outcomes"]["error"] == 2
        assert tool["error_rate"] == 0.2
        assert tool["duration_buckets"][-1] == 10
        assert tool["in_flight"] == 1
        document = json.loads(call_wsgi(app, path="/status").body)
        assert document["running"] == []  # (the child's task runs in the child)
        assert document["running_total"] == 0
    finally:
        child.kill()


def test_gauges_are_summed_over_live_processes_only(
    export: MultiprocessExport, store: MetricStore, registry: CollectorRegistry
) -> None:
    """A live child's in-flight task counts in the gauge; once the child is gone, it does not."""

    def setup() -> None:
        slot = store.tool_slot("echo", True)
        store.task_submitted(None, SimpleNamespace(id="x"), "echo", slot, running=True)

    child = fork(child_writing(setup))
    child.report()
    assert 'laios_tasks_in_flight{tool="echo"} 1.0' in scrape(registry)
    child.kill()
    assert 'laios_tasks_in_flight{tool="echo"} 0.0' in scrape(registry)


def test_busy_workers_are_summed_over_live_processes_only(
    export: MultiprocessExport, store: MetricStore, registry: CollectorRegistry
) -> None:
    """laios_executor_busy_workers is the sum of each live process's busy workers, as
    laios_executor_workers is; a gone process's leave the sum."""

    theirs = StatsOnlyRunner(8, busy=3)
    child = fork(child_writing(lambda: store.register_runner(theirs)))
    child.report()
    ours = StatsOnlyRunner(4, busy=1)  # (after the fork: the child's store has none of it)
    store.register_runner(ours)
    text = scrape(registry)
    assert "\nlaios_executor_workers 12.0\n" in text
    assert "\nlaios_executor_busy_workers 4.0\n" in text
    child.kill()
    text = scrape(registry)
    assert "\nlaios_executor_workers 4.0\n" in text
    assert "\nlaios_executor_busy_workers 1.0\n" in text


def test_the_gauges_of_constant_labels_no_live_process_exports_leave_the_exposition(
    export: MultiprocessExport, store: MetricStore, registry: CollectorRegistry
) -> None:
    """A label set whose processes are all gone shows its counters and no gauges, as a label
    set whose stores are all gone does in one process: its gauges stayed at 0 for ever, so
    ``absent(laios_executor_workers{pool="batch"})`` never fired for a pool that died."""
    run_tasks(store, 1)
    pool = StatsOnlyRunner(3, busy=1)
    child = fork(child_with_store(MetricStore(labels={"pool": "batch"}), 5, pool))
    try:
        child.report()
        live = scrape(registry)
    finally:
        child.kill()
    gone = scrape(registry)
    for text in (live, gone):
        assert 'laios_tasks_total{outcome="success",pool="batch",tool="echo"} 5.0' in text
        assert "\nlaios_executor_workers 0.0\n" in text  # (this process's store lives)
        assert 'laios_tasks_in_flight{tool="echo"} 0.0' in text
    assert 'laios_executor_workers{pool="batch"} 3.0' in live
    assert 'laios_tasks_in_flight{pool="batch",tool="echo"} 0.0' in live
    assert '{pool="batch"}' not in gone  # (no gauge of the set: laios_executor_*)
    assert 'laios_tasks_in_flight{pool="batch"' not in gone
    assert files(export.directory)[-1] == "laios-retired.json"  # (what ``gone`` read)


def test_a_retired_file_that_says_live_shows_no_gauges(directory: Path) -> None:
    """Retired totals written as live (as earlier versions wrote them) are read as a gone
    process's: no gauges for a label set no live process exports."""
    other = MetricStore(labels={"pool": "batch"})
    run_tasks(other, 2)
    other_registry = CollectorRegistry()
    collector = ensure_collector(other, other_registry)
    [totals] = collector.totals()
    assert totals.live
    section = _totals_files.Section(totals.duration_buckets, totals)
    body = _totals_files.dump(
        {"kind": "retired", "absorbed": [], "sections": [_totals_files.section_data(section)]}
    )
    (directory / "laios-retired.json").write_bytes(body)
    sections, _absorbed = SharedDirectory(directory).read_retired()
    assert [s.totals.live for s in sections] == [False]
    registry = CollectorRegistry()
    enable(directory, interval=INTERVAL, registry=registry, store=MetricStore())
    text = scrape(registry)
    assert 'laios_tasks_total{outcome="success",pool="batch",tool="echo"} 2.0' in text
    assert '{pool="batch"}' not in text


def test_a_forked_child_writes_a_file_of_its_own(
    export: MultiprocessExport, store: MetricStore, directory: Path
) -> None:
    """The child never writes the parent's file: it writes its own, with its own pid and
    counts only, and the parent's file keeps the parent's."""
    run_tasks(store, 2)
    export.write()
    assert export.path is not None
    parent_file = export.path.read_bytes()
    child = fork(child_running(store, 4))
    try:
        report = child.report()
        assert report["path"] != str(export.path)
        assert f"-{child.pid}-" in Path(report["path"]).name
        written = read_document(Path(report["path"]))
        assert written["pid"] == child.pid
        [section] = sections_of(written)
        assert section.totals.tools["echo"].outcomes["success"][0] == 4  # not the parent's 2
        assert export.path.read_bytes() == parent_file
    finally:
        child.kill()


def test_a_forked_child_starts_its_file_at_once_without_the_parents_counts(
    export: MultiprocessExport, store: MetricStore
) -> None:
    """Right after the fork the child has a file of its own, written after its store started
    from zero: none of the parent's counts are in it."""
    run_tasks(store, 3)
    export.write()

    def work(report: Report) -> None:
        child_export = current()
        assert child_export is not None
        report({"path": str(child_export.path)})
        time.sleep(60)

    child = fork(work)
    try:
        path = Path(child.report()["path"])
        [section] = sections_of(read_document(path))
        assert "echo" not in section.totals.tools
    finally:
        child.kill()


def test_a_forked_child_keeps_writing_from_a_thread_of_its_own(
    export: MultiprocessExport, store: MetricStore, registry: CollectorRegistry
) -> None:
    """A child that never writes by itself still shows its counts within a few intervals."""

    def work(report: Report) -> None:
        run_tasks(store, 6)
        report({})
        time.sleep(60)

    child = fork(work)
    try:
        child.report()
        deadline = time.monotonic() + 50 * INTERVAL
        while tasks_total(scrape(registry)) != 6:
            assert time.monotonic() < deadline, "the child's thread never wrote its counts"
            time.sleep(INTERVAL)
    finally:
        child.kill()


def test_a_process_refused_its_writer_thread_writes_at_its_scrapes_until_it_gets_one(
    directory: Path,
    store: MetricStore,
    registry: CollectorRegistry,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No thread for the writer ("can't start new thread": a container's pids limit): the mode
    is on all the same, with a warning; the file is written at each scrape the process serves,
    the thread starts at the first scrape once one can be had, and disable() ends it."""

    def written() -> float:
        assert export.path is not None
        [section] = sections_of(read_document(export.path))
        return section.totals.tools["echo"].outcomes["success"][0]

    before = _writers()
    refused = _refuse_writer_threads(monkeypatch)
    with caplog.at_level(logging.WARNING, "laios.execution.multiprocess"):
        export = enable(directory, interval=INTERVAL, registry=registry, store=store)
    assert "can't start new thread" in caplog.text
    assert current() is export
    assert _writers() == before
    run_tasks(store, 2)
    assert tasks_total(scrape(registry)) == 2
    assert written() == 2
    refused.clear()
    run_tasks(store, 1)
    assert tasks_total(scrape(registry)) == 3  # (and the writer thread starts)
    run_tasks(store, 4)
    deadline = time.monotonic() + 50 * INTERVAL
    while written() != 7:
        assert time.monotonic() < deadline, "no writer thread wrote the file"
        time.sleep(INTERVAL)
    [writer] = [t for t in _writers() if t not in before]
    disable()
    writer.join(CHILD_SECONDS)
    assert not writer.is_alive()


def test_a_write_that_fails_still_tries_again_the_writer_thread_it_was_refused(
    directory: Path,
    store: MetricStore,
    registry: CollectorRegistry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """write() tries the refused writer thread again as a scrape does, also when the write
    itself fails (a full disk): it raises the OSError, and the thread runs from then on."""

    def full_disk(path: Any, body: bytes) -> None:
        raise OSError(28, "No space left on device")

    before = _writers()
    refused = _refuse_writer_threads(monkeypatch)
    export = enable(directory, interval=INTERVAL, registry=registry, store=store)
    assert _writers() == before
    refused.clear()
    run_tasks(store, 1)
    with monkeypatch.context() as patch:
        patch.setattr(multiprocess, "write_totals", full_disk)
        with pytest.raises(OSError, match="No space left"):
            export.write()
    started = [t for t in _writers() if t not in before]
    assert len(started) == 1, "write() did not try the writer thread again"
    disable()
    started[0].join(CHILD_SECONDS)
    assert not started[0].is_alive()


def test_a_closed_export_refused_its_writer_thread_can_start_again(
    export: MultiprocessExport, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A start refused its thread leaves no thread claimed: close() returns, and a later start
    starts the thread."""
    export.close()
    with monkeypatch.context() as patch:
        _refuse_writer_threads(patch)
        export.start()
    export.close()
    before = _writers()
    export.start()
    started = _writers()
    assert len(started) == len(before) + 1
    export.close()


def test_a_sigkilled_process_keeps_what_it_wrote(
    export: MultiprocessExport, store: MetricStore, registry: CollectorRegistry, directory: Path
) -> None:
    """SIGKILL loses nothing written: the count stays, in the retired file, and the dead
    process's files are gone."""
    child = fork(child_running(store, 9))
    report = child.report()
    child.kill()
    assert tasks_total(scrape(registry)) == 9
    assert not Path(report["path"]).exists()
    assert "laios-retired.json" in files(directory)


def _starting_worker(directory: Path) -> Child:
    """A process that turns the mode on in ``directory`` itself (as a ``uvicorn --workers``
    worker, importing the application) and stops in its first write: its lock file taken
    and held, no data file yet. It reports its lock file, then waits to be killed."""

    def work(report: Report) -> None:
        def stopped(path: Path, body: bytes) -> None:
            report({"lock": str(path.with_suffix(".lock"))})
            time.sleep(60)

        multiprocess.write_totals = stopped  # type: ignore[assignment]
        enable(directory, interval=INTERVAL, registry=CollectorRegistry(), store=MetricStore())

    return fork(work)


@pytest.mark.parametrize("how", ["scrape", "sweep"])
def test_a_worker_killed_before_its_first_write_leaves_no_lock_file(
    directory: Path, store: MetricStore, registry: CollectorRegistry, how: str
) -> None:
    """A worker killed (``SIGKILL``) after it took its lock file and before it first wrote
    its data file, with no other process gone: its lock file was cleared only by a fold that
    some gone process's data file started, so under uvicorn (no child_exit hook) it stayed for
    ever. A scrape clears it too, and a sweep clears it without writing a retired file for
    it; while the worker lives, neither touches its lock file."""
    worker = _starting_worker(directory)  # (forked with the mode off here: it enables itself)
    lock = Path(worker.report()["lock"])
    export = enable(directory, interval=INTERVAL, registry=registry, store=store)
    run_tasks(store, 2)
    try:
        assert tasks_total(scrape(registry)) == 2
        assert sweep(directory) == 0
        assert lock.exists()  # (a process that holds its lock is live, file or not)
    finally:
        worker.kill()
    assert not lock.with_suffix(".json").exists()
    if how == "scrape":
        assert tasks_total(scrape(registry)) == 2
    else:
        assert sweep(directory) == 1
    assert export.path is not None
    stem = export.path.name.removesuffix(".json")
    assert files(directory) == [f"{stem}.json", f"{stem}.lock"]


@pytest.mark.parametrize("meanwhile", ["fold", "liveness check"])
def test_a_worker_taking_its_lock_file_is_never_taken_for_a_gone_one(
    directory: Path,
    store: MetricStore,
    registry: CollectorRegistry,
    monkeypatch: pytest.MonkeyPatch,
    meanwhile: str,
) -> None:
    """A fold (or another process's liveness check) that finds a worker's new lock file in
    the instant between its creation and its lock (free, with no data file: as a gone
    worker's) never leaves the worker without its lock: the worker takes another name, and
    holds its lock from its first write on; nothing is left under the first name."""
    create_lock = _shared_totals._create_lock
    probes: list[int] = []
    folded: list[int] = []

    def in_between(path: Path, flags: int) -> int:
        fd = create_lock(path, flags)
        if not probes and not folded and path.name.startswith("laios-proc-"):
            if meanwhile == "fold":
                folded.append(sweep(directory))
            else:  # (holds it shared for a moment, as lock_held() does)
                probes.append(os.open(path, os.O_RDONLY))
                fcntl.flock(probes[0], fcntl.LOCK_SH)
        return fd

    monkeypatch.setattr(_shared_totals, "_create_lock", in_between)
    try:
        export = enable(directory, interval=INTERVAL, registry=registry, store=store)
    finally:
        for probe in probes:
            os.close(probe)
    assert folded == [1] if meanwhile == "fold" else len(probes) == 1
    assert export.path is not None
    stem = export.path.name.removesuffix(".json")
    assert files(directory) == [f"{stem}.json", f"{stem}.lock"]  # (before any scrape)
    assert SharedDirectory(directory).lock_held(stem) is True
    run_tasks(store, 3)
    assert tasks_total(scrape(registry)) == 3


def test_the_directory_stays_bounded_when_processes_come_and_go(
    export: MultiprocessExport, store: MetricStore, registry: CollectorRegistry, directory: Path
) -> None:
    """After 20 processes have come and gone, the directory holds one file for the live
    process and one retired file, and every count is there."""
    for _ in range(20):
        child = fork(child_running(store, 2))
        child.report()
        child.kill()
        scrape(registry)
    assert tasks_total(scrape(registry)) == 40
    assert export.path is not None
    stem = export.path.name.removesuffix(".json")
    assert files(directory) == sorted([f"{stem}.json", f"{stem}.lock", "laios-retired.json"])


def _gone_processes(
    store: MetricStore, directory: Path, export: MultiprocessExport, count: int
) -> None:
    """Leave the files of ``count`` gone processes in ``directory``, one task each: a child's,
    then copies of it, each with its free lock file."""
    gone = fork(child_running(store, 1))
    gone.report()
    gone.kill()
    [first] = [p for p in directory.glob("laios-proc-*.json") if p != export.path]
    for _ in range(count - 1):
        stem = f"laios-proc-{gone.pid}-{os.urandom(6).hex()}"
        shutil.copyfile(first, directory / f"{stem}.json")
        (directory / f"{stem}.lock").touch()


def test_more_gone_processes_than_open_files_allowed_are_all_folded(
    export: MultiprocessExport,
    store: MetricStore,
    registry: CollectorRegistry,
    directory: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """More gone processes' files than the process may open at once (scrapes stopped while
    workers were replaced, uvicorn's --limit-max-requests, a crash loop): a fold holds the lock
    file of each process it folds until its files are deleted, so a fold of them all at once
    failed with "Too many open files", every time, and the directory grew for ever. Folds take
    them a batch at a time."""
    monkeypatch.setattr(_shared_totals, "FOLD_BATCH", 8)
    _gone_processes(store, directory, export, 60)

    def fold_with_few_descriptors(report: Report) -> None:
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 30, hard))
        report({"folded": sweep(directory)})

    child = fork(fold_with_few_descriptors)
    assert child.report() == {"folded": 60}
    child.wait()
    assert tasks_total(scrape(registry)) == 60
    assert export.path is not None
    stem = export.path.name.removesuffix(".json")
    assert files(directory) == sorted([f"{stem}.json", f"{stem}.lock", "laios-retired.json"])


def test_a_fold_with_fewer_descriptors_free_than_a_batch_takes_smaller_batches(
    export: MultiprocessExport, store: MetricStore, registry: CollectorRegistry, directory: Path
) -> None:
    """A process with fewer descriptors free than a batch needs (near its limit of open files:
    a worker holding many connections) failed every fold with "Too many open files", so its
    scrapes never folded and the directory grew with every worker gone. Its folds take
    smaller batches instead."""
    _gone_processes(store, directory, export, 80)

    def fold_with_few_descriptors(report: Report) -> None:
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 30, hard))
        report({"folded": sweep(directory)})

    child = fork(fold_with_few_descriptors)
    assert child.report() == {"folded": 80}
    child.wait()
    assert tasks_total(scrape(registry)) == 80
    assert export.path is not None
    stem = export.path.name.removesuffix(".json")
    assert files(directory) == sorted([f"{stem}.json", f"{stem}.lock", "laios-retired.json"])


def _tasks_on_disk(directory: Path) -> float:
    """``laios_tasks_total`` as the files on disk add up: the retired file, and each process
    file it has not absorbed (read while a fold holds the directory's lock)."""
    retired = directory / "laios-retired.json"
    document = read_document(retired) if retired.exists() else {}
    absorbed = set(document.get("absorbed", []))
    sections = sections_of(document) if document else []
    for path in directory.glob("laios-proc-*.json"):
        if path.stem not in absorbed:
            sections.extend(sections_of(read_document(path)))
    return sum(
        count
        for section in sections
        for tool in section.totals.tools.values()
        for count, *_ in tool.outcomes.values()
    )


def _lifespan(app: Callable[..., Any]) -> list[str]:
    """Run ``app``'s lifespan as a server does, startup then shutdown: what it answered."""
    sent = asyncio.run(
        exchange(
            app,
            {"type": "lifespan", "asgi": {"version": "3.0"}},
            [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}],
        )
    )
    return [m["type"] for m in sent.messages]


def test_the_asgi_apps_lifespan_shutdown_writes_what_the_worker_counted_since_its_last_write(
    directory: Path, store: MetricStore, registry: CollectorRegistry
) -> None:
    """A uvicorn worker ends by the SIGTERM it was stopped with, after its lifespan shutdown,
    running no exit handler: laios's ASGI app, as the server's root app, writes the worker's
    totals at its shutdown, so the tasks it ran since its last write stay in the sum. The mode
    stays on: a later startup of the same app (a test client used twice) keeps summing."""
    enable(directory, interval=3600, registry=registry, store=store)
    app = make_asgi_app(store, registry)
    run_tasks(store, 4)
    assert _tasks_on_disk(directory) == 0  # (not written yet: the interval is long)
    answered = ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert _lifespan(app) == answered
    assert _tasks_on_disk(directory) == 4
    assert current() is not None
    run_tasks(store, 3)
    assert _lifespan(app) == answered
    assert _tasks_on_disk(directory) == 7


def test_a_failed_write_at_the_asgi_apps_lifespan_shutdown_is_logged_and_the_shutdown_completes(
    directory: Path,
    store: MetricStore,
    registry: CollectorRegistry,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The server still shuts down; the warning names the directory and what was lost."""
    export = enable(directory, interval=3600, registry=registry, store=store)
    app = make_asgi_app(store, registry)

    def refuse() -> None:
        raise PermissionError(errno.EACCES, "Permission denied", str(directory))

    monkeypatch.setattr(export, "write", refuse)
    with caplog.at_level(logging.WARNING, logger="laios.execution.server"):
        assert _lifespan(app) == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    (record,) = [r for r in caplog.records if r.name == "laios.execution.server"]
    assert str(directory) in record.getMessage()
    assert "since its last write" in record.getMessage()


def test_a_long_fold_lets_scrapes_and_enable_in_between_its_batches(
    export: MultiprocessExport,
    store: MetricStore,
    registry: CollectorRegistry,
    directory: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Thousands of gone processes' files take seconds to fold: a fold that held the
    directory's lock throughout made the other workers' scrapes fail after 5 s, and a
    worker booting then failed enable(). The fold lets go of the lock between its batches,
    each of which leaves the totals exact: a scrape or enable() that waits for the lock gets
    in after the batch under way."""
    monkeypatch.setattr(_shared_totals, "FOLD_BATCH", 8)
    _gone_processes(store, directory, export, 200)  # (25 batches)
    waiting = directory / "laios-dir.wait"
    batches: list[int] = []  # (each batch of this sweep, as it starts)
    on_disk: list[float] = []  # (the tasks on disk as some of them start)
    got_in: list[int] = []
    real_batch = _shared_totals._fold_batch
    sweeper = threading.current_thread()

    def enable_in_thread() -> None:
        multiprocess._directory(directory)  # (what enable() does with the directory's lock)
        got_in.append(len(batches))

    def counted_batch(*args: Any) -> Any:
        if threading.current_thread() is sweeper:
            batches.append(len(batches) + 1)
            if len(batches) in (1, 2, 3, 12):  # (under the directory's lock)
                on_disk.append(_tasks_on_disk(directory))
            if len(batches) == 2:  # another worker's enable() waits for the lock now
                threading.Thread(target=enable_in_thread, daemon=True).start()
                deadline = time.monotonic() + CHILD_SECONDS
                while not _someone_waits(waiting):
                    assert time.monotonic() < deadline, "nothing waited for the lock"
                    time.sleep(0.001)
        return real_batch(*args)

    monkeypatch.setattr(_shared_totals, "_fold_batch", counted_batch)
    assert sweep(directory) == 200
    assert got_in == [2]  # in after the batch under way, not after the whole fold
    assert len(batches) >= 25
    assert on_disk == [200, 200, 200, 200]  # (exact between the batches)
    assert tasks_total(scrape(registry)) == 200


def test_a_scrape_folds_for_a_while_and_counts_the_rest_where_they_lie(
    export: MultiprocessExport,
    store: MetricStore,
    registry: CollectorRegistry,
    directory: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A scrape folds for a bounded time (here: one batch), so that thousands of gone
    processes' files do not hold it for seconds; it counts the files left where they lie,
    and later scrapes fold them."""
    monkeypatch.setattr(_shared_totals, "FOLD_BATCH", 8)
    monkeypatch.setattr(_shared_totals, "SCRAPE_FOLD_SECONDS", 0.0)
    gone = fork(child_running(store, 1))
    gone.report()
    gone.kill()
    [first] = [p for p in directory.glob("laios-proc-*.json") if p != export.path]
    for _ in range(19):
        stem = f"laios-proc-{gone.pid}-{os.urandom(6).hex()}"
        shutil.copyfile(first, directory / f"{stem}.json")
        (directory / f"{stem}.lock").touch()
    left = []
    for _ in range(3):
        assert tasks_total(scrape(registry)) == 20
        left.append(len(list(directory.glob("laios-proc-*.json"))) - 1)
    assert left == [12, 4, 0]


def _someone_waits(waiting: Path) -> bool:
    """Whether a process waits for the directory's lock (holds ``waiting`` shared)."""
    if not waiting.exists():
        return False
    fd = os.open(waiting, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def test_counters_never_go_backwards_while_processes_come_and_go(
    export: MultiprocessExport, store: MetricStore, registry: CollectorRegistry
) -> None:
    """Every scrape, while children are started, killed and folded, shows every counter at
    least as high as the scrape before."""
    seen: dict[str, float] = {}
    alive = []
    expected = 0
    for round_number in range(12):
        child = fork(child_running(store, round_number + 1))
        child.report()
        expected += round_number + 1
        alive.append(child)
        if round_number % 3 == 2:
            alive.pop(0).kill()
        run_tasks(store, 1)
        expected += 1
        for line in scrape(registry).splitlines():
            if line.startswith("laios_") and line.split("{")[0].split(" ")[0].endswith("_total"):
                series, value = line.rsplit(" ", 1)
                assert float(value) >= seen.get(series, 0.0), f"{series} went backwards"
                seen[series] = float(value)
    try:
        assert tasks_total(scrape(registry)) == expected
    finally:
        for child in alive:
            child.kill()


def test_a_live_process_is_never_folded(
    export: MultiprocessExport, store: MetricStore, directory: Path
) -> None:
    """A sweep leaves the file of a process that lives (its lock is held) alone."""
    child = fork(child_running(store, 1))
    try:
        report = child.report()
        assert sweep(directory) == 0
        assert Path(report["path"]).exists()
    finally:
        child.kill()


def _file_of_a_dead_process_under_this_pid(directory: Path) -> Path:
    """The file of a process that died with 4 tasks done and 1 in flight, named with this
    (live) process's pid, as after pid reuse; its lock file is gone and nobody holds it."""
    other = MetricStore()
    run_tasks(other, 4)
    slot = other.tool_slot("echo", True)
    other.task_submitted(None, type("T", (), {"id": "x"})(), "echo", slot, running=True)
    registry_of_other = CollectorRegistry()
    other_export = MultiprocessExport(
        directory, 60.0, registry_of_other, ensure_collector(other, registry_of_other)
    )
    other_export.write()
    stale = other_export.path
    assert stale is not None
    assert f"-{os.getpid()}-" in stale.name  # its pid, this live process's, was reused
    written = stale.read_bytes()
    other_export.park()  # lets go of the lock and removes the files: as a process that died
    stale.write_bytes(written)
    return stale


def test_a_file_whose_lock_is_free_is_a_gone_process_even_under_a_live_pid(
    export: MultiprocessExport, directory: Path, registry: CollectorRegistry
) -> None:
    """A file named with this (live) process's pid but whose lock nobody holds is a gone
    process's, as after pid reuse: it is folded, its counts kept and its gauges dropped."""
    assert export.path is not None
    stale = _file_of_a_dead_process_under_this_pid(directory)
    stale.with_suffix(".lock").write_bytes(b"")
    text = scrape(registry)
    assert tasks_total(text) == 4
    assert 'laios_tasks_in_flight{tool="echo"} 0.0' in text
    assert not stale.exists()


def test_a_gone_process_without_lock_file_under_a_reused_pid_keeps_counters_not_gauges(
    export: MultiprocessExport, directory: Path, registry: CollectorRegistry
) -> None:
    """A file whose lock file is gone and whose pid now names another live process (pid
    reuse) keeps its counters in the sum, once, but not its gauges: they are a dead
    process's, and the live process that reused the pid may never take them away."""
    stale = _file_of_a_dead_process_under_this_pid(directory)
    assert not stale.with_suffix(".lock").exists()
    for _ in range(2):
        text = scrape(registry)
        assert tasks_total(text) == 4
        assert 'laios_tasks_in_flight{tool="echo"} 0.0' in text
    assert stale.exists()  # folded once its pid is gone: counted once meanwhile


def test_a_fold_cut_short_never_counts_a_file_twice(
    export: MultiprocessExport, store: MetricStore, registry: CollectorRegistry, directory: Path
) -> None:
    """A gone process's file still on disk after the retired file absorbed it (a fold killed
    between its two steps) is counted once, and the next fold deletes it."""
    child = fork(child_running(store, 5))
    report = child.report()
    child.kill()
    dead = Path(report["path"])
    copy = dead.read_bytes()
    assert tasks_total(scrape(registry)) == 5  # folded: absorbed, then deleted
    dead.write_bytes(copy)  # as if the deletion had not happened
    assert tasks_total(scrape(registry)) == 5
    another = fork(child_running(store, 1))
    another.report()
    another.kill()
    assert tasks_total(scrape(registry)) == 6
    assert not dead.exists()


def test_a_lock_file_a_fold_cut_short_left_is_removed_by_the_next_scrape(
    export: MultiprocessExport, store: MetricStore, registry: CollectorRegistry, directory: Path
) -> None:
    """The lock file of a gone process whose data file the retired file absorbed and a fold
    deleted, killed before it deleted the lock file: the next scrape removes it, counting
    nothing twice."""
    child = fork(child_running(store, 5))
    report = child.report()
    child.kill()
    lock = Path(report["path"]).with_suffix(".lock")
    assert tasks_total(scrape(registry)) == 5  # folded: absorbed, then deleted
    lock.write_bytes(b"")  # as if the fold had stopped before deleting it
    assert tasks_total(scrape(registry)) == 5
    assert export.path is not None
    stem = export.path.name.removesuffix(".json")
    assert files(directory) == [f"{stem}.json", f"{stem}.lock", "laios-retired.json"]


def test_a_file_the_retired_file_absorbed_is_never_counted(
    export: MultiprocessExport, store: MetricStore, registry: CollectorRegistry, directory: Path
) -> None:
    """A process file that the retired file names as absorbed is left out of a scrape, even
    while its lock looks held (a fold elsewhere absorbed it a moment ago)."""
    child = fork(child_running(store, 5))
    report = child.report()
    child.kill()
    dead = Path(report["path"])
    copy = dead.read_bytes()
    assert tasks_total(scrape(registry)) == 5
    dead.write_bytes(copy)
    held = os.open(dead.with_suffix(".lock"), os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(held, fcntl.LOCK_EX)  # looks alive: no fold runs before the read
        assert tasks_total(scrape(registry)) == 5
    finally:
        os.close(held)


# -- a lock file deleted under a process (a temp-file cleaner, a careless rm) ----------------


def test_a_live_process_whose_lock_file_is_deleted_counts_its_tasks_once(
    directory: Path, store: MetricStore, registry: CollectorRegistry
) -> None:
    """This process's lock file deleted while it lives: folds leave its file alone, and once
    it has taken a new name it holds its totals in one file, counted once by scrapes and
    folds."""
    export = enable(directory, interval=3600, registry=registry, store=store)
    run_tasks(store, 5)
    assert tasks_total(scrape(registry)) == 5
    assert export.path is not None
    old = export.path
    old.with_suffix(".lock").unlink()
    assert sweep(directory) == 0  # a live pid: not a gone process
    assert old.exists()
    run_tasks(store, 1)
    assert tasks_total(scrape(registry)) == 6
    assert sweep(directory) == 0
    assert tasks_total(scrape(registry)) == 6
    assert export.path is not None
    assert export.path != old
    stem = export.path.name.removesuffix(".json")
    assert files(directory) == [f"{stem}.json", f"{stem}.lock"]


def test_a_move_to_a_new_name_in_the_middle_of_a_scrape_counts_this_process_once(
    directory: Path,
    store: MetricStore,
    registry: CollectorRegistry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """This process's lock file deleted (a temp-file cleaner) while it serves a scrape, and its
    writer thread moving its totals to a new name after the scrape took them and before it
    read the directory: the scrape would add the file under the new name to the totals it
    holds already, and show this process's tasks twice (then, at the next scrape, once: a drop
    that Prometheus reads as a counter reset)."""
    export = enable(directory, interval=3600, registry=registry, store=store)
    run_tasks(store, 5)
    assert tasks_total(scrape(registry)) == 5
    gather = multiprocess.gather
    moves: list[Path] = []

    def gather_after_a_move(*args: Any, **kwargs: Any) -> Any:
        if not moves:  # (once: as the writer thread would, in another thread, meanwhile)
            assert export.path is not None
            moves.append(export.path)
            export.path.with_suffix(".lock").unlink()
            export.write()
            assert export.path != moves[0]
        return gather(*args, **kwargs)

    monkeypatch.setattr(multiprocess, "gather", gather_after_a_move)
    assert tasks_total(scrape(registry)) == 5
    assert moves
    assert tasks_total(scrape(registry)) == 5


def test_another_process_whose_lock_file_is_deleted_is_counted_once_by_every_scrape(
    export: MultiprocessExport, store: MetricStore, registry: CollectorRegistry, directory: Path
) -> None:
    """A child's lock file deleted while it lives: every scrape of the parent counts the
    child's tasks once, before the child notices and after it has moved to a new file."""
    child = fork(child_running(store, 3))
    try:
        old = Path(child.report()["path"])
        old.with_suffix(".lock").unlink()
        new_file = f"-{child.pid}-"

        def moved() -> list[str]:
            return [name for name in files(directory) if new_file in name and old.stem not in name]

        deadline = time.monotonic() + CHILD_SECONDS
        while old.exists() or len(moved()) < 2:  # until the child's writer thread has moved
            assert tasks_total(scrape(registry)) == 3
            assert time.monotonic() < deadline, "the child never took a new name"
            time.sleep(INTERVAL / 10)
        assert tasks_total(scrape(registry)) == 3
        assert sweep(directory) == 0
        assert tasks_total(scrape(registry)) == 3
    finally:
        child.kill()
    assert tasks_total(scrape(registry)) == 3


def test_a_process_killed_as_it_moves_to_a_new_name_is_counted_once(
    export: MultiprocessExport, store: MetricStore, registry: CollectorRegistry, directory: Path
) -> None:
    """A process whose lock file was deleted, killed (``SIGKILL``) as it moves its totals to a
    new name, after its new file is written and before its old one is removed: its tasks are
    counted once, by scrapes and once both files are folded."""

    def work(report: Report) -> None:
        run_tasks(store, 3)
        child_export = current()
        assert child_export is not None
        child_export.write()
        old = child_export.path
        assert old is not None
        write_totals = multiprocess.write_totals

        def killed_once_written(path: Path, body: bytes) -> None:
            write_totals(path, body)
            if path != old:  # (the new name: the old file is still there)
                os.kill(os.getpid(), signal.SIGKILL)

        multiprocess.write_totals = killed_once_written  # type: ignore[assignment]
        report({"path": str(old)})
        old.with_suffix(".lock").unlink()  # (a temp-file cleaner's, an rm's)
        child_export.write()
        time.sleep(60)  # (never reached)

    child = fork(work)
    child.report()
    assert child.wait() == -signal.SIGKILL
    assert tasks_total(scrape(registry)) == 3
    sweep(directory)
    assert tasks_total(scrape(registry)) == 3


def test_a_process_that_cannot_write_as_it_moves_to_a_new_name_keeps_counting_once(
    directory: Path,
    store: MetricStore,
    registry: CollectorRegistry,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A process whose lock file was deleted, whose write under its new name fails (a full
    disk): its totals stay counted once, under the new name, and its next write lands there."""
    export = enable(directory, interval=3600, registry=registry, store=store)
    run_tasks(store, 5)
    assert tasks_total(scrape(registry)) == 5
    old = export.path
    assert old is not None
    old.with_suffix(".lock").unlink()
    write_totals = multiprocess.write_totals

    def disk_full(path: Path, body: bytes) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(multiprocess, "write_totals", disk_full)
    run_tasks(store, 1)
    with caplog.at_level(logging.WARNING, "laios.execution.multiprocess"):
        assert tasks_total(scrape(registry)) == 5  # (what the file holds)
    assert "No space left on device" in caplog.text
    assert sweep(directory) == 0
    monkeypatch.setattr(multiprocess, "write_totals", write_totals)
    assert tasks_total(scrape(registry)) == 6
    assert sweep(directory) == 0
    assert export.path is not None
    assert export.path != old
    stem = export.path.name.removesuffix(".json")
    assert files(directory) == [f"{stem}.json", f"{stem}.lock"]


@pytest.mark.parametrize("damage", ["deleted", "truncated", "garbage"])
def test_a_quiet_live_process_writes_its_file_again_when_it_is_damaged(
    export: MultiprocessExport,
    store: MetricStore,
    registry: CollectorRegistry,
    damage: str,
) -> None:
    """A live child that runs no more tasks, whose file is deleted (a temp-file cleaner, an
    ``rm``), truncated or overwritten: it writes its file again within a few intervals, so
    the other processes' scrapes count its tasks again (it skips writes only while its file
    is still what it wrote; meanwhile a scrape that finds the file damaged fails)."""
    child = fork(child_running(store, 5))
    try:
        path = Path(child.report()["path"])
        assert tasks_total(scrape(registry)) == 5
        if damage == "deleted":
            path.unlink()
        else:
            path.write_text("" if damage == "truncated" else "{garbage")
        deadline = time.monotonic() + 50 * INTERVAL

        def total() -> float | None:
            try:
                return tasks_total(scrape(registry))
            except OSError as exc:
                if "damaged" not in str(exc):
                    raise
                return None

        while total() != 5:
            assert time.monotonic() < deadline, "the child never wrote its file again"
            time.sleep(INTERVAL)
    finally:
        child.kill()
    assert tasks_total(scrape(registry)) == 5


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_live_workers_damaged_file_fails_the_scrape_until_it_is_written_again(
    directory: Path,
    store: MetricStore,
    registry: CollectorRegistry,
    caplog: pytest.LogCaptureFixture,
    damage: str,
) -> None:
    """A live worker's file truncated or overwritten: a scrape that left it out would answer
    a sum lower than the last by that worker's counts, which Prometheus reads as a counter
    reset, then counts its tasks again when the worker writes its file again. As for a
    directory created anew, the scrape fails saying which file is damaged and that its
    worker writes it again within its interval; then it shows every worker's counts."""
    enable(directory, interval=0.5, registry=registry, store=store)
    run_tasks(store, 3)
    child = fork(child_running(store, 5))
    try:
        path = Path(child.report()["path"])
        assert tasks_total(scrape(registry)) == 8
        os.kill(child.pid, signal.SIGSTOP)  # (it cannot write its file again yet)
        try:
            path.write_text("" if damage == "truncated" else "{garbage")
            with caplog.at_level(logging.WARNING, "laios.execution.multiprocess"):
                for _ in range(2):
                    with pytest.raises(OSError, match="damaged") as raised:
                        scrape(registry)
                    assert str(path) in str(raised.value)
                    assert "within its interval" in str(raised.value)
            assert str(path) in caplog.text
        finally:
            os.kill(child.pid, signal.SIGCONT)
        # (until the child has written its file again)
        assert tasks_total(answered_scrape(registry)) == 8
    finally:
        child.kill()


def test_a_scrape_refused_for_a_damaged_file_is_logged_in_words_without_a_traceback(
    directory: Path,
    store: MetricStore,
    registry: CollectorRegistry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The scrape that fails for a live worker's damaged file fails on purpose, and says why
    in one warning: ``/metrics`` and ``/status`` answer 500 without an ERROR and a traceback
    besides, which would read as a defect of the server."""
    enable(directory, interval=0.5, registry=registry, store=store)
    app = make_wsgi_app(registry=registry, store=store)
    child = fork(child_running(store, 5))
    try:
        path = Path(child.report()["path"])
        os.kill(child.pid, signal.SIGSTOP)  # (it cannot write its file again yet)
        try:
            path.write_text("{garbage")
            with caplog.at_level(logging.WARNING):
                answers = [call_wsgi(app, path=route) for route in ("/metrics", "/status")]
        finally:
            os.kill(child.pid, signal.SIGCONT)
    finally:
        child.kill()
    assert [answer.status for answer in answers] == [500, 500]
    for answer in answers:  # (what failed, without the file's path: the log names it)
        error = json.loads(answer.body)["error"]
        assert "worker's file in the multiprocess directory is damaged" in error, error
        assert str(path.parent) not in error, error
    warned = [record for record in caplog.records if str(path) in record.getMessage()]
    assert warned, caplog.text
    assert [record for record in caplog.records if record.exc_info] == [], caplog.text


def test_a_gone_workers_damaged_file_is_left_out_and_the_scrape_answers(
    export: MultiprocessExport,
    store: MetricStore,
    registry: CollectorRegistry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A gone worker's damaged file is nobody's to write again: it is left out with a
    warning naming it, and the scrape answers (its counts are lost, as the guide says)."""
    run_tasks(store, 3)
    child = fork(child_running(store, 5))
    path = Path(child.report()["path"])
    child.kill()
    path.write_text("{garbage")
    with caplog.at_level(logging.WARNING, "laios.execution.multiprocess"):
        assert tasks_total(scrape(registry)) == 3
    assert str(path) in caplog.text


def test_a_gone_process_whose_lock_file_is_deleted_is_folded_once(
    export: MultiprocessExport, store: MetricStore, registry: CollectorRegistry, directory: Path
) -> None:
    """A file with no lock file whose process is gone is folded, its counts kept once."""
    child = fork(child_running(store, 4))
    dead = Path(child.report()["path"])
    child.kill()
    dead.with_suffix(".lock").unlink()
    assert sweep(directory) == 1
    assert not dead.exists()
    assert tasks_total(scrape(registry)) == 4
    assert sweep(directory) == 0
    assert tasks_total(scrape(registry)) == 4
    assert "laios-retired.json" in files(directory)


def test_a_file_without_lock_file_from_another_pid_namespace_is_never_folded(
    export: MultiprocessExport, store: MetricStore, registry: CollectorRegistry, directory: Path
) -> None:
    """A file whose lock file is missing, written in another pid namespace (a container
    sharing the directory), may be a live process's whatever its pid says here: it is never
    folded, and its counters are counted once, its gauges not."""
    if _shared_totals.pid_namespace() is None:
        pytest.skip("this platform names no pid namespace")
    child = fork(child_running(store, 4))
    elsewhere = Path(child.report()["path"])
    child.kill()
    document = json.loads(elsewhere.read_bytes())
    assert document["pid_namespace"] == _shared_totals.pid_namespace()
    document["pid_namespace"] = "another-boot/4:4026532000"
    elsewhere.write_text(json.dumps(document))
    elsewhere.with_suffix(".lock").unlink()
    for _ in range(2):
        assert sweep(directory) == 0
        text = scrape(registry)
        assert tasks_total(text) == 4
        assert 'laios_tasks_in_flight{tool="echo"} 0.0' in text
    assert elsewhere.exists()


def test_a_scrape_writes_this_process_file_before_answering(
    export: MultiprocessExport, store: MetricStore, registry: CollectorRegistry
) -> None:
    """What a scrape shows of this process is in its file, for any later scrape by another
    process to show at least as much."""
    run_tasks(store, 11)
    assert tasks_total(scrape(registry)) == 11
    assert export.path is not None
    [section] = sections_of(read_document(export.path))
    assert section.totals.tools["echo"].outcomes["success"][0] == 11


def test_a_failed_write_shows_what_the_file_holds(
    export: MultiprocessExport,
    store: MetricStore,
    registry: CollectorRegistry,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """When this process's file cannot be written, a scrape shows what the file holds (what
    other processes see), not the newer count, and warns."""
    run_tasks(store, 2)
    assert tasks_total(scrape(registry)) == 2

    def disk_full(path: Path, body: bytes) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(multiprocess, "write_totals", disk_full)
    run_tasks(store, 3)
    with caplog.at_level(logging.WARNING, "laios.execution.multiprocess"):
        assert tasks_total(scrape(registry)) == 2
    assert "No space left on device" in caplog.text


def test_a_full_disk_is_warned_saying_what_it_costs_and_what_to_do(
    export: MultiprocessExport,
    store: MetricStore,
    registry: CollectorRegistry,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A write of this process's file and a fold that fail (the directory's file system full)
    are warned with what that costs (counts as of the last write; gone processes' files
    counted where they are) and what to do, not with the system's error alone."""
    gone = fork(child_running(store, 5))
    gone.report()
    gone.kill()

    def disk_full(path: Path, body: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(multiprocess, "write_totals", disk_full)
    monkeypatch.setattr(_shared_totals, "write_totals", disk_full)
    run_tasks(store, 2)
    with caplog.at_level(logging.WARNING, "laios.execution.multiprocess"):
        assert tasks_total(scrape(registry)) == 5
    [write] = [r.getMessage() for r in caplog.records if "this process's metrics" in r.getMessage()]
    [folding] = [r.getMessage() for r in caplog.records if "folding" in r.getMessage()]
    assert "as of its last write" in write
    assert "where they are" in folding
    for message in (write, folding):
        assert "No space left on device" in message
        assert "make room on the directory's file system" in message


def test_a_full_disk_when_the_mode_is_turned_on_warns_and_the_file_comes_later(
    directory: Path,
    store: MetricStore,
    registry: CollectorRegistry,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A worker that starts while the directory's file system is full (one that gunicorn's
    max_requests replaced, say) starts all the same, warns, and writes its file once there is
    room again: an exception there would fail the worker's boot, and gunicorn stops the whole
    service when a worker fails to boot."""
    full = True
    write_totals = multiprocess.write_totals

    def disk_full_for_now(path: Path, body: bytes) -> None:
        if full:
            raise OSError(28, "No space left on device")
        write_totals(path, body)

    monkeypatch.setattr(multiprocess, "write_totals", disk_full_for_now)
    with caplog.at_level(logging.WARNING, "laios.execution.multiprocess"):
        export = enable(directory, interval=INTERVAL, registry=registry, store=store)
    assert "No space left on device" in caplog.text
    assert export.path is None
    run_tasks(store, 3)
    full = False
    deadline = time.monotonic() + CHILD_SECONDS
    while export.path is None:
        assert time.monotonic() < deadline, "the writer thread never wrote the file"
        time.sleep(INTERVAL / 2)
    assert tasks_total(scrape(registry)) == 3


def test_a_directory_with_no_room_for_a_new_file_does_not_stop_the_mode_turning_on(
    directory: Path,
    store: MetricStore,
    registry: CollectorRegistry,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A file system so full that no file can be created there (no inodes left, an inode
    quota) is a full disk too, not a directory that is not writable: the worker starts all the
    same, warns saying to make room, and writes its file once there is room."""
    full = True
    write_bytes, create_lock = Path.write_bytes, _shared_totals._create_lock

    def no_room(error: int) -> OSError:
        return OSError(error, os.strerror(error))

    def write_bytes_if_room(path: Path, data: Any) -> int:
        if full and path.parent == directory:
            raise no_room(errno.ENOSPC)
        return write_bytes(path, data)

    def create_lock_if_room(path: Path, flags: int) -> int:
        if full:
            raise no_room(errno.EDQUOT)
        return create_lock(path, flags)

    monkeypatch.setattr(Path, "write_bytes", write_bytes_if_room)
    monkeypatch.setattr(_shared_totals, "_create_lock", create_lock_if_room)
    with caplog.at_level(logging.WARNING, "laios.execution.multiprocess"):
        export = enable(directory, interval=INTERVAL, registry=registry, store=store)
    assert export.path is None
    assert "not writable" not in caplog.text
    assert "make room on the directory's file system" in caplog.text
    run_tasks(store, 3)
    full = False
    deadline = time.monotonic() + CHILD_SECONDS
    while export.path is None:
        assert time.monotonic() < deadline, "the writer thread never wrote the file"
        time.sleep(INTERVAL / 2)
    assert tasks_total(scrape(registry)) == 3


def test_alone_the_exposition_is_what_a_single_process_writes(
    directory: Path, store: MetricStore, registry: CollectorRegistry
) -> None:
    """With no other process, /metrics in multiprocess mode is byte for byte the text of the
    same registry without it, in both formats, exemplars included."""
    run_tasks(store, 3)
    run_tasks(store, 2, "fetch", "error")
    registry_alone = CollectorRegistry()
    ensure_collector(store, registry_alone)
    enable(directory, interval=INTERVAL, registry=registry, store=store)
    for openmetrics in (False, True):
        assert render_metrics(registry, openmetrics=openmetrics) == render_metrics(
            registry_alone, openmetrics=openmetrics
        )


def test_generate_latest_shows_the_sum_too(
    export: MultiprocessExport, store: MetricStore, registry: CollectorRegistry
) -> None:
    """prometheus_client's own rendering of the registry collects the added-up totals."""
    child = fork(child_running(store, 4))
    try:
        child.report()
        run_tasks(store, 1)
        assert tasks_total(generate_latest(registry).decode()) == 5
    finally:
        child.kill()


def test_enable_again_with_another_store_exports_it_too(
    export: MultiprocessExport, store: MetricStore, registry: CollectorRegistry, directory: Path
) -> None:
    """enable() called again while the mode is on, with the same directory and registry and
    another store, returns the export in force and exports that store as well, as its
    ``store`` argument says (it was dropped)."""
    second = MetricStore()
    assert enable(directory, registry=registry, store=second) is export
    run_tasks(store, 2)
    run_tasks(second, 3, tool="other")
    text = scrape(registry)
    assert tasks_total(text) == 2
    assert tasks_total(text, "other") == 3


def test_disable_shows_this_process_alone_again_and_keeps_its_file(
    export: MultiprocessExport, store: MetricStore, registry: CollectorRegistry, directory: Path
) -> None:
    """After disable(), /metrics is this process's own, and its file stays (a process that
    leaves keeps its counts in the sum; it is folded once the process is gone)."""
    run_tasks(store, 3)
    scrape(registry)
    assert export.path is not None
    stem = export.path.name.removesuffix(".json")
    assert disable()
    assert files(directory) == [f"{stem}.json", f"{stem}.lock"]
    run_tasks(store, 1)
    assert tasks_total(scrape(registry)) == 4
    assert not disable()


def test_a_closed_exports_totals_count_this_process_once(
    export: MultiprocessExport, store: MetricStore, registry: CollectorRegistry
) -> None:
    """After disable(), the export's totals() are the sum the other processes see: this
    process's counts once, from its file, not its file and its stores both."""
    run_tasks(store, 3)
    assert disable()
    assert (
        sum(
            histogram[0]
            for totals in export.totals()
            for tool in totals.tools.values()
            for histogram in tool.outcomes.values()
        )
        == 3
    )


def test_make_wsgi_app_turns_the_mode_on_from_the_environment(
    directory: Path,
    store: MetricStore,
    registry: CollectorRegistry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With LAIOS_MULTIPROC_DIR set, the WSGI app's /metrics shows another process's counts."""
    monkeypatch.setenv(ENV_VAR, str(directory))
    make_wsgi_app(store, registry)
    export = current()
    assert export is not None
    assert export.directory == directory
    child = fork(child_running(store, 3))
    try:
        child.report()
        assert tasks_total(scrape(registry)) == 3
    finally:
        child.kill()


def test_gunicorns_master_writes_no_file_and_its_workers_do(
    directory: Path,
    store: MetricStore,
    registry: CollectorRegistry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Enabled in the master before on_starting (--preload), the master's file goes away and
    it writes no other; a worker forked from it writes its own."""
    monkeypatch.setenv(ENV_VAR, str(directory))
    export = enable(interval=INTERVAL, registry=registry, store=store)
    assert export.path is not None
    gunicorn_on_starting(None)
    assert files(directory) == []
    export.write()
    assert files(directory) == []
    child = fork(child_running(store, 2))
    try:
        report = child.report()
        assert Path(report["path"]).exists()
    finally:
        child.kill()


def test_on_starting_clears_laios_files_and_leaves_prometheus_client_files(
    directory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fresh start removes laios's files (the retired one too), keeps ``*.db`` files, and
    creates a directory that is missing."""
    (directory / "laios-retired.json").write_text("{}")
    (directory / "laios-proc-1-abc.json").write_text("{}")
    (directory / "counter_123.db").write_bytes(b"\x00")
    monkeypatch.setenv(ENV_VAR, str(directory))
    gunicorn_on_starting(None)
    assert files(directory) == ["counter_123.db"]
    missing = directory / "new"
    assert prepare_directory(missing) == missing
    assert missing.is_dir()


def test_a_deleted_directory_fails_scrapes_saying_so_and_recreated_it_serves_again(
    export: MultiprocessExport,
    store: MetricStore,
    registry: CollectorRegistry,
    directory: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The shared directory deleted under the workers: a scrape fails (a sum without the gone
    workers' counts would go backwards unannounced) with an error, logged once, that names the
    directory and says what to do; created again, it serves the live workers' sums."""
    run_tasks(store, 3)
    child = fork(child_running(store, 4))
    try:
        child.report()
        assert tasks_total(scrape(registry)) == 7
        delete_directory(directory)
        with caplog.at_level(logging.WARNING, "laios.execution.multiprocess"):
            for _ in range(2):
                with pytest.raises(FileNotFoundError, match="is gone") as raised:
                    scrape(registry)
                assert str(directory) in str(raised.value)
        gone = [r.getMessage() for r in caplog.records if "is gone" in r.getMessage()]
        assert len(gone) == 1, gone
        assert "Create it again" in gone[0]
        directory.mkdir()
        # (the scrapes fail until the child has had its interval to write here)
        assert tasks_total(answered_scrape(registry)) == 7
    finally:
        child.kill()


def test_a_scrape_refused_for_a_deleted_directory_is_logged_in_words_without_a_traceback(
    export: MultiprocessExport,
    store: MetricStore,
    registry: CollectorRegistry,
    directory: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The scrape that fails for the directory deleted under the workers fails on purpose,
    and says why in one warning, as for a damaged file: ``/metrics`` and ``/status`` answer
    500 without an ERROR "serving /metrics failed" and a traceback besides, which would read
    as a defect of the server."""
    app = make_wsgi_app(registry=registry, store=store)
    delete_directory(directory)
    with caplog.at_level(logging.WARNING):
        answers = [call_wsgi(app, path=route).status for route in ("/metrics", "/status")]
    assert answers == [500, 500]
    assert any("is gone" in record.getMessage() for record in caplog.records), caplog.text
    assert [record for record in caplog.records if record.levelno >= logging.ERROR] == [], (
        caplog.text
    )


def test_a_directory_created_anew_answers_no_scrape_without_the_live_workers(
    directory: Path, store: MetricStore, registry: CollectorRegistry
) -> None:
    """The shared directory deleted and created again under the running workers (with or
    without a scrape in between): a scrape that answered with the serving worker's own counts
    before the others had written their files there again would drop the sum by theirs, which
    Prometheus reads as a counter reset, and then as many tasks again when they write. Until
    they have had their interval to write, the scrape fails saying why; then it shows every
    live worker's counts."""
    enable(directory, interval=0.4, registry=registry, store=store)
    run_tasks(store, 3)
    child = fork(child_running(store, 4))
    try:
        child.report()
        assert tasks_total(scrape(registry)) == 7
        os.kill(child.pid, signal.SIGSTOP)  # (it cannot write to the new directory yet)
        try:
            delete_directory(directory)
            directory.mkdir()
            with pytest.raises(OSError, match="created anew") as raised:
                scrape(registry)
            assert str(directory) in str(raised.value)
        finally:
            os.kill(child.pid, signal.SIGCONT)
        deadline = time.monotonic() + CHILD_SECONDS
        while len(list(directory.glob("laios-proc-*.json"))) < 2:
            assert time.monotonic() < deadline, "the child never wrote to the new directory"
            time.sleep(0.01)
        # (the scrapes may still wait for the interval to pass)
        assert tasks_total(answered_scrape(registry)) == 7
    finally:
        child.kill()


@pytest.mark.parametrize("trouble", ["gone", "created anew", "locked", "unreadable"])
def test_a_failed_multiprocess_scrape_answers_500_saying_what_failed_without_the_path(
    directory: Path,
    store: MetricStore,
    registry: CollectorRegistry,
    monkeypatch: pytest.MonkeyPatch,
    trouble: str,
) -> None:
    """A scrape that fails in multiprocess mode answers ``/metrics`` and ``/status`` 500 with a
    JSON error saying what failed and that the server's log says more, not a bare "internal
    error" that leaves the operator with nothing to act on; the directory's path, which the
    log names, is not in the answer (a client of /metrics learns nothing of the server's
    file system)."""
    enable(directory, interval=INTERVAL, registry=registry, store=store)
    app = make_wsgi_app(registry=registry, store=store)
    expected = {
        "gone": "directory is gone",
        "created anew": "created anew",
        "locked": "lock",
        "unreadable": "Too many open files",
    }[trouble]
    holder = None
    if trouble in ("gone", "created anew"):
        delete_directory(directory)
        if trouble == "created anew":
            directory.mkdir()
    elif trouble == "locked":
        monkeypatch.setattr(_shared_totals, "LOCK_TIMEOUT", 0.2)
        holder = os.open(directory, os.O_RDONLY)
        fcntl.flock(holder, fcntl.LOCK_EX)  # (as a process stuck in a fold)
    else:

        def no_listing(self: SharedDirectory) -> Any:
            raise OSError(errno.EMFILE, os.strerror(errno.EMFILE), str(directory))

        monkeypatch.setattr(SharedDirectory, "listing", no_listing)
    try:
        answers = [call_wsgi(app, path=route) for route in ("/metrics", "/status")]
    finally:
        if holder is not None:
            os.close(holder)
    for answer in answers:
        assert answer.status == 500
        error = json.loads(answer.body)["error"]
        assert "multiprocess" in error, error
        assert expected in error, error
        assert "log" in error, error
        assert str(directory.parent) not in error, error


def test_a_gunicorn_worker_started_after_the_directory_was_deleted_starts_and_writes_later(
    directory: Path,
    store: MetricStore,
    registry: CollectorRegistry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The directory deleted under a running gunicorn service (a temp-file cleaner, an
    ``rm -rf``): a worker that starts then (one replaced after max_requests or a SIGKILL)
    starts all the same and writes its file once the directory is back. Refusing would fail
    its boot, and gunicorn stops the whole service when a worker fails to boot. Its scrapes
    then wait for the other workers to write theirs there too, as the other workers' do."""
    monkeypatch.setenv(ENV_VAR, str(directory))
    gunicorn_on_starting(None)  # this process is the master: it checked the directory
    shutil.rmtree(directory)

    def work(report: Report) -> None:
        export = enable(interval=0.5, registry=registry, store=store)
        report({"started": True})
        run_tasks(store, 2)
        deadline = time.monotonic() + CHILD_SECONDS
        while True:  # (its scrapes: the directory is gone, then created anew)
            try:
                export.totals()
            except OSError as exc:
                if "created anew" in str(exc):
                    break
            assert time.monotonic() < deadline, "no scrape waited for the other workers"
            time.sleep(0.02)
        assert export.path is not None
        report({"path": str(export.path)})
        time.sleep(60)

    child = fork(work)
    try:
        assert child.report() == {"started": True}
        directory.mkdir()
        path = Path(child.report()["path"])
        [section] = sections_of(read_document(path))
        assert section.totals.tools["echo"].outcomes["success"][0] == 2
    finally:
        child.kill()


@pytest.fixture
def strict_umask(request: pytest.FixtureRequest) -> Iterator[int]:
    """This process's umask set to ``request.param`` (``0o077`` without one), as a service's
    start script or systemd unit may set it; the old one restored afterwards."""
    mask = getattr(request, "param", 0o077)
    old = os.umask(mask)
    try:
        yield mask
    finally:
        os.umask(old)


def _modes(directory: Path) -> dict[str, int]:
    return {p.name: stat.S_IMODE(p.stat().st_mode) for p in directory.iterdir()}


@pytest.mark.parametrize("strict_umask", [0o027, 0o077], indirect=True, ids=oct)
def test_the_files_laios_creates_are_readable_by_every_process_whatever_the_umask(
    strict_umask: int,
    store: MetricStore,
    registry: CollectorRegistry,
    directory: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Under a umask that takes reading from others, the directory's lock file, each
    process's lock and data files and the retired file are created readable by all the same
    (``0o644``), as the processes sharing the directory need: the umask decided it, and a
    worker of another user than the master could not open the master's files."""
    monkeypatch.setenv(ENV_VAR, str(directory))
    prepare_directory()
    export = enable(interval=INTERVAL, registry=registry, store=store)
    child = fork(child_running(store, 2))
    child.report()
    child.kill()
    gunicorn_child_exit(None, None)  # writes the retired file
    modes = _modes(directory)
    assert export.path is not None
    own = {export.path.name, export.path.with_suffix(".lock").name}
    assert modes.keys() == {"laios-dir.lock", "laios-retired.json", *own}
    assert set(modes.values()) == {0o644}, {name: oct(mode) for name, mode in modes.items()}


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0,
    reason="switches to another user, as gunicorn's master does for --user",
)
@pytest.mark.parametrize("strict_umask", [0o022, 0o027, 0o077], indirect=True, ids=oct)
def test_workers_of_another_user_than_the_master_share_its_directory(
    strict_umask: int,
    store: MetricStore,
    registry: CollectorRegistry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """gunicorn started by root with ``--user``: the master prepares the directory (and so
    creates its lock file, as root), its workers run as the other user. They lock that file
    all the same (``flock`` needs no write access) instead of failing their boot, which
    made gunicorn stop the whole service; also when the master runs under a umask that takes
    reading from others (then they could not open it). The retired file the master writes
    when a worker exits is read by the next worker, whose scrape counts the gone one's tasks."""
    path = Path(tempfile.mkdtemp(prefix="laios-user-"))  # (tmp_path is root's alone)
    try:
        path.chmod(0o777)  # writable by the workers' user
        monkeypatch.setenv(ENV_VAR, str(path))
        gunicorn_on_starting(None)
        assert (path / "laios-dir.lock").stat().st_uid == 0

        def worker(work: Callable[[Report], None]) -> Callable[[Report], None]:
            def as_the_workers_user(report: Report) -> None:
                become_nobody()
                work(report)

            return as_the_workers_user

        def first(report: Report) -> None:
            export = enable(interval=INTERVAL, registry=registry, store=store)
            run_tasks(store, 2)
            export.write()
            report({"path": str(export.path)})
            time.sleep(60)

        def second(report: Report) -> None:
            enable(interval=INTERVAL, registry=registry, store=store)
            report({"total": tasks_total(scrape(registry))})

        child = fork(worker(first))
        try:
            written = Path(child.report()["path"])
            assert written.stat().st_uid == 65534
            [section] = sections_of(read_document(written))
            assert section.totals.tools["echo"].outcomes["success"][0] == 2
        finally:
            child.kill()
        gunicorn_child_exit(None, None)  # as root: the retired file is root's
        assert (path / "laios-retired.json").stat().st_uid == 0
        assert fork(worker(second)).report() == {"total": 2}
    finally:
        shutil.rmtree(path)


def _gunicorn_server(uid: int, gid: int) -> Any:
    """What ``gunicorn_on_starting`` reads of gunicorn's arbiter: ``cfg.uid``/``cfg.gid``,
    the user and group of its workers (``--user``/``--group``)."""
    return SimpleNamespace(cfg=SimpleNamespace(uid=uid, gid=gid))


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0,
    reason="switches to another user, as gunicorn's master does for --user",
)
@pytest.mark.parametrize("strict_umask", [0o022, 0o077], indirect=True, ids=oct)
def test_a_directory_the_hook_creates_is_given_to_the_workers_user(
    strict_umask: int,
    store: MetricStore,
    registry: CollectorRegistry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """gunicorn started by root with ``--user``, ``$LAIOS_MULTIPROC_DIR`` missing: the
    ``on_starting`` hook creates it, and the parents it had to create, and gives it to the
    workers' user, so that the workers (which failed to boot on a directory of root's: "not
    writable") write there, also under a umask that makes directories ``0700``. The parents
    it created stay root's (a worker owning one could swap the directory for a link that
    root then writes through), and everyone may pass through them. A parent that existed
    before stays as it was."""
    existing = Path(tempfile.mkdtemp(prefix="laios-user-"))  # (tmp_path is root's alone)
    try:
        existing.chmod(0o755)
        path = existing / "service" / "run" / "multiproc"
        monkeypatch.setenv(ENV_VAR, str(path))
        gunicorn_on_starting(_gunicorn_server(65534, 65534))
        assert (path.stat().st_uid, path.stat().st_gid) == (65534, 65534)
        for parent in (path.parent, path.parent.parent):
            assert (parent.stat().st_uid, parent.stat().st_gid) == (0, 0), parent
            assert parent.stat().st_mode & 0o111 == 0o111, parent
            assert parent.stat().st_mode & 0o022 == 0, parent
        assert (existing.stat().st_uid, existing.stat().st_gid) == (0, 0)
        assert (path / "laios-dir.lock").stat().st_uid == 0

        def worker(report: Report) -> None:
            become_nobody()
            export = enable(interval=INTERVAL, registry=registry, store=store)
            run_tasks(store, 2)
            export.write()
            report({"path": str(export.path)})
            time.sleep(60)

        child = fork(worker)
        try:
            written = Path(child.report()["path"])
            assert written.stat().st_uid == 65534
        finally:
            child.kill()
        gunicorn_child_exit(None, None)  # the master (root) still writes there
        assert (path / "laios-retired.json").stat().st_uid == 0
    finally:
        shutil.rmtree(existing)


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to own directories"
)
def test_a_directory_that_existed_is_left_to_its_owner_by_the_hook(
    directory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hook gives away only what it creates: a directory that existed is the operator's,
    whoever the workers run as."""
    monkeypatch.setenv(ENV_VAR, str(directory))
    gunicorn_on_starting(_gunicorn_server(65534, 65534))
    assert (directory.stat().st_uid, directory.stat().st_gid) == (0, 0)


@pytest.mark.skipif(not hasattr(os, "chown"), reason="needs POSIX owners")
def test_a_created_directory_that_cannot_be_given_to_the_workers_user_stops_the_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Workers that could not write in the directory would all fail to boot: when the hook
    cannot give the directory it created to their user, gunicorn does not start, told why and
    what to do, and what the hook created is removed (a later start creates it again)."""

    def refused(*args: Any, **kwargs: Any) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "chown", refused)
    path = tmp_path / "service" / "multiproc"
    monkeypatch.setenv(ENV_VAR, str(path))
    with pytest.raises(ValueError, match="Operation not permitted") as raised:
        gunicorn_on_starting(_gunicorn_server(os.getuid() + 1, os.getgid()))
    assert str(path) in str(raised.value)
    assert "uid" in str(raised.value)
    assert "chown" in str(raised.value)
    assert not path.parent.exists()
    assert tmp_path.is_dir()


@pytest.mark.parametrize(
    "server",
    [
        None,
        SimpleNamespace(),
        SimpleNamespace(cfg=None),
        SimpleNamespace(cfg=SimpleNamespace(uid="nobody", gid=None)),
        "same user",
    ],
    ids=["none", "no-cfg", "cfg-none", "not-ints", "same-user"],
)
def test_workers_of_the_masters_own_user_get_the_directory_as_it_is_made(
    server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No ``--user``/``--group`` (workers of the master's own user), or no arbiter to tell:
    the directory is created as before, and nothing is given away."""
    if server == "same user":
        server = _gunicorn_server(os.getuid(), os.getgid())

    def refused(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("nothing is chowned")

    monkeypatch.setattr(os, "chown", refused)
    path = tmp_path / "service" / "multiproc"
    monkeypatch.setenv(ENV_VAR, str(path))
    gunicorn_on_starting(server)
    assert path.is_dir()
    assert path.stat().st_uid == os.geteuid()


def test_a_directory_live_processes_write_to_is_not_cleared_and_the_start_warns(
    store: MetricStore,
    registry: CollectorRegistry,
    directory: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A second service started on a directory whose workers still run (given the same
    directory by mistake) clears nothing: the first one's live and retired counts stay, and
    one warning names the directory and the live pids."""

    def worker_of_the_first_service(count: int) -> Callable[[Report], None]:
        def work(report: Report) -> None:
            enable(directory, interval=INTERVAL, registry=registry, store=store)
            child_running(store, count)(report)

        return work

    first_service = fork(worker_of_the_first_service(3))
    try:
        worker_pid = first_service.report()["pid"]
        gone = fork(worker_of_the_first_service(2))
        gone.report()
        gone.kill()
        assert sweep(directory) == 1
        before = files(directory)
        monkeypatch.setenv(ENV_VAR, str(directory))
        with caplog.at_level(logging.WARNING, "laios.execution.multiprocess"):
            gunicorn_on_starting(None)  # the second service's master
        assert files(directory) == before
        (warning,) = [r.getMessage() for r in caplog.records if str(directory) in r.getMessage()]
        assert str(worker_pid) in warning
        assert "own directory" in warning
        multiprocess._master_pid = None
        enable(directory, interval=INTERVAL, registry=registry, store=store)
        assert tasks_total(scrape(registry)) == 3 + 2
    finally:
        first_service.kill()


def test_a_last_write_that_fails_says_that_the_counts_since_the_previous_one_are_lost(
    export: MultiprocessExport, store: MetricStore, registry: CollectorRegistry, directory: Path
) -> None:
    """The last write (at exit, or ``disable()``) that fails (a full disk, a file size limit)
    loses what the process counted since its previous write: it did so without a word, so a
    service whose totals fell short showed nothing in its logs to say why. It is logged."""

    def work(report: Report) -> None:
        run_tasks(store, 3)
        export = current()
        assert export is not None
        export.write()
        messages: list[str] = []
        handler = logging.Handler()
        handler.emit = lambda record: messages.append(record.getMessage())  # type: ignore[method-assign]
        logging.getLogger("laios.execution.multiprocess").addHandler(handler)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1, resource.RLIM_INFINITY))  # (no more writes)
        run_tasks(store, 2)
        disable()
        report({"messages": messages})

    child = fork(work)
    try:
        (message,) = [m for m in child.report()["messages"] if "lost" in m]
    finally:
        child.kill()
    assert str(directory) in message
    assert "File too large" in message
    assert "lost" in message
    assert tasks_total(scrape(registry)) == 3  # (what the file held: the 2 since are lost)


def test_child_exit_folds_the_exited_worker(
    export: MultiprocessExport, store: MetricStore, directory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """gunicorn's child_exit hook folds the files of a worker that exited."""
    monkeypatch.setenv(ENV_VAR, str(directory))
    child = fork(child_running(store, 2))
    report = child.report()
    child.kill()
    gunicorn_child_exit(None, None)
    assert not Path(report["path"]).exists()


def test_child_exit_never_raises(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Without a usable directory, the hook logs the failure instead of raising in the master
    (at DEBUG when the same failure was logged within the minute)."""
    with caplog.at_level(logging.DEBUG, "laios.execution.multiprocess"):
        gunicorn_child_exit(None, None)
    assert "folding the files of exited workers failed" in caplog.text


def test_child_exit_failing_again_logs_once_a_minute(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """While the directory stays unusable (deleted, a full disk), every worker's exit failed
    the same way, each logged at ERROR with a traceback: a flood in a busy service. The first
    is logged with its traceback, the same failure again at most once a minute (the others at
    DEBUG)."""
    with caplog.at_level(logging.DEBUG, "laios.execution.multiprocess"):
        for _ in range(5):
            gunicorn_child_exit(None, None)
    failures = [r for r in caplog.records if "folding the files" in r.getMessage()]
    assert len(failures) == 5
    errors = [r for r in failures if r.levelno >= logging.ERROR]
    assert len(errors) <= 1  # (none when another test logged it within the minute)
    assert all(r.exc_info is not None for r in errors)


@pytest.mark.parametrize(
    ("make_path", "message"),
    [
        (lambda d: d / "missing", "does not exist"),
        (lambda d: d / "a-file", "is not a directory"),
        (lambda d: Path("/proc"), "not writable"),
    ],
    ids=["missing", "a-file", "unwritable"],
)
def test_a_directory_that_cannot_be_used_is_refused_at_enable(
    directory: Path, make_path: Callable[[Path], Path], message: str
) -> None:
    """A missing, non-directory or unwritable path is refused at once, the path named."""
    (directory / "a-file").write_text("")
    path = make_path(directory)
    with pytest.raises(ValueError, match=message) as caught:
        enable(path)
    assert str(path) in str(caught.value)


def test_a_directory_under_a_regular_file_is_refused_saying_so(directory: Path) -> None:
    """A path with a regular file as one of its parts (``/etc/hosts/laios``) cannot be
    created: the refusal names the file rather than saying to create the directory first."""
    (directory / "a-file").write_text("")
    path = directory / "a-file" / "laios" / "metrics"
    with pytest.raises(ValueError, match="is a file") as caught:
        enable(path)
    message = str(caught.value)
    assert str(path) in message
    assert str(directory / "a-file") in message
    assert "create it first" not in message


@pytest.mark.parametrize("suffix", ["\n", " "], ids=["line-break", "space"])
def test_a_directory_whose_name_ends_with_white_space_is_refused_showing_it(
    directory: Path, monkeypatch: pytest.MonkeyPatch, suffix: str
) -> None:
    """``LAIOS_MULTIPROC_DIR`` set with a line break or a space left at its end names a
    directory other than the one created: the refusal shows the name quoted and says that it
    ends with white space, instead of saying that a directory the operator sees does not
    exist."""
    monkeypatch.setenv(ENV_VAR, f"{directory}{suffix}")
    with pytest.raises(ValueError, match="does not exist") as caught:
        enable()
    message = str(caught.value)
    assert repr(f"{directory}{suffix}") in message
    assert "white space" in message


@pytest.mark.parametrize("call", [enable, sweep], ids=lambda c: c.__name__)
def test_a_directory_whose_name_is_too_long_is_refused_with_a_value_error(
    directory: Path, call: Callable[[Path], Any]
) -> None:
    """A path the system cannot look up (a name longer than the file system allows) is
    refused with a ValueError naming it and what the system said, as prepare_directory()
    refuses it, not with the bare OSError of the look-up."""
    path = directory / ("x" * 300)
    with pytest.raises(ValueError, match="cannot be looked up") as caught:
        call(path)
    assert str(path) in str(caught.value)
    assert "name too long" in str(caught.value).lower()


@pytest.mark.parametrize("call", [prepare_directory, enable, sweep], ids=lambda c: c.__name__)
def test_a_path_with_a_nul_character_is_refused_saying_so(
    directory: Path, call: Callable[[str], Any]
) -> None:
    """A path no system call takes (a NUL character in it) is refused naming it and the
    character, not taken for a directory that does not exist, nor refused with the bare
    "embedded null byte" that names no path."""
    with pytest.raises(ValueError, match="NUL character") as caught:
        call(f"{directory}/a\0b")
    assert repr(f"{directory}/a\0b") in str(caught.value)


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to switch users"
)
def test_a_directory_under_a_parent_the_process_may_not_enter_is_refused_saying_so() -> None:
    """A gunicorn worker of another user (``--user``) given a directory inside a parent that
    user may not enter (``0700``, root's) is refused at enable() with a ValueError naming the
    directory and saying that permission was denied, not with a bare PermissionError."""
    parent = Path(tempfile.mkdtemp(prefix="laios-closed-"))  # 0700, root's
    try:
        path = parent / "multiproc"
        path.mkdir(mode=0o777)

        def as_another_user() -> dict[str, Any]:
            become_nobody()
            answers = {}
            for call in (enable, sweep):
                try:
                    call(path)
                except Exception as exc:  # (reported to the test)
                    answers[call.__name__] = [type(exc).__name__, str(exc)]
            return answers

        answers = in_child(as_another_user)
        assert "crashed" not in answers, answers
        for name in ("enable", "sweep"):
            kind, message = answers[name]
            assert kind == "ValueError", answers
            assert str(path) in message
            assert "permission denied" in message.lower()
    finally:
        shutil.rmtree(parent)


@pytest.mark.parametrize("code", [errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS])
def test_a_directory_without_file_locks_is_refused_saying_so(
    directory: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    """A directory whose file system refuses ``flock`` (a network file system mounted without
    locks, some FUSE file systems) is refused saying that and where to put it, not that it is
    not writable: its owner and mode are fine, and checking them leads nowhere."""

    def no_locks(fd: int, operation: int) -> None:
        raise OSError(code, os.strerror(code))

    fake = SimpleNamespace(**{n: getattr(fcntl, n) for n in dir(fcntl) if n.startswith("LOCK_")})
    monkeypatch.setattr(_shared_totals, "fcntl", SimpleNamespace(**vars(fake), flock=no_locks))
    with pytest.raises(ValueError, match="file locks") as caught:
        enable(directory)
    assert str(directory) in str(caught.value)
    assert "not writable" not in str(caught.value)
    assert "local file system" in str(caught.value)


def test_a_directory_locked_too_long_is_refused_saying_so_not_as_unwritable(
    directory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A directory whose lock another process holds past the wait (a stuck process) is
    refused saying so and what to look for, not that it is not writable."""
    monkeypatch.setattr(_shared_totals, "LOCK_TIMEOUT", 0.2)
    holder = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(holder, fcntl.LOCK_EX)  # (as a process stuck in a fold)
        with pytest.raises(ValueError) as caught:
            enable(directory)
    finally:
        os.close(holder)
    message = str(caught.value)
    assert str(directory) in message
    assert "not writable" not in message
    assert "stuck process" in message


def test_no_directory_at_all_is_refused_naming_the_variable() -> None:
    """Without a directory and without LAIOS_MULTIPROC_DIR, enable() says what to set."""
    with pytest.raises(ValueError, match=ENV_VAR):
        enable()


@pytest.mark.parametrize(
    "call",
    [
        lambda: multiprocess.enable_from_environment(CollectorRegistry(), MetricStore()),
        lambda: make_wsgi_app(store=MetricStore(), registry=CollectorRegistry()),
        enable,
        prepare_directory,
        sweep,
        gunicorn_on_starting,
    ],
    ids=[
        "enable_from_environment",
        "make_wsgi_app",
        "enable",
        "prepare_directory",
        "sweep",
        "gunicorn_on_starting",
    ],
)
def test_a_variable_set_but_empty_is_refused_saying_so(
    monkeypatch: pytest.MonkeyPatch, call: Callable[[], Any]
) -> None:
    """``LAIOS_MULTIPROC_DIR=`` (set, to nothing: an empty value in an env file or a
    Kubernetes manifest) names no directory; whoever set it meant multiprocess mode on, and
    each worker's /metrics alone would go backwards from one scrape to the next. It is
    refused saying that the variable is empty and what to do, not taken for "not set" (the
    mode silently off) nor refused as if it were not set at all."""
    monkeypatch.setenv(ENV_VAR, "")
    with pytest.raises(ValueError, match=f"{ENV_VAR} is set but empty") as caught:
        call()
    assert "unset it" in str(caught.value)
    assert current() is None


@pytest.mark.parametrize("interval", [0, -1.0, 1e-9, 0.049, float("nan"), float("inf"), 3601])
def test_an_interval_out_of_range_is_refused(directory: Path, interval: float) -> None:
    """The interval must be from 0.05 s (a writer thread rewriting its file without pause
    would burn a CPU) to an hour."""
    with pytest.raises(ValueError, match="interval"):
        enable(directory, interval=interval)


@pytest.mark.parametrize("interval", ["1", True])
def test_an_interval_that_is_not_a_number_is_refused(directory: Path, interval: Any) -> None:
    """A string or a bool is not a number of seconds (``None`` is the default: see below)."""
    with pytest.raises(TypeError, match="interval"):
        enable(directory, interval=interval)


def test_enable_twice_returns_the_same_export_and_refuses_another_directory(
    export: MultiprocessExport, directory: Path, registry: CollectorRegistry, tmp_path: Path
) -> None:
    """One export per process: the same arguments give it back, another directory is refused."""
    assert enable(directory, interval=INTERVAL, registry=registry) is export
    with pytest.raises(ValueError, match="already on"):
        enable(tmp_path, interval=INTERVAL, registry=registry)


def test_enable_with_another_interval_while_on_is_refused_saying_so(
    export: MultiprocessExport, directory: Path, registry: CollectorRegistry
) -> None:
    """``enable(interval=0.25)`` after make_wsgi_app() has turned the mode on (with the
    default interval) is refused, rather than return the export with the old interval as if
    the new one were taken."""
    with pytest.raises(ValueError, match=r"interval 0\.1 s.*before make_wsgi_app") as raised:
        enable(directory, interval=0.25, registry=registry)
    assert "disable()" in str(raised.value)
    assert export.interval == INTERVAL


def test_enable_without_an_interval_while_on_keeps_the_one_in_force(
    export: MultiprocessExport, directory: Path, registry: CollectorRegistry
) -> None:
    """``enable()`` with no ``interval`` (a second part of the application making sure the
    mode is on) returns the export as it is: only an interval actually given can differ."""
    assert enable(directory, registry=registry) is export
    assert export.interval == INTERVAL


def test_enable_without_an_interval_turns_the_mode_on_with_the_default_one(
    directory: Path, registry: CollectorRegistry
) -> None:
    """With the mode off, no ``interval`` (or ``None``) is the default, 1 s."""
    assert enable(directory, interval=None, registry=registry).interval == DEFAULT_INTERVAL


# -- a fork while this process holds a lock in the directory --------------------------------


def sleeping(report: Report) -> None:
    """A child's work: report, then live on (as a long-lived worker) until killed."""
    report({})
    time.sleep(60)


def in_thread(call: Callable[[], Any], seconds: float = CHILD_SECONDS) -> list[Any]:
    """Run ``call`` in a daemon thread; its result in a list, or an empty list when it has not
    returned within ``seconds`` (or raised)."""
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(call()), daemon=True)
    thread.start()
    thread.join(seconds)
    return result


def test_a_child_forked_during_a_scrape_does_not_keep_the_directory_locked(
    export: MultiprocessExport,
    store: MetricStore,
    registry: CollectorRegistry,
    directory: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A child forked while another thread's scrape holds the directory's lock lets go of it:
    the file of a process that is gone is folded afterwards, while the child lives on."""
    gone = fork(child_running(store, 4))
    report = gone.report()
    reading, resume = threading.Event(), threading.Event()
    real_read = SharedDirectory.read_or_raise

    def paused_read(self: SharedDirectory, path: Path) -> Any:
        reading.set()  # under the directory's shared lock
        resume.wait(CHILD_SECONDS)
        return real_read(self, path)

    monkeypatch.setattr(SharedDirectory, "read_or_raise", paused_read)
    scraper = threading.Thread(target=scrape, args=(registry,), daemon=True)
    scraper.start()
    assert reading.wait(CHILD_SECONDS)
    child = fork(sleeping)
    try:
        child.report()
        resume.set()
        scraper.join(CHILD_SECONDS)
        monkeypatch.setattr(SharedDirectory, "read_or_raise", real_read)
        gone.kill()
        assert in_thread(lambda: sweep(directory)) == [1]
        assert not Path(report["path"]).exists()
    finally:
        child.kill()


def test_a_child_forked_during_a_liveness_check_does_not_keep_a_gone_process_alive(
    export: MultiprocessExport,
    store: MetricStore,
    registry: CollectorRegistry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A child forked while a scrape has the lock file of a gone process open (checking that it
    is gone) does not keep that lock: the gone process's file is folded."""
    gone = fork(child_running(store, 3))
    report = gone.report()
    gone.kill()
    dead_lock = os.stat(Path(report["path"]).with_suffix(".lock"))
    children: list[Child] = []

    def flock(fd: int, operation: int) -> None:
        fcntl.flock(fd, operation)
        held = os.fstat(fd)
        if not children and (held.st_dev, held.st_ino) == (dead_lock.st_dev, dead_lock.st_ino):
            children.append(fork(sleeping))  # while this process holds the dead lock file

    fake = SimpleNamespace(**{n: getattr(fcntl, n) for n in dir(fcntl) if n.startswith("LOCK_")})
    monkeypatch.setattr(_shared_totals, "fcntl", SimpleNamespace(**vars(fake), flock=flock))
    try:
        assert tasks_total(scrape(registry)) == 3
        assert children
        children[0].report()
        monkeypatch.undo()
        assert tasks_total(scrape(registry)) == 3
        assert not Path(report["path"]).exists()
    finally:
        for child in children:
            child.kill()


def test_a_fold_waits_for_the_directory_lock_only_so_long(
    export: MultiprocessExport, directory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sweep whose directory lock another process holds for ever fails with TimeoutError
    once the wait is over, instead of hanging."""
    monkeypatch.setattr(_shared_totals, "LOCK_TIMEOUT", 0.2)
    holder = os.open(directory / "laios-dir.lock", os.O_RDWR)
    try:
        fcntl.flock(holder, fcntl.LOCK_SH)  # as a scrape stuck in another process

        def sweep_failing() -> str:
            with pytest.raises(TimeoutError) as caught:
                sweep(directory)
            return str(caught.value)

        [message] = in_thread(sweep_failing)
        assert "laios-dir.lock" in message
    finally:
        os.close(holder)


def test_a_scrape_answers_while_a_fold_cannot_take_the_directory_lock(
    export: MultiprocessExport,
    store: MetricStore,
    registry: CollectorRegistry,
    directory: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With the directory's lock shared by a stuck reader, a scrape that finds a gone process
    skips the fold (with a warning) and still counts that process's tasks, in time."""
    monkeypatch.setattr(_shared_totals, "LOCK_TIMEOUT", 0.2)
    gone = fork(child_running(store, 5))
    gone.report()
    gone.kill()
    holder = os.open(directory / "laios-dir.lock", os.O_RDWR)
    try:
        fcntl.flock(holder, fcntl.LOCK_SH)
        with caplog.at_level(logging.WARNING, "laios.execution.multiprocess"):
            assert in_thread(lambda: tasks_total(scrape(registry))) == [5]
        assert "laios-dir.lock" in caplog.text
    finally:
        os.close(holder)


# -- other histogram bucket bounds -----------------------------------------------------------


def child_with_store(
    other: MetricStore, count: int, pool: StatsOnlyRunner | None = None
) -> Callable[[Report], None]:
    """A child's work: ``count`` tasks in ``other`` (and ``pool`` registered with it), written
    through an export of its own (another process configured otherwise), then wait to be
    killed."""

    def work(report: Report) -> None:
        run_tasks(other, count)
        if pool is not None:
            other.register_runner(pool)
        other_registry = CollectorRegistry()
        collector = ensure_collector(other, other_registry)
        MultiprocessExport(current_directory(), 60.0, other_registry, collector).write()
        report({})
        time.sleep(60)

    return work


def current_directory() -> Path:
    export = current()
    assert export is not None
    return export.directory


def series_of(text: str) -> list[tuple[str, tuple[tuple[str, str], ...]]]:
    """Every sample's name and labels, parsed by prometheus_client's OpenMetrics parser."""
    return [
        (sample.name, tuple(sorted(sample.labels.items())))
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


@pytest.mark.parametrize("gone", [False, True], ids=["live", "retired"])
def test_totals_with_other_bucket_bounds_are_added_in_the_common_bounds_with_a_warning(
    export: MultiprocessExport,
    store: MetricStore,
    registry: CollectorRegistry,
    caplog: pytest.LogCaptureFixture,
    gone: bool,
) -> None:
    """Another process's totals with this process's labels and other histogram bounds, live or
    retired, are added up in the bounds both have in common, with a warning: every count once,
    no series twice, and the OpenMetrics text parses."""
    run_tasks(store, 3)
    child = fork(child_with_store(MetricStore(duration_buckets=(1.0, 2.0)), 5))
    try:
        child.report()
        if gone:
            child.kill()
        with caplog.at_level(logging.WARNING, "laios.execution.multiprocess"):
            text = render_metrics(registry, openmetrics=True).decode()
        series = series_of(text)
        assert len(series) == len(set(series))
        assert tasks_total(text) == 8
        bounds = {dict(labels).get("le") for name, labels in series if name.endswith("_bucket")}
        assert bounds >= {"1.0", "+Inf"}
        assert "0.005" not in bounds  # (a bound of this process's alone)
        assert "2.0" not in bounds  # (one of the other's alone)
        assert "histogram buckets" in caplog.text
    finally:
        if not gone:
            child.kill()


def test_totals_with_labels_this_process_lacks_are_kept_whatever_their_bounds(
    export: MultiprocessExport, store: MetricStore, registry: CollectorRegistry
) -> None:
    """Totals with constant labels this process does not export keep their own bucket bounds
    and are in the sum."""
    run_tasks(store, 3)
    other = MetricStore(labels={"pool": "batch"}, duration_buckets=(1.0, 2.0))
    child = fork(child_with_store(other, 5))
    try:
        child.report()
        text = render_metrics(registry, openmetrics=True).decode()
        assert tasks_total(text) == 8
        assert 'le="2.0",outcome="success",pool="batch",tool="echo"} 5' in text
    finally:
        child.kill()


# -- leaving the mode and coming back --------------------------------------------------------


def test_enable_after_disable_counts_this_process_once(
    directory: Path, store: MetricStore, registry: CollectorRegistry
) -> None:
    """disable() then enable() on the same directory shows this process's tasks once, before
    and after more tasks."""
    enable(directory, interval=INTERVAL, registry=registry, store=store)
    run_tasks(store, 3)
    assert tasks_total(scrape(registry)) == 3
    disable()
    assert tasks_total(scrape(registry)) == 3
    enable(directory, interval=INTERVAL, registry=registry, store=store)
    assert tasks_total(scrape(registry)) == 3
    run_tasks(store, 2)
    assert tasks_total(scrape(registry)) == 5


def test_enable_after_disable_with_another_registry_on_the_same_directory_is_refused(
    directory: Path, store: MetricStore, registry: CollectorRegistry
) -> None:
    """After disable(), this process's file still holds its counts: a second export of it, for
    another registry exporting the same store, would count them twice (3 tasks read as 6).
    Refused, naming the file and saying what to do; the same registry takes the file up, and
    another directory is fine."""
    file = enable(directory, interval=INTERVAL, registry=registry, store=store).path
    run_tasks(store, 3)
    disable()
    other = CollectorRegistry()
    with pytest.raises(ValueError, match="another registry") as refused:
        enable(directory, interval=INTERVAL, registry=other, store=store)
    assert str(file) in str(refused.value)
    assert current() is None
    enable(directory, interval=INTERVAL, registry=registry, store=store)
    assert tasks_total(scrape(registry)) == 3
    disable()
    elsewhere = directory.parent / "elsewhere"
    elsewhere.mkdir()
    enable(elsewhere, interval=INTERVAL, registry=other, store=store)
    assert tasks_total(scrape(other)) == 3


def test_after_disable_the_others_keep_this_process_counters_and_drop_its_gauges(
    export: MultiprocessExport, store: MetricStore, registry: CollectorRegistry
) -> None:
    """Once this process has left the mode, another process's /metrics still counts its tasks,
    once, and no longer its task in flight."""
    run_tasks(store, 3)
    slot = store.tool_slot("echo", True)
    store.task_submitted(None, type("T", (), {"id": "x"})(), "echo", slot, running=True)
    scrape(registry)
    disable()

    def work(report: Report) -> None:
        enable(export.directory, interval=INTERVAL, registry=registry, store=store)
        text = scrape(registry)
        report({"tasks": tasks_total(text), "in_flight": 'in_flight{tool="echo"} 1.0' in text})

    child = fork(work)
    assert child.report() == {"tasks": 3, "in_flight": False}
    assert child.wait() == 0


# -- multiprocessing's workers ---------------------------------------------------------------


def run_in_multiprocessing_fork(target: Callable[[], None]) -> int | None:
    """Run ``target`` in a ``multiprocessing`` fork worker, which ends with ``os._exit()``
    once it returns (no ``atexit`` handler runs); return the worker's exit code."""
    with warnings.catch_warnings():  # (3.12+ warns about forking a threaded process)
        warnings.simplefilter("ignore", DeprecationWarning)
        worker = multiprocessing.get_context("fork").Process(target=target)
        worker.start()
    worker.join(CHILD_SECONDS)
    return worker.exitcode


def test_a_multiprocessing_fork_worker_writes_its_totals_when_it_returns(
    directory: Path, store: MetricStore, registry: CollectorRegistry
) -> None:
    """A worker inheriting the mode that returns before its writer thread wrote still has its
    tasks in the sum."""
    enable(directory, interval=60.0, registry=registry, store=store)
    assert run_in_multiprocessing_fork(lambda: run_tasks(store, 5)) == 0
    assert tasks_total(scrape(registry)) == 5


def test_a_multiprocessing_fork_worker_that_enables_the_mode_writes_its_totals_when_it_returns(
    directory: Path, store: MetricStore, registry: CollectorRegistry
) -> None:
    """A worker that turns the mode on itself, then returns, has its tasks in the sum."""

    def work() -> None:
        enable(directory, interval=60.0, registry=registry, store=store)
        run_tasks(store, 4)

    assert run_in_multiprocessing_fork(work) == 0
    enable(directory, interval=60.0, registry=registry, store=store)
    assert tasks_total(scrape(registry)) == 4


# -- paths that cannot be used ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("make_path", "message"),
    [
        (lambda d: Path("/proc/laios-multiproc"), "cannot be created"),
        (lambda d: d / "a-file", "is not a directory"),
        (lambda d: d / "a-file" / "sub", "cannot be created"),
    ],
    ids=["uncreatable", "a-file", "under-a-file"],
)
def test_prepare_directory_refuses_a_path_it_cannot_use_with_a_value_error(
    directory: Path, make_path: Callable[[Path], Path], message: str
) -> None:
    """A directory that cannot be created, a file, or a path under a file is refused with a
    ValueError that names the path, as enable() refuses it."""
    (directory / "a-file").write_text("")
    path = make_path(directory)
    with pytest.raises(ValueError, match=message) as caught:
        prepare_directory(path)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize("call", [prepare_directory, enable, sweep], ids=lambda c: c.__name__)
def test_an_empty_path_is_refused_and_the_working_directory_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, call: Callable[[str], Any]
) -> None:
    """ "" is not taken for the working directory: refused, its laios files left in place."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "laios-retired.json").write_text("{}")
    with pytest.raises(ValueError, match="empty"):
        call("")
    assert (tmp_path / "laios-retired.json").exists()
    assert not (tmp_path / "laios-dir.lock").exists()


def test_prepare_directory_refuses_what_is_not_a_path() -> None:
    """A number is refused with a TypeError, as enable() refuses it."""
    with pytest.raises(TypeError, match="must be a path"):
        prepare_directory(123)  # type: ignore[arg-type]


def test_a_deeply_nested_file_is_left_out_and_the_scrape_answers(
    export: MultiprocessExport, store: MetricStore, registry: CollectorRegistry, directory: Path
) -> None:
    """A file of JSON nested past Python's recursion limit is left out as unreadable (the
    retired one included), instead of failing every scrape with RecursionError."""
    run_tasks(store, 3)
    nested = b'{"format": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    (directory / "laios-proc-1-deadbeef0000.json").write_bytes(nested)
    (directory / "laios-retired.json").write_bytes(nested)
    assert tasks_total(scrape(registry)) == 3


@pytest.mark.parametrize(
    "damage",
    [
        "count too large for a float",
        "negative count",
        "count past 64 bits",
        "infinite bound",
        "negative bucket count",
    ],
)
def test_a_file_with_numbers_laios_never_writes_is_left_out_and_the_scrape_answers(
    export: MultiprocessExport,
    store: MetricStore,
    registry: CollectorRegistry,
    directory: Path,
    damage: str,
) -> None:
    """Another process's file whose numbers laios never writes (damaged, or edited by hand) is
    left out as unreadable: a count too large for a float failed every scrape with
    OverflowError, and a negative count was exported as a counter below zero."""
    run_tasks(store, 3)
    export.write()
    (own,) = directory.glob(f"laios-proc-{os.getpid()}-*.json")
    document = json.loads(own.read_text())
    totals = document["sections"][0]["totals"]
    histogram = next(iter(next(iter(totals["tools"].values()))["outcomes"].values()))
    if damage == "count too large for a float":
        histogram[0] = 10**400
    elif damage == "negative count":
        histogram[0] = -5
    elif damage == "count past 64 bits":
        histogram[0] = 2**64
    elif damage == "negative bucket count":
        histogram[2][0] = -1
    else:
        document["sections"][0]["bounds"][0] = float("inf")
    (directory / "laios-proc-1-deadbeef0000.json").write_text(json.dumps(document))
    assert tasks_total(scrape(registry)) == 3


def _damage_histograms(document: dict[str, Any], damage: str) -> None:
    """Make the first tool's first outcome histogram (or its queue-wait histogram, or a
    custom metric) of ``document`` hold what ``damage`` says; ``"buckets falling"`` is no
    damage: bucket counts are each bucket's own, not cumulative, so they may fall."""
    totals = document["sections"][0]["totals"]
    tool = next(iter(totals["tools"].values()))
    histogram = next(iter(tool["outcomes"].values()))
    buckets = histogram[2]
    if damage == "negative sum":
        histogram[1] = -2.5
    elif damage == "negative queue-wait sum":
        tool["queue_wait"][1] = -0.5
    elif damage == "negative custom sum":
        totals["custom"] = [[["rows", "items"], [2, -7.0]]]
    elif damage == "NaN count":
        histogram[0] = float("nan")
    elif damage == "infinite count":
        histogram[0] = float("inf")
    elif damage == "fractional count":
        histogram[0] = 2.5
    elif damage == "buckets above the count":
        buckets[-1] += 1
    elif damage == "buckets below the count":
        histogram[0] += 1
    else:  # (3 observations: 2 in the first bucket, 1 in the second)
        assert damage == "buckets falling"
        histogram[:3] = [3, 0.012, [2, 1] + [0] * (len(buckets) - 2)]


def _left_out_with_one_warning(
    export: MultiprocessExport,
    store: MetricStore,
    registry: CollectorRegistry,
    directory: Path,
    caplog: pytest.LogCaptureFixture,
    damage: Callable[[dict[str, Any]], None],
) -> str:
    """Write a copy of this process's file, as another process's, damaged by ``damage``;
    check that two scrapes leave it out whole with one warning naming it, and return it."""
    run_tasks(store, 3)
    export.write()
    assert export.path is not None
    before = scrape(registry)
    document = json.loads(export.path.read_text())
    document["pid"] = 1
    damage(document)
    damaged = directory / "laios-proc-1-deadbeef0000.json"
    damaged.write_text(json.dumps(document))
    with caplog.at_level(logging.WARNING, "laios.execution"):
        assert scrape(registry) == before
        assert scrape(registry) == before
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    assert str(damaged) in warnings[0]
    return warnings[0]


@pytest.mark.parametrize(
    "damage",
    [
        "negative sum",
        "negative queue-wait sum",
        "negative custom sum",
        "NaN count",
        "infinite count",
        "fractional count",
        "buckets above the count",
        "buckets below the count",
    ],
)
def test_a_file_with_a_histogram_laios_never_writes_is_left_out_with_one_warning(
    export: MultiprocessExport,
    store: MetricStore,
    registry: CollectorRegistry,
    directory: Path,
    caplog: pytest.LogCaptureFixture,
    damage: str,
) -> None:
    """Another process's file holding a histogram no store writes (a negative sum, a count
    that is no whole number, buckets that do not add up to the count) is left out whole, with
    one warning naming it however often it is scraped: a negative sum was added in, taking
    the exported sum down (a counter reset to Prometheus) and below zero."""
    _left_out_with_one_warning(
        export, store, registry, directory, caplog, lambda doc: _damage_histograms(doc, damage)
    )


def _damage_bounds(document: dict[str, Any], damage: str) -> None:
    """Give the histograms of ``document``'s section bucket bounds no store writes."""
    [section] = document["sections"]
    totals = section["totals"]
    tools = totals["tools"].values()
    if damage == "section bounds reversed":
        section["bounds"] = section["bounds"][::-1]
    elif damage == "every duration bound reversed":
        section["bounds"] = totals["duration_buckets"] = section["bounds"][::-1]
        for tool in tools:
            tool["duration_bounds"] = section["bounds"]
    elif damage == "every queue-wait bound reversed":
        totals["queue_wait_buckets"] = totals["queue_wait_buckets"][::-1]
        for tool in tools:
            tool["queue_wait_bounds"] = totals["queue_wait_buckets"]
    else:
        assert damage == "a tool's bounds not its section's"
        for tool in tools:
            tool["duration_bounds"] = [2 * bound for bound in tool["duration_bounds"]]


@pytest.mark.parametrize(
    "damage",
    [
        "section bounds reversed",
        "every duration bound reversed",
        "every queue-wait bound reversed",
        "a tool's bounds not its section's",
    ],
)
def test_a_file_with_bucket_bounds_laios_never_writes_is_left_out_with_one_warning(
    export: MultiprocessExport,
    store: MetricStore,
    registry: CollectorRegistry,
    directory: Path,
    caplog: pytest.LogCaptureFixture,
    damage: str,
) -> None:
    """Another process's file whose bucket bounds no store writes (not increasing, or not
    those of the section they are in) is left out whole, with one warning naming it: its
    counts were added in other buckets than their own (a task of 1 ms counted under 300 s,
    for ever once folded), or exported with the ``le`` of the buckets out of order."""
    warning = _left_out_with_one_warning(
        export, store, registry, directory, caplog, lambda doc: _damage_bounds(doc, damage)
    )
    assert "bounds" in warning


def test_a_file_whose_bucket_counts_fall_is_added_in(
    export: MultiprocessExport, store: MetricStore, registry: CollectorRegistry, directory: Path
) -> None:
    """Bucket counts are each bucket's own: a histogram of 3 with 2 in its first bucket and
    1 in its second is a store's, added in like any other."""
    run_tasks(store, 3)
    export.write()
    assert export.path is not None
    document = json.loads(export.path.read_text())
    document["pid"] = 1
    _damage_histograms(document, "buckets falling")
    (directory / "laios-proc-1-deadbeef0000.json").write_text(json.dumps(document))
    assert tasks_total(scrape(registry)) == 6


def test_a_directory_named_like_a_file_is_left_out_and_the_scrape_answers(
    export: MultiprocessExport, store: MetricStore, registry: CollectorRegistry, directory: Path
) -> None:
    """A directory that bears a process file's or the retired file's name is left out as
    unreadable, instead of failing every scrape with IsADirectoryError."""
    run_tasks(store, 3)
    (directory / "laios-proc-1-deadbeef0000.json").mkdir()
    (directory / "laios-retired.json").mkdir()
    assert tasks_total(scrape(registry)) == 3
    assert tasks_total(scrape(registry)) == 3  # (the fold moved the retired one aside)


def scrape_in_child(registry: CollectorRegistry, address_space: int | None = None) -> float:
    """The ``laios_tasks_total`` of a scrape of ``registry`` made by a forked child (whose own
    store starts from zero), failing the test when the child has not answered within
    :data:`CHILD_SECONDS` (a hung scrape is killed with the child); ``address_space`` caps the
    child's memory to that many bytes more than it has at the fork."""

    def work(report: Report) -> None:
        if address_space is not None:
            _, hard = resource.getrlimit(resource.RLIMIT_AS)
            resource.setrlimit(resource.RLIMIT_AS, (_address_space() + address_space, hard))
        report({"total": tasks_total(scrape(registry))})

    export = current()
    assert export is not None
    export.write()  # the parent's counts, for the child to add up
    child = fork(work)
    try:
        ready, _, _ = select.select([child.reports], [], [], CHILD_SECONDS)
        assert ready, f"the scrape did not answer within {CHILD_SECONDS:g} s"
        total: float = child.report()["total"]
        return total
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.pid, signal.SIGKILL)
        child.wait()


def _address_space() -> int:
    """This process's virtual memory size in bytes (``/proc/self/statm``)."""
    pages = int(Path("/proc/self/statm").read_text().split()[0])
    return pages * os.sysconf("SC_PAGE_SIZE")


def _plant_fifo(path: Path) -> None:
    os.mkfifo(path)


def _plant_symlink_loop(path: Path) -> None:
    path.symlink_to(path.name)


@pytest.mark.parametrize(
    ("name", "plant"),
    [
        ("laios-proc-1-deadbeef0000.json", _plant_fifo),
        ("laios-retired.json", _plant_fifo),
        ("laios-proc-1-deadbeef0000.lock", _plant_fifo),
        ("laios-proc-1-deadbeef0000.json", _plant_symlink_loop),
        ("laios-retired.json", _plant_symlink_loop),
    ],
    ids=[
        "fifo-process-file",
        "fifo-retired-file",
        "fifo-lock-file",
        "loop-process",
        "loop-retired",
    ],
)
def test_a_file_that_is_not_a_regular_file_is_left_out_and_the_scrape_answers(
    export: MultiprocessExport,
    store: MetricStore,
    registry: CollectorRegistry,
    directory: Path,
    name: str,
    plant: Callable[[Path], None],
) -> None:
    """A named pipe or a symbolic link loop under the name of a process file, a lock file or
    the retired file is left out as unreadable: a pipe hung every scrape for ever (a fold
    holding the directory's lock meanwhile, so the other processes' scrapes failed too), and a
    link loop failed every scrape with ``OSError``."""
    run_tasks(store, 3)
    if name.endswith(".lock"):
        (directory / "laios-proc-1-deadbeef0000.json").write_bytes(b"{}")
    plant(directory / name)
    assert scrape_in_child(registry) == 3
    assert scrape_in_child(registry) == 3


@pytest.mark.parametrize("name", ["laios-proc-1-deadbeef0000.json", "laios-retired.json"])
@pytest.mark.parametrize("sections", [None, {}, "sections", 3])
def test_a_file_whose_sections_are_not_a_list_is_left_out_and_the_scrape_answers(
    export: MultiprocessExport,
    store: MetricStore,
    registry: CollectorRegistry,
    directory: Path,
    name: str,
    sections: object,
) -> None:
    """A file of this format whose ``sections`` is not a list is garbage, left out like any
    other: every scrape failed with ``TypeError: expected a list``."""
    run_tasks(store, 3)
    (directory / name).write_text(json.dumps({"format": 2, "sections": sections}))
    assert scrape_in_child(registry) == 3
    assert scrape_in_child(registry) == 3


@pytest.mark.parametrize(
    "labels",
    [
        [["tool", "x"]],
        [["le", "x"]],
        [["a b", "x"]],
        [["__name__", "x"]],
        [["a", "x"], ["a", "y"]],
        [["b", "x"], ["a", "y"]],
    ],
    ids=["reserved", "le", "invalid-name", "dunder", "twice", "unsorted"],
)
def test_a_file_with_constant_labels_laios_never_writes_is_left_out(
    export: MultiprocessExport,
    store: MetricStore,
    registry: CollectorRegistry,
    directory: Path,
    labels: list[list[str]],
) -> None:
    """A file whose constant labels no store may have (a reserved or invalid name, one name
    twice) is garbage, left out: it was added in, and every scrape's text then had series
    such as ``laios_tasks_total{outcome="success",tool="t",tool="x"}``, which Prometheus
    refuses, failing the whole scrape."""
    run_tasks(store, 3)
    export.write()
    assert export.path is not None
    document = json.loads(export.path.read_text())
    for section in document["sections"]:
        section["totals"]["labels"] = labels
    document["pid"] = 1
    (directory / "laios-proc-1-deadbeef0000.json").write_text(json.dumps(document))
    text = scrape(registry)
    assert list(parse_text(text))  # (Prometheus' text format, as a scrape asks for it)
    assert tasks_total(text) == 3


@pytest.mark.parametrize("gone", [False, True], ids=["live", "retired"])
def test_totals_with_a_label_name_longer_than_a_store_may_take_now_are_kept(
    export: MultiprocessExport,
    store: MetricStore,
    registry: CollectorRegistry,
    directory: Path,
    gone: bool,
) -> None:
    """A constant label name of more than 128 characters, which ``MetricStore(labels=...)``
    refuses but earlier versions took and wrote, is read from a process's file or the retired
    file: the retired file was moved aside as unreadable, every gone process's count with it."""
    run_tasks(store, 1)
    sections = []
    for labels, count in (({"pool": "batch"}, 2), ({"p" * 128: "x"}, 3)):
        other = MetricStore(labels=labels)
        run_tasks(other, count)
        [totals] = ensure_collector(other, CollectorRegistry()).totals()
        data = json.loads(
            _totals_files.dump(
                {
                    "sections": [
                        _totals_files.section_data(
                            _totals_files.Section(totals.duration_buckets, totals)
                        )
                    ]
                }
            )
        )
        sections += data["sections"]
    sections[1]["totals"]["labels"] = [["p" * 200, "x"]]  # (as an earlier version wrote it)
    if gone:
        retired = {"kind": "retired", "absorbed": [], "sections": []}
        document = json.loads(_totals_files.dump(retired))
        document["sections"] = sections
        (directory / "laios-retired.json").write_text(json.dumps(document))
    else:
        export.write()
        assert export.path is not None
        document = json.loads(export.path.read_text())
        document.update(pid=1, sections=sections)
        (directory / "laios-proc-1-deadbeef0000.json").write_text(json.dumps(document))
    text = scrape(registry)
    assert list(parse_text(text))
    assert tasks_total(text) == 6
    assert f'laios_tasks_total{{outcome="success",{"p" * 200}="x",tool="echo"}} 3.0' in text
    assert 'laios_tasks_total{outcome="success",pool="batch",tool="echo"} 2.0' in text
    assert files(directory).count("laios-retired.json") == gone


def test_a_link_to_an_endless_device_is_left_out_within_bounded_memory(
    export: MultiprocessExport, store: MetricStore, registry: CollectorRegistry, directory: Path
) -> None:
    """A process file that is a symbolic link to ``/dev/zero`` is left out: it was read until
    the process ran out of memory (checked in a child whose address space is capped)."""
    run_tasks(store, 3)
    (directory / "laios-proc-1-deadbeef0000.json").symlink_to("/dev/zero")
    assert scrape_in_child(registry, address_space=512 * 2**20) == 3


def child_no_longer_writing(store: MetricStore, count: int) -> Callable[[Report], None]:
    """A child's work: run ``count`` tasks, leave the mode (its file stays, no longer
    written: a live worker writes its file again when it changes), report, wait."""

    def work(report: Report) -> None:
        run_tasks(store, count)
        export = current()
        assert export is not None
        disable()
        report({"pid": os.getpid(), "path": str(export.path)})
        time.sleep(60)

    return work


def _padded_to(path: Path, size: int) -> None:
    """Pad the JSON document at ``path`` with blank lines to ``size`` bytes: still a valid
    document with the same totals, only large."""
    with open(path, "ab") as file:
        file.write(b"\n" * (size - path.stat().st_size))
    assert path.stat().st_size == size


def test_a_process_file_over_the_size_bound_is_left_out_with_a_warning_naming_it(
    export: MultiprocessExport,
    store: MetricStore,
    registry: CollectorRegistry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A live process's file larger than the bound is not read into memory: the scrape
    answers without its counts and warns once, naming the file and the bound; the next
    scrape leaves it out without a second warning."""
    run_tasks(store, 3)
    child = fork(child_no_longer_writing(store, 5))
    try:
        path = Path(child.report()["path"])
        _padded_to(path, _totals_files.MAX_FILE_BYTES + 1)
        with caplog.at_level(logging.WARNING, logger="laios"):
            assert tasks_total(scrape(registry)) == 3
            assert tasks_total(scrape(registry)) == 3
        warned = [r.getMessage() for r in caplog.records if str(path) in r.getMessage()]
        assert len(warned) == 1
        assert f"more than {_totals_files.MAX_FILE_BYTES >> 20} MiB" in warned[0]
    finally:
        child.kill()


def test_a_process_file_of_exactly_the_size_bound_is_read(
    export: MultiprocessExport, store: MetricStore, registry: CollectorRegistry
) -> None:
    """The bound leaves out only what is larger: a file of exactly its size is counted."""
    run_tasks(store, 3)
    child = fork(child_no_longer_writing(store, 5))
    try:
        _padded_to(Path(child.report()["path"]), _totals_files.MAX_FILE_BYTES)
        assert tasks_total(scrape(registry)) == 3 + 5
    finally:
        child.kill()


def test_writing_a_file_larger_than_the_size_bound_warns_naming_it(
    export: MultiprocessExport,
    store: MetricStore,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A process whose totals outgrow what the others read of a file is told so when it
    writes (here with the bound lowered to 100 bytes), naming its file."""
    monkeypatch.setattr(_totals_files, "MAX_FILE_BYTES", 100)
    run_tasks(store, 3)
    with caplog.at_level(logging.WARNING, logger="laios"):
        export.write()
    assert f"writing {export.path}" in caplog.text
    assert "scrapes leave it out" in caplog.text


def _gone_process_file(directory: Path, store: MetricStore) -> None:
    """Leave the file of a process that is gone (4 tasks), for the next scrape to fold."""
    child = fork(child_running(store, 4))
    child.report()
    child.kill()


def test_a_link_planted_as_the_retired_temporary_file_is_not_written_through(
    export: MultiprocessExport,
    store: MetricStore,
    registry: CollectorRegistry,
    directory: Path,
    tmp_path: Path,
) -> None:
    """A fold writes the retired file through a temporary file of a fixed name: a symbolic
    link planted under that name had the fold overwrite the file it points to, anywhere the
    process may write. The link is replaced, the file it points to left as it was."""
    elsewhere = tmp_path / "not-laios.conf"
    elsewhere.write_text("keep me\n")
    (directory / "laios-retired.json.tmp").symlink_to(elsewhere)
    _gone_process_file(directory, store)
    assert tasks_total(scrape(registry)) == 4
    assert elsewhere.read_text() == "keep me\n"
    assert (directory / "laios-retired.json").is_file()
    assert not (directory / "laios-retired.json").is_symlink()


def test_a_named_pipe_planted_as_the_retired_temporary_file_does_not_hang_a_fold(
    export: MultiprocessExport, store: MetricStore, registry: CollectorRegistry, directory: Path
) -> None:
    """A named pipe under the name of the retired file's temporary file blocked the fold that
    opened it for writing for ever, holding the directory's lock: every scrape then hung or
    failed. The fold replaces it and answers."""
    os.mkfifo(directory / "laios-retired.json.tmp")
    _gone_process_file(directory, store)
    assert scrape_in_child(registry) == 4
    assert tasks_total(scrape(registry)) == 4
    assert (directory / "laios-retired.json").is_file()


def test_a_link_planted_as_the_directory_lock_file_creates_nothing_elsewhere(
    export: MultiprocessExport,
    store: MetricStore,
    registry: CollectorRegistry,
    directory: Path,
    tmp_path: Path,
) -> None:
    """A scrape locks ``laios-dir.lock``, creating it when it is missing: a symbolic link
    planted under that name had it create an empty file where the link points (as root,
    ``/etc/nologin`` would end logins). The link is replaced; nothing is made elsewhere."""
    elsewhere = tmp_path / "nologin"
    (directory / "laios-dir.lock").unlink(missing_ok=True)
    (directory / "laios-dir.lock").symlink_to(elsewhere)
    _gone_process_file(directory, store)
    assert tasks_total(scrape(registry)) == 4
    assert not elsewhere.exists()
    assert not (directory / "laios-dir.lock").is_symlink()


def test_a_link_in_place_of_a_gone_processs_lock_file_is_no_liveness_and_no_error(
    export: MultiprocessExport,
    store: MetricStore,
    registry: CollectorRegistry,
    directory: Path,
) -> None:
    """The lock file of a process is read to learn whether it lives; a symbolic link in its
    place (a loop here, which no open can follow) failed every scrape with "Too many levels of
    symbolic links". laios makes no links: the process is taken for gone, its counts folded."""
    child = fork(child_running(store, 4))
    data = Path(child.report()["path"])
    child.kill()
    lock = data.with_suffix(".lock")
    lock.unlink()
    lock.symlink_to(lock.name)  # (a link to itself)
    assert tasks_total(scrape(registry)) == 4
    assert tasks_total(scrape(registry)) == 4


# -- files of other laios versions in the directory (a rolling deploy, a USR2 upgrade) -------

LAIOS_0_1_0_FILE = Path(__file__).parent / "multiprocess_files" / "laios-0.1.0-process.json"


def _file_of_a_gone_process(directory: Path, name: str, body: bytes) -> Path:
    """``body`` as the file of process ``name``, whose lock file is there and free."""
    path = directory / f"laios-proc-{name}.json"
    path.write_bytes(body)
    path.with_suffix(".lock").write_bytes(b"")
    return path


def _newer_document(pid: int) -> bytes:
    return json.dumps(
        {"format": _totals_files.FORMAT + 1, "kind": "process", "pid": pid, "sections": "new"}
    ).encode()


def test_a_gone_laios_0_1_0_workers_counts_are_added_and_folded(
    export: MultiprocessExport, store: MetricStore, registry: CollectorRegistry, directory: Path
) -> None:
    """A file laios 0.1.0 wrote (its workers sharing the directory during an upgrade) counts in
    the sum, histograms included, is folded once its process is gone, and stays counted."""
    run_tasks(store, 3)
    old = _file_of_a_gone_process(directory, "8756-0a1b2c3d4e5f", LAIOS_0_1_0_FILE.read_bytes())
    for _ in range(2):
        text = render_metrics(registry, openmetrics=True).decode()
        assert tasks_total(text) == 3 + 5 + 2
        assert 'laios_task_duration_seconds_count{outcome="success",tool="echo"} 8.0' in text
        assert 'laios_task_retries_total{error_type="error",tool="echo"} 2.0' in text
        assert 'laios_tasks_in_flight{tool="echo"} 0.0' in text  # a gone process's gauge
        assert not old.exists()
        assert len(series_of(text)) == len(set(series_of(text)))


def test_a_newer_versions_file_is_left_in_place_out_of_the_sum_with_one_warning(
    export: MultiprocessExport,
    store: MetricStore,
    registry: CollectorRegistry,
    directory: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A gone process's file of a format this version does not read is never folded or
    deleted (a process of its version counts it), and is named once in a warning."""
    run_tasks(store, 3)
    newer = _file_of_a_gone_process(directory, "77-0a1b2c3d4e5f", _newer_document(77))
    with caplog.at_level(logging.WARNING, "laios.execution.multiprocess"):
        for _ in range(3):
            assert tasks_total(scrape(registry)) == 3
            assert sweep(directory) == 0
    assert newer.read_bytes() == _newer_document(77)
    warnings_logged = [r.getMessage() for r in caplog.records if str(newer) in r.getMessage()]
    assert len(warnings_logged) == 1, warnings_logged
    assert f"format {_totals_files.FORMAT + 1}" in warnings_logged[0]
    assert "another laios version" in warnings_logged[0]


def test_the_files_left_alone_are_forgotten_once_they_are_gone(directory: Path) -> None:
    """A process remembers the files it leaves alone (another version's) only while they are
    there: in a directory where such workers come and go for ever, what it holds stays
    bounded."""
    shared = SharedDirectory(directory)
    for pid in range(100, 110):
        newer = _file_of_a_gone_process(directory, f"{pid}-0a1b2c3d4e5f", _newer_document(pid))
        _shared_totals.gather(shared, None, [])
        assert f"laios-proc-{pid}-0a1b2c3d4e5f" in shared.left_alone
        newer.unlink()  # folded by a process of its version
        newer.with_suffix(".lock").unlink()
    _shared_totals.gather(shared, None, [])
    assert shared.left_alone == set()


def test_a_newer_versions_retired_file_is_never_replaced_and_gone_processes_stay_counted(
    export: MultiprocessExport,
    store: MetricStore,
    registry: CollectorRegistry,
    directory: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A retired file of a newer format is neither moved aside nor written over (its counts
    are its version's); files of this version's gone processes stay, counted where they are,
    without their gauges; one warning names the retired file."""
    retired = directory / "laios-retired.json"
    retired.write_bytes(_newer_document(0))
    child = fork(child_running(store, 4))
    child.report()
    child.kill()
    with caplog.at_level(logging.WARNING, "laios.execution.multiprocess"):
        for _ in range(3):
            text = scrape(registry)
            assert tasks_total(text) == 4
            assert sweep(directory) == 0
    assert retired.read_bytes() == _newer_document(0)
    assert not (directory / "laios-retired.json.unreadable").exists()
    warnings_logged = [r.getMessage() for r in caplog.records if str(retired) in r.getMessage()]
    assert len(warnings_logged) == 1, warnings_logged


@pytest.fixture
def shared_directory() -> Iterator[Path]:
    """A directory every user may write to (``tmp_path`` is root's alone when run as root)."""
    path = Path(tempfile.mkdtemp(prefix="laios-shared-"))
    try:
        path.chmod(0o777)
        yield path
    finally:
        shutil.rmtree(path)


def _not_readable_by_the_reader(path: Path) -> None:
    """Make ``path`` a file that :func:`_sweep_as_a_reader_without_permission` may not read:
    root's alone when the tests run as root (the reader switches to another user), else
    without any permission (the reader is of the same user)."""
    path.chmod(0o600 if os.geteuid() == 0 else 0o000)


def _sweep_as_a_reader_without_permission(directory: Path) -> dict[str, Any]:
    """``sweep(directory)`` in a forked child that may not read what
    :func:`_not_readable_by_the_reader` marked; reports how many files it folded and the
    warnings it logged."""

    def work(report: Report) -> None:
        if os.geteuid() == 0:
            become_nobody()
        messages: list[str] = []

        class Collect(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                messages.append(record.getMessage())

        logger = logging.getLogger("laios.execution.multiprocess")
        logger.setLevel(logging.WARNING)
        logger.addHandler(Collect())
        folded = [sweep(directory) for _ in range(3)]
        report({"folded": folded, "warnings": messages})

    child = fork(work)
    try:
        return child.report()
    finally:
        child.wait()


@pytest.mark.skipif(not hasattr(os, "geteuid"), reason="needs POSIX users")
def test_a_retired_file_this_process_may_not_read_is_left_in_place_and_reported(
    store: MetricStore, registry: CollectorRegistry, shared_directory: Path
) -> None:
    """A retired file that a process may not read (``EACCES``: a file of another user, or
    its mode) is not garbage: a fold leaves it where it is, with its counts, folds nothing
    while it is there, and warns naming it, once a minute; moved aside, its counts were lost.
    Once it is readable again, the next fold goes on from its totals."""
    directory = shared_directory
    enable(directory, interval=INTERVAL, registry=registry, store=store)
    first = fork(child_running(store, 3))
    first.report()
    first.kill()
    assert sweep(directory) == 1
    retired = directory / "laios-retired.json"
    body = retired.read_bytes()
    second = fork(child_running(store, 2))
    gone = Path(second.report()["path"])
    second.kill()
    disable()
    _not_readable_by_the_reader(retired)

    result = _sweep_as_a_reader_without_permission(directory)

    assert result["folded"] == [0, 0, 0], result
    assert not (directory / "laios-retired.json.unreadable").exists()
    retired.chmod(0o644)
    assert retired.read_bytes() == body
    assert gone.exists()  # left where it is, for a fold that can read the retired file
    warned = [message for message in result["warnings"] if str(retired) in message]
    assert len(warned) == 1, result["warnings"]
    assert "Permission denied" in warned[0]
    assert sweep(directory) == 1
    enable(directory, interval=INTERVAL, registry=registry, store=store)
    assert tasks_total(scrape(registry)) == 5


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to switch users"
)
def test_a_fold_a_sticky_directory_refuses_says_why_and_what_to_do(
    store: MetricStore, registry: CollectorRegistry, shared_directory: Path
) -> None:
    """In a directory with the sticky bit (``/dev/shm`` or ``/tmp`` themselves), only a file's
    owner may replace or delete it: a worker of another user cannot fold into the retired file
    that gunicorn's master (root) wrote, though everyone may write to the directory. The
    warning says so, and names the way out, rather than ask for a writable directory."""
    directory = shared_directory
    directory.chmod(0o1777)
    enable(directory, interval=INTERVAL, registry=registry, store=store)
    for count in (3, 2):
        child = fork(child_running(store, count))
        child.report()
        child.kill()
        if count == 3:
            assert sweep(directory) == 1  # the retired file: root's
    disable()

    def worker(report: Report) -> None:
        become_nobody()
        messages: list[str] = []

        class Collect(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                messages.append(record.getMessage())

        logging.getLogger("laios.execution.multiprocess").addHandler(Collect())
        worker_store, worker_registry = MetricStore(), CollectorRegistry()
        enable(directory, interval=INTERVAL, registry=worker_registry, store=worker_store)
        report({"total": tasks_total(scrape(worker_registry)), "warnings": messages})

    child = fork(worker)
    try:
        result = child.report()
    finally:
        child.wait()
    assert result["total"] == 5  # counted where they lie
    (warned,) = [message for message in result["warnings"] if "folding" in message]
    assert "Operation not permitted" in warned
    assert f"{directory} has the sticky bit" in warned, warned
    assert "a directory of its own inside it" in warned, warned


@pytest.mark.skipif(not hasattr(os, "geteuid"), reason="needs POSIX users")
def test_a_gone_processs_file_this_process_may_not_read_is_left_in_place_and_reported(
    store: MetricStore, registry: CollectorRegistry, shared_directory: Path
) -> None:
    """A gone process's file that a fold may not read is neither folded (its counts lost) nor
    deleted: it stays where it is, with a warning naming it, once a minute, until a process
    that may read it folds it."""
    directory = shared_directory
    enable(directory, interval=INTERVAL, registry=registry, store=store)
    child = fork(child_running(store, 2))
    gone = Path(child.report()["path"])
    child.kill()
    disable()
    _not_readable_by_the_reader(gone)

    result = _sweep_as_a_reader_without_permission(directory)

    assert result["folded"] == [0, 0, 0], result
    assert gone.exists()
    assert not (directory / "laios-retired.json").exists()
    warned = [message for message in result["warnings"] if str(gone) in message]
    assert len(warned) == 1, result["warnings"]
    assert "Permission denied" in warned[0]
    gone.chmod(0o644)
    assert sweep(directory) == 1
    enable(directory, interval=INTERVAL, registry=registry, store=store)
    assert tasks_total(scrape(registry)) == 2


def _gone_file_with(directory: Path, tool: str, change: Callable[[dict[str, Any]], None]) -> Path:
    """The file of a gone process that ran 2 tasks of ``tool``, its totals changed by
    ``change`` (given the tool's totals as written); its lock file there and free."""
    other = MetricStore()
    run_tasks(other, 2, tool=tool)
    other_registry = CollectorRegistry()
    other_export = MultiprocessExport(
        directory, 60.0, other_registry, ensure_collector(other, other_registry)
    )
    other_export.write()
    path = other_export.path
    assert path is not None
    document = json.loads(path.read_bytes())
    other_export.park()  # lets go of the lock and removes the files: as a process that died
    change(document["sections"][0]["totals"]["tools"][tool])
    return _file_of_a_gone_process(
        directory, path.stem.removeprefix("laios-proc-"), json.dumps(document).encode()
    )


def _huge_count(tool: dict[str, Any]) -> None:
    huge = 2**62 + 1  # (a count a file may hold: two of them add up past 2**63 - 1)
    tool["outcomes"]["success"][0] = huge
    tool["outcomes"]["success"][2][0] = huge
    tool["results"]["success"] = huge


def _huge_sum(tool: dict[str, Any]) -> None:
    tool["outcomes"]["success"][1] = 1.5e308  # (two of them add up past what a float holds)


@pytest.mark.parametrize("change", [_huge_count, _huge_sum], ids=["count", "sum"])
def test_gone_files_that_would_overflow_the_retired_totals_never_lose_them(
    export: MultiprocessExport,
    registry: CollectorRegistry,
    directory: Path,
    change: Callable[[dict[str, Any]], None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Gone processes' files each readable, but whose counts or sums added up pass what a file
    may hold (a count past 2**63 - 1, a sum past the largest float), are left out of the
    retired totals with a warning naming them: the retired file stays readable, and the counts
    of every other gone process stay in the sum, rather than be moved aside with it."""
    _gone_file_with(directory, "echo", lambda tool: None)
    assert tasks_total(scrape(registry)) == 2  # folded into the retired file
    with caplog.at_level(logging.WARNING, "laios.execution.multiprocess"):
        for _ in range(2):
            _gone_file_with(directory, "huge", change)
            scrape(registry)
    _gone_file_with(directory, "echo", lambda tool: None)
    text = scrape(registry)
    assert tasks_total(text) == 4
    assert not (directory / "laios-retired.json.unreadable").exists()
    sections_of(read_document(directory / "laios-retired.json"))  # (readable)
    assert export.path is not None
    stem = export.path.stem
    assert files(directory) == [f"{stem}.json", f"{stem}.lock", "laios-retired.json"]
    warned = [r.getMessage() for r in caplog.records if "laios-proc-" in r.getMessage()]
    assert any("left out of the retired totals" in message for message in warned), warned


def count_folds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A list that gets an item for each fold from now on (the folds still run)."""
    folds: list[int] = []
    real_fold = _shared_totals.fold

    def counted_fold(*args: Any, **kwargs: Any) -> int:
        folds.append(1)
        return real_fold(*args, **kwargs)

    monkeypatch.setattr(_shared_totals, "fold", counted_fold)
    return folds


@pytest.mark.parametrize(
    "make",
    [
        lambda path: path.with_name(path.stem + ".lock.json").write_text("{}"),
        lambda path: path.with_name(path.stem + ".old.json").write_bytes(b""),
        lambda path: os.symlink(path.name, path),  # (a link to itself: a loop)
    ],
    ids=["other-suffix", "other-suffix-empty", "link-loop"],
)
def test_a_stray_entry_under_a_process_name_does_not_make_every_scrape_fold(
    export: MultiprocessExport,
    store: MetricStore,
    registry: CollectorRegistry,
    directory: Path,
    make: Callable[[Path], object],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Something under a process's name that no process of laios writes (a name with another
    suffix, a symbolic link looping on itself) is never taken for a gone process's file that
    waits to be folded: scrapes after the first fold nothing (each fold takes the directory's
    lock exclusive, and scrapes would wait on each other), and the counts stay whole."""
    run_tasks(store, 2)
    make(directory / "laios-proc-7-0a1b2c3d4e5f.json")
    assert tasks_total(scrape(registry)) == 2
    folds = count_folds(monkeypatch)
    for _ in range(3):
        assert tasks_total(scrape(registry)) == 2
    assert folds == []


@pytest.mark.parametrize("suffix", [".json.tmp", ".lock"])
def test_a_directory_under_a_gone_processs_name_does_not_stop_its_fold(
    export: MultiprocessExport,
    registry: CollectorRegistry,
    directory: Path,
    suffix: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A directory under one of a gone process's names (its temporary file's, its lock
    file's), which laios never makes, is left where it is: the fold removes the process's
    files around it and succeeds, rather than fail on it at every scrape."""
    gone = _gone_file_with(directory, "echo", lambda tool: None)
    foreign = gone.with_name(gone.stem + suffix)
    foreign.unlink(missing_ok=True)
    foreign.mkdir()
    with caplog.at_level(logging.WARNING, "laios.execution.multiprocess"):
        assert tasks_total(scrape(registry)) == 2
        folds = count_folds(monkeypatch)
        for _ in range(2):
            assert tasks_total(scrape(registry)) == 2
    assert folds == []
    failed = [r.getMessage() for r in caplog.records if "failed" in r.getMessage()]
    assert failed == []
    assert export.path is not None
    stem = export.path.stem
    assert files(directory) == sorted(
        [f"{stem}.json", f"{stem}.lock", "laios-retired.json", foreign.name]
    )


def test_prepare_directory_leaves_a_directory_under_a_laios_name_and_clears_the_rest(
    directory: Path,
) -> None:
    """A directory under one of laios's names (which laios never makes, and folds leave where
    it is) does not stop a fresh start: the files around it are removed, it stays."""
    (directory / "laios-proc-1-0a1b2c3d4e5f.lock").mkdir()
    (directory / "laios-retired.json.unreadable").mkdir()
    (directory / "laios-proc-1-0a1b2c3d4e5f.json").write_text("{}")
    (directory / "laios-retired.json").write_text("{}")
    assert prepare_directory(directory) == directory
    assert files(directory) == ["laios-proc-1-0a1b2c3d4e5f.lock", "laios-retired.json.unreadable"]


def test_more_files_of_another_version_than_the_warnings_remember_are_not_warned_each_scrape(
    export: MultiprocessExport,
    registry: CollectorRegistry,
    directory: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A file of another laios version is warned about once per process; with more such files
    than the warnings remember (1,000; 5 here), every scrape used to warn about each of them
    again (twice on the first), thousands of lines a scrape. Each is warned about once, on the
    first scrape (the files past those it keeps by name are still told apart, by hash): the
    later scrapes log none."""
    monkeypatch.setattr(_shared_totals, "_warned_once", WarningLimiter(math.inf, max_keys=5))
    for n in range(8):
        (directory / f"laios-proc-{n}-other.json").write_text('{"format": 99}')
    warned = []
    for _ in range(3):
        caplog.clear()
        with caplog.at_level(logging.WARNING, "laios.execution.multiprocess"):
            scrape(registry)
        warned.append(sum("another laios version" in r.getMessage() for r in caplog.records))
    assert warned == [8, 0, 0], warned
