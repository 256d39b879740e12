"""A runner's own ``shutdown(wait=...)`` takes ``True``/``False`` (or ``0``/``1``), as
``Executor.shutdown`` does: ``runner.shutdown(wait="no")`` used to be taken as ``wait=True``
(a non-empty string is truthy), and ``runner.shutdown(wait=2)`` went unnoticed."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from dask_cleanup import forget_clients_of_closed_loops

from laios.execution.runners import (
    AsyncSlots,
    InlineRunner,
    LoopRunner,
    ProcessRunner,
    Runner,
    ThreadRunner,
)


def _thread() -> Runner:
    return ThreadRunner(max_workers=1, replacement_cap=1)


def _loop() -> Runner:
    return LoopRunner(AsyncSlots(2))


def _inline() -> Runner:
    return InlineRunner()


def _process() -> Runner:
    return ProcessRunner(max_workers=1)


BUILDERS: list[Callable[[], Runner]] = [_thread, _loop, _inline, _process]


@pytest.fixture(params=BUILDERS, ids=lambda build: build.__name__.strip("_"))
def runner(request: pytest.FixtureRequest) -> Iterator[Runner]:
    built = request.param()
    yield built
    built.shutdown(wait=True)


@pytest.mark.parametrize("value", ["no", "false", None, 0.0, object()])
def test_a_runner_refuses_a_wait_that_is_not_a_bool(runner: Runner, value: Any) -> None:
    """A ``wait`` that is no bool is refused with a ``TypeError`` naming it, and the runner
    is not shut down."""
    with pytest.raises(TypeError, match=r"wait must be True or False, got "):
        runner.shutdown(wait=value)
    assert not runner.closed


@pytest.mark.parametrize("value", [2, -1])
def test_a_runner_refuses_a_whole_number_other_than_zero_or_one(runner: Runner, value: int) -> None:
    """Only 0 and 1 say False and True: ``runner.shutdown(wait=2)`` is refused."""
    with pytest.raises(TypeError, match=rf"wait must be True or False, got int {value} "):
        runner.shutdown(value)
    assert not runner.closed


@pytest.mark.parametrize("value", [True, False, 1, 0])
def test_a_runner_takes_a_bool_or_zero_or_one(runner: Runner, value: Any) -> None:
    """``True``/``False`` and ``0``/``1`` are taken, positionally too."""
    runner.shutdown(value)
    assert runner.closed


@pytest.mark.skipif(sys.platform != "linux", reason="checked on Linux")
def test_the_dask_runner_refuses_a_wait_that_is_not_a_bool() -> None:
    """The Dask runner checks ``wait`` too, before it closes anything."""
    distributed = pytest.importorskip("distributed")
    from laios.execution.runners import DaskRunner

    cluster = distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0"
    )
    client = distributed.Client(cluster)
    try:
        dask_runner = DaskRunner(client=client)
        with pytest.raises(TypeError, match=r"wait must be True or False, got str"):
            dask_runner.shutdown(wait="no")
        assert not dask_runner.closed
        dask_runner.shutdown(wait=True)
        assert dask_runner.closed
    finally:
        client.close()
        cluster.close()
        del client, cluster
        forget_clients_of_closed_loops()
