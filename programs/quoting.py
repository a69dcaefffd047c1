"""How input rules quote what a user sent: a short repr, cut at 80 characters."""

from __future__ import annotations


def show(value: str, limit: int = 80) -> str:
    """`value` as a repr fit for a 400 body: quoted, escapes visible, never unbounded."""
    return repr(value if len(value) <= limit else value[:limit] + "...")
