"""`ftaudit data scan`."""

from __future__ import annotations


def register(sub) -> None:
    pass  # filled by the data-governance work
