"""The live view's layout: `laios demo`'s frame and the fitted status fit the screen they get.

A frame is laid out for a width and a height; every line must fit the width (measured in
terminal columns), no more lines than the height may come out, the headline and the addresses
stay on top, and rows that do not fit are counted rather than wrapped or silently lost.
"""

from __future__ import annotations

import os
import re
import shutil
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from laios._demo import _view_addresses, live_frame
from laios._terminal import clip, table_lines, terminal_size, text_width
from laios.cli import _watch_frame, render_status, status_lines

URL = "http://127.0.0.1:8489"
HEADLINE = "laios demo — 12/30 s, 345 tasks, 28.7 tasks/s"
STOP = "q or Ctrl-C to stop"
TOOLS = [
    "batch_import",
    "compute_hash",
    "fetch_fast",
    "fetch_slow",
    "flaky_api",
    "sometimes_hangs",
    "unknown",
]


def _busy(running: int = 9, message: str = "chunk 3/12 of the nightly import") -> dict[str, Any]:
    """A status document of a busy demo: many running tasks, the demo's seven tool rows."""
    return {
        "running": [
            {
                "task_id": f"{index:08x}-93b4-4e0f-9a51-0c2d7b1e4f77",
                "tool": "batch_import",
                "state": "running",
                "elapsed_seconds": 1.25,
                "progress_percent": 40.0,
                "message": message,
            }
            for index in range(running)
        ],
        "running_total": running,
        "tools": [
            {
                "tool": name,
                "total": 123456,
                "outcomes": {
                    "success": 120000,
                    "error": 3000,
                    "timeout": 400,
                    "cancelled": 50,
                    "rejected": 6,
                },
                "error_rate": 0.028,
                "p50_seconds": 0.012,
                "p95_seconds": 1.5,
            }
            for name in TOOLS
        ],
        "workers": 8,
        "busy_workers": 5,
        "queue_depth": 0,
        "abandoned_threads": 2,
    }


def _frame(document: dict[str, Any], width: int, height: int) -> list[str]:
    return live_frame(
        document,
        headline=HEADLINE,
        addresses=_view_addresses(URL, None),
        stop=STOP,
        width=width,
        height=height,
    )


def _assert_fits(lines: list[str], width: int, height: int) -> None:
    assert len(lines) <= height
    assert all(text_width(line) <= width for line in lines), [
        line for line in lines if text_width(line) > width
    ]
    assert all(line.isprintable() for line in lines)


@pytest.mark.parametrize("height", range(5, 11))
def test_a_short_demo_view_gives_up_its_blank_line_before_counts(height: int) -> None:
    """The demo's view on a terminal of 5 to 10 lines: under its headline and three addresses,
    the status counts both tables as soon as there are two lines for it, and keeps a blank line
    above it only while nothing of the counts is left out. On 6 lines it showed a blank line
    and the running tasks' count, and nothing of the tools."""
    lines = _frame(_busy(running=3), 80, height)
    _assert_fits(lines, 80, height)
    status = lines[4:]
    assert "Running tasks (3)" in status
    if height >= 6:
        assert _counted(status, "Tools") == len(TOOLS), lines
    if "" in status:
        assert any(line.startswith("workers: 8") for line in status), lines


def test_the_frame_fits_80_by_24() -> None:
    """At 80x24 a busy demo's frame has at most 24 lines of at most 80 columns."""
    _assert_fits(_frame(_busy(), 80, 24), 80, 24)


def test_the_headline_and_how_to_stop_are_the_first_line_at_80_by_24() -> None:
    """The first line is the headline, with how to stop at its right edge."""
    first = _frame(_busy(), 80, 24)[0]
    assert first.startswith(HEADLINE)
    assert first.endswith(STOP)
    assert len(first) == 80


def test_the_addresses_stay_on_screen_at_80_by_24() -> None:
    """The live page, metrics and status, and the `laios status --watch` line follow the
    headline, whole."""
    lines = _frame(_busy(), 80, 24)
    assert lines[1:4] == [
        f"  Live page:  {URL}/",
        f"  Metrics:    {URL}/metrics and /status",
        f"  Watch:      laios status --url {URL} --watch",
    ]


