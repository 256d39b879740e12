"""A secret with letters outside ASCII, written as ``ascii()`` writes it (``p\\xe4ss``, as
the ``repr`` of an object holding it does under ``%a`` or ``!a``), or in the other Unicode
normalization form than the one it was given in (``ä`` as one code point, or as ``a`` and a
combining diaeresis, as macOS file names and many text inputs write it): it is the same
secret, and must not reach spans or logs."""

from __future__ import annotations

import logging
import string
import unicodedata
from typing import Any
from urllib.parse import unquote

import pytest
from secret_runs import traced_run

from laios.execution.redaction import (
    REDACTED,
    SecretForms,
    is_secret_key,
    is_secret_pair,
    redact,
    scrub,
    scrub_head,
    secret_values,
)
from laios.execution.task_context import require_current_task
from laios.tools.base import BaseTool

#: Given composed (NFC), as most keyboards type it.
PASSWORD = unicodedata.normalize("NFC", "pässwörd-Ünïcode-42")
DECOMPOSED = unicodedata.normalize("NFD", PASSWORD)
assert DECOMPOSED != PASSWORD
#: Pieces of the secret that must not be left behind, in each form.
PIECES = ("code-42", "\\xe4ss", "\\xf6rd", "o\\u0308rd", "sswö", "o\u0308rd")


def _left(text: str) -> list[str]:
    return [piece for piece in PIECES if piece in text]


@pytest.mark.parametrize("given", [PASSWORD, DECOMPOSED], ids=["nfc", "nfd"])
@pytest.mark.parametrize(
    "write",
    [
        ascii,
        lambda secret: f"login {secret!a} refused",
        lambda secret: ascii({"user": "bob", "password": secret, "note": '"x"'}),
        lambda secret: unicodedata.normalize("NFC", secret),
        lambda secret: unicodedata.normalize("NFD", secret),
        lambda secret: ascii(unicodedata.normalize("NFD", secret)),
        lambda secret: ascii(unicodedata.normalize("NFC", secret)),
    ],
    ids=["ascii", "format-a", "ascii-dict", "nfc", "nfd", "ascii-nfd", "ascii-nfc"],
)
def test_scrub_replaces_the_ascii_and_normalized_forms(given: str, write: Any) -> None:
    text = write(given)
    out = scrub(text, secret_values({"password": given}), limit=None)
    assert REDACTED in out
    assert _left(out) == [], out
    assert "pässwörd" not in unicodedata.normalize("NFC", out)


def test_a_short_secret_is_scrubbed_after_its_name_in_those_forms() -> None:
    """A value too short to scrub from free text, written after its name in those forms."""
    secrets = secret_values({"password": "ä1"})
    for text in (f"password={'ä1'!a}", "password=" + unicodedata.normalize("NFD", "ä1")):
        assert scrub(text, secrets) in (f"password='{REDACTED}'", f"password={REDACTED}"), text


class Login(BaseTool):
    name = "login"
    description = "Fails quoting its password as ascii() writes it, and decomposed."

    def _execute(self, **kwargs: Any) -> Any:
        password = kwargs["password"]
        raise PermissionError(
            f"{password!a} refused; decomposed: {unicodedata.normalize('NFD', password)}"
        )


@pytest.mark.parametrize("capture", [False, True])
def test_those_forms_reach_no_span_and_no_log(
    capture: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="laios")
    result, span = traced_run(Login, {"password": PASSWORD}, capture=capture)
    assert not result.success
    texts = [span.status.description or ""]
    texts += [str(value) for event in span.events for value in event.attributes.values()]
    texts += [str(value) for value in span.attributes.values()]
    texts += [record.getMessage() for record in caplog.records]
    assert any(f"'{REDACTED}' refused" in text for text in texts)
    for text in texts:
        assert _left(text) == [], text


#: Given in full-width letters and digits, as some input methods type them; its compatibility
#: forms (NFKC, NFKD) are plain ASCII, as a library that normalizes its input writes it.
WIDE = "ｐａｓｓｗｏｒｄ－ｗｉｄｅ－４２"
assert unicodedata.normalize("NFKC", WIDE) == "password-wide-42"
#: One whose two compatibility forms differ from each other (a ligature and an accent).
LIGATURE = "ｃｏｎﬁｇ-säfe-Ｋｅｙ"
assert unicodedata.normalize("NFKC", LIGATURE) != unicodedata.normalize("NFKD", LIGATURE)


