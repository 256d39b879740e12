"""What a process runner's worker writes on its stderr never holds a task's secret values:
every traceback the worker prints is scrubbed as the executor's own reports are.

Each test runs a program of its own (the worker's stderr is the program's, inherited through
the forkserver) and reads that program's stderr.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from laios.execution._runners import process as process_runner

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="worker output is checked on Linux")

KEY = "sk-WORKER-OUTPUT-SECRET-7319"

_PRELUDE = """import json, sys
import worker_output_tools
from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.runners import ProcessRunner
from laios.tools.registry import ToolRegistry


def run_all(calls, **runner_options):
    registry = ToolRegistry()
    for cls in worker_output_tools.TOOLS:
        registry.register_tool(cls())
    runner = ProcessRunner(1, **runner_options)
    executor = Executor(registry, runner=runner, register_prometheus=False)
    context = Context(session_id="s", user_id="u")
    results = []
    try:
        for tool, parameters in calls:
            task = Task(plan_id="p", description="d", tool_name=tool, parameters=parameters)
            result = executor.execute_task(task, context, timeout=15)
            results.append({"success": result.success, "error": result.error,
                            "error_type": result.metadata.get("error_type")})
    finally:
        executor.shutdown(wait=True)
    print(json.dumps(results))
"""


def _run(tmp_path: Path, body: str) -> tuple[str, list[dict[str, Any]]]:
    """Run ``body`` after the prelude in a program of its own: its stderr and results."""
    script = tmp_path / "main.py"
    main = textwrap.indent(textwrap.dedent(body), "    ")
    script.write_text(_PRELUDE + '\n\nif __name__ == "__main__":\n' + main)
    env = dict(os.environ)
    src = str(Path(process_runner.__file__).resolve().parents[3])
    here = str(Path(__file__).parent)
    env["PYTHONPATH"] = os.pathsep.join([here, src, env.get("PYTHONPATH", "")])
    program = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, env=env
    )
    assert program.returncode == 0, program.stderr[-3000:]
    return program.stderr, json.loads(program.stdout.splitlines()[-1])


@pytest.mark.parametrize("hold", [True, False], ids=["held", "dropped"])
@pytest.mark.parametrize("kind", ["exit", "error"])
def test_a_task_left_on_the_loop_prints_no_secret(tmp_path: Path, kind: str, hold: bool) -> None:
    """A task an async tool left on the worker's loop that raises (``SystemExit`` or another
    exception) quoting the key after the tool returned: its traceback is on stderr, the key
    is not."""
    stderr, results = _run(
        tmp_path,
        f"""
        run_all([
            ("leaves_a_key_behind", {{"api_key": {KEY!r}, "kind": {kind!r}, "hold": {hold}}}),
            ("sleep_async_plain", {{"seconds": 0.6}}),
            ("sleep_async_plain", {{}}),
        ])
        """,
    )
    assert [result["success"] for result in results] == [True, True, True], results
    assert KEY not in stderr, stderr
    if kind == "exit" or not hold:  # (a held task's unretrieved error is never collected)
        assert "left behind with [REDACTED]" in stderr, stderr


@pytest.mark.parametrize(
    ("tool", "said"),
    [
        ("thread_raises", "thread failed with [REDACTED]"),
        ("del_raises", "collected with [REDACTED]"),
    ],
)
def test_an_error_python_prints_in_the_worker_prints_no_secret(
    tmp_path: Path, tool: str, said: str
) -> None:
    """An exception a tool's thread raised, or one raised by a ``__del__`` (which Python
    prints, as it can raise nowhere), quoting the key: its traceback is on stderr, the key is
    not."""
    stderr, results = _run(
        tmp_path, f"run_all([({tool!r}, {{'api_key': {KEY!r}}}), ('nothing', {{}})])"
    )
    assert [result["success"] for result in results] == [True, True], results
    assert KEY not in stderr, stderr
    assert said in stderr, stderr
