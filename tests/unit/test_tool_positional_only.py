"""A function whose required parameters can only be passed by position can never be called
with a tool's parameters, which go by name: ``create_simple_tool`` refuses it when the tool is
made, naming the parameters and saying how to write it, instead of making a tool whose every
call fails with Python's "got some positional-only arguments passed as keyword arguments"."""

from __future__ import annotations

import functools
import math
from typing import Any

import pytest
from pydantic import ValidationError

from laios.tools.base import ToolInput, create_simple_tool


def add(a: int, b: int, /) -> int:
    return a + b


def scaled(value: float, /, factor: float = 2.0) -> float:
    return value * factor


def open_ended(key: str, /, **kwargs: Any) -> Any:
    return key, kwargs


@pytest.mark.parametrize(
    ("func", "names"),
    [
        (add, "a, b"),
        (scaled, "value"),
        (open_ended, "key"),
        (functools.partial(add, 1), "b"),
        (len, "obj"),
    ],
    ids=["two", "one-and-a-keyword", "with-kwargs", "partial", "builtin"],
)
def test_required_positional_only_parameters_are_refused(func: Any, names: str) -> None:
    with pytest.raises(TypeError) as caught:
        create_simple_tool("tool", "Takes parameters by position.", func)
    message = str(caught.value)
    assert f"takes {names} only by position" in message
    assert "by name" in message
    assert ("remove the /" in message) is (func is not len)


@pytest.mark.parametrize(
    ("func", "wrapped"),
    [
        (math.sqrt, "lambda x: math.sqrt(x)"),
        (len, "lambda obj: len(obj)"),
        ({}.get, "lambda key: func(key)"),
    ],
    ids=["module-function", "builtin", "builtin-method"],
)
def test_a_builtin_taking_parameters_only_by_position_is_told_to_be_wrapped(
    func: Any, wrapped: str
) -> None:
    """A builtin's signature cannot be changed: the refusal says to wrap it, naming it where
    it has a name to call it by, and not to remove the ``/``."""
    with pytest.raises(TypeError) as caught:
        create_simple_tool("tool", "Takes parameters by position.", func)
    message = str(caught.value)
    assert "only by position" in message
    assert f"Wrap it in a function that takes them by name: {wrapped}" in message
    assert "remove the /" not in message


def test_a_function_of_ours_is_named_in_the_wrapper_shown() -> None:
    """The lambda shown for a function written in Python calls it by its name."""
    with pytest.raises(TypeError, match=r"lambda a, b: add\(a, b\)"):
        create_simple_tool("tool", "Adds.", add)


def test_positional_only_parameters_with_defaults_are_fine() -> None:
    def tool(a: int = 1, /, b: int = 2) -> int:
        return a + b

    made = create_simple_tool("tool", "Adds.", tool)
    assert made.execute(b=5).data == 6


def test_a_partial_giving_every_positional_only_parameter_is_fine() -> None:
    made = create_simple_tool("tool", "Adds.", functools.partial(add, 1, 2))
    assert made.execute().data == 3


def test_an_input_model_does_not_change_it() -> None:
    with pytest.raises(TypeError, match="takes a, b only by position"):
        create_simple_tool("tool", "Adds.", add, input_model=ToolInput)


def test_an_unreadable_signature_is_still_accepted() -> None:
    made = create_simple_tool("tool", "Makes a dict.", dict)
    assert made.execute(a=1).data == {"a": 1}


def test_the_parameters_beside_positional_only_ones_are_described_and_validated() -> None:
    """The parameters that go by name are described and checked as for any function; the
    positional-only one keeps its default, and a parameter of its name is refused at
    validation (it used to leave the schema empty, the others unchecked, and such a parameter
    failing the call with "got some positional-only arguments passed as keyword arguments")."""

    def tool(a: int = 1, /, b: int = 2) -> int:
        return a + b

    made = create_simple_tool("tool", "Adds.", tool)
    assert [(p.name, p.type, p.required) for p in made.get_parameters()] == [
        ("b", "integer", False)
    ]
    assert made.execute(b="5").data == 6
    refused = made.execute(a=5)
    assert refused.metadata == {"error_type": "ValidationError"}
    assert "a\n  Extra inputs are not permitted" not in str(refused.error)
    assert made.execute(b="x").metadata == {"error_type": "ValidationError"}


def test_a_positional_only_parameter_given_by_name_is_refused_saying_why() -> None:
    """A parameter named as a positional-only one is refused saying that it can only be
    passed by position, which a tool's call never does, not with pydantic's bare "Extra inputs
    are not permitted"; the other parameters' errors are reported beside it as they were."""

    def pair(a=1, /, b: int = 2):  # type: ignore[no-untyped-def]
        return (a, b)

    made = create_simple_tool("pair", "Pairs.", pair)
    with pytest.raises(ValidationError) as caught:
        made.run_raising(a=987654, b="x", c=3)
    errors = {error["loc"]: error for error in caught.value.errors()}
    assert errors[("b",)]["type"] == "int_parsing"
    assert errors[("c",)]["type"] == "extra_forbidden"
    assert errors[("a",)]["type"] == "positional_only_parameter"
    message = errors[("a",)]["msg"]
    assert "a can only be passed by position" in message
    assert "cannot be given" in message
    assert "keeps its default" in message
    assert "parameters of tool 'pair'" in str(caught.value)
    assert "987654" not in str(caught.value)  # (the input stays hidden, as for any error)
    assert made.execute(b=3).data == (1, 3)


def test_kwargs_beside_a_positional_only_parameter_take_its_name() -> None:
    def tool(a: int = 1, /, **kwargs: Any) -> Any:
        return a, kwargs

    made = create_simple_tool("tool", "Takes anything.", tool)
    assert made.get_parameters() == []
    assert made.execute(a=5).data == (1, {"a": 5})