@pytest.mark.parametrize("given", [WIDE, LIGATURE], ids=["full-width", "ligature"])
@pytest.mark.parametrize("normal", ["NFKC", "NFKD"])
def test_scrub_replaces_the_compatibility_forms(given: str, normal: str) -> None:
    written = unicodedata.normalize(normal, given)
    secrets = secret_values({"password": given})
    for text in (f"login {written} refused", f"login {written!a} refused"):
        assert scrub(text, secrets, limit=None) in (
            f"login {REDACTED} refused",
            f"login '{REDACTED}' refused",
        ), text


def test_a_short_secret_is_scrubbed_after_its_name_in_its_compatibility_form() -> None:
    secrets = secret_values({"password": "ｐ１"})
    assert scrub("password=p1 and p1", secrets) == f"password={REDACTED} and p1"


class WideLogin(BaseTool):
    name = "wide_login"
    description = "Fails quoting its password as a library normalizing its input writes it."

    def _execute(self, **kwargs: Any) -> Any:
        raise PermissionError(f"{unicodedata.normalize('NFKC', kwargs['password'])} refused")


def test_a_compatibility_form_reaches_no_span_and_no_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="laios")
    result, span = traced_run(WideLogin, {"password": WIDE}, capture=False)
    assert not result.success
    texts = [span.status.description or ""]
    texts += [str(value) for event in span.events for value in event.attributes.values()]
    texts += [record.getMessage() for record in caplog.records]
    assert any(f"{REDACTED} refused" in text for text in texts)
    for text in texts:
        assert "password-wide" not in text, text
        assert "wide-42" not in text, text


#: A secret given in ASCII, and the same written in full-width letters and digits, as an input
#: method types it or a library that widens what it echoes writes it (its NFKC form is the
#: secret).
NARROW = "hunter2hunter2"
FULL_WIDTH = "ｈｕｎｔｅｒ２ｈｕｎｔｅｒ２"
assert unicodedata.normalize("NFKC", FULL_WIDTH) == NARROW


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"login {FULL_WIDTH} refused", f"login {REDACTED} refused"),
        (f"login {FULL_WIDTH!r} refused", f"login '{REDACTED}' refused"),
        ("login ｈｕｎｔｅｒ２hunter2 refused", f"login {REDACTED} refused"),
        ("token ｈｕｎｔｅｒ２ｈ… cut", f"token {REDACTED}… cut"),
        (f"２０２６年、{FULL_WIDTH}　ＯＫ", f"２０２６年、{REDACTED}　ＯＫ"),
    ],
    ids=["whole", "repr", "half-and-half", "prefix", "among-full-width-text"],
)
def test_scrub_replaces_an_ascii_secret_written_in_full_width(text: str, expected: str) -> None:
    """The full-width form of an ASCII secret (whole, in part, or mixed with its ASCII
    characters) is replaced; the other full-width characters of the text are kept as they
    are."""
    secrets = secret_values({"password": NARROW})
    assert scrub(text, secrets, limit=None) == expected
    assert scrub_head(text, secrets, 200) == expected
    assert redact({"note": text}, secrets) == {"note": expected}


def test_a_short_ascii_secret_is_scrubbed_after_its_name_in_full_width() -> None:
    secrets = secret_values({"password": "ab1"})
    assert scrub("password=ａｂ１ and ａｂ１", secrets) == f"password={REDACTED} and ａｂ１"


#: ASCII's printable characters to their full-width forms.
WIDEN = {code: code + 0xFEE0 for code in range(0x21, 0x7F)}
assert NARROW.translate(WIDEN) == FULL_WIDTH


class WideningLogin(BaseTool):
    name = "widening_login"
    description = "Reports and fails quoting its password in full-width letters and digits."

    def _execute(self, **kwargs: Any) -> Any:
        wide = kwargs["password"].translate(WIDEN)
        require_current_task().progress(10, f"trying {wide}")
        raise PermissionError(f"{wide} refused")


