"""The mixin's YAML writer: what it writes, PyYAML reads back as the same data."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from laios.mixin._yaml import Commented, dump

#: Any text YAML can hold (not lone surrogates), plus short strings of YAML's own punctuation.
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=80) | st.text(
    "ab: -#{}[]|>'\"\n/", max_size=20
)
SCALARS = st.none() | st.booleans() | st.integers() | TEXT
VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TEXT, children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(VALUES)
def test_dump_reads_back_as_the_same_data(value: Any) -> None:
    """yaml.safe_load(dump(value)) == value for nested dicts, lists and scalars of any text."""
    assert yaml.safe_load(dump(value)) == value


@pytest.mark.parametrize(
    "text", ["yes", "No", "on", "null", "~", "1.5", "0x1f", "2001-12-14", "-1", "a: b", "#x", ""]
)
def test_strings_yaml_would_read_otherwise_are_quoted(text: str) -> None:
    """Words YAML 1.1 reads as booleans, null, numbers or dates stay strings."""
    assert yaml.safe_load(dump({"k": text})) == {"k": text}
    assert dump({"k": text}) != f"k: {text}\n"


def test_names_durations_and_paths_are_plain() -> None:
    """Rule names, durations, paths and URLs are written without quotes, as a person would."""
    value = {"record": "laios:tasks:rate5m", "for": "15m", "path": "/metrics", "url": "https://x/y"}
    assert dump(value) == (
        "record: laios:tasks:rate5m\nfor: 15m\npath: /metrics\nurl: https://x/y\n"
    )


def test_multi_line_strings_are_literal_blocks() -> None:
    """A PromQL expression over several lines is a `|` block, indented under its key."""
    expr = 'sum by (job) (\n  rate(x{a="b"}[5m]))\n'
    assert dump({"expr": expr}) == 'expr: |\n  sum by (job) (\n    rate(x{a="b"}[5m]))\n'


def test_long_prose_is_folded_without_splitting_template_actions() -> None:
    """A long single-line string becomes `>-` lines of at most 100 columns, `{{ ... }}` whole."""
    text = " ".join(["word"] * 30 + ["{{ $labels.instance | humanize }}"] * 5)
    written = dump({"description": text})
    lines = written.splitlines()
    assert lines[0] == "description: >-"
    assert all(len(line) <= 100 for line in lines)
    assert all(line.count("{{") == line.count("}}") for line in lines)
    assert yaml.safe_load(written) == {"description": text}


def test_commented_list_items_get_their_comment_above() -> None:
    """A Commented item is written after `# ` lines, and equals the plain dict."""
    item = Commented("Why this rule.\nSecond line.", record="a:b", expr="x")
    assert item == {"record": "a:b", "expr": "x"}
    assert dump({"rules": [item]}) == (
        "rules:\n  # Why this rule.\n  # Second line.\n  - record: a:b\n    expr: x\n"
    )


def test_other_types_are_refused() -> None:
    """A float (not needed by the mixin, and ambiguous in YAML 1.1) raises TypeError."""
    with pytest.raises(TypeError, match="float"):
        dump({"k": 0.5})
