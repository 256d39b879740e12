"""Tools of the benchmark cases that run in other processes (P13: on Dask workers), defined in
an importable module: a worker finds a tool's class by its module and name."""

from __future__ import annotations

import time
from typing import Any

from laios.tools.base import BaseTool

#: What each P13 task does: sleep this many seconds.
P13_SLEEP = 0.01


def sleep_briefly() -> None:
    """The work of :class:`Sleep10ms`: sleep 10 ms."""
    time.sleep(P13_SLEEP)


def sleep_once(_: object) -> None:
    """What P13's baseline maps over the cluster: the same 10 ms sleep."""
    sleep_briefly()


class Sleep10ms(BaseTool):
    """Sleeps 10 ms (P13)."""

    name = "sleep_10ms"
    description = "Sleeps 10 ms."

    def _execute(self, **kwargs: Any) -> None:
        sleep_briefly()
