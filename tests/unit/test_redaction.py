"""laios.execution.redaction: keeping secrets and oversized values out of telemetry."""

from __future__ import annotations

import json
from typing import Any

import pytest

from laios.execution.redaction import (
    MAX_ERROR_BYTES,
    MAX_STRING_CHARS,
    MAX_VALUE_BYTES,
    REDACTED,
    is_secret_key,
    redact,
    scrub,
    secret_values,
    to_json,
    truncate_bytes,
)


@pytest.mark.parametrize(
    "key",
    [
        "api_key",
        "API_KEY",
        "token",
        "access_token",
        "secret",
        "client_secret",
        "password",
        "passwd",
        "Authorization",
        "cookie",
        "credentials",
        "session_id",
        "sessionid",
        "private_key",
    ],
)
def test_secret_looking_keys(key: str) -> None:
    """Keys naming credentials are recognised as secret."""
    assert is_secret_key(key)


@pytest.mark.parametrize(
    "key",
    [
        "passcode",
        "admin_passcode",
        "connection_string",
        "ConnectionString",
        "db_connection_string",
        "conn_str",
        "conn_string",
        "connStr",
        "AZURE_STORAGE_CONNECTION_STRING",
    ],
)
def test_passcodes_and_connection_strings_are_secret(key: str) -> None:
    """A passcode, and a connection string (which carries the database's or the storage
    account's password or key in it), are secret too."""
    assert is_secret_key(key)


@pytest.mark.parametrize("key", ["connection", "connections", "string", "construct", "constr"])
def test_words_near_connection_strings_are_not_secret(key: str) -> None:
    """Only the connection string's own names are secret, not words that share its parts."""
    assert not is_secret_key(key)


@pytest.mark.parametrize("key", ["path", "query", "count", "user", "text", 42, None])
def test_ordinary_keys_are_not_secret(key: Any) -> None:
    """Ordinary names (and non-strings) are not secret."""
    assert not is_secret_key(key)


def test_bytes_keys_naming_credentials_are_secret() -> None:
    """Headers kept with bytes keys (b"Authorization") are read like string keys: their
    values are secret values and are redacted from captured arguments."""
    params = {"headers": {b"Authorization": b"Bearer sk-live-123456789", b"Accept": b"*/*"}}
    assert is_secret_key(b"Authorization")
    assert is_secret_key(bytearray(b"X-Api-Key"))
    assert "sk-live-123456789" in secret_values(params)
    captured = json.loads(to_json(params, secrets=secret_values(params)))
    assert captured == {"headers": {"b'Authorization'": REDACTED, "b'Accept'": "b'*/*'"}}


def test_secret_values_collects_values_under_secret_keys_at_any_depth() -> None:
    """secret_values finds values under secret keys in nested dicts and lists, longest first."""
    params = {
        "query": "hello",
        "api_key": "sk-1234567890",
        "nested": {"headers": {"Authorization": "Bearer abcdef123"}},
        "items": [{"password": "hunter22"}],
    }
    found = secret_values(params)
    assert "sk-1234567890" in found
    assert "Bearer abcdef123" in found
    assert "abcdef123" in found
    assert "hunter22" in found
    assert "hello" not in found
    assert found == sorted(found, key=len, reverse=True)


def test_secret_values_skips_very_short_values() -> None:
    """Values shorter than four characters are not collected alone (they would mangle text),
    only as written as the value of their name (``token=abc``, ``'token': 'abc'``)."""
    found = secret_values({"token": "abc"})
    assert "abc" not in found
    assert "token=abc" in found
    # (the name also in the letter cases a text commonly writes it in: TOKEN=abc, Token: abc)
    names = ("token", "'token'", '"token"')
    assert all(form.lower().startswith(names) for form in found)


def test_secret_values_of_a_non_mapping() -> None:
    """A value with no keys holds no secrets."""
    assert secret_values("plain text") == []
    assert secret_values(None) == []


def test_secret_values_includes_numbers_and_bytes() -> None:
    """Numeric and bytes values under secret keys are collected as text."""
    found = secret_values({"pin_secret": 98765, "key": b"bytes-secret"})
    assert "98765" in found
    assert "bytes-secret" in found


def test_scrub_replaces_every_occurrence() -> None:
    """scrub replaces each secret wherever it appears in the text."""
    text = "login failed for sk-123456 (token sk-123456 rejected)"
    assert scrub(text, ["sk-123456"]) == (
        f"login failed for {REDACTED} (token {REDACTED} rejected)"
    )


