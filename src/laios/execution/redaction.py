"""Keeping secrets and oversized values out of telemetry and logs.

Tool parameters often carry credentials. Nothing the executor emits (spans, logs, metrics,
``/status``, result metadata) contains them: values under secret-looking keys are replaced by
``[REDACTED]`` when content capture is on, and those values (and their URL-encoded,
``repr``-escaped, JSON-escaped and base64 forms, any prefix or suffix of ``MIN_PREFIX_CHARS``
or more characters of them, and any run of ``MIN_FRAGMENT_CHARS`` or more from inside them)
are scrubbed out of error text before any error reaches telemetry or logs. The fields of
dataclass instances, pydantic models, ``attrs`` instances, named tuples and namespaces are
read like the keys of a mapping, and the names of ``(name, value)`` pairs in a list (headers)
too. A parameter the tool's input model types ``SecretStr`` or ``SecretBytes`` is secret
whatever its name (see :func:`secret_fields`).
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import html
import json
import math
import re
import sys
import traceback
import unicodedata
from bisect import bisect_left
from collections import UserString, deque
from collections.abc import Iterable, Iterator, Mapping, MappingView, Sequence
from collections.abc import Set as AbstractSet
from decimal import Decimal
from enum import Enum
from itertools import chain, compress, islice, repeat
from types import MemberDescriptorType, SimpleNamespace
from typing import Any, Literal
from urllib.parse import (
    ParseResult,
    ParseResultBytes,
    SplitResult,
    SplitResultBytes,
    quote,
    quote_plus,
    unquote,
    unquote_plus,
)
from uuid import UUID

from pydantic import BaseModel, SecretBytes, SecretStr

from laios._exceptions import qualified_type_name, type_name
from laios._secret_types import SECRET_TYPES
from laios.execution._secret_fields import SecretFields, declared_secrets

__all__ = [
    "MAX_ERROR_BYTES",
    "MAX_JSON_TEXT_CHARS",
    "MAX_NAMED_TEXT_CHARS",
    "MAX_PREFIX_FORM_CHARS",
    "MAX_SECRET_LINES",
    "MAX_SECRET_SCAN_ITEMS",
    "MAX_SNAPSHOT_ITEMS",
    "MAX_STRING_CHARS",
    "MAX_TRACEBACK_BYTES",
    "MAX_VALUE_BYTES",
    "MAX_WRITTEN_LIST_ITEMS",
    "MIN_FRAGMENT_CHARS",
    "MIN_PREFIX_CHARS",
    "MIN_SCRUB_CHARS",
    "REDACTED",
    "SecretFields",
    "SecretForms",
    "encoded_forms",
    "exception_traceback",
    "is_collection",
    "is_secret_key",
    "is_secret_pair",
    "may_write_a_secret",
    "named_tuple_fields",
    "object_fields",
    "parameters_snapshot",
    "redact",
    "scrub",
    "scrub_head",
    "scrub_within",
    "scrubbed_traceback",
    "secret_fields",
    "secret_fields_of_tool",
    "secret_values",
    "secret_values_before_run",
    "secret_values_now_and_before",
    "to_json",
    "truncate_bytes",
    "utf8_text",
]

#: What a secret value is replaced with.
REDACTED = "[REDACTED]"
#: Longest error text that reaches a span, an event or a log record, in UTF-8 bytes.
MAX_ERROR_BYTES = 1024
#: Longest captured argument or result (JSON) on a span, in UTF-8 bytes.
MAX_VALUE_BYTES = 4096
#: Longest single string inside captured arguments or results, in characters.
MAX_STRING_CHARS = 256
#: Most keys and items :func:`secret_values` looks at in one set of parameters.
MAX_SECRET_SCAN_ITEMS = 5000
#: Deepest nesting level that :func:`redact` copies (deeper values become ``"…"``).
_MAX_DEPTH = 8
#: Shortest secret value scrubbed from free text (shorter ones would mangle ordinary words).
#: A shorter one is still scrubbed where the text writes it as the value of its own name
#: (``api_key=xy9``, ``{'api_key': 'xy9'}``): see :func:`secret_values`.
MIN_SCRUB_CHARS = 4
#: Shortest prefix of a secret (its first characters alone, as a tool quoting the start of a
#: token leaves them, or a text cut to a length inside one) scrubbed from free text: every
#: prefix of a secret value or of one of its encoded forms this long or longer is replaced
#: wherever it occurs, as the whole value is. A shorter one is kept: the start of a secret is
#: often an ordinary word or a vendor's mark (``sk-live``), and carries little of it. The same
#: goes for a suffix (its last characters alone: ``key ending …a1b2c3d4``, a text cut at the
#: front inside one).
MIN_PREFIX_CHARS = 8
#: Shortest run of a secret's characters taken from anywhere in it (neither its start nor its
#: end: a tool quoting ``…GHIJKLMNOPQRST…`` from inside a token) scrubbed from free text: every
#: run of a secret value or of one of its encoded forms this long or longer is replaced
#: wherever it occurs, as a prefix of ``MIN_PREFIX_CHARS`` is. Longer than that, as a run
#: from inside a value is more often a run of ordinary text that the value happens to hold.
MIN_FRAGMENT_CHARS = 12
#: Longest secret form whose prefixes and suffixes are scrubbed too: a longer one (a key file,
#: a blob) is replaced whole only, so that a text repeating a long secret that repeats itself
#: is not measured against it at every place.
MAX_PREFIX_FORM_CHARS = 256
#: The scheme a URL-shaped secret starts with (``postgres://``, ``https://``, also
#: URL-encoded): no part of its secret. A prefix of the secret no longer than it is kept, or
#: every error naming the database or another address would lose those words.
_URL_SCHEME = re.compile(r"[a-z][a-z0-9+.\-]*(?::|%3a)(?://|%2f%2f)", re.IGNORECASE)
#: A URL-shaped secret up to the end of its user information (``postgres://app:s3cret@``, also
#: URL-encoded): what follows, the address (``db.internal:5432/orders``), is no part of its
#: secret. A suffix of the secret no longer than that address is kept, as its scheme is.
_URL_USER_INFO = re.compile(
    r"[a-z][a-z0-9+.\-]*(?::|%3a)(?://|%2f%2f)(?:(?!%2f|%3f|%23)[^/?#])*(?:@|%40)",
    re.IGNORECASE,
)

#: After ``pin``: a word naming something about pins other than a code, which a name of a
#: PIN does not hold (``pin_count``, ``PIN_COUNT``, ``pinMode``, PyTorch's ``pin_memory``,
#: ``pin_id``): in any case after a separator or none, or as the next word of a camelCase name.
_NOT_A_PIN_CODE = (
    r"(?!(?i:[-_. ]?(?:counts?|modes?|states?|lengths?|memory|ids?|attempts?|retries|tries)"
    r"(?![a-z]))"
    r"|(?-i:(?:(?:Count|Mode|State|Length|Attempt|Id|ID)s?|Memory|Retries|Tries)(?![a-z])))"
)
#: Before ``pin``: ``gpio``, in any case (``gpio_pin``, ``gpioPin``): a board's general-purpose
#: input/output pin, which no code is called.
_NOT_A_GPIO_PIN = r"(?i:(?<!gpio)(?<!gpio[-_. ]))"
#: The names of a PIN: ``pin`` as the short names below are read (``pin``, ``card_pin``,
#: ``userPin``, ``PIN``, ``pinCode``, ``PINCode``), also written together with ``code``
#: (``pincode``, ``userPincode``); not followed by a word naming something else about pins
#: (see ``_NOT_A_PIN_CODE``), nor after ``gpio``.
_PIN_NAMES = (
    rf"(?<![a-z]){_NOT_A_GPIO_PIN}pin(?:codes?)?(?![a-z]){_NOT_A_PIN_CODE}"
    rf"|(?-i:(?<=[a-z]){_NOT_A_GPIO_PIN}Pin(?:codes?)?(?![a-z]){_NOT_A_PIN_CODE})"
    rf"|(?-i:(?<![A-Za-z])(?:pin|Pin)(?=[A-Z]){_NOT_A_PIN_CODE})"
    rf"|(?-i:(?<=[a-z]){_NOT_A_GPIO_PIN}PIN(?=[A-Z][a-z]|[^A-Za-z]|$){_NOT_A_PIN_CODE})"
    rf"|(?-i:(?<![A-Za-z])PIN(?=[A-Z][a-z]){_NOT_A_PIN_CODE})"
)

_SECRET_KEY = re.compile(
    r"key|token|secret|passw|passphrase|authorization|cookie|credential|session[-_. ]?id"
    r"|private|bearer|passcode"
    # A connection string carries the password or key of what it connects to.
    r"|connection[-_. ]?string|conn[-_. ]?str(?:ing)?(?![a-z])"
    # Short names that also occur inside ordinary words (author, cwd, spinner, hotplate): only
    # as names of their own, not next to other letters (``auth``, ``basic_auth``, ``X-Auth``,
    # ``sentry_dsn``, ``pin_code``), or as a word of a camelCase name: a later one
    # (``basicAuth``, ``dbPwd``, ``userPin``) or the first, ended by the capital of the next
    # (``authHeader``, ``AuthValue``, ``pwdHash``, ``pinCode``); also in capitals, as camelCase
    # writes an acronym (``sentryDSN``, ``dbPWDHash``, ``JWTPayload``), not as the start of a
    # word in capitals (``AUTHOR``, ``DSNAME``). ``Auth`` also ends a run of capitals
    # (``OAuth``, ``XAuth``, ``HTTPAuth``). PINs, one-time passwords and card security codes
    # are credentials too (``pin``, ``otp``, ``totp``, ``cvv``, ``cvc``; ``pin`` as
    # ``_PIN_NAMES`` says).
    r"|(?<![a-z])(?:[ox]?auth|pwd|jwt|dsn|[ht]?otp|cv[cv])(?![a-z])"
    r"|(?-i:(?<=[a-z])(?:Oauth|Xauth|Auth|Pwd|Jwt|Dsn|Hotp|Totp|Otp|Cv[cv])(?![a-z]))"
    r"|(?-i:(?<=[A-Z])Auth(?![a-z]))"
    r"|(?-i:(?<![A-Za-z])(?:[OXox]?auth|pwd|jwt|dsn|[ht]?otp|cv[cv]"
    r"|Auth|Pwd|Jwt|Dsn|[HT]?otp|Otp|Cv[cv])(?=[A-Z]))"
    r"|(?-i:(?<=[a-z])(?:[OX]?AUTH|PWD|JWT|DSN|[HT]?OTP|CV[CV])(?=[A-Z][a-z]|[^A-Za-z]|$))"
    r"|(?-i:(?<![A-Za-z])(?:[OX]?AUTH|PWD|JWT|DSN|[HT]?OTP|CV[CV])(?=[A-Z][a-z]))"
    rf"|{_PIN_NAMES}",
    re.IGNORECASE,
)

#: Names the secret-looking pattern matches that are known not to hold a secret: the shell's
#: working directory (``env=os.environ.copy()`` would have every file path scrubbed).
_ORDINARY_KEYS = frozenset({"PWD"})

#: More such names, in any letter case and with or without ``_``, ``-``, ``.`` or spaces
#: between their words (``max_tokens``, ``maxTokens``): counts of model tokens, which every
#: language-model call takes or returns, and ordinary words that contain ``key``.
_ORDINARY_WORDS = frozenset(
    {
        "maxtokens",
        "maxnewtokens",
        "maxoutputtokens",
        "maxcompletiontokens",
        "prompttokens",
        "completiontokens",
        "inputtokens",
        "outputtokens",
        "totaltokens",
        "cachedtokens",
        "reasoningtokens",
        "numtokens",
        "tokencount",
        "tokenlimit",
        "tokenizer",
        "keyword",
        "keywords",
        "monkey",
    }
)
_WORD_SEPARATORS = str.maketrans("", "", "_-. ")


#: Words one of which, in some letter case, every name the secret-looking pattern matches
#: holds: a name without any is not searched with that pattern (whose search of a long name,
#: a few hundred characters, takes a hundred microseconds).
_SECRET_HINTS = (
    "key", "token", "secret", "pass", "auth", "cookie", "credential", "session", "private",
    "bearer", "conn", "pwd", "jwt", "dsn", "pin", "otp", "cv",
)  # fmt: skip
#: The letters that the pattern's case-insensitive matching reads as an ASCII letter but
#: ``str.casefold`` does not turn into it (``K`` and ``ſ`` it does).
_DOTTED_I = str.maketrans({"\u0130": "i", "\u0131": "i"})


def _hinted(key: str) -> bool:
    """Whether ``key`` holds one of :data:`_SECRET_HINTS` in some letter case."""
    folded = key.casefold() if key.isascii() else key.translate(_DOTTED_I).casefold()
    return any(hint in folded for hint in _SECRET_HINTS)


def is_secret_key(key: object) -> bool:
    """Whether a parameter name looks like it holds a secret (``api_key``, ``Authorization``…).

    A ``bytes`` or ``bytearray`` name (``b"Authorization"``, as HTTP headers are often kept)
    is read as Latin-1 text; any other non-string name is not secret. A name written with
    decomposed letters (``e`` and a combining accent) is read composed too (NFC), so that it
    is secret as the same name written composed is, and one written in compatibility
    characters (full-width ``ｐａｓｓｗｏｒｄ``, mathematical letters, a ligature) as the
    word it writes (NFKC): see :func:`_canonical_names`."""
    if not isinstance(key, str):
        if not isinstance(key, (bytes, bytearray)):
            return False
        key = key.decode("latin-1")
    return any(map(_looks_secret, _canonical_names(key)))


def _looks_secret(key: str) -> bool:
    """Whether ``key``, as written, is a secret-looking name (see :func:`is_secret_key`)."""
    return (
        _hinted(key)
        and _SECRET_KEY.search(key) is not None
        and key not in _ORDINARY_KEYS
        and key.translate(_WORD_SEPARATORS).lower() not in _ORDINARY_WORDS
    )


def _canonical_names(name: str) -> tuple[str, ...]:
    """``name``, then its Unicode composed form (NFC) and its compatibility form (NFKC) where
    they differ: the same name, as another program may have written it decomposed (macOS
    file names and many text inputs write ``é`` as ``e`` and a combining accent), or the
    word it writes in compatibility characters (full-width ``ｐａｓｓｗｏｒｄ``, as East
    Asian input methods type it, mathematical ``𝐩𝐚𝐬𝐬𝐰𝐨𝐫𝐝``, the ligature ``ﬆ`` for ``st``),
    which the secret-looking pattern, written for ASCII letters, reads otherwise
    (``authe\\u0301``: ``e`` next to ``auth``, where ``é`` is not; ``ｐａｓｓｗｏｒｄ``: no
    ASCII letter at all). A name in its compatibility form already (and so composed), ASCII
    among them, is its only form."""
    if name.isascii() or unicodedata.is_normalized("NFKC", name):
        return (name,)
    return tuple(
        dict.fromkeys(
            (name, unicodedata.normalize("NFC", name), unicodedata.normalize("NFKC", name))
        )
    )


def _is_secret_name(key: object) -> bool:
    """Whether a mapping key or field name is secret-looking, as :func:`is_secret_key` reads
    it, or, for a key that is neither text nor bytes (an enum member, a header-name object),
    as the text it is written as (``Field.PASSWORD``): the text that names it where it is
    recorded."""
    if is_secret_key(key):
        return True
    if isinstance(key, (str, bytes, bytearray)):
        return False
    return is_secret_key(_safe_str(key))


#: What may follow, to the end of a name, the secret word :data:`_SECRET_KEY` finds for the
#: name of a ``(name, value)`` pair to hold a secret (see :func:`_ends_with_secret_word`): the
#: rest of ``password`` and ``passwd``, the plural of ``credentials``, ``code`` after a PIN's
#: or a one-time password's name (``pin_code``, ``otpCode``), ``number`` after a PIN's (a "PIN
#: number" is the code), and a number (``pin2``, ``cvv2``, ``password2``).
_SECRET_NAME_END = re.compile(
    r"(?:(?<=passw)(?:or)?d|(?<=credential)s|(?<=pin|otp)[-_. ]?codes?"
    r"|(?<=pin)[-_. ]?numbers?)?[0-9]*",
    re.IGNORECASE,
)


def _ends_with_secret_word(name: str) -> bool:
    """Whether ``name`` ends with a word that makes a name secret-looking, as
    :data:`_SECRET_KEY` finds it, followed by nothing but what :data:`_SECRET_NAME_END`
    allows: the name of a header or form field holding a secret (``Authorization``,
    ``Set-Cookie``, ``X-Api-Key``, ``apikey``, ``password``, ``pin2``), not one that merely
    contains the word (``token_count``, ``password_policy``, ``key_order``)."""
    return any(
        _SECRET_NAME_END.fullmatch(name, match.end()) for match in _SECRET_KEY.finditer(name)
    )


def is_secret_pair(item: object) -> bool:
    """Whether ``item``, an item of a list, tuple or set, is a ``(name, value)`` pair holding a
    secret, as HTTP headers are kept in a list by httpx, ASGI, WSGI and ``http.client``
    (``[(b"authorization", b"…")]``) and form fields by requests (``[("password", "…")]``).

    That is a tuple or list of two items: a name (text, or bytes read as Latin-1) that looks
    secret (:func:`is_secret_key`) and ends with the secret word, or with it and a number
    (``X-Api-Key``, ``pin2``, not ``token_count``: see :func:`_ends_with_secret_word`), and a
    value that is text or binary data (``str``, ``bytes``, ``bytearray``), as a header's is.
    Its value is secret, as a mapping's value under that name is."""
    if not isinstance(item, (tuple, list)) or len(item) != 2:
        return False
    name, value = item
    if not isinstance(value, (str, bytes, bytearray)):
        return False
    if isinstance(name, (bytes, bytearray)):
        name = bytes(name).decode("latin-1")
    return isinstance(name, str) and _names_a_secret_pair(name)


