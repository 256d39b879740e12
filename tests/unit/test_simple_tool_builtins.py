"""A builtin function whose signature cannot be read (``max``, ``getattr``) tells nothing of
its parameters: a tool made of it would describe none and fail every call ("max expected at
least 1 argument"). ``create_simple_tool`` refuses it when the tool is made, as it refuses
``len``, saying to wrap it in a function with named parameters."""

from __future__ import annotations

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
