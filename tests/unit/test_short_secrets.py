"""A secret value shorter than ``MIN_SCRUB_CHARS`` is still redacted where it is written as
its parameter's value.

Free text is not scrubbed of such a value wherever it occurs (``"password": "p"`` would take
every ``p`` with it). But where the text writes it as the value of its own parameter,
``api_key=xy9``, ``{'api_key': 'xy9'}``, ``{"api_key": "xy9"}`` or ``Authorization: ab1``, it
is that secret: it used to reach spans, logs and ``/status`` as it was.
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import quote, quote_plus, urlencode

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import SecretStr

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.redaction import (
    MIN_SCRUB_CHARS,
    REDACTED,
    scrub,
    scrub_head,
    secret_fields,
    secret_values,
    to_json,
)
from laios.execution.server import status_document
from laios.execution.store import MetricStore
from laios.execution.task_context import current_task
from laios.tools.base import BaseTool, ToolInput
from laios.tools.registry import ToolRegistry

SHORT = "xy9"
assert len(SHORT) < MIN_SCRUB_CHARS


def _texts(name: str, value: str) -> dict[str, str]:
    """The ways a text commonly writes ``value`` as the value of ``name``, with what each
    must become."""
    return {
        f"call({name}={value!r})": f"call({name}='{REDACTED}')",
        f"kwargs {{'{name}': '{value}', 'q': 'hi'}}": (
            f"kwargs {{'{name}': '{REDACTED}', 'q': 'hi'}}"
        ),
        f'json {{"{name}": "{value}"}}': f'json {{"{name}": "{REDACTED}"}}',
        f'compact {{"{name}":"{value}"}}': f'compact {{"{name}":"{REDACTED}"}}',
        f"url https://h/?{name}={value}&x=1": f"url https://h/?{name}={REDACTED}&x=1",
        f"header {name}: {value}": f"header {name}: {REDACTED}",
    }


@pytest.mark.parametrize("name", ["api_key", "password", "Authorization"])
def test_a_short_secret_is_scrubbed_where_written_as_its_parameter(name: str) -> None:
    """Each way of writing the value as its parameter's value is redacted, the name kept."""
    secrets = secret_values({name: SHORT, "q": "hi"})
    for text, expected in _texts(name, SHORT).items():
        assert scrub(text, secrets) == expected
        assert scrub_head(text, secrets, 200) == expected


def test_a_short_secret_elsewhere_in_free_text_is_left_as_it_is() -> None:
    """Free-text scrubbing still skips short values: they would mangle ordinary words."""
    secrets = secret_values({"password": "p"})
    text = "apple pie for password=p, then p alone"
    assert scrub(text, secrets) == f"apple pie for password={REDACTED}, then p alone"


def test_a_short_value_under_another_name_is_left_as_it_is() -> None:
    """The value is redacted as the value of its own parameter, not of any name."""
    secrets = secret_values({"api_key": SHORT, "q": "hi"})
    assert scrub(f"q={SHORT} and user={SHORT}", secrets) == f"q={SHORT} and user={SHORT}"


def test_short_secret_numbers_and_header_pairs() -> None:
    """A short number under a secret name, and the value of a secret-named header pair."""
    secrets = secret_values({"pin_token": 42, "headers": [("X-Api-Key", "ab1")]})
    assert scrub("pin_token=42 and {'pin_token': 42}", secrets) == (
        f"pin_token={REDACTED} and {{'pin_token': {REDACTED}}}"
    )
    assert scrub("sent X-Api-Key: ab1", secrets) == f"sent X-Api-Key: {REDACTED}"


