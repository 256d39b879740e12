"""`laios status --watch` in a real terminal: tmux runs it in a detached 80x24 session, against
an endpoint whose rows are wider than 80 columns."""

from __future__ import annotations

import shlex
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry
from tmux_support import COLUMNS, Tmux, private_tmux

from laios.execution.monitor import ProgressStatus, ProgressUpdate
from laios.execution.server import start_http_server
from laios.execution.store import MetricStore

pytestmark = pytest.mark.integration

LONG_TOOL = "fetch_the_quarterly_report_pages_of_every_region"


@pytest.fixture
def wide_endpoint() -> Iterator[str]:
    """An endpoint with a tool of a long name (finished and running) and a long message."""
    store = MetricStore()
    slot = store.tool_slot(LONG_TOOL, True)
    for index in range(3):
        rec = store.task_submitted(
            None, SimpleNamespace(id=str(index)), LONG_TOOL, slot, running=True
        )
        store.task_finished(rec, outcome="success", status=None)
    rec = store.task_submitted(
        store.new_scope(),
        SimpleNamespace(id="4a1c9e2b-7d3f-4c1a-9b8e-2f6d5c4b3a21"),
        LONG_TOOL,
        slot,
        running=True,
    )
    message = "page 3 of 6 of the quarterly report for the northern region, then the rest"
    store.record_progress(
        ProgressUpdate("4a1c9e2b", ProgressStatus.IN_PROGRESS, 52.0, message), rec
    )
    with start_http_server(0, store=store, registry=CollectorRegistry()) as server:
        yield server.url


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    with private_tmux(tmp_path / "socket") as server:
        yield server


def test_watch_fits_an_80_column_terminal(wide_endpoint: str, tmux: Tmux) -> None:
    """Every line of the picture fits the 80 columns: none is wrapped by the terminal, and the
    tool's row and the running task's are there."""
    command = [sys.executable, "-m", "laios", "status", "--url", wide_endpoint, "--watch"]
    tmux.start("watch", f"{shlex.join(command)}; exec sleep 600")
    deadline = time.monotonic() + 30
    screen: list[str] = []
    while time.monotonic() < deadline:
        screen = [line.rstrip() for line in tmux.unwrapped_screen("watch")]
        if any(line.startswith("refreshing every") for line in screen):
            break
        time.sleep(0.2)
    assert any(line.startswith("refreshing every") for line in screen), screen
    assert [line for line in screen if len(line) > COLUMNS] == [], screen
    assert any(line.startswith("  fetch_the_quarterly") for line in screen), screen
    assert any(line.startswith("  4a1c9e2b") for line in screen), screen
