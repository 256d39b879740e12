"""A Ctrl-C that lands on the caller's thread anywhere in an ``execute_task`` call leaves the
task recorded: not running for ever in the store (where ``shutdown(wait=True)``, also the one
at the program's exit, would wait for it), not ``RUNNING`` on the task, and no internal error
logged; the interrupt goes on to the caller.

Python handles a pending signal as a function begins and right after a call to a C function
returns. A loop of ``execute_task`` calls interrupted by Ctrl-C spends much of its time in
the executor's own bookkeeping, so that is where a Ctrl-C often lands. The test lands
``KeyboardInterrupt`` there (a profile function raising it on the ``call`` or ``c_return``
event), at each position in laios's code on the caller's thread, one position per run.
(The calls run on a thread of their own, so that one waiting for ever fails the test; a
profile function's exception is raised on whichever thread it runs on.)
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from types import FrameType
from typing import Any

import pytest
from answering import answers, passes_in_a_process_of_its_own

from laios.core.types import Context, Task, TaskStatus
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.tools.base import create_simple_tool
from laios.tools.registry import ToolRegistry

CONTEXT = Context(session_id="s", user_id="u")
#: How long a store or an executor may take to answer once the interrupt has landed.
ANSWERS_WITHIN = 10.0


@pytest.fixture(autouse=True)
def _collected() -> Iterator[None]:
    """Collect what a test's interrupted calls left (their executors, held in cycles by the
    interrupts' tracebacks) as the test ends."""
    yield
    gc.collect()


def _interrupt_at(event: str, position: int, landed: list[str]) -> Any:
    """A profile function raising KeyboardInterrupt at the ``position``-th ``event`` in laios's
    code (noting in ``landed`` where)."""
    seen = 0

    def profile(frame: FrameType, what: str, arg: Any) -> None:
        nonlocal seen
        if what != event or not frame.f_globals.get("__name__", "").startswith("laios."):
            return
        seen += 1
        if seen == position:
            sys.setprofile(None)
            code = frame.f_code
            after = f" after {getattr(arg, '__qualname__', arg)!s}" if event == "c_return" else ""
            name = getattr(code, "co_qualname", code.co_name)  # (3.11+: with its class)
            landed.append(f"{name}:{frame.f_lineno}{after}")
            raise KeyboardInterrupt

    return profile


def _sweep(lands: Callable[[int], bool], *, most: int = 2000, collect: bool = False) -> None:
    """Land the Ctrl-C at each position in turn (``lands(position)``: ``False`` once there is
    no such position), fewer than ``most`` and more than 20 of them (else the profile function
    saw too little). With ``collect``, garbage is collected between two runs: what the last
    run left, closed by the collector in the next, would take its Ctrl-C in a finalizer, where
    Python drops it."""
    position = 1
    while lands(position):
        position += 1
        if collect:
            gc.collect()
        assert position < most, "the events never ran out"
    assert position > 20, f"only {position - 1} positions: the profile function saw too little"


def _answers(call: Any) -> bool:
    """Whether ``call()`` returns within ``ANSWERS_WITHIN``."""
    return answers(call, ANSWERS_WITHIN)


def _nothing_running(store: MetricStore) -> bool:
    deadline = time.monotonic() + ANSWERS_WITHIN
    while store.snapshot().running:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _let_go_of(executor: Executor) -> None:
    """Shut ``executor`` down without waiting for its tasks, on a thread of its own (a test
    that failed may have left it waiting for ever)."""
    stopping = threading.Thread(target=executor.shutdown, args=(False,), daemon=True)
    stopping.start()
    stopping.join(ANSWERS_WITHIN)