def test_scrub_truncates_to_the_byte_limit() -> None:
    """scrub cuts long text to MAX_ERROR_BYTES bytes by default; limit=None keeps it all."""
    text = "x" * (MAX_ERROR_BYTES * 3)
    assert len(scrub(text, []).encode()) <= MAX_ERROR_BYTES
    assert scrub(text, [], limit=None) == text


def test_scrub_handles_a_long_secret_before_its_prefix() -> None:
    """With secrets longest first, a secret containing a shorter one is fully removed."""
    secrets = secret_values({"token": "Bearer abcdefgh", "key": "abcd"})
    assert scrub("header Bearer abcdefgh", secrets) == f"header {REDACTED}"


def test_redact_replaces_secret_keys_and_keeps_the_rest() -> None:
    """redact returns a copy with secret values replaced and other values kept."""
    value = {"path": "/tmp/a", "api_key": "sk-1", "opts": {"password": "p", "n": 3}}
    assert redact(value) == {
        "path": "/tmp/a",
        "api_key": REDACTED,
        "opts": {"password": REDACTED, "n": 3},
    }
    assert value["api_key"] == "sk-1"


def test_redact_cuts_long_strings() -> None:
    """Strings longer than MAX_STRING_CHARS are cut and marked with an ellipsis."""
    out = redact("y" * (MAX_STRING_CHARS * 2))
    assert len(out) == MAX_STRING_CHARS
    assert out.endswith("…")


def test_redact_turns_sequences_into_lists_and_objects_into_repr() -> None:
    """Tuples and sets become lists; non-JSON objects become their repr."""

    class Thing:
        def __repr__(self) -> str:
            return "<Thing>"

    assert redact((1, 2)) == [1, 2]
    assert redact({"t": Thing()}) == {"t": "<Thing>"}
    assert redact(None) is None
    assert redact(True) is True


def test_redact_limits_nesting_depth() -> None:
    """Nesting deeper than eight levels is replaced by an ellipsis."""
    value: Any = "bottom"
    for _ in range(20):
        value = {"level": value}
    text = json.dumps(redact(value), ensure_ascii=False)
    assert "bottom" not in text
    assert "…" in text


def test_to_json_is_compact_redacted_json() -> None:
    """to_json renders the redacted value as compact JSON."""
    text = to_json({"q": "hi", "token": "abcdef"})
    assert json.loads(text) == {"q": "hi", "token": REDACTED}
    assert " " not in text


def test_to_json_respects_the_byte_limit() -> None:
    """to_json output never exceeds its byte limit (MAX_VALUE_BYTES by default)."""
    big = {f"k{i}": "v" * 200 for i in range(100)}
    assert len(to_json(big).encode()) <= MAX_VALUE_BYTES
    assert len(to_json(big, limit=100).encode()) <= 100


def test_to_json_of_unserialisable_values() -> None:
    """Values json cannot handle are rendered through repr, never raising."""
    text = to_json({"n": float("nan"), "obj": object()})
    assert isinstance(text, str)


def test_truncate_bytes_keeps_short_text() -> None:
    """Text within the limit is returned unchanged."""
    assert truncate_bytes("short", 100) == "short"


def test_truncate_bytes_marks_the_cut() -> None:
    """Longer text is cut to the byte limit and ends with the truncation marker."""
    out = truncate_bytes("a" * 500, 100)
    assert len(out.encode()) <= 100
    assert out.endswith("[truncated]")


def test_truncate_bytes_never_splits_a_character() -> None:
    """Multi-byte characters are never cut in half."""
    out = truncate_bytes("é" * 300, 101)
    assert len(out.encode("utf-8")) <= 101
    out.encode("utf-8").decode("utf-8")
    assert set(out.removesuffix("…[truncated]")) == {"é"}


@pytest.mark.parametrize("limit", [0, 3, 13])
def test_truncate_bytes_with_a_limit_below_the_marker(limit: int) -> None:
    """Even a limit smaller than the marker is never exceeded."""
    assert len(truncate_bytes("abcdef" * 10, limit).encode("utf-8")) <= limit


def test_to_json_with_a_limit_below_the_marker() -> None:
    """to_json never exceeds a small limit either."""
    assert len(to_json({"a": "x" * 100}, limit=5).encode("utf-8")) <= 5


