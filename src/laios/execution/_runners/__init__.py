"""Runners: where a tool runs (the caller's thread, worker threads, an event loop).

See :mod:`laios.execution._runners.base` for the seam (``ToolCall``, ``RawOutcome``,
``RunEvents``, ``Runner``).
"""
