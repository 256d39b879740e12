"""Reads of other packages' internals, one small module per package.

Each module here reads a private detail of a dependency for speed, checks at import time that
the detail still has the shape it expects, and otherwise falls back to the dependency's public
API (slower, never wrong). ``tests/unit/test_compat.py`` fails loudly when a check fails, so an
upgrade that changes a shape is noticed instead of silently costing speed.
"""
