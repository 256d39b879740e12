"""Secrets held in shapes other than a string under a secret-named key stay out of telemetry.

Each case runs a tool, with content capture on, that quotes what it was given in a progress
message, a checkpoint and its error; the key must then be absent from the spans (status,
events, attributes), the ``laios`` log records at DEBUG, ``/status`` as seen during the run and
the result's metadata.
"""

from __future__ import annotations

import argparse
import base64
import collections
import dataclasses
import json
import logging
import time
import types
import urllib.parse
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from pydantic import AnyUrl, HttpUrl, PostgresDsn, SecretStr
from pydantic_core import MultiHostUrl

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.redaction import (
    REDACTED,
    is_secret_key,
    is_secret_pair,
    redact,
    scrub,
    secret_values,
    to_json,
)
from laios.execution.server import status_document
from laios.execution.store import MetricStore
from laios.execution.task_context import require_current_task
from laios.tools.base import BaseTool
from laios.tools.registry import ToolRegistry

SECRET = "sk-live-ABCDEF123456"


class Quotes(BaseTool):
    name = "quotes"
    description = "Quotes its `reveal` parameter in a progress message, a checkpoint and its error."
    store: MetricStore
    status_during: list[str]

    def _execute(self, **kwargs: Any) -> Any:
        task = require_current_task()
        text = kwargs["reveal"]
        task.progress(10, f"working with {text}")
        task.checkpoint("request", {"note": f"sent {text}"})
        self.status_during.append(json.dumps(status_document(self.store.snapshot())))
        raise RuntimeError(f"upstream refused {text}")


