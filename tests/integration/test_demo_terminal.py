"""`laios demo` in a real terminal: tmux runs it in detached 80x24 sessions.

Three demos run at once, each in its own session of a private tmux server: one for a fixed
duration (its screen is read twice while it runs, then its scrollback once it has ended), one
stopped with Ctrl-C and one stopped with q. The fixture records what the screens showed; the
tests check it. Without tmux the tests are skipped, unless ``LAIOS_REQUIRE_TMUX=1`` is set (as in
CI): then they fail (Debian: apt-get install tmux).
"""

from __future__ import annotations

import re
import shlex
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
from tmux_support import COLUMNS, LINES, private_tmux

pytestmark = pytest.mark.integration

#: How long the timed demo runs.
DURATION = 6
#: How long the demos stopped by a key may run before that is a failure.
LONG = 60
HEADLINE = re.compile(r"laios demo — (\d+)/?\S* s, (\d+) tasks, [\d.]+ tasks/s")
#: A tool row ends with its p95: a duration, or "-".
TOOL_ROW = re.compile(r"  [a-z_]+ +\d+ .*(\d+us|\d+ms|\d+\.\d\ds|\d+m\d\ds|-)")


@dataclass
class Observed:
    """What one session showed."""

    frames: list[list[str]] = field(default_factory=list)
    history: list[str] = field(default_factory=list)
    flags_during: str = ""
    flags_after: str = ""
    seconds_after_key: float | None = None


def _until(probe: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if probe():
            return True
        time.sleep(0.2)
    return False


def _is_view(lines: list[str]) -> bool:
    return bool(lines) and HEADLINE.match(lines[0]) is not None and "Tools" in lines


def _ended(lines: list[str]) -> bool:
    return any(line.startswith("[exit ") for line in lines)


def _command(*options: str) -> str:
    """A shell command: the demo, then whether the terminal's modes came back, and its code."""
    demo = shlex.join([sys.executable, "-m", "laios.cli", "demo", "--port", "0", *options])
    return (
        f'before=$(stty -g); {demo}; code=$?; [ "$before" = "$(stty -g)" ] && echo "[tty same]";'
        ' echo "[exit $code]"; exec sleep 600'
    )


@pytest.fixture(scope="module")
def sessions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Observed]]:
    """Run the three demos and record their screens."""
    seen = {name: Observed() for name in ("timed", "ctrl_c", "q")}
    with private_tmux(tmp_path_factory.mktemp("tmux") / "socket") as tmux:
        tmux.start("timed", _command("--duration", str(DURATION)))
        tmux.start("ctrl_c", _command())
        tmux.start("q", _command("--duration", str(LONG)))
        if _until(lambda: _is_view(tmux.screen("timed")), 20):
            first = tmux.screen("timed")
            seen["timed"].frames.append(first)
            seen["timed"].flags_during = tmux.flags("timed")
            # The next frame with other numbers (a frame a second: allow several).
            if _until(lambda: tmux.screen("timed")[0] != first[0], 5):
                seen["timed"].frames.append(tmux.screen("timed"))
        for name, key in (("ctrl_c", "C-c"), ("q", "q")):
            if _until(lambda name=name: _is_view(tmux.screen(name)), 20):
                seen[name].frames.append(tmux.screen(name))
                tmux("send-keys", "-t", name, key)
                pressed = time.monotonic()
                if _until(lambda name=name: _ended(tmux.screen(name)), 30):
                    seen[name].seconds_after_key = time.monotonic() - pressed
        _until(lambda: _ended(tmux.screen("timed")), DURATION + 30)
        for name, observed in seen.items():
            observed.history = tmux.history(name)
            observed.flags_after = tmux.flags(name)
        yield seen


def _port(frame: list[str]) -> str:
    match = re.search(r"http://127\.0\.0\.1:(\d+)/metrics", "\n".join(frame))
    assert match, frame
    return match.group(1)


def test_the_view_starts_with_the_headline_and_how_to_stop(sessions: dict[str, Observed]) -> None:
    """The first line of the 80x24 screen is the headline, with "Ctrl-C to stop" at its right."""
    first = sessions["timed"].frames[0]
    assert HEADLINE.match(first[0]), first
    assert first[0].endswith("Ctrl-C to stop")


