"""Whether a call answers: run it on a thread of its own, so that one waiting for ever fails
the test that asked instead of hanging the run; or run it in a process of its own, so that
what it leaves broken in the interpreter does not reach the test run."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any


def answers(call: Callable[[], Any], within: float) -> bool:
    """Whether ``call()`` returns within ``within`` seconds (run on a daemon thread)."""
    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(within)
    return not thread.is_alive()


def passes_in_a_process_of_its_own(test_file: str, call: str) -> None:
    """Run ``call`` (Python, on the module of ``test_file`` imported as ``t``) in a process of
    its own, failing the test with the end of its output unless it exits cleanly.

    For a sweep landing ``KeyboardInterrupt`` from a profile function on an asyncio loop: an
    exception raised so out of an asyncio task's step leaves CPython 3.11's recursion count
    unbalanced (a later ``ast.parse`` fails), which must not reach the test run."""
    module = Path(test_file)
    code = (
        f"import sys; sys.path.insert(0, {str(module.parent)!r}); "
        f"import {module.stem} as t; t.{call}"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
