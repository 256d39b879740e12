"""laios as a typed dependency: documented user code passes ``mypy --strict`` and runs.

tests/unit/typing_cases/user_code.py is a user's module written against the public API as the
docs write it, and examples/ holds the scripts the manual points users to. Each is type-checked
the way a service's own CI would (strict, no pydantic plugin, laios read from this checkout's
``src`` like an installed package with ``py.typed``); another test runs user_code.py, so the
cases stay real, working code (tests/unit/test_examples.py runs the examples).
"""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest
from _scripts import ROOT

CASES = Path(__file__).parent / "typing_cases" / "user_code.py"
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


@pytest.fixture(scope="module")
def mypy_strict(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A strict mypy configuration reading laios from ``src``, and a cache the runs share."""
    pytest.importorskip("mypy.api")
    scratch = tmp_path_factory.mktemp("mypy")
    config = scratch / "mypy.ini"
    # The OpenTelemetry SDK's own annotations vary across the versions laios allows (1.25
    # leaves TracerProvider.shutdown untyped): a call into it is not the code under test.
    config.write_text(
        f"[mypy]\nstrict = True\nmypy_path = {ROOT / 'src'}\n"
        "untyped_calls_exclude = opentelemetry.sdk\n",
        encoding="utf-8",
    )
    return config, scratch / "cache"


def _check(paths: list[Path], setup: tuple[Path, Path]) -> tuple[int, str]:
    """Run ``mypy --strict`` over ``paths``; return its exit status and what it said."""
    from mypy import api

    config, cache = setup
    stdout, stderr, status = api.run(
        [
            "--config-file",
            str(config),
            "--cache-dir",
            str(cache),
            "--no-error-summary",
            "--show-error-codes",
            *map(str, paths),
        ]
    )
    return status, stdout + stderr


def test_user_code_passes_mypy_strict(mypy_strict: tuple[Path, Path]) -> None:
    """The documented usages in typing_cases/user_code.py type-check under mypy --strict."""
    status, said = _check([CASES], mypy_strict)
    assert status == 0, f"mypy --strict rejected documented user code:\n{said}"


def test_examples_pass_mypy_strict(mypy_strict: tuple[Path, Path]) -> None:
    """The scripts in examples/ type-check under mypy --strict, as users copy them."""
    assert EXAMPLES, "no examples found"
    status, said = _check(EXAMPLES, mypy_strict)
    assert status == 0, f"mypy --strict rejected the examples:\n{said}"


def test_user_code_runs() -> None:
    """The type-checked user code also runs: each case is real code, not a typing sketch."""
    said = runpy.run_path(str(CASES))["main"]()
    assert said == [
        "2 apple",
        "failed: \"unknown item 'kiwi'\"",
        "loaded",
        "started loaded totals finished",
        "1 fig",
        "1 fig",
        "loaded",
        "read",
        "read",
        "lookup: data",
        "summarise: data",
        "<html from https://example.org>",
        "42",
        "1 pear",
        "reserve load",
        "reserve load",
        "in_progress 10",
        "75 10",
        "66.7 0.75",
    ]