def test_the_full_width_form_of_an_ascii_secret_reaches_no_span_and_no_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="laios")
    result, span = traced_run(WideningLogin, {"password": NARROW}, capture=True)
    assert not result.success
    texts = [span.status.description or ""]
    texts += [str(value) for event in span.events for value in event.attributes.values()]
    texts += [str(value) for value in span.attributes.values()]
    texts += [record.getMessage() for record in caplog.records]
    texts.append(repr(result.metadata))  # (not result.error: the caller's own, as given)
    assert any(f"{REDACTED} refused" in text for text in texts)
    for text in texts:
        assert "ｈｕｎｔｅｒ" not in text, text


def test_a_long_text_of_full_width_occurrences_is_scrubbed_as_far_as_it_is_kept() -> None:
    """Cut to its first characters, a text is searched only as far as those need, also where
    it writes a secret in full width many times over: each occurrence before the cut is
    replaced, as in the same text written in ASCII."""
    secret = (string.ascii_letters + string.digits) * 3
    secrets = SecretForms(secret_values({"password": secret}))
    head = scrub_head(("日" + secret.translate(WIDEN)) * 200, secrets, 300)
    assert head == scrub_head(("日" + secret) * 200, secrets, 300)
    assert head.count(REDACTED) == 27


#: An ASCII secret written in other characters whose NFKC form is ASCII: mathematical bold and
#: monospace letters and digits (astral characters, one code point each), the Kelvin sign,
#: circled and superscript digits.
BOLD = "𝐡𝐮𝐧𝐭𝐞𝐫𝟐𝐡𝐮𝐧𝐭𝐞𝐫𝟐"
MONOSPACE = "𝚑𝚞𝚗𝚝𝚎𝚛𝟸𝚑𝚞𝚗𝚝𝚎𝚛𝟸"
DIGITS = "hunter①hunter²"
for _written in (BOLD, MONOSPACE):
    assert unicodedata.normalize("NFKC", _written) == NARROW
assert unicodedata.normalize("NFKC", DIGITS) == "hunter1hunter2"


@pytest.mark.parametrize(
    ("secret", "text", "expected"),
    [
        (NARROW, f"login {BOLD} refused", f"login {REDACTED} refused"),
        (NARROW, f"login {MONOSPACE!r} refused", f"login '{REDACTED}' refused"),
        (NARROW, "token 𝐡𝐮𝐧𝐭𝐞𝐫𝟐𝐡… cut", f"token {REDACTED}… cut"),
        (NARROW, "login 𝐡𝐮𝐧ｔｅｒ2hunter𝟐 refused", f"login {REDACTED} refused"),
        ("hunter1hunter2", f"login {DIGITS} refused", f"login {REDACTED} refused"),
        ("Kelvin-hunter2", "login \u212aelvin-hunter2 refused", f"login {REDACTED} refused"),
        # A ligature stands for two letters: what lies after it keeps its place.
        ("profile-hunter2", "the ﬁle proﬁle-hunter2 ﬂows", f"the ﬁle {REDACTED} ﬂows"),
        ("profile-hunter2", "㎏ ⑩ ﬃ proﬁle-hunter2 ½ ﬂ", f"㎏ ⑩ ﬃ {REDACTED} ½ ﬂ"),
        ("hunter10-hunter", "ﬁ hunter⑩-hunter ﬁ", f"ﬁ {REDACTED} ﬁ"),
        # A secret that ends inside a ligature: the ligature goes with it.
        ("hunter2-pro-f", "ﬂ hunter2-pro-ﬁx ﬂ", f"ﬂ {REDACTED}x ﬂ"),
    ],
    ids=[
        "bold",
        "monospace-repr",
        "bold-prefix",
        "mixed",
        "circled-superscript",
        "kelvin",
        "ligature-inside",
        "expanding-around",
        "circled-ten",
        "ends-in-ligature",
    ],
)
def test_scrub_replaces_an_ascii_secret_written_in_compatibility_characters(
    secret: str, text: str, expected: str
) -> None:
    """An ASCII secret a text writes in characters whose NFKC form is the secret (whole, in
    part, mixed with others) is replaced; the rest of the text is kept as written, also where
    a character stands for several (a ligature, ``⑩``, ``㎏``) before or inside it."""
    secrets = secret_values({"password": secret})
    assert scrub(text, secrets, limit=None) == expected
    assert scrub(text, SecretForms(secrets), limit=None) == expected
    assert scrub_head(text, secrets, 200) == expected
    assert redact({"note": text}, secrets) == {"note": expected}