def _channels(parameters: dict[str, Any], records: list[logging.LogRecord]) -> dict[str, str]:
    """Run :class:`Quotes` with ``parameters`` (capture on); every channel it reached, as text."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    store = MetricStore()
    tool = Quotes()
    tool.store = store
    tool.status_during = []
    registry = ToolRegistry()
    registry.register_tool(tool)
    task = Task(plan_id="p", description="d", tool_name="quotes", parameters=parameters)
    with Executor(
        registry,
        store=store,
        register_prometheus=False,
        tracer_provider=provider,
        capture_content=True,
    ) as executor:
        result = executor.execute_task(task, Context(session_id="s", user_id="u"), timeout=10)
    provider.shutdown()
    assert result.metadata["outcome"] == "error"
    spans = []
    for span in exporter.get_finished_spans():
        spans += [span.name, str(span.status.description), repr(span.attributes)]
        spans += [repr(event.attributes) for event in span.events]
    formatter = logging.Formatter()
    logs = [record.getMessage() for record in records]
    logs += [formatter.formatException(r.exc_info) for r in records if r.exc_info]
    return {
        "spans": "\n".join(spans),
        "logs": "\n".join(logs),
        "status": "\n".join(tool.status_during),
        "metadata": json.dumps(result.metadata, default=repr),
    }


def _leaks(channels: dict[str, str], secret: str = SECRET) -> list[str]:
    return [name for name, text in channels.items() if secret in text]


# -- binary values -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [bytearray, memoryview])
def test_secret_values_reads_a_bytearray_or_memoryview_under_a_secret_key(kind: type) -> None:
    """Binary data under a secret-named key is secret whether it is ``bytes``, a
    ``bytearray`` or a ``memoryview``."""
    assert SECRET in secret_values({"api_key": kind(SECRET.encode())})
    assert SECRET in secret_values({"headers": [{"Authorization": kind(SECRET.encode())}]})


def test_a_bytearray_secret_quoted_by_its_tool_stays_out_of_telemetry(
    laios_records: list[logging.LogRecord],
) -> None:
    """A tool quoting the ``repr`` of a ``bytearray`` key leaks it on no channel."""
    key = bytearray(SECRET.encode())
    channels = _channels({"api_key": key, "reveal": repr(key)}, laios_records)
    assert _leaks(channels) == []
    assert f"bytearray(b'{REDACTED}')" in channels["spans"]


# -- headers as a list of (name, value) pairs ----------------------------------------------

#: Headers as httpx, ASGI and ``http.client`` keep them: a list of pairs, text or bytes.
HEADER_LISTS = {
    "tuples": [("Accept", "*/*"), ("Authorization", f"Bearer {SECRET}")],
    "lists": [["Accept", "*/*"], ["X-Api-Key", SECRET]],
    "bytes": [(b"accept", b"*/*"), (b"authorization", f"Bearer {SECRET}".encode())],
}


@pytest.mark.parametrize("shape", HEADER_LISTS)
def test_a_secret_named_pair_in_a_list_is_secret(shape: str) -> None:
    """In a list of ``(name, value)`` pairs, the value of a pair whose name looks secret is a
    secret value, and is redacted from captured arguments (its name kept)."""
    headers = HEADER_LISTS[shape]
    assert SECRET in secret_values({"headers": headers})
    captured = to_json({"headers": headers})
    assert SECRET not in captured
    assert REDACTED in captured
    assert "*/*" in captured  # the other pairs are kept


def test_a_list_of_names_is_not_taken_for_a_pair() -> None:
    """A plain list of field names keeps its items: only pairs inside a list are read as
    ``(name, value)``."""
    fields = {"required": ["api_key", "region"]}
    assert secret_values(fields) == []
    assert json.loads(to_json(fields)) == fields


#: Two-item lists in a list that are no headers, though their first item contains a secret
#: word: a count, a policy name, a flag. Their second items are ordinary values.
NOT_HEADER_PAIRS = {
    "count": [["token_count", 5], ["max_tokens", 1024]],
    "policy": [["password_policy", "strict"]],
    "key-ordering": [("key_order", "ascending")],
    "flag": [["api_key_required", True]],
    "bytes-count": [(b"token-limit", b"4096")],
    "camel-case": [("tokenCount", "12")],
}


@pytest.mark.parametrize("shape", NOT_HEADER_PAIRS)
def test_a_pair_whose_name_only_contains_a_secret_word_is_not_a_header(shape: str) -> None:
    """A pair is read as a secret header only when its name ends with the secret word
    (``X-Api-Key``, ``Authorization``, ``apiKey``) and its value is text: ``token_count`` or
    ``password_policy`` keep their values, which are not scrubbed from anything."""
    pairs = NOT_HEADER_PAIRS[shape]
    assert secret_values({"settings": pairs}) == []
    assert REDACTED not in to_json({"settings": pairs})


#: Header and form lists whose pairs are secret, in the spellings real ones use.
SECRET_PAIR_LISTS = {
    "proxy-authorization": [("Proxy-Authorization", f"Basic {SECRET}")],
    "cookie": [("Set-Cookie", f"sid={SECRET}; HttpOnly")],
    "auth-token": [(b"x-auth-token", SECRET.encode())],
    "session-id": [["X-Session-Id", SECRET]],
    "form-password": [("username", "alice"), ("password", SECRET)],
    "camel-case": [("apiKey", SECRET)],
    "bytearray": [(b"authorization", bytearray(SECRET.encode()))],
}


@pytest.mark.parametrize("shape", SECRET_PAIR_LISTS)
def test_real_header_and_form_pairs_stay_secret(shape: str) -> None:
    """Header names ending with a secret word, and form fields such as ``password``, keep
    their values secret."""
    pairs = SECRET_PAIR_LISTS[shape]
    assert any(SECRET in value for value in secret_values({"headers": pairs}))
    assert SECRET not in to_json({"headers": pairs})


#: Names that end with a word that makes a name secret-looking: numbered (a SIM card's second
#: PIN, a form's repeated password), joined to the word before it, or a word the pairs once
#: left out.
PAIR_NAMES_ENDING_SECRET = [
    "pin2",
    "sim_pin2",
    "PIN2",
    "userPin2",
    "pin_number",
    "pinNumber",
    "password2",
    "api_key2",
    "Authorization2",
    "apikey",
    "X-Apikey",
    "newpassword",
    "HTTPAuth",
    "passcode",
    "private",
    "connection_string",
    "db_conn_str",
]


@pytest.mark.parametrize("name", PAIR_NAMES_ENDING_SECRET)
def test_a_pair_named_as_a_secret_key_ends_is_secret(name: str) -> None:
    """The name of a pair holding a secret ends with a word the names of secret keys hold,
    read as they are (``pin2`` is a secret key and a secret pair alike); followed by a
    number too; and so does a name written in text (``pin2=1234``)."""
    assert is_secret_key(name)
    assert is_secret_pair((name, "1234"))
    assert secret_values({"form": [(name, SECRET)]}) == [SECRET]
    assert secret_values({"body": f"a=1&{name}=1234"}) == ["1234"]


@pytest.mark.parametrize(
    "name", ["pin_hash", "password_hash", "password_policy2", "key_code", "auth_url", "keys"]
)
def test_a_pair_named_with_a_secret_word_then_another_is_ordinary(name: str) -> None:
    """A name holding a secret word followed by another word names something else: its pair
    is ordinary (the key itself stays secret-looking)."""
    assert is_secret_key(name)
    assert not is_secret_pair((name, "1234"))


@pytest.mark.parametrize("shape", HEADER_LISTS)
def test_a_secret_header_pair_quoted_by_its_tool_stays_out_of_telemetry(
    shape: str, laios_records: list[logging.LogRecord]
) -> None:
    """A tool quoting the value of an ``Authorization`` header it was given as a pair leaks
    it on no channel, captured arguments included."""
    channels = _channels(
        {"headers": HEADER_LISTS[shape], "reveal": f"token {SECRET}"}, laios_records
    )
    assert _leaks(channels) == []
    assert f"upstream refused token {REDACTED}" in channels["spans"]


# -- key spellings -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "session_id",
        "sessionid",
        "SessionId",
        "session-id",
        "X-Session-Id",
        "Session ID",
        "session.id",
    ],
)
def test_a_session_id_key_is_secret_whatever_its_separator(key: str) -> None:
    """``session_id`` is secret with a hyphen (an HTTP header), a space or a dot between its
    words too, as the other secret names are in any spelling."""
    assert is_secret_key(key)
    assert secret_values({key: SECRET}) == [SECRET]


def test_a_session_id_header_quoted_by_its_tool_stays_out_of_telemetry(
    laios_records: list[logging.LogRecord],
) -> None:
    """A tool quoting the value of its ``X-Session-Id`` header leaks it on no channel."""
    parameters = {"headers": {"X-Session-Id": SECRET}, "reveal": f"session {SECRET}"}
    channels = _channels(parameters, laios_records)
    assert _leaks(channels) == []
    assert f'"X-Session-Id":"{REDACTED}"' in channels["spans"]


# -- base64 --------------------------------------------------------------------------------

PASSWORD = "hunter2-hunter2"


def _basic(user: str, password: str = PASSWORD) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


@pytest.mark.parametrize("user", ["alice", "alic", "ali"], ids=["offset0", "offset2", "offset1"])
def test_a_password_inside_a_basic_credential_is_scrubbed(user: str) -> None:
    """The base64 of ``user:password`` (a Basic ``Authorization`` header) loses the part that
    encodes the password, wherever the password falls in the base64 groups."""
    token = _basic(user)
    scrubbed = scrub(f"401 for Authorization: Basic {token}", secret_values({"password": PASSWORD}))
    assert token not in scrubbed
    assert REDACTED in scrubbed
    # Nothing that decodes to a part of the password is left: at most two characters of
    # base64 on each side of the marker, which carry a few of its bits.
    left, _, right = scrubbed.removeprefix("401 for Authorization: Basic ").partition(REDACTED)
    prefix = base64.b64encode(f"{user}:".encode()).decode("ascii")
    assert len(left) <= len(prefix.rstrip("=")) + 1
    assert len(right.rstrip("=")) <= 2


def test_a_secret_in_url_safe_base64_is_scrubbed() -> None:
    """A secret quoted in URL-safe base64 (a JWT's payload, say) is scrubbed too."""
    secret = "k>>?~~?>>k-secret-value"  # its base64 holds "+" and "/"
    standard = base64.b64encode(secret.encode()).decode("ascii")
    urlsafe = base64.urlsafe_b64encode(secret.encode()).decode("ascii")
    assert standard != urlsafe
    scrubbed = scrub(f"{standard} {urlsafe}", [secret])
    assert standard.rstrip("=")[:-1] not in scrubbed
    assert urlsafe.rstrip("=")[:-1] not in scrubbed


def test_a_basic_credential_quoted_by_its_tool_stays_out_of_telemetry(
    laios_records: list[logging.LogRecord],
) -> None:
    """A tool that builds a Basic header from its user and password and quotes it leaks the
    password's encoding on no channel."""
    token = _basic("alice")
    parameters = {"user": "alice", "password": PASSWORD, "reveal": f"Basic {token}"}
    channels = _channels(parameters, laios_records)
    assert _leaks(channels, token) == []
    assert _leaks(channels, token[8:-4]) == []  # (the part that is the password's alone)


# -- more names of credentials ------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "passphrase",
        "key_passphrase",
        "pwd",
        "db_pwd",
        "DB_PWD",
        "auth",
        "basic_auth",
        "X-Auth",
        "proxy-auth",
        "auth_header",
        "bearer",
        "bearer_value",
        "jwt",
        "id_jwt",
        "dsn",
        "sentry_dsn",
        "DATABASE_DSN",
    ],
)
def test_more_names_of_credentials_are_secret(key: str) -> None:
    """A passphrase, a pwd, requests' ``auth``, a bearer value, a JWT and a DSN (a database
    or Sentry address with its password) hold credentials as the documented names do."""
    assert is_secret_key(key)
    assert secret_values({key: SECRET}) == [SECRET]


