"""ResourceLimits: validation of each field and building from configuration."""

from __future__ import annotations

import math
import threading
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from laios.core.types import Context, Task
from laios.execution.executor import Executor, ResourceLimits
from laios.execution.store import MetricStore
from laios.tools.base import BaseTool
from laios.tools.registry import ToolRegistry


def test_defaults_are_no_limits() -> None:
    """ResourceLimits() sets no limit at all."""
    limits = ResourceLimits()
    assert limits.timeout_seconds is None
    assert limits.memory_limit_mb is None
    assert limits.cpu_limit_percent is None


def test_valid_values_are_kept() -> None:
    """Positive, finite values are accepted (timeout as a float)."""
    limits = ResourceLimits(timeout_seconds=30, memory_limit_mb=256, cpu_limit_percent=50.0)
    assert limits.timeout_seconds == 30.0
    assert isinstance(limits.timeout_seconds, float)
    assert limits.memory_limit_mb == 256
    assert limits.cpu_limit_percent == 50.0


@pytest.mark.parametrize("value", [0, -1, -0.5, math.nan, math.inf, -math.inf, True, False, "x"])
def test_bad_timeouts_are_refused(value: Any) -> None:
    """Zero, negative, NaN, infinite, boolean and non-numeric timeouts raise, naming the field."""
    with pytest.raises(ValidationError, match="timeout_seconds"):
        ResourceLimits(timeout_seconds=value)


@pytest.mark.parametrize("value", [0, -256, 1.5, True, "lots", math.nan])
def test_bad_memory_limits_are_refused(value: Any) -> None:
    """Memory must be a positive whole number of MB."""
    with pytest.raises(ValidationError, match="memory_limit_mb"):
        ResourceLimits(memory_limit_mb=value)


@pytest.mark.parametrize("value", [0, -10, math.nan, math.inf, True])
def test_bad_cpu_limits_are_refused(value: Any) -> None:
    """CPU percent must be a positive finite number."""
    with pytest.raises(ValidationError, match="cpu_limit_percent"):
        ResourceLimits(cpu_limit_percent=value)


@pytest.mark.parametrize("field", ["timeout_seconds", "memory_limit_mb", "cpu_limit_percent"])
def test_a_numpy_boolean_is_refused_as_a_boolean(field: str) -> None:
    """NumPy's booleans are booleans too: ``np.True_`` was taken as 1 (a one-second timeout)."""
    np = pytest.importorskip("numpy")
    with pytest.raises(ValidationError, match=rf"{field}[\s\S]*not a boolean"):
        ResourceLimits(**{field: np.True_})


@pytest.mark.parametrize("field", ["timeout_seconds", "memory_limit_mb", "cpu_limit_percent"])
@pytest.mark.parametrize("value", [b"3", bytearray(b"3"), memoryview(b"3")], ids=type)
def test_a_number_given_as_bytes_is_refused_naming_the_field(field: str, value: Any) -> None:
    """Bytes are no number, nor text read from a configuration: ``b"3"`` was taken as 3 (and
    a bytearray refused as "a valid number" without a word of why). Each is refused by its
    type, in the field's error; the same number as text is still taken."""
    with pytest.raises(ValidationError, match=rf"{field}[\s\S]*not {type(value).__name__}"):
        ResourceLimits(**{field: value})
    with pytest.raises(ValidationError, match=rf"{field}[\s\S]*not {type(value).__name__}"):
        ResourceLimits.from_config({field: value})
    assert getattr(ResourceLimits(**{field: "3"}), field) == 3


def test_validation_error_is_a_value_error() -> None:
    """Callers can catch the refusal as ValueError."""
    with pytest.raises(ValueError):
        ResourceLimits(timeout_seconds=-1)


def test_unknown_field_is_refused() -> None:
    """A misspelt field is refused instead of silently ignored."""
    with pytest.raises(ValidationError, match="timeout_secs"):
        ResourceLimits(timeout_secs=5)  # type: ignore[call-arg]


def test_assignment_is_validated() -> None:
    """Assigning a bad value after construction is refused too."""
    limits = ResourceLimits(timeout_seconds=5)
    with pytest.raises(ValidationError):
        limits.timeout_seconds = -1