def test_a_short_ascii_secret_is_scrubbed_after_its_name_in_compatibility_characters() -> None:
    secrets = secret_values({"password": "ab1"})
    text = "password=𝐚𝐛𝟏 and ﬁ password=ab① and 𝐚𝐛𝟏"
    expected = f"password={REDACTED} and ﬁ password={REDACTED} and 𝐚𝐛𝟏"
    assert scrub(text, secrets) == expected
    assert redact({"note": text}, secrets) == {"note": expected}


def test_a_cut_text_of_expanding_characters_is_scrubbed_as_far_as_it_is_kept() -> None:
    """Cut to its first characters, a text whose characters stand for several each (``ﬃ``)
    keeps as many of its own characters as asked, each occurrence before the cut replaced."""
    secret = (string.ascii_letters + string.digits) * 3
    secrets = SecretForms(secret_values({"password": secret}))
    bold = "𝟎𝟏"  # (mathematical bold digits)
    assert unicodedata.normalize("NFKC", bold) == "01"
    text = ("ﬃ" * 40 + secret.replace("01", bold)) * 30
    head = scrub_head(text, secrets, 310)
    expected = scrub(text, secrets, limit=None)[:309] + "…"
    assert head == expected
    assert head.count(REDACTED) == 6
    assert "ﬃ" * 40 in head


#: A secret-looking name holding a letter that is not ASCII, given composed (NFC).
NAMED = "tok-9fQ2xLmR7vKp3ZsW8nYb4HcD6gJt1AeU"


def _decomposed(text: str) -> str:
    written = unicodedata.normalize("NFD", text)
    assert written != text
    return written


@pytest.mark.parametrize("name", ["authé", "pwdñ", "dbPwdé", "jwtö", "clé_api_key", "passwörd"])
def test_a_name_is_read_alike_composed_and_decomposed(name: str) -> None:
    """A name written decomposed (``e`` and a combining accent, as macOS file names and many
    text inputs write it) is the same name: secret-looking as its composed form is, and its
    value is secret and redacted likewise."""
    decomposed = _decomposed(name)
    assert is_secret_key(name)
    assert is_secret_key(decomposed)
    assert secret_values({decomposed: NAMED}) == [NAMED]
    assert redact({decomposed: NAMED, "q": 1}) == {decomposed: REDACTED, "q": 1}


@pytest.mark.parametrize("name", ["X-Clé-Token", "clé_api_key", "contraseña_token"])
def test_a_pair_name_is_read_alike_composed_and_decomposed(name: str) -> None:
    assert is_secret_pair((name, NAMED))
    assert is_secret_pair((_decomposed(name), NAMED))
    assert not is_secret_pair((_decomposed("clé_token_count"), NAMED))


@pytest.mark.parametrize(
    "text",
    [
        _decomposed(f"user=bob&clé_api_key={NAMED}"),
        _decomposed(f"CLÉ_TOKEN={NAMED}"),
        _decomposed(f"GET / HTTP/1.1\r\nX-Clé-Token: {NAMED}\r\n"),
        f"https://h/?cle%CC%81_token={NAMED}&x=1",
    ],
    ids=["form", "environment", "header", "percent-encoded"],
)
def test_a_decomposed_name_in_text_is_read_as_its_composed_form(text: str) -> None:
    """A text writing a secret-looking name decomposed (a combining accent, which no name of
    the pattern holds, after its letter) holds a secret under it, as it does under the
    composed name; so does one writing the decomposed name percent-encoded."""
    assert NAMED in secret_values({"request": text})
    assert NAMED in secret_values({"request": unicodedata.normalize("NFC", unquote(text))})


def test_a_short_secret_is_scrubbed_after_its_name_in_either_canonical_form() -> None:
    """A value too short to scrub from free text, written after its name decomposed when it
    was given composed, and the other way round."""
    for given, written in (
        ("clé_token", _decomposed("clé_token")),
        (_decomposed("clé_token"), "clé_token"),
    ):
        secrets = secret_values({given: "ab1"})
        assert scrub(f"{written}=ab1 and ab1", secrets) == f"{written}={REDACTED} and ab1"


