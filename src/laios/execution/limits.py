"""Resource limits for task execution."""

from __future__ import annotations

import inspect
import math
import numbers
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError, field_validator

from laios._numbers import is_numpy_timedelta
from laios.execution._checks import as_float, is_boolean, number_repr

__all__ = ["ResourceLimits"]

#: How a float field of ResourceLimits reads a number written as text (Pydantic's lax mode).
_FLOAT_FROM_TEXT: TypeAdapter[float] = TypeAdapter(float)


#: The order in which ResourceLimits takes its fields by position.
_FIELD_ORDER = ("timeout_seconds", "memory_limit_mb", "cpu_limit_percent")


class ResourceLimits(BaseModel):
    """Constraints applied to every task an executor runs.

    Attributes:
        timeout_seconds: Longest wall-clock time per task, in seconds (``None``: no limit).
            Must be a finite number greater than 0.
        memory_limit_mb: Memory a tool may allocate during a task, in MB. Enforced by a
            :class:`~laios.execution.runners.ProcessRunner` on Linux (the allocation fails
            inside the tool, ``error_type`` ``memory_limit``; on other platforms it logs a
            warning once and is not enforced); not enforced on the thread and loop
            runners (an executor given it there logs a warning saying so, once per process).
        cpu_limit_percent: CPU ceiling in percent (0–100 per core, so up to ``100 * cores``).
            A :class:`~laios.execution.runners.ProcessRunner` enforces it as a budget of
            ``cpu_limit_percent / 100 × timeout`` CPU seconds per task (``error_type``
            ``cpu_limit``; no timeout, no budget, and a warning once per process says so;
            an ``execute_with_retry`` attempt keeps the budget of its own timeout when the
            call's ``deadline`` cuts that timeout);
            not enforced on the other runners (a warning says so, as for the memory limit).

    The fields may be passed by keyword or by position, in this order. Bad values are refused
    when the object is built, with a ``pydantic.ValidationError`` (a ``ValueError``) naming
    the field: booleans, and bytes (``b"3"``), are no number; a number written as text
    (``"30"``) is converted::

        >>> ResourceLimits(timeout_seconds=30).timeout_seconds
        30.0
        >>> ResourceLimits(30, 256).memory_limit_mb
        256
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    timeout_seconds: float | None = None
    memory_limit_mb: int | None = None
    cpu_limit_percent: float | None = None

    # The reference's signature takes the fields by position too, in this order (a Pydantic
    # model's own constructor takes keywords only).
    if TYPE_CHECKING:  # (type checkers see no catch-all: a misspelt field is their error too)

        def __init__(
            self,
            timeout_seconds: float | None = None,
            memory_limit_mb: int | None = None,
            cpu_limit_percent: float | None = None,
        ) -> None: ...

    else:

        def __init__(self, *fields: Any, **keywords: Any) -> None:
            """Build and validate the limits; fields by keyword or by position, in this order.

            Raises:
                TypeError: When more values are given by position than there are fields, or
                    one is given both ways.
                pydantic.ValidationError: When a value is invalid or a keyword is not a field.
            """
            if len(fields) > len(_FIELD_ORDER):
                raise TypeError(
                    f"ResourceLimits takes at most {len(_FIELD_ORDER)} positional arguments "
                    f"({', '.join(_FIELD_ORDER)}), got {len(fields)}"
                )
            for name, value in zip(_FIELD_ORDER[: len(fields)], fields, strict=True):
                if name in keywords:
                    raise TypeError(f"ResourceLimits got {name} both by position and by keyword")
                keywords[name] = value
            # Only the fields given count as set; unknown keywords reach Pydantic, which
            # refuses them naming them.
            super().__init__(**keywords)

    @field_validator("timeout_seconds", "memory_limit_mb", "cpu_limit_percent", mode="before")
    @classmethod
    def _not_bool(cls, value: Any) -> Any:
        if is_boolean(value):
            raise ValueError(f"must be a number, not a boolean ({value!r})")
        if is_numpy_timedelta(value):  # (a length of time, which NumPy calls an integer)
            raise ValueError(f"must be a number, not a length of time ({number_repr(value)})")
        if isinstance(value, (bytes, bytearray, memoryview)):
            # (Pydantic would read bytes as text, b"3" as 3: bytes are neither a number nor
            # text, which a configuration read as text gives.)
            raise ValueError(
                f"must be a number, not {type(value).__name__} ({number_repr(value)}): write "
                "the number, or decode the bytes to text first"
            )
        return value

    @field_validator("timeout_seconds", "cpu_limit_percent", mode="before")
    @classmethod
    def _fits_a_float(cls, value: Any) -> Any:
        # An int or a Fraction past a float's range, refused naming it as given (the float
        # check after this one would call it no valid number, with its digits).
        exact = (
            isinstance(value, numbers.Rational)
            and not isinstance(value, bool)
            and not is_numpy_timedelta(value)
        )
        if exact and math.isinf(as_float(value)):
            why = "" if value < 0 else ": too large for a float (None means no limit)"
            raise ValueError(
                f"must be a finite number greater than 0, got {number_repr(value)}{why}"
            )
        return value

    @field_validator("timeout_seconds", "cpu_limit_percent")
    @classmethod
    def _positive_finite(cls, value: float | None) -> float | None:
        if value is None:
            return None
        if math.isnan(value) or math.isinf(value) or value <= 0:
            raise ValueError(f"must be a finite number greater than 0, got {value!r}")
        return value

    @field_validator("memory_limit_mb")
    @classmethod
    def _positive_int(cls, value: int | None) -> int | None:
        if value is not None and value <= 0:
            raise ValueError(f"must be a whole number of MB greater than 0, got {value!r}")
        return value

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ResourceLimits:
        """Build limits from a configuration mapping.

        Args:
            config: A mapping with any of the keys ``timeout_seconds``, ``memory_limit_mb``
                and ``cpu_limit_percent``. Missing keys (and ``None`` values) mean no limit.

        Returns:
            The limits.

        Raises:
            TypeError: When ``config`` is not a mapping.
            ValueError: When a key is unknown (a typo would otherwise silently drop a limit)
                or a value is invalid.

        Example:
            >>> ResourceLimits.from_config({"timeout_seconds": 30, "memory_limit_mb": 256})
            ResourceLimits(timeout_seconds=30.0, memory_limit_mb=256, cpu_limit_percent=None)
        """
        if not isinstance(config, Mapping):
            raise TypeError(
                f"ResourceLimits.from_config expects a mapping, got {type(config).__name__}"
            )
        known = set(cls.model_fields)
        unknown = [_key_text(key) for key in config if not _is_field(key, known)]
        if unknown:
            shown = ", ".join(repr(k[:64]) for k in sorted(unknown)[:5])
            raise ValueError(
                f"unknown resource limit key(s): {shown}; expected any of {sorted(known)}"
            )
        return cls.model_validate(dict(config))


def _is_field(key: object, known: set[str]) -> bool:
    """Whether ``key`` names a field (``False`` for a key whose hash or ``==`` raises)."""
    try:
        return key in known
    except Exception:
        return False


def _key_text(key: object) -> str:
    """``key`` as text, for naming it unknown; its type's name when its ``str()`` raises."""
    try:
        return str(key)
    except Exception:
        return f"<{type(key).__name__} object>"


