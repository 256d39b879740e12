"""Clearing the events the Dask scheduler keeps for a topic.

The scheduler forwards each event (``Client.log_event``) to the topic's subscribers, and also
keeps the last ones of every topic (``distributed.admin.low-level-log-length`` of them) for as
long as it runs, for any client to read with ``get_events``. Dask offers no public call that
clears them: they live in the scheduler's private ``_broker`` (a ``distributed.broker.Broker``),
whose ``truncate(topic)`` drops a topic's events. This module is the one place that reads it.
On a scheduler without that broker (another Dask version), nothing is cleared and the events
stay as Dask keeps them; nothing fails.
"""

from __future__ import annotations

from typing import Any

__all__ = ["forget_topic"]


def forget_topic(dask_scheduler: Any, topic: str) -> bool:
    """Drop the events the scheduler keeps for ``topic``; ``False`` when this Dask version
    keeps them elsewhere (nothing is dropped then)."""
    broker = getattr(dask_scheduler, "_broker", None)
    truncate = getattr(broker, "truncate", None)
    if truncate is None:
        return False
    truncate(topic)
    return True
