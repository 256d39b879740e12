"""Collecting the Dask clients tests leave behind, before a later test's collection does."""

from __future__ import annotations

import gc
import warnings


def forget_clients_of_closed_loops() -> None:
    """Collect the Dask clients left unreachable, now: Dask's ``Client.__del__`` closes one,
    which on a loop that stopped or closed meanwhile leaves coroutines never awaited
    (``Client._close``, ``wait_for``: warnings of Dask's own). Collected later, in another
    test that collects garbage to check its own objects are gone, they would fail that test
    (this suite turns warnings into errors)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        gc.collect()
