"""The ``--help`` of ``laios status`` and ``laios demo`` says what docs/cli.md says: the same
option names and value placeholders, and the facts an operator needs at the prompt."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from laios.cli import build_parser

PAGE = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


def _help(command: str) -> str:
    parser = build_parser()
    subcommands = next(action for action in parser._actions if action.dest == "command")
    return " ".join(subcommands.choices[command].format_help().split())


def _documented_options(command: str) -> list[str]:
    """The first column of the options table in ``command``'s section, e.g. ``--interval S``."""
    page = PAGE.read_text(encoding="utf-8")
    section = page.split(f"## `laios {command}`", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `(--[a-z-]+(?: [A-Z]+)?)`", section, flags=re.MULTILINE)


@pytest.mark.parametrize("command", ["status", "demo"])
def test_every_documented_option_is_in_the_help_as_written(command: str) -> None:
    """Each option of the docs' table (``--timeout S``, ``--port P``) is in ``--help`` with
    the same placeholder."""
    documented = _documented_options(command)
    assert len(documented) >= 4
    text = _help(command)
    assert [option for option in documented if f"[{option}]" not in text] == []


def test_the_demo_usage_line_of_the_docs_is_the_helps() -> None:
    """The usage block under ``laios demo`` is what ``laios demo --help`` prints."""
    page = PAGE.read_text(encoding="utf-8")
    block = page.split("## `laios demo`", 1)[1].split("```", 2)[1]
    documented = " ".join(block.split())
    assert documented in _help("demo").replace("[-h] ", "")


@pytest.mark.parametrize(
    ("command", "phrase"),
    [
        ("status", "/status is added"),
        ("status", "exit code 2"),
        ("demo", "0 picks a free one"),
        ("demo", "laios[demo]"),
    ],
)
def test_the_help_says_what_an_operator_needs_at_the_prompt(command: str, phrase: str) -> None:
    """Facts of docs/cli.md an operator needs without the docs: what --url takes, the exit
    code when nothing answers, --port 0, the extra --console-spans needs."""
    assert phrase in _help(command)


def test_the_docs_show_what_a_bare_laios_prints_and_its_exit_code(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`laios` without a command: the page shows its output (the usage, on stderr) line for
    line, and says it exits with code 2."""
    from laios.cli import main

    monkeypatch.setenv("COLUMNS", "80")
    assert main([]) == 2
    printed = capsys.readouterr()
    assert printed.out == ""
    page = PAGE.read_text(encoding="utf-8")
    block = page.split("```console\n$ laios\n", 1)[1].split("```", 1)[0]
    assert block.splitlines() == printed.err.splitlines()
    intro = page.split("\n## ", 1)[0]
    assert "exit code 2" in " ".join(intro.split())


def test_the_demo_help_says_a_closed_terminal_ends_with_exit_code_1() -> None:
    """`laios demo` stopped by a SIGHUP sent to it (`kill -HUP`) exits 0, but closing its
    terminal, which sends the same SIGHUP, leaves the summary nowhere to be written: exit
    code 1. The help says both, as docs/cli.md does."""
    codes = _help("demo").split("Exit codes:", 1)[1]
    zero, one = codes.split("; 1 ", 1)
    assert "SIGHUP" in zero
    assert "terminal" not in zero
    assert "terminal was closed" in one
    page = " ".join(PAGE.read_text(encoding="utf-8").split())
    assert "but 1 when SIGHUP came because its terminal was closed" in page
