"""Tools: the units of work tasks invoke, and the registry that holds them by name."""

from laios.tools.base import (
    AsyncBaseTool,
    BaseTool,
    ToolCategory,
    ToolCategoryValue,
    ToolInput,
    ToolOutput,
    create_simple_tool,
)
from laios.tools.registry import ToolLookup, ToolRegistry

__all__ = [
    "AsyncBaseTool",
    "BaseTool",
    "ToolCategory",
    "ToolCategoryValue",
    "ToolInput",
    "ToolLookup",
    "ToolOutput",
    "ToolRegistry",
    "create_simple_tool",
]