def _names_a_secret_pair(name: str) -> bool:
    """Whether ``name`` is the name of a ``(name, value)`` pair holding a secret (see
    :func:`is_secret_pair`), as written, composed or in its compatibility form (see
    :func:`_canonical_names`)."""
    return any(
        _looks_secret(form) and _ends_with_secret_word(form) for form in _canonical_names(name)
    )


def utf8_text(text: str) -> str:
    """``text`` as valid UTF-8 text: a lone surrogate (which ``json.loads('"\\ud800"')`` or
    ``os.fsdecode`` can make, and which no exporter can encode) becomes its backslash escape
    (``\\ud800``); any other text is returned as it is."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def truncate_bytes(text: str, limit: int = MAX_ERROR_BYTES) -> str:
    """Cut ``text`` so that its UTF-8 encoding is at most ``limit`` bytes, marking the cut
    (lone surrogates are escaped first, see :func:`utf8_text`)."""
    text = utf8_text(text)
    encoded = text.encode("utf-8")
    if len(encoded) <= limit:
        return text
    marker = "…[truncated]"
    room = limit - len(marker.encode("utf-8"))
    if room < 0:  # no space even for the marker
        return encoded[: max(limit, 0)].decode("utf-8", "ignore")
    return encoded[:room].decode("utf-8", "ignore") + marker


def object_fields(value: Any, *, hidden: bool = True) -> Iterator[tuple[str, Any]] | None:
    """The ``(name, value)`` fields of a dataclass instance, a pydantic model, an instance
    of an ``attrs`` class, a ``types.SimpleNamespace`` or an ``argparse.Namespace``, read
    lazily; ``None`` for any other value (a dataclass *class* included; a named tuple, a
    tuple, is read as one: see :func:`named_tuple_fields`).

    A pydantic model gives its declared fields that are set, then its extra fields. With
    ``hidden`` false, fields their class keeps out of its ``repr`` (``field(repr=False)``,
    ``Field(repr=False)``, ``attrs.field(repr=False)``) are left out. A field that cannot be
    read is skipped.
    """
    # (by its type: some pydantic releases, 2.9 among them, check an instance by reading an
    # attribute of it, which an object whose __getattr__ raises an error of its own fails)
    if issubclass(type(value), BaseModel):
        return _model_fields(value, hidden)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _dataclass_fields(value, hidden)
    if isinstance(value, SimpleNamespace) or _is_argparse_namespace(value):
        return _namespace_fields(value)
    if not isinstance(value, type):
        try:
            declared = getattr(type(value), "__attrs_attrs__", None)
        except Exception:  # (a metaclass whose attributes cannot be read)
            return None
        if isinstance(declared, tuple):
            return _attrs_fields(value, declared, hidden)
    return None


def _attrs_fields(value: Any, declared: tuple[Any, ...], hidden: bool) -> Iterator[tuple[str, Any]]:
    for attribute in declared:
        try:
            name = attribute.name
            if type(name) is not str or not (hidden or attribute.repr is not False):
                continue
            item = getattr(value, name)
        except Exception:
            continue
        yield name, item


def _is_argparse_namespace(value: Any) -> bool:
    """Whether ``value`` is an ``argparse.Namespace`` (there is none before ``argparse`` is
    imported, which this module does not do for it)."""
    argparse = sys.modules.get("argparse")
    namespace = getattr(argparse, "Namespace", None)
    return isinstance(namespace, type) and isinstance(value, namespace)


def _namespace_fields(value: Any) -> Iterator[tuple[str, Any]]:
    try:
        fields = list(vars(value).items())
    except Exception:
        return
    yield from fields


def is_collection(value: Any) -> bool:
    """Whether ``value`` is a collection of items other than a list, tuple or set, which the
    redaction reads as a list: a ``collections.deque``, a ``UserList``, a dict's keys, values
    or items view, any other ``Sequence`` or ``Set``; not text, binary data or a ``range``."""
    if isinstance(value, _NOT_COLLECTIONS):
        return False
    try:
        return isinstance(value, _COLLECTIONS)
    except Exception:  # (a class whose own instance check raises)
        return False


_COLLECTIONS = (Sequence, AbstractSet, MappingView)
_NOT_COLLECTIONS = (str, bytes, bytearray, memoryview, range)


def named_tuple_fields(value: Any) -> tuple[str, ...] | None:
    """The field names of a named tuple (``typing.NamedTuple``, ``collections.namedtuple``),
    one per item; ``None`` for any other value (a plain tuple included)."""
    if not isinstance(value, tuple) or type(value) is tuple:
        return None
    try:
        names = getattr(type(value), "_fields", None)
        if (
            type(names) is tuple
            and len(names) == tuple.__len__(value)
            and all(type(name) is str for name in names)
        ):
            return names
    except Exception:  # (a class whose attributes cannot be read: no names)
        pass
    return None


def _dataclass_fields(value: Any, hidden: bool) -> Iterator[tuple[str, Any]]:
    try:
        declared = dataclasses.fields(value)
    except Exception:
        return
    for declared_field in declared:
        if not (hidden or declared_field.repr):
            continue
        try:
            item = getattr(value, declared_field.name)
        except Exception:
            continue
        yield declared_field.name, item


def _model_fields(value: BaseModel, hidden: bool) -> Iterator[tuple[str, Any]]:
    try:
        declared = type(value).model_fields
        values = value.__dict__
        extra = value.__pydantic_extra__
    except Exception:
        return
    for name, info in declared.items():
        if (hidden or info.repr) and name in values:
            yield name, values[name]
    if extra:
        yield from list(extra.items())


class _Written(str):
    """A secret as a text writes binary data (its base64 or hex, see :func:`_binary_forms`):
    replaced as it is (or a prefix of it), without encoded forms of its own."""


class _CutValue(str):
    """A secret as pydantic quotes a long rejected value, by its ends around ``...`` (see
    :func:`_pydantic_input_value`): replaced whole, or a prefix or suffix of it, as any form;
    a run from inside it is one of the secret itself, found as such (the address that ends
    a URL-shaped one, which this form does not say where it starts, is kept)."""


class _InField(str):
    """A secret written as the value of its name (``api_key='xy9'``): the text to find, of
    which only the value is replaced (the first ``head`` and last ``tail`` characters, the
    name and the quotes around the value, are kept). ``value``: the secret value it writes
    (its many forms count as one secret where secrets are counted, see :func:`held_secrets`)."""

    __slots__ = ("head", "tail", "value")
    head: int
    tail: int
    value: str

    def __new__(cls, text: str, head: int, tail: int, value: str = "") -> _InField:
        """``text``, keeping its first ``head`` and last ``tail`` characters."""
        form = super().__new__(cls, text)
        form.head = head
        form.tail = tail
        form.value = value
        return form

    def __reduce__(self) -> tuple[Any, ...]:
        return _InField, (str(self), self.head, self.tail, self.value)


#: A URL's user information with a password, read from just after the ``://`` that follows
#: its scheme (``postgres://app:s3cret@db``): the user, then the password (which may hold
#: ``:``, not ``@``, ``/``, ``?``, ``#`` or white space).
_URL_USER_PASSWORD = re.compile(r"([^\s/?#@:]*):([^\s/?#@]+)@")
_ASCII_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
#: The characters of a URL's scheme: a letter, then these (RFC 3986).
_SCHEME_CHARS = _ASCII_LETTERS | frozenset("0123456789+.-")


def _follows_scheme(text: str, at: int) -> bool:
    """Whether the ``://`` at ``at`` in ``text`` follows a scheme: a letter, then letters,
    digits, ``+``, ``.`` or ``-``. Read back from ``at`` to the first letter, or to the first
    character no scheme holds: never past the ``://`` before it, so that reading every one
    of a text's costs one look at each of its characters at most."""
    start = at
    while start > 0:
        char = text[start - 1]
        if char in _ASCII_LETTERS:
            return True
        if char not in _SCHEME_CHARS:
            return False
        start -= 1
    return False


def _url_passwords(text: str) -> list[str]:
    """The passwords of the URLs in ``text`` (as written, and percent-decoded when that
    differs), each once; one shorter than ``MIN_SCRUB_CHARS`` as the :class:`_InField`
    ``user:pw@``, replaced only there.

    Each ``://`` is found, then the scheme before it and the user information after it are
    read, as far as they go: the time taken grows with the length of the text, not with its
    square (as a pattern that starts anywhere a scheme could, and reads on to the ``://`` it
    looks for, takes over a long run of letters and digits: a hex or base64 blob)."""
    found: list[str] = []
    seen: set[tuple[str, str]] = set()
    at = text.find("://")
    while at >= 0:
        match = _URL_USER_PASSWORD.match(text, at + 3)
        if match is None or not _follows_scheme(text, at):
            at = text.find("://", at + 3)
            continue
        at = text.find("://", match.end())
        user, password = match.groups()
        if (user, password) in seen:  # (a text repeating one URL: read once)
            continue
        seen.add((user, password))
        for written in dict.fromkeys((password, unquote(password))):
            if len(written) >= MIN_SCRUB_CHARS:
                found.append(written)
            else:
                found.append(_InField(f"{user}:{written}@", len(user) + 1, 1))
    return found


#: Longest text parameter read as JSON for the secrets it holds (see :func:`_json_container`):
#: a request body, a configuration (a longer one, a document, would cost every read of the
#: parameters the reading of its items).
MAX_JSON_TEXT_CHARS = 16_384
#: Longest text parameter read for the values it writes under secret-looking names (see
#: :func:`_assignments`): a URL, a form body, a command line, a few header lines (a longer
#: text, such as a prompt, is no such thing, and would cost every read of the parameters).
MAX_NAMED_TEXT_CHARS = 4096
#: The characters JSON text holding a mapping or a list starts with.
_JSON_OPENINGS = frozenset("{[")

#: A field's value that is secret as a whole and may be written after a name (not a container).
_SCALAR_SECRETS = (str, bytes, int, float, Decimal, *SECRET_TYPES)


def _json_container(text: str) -> dict[str, Any] | list[Any] | None:
    """The mapping or list ``text`` holds as JSON (``'{"api_key": "…"}'``), to be read for
    secrets as parameters are; ``None`` for other text, and for text longer than
    ``MAX_JSON_TEXT_CHARS`` characters (not parsed: the cost of a read is kept bounded)."""
    if len(text) > MAX_JSON_TEXT_CHARS or text.rstrip()[-1:] not in "}]":
        return None
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return parsed if isinstance(parsed, (dict, list)) else None


#: A value written under its name in text: ``name=value`` in a URL's query, a form body, an
#: environment entry or a command line (``--name=value``), and a header line ``Name: value``.
#: (A value ends at white space, ``&``, ``#``, ``;``, a quote, a bracket or a comma: quoted,
#: as ``password='…'`` in a ``repr``, its quotes are not part of it. The name before ``=``
#: may be percent-encoded, as a URL's query or a form body writes it: ``api%5Fkey``,
#: ``pass%77ord``, ``api+key``.)
_ASSIGNMENT = re.compile(
    r"(?:^|(?<=[\s?&;,(]))-{0,2}((?:[A-Za-z]|%[0-9A-Fa-f]{2})(?:[\w.+-]|%[0-9A-Fa-f]{2})*)"
    r"=['\"]?([^\s&#;'\"()\[\]{},]+)"
    r"|^([A-Za-z][\w-]*):(?!//)[ \t]*([^\r\n]+)",
    re.MULTILINE,
)


def _assignments(text: str) -> Iterator[tuple[str, str]]:
    """The ``(name, value)`` pairs ``text`` writes (see ``_ASSIGNMENT``) whose name holds a
    secret as a header's or a form field's does (see :func:`is_secret_pair`: ``api_key``,
    ``password``, ``X-Api-Key``, ``Authorization``, not ``max_tokens``): each value as
    written, and percent-decoded when that differs (the query of a URL).

    A name written percent-encoded (``api%5Fkey=``, ``pass%77ord=``, ``api+key=``) is read
    decoded, as a mapping's key of that name would be, and each value is given under the name
    both as written and decoded (a short one is scrubbed after either, see
    :func:`_field_forms`). A text holding decomposed letters (``e`` and a combining accent,
    which no name of the pattern holds) is read composed (NFC) too, and one holding
    compatibility characters (full-width ``ｐａｓｓｗｏｒｄ＝…``) in its compatibility form
    (NFKC), as names are (see :func:`_canonical_names`)."""
    if len(text) > MAX_NAMED_TEXT_CHARS:
        return
    texts = _canonical_names(text)  # (a full-width "＝" is "=" in the compatibility form)
    if all("=" not in form and ":" not in form for form in texts):
        return
    # (no secret word in the text, as written, decoded, composed or in its compatibility
    # form: no secret name in it; the pattern, whose search of a few kilobytes takes
    # milliseconds, looks only at a text holding one of the words each of its matches holds)
    decoded = _form_decoded(text)
    if all(
        not _hinted(form) or _SECRET_KEY.search(form) is None
        for form in dict.fromkeys((*texts, *_canonical_names(decoded)))
    ):
        return
    seen: set[tuple[str, str]] = set()
    for written in texts:
        for match in _ASSIGNMENT.finditer(written):
            encoded = match[1] is not None  # (name=value, not a header line)
            name, value = (match[1], match[2]) if encoded else (match[3], match[4])
            value = value.rstrip()
            names = [name, _form_decoded(name)] if encoded else [name]
            if not value or not any(map(_names_a_secret_pair, names)):
                continue
            values = [value, _form_decoded(value)] if encoded else [value]
            for pair in dict.fromkeys((named, found) for found in values for named in names):
                if pair not in seen:
                    seen.add(pair)
                    yield pair


def may_write_a_secret(text: str) -> bool:
    """Whether :func:`secret_values` may find a secret in ``text`` held under an ordinary
    name (not secret-looking, not declared secret by type): whether it may be JSON text, a
    URL with user information, or text writing a value under a secret-looking name. ``False``
    only when it finds none there; cheap (no pattern search), so that a finished task's record
    keeps, of its parameters, only those that may hold a secret (see
    ``TaskRecord.keep_secrets``)."""
    opening = text[:1]
    if opening in _JSON_OPENINGS or opening.isspace():
        return True
    if "@" in text and "://" in text:
        return True
    if len(text) > MAX_NAMED_TEXT_CHARS:
        return False
    if not text.isascii():  # (its composed and compatibility forms: see _assignments)
        return True
    if "=" not in text and ":" not in text:
        return False
    return _hinted(text) or _hinted(_form_decoded(text))


def _form_decoded(text: str) -> str:
    """``text`` percent-decoded as a form body or a URL's query is (``+`` a space); ``text``
    itself when it holds neither ``%`` nor ``+``."""
    return unquote_plus(text) if "%" in text or "+" in text else text


def _field_forms(name: object, value: str) -> list[str]:
    """The ways a text writes ``value`` as the value of ``name``: ``name=value``, ``name:
    value``, ``name='value'``, ``name="value"``, ``name: 'value'`` and ``name: "value"``
    (YAML), ``{'name': 'value'}``, ``{"name": "value"}``
    (also compact, also ASCII-escaped as ``json.dumps`` writes it by default, the name in a
    mapping too, and unquoted, as a number is written), ``name=`` followed by the value
    percent-encoded (a URL's query; the name too, where that changes it; the hex digits of
    the escapes in capitals or in lower case, ``%2F`` or ``%2f``, or mixed: see
    :func:`_hex_in_capitals`), the ``repr``-quoted
    ones also as ``ascii()`` writes them (the name in a mapping too), all of them also for
    the value in the other Unicode normalization forms (see :func:`_normalized`), and for
    the name and the value both in each of them (a name that is not ASCII, as a text
    normalized as a whole writes it: ``cle\\u0301_token=`` for ``clé_token``), and with
    the name in the letter cases of :func:`_name_cases` too (``PIN=`` for ``pin``; as given
    alone in the other normalization forms), each as an :class:`_InField` that replaces only
    the value. ``[]`` for a name that is not text."""
    if isinstance(name, (bytes, bytearray)):
        name = name.decode("latin-1")
    if not isinstance(name, str) or not name or not value:
        return []
    shapes: list[tuple[str, str, str]] = []
    for named in _name_cases(name):  # (PIN=, Pin: for pin; X-Api-Key: for x-api-key)
        for variant in _normalized(value):  # (also in the other normalization forms: see there)
            shapes += _field_shapes(named, variant)
    if not name.isascii():  # (a text normalized as a whole writes its name so too)
        for normal in _NORMAL_FORMS:
            written = unicodedata.normalize(normal, name)
            if written != name:
                shapes += _field_shapes(written, unicodedata.normalize(normal, value))
    forms: dict[str, _InField] = {}
    for head, written, tail in shapes:
        text = head + written + tail
        if text not in forms:
            forms[text] = _InField(text, len(head), len(tail), value)
    return list(forms.values())


