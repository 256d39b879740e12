"""A real gunicorn with 3 sync workers: one ``/metrics`` over them, counters never backwards.

gunicorn serves ``gunicorn_app.py`` (laios tasks, and laios's WSGI app at ``/metrics``) with
``LAIOS_MULTIPROC_DIR`` set and the hooks of :mod:`laios.execution.multiprocess` in its config,
as the guide (docs/guides/multiprocess.md) tells users to. Scrapes land on whichever worker
accepts them; every ``laios_*`` counter must be the sum over the workers at every scrape, and
never go backwards, also after a worker is replaced.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from service_support import NO_PROXY

pytest.importorskip("gunicorn")

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds gunicorn's workers in /proc"),
]

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1] / "src"
WORKERS = 3
#: Longest wait for any one condition (start-up, a replaced worker, a total to add up).
PATIENCE = 30.0
_SAMPLE = re.compile(r"^(laios_\w+)(\{[^}]*\})? (\S+)$")
#: Counter-like samples: they may only grow.
_MONOTONIC = ("_total", "_count", "_sum", "_bucket")

CONFIG = """\
from laios.execution import multiprocess

on_starting = multiprocess.gunicorn_on_starting
child_exit = multiprocess.gunicorn_child_exit
"""


@dataclass
class Gunicorn:
    """A running gunicorn: its master's pid, its URL and the shared directory."""

    process: subprocess.Popen[bytes]
    url: str
    directory: Path
    log: Path
    seen: dict[str, float] = field(default_factory=dict)

    def get(self, path: str) -> tuple[str, bytes]:
        """GET ``path``: the serving worker's pid and the body."""
        with NO_PROXY.open(self.url + path, timeout=PATIENCE) as response:
            return response.headers["X-Pid"], response.read()

    def workers(self) -> set[int]:
        """The pids of the master's children now."""
        children = set()
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                if int(stat.rpartition(")")[2].split()[1]) == self.process.pid:
                    children.add(int(entry.name))
        return children

    def scrape(self) -> tuple[str, dict[str, float]]:
        """Scrape ``/metrics``; check that no counter went below what an earlier scrape showed
        (a series that disappears counts as going backwards too)."""
        pid, body = self.get("/metrics")
        samples = {}
        for line in body.decode().splitlines():
            match = _SAMPLE.match(line)
            if match:
                samples[match.group(1) + (match.group(2) or "")] = float(match.group(3))
        for series, before in self.seen.items():
            now = samples.get(series)
            assert now is not None, f"{series} disappeared (it was {before})"
            assert now >= before, f"{series} went backwards: {before} -> {now}"
        self.seen.update({s: v for s, v in samples.items() if s.split("{")[0].endswith(_MONOTONIC)})
        return pid, samples


def tasks_total(samples: dict[str, float]) -> float:
    """The sum of every ``laios_tasks_total`` series."""
    return sum(v for s, v in samples.items() if s.startswith("laios_tasks_total{"))