def test_reference_from_config_example() -> None:
    """The from_config example of execution-api.md works."""
    limits = ResourceLimits.from_config({"timeout_seconds": 30, "memory_limit_mb": 256})
    assert limits.timeout_seconds == 30.0
    assert limits.memory_limit_mb == 256
    assert limits.cpu_limit_percent is None


def test_numbers_as_text_or_decimal_are_converted_and_checked() -> None:
    """A configuration read from text (environment variables, INI files) gives its numbers as
    strings, and accounting code as Decimals: both are converted as the docs say, and checked
    as any number is."""
    limits = ResourceLimits.from_config(
        {"timeout_seconds": "30", "memory_limit_mb": "256", "cpu_limit_percent": Decimal("50")}
    )
    assert (limits.timeout_seconds, limits.memory_limit_mb, limits.cpu_limit_percent) == (
        30.0,
        256,
        50.0,
    )
    assert type(limits.timeout_seconds) is float
    assert type(limits.cpu_limit_percent) is float
    with pytest.raises(ValidationError, match="timeout_seconds"):
        ResourceLimits.from_config({"timeout_seconds": "-1"})
    with pytest.raises(ValidationError, match="timeout_seconds"):
        ResourceLimits(timeout_seconds=Decimal("NaN"))


def test_from_config_of_an_empty_mapping() -> None:
    """from_config({}) gives no limits."""
    assert ResourceLimits.from_config({}) == ResourceLimits()


def test_from_config_accepts_none_values() -> None:
    """None values in the config mean 'no limit'."""
    assert ResourceLimits.from_config({"timeout_seconds": None}).timeout_seconds is None


def test_from_config_refuses_unknown_keys() -> None:
    """An unknown key raises ValueError naming it and the expected keys."""
    with pytest.raises(ValueError, match="timeout") as info:
        ResourceLimits.from_config({"timeout": 30})
    assert "timeout_seconds" in str(info.value)


@pytest.mark.parametrize("config", [None, [("timeout_seconds", 1)], "timeout_seconds=1", 30])
def test_from_config_refuses_non_mappings(config: Any) -> None:
    """A config that is not a mapping raises TypeError."""
    with pytest.raises(TypeError, match="mapping"):
        ResourceLimits.from_config(config)


def test_from_config_validates_values() -> None:
    """from_config refuses a bad value like the constructor does."""
    with pytest.raises(ValueError, match="timeout_seconds"):
        ResourceLimits.from_config({"timeout_seconds": -3})


def test_limits_are_compared_by_value() -> None:
    """Two ResourceLimits with equal fields compare equal."""
    assert ResourceLimits(timeout_seconds=1) == ResourceLimits.from_config({"timeout_seconds": 1})


def test_the_fields_may_be_passed_by_position_as_the_reference_signature_allows() -> None:
    """ResourceLimits(30, 256, 50.0) is ResourceLimits(timeout_seconds=30, ...): the reference
    writes the constructor with positional-or-keyword parameters in this order."""
    assert ResourceLimits(30, 256, 50.0) == ResourceLimits(
        timeout_seconds=30, memory_limit_mb=256, cpu_limit_percent=50.0
    )
    assert ResourceLimits(12.5).timeout_seconds == 12.5
    assert ResourceLimits(None, 64).memory_limit_mb == 64


def test_positional_fields_are_validated_like_keywords() -> None:
    """A bad value passed by position is refused naming its field."""
    with pytest.raises(ValidationError, match="memory_limit_mb"):
        ResourceLimits(None, -1)


def test_a_fourth_positional_argument_is_refused() -> None:
    """There are three fields: a fourth positional value raises TypeError."""
    with pytest.raises(TypeError):
        ResourceLimits(1, 2, 3, 4)  # type: ignore[call-arg]


