"""A ``_validate`` hook whose body would never run.

``_validate`` is called, never awaited or iterated: an ``async def _validate`` (natural to
write on an async tool) or one with ``yield`` returns a coroutine or a generator without
running its checks, so the tool ran on input it meant to refuse (a path outside its root, a
caller without rights) and reported success. Such a hook is refused when the class is
created, and a hook that returns one at run time (behind a decorator) fails the run.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import pytest

from laios.tools.base import AsyncBaseTool, BaseTool


def test_an_async_def_validate_is_refused_when_the_class_is_created() -> None:
    with pytest.raises(TypeError, match="_validate is an async def function") as caught:

        class Guarded(AsyncBaseTool):
            name = "guarded"
            description = "Checks its input asynchronously."

            async def _validate(self, input_data: Any) -> None:
                raise PermissionError("refused")

            async def _execute_async(self, **kwargs: Any) -> Any:
                return "ran"

    assert "def _validate(self, input_data)" in str(caught.value)


def test_a_generator_validate_is_refused_when_the_class_is_created() -> None:
    with pytest.raises(TypeError, match="_validate is a generator function"):

        class Lines(BaseTool):
            name = "lines"
            description = "Checks its input lazily."

            def _validate(self, input_data: Any) -> Any:
                yield input_data

            def _execute(self, **kwargs: Any) -> Any:
                return "ran"


def _hidden(func: Any) -> Any:
    """A decorator the class cannot see through: its wrapper is a plain function."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)

    return wrapper


class Decorated(BaseTool):
    name = "decorated"
    description = "Its async check hides behind a decorator."

    @_hidden
    async def _validate(self, input_data: Any) -> None:
        raise PermissionError("refused")

    def _execute(self, **kwargs: Any) -> Any:
        return "ran"


class DecoratedAsync(AsyncBaseTool):
    name = "decorated_async"
    description = "Its async check hides behind a decorator."

    @_hidden
    async def _validate(self, input_data: Any) -> None:
        raise PermissionError("refused")

    async def _execute_async(self, **kwargs: Any) -> Any:
        return "ran"


@pytest.mark.filterwarnings("error")  # (the coroutine is closed: no "never awaited")
def test_a_validate_returning_a_coroutine_fails_the_run() -> None:
    output = Decorated().execute(x=1)
    assert output.success is False
    assert output.metadata["error_type"] == "TypeError"
    assert "_validate" in (output.error or "")
    with pytest.raises(TypeError, match="_validate"):
        Decorated().run_raising(x=1)
    output = asyncio.run(DecoratedAsync().execute_async(x=1))
    assert output.success is False
    assert "_validate" in (output.error or "")


def test_a_plain_validate_still_runs() -> None:
    class Plain(BaseTool):
        name = "plain"
        description = "Checks its input."

        @functools.wraps(lambda self, input_data: None)
        def _validate(self, input_data: Any) -> None:
            raise PermissionError("refused")

        def _execute(self, **kwargs: Any) -> Any:
            return "ran"

    output = Plain().execute(x=1)
    assert output.error == "refused"
