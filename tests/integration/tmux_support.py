"""Shared by the tests that run a command in a real terminal: a private tmux server whose
detached sessions have the size the test asks for.

Without tmux those tests are skipped, unless ``LAIOS_REQUIRE_TMUX=1`` is set (as in CI): then
they fail (Debian: apt-get install tmux).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

COLUMNS, LINES = 80, 24


def tmux_binary() -> str:
    """The path of tmux; skip (or fail under LAIOS_REQUIRE_TMUX=1) without it."""
    path = shutil.which("tmux")
    if path is not None:
        return path
    reason = "tmux is not installed (Debian: apt-get install tmux)"
    if os.environ.get("LAIOS_REQUIRE_TMUX") == "1":
        pytest.fail(f"{reason}, and LAIOS_REQUIRE_TMUX=1 requires it")
    pytest.skip(reason)


@dataclass
class Tmux:
    """A private tmux server (its own socket, no configuration file)."""

    binary: str
    socket: Path
    env: dict[str, str]

    def __call__(self, *args: str) -> str:
        done = subprocess.run(
            [self.binary, "-u", "-S", str(self.socket), "-f", "/dev/null", *args],
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="replace",
            env=self.env,
            timeout=20,
            check=True,
        )
        return done.stdout

    def start(self, name: str, command: str) -> None:
        """Run ``command`` in a new detached COLUMNS x LINES session."""
        self("new-session", "-d", "-s", name, "-x", str(COLUMNS), "-y", str(LINES), command)

    def screen(self, name: str) -> list[str]:
        """The visible lines of the session's pane."""
        return self("capture-pane", "-p", "-t", name).splitlines()

    def unwrapped_screen(self, name: str) -> list[str]:
        """The visible lines of the pane, each line the terminal wrapped joined again (a line
        longer than the pane's width shows as one)."""
        return self("capture-pane", "-p", "-J", "-t", name).splitlines()

    def history(self, name: str) -> list[str]:
        """Everything the pane holds: its scrollback, then the visible lines."""
        return self("capture-pane", "-p", "-S", "-", "-t", name).splitlines()

    def flags(self, name: str) -> str:
        """Whether the pane is on the alternate screen, shows the cursor and wraps lines."""
        return self(
            "display-message", "-p", "-t", name, "#{alternate_on}#{cursor_flag}#{wrap_flag}"
        ).strip()


@contextlib.contextmanager
def private_tmux(socket: Path) -> Iterator[Tmux]:
    """A private tmux server on ``socket`` for the commands of a test: a UTF-8 locale, none of
    the caller's OTEL_ or TMUX settings; the server is killed on leaving."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TMUX"))}
    env["LANG"] = "C.UTF-8"
    tmux = Tmux(tmux_binary(), socket, env)
    try:
        yield tmux
    finally:
        subprocess.run(
            [tmux.binary, "-S", str(tmux.socket), "kill-server"], capture_output=True, check=False
        )
