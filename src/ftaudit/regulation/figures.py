"""Two-significant-figure strings for numbers shown to a regulator (guidelines: report compute to two significant
figures); the exact values stay in the JSON floats."""

from __future__ import annotations

import math


def flops2(value: float) -> str:
    """1.2345e22 -> '1.2e22'; 0 -> '0'."""
    if value == 0:
        return "0"
    mantissa, exponent = f"{value:.1e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def percent2(fraction: float) -> str:
    """0.4523 -> '45%'; 0.001234 -> '0.12%'; -0.5 -> '-50%'; 1.0 -> '100%'."""
    value = fraction * 100.0
    if value == 0:
        return "0%"
    decimals = 1 - math.floor(math.log10(abs(value)))
    rounded = round(value, decimals)
    # Rounding can carry into the next decade (99.96 -> 100): recompute the decimals on the rounded value.
    if rounded != 0:
        decimals = 1 - math.floor(math.log10(abs(rounded)))
        rounded = round(value, decimals)
    return f"{rounded:.{max(decimals, 0)}f}%"
