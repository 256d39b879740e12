"""What the integration tests share for talking to the services they start: polling until a
condition holds, stopping a process, and plain HTTP on loopback (no proxy from the environment)."""

from __future__ import annotations

import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

#: Longest wait for any one condition (start-up, a scrape).
PATIENCE = 30.0
#: An opener that ignores proxy settings: every service these tests reach is on loopback.
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def wait_for(what: str, check: Callable[[], Any], timeout: float = PATIENCE) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
        except (OSError, ValueError):  # not listening yet, or an answer cut short
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"gave up after {timeout:g} s waiting for {what}")
        time.sleep(0.25)


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop ``process`` (SIGTERM, then SIGKILL) and reap it."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
