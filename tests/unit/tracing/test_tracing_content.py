"""What the executor's spans say about tool arguments, results and errors: content capture,
redaction of secrets and truncation, checked against the real OpenTelemetry SDK."""

from __future__ import annotations

import asyncio
import enum
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from span_support import make_task, only

from laios.core.types import Context
from laios.execution.executor import Executor
from laios.execution.redaction import MAX_ERROR_BYTES, MAX_STRING_CHARS, MAX_VALUE_BYTES
from laios.execution.retry import sleeps_disabled
from laios.execution.store import MetricStore
from laios.execution.task_context import current_task
from laios.execution.tracing import CAPTURE_CONTENT_ENV, MAX_STACKTRACE_BYTES
from laios.tools.base import BaseTool, ToolOutput
from laios.tools.registry import ToolRegistry

CONTEXT = Context(session_id="session-1", user_id="user-1")
API_KEY = "sk-TEST-SECRET"
PASSWORD = "hunter2!"
BEARER = "Bearer abcdef123"
SECRETS = {"api_key": API_KEY, "password": PASSWORD, "Authorization": BEARER}
#: Every string that must never reach a span (the bearer credential also on its own).
FORBIDDEN = (API_KEY, PASSWORD, BEARER, "abcdef123")
MODES = ["off", "option", "env"]


# -- tools ----------------------------------------------------------------------------------------


class Echo(BaseTool):
    name = "echo"
    description = "Succeeds with a summary that holds no secret."

    def _execute(self, **kwargs: Any) -> Any:
        return {"status": "ok", "arguments": len(kwargs)}


class Leaky(BaseTool):
    name = "leaky"
    description = "Raises an error whose message quotes the credentials it was given."

    def _execute(self, **kwargs: Any) -> Any:
        padding = "x" * kwargs.get("padding", 0)
        raise ValueError(
            f"upstream rejected key {kwargs['api_key']} / {kwargs['password']} / "
            f"{kwargs['Authorization']} {padding} (key was {kwargs['api_key']})"
        )


class LeakyFailure(BaseTool):
    name = "leaky_failure"
    description = "Returns a failed output whose error quotes the bearer credential."

    def _execute(self, **kwargs: Any) -> Any:
        token = kwargs["Authorization"].split(" ", 1)[1]
        return ToolOutput(success=False, error=f"token {token} expired")


class Parrot(BaseTool):
    name = "parrot"
    description = "Returns a string quoting the password it was given."

    def _execute(self, **kwargs: Any) -> Any:
        return f"signed in with {kwargs['password']}"


#: A credential a tool makes itself (none of its parameters holds it).
ISSUED = "eyJhbGciOiJIUzI1NiJ9.issued.Q7xZk2"


class IssuesToken(BaseTool):
    name = "issues_token"
    description = "Signs in and returns a new token, under its own name and quoted elsewhere."

    def _execute(self, **kwargs: Any) -> Any:
        return {
            "access_token": ISSUED,
            "message": f"issued {ISSUED} for {kwargs['user']}",
            "next": f"https://api.example/v1/me?token={ISSUED}",
            "headers": [["Authorization", f"Bearer {ISSUED}"]],
        }


class IssuesManyKeys(BaseTool):
    name = "issues_many_keys"
    description = "Returns a thousand keys under their names, and quotes the longest."

    def _execute(self, **kwargs: Any) -> Any:
        issued = [{"api_key": f"ak-{n:06d}-{'x' * 16}", "owner": f"team {n}"} for n in range(1000)]
        return {"note": f"rotated {ISSUED} first", "token": ISSUED, "issued": issued}


class CheckpointsSecret(BaseTool):
    name = "checkpoint_secret"
    description = "Adds a checkpoint whose data holds the api key, under a secret key and quoted."

    def _execute(self, **kwargs: Any) -> Any:
        task = current_task()
        assert task is not None
        api_key = kwargs["api_key"]
        task.checkpoint("authenticated", {"api_key": api_key, "note": f"sent {api_key}", "n": 1})
        return "ok"


# -- fixtures and helpers -------------------------------------------------------------------------