def test_only_the_fields_given_count_as_set() -> None:
    """Taking fields by position must not mark the others as set: ``model_dump(
    exclude_unset=True)`` of limits built from a partial configuration stays partial."""
    assert ResourceLimits().model_fields_set == set()
    assert ResourceLimits(30).model_fields_set == {"timeout_seconds"}
    assert ResourceLimits(memory_limit_mb=64).model_dump(exclude_unset=True) == {
        "memory_limit_mb": 64
    }
    assert ResourceLimits(None, 64).model_fields_set == {"timeout_seconds", "memory_limit_mb"}


def test_a_field_given_by_position_and_keyword_is_refused() -> None:
    """As for any Python function, one field given both ways is a TypeError."""
    with pytest.raises(TypeError, match="timeout_seconds"):
        ResourceLimits(30, timeout_seconds=5)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("limits", "named"),
    [
        (ResourceLimits().model_copy(update={"timeout_seconds": -1}), "timeout_seconds"),
        (ResourceLimits.model_construct(timeout_seconds="soon"), "timeout_seconds"),
        (ResourceLimits(30).model_copy(update={"memory_limit_mb": 0}), "memory_limit_mb"),
        (ResourceLimits.model_construct(cpu_limit_percent=math.nan), "cpu_limit_percent"),
    ],
    ids=["copy-negative-timeout", "constructed-text-timeout", "copy-zero-memory", "nan-cpu"],
)
def test_an_executor_refuses_limits_built_without_validation(
    limits: ResourceLimits, named: str
) -> None:
    """``model_copy(update=...)`` and ``model_construct`` skip Pydantic's validation: an
    executor took such limits, and then every task ended ``timeout`` "of -1s" before it
    started, or was rejected with "'>' not supported between instances of 'str' and
    'float'". The executor checks them at the call, naming the field."""
    registry = ToolRegistry()
    with pytest.raises(ValueError, match=rf"^resource_limits\.{named}") as raised:
        Executor(registry, limits, store=MetricStore(), register_prometheus=False)
    assert "model_copy" in str(raised.value)


def test_an_executor_takes_valid_limits_built_without_validation() -> None:
    """Valid values are taken however the limits were built (and kept as given)."""
    limits = ResourceLimits().model_copy(update={"timeout_seconds": 5.0})
    executor = Executor(ToolRegistry(), limits, store=MetricStore(), register_prometheus=False)
    try:
        assert executor.resource_limits is limits
    finally:
        executor.shutdown()


class _Waits(BaseTool):
    """Waits (at most ten seconds) for its ``release`` event."""

    name = "waits"
    description = "Waits for its release event."

    def _execute(self, **kwargs: Any) -> Any:
        kwargs["release"].wait(10.0)
        return "released"


def test_limits_assigned_to_an_executor_apply_to_its_later_calls() -> None:
    """``executor.resource_limits`` is documented as the executor's default limits, but a
    new value assigned to it was ignored: tasks ran on under the limits the executor was
    built with (no timeout at all here). The executor now applies what is assigned."""
    registry = ToolRegistry()
    registry.register_tool(_Waits)
    executor = Executor(registry, store=MetricStore(), register_prometheus=False)
    release = threading.Event()
    try:
        executor.resource_limits = ResourceLimits(timeout_seconds=0.2)
        assert executor.resource_limits == ResourceLimits(timeout_seconds=0.2)
        task = Task(
            plan_id="p", description="d", tool_name="waits", parameters={"release": release}
        )
        result = executor.execute_task(task, Context(session_id="s", user_id="u"))
        assert result.metadata["outcome"] == "timeout"
        assert "0.2s" in str(result.error)
    finally:
        release.set()
        executor.shutdown()


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ({"timeout_seconds": 1}, TypeError),
        (30, TypeError),
        (ResourceLimits().model_copy(update={"timeout_seconds": -1}), ValueError),
    ],
    ids=["dict", "number", "unvalidated"],
)
def test_bad_limits_assigned_to_an_executor_are_refused(value: Any, error: type) -> None:
    """What the constructor refuses is refused on assignment too; the limits stay as they
    were."""
    limits = ResourceLimits(timeout_seconds=5)
    executor = Executor(ToolRegistry(), limits, store=MetricStore(), register_prometheus=False)
    try:
        with pytest.raises(error, match="resource_limits"):
            executor.resource_limits = value
        assert executor.resource_limits is limits
    finally:
        executor.shutdown()


