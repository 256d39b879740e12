"""Running ``laios status`` in-process, for the CLI tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from laios.cli import main


def status_error(url: str, capsys: pytest.CaptureFixture[str]) -> str:
    """Run ``laios status --url URL --timeout 5``, which must fail with exit code 2 and one
    line on stderr; return that line."""
    assert main(["status", "--url", url, "--timeout", "5"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    return line


def interrupting_sleep(pauses: int) -> tuple[Callable[[float], None], list[float]]:
    """A ``sleep`` for ``--watch`` (``watch_status(sleep=...)``, or ``cli.time``'s) that keeps
    each pause it is asked for and raises ``KeyboardInterrupt`` at the ``pauses``-th, which
    ends the watch as Ctrl-C does; and the list of the pauses."""
    taken: list[float] = []

    def sleep(seconds: float) -> None:
        taken.append(seconds)
        if len(taken) == pauses:
            raise KeyboardInterrupt

    return sleep, taken