@pytest.fixture
def make_executor(
    provider: TracerProvider, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[str], Executor]]:
    """Build a traced executor with content capture ``off``, on by ``option`` or on by ``env``."""
    made: list[Executor] = []

    def make(mode: str) -> Executor:
        registry = ToolRegistry()
        registry.register_tools(
            [Echo, Leaky, LeakyFailure, Parrot, CheckpointsSecret, IssuesToken, IssuesManyKeys]
        )
        options: dict[str, Any] = {}
        if mode == "option":
            options["capture_content"] = True
        elif mode == "env":
            monkeypatch.setenv(CAPTURE_CONTENT_ENV, "true")
        executor = Executor(
            registry,
            tracer_provider=provider,
            store=MetricStore(),
            register_prometheus=False,
            **options,
        )
        made.append(executor)
        return executor

    yield make
    for executor in made:
        executor.shutdown()


def task_span(exporter: InMemorySpanExporter) -> ReadableSpan:
    return only(exporter, "execute_tool")


def span_texts(span: ReadableSpan) -> Iterator[str]:
    """Every piece of text a span exports: name, status, attribute and event values."""
    yield span.name
    yield span.status.description or ""
    attribute_sets = [span.attributes or {}] + [e.attributes or {} for e in span.events]
    yield from (e.name for e in span.events)
    for attributes in attribute_sets:
        for key, value in attributes.items():
            yield key
            values = value if isinstance(value, (list, tuple)) else [value]
            yield from (str(v) for v in values)


def leaks(
    exporter: InMemorySpanExporter, secrets: tuple[str, ...] = FORBIDDEN
) -> list[tuple[str, str]]:
    """``(span name, secret)`` for every secret found anywhere in an exported span, as it is or
    in its JSON-escaped form."""
    forms = {secret: {secret, json.dumps(secret)[1:-1]} for secret in secrets}
    return [
        (span.name, secret)
        for span in exporter.get_finished_spans()
        for text in span_texts(span)
        for secret in secrets
        if any(form in text for form in forms[secret])
    ]


def run_everything(executor: Executor) -> None:
    """Run every kind of task that sees the secrets: success, raise, 1 MB raise, failure, retry."""
    executor.execute_task(make_task("echo", **SECRETS, region="eu"), CONTEXT)
    executor.execute_task(make_task("leaky", **SECRETS), CONTEXT)
    executor.execute_task(make_task("leaky", **SECRETS, padding=1_000_000), CONTEXT, timeout=10)
    executor.execute_task(make_task("leaky_failure", **SECRETS), CONTEXT)
    with sleeps_disabled():
        executor.execute_with_retry(make_task("leaky", **SECRETS), CONTEXT, max_retries=1)
    asyncio.run(executor.execute_parallel([make_task("leaky", **SECRETS)] * 2, CONTEXT))


# -- secrets never reach a span -------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_secret_values_appear_in_no_exported_span(make_executor, exporter, mode):
    """No secret parameter value appears in any span name, attribute or event, capture on or off."""
    run_everything(make_executor(mode))
    assert len(exporter.get_finished_spans()) >= 8
    assert leaks(exporter) == []


@pytest.mark.parametrize("mode", MODES)
def test_secret_in_error_text_is_replaced_by_redacted(make_executor, exporter, mode):
    """A secret quoted in a raised error reads ``[REDACTED]`` in the status and the event."""
    make_executor(mode).execute_task(make_task("leaky", **SECRETS), CONTEXT)
    span = task_span(exporter)
    assert span.status.description.startswith("upstream rejected key [REDACTED] / [REDACTED]")
    (event,) = span.events
    assert event.attributes["exception.message"] == span.status.description
    assert "[REDACTED]" in event.attributes["exception.stacktrace"]


def test_bearer_credential_alone_is_scrubbed_from_a_failure(make_executor, exporter):
    """The credential after ``Bearer`` is scrubbed even when quoted without the scheme."""
    make_executor("off").execute_task(make_task("leaky_failure", **SECRETS), CONTEXT)
    span = task_span(exporter)
    assert span.attributes["error.type"] == "tool_error"
    assert span.status.description == "token [REDACTED] expired"


