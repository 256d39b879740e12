"""Running ``laios status`` in-process, for the CLI tests."""

from __future__ import annotations

import pytest

from laios.cli import main


def status_error(url: str, capsys: pytest.CaptureFixture[str]) -> str:
    """Run ``laios status --url URL --timeout 5``, which must fail with exit code 2 and one
    line on stderr; return that line."""
    assert main(["status", "--url", url, "--timeout", "5"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    return line
