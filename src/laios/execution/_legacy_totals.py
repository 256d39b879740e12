"""Totals files of laios 0.1.0 (``"format": 1``), read as this version's.

laios 0.1.0 wrote a tool's retries as one number (``retries``), not by error type, and counted
durations and queue waits in the same 17 buckets, the section's ``bounds``, which its totals
did not repeat. Its files are read here as this version's totals: its retries as retries of
error type ``error`` (what a retry of unknown cause counts as now), its histograms moved into
this version's default buckets. Every bound of those was one of 0.1.0's, so each of its buckets
falls whole into one of them: no count changes bound, none is lost, and its workers' totals add
up with this version's. Development builds also wrote this version's layout as format 1: such a
file is read as it is.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from laios.execution._aggregates import (
    DURATION_BUCKETS,
    QUEUE_WAIT_BUCKETS,
    RawHistogram,
    ToolAggregates,
)
from laios.execution._totals import ExportedTotals, newer

__all__ = [
    "LEGACY_FORMAT",
    "RETRY_ERROR_TYPE",
    "bucket_slots",
    "moved_histogram",
    "moved_to_default_buckets",
    "upgraded_entry",
]

#: The format laios 0.1.0 wrote.
LEGACY_FORMAT = 1
#: The error type 0.1.0's retries are counted under (a retry of unknown cause, as the store
#: counts one).
RETRY_ERROR_TYPE = "error"


def _tool_entries(tools: Any) -> list[Any]:
    """The tool objects of a ``tools`` field as written: an object, or ``[key, value]`` pairs."""
    if isinstance(tools, dict):
        return list(tools.values())
    if isinstance(tools, list):
        return [pair[1] for pair in tools if isinstance(pair, list) and len(pair) == 2]
    return []


def upgraded_entry(entry: dict[str, Any]) -> bool:
    """Turn a format-1 section entry (decoded JSON, changed in place) into this version's
    layout; return whether it was laios 0.1.0's (its histograms then still have its buckets:
    see :func:`moved_to_default_buckets`). Anything that does not fit is left for the
    decoder to refuse."""
    totals = entry.get("totals")
    if not isinstance(totals, dict):
        return False
    tools = [tool for tool in _tool_entries(totals.get("tools")) if isinstance(tool, dict)]
    for tool in tools:
        if "retries" in tool and "retry_errors" not in tool:
            retries = tool.pop("retries")
            tool["retry_errors"] = {RETRY_ERROR_TYPE: retries} if retries != 0 else {}
    if "duration_buckets" in totals:
        return False
    bounds = entry.get("bounds")
    totals["duration_buckets"] = totals["queue_wait_buckets"] = bounds
    for tool in tools:
        tool["duration_bounds"] = tool["queue_wait_bounds"] = bounds
    return True


def bucket_slots(old: tuple[float, ...], new: tuple[float, ...]) -> tuple[int, ...] | None:
    """For each bucket of ``old`` (``+Inf`` last), the bucket of ``new`` it falls into whole;
    ``None`` when a bound of ``new`` is not one of ``old`` (a bucket would be split)."""
    if not set(new) <= set(old):
        return None
    slots = []
    index = 0
    for bound in old:
        while index < len(new) and new[index] < bound:
            index += 1
        slots.append(index)  # len(new): +Inf
    slots.append(len(new))
    return tuple(slots)


def moved_histogram(histogram: RawHistogram, slots: tuple[int, ...], size: int) -> RawHistogram:
    """``histogram`` with each bucket moved into its slot (see :func:`bucket_slots`) of
    ``size`` buckets (``+Inf`` included); of the exemplars moved into one, the newest."""
    count, total, buckets, exemplars = histogram
    moved = [0] * size
    kept: list[Any] = [None] * size
    for slot, bucket, exemplar in zip(slots, buckets, exemplars, strict=True):
        moved[slot] += bucket
        kept[slot] = newer(kept[slot], exemplar)
    return (count, total, tuple(moved), tuple(kept))


def _counted(tool: ToolAggregates) -> bool:
    """Whether ``tool`` holds anything: laios 0.1.0 wrote an empty ``unknown`` tool, whose
    all-zero series this version does not export."""
    return bool(
        tool.outcomes or tool.queue_wait[0] or tool.errors or tool.retry_errors or tool.in_flight
    )


def moved_to_default_buckets(
    bounds: tuple[float, ...], totals: ExportedTotals
) -> tuple[tuple[float, ...], ExportedTotals]:
    """laios 0.1.0's totals, counted in ``bounds``, moved into this version's default buckets
    (without the empty tools it wrote); as they are when a default bound is not one of
    ``bounds``."""
    durations = bucket_slots(bounds, DURATION_BUCKETS)
    waits = bucket_slots(totals.queue_wait_buckets, QUEUE_WAIT_BUCKETS)
    if durations is None or waits is None:
        return bounds, totals
    duration_size, wait_size = len(DURATION_BUCKETS) + 1, len(QUEUE_WAIT_BUCKETS) + 1

    def moved_tool(tool: ToolAggregates) -> ToolAggregates:
        return dataclasses.replace(
            tool,
            outcomes={
                outcome: moved_histogram(histogram, durations, duration_size)
                for outcome, histogram in tool.outcomes.items()
            },
            queue_wait=moved_histogram(tool.queue_wait, waits, wait_size),
            duration_bounds=DURATION_BUCKETS,
            queue_wait_bounds=QUEUE_WAIT_BUCKETS,
        )

    return DURATION_BUCKETS, dataclasses.replace(
        totals,
        tools={label: moved_tool(tool) for label, tool in totals.tools.items() if _counted(tool)},
        duration_buckets=DURATION_BUCKETS,
        queue_wait_buckets=QUEUE_WAIT_BUCKETS,
    )