# What help() and editors show is the reference's signature, the fields by position or by
# keyword: the constructor itself takes ``*fields, **keywords`` to accept both, and the
# signature Pydantic derives from it would read as keyword-only fields after ``*fields``.
ResourceLimits.__signature__ = inspect.Signature(
    [
        inspect.Parameter(
            name,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            default=None,
            annotation=ResourceLimits.model_fields[name].annotation,
        )
        for name in _FIELD_ORDER
    ],
    return_annotation=None,
)


def seconds_from_text(text: str) -> float | None:
    """The number ``text`` spells, read as ``ResourceLimits`` reads its ``timeout_seconds``
    (``"30"``, ``" 2.5 "``, ``"1e3"``); ``None`` when it spells no number (``"30s"``).

    Only the reading is shared: the caller checks the number (a per-call timeout of ``"inf"``
    means no limit, as ``float("inf")`` does there).
    """
    try:
        return _FLOAT_FROM_TEXT.validate_python(str.__str__(text))
    except ValidationError:
        return None


def check_limits(limits: ResourceLimits) -> None:
    """Refuse limits whose fields hold values that validation would not have let in.

    ``model_copy(update=...)`` and ``model_construct`` skip Pydantic's validation; an executor
    given such limits would fail every task far from the cause (a negative timeout ends each
    one before it starts).

    Raises:
        ValueError: Naming the first field that is invalid, its value and what is accepted.
    """
    values = {name: getattr(limits, name, None) for name in _FIELD_ORDER}
    try:
        checked = ResourceLimits.model_validate(values)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = error["loc"][0] if error["loc"] else "?"
        problem = error["msg"].removeprefix("Value error, ")
        value = values.get(str(field))
    else:
        wrong = [name for name in _FIELD_ORDER if getattr(checked, name) != values[name]]
        if not wrong:
            return
        field, value = wrong[0], values[wrong[0]]
        problem = f"holds {type(value).__name__}, not the field's type"
    shown = "" if "got " in problem else f" (got {number_repr(value)})"
    raise ValueError(
        f"resource_limits.{field} {problem}{shown}: were the limits built "
        "without validation (model_copy(update=...), model_construct)? Build them with "
        "ResourceLimits(...) or ResourceLimits.from_config(...)"
    )
