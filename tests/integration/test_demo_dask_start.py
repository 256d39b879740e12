"""`laios demo --runner dask` stopped by Ctrl-C while its local Dask cluster starts: the Ctrl-C
a terminal sends to every process of its foreground group (the demo and the cluster's worker
processes it is starting)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.integration

pytest.importorskip("distributed")
psutil = pytest.importorskip("psutil")


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


def _cluster_started(pid: int) -> bool:
    """Whether the process ``pid`` has started a process of its Dask cluster (one started by
    multiprocessing's ``spawn``; its resource tracker, started first, is not one)."""
    with contextlib.suppress(psutil.Error):
        for child in psutil.Process(pid).children():
            with contextlib.suppress(psutil.Error):
                if any("spawn_main" in part for part in child.cmdline()):
                    return True
    return False


def test_ctrl_c_while_the_dask_cluster_starts_ends_quietly_with_130_and_no_workers() -> None:
    """Ctrl-C to the whole process group once the cluster's first process has started: exit
    code 130, nothing on stderr (no traceback from the demo nor from a worker interrupted in
    its imports), no banner (the demo did not get further), and no process left behind."""
    command = [sys.executable, "-m", "laios", "demo", "--runner", "dask", "--port", "0"]
    demo = subprocess.Popen(
        [*command, "--no-live"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not _cluster_started(demo.pid) and demo.poll() is None:
            assert time.monotonic() < deadline, "the demo started no cluster within 60 s"
            time.sleep(0.02)
        os.killpg(demo.pid, signal.SIGINT)
        out, err = demo.communicate(timeout=120)
        deadline = time.monotonic() + 60
        while _group_alive(demo.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = _group_alive(demo.pid)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(demo.pid, signal.SIGKILL)
        demo.kill()
        demo.wait(timeout=60)
    assert demo.returncode == 130, err
    assert err == ""
    assert "laios demo: serving" not in out
    assert not left, "processes of the demo were left running"
