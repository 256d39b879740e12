"""A tool described from a function's signature takes each parameter's description from the
function's docstring (Google, NumPy or Sphinx style), unless the parameter is described
explicitly; a docstring that names no parameter, or that is malformed, changes nothing else."""

from __future__ import annotations

import functools
import json
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, Field

from laios.tools.base import AsyncBaseTool, BaseTool, ToolInput, create_simple_tool
from laios.tools.registry import ToolRegistry


def _descriptions(tool: BaseTool) -> dict[str, str]:
    schema = tool.get_schema()
    json.dumps(schema, allow_nan=False)
    return {p["name"]: p["description"] for p in schema["parameters"]}


def google(city: str, days: int = 3) -> str:
    """Forecast.

    Args:
        city: The city to forecast.
        days: How many days ahead.

    Returns:
        The forecast.
    """
    return city


def google_typed(city: str, days: int = 3, units: str = "metric") -> str:
    """Forecast.

    Arguments:
        city (str): The city
            to forecast.
        days (int, optional):
            How many days ahead.

            Seven at most.
        units: Metric or imperial.
    Raises:
        ValueError: For an unknown city.
    """
    return city


def numpy_style(city: str, days: int = 3) -> str:
    """Forecast.

    Parameters
    ----------
    city : str
        The city to forecast.
    days : int, optional
        How many days
        ahead.

    Returns
    -------
    str
        The forecast.
    """
    return city


def sphinx_style(city: str, days: int = 3) -> str:
    """Forecast.

    :param city: The city to forecast.
    :param int days: How many days
        ahead.
    :returns: The forecast.
    """
    return city


@pytest.mark.parametrize(
    "func", [google, google_typed, numpy_style, sphinx_style], ids=lambda f: f.__name__
)
def test_a_function_docstring_describes_its_parameters(func: Any) -> None:
    descriptions = _descriptions(create_simple_tool("forecast", "Forecasts.", func))
    assert descriptions["city"] == "The city to forecast."
    assert descriptions["days"].startswith("How many days ahead.")


def test_google_continuation_lines_and_paragraphs_are_kept() -> None:
    descriptions = _descriptions(create_simple_tool("forecast", "Forecasts.", google_typed))
    assert descriptions["days"] == "How many days ahead.\n\nSeven at most."
    assert descriptions["units"] == "Metric or imperial."


def test_the_parameters_section_under_its_google_name() -> None:
    def f(city: str) -> str:
        """Forecast.

        Parameters:
            city: The city to forecast.
        """
        return city

    assert _descriptions(create_simple_tool("f", "Forecasts.", f)) == {
        "city": "The city to forecast."
    }


class Forecast(BaseTool):
    name = "forecast"
    description = "Forecasts the weather."

    def _execute(self, city: str, days: int = 3) -> str:
        """Forecast.

        Args:
            city: The city to forecast.
            days: How many days ahead.
        """
        return city


class AsyncForecast(AsyncBaseTool):
    name = "async_forecast"
    description = "Forecasts the weather."

    async def _execute_async(self, city, days=3):  # type: ignore[no-untyped-def]
        """Forecast.

        :param city: The city to forecast.
        :param days: How many days ahead.
        """
        return city


@pytest.mark.parametrize("tool_class", [Forecast, AsyncForecast], ids=["sync", "async"])
def test_a_tool_class_entry_point_docstring_describes_its_parameters(
    tool_class: type[BaseTool],
) -> None:
    assert _descriptions(tool_class()) == {
        "city": "The city to forecast.",
        "days": "How many days ahead.",
    }


def test_an_explicit_description_wins_over_the_docstring() -> None:
    def f(
        city: Annotated[str, Field(description="Explicit city.")],
        days: int = Field(3, description="Explicit days."),
        units: Annotated[str, Field(min_length=1)] = "metric",
        limit: Annotated[int, Field(description="Explicit limit.")] = None,  # type: ignore[assignment]  # noqa: RUF013 (the case)
    ) -> str:
        """Forecast.

        Args:
            city: The city to forecast.
            days: How many days ahead.
            units: Metric or imperial.
            limit: Most lines.
        """
        return city

    tool = create_simple_tool("f", "Forecasts.", f)
    assert _descriptions(tool) == {
        "city": "Explicit city.",
        "days": "Explicit days.",
        "units": "Metric or imperial.",
        # (a default of None makes it an Optional, whose int alone pydantic would describe)
        "limit": "Explicit limit.",
    }
    assert tool.execute(city="Oslo").data == "Oslo"
    assert not tool.execute(city="Oslo", units="").success  # (its constraint still holds)


