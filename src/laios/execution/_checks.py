"""Checks of constructor arguments shared by the executor and its runners."""

from __future__ import annotations

import contextlib
import inspect
import math
import numbers
import types
from collections.abc import Iterator
from fractions import Fraction
from typing import Any

from laios._callables import generator_kind, is_coroutine_function
from laios._compat.pydantic import is_instance
from laios._exceptions import type_name
from laios._numbers import is_numpy_timedelta
from laios._text import MAX_QUOTED_CHARS, quoted, shorten, shown_type
from laios.core.types import Task

__all__ = [
    "METER_PROVIDER_INSTEAD",
    "MOST_PROCESSES",
    "TRACER_PROVIDER_INSTEAD",
    "as_float",
    "check_listener",
    "check_task_fields",
    "conversion_hint",
    "is_boolean",
    "no_task_as_id",
    "not_a_class",
    "not_a_module",
    "not_real",
    "number_repr",
    "of_kind",
    "plain_callable",
    "positive_int",
    "process_count",
    "require_task",
    "switch",
    "whole_number",
]


#: The most worker processes one runner option may ask for (``ProcessRunner(max_workers)``,
#: ``DaskRunner(n_workers, threads_per_worker)``): a count past it would have the runner start
#: processes until the system refuses (a local Dask cluster starts its workers at once).
MOST_PROCESSES = 1024
#: What to pass as ``meter_provider`` instead of a module (``Executor`` and
#: ``instrument_metrics`` say the same).
METER_PROVIDER_INSTEAD = (
    "pass a provider (an SDK MeterProvider(...)), or None for the one installed globally"
)
#: What to pass as ``tracer_provider`` instead of a module (``Executor`` and ``Tracing``).
TRACER_PROVIDER_INSTEAD = (
    "pass a provider (an SDK TracerProvider(...)), or None for the one installed globally"
)


def whole_number(value: object) -> int | None:
    """``value`` as a plain ``int`` when it is a whole number (an int, a NumPy integer; not a
    ``bool``, which would pass for 0 or 1, nor NumPy's ``timedelta64``), else ``None``."""
    if type(value) is int:  # (the common case)
        return value
    if (
        isinstance(value, numbers.Integral)
        and not isinstance(value, bool)
        and not is_numpy_timedelta(value)  # (a length of time NumPy calls an integer)
    ):
        return int(value)
    return None


def positive_int(name: str, value: Any) -> int:
    """``value`` as a plain ``int`` when it is a whole number of 1 or more (see
    :func:`whole_number`).

    Raises:
        ValueError: Naming ``name`` and the value given, otherwise.
    """
    number = whole_number(value)
    if number is None or number < 1:
        raise ValueError(f"{name} must be a positive whole number, got {number_repr(value)}")
    return number


def process_count(name: str, value: Any) -> int:
    """``value`` as a plain ``int`` when it is a whole number from 1 to
    :data:`MOST_PROCESSES` (see :func:`whole_number`): a count of OS processes a runner starts.

    Raises:
        ValueError: Naming ``name``, the allowed range and the value given, otherwise.
    """
    number = whole_number(value)
    if number is None or not 1 <= number <= MOST_PROCESSES:
        raise ValueError(
            f"{name} must be a whole number from 1 to {MOST_PROCESSES} (each is an OS process "
            f"the runner starts), got {number_repr(value)}"
        )
    return number


def is_boolean(value: object) -> bool:
    """Whether ``value`` is one boolean: a ``bool``, or NumPy's (``np.True_``), which converts
    to a number without complaint; not an array of them (whose truth is ambiguous)."""
    if isinstance(value, bool):
        return True
    if getattr(value, "shape", None) != ():
        return False
    return getattr(getattr(value, "dtype", None), "kind", None) == "b"


def of_kind(value: object, kind: Any) -> bool:
    """``isinstance(value, kind)``, ``False`` when the check itself raises: a value whose
    ``__class__`` raises (a proxy standing for nothing) passes no check its own type does not.
    :func:`~laios._compat.pydantic.is_instance`, for any class: mypy takes an abstract one
    (``numbers.Real``, ``Iterable``) there only as a value, not as ``type[T]``."""
    return is_instance(value, kind)


