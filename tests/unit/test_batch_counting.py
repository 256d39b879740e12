"""What an awaiting call's batch keeps of the jobs told finished on other threads once the
awaiting coroutine has gone on: nothing (a job kept there, or keeping the batch, would keep
the batch's event loop alive as long as the job's record is retained)."""

from __future__ import annotations

import asyncio
import threading

from laios.execution._engine.engine import _Batch

WAIT = 10.0


class _TellingJob:
    """A job told finished on a worker thread, paused as the batch first counts it (as it is
    hashed into the batch's set), until ``resume`` is set."""

    caller_interrupt = None

    def __init__(self, batch: _Batch) -> None:
        self.waiter: _Batch | None = batch
        self.counting = threading.Event()
        self.resume = threading.Event()

    def __hash__(self) -> int:
        if not self.counting.is_set():
            self.counting.set()
            self.resume.wait(WAIT)
        return id(self)


def test_a_job_told_as_the_awaiting_coroutine_goes_on_lets_go_of_the_batch() -> None:
    loop = asyncio.new_event_loop()
    try:
        batch = _Batch(loop)
        job = _TellingJob(batch)
        telling = threading.Thread(target=batch.finished, args=(job,))  # type: ignore[arg-type]
        telling.start()
        assert job.counting.wait(WAIT)
        batch.let_go()  # (the awaiting coroutine goes on, on the loop's thread)
        job.resume.set()
        telling.join(WAIT)
        assert not telling.is_alive()
        assert job.waiter is None, "the job kept the batch"
        assert not batch.counted, "the batch kept the job"
    finally:
        loop.close()