def _name_cases(name: str) -> tuple[str, ...]:
    """``name`` and the letter cases a text commonly writes a name in, each once: in lower
    case, in capitals, and with the first letter of each of its words a capital (``pin``:
    ``PIN``, ``Pin``; ``x-api-key``: ``X-API-KEY``, ``X-Api-Key``; ``API_KEY``: ``api_key``,
    ``Api_Key``; ``apiKey``: ``apikey``, ``APIKEY``, ``ApiKey``, ``Apikey``). Other mixes
    (``pIN``, ``X-api-key``) are not among them: each case costs every text scrubbed a search
    for each way of writing the value after it."""
    lower = name.lower()
    cases = (name, lower, name.upper(), _capitalized(name), _capitalized(lower))
    return tuple(dict.fromkeys(cases))


def _capitalized(name: str) -> str:
    """``name`` with the first letter of each of its words a capital (``X-Api-Key``)."""
    return "".join(
        char.upper() if at == 0 or not name[at - 1].isalpha() else char
        for at, char in enumerate(name)
    )


def _field_shapes(name: str, value: str) -> list[tuple[str, str, str]]:
    """The ``(head, value as written, tail)`` of each way :func:`_field_forms` names (the same
    one may come more than once: :func:`_field_forms` keeps each once)."""
    shapes = [(f"{name}=", value, ""), (f"{name}: ", value, "")]
    # Percent-encoded, in a URL's query or a form body, which write the name so too where it
    # holds what they encode (cl%C3%A9_token=, api+key=, api%20key=; a name of letters,
    # digits and _.-~ alone is written as it is).
    names = dict.fromkeys((name, quote_plus(name), quote(name, safe=""), quote(name)))
    for encoded in (quote_plus(value), quote(value, safe=""), quote(value)):
        shapes += [(f"{written}=", encoded, "") for written in names]
        # (and with the hex digits of the escapes in lower case, as many encoders write them:
        # see _hex_in_capitals for those mixed)
        shapes += [(f"{_lower_hex(written)}=", _lower_hex(encoded), "") for written in names]
    # As repr() writes it, and ascii() (p\xe4), after its name and in a mapping whose key one
    # of them writes likewise (a number unquoted).
    for write in (repr, ascii):
        written, key = write(value), write(name)
        shapes += [
            (f"{name}={written[0]}", written[1:-1], written[-1]),
            (f"{name}: {written[0]}", written[1:-1], written[-1]),  # (YAML: pin: 'q7')
            (f"{key}: {written[0]}", written[1:-1], written[-1]),
            (f"{key}: ", value, ""),
        ]
    # As JSON writes it, letters that are not ASCII kept and escaped (json.dumps's default),
    # after its name and in a mapping whose key it writes likewise (also compact; a number
    # unquoted).
    for ensure_ascii in (False, True):
        written = json.dumps(value, ensure_ascii=ensure_ascii)[1:-1]
        key = json.dumps(name, ensure_ascii=ensure_ascii)
        shapes += [
            (f'{name}="', written, '"'),
            (f'{name}: "', written, '"'),
            (f'{key}: "', written, '"'),
            (f'{key}:"', written, '"'),
            (f"{key}: ", value, ""),
            (f"{key}:", value, ""),
        ]
    return shapes


def secret_fields_of_tool(tool: Any) -> SecretFields | None:
    """:func:`secret_fields` of a tool's ``input_model`` (``None`` for a tool without one, or
    an object that is not a tool)."""
    try:
        model = getattr(tool, "input_model", None)
    except Exception:
        return None
    return secret_fields(model)


def secret_fields(model: Any) -> SecretFields | None:
    """Where a pydantic model (a tool's ``input_model``) declares secrets by type, or by a
    secret-looking name (:func:`is_secret_key`) of a field passed under an ordinary alias:
    ``None`` when it declares none, at any depth. Worked out once per model class, and kept
    while the class lives."""
    return declared_secrets(model, is_secret_key)


def secret_values(params: Any, fields: SecretFields | None = None) -> list[str]:
    """Collect the string values held under secret-looking keys (longest first).

    Text that holds a JSON mapping or list (``{"body": '{"api_key": "…"}'}``, up to
    ``MAX_JSON_TEXT_CHARS`` characters) is read as that mapping or list too, and a value text
    writes under a secret-looking name (``?api_key=…``, ``password=…``, a line
    ``Authorization: Bearer …``; the name also percent-encoded, ``api%5Fkey=…``, and read
    as a key is; in text of up to ``MAX_NAMED_TEXT_CHARS`` characters, see
    :func:`_assignments`) is secret. So is the password of a URL's user information in any
    text, whatever its key (``postgres://app:s3cret@db``), and in a URL kept as an object
    (pydantic's ``AnyUrl`` or ``PostgresDsn``, httpx's or yarl's ``URL``: read as its text,
    see :func:`_url_text`). Bytes that are UTF-8 text, of up to ``MAX_JSON_TEXT_CHARS`` bytes
    (a body kept as ``b'{"api_key": …}'``), are read as that text.

    Everything under a secret-looking key is secret, at any depth below it (and so is the
    value of a ``(name, value)`` pair with such a name in a list, see :func:`is_secret_pair`),
    the keys of a mapping there too, unless they read as names (see :func:`_reads_as_a_name`):
    text, numbers (an int, a float or a ``Decimal``, as ``str`` writes it), binary data
    (``bytes``, ``bytearray``, ``memoryview``, read as UTF-8
    text and in hex, and, when it is not plain text, as ``repr`` writes it and in base64), a
    ``uuid.UUID`` (its text, and its ``hex``), and the secret an object there holds (an enum
    member's value, or the one-line text of a class that writes its own, a ``UserString``: see
    :func:`_held_secret`). The
    fields of dataclass instances, pydantic models, ``attrs`` instances, named tuples and
    namespaces (``SimpleNamespace``, ``argparse.Namespace``) are read like the keys of a mapping (a
    field named ``api_key`` is secret), and the value of a
    pydantic ``SecretStr``, ``SecretBytes`` or ``Secret[...]`` is secret wherever it is. So is
    everything under the places ``fields`` (the :func:`secret_fields` of the tool's input
    model) declares secret by type, whatever their names: ``{"db": "…"}`` for a field
    ``db: SecretStr`` (or typed with a ``NewType`` or a type alias of it), and ``{"k": "…"}``
    for a field ``api_key`` passed under its alias ``k``.

    The work is bounded: at most ``MAX_SECRET_SCAN_ITEMS`` keys, fields and items are looked at
    in all, at any depth. Containers are read in turn, one item from each at a time in the
    order they were reached (top level first), so a container with millions of items takes
    only its share: secrets under secret-named keys of the top levels are found even next to
    such a container. Values beyond the bound are not collected, and are not scrubbed from
    error text. A container that cannot be read (listing its items raises) is skipped, and
    the others are read on.

    A value shorter than ``MIN_SCRUB_CHARS`` is not scrubbed from free text wherever it
    occurs (it would mangle ordinary words), only where the text writes it as the value of
    the key, field or pair name it is held under: ``api_key=xy9``, ``api_key: xy9``,
    ``api_key='xy9'``, ``{'api_key': 'xy9'}`` and ``{"api_key": "xy9"}`` (also compact, and
    unquoted for a number) become ``api_key=[REDACTED]`` and so on, the name kept. Those
    forms are in the list, as strings that :func:`scrub` and :func:`redact` know to replace
    only the value of. A value with white space around it is also secret without it
    (``" tok\n"`` as ``"tok"``, as a tool strips a token before it uses it). The items of a
    secret list are values of the list's name
    (``pins=xk9``), and a secret list or tuple of text items (of up to
    ``MAX_WRITTEN_LIST_ITEMS``), one of them short, is a secret value as ``repr`` and JSON
    write it whole (``['zq7', 'xk9']``).
    """
    found: list[str] = []
    # Containers being read: their remaining (secret, value, declared, name) items.
    pending: deque[Iterator[tuple[bool, Any, SecretFields | bool | None, Any]]] = deque()

    def collect(text: str, name: Any = None) -> None:
        stripped = text.strip()
        if stripped and stripped != text:  # (" tok\n": a tool quotes it as it uses it, "tok")
            collect(stripped, name)
        if len(text) < MIN_SCRUB_CHARS:
            found.extend(_field_forms(name, text))
            return
        found.append(text)
        # "Bearer abc…": the credential after an auth scheme leaks on its own too.
        scheme, _, rest = text.partition(" ")
        if rest and scheme.isalpha():
            found.append(rest)

    def collect_bytes(data: bytes, name: Any = None) -> None:
        text = data.decode("utf-8", "replace")
        collect(text, name)
        # As repr writes them (b'\x8f…'): how binary keys that are not UTF-8 get quoted.
        written = repr(data)[2:-1]
        if written != text:
            found.append(written)
            # And in base64 and hex, as binary keys are written as text (the forms worked
            # out from the decoded text would be those of other bytes).
            found.extend(_binary_forms(data))
        elif len(data) >= MIN_SCRUB_CHARS:  # (bytes of text: in hex too, as binary data)
            hexed = data.hex()
            found.extend(_Written(form) for form in dict.fromkeys((hexed, hexed.upper())))

    def pairs(
        items: Iterable[tuple[Any, Any]],
        secret: bool,
        declared: SecretFields | bool | None,
        keys: bool = False,
    ) -> Iterator[tuple[bool, Any, SecretFields | bool | None, Any]]:
        if keys and secret:  # (a mapping's keys under a secret name: those not names too)
            for key, value in items:
                if not _reads_as_a_name(key):
                    yield True, key, None, None
                yield True, value, None, key
            return
        if isinstance(declared, SecretFields):
            for key, value in items:
                inner = declared.inner(key)
                yield secret or inner is True or _is_secret_name(key), value, inner, key
                if inner is True and type(key) is str and isinstance(value, _SCALAR_SECRETS):
                    # (a short one is scrubbed only after a name: each name of its field)
                    for other in declared.names.get(key, ()):
                        if other != key:
                            yield True, value, None, other
        else:
            for key, value in items:
                yield secret or _is_secret_name(key), value, None, key

    def sequence_items(
        items: Iterable[Any], declared: SecretFields | bool | None
    ) -> Iterator[tuple[bool, Any, SecretFields | bool | None, Any]]:
        for item in items:
            if is_secret_pair(item):  # ("Authorization", "Bearer …"): its value is secret
                yield True, item[1], None, item[0]
            else:
                yield False, item, declared, None

    def visit_items(
        value: Any, secret: bool, declared: SecretFields | bool | None, name: Any
    ) -> None:
        inner = declared.items if isinstance(declared, SecretFields) else None
        if inner is True:
            secret = True
        names = named_tuple_fields(value)
        if names is not None:  # (its fields by name, as a dataclass's)
            pending.append(pairs(zip(names, value, strict=False), secret, None))
        elif secret:
            # Each item is the value of the list's name (``pins=xk9``), and a list of short
            # text items is its secret as a list is written whole (``['zq7', 'xk9']``).
            if isinstance(value, (list, tuple)):
                with contextlib.suppress(Exception):  # (a subclass's own reading of items)
                    collect_written_list(value)
            pending.append(
                (True, v, inner, name if at < MAX_WRITTEN_LIST_ITEMS else None)
                for at, v in enumerate(value)
            )
        else:
            pending.append(sequence_items(value, inner))

    def collect_written_list(items: list[Any] | tuple[Any, ...]) -> None:
        texts: list[str] = []
        for item in items[:MAX_WRITTEN_LIST_ITEMS]:
            if isinstance(item, SecretStr):
                try:
                    item = item.get_secret_value()
                except Exception:  # (a subclass's own)
                    return
            if type(item) is not str:
                return
            texts.append(item)
        if len(items) > MAX_WRITTEN_LIST_ITEMS or not any(
            len(text) < MIN_SCRUB_CHARS for text in texts
        ):
            return  # (each item is scrubbed on its own)
        found.extend(
            dict.fromkeys(
                (
                    repr(texts),
                    repr(tuple(texts)),
                    json.dumps(texts),
                    json.dumps(texts, separators=(",", ":")),
                    json.dumps(texts, ensure_ascii=False),
                )
            )
        )

    def visit(value: Any, secret: bool, declared: SecretFields | bool | None, name: Any) -> None:
        if isinstance(value, Mapping):
            pending.append(pairs(value.items(), secret, declared, keys=True))
        elif isinstance(value, (list, tuple, set, frozenset)):
            if isinstance(value, _SPLIT_URLS):  # (its netloc, user:password@host, is no URL)
                with contextlib.suppress(Exception):
                    visit(value.geturl(), secret, None, name)
            visit_items(value, secret, declared, name)
        elif isinstance(value, (str, bytes, int, bytearray, memoryview)):
            if not secret and isinstance(value, (bytes, bytearray, memoryview)):
                text = _utf8_of(value)  # (a request body, a URL read from a file, as bytes)
                if text is not None:
                    visit(text, False, declared, name)
                return
            if type(value) is str and (
                value[:1] in _JSON_OPENINGS
                or (value[:1].isspace() and value.lstrip()[:1] in _JSON_OPENINGS)
            ):
                parsed = _json_container(value)  # (a request body, a configuration, as text)
                if parsed is not None:
                    visit(parsed, secret, None, name)
            if not secret and isinstance(value, str):
                if "://" in value and "@" in value:
                    found.extend(_url_passwords(value))  # a connection URL under any key
                for named, written in _assignments(value):  # (?api_key=…, password=…)
                    collect(written, named)
            elif secret and not isinstance(value, bool):
                if isinstance(value, bytes):
                    collect_bytes(value, name)
                elif isinstance(value, str):
                    collect(value, name)
                elif isinstance(value, int):
                    with contextlib.suppress(Exception):  # too many digits, a raising __str__
                        collect(str(value), name)
                else:  # (binary data kept in a buffer that can change: read as it is now)
                    with contextlib.suppress(Exception):  # a released memoryview
                        collect_bytes(bytes(value), name)
        elif isinstance(value, (float, Decimal)):  # (a pin or a code kept as a number)
            if secret:
                with contextlib.suppress(Exception):  # (a subclass's raising __str__)
                    collect(str(value), name)
        elif isinstance(value, UUID):  # (a session id or a token kept as a UUID)
            if secret:
                collect(str(value), name)
                collect(value.hex, name)
        elif isinstance(value, SECRET_TYPES):
            try:
                hidden = value.get_secret_value()
            except Exception:  # (a subclass's own)
                return
            visit(hidden, True, None, name)  # text, bytes, an int, or a container of them
        elif value is not None:
            if isinstance(value, UserString):  # (text, though it is a sequence of letters)
                text = _user_string_text(value)
                if text is not None:
                    visit(text, secret, declared, name)
                return
            if is_collection(value):  # (a deque, a dict's view: read as a list)
                visit_items(value, secret, declared, name)
                return
            url = _url_text(value)
            if url is not None:  # (pydantic's PostgresDsn, httpx's or yarl's URL)
                visit(url, secret, None, name)  # (and its fields or attributes, as any object's)
            fields = object_fields(value)
            if fields is not None:
                pending.append(pairs(fields, secret, declared))
            elif not isinstance(value, type):  # (an SDK client's api_key)
                if secret:  # (a credential type of its own, a UserString, an enum member)
                    held = _held_secret(value)
                    if held is not None:
                        visit(held, True, None, name)
                pending.append(pairs(_secret_attributes(value), secret, None))

    visit(params, False, fields, None)
    budget = MAX_SECRET_SCAN_ITEMS
    while pending and budget > 0:
        items = pending.popleft()
        try:
            item = next(items, None)
        except Exception:  # a container that cannot be read (a lazy row whose source is gone)
            continue  # is skipped: what it holds cannot be quoted either, the rest is read on
        if item is None:
            continue
        budget -= 1
        pending.append(items)
        try:
            visit(item[1], item[0], item[2], item[3])
        except Exception:  # (its items or fields could not be listed: likewise)
            continue
    # (in the order found, top levels first, among values of one length: the same list for
    # the same parameters in every process, whatever the hash seed)
    unique = dict.fromkeys(v for v in found if len(v) >= MIN_SCRUB_CHARS)
    return sorted(unique, key=len, reverse=True)


#: Most items of a secret list of short text items written whole as a secret value of its
#: own (``['zq7', 'xk9']``, see :func:`secret_values`): a longer list is not; nor are its
#: short items past these first ones values of the list's name (``pins=xk9``), as each would
#: cost every text scrubbed the search for its forms (a list of thousands of token ids).
MAX_WRITTEN_LIST_ITEMS = 64


#: The classes of URL objects, by the module and the name their class or a base of it has
#: (none is imported to be checked): pydantic-core's ``Url`` and ``MultiHostUrl`` (which
#: pydantic 2.9 gives for ``AnyUrl`` and ``PostgresDsn``), the classes pydantic 2.10 and later
#: build its URL types on (``AnyUrl``, ``HttpUrl``, ``PostgresDsn``…, each holding one of
#: pydantic-core's), and httpx's and yarl's ``URL``.
_URL_CLASSES = frozenset(
    {
        ("pydantic_core._pydantic_core", "Url"),
        ("pydantic_core._pydantic_core", "MultiHostUrl"),
        ("pydantic.networks", "_BaseUrl"),
        ("pydantic.networks", "_BaseMultiHostUrl"),
        ("httpx", "URL"),
        ("httpx._urls", "URL"),
        ("yarl", "URL"),
        ("yarl._url", "URL"),
    }
)


