"""The Dask runner on a real cluster started as operators start one, losing a worker mid-batch.

The module's fixture starts ``dask scheduler`` and two ``dask worker`` processes (each a nanny
with one worker process of 4 threads, all on 127.0.0.1) and stops them at the end, checking
that no process of the cluster (a tool process, a forkserver) is left behind. The test runs
1,000 tasks through ``execute_parallel`` on a ``DaskRunner``: most succeed quickly, some raise,
a few hang past the per-task timeout. While the batch runs, the Dask worker that runs the
first hanging tool is killed with ``SIGKILL``: its nanny and its worker process (its tool
processes end with their parent). Every task must still end exactly once, with its own span,
and the store must count exactly what the results say.

The tools (``dask_tools``) note every run in a directory: the tool processes share no memory
with the test, and a note tells which Dask worker ran the tool (from its ancestors' pids).

Not checked: that a tool never runs again once its task has an outcome. Dask recomputes every
finished task whose future the client still holds when the worker keeping its result dies, and
the runner holds a call's future until after its outcome arrived (and, through the traceback
of a failed call's exception, long after): the tally printed at the end counts such runs.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask_tools
import pytest

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(sys.platform != "linux", reason="reads /proc: checked on Linux"),
]

distributed = pytest.importorskip("distributed")

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: E402
    InMemorySpanExporter,
)

from laios.core.types import Context, Task, TaskResult  # noqa: E402
from laios.execution.executor import Executor  # noqa: E402
from laios.execution.runners import DaskRunner  # noqa: E402
from laios.execution.store import MetricStore  # noqa: E402
from laios.tools.registry import ToolRegistry  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
#: Longest wait for the cluster to come up, or for its processes to go.
PATIENCE = 60.0
#: Threads of each Dask worker.
THREADS = 4
#: Tasks in the batch.
TASKS = 1000
#: One task in this many raises (those whose index ends in 5).
FAIL_EVERY = 10
#: The tasks that hang: the first one decides which worker is killed (the one running it).
HANGING = (20, 500, 800)
#: Per-task timeout of the batch, in seconds. It counts from submission (a queued task whose
#: timeout passes never starts), so it is set well above the time the whole batch takes with
#: one worker left, 3 of its 4 threads held by hanging tools: the hanging ones end at it.
TIMEOUT = 20.0
#: Runs noted before the kill (so that the batch is well under way, not over).
RUNS_BEFORE_KILL = 250
OUTCOMES = ("success", "error", "timeout", "cancelled")
#: The on_progress event that tells each outcome.
ENDING_EVENT = {
    "success": "completed",
    "error": "failed",
    "timeout": "timeout",
    "cancelled": "cancelled",
}


def dask_command(program: str) -> list[str]:
    """``dask scheduler`` / ``dask worker`` of this interpreter's environment (the ``dask``
    script installed next to it, else on the PATH, else the module the script runs)."""
    script = Path(sys.executable).with_name("dask")
    if script.exists():
        return [str(script), program]
    found = shutil.which("dask")
    if found is not None:
        return [found, program]
    return [sys.executable, "-m", f"distributed.cli.dask_{program}"]


def parent_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return int(handle.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def marked_processes(marker: str) -> list[int]:
    """Live processes (zombies excluded) whose environment holds ``marker``: every process
    of the cluster inherits it (nannies, workers, forkservers, tool processes)."""
    found: list[int] = []
    needle = marker.encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle not in (entry / "environ").read_bytes():
                continue
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state not in ("Z", "X"):
            found.append(int(entry.name))
    return found


def process_tree(root: int) -> set[int]:
    """``root`` and every live process descending from it."""
    children: dict[int, list[int]] = collections.defaultdict(list)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            parent = parent_of(int(entry.name))
            if parent is not None:
                children[parent].append(int(entry.name))
    tree, todo = set(), [root]
    while todo:
        pid = todo.pop()
        tree.add(pid)
        todo.extend(children.get(pid, ()))
    return tree


def wait_until(what: str, check: Callable[[], Any], timeout: float = PATIENCE) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"gave up after {timeout:g} s waiting for {what}")
        time.sleep(0.1)


@dataclass
class DaskWorker:
    """One ``dask worker`` command: its nanny process, and the worker process it started."""

    nanny: subprocess.Popen[bytes]
    address: str = ""
    pid: int = 0  # the worker process (a child of the nanny)


@dataclass
class Cluster:
    address: str
    scheduler: subprocess.Popen[bytes]
    workers: list[DaskWorker]
    marker: str
    logs: Path


def log_tail(logs: Path) -> str:
    """The end of every log of the cluster (for a failure's message)."""
    parts = []
    for path in sorted(logs.glob("*.log")):
        parts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}")
    return "\n".join(parts)


def stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process's group (it leads one), then SIGKILL it if it lingers; reap."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=15)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=15)


def registry() -> ToolRegistry:
    tools = ToolRegistry()
    for cls in dask_tools.TOOLS:
        tools.register_tool(cls())
    return tools


def warm_up(cluster: Cluster, box: Path) -> None:
    """Start every Dask worker's tool processes (seconds on a busy machine: the batch's
    timeout counts from submission, and is not meant to measure that)."""
    box.mkdir()
    with Executor(
        registry(),
        runner=DaskRunner(cluster.address, connect_timeout=PATIENCE),
        store=MetricStore(),
        register_prometheus=False,
    ) as executor:
        results = asyncio.run(
            executor.execute_parallel(
                make_tasks(box, count=8 * THREADS, hanging=()),
                Context(session_id="warm-up", user_id="u"),
                PATIENCE,
            )
        )
    assert all(r.success or r.metadata.get("error_type") == "ValueError" for r in results)


def make_tasks(box: Path, count: int = TASKS, hanging: tuple[int, ...] = HANGING) -> list[Task]:
    tasks = []
    for index in range(count):
        if index in hanging:
            tool = dask_tools.Hang.name
        elif index % FAIL_EVERY == 5:
            tool = dask_tools.Fail.name
        else:
            tool = dask_tools.Quick.name
        parameters = {"tag": index, "tool": tool, "box": str(box)}
        tasks.append(Task(plan_id="dask", description=tool, tool_name=tool, parameters=parameters))
    return tasks


