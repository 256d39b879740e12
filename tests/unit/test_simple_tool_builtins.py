"""A builtin function whose signature cannot be read (``max``, ``getattr``) tells nothing of
its parameters: a tool made of it would describe none and fail every call ("max expected at
least 1 argument"). ``create_simple_tool`` refuses it when the tool is made, as it refuses
``len``, saying to wrap it in a function with named parameters."""

from __future__ import annotations

import functools
import inspect
import operator
from typing import Any

import pytest

from laios.tools.base import ToolInput, create_simple_tool


class _Values(ToolInput):
    values: list[int]


@pytest.mark.parametrize("func", [max, getattr], ids=["max", "getattr"])
@pytest.mark.parametrize("input_model", [None, _Values], ids=["no-model", "model"])
def test_a_builtin_without_a_signature_is_refused(func: Any, input_model: Any) -> None:
    with pytest.raises(TypeError) as caught:
        create_simple_tool("tool", "Calls a builtin.", func, input_model=input_model)
    message = str(caught.value)
    assert f"builtin {func.__name__}" in message
    assert "signature cannot be read" in message
    assert "named parameters" in message
    assert f"lambda values: {func.__name__}(values)" in message


def test_the_wrapped_builtin_works() -> None:
    tool = create_simple_tool("largest", "Largest value.", lambda values: max(values))
    assert tool.execute(values=[3, 9, 4]).data == 9
    assert [p.name for p in tool.get_parameters()] == ["values"]


def test_a_builtin_class_without_a_signature_is_still_accepted() -> None:
    tool = create_simple_tool("make_dict", "Makes a dict.", dict)
    assert tool.execute(a=1).data == {"a": 1}


@pytest.mark.parametrize(
    "func",
    [
        functools.partial(max, key=abs),
        functools.partial(functools.partial(getattr), default=None),
    ],
    ids=["partial-max", "partial-of-partial-getattr"],
)
def test_a_partial_of_a_builtin_without_a_signature_is_refused(func: Any) -> None:
    # (its signature cannot be read either: the tool would describe no parameter and pass
    # them by name to a builtin that takes them by position, failing every call)
    with pytest.raises(TypeError) as caught:
        create_simple_tool("tool", "Calls a builtin.", func)
    message = str(caught.value)
    inner = func.func.func if isinstance(func.func, functools.partial) else func.func
    assert f"functools.partial of the builtin {inner.__name__}" in message
    assert "signature cannot be read" in message
    assert f"lambda values: {inner.__name__}(values)" in message


def test_a_partial_of_a_builtin_with_a_signature_works() -> None:
    tool = create_simple_tool("rounded", "Rounds.", functools.partial(round, ndigits=1))
    assert tool.execute(number=2.345).data == 2.3
    assert [p.name for p in tool.get_parameters()] == ["number", "ndigits"]


@pytest.mark.parametrize(
    "func",
    [operator.itemgetter("a"), functools.partial(operator.methodcaller("upper"))],
    ids=["itemgetter", "partial-methodcaller"],
)
def test_a_builtin_callable_object_without_a_signature_is_refused(func: Any) -> None:
    # (every call failed: "itemgetter() takes no keyword arguments")
    with pytest.raises(TypeError) as caught:
        create_simple_tool("tool", "Calls a builtin object.", func)
    message = str(caught.value)
    try:
        inspect.signature(func)
    except ValueError:
        pass
    else:
        # (Python 3.13 gives these objects a signature, "(obj, /)": refused for taking their
        # parameter only by position)
        assert "takes obj only by position" in message
        assert "lambda obj: func(obj)" in message
        return
    assert "operator." in message
    assert "signature cannot be read" in message
    assert "lambda values: func(values)" in message