#: The URLs ``urllib.parse`` splits (``urlsplit``, ``urlparse``): tuples of parts, read as
#: the URL they write out again (``geturl()``), whose user information holds its password.
_SPLIT_URLS = (SplitResult, ParseResult, SplitResultBytes, ParseResultBytes)


def _url_text(value: Any) -> str | None:
    """The text of a URL kept as an object (pydantic's ``AnyUrl`` and ``PostgresDsn``, as
    pydantic-settings gives a ``DATABASE_URL``, httpx's and yarl's ``URL``): known by its class,
    or a base of it, being one of :data:`_URL_CLASSES`, and by its text holding ``://``;
    ``None`` for any other value (an object of a class of its own that names a ``scheme`` and
    a ``host`` is read for its fields, not as its text, which may be costly to make and hold
    no URL), or when that text cannot be made. Read as that text is, it gives up the password
    of its user information and the values its query names (``?token=…``)."""
    try:
        if not any(
            (getattr(kind, "__module__", None), getattr(kind, "__qualname__", None)) in _URL_CLASSES
            for kind in type(value).__mro__
        ):
            return None
        text = str(value)
    except Exception:  # (a class whose attributes or text cannot be read)
        return None
    return text if type(text) is str and "://" in text else None


#: Longest text of an object under a secret-looking name taken for the secret it holds (see
#: :func:`_held_secret`): a credential's, a PEM key's of a few kilobytes among them; a longer
#: text is a document's or a summary's.
_MAX_HELD_SECRET_CHARS = 8192


def _held_secret(value: Any) -> Any:
    """What an object given under a secret-looking name holds as its secret: an enum
    member's value (``Keys.PRODUCTION``, whose value is the key), or the text of an object
    whose class writes its own (a credential type whose ``str`` is the credential, a PEM key
    of several lines) when that text is at most :data:`_MAX_HELD_SECRET_CHARS` characters;
    ``None`` for any other object, or when that text cannot be made.

    The text of an array-like (a class with ``__array__`` or a ``shape``: a NumPy array, a
    tensor, a data frame) or of a collection is not made: names such as ``token_ids`` or
    ``key_points`` look secret, and such a text, a summary of the items, is costly to make for
    a large one and no credential (taken as one, it would be scrubbed from each message
    quoting the array)."""
    try:
        if isinstance(value, Enum):
            return value.value
        kind = type(value)
        if (
            getattr(kind, "__str__", None) is getattr(object, "__str__", None)
            or hasattr(kind, "__array__")
            or hasattr(value, "shape")
            or isinstance(value, (Sequence, Mapping, AbstractSet))
        ):
            return None
        text = str(value)
    except Exception:  # (a class whose value or text cannot be read)
        return None
    if type(text) is not str or len(text) > _MAX_HELD_SECRET_CHARS:
        return None
    return text


def _user_string_text(value: UserString) -> str | None:
    """The text a ``UserString`` holds (its ``data``), as a plain ``str``; ``None`` when a
    subclass of its own keeps none that can be read."""
    try:
        data = value.data
    except Exception:
        return None
    return str.__str__(data) if isinstance(data, str) else None


def _utf8_of(data: bytes | bytearray | memoryview) -> str | None:
    """``data`` as the UTF-8 text it is (a request body, a form body or a URL kept as bytes,
    or viewed by a ``memoryview``, read for secrets as that text is, as far as it is);
    ``None`` for data that is not UTF-8 text, or longer than the UTF-8 of the longest text
    read so (:data:`MAX_JSON_TEXT_CHARS` characters, four bytes each at most: a longer body, a
    file's content, is not decoded and read on every reading of the parameters)."""
    try:
        size = data.nbytes if isinstance(data, memoryview) else len(data)
        if size > 4 * MAX_JSON_TEXT_CHARS:
            return None
        return bytes(data).decode("utf-8")
    except (UnicodeDecodeError, ValueError):  # (binary data; a view released)
        return None


#: Most attributes of an object of a class of its own looked at for secret-looking names.
_MAX_OBJECT_ATTRIBUTES = 256


def _secret_attributes(value: Any) -> list[tuple[str, Any]]:
    """The attributes with secret-looking names (see :func:`is_secret_key`) of an object of a
    class of its own (``OpenAI(api_key=…)``: neither a dataclass, a pydantic model nor any
    other kind :func:`object_fields` reads): those it holds itself (its ``__dict__``, and the
    slots its class and their bases declare, see :func:`_slot_attributes`), among its first
    ``_MAX_OBJECT_ATTRIBUTES``; its other attributes are not read (a large object is not
    walked through for its secrets)."""
    named: list[tuple[Any, Any]] = []
    with contextlib.suppress(Exception):  # (no __dict__, or one that cannot be read)
        attributes = vars(value)
        if type(attributes) is dict:
            named = list(islice(attributes.items(), _MAX_OBJECT_ATTRIBUTES))
    found = [(name, item) for name, item in named if type(name) is str and is_secret_key(name)]
    return found + _slot_attributes(value)


def _slot_attributes(value: Any) -> list[tuple[str, Any]]:
    """The slots with secret-looking names that ``value``'s class and its bases declare
    (``__slots__ = ("password",)``), each with what ``value`` holds there, read through the
    class's own slot descriptor (never the object's ``__getattribute__``); a slot never set
    holds nothing. ``[]`` for a class without slots (the common case, looked at once)."""
    found: list[tuple[str, Any]] = []
    try:
        classes = type(value).__mro__
        for cls in classes:
            slots = cls.__dict__.get("__slots__")
            if slots is None:
                continue
            for name in [slots] if isinstance(slots, str) else list(slots)[:_MAX_OBJECT_ATTRIBUTES]:
                slot = cls.__dict__.get(name) if type(name) is str else None
                if type(slot) is not MemberDescriptorType or not is_secret_key(name):
                    continue
                with contextlib.suppress(AttributeError):  # (a slot never set)
                    found.append((name, slot.__get__(value, cls)))
    except Exception:  # (a class whose slots cannot be read: none of them)
        return found
    return found


#: A name: letters alone, or words of them joined by ``_``, ``-``, ``.`` or a space.
_NAME = re.compile(r"[A-Za-z]+(?:[-_. ][A-Za-z]+)*")
_NAME_SEPARATOR = re.compile(r"[-_. ]")
#: The words of a name written in camelCase (``myApiKey``, ``HTTPSProxy``): a capital and the
#: small letters after it, small letters, or capitals not followed by small ones.
_CAMEL_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+")
#: Longest word of a name, in letters (``authentication`` has 14): a longer run of letters is
#: a token's (``sk_live_abcdefghijklmnop``).
_MAX_NAME_WORD = 15


def _reads_as_a_name(key: object) -> bool:
    """Whether a key of a mapping under a secret-looking name reads as the name of what it
    holds (``username``, ``X-Api-Key``), not as a secret used as a key (``sk-live-…``): text
    or bytes of words of letters joined by ``_ - .`` or a space, each of them words written
    in camelCase or not (see :func:`_reads_as_words`). A key of another type counts as a name,
    except an int.

    A token of letters alone that passes (a random one of 12 letters in one case always does,
    one mixed in case about one time in three) reads as a name: no rule on letters alone tells
    it from a name made of abbreviations (``xmlrpclib``, ``plpgsql``, ``sslctx``)."""
    if isinstance(key, (bytes, bytearray)):
        key = bytes(key).decode("latin-1")
    if isinstance(key, str):
        return _NAME.fullmatch(key) is not None and all(
            map(_reads_as_words, _NAME_SEPARATOR.split(key))
        )
    return not isinstance(key, int) or isinstance(key, bool)


def _reads_as_words(part: str) -> bool:
    """Whether letters read as words written in camelCase, or as one word: none of the words
    is longer than ``_MAX_NAME_WORD`` letters, and of four words or more, no more than half
    are of one or two letters (letters whose case changes every letter or two, as a random
    token's does, are no words)."""
    words = _CAMEL_WORD.findall(part)
    if any(len(word) > _MAX_NAME_WORD for word in words):
        return False
    return len(words) < 4 or 2 * sum(len(word) <= 2 for word in words) <= len(words)


#: Types of parameter values a tool cannot change in place.
_FLAT_VALUES = frozenset({str, int, float, bool, bytes, type(None)})


def held_secrets(found: list[str], most: int) -> list[str]:
    """Of ``found`` (as :func:`secret_values` gives them, longest first), those of its
    ``most`` longest secret values: a short one counts once with every way it is written
    after its name (``pin=q7``, ``'pin': 'q7'``, ``PIN=q7``…), all of which are kept."""
    counted: set[str] = set()
    kept: list[str] = []
    for form in found:
        secret = form.value if type(form) is _InField and form.value else form
        if secret not in counted:
            if len(counted) >= most:
                continue
            counted.add(secret)
        kept.append(form)
    return kept


def secret_values_before_run(params: Any, tool: Any = None) -> list[str] | None:
    """The secret values of a task's parameters, read before its tool runs, when the tool could
    take them out: ``None`` when ``params`` holds only flat values (strings, numbers), which a
    tool cannot change in place, so reading them afterwards finds the same.

    A tool given containers (a dict of headers, a list, an object) may take a secret out of
    one (``kwargs["headers"].pop("Authorization")``) and quote it in its error, after which the
    parameters no longer show it.

    ``tool``: the tool about to run, whose input model may declare secrets by type (see
    :func:`secret_fields_of_tool`; read only when the parameters hold containers).

    Never raises: parameters that cannot be walked (a mapping whose ``items()`` raises) give
    ``None`` here, and the reading after the run reports the fault where it is handled.
    """
    if params and type(params) is dict and not _FLAT_VALUES.issuperset(map(type, params.values())):
        try:
            return secret_values(params, secret_fields_of_tool(tool))
        except Exception:
            return None
    return None


#: Most keys, items, fields and marks :func:`parameters_snapshot` lists: twice as many as
#: :func:`secret_values` reads (``MAX_SECRET_SCAN_ITEMS``), each listed at a fraction of the
#: cost of reading it for secrets.
MAX_SNAPSHOT_ITEMS = 2 * MAX_SECRET_SCAN_ITEMS
#: Where a container ends in a :func:`parameters_snapshot`.
_END = object()
_PLAIN_CONTAINERS = (dict, list, tuple)
#: Values a :func:`parameters_snapshot` lists as they are: flat values, and pydantic's secret
#: types, which keep the value they were made with.
_SNAPSHOT_VALUES = _FLAT_VALUES | {SecretStr, SecretBytes}
_OBJECT_GETATTRIBUTE: Any = object.__getattribute__


def parameters_snapshot(params: Any) -> tuple[Any, ...] | None:
    """The objects ``params`` is made of, when it is a ``dict`` of plain values: strings,
    numbers, bytes, ``None``, pydantic's ``SecretStr`` and ``SecretBytes``, dicts, lists and
    tuples of them (of those exact types), and dataclass instances and pydantic models whose
    fields (see :func:`object_fields`) hold them, at most ``MAX_SNAPSHOT_ITEMS`` in all. Each
    container or object is listed, then its keys and items, or its type and its fields' names
    and values (depth first), then a mark for its end. ``None`` for any other ``params`` (and
    for one changed while it is listed).

    Two snapshots that list the same objects (``is``) in the same order are of parameters
    that hold the same secrets: a plain value cannot change in place, and a container or an
    object changed in place (an item or a field replaced, added or taken out) lists other
    objects. An object's fields are listed as stored (its ``__dict__``, and a model's extra
    fields), without running its code: an object whose reading may give other values than
    those stored (its class has its own ``__getattribute__``, a property or another data
    descriptor in place of a field, or it stores its fields elsewhere, in slots) makes the
    snapshot ``None``, and such parameters are read for their secrets each time."""
    if type(params) is not dict:
        return None
    found: list[Any] = []
    try:
        if not _snapshot_into(params, found, 0):
            return None
    except RuntimeError:  # (changed by another thread while listed)
        return None
    return tuple(found)


def _snapshot_into(value: Any, found: list[Any], depth: int) -> bool:
    """List ``value`` into ``found`` (see :func:`parameters_snapshot`); ``False`` when it is
    not made of plain values, or holds too many, or too deep."""
    kind = type(value)
    if kind in _SNAPSHOT_VALUES:
        found.append(value)
        return True
    if depth > _MAX_DEPTH:
        return False
    found.append(value)
    if kind is dict:
        pairs = tuple(value.items())
        if len(found) + 2 * len(pairs) >= MAX_SNAPSHOT_ITEMS:
            return False
        for key, item in pairs:
            if not (
                _snapshot_into(key, found, depth + 1) and _snapshot_into(item, found, depth + 1)
            ):
                return False
    elif kind in _PLAIN_CONTAINERS:
        items = tuple(value)
        if len(found) + len(items) >= MAX_SNAPSHOT_ITEMS:
            return False
        for item in items:
            if not _snapshot_into(item, found, depth + 1):
                return False
    else:
        fields = _stored_fields(value, kind)
        if fields is None or len(found) + 2 * len(fields) >= MAX_SNAPSHOT_ITEMS:
            return False
        found.append(kind)  # (the class says which of them are read, and how)
        for name, item in fields:
            found.append(name)
            if not _snapshot_into(item, found, depth + 1):
                return False
    found.append(_END)
    return True


def _stored_fields(value: Any, kind: type) -> tuple[tuple[str, Any], ...] | None:
    """The fields of a dataclass instance or a pydantic model as stored, which reading them
    gives (see :func:`parameters_snapshot`): all those of a model's ``__dict__`` and its
    extra fields, or a dataclass's declared ones; ``None`` for any other value, or one whose
    reading may give other values."""
    try:
        if isinstance(value, BaseModel):  # (read as object_fields reads it)
            stored = value.__dict__
            extra = value.__pydantic_extra__
            if type(stored) is not dict or (extra is not None and type(extra) is not dict):
                return None
            return (*stored.items(), *extra.items()) if extra else tuple(stored.items())
        declared = getattr(kind, "__dataclass_fields__", None)
        if declared is None or kind.__getattribute__ is not _OBJECT_GETATTRIBUTE:
            return None
        stored = vars(value)
        fields: list[tuple[str, Any]] = []
        for declared_field in dataclasses.fields(value):
            key = declared_field.name
            if key not in stored or hasattr(type(getattr(kind, key, None)), "__set__"):
                return None  # (stored elsewhere, or read through a descriptor)
            fields.append((key, stored[key]))
        return tuple(fields)
    except Exception:  # (an object whose class or fields cannot be looked at)
        return None


def secret_values_now_and_before(
    params: Any, before: list[str] | None, fields: SecretFields | None = None
) -> list[str]:
    """:func:`secret_values` of ``params`` (with the secret ``fields`` of the tool's input
    model) as they are now, with those read ``before`` the tool ran (see
    :func:`secret_values_before_run`), each once, longest first."""
    found = secret_values(params, fields)
    if before:
        found = sorted({*found, *before}, key=len, reverse=True)
    return found


def encoded_forms(secret: str) -> list[str]:
    """The forms in which ``secret`` may be written into text: itself, URL-encoded
    (``quote(secret, safe="")``, ``quote(secret)``, which keeps each ``/``, and
    ``quote_plus``; each also with the hex digits of its escapes in lower case, ``%2f``, as
    many encoders write them: see :func:`_lower_hex`; a text that mixes them, ``a%2fb%2Fc``,
    is searched with its own in capitals too: see :func:`_hex_in_capitals`),
    ``repr``-escaped (also as inside a longer text that holds a ``"``, each ``'`` written
    ``\\'``), JSON-escaped (with and without ``ensure_ascii``) and as ``ascii()`` writes it
    (``p\\xe4ss``), as the ``repr`` of its UTF-8 bytes (``p\\xc3\\xa4ss``), in base64,
    standard and URL-safe, also inside the base64 of a longer text (the characters that encode
    its bytes alone, at each of the three places it may start in a group of three bytes:
    ``user:password`` in a Basic ``Authorization`` header), and, when its
    ``repr`` passes 50 bytes, as pydantic quotes a rejected value in a ``ValidationError``
    (``input_value='sk-live-abc...xyz'``: the ``repr``'s first 25 and last 24 bytes), as HTML
    and XML escape it (``p&amp;ss``: see :func:`_markup_forms`), each
    once; and all of these again for the secret in the Unicode normalization forms NFC, NFD,
    NFKC and NFKD, where they differ from it (see :func:`_normalized`), and, of a secret
    holding characters that NFKC writes otherwise (full-width, mathematical, ligatures), each
    form with them so written, character by character (see :func:`_fold`: a text is searched
    with its own so written). Forms shorter than
    ``MIN_SCRUB_CHARS`` are left out (unless the form is ``secret`` itself). Each line of a
    secret of several lines (a PEM private key) of at least ``MIN_PREFIX_CHARS`` characters,
    without the white space around it, is a form of it too, as a text quoting that line alone
    writes it (see :func:`_line_forms`). A short secret written as the value of its name
    (from :func:`secret_values`) is its only form."""
    forms = [secret]
    if type(secret) is _InField or type(secret) is _Written:
        return forms if secret.isascii() else _with_folded(forms)
    for variant in _normalized(secret):
        written = repr(variant)
        encoded = (
            quote(variant, safe=""),
            quote(variant),  # (as ``quote`` is usually called: its default keeps each ``/``)
            quote_plus(variant),
        )
        for form in (
            variant,
            *encoded,
            *map(_lower_hex, encoded),  # (``%2f``, as many encoders write the hex digits)
            written[1:-1],
            # As repr writes it inside a longer text that also holds a '"': in single quotes,
            # each "'" of the secret written "\\'" (the repr of the secret alone uses '"').
            repr(variant + '"')[1:-2],
            json.dumps(variant)[1:-1],
            json.dumps(variant, ensure_ascii=False)[1:-1],
            # As ascii() writes it (p\xe4ss: the repr of an object under %a or !a).
            ascii(variant)[1:-1],
            ascii(variant + '"')[1:-2],
            # As the repr of its UTF-8 bytes (b'p\xc3\xa4ss': a header sent as bytes, quoted).
            repr(variant.encode("utf-8", "backslashreplace"))[2:-1],
            repr((variant + '"').encode("utf-8", "backslashreplace"))[2:-2],
            _pydantic_input_value(written),
            *_base64_forms(variant),
            *_markup_forms(variant),
        ):
            if form != secret and len(form) >= MIN_SCRUB_CHARS and form not in forms:
                forms.append(form)
    if "\n" in secret or "\r" in secret:
        forms += _line_forms(secret, forms)
    return forms if secret.isascii() else _with_folded(forms)