def test_every_tool_row_and_the_gauges_fit_at_80_by_24() -> None:
    """The demo's seven tool rows, whole, and the gauges line fit under the top lines."""
    lines = _frame(_busy(), 80, 24)
    for name in TOOLS:
        (row,) = [line for line in lines if line.startswith(f"  {name} ")]
        assert row.split()[-3:] == ["2.8%", "12ms", "1.50s"]
    assert lines[-1] == "workers: 8   busy workers: 5   queue depth: 0   abandoned threads: 2"


def test_running_tasks_that_do_not_fit_are_counted_at_80_by_24() -> None:
    """Of nine running tasks, those without room are counted on a "+N more" line."""
    lines = _frame(_busy(running=9), 80, 24)
    shown = [line for line in lines if "[####......]" in line]
    assert 1 <= len(shown) < 9
    assert f"  +{9 - len(shown)} more" in lines


def test_a_long_message_is_cut_not_wrapped() -> None:
    """A message longer than its column ends in "..." on its own row; its end is nowhere."""
    lines = _frame(_busy(running=1, message="x" * 40 + " THE-END"), 80, 24)
    (row,) = [line for line in lines if "[####......]" in line]
    assert row.endswith("...")
    assert not any("THE-END" in line for line in lines)


def test_the_frame_fits_a_small_terminal() -> None:
    """At 64x14 the frame fits; headline, addresses and how to stop are all still there."""
    lines = _frame(_busy(), 64, 14)
    _assert_fits(lines, 64, 14)
    assert lines[0] == HEADLINE
    assert f"  Metrics:    {URL}/metrics and /status" in lines
    assert f"  Watch:      laios status --url {URL} --watch" in lines
    assert f"  Stop:       {STOP}" in lines


def test_a_small_terminal_counts_the_rows_it_leaves_out() -> None:
    """At 64x14 the tool rows and running tasks left out are counted, not dropped silently."""
    lines = _frame(_busy(), 64, 14)
    more = [int(m.group(1)) for line in lines if (m := re.fullmatch(r"  \+(\d+) more", line))]
    tool_rows = [line for line in lines if line.split() and line.split()[0] in TOOLS]
    running_rows = [line for line in lines if "[####......]" in line]
    assert sum(more) == (7 - len(tool_rows)) + (9 - len(running_rows))
    assert len(more) == 2


def test_wide_characters_count_as_two_columns() -> None:
    """Names and messages in wide (CJK) characters still fit the width."""
    document = _busy(running=3, message="数据导入第三批次" * 4)
    document["tools"][0]["tool"] = "导入工具" * 3
    _assert_fits(_frame(document, 80, 24), 80, 24)


@settings(max_examples=60, deadline=None)
@given(width=st.integers(1, 200), height=st.integers(0, 60), running=st.integers(0, 30))
def test_the_frame_never_exceeds_its_screen(width: int, height: int, running: int) -> None:
    """Whatever the size, the frame fits it (down to cut lines on a tiny screen)."""
    _assert_fits(_frame(_busy(running=running), width, height), width, height)


def test_a_fitted_status_shows_short_task_ids() -> None:
    """With a width, running tasks show the first 8 characters of their ids."""
    lines = status_lines(_busy(running=1), width=80)
    assert any(line.startswith("  00000000 ") for line in lines)
    assert not any("-93b4-" in line for line in lines)


def test_the_unfitted_status_is_unchanged_by_a_terminal_size() -> None:
    """`laios status` (no width or height) keeps every column and the whole ids."""
    text = render_status(_busy(running=2))
    assert "00000001-93b4-4e0f-9a51-0c2d7b1e4f77" in text
    header = next(line for line in text.splitlines() if line.startswith("  TOOL"))
    assert header.split()[6] == "REJECT"