@pytest.mark.parametrize("mode", MODES)
def test_error_text_on_spans_is_at_most_1024_bytes(make_executor, exporter, mode):
    """A 1 MB error message reaches the span status and exception event cut to 1024 bytes."""
    executor = make_executor(mode)
    executor.execute_task(make_task("leaky", **SECRETS, padding=1_000_000), CONTEXT)
    span = task_span(exporter)
    assert MAX_ERROR_BYTES == 1024
    assert span.status.status_code is StatusCode.ERROR
    assert len(span.status.description.encode()) <= MAX_ERROR_BYTES
    assert span.status.description.endswith("…[truncated]")
    (event,) = span.events
    assert len(event.attributes["exception.message"].encode()) <= MAX_ERROR_BYTES


def test_exception_stacktrace_is_at_most_8192_bytes(make_executor, exporter):
    """The exception event's stack trace of a 1 MB error is cut to 8192 bytes."""
    make_executor("off").execute_task(make_task("leaky", **SECRETS, padding=1_000_000), CONTEXT)
    (event,) = task_span(exporter).events
    assert len(event.attributes["exception.stacktrace"].encode()) <= MAX_STACKTRACE_BYTES == 8192


# -- content capture ------------------------------------------------------------------------------


def test_capture_off_records_neither_arguments_nor_result(make_executor, exporter):
    """With capture off the task span has no ``gen_ai.tool.call.arguments``/``.result``."""
    make_executor("off").execute_task(make_task("echo", **SECRETS, region="eu"), CONTEXT)
    attributes = task_span(exporter).attributes
    assert "gen_ai.tool.call.arguments" not in attributes
    assert "gen_ai.tool.call.result" not in attributes


def test_capture_option_false_wins_over_the_env_var(provider, exporter, monkeypatch):
    """``capture_content=False`` keeps capture off even when the env var says true."""
    monkeypatch.setenv(CAPTURE_CONTENT_ENV, "true")
    registry = ToolRegistry()
    registry.register_tool(Echo)
    with Executor(
        registry,
        tracer_provider=provider,
        store=MetricStore(),
        register_prometheus=False,
        capture_content=False,
    ) as executor:
        executor.execute_task(make_task("echo", region="eu"), CONTEXT)
    assert "gen_ai.tool.call.arguments" not in task_span(exporter).attributes


@pytest.mark.parametrize("mode", ["option", "env"])
def test_captured_arguments_redact_secret_keys_and_keep_the_rest(make_executor, exporter, mode):
    """Captured arguments are JSON with ``[REDACTED]`` under secret keys, other values kept."""
    make_executor(mode).execute_task(make_task("echo", **SECRETS, region="eu", n=3), CONTEXT)
    arguments = json.loads(task_span(exporter).attributes["gen_ai.tool.call.arguments"])
    assert arguments == {
        "api_key": "[REDACTED]",
        "password": "[REDACTED]",
        "Authorization": "[REDACTED]",
        "region": "eu",
        "n": 3,
    }


@pytest.mark.parametrize("mode", ["option", "env"])
def test_captured_result_is_recorded_on_success(make_executor, exporter, mode):
    """On success with capture on the span holds the tool's result as JSON."""
    make_executor(mode).execute_task(make_task("echo", **SECRETS), CONTEXT)
    result = json.loads(task_span(exporter).attributes["gen_ai.tool.call.result"])
    assert result == {"status": "ok", "arguments": 3}


def test_captured_result_is_absent_on_failure(make_executor, exporter):
    """A failed task records its arguments but no result, even with capture on."""
    make_executor("option").execute_task(make_task("leaky", **SECRETS), CONTEXT)
    attributes = task_span(exporter).attributes
    assert "gen_ai.tool.call.arguments" in attributes
    assert "gen_ai.tool.call.result" not in attributes


@pytest.mark.parametrize(
    "key",
    ["access_token", "client_secret", "Cookie", "session_id", "private_key", "credentials"],
)
def test_captured_arguments_redact_every_secret_looking_key(make_executor, exporter, key):
    """Keys matching the secret pattern are redacted, however they are spelled."""
    make_executor("option").execute_task(make_task("echo", **{key: "value-1234"}), CONTEXT)
    arguments = json.loads(task_span(exporter).attributes["gen_ai.tool.call.arguments"])
    assert arguments == {key: "[REDACTED]"}


def test_captured_arguments_redact_nested_secret_keys(make_executor, exporter):
    """A secret key nested inside another argument is redacted too."""
    headers = {"Authorization": BEARER, "Accept": "application/json"}
    make_executor("option").execute_task(make_task("echo", headers=headers), CONTEXT)
    arguments = json.loads(task_span(exporter).attributes["gen_ai.tool.call.arguments"])
    assert arguments == {"headers": {"Authorization": "[REDACTED]", "Accept": "application/json"}}


