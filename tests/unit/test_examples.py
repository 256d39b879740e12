"""Every script in examples/ runs as a user would run it: exit status 0, something printed.

The scripts run in fresh interpreters (warnings are errors), several at a time.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from _scripts import ROOT, RUNS_TIMEOUT, Run, run_all

#: All of this module's tests read one costly run (a module fixture): on one worker, it runs once.
pytestmark = pytest.mark.xdist_group("examples")

EXAMPLES = ROOT / "examples"
SCRIPTS = sorted(EXAMPLES.glob("*.py"))
#: The examples the manual promises; more are welcome.
EXPECTED = {
    "async_service.py",
    "checkpoints_progress_cancellation.py",
    "custom_tool_with_input_model.py",
    "existing_otel_and_prometheus.py",
    "parallel_batch_with_progress.py",
    "quickstart.py",
    "retry_with_backoff.py",
    "serve_metrics_wsgi.py",
}


@pytest.fixture(scope="module")
def runs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Run]:
    """Run every selected example once for the module, from a scratch directory."""
    wanted = {
        item.callspec.params["script"]
        for item in request.session.items
        if hasattr(item, "callspec") and isinstance(item.callspec.params.get("script"), Path)
    }
    scripts = {path.name: path for path in SCRIPTS if path in wanted}
    return run_all(scripts, tmp_path_factory.mktemp("examples"))


@pytest.mark.timeout(RUNS_TIMEOUT)
@pytest.mark.parametrize("script", SCRIPTS, ids=[path.name for path in SCRIPTS])
def test_example_runs(script: Path, runs: dict[str, Run]) -> None:
    run = runs[script.name]
    assert run.returncode == 0, f"examples/{script.name} failed: {run.describe()}"
    assert run.stdout.strip(), f"examples/{script.name} printed nothing: {run.describe()}"


@pytest.mark.parametrize("script", SCRIPTS, ids=[path.name for path in SCRIPTS])
def test_example_says_what_it_shows(script: Path) -> None:
    """Each example opens with a docstring that says what it shows and how to run it."""
    docstring = ast.get_docstring(ast.parse(script.read_text(encoding="utf-8")))
    assert docstring, f"examples/{script.name} has no module docstring"
    assert f"python examples/{script.name}" in docstring, (
        f"examples/{script.name}: the docstring should say how to run it"
    )


#: Imports that the base install does not provide, and the extra that does.
EXTRAS = {
    "opentelemetry.sdk": "sdk",
    "opentelemetry.exporter": "otlp",
    "distributed": "dask",
    "dask": "dask",
    "yaml": "web",
    "bcrypt": "web",
}


def _imported_modules(source: str) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            modules.add(node.module)
    return modules


@pytest.mark.parametrize("script", SCRIPTS, ids=[path.name for path in SCRIPTS])
def test_an_example_that_needs_an_extra_says_which(script: Path) -> None:
    """An example importing a package the base install lacks names its extra in its
    docstring, next to how to run it."""
    source = script.read_text(encoding="utf-8")
    docstring = ast.get_docstring(ast.parse(source)) or ""
    needed = {
        extra
        for module in _imported_modules(source)
        for prefix, extra in EXTRAS.items()
        if module == prefix or module.startswith(prefix + ".")
    }
    for extra in sorted(needed):
        assert f"laios[{extra}]" in docstring, (
            f"examples/{script.name} needs laios[{extra}]: its docstring should say so"
        )


def test_the_promised_examples_exist() -> None:
    assert {path.name for path in SCRIPTS} >= EXPECTED