def test_a_short_secret_not_in_ascii_is_scrubbed_as_json_dumps_writes_it() -> None:
    """``json.dumps`` escapes letters that are not ASCII by default (``"\\u00e9"``): the
    value written so is the secret too, as plain text as in that JSON."""
    secrets = secret_values({"password": "é€", "päss_token": "ab"})
    for text in (
        json.dumps({"password": "é€"}),
        json.dumps({"password": "é€"}, separators=(",", ":")),
        json.dumps({"päss_token": "ab"}),
    ):
        scrubbed = scrub(text, secrets)
        assert REDACTED in scrubbed, text
        assert "\\u00e9" not in scrubbed
        assert '"ab"' not in scrubbed


@pytest.mark.parametrize(
    ("parameters", "text"),
    [
        # A number under a name that is not ASCII, the name escaped as the text writes it.
        ({"clé_pin": 12}, json.dumps({"clé_pin": 12})),
        ({"clé_pin": 12}, json.dumps({"clé_pin": 12}, separators=(",", ":"))),
        ({"clé_pin": 12}, ascii({"clé_pin": 12})),
        # name="…" as json.dumps writes the value by default, as it writes it unescaped.
        ({"pin": "ä1"}, f"pin={json.dumps('ä1')}"),
        ({"clé_pin": "ä1"}, f"clé_pin={json.dumps('ä1')}"),
    ],
    ids=["json-number", "json-compact-number", "ascii-number", "eq-json", "eq-json-name"],
)
def test_a_short_secret_is_scrubbed_escaped_with_its_name_as_each_writing_escapes_both(
    parameters: dict[str, Any], text: str
) -> None:
    """Where ``json.dumps`` or ``ascii()`` escapes the letters that are not ASCII of both the
    name and the value, each form the name and value take is that secret's: an unquoted
    number too, and a value after ``name=`` quoted as ``json.dumps`` writes it."""
    (value,) = parameters.values()
    scrubbed = scrub(text, secret_values(parameters), limit=None)
    assert REDACTED in scrubbed, text
    assert str(value) not in scrubbed
    assert "\\u00e41" not in scrubbed


def test_a_short_secret_is_scrubbed_url_encoded_in_a_query_or_form() -> None:
    """A URL's query or a form body (``urlencode``) writes the value percent-encoded
    (``%C3%A9``, ``+`` for a space): it is the secret there too."""
    for value in ("é", "a b", "a&", "%x"):
        secrets = secret_values({"password": value})
        for text in (
            "https://h/?" + urlencode({"password": value, "x": 1}),
            "https://h/?password=" + quote(value) + "&x=1",
        ):
            assert scrub(text, secrets).startswith(f"https://h/?password={REDACTED}"), text


@pytest.mark.parametrize(
    ("name", "value"), [("clé_token", "ab1"), ("clé_token", "é1"), ("api key", "a b")]
)
def test_a_short_secret_is_scrubbed_under_its_name_percent_encoded(name: str, value: str) -> None:
    """A URL's query or a form body writes the name percent-encoded too (``cl%C3%A9_token=``,
    ``api+key=`` or ``api%20key=``): the value after it is the secret there too."""
    secrets = secret_values({name: value})
    for written in (quote(name), quote(name, safe=""), quote_plus(name)):
        for text in (
            f"https://h/?{written}={quote(value)}&x=1",
            f"https://h/?{written}={quote_plus(value)}&x=1",
            f"a=1&{written}={quote_plus(value)}",
        ):
            head = text.split(f"{written}=")[0]
            tail = "&x=1" if text.endswith("&x=1") else ""
            assert scrub(text, secrets) == f"{head}{written}={REDACTED}{tail}", text


def test_a_short_secret_is_scrubbed_percent_encoded_with_lower_case_hex_digits() -> None:
    """Many encoders write the hex digits of a percent-escape in lower case: the value after
    its name so written (the name too) is the secret there too."""
    for name, value in (("password", "a/b"), ("password", "é1"), ("clé_token", "ab1")):
        secrets = secret_values({name: value})
        written = quote(name).lower() if "%" in quote(name) else name
        text = f"https://h/?{written}={quote(value, safe='').lower()}&x=1"
        assert scrub(text, secrets) == f"https://h/?{written}={REDACTED}&x=1", text