@pytest.mark.parametrize(
    "key", ["author", "authority", "authored_by", "oauthority", "cwd", "dsname", "jwtish"]
)
def test_words_containing_those_names_are_not_secret(key: str) -> None:
    """``auth``, ``pwd``, ``dsn`` and ``jwt`` count as names of their own, not inside words."""
    assert not is_secret_key(key)


def test_requests_auth_pair_quoted_by_its_tool_stays_out_of_telemetry(
    laios_records: list[logging.LogRecord],
) -> None:
    """``auth=("user", "password")``, as requests takes it: the tuple under a secret name is
    secret, whatever the tool quotes of it."""
    parameters = {"auth": ["alice", SECRET], "reveal": f"login failed for {SECRET}"}
    channels = _channels(parameters, laios_records)
    assert _leaks(channels) == []


@pytest.mark.parametrize("key", ["basicAuth", "proxyAuth", "dbPwd", "sentryDsn", "idJwt", "oAuth"])
def test_the_short_names_count_in_camel_case_too(key: str) -> None:
    """``basicAuth`` names its own ``Auth`` at a lower-to-upper case boundary."""
    assert is_secret_key(key)


@pytest.mark.parametrize(
    "key", ["sentryDSN", "apiJWT", "dbPWD", "basicAUTH", "userJWT_v2", "JWTPayload", "dbPWDHash"]
)
def test_the_short_names_count_as_a_camel_case_word_in_capitals_too(
    key: str, laios_records: list[logging.LogRecord]
) -> None:
    """``sentryDSN`` is ``sentry_dsn`` written in camelCase with the acronym in capitals, as
    ``userID`` is: the short name is a word of its own there too."""
    assert is_secret_key(key)
    parameters = {key: SECRET, "reveal": f"login failed for {SECRET}"}
    assert _leaks(_channels(parameters, laios_records)) == []


@pytest.mark.parametrize("key", ["myAUTHOR", "getDSNAME", "DSNames", "AUTHORS", "isAUTHORIZED"])
def test_capital_words_starting_with_the_short_names_are_not_secret(key: str) -> None:
    """A word in capitals that only starts with a short name (``AUTHOR``) is not it."""
    assert not is_secret_key(key)