def _markup_forms(secret: str) -> tuple[str, ...]:
    """``secret`` as HTML and XML write it in a page or a document quoting it (a login form
    echoed back in an error page, a SOAP fault): its ``&``, ``<`` and ``>`` as entities, its
    quotes as ``html.escape`` writes them (``&quot;``, ``&#x27;``), as MarkupSafe (Jinja) and
    Go write them (``&#34;``, ``&#39;``), as XML's own entities (``&quot;``, ``&apos;``: PHP's
    ``htmlspecialchars`` with ``ENT_XML1``, .NET's ``SecurityElement.Escape``), or kept, as XML
    text keeps them; none for a secret holding none of these characters."""
    if not any(char in secret for char in "&<>\"'"):
        return ()
    text = html.escape(secret, quote=False)
    return (
        html.escape(secret),
        text,
        text.replace('"', "&#34;").replace("'", "&#39;"),
        text.replace('"', "&quot;").replace("'", "&apos;"),
    )


#: A percent-escape whose hex digits :func:`quote` writes in capitals (``%2F``).
_UPPER_HEX_ESCAPE = re.compile(r"%[0-9A-F]{2}")


def _lower_hex(encoded: str) -> str:
    """``encoded``, percent-encoded by :func:`quote`, with the hex digits of its escapes in
    lower case, as many encoders write them (``a%2fb%c3%a9``); its other letters as they are
    (``encoded`` itself when it holds no such digit). A text is searched for it as written:
    where a ``%`` just before it (``LIKE '%cafe%2f…'``) makes its first letters read as an
    escape's, the text with its escapes in capitals holds them otherwise (see
    :func:`_hex_in_capitals`)."""
    if "%" not in encoded:
        return encoded
    return _UPPER_HEX_ESCAPE.sub(lambda escape: escape[0].lower(), encoded)


#: A percent-escape with a hex digit in lower case (``%2f``, ``%c3``, ``%aB``).
_LOWER_HEX_ESCAPE = re.compile(r"%(?:[a-f][0-9A-Fa-f]|[0-9A-F][a-f])")
#: A run of percent-escapes (``%C3%a9``: a character's UTF-8 bytes; no two escapes overlap,
#: ``%`` being no hex digit), split on, each kept.
_HEX_ESCAPES = re.compile(r"((?:%[0-9A-Fa-f]{2})+)")


def _hex_in_capitals(text: str) -> tuple[str, ...]:
    """What ``text`` is searched in for the forms of secrets: ``text``, then, where it writes
    a percent-escape with a hex digit in lower case (``a%2fb%2Fc``: many encoders write them
    so, and URLs written by hand mix them, in one value too), ``text`` with the hex digits of
    each of its escapes in capitals, as :func:`quote` writes the forms of a secret (see
    :func:`encoded_forms`): so each is matched in either case, one form for every mix of
    them. Its other characters are kept, so the secret's own letters are matched as they are
    (but for those a ``%`` just before makes an escape's, matched in either case there: more
    is replaced, never less); both are as long, so a place in one is the same place in the
    other.

    ``text`` as written is searched too: a ``%`` just before a secret (``LIKE '%cafe…'``),
    or one a secret holds as its own character (``ab%2fcd``), is no escape there, and the
    letters after it are matched as they are (and a form with its escapes all in lower case
    there, see :func:`_lower_hex`)."""
    if "%" not in text or _LOWER_HEX_ESCAPE.search(text) is None:
        return (text,)
    parts = _HEX_ESCAPES.split(text)  # (the text between runs of escapes, then a run, ...)
    parts[1::2] = map(str.upper, parts[1::2])  # (a text full of them: a few calls)
    return (text, "".join(parts))


#: The Unicode normalization forms a text may be written in (see :func:`_normalized`).
_NORMAL_FORMS: tuple[Literal["NFC", "NFD", "NFKC", "NFKD"], ...] = ("NFC", "NFD", "NFKC", "NFKD")


def _normalized(text: str) -> list[str]:
    """``text``, then its Unicode normalization forms NFC and NFD where they differ (``ä`` as
    one code point and as ``a`` with a combining diaeresis: the same text, as another
    program may have written it), and its compatibility forms NFKC and NFKD (full-width
    ``ｋｅｙ`` as ``key``, the ligature ``ﬁ`` as ``fi``: as a library that normalizes its
    input writes it)."""
    variants = [text]
    if not text.isascii():
        for normal in _NORMAL_FORMS:
            variant = unicodedata.normalize(normal, text)
            if variant not in variants:
                variants.append(variant)
    return variants


#: Most characters :data:`_COMPATIBLE` keeps the compatibility form of: a text of a script of
#: its own (a few thousand characters) is read at the speed of a table; past them, a character
#: not yet met is looked up each time.
_MAX_COMPATIBLE_CODES = 16384


class _CompatibleTable(dict[int, "int | str"]):
    """For ``str.translate``: each code point to the compatibility form (NFKC) of its character,
    looked up when first met and kept (up to ``_MAX_COMPATIBLE_CODES`` of them): the code point
    itself when that is the same character, else the text NFKC makes of it (``ｈ`` and ``𝐡``
    as ``h``, the ligature ``ﬁ`` as ``fi``, ``⑩`` as ``10``)."""

    def __missing__(self, code: int) -> int | str:
        char = chr(code)
        normal = unicodedata.normalize("NFKC", char)
        found: int | str = code if normal == char else normal
        if len(self) < _MAX_COMPATIBLE_CODES:
            self[code] = found
        return found


_COMPATIBLE = _CompatibleTable((code, code) for code in range(128))


def _fold(text: str) -> tuple[str, list[int] | None]:
    """``text`` with each character whose compatibility form (NFKC) is another written in that
    form (full-width ``ｈｕｎｔｅｒ２``, mathematical ``𝐡𝐮𝐧𝐭𝐞𝐫𝟐``, circled ``①`` and
    superscript ``²`` digits as ASCII; the ligature ``ﬁ`` as ``fi``), each character on its
    own: a text is searched for secrets so, and what is found is replaced in ``text`` (which
    keeps its characters), so that a secret a text writes in such characters is found.

    With it, ``None`` when each character of ``text`` gives one, so that a place in one is the
    same place in the other; else the place in ``text`` of the character that gave each
    character (see :func:`_shown_start`, :func:`_shown_end`, :func:`_folded_place`). ``text``
    itself when it holds no such character; an ASCII text, or one in NFKC already, is not
    looked at further, nor one in NFKD (of characters that NFKD leaves as they are: NFKC too)."""
    if (
        text.isascii()
        or unicodedata.is_normalized("NFKC", text)
        or unicodedata.is_normalized("NFKD", text)
    ):
        return text, None
    folded = text.translate(_COMPATIBLE)
    if len(folded) == len(text):
        return (text if folded == text else folded), None
    widths = [
        len(form) if isinstance(form, str) else 1
        for form in map(_COMPATIBLE.__getitem__, map(ord, text))
    ]
    return folded, list(chain.from_iterable(map(repeat, range(len(text)), widths)))


def _folded(text: str) -> str:
    """``text`` as :func:`_fold` writes it."""
    return _fold(text)[0]


def _shown_start(origin: list[int] | None, index: int) -> int:
    """Where the character of a text that gave the character at ``index`` of its
    :func:`_fold` form begins (``origin`` as :func:`_fold` gives it)."""
    return index if origin is None else origin[index]


def _shown_end(origin: list[int] | None, end: int) -> int:
    """Where the character of a text that gave the character before ``end`` of its
    :func:`_fold` form ends: what ends at ``end`` there ends with the whole of it (a secret
    ending inside a ligature takes the ligature)."""
    return end if origin is None or end <= 0 else origin[end - 1] + 1


def _folded_place(origin: list[int] | None, index: int) -> int:
    """Where the character at ``index`` of a text begins in its :func:`_fold` form (past its
    end for ``index`` at or past the text's end)."""
    return index if origin is None else bisect_left(origin, index)


def _with_folded(forms: list[str]) -> list[str]:
    """``forms`` and, after them, each with its characters written in their compatibility
    forms where that differs (see :func:`_fold`), of the same kind (:class:`_InField` keeping
    its name and quotes, which may be longer so written)."""
    more: dict[str, None] = {}
    for form in forms:
        folded = _folded(form)
        if folded is form:
            continue
        if type(form) is _InField:
            head = len(_folded(form[: form.head]))
            tail = len(_folded(form[len(form) - form.tail :])) if form.tail else 0
            folded = _InField(folded, head, tail)
        elif type(form) is not str:
            folded = type(form)(folded)
        more[folded] = None
    return forms + [form for form in more if form not in forms]


#: A line of a key file's armor (``-----BEGIN PRIVATE KEY-----``): it names what the file
#: holds, as every such file does, and is no part of its secret.
_PEM_ARMOR = re.compile(r"-----(?:BEGIN|END)[A-Z0-9 ]*-----")


#: Most lines of a secret of several lines that are forms of it (see :func:`_line_forms`):
#: those of an 8192-bit RSA key's PEM file, and no more, as each costs every text scrubbed a
#: search for it.
MAX_SECRET_LINES = 128


def _line_forms(secret: str, forms: Sequence[str]) -> list[str]:
    """The lines of a secret of several lines (a PEM private key) that a text may quote alone
    (a parser quoting the line it rejected): each of at least ``MIN_PREFIX_CHARS`` characters
    without the white space around it, other than a key file's armor, and not in ``forms``
    already; those of its first ``MAX_SECRET_LINES`` lines."""
    lines: dict[str, None] = {}
    for line in secret.splitlines()[:MAX_SECRET_LINES]:
        line = line.strip()
        if (
            len(line) >= MIN_PREFIX_CHARS
            and line != secret
            and line not in forms
            and _PEM_ARMOR.fullmatch(line) is None
        ):
            lines[line] = None
    return list(lines)


def _binary_forms(data: bytes) -> list[_Written]:
    """The ways a text writes binary data that is not UTF-8 text (a key made of random bytes):
    in hex (lower and upper case) and in base64, standard and URL-safe, whole and inside the
    base64 of more data (see :func:`_base64_data_forms`)."""
    hexed = data.hex()
    whole = base64.b64encode(data).decode("ascii")
    forms = (
        hexed,
        hexed.upper(),
        whole,
        whole.replace("+", "-").replace("/", "_"),
        *_base64_data_forms(data),
    )
    return [_Written(form) for form in dict.fromkeys(forms) if len(form) >= MIN_SCRUB_CHARS]


def _base64_forms(secret: str) -> list[str]:
    """The base64 characters that encode ``secret``'s UTF-8 bytes alone (see
    :func:`_base64_data_forms`)."""
    return _base64_data_forms(secret.encode("utf-8", "backslashreplace"))


