"""A parameter the tool's input model types ``SecretStr`` or ``SecretBytes`` is secret.

Whatever its name: a user who typed a field ``SecretStr`` has said that it holds a secret, so
the value the caller passes under that field's name (a plain string, as ``Task.parameters``
usually hold it) is redacted from captured arguments and scrubbed from every error text,
progress message, checkpoint value and error type, exactly as a value under ``api_key`` is.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Annotated, Any, NewType, Optional

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import (
    AliasChoices,
    AliasPath,
    BaseModel,
    ConfigDict,
    Field,
    Secret,
    SecretBytes,
    SecretStr,
)
from typing_extensions import TypeAliasType, TypedDict

from laios.core.types import Context, Task, TaskResult
from laios.execution.executor import Executor
from laios.execution.redaction import (
    MAX_WRITTEN_LIST_ITEMS,
    REDACTED,
    SecretFields,
    scrub,
    secret_fields,
    secret_values,
    to_json,
)
from laios.execution.server import status_document
from laios.execution.store import MetricStore
from laios.execution.task_context import require_current_task
from laios.tools.base import BaseTool, ToolInput, ToolOutput, create_simple_tool
from laios.tools.registry import ToolRegistry

SECRET = "hunter2-db-password-0042"
SECRET_BYTES = b"binary-signing-key-9911"


class DatabaseInput(ToolInput):
    db: SecretStr
    signing: Optional[SecretBytes] = None  # noqa: UP045 (the spelling the brief names)
    host: str = "db.example"


class Connects(BaseTool):
    name = "connects"
    description = "Quotes its SecretStr parameter everywhere a tool can."

    input_model = DatabaseInput

    def _execute(self, input_data: DatabaseInput) -> Any:
        value = input_data.db.get_secret_value()
        task = require_current_task()
        task.progress(10, f"connecting with {value}")
        task.checkpoint("connecting", {"note": f"dsn={value}"})
        if input_data.host == "returns":
            return ToolOutput(
                success=False,
                error=f"refused {value}",
                metadata={"error_type": f"auth:{value}"},
            )
        raise ConnectionError(f"could not connect to {input_data.host} with {value}")


def run(
    tool: BaseTool | type[BaseTool],
    parameters: dict[str, Any],
    *,
    caplog: pytest.LogCaptureFixture | None = None,
) -> tuple[TaskResult, str, list[str]]:
    """Run ``tool`` traced, with content capture on; return its result, the text of its
    spans and ``/status`` as seen at each of its progress reports."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    registry = ToolRegistry()
    registered = registry.register_tool(tool)
    store = MetricStore()
    statuses: list[str] = []

    def on_progress(event: str, data: dict[str, Any]) -> None:
        if event == "progress":
            statuses.append(json.dumps(status_document(store.snapshot())))

    if caplog is not None:
        caplog.set_level(logging.DEBUG, logger="laios")
    task = Task(plan_id="p", description="d", tool_name=registered.name, parameters=parameters)
    with Executor(
        registry,
        store=store,
        register_prometheus=False,
        tracer_provider=provider,
        capture_content=True,
    ) as executor:
        result = executor.execute_task(
            task, Context(session_id="s", user_id="u"), on_progress=on_progress
        )
        statuses.append(json.dumps(status_document(store.snapshot())))
    provider.shutdown()
    spans = exporter.get_finished_spans()
    text = "\n".join(
        f"{span.name} {dict(span.attributes or {})} {span.status.description} "
        f"{[dict(event.attributes or {}) for event in span.events]}"
        for span in spans
    )
    return result, text, statuses


def test_a_secretstr_field_under_an_ordinary_name_is_redacted_from_captured_arguments() -> None:
    """The captured arguments show ``[REDACTED]`` under a field typed SecretStr."""
    _, spans, _ = run(Connects, {"db": SECRET, "host": "db.example"})
    assert f'"db":"{REDACTED}"' in spans
    assert '"host":"db.example"' in spans
    assert SECRET not in spans