def test_a_short_secret_is_scrubbed_percent_encoded_with_mixed_case_hex_digits() -> None:
    """The hex digits of the escapes of a short value after its name (and of the name) are
    matched in either case, mixed in one value too."""
    for name, written, value, encoded in (
        ("password", "password", "é/", "%c3%A9%2f"),
        ("password", "password", "é/", "%C3%a9%2F"),
        ("clé_token", "cl%c3%A9_token", "ab1", "ab1"),
        ("clé_token", "cl%C3%a9_token", "é1", "%C3%a9" + "1"),
    ):
        secrets = secret_values({name: value})
        text = f"https://h/?{written}={encoded}&x=1"
        assert scrub(text, secrets) == f"https://h/?{written}={REDACTED}&x=1", text


def test_captured_strings_redact_a_short_secret_written_as_its_parameter() -> None:
    """A captured result string quoting the parameter and its value loses the value."""
    secrets = secret_values({"api_key": SHORT})
    captured = to_json({"note": f"called with api_key={SHORT}"}, secrets=secrets)
    assert SHORT not in captured
    assert f"api_key={REDACTED}" in captured


class Leaky(BaseTool):
    name = "leaky"
    description = "Quotes its parameters in what it reports."

    def _execute(self, **kwargs: Any) -> Any:
        current_task().checkpoint("called", {"note": f"api_key={kwargs['api_key']}"})
        raise ValueError(f"refused {kwargs}")


