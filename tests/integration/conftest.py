"""Shared by the integration tests: finding Debian's Prometheus programs and Chromium, and
free ports.

Without ``prometheus`` or ``promtool`` on the PATH the tests that need them are skipped, unless
``LAIOS_REQUIRE_PROMETHEUS=1`` is set (as in CI): then they fail, so that a missing package can
never pass for a green run. Likewise the browser tests need Debian's ``chromium`` and the
``playwright`` package (which drives it); ``LAIOS_REQUIRE_CHROMIUM=1`` makes their absence fail.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
from collections.abc import Callable

import pytest


def _require(program: str) -> str:
    """The path of ``program``; skip (or fail under LAIOS_REQUIRE_PROMETHEUS=1) without it."""
    path = shutil.which(program)
    if path is not None:
        return path
    reason = f"{program} is not installed (Debian: apt-get install prometheus)"
    if os.environ.get("LAIOS_REQUIRE_PROMETHEUS") == "1":
        pytest.fail(f"{reason}, and LAIOS_REQUIRE_PROMETHEUS=1 requires it")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def prometheus_binary() -> str:
    """Path of the ``prometheus`` server."""
    return _require("prometheus")


@pytest.fixture(scope="session")
def promtool_binary() -> str:
    """Path of ``promtool``."""
    return _require("promtool")


@pytest.fixture(scope="session")
def chromium_binary() -> str:
    """Path of Debian's ``chromium``, once ``playwright`` (which drives it) is importable."""
    required = os.environ.get("LAIOS_REQUIRE_CHROMIUM") == "1"
    path = shutil.which("chromium")
    reason = None
    if path is None:
        reason = "chromium is not installed (Debian: apt-get install chromium)"
    elif importlib.util.find_spec("playwright") is None:
        reason = "playwright is not installed (pip install -e '.[dev]')"
    if reason is None:
        assert path is not None
        return path
    if required:
        pytest.fail(f"{reason}, and LAIOS_REQUIRE_CHROMIUM=1 requires it")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def free_port() -> Callable[[], int]:
    """Returns a function giving a TCP port free on 127.0.0.1 at the time of the call."""
    return _free_port