def _lands_at(
    event: str,
    position: int,
    registry: ToolRegistry,
    timeout: float | None,
    caplog: pytest.LogCaptureFixture,
    warm: bool = False,
    awaited: bool = False,
    tool: str | None = None,
) -> bool:
    """Land a Ctrl-C at the ``position``-th ``event`` of an ``execute_task`` call and check
    that the task is recorded; ``False`` once there was no such event."""
    store = MetricStore()
    executor = Executor(registry, store=store, register_prometheus=False)
    landed: list[str] = []
    escaped: list[BaseException] = []
    task = Task(plan_id="p", description="d", tool_name=tool or ("awork" if awaited else "work"))
    if warm:  # a worker thread waits for the call (none is started for it)
        executor.execute_task(
            Task(plan_id="p", description="d", tool_name="work"), CONTEXT, timeout=timeout
        )

    def interrupted_call() -> None:
        sys.setprofile(_interrupt_at(event, position, landed))  # (this thread's only)
        try:
            if awaited:
                asyncio.run(executor.execute_async(task, CONTEXT, timeout=timeout))
            else:
                executor.execute_task(task, CONTEXT, timeout=timeout)
        except KeyboardInterrupt as exc:
            escaped.append(exc)
        finally:
            sys.setprofile(None)

    caplog.clear()
    try:
        answered = _answers(interrupted_call)
        where = f"a Ctrl-C at {event} {position} ({landed})"
        assert answered, f"the interrupted call waited for ever: {where}"
        if not landed:
            return False
        assert escaped, f"the interrupt was lost: {where}"
        assert _nothing_running(store), (
            f"the task stayed running: {store.snapshot().running}: {where}"
        )
        assert task.status is not TaskStatus.RUNNING, f"the task stayed RUNNING: {where}"
        assert _answers(lambda: executor.shutdown(wait=True)), f"shutdown waited: {where}"
        errors = [
            r for r in caplog.records if r.levelno >= logging.ERROR and r.name.startswith("laios")
        ]
        assert not errors, f"{errors[0].getMessage()}: {where}"
    finally:
        _let_go_of(executor)
    return True


@pytest.mark.parametrize("event", ["call", "c_return"])
@pytest.mark.parametrize(
    ("timeout", "warm"),
    [(None, False), (30, False), (30, True)],
    ids=["on the caller's thread", "on a new worker", "on a waiting worker"],
)
def test_a_ctrl_c_anywhere_in_a_call_leaves_the_task_recorded(
    event: str, timeout: float | None, warm: bool, caplog: pytest.LogCaptureFixture
) -> None:
    registry = ToolRegistry()
    registry.register_tool(create_simple_tool("work", "Works.", lambda: 1))
    caplog.set_level(logging.ERROR, logger="laios")
    _sweep(lambda position: _lands_at(event, position, registry, timeout, caplog, warm))


#: A Ctrl-C landing between the making of an async tool's coroutine and its first step leaves
#: it never awaited, as Python warns when it is collected (each test collects it at its end,
#: see _collected: not in a later test, where the warning would fail it).
_NEVER_AWAITED = pytest.mark.filterwarnings(
    "ignore:coroutine 'call_tool_async' was never awaited",
    "ignore:Exception ignored in. <coroutine object call_tool_async"
    ":pytest.PytestUnraisableExceptionWarning",
)


async def _awork() -> int:
    await asyncio.sleep(0)
    return 1


@pytest.mark.parametrize("event", ["call", "c_return"])
@pytest.mark.parametrize("timeout", [None, 30], ids=["no timeout", "with a timeout"])
def test_a_ctrl_c_anywhere_in_a_refused_call_leaves_the_task_recorded(
    event: str, timeout: float | None, caplog: pytest.LogCaptureFixture
) -> None:
    """The same for a task refused as it is accepted (its tool unknown): recorded, then
    finished at once, where a Ctrl-C left it ``queued`` for ever."""
    registry = ToolRegistry()
    caplog.set_level(logging.ERROR, logger="laios")
    _sweep(lambda position: _lands_at(event, position, registry, timeout, caplog, tool="missing"))


