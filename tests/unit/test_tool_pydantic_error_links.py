"""Pydantic's own errors other than ``ValidationError`` (a ``PydanticUserError`` from an input
model that is not fully defined, say) reach a tool's failed output and a refusal of a tool
without the "For further information visit https://errors.pydantic.dev/..." line pydantic puts
under them, as a ``ValidationError``'s text does."""

from __future__ import annotations

from typing import Any

import pytest

from laios.tools.base import BaseTool, ToolInput
from laios.tools.registry import ToolRegistry


class _Unfinished(ToolInput):
    # (a name defined nowhere: pydantic cannot complete the model, and validating raises)
    value: Undefined  # type: ignore[name-defined]  # noqa: F821


class _UnfinishedTool(BaseTool):
    name = "unfinished"
    description = "Validates with a model that is not fully defined."
    input_model = _Unfinished

    def _execute(self, input_data: Any) -> int:
        return 1


class _NameFromModel(BaseTool):
    description = "Reads its name through a model that is not fully defined."

    @property
    def name(self) -> str:  # type: ignore[override]
        return _Unfinished.model_validate({}).value  # type: ignore[no-any-return]

    def _execute(self) -> int:
        return 1


def _assert_clean(text: str) -> None:
    assert "is not fully defined" in text
    assert "errors.pydantic.dev" not in text
    assert "For further information" not in text


def test_a_failed_output_leaves_out_the_link() -> None:
    output = _UnfinishedTool().execute(value=1)
    assert not output.success
    assert output.metadata["error_type"] == "PydanticUserError"
    assert output.error is not None
    _assert_clean(output.error)
    assert output.error == output.error.rstrip()


def test_a_refusal_at_registration_leaves_out_the_link() -> None:
    with pytest.raises(TypeError) as refused:
        ToolRegistry().register_tool(_NameFromModel)
    message = str(refused.value)
    _assert_clean(message)
    assert "reading its 'name' raised PydanticUserError" in message
    assert "model_rebuild()`.; a tool's name" in message