@pytest.mark.parametrize(
    "value",
    [
        {f"field_{i}": "w" * 200 for i in range(100)},
        [{"name": "é" * 200, "n": i} for i in range(200)],
        list(range(5_000)),
        {"outer": {"inner": ["ü" * 250] * 100}},
    ],
    ids=["mapping", "multibyte-records", "ints", "nested"],
)
def test_a_cut_capture_is_still_valid_json(value: Any) -> None:
    """A capture cut at the byte budget parses as JSON, within the budget, and marks where it
    was cut with a "…" item."""
    text = to_json(value)
    assert len(text.encode("utf-8")) <= MAX_VALUE_BYTES
    parsed = json.loads(text)
    assert "…" in json.dumps(parsed, ensure_ascii=False)
    assert len(text.encode("utf-8")) > MAX_VALUE_BYTES // 2  # most of the budget is used


def _strict_json(text: str) -> Any:
    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_to_json_writes_non_finite_numbers_as_strings() -> None:
    """NaN and the infinities become strings: the capture stays strict JSON a backend parses."""
    text = to_json({"n": float("nan"), "i": [float("inf"), float("-inf")]})
    assert _strict_json(text) == {"n": "NaN", "i": ["Infinity", "-Infinity"]}


def test_a_binary_secret_is_scrubbed_in_its_repr() -> None:
    """Bytes that are not UTF-8 under a secret key are scrubbed as repr writes them."""
    key = bytes(range(0x80, 0xA0))
    text = scrub(f"signing failed for {{'hmac_key': {key!r}}}", secret_values({"hmac_key": key}))
    assert text == "signing failed for {'hmac_key': b'[REDACTED]'}"


def test_secret_values_skips_an_int_too_long_to_print() -> None:
    """An int with more digits than Python prints under a secret key is skipped, not raised."""
    assert secret_values({"api_key": 10**5000, "token": "tok-12345"}) == ["tok-12345"]


class _Unprintable:
    """A mapping key whose ``str`` and ``repr`` raise."""

    def __str__(self) -> str:
        raise RuntimeError("no str")

    __repr__ = __str__


def test_to_json_of_a_key_that_cannot_be_printed() -> None:
    """A key whose str() raises is captured as a placeholder; the rest of the value is kept."""
    assert json.loads(to_json({_Unprintable(): 1, "n": 2})) == {
        "<_Unprintable object (repr failed)>": 1,
        "n": 2,
    }


def test_to_json_respects_a_character_limit() -> None:
    """max_chars bounds the characters (multi-byte text uses more of it than a byte limit)."""
    value = {f"k{i}": "é" * 5 for i in range(20)}
    text = to_json(value, max_chars=60)
    assert len(text) <= 60 < len(text.encode("utf-8"))
    assert json.loads(text)["…"] == "…"
    assert to_json(value, limit=30, max_chars=60).encode("utf-8").__len__() <= 30


def test_to_json_of_an_int_too_long_to_print_says_what_it_is() -> None:
    """An int past Python's limit on printed digits (4,300) is captured as what it is, an int
    of so many bits (about so many digits) too long to print, not as a repr that failed."""
    label = "<int of 16610 bits (about 5001 digits), too long to print>"
    assert json.loads(to_json(10**5000)) == label
    assert json.loads(to_json({"n": -(10**5000), "m": 1})) == {"n": label, "m": 1}
    assert json.loads(to_json({10**5000: "key"})) == {label: "key"}


def test_to_json_of_an_int_subclass_too_long_to_print_names_its_type() -> None:
    """An int subclass's label names the subclass."""

    class Big(int):
        pass

    assert json.loads(to_json([Big(2**20000)])) == [
        "<Big of 20001 bits (about 6021 digits), too long to print>"
    ]


def test_to_json_cuts_strings_to_a_limit_below_their_own() -> None:
    """A limit below MAX_STRING_CHARS cuts a long string (and key) to fit, not the whole value
    to a bare "…"."""
    text = to_json({"k" * 300: "v" * 300}, limit=60)
    assert len(text.encode()) <= 60
    ((key, value),) = json.loads(text).items()
    assert key.startswith("kkk")
    assert value.startswith("vvv")
    assert value.endswith("…")


class _GrowsItsSet:
    """An item whose repr adds an item to the set holding it, the first time (the set changes
    size while it is read, as when another thread changes it)."""

    def __init__(self, home: set[Any]) -> None:
        self.home = home

    def __repr__(self) -> str:
        self.home.add("added meanwhile")
        return "<grows>"


def test_redact_reads_a_set_changed_while_it_is_read() -> None:
    """A set that changes size while it is copied is copied again from a snapshot taken in one
    step, instead of raising "Set changed size during iteration"."""
    home: set[Any] = {"first"}
    home.add(_GrowsItsSet(home))
    out = redact({"items": home})
    assert sorted(out["items"]) == ["<grows>", "added meanwhile", "first"]