def test_captured_strings_are_cut_to_256_characters(make_executor, exporter):
    """A long string argument is cut to 256 characters (ending in an ellipsis)."""
    make_executor("option").execute_task(make_task("echo", text="z" * 10_000), CONTEXT)
    arguments = json.loads(task_span(exporter).attributes["gen_ai.tool.call.arguments"])
    assert MAX_STRING_CHARS == 256
    assert arguments["text"] == "z" * 255 + "…"


def test_captured_json_is_cut_to_4096_bytes(make_executor, exporter):
    """Captured arguments as a whole never exceed 4096 bytes."""
    many = {f"field_{i}": "w" * 200 for i in range(100)}
    make_executor("option").execute_task(make_task("echo", **many), CONTEXT)
    arguments = task_span(exporter).attributes["gen_ai.tool.call.arguments"]
    assert MAX_VALUE_BYTES == 4096
    assert len(arguments.encode()) <= MAX_VALUE_BYTES
    assert json.loads(arguments)["…"] == "…"  # still valid JSON, marked where it was cut


# -- secret values repeated elsewhere -------------------------------------------------------------


def test_checkpoint_data_under_a_secret_key_is_redacted(make_executor, exporter):
    """Checkpoint data under a secret-looking key reads ``[REDACTED]``, even with capture off."""
    make_executor("off").execute_task(make_task("checkpoint_secret", **SECRETS), CONTEXT)
    (span,) = [s for s in exporter.get_finished_spans() if s.name == "checkpoint authenticated"]
    assert span.attributes["laios.checkpoint.api_key"] == "[REDACTED]"
    assert span.attributes["laios.checkpoint.n"] == 1


def test_checkpoint_string_quoting_a_secret_value_is_scrubbed(make_executor, exporter):
    """A checkpoint string quoting a secret parameter value has it replaced by ``[REDACTED]``."""
    make_executor("off").execute_task(make_task("checkpoint_secret", **SECRETS), CONTEXT)
    (span,) = [s for s in exporter.get_finished_spans() if s.name == "checkpoint authenticated"]
    assert span.attributes["laios.checkpoint.note"] == "sent [REDACTED]"
    assert leaks(exporter) == []


def test_captured_result_quoting_a_secret_value_is_scrubbed(make_executor, exporter):
    """A captured result quoting a secret parameter value has it replaced by ``[REDACTED]``."""
    make_executor("option").execute_task(make_task("parrot", **SECRETS), CONTEXT)
    result = task_span(exporter).attributes["gen_ai.tool.call.result"]
    assert json.loads(result) == "signed in with [REDACTED]"
    assert leaks(exporter) == []


def test_a_secret_the_result_holds_is_scrubbed_wherever_the_result_quotes_it(
    make_executor, exporter
):
    """A credential the tool returns under a secret-looking name (a sign-in tool's new token,
    which no parameter holds) is a secret value of the captured result, as a secret argument
    is of the captured arguments: redacted under its name and scrubbed where the result quotes
    it, not left as written two fields further on."""
    make_executor("option").execute_task(make_task("issues_token", user="bob"), CONTEXT)
    result = json.loads(task_span(exporter).attributes["gen_ai.tool.call.result"])
    assert result == {
        "access_token": "[REDACTED]",
        "message": "issued [REDACTED] for bob",
        "next": "https://api.example/v1/me?token=[REDACTED]",
        "headers": [["Authorization", "[REDACTED]"]],
    }
    assert leaks(exporter, (ISSUED,)) == []


def test_a_result_holding_many_secrets_is_captured_at_a_bounded_cost(make_executor, exporter):
    """A result holding a thousand keys is scrubbed of its longest ones only
    (``MAX_HELD_SECRETS``): each secret costs every text of the capture a search, and the
    keys are redacted under their names all the same."""
    executor = make_executor("option")
    started = time.perf_counter()
    executor.execute_task(make_task("issues_many_keys"), CONTEXT)
    took = time.perf_counter() - started
    result = json.loads(task_span(exporter).attributes["gen_ai.tool.call.result"])
    assert result["note"] == "rotated [REDACTED] first"
    assert result["token"] == "[REDACTED]"
    keys = [entry["api_key"] for entry in result["issued"] if "api_key" in entry]
    assert keys
    assert set(keys) == {"[REDACTED]"}
    # (about 0.1 s with the bound; scrubbing with all thousand keys takes seconds)
    assert took < 2.0