def _compatible(text: str) -> str:
    """``text`` in full-width letters, digits and signs, as East Asian input methods type it."""
    written = "".join(chr(ord(char) + 0xFEE0) if "!" <= char <= "~" else char for char in text)
    assert unicodedata.normalize("NFKC", written) == text
    return written


#: Secret-looking names written in compatibility characters: full-width, mathematical bold,
#: with a ligature (``ﬆ``, the ``st`` of ``conn_str``).
COMPATIBLE_NAMES = [
    _compatible("password"),
    "ＡＰＩ_ＫＥＹ",
    "api_" + _compatible("token"),
    "𝐩𝐚𝐬𝐬𝐰𝐨𝐫𝐝",
    "conn_ﬆr",
    "card_" + _compatible("pin"),
]


@pytest.mark.parametrize("name", COMPATIBLE_NAMES)
def test_a_name_is_read_alike_in_its_compatibility_form(name: str) -> None:
    """A name written in compatibility characters (full-width letters, as East Asian input
    methods type them, mathematical letters, a ligature) is read as the word it writes: its
    value is secret, and redacted, as under the same name in ASCII."""
    assert unicodedata.normalize("NFKC", name) != name
    assert is_secret_key(name)
    assert secret_values({name: NAMED}) == [NAMED]
    assert redact({name: NAMED, "q": 1}) == {name: REDACTED, "q": 1}


def test_a_pair_name_is_read_alike_in_its_compatibility_form() -> None:
    assert is_secret_pair((_compatible("X-Api-Key"), NAMED))
    assert is_secret_pair((b"X-Api-Key", NAMED))
    assert redact([(_compatible("Authorization"), NAMED)]) == [
        [_compatible("Authorization"), REDACTED]
    ]
    assert not is_secret_pair((_compatible("token_count"), NAMED))


@pytest.mark.parametrize(
    "text",
    [
        f"user=bob&{_compatible('password')}={NAMED}",
        _compatible("API_KEY=") + NAMED,
        f"GET / HTTP/1.1\r\n{_compatible('X-Api-Key')}: {NAMED}\r\n",
        f"https://h/?%EF%BD%90assword={NAMED}&x=1",
    ],
    ids=["form", "environment", "header", "percent-encoded"],
)
def test_a_compatibility_name_in_text_is_read_as_the_word_it_writes(text: str) -> None:
    """A text writing a secret-looking name in full-width letters (the ``=`` too) holds a
    secret under it, as under the name in ASCII; so does one writing it percent-encoded."""
    assert NAMED in secret_values({"request": text})
    captured = str(redact({"request": text}, secret_values({"request": text})))
    assert NAMED not in captured


def test_a_short_secret_is_scrubbed_after_its_name_written_in_full_width_letters() -> None:
    """A value too short to scrub from free text, after its name written in full-width
    letters when it was given in ASCII, and the other way round."""
    for given, written in (
        ("password", _compatible("password")),
        (_compatible("password"), "password"),
        (_compatible("password"), _compatible("password")),
    ):
        secrets = secret_values({given: "ab1"})
        assert scrub(f"{written}=ab1 and ab1", secrets) == f"{written}={REDACTED} and ab1"


#: Ordinary names, not ASCII or not in their compatibility form, that hold no secret.
ORDINARY_NAMES = [
    "größe",
    "café_count",
    "ﬁle_name",
    _compatible("file_name"),
    _compatible("max_tokens"),
    _compatible("keyword"),
    "ｔｏｋｅｎ_count",
    "№",
    "ﬂag²",
    "naïve_passage",
]


def test_ordinary_names_in_compatibility_forms_stay_ordinary() -> None:
    """Reading a name in its compatibility form makes no ordinary name secret-looking."""
    for name in ORDINARY_NAMES:
        assert not is_secret_key(name), name
    assert secret_values(dict.fromkeys(ORDINARY_NAMES, NAMED)) == []
    assert redact(dict.fromkeys(ORDINARY_NAMES, "x")) == dict.fromkeys(ORDINARY_NAMES, "x")
    text = "&".join(f"{name}={NAMED}" for name in ORDINARY_NAMES)
    assert secret_values({"request": text}) == []
    assert not is_secret_pair((_compatible("token_count"), NAMED))