def test_spans_logs_and_status_redact_a_short_secret_quoted_as_its_parameter(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A tool quoting its parameters in an error and a checkpoint: the short secret reaches
    no span, log record or ``/status``."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    registry = ToolRegistry()
    registry.register_tool(Leaky())
    task = Task(
        plan_id="p",
        description="d",
        tool_name="leaky",
        parameters={"api_key": SHORT, "q": "hi"},
    )
    store = MetricStore()
    with caplog.at_level(logging.DEBUG, logger="laios"):
        with Executor(
            registry,
            store=store,
            register_prometheus=False,
            tracer_provider=provider,
            capture_content=True,
        ) as executor:
            result = executor.execute_task(task, Context(session_id="s", user_id="u"))
    assert result.success is False
    quoted = f"'api_key': '{SHORT}'"
    seen: list[str] = []
    for span in exporter.get_finished_spans():
        seen += [str(value) for value in span.attributes.values()]
        seen.append(str(span.status.description))
        for event in span.events:
            seen += [str(value) for value in event.attributes.values()]
    seen += [record.getMessage() for record in caplog.records]
    seen.append(str(status_document(store.snapshot())))
    assert any(f"'api_key': '{REDACTED}'" in text for text in seen)
    assert any(f"api_key={REDACTED}" in text for text in seen)
    assert not [text for text in seen if quoted in text or f"api_key={SHORT}" in text]


class CodeInput(ToolInput):
    code: SecretStr


class EchoesCode(BaseTool):
    name = "echoes_code"
    description = "Returns its short code under the code's own name."
    input_model = CodeInput

    def _execute(self, input_data: CodeInput) -> Any:
        code = input_data.code.get_secret_value()
        return {"code": code, "echo": {"code": code, "n": 7}, "other": code}


def test_a_captured_value_under_the_name_of_a_short_secret_is_redacted() -> None:
    """A mapping entry holding a short secret under the name it is secret under (a result
    echoing the tool's parameters) is that secret written as the value of its name, as
    ``code=q7`` is: it is redacted; the same value under another name is kept."""
    secrets = secret_values({"code": "q7", "pin_token": 42}, secret_fields(CodeInput))
    captured = json.loads(
        to_json({"code": "q7", "n": {"pin_token": 42, "code": 7}, "other": "q7"}, secrets=secrets)
    )
    assert captured == {"code": REDACTED, "n": {"pin_token": REDACTED, "code": 7}, "other": "q7"}


class AccentedCodeInput(ToolInput):
    clé: SecretStr


def test_a_captured_value_under_the_percent_encoded_name_of_a_short_secret_is_redacted() -> None:
    """A mapping's key writing the name percent-encoded (a query parsed but not decoded), the
    hex digits of its escapes in capitals, in lower case or mixed: the entry is redacted."""
    secrets = secret_values({"clé": "q7"}, secret_fields(AccentedCodeInput))
    keys = ("cl%C3%A9", "cl%c3%a9", "cl%c3%A9")
    captured = json.loads(to_json({**dict.fromkeys(keys, "q7"), "other": "q7"}, secrets=secrets))
    assert captured == {**dict.fromkeys(keys, REDACTED), "other": "q7"}


def test_a_short_secret_in_a_captured_result_is_redacted_under_its_name() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    registry = ToolRegistry()
    registry.register_tool(EchoesCode)
    task = Task(plan_id="p", description="d", tool_name="echoes_code", parameters={"code": "q7"})
    with Executor(
        registry,
        store=MetricStore(),
        register_prometheus=False,
        tracer_provider=provider,
        capture_content=True,
    ) as executor:
        result = executor.execute_task(task, Context(session_id="s", user_id="u"))
    assert result.success, result.error
    (span,) = exporter.get_finished_spans()
    captured = json.loads(str(span.attributes["gen_ai.tool.call.result"]))
    assert captured == {"code": REDACTED, "echo": {"code": REDACTED, "n": 7}, "other": "q7"}


@pytest.mark.parametrize(
    ("name", "written"),
    [
        ("pin", "PIN"),
        ("pin", "Pin"),
        ("password", "PASSWORD"),
        ("api_key", "API_KEY"),
        ("api_key", "Api_Key"),
        ("x-api-key", "X-Api-Key"),
        ("x-api-key", "X-API-KEY"),
        ("Authorization", "authorization"),
        ("apiKey", "ApiKey"),
        ("API_KEY", "Api_Key"),
        ("API_KEY", "api_key"),
    ],
)
def test_a_short_secret_is_scrubbed_after_its_name_in_another_letter_case(
    name: str, written: str
) -> None:
    """A text may write the parameter's name in capitals, in lower case or with its words
    capitalized (``PIN=q7``, ``Pin: q7``, an HTTP header ``X-Api-Key``): the value is still
    written as the value of its own name, and redacted, the name kept as written."""
    secrets = secret_values({name: SHORT, "q": "hi"})
    for text, expected in _texts(written, SHORT).items():
        assert scrub(text, secrets) == expected
        assert scrub_head(text, secrets, 200) == expected
    captured = json.loads(to_json({written: SHORT, "other": SHORT}, secrets=secrets))
    assert captured == {written: REDACTED, "other": SHORT}


def test_a_short_secret_after_another_name_in_capitals_is_left_as_it_is() -> None:
    """Only the secret's own name, in whichever case, makes the short value a secret."""
    secrets = secret_values({"pin": SHORT})
    text = f"PINS={SHORT} PIN_COUNT={SHORT} Pins: {SHORT}"
    assert scrub(text, secrets) == text


class QuotesItsPinInCapitals(BaseTool):
    name = "quotes_its_pin_in_capitals"
    description = "Quotes its short PIN after its name in capitals."

    def _execute(self, **kwargs: Any) -> Any:
        pin = kwargs["pin"]
        current_task().progress(10, f"trying PIN={pin}")
        raise ValueError(f"card refused: PIN={pin}, Pin: {pin}")


def test_spans_logs_and_status_redact_a_short_secret_after_its_name_in_capitals(
    caplog: pytest.LogCaptureFixture,
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    registry = ToolRegistry()
    registry.register_tool(QuotesItsPinInCapitals)
    task = Task(
        plan_id="p",
        description="d",
        tool_name=QuotesItsPinInCapitals.name,
        parameters={"pin": "q7"},
    )
    store = MetricStore()
    statuses: list[str] = []

    def on_progress(event: str, data: dict[str, Any]) -> None:
        if event == "progress":
            statuses.append(json.dumps(status_document(store.snapshot())))

    with caplog.at_level(logging.DEBUG, logger="laios"):
        with Executor(
            registry, store=store, register_prometheus=False, tracer_provider=provider
        ) as executor:
            context = Context(session_id="s", user_id="u")
            result = executor.execute_task(task, context, on_progress=on_progress)
    assert result.success is False
    seen = [*statuses, str(status_document(store.snapshot()))]
    for span in exporter.get_finished_spans():
        seen.append(str(span.status.description))
        seen += [str(event.attributes) for event in span.events]
    seen += [record.getMessage() for record in caplog.records]
    assert any(f"PIN={REDACTED}, Pin: {REDACTED}" in text for text in seen)
    assert any(f"trying PIN={REDACTED}" in text for text in seen)
    assert not [text for text in seen if "PIN=q7" in text or "Pin: q7" in text]


@pytest.mark.parametrize("name", ["pin", "PIN"])
def test_a_short_secret_is_scrubbed_quoted_after_its_name_and_a_colon(name: str) -> None:
    """A YAML document or a ``key: 'value'`` message quotes the value after its bare name and a
    colon: ``pin: 'q7'``, ``pin: "q7"``; the value is redacted, its quotes and the name kept."""
    secrets = secret_values({"pin": "q7"})
    text = f"config:\n  {name}: 'q7'\n  {name}: \"q7\"\n  user: 'q7'"
    expected = f"config:\n  {name}: '{REDACTED}'\n  {name}: \"{REDACTED}\"\n  user: 'q7'"
    assert scrub(text, secrets) == expected
    assert scrub_head(text, secrets, 200) == expected


class HoldsAShortCode(BaseTool):
    name = "holds_a_short_code"
    description = "Checkpoints and returns a short code under its name, and quotes it."

    def _execute(self, **kwargs: Any) -> Any:
        task = current_task()
        task.checkpoint("checked PIN=q7", {"pin": "q7", "note": "pin=q7, Pin: 'q7'"})
        task.progress(50, "PIN=q7 accepted", pin="q7")
        return {"pin": "q7", "message": "pin=q7", "other": "q7"}


def test_a_short_secret_the_tool_holds_itself_is_scrubbed_wherever_it_is_quoted() -> None:
    """A short code the tool checkpoints, reports or returns under a secret-looking name (no
    parameter held it) is scrubbed where the same data quotes it after its name: each of its
    forms counts, not only the longest few (the held secrets are counted by value)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    registry = ToolRegistry()
    registry.register_tool(HoldsAShortCode)
    task = Task(plan_id="p", description="d", tool_name=HoldsAShortCode.name, parameters={})
    store = MetricStore()
    statuses: list[str] = []

    def on_progress(event: str, data: dict[str, Any]) -> None:
        if event == "progress":
            statuses.append(json.dumps(status_document(store.snapshot())))

    with Executor(
        registry,
        store=store,
        register_prometheus=False,
        tracer_provider=provider,
        capture_content=True,
    ) as executor:
        context = Context(session_id="s", user_id="u")
        result = executor.execute_task(task, context, on_progress=on_progress)
    assert result.success, result.error
    seen = list(statuses)
    for span in exporter.get_finished_spans():
        seen += [span.name, *map(str, dict(span.attributes or {}).values())]
    text = "\n".join(seen)
    assert "checkpoint checked PIN=[REDACTED]" in text
    assert f"pin={REDACTED}, Pin: '{REDACTED}'" in text
    assert f"PIN={REDACTED} accepted" in text
    assert f'"message":"pin={REDACTED}"' in text
    assert "=q7" not in text
    assert ": 'q7'" not in text