def worker_address(result: TaskResult) -> str | None:
    """The Dask worker a result came from (``metadata["worker"]`` is "address pid N")."""
    worker = result.metadata.get("worker")
    return worker.split(" ", 1)[0] if worker else None


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """``dask scheduler`` and two ``dask worker`` (nanny) processes on 127.0.0.1."""
    base = tmp_path_factory.mktemp("dask-cluster")
    logs = base / "logs"
    logs.mkdir()
    marker = f"LAIOS_DASK_CLUSTER_TEST={uuid.uuid4().hex}"
    env = dict(os.environ)
    env.pop("DASK_SCHEDULER_ADDRESS", None)
    env["LAIOS_DASK_CLUSTER_TEST"] = marker.split("=", 1)[1]
    # A nanny's worker process is daemonic by default, and a daemonic process may not start
    # the processes the tools run in.
    env["DASK_DISTRIBUTED__WORKER__DAEMON"] = "False"
    path = [str(REPO / "src"), str(Path(__file__).parent)]
    if env.get("PYTHONPATH"):
        path.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(path)
    started: list[subprocess.Popen[bytes]] = []

    def start(name: str, command: list[str]) -> subprocess.Popen[bytes]:
        with open(logs / f"{name}.log", "wb") as log:
            process = subprocess.Popen(
                command,
                cwd=base,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stopped as one
            )
        started.append(process)
        return process

    scheduler_file = base / "scheduler.json"
    try:
        scheduler = start(
            "scheduler",
            [
                *dask_command("scheduler"),
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--scheduler-file",
                str(scheduler_file),
                "--no-dashboard",
            ],
        )

        def scheduler_address() -> str | None:
            assert scheduler.poll() is None, "dask scheduler exited"
            try:
                return str(json.loads(scheduler_file.read_text())["address"])
            except (OSError, ValueError, KeyError):
                return None

        address: str = wait_until("the scheduler file", scheduler_address)
        workers = [
            DaskWorker(
                start(
                    f"worker-{number}",
                    [
                        *dask_command("worker"),
                        address,
                        "--nthreads",
                        str(THREADS),
                        "--nworkers",
                        "1",
                        "--no-dashboard",
                        "--host",
                        "127.0.0.1",
                        "--name",
                        f"worker-{number}",
                        "--local-directory",
                        str(base / f"worker-{number}"),
                        "--death-timeout",
                        "30",  # a worker left without its scheduler ends itself
                    ],
                )
            )
            for number in range(2)
        ]
        with distributed.Client(address, timeout=PATIENCE) as client:
            try:
                client.wait_for_workers(2, timeout=PATIENCE)
            except TimeoutError:
                pytest.fail(f"the Dask workers did not come up:\n{log_tail(logs)}")
            pids: dict[str, int] = client.run(os.getpid)  # worker address: its pid
        by_parent = {parent_of(pid): (where, pid) for where, pid in pids.items()}
        for worker in workers:
            worker.address, worker.pid = by_parent[worker.nanny.pid]
        cluster = Cluster(address, scheduler, workers, marker, logs)
        warm_up(cluster, base / "warm-up")
        yield cluster
    finally:
        for process in reversed(started):  # workers first, then the scheduler
            stop_group(process)
        # No process of the cluster may be left behind: tool processes end with their Dask
        # worker, forkservers with the process that started them. (Any left over descends
        # from a process started here: killed by its pid.)
        deadline = time.monotonic() + 20
        left = marked_processes(marker)
        while left and time.monotonic() < deadline:
            time.sleep(0.1)
            left = marked_processes(marker)
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert not left, f"processes of the Dask cluster left behind: {left}"


def run_in_thread(executor: Executor, tasks: list[Task], on_progress: Any) -> Any:
    """Start ``execute_parallel`` on a thread of its own; returns (thread, results, errors)."""
    results: list[list[TaskResult]] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            batch = executor.execute_parallel(
                tasks, Context(session_id="dask", user_id="test"), TIMEOUT, on_progress
            )
            results.append(asyncio.run(batch))
        except BaseException as exc:  # reported by the test's thread
            errors.append(exc)

    thread = threading.Thread(target=run, name="execute_parallel")
    thread.start()
    return thread, results, errors