@pytest.fixture
def unwarned(monkeypatch: pytest.MonkeyPatch) -> None:
    """No limit warned about yet in this process."""
    from laios.execution import executor as executor_module
    from laios.execution._logs import WarningLimiter

    monkeypatch.setattr(executor_module, "_UNENFORCED_WARNINGS", WarningLimiter(math.inf))


@pytest.mark.parametrize(
    ("limits", "named"),
    [
        (ResourceLimits(memory_limit_mb=256), ["memory_limit_mb"]),
        (ResourceLimits(30, cpu_limit_percent=50), ["cpu_limit_percent"]),
        (ResourceLimits(30, 256, 50), ["memory_limit_mb", "cpu_limit_percent"]),
    ],
    ids=["memory", "cpu", "both"],
)
@pytest.mark.usefixtures("unwarned")
def test_limits_the_threads_cannot_enforce_are_warned_about_once(
    caplog: pytest.LogCaptureFixture, limits: ResourceLimits, named: list[str]
) -> None:
    """An executor whose tools run in its own process (threads, event loops) cannot hold a
    tool to a memory limit or a CPU budget: it ran without them in silence. It now says so
    with one warning per limit (once per process), naming the limit and the process runner
    that enforces it; the limits are kept as given."""
    with caplog.at_level("WARNING", logger="laios.execution"):
        for _ in range(2):
            executor = Executor(
                ToolRegistry(), limits, store=MetricStore(), register_prometheus=False
            )
            assert executor.resource_limits is limits
            executor.shutdown()
    said = [r.getMessage() for r in caplog.records if "is not enforced" in r.getMessage()]
    assert len(said) == len(named), said
    for option, message in zip(named, said, strict=True):
        assert message.startswith(f"ResourceLimits.{option} is not enforced"), message
        assert "thread" in message
        assert "ProcessRunner" in message


@pytest.mark.usefixtures("unwarned")
def test_limits_assigned_that_the_threads_cannot_enforce_are_warned_about(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Limits assigned later (``executor.resource_limits = ...``) are told about too; a
    timeout alone, which every runner enforces, never is."""
    with caplog.at_level("WARNING", logger="laios.execution"):
        executor = Executor(
            ToolRegistry(), ResourceLimits(30), store=MetricStore(), register_prometheus=False
        )
        try:
            assert not [r for r in caplog.records if "is not enforced" in r.getMessage()]
            executor.resource_limits = ResourceLimits(memory_limit_mb=64)
        finally:
            executor.shutdown()
    said = [r.getMessage() for r in caplog.records if "is not enforced" in r.getMessage()]
    assert len(said) == 1, said
    assert said[0].startswith("ResourceLimits.memory_limit_mb is not enforced")


class _KeyThatCannotBeRead:
    """A configuration key whose ``==``, ``str()`` and ``repr()`` raise (or, with
    ``hashable=False``, whose hash raises too)."""

    def __init__(self, hashable: bool = True) -> None:
        self.hashable = hashable

    def __hash__(self) -> int:
        if not self.hashable:
            raise RuntimeError("no hash")
        return 1

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("no ==")

    def __str__(self) -> str:
        raise RuntimeError("no str")

    __repr__ = __str__


class _ListedMapping(dict):  # type: ignore[type-arg]
    """A mapping that holds its keys in a list, so that one whose hash raises can be given."""

    def __init__(self, keys: list[Any]) -> None:
        super().__init__()
        self._keys = keys

    def __iter__(self) -> Any:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)


@pytest.mark.parametrize("hashable", [True, False], ids=["eq-raises", "hash-raises"])
def test_from_config_refuses_a_key_that_cannot_be_read_as_unknown(hashable: bool) -> None:
    """A key whose ==, str() (or hash) raises is an unknown key, the ValueError naming its
    type, instead of the key's RuntimeError escaping from_config."""
    config = _ListedMapping([_KeyThatCannotBeRead(hashable)])
    with pytest.raises(
        ValueError, match=r"^unknown resource limit key\(s\): '<_KeyThatCannotBeRead object>'"
    ):
        ResourceLimits.from_config(config)