def test_an_input_models_field_descriptions_are_its_own() -> None:
    class ForecastInput(ToolInput):
        city: str = Field(description="Explicit city.")

    assert _descriptions(
        create_simple_tool("f", "Forecasts.", google, input_model=ForecastInput)
    ) == {"city": "Explicit city."}


class Address(BaseModel):
    """A postal address."""

    city: str


def test_the_docstring_describes_the_parameter_rather_than_its_type() -> None:
    """A parameter typed with a documented model is described by what the function says of the
    parameter; without that, by the model's docstring, as before."""

    def ship(address: Address, back: Address | None = None) -> str:
        """Ship.

        Args:
            address: Where to ship to.
        """
        return address.city

    descriptions = _descriptions(create_simple_tool("ship", "Ships.", ship))
    assert descriptions["address"] == "Where to ship to."


def test_parameters_renamed_inside_the_model_are_described() -> None:
    def f(json: str, _cursor: int = 0) -> str:
        """Read.

        Args:
            json: The text to read.
            _cursor: Where to start.
        """
        return json

    tool = create_simple_tool("f", "Reads.", f)
    assert _descriptions(tool) == {"json": "The text to read.", "_cursor": "Where to start."}
    assert tool.execute(json="{}", _cursor=1).data == "{}"


def test_the_docstring_of_what_is_called_is_read() -> None:
    """A partial's, a method's, and a callable object's ``__call__``'s docstring."""

    class Caller:
        """A callable object.

        Args:
            seed: What the object is made with, not a parameter of the call.
        """

        def __call__(self, city: str, seed: int = 0) -> str:
            """Forecast.

            Args:
                city: The city to forecast.
            """
            return city

    partial = functools.partial(google, days=2)
    assert _descriptions(create_simple_tool("p", "Forecasts.", partial)) == {
        "city": "The city to forecast.",
        "days": "How many days ahead.",
    }
    assert _descriptions(create_simple_tool("c", "Forecasts.", Caller())) == {
        "city": "The city to forecast.",
        "seed": "",
    }


def test_docstring_entries_naming_no_parameter_are_ignored() -> None:
    def f(city: str, **kwargs: Any) -> str:
        """Forecast.

        Args:
            town: Not a parameter.
            city: The city to forecast.
            **kwargs: Passed on.
        """
        return city

    assert _descriptions(create_simple_tool("f", "Forecasts.", f)) == {
        "city": "The city to forecast."
    }


MALFORMED = [
    "Args:",
    "Args:\n    \n",
    "Args:\n    : no name\n    city",
    "Args:\ncity: at the header's indentation",
    "Parameters\n----------\n",
    "Parameters\n---\n  : str\n",
    ":param:\n:param city\n:param : x",
    "\tArgs:\n\t\tcity:\tTabs.\n",
    "Args:\n    city (str: unclosed\n",
    "Args:\n" + "    city: deep\n" * 2000,
    "\x00\ufeff\u202e",
]


@pytest.mark.parametrize("doc", MALFORMED)
def test_a_malformed_docstring_never_fails_registration(doc: str) -> None:
    def f(city: str) -> str:
        return city

    f.__doc__ = doc
    registry = ToolRegistry()
    tool = registry.register_tool(create_simple_tool("f", "Forecasts.", f))
    assert list(_descriptions(tool)) == ["city"]
    assert tool.execute(city="Oslo").data == "Oslo"


def test_a_docstring_that_is_no_text_is_ignored() -> None:
    def f(city: str) -> str:
        return city

    f.__doc__ = 42  # type: ignore[assignment]
    assert _descriptions(create_simple_tool("f", "Forecasts.", f)) == {"city": ""}


def test_a_tool_description_is_still_required_with_a_docstring() -> None:
    """The tool's own description is the one given: an empty one is refused even when the
    function has a docstring, as the reference says."""
    with pytest.raises(ValueError, match="non-empty 'description'"):
        create_simple_tool("f", "", google)