def test_a_batch_survives_a_killed_dask_worker(cluster: Cluster, tmp_path: Path) -> None:
    box = tmp_path / "runs"
    box.mkdir()
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    executor = Executor(
        registry(),
        runner=DaskRunner(cluster.address, connect_timeout=PATIENCE),
        tracer_provider=provider,
        store=MetricStore(),
        register_prometheus=False,
    )
    tasks = make_tasks(box)
    index_of = {task.id: index for index, task in enumerate(tasks)}
    ends: dict[int, list[tuple[str, float]]] = collections.defaultdict(list)

    def on_progress(event: str, data: Any) -> None:
        if event in ("completed", "failed", "timeout", "cancelled"):
            ends[index_of[data["task_id"]]].append((event, time.time()))

    by_pid = {worker.pid: worker for worker in cluster.workers}

    def worker_of_first_hang() -> DaskWorker | None:
        """The worker running the first hanging tool, once the batch is well under way."""
        if dask_tools.count_runs(box) < RUNS_BEFORE_KILL:
            return None
        for run in dask_tools.read_runs(box, HANGING[0]):
            return next(by_pid[pid] for pid in run["ancestors"] if pid in by_pid)
        return None

    with executor:
        batch_start = time.time()
        thread, box_results, errors = run_in_thread(executor, tasks, on_progress)
        try:
            killed = wait_until("the first hanging tool to run", worker_of_first_hang, 30)
            killed_tree = process_tree(killed.nanny.pid)  # its forkserver, its tool processes
            assert killed.pid in killed_tree
            runs_before_kill = dask_tools.count_runs(box)
            kill_time = time.time()
            # kill -9 the nanny first (or it would start a new worker process), then the
            # worker process. Nothing else: the worker's tool processes (and forkserver) must
            # end by themselves when it dies.
            os.kill(killed.nanny.pid, signal.SIGKILL)
            os.kill(killed.pid, signal.SIGKILL)
        finally:
            thread.join(timeout=TIMEOUT + 30)
        assert not thread.is_alive(), "execute_parallel did not return"
        assert not errors, errors
        (results,) = box_results
        batch_seconds = time.time() - batch_start
        snapshot = executor.store.snapshot()
    survivor = next(worker for worker in cluster.workers if worker is not killed)
    # Every process of the killed worker's tree ended (the tool processes with their worker).
    wait_until(
        "the killed worker's processes to end",
        lambda: killed_tree.isdisjoint(marked_processes(cluster.marker)),
        timeout=20,
    )

    # -- one result per task, each with exactly one outcome -------------------------------
    assert len(results) == TASKS
    assert [result.task_id for result in results] == [task.id for task in tasks]
    outcome_of: dict[int, str] = {}
    for index, result in enumerate(results):
        outcome = result.metadata.get("outcome")
        assert outcome in OUTCOMES, (index, result)
        assert result.success == (outcome == "success"), (index, result)
        outcome_of[index] = outcome
        # on_progress heard of exactly one end, the same
        assert [event for event, _ in ends[index]] == [ENDING_EVENT[outcome]], (index, ends)
    assert set(ends) == set(range(TASKS))

    # -- which worker ran what; how the kill's victims ended ----------------------------
    runs_of: dict[int, list[dict[str, Any]]] = collections.defaultdict(list)
    for run in dask_tools.read_runs(box):
        run["worker"] = next(
            (worker.address for worker in cluster.workers if worker.pid in run["ancestors"]),
            None,
        )
        if run["worker"] is None:
            # A tool process that the killed worker's forkserver started as the worker died:
            # it was reparented before it wrote its note, so its chain no longer reaches the
            # worker (a survivor's chain is never cut). It belongs to the killed worker.
            assert run["started"] >= kill_time - 1, (run, kill_time)
            run["worker"] = killed.address
        runs_of[run["tag"]].append(run)
    hit: dict[int, str] = {}  # the tasks the kill interrupted: how each ended
    for index, result in enumerate(results):
        tool = tasks[index].tool_name
        error_type = result.metadata.get("error_type")
        lost = error_type == "worker_lost"
        where = worker_address(result)
        if any(run["worker"] == killed.address for run in runs_of[index]) and (
            where != killed.address
        ):
            # It ran on the killed worker, which did not deliver its result: the cluster
            # gave up on it, or Dask ran it again on the other worker and that run ended it.
            if lost:
                hit[index] = "worker_lost"
            else:
                assert any(run["worker"] == survivor.address for run in runs_of[index]), index
                assert where in (None, survivor.address), (index, result.metadata)
                ended = outcome_of[index] + (f" ({error_type})" if error_type else "")
                hit[index] = f"rerun: {ended}"
        if lost:
            assert outcome_of[index] == "error", (index, result)
            continue
        if tool == dask_tools.Quick.name:
            assert outcome_of[index] == "success", (index, result)
        elif tool == dask_tools.Fail.name:
            assert (outcome_of[index], error_type) == ("error", "ValueError"), (index, result)
        else:
            assert (outcome_of[index], error_type) == ("timeout", "timeout"), (index, result)
        if outcome_of[index] != "timeout":
            # It ran to its end: the result says where (the Dask worker, the tool's process),
            # and that run noted the same.
            assert where is not None, (index, result.metadata)
            pid = int(result.metadata["worker"].rsplit(" ", 1)[1])
            assert any(r["pid"] == pid and r["worker"] == where for r in runs_of[index]), index
    assert HANGING[0] in hit, "the kill missed the hanging tool it was aimed at"

    # -- spans: one per task; their ids on the results, and seen by the tools ---------------
    finished = exporter.get_finished_spans()
    (batch_span,) = [span for span in finished if span.name == "laios.execute_parallel"]
    spans = [span for span in finished if span.name.startswith("execute_tool ")]
    assert len(spans) == TASKS
    span_of: dict[str, ReadableSpan] = {}
    for span in spans:
        assert span.attributes is not None
        span_of[str(span.attributes["laios.task.id"])] = span
    assert len(span_of) == TASKS
    assert len({span.context.span_id for span in spans}) == TASKS
    for index, result in enumerate(results):
        span = span_of[result.task_id]
        assert span.attributes is not None
        assert span.name == f"execute_tool {tasks[index].tool_name}"
        trace_id = f"{span.context.trace_id:032x}"
        span_id = f"{span.context.span_id:016x}"
        # The task spans of a batch are children of its batch span (docs/spans.md): they
        # share its trace id, each with a span id of its own.
        assert span.parent is not None
        assert span.parent.span_id == batch_span.context.span_id
        assert span.context.trace_id == batch_span.context.trace_id
        assert (result.metadata["trace_id"], result.metadata["span_id"]) == (trace_id, span_id)
        assert span.attributes.get("laios.worker") == result.metadata.get("worker"), index
        assert span.attributes.get("error.type") == result.metadata.get("error_type"), index
        if result.success:  # what the tool saw, returned by the run that ended the task
            assert result.output == {"tag": index, "trace_id": trace_id, "span_id": span_id}
        for run in runs_of[index]:  # every run of the task saw the task's span, reruns too
            assert (run["trace_id"], run["span_id"]) == (trace_id, span_id), (index, run)

    # -- the store counts exactly what the results say -------------------------------------
    expected: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    expected_errors: dict[str, collections.Counter[str]] = collections.defaultdict(
        collections.Counter
    )
    for index, result in enumerate(results):
        expected[tasks[index].tool_name][outcome_of[index]] += 1
        if outcome_of[index] in ("error", "timeout"):  # (a cancellation is no error)
            expected_errors[tasks[index].tool_name][result.metadata["error_type"]] += 1
    # (the store always has an "unknown" tool label, for tasks naming no registered tool)
    tools = {tool.tool: tool for tool in snapshot.tools if tool.total or tool.in_flight}
    assert set(tools) == set(expected)
    for name, counts in expected.items():
        tool = tools[name]
        assert tool.total == sum(counts.values()), name
        assert {outcome: h.count for outcome, h in tool.outcomes.items() if h.count} == dict(
            counts
        ), name
        assert {kind: c.value for kind, c in tool.errors.items() if c.value} == dict(
            expected_errors[name]
        ), name
        assert tool.in_flight == 0, name
    assert not snapshot.running

    # -- for the record (shown with -rP or -s) ---------------------------------------------
    late = [  # runs that started after the caller had its task's outcome (Dask reruns)
        run
        for tag, tag_runs in runs_of.items()
        for run in tag_runs
        if run["started"] > ends[tag][0][1]
    ]
    last_quick = max(ends[index][0][1] for index in range(TASKS) if index not in HANGING)
    print(
        json.dumps(
            {
                "batch seconds": round(batch_seconds, 1),
                "killed after seconds": round(kill_time - batch_start, 2),
                "runs noted before the kill": runs_before_kill,
                "killed": f"{killed.address}: nanny pid {killed.nanny.pid}, "
                f"worker pid {killed.pid}",
                "outcomes": dict(collections.Counter(outcome_of.values())),
                "tasks the kill interrupted": dict(collections.Counter(hit.values())),
                "tasks run more than once": sum(len(runs) > 1 for runs in runs_of.values()),
                "runs started after their task's outcome": dict(
                    collections.Counter(tasks[run["tag"]].tool_name for run in late)
                ),
                "last outcome of a task that does not hang, after seconds": round(
                    last_quick - batch_start, 2
                ),
            },
            indent=2,
        )
    )
