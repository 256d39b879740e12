"""A secret of several lines (a PEM private key) is scrubbed line by line too.

A parser rejecting a key file quotes the line it stumbled on, and a log may show one line of a
multi-line value: each line of a secret of at least ``MIN_PREFIX_CHARS`` characters is a form
of it, replaced wherever it occurs, as the whole secret is.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from secret_runs import failed_run_text, statuses_at_progress

from laios.execution.redaction import (
    MAX_SECRET_LINES,
    MIN_PREFIX_CHARS,
    REDACTED,
    SecretForms,
    encoded_forms,
    redact,
    scrub,
    scrub_head,
)
from laios.execution.task_context import require_current_task
from laios.tools.base import BaseTool

BODY = [
    "T4fLtG2HHmkrLDkaShWFdg/ePWitmx8C7NsPCvImEMJ39AO3UnOJqyQqtro1MDV0",
    "+9p2GLx19WUYjyvZ6YTQPbgqASWyFDWXCuHxdWOCzuyr0A/WeI4poNyGOxA5yY2P",
    "GhY4ZkJR74ldSe+BqcKyRgCZqlsPt+e3Bf72hKYyoDL490lOytQTq23NTkPnoDK/",
    "J3py8g9kUMDcpb4XgvAoNvmBVkGRs2eCirUQuTgDJgzaV+5N93OjlWckjW2Y732i",
    "DXzI9RgDtPBlpwKyulF/32UwbquhXYDQ0+x5TH5cHGijOwrLl8n3laUw5JwXZvxo",
    "fTrx3mB1ubo9sDmXpC5pgPTiGHR24WW8hXM94v+fxfbM2EmQwXNG+MsxgUkVbbYy",
    "m9AI7HNOu2tfHehG",
]
PEM = "\n".join(["-----BEGIN PRIVATE KEY-----", *BODY, "-----END PRIVATE KEY-----", ""])


def lines_left(text: str) -> list[str]:
    """The lines of the key's body, or any 12 characters of one, found in ``text``."""
    return [
        line[i : i + 12] for line in BODY for i in range(len(line) - 11) if line[i : i + 12] in text
    ]


@pytest.mark.parametrize("index", range(len(BODY)))
def test_a_single_line_of_a_secret_is_scrubbed(index: int) -> None:
    line = BODY[index]
    quoted = f"could not parse line {index + 2}: {line!r}"
    expected = f"could not parse line {index + 2}: '{REDACTED}'"
    assert scrub(quoted, [PEM]) == expected
    assert scrub(quoted, SecretForms([PEM])) == expected
    assert scrub_head(quoted, SecretForms([PEM]), 500) == expected
    assert redact({"note": quoted}, [PEM]) == {"note": expected}


def test_lines_of_a_secret_written_with_carriage_returns_or_indented_are_scrubbed() -> None:
    crlf = PEM.replace("\n", "\r\n")
    indented = "\n".join(f"    {line}" for line in PEM.splitlines())
    for secret in (crlf, indented):
        assert scrub(f"bad base64 in {BODY[3]}", [secret]) == f"bad base64 in {REDACTED}"
        # (a line cut short is a prefix of the line: replaced as a prefix is)
        assert lines_left(scrub(f"near {BODY[2][:20]}…", [secret])) == []


def test_short_lines_and_the_armor_of_a_key_file_are_no_forms() -> None:
    """A line shorter than ``MIN_PREFIX_CHARS`` would mangle ordinary words, and the
    ``-----BEGIN … KEY-----`` lines of a key file name what it is, as every such file does."""
    forms = encoded_forms(PEM)
    assert BODY[0] in forms
    assert "-----BEGIN PRIVATE KEY-----" not in forms
    assert "-----END PRIVATE KEY-----" not in forms
    text = "expected -----BEGIN PRIVATE KEY----- on line 1"
    assert scrub(text, [PEM]) == text
    two = "user\nabcdefg\ncorrect-horse-battery"
    assert "abcdefg"[:MIN_PREFIX_CHARS] not in encoded_forms(two)
    assert "correct-horse-battery" in encoded_forms(two)
    assert scrub("user abcdefg: correct-horse-battery refused", [two]) == (
        f"user abcdefg: {REDACTED} refused"
    )


class ParsesKey(BaseTool):
    name = "parses_key"
    description = "Quotes one line of its private key, as a parser that rejects it does."

    def _execute(self, **kwargs: Any) -> Any:
        line = kwargs["private_key"].splitlines()[3]
        task = require_current_task()
        task.progress(10, f"reading {line}")
        task.checkpoint("parsed", {"line": line})
        if kwargs.get("fail"):
            raise ValueError(f"invalid base64 on line 4: {line!r}")
        return {"last": line}


def test_a_line_of_a_private_key_quoted_by_its_tool_reaches_no_span_and_no_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="laios")
    text = failed_run_text(ParsesKey, {"private_key": PEM}, "ValueError")
    assert "invalid base64 on line 4" in text
    assert lines_left(text) == []
    assert "invalid base64 on line 4" in caplog.text
    assert lines_left(caplog.text) == []
    statuses = statuses_at_progress(ParsesKey, {"private_key": PEM})
    assert statuses
    assert "reading [REDACTED]" in statuses[0]
    assert lines_left(statuses[0]) == []


def test_only_the_first_lines_of_a_secret_of_very_many_are_forms() -> None:
    """Each line costs every text scrubbed a search: a value of thousands of lines (hostile,
    or a file's content) adds the first ``MAX_SECRET_LINES``, as a key file has."""
    many = "\n".join(f"line-{index:06d}-of-the-file" for index in range(5000))
    forms = encoded_forms(many)
    assert "line-000000-of-the-file" in forms
    assert f"line-{MAX_SECRET_LINES - 1:06d}-of-the-file" in forms
    assert f"line-{MAX_SECRET_LINES:06d}-of-the-file" not in forms
    assert len(forms) < MAX_SECRET_LINES + 20