def is_real(value: object) -> bool:
    """Whether ``value`` is a real number: an int, a float, a ``Fraction``, NumPy's numbers;
    not a ``bool``, which would pass for 0 or 1, nor NumPy's ``timedelta64``, a length of time
    (see :func:`~laios._numbers.is_numpy_timedelta`), as a ``datetime.timedelta`` is not. Not a
    value whose ``__class__`` raises (a proxy standing for nothing), whose ``isinstance``
    checks raise."""
    return (
        of_kind(value, numbers.Real)
        and not isinstance(value, bool)
        and not is_numpy_timedelta(value)
    )


def conversion_hint(value: object) -> str:
    """``": pass float(value)"`` for a number that :func:`is_real` refuses but ``float()``
    converts (a ``Decimal``: a number to its user, but not a real number to Python), to end
    the error that refuses it; ``""`` for anything else (a complex, a string)."""
    if (
        of_kind(value, numbers.Number)
        and not isinstance(value, (numbers.Complex, bool))  # (a Real is a Complex too)
    ):
        return ": pass float(value)"
    return ""


def not_real(what: str, value: object) -> TypeError:
    """The error for a value that :func:`is_real` refuses: ``"{what} must be a number, got
    TYPE"``; for another kind of number (a ``Decimal``, a complex) what is taken, and for a
    ``Decimal`` how to convert it (see :func:`conversion_hint`). A NumPy ``timedelta64`` is
    no kind of number (see :func:`is_real`), as a ``datetime.timedelta`` is not."""
    kind = shown_type(value)
    if (
        isinstance(value, numbers.Number)
        and not isinstance(value, bool)
        and not is_numpy_timedelta(value)
    ):
        hint = conversion_hint(value)
        return TypeError(
            f"{what} must be a real number (int, float, Fraction or a NumPy number), got "
            f"{kind}{hint}"
        )
    return TypeError(f"{what} must be a number, got {kind}")