def run_tasks(server: Gunicorn, count: int, sleep: float = 0.05) -> set[str]:
    """Send ``count`` task requests from 6 threads at once (so that every worker gets some);
    return the pids that served them."""
    pids: set[str] = set()
    lock = threading.Lock()
    left = list(range(count))

    def client() -> None:
        while True:
            with lock:
                if not left:
                    return
                left.pop()
            pid, body = server.get(f"/task?sleep={sleep}")
            assert body.endswith(b"True"), body
            with lock:
                pids.add(pid)

    threads = [threading.Thread(target=client) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(PATIENCE)
    assert not left
    return pids


def wait_for(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` until it holds; fail after :data:`PATIENCE` seconds."""
    deadline = time.monotonic() + PATIENCE
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.1)


def scrape_until_total(server: Gunicorn, expected: float) -> set[str]:
    """Scrape (checking every scrape) until ``laios_tasks_total`` adds up to ``expected``;
    return the pids that served the scrapes."""
    pids: set[str] = set()

    def added_up() -> bool:
        pid, samples = server.scrape()
        pids.add(pid)
        total = tasks_total(samples)
        assert total <= expected, f"laios_tasks_total is {total}, more than the {expected} run"
        return total == expected

    wait_for(added_up, f"laios_tasks_total to reach {expected}")
    return pids


@pytest.fixture
def start_gunicorn(
    tmp_path: Path, free_port: Callable[[], int]
) -> Iterator[Callable[..., Gunicorn]]:
    """Starts gunicorn (stopped at the end): 3 sync workers, the guide's config."""
    started: list[Gunicorn] = []

    def start(*options: str, directory: Path | None = None, config_extra: str = "") -> Gunicorn:
        if directory is None:
            directory = tmp_path / "multiproc"
            directory.mkdir(exist_ok=True)  # with --preload, the app enables before on_starting
        config = tmp_path / "gunicorn.conf.py"
        config.write_text(CONFIG + config_extra)
        port = free_port()
        env = {
            **os.environ,
            "LAIOS_MULTIPROC_DIR": str(directory),
            "PYTHONPATH": os.pathsep.join([str(HERE), str(SRC), os.environ.get("PYTHONPATH", "")]),
        }
        log = tmp_path / "gunicorn.log"
        command = [sys.executable, "-m", "gunicorn", "-c", str(config), "-w", str(WORKERS)]
        command += ["-b", f"127.0.0.1:{port}", "--graceful-timeout", "5", *options]
        with open(log, "wb") as output:
            process = subprocess.Popen(
                [*command, "gunicorn_app:app"], env=env, cwd=tmp_path, stdout=output, stderr=output
            )
        server = Gunicorn(process, f"http://127.0.0.1:{port}", directory, log)
        started.append(server)

        def up() -> bool:
            assert process.poll() is None, log.read_text()
            try:
                server.get("/metrics")
            except OSError:
                return False
            return len(server.workers()) == WORKERS

        wait_for(up, "gunicorn to start")
        return server

    yield start
    for server in started:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(PATIENCE)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


def test_counters_add_up_over_workers_and_survive_a_replaced_worker(
    start_gunicorn: Callable[..., Gunicorn],
) -> None:
    """30 tasks over 3 workers show as 30 on every worker's /metrics, no counter ever goes
    backwards over 20+ scrapes, and a worker replaced (SIGTERM) keeps its counts."""
    server = start_gunicorn()
    served = run_tasks(server, 30)
    assert len(served) >= 2, "the tasks should have been spread over the workers"
    scraped = scrape_until_total(server, 30)
    for _ in range(20):
        pid, samples = server.scrape()
        assert tasks_total(samples) == 30
        scraped.add(pid)
    assert len(scraped) >= 2, "scrapes should have been served by more than one worker"

    before = server.workers()
    victim = next(iter(before))
    os.kill(victim, signal.SIGTERM)
    wait_for(
        lambda: victim not in server.workers() and len(server.workers()) == WORKERS,
        "gunicorn to replace the worker",
    )
    run_tasks(server, 30)
    scrape_until_total(server, 60)
    for _ in range(20):
        _, samples = server.scrape()
        assert tasks_total(samples) == 60
    files = sorted(p.name for p in server.directory.iterdir() if p.name.endswith(".json"))
    assert len(files) == WORKERS + 1, files  # one per live worker, and the retired one
    assert "laios-retired.json" in files


#: What the workers import, loaded by the master (as root) before they become another user:
#: the interpreter's own files may be root's alone where the tests run.
_LOADED_FOR_ANOTHER_USER = """
import encodings.ascii, multiprocessing.util  # noqa: E401
import laios.execution.executor, laios.execution.server  # noqa: E401
import laios.tools.base, laios.tools.registry  # noqa: E401
from laios.execution import _shared_totals

_shared_totals.pid_namespace()
"""


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0, reason="gunicorn --user needs root"
)
def test_workers_of_another_user_write_in_a_directory_the_hook_created(
    start_gunicorn: Callable[..., Gunicorn],
) -> None:
    """gunicorn started as root with ``--user nobody`` and ``$LAIOS_MULTIPROC_DIR`` missing:
    the ``on_starting`` hook creates it (and its missing parent, which stays root's) for the
    workers' user, who write there; the workers failed to boot ("not writable") on a
    directory of root's."""
    import pwd

    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user nobody")
    existing = Path(tempfile.mkdtemp(prefix="laios-gunicorn-user-"))  # (tmp_path is root's)
    server = None
    try:
        existing.chmod(0o755)
        directory = existing / "run" / "multiproc"
        server = start_gunicorn(
            "--user",
            str(nobody.pw_uid),
            "--group",
            str(nobody.pw_gid),
            directory=directory,
            config_extra=_LOADED_FOR_ANOTHER_USER,
        )
        assert (directory.stat().st_uid, directory.stat().st_gid) == (nobody.pw_uid, nobody.pw_gid)
        assert directory.parent.stat().st_uid == existing.stat().st_uid == 0
        run_tasks(server, 12)
        scrape_until_total(server, 12)
        written = list(directory.glob("laios-proc-*.json"))
        assert len(written) == WORKERS
        assert {p.stat().st_uid for p in written} == {nobody.pw_uid}
    finally:
        if server is not None:  # stopped before its directory goes
            server.process.send_signal(signal.SIGTERM)
            server.process.wait(PATIENCE)
        shutil.rmtree(existing, ignore_errors=True)


def test_a_worker_killed_with_sigkill_keeps_what_it_wrote(
    start_gunicorn: Callable[..., Gunicorn],
) -> None:
    """Tasks counted (written by the snapshot thread) before a worker is SIGKILLed stay in
    the total, with --preload (multiprocess mode turned on in the master before the fork)."""
    server = start_gunicorn("--preload")
    run_tasks(server, 30)
    scrape_until_total(server, 30)
    time.sleep(1.5)  # every worker has written its counts since (interval: 1 s)
    victim = next(iter(server.workers()))
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: victim not in server.workers(), "the worker to die")
    for _ in range(5):
        _, samples = server.scrape()
        assert tasks_total(samples) == 30
    assert not any(
        p.name.startswith(f"laios-proc-{server.process.pid}-") for p in server.directory.iterdir()
    ), "gunicorn's master writes no file"


def test_a_worker_replaced_while_the_directory_is_deleted_boots_and_the_service_lives_on(
    start_gunicorn: Callable[..., Gunicorn],
) -> None:
    """The shared directory deleted under the service (a temp-file cleaner, an ``rm -rf``):
    a worker that gunicorn starts meanwhile boots all the same (gunicorn stops the whole
    service when a worker fails to boot), and once the directory is back, every worker
    writes there again and the scrapes answer."""
    server = start_gunicorn()
    run_tasks(server, 6)
    scrape_until_total(server, 6)
    shutil.rmtree(server.directory)
    victim = next(iter(server.workers()))
    os.kill(victim, signal.SIGKILL)

    def replaced_and_booted() -> bool:
        assert server.process.poll() is None, server.log.read_text()
        return "this worker starts without it" in server.log.read_text()

    wait_for(replaced_and_booted, "the replacing worker to boot")
    server.directory.mkdir()
    wait_for(
        lambda: len(list(server.directory.glob("laios-proc-*.json"))) == WORKERS,
        "every worker to write its file in the directory created again",
    )
    server.seen.clear()  # (the counts of the killed worker went with the directory)
    run_tasks(server, 6)

    def total() -> float | None:
        """``laios_tasks_total`` of a scrape (checked, as every scrape); ``None`` when it
        failed, as a worker's scrapes do for twice its interval from when it finds the
        directory created anew, until the other workers have written their files there."""
        try:
            return tasks_total(server.scrape()[1])
        except urllib.error.HTTPError as error:
            if error.code != 500:
                raise
            return None

    # (each worker's new tasks are in its file within its interval, 1 s)
    wait_for(lambda: (total() or 0) >= 6, "the new tasks to be counted")
    for _ in range(10):
        wait_for(lambda: total() is not None, "a scrape to answer")
    assert server.process.poll() is None


def test_promtool_accepts_the_multiprocess_exposition(
    start_gunicorn: Callable[..., Gunicorn], promtool_binary: str
) -> None:
    """promtool prints nothing for /metrics added up over gunicorn's workers."""
    server = start_gunicorn()
    run_tasks(server, 12)
    scrape_until_total(server, 12)
    _, body = server.get("/metrics")
    result = subprocess.run(
        [promtool_binary, "check", "metrics"], input=body, capture_output=True, timeout=60
    )
    assert (result.stdout + result.stderr).decode() == "", body.decode()
    assert result.returncode == 0