@_NEVER_AWAITED
@pytest.mark.skipif(
    sys.version_info < (3, 11), reason="before 3.11 an async tool runs in a task of its own"
)
@pytest.mark.parametrize("event", ["call", "c_return"])
def test_a_ctrl_c_anywhere_in_an_awaited_call_leaves_the_task_recorded(
    event: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The same for an async tool awaited in the calling task itself (``execute_async`` with
    no timeout; on Python 3.10 a Ctrl-C lands wherever the loop's thread is)."""
    registry = ToolRegistry()
    registry.register_tool(create_simple_tool("awork", "Works.", _awork))
    caplog.set_level(logging.ERROR, logger="laios")
    _sweep(lambda position: _lands_at(event, position, registry, None, caplog, awaited=True))


class _LaiosErrors:
    """The ``caplog`` of :func:`_lands_at` in a process of its own: laios's error records."""

    def __init__(self) -> None:
        self.records: list[logging.LogRecord] = []
        self.handler = logging.Handler(logging.ERROR)
        self.handler.emit = self.records.append  # type: ignore[method-assign]
        logging.getLogger("laios").addHandler(self.handler)

    def clear(self) -> None:
        self.records.clear()

    def close(self) -> None:
        logging.getLogger("laios").removeHandler(self.handler)


def _sweep_in_a_task_of_its_own(event: str) -> None:
    """Land a Ctrl-C at each ``event`` of an ``execute_async`` call whose async tool runs in
    a task of its own (a timeout)."""
    registry = ToolRegistry()
    registry.register_tool(create_simple_tool("awork", "Works.", _awork))
    errors: Any = _LaiosErrors()
    _sweep(
        lambda position: _lands_at(event, position, registry, 30, errors, awaited=True),
        collect=True,
    )


@pytest.mark.parametrize("event", ["call", "c_return"])
def test_a_ctrl_c_anywhere_in_a_call_awaiting_a_task_of_its_own_leaves_it_recorded(
    event: str,
) -> None:
    """The same for an async tool run in a task of its own on the awaiting coroutine's loop
    (``execute_async`` with a timeout; on Python 3.10 a Ctrl-C lands wherever the loop's
    thread is): one that landed as the caller was told the task finished left it waiting
    for ever, one as the task let go of what it held was lost. (In a process of its own: see
    :func:`answering.passes_in_a_process_of_its_own`.)"""
    passes_in_a_process_of_its_own(__file__, f"_sweep_in_a_task_of_its_own({event!r})")


def _interrupt_as_it_begins(where: str, landed: list[str]) -> Any:
    """A profile function raising KeyboardInterrupt as the first call of ``where`` (a
    function of laios's, ``module:name``) begins."""
    module, name = where.split(":")

    def profile(frame: FrameType, what: str, arg: Any) -> None:
        if (
            what == "call"
            and frame.f_code.co_name == name
            and frame.f_globals.get("__name__") == module
        ):
            sys.setprofile(None)
            landed.append(where)
            raise KeyboardInterrupt

    return profile


def _run_interrupted(
    call: Coroutine[Any, Any, Any], where: str, landed: list[str], escaped: list[BaseException]
) -> None:
    """``asyncio.run(call)`` with a Ctrl-C landing as ``where`` first begins (see
    :func:`_interrupt_as_it_begins`; on this thread only), the interrupt that comes out kept
    in ``escaped``."""
    sys.setprofile(_interrupt_as_it_begins(where, landed))
    try:
        asyncio.run(call)
    except KeyboardInterrupt as exc:
        escaped.append(exc)
    finally:
        sys.setprofile(None)


@_NEVER_AWAITED
@pytest.mark.parametrize(
    "where",
    [
        "laios.execution._engine.engine:_hand_over",  # (Engine's)
        "laios.execution._engine.engine:_wait",  # (Engine's)
        "laios.execution._engine.job:started",  # (Job's)
        "laios.execution._engine.engine:finished",  # (_Batch's)
        "laios.execution._engine.engine:_count",  # (_Batch's)
        "laios.execution._engine.job:_let_go",  # (Job's)
    ],
)
def test_a_ctrl_c_as_an_awaited_task_is_handed_over_or_started_leaves_it_recorded(
    where: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The same for an async tool run in a task of its own on the awaiting coroutine's loop
    (on Python 3.10 a Ctrl-C lands wherever that loop's thread is), as the task is handed to
    the loop, as the wait for it begins, and as its start is recorded: it stayed ``queued``
    for ever, or the caller waited for ever."""
    registry = ToolRegistry()
    registry.register_tool(create_simple_tool("awork", "Works.", _awork))
    caplog.set_level(logging.ERROR, logger="laios")
    store = MetricStore()
    executor = Executor(registry, store=store, register_prometheus=False)
    landed: list[str] = []
    escaped: list[BaseException] = []
    task = Task(plan_id="p", description="d", tool_name="awork")

    def interrupted_call() -> None:
        _run_interrupted(executor.execute_async(task, CONTEXT, timeout=30), where, landed, escaped)

    try:
        assert _answers(interrupted_call), "the interrupted call waited for ever"
        assert landed == [where]
        assert escaped, "the interrupt was lost"
        assert _nothing_running(store), f"the task stayed running: {store.snapshot().running}"
        assert task.status is not TaskStatus.RUNNING
        assert _answers(lambda: executor.shutdown(wait=True)), "shutdown waited"
        errors = [
            r for r in caplog.records if r.levelno >= logging.ERROR and r.name.startswith("laios")
        ]
        assert not errors, errors[0].getMessage()
    finally:
        _let_go_of(executor)


def test_a_ctrl_c_as_a_task_stranded_on_a_closed_loop_is_ended_goes_on_out_of_the_next_call(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A call whose event loop its owner closed without cancelling it is ended by the next
    call on another loop of that thread. A Ctrl-C landing as the stranded call's batch is
    told its task ended goes on out of that next call, not to the batch of a caller gone
    with its closed loop (where nobody would ever raise it)."""
    registry = ToolRegistry()
    release = threading.Event()
    registry.register_tool(create_simple_tool("hold", "Holds.", lambda: release.wait(30)))
    registry.register_tool(create_simple_tool("awork", "Works.", _awork))
    caplog.set_level(logging.ERROR, logger="laios")
    store = MetricStore()
    executor = Executor(registry, store=store, register_prometheus=False)
    held = Task(plan_id="p", description="d", tool_name="hold")
    task = Task(plan_id="p", description="d", tool_name="awork")
    where = "laios.execution._engine.engine:finished"
    landed: list[str] = []
    escaped: list[BaseException] = []

    def calls() -> None:
        closed = asyncio.new_event_loop()
        # (kept, so that the next call ends it, not the collector)
        stranded = closed.create_task(executor.execute_async(held, CONTEXT, timeout=30))
        closed.run_until_complete(asyncio.sleep(0.05))
        closed.close()  # (its awaiting coroutine never cancelled: stranded)
        _run_interrupted(executor.execute_async(task, CONTEXT, timeout=30), where, landed, escaped)
        del stranded

    try:
        assert _answers(calls), "the next call waited for ever"
        assert landed == [where]
        assert escaped, "the Ctrl-C was lost"
        assert held.status is TaskStatus.CANCELLED, held.status
        assert _nothing_running(store), f"a task stayed running: {store.snapshot().running}"
    finally:
        release.set()
        _let_go_of(executor)


async def _asleep() -> int:
    await asyncio.sleep(30)
    return 1


def _sleeping_task() -> tuple[Executor, MetricStore, Task]:
    """An executor (with its store) and a task of an async tool that sleeps 30 s."""
    registry = ToolRegistry()
    registry.register_tool(create_simple_tool("asleep", "Sleeps.", _asleep))
    store = MetricStore()
    executor = Executor(registry, store=store, register_prometheus=False)
    return executor, store, Task(plan_id="p", description="d", tool_name="asleep")


def _interrupt_as_the_batch_asks_its_loop(landed: list[str]) -> Any:
    """A profile function raising KeyboardInterrupt as an awaiting call's batch, told on
    another thread that a task ended, asks its loop to wake the awaiting coroutine."""

    def profile(frame: FrameType, what: str, arg: Any) -> None:
        caller = frame.f_back
        if (
            what == "call"
            and frame.f_code.co_name == "call_soon_threadsafe"
            and caller is not None
            and caller.f_code.co_name == "finished"
            and caller.f_globals.get("__name__") == "laios.execution._engine.engine"
        ):
            sys.setprofile(None)
            landed.append("call_soon_threadsafe")
            raise KeyboardInterrupt

    return profile


@pytest.mark.parametrize("where", ["call_soon_threadsafe", "laios.execution._engine.job:_conclude"])
def test_a_ctrl_c_as_a_cancel_task_ends_a_task_awaited_on_another_thread_wakes_its_caller(
    where: str,
) -> None:
    """A ``cancel_task`` on one thread ends a task awaited on another thread's loop, and a
    Ctrl-C lands on the cancelling thread as that loop is asked to wake the awaiting
    coroutine, or as the task's end is recorded: the interrupt goes on out of
    ``cancel_task``, the task is recorded, and the awaiting coroutine wakes with its result
    (it waited for ever, its timeout never striking for a task already ended; or it got an
    ``AssertionError`` for a result never made, the task running for ever)."""
    executor, store, task = _sleeping_task()
    results: list[Any] = []
    running = threading.Event()

    async def awaiting() -> None:
        running.set()
        results.append(await executor.execute_async(task, CONTEXT, timeout=20))

    loop_thread = threading.Thread(target=asyncio.run, args=(awaiting(),), daemon=True)
    landed: list[str] = []
    if where == "call_soon_threadsafe":
        profile = _interrupt_as_the_batch_asks_its_loop(landed)
    else:
        profile = _interrupt_as_it_begins(where, landed)

    try:
        loop_thread.start()
        assert running.wait(ANSWERS_WITHIN)
        deadline = time.monotonic() + ANSWERS_WITHIN
        while task.status is not TaskStatus.RUNNING and time.monotonic() < deadline:
            time.sleep(0.01)
        sys.setprofile(profile)
        try:
            with pytest.raises(KeyboardInterrupt):
                executor.cancel_task(task.id)
        finally:
            sys.setprofile(None)
        assert landed == [where]
        loop_thread.join(ANSWERS_WITHIN)
        assert not loop_thread.is_alive(), "the awaiting coroutine waited for ever"
        assert results, "the awaiting coroutine got no result"
        assert results[0].metadata["outcome"] == "cancelled", results[0].error
        assert _nothing_running(store), f"the task stayed running: {store.snapshot().running}"
    finally:
        _let_go_of(executor)


def _cancel_lands_at(event: str, position: int) -> bool:
    """Land a Ctrl-C at the ``position``-th ``event`` of a ``cancel_task`` call on this thread
    for a task awaited on another thread's loop, then cancel it again, and check that the
    task is recorded and its awaiting coroutine wakes with its result; ``False`` once there
    was no such event."""
    executor, store, task = _sleeping_task()
    results: list[Any] = []

    async def awaiting() -> None:
        results.append(await executor.execute_async(task, CONTEXT, timeout=20))

    loop_thread = threading.Thread(target=asyncio.run, args=(awaiting(),), daemon=True)
    landed: list[str] = []
    errors = _LaiosErrors()
    try:
        loop_thread.start()
        deadline = time.monotonic() + ANSWERS_WITHIN
        while task.status is not TaskStatus.RUNNING and time.monotonic() < deadline:
            time.sleep(0.01)
        sys.setprofile(_interrupt_at(event, position, landed))
        try:
            executor.cancel_task(task.id)
        except KeyboardInterrupt:
            pass
        finally:
            sys.setprofile(None)
        if not landed:
            return False
        where = f"a Ctrl-C at {event} {position} ({landed})"
        executor.cancel_task(task.id)  # (again: the first may have been cut short before it)
        loop_thread.join(ANSWERS_WITHIN)
        assert not loop_thread.is_alive(), f"the awaiting coroutine waited for ever: {where}"
        assert results, f"the awaiting coroutine got no result: {where}"
        assert _nothing_running(store), f"the task stayed running: {where}"
        assert task.status is not TaskStatus.RUNNING, f"the task stayed RUNNING: {where}"
        assert results[0].metadata["outcome"] == "cancelled", f"{results[0].error}: {where}"
        assert not errors.records, f"{errors.records[0].getMessage()}: {where}"
    finally:
        errors.close()
        _let_go_of(executor)
    return True


@pytest.mark.parametrize("event", ["call", "c_return"])
def test_a_ctrl_c_anywhere_in_a_cancel_task_for_a_task_awaited_elsewhere_ends_it(
    event: str,
) -> None:
    """A Ctrl-C landing anywhere in a ``cancel_task`` call on one thread, for a task awaited
    on another thread's loop: the task is recorded and its awaiting coroutine wakes with its
    result. One landing once the task was stopped, as its end was recorded, left it running
    for ever (its timeout never striking for a task stopped), the coroutine waiting."""
    _sweep(lambda position: _cancel_lands_at(event, position), most=500)


@pytest.mark.parametrize("where", ["task_finished", "_conclude"])
def test_a_ctrl_c_as_a_cancel_task_ends_a_task_awaited_on_the_stopped_loop_of_its_thread(
    where: str,
) -> None:
    """The awaiting loop stopped for a while (``run_until_complete`` returned, the call
    pending) and, on that same thread, ``cancel_task`` ends the task: a Ctrl-C landing as its
    end is recorded is the awaiting coroutine's, which raises it once its loop runs again
    (not dropped as if raised on another thread), the task recorded."""
    executor, store, task = _sleeping_task()
    module = "laios.execution.store" if where == "task_finished" else "laios.execution._engine.job"
    landed: list[str] = []
    loop = asyncio.new_event_loop()
    try:
        call = loop.create_task(executor.execute_async(task, CONTEXT, timeout=20))
        loop.run_until_complete(asyncio.sleep(0.05))  # (stopped: the call pending)
        assert task.status is TaskStatus.RUNNING
        sys.setprofile(_interrupt_as_it_begins(f"{module}:{where}", landed))
        try:
            executor.cancel_task(task.id)
        except KeyboardInterrupt:
            pass  # (where it went on out of cancel_task: it is not the test's subject)
        finally:
            sys.setprofile(None)
        assert landed == [f"{module}:{where}"]
        with pytest.raises(KeyboardInterrupt):  # (its timeout bounds the wait)
            loop.run_until_complete(call)
        assert task.status is TaskStatus.CANCELLED
        assert _nothing_running(store), f"the task stayed running: {store.snapshot().running}"
    finally:
        loop.close()
        executor.shutdown(wait=False)


def test_a_task_cancelled_on_another_thread_as_it_is_accepted_ends_cancelled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A ``cancel_task`` on another thread that finished a task with a timeout as it was
    accepted, its result not made yet when the caller looked: the caller ran the finished
    job (or took a result not there yet), and got an internal error, not ``cancelled``."""
    registry = ToolRegistry()
    registry.register_tool(create_simple_tool("work", "Works.", lambda: 1))
    store = MetricStore()
    executor = Executor(registry, store=store, register_prometheus=False)
    task = Task(plan_id="p", description="d", tool_name="work")
    caller = threading.get_ident()

    def slow_elsewhere(ended: Any) -> None:  # (between the record's end and the result)
        if threading.get_ident() != caller:
            time.sleep(0.3)

    store.add_finish_listener(slow_elsewhere)
    submit = store.submit_record

    def submit_then_cancel(rec: Any, running: bool) -> Any:
        made = submit(rec, running)
        if rec.task_id == task.id:
            threading.Thread(target=executor.cancel_task, args=(task.id,)).start()
            deadline = time.monotonic() + ANSWERS_WITHIN
            while rec.state != "finished" and time.monotonic() < deadline:
                time.sleep(0.001)
        return made

    monkeypatch.setattr(store, "submit_record", submit_then_cancel)
    try:
        result = executor.execute_task(task, CONTEXT, timeout=30)
        assert result.metadata["outcome"] == "cancelled", result.error
        assert task.status is TaskStatus.CANCELLED
    finally:
        executor.shutdown(wait=True)


@pytest.mark.skipif(
    sys.version_info < (3, 11), reason="before 3.11 an async tool runs in a task of its own"
)
def test_a_listeners_interrupt_reaches_a_caller_whose_awaited_task_ended_as_accepted() -> None:
    """An async tool to be awaited in the calling task itself, ended as it was accepted (a
    ``cancel_task`` pending for its id), a finish listener raising ``KeyboardInterrupt``: the
    interrupt is the caller's, raised once the task is recorded; it was dropped (the result
    returned), where the same task with a timeout raises it."""
    registry = ToolRegistry()
    registry.register_tool(create_simple_tool("awork", "Works.", _awork))
    store = MetricStore()
    executor = Executor(registry, store=store, register_prometheus=False)

    def interrupting(ended: Any) -> None:
        raise KeyboardInterrupt

    store.add_finish_listener(interrupting)
    task = Task(plan_id="p", description="d", tool_name="awork")
    try:
        assert executor.cancel_task(task.id), "no cancellation left pending for the id"
        with pytest.raises(KeyboardInterrupt):
            asyncio.run(executor.execute_async(task, CONTEXT))
        assert task.status is TaskStatus.CANCELLED
        assert not store.snapshot().running
    finally:
        executor.shutdown(wait=True)