@pytest.mark.parametrize(
    "key", ["authHeader", "AuthHeader", "authValue", "pwdHash", "PwdHash", "jwtPayload", "dsnUrl"]
)
def test_the_short_names_count_as_the_first_word_of_a_camel_case_name(
    key: str, laios_records: list[logging.LogRecord]
) -> None:
    """``authHeader`` is ``auth_header`` written in camelCase: the short name is a word of
    its own there too, ended by the capital that starts the next one."""
    assert is_secret_key(key)
    parameters = {key: SECRET, "reveal": f"login failed for {SECRET}"}
    assert _leaks(_channels(parameters, laios_records)) == []


@pytest.mark.parametrize("key", ["Authority", "AuthorName", "authorName", "Pwdx", "DSNAME"])
def test_words_starting_with_the_short_names_are_not_secret(key: str) -> None:
    """A word that only starts with ``auth`` or ``dsn`` (``Authority``, ``authorName``) is
    not the short name."""
    assert not is_secret_key(key)


#: Names of OAuth and XAuth credentials, of PINs, one-time passwords and card security codes.
AUTH_AND_CODE_NAMES = [
    "OAuth",
    "XAuth",
    "oauth",
    "OAUTH",
    "xauth",
    "x_oauth",
    "oauth_header",
    "OAuthHeader",
    "oauthHeader",
    "myOAuth",
    "userOAUTH",
    "HTTPAuth",
    "pin",
    "PIN",
    "pin_code",
    "pinCode",
    "PINCode",
    "card_pin",
    "atm_pin",
    "sim_pin",
    "pin1",
    "pincode",
    "PINCODE",
    "Pincode",
    "user_pincode",
    "userPincode",
    "pin_number",
    "pinNumber",
    "pin_hash",
    "userPin",
    "userPIN",
    "otp",
    "OTP",
    "otp_code",
    "otpCode",
    "totp",
    "hotp",
    "userTotp",
    "cvv",
    "CVV",
    "cvv2",
    "cvc",
    "card_cvc",
    "cardCvv",
]


@pytest.mark.parametrize("key", AUTH_AND_CODE_NAMES)
def test_oauth_pin_otp_and_card_code_names_are_secret(key: str) -> None:
    """An ``OAuth`` value, a PIN, a one-time password and a card's CVV or CVC are credentials as
    a password is: each such name is secret-looking."""
    assert is_secret_key(key)
    assert secret_values({key: SECRET}) == [SECRET]


@pytest.mark.parametrize(
    "name", ["OAuth", "X-OAuth", "XAuth", "pin", "X-PIN", "pin_code", "userPinCode", "totp", "cvv2"]
)
def test_oauth_pin_otp_and_card_code_pairs_are_secret(name: str) -> None:
    """A header or form field so named (``[("pin_code", "…")]``) holds a secret too."""
    assert secret_values({"form": [(name, SECRET)]}) == [SECRET]


@pytest.mark.parametrize("key", ["OAuth", "pin_code", "otp", "cvv"])
def test_oauth_pin_otp_and_card_code_values_stay_out_of_telemetry(
    key: str, laios_records: list[logging.LogRecord]
) -> None:
    """Such a value quoted by its tool, and written after its name in its error
    (``pin=1234``, shorter than any value scrubbed from free text), leaks on no channel."""
    parameters = {key: SECRET, "reveal": f"login failed for {SECRET}"}
    assert _leaks(_channels(parameters, laios_records)) == []
    parameters = {key: "1234", "reveal": f"refused {key}=1234"}
    assert _leaks(_channels(parameters, laios_records), f"{key}=1234") == []


@pytest.mark.parametrize(
    "key",
    [
        "spinner",
        "spin",
        "pinned",
        "isPinned",
        "ping",
        "PING",
        "pins",
        "pinpoint",
        "pinyin",
        "opinion",
        "mapping",
        "shipping",
        "topping",
        "author",
        "Authority",
        "options",
        "hotplate",
        "otpauth",
        "cvvs",
    ],
)
def test_words_containing_pin_otp_or_card_codes_are_not_secret(key: str) -> None:
    """``pin``, ``otp``, ``cvv`` and ``cvc`` count as names of their own, not inside words."""
    assert not is_secret_key(key)
    assert secret_values({key: "python"}) == []


@pytest.mark.parametrize(
    "key",
    [
        "pin_count",
        "PIN_COUNT",
        "pinCount",
        "pin_counts",
        "pinMode",
        "pin_mode",
        "PinMode",
        "PINMode",
        "pin_state",
        "pin_memory",
        "pin_length",
        "pin_attempts",
        "pin_retries",
        "pin_id",
        "userPinCount",
        "gpio_pin",
        "GPIO_PIN",
        "gpio-pin",
        "gpioPin",
        "gpioPIN",
        "GpioPin",
        "pinterest_url",
        "pinned_version",
    ],
)
def test_names_of_pins_that_are_no_codes_are_not_secret(key: str) -> None:
    """``pin`` followed by a word naming a count, mode, state, length, memory, attempts or
    id of pins (``pin_count``, ``pinMode``, PyTorch's ``pin_memory``), or after ``gpio`` (a
    board's input/output pin), names no code: not secret-looking."""
    assert not is_secret_key(key)
    assert not is_secret_pair((key, "13"))
    assert secret_values({key: "python"}) == []
    assert redact({key: 13}) == {key: 13}


