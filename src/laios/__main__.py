"""``python -m laios``: the ``laios`` command (the ``laios`` script runs :func:`main` too)."""

from __future__ import annotations


def main() -> int:
    """Import the command and run it; exit code 130, quietly, after a Ctrl-C during the import
    (as after one while the command runs), instead of a traceback."""
    try:
        from laios.cli import main as command
    except KeyboardInterrupt:
        return 130
    return command()


if __name__ == "__main__":
    raise SystemExit(main())