def test_the_view_shows_the_addresses(sessions: dict[str, Observed]) -> None:
    """Under the headline: the live page, the metrics and status URLs and the
    `laios status --watch` line."""
    first = sessions["timed"].frames[0]
    url = f"http://127.0.0.1:{_port(first)}"
    assert first[1:4] == [
        f"  Live page:  {url}/",
        f"  Metrics:    {url}/metrics and /status",
        f"  Watch:      laios status --url {url} --watch",
    ]


def test_the_view_shows_whole_tables_within_24_lines(sessions: dict[str, Observed]) -> None:
    """The running tasks and every tool row appear unwrapped, and the gauges line (the last
    one of the view) is still on the 24-line screen. (A frame drawn before the first task
    finished says so in place of the table: a slow machine may show one first.)"""
    frames = sessions["timed"].frames
    with_table = [f for f in frames if "Tools" in f and "(no " not in f[f.index("Tools") + 1]]
    assert with_table, frames
    frame = with_table[0]
    assert len(frame) <= LINES
    assert all(len(line) <= COLUMNS for line in frame)
    assert any(line.startswith("Running tasks (") for line in frame)
    header = frame.index("Tools") + 1
    assert frame[header].split()[:2] == ["TOOL", "TOTAL"]
    assert frame[header].split()[-1] == "P95"
    rows = frame[header + 1 : frame.index("", header)]
    assert rows
    assert all(TOOL_ROW.fullmatch(row) for row in rows), rows
    assert any(
        re.match(r"workers: 8   busy workers: \d+   queue depth: \d+   abandoned", line)
        for line in frame
    )


def test_the_view_is_on_the_alternate_screen(sessions: dict[str, Observed]) -> None:
    """While the view runs the pane is on the alternate screen (whose lines never reach the
    scrollback), with the cursor hidden and line wrapping off."""
    assert sessions["timed"].flags_during == "100"


def test_the_view_updates_its_numbers(sessions: dict[str, Observed]) -> None:
    """A later capture of the screen shows a later time and more tasks."""
    frames = sessions["timed"].frames
    assert len(frames) == 2, "the headline did not change within 5 s"
    before, after = (HEADLINE.match(frame[0]) for frame in frames)
    assert before
    assert after
    assert int(after.group(1)) > int(before.group(1))
    assert int(after.group(2)) > int(before.group(2))


def test_the_scrollback_holds_the_banner_and_one_summary_and_no_frames(
    sessions: dict[str, Observed],
) -> None:
    """After the timed demo: the banner, then a single headline (the summary's), no frame."""
    history = sessions["timed"].history
    assert "[exit 0]" in history
    assert sum(1 for line in history if HEADLINE.match(line)) == 1
    assert sum(1 for line in history if line.startswith("Running tasks (")) == 1
    assert sum(1 for line in history if line.startswith("  Metrics:")) == 1
    banner = next(i for i, line in enumerate(history) if line.startswith("laios demo: serving"))
    summary = next(i for i, line in enumerate(history) if HEADLINE.match(line))
    assert banner < summary
    assert re.match(r"laios demo — \d+ s, ", history[summary])
    assert "laios demo: done." in history[summary:]


def test_the_summary_fits_80_columns(sessions: dict[str, Observed]) -> None:
    """The summary's tool table is fitted to the terminal: its rows are not wrapped."""
    history = sessions["timed"].history
    summary = next(i for i, line in enumerate(history) if HEADLINE.match(line))
    header = history.index("Tools", summary) + 1
    rows = history[header + 1 : history.index("", header)]
    assert rows
    assert all(TOOL_ROW.fullmatch(row) for row in rows), rows


@pytest.mark.parametrize("name", ["timed", "ctrl_c", "q"])
def test_the_terminal_is_given_back(sessions: dict[str, Observed], name: str) -> None:
    """However the demo ends, the terminal's modes are as before, the normal screen is back,
    with the cursor shown and line wrapping on."""
    history = sessions[name].history
    assert "[tty same]" in history, history[-20:]
    assert sessions[name].flags_after == "011"


@pytest.mark.parametrize("name", ["ctrl_c", "q"])
def test_a_key_stops_the_demo_with_a_summary(sessions: dict[str, Observed], name: str) -> None:
    """Ctrl-C, or q, ends the demo within seconds, with exit code 0 and the summary."""
    observed = sessions[name]
    assert observed.seconds_after_key is not None
    assert observed.seconds_after_key < 20
    assert "[exit 0]" in observed.history
    assert sum(1 for line in observed.history if HEADLINE.match(line)) == 1
    assert "laios demo: done." in observed.history