@pytest.mark.parametrize("key", ["pin_count_secret", "gpio_pin_token", "pinModeKey", "pin_codes"])
def test_a_secret_word_beside_a_pin_that_is_no_code_is_still_secret(key: str) -> None:
    assert is_secret_key(key)


@pytest.mark.parametrize("key", ["PWD", "isAuthor", "AUTHOR", "myAuthority"])
def test_the_working_directory_variable_and_words_are_not_secret(key: str) -> None:
    """``PWD`` is the shell's working directory (a tool given ``env=os.environ.copy()`` would
    otherwise have every file path scrubbed from its tracebacks)."""
    assert not is_secret_key(key)
    assert secret_values({"env": {key: "/home/user/project"}}) == []


# -- counts of model tokens and ordinary words ---------------------------------------------

#: Names a tool calling a language model takes or returns for counts of model tokens, and
#: ordinary words that merely contain ``key``: none holds a credential.
ORDINARY_NAMES = [
    "max_tokens",
    "maxTokens",
    "max_new_tokens",
    "max_output_tokens",
    "max_completion_tokens",
    "prompt_tokens",
    "completion_tokens",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "num_tokens",
    "token_count",
    "tokenCount",
    "token_limit",
    "tokenizer",
    "keyword",
    "keywords",
    "monkey",
]


@pytest.mark.parametrize("key", ORDINARY_NAMES)
def test_token_counts_and_words_are_not_secret(key: str) -> None:
    """``max_tokens=1024`` is a number every model call takes: redacting it hid it from the
    captured arguments and scrubbed every ``1024`` from error text; ``keyword="python"``
    turned "no results for python" into "no results for [REDACTED]"."""
    assert not is_secret_key(key)
    assert secret_values({key: "python"}) == []
    assert secret_values({"usage": {key: 1024}}) == []


@pytest.mark.parametrize(
    "key",
    ["token", "tokens", "access_token", "refresh_token", "api_key", "apikey", "key"],
)
def test_names_next_to_the_ordinary_ones_stay_secret(key: str) -> None:
    """Only the listed names are ordinary: credentials named alike stay secret (``tokens``
    may be a list of credentials)."""
    assert is_secret_key(key)
    assert secret_values({key: SECRET}) == [SECRET]


# -- a password in a URL's user information ------------------------------------------------

URL_PASSWORD = "Hunter2-pg-Pa55"


@pytest.mark.parametrize(
    "parameters",
    [
        {"database_url": f"postgres://app:{URL_PASSWORD}@db.internal:5432/orders"},
        {"endpoints": [f"https://deploy:{URL_PASSWORD}@git.example/repo.git"]},
        {"config": {"broker": f"amqp://guest:{URL_PASSWORD}@mq/vhost"}},
    ],
    ids=["top-level", "in-a-list", "nested"],
)
def test_the_password_in_a_url_is_secret_under_any_key(
    parameters: dict[str, Any], laios_records: list[logging.LogRecord]
) -> None:
    """A connection URL under an ordinary key (``database_url``, as ``DATABASE_URL`` is kept)
    carries its password in its user information; a tool's error quoting the URL must not
    carry it to spans, logs, ``/status`` or the metadata, and captured arguments keep the URL
    with its password redacted."""
    assert URL_PASSWORD in secret_values(parameters)
    url = json.dumps(parameters)
    channels = _channels({**parameters, "reveal": f"could not connect: {url}"}, laios_records)
    assert _leaks(channels, URL_PASSWORD) == []
    assert f":{REDACTED}@" in channels["spans"]  # the rest of the URL is kept


@pytest.mark.parametrize(
    "parameters",
    [
        {"database_url": PostgresDsn(f"postgres://app:{URL_PASSWORD}@db.internal:5432/orders")},
        {"endpoints": [AnyUrl(f"https://deploy:{URL_PASSWORD}@git.example/repo.git")]},
        {"webhook": HttpUrl(f"https://hooks.example/in?token={URL_PASSWORD}")},
        {"replicas": MultiHostUrl(f"postgres://app:{URL_PASSWORD}@db-a:5432,db-b:5432/orders")},
    ],
    ids=["multi-host-url", "url-in-a-list", "token-in-the-query", "pydantic-core-multi-host"],
)
def test_a_pydantic_url_object_is_read_as_its_text(
    parameters: dict[str, Any], laios_records: list[logging.LogRecord]
) -> None:
    """A URL kept as a pydantic URL object (``PostgresDsn``, as pydantic-settings gives a
    ``DATABASE_URL``), not as text, holds its password or its query's token all the same:
    captured arguments show it redacted, and a tool quoting the URL leaks it nowhere."""
    assert URL_PASSWORD in secret_values(parameters)
    channels = _channels(
        {**parameters, "reveal": f"could not connect: {parameters}"}, laios_records
    )
    assert _leaks(channels, URL_PASSWORD) == []
    assert REDACTED in channels["spans"]


CREDENTIAL = "cr-9f8e7d6c5b4a3210"


@dataclasses.dataclass(slots=True)
class Upstream:
    """A settings class of its own whose fields name a URL's parts (as a client's are)."""

    scheme: str
    host: str
    base_url: str
    credential: SecretStr


def _attrs_upstream() -> Any:
    attrs = pytest.importorskip("attrs")

    @attrs.define
    class AttrsUpstream:
        scheme: str
        host: str
        base_url: str
        credential: SecretStr

    return AttrsUpstream("https", "api.internal", "https://api.internal/v2", SecretStr(CREDENTIAL))