def test_the_tool_table_keeps_its_rows_before_running_tasks_do() -> None:
    """When rows must go, the running tasks give theirs up first."""
    lines = status_lines(_busy(running=9), width=80, height=16)
    tool_rows = [line for line in lines if line.split() and line.split()[0] in TOOLS]
    running_rows = [line for line in lines if "[####......]" in line]
    assert len(tool_rows) == 7
    assert f"  +{9 - len(running_rows)} more" in lines
    assert len(running_rows) < 9


def test_a_tool_table_with_no_room_for_rows_counts_them_before_running_tasks_do() -> None:
    """On a screen with room for three lines of tables (a 60x12 terminal under the demo's
    top), the tool table says how many tools it leaves out, and the running tasks keep only
    their title, which counts them: never a bare "Tools" title over nothing."""
    lines = status_lines(_busy(running=3), width=80, height=6)
    assert lines == ["Running tasks (3)", "", "Tools", f"  +{len(TOOLS)} more", "", lines[-1]]
    assert lines[-1].startswith("workers: 8")


def _counted(lines: list[str], title: str) -> int | None:
    """Rows of the section titled ``title`` shown or counted in ``lines``; ``None`` when the
    section is not there."""
    starts = [i for i, line in enumerate(lines) if line == title or line.startswith(title + ":")]
    if not starts:
        return None
    index = starts[0]
    counted = 0
    for line in lines[index:]:
        if line != lines[index] and not line.startswith("  "):
            break  # (the next section, a blank line or the gauges)
        if m := re.search(r"\+(\d+) more$", line):
            counted += int(m.group(1))
        elif re.match(r"  \S+ +\d", line) or "[####......]" in line:
            counted += 1
    return counted


def test_a_short_terminal_gives_up_blank_lines_before_counts() -> None:
    """With five lines for the status (`laios status --watch` in a 40x10 terminal), both
    tables keep their "+N more" lines: the blank lines between them go instead."""
    lines = status_lines(_busy(running=3), width=40, height=5)
    assert lines[:4] == ["Running tasks (3)", "  +3 more", "Tools", f"  +{len(TOOLS)} more"]
    assert lines[4].startswith("workers: 8")


def test_a_tool_table_with_one_line_counts_its_rows_on_it() -> None:
    """With three lines for the status (a 40x8 terminal), the tool table says how many rows
    it leaves out on its title line."""
    lines = status_lines(_busy(running=3), width=40, height=3)
    assert lines[:2] == ["Running tasks (3)", f"Tools: +{len(TOOLS)} more"]


@pytest.mark.parametrize(("width", "height"), [(40, 10), (40, 8), (40, 7), (60, 14), (80, 24)])
def test_a_watched_status_counts_every_row_it_leaves_out(width: int, height: int) -> None:
    """`laios status --watch` on a small terminal: a table it shows counts the rows it
    leaves out."""
    frame = _watch_frame(_busy(running=3), URL, "", 1.0, os.terminal_size((width, height)))
    lines = frame.splitlines()
    assert _counted(lines, "Tools") == len(TOOLS)
    assert "Running tasks (3)" in lines


@pytest.mark.parametrize("width", [40, 80])
@pytest.mark.parametrize("height", range(4, 11))
def test_a_short_watched_terminal_gives_up_blank_lines_and_footer_before_counts(
    width: int, height: int
) -> None:
    """`laios status --watch` in a terminal of 4 to 10 lines: under its title, both tables
    count their rows (the tools before the gauges and the footer), and no line is left blank
    while one of them is left out. A terminal of 5 to 7 lines showed the title, a blank line,
    the running tasks' count, a blank line and the footer, and nothing of the tools."""
    size = os.terminal_size((width, height))
    lines = _watch_frame(_busy(running=3), URL, "", 1.0, size).splitlines()
    assert len(lines) <= height - 1
    assert lines[0].startswith("laios status - ")
    assert "Running tasks (3)" in lines
    assert _counted(lines, "Tools") == len(TOOLS), lines
    has_gauges = any(line.startswith("workers: 8") for line in lines)
    has_footer = lines[-1].startswith("refreshing every")
    if "" in lines or height >= 6:
        assert has_gauges, lines
        assert has_footer, lines