def test_captured_arguments_repeating_a_secret_value_are_scrubbed(make_executor, exporter):
    """A secret value repeated under an ordinary argument key is replaced by ``[REDACTED]``."""
    task = make_task("echo", api_key=API_KEY, url=f"https://api.example/v1?key={API_KEY}")
    make_executor("option").execute_task(task, CONTEXT)
    arguments = json.loads(task_span(exporter).attributes["gen_ai.tool.call.arguments"])
    assert arguments == {"api_key": "[REDACTED]", "url": "https://api.example/v1?key=[REDACTED]"}


# -- known gaps -----------------------------------------------------------------------------------


def test_secret_with_json_escaped_characters_is_scrubbed_from_captured_content(
    make_executor, exporter
):
    """A password holding ``"`` and ``\\`` is scrubbed from captured arguments and results."""
    password = 'hun"ter\\2'
    task = make_task("parrot", password=password, dsn=f"db://app:{password}@db.internal/main")
    make_executor("option").execute_task(task, CONTEXT)
    assert leaks(exporter, (password,)) == []


def test_numeric_secret_leaves_captured_arguments_valid_json(make_executor, exporter):
    """A numeric secret is redacted without corrupting other numbers in the captured JSON."""
    make_executor("option").execute_task(make_task("echo", pin_key=1234, amount=51234), CONTEXT)
    arguments = task_span(exporter).attributes["gen_ai.tool.call.arguments"]
    assert json.loads(arguments) == {"pin_key": "[REDACTED]", "amount": 51234}


class Field(enum.Enum):
    PASSWORD = "password"
    REGION = "region"


ENUM_SECRET = "pw-by-enum-9876"


class QuotesEnumKeyed(BaseTool):
    name = "quotes_enum_keyed"
    description = "Returns or raises with the value its credentials hold under an enum key."

    def _execute(self, **kwargs: Any) -> Any:
        creds = kwargs["creds"]
        if kwargs.get("fail"):
            raise ValueError(f"refused {creds[Field.PASSWORD]}")
        return {"creds": creds, "note": f"used {creds[Field.PASSWORD]}"}


def test_a_key_that_is_not_a_string_is_judged_by_its_text(provider, exporter):
    """A mapping key that is not a string (an enum member) is written as its text; when that
    text is secret-looking its value is redacted in captured arguments and results, and
    scrubbed from error text."""
    registry = ToolRegistry()
    registry.register_tool(QuotesEnumKeyed)
    creds = {Field.PASSWORD: ENUM_SECRET, Field.REGION: "eu"}
    with Executor(
        registry,
        tracer_provider=provider,
        store=MetricStore(),
        register_prometheus=False,
        capture_content=True,
    ) as executor:
        assert executor.execute_task(make_task("quotes_enum_keyed", creds=creds), CONTEXT).success
        done = task_span(exporter)
        failed = executor.execute_task(make_task("quotes_enum_keyed", creds=creds, fail=1), CONTEXT)
    assert not failed.success
    arguments = json.loads(done.attributes["gen_ai.tool.call.arguments"])
    assert arguments["creds"] == {"Field.PASSWORD": "[REDACTED]", "Field.REGION": "eu"}
    assert json.loads(done.attributes["gen_ai.tool.call.result"])["creds"]["Field.PASSWORD"] == (
        "[REDACTED]"
    )
    assert leaks(exporter, (ENUM_SECRET,)) == []


def test_an_int_too_long_to_print_is_captured_as_what_it_is(make_executor, exporter):
    """An int past Python's 4,300 printed digits is captured as an int of so many bits, too
    long to print (not as a repr that failed); the other arguments are kept."""
    make_executor("option").execute_task(make_task("echo", n=10**5000, q="hi"), CONTEXT)
    arguments = json.loads(task_span(exporter).attributes["gen_ai.tool.call.arguments"])
    assert arguments == {
        "n": "<int of 16610 bits (about 5001 digits), too long to print>",
        "q": "hi",
    }
