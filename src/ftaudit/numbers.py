"""One parser for numbers given as text (CLI options, environment variables): one BadInput line when it is wrong."""

from __future__ import annotations

import math

from ftaudit.errors import BadInput


def parse_number(raw: object, what: str, *, positive: bool = True, integer: bool = False) -> float:
    """'1.5e24' → 1.5e24. Underscores are allowed ('10_000'); NaN, infinities, negatives (and 0 when `positive`)
    and, with `integer`, fractions are refused, naming `what`."""
    try:
        value = float(str(raw).strip().replace("_", ""))
    except ValueError:
        raise BadInput(f"{what} must be a number, got {raw!r}") from None
    if math.isnan(value) or math.isinf(value):
        raise BadInput(f"{what} must be a finite number, got {raw!r}")
    if value < 0 or (positive and value == 0):
        raise BadInput(f"{what} must be {'positive' if positive else 'zero or more'}, got {raw!r}")
    if integer and value != int(value):
        raise BadInput(f"{what} must be a whole number, got {raw!r}")
    return value