def _base64_data_forms(data: bytes) -> list[str]:
    """The base64 characters that encode ``data`` alone, in standard and URL-safe base64, at
    each of the three places it may start in a group of three bytes: so that it is found
    inside the base64 of a longer text (``user:password`` in a Basic ``Authorization``
    header). The characters that also encode a neighbouring byte are left out: at most two on
    each side, which carry a few of its bits."""
    forms: list[str] = []
    for offset in range(3):
        encoded = base64.b64encode(bytes(offset) + data).decode("ascii")
        # The characters whose 6 bits all lie in the secret's bytes.
        form = encoded[-(-8 * offset // 6) : 8 * (offset + len(data)) // 6]
        forms += (form, form.replace("+", "-").replace("/", "_"))
    return forms


def _pydantic_input_value(written: str) -> str:
    """How pydantic quotes a value whose ``repr`` is ``written`` in the message of a
    ``ValidationError`` when it passes 50 bytes: its first 25 bytes and last 24 (cut at
    character boundaries) around ``...`` (``""`` for a shorter one, quoted whole)."""
    data = written.encode("utf-8", "backslashreplace")
    if len(data) <= _PYDANTIC_INPUT_BYTES:
        return ""  # quoted whole: the repr-escaped form covers it
    head = data[:25].decode("utf-8", "ignore")
    tail = data[-24:].decode("utf-8", "ignore")
    return _CutValue(f"{head}...{tail}")


#: Longest ``repr`` pydantic quotes whole as a ``ValidationError``'s ``input_value``, in bytes.
_PYDANTIC_INPUT_BYTES = 50


def _with_encoded_forms(secrets: Iterable[str]) -> list[str]:
    """Every non-empty secret and its encoded forms, each once, longest first."""
    forms: dict[str, None] = {}
    for secret in secrets:
        if secret:
            forms.update(dict.fromkeys(encoded_forms(secret)))
    return sorted(forms, key=len, reverse=True)


class SecretForms(tuple[str, ...]):
    """Secret values (as :func:`secret_values` gives them) with every form each may be written
    in (see :func:`encoded_forms`), worked out once: a tuple of the values, which
    :func:`scrub`, :func:`scrub_head` and :func:`redact` take in place of the values, without
    working out the forms again (when the same secrets scrub many texts, as a running tool's
    progress messages)."""

    #: Every value and its encoded forms, each once, longest first.
    forms: tuple[str, ...]
    #: What a text is searched for to find each of ``forms`` (see :func:`_searched`).
    searched: tuple[str, ...]
    #: The forms whose suffixes and runs from inside are replaced too, and where each of their
    #: runs lies (see :class:`_FormIndex`).
    runs: _FormIndex

    def __new__(cls, secrets: Iterable[str] = ()) -> SecretForms:
        self = super().__new__(cls, secrets)
        self.forms = tuple(_with_encoded_forms(self))
        self.searched = tuple(map(_searched, self.forms))
        self.runs = _FormIndex(self.forms)
        return self


#: Forms of secrets past which a text longer than ``_LONG_TEXT`` characters is looked at
#: through a :class:`_FormIndex` (a fixed cost per character) rather than searched for each
#: form in turn (a cost per character and form, lower for a few forms).
_MANY_FORMS = 32
_LONG_TEXT = 8192


def _index_of(secrets: Iterable[str], forms: Sequence[str]) -> _FormIndex:
    """The :class:`_FormIndex` of ``forms``, the forms of ``secrets`` (made already for
    :class:`SecretForms`)."""
    if type(secrets) is SecretForms:
        return secrets.runs
    return _FormIndex(forms)


def _searched_of(secrets: Iterable[str], forms: Sequence[str]) -> Sequence[str]:
    """:func:`_searched` of each of ``forms``, the forms of ``secrets`` (worked out already for
    :class:`SecretForms`)."""
    if type(secrets) is SecretForms:
        return secrets.searched
    return [_searched(form) for form in forms]


def _forms_of(secrets: Iterable[str]) -> Sequence[str]:
    """Every secret of ``secrets`` and its encoded forms, each once, longest first (worked out
    already for :class:`SecretForms`)."""
    if type(secrets) is SecretForms:
        return secrets.forms
    return _with_encoded_forms(secrets)


def scrub(text: str, secrets: Iterable[str], limit: int | None = MAX_ERROR_BYTES) -> str:
    """Replace every occurrence of each secret in ``text``, then truncate to ``limit`` bytes.

    The encoded forms of each secret (see :func:`encoded_forms`: URL-encoded, the hex digits
    of the escapes in capitals or in lower case, mixed too, ``repr``- and JSON-escaped,
    base64, also inside the base64 of a longer text) are replaced too.
    So is each prefix and each suffix of a secret or of one of its forms at least
    ``MIN_PREFIX_CHARS`` characters long, wherever it occurs (a tool quoting a token's first or
    last characters, a text cut inside one before it got here), except a prefix no longer than
    the scheme of a URL-shaped one, or a suffix no longer than its address (see
    :func:`_tail`), or the white space a suffix would start with. So is each run of at least
    ``MIN_FRAGMENT_CHARS`` characters from inside such a form (see :class:`_FormIndex`),
    except one within the scheme or the address of a URL-shaped one. Occurrences that overlap
    (two secrets sharing characters where they meet, a secret repeating itself) are replaced
    together, by one ``[REDACTED]``: no character of any occurrence is left. So is a value
    pydantic quotes by its ends in a ``ValidationError`` (``input_value={'api_key':
    'sk-l...xyz'}``) when a secret was cut there: its first characters end the head, or its
    last ones start the tail.

    The text is searched with each of its characters in its compatibility form (NFKC, see
    :func:`_fold`), so that a secret it writes in full-width (``ｈｕｎｔｅｒ２``) or
    mathematical (``𝐡𝐮𝐧𝐭𝐞𝐫𝟐``) letters and digits, with a ligature (``ﬁ``) or circled or
    superscript digits is found; what is found is replaced in the text as written, each
    character that stands for several (a ligature) whole. An ASCII text is searched as it is,
    and, where it writes a percent-escape with a hex digit in lower case, with the hex digits
    of its escapes in capitals too (see :func:`_hex_in_capitals`).

    Args:
        text: Free text such as an error message or a traceback.
        secrets: Values to remove (see :func:`secret_values`).
        limit: Byte limit of the result; ``None`` keeps the full length.
    """
    forms = _forms_of(secrets)
    if forms:
        shown = text
        folded, origin = _fold(shown)  # (searched with its characters in compatibility forms)
        searched = _searched_of(secrets, forms)
        index = _index_of(secrets, forms)
        found: list[tuple[int, int]] = []
        # (and with the hex digits of its percent-escapes in capitals, where that differs)
        for text in _hex_in_capitals(folded):
            found += _occurrences_in(text, forms, searched, index)
        text = _replaced(shown, found, origin)
    if forms and "input_value=" in text:
        text = _CUT_INPUT_VALUE.sub(lambda match: _cut_input_value(match, forms), text)
    return truncate_bytes(text, limit) if limit is not None else text


def _occurrences_in(
    text: str, forms: Sequence[str], searched: Sequence[str], index: _FormIndex
) -> list[tuple[int, int]]:
    """Where ``text`` writes ``forms`` (the forms of secrets, ``searched`` what a text is
    searched for to find each, ``index`` their :class:`_FormIndex`), whole or in part, as
    :func:`scrub` replaces them (see :func:`_occurrences`)."""
    ends = index.tails
    if len(forms) > _MANY_FORMS and len(text) > _LONG_TEXT:
        # (a form of which no run of 8 characters is in the text needs no search for it)
        candidates, fragments = index.scan(text, 0, len(text))
        present = [forms[at] for at in sorted(candidates) if searched[at] in text]
        tails = [ends[at] for at in sorted(candidates) if at in ends and ends[at][1] in text]
    else:
        present = list(compress(forms, [part in text for part in searched]))
        tails = [tail for tail in ends.values() if tail[1] in text]
        fragments = index.fragments_in(text, 0, len(text))
    if not (present or tails or fragments):
        return []
    return _occurrences(text, present, tails, fragments)


def _takes_prefixes(form: str) -> bool:
    """Whether the prefixes of ``form`` are replaced too, not only ``form`` whole: it is
    longer than ``MIN_PREFIX_CHARS``, at most ``MAX_PREFIX_FORM_CHARS``, and no
    :class:`_InField` (replaced whole always)."""
    return MIN_PREFIX_CHARS < len(form) <= MAX_PREFIX_FORM_CHARS and type(form) is not _InField


def _searched(form: str) -> str:
    """What a text is searched for to find ``form`` written in it, whole or in part: its
    first ``MIN_PREFIX_CHARS`` characters when its prefixes are replaced too (every longer
    prefix of it is), else ``form`` itself."""
    return form[:MIN_PREFIX_CHARS] if _takes_prefixes(form) else form


def _written(text: str, at: int, form: str) -> int:
    """How many of ``form``'s first characters ``text`` writes at ``at``, where it writes at
    least :func:`_searched` of it: all of them, or the longest prefix it has there; ``0``
    when that prefix is no more than the scheme of a URL-shaped secret (see ``_URL_SCHEME``),
    which is kept."""
    size = len(form)
    if not _takes_prefixes(form) or text.startswith(form, at):
        return size
    low, high = MIN_PREFIX_CHARS, min(size - 1, len(text) - at)
    while low < high:  # (the longest prefix written there: found in a few comparisons)
        middle = (low + high + 1) // 2
        if text.startswith(form[:middle], at):
            low = middle
        else:
            high = middle - 1
    scheme = _URL_SCHEME.match(form)
    if scheme is not None and low <= scheme.end():
        return 0
    return low


def _first_written(text: str, form: str, searched: str, start: int, stop: int) -> tuple[int, int]:
    """Where ``text`` first writes ``form`` (whole, or a prefix of it that is more than the
    scheme of a URL: see :func:`_written`) from ``start``, beginning before ``stop``, and how
    many of its characters it writes there; ``(-1, 0)`` when it does not."""
    at = text.find(searched, start, stop)
    while at >= 0:
        written = _written(text, at, form)
        if written:
            return at, written
        at = text.find(searched, at + 1, stop)  # (a URL's scheme alone: kept)
    return -1, 0


def _run_end(text: str, form: str, searched: str, start: int, end: int) -> int:
    """Where the run of overlapping occurrences of ``form`` (whole or a prefix of it, see
    :func:`_written`) that starts at ``start`` with one ending at ``end`` ends: past every
    occurrence that starts inside it. Each place in the run is looked at once, and none when
    the run's last character and the next are not next to each other in the form, as in any
    occurrence that passes its end (a run of a secret's first characters cut short by
    another)."""
    size, width = len(form), len(searched)
    if searched is form:  # (whole occurrences alone, all as long: the last one reaches furthest)
        at = start
        while True:
            later = text.rfind(form, at + 1, end + size - 1)
            if later <= end - size:  # (none, or one ending inside the run)
                return end
            at, end = later, later + size
    looked = start + 1  # where occurrences not yet looked at may start
    last = len(text)
    while True:
        if text[end - 1 : end + 1] not in form:  # (one that passes end writes both)
            return end
        # (one starting before end - size + 1 cannot pass end: none is longer than form)
        low = max(looked, end - size + 1)
        furthest = end
        # From the right: the further left one starts, the less far it can reach, so the
        # look ends at the first that could not pass the furthest yet (a text repeating a
        # secret that repeats itself is not searched once per place).
        at = text.rfind(searched, low, end + width - 1)
        while at >= 0 and min(at + size, last) > furthest:
            furthest = max(furthest, at + _written(text, at, form))
            at = text.rfind(searched, low, at + width - 1)
        if furthest == end:
            return end
        looked, end = end, furthest


#: A form whose suffixes are replaced (see :func:`_tail`): the form, its last
#: ``MIN_PREFIX_CHARS`` characters (what a text is searched for to find one), and how many of
#: its last characters are kept when written alone (the address of a URL-shaped secret).
_Tail = tuple[str, str, int]


def _tail(form: str) -> _Tail:
    """The :data:`_Tail` of a form whose suffixes are replaced, as its prefixes are (see
    :func:`_takes_prefixes`): it, its last ``MIN_PREFIX_CHARS`` characters and the length of
    the address that ends a URL-shaped one (see ``_URL_USER_INFO``)."""
    user_info = _URL_USER_INFO.match(form)
    kept = 0 if user_info is None else len(form) - user_info.end()
    return form, form[-MIN_PREFIX_CHARS:], kept


def _tail_written(text: str, end: int, tail: _Tail, start: int) -> int:
    """How many of the last characters of ``tail``'s form ``text`` writes ending at ``end``
    (where it writes at least the last ``MIN_PREFIX_CHARS``), none of them before ``start``,
    and none of the white space they would start with (``Bearer sk-…`` quoted as ``token
    sk-…`` keeps its space); ``0`` when they are fewer than ``MIN_PREFIX_CHARS`` so, or no
    more than the address the form ends with, which is kept."""
    form, _, kept = tail
    size = len(form)
    if end - start >= size and text.startswith(form, end - size):
        low = size
    else:
        low, high = MIN_PREFIX_CHARS, min(size - 1, end - start)
        while low < high:  # (the longest suffix written there: found in a few comparisons)
            middle = (low + high + 1) // 2
            if text.startswith(form[size - middle :], end - middle):
                low = middle
            else:
                high = middle - 1
    while text[end - low].isspace() and low >= MIN_PREFIX_CHARS:
        low -= 1
    return low if low > kept and low >= MIN_PREFIX_CHARS else 0


def _first_tail(text: str, tail: _Tail, start: int, stop: int) -> tuple[int, int]:
    """Where the first suffix of ``tail``'s form that ``text`` writes from ``start`` (more
    than the address it ends with: see :func:`_tail_written`) begins, ending by ``stop``, and
    where it ends; ``(-1, 0)`` when there is none. One ending further on may begin earlier:
    those that can are looked at too, each once (none when the character before the first
    and its first are not next to each other in the form)."""
    form, searched, _ = tail
    size, width = len(form), len(searched)
    first, last = -1, 0
    at = text.find(searched, start, stop)
    while at >= 0:
        end = at + width
        if first >= 0:
            if end - size >= first:  # (none ending here or further on begins before first)
                break
            reach = end - first + 1  # (begins before first: writes text[first - 1 : end])
            if not text.startswith(form[size - reach :], first - 1):
                at = text.find(searched, at + 1, stop)
                continue
        written = _tail_written(text, end, tail, start)
        if written and (first < 0 or end - written < first):
            first, last = end - written, end
            if first == start or text[first - 1 : first + 1] not in form:
                break  # (one beginning earlier would write both)
        at = text.find(searched, at + 1, stop)
    return first, last


def _tail_run_end(text: str, tail: _Tail, start: int, end: int, stop: int | None = None) -> int:
    """Where the run of overlapping occurrences that starts at ``start`` and reaches ``end``
    ends once every suffix of ``tail``'s form that begins inside it is added (those ending
    after it make it longer); looked at no further once it passes ``stop``. Each place in the
    text is looked at about once: the furthest suffix first, then, when that one does not
    reach back into the run, the others from the left; none when the run's last character and
    the next are not next to each other in the form, as in any suffix that passes its end."""
    form, searched, _ = tail
    size, width = len(form), len(searched)
    looked = max(start, end - width + 1)  # (one found before this cannot pass end)

    def reaches(at: int, end: int) -> bool:
        """Whether the suffix that ends at ``at + width`` begins inside the run."""
        reach = at + width - end + 1  # (it must write text[end - 1 : at + width])
        if not text.startswith(form[size - reach :], end - 1):
            return False
        written = _tail_written(text, at + width, tail, start)
        return written > 0 and at + width - written < end

    while stop is None or end <= stop:
        if text[end - 1 : end + 1] not in form:  # (one that passes end writes both)
            return end
        # (one ending at end + size or later cannot reach back into the run)
        at = text.rfind(searched, looked, end + size - 1)
        if at < 0:
            return end
        if at + width > end and reaches(at, end):
            looked, end = at + 1, at + width
            continue
        while True:  # from the left: anchors that reach no further back are done with
            at = text.find(searched, looked, end + size - 1)
            if at < 0:
                return end
            looked = at + 1
            if at + width > end and reaches(at, end):
                end = at + width
                break
    return end


#: Characters of a text looked at, at each sampled place, to find the forms of secrets there.
_GRAM = 4
#: Places of a text sampled: every ``_STEP``-th, so that every run of ``MIN_PREFIX_CHARS``
#: characters holds the ``_GRAM`` characters of a sampled place.
_STEP = MIN_PREFIX_CHARS - _GRAM + 1
#: Most places inside one form (not within its first or last ``MIN_PREFIX_CHARS``
#: characters) where one run of ``_GRAM`` characters is noted: a form repeating itself (``xy``
#: 128 times) is not measured at each of them (its runs are found from the first places).
_MAX_GRAM_PLACES = 8


class _FormIndex:
    """Where each run of ``_GRAM`` characters lies in the forms of secrets, to find in a text,
    looking at one place in ``_STEP`` (a fixed cost per character of text, whatever the
    number of secrets), every run of ``MIN_PREFIX_CHARS`` characters or more that it shares
    with a form.

    Attributes:
        forms: The forms (as :func:`_with_encoded_forms` gives them).
        direct: The forms too short for that (under ``MIN_PREFIX_CHARS`` characters), searched
            for as they are.
        tails: The :func:`_tail` entry of each form whose suffixes are replaced, by its
            index in ``forms``.
        fragments: For each form whose runs from inside it are replaced too (longer than
            ``MIN_FRAGMENT_CHARS``), by index: the part of it that such a run must reach into
            (all of it; of a URL-shaped one, what follows its scheme up to its address, see
            ``_URL_SCHEME`` and ``_URL_USER_INFO``).
        anchors: The ``MIN_PREFIX_CHARS`` characters at every ``_STEP``-th place of those
            forms: every run of ``MIN_FRAGMENT_CHARS`` of one holds one of them, so a text
            holding none of them holds no such run (looked for before the table is made).
    """

    __slots__ = ("_grams", "anchors", "direct", "forms", "fragments", "tails")

    def __init__(self, forms: Sequence[str]) -> None:
        self.forms = forms
        self._grams: dict[str, list[tuple[int, int]]] | None = None
        self.fragments: dict[int, tuple[int, int]] = {}
        self.tails: dict[int, _Tail] = {}
        direct: list[int] = []
        anchors: dict[str, None] = {}
        for index, form in enumerate(forms):
            size = len(form)
            if size < MIN_PREFIX_CHARS:
                direct.append(index)
            elif _takes_prefixes(form):
                self.tails[index] = _tail(form)
                if size > MIN_FRAGMENT_CHARS and type(form) is not _CutValue:
                    self.fragments[index] = _secret_part(form)
                    for place in range(0, size - MIN_PREFIX_CHARS + 1, _STEP):
                        anchors[form[place : place + MIN_PREFIX_CHARS]] = None
        self.direct = tuple(direct)
        self.anchors = tuple(anchors)

    @property
    def grams(self) -> dict[str, list[tuple[int, int]]]:
        """Each run of ``_GRAM`` characters, with the ``(form, place)`` pairs where it lies:
        every place of a form whose prefixes are replaced (see :func:`_takes_prefixes`; of
        one whose runs from inside are, see :func:`_fragment_places`), the places of the
        first ``MIN_PREFIX_CHARS`` characters of any other. Made when first needed."""
        grams = self._grams
        if grams is not None:
            return grams
        grams = {}
        for index, form in enumerate(self.forms):
            size = len(form)
            if size < MIN_PREFIX_CHARS:
                continue
            places: Iterable[int]
            if index in self.fragments:
                places = _fragment_places(form)
            elif index in self.tails:  # (every place lies in its first or last characters)
                places = range(size - _GRAM + 1)
            else:
                places = range(_STEP)  # (its first MIN_PREFIX_CHARS characters)
            for place in places:
                gram = form[place : place + _GRAM]
                noted = grams.get(gram)
                if noted is None:
                    grams[gram] = [(index, place)]
                else:
                    noted.append((index, place))
        self._grams = grams
        return grams

    def fragments_in(self, text: str, start: int, stop: int) -> list[tuple[int, int]]:
        """Where ``text`` writes runs of ``MIN_FRAGMENT_CHARS`` or more from inside a form
        through places sampled from ``start`` to ``stop`` (see :meth:`scan`); none, without
        the table of runs, when no anchor lies near them."""
        if not self.fragments:
            return []
        low, high = max(start - MAX_PREFIX_FORM_CHARS, 0), stop + MAX_PREFIX_FORM_CHARS
        if not any(text.find(anchor, low, high) >= 0 for anchor in self.anchors):
            return []
        return self.scan(text, start, stop)[1]

    def scan(self, text: str, start: int, stop: int) -> tuple[set[int], list[tuple[int, int]]]:
        """The forms of which ``text`` writes a run of ``MIN_PREFIX_CHARS`` characters or more
        through a sampled place from ``start`` to ``stop`` (the places of a text are sampled
        at multiples of ``_STEP``, wherever the search starts), with the ``direct`` forms; and
        where it writes a run of ``MIN_FRAGMENT_CHARS`` or more of a form whose runs are
        replaced (see :func:`_fragment`), as ``(start, end)``, each the longest there.

        Every run that long of a form in ``text[start:stop]`` holds a sampled place, so every
        one is found (but for a form in which one run of ``_GRAM`` characters recurs more
        than ``_MAX_GRAM_PLACES`` times, whose runs are found from the first of those places);
        samples inside a run found already are skipped, except near its end (where a run of
        another form may go on from it)."""
        grams, forms, fragments = self.grams, self.forms, self.fragments
        found = set(self.direct)
        spans: list[tuple[int, int]] = []
        covered_from, covered = -1, -1  # the runs found that overlap the one ending furthest
        first = -(-start // _STEP) * _STEP
        last = min(stop, len(text) - _GRAM + 1)
        for at in [at for at in range(first, last, _STEP) if text[at : at + _GRAM] in grams]:
            if at < covered - MIN_FRAGMENT_CHARS:
                continue
            for index, place in grams[text[at : at + _GRAM]]:
                form = forms[index]
                part = fragments.get(index)
                if part is None:  # (only whether it is there, as a run of 8 or more)
                    if index not in found and _holds_run(text, at, form, place):
                        found.add(index)
                    continue
                if (
                    at < covered
                    and index in found
                    and (
                        (at - place >= covered_from and at + len(form) - place <= covered)
                        or _within(text, at, form, place, covered_from, covered)
                    )
                ):
                    continue  # (a text repeating a form: the same run again, at another place)
                begin, end = _run_at(text, at, form, place)
                if end - begin < MIN_PREFIX_CHARS:
                    continue
                found.add(index)
                if end - begin < MIN_FRAGMENT_CHARS:
                    continue
                span = _fragment(text, begin, end, place - (at - begin), part)
                if span is not None:
                    spans.append(span)
                    if span[0] <= covered:
                        covered_from, covered = min(covered_from, span[0]), max(covered, span[1])
                    else:
                        covered_from, covered = span
        return found, spans


def _holds_run(text: str, at: int, form: str, place: int) -> bool:
    """Whether ``text`` writes ``MIN_PREFIX_CHARS`` characters of ``form`` in a row through
    ``at``, where ``text[at:at + _GRAM]`` writes ``form[place:place + _GRAM]``."""
    width = MIN_PREFIX_CHARS
    for back in range(max(0, place + width - len(form)), min(place, at, width - _GRAM) + 1):
        if text.startswith(form[place - back : place - back + width], at - back):
            return True
    return False


def _within(text: str, at: int, form: str, place: int, begin: int, end: int) -> bool:
    """Whether the run of ``text`` around ``at`` that writes ``form`` around ``place`` (see
    :func:`_run_at`) lies within ``text[begin:end]`` (``begin <= at < end``): it does not write
    the character before ``begin``, nor the one at ``end``."""
    ahead = end + 1 - at
    if text.startswith(form[place : place + ahead], at) and place + ahead <= len(form):
        return False
    back = at - begin + 1
    return place < back or begin == 0 or not text.startswith(form[place - back : place], begin - 1)


def _fragment_places(form: str) -> Iterable[int]:
    """The places of ``form`` noted in a :class:`_FormIndex`: all of them, except that a run
    of ``_GRAM`` characters is noted at no more than ``_MAX_GRAM_PLACES`` places away from the
    first and last ``MIN_PREFIX_CHARS`` characters (where every place is noted)."""
    size = len(form)
    count = size - _GRAM + 1
    if len({form[place : place + _GRAM] for place in range(count)}) == count:
        return range(count)  # (no run twice: as in most secrets)
    places: list[int] = []
    counts: dict[str, int] = {}
    for place in range(count):
        if _STEP <= place < size - MIN_PREFIX_CHARS:
            gram = form[place : place + _GRAM]
            seen = counts.get(gram, 0)
            if seen >= _MAX_GRAM_PLACES:
                continue
            counts[gram] = seen + 1
        places.append(place)
    return places


def _secret_part(form: str) -> tuple[int, int]:
    """The part of ``form`` a run of it must reach into to be replaced (see
    :class:`_FormIndex`): all of it, or, of a URL-shaped form, what follows its scheme, up to
    its address when it has user information."""
    scheme = _URL_SCHEME.match(form)
    if scheme is None:
        return 0, len(form)
    user_info = _URL_USER_INFO.match(form)
    return scheme.end(), len(form) if user_info is None else user_info.end()


def _run_at(text: str, at: int, form: str, place: int) -> tuple[int, int]:
    """Where the longest run of ``text`` around ``at`` that writes ``form`` around ``place``
    (where ``text[at:at + _GRAM]`` writes ``form[place:place + _GRAM]``) begins and ends:
    found in a few comparisons each way."""
    low, high = _GRAM, min(len(form) - place, len(text) - at)
    while low < high:
        middle = (low + high + 1) // 2
        if text.startswith(form[place : place + middle], at):
            low = middle
        else:
            high = middle - 1
    end = at + low
    low, high = 0, min(place, at)
    while low < high:
        middle = (low + high + 1) // 2
        if text.startswith(form[place - middle : place], at - middle):
            low = middle
        else:
            high = middle - 1
    return at - low, end


def _fragment(
    text: str, begin: int, end: int, place: int, part: tuple[int, int]
) -> tuple[int, int] | None:
    """The run ``text[begin:end]``, which writes its form from ``place``, as replaced: without
    the white space it starts or ends with, when it is still ``MIN_FRAGMENT_CHARS`` long and
    reaches into ``part`` of its form; else ``None``."""
    while begin < end and text[begin].isspace():
        begin += 1
        place += 1
    while end > begin and text[end - 1].isspace():
        end -= 1
    if end - begin < MIN_FRAGMENT_CHARS or place >= part[1] or place + end - begin <= part[0]:
        return None
    return begin, end


def _occurrences(
    text: str,
    forms: Sequence[str],
    tails: Sequence[_Tail] = (),
    fragments: Sequence[tuple[int, int]] = (),
) -> list[tuple[int, int]]:
    """The ``(start, end)`` of every occurrence in ``text`` of ``forms`` (whole, or a prefix
    of at least ``MIN_PREFIX_CHARS`` characters), of the forms of ``tails`` (a suffix of as
    many) and of ``fragments`` (the places of runs from inside a form, see
    :meth:`_FormIndex.scan`), each run of overlapping occurrences of one form as one; all
    found in ``text`` as given, before any is replaced (see :func:`_replaced`), so a form
    inside the ``[REDACTED]`` that replaces another is never replaced there."""
    found: list[tuple[int, int]] = list(fragments)  # runs of overlapping occurrences
    for tail in tails:
        start, end = _first_tail(text, tail, 0, len(text))
        while start >= 0:
            end = _tail_run_end(text, tail, start, end)
            found.append((start, end))
            start, end = _first_tail(text, tail, end, len(text))
    for form in forms:
        size = len(form)
        if type(form) is _InField:  # (only its value is replaced: its name is kept)
            start = text.find(form)
            while start >= 0:
                found.append((start + form.head, start + size - form.tail))
                start = text.find(form, start + size)
            continue
        searched = _searched(form)
        start, written = _first_written(text, form, searched, 0, len(text))
        while start >= 0:
            end = _run_end(text, form, searched, start, start + written)
            found.append((start, end))
            start, written = _first_written(text, form, searched, end, len(text))
    return found


def _replaced(text: str, found: list[tuple[int, int]], origin: list[int] | None = None) -> str:
    """``text`` with every character of each of ``found`` (places where a form of a secret
    lies, see :func:`_occurrences`) replaced: each run of overlapping ones becomes one
    ``[REDACTED]``. They are places in the :func:`_fold` form of ``text``, of which
    ``origin`` says where each character comes from in ``text``: each is replaced with the
    whole of every character of ``text`` that gave one of its characters."""
    if not found:  # (only the scheme of a URL-shaped secret was there)
        return text
    if origin is not None:
        found = [(origin[start], _shown_end(origin, end)) for start, end in found]
    found.sort()
    parts: list[str] = []
    kept = 0  # where the text not yet written starts
    run_start, run_end = found[0]
    for start, end in found[1:]:
        if start < run_end:  # overlaps the run: one marker for both
            run_end = max(run_end, end)
            continue
        parts += (text[kept:run_start], REDACTED)
        kept = run_end
        run_start, run_end = start, end
    parts += (text[kept:run_start], REDACTED, text[run_end:])
    return "".join(parts)


#: Longest traceback logged by :func:`scrubbed_traceback`, in UTF-8 bytes.
MAX_TRACEBACK_BYTES = 8192


def scrubbed_traceback(exc: BaseException, secrets: Sequence[str]) -> str:
    """The traceback of ``exc`` (raised by a caller's callback or listener) as a log record
    shows it: scrubbed of ``secrets``, at most ``MAX_TRACEBACK_BYTES`` bytes.

    Only as much of the traceback is scrubbed as the bytes kept need (see :func:`scrub_head`),
    so an exception with a message of many megabytes costs no more than a short one."""
    return scrub_within(exception_traceback(exc), secrets, MAX_TRACEBACK_BYTES)


_TRACEBACK_OF: Any = BaseException.__dict__["__traceback__"]


def exception_traceback(exc: BaseException) -> str:
    """The traceback of ``exc`` as Python prints it; never raises.

    When Python's own formatting fails on it (its class's name, its ``__notes__`` or its
    ``__traceback__`` raise), its frames and a last line naming its class (see
    :func:`qualified_type_name`) and giving its message, without its causes.
    """
    try:
        return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    except Exception:
        pass
    lines = []
    with contextlib.suppress(Exception):
        tb = _TRACEBACK_OF.__get__(exc)
        if tb is not None:
            lines.append("Traceback (most recent call last):\n")
            lines.extend(traceback.format_tb(tb))
    try:
        message = str(exc)
        if type(message) is not str:
            raise TypeError("not text")
    except Exception:
        message = "<exception str() failed>"
    name = qualified_type_name(type(exc))
    lines.append(f"{name}: {message}\n" if message else f"{name}\n")
    return "".join(lines)


#: A long value pydantic quotes in a ``ValidationError`` as its first 25 and last 24 bytes.
_CUT_INPUT_VALUE = re.compile(
    r"(?<=input_value=)([^\n]{0,25}?)\.\.\.([^\n]{0,24}?)(?=, input_type=)"
)


#: Longest text :data:`_CUT_INPUT_VALUE` matches after ``input_value=``, in characters.
_CUT_INPUT_VALUE_CHARS = 25 + 3 + 24 + len(", input_type=")


def _cut_input_value(match: re.Match[str], forms: Sequence[str]) -> str:
    """The quoted ends of a rejected value (``head...tail``), or ``[REDACTED]`` when a secret
    was cut there: the head ends with a secret's first characters, or the tail starts with
    its last ones (at least ``MIN_SCRUB_CHARS`` of them)."""
    head, tail = match.group(1), match.group(2)
    for form in forms:
        if type(form) is _InField:  # (a name and a short value: no secret's ends)
            continue
        longest = len(form) - 1
        for size in range(MIN_SCRUB_CHARS, min(longest, len(head)) + 1):
            if head.endswith(form[:size]):
                return REDACTED
        for size in range(MIN_SCRUB_CHARS, min(longest, len(tail)) + 1):
            if tail.startswith(form[-size:]):
                return REDACTED
    return match.group(0)


def scrub_within(text: str, secrets: Iterable[str], limit: int) -> str:
    """``text`` with every secret replaced, then cut to ``limit`` bytes of UTF-8 (see
    :func:`truncate_bytes`), reading only as much of ``text`` as the bytes kept need (see
    :func:`scrub_head`): a text of many megabytes costs no more than a short one."""
    # (a character takes at least one byte: the first limit + 1, scrubbed before the cut,
    # hold every byte kept, and say whether the text went on)
    return truncate_bytes(scrub_head(text, secrets, limit + 1), limit)


def scrub_head(text: str, secrets: Iterable[str], chars: int) -> str:
    """``text`` with every secret replaced (as :func:`scrub` does), then cut to ``chars``
    characters, the cut marked with ``…``.

    The secrets are replaced before the cut, so a secret that straddles it leaves none of its
    characters behind; only as much of ``text`` is searched as the characters kept need,
    however long ``text`` is.
    """
    copier = _Copier(secrets if type(secrets) is SecretForms else list(secrets), None)
    # (read past the cut: a value pydantic quoted by its ends may straddle it)
    head = copier.scrub_head(text, chars + 1 + _CUT_INPUT_VALUE_CHARS)
    if copier.secrets and "input_value=" in head:
        head = _CUT_INPUT_VALUE.sub(lambda match: _cut_input_value(match, copier.secrets), head)
    if len(head) <= chars:
        return head
    return head[: max(chars - 1, 0)] + "…"


def redact(
    value: Any,
    secrets: Sequence[str] = (),
    *,
    limit: int | None = MAX_VALUE_BYTES,
    fields: SecretFields | None = None,
    string_chars: int = MAX_STRING_CHARS,
) -> Any:
    """A JSON-ready copy of ``value`` with secrets replaced and long strings cut.

    Values under secret-looking keys, and under the places ``fields`` declares secret (the
    :func:`secret_fields` of a tool's input model, for its parameters), become
    ``"[REDACTED]"``; every occurrence of one of
    ``secrets`` (or of one of its encoded forms, see :func:`encoded_forms`) inside a string or
    a key (and a number equal to one) is replaced too, so a secret repeated under an ordinary
    key or echoed in a result does not leak. A dataclass instance, a pydantic model, an
    ``attrs`` instance or a namespace becomes a mapping of the fields its ``repr`` shows (see
    :func:`object_fields`), so its secret-named fields are redacted like keys; a named tuple
    stays a list, its items under secret-looking field names redacted; in a list, tuple or
    set, a ``(name, value)`` pair whose name looks secret keeps its name and has its value
    redacted (see :func:`is_secret_pair`). Strings longer than ``string_chars`` (keys and
    values; ``MAX_STRING_CHARS`` unless told) are truncated;
    anything else not JSON-native becomes its ``repr`` (truncated), and a NaN or infinite
    float the string ``"NaN"``, ``"Infinity"`` or ``"-Infinity"``, so the JSON is strict. Nesting
    deeper than 8 levels is replaced by ``"…"``.

    Keys that become equal once cut or scrubbed keep the last value, in the place of the
    first (as in a ``dict`` built from them).

    The copy stops once its compact JSON passes ``limit`` bytes (``None``: no limit), so the
    work done depends on ``limit``, not on the size of ``value``: every container still being
    copied at that point ends with a ``"…"`` item (a ``"…": "…"`` entry in a mapping). Up to
    its first ``limit`` bytes, the JSON of the copy is that of the complete copy (unless more
    than ``limit`` keys became equal to earlier ones, which also stops the copy).
    """
    copier = _Copier(secrets, limit, string_chars)
    return copier.copy(value, 0, fields)


class _Copier:
    """One :func:`redact` run: the secrets to replace and the work done so far.

    ``size`` counts the characters of the compact JSON of the copy written so far, a lower
    bound of its UTF-8 bytes (JSON escapes only add to a string); once it passes ``limit``,
    containers take no more items. ``repeated`` counts mapping keys that became equal to an
    earlier key once cut or scrubbed: they add nothing to ``size`` but cost work all the same.
    """

    __slots__ = (
        "chars",
        "limit",
        "longest",
        "named",
        "numbers",
        "repeated",
        "runs",
        "searched",
        "secrets",
        "size",
        "tails",
    )

    def __init__(
        self, secrets: Sequence[str], limit: int | None, chars: int = MAX_STRING_CHARS
    ) -> None:
        self.chars = chars
        self.numbers = frozenset(s for s in secrets if s)
        self.secrets = _forms_of(secrets)
        # Short secrets by the name they are secret under, as name=value (see _field_forms),
        # worked out once a mapping holds a short value.
        self.named: frozenset[str] | None = None
        self.searched = _searched_of(secrets, self.secrets)
        self.runs = _index_of(secrets, self.secrets) if self.secrets else None
        self.tails = () if self.runs is None else tuple(self.runs.tails.values())
        self.longest = max(map(len, self.secrets), default=0)
        self.limit = limit
        self.size = 0
        self.repeated = 0

    def full(self) -> bool:
        """Whether the copy has passed its byte limit."""
        limit = self.limit
        return limit is not None and (self.size > limit or self.repeated > limit)

    def copy(self, value: Any, depth: int, declared: SecretFields | None = None) -> Any:
        """The redacted copy of ``value`` found ``depth`` levels down (where ``declared``
        says which of its parts are secret by type)."""
        if depth > _MAX_DEPTH:
            return self.string("…")
        if isinstance(value, Mapping):
            if type(value) is dict:
                size, repeated = self.size, self.repeated
                try:
                    return self.copy_pairs(value.items(), depth, declared)
                except RuntimeError:  # (changed size while read: by another thread, say)
                    self.size, self.repeated = size, repeated
                    # (a copy made in one step: nothing can change it while it is read)
                    return self.copy_pairs(dict.copy(value).items(), depth, declared)
            size = self.size
            try:
                return self.copy_pairs(_read(value, pairs=True), depth, declared)
            except _Unreadable:  # (a lazy row whose connection is gone)
                return self.unreadable(value, size)
        if isinstance(value, (list, tuple, set, frozenset)):
            if type(value) is set:
                size, repeated = self.size, self.repeated
                try:
                    return self.copy_items(value, depth, declared)
                except RuntimeError:  # (changed size while read, as a dict may)
                    self.size, self.repeated = size, repeated
                    return self.copy_items(value, depth, declared, tuple(value))
            if type(value) in _PLAIN_COLLECTIONS:
                return self.copy_items(value, depth, declared)
            return self.copy_readable_items(value, depth, declared)
        if value is None or isinstance(value, bool):
            self.size += 5 if value is False else 4  # null, true, false
            return value
        if isinstance(value, (int, float)):
            try:
                if self.numbers and str(value) in self.numbers:
                    return self.string(REDACTED)
                if isinstance(value, float) and not math.isfinite(value):
                    # json would write NaN or Infinity, which strict JSON parsers refuse.
                    return self.string(_NON_FINITE[float.__repr__(value)])
                # json writes an int or float subclass as the plain number.
                number = int.__repr__(value) if isinstance(value, int) else float.__repr__(value)
            except ValueError:  # an int with too many digits to print
                value = _int_too_long(value) or _safe_repr(value)
            else:
                self.size += len(number)
                return value
        if isinstance(value, str):
            return self.string(self.text(value, self.chars))
        if isinstance(value, UserString):  # (text, though a sequence of letters)
            data = _user_string_text(value)
            if data is not None:
                return self.string(self.text(data, self.chars))
        if is_collection(value):  # (a deque, a dict's view: copied as a list)
            return self.copy_readable_items(value, depth, declared)
        fields = object_fields(value, hidden=False)
        if fields is not None:
            return self.copy_pairs(fields, depth, declared)
        return self.string(self.text(_safe_repr(value), self.chars))

    def copy_readable_items(
        self, value: Any, depth: int, declared: SecretFields | None = None
    ) -> list[Any] | str:
        """:meth:`copy_items` of a collection of another type than the built-in ones, whose
        items may not be readable (see :meth:`unreadable`)."""
        size = self.size
        try:
            return self.copy_items(value, depth, declared, _read(value, pairs=False))
        except _Unreadable:
            return self.unreadable(value, size)

    def unreadable(self, value: Any, size: int) -> str:
        """What a container whose items cannot be read (listing them raised) is written as:
        a placeholder naming its type, not its ``repr``, which may show what the secret
        search could not read; ``size`` is the copy's size before the container began."""
        self.size = size
        name = self.text(type_name(type(value)), self.chars)
        return self.string(f"<{name} object (its items could not be read)>")

    def string(self, text: str) -> str:
        """Count ``text`` as a JSON string of the copy and return it."""
        self.size += len(text) + 2
        return text

    def copy_pairs(
        self,
        pairs: Iterable[tuple[Any, Any]],
        depth: int,
        declared: SecretFields | None = None,
    ) -> dict[str, Any]:
        """The redacted copy of ``(key, value)`` pairs (a mapping's, an object's fields), as a
        mapping with string keys (pairs are read only while the copy is within its limit)."""
        out: dict[str, Any] = {}
        sizes: dict[str, int] = {}  # what each value added to `size`
        self.size += 1  # "{"; "}" once written
        for key, inner in pairs:
            if self.full():
                out.setdefault("…", "…")
                break
            name = self.text(
                key if isinstance(key, str) else _safe_str(key), self.chars, mark=False
            )
            if name in out:  # the last value wins, in the place of the first
                self.repeated += 1
                self.size -= sizes[name]
            else:
                self.size += len(name) + 3 + (1 if out else 0)  # "name": and a comma
            before = self.size
            under = None if declared is None else declared.inner(key)
            if under is True or _is_secret_name(key) or self.named_secret(key, inner):
                out[name] = self.string(REDACTED)
            elif under is None:
                out[name] = self.copy(inner, depth + 1)
            else:
                out[name] = self.copy(inner, depth + 1, _node(under))
            sizes[name] = self.size - before
        self.size += 1
        return out

    def named_secret(self, key: Any, value: Any) -> bool:
        """Whether ``value`` is a secret too short to scrub from free text held under the name
        it is secret under (``{"pin": "q7"}``): written as the value of that name."""
        if type(key) is not str or isinstance(value, bool):
            return False
        if isinstance(value, str):
            written = value
        elif isinstance(value, int):
            try:
                written = int.__repr__(value)
            except ValueError:  # (too many digits to print: no short secret)
                return False
        else:
            return False
        if len(written) >= MIN_SCRUB_CHARS or not written:
            return False
        if self.named is None:
            self.named = frozenset(str(s) for s in self.secrets if type(s) is _InField)
        # (a name percent-encoded as a form's is, the hex digits of its escapes in capitals)
        return any(f"{name}={written}" in self.named for name in _hex_in_capitals(key))

    def copy_items(
        self,
        value: Iterable[Any],
        depth: int,
        declared: SecretFields | None = None,
        items: Iterable[Any] | None = None,
    ) -> list[Any]:
        """The redacted copy of a list, tuple or set (as a list; a named tuple's items whose
        field names look secret redacted), read from ``items`` when given (``value``'s items,
        read through :func:`_read`)."""
        under = None if declared is None else declared.items
        each = _node(under)  # (what each item declares)
        # A named tuple's items are its fields: one with a secret-looking name is redacted.
        names = named_tuple_fields(value)
        secret_at = () if names is None else [_is_secret_name(name) for name in names]
        out: list[Any] = []
        self.size += 1  # "["; "]" once written
        for index, inner in enumerate(value if items is None else items):
            if self.full():
                out.append("…")
                break
            if out:
                self.size += 1  # a comma
            if under is True or (secret_at and secret_at[index]):
                out.append(self.string(REDACTED))
            elif is_secret_pair(inner):
                out.append(self.copy_secret_pair(inner, depth + 1))
            else:
                out.append(self.copy(inner, depth + 1, each))
        self.size += 1
        return out

    def copy_secret_pair(self, pair: Sequence[Any], depth: int) -> Any:
        """The redacted copy of a ``(name, value)`` pair whose name looks secret (see
        :func:`is_secret_pair`): its name, and ``[REDACTED]`` for its value."""
        if depth > _MAX_DEPTH:
            return self.string("…")
        self.size += 3  # "[", "," and "]"
        return [self.copy(pair[0], depth + 1), self.string(REDACTED)]

    def text(self, text: str, chars: int, mark: bool = True) -> str:
        """``text`` with every secret replaced, cut to ``chars`` characters (ending in ``…``
        when ``mark``), reading no more of ``text`` than those characters need."""
        head = self.scrub_head(text, chars + 1)
        if len(head) > chars:
            head = head[: chars - 1] + "…" if mark else head[:chars]
        return utf8_text(head)

    def scrub_head(self, text: str, chars: int) -> str:
        """The first ``chars`` characters of ``text`` with every occurrence of a secret
        replaced by ``[REDACTED]`` (left to right; where several start, the longest wins, and
        occurrences overlapping it are replaced with it, by the same marker).

        Only ``text`` up to the last character kept plus the longest secret is searched (and,
        where a run of overlapping occurrences crosses that point, as far again: a run longer
        than that, as only a pathological text makes, ends the text with its marker). It is
        searched with its characters in their compatibility forms (see :func:`_fold`): as
        much of it as that search reads, ``window``, grown as it goes on, and that with the hex
        digits of its percent-escapes in capitals too, where that differs (see
        :func:`_hex_in_capitals`); ``chars`` counts the characters of ``text`` as written (a
        ligature is one).
        """
        secrets = self.secrets
        if not secrets:
            return text[:chars]
        shown = text
        end = len(shown)
        # (what one step reads: from pos, the characters it keeps, those of a run it replaces,
        # twice the longest form, and the few a fragment's sampled place adds)
        reach = 2 * chars + 4 * self.longest + 64
        # The first `covered` characters of the text, as searched, and where each of their
        # characters comes from (see _fold)
        if shown.isascii():
            window, origin, covered = shown, None, end
        else:
            covered = min(reach, end)
            window, origin = _fold(shown[:covered])
        # (window, and with the hex digits of its percent-escapes in capitals where that
        # differs: as long, so a place in one is the same place in the other)
        windows = _hex_in_capitals(window)
        parts: list[str] = []
        size = pos = place = 0  # (pos: a place in window; place: the same in the text)
        while size < chars and place < end:
            need = chars - size
            if covered < min(end, place + reach):
                covered = min(end, max(2 * covered, place + reach))
                window, origin = _fold(shown[:covered])
                windows = _hex_in_capitals(window)
            # A secret starting before `cut` (past the last character kept) lies wholly
            # before `stop`.
            cut = _folded_place(origin, place + need)
            stop = min(len(window), cut + self.longest)
            first, last = -1, -1  # what to replace: the earliest, then the longest
            for text in windows:
                begin, finish = self.first_in(text, pos, stop, cut)
                if begin >= 0 and (
                    first < 0 or begin < first or (begin == first and finish > last)
                ):
                    first, last = begin, finish
            if first < 0:
                parts.append(shown[place : place + need])
                break
            begin = _shown_start(origin, first)
            parts.append(shown[place:begin])
            parts.append(REDACTED)
            size += begin - place + len(REDACTED)
            pos = last
            if size < chars:  # text after the marker is kept: it must hold no secret's tail
                pos = self.run_end_in(windows, first, pos, first + chars + self.longest)
                if pos >= len(window):  # (the run passed its stop: the rest of the text is one)
                    break
            # (on past the whole of the character a replaced run ends in)
            place = _shown_end(origin, pos)
            pos = _folded_place(origin, place)
        return "".join(parts)[:chars]

    def first_in(self, text: str, pos: int, stop: int, cut: int) -> tuple[int, int]:
        """Where the first occurrence of a secret's form (whole or a prefix of it, a suffix of
        one or a run from inside one: the longest of those that begin there) that ``text``
        writes from ``pos`` begins, before ``cut`` and wholly before ``stop``, and where it
        ends (what is replaced of it: the value alone of a name and value); ``(-1, -1)`` when
        there is none."""
        first, last = -1, -1  # what to replace: the earliest, then the longest
        for secret, searched in zip(self.secrets, self.searched, strict=True):
            at, written = _first_written(text, secret, searched, pos, stop)
            if at < 0:
                continue
            begin, finish = at, at + written
            if type(secret) is _InField:  # (only its value: its name is kept)
                begin, finish = begin + secret.head, finish - secret.tail
            if begin < cut and (first < 0 or begin < first or (begin == first and finish > last)):
                first, last = begin, finish
        for tail in self.tails:  # (suffixes: the first to begin may end further on)
            if text.find(tail[1], pos, stop) < 0:  # (none: as most texts have)
                continue
            begin, finish = _first_tail(text, tail, pos, stop)
            if 0 <= begin < cut and (
                first < 0 or begin < first or (begin == first and finish > last)
            ):
                first, last = begin, finish
        for begin, finish in self.fragments(text, pos, stop):  # (runs from inside one)
            begin = max(begin, pos)
            if (
                finish > begin
                and begin < cut
                and (first < 0 or begin < first or (begin == first and finish > last))
            ):
                first, last = begin, finish
        return first, last

    def run_end_in(self, texts: tuple[str, ...], start: int, end: int, stop: int) -> int:
        """:meth:`run_end` in each of ``texts`` (a text as :func:`_hex_in_capitals` gives it,
        all as long) in turn, until none makes the run longer: occurrences found in one and in
        the other that overlap are one run."""
        if len(texts) == 1:
            return self.run_end(texts[0], start, end, stop)
        grown = True
        while grown:
            grown = False
            for text in texts:
                finish = self.run_end(text, start, end, stop)
                if finish >= len(text):  # (it passed its stop)
                    return finish
                if finish > end:
                    end, grown = finish, True
        return end

    def run_end(self, text: str, start: int, end: int, stop: int) -> int:
        """Where the run of overlapping secret occurrences that starts at ``start`` with one
        ending at ``end`` ends: past every occurrence that starts inside it (the end of
        ``text`` once the run passes ``stop``)."""
        grown = True
        while grown:
            if end > stop:
                return len(text)
            grown = False
            for secret, searched in zip(self.secrets, self.searched, strict=True):
                size = len(secret)
                if searched is not secret:  # (its prefixes too)
                    finish = _run_end(text, secret, searched, start, end)
                    if finish > end:
                        end, grown = finish, True
                        if end > stop:
                            return len(text)
                    continue
                # What is replaced of an occurrence: all of it, or the value of a name.
                head, tail = (secret.head, secret.tail) if type(secret) is _InField else (0, 0)
                # An occurrence whose replaced part starts inside the run and ends after it
                # lies in this window (the last one reaches furthest).
                low = max(start + 1 - head, end - size + tail + 1, 0)
                at = text.rfind(secret, low, end - head - 1 + size)
                if at >= 0:
                    end = at + size - tail
                    grown = True
            for form_tail in self.tails:
                finish = _tail_run_end(text, form_tail, start, end, stop)
                if finish > end:
                    end, grown = finish, True
                    if end > stop:
                        return len(text)
            # (a run from inside a form that reaches past end holds a place sampled in here)
            for begin, finish in self.fragments(text, end - MIN_FRAGMENT_CHARS, end + _STEP):
                if begin < end < finish:
                    end, grown = finish, True
            if end > stop:
                return len(text)
        return end

    def fragments(self, text: str, start: int, stop: int) -> list[tuple[int, int]]:
        """Where ``text`` writes runs from inside a secret's form through places sampled from
        ``start`` to ``stop`` (see :meth:`_FormIndex.scan`)."""
        runs = self.runs
        if runs is None:
            return []
        return runs.fragments_in(text, max(start, 0), stop)


def _node(declared: SecretFields | bool | None) -> SecretFields | None:
    """``declared`` when it is a :class:`SecretFields` node, else ``None``."""
    return declared if isinstance(declared, SecretFields) else None


#: How a non-finite float is captured: as the string json would otherwise write bare.
_NON_FINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def _safe_str(value: Any) -> str:
    """``str(value)``, or the placeholder of :func:`_safe_repr` when that fails."""
    try:
        text = str(value)
    except Exception:
        text = None
    return text if isinstance(text, str) else _safe_repr(value)


#: Collection types whose items are read without running code of the value's own.
_PLAIN_COLLECTIONS = frozenset({list, tuple, set, frozenset})


class _Unreadable(Exception):
    """Reading a container's items raised (see :func:`_read`)."""


def _read(container: Any, *, pairs: bool) -> Iterator[Any]:
    """The items of ``container`` (its ``items()`` with ``pairs``), raising
    :class:`_Unreadable` when listing them raises: an exception of an item's own, met while
    it is copied, is not the container's."""
    try:
        iterator = iter(container.items() if pairs else container)
    except Exception as exc:
        raise _Unreadable from exc
    while True:
        try:
            item = next(iterator)
        except StopIteration:
            return
        except Exception as exc:
            raise _Unreadable from exc
        yield item


def _safe_repr(value: Any) -> str:
    """``repr(value)``, or a placeholder when the object's own ``__repr__`` fails (saying
    what it is for an int too long to print)."""
    try:
        return repr(value)
    except Exception:
        return _int_too_long(value) or f"<{type(value).__name__} object (repr failed)>"


#: Decimal digits per bit of an int.
_DIGITS_PER_BIT = math.log10(2)


def _int_too_long(value: Any) -> str | None:
    """What an int with more digits than Python prints (``sys.get_int_max_str_digits()``) is
    captured as: its size in bits and about how many digits that is (counting them exactly
    would take as long as printing them); ``None`` for any other value."""
    if not isinstance(value, int):
        return None
    try:
        int.__repr__(value)
    except ValueError:
        bits = int.bit_length(value)
        digits = int(bits * _DIGITS_PER_BIT) + 1
        name = type(value).__name__
        return f"<{name} of {bits} bits (about {digits} digits), too long to print>"
    return None


def to_json(
    value: Any,
    limit: int | None = MAX_VALUE_BYTES,
    secrets: Sequence[str] = (),
    *,
    fields: SecretFields | None = None,
    max_chars: int | None = None,
) -> str:
    """Redact ``value`` (see :func:`redact`, which ``fields`` is passed to) and render it as
    compact JSON of at most ``limit`` bytes and ``max_chars`` characters (``None``: no limit).

    The text is always valid JSON. A value too large for the limits is cut where
    :func:`redact` stops copying: each container still open there ends with a ``"…"`` item
    (``"…": "…"`` in a mapping), and what comes before is the complete encoding's start. Only
    as much of ``value`` is read as fits in the limits, however large ``value`` is. When not
    even a cut copy fits, the text is ``"…"`` (3 characters, 5 bytes), whatever the limits.
    """
    if limit is None and max_chars is None:
        return _encoded(value, secrets, None, fields)
    budget = min(cap for cap in (limit, max_chars) if cap is not None)
    for attempt in range(_FIT_ATTEMPTS):
        text = _encoded(value, secrets, budget, fields)
        # The copier counts characters, not bytes (multi-byte text), and lets the item that
        # crosses its limit in whole: ask for less in proportion to the excess, plus room for
        # the markers; from the second retry on, at least a quarter less each time (that
        # whole item may be most of the text). The first retry asks for the proportion alone,
        # so a value a little over the limit keeps nearly all of it.
        scaled = budget
        if limit is not None:
            size = len(text.encode("utf-8"))
            if size > limit:
                scaled = budget * limit // size
        if max_chars is not None and len(text) > max_chars:
            scaled = min(scaled, budget * max_chars // len(text))
        if scaled == budget:
            return text
        if attempt:
            scaled = min(scaled, budget * 3 // 4)
        budget = scaled - min(_MARKER_ROOM, budget // 4)
        if budget <= 0:
            break
    return json.dumps("…", ensure_ascii=False)


#: Attempts :func:`to_json` makes to fit its byte limit before it gives up on the value.
_FIT_ATTEMPTS = 7
#: Bytes kept back, per attempt past the first, for the "…" items that close a cut copy.
_MARKER_ROOM = 32


def _encoded(
    value: Any, secrets: Sequence[str], limit: int | None, fields: SecretFields | None
) -> str:
    """The compact JSON of ``value``'s redacted copy, cut at about ``limit`` characters (each
    string to ``limit`` characters too, when that is below ``MAX_STRING_CHARS``)."""
    chars = MAX_STRING_CHARS if limit is None else max(min(limit, MAX_STRING_CHARS), 1)
    try:
        return json.dumps(
            redact(value, secrets, limit=limit, fields=fields, string_chars=chars),
            ensure_ascii=False,
            separators=(",", ":"),
            default=str,
        )
    except (TypeError, ValueError):
        text = redact(_safe_repr(value), secrets, limit=limit, string_chars=chars)
        return json.dumps(text, ensure_ascii=False)