class Request:
    """A request object (as web frameworks give one): a URL's parts as properties, a ``repr``
    quoting its URL, and its credentials as attributes."""

    scheme = property(lambda self: "https")
    host = property(lambda self: "api.internal")

    def __init__(self) -> None:
        self.authorization = f"Bearer {CREDENTIAL}"
        self.session_token = CREDENTIAL

    def __repr__(self) -> str:
        return "<Request 'https://api.internal/v2' [GET]>"


@pytest.mark.parametrize(
    "make",
    [
        lambda: Upstream("https", "api.internal", "https://api.internal/v2", SecretStr(CREDENTIAL)),
        _attrs_upstream,
        Request,
    ],
    ids=["slotted-dataclass", "attrs", "own-class"],
)
def test_an_object_with_a_scheme_and_a_host_is_no_url_but_read_for_its_fields(
    make: Any,
) -> None:
    """An object whose class names a ``scheme`` and a ``host``, and whose text quotes a URL,
    is not taken for a URL object: its secret fields and attributes are read as any object's
    are, and no word of its ``repr`` (``SecretStr``) is taken for a secret."""
    values = secret_values({"upstream": make()})
    assert CREDENTIAL in values
    assert "SecretStr" not in values
    assert all(CREDENTIAL in value for value in values)


def _url_class(module: str) -> type:
    """A URL class as ``module`` names it (httpx's and yarl's ``URL``, not installed here),
    whose instance keeps a key of its own beside its URL."""

    class URL:
        scheme = property(lambda self: self.text.partition(":")[0])
        host = property(lambda self: "db.internal")

        def __init__(self, text: str) -> None:
            self.text = text
            self.api_key = CREDENTIAL

        def __str__(self) -> str:
            return self.text

    URL.__module__ = module
    URL.__qualname__ = "URL"
    return URL


@pytest.mark.parametrize("module", ["httpx", "yarl", "yarl._url"])
def test_an_httpx_or_yarl_url_is_read_as_its_text_and_its_attributes(module: str) -> None:
    """A URL of httpx or yarl is known by its class's module and name: read as its text (its
    password found), and then as any object is (its own secret attributes found too)."""
    url = _url_class(module)(f"postgres://app:{URL_PASSWORD}@db.internal:5432/orders")
    assert sorted(secret_values({"database": url})) == sorted([URL_PASSWORD, CREDENTIAL])
    # Any other class of that name is not read as its text.
    other = _url_class("my_app.links")(f"postgres://app:{URL_PASSWORD}@db.internal/orders")
    assert secret_values({"database": other}) == [CREDENTIAL]


def test_a_short_url_password_is_scrubbed_only_inside_its_url() -> None:
    """A password shorter than ``MIN_SCRUB_CHARS`` is replaced where the URL writes it, not
    wherever its letters occur."""
    parameters = {"caches": ["redis://cache:pw@redis:6379/0"]}
    secrets = secret_values(parameters)
    text = scrub("connect redis://cache:pw@redis:6379/0 failed (pw policy)", secrets)
    assert text == f"connect redis://cache:{REDACTED}@redis:6379/0 failed (pw policy)"


def test_a_percent_encoded_url_password_is_scrubbed_as_written_and_decoded() -> None:
    """A password with reserved characters is percent-encoded in the URL, and a client may
    quote it either way."""
    values = secret_values({"url": "mysql://root:p%40ss%2Fw0rd@db/app"})
    assert "p%40ss%2Fw0rd" in values
    assert "p@ss/w0rd" in values


@pytest.mark.parametrize(
    "text",
    ["user@example.com", "see https://example.com/a@b", "http://host:8080/path", "a:b@c"],
)
def test_text_that_is_no_url_with_a_password_holds_no_secret(text: str) -> None:
    """An e-mail address, a URL with ``@`` in its path or a port, and a bare ``a:b@c`` have
    no password to scrub."""
    assert secret_values({"note": text}) == []


def test_a_long_run_of_letters_and_digits_is_read_for_url_passwords_in_linear_time() -> None:
    """A text holding ``://``, ``@`` and a long run of letters and digits (a mail with a hex
    attachment, a page with an inline blob) is read for the passwords of its URLs in time
    that grows with its length: a pattern trying a scheme at every letter of the run, and
    reading on to its end each time, took seconds for 50 kB and hours for a megabyte, on the
    caller's thread, for every task whose parameters hold such a text."""
    blob = "0123456789abcdef" * 4_000  # (64 kB of hex)
    text = f"see https://docs.example/a or ops@example.org\n{blob}\n"
    text += f"git+ssh://deploy:{URL_PASSWORD}@git.example/repo"
    started = time.perf_counter()
    values = secret_values({"message": text})
    took = time.perf_counter() - started
    assert values == [URL_PASSWORD]
    assert took < 1.0  # (a few milliseconds; the pattern took about ten seconds)


@pytest.mark.parametrize(
    ("text", "found"),
    [
        (f"1a://u:{URL_PASSWORD}@h", [URL_PASSWORD]),  # (the scheme starts at its letter)
        (f"123://u:{URL_PASSWORD}@h", []),  # (no letter: no scheme)
        (f"://u:{URL_PASSWORD}@h", []),
        (f"a://u:{URL_PASSWORD}@h and b://v:{URL_PASSWORD}@i", [URL_PASSWORD]),
        ("x://u:pw@h y://v:pw@i", ["u:pw@", "v:pw@"]),
    ],
)
def test_a_url_password_follows_a_scheme_of_a_letter_then_scheme_characters(
    text: str, found: list[str]
) -> None:
    """A scheme is a letter, then letters, digits, ``+``, ``.`` or ``-``, as RFC 3986 writes
    it; each password is found once however often its URL is repeated."""
    assert sorted(secret_values({"note": text})) == sorted(found)


