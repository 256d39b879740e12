"""The things laios reads from Dask that Dask offers no public call for. This module is
the one place that reads them; on a Dask version that keeps them elsewhere, nothing fails.

- **The events the scheduler keeps for a topic.** The scheduler forwards each event
  (``Client.log_event``) to the topic's subscribers, and also keeps the last ones of every
  topic (``distributed.admin.low-level-log-length`` of them) for as long as it runs, for any
  client to read with ``get_events``. They live in the scheduler's private ``_broker`` (a
  ``distributed.broker.Broker``), whose ``truncate(topic)`` drops a topic's events. Without
  that broker, nothing is cleared and the events stay as Dask keeps them. The broker also
  keeps every topic it ever heard of (its ``_topics``, one entry per topic, for as long as
  the scheduler runs): a topic given up is dropped from it, with its subscribers.
- **A client's handler of a topic** (``Client._event_handlers``), which
  ``Client.unsubscribe_topic`` leaves in place for as long as the client lives. Without it,
  the handler stays as Dask keeps it.
- **Whether a worker's running task was released** by the scheduler, read in the worker's
  state machine (``Worker.state.tasks``). Without it, no task counts as released.
- **The connection a client uses now** (``Client.scheduler_comm``), which Dask replaces each
  time the client reconnects to its scheduler (also to a new scheduler at the same address,
  which knows nothing of the client's topics). Without it, a reconnection goes unnoticed.
- **Why a client's future was cancelled** (the ``reason`` of the ``FutureCancelledError``
  its future state keeps: ``"scheduler-connection-lost"`` when the client lost its
  scheduler, ``"scheduler-restart"`` when the cluster restarted). ``Future.result()`` raises
  that error, but it asks the client's event loop (and on an asynchronous client returns a
  coroutine). Without it, no reason is known.
- **The thread of a client's event loop** (``Client._loop_runner``, a
  ``distributed.utils.LoopRunner``). ``Client.close`` stops it, except on a client Dask closed
  itself (it lost its scheduler and could not reconnect in time): ``close`` then does nothing,
  and the thread runs on. Without it, that thread stays as Dask leaves it.
- **What a worker logs when its heartbeat to the scheduler fails**: the error ``"Failed to
  communicate with scheduler during heartbeat."``, with its traceback, on the logger
  ``distributed.worker``. A worker logs it also for a heartbeat its own close cut short (it
  closes its connections with the heartbeat still under way: a scheduler slow to answer, a
  busy machine), a race in Dask's worker, not a failure. Where Dask words it otherwise,
  that record is logged as Dask logs it.
"""

from __future__ import annotations

import logging
import weakref
from typing import Any

__all__ = [
    "cancel_reason",
    "drop_topic",
    "drop_topic_handler",
    "forget_topic",
    "quiet_heartbeats_cut_by_close",
    "scheduler_connection",
    "stop_client_loop",
    "task_released",
]


def forget_topic(dask_scheduler: Any, topic: str) -> bool:
    """Drop the events the scheduler keeps for ``topic``; ``False`` when this Dask version
    keeps them elsewhere (nothing is dropped then)."""
    broker = getattr(dask_scheduler, "_broker", None)
    truncate = getattr(broker, "truncate", None)
    if truncate is None:
        return False
    truncate(topic)
    return True


def drop_topic(dask_scheduler: Any, topic: str) -> bool:
    """Drop ``topic`` from the scheduler: its events and its subscribers, and the entry the
    scheduler keeps of it; ``False`` when this Dask version keeps topics elsewhere (nothing is
    dropped then). An event published to it later makes it anew, as a first one did."""
    return _popped(getattr(getattr(dask_scheduler, "_broker", None), "_topics", None), topic)


def drop_topic_handler(client: Any, topic: str) -> bool:
    """Drop ``client``'s handler of ``topic`` (run after the scheduler dropped the topic, so
    that no event of it arrives any more); ``False`` where a client keeps its handlers
    elsewhere (another Dask version)."""
    return _popped(getattr(client, "_event_handlers", None), topic)


def _popped(mapping: Any, key: str) -> bool:
    """Remove ``key`` from ``mapping`` if there; ``False`` when ``mapping`` is no mapping
    (what Dask keeps there changed shape)."""
    pop = getattr(mapping, "pop", None)
    if pop is None:
        return False
    pop(key, None)
    return True


def task_released(worker: Any, key: str) -> bool:
    """Whether the scheduler released the task ``key`` that ``worker`` is running: nobody
    wants its result any more (the client that sent it went away, or cancelled it).

    Dask cannot stop a running task's thread: when the scheduler releases such a task, the
    worker's state machine (``Worker.state.tasks``, Dask's ``WorkerState``) keeps it, in
    state ``"cancelled"``, until its function returns. ``False`` where a worker keeps its
    tasks elsewhere (another Dask version): nothing is released early then.
    """
    tasks = getattr(getattr(worker, "state", None), "tasks", None)
    if tasks is None:
        return False
    try:
        task = tasks.get(key)
    except Exception:  # (another kind of mapping)
        return False
    return getattr(task, "state", None) == "cancelled"


def cancel_reason(future: Any) -> str | None:
    """Dask's word for why ``future``'s task was cancelled (``"scheduler-connection-lost"``,
    ``"scheduler-restart"``, ``"unknown"`` for a cancellation that gave none), read from what
    the client keeps, without asking its event loop; ``None`` when the task was not cancelled,
    or where a future keeps this elsewhere (another Dask version)."""
    if getattr(future, "status", None) != "cancelled":
        return None
    error = getattr(getattr(future, "_state", None), "exception", None)
    reason = getattr(error, "reason", None)
    return reason if isinstance(reason, str) else None


def scheduler_connection(client: Any) -> Any:
    """The connection ``client`` talks to its scheduler through now: another object after each
    reconnection, ``None`` while it connects (or where a client keeps it elsewhere, another
    Dask version: no reconnection is seen then)."""
    return getattr(client, "scheduler_comm", None)


def stop_client_loop(client: Any) -> bool:
    """Stop the thread that runs ``client``'s event loop, once the client is closed (a thread
    ``Client.close`` leaves running when Dask had closed the client already). Does nothing to
    a loop the client shares or was given (Dask counts its users), nor to one stopped already;
    ``False`` where a client keeps its loop elsewhere (another Dask version)."""
    stop = getattr(getattr(client, "_loop_runner", None), "stop", None)
    if stop is None:
        return False
    stop()
    return True


#: The error a Dask worker logs when a heartbeat to its scheduler fails.
_HEARTBEAT_FAILED = "Failed to communicate with scheduler during heartbeat."


class _HeartbeatCutByClose(logging.Filter):
    """Drops a worker's heartbeat error logged once the worker is closing: its own close
    cut the heartbeat short. The same error while it runs (the scheduler lost) passes."""

    def __init__(self, worker: Any) -> None:
        super().__init__()
        self._worker = weakref.ref(worker)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg != _HEARTBEAT_FAILED:
            return True
        status = getattr(getattr(self._worker(), "status", None), "name", None)
        return status not in ("closing", "closed")


def quiet_heartbeats_cut_by_close(worker: Any) -> None:
    """Have ``worker`` (a Dask worker, alone in its process: a worker of a cluster of
    processes) log no heartbeat that its own close cut short: Dask logs one as an error
    with its traceback, which then ends a program's output as if something had failed. A
    heartbeat that fails while the worker runs is logged as before."""
    logger = logging.getLogger("distributed.worker")
    if not any(isinstance(f, _HeartbeatCutByClose) for f in logger.filters):
        logger.addFilter(_HeartbeatCutByClose(worker))
