"""The refusal of a tool class taking its input keyword-only says what would happen to the
other parameters as the signature has it: with ``**kwargs`` they would go there, not be
refused.

``def _execute(self, *, input_data=None, **kwargs)`` was refused saying that "any other
parameter would be refused", which is not so: ``**kwargs`` takes them.
"""

from typing import Any

import pytest

from laios.tools.base import BaseTool


def test_with_kwargs_the_message_says_the_others_go_there() -> None:
    with pytest.raises(TypeError, match="input_data only by name") as caught:

        class Open(BaseTool):
            name = "open"
            description = "Takes its input by name, and anything else."

            def _execute(self, *, input_data: Any = None, **kwargs: Any) -> Any:
                return kwargs

    message = str(caught.value)
    assert "would be refused" not in message
    assert "the others would go to **kwargs" in message


def test_without_kwargs_the_message_says_the_others_are_refused() -> None:
    with pytest.raises(TypeError, match="any other parameter would be refused"):

        class Closed(BaseTool):
            name = "closed"
            description = "Takes its input by name only."

            def _execute(self, *, input_data: Any) -> Any:
                return input_data