def as_float(value: int | float) -> float:
    """``float(value)``, with an int or a ``Fraction`` too large for a float as infinity of
    its sign (where ``float()`` raises ``OverflowError``)."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def number_repr(value: object) -> str:
    """``repr(value)`` for an error message: an int too large for a float is described by its
    size instead of its hundreds of digits (or a ``ValueError`` past 4,300 of them), and so
    are the parts of a ``Fraction`` (``Fraction(<int of 1329 bits>, 1)``). A value whose
    ``repr`` raises is described by its type (``<Thing object>``), and a long ``repr`` is cut
    to ``MAX_QUOTED_CHARS`` characters: the message must be made, and stay short."""
    if is_instance(value, int) and not isinstance(value, bool) and value.bit_length() > 1024:
        sign = "-" if value < 0 else ""
        return f"{sign}<int of {value.bit_length()} bits>"
    if is_instance(value, Fraction):
        numerator, denominator = value.numerator, value.denominator
        if numerator.bit_length() > 1024 or denominator.bit_length() > 1024:
            name = type(value).__name__
            return f"{name}({number_repr(numerator)}, {number_repr(denominator)})"
    return quoted(value)


@contextlib.contextmanager
def reading(name: str) -> Iterator[None]:
    """Check option ``name`` inside: an error other than ``TypeError`` raised there comes from
    looking the value over (an attribute lookup raising ``RuntimeError``, a proxy's say), and
    becomes a ``TypeError`` naming ``name``, chained from it. Hold no check raising
    ``ValueError`` on purpose inside.

    Raises:
        TypeError: As said.
    """
    try:
        yield
    except TypeError:
        raise
    except Exception as exc:
        try:
            said = shorten(str(exc), 200)
        except Exception:  # (its own __str__ raising)
            said = ""
        raise TypeError(
            f"{name} cannot be used: looking it over raised {type_name(type(exc))}"
            + (f": {said}" if said else "")
        ) from exc


def switch(name: str, value: object) -> bool:
    """``value`` as a bool when it is ``True``/``False`` (NumPy's too) or ``0``/``1``, which
    say the same.

    Raises:
        TypeError: Naming ``name``, otherwise: a string like ``"false"``, or another whole
            number (``2``, perhaps meant for another option), would read as true; also
            when looking ``value`` over raises.
    """
    with reading(name):
        return _switch(name, value)


def _switch(name: str, value: object) -> bool:
    """:func:`switch`, which reads a value whose look-up raises as a wrong one."""
    if is_boolean(value):
        return bool(value)
    if isinstance(value, int):
        number = int.__int__(value)  # (its value: a subclass's __eq__ may claim anything)
        if number in (0, 1):
            return number == 1
        # (any other number would read as true, and is most likely meant for another option)
        raise TypeError(
            f"{name} must be True or False, got int {number_repr(value)} (of the whole numbers, "
            "only 0 and 1 are taken)"
        )
    if value is None:
        said = "None"
    elif isinstance(value, (str, bytes)):
        said = f"{type(value).__name__} (a string like 'false' would read as true)"
    elif is_real(value):
        said = (
            f"{type_name(type(value))} {number_repr(value)} (of the numbers, only the whole "
            "numbers 0 and 1 are taken)"
        )
    else:
        said = type_name(type(value))
    raise TypeError(f"{name} must be True or False, got {said}")


def not_a_class(name: str, value: object, method: str) -> None:
    """Refuse a class where an instance of it is wanted (``Executor(ToolRegistry)``: the call's
    parentheses forgotten): one whose ``method`` is a plain instance method, which a check for
    the method finds, unbound, so that the mistake would surface later as an obscure error
    about a missing argument. A class whose ``method`` is a class or static method works as
    it is, and passes.

    Raises:
        TypeError: Naming ``name`` and the class, and saying to pass an instance; naming
            ``name`` too when looking ``value`` over raises.
    """
    with reading(name):
        is_class = isinstance(value, type) and isinstance(
            inspect.getattr_static(value, method, None), types.FunctionType
        )
    if is_class:
        assert isinstance(value, type)
        raise TypeError(
            f"{name} must be an instance, got the class {value.__name__} itself: pass an "
            f"instance ({value.__name__}(...))"
        )


def not_a_module(name: str, value: object, kind: str, instead: str) -> None:
    """Refuse a module where an instance is wanted (``meter_provider=metrics``, the module
    ``from opentelemetry import metrics`` gives): a module-level function of the method's name
    passes a check for the method, and does the work through whatever the module holds
    globally, not through an object the caller chose.

    Raises:
        TypeError: Saying that ``name`` must be ``kind``, naming the module, and what to pass
            ``instead``.
    """
    if isinstance(value, types.ModuleType):
        raise TypeError(f"{name} must be {kind}, got the module {value.__name__}: {instead}")


def require_method(option: str, value: object, method: str, kind: str) -> None:
    """Refuse ``value`` for ``option`` unless it is ``None`` or has a callable ``method``.

    Raises:
        TypeError: Saying that ``option`` must be ``kind`` (also when looking ``value`` over
            raises).
    """
    with reading(option):
        usable = value is None or callable(getattr(value, method, None))
    if not usable:
        raise TypeError(f"{option} must be {kind}, got {type(value).__name__}")


def _expecting(signature: str | None) -> str:
    """The end of a callback's refusal that quotes the ``signature`` expected, if any."""
    return "" if signature is None else f" (expected: {signature})"


def _plain_def(signature: str | None) -> str:
    """What a callback's refusal asks for instead: a plain def, of ``signature`` if given."""
    return "(pass a plain def)" if signature is None else f"(pass a plain def {signature})"


def plain_callable(
    name: str,
    takes: str,
    value: Any,
    error: type[Exception] = TypeError,
    *,
    signature: str | None = None,
) -> None:
    """Refuse a callback that could not be called as a plain function taking ``takes``
    (``signature``: the one expected, quoted by the error when given).

    Raises:
        TypeError: (or ``error``) When ``value`` is not callable, or is an async function
            (nothing would await the coroutines it returns).
    """
    if not callable(value):
        raise error(
            f"{name} must be a callable taking {takes}, got {type(value).__name__}"
            f"{_expecting(signature)}"
        )
    if is_coroutine_function(value):
        raise error(
            f"{name} must be a plain function taking {takes}, not an async function: it is "
            f"called, never awaited {_plain_def(signature)}"
        )


#: What a callback is handed in its signature check (see :func:`takes_one_argument`).
_STAND_IN = object()
#: Longest signature quoted in a refusal, in characters.
_SHOWN_SIGNATURE_CHARS = 200


def takes_one_argument(
    name: str,
    takes: str,
    value: Any,
    error: type[Exception] = TypeError,
    *,
    signature: str | None = None,
) -> None:
    """Refuse a callback whose signature cannot take the one positional argument laios passes
    it (more required parameters, none at all, a required keyword-only one), so that the
    mistake is told at the call instead of after a first attempt has run. A callable whose
    signature cannot be read (some builtins and C callables, a proxy whose lookups raise) is
    accepted, as it was before the check.

    Raises:
        TypeError: (or ``error``) Naming ``name``, the signature found and what it must take
            (and ``signature``, the one expected, when given).
    """
    refused = _signature_refusing(value, 1)
    if refused is not None:
        raise error(
            f"{name} must be a callable taking {takes} as its one argument, got one with the "
            f"signature {refused}: it must accept exactly one positional argument"
            f"{_expecting(signature)}"
        )


def _signature_refusing(value: Any, arguments: int) -> str | None:
    """The signature of ``value`` and why it cannot be called with ``arguments`` positional
    arguments (``"(event) (too many positional arguments)"``); ``None`` when it can, or when
    its signature cannot be read (some builtins and C callables, a proxy whose lookups
    raise): it is called then, and what it raises is reported."""
    try:
        found = inspect.signature(value)
    except Exception:
        return None
    try:
        found.bind(*(_STAND_IN,) * arguments)
    except TypeError as exc:
        return f"{shorten(str(found), _SHOWN_SIGNATURE_CHARS)} ({exc})"
    return None


#: Code of the ``on_progress`` functions (and, as ``(code, True)``, methods) found to take
#: ``(event, data)``: a program has few callbacks, made again and again from the same code
#: (a lambda per call), so each is read once. Cleared when it holds
#: :data:`_MOST_CHECKED_CALLBACKS` entries.
_TAKES_EVENT_AND_DATA: set[object] = set()
_MOST_CHECKED_CALLBACKS = 1024


def takes_event_and_data(value: Any) -> None:
    """Refuse an ``on_progress`` function or method that cannot be called with the two
    positional arguments ``(event, data)`` laios passes it (fewer parameters, a third required
    one, a required keyword-only one), so that the mistake is told at the call instead of in a
    logged error for every event. Other callables (a ``functools.partial``, an object with
    ``__call__``, a builtin) are accepted unread, as before: what they raise when called is
    reported then. A function's signature is read once per code object.

    Raises:
        TypeError: Naming the signature found.
    """
    kind = type(value)
    if kind is types.FunctionType:
        key: object = value.__code__
    elif kind is types.MethodType and type(value.__func__) is types.FunctionType:
        key = (value.__func__.__code__, True)
    else:
        return
    if key in _TAKES_EVENT_AND_DATA:
        return
    refused = _signature_refusing(value, 2)
    if refused is not None:
        raise TypeError(
            f"on_progress must take (event, data) as its two positional arguments, got one "
            f"with the signature {refused}: pass a function such as "
            "def on_progress(event, data): ..."
        )
    if len(_TAKES_EVENT_AND_DATA) >= _MOST_CHECKED_CALLBACKS:
        _TAKES_EVENT_AND_DATA.clear()
    _TAKES_EVENT_AND_DATA.add(key)


def no_generator_function(
    name: str,
    takes: str,
    value: Any,
    error: type[Exception] = TypeError,
    *,
    signature: str | None = None,
) -> None:
    """Refuse a callback written with ``yield`` (a generator or async generator function, or
    a ``functools.partial`` or callable object of one), whose call runs none of its body.

    Raises:
        TypeError: (or ``error``) As said.
    """
    kind = generator_kind(value)
    if kind is not None:
        article = "an" if kind == "async generator" else "a"
        raise error(
            f"{name} must be a plain function taking {takes}, not {article} {kind} function "
            f"(written with yield): calling it runs none of its body {_plain_def(signature)}"
        )


def check_listener(listener: Any) -> None:
    """Refuse a store listener that is no plain callable taking one update (see
    :func:`plain_callable`)."""
    plain_callable("a listener", "one update", listener)


def no_task_as_id(task_id: object) -> bool:
    """Refuse a ``Task`` given where its id is taken: kept or looked up as ``str(task)``, it
    would never meet the task's own id. Returns whether ``task_id`` can be looked up at all:
    not an object whose hash raises (a ``str`` subclass of the caller's own), nor one whose
    ``__class__`` raises (a proxy standing for nothing), which no record has as its id.

    Raises:
        TypeError: Saying to pass ``task.id``.
    """
    if type(task_id) is str:  # (the common case)
        return True
    if is_instance(task_id, Task):
        raise TypeError("a task id (a string) is taken here, got a Task: pass task.id")
    try:
        hash(task_id)
        # (a proxy standing for nothing, whose __class__ raises: every lookup's isinstance
        # check would raise that error)
        isinstance(task_id, str)
    except Exception:
        return False
    return True


def as_text(value: object, name: str = "value") -> str:
    """``value`` as text: a string as it is (a ``(str, Enum)`` member as its value, where
    ``str()`` gives ``"Class.MEMBER"``; a ``str`` subclass as a plain ``str``, whose hash and
    ``==`` are str's own), anything else as ``str(value)``.

    Raises:
        TypeError: When ``str(value)`` raises or gives no string, naming ``name`` and the
            type of ``value`` (its own ``repr`` is not called: it may raise too).
    """
    if type(value) is str:  # (the common case)
        return value
    if isinstance(value, str):
        return str.__str__(value)
    try:
        text = str(value)
    except Exception as exc:
        raise TypeError(
            f"{name} must be a string (or a value whose str() gives one), got "
            f"{shown_type(value)}, whose str() raised {shown_type(exc)}"
        ) from exc
    # (str() of an object whose __str__ returns a str subclass gives that subclass)
    return text if type(text) is str else str.__str__(text)


def task_key(task_id: object) -> str:
    """The id the monitors (and the store's reads they go through) keep a task under:
    ``task_id`` as text (see :func:`as_text`).

    Raises:
        TypeError: When ``task_id`` is a ``Task`` (its id is meant: ``task.id``), or
            ``str(task_id)`` raises or gives no string.
    """
    if type(task_id) is str:  # (the common case)
        return task_id
    no_task_as_id(task_id)
    return as_text(task_id, "task_id")


def require_task(task: Any, call: str) -> None:
    """Refuse something that is no task at all (it has no ``id``), naming the call.

    Raises:
        TypeError: ``"<call>() needs a Task, got <type>"``.
    """
    if not hasattr(task, "id"):
        raise TypeError(f"{call}() needs a Task, got {type(task).__name__}")


def check_task_fields(task: Any, *names: str) -> None:
    """Refuse a ``Task`` built without validation (``model_construct``) whose fields ``names``
    (of ``id``, ``tool_name`` and ``parameters``) have a type no road can take: ``id`` and
    ``tool_name`` must be strings, ``parameters`` a dict (subclasses pass).

    Raises:
        TypeError: Naming the field and the type it has, or an ``id`` of a ``str`` subclass
            whose hash raises (it would be no record's key).
    """
    for name in names:
        kind, what = (dict, "a dict") if name == "parameters" else (str, "a string")
        value = getattr(task, name, None)
        if not isinstance(value, kind):
            raise TypeError(
                f"Task.{name} must be {what}, got {type(value).__name__} (was the Task built "
                "without validation, e.g. with Task.model_construct?)"
            )
        if name == "id" and type(value) is not str:
            try:
                hash(value)
            except Exception as exc:
                raise TypeError(
                    "Task.id cannot be used as a task id: the __hash__ of its class "
                    f"{shorten(type(value).__qualname__, MAX_QUOTED_CHARS)} raises "
                    f"{shorten(type(exc).__qualname__, MAX_QUOTED_CHARS)}; pass a plain string "
                    "(str(task_id))"
                ) from None
