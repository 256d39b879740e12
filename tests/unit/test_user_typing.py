"""laios as a typed dependency: documented user code passes ``mypy --strict`` and runs.

tests/unit/typing_cases/user_code.py is a user's module written against the public API as the
docs write it. One mypy run checks it the way a service's own CI would (strict, no pydantic
plugin, laios read from this checkout's ``src`` like an installed package with ``py.typed``);
another test runs it, so the cases stay real, working code.
"""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest
from _scripts import ROOT

CASES = Path(__file__).parent / "typing_cases" / "user_code.py"


def test_user_code_passes_mypy_strict(tmp_path: Path) -> None:
    """The documented usages in typing_cases/user_code.py type-check under mypy --strict."""
    api = pytest.importorskip("mypy.api")
    config = tmp_path / "mypy.ini"
    config.write_text(f"[mypy]\nstrict = True\nmypy_path = {ROOT / 'src'}\n", encoding="utf-8")
    stdout, stderr, status = api.run(
        [
            "--config-file",
            str(config),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--no-error-summary",
            "--show-error-codes",
            str(CASES),
        ]
    )
    assert status == 0, f"mypy --strict rejected documented user code:\n{stdout}{stderr}"


def test_user_code_runs() -> None:
    """The type-checked user code also runs: each case is real code, not a typing sketch."""
    said = runpy.run_path(str(CASES))["main"]()
    assert said == [
        "2 apple",
        "failed: \"unknown item 'kiwi'\"",
        "loaded",
        "started loaded totals finished",
        "read",
        "read",
    ]