@pytest.mark.parametrize("host", ["raises", "returns"])
def test_a_secretstr_parameter_stays_out_of_spans_logs_status_and_metadata(
    host: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Quoted in a progress message, a checkpoint, a raised error or a returned failure and
    its error type, the value of a SecretStr field reaches no span, log record, ``/status``
    or result metadata."""
    result, spans, statuses = run(Connects, {"db": SECRET, "host": host}, caplog=caplog)
    assert not result.success
    assert "laios.checkpoint.note" in spans
    assert REDACTED in spans
    assert SECRET not in spans
    assert SECRET not in caplog.text
    assert len(statuses) == 2
    assert "connecting with" in statuses[0]
    assert all(SECRET not in status for status in statuses)
    assert SECRET not in json.dumps(result.metadata)


def test_an_optional_secretbytes_field_is_secret() -> None:
    """``Optional[SecretBytes]`` declares a secret too (given as bytes or as text)."""
    for value in (SECRET_BYTES, SECRET_BYTES.decode()):
        _, spans, _ = run(Connects, {"db": "x", "signing": value, "host": "db.example"})
        assert f'"signing":"{REDACTED}"' in spans
        assert SECRET_BYTES.decode() not in spans


class AliasedInput(ToolInput):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    dsn: SecretStr = Field(alias="connectionString")
    other: SecretStr | None = Field(default=None, validation_alias=AliasChoices("o", "other2"))


class Aliased(BaseTool):
    name = "aliased"
    description = "A SecretStr field passed under its alias."
    input_model = AliasedInput

    def _execute(self, input_data: AliasedInput) -> Any:
        other = input_data.other.get_secret_value() if input_data.other else ""
        raise ValueError(f"bad {input_data.dsn.get_secret_value()} {other}")


def test_a_secretstr_field_passed_under_its_alias_is_secret() -> None:
    """The names a field is validated from (alias, alias choices) are secret names."""
    _, spans, _ = run(Aliased, {"connectionString": SECRET, "other2": "zz-other-secret"})
    assert SECRET not in spans
    assert "zz-other-secret" not in spans
    assert f'"connectionString":"{REDACTED}"' in spans


class ShortAliasedInput(ToolInput):
    pin: SecretStr = Field(alias="X-Pin")
    code: SecretStr | None = Field(default=None, validation_alias=AliasChoices("c", "otp"))


class ShortAliased(BaseTool):
    name = "short_aliased"
    description = "Quotes its short secrets under their field names and aliases."
    input_model = ShortAliasedInput

    def _execute(self, input_data: ShortAliasedInput) -> Any:
        pin = input_data.pin.get_secret_value()
        code = input_data.code.get_secret_value() if input_data.code else ""
        raise ValueError(f"pin={pin}, {{'X-Pin': '{pin}'}}, code: {code}, otp={code}, c='{code}'")


def test_a_short_secret_is_scrubbed_under_each_name_of_its_field() -> None:
    """A value too short to scrub from free text is scrubbed where it is written as the value
    of its field, under the field's name or any of its aliases, whichever it was passed as."""
    _, spans, _ = run(ShortAliased, {"X-Pin": "4y7", "otp": "k9"})
    assert "pin=[REDACTED]" in spans
    assert "'X-Pin': '[REDACTED]'" in spans
    assert "code: [REDACTED]" in spans
    assert "otp=[REDACTED]" in spans
    assert "c='[REDACTED]'" in spans
    assert "4y7" not in spans
    assert "k9" not in spans


class ShortListInput(ToolInput):
    pins: list[SecretStr]
    codes: tuple[SecretStr, ...] = ()


class ShortList(BaseTool):
    name = "short_list"
    description = "Quotes the short items of its list of SecretStr."
    input_model = ShortListInput

    def _execute(self, input_data: ShortListInput) -> Any:
        pins = [pin.get_secret_value() for pin in input_data.pins]
        codes = [code.get_secret_value() for code in input_data.codes]
        raise ValueError(
            f"pins {pins} refused, pins={pins[0]}, {{'pins': {pins}}}, {json.dumps(pins)}, "
            f"pins: {pins[1]}, codes={tuple(codes)}, codes={codes[0]}"
        )


def test_short_items_of_a_list_of_secretstr_are_scrubbed() -> None:
    """The items of a ``list[SecretStr]`` too short to scrub from free text are scrubbed where
    a text writes one as the value of the list's name, and where it writes the list itself."""
    _, spans, _ = run(ShortList, {"pins": ["zq7", "xk9"], "codes": ["zu1", "wy2"]})
    assert "pins=[REDACTED]" in spans
    assert "pins: [REDACTED]" in spans
    assert "codes=[REDACTED]" in spans
    for short in ("zq7", "xk9", "zu1", "wy2"):
        assert short not in spans, short


def test_short_items_of_a_list_under_a_secret_looking_name_are_scrubbed() -> None:
    """As those of a list under a secret-looking name, which all its items are."""
    secrets = secret_values({"api_keys": ["ab1", "cd2"], "note": "hi"})
    text = "api_keys=ab1 and api_keys: cd2, all ['ab1', 'cd2'], note=hi"
    scrubbed = scrub(text, secrets)
    assert "ab1" not in scrubbed
    assert "cd2" not in scrubbed
    assert scrubbed.endswith("note=hi")


def test_only_the_first_items_of_a_long_secret_list_are_values_of_its_name() -> None:
    """A long list under a secret-looking name (thousands of token ids) has its first
    ``MAX_WRITTEN_LIST_ITEMS`` short items held under its name, not each of them: each would
    cost every text scrubbed the search for its forms."""
    found = secret_values({"token_ids": list(range(1000))})
    assert "token_ids=5" in found
    assert f"token_ids={MAX_WRITTEN_LIST_ITEMS - 1}" in found
    assert f"token_ids={MAX_WRITTEN_LIST_ITEMS}" not in found
    assert "token_ids=999" not in found


class _Unsliceable(list[str]):
    def __getitem__(self, index: Any) -> Any:
        raise RuntimeError("items read only by iterating")


def test_a_secret_list_that_refuses_slicing_is_still_read_item_by_item() -> None:
    """A list of its own whose items cannot be taken by index still has each item read."""
    secrets = secret_values({"api_keys": _Unsliceable(["ab1", "a-long-secret-value"])})
    assert "a-long-secret-value" in secrets
    assert "api_keys=ab1" in secrets


def _connect(conn: SecretStr, region: str = "eu") -> Any:
    raise PermissionError(f"denied for {conn.get_secret_value()} in {region}")


def test_a_simple_tool_whose_function_annotates_a_parameter_secretstr() -> None:
    """A function tool's parameter annotated ``SecretStr`` is secret."""
    tool = create_simple_tool("connect", "Connects.", _connect)
    _, spans, _ = run(tool, {"conn": SECRET, "region": "eu-west"})
    assert SECRET not in spans
    assert "eu-west" in spans


def _connect_with(host: str, **creds: SecretStr) -> Any:
    passwords = [value.get_secret_value() for value in creds.values()]
    raise PermissionError(f"denied for {host} with {passwords}")


def test_a_simple_tool_whose_function_annotates_its_kwargs_secretstr() -> None:
    """``**creds: SecretStr`` makes every other parameter a ``SecretStr``, as the function
    says it takes them (it can call ``get_secret_value()``), and secret."""
    tool = create_simple_tool("connect_with", "Connects.", _connect_with)
    assert secret_fields(tool.input_model) is not None
    result, spans, _ = run(tool, {"host": "db-west", "db_pass": SECRET})
    assert result.metadata["error_type"] == "PermissionError"
    assert SECRET not in spans
    assert "db-west" in spans


#: A type of its own for a password, as a code base names its domain types: a ``SecretStr``.
DbPassword = NewType("DbPassword", SecretStr)


class NewTypeInput(ToolInput):
    db: DbPassword
    replicas: list[DbPassword] = []


class ConnectsByNewType(BaseTool):
    name = "connects_by_new_type"
    description = "Quotes its parameters typed with a NewType of SecretStr."

    input_model = NewTypeInput

    def _execute(self, input_data: NewTypeInput) -> Any:
        value = input_data.db.get_secret_value()
        require_current_task().progress(10, f"connecting with {value}")
        replicas = [replica.get_secret_value() for replica in input_data.replicas]
        raise ConnectionError(f"could not connect with {value} nor {replicas}")


def test_a_field_typed_with_a_newtype_of_secretstr_is_secret(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``NewType("DbPassword", SecretStr)`` is a ``SecretStr`` to pydantic, and so secret:
    alone and as the items of a list."""
    replica = "replica-password-7788"
    result, spans, statuses = run(
        ConnectsByNewType, {"db": SECRET, "replicas": [replica]}, caplog=caplog
    )
    assert result.metadata["error_type"] == "ConnectionError", result.error
    assert f'"db":"{REDACTED}"' in spans
    for value in (SECRET, replica):
        assert value not in spans
        assert value not in caplog.text
        assert all(value not in status for status in statuses)
        assert value not in json.dumps(result.metadata)


#: ``type Password = SecretStr``, as Python 3.12 writes it.
Password = TypeAliasType("Password", SecretStr)


def _connect_with_new_type(host: str, **creds: DbPassword) -> Any:
    passwords = [value.get_secret_value() for value in creds.values()]
    raise PermissionError(f"denied for {host} with {passwords}")


def _connect_with_alias(host: str, **creds: Password) -> Any:
    passwords = [value.get_secret_value() for value in creds.values()]
    raise PermissionError(f"denied for {host} with {passwords}")


@pytest.mark.parametrize("func", [_connect_with_new_type, _connect_with_alias])
def test_a_simple_tool_whose_function_annotates_its_kwargs_with_another_name_of_secretstr(
    func: Any,
) -> None:
    """``**creds: DbPassword`` (a NewType of SecretStr) or ``**creds: Password`` (a type
    alias of it) makes every other parameter secret, as ``**creds: SecretStr`` does."""
    tool = create_simple_tool("connect_with_named_type", "Connects.", func)
    assert secret_fields(tool.input_model) is not None
    result, spans, _ = run(tool, {"host": "db-west", "db_pass": SECRET})
    assert result.metadata["error_type"] == "PermissionError", result.error
    assert SECRET not in spans
    assert "db-west" in spans


class AliasedInput(ToolInput):
    api_key: str = Field(alias="k")
    password: str = Field(default="", validation_alias=AliasChoices("p", "password"))
    region: str = Field(default="eu", alias="r")


class ConnectsByAlias(BaseTool):
    name = "connects_by_alias"
    description = "Quotes its secret-named parameters, passed under ordinary aliases."

    input_model = AliasedInput

    def _execute(self, input_data: AliasedInput) -> Any:
        require_current_task().progress(10, f"connecting with {input_data.api_key}")
        raise PermissionError(f"denied {input_data.api_key} / {input_data.password}")


def test_a_secret_named_field_passed_under_an_ordinary_alias_is_secret(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A field the model calls ``api_key`` (or ``password``) is secret whatever name the
    caller passes it under, an alias ``k`` or a validation alias ``p``; a field of an
    ordinary name and alias is not."""
    password = "open-sesame-3141"
    result, spans, statuses = run(
        ConnectsByAlias, {"k": SECRET, "p": password, "r": "eu-west"}, caplog=caplog
    )
    assert result.metadata["error_type"] == "PermissionError", result.error
    assert f'"k":"{REDACTED}"' in spans
    assert f'"p":"{REDACTED}"' in spans
    assert '"r":"eu-west"' in spans
    for value in (SECRET, password):
        assert value not in spans
        assert value not in caplog.text
        assert all(value not in status for status in statuses)


class Creds(BaseModel):
    user: str
    pin: SecretStr


@dataclass
class Vault:
    path: str
    unseal: SecretStr


class NestedInput(ToolInput):
    creds: Creds
    many: list[Creds] = []
    headers: dict[str, SecretStr] = {}
    vault: Vault | None = None


class Nested(BaseTool):
    name = "nested"
    description = "Secrets typed SecretStr inside nested models, lists and dicts."
    input_model = NestedInput

    def _execute(self, input_data: NestedInput) -> Any:
        quoted = [
            input_data.creds.pin.get_secret_value(),
            *(c.pin.get_secret_value() for c in input_data.many),
            *(h.get_secret_value() for h in input_data.headers.values()),
        ]
        if input_data.vault is not None:
            quoted.append(input_data.vault.unseal.get_secret_value())
        raise RuntimeError(f"failed with {quoted} as {input_data.creds.user}")


def test_secretstr_fields_of_nested_models_lists_and_dicts_are_secret() -> None:
    """A SecretStr inside a nested model (given as a dict), a list of models, a dict of
    SecretStr and a dataclass is secret; its ordinary siblings are not."""
    parameters = {
        "creds": {"user": "alice-the-user", "pin": "pin-one-1111"},
        "many": [{"user": "bob", "pin": "pin-two-2222"}],
        "headers": {"X-Custom": "header-three-3333"},
        "vault": {"path": "/v", "unseal": "unseal-four-4444"},
    }
    result, spans, _ = run(Nested, parameters)
    assert "pin-one-1111" in (result.error or "")  # the tool did quote them
    for secret in ("pin-one-1111", "pin-two-2222", "header-three-3333", "unseal-four-4444"):
        assert secret not in spans
    assert "alice-the-user" in spans


def test_a_hook_quoting_a_secretstr_parameter_logs_it_scrubbed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An ``on_retry`` hook and a ``retry_if`` predicate that quote the value of a SecretStr
    field leave it out of the log and of the result's metadata."""
    registry = ToolRegistry()
    registry.register_tool(Connects)
    caplog.set_level(logging.DEBUG, logger="laios")

    def on_retry(details: Any) -> None:
        raise RuntimeError(f"hook saw {details.error}")

    seen: list[TaskResult] = []

    def retry_if(result: TaskResult) -> bool:
        seen.append(result)
        if len(seen) > 1:
            raise RuntimeError(f"predicate saw {result.error}")
        return True

    task = Task(plan_id="p", description="d", tool_name="connects", parameters={"db": SECRET})
    with Executor(registry, store=MetricStore(), register_prometheus=False) as executor:
        result = executor.execute_with_retry(
            task,
            Context(session_id="s", user_id="u"),
            max_retries=2,
            retry_delay=0.001,
            on_retry=on_retry,
            retry_if=retry_if,
        )
    assert "hook saw" in caplog.text
    assert "predicate saw" in result.metadata["retry_if_error"]
    assert SECRET not in caplog.text
    assert SECRET not in json.dumps(result.metadata)


# -- the analysis of the input model ------------------------------------------------------------


def test_secret_fields_of_a_model_without_secret_types_is_none() -> None:
    """A model that declares no secret type, at any depth, has no secret fields (nothing to
    do per call); one with a secret type in a nested model has."""

    class Flat(ToolInput):
        path: str
        count: int = 0
        items: list[dict[str, int]] = []

    class WithNested(Flat):
        nested: Creds | None = None

    assert secret_fields(ToolInput) is None
    assert secret_fields(Flat) is None
    assert secret_fields(WithNested) is not None


def test_secret_fields_are_computed_once_per_model() -> None:
    """The analysis of a model is kept: asking again returns the same object."""
    first = secret_fields(DatabaseInput)
    assert isinstance(first, SecretFields)
    assert secret_fields(DatabaseInput) is first


def test_secret_values_takes_the_declared_fields_into_account() -> None:
    """With the declared fields, the values under them are secret values; without, not."""
    parameters = {"db": SECRET, "host": "db.example"}
    assert secret_values(parameters) == []
    assert secret_values(parameters, secret_fields(DatabaseInput)) == [SECRET]


def test_to_json_redacts_the_declared_fields_whatever_their_length() -> None:
    """A declared secret field is redacted by its name, even a value too short to scrub."""
    fields = secret_fields(DatabaseInput)
    text = to_json({"db": "p", "host": "h"}, secrets=[], fields=fields)
    assert json.loads(text) == {"db": REDACTED, "host": "h"}


class Node(BaseModel):
    name: str
    key_material: SecretStr | None = None
    children: list[Node] = []


def test_a_recursive_model_is_analysed_without_end() -> None:
    """A model that refers to itself is analysed once; its secrets are found at any depth."""

    class TreeInput(ToolInput):
        root: Node

    fields = secret_fields(TreeInput)
    deep = {"name": "a", "children": [{"name": "b", "children": [{"name": "c",
            "key_material": SECRET}]}]}  # fmt: skip
    assert secret_values({"root": deep}, fields) == [SECRET]


class Login(BaseModel):
    user: str
    password_hash: SecretStr  # (secret by its type; its name is secret-looking too)


class ApiCreds(BaseModel):
    user: str
    bearer: SecretStr


class Limits(TypedDict):
    region: str
    unlock: SecretStr


class ExtrasInput(ToolInput):
    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, SecretStr]

    host: str = "h"


def test_the_places_a_model_declares_secret_by_type() -> None:
    """Optional, Annotated, Secret[int], unions of models, a model or a list of it, a
    TypedDict, an AliasPath and typed extra fields are read; plain fields are not secret."""

    class Everything(ToolInput):
        pin: Secret[int]
        token_like: Annotated[SecretStr | None, Field(description="d")] = None
        either: Login | ApiCreds | None = None
        one_or_many: ApiCreds | list[ApiCreds] = []
        limits: Limits | None = None
        nested: str = Field(default="", validation_alias=AliasPath("outer", "inner"))
        deep: SecretStr | None = Field(default=None, validation_alias=AliasPath("vault", "k"))
        plain: str = ""

    parameters = {
        "pin": 987654,
        "token_like": "tok-value-1",
        "either": {"user": "u-either", "bearer": "bearer-value-2"},
        "one_or_many": [{"user": "u-many", "bearer": "bearer-value-3"}],
        "limits": {"region": "eu-region", "unlock": "unlock-value-4"},
        "outer": {"inner": "not-a-secret"},
        "vault": {"k": "vault-value-5"},
        "plain": "plain-value",
    }
    found = set(secret_values(parameters, secret_fields(Everything)))
    assert found == {
        "987654",
        "tok-value-1",
        "bearer-value-2",
        "bearer-value-3",
        "unlock-value-4",
        "vault-value-5",
    }


def test_typed_extra_fields_are_secret_but_declared_plain_fields_are_not() -> None:
    """``__pydantic_extra__: dict[str, SecretStr]`` makes every extra field secret; the
    model's own plain fields stay plain."""
    found = secret_values({"host": "db.example", "anything": SECRET}, secret_fields(ExtrasInput))
    assert found == [SECRET]