# -- a parameter that cannot be read -------------------------------------------------------


class Unreadable(Mapping[str, Any]):
    """A mapping whose iteration raises (a lazy row whose connection is gone)."""

    def __getitem__(self, key: str) -> Any:
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("the connection is closed")

    def __len__(self) -> int:
        return 1


def test_a_parameter_that_cannot_be_read_leaves_the_others_secrets_found() -> None:
    """The secrets of the parameters that can be read are still found next to one that
    cannot: it is skipped, not the whole search."""
    assert SECRET in secret_values({"rows": Unreadable(), "api_key": SECRET})
    assert SECRET in secret_values({"api_key": SECRET, "rows": [Unreadable()]})


@pytest.mark.parametrize("timeout", [None, 10], ids=["inline", "worker"])
def test_a_failed_task_with_a_parameter_that_cannot_be_read_has_a_failed_span(
    timeout: float | None, laios_records: list[logging.LogRecord]
) -> None:
    """Its span says the task failed, and why, scrubbed of the secrets that could be read;
    nothing is reported as an internal error."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    registry = ToolRegistry()
    registry.register_tool(Quotes())
    tool = registry.get_tool("quotes")
    assert isinstance(tool, Quotes)
    store = MetricStore()
    tool.store = store
    tool.status_during = []
    parameters = {"rows": Unreadable(), "api_key": SECRET, "reveal": f"key {SECRET}"}
    task = Task(plan_id="p", description="d", tool_name="quotes", parameters=parameters)
    with Executor(
        registry, store=store, register_prometheus=False, tracer_provider=provider
    ) as executor:
        result = executor.execute_task(task, Context(session_id="s", user_id="u"), timeout=timeout)
    provider.shutdown()
    assert result.metadata["error_type"] == "RuntimeError"
    (span,) = [s for s in exporter.get_finished_spans() if s.name.startswith("execute_tool")]
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == f"upstream refused key {REDACTED}"
    assert span.attributes is not None
    assert span.attributes["error.type"] == "RuntimeError"
    assert [r.getMessage() for r in laios_records if r.levelno >= logging.ERROR] == []


# -- named tuples and namespaces -----------------------------------------------------------


class _Login(NamedTuple):
    user: str
    password: str


_OldLogin = collections.namedtuple("_OldLogin", "user api_key")

#: Objects whose fields are named, as a dataclass's are: the name says which is secret.
NAMED_FIELDS = {
    "NamedTuple": lambda: _Login("bob", SECRET),
    "namedtuple": lambda: _OldLogin("bob", SECRET),
    "SimpleNamespace": lambda: types.SimpleNamespace(user="bob", password=SECRET),
    "argparse.Namespace": lambda: argparse.Namespace(user="bob", token=SECRET),
}


@pytest.mark.parametrize("shape", NAMED_FIELDS)
def test_a_secret_named_field_of_a_named_tuple_or_namespace_is_secret(shape: str) -> None:
    """The fields of a named tuple, a ``SimpleNamespace`` and an ``argparse.Namespace`` are
    read like a dataclass's: one with a secret-looking name holds a secret value, redacted
    from captured arguments (a named tuple is still captured as a list, its other items kept)."""
    login = NAMED_FIELDS[shape]()
    assert SECRET in secret_values({"login": login})
    captured = to_json({"login": login})
    assert SECRET not in captured
    assert REDACTED in captured
    assert "bob" in captured


def test_a_named_tuple_is_still_captured_as_a_list() -> None:
    assert json.loads(to_json({"login": _Login("bob", SECRET)})) == {"login": ["bob", REDACTED]}
    assert json.loads(to_json({"point": _OldLogin("x", "y")})) == {"point": ["x", "[REDACTED]"]}
    assert json.loads(to_json({"pair": ("user", "bob")})) == {"pair": ["user", "bob"]}


@pytest.mark.parametrize("shape", NAMED_FIELDS)
def test_a_named_tuple_or_namespace_quoted_by_its_tool_stays_out_of_telemetry(
    shape: str, laios_records: list[logging.LogRecord]
) -> None:
    """A tool quoting the ``repr`` of the credentials it was given as a named tuple or a
    namespace leaks their secret field on no channel."""
    login = NAMED_FIELDS[shape]()
    channels = _channels({"login": login, "reveal": repr(login)}, laios_records)
    assert _leaks(channels) == []
    assert REDACTED in channels["spans"]


# -- attrs classes -------------------------------------------------------------------------


def _attrs_login(*, slots: bool) -> Any:
    """An instance of an ``attrs`` class ``Login(user, password, note)``, whose ``note`` its
    ``repr`` leaves out."""
    attrs = pytest.importorskip("attrs")

    @attrs.define(slots=slots)
    class Login:
        user: str
        password: str
        note: str = attrs.field(repr=False, default="kept out")

    return Login("bob", SECRET)


@pytest.mark.parametrize("slots", [True, False], ids=["slots", "dict"])
def test_a_secret_named_field_of_an_attrs_instance_is_secret(slots: bool) -> None:
    """An ``attrs`` instance is read like a dataclass: a field with a secret-looking name
    holds a secret value; it is captured as a mapping of the fields its ``repr`` shows."""
    login = _attrs_login(slots=slots)
    assert SECRET in secret_values({"login": login})
    assert json.loads(to_json({"login": login})) == {"login": {"user": "bob", "password": REDACTED}}


def test_an_attrs_instance_quoted_by_its_tool_stays_out_of_telemetry(
    laios_records: list[logging.LogRecord],
) -> None:
    login = _attrs_login(slots=True)
    channels = _channels({"login": login, "reveal": repr(login)}, laios_records)
    assert _leaks(channels) == []
    assert f"password='{REDACTED}'" in channels["spans"]


# -- other collections ---------------------------------------------------------------------

#: Collections of items that are not a list, a tuple or a set, each holding a secret-named
#: key or header pair.
OTHER_COLLECTIONS = {
    "deque of dicts": lambda: collections.deque([{"api_key": SECRET}]),
    "deque of pairs": lambda: collections.deque([("Authorization", f"Bearer {SECRET}")]),
    "UserList": lambda: collections.UserList([{"password": SECRET}]),
    "items view": lambda: {"X-Api-Key": SECRET, "Accept": "*/*"}.items(),
    "values view": lambda: {"a": {"token": SECRET}}.values(),
}


@pytest.mark.parametrize("shape", OTHER_COLLECTIONS)
def test_a_secret_inside_another_collection_is_secret(shape: str) -> None:
    """A deque, a ``UserList`` or a dict's view is read like a list: what it holds under a
    secret-looking key (or as a secret-named pair) is a secret value, redacted from captured
    arguments."""
    value = OTHER_COLLECTIONS[shape]()
    assert any(SECRET in found for found in secret_values({"items": value}))
    captured = to_json({"items": value})
    assert SECRET not in captured
    assert REDACTED in captured


@pytest.mark.parametrize("shape", OTHER_COLLECTIONS)
def test_a_secret_inside_another_collection_quoted_by_its_tool_stays_out_of_telemetry(
    shape: str, laios_records: list[logging.LogRecord]
) -> None:
    value = OTHER_COLLECTIONS[shape]()
    channels = _channels({"items": value, "reveal": repr(value)}, laios_records)
    assert _leaks(channels) == []


def test_text_binary_data_and_ranges_are_not_read_as_collections() -> None:
    assert json.loads(to_json({"r": range(3), "b": b"ab"})) == {"r": "range(0, 3)", "b": "b'ab'"}


# -- keys of a mapping under a secret-looking name -----------------------------------------


def test_a_key_of_a_mapping_under_a_secret_name_is_secret_unless_it_reads_as_a_name() -> None:
    """Under a secret-looking name everything is secret: the keys of a mapping too, when they
    are not names (letters alone, words joined by ``_``, ``-``, ``.`` or a space), such as the
    keys of a mapping from each token to what it is for."""
    found = secret_values({"api_keys": {SECRET: "prod", b"bin-" + SECRET.encode(): "x"}})
    assert SECRET in found
    assert "bin-" + SECRET in found
    assert "prod" in found  # (its values, as before)
    named = secret_values({"auth": {"username": "bob", "X-Api-Key": SECRET, "client id": "c"}})
    assert not {"username", "X-Api-Key", "client id"} & set(named)
    # A key of a mapping under an ordinary name is not secret.
    assert SECRET not in secret_values({"labels": {SECRET: "prod"}})


class QuotesAKeyOfItsKeys(BaseTool):
    name = "quotes_a_key_of_its_keys"
    description = "Fails quoting the first key of its ``api_keys`` mapping."

    def _execute(self, **kwargs: Any) -> Any:
        raise PermissionError(f"key {next(iter(kwargs['api_keys']))} was revoked")


def test_a_key_of_a_secret_mapping_quoted_by_its_tool_reaches_no_span() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    registry = ToolRegistry()
    registry.register_tool(QuotesAKeyOfItsKeys)
    task = Task(
        plan_id="p",
        description="d",
        tool_name=QuotesAKeyOfItsKeys.name,
        parameters={"api_keys": {SECRET: "prod"}},
    )
    with Executor(
        registry, store=MetricStore(), register_prometheus=False, tracer_provider=provider
    ) as executor:
        result = executor.execute_task(task, Context(session_id="s", user_id="u"))
    provider.shutdown()
    assert result.metadata["error_type"] == "PermissionError"
    (span,) = exporter.get_finished_spans()
    assert span.status.description == f"key {REDACTED} was revoked"
    assert SECRET not in str([dict(event.attributes or {}) for event in span.events])


@pytest.mark.parametrize("split", [urllib.parse.urlsplit, urllib.parse.urlparse])
def test_a_url_split_by_urllib_gives_up_its_password(split: Any) -> None:
    """A URL kept as ``urllib.parse``'s split result (``urlsplit``/``urlparse``): a tuple
    whose ``netloc`` holds ``user:password@host`` without the ``://`` that makes a text a
    URL. Its password was no secret; it is one, as that of the URL written out."""
    parameters = {"upstream": split(f"https://deploy:{URL_PASSWORD}@git.example/repo.git")}
    assert URL_PASSWORD in secret_values(parameters)
