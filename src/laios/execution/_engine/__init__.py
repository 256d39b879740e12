"""The engine behind ``Executor``: jobs (the caller's side of each run), the roads that run
them, and the retry loop."""