@pytest.mark.parametrize("height", range(1, 30))
@pytest.mark.parametrize("running", [0, 1, 3, 9])
def test_a_table_shown_always_counts_its_rows(height: int, running: int) -> None:
    """Whatever the height, the tool table, when there, shows or counts every tool, and the
    running tasks shown with rows or a "+N more" line add up to all of them."""
    lines = status_lines(_busy(running=running), width=40, height=height)
    assert _counted(lines, "Tools") in (None, len(TOOLS))
    shown = _counted(lines, f"Running tasks ({running})")
    assert shown in (0, running)  # (0: the title alone, which counts them)


@pytest.mark.parametrize(
    ("given", "used"),
    [((0, 0), (80, 24)), ((0, 50), (80, 50)), ((132, 0), (132, 24)), ((100, 30), (100, 30))],
)
def test_a_size_of_0_is_unknown_and_falls_back_to_80_by_24(
    given: tuple[int, int], used: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A terminal that says 0 columns or 0 lines (Python 3.10's answer for a pseudo-terminal
    whose size was never set) is drawn at 80 columns or 24 lines; a size it gives is kept."""
    monkeypatch.setattr(shutil, "get_terminal_size", lambda *_, **__: os.terminal_size(given))
    assert tuple(terminal_size()) == used


def test_clip_marks_text_it_cuts() -> None:
    """Cut text ends in "..." and takes exactly the width; text that fits is left alone."""
    assert clip("page 3 of 6", 11) == "page 3 of 6"
    assert clip("page 3 of 6", 8) == "page ..."
    assert clip("日本語のテキスト", 9) == "日本語..."


@given(text=st.text(alphabet=st.characters(codec="utf-8", categories=["L", "N", "M", "Zs"])))
def test_clip_never_exceeds_the_width(text: str) -> None:
    """Any printable text, wide and combining characters included, is cut to the width."""
    for width in (0, 1, 3, 4, 10):
        assert text_width(clip(text, width)) <= width


def test_text_width_counts_wide_and_combining_characters() -> None:
    """Wide characters take two columns, combining marks none."""
    assert text_width("abc") == 3
    assert text_width("日本") == 4
    assert text_width("e\u0301") == 1


def test_a_table_first_narrows_its_gaps() -> None:
    """A table slightly too wide keeps all columns, one space apart."""
    lines = table_lines(["NAME", "COUNT"], [["alpha", "1"]], right={1}, width=13)
    assert lines == ["  NAME  COUNT", "  alpha     1"]


def test_a_table_gives_up_columns_in_the_order_asked() -> None:
    """Still too wide, it leaves out the columns its steps name, in their order."""
    header = ["NAME", "A", "B", "C"]
    rows = [["alpha", "1111", "2222", "3333"]]
    lines = table_lines(header, rows, width=17, steps=[(2, 0), (1, 0)])
    assert lines == ["  NAME  A    C", "  alpha 1111 3333"]


def test_a_table_narrows_a_column_only_as_much_as_needed() -> None:
    """Narrowing a column takes off just the columns that are over the width."""
    lines = table_lines(["NAME", "N"], [["a-long-name", "1"]], width=12, steps=[(0, 4)])
    assert lines == ["  NAME     N", "  a-lon... 1"]


@pytest.mark.parametrize("width", [0, 1, 2])
def test_a_table_on_a_tiny_screen_is_cut(width: int) -> None:
    """A table that cannot fit even after its steps has its lines cut to the width."""
    lines = table_lines(["NAME"], [["alpha"]], width=width)
    assert all(text_width(line) <= width for line in lines)


@pytest.mark.parametrize("width", [None, 80])
def test_a_reduced_status_says_its_running_tasks_are_not_listed(width: int | None) -> None:
    """A reduced /status counts running tasks without listing them; no "+N more" is shown."""
    document = {**_busy(running=0), "running_total": 3, "detail": "reduced"}
    lines = status_lines(document, width=width, height=None if width is None else 24)
    assert lines[:2] == [
        "Running tasks (3)",
        "  (not listed: this endpoint serves a reduced /status)",
    ]
    assert not any(line.endswith(" more") for line in lines)
