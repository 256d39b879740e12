"""A name is searched with the secret-looking pattern only when it holds one of the words
every match holds (``_SECRET_HINTS``, in some letter case): that shortcut never changes which
names are secret-looking, also for letters that case-insensitive matching reads as ASCII ones
(``İ``, ``ı``, ``ſ``, the Kelvin sign), and a long name costs little to look at."""

from __future__ import annotations

import random
import re

import pytest

from laios.execution import redaction
from laios.execution.redaction import is_secret_key, to_json

WORDS = (
    "key", "token", "secret", "passw", "passphrase", "authorization", "cookie", "credential",
    "session_id", "private", "bearer", "passcode", "connection_string", "connstr", "auth",
    "oauth", "xauth", "pwd", "jwt", "dsn", "pin", "otp", "totp", "hotp", "cvv", "cvc", "Auth",
    "OAuth", "XAuth", "HTTPAuth", "userPin", "pinCode", "PIN", "JWTPayload", "dbPWDHash",
)  # fmt: skip
#: Letters matched case-insensitively as an ASCII letter that is not their casefold().
ODD = {"i": ("\u0130", "\u0131"), "s": ("\u017f",), "k": ("\u212a",)}


def _variant(rng: random.Random, word: str) -> str:
    letters = []
    for letter in word:
        odd = ODD.get(letter.lower())
        if odd and rng.random() < 0.3:
            letters.append(rng.choice(odd))
        elif rng.random() < 0.2:
            letters.append(letter.swapcase())
        else:
            letters.append(letter)
    prefix = rng.choice(("", "x_", "my", "X-", "a", "db."))
    suffix = rng.choice(("", "_x", "Value", "2", "s", "-id"))
    return prefix + "".join(letters) + suffix


def test_the_shortcut_never_hides_a_name_the_pattern_matches() -> None:
    rng = random.Random(7)
    for _ in range(20_000):
        name = _variant(rng, rng.choice(WORDS))
        if redaction._SECRET_KEY.search(name) is not None:
            assert redaction._hinted(name), name


def test_odd_letters_still_make_a_secret_looking_name() -> None:
    assert is_secret_key("p\u0131n")  # (dotless i: matched as "pin")
    assert is_secret_key("P\u0130N")
    assert is_secret_key("pa\u017f\u017fword")
    assert is_secret_key("api_\u212aey")
    assert not is_secret_key("file_path")
    assert not is_secret_key("k" * 300)


class _Counting:
    """The secret-looking pattern, counting its searches."""

    def __init__(self, pattern: re.Pattern[str]) -> None:
        self.pattern = pattern
        self.searches = 0

    def search(self, text: str) -> re.Match[str] | None:
        self.searches += 1
        return self.pattern.search(text)


def test_long_names_without_a_hint_are_not_searched_with_the_pattern(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Keys of 260 characters, equal once cut to 256, are read until the capture's budget is
    reached: each was searched with the whole pattern (about 100 µs each, half a second for
    the value); none is now, and a name holding a hint still is."""
    counting = _Counting(redaction._SECRET_KEY)
    monkeypatch.setattr(redaction, "_SECRET_KEY", counting)
    long = "k" * redaction.MAX_STRING_CHARS
    to_json({f"{long}{i}": i for i in range(10_000)})
    assert counting.searches == 0
    assert is_secret_key("x" * 300 + "_token")
    assert counting.searches == 1
