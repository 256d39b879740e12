"""``python -m laios``: the ``laios`` command."""

from laios.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
