"""Secrets that :mod:`laios.execution.redaction` must find wherever they hide.

Deep under secret-named keys, inside dataclass instances and pydantic models, and written in an
encoded form (URL-encoded, ``repr``-escaped, JSON-escaped) in free text.
"""

from __future__ import annotations

import html
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from pydantic import BaseModel, ConfigDict, SecretStr
from secret_runs import failed_run_text, statuses_at_progress

from laios.execution.redaction import (
    MAX_SECRET_SCAN_ITEMS,
    MAX_VALUE_BYTES,
    REDACTED,
    SecretForms,
    redact,
    scrub,
    scrub_head,
    secret_values,
    to_json,
)
from laios.execution.task_context import require_current_task
from laios.tools.base import BaseTool

SECRET = "sk-live-ABCDEF123456"
#: A secret whose encoded forms all differ from it (a slash, a plus, quotes, a backslash, é).
ODD_SECRET = 'sk-live/AB+CD "EF"\\12 é34'


@dataclass
class Creds:
    api_key: str
    region: str = "eu"


@dataclass
class Wrapper:
    name: str
    creds: Creds


@dataclass
class Hidden:
    visible: str
    token: str = field(repr=False, default="")


class CredsModel(BaseModel):
    api_key: str
    region: str = "eu"


class Loose(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str = "x"


def _nested(depth: int, leaf: Any) -> Any:
    value = leaf
    for level in range(depth):
        value = {f"level{level}": value}
    return value


# -- secrets at any depth ------------------------------------------------------------------


@pytest.mark.parametrize("depth", [9, 12, 40])
def test_secret_values_finds_a_secret_deeper_than_eight_levels(depth: int) -> None:
    """A value under a secret-named key many levels down is found (the docs say any depth)."""
    assert SECRET in secret_values(_nested(depth, {"api_key": SECRET}))


def test_secret_values_finds_everything_under_a_deep_secret_key() -> None:
    """Everything under a secret-named key is secret, however deep below it."""
    assert SECRET in secret_values({"credentials": _nested(15, SECRET)})


def test_secret_values_mixes_lists_and_mappings_at_depth() -> None:
    """Lists on the way down do not stop the search."""
    value: Any = {"token": SECRET}
    for _ in range(10):
        value = [{"items": value}]
    assert SECRET in secret_values({"root": value})


def test_secret_values_of_a_very_deep_chain_is_bounded_and_does_not_recurse() -> None:
    """A chain far deeper than the recursion limit is read within the item budget."""
    chain: Any = {"api_key": SECRET}
    for _ in range(MAX_SECRET_SCAN_ITEMS * 3):
        chain = {"next": chain}
    started = time.thread_time()  # (work done: what a loaded machine does not stretch)
    assert secret_values(chain) == []  # the secret lies past the item budget
    assert time.thread_time() - started < 2.0


# -- secrets inside objects ----------------------------------------------------------------


def test_secret_values_reads_dataclass_fields() -> None:
    """A secret-named field of a dataclass instance is a secret, at any level."""
    assert SECRET in secret_values({"creds": Creds(api_key=SECRET)})
    assert SECRET in secret_values(Creds(api_key=SECRET))
    assert SECRET in secret_values({"w": Wrapper("n", Creds(SECRET))})
    assert SECRET in secret_values({"w": [Wrapper("n", Creds(SECRET))]})


def test_secret_values_reads_fields_hidden_from_the_repr() -> None:
    """A field left out of the repr is still read for secrets."""
    assert SECRET in secret_values({"h": Hidden("v", token=SECRET)})


def test_secret_values_reads_pydantic_model_fields() -> None:
    """A secret-named field of a pydantic model (declared or extra) is a secret."""
    assert SECRET in secret_values({"creds": CredsModel(api_key=SECRET)})
    assert SECRET in secret_values(CredsModel(api_key=SECRET))
    assert SECRET in secret_values({"loose": Loose(session_token=SECRET)})  # type: ignore[call-arg]


def test_secret_values_reads_pydantic_secret_str() -> None:
    """A ``SecretStr`` under a secret-named key is collected as its secret value."""
    assert SECRET in secret_values({"api_key": SecretStr(SECRET)})


def test_secret_values_ignores_ordinary_object_fields() -> None:
    """Fields with ordinary names are not secrets; a dataclass class is not an instance."""
    found = secret_values({"creds": Creds(api_key=SECRET, region="north-east")})
    assert "north-east" not in found
    assert secret_values({"cls": Creds}) == []


def test_secret_values_survives_an_object_whose_field_cannot_be_read() -> None:
    """A dataclass field that raises when read is skipped; the others are still read."""

    @dataclass
    class Broken:
        api_key: str

        def __getattribute__(self, name: str) -> Any:
            if name == "api_key":
                raise RuntimeError("no")
            return object.__getattribute__(self, name)

    assert secret_values({"b": Broken(SECRET), "token": "tok-9876"}) == ["tok-9876"]


def test_redact_copies_a_dataclass_as_a_mapping_of_its_fields() -> None:
    """Content capture shows a dataclass as its fields, secret-named ones redacted."""
    assert redact({"creds": Creds(api_key=SECRET)}) == {
        "creds": {"api_key": REDACTED, "region": "eu"}
    }
    assert redact(Wrapper("n", Creds(SECRET))) == {
        "name": "n",
        "creds": {"api_key": REDACTED, "region": "eu"},
    }


def test_redact_leaves_out_fields_hidden_from_the_repr() -> None:
    """A field its class keeps out of the repr stays out of the captured copy."""
    assert redact(Hidden("v", token="not-shown-anywhere")) == {"visible": "v"}


def test_redact_copies_a_pydantic_model_as_a_mapping_of_its_fields() -> None:
    """Content capture shows a pydantic model as its fields (extras included), redacted."""
    assert redact({"creds": CredsModel(api_key=SECRET)}) == {
        "creds": {"api_key": REDACTED, "region": "eu"}
    }
    loose = Loose(session_token=SECRET, note="hi")  # type: ignore[call-arg]
    assert redact(loose) == {"name": "x", "session_token": REDACTED, "note": "hi"}


def test_to_json_of_objects_never_shows_the_secret() -> None:
    """The captured JSON of objects carrying the secret does not contain it."""
    value = {
        "a": Creds(SECRET),
        "b": CredsModel(api_key=SECRET),
        "c": [Wrapper("n", Creds(SECRET))],
    }
    text = to_json(value, secrets=secret_values(value))
    assert SECRET not in text
    assert json.loads(text)["a"] == {"api_key": REDACTED, "region": "eu"}


def test_redact_of_a_huge_dataclass_stays_within_the_byte_budget() -> None:
    """A dataclass holding a huge list costs only what fits in the budget."""

    @dataclass
    class Bulky:
        rows: list[int]
        api_key: str = SECRET

    bulky = Bulky(rows=list(range(2_000_000)))
    started = time.thread_time()  # (work done: what a loaded machine does not stretch)
    text = to_json({"bulky": bulky}, secrets=secret_values({"bulky": bulky}))
    assert time.thread_time() - started < 1.0
    assert len(text.encode("utf-8")) <= MAX_VALUE_BYTES
    assert SECRET not in text


# -- encoded forms of a secret -------------------------------------------------------------


def _encodings(secret: str) -> dict[str, str]:
    return {
        "quote": quote(secret, safe=""),
        "quote_plus": quote_plus(secret),
        "repr": repr(secret)[1:-1],
        "json": json.dumps(secret)[1:-1],
        "utf8_bytes": repr(secret.encode("utf-8"))[2:-1],
    }


@pytest.mark.parametrize("kind", ["quote", "quote_plus", "repr", "json", "utf8_bytes"])
def test_scrub_replaces_an_encoded_form_of_a_secret(kind: str) -> None:
    """A secret written URL-encoded, repr-escaped, JSON-escaped or as the repr of its UTF-8
    bytes (b'p\\xc3\\xa4ss', as a header sent as bytes is quoted) is scrubbed too."""
    encoded = _encodings(ODD_SECRET)[kind]
    assert encoded != ODD_SECRET
    text = f"GET https://api.example/?key={encoded}&x=1 failed"
    out = scrub(text, secret_values({"api_key": ODD_SECRET}))
    assert encoded not in out
    assert out == f"GET https://api.example/?key={REDACTED}&x=1 failed"


def test_scrub_replaces_every_encoded_form_in_one_text() -> None:
    """All forms in one text, the plain one included, are replaced."""
    forms = [ODD_SECRET, *_encodings(ODD_SECRET).values()]
    text = " | ".join(forms)
    out = scrub(text, [ODD_SECRET], limit=None)
    assert out == " | ".join([REDACTED] * len(forms))


def test_scrub_of_a_plain_secret_is_unchanged() -> None:
    """A secret whose encodings equal it is scrubbed as before."""
    assert scrub(f"key {SECRET}!", [SECRET]) == f"key {REDACTED}!"


#: A password holding every character HTML and XML write as an entity: & < > " '.
MARKUP_SECRET = "Kx<9&q\"Z>7m'vB&2"


def _numeric_quotes(secret: str) -> str:
    """``secret`` escaped as MarkupSafe (Jinja) and Go's ``html`` package write it: ``&#34;``
    and ``&#39;`` for the quotes."""
    return html.escape(secret, quote=False).replace('"', "&#34;").replace("'", "&#39;")


def _xml_entities(secret: str) -> str:
    """``secret`` escaped with XML's own entities, ``&quot;`` and ``&apos;`` for the quotes, as
    PHP's ``htmlspecialchars`` (``ENT_XML1``) and .NET's ``SecurityElement.Escape`` write it."""
    return html.escape(secret, quote=False).replace('"', "&quot;").replace("'", "&apos;")


@pytest.mark.parametrize(
    "escape",
    [html.escape, partial(html.escape, quote=False), _numeric_quotes, _xml_entities],
    ids=["html.escape", "xml-text", "numeric-quotes", "xml-entities"],
)
def test_scrub_replaces_a_secret_escaped_as_html_and_xml_write_it(
    escape: Callable[[str], str],
) -> None:
    """A page quoting a password (a login form echoed back in an HTML error page, a SOAP
    fault) writes its ``&``, ``<``, ``>`` and quotes as entities: that form is scrubbed too,
    also where no run of 8 of its characters is left as written."""
    escaped = escape(MARKUP_SECRET)
    assert escaped != MARKUP_SECRET
    text = f"<p>invalid login with {escaped}</p>"
    out = scrub(text, secret_values({"password": MARKUP_SECRET}))
    assert out == f"<p>invalid login with {REDACTED}</p>"


class EchoesLoginPage(BaseTool):
    name = "echoes_login_page"
    description = "Quotes the login page that echoed its password back, HTML-escaped."

    def _execute(self, **kwargs: Any) -> Any:
        page = f'<input name=password value="{html.escape(kwargs["password"])}">'
        require_current_task().progress(50, f"login page: {page}")
        if kwargs.get("fail"):
            raise PermissionError(f"login refused: {page}")
        return {"ok": True}


def test_a_secret_escaped_as_html_stays_out_of_spans_logs_and_status(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A tool quoting a page that echoes the password HTML-escaped, in its progress and its
    error, leaks no part of it."""
    caplog.set_level(logging.DEBUG, logger="laios")
    parameters = {"password": MARKUP_SECRET}
    statuses = statuses_at_progress(EchoesLoginPage, parameters)
    spans = failed_run_text(EchoesLoginPage, parameters, "PermissionError")
    escaped = html.escape(MARKUP_SECRET)
    assert len(statuses) == 1
    assert f'value=\\"{REDACTED}\\"' in statuses[0]
    assert f'login refused: <input name=password value="{REDACTED}">' in spans
    for text in (*statuses, spans, caplog.text):
        assert escaped not in text
        assert "9&amp;q" not in text


def _lower_hex(text: str) -> str:
    """``text`` with the hex digits of its percent-escapes in lower case (``%2f``, ``%c3``)."""
    return re.sub(r"%[0-9A-F]{2}", lambda escape: escape[0].lower(), text)


@pytest.mark.parametrize(
    "encode",
    [partial(quote, safe=""), quote, quote_plus],
    ids=["quote", "quote-keeping-slashes", "quote_plus"],
)
def test_scrub_replaces_a_secret_percent_encoded_with_lower_case_hex_digits(
    encode: Callable[[str], str],
) -> None:
    """Many encoders write the hex digits of a percent-escape in lower case (``%2f``,
    ``%c3%a9``): the secret so written is scrubbed as when they are in capitals."""
    encoded = _lower_hex(encode(ODD_SECRET))
    assert encoded != encode(ODD_SECRET)
    secrets = secret_values({"api_key": ODD_SECRET})
    text = f"GET https://api.example/?key={encoded}&x=1 failed"
    expected = f"GET https://api.example/?key={REDACTED}&x=1 failed"
    assert scrub(text, secrets) == expected
    assert scrub(text, SecretForms(secrets)) == expected
    assert scrub_head(text, secrets, 200) == expected
    assert redact({"note": text}, secrets) == {"note": expected}
    # (its first characters alone too, as a text cut inside it writes them)
    assert scrub(f"key {encoded[:-4]}", secrets) == f"key {REDACTED}"


def _mixed_hex(text: str) -> str:
    """``text`` with the hex digits of every other percent-escape in lower case (``%2f`` next
    to ``%2F``), and of one escape in both cases (``%aB``), as some encoders and URLs written
    by hand mix them."""
    escapes = iter(range(1_000))

    def write(escape: re.Match[str]) -> str:
        at = next(escapes)
        if at == 1 and escape[0][1] in "ABCDEF":
            return escape[0][:2].lower() + escape[0][2]
        return escape[0].lower() if at % 2 else escape[0]

    return re.sub(r"%[0-9A-F]{2}", write, text)


@pytest.mark.parametrize(
    "encode",
    [partial(quote, safe=""), quote, quote_plus],
    ids=["quote", "quote-keeping-slashes", "quote_plus"],
)
def test_scrub_replaces_a_secret_percent_encoded_with_mixed_case_hex_digits(
    encode: Callable[[str], str],
) -> None:
    """The hex digits of a percent-escape are matched in either case, whatever the case of
    the others in the same value: ``a%2fb%2Fc`` is ``a/b/c`` encoded."""
    encoded = _mixed_hex(encode(ODD_SECRET))
    assert encoded not in (encode(ODD_SECRET), _lower_hex(encode(ODD_SECRET)))
    secrets = secret_values({"api_key": ODD_SECRET})
    text = f"GET https://api.example/?key={encoded}&x=1 failed"
    expected = f"GET https://api.example/?key={REDACTED}&x=1 failed"
    assert scrub(text, secrets) == expected
    assert scrub(text, SecretForms(secrets)) == expected
    assert scrub_head(text, secrets, 200) == expected
    assert redact({"note": text}, secrets) == {"note": expected}
    # (its first characters alone, its last ones, and a run from inside it)
    assert scrub(f"key {encoded[:-4]}", secrets) == f"key {REDACTED}"
    assert scrub(f"key {encoded[5:]}", secrets) == f"key {REDACTED}"
    assert scrub(f"key {encoded[5:-5]}!", secrets) == f"key {REDACTED}!"
    assert scrub("x a%2fb%2Fc y", ["a/b/c"]) == f"x {REDACTED} y"
    # (among many other secrets, in a long text: looked at through the index of their forms)
    many = SecretForms([*secrets, *(f"other-secret-{at:03d}-value" for at in range(40))])
    long_text = "x" * 9000 + f" key={encoded} " + "y" * 9000
    assert scrub(long_text, many, limit=None) == "x" * 9000 + f" key={REDACTED} " + "y" * 9000


def test_a_secret_holding_a_percent_sign_is_scrubbed_as_written() -> None:
    """A secret holding ``%`` and hex-like letters as its own characters, or written right
    after a ``%``, is replaced where a text writes it as it is."""
    for secret in ("pct%2fab%Cdxyz", "tk-1234%a", "cafe1234beef", "ab12"):
        for text in (
            f"x {secret} y",
            f"LIKE '%{secret}%'",
            f"LIKE '%a{secret}'",
            f"v={secret}b",
        ):
            out = scrub(text, [secret])
            assert secret not in out, (secret, text)
            assert out.count(REDACTED) == 1, (secret, out)
        assert scrub(f"k={quote(secret, safe='')}", [secret]) == f"k={REDACTED}"


def test_scrub_replaces_either_case_of_the_hex_digits_but_keeps_other_letters() -> None:
    """Only the hex digits of a percent-escape are matched in either case: the secret's own
    letters are matched as they are."""
    assert scrub("x a%2fb%20c y a%2Fb%20c", ["a/b c"]) == f"x {REDACTED} y {REDACTED}"
    secret = "AbCdEfGh/IjKlMn"
    assert scrub(f"k {quote(secret.lower(), safe='')}", [secret]) == (
        f"k {quote(secret.lower(), safe='')}"
    )


def test_captured_strings_drop_encoded_forms_of_a_secret() -> None:
    """Content capture replaces encoded forms of a secret quoted under an ordinary key."""
    encoded = _encodings(ODD_SECRET)
    value = {"api_key": ODD_SECRET, **{f"url_{k}": f"?key={v}" for k, v in encoded.items()}}
    captured = json.loads(to_json(value, secrets=secret_values(value)))
    assert captured == {"api_key": REDACTED, **{f"url_{k}": f"?key={REDACTED}" for k in encoded}}
