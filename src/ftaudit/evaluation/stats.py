"""Confidence intervals used across the probe families (pure Python, no numpy needed)."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence

Z95 = 1.959963984540054
BOOTSTRAP_RESAMPLES = 1000


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion; stays inside [0, 1] and is sane for n small or p at 0/1."""
    if n <= 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lo = 0.0 if successes == 0 else max(0.0, centre - half)
    hi = 1.0 if successes == n else min(1.0, centre + half)
    return (lo, hi)


def mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else float("nan")


def bootstrap(
    units: Sequence,
    statistic: Callable[[Sequence], float],
    *,
    seed: int,
    resamples: int = BOOTSTRAP_RESAMPLES,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap over `units` (resampled with replacement as whole units, so matched
    counterfactual renderings of one template stay together)."""
    if not units:
        return (float("nan"), float("nan"))
    rng = random.Random(seed)
    n = len(units)
    stats = []
    for _ in range(resamples):
        sample = [units[rng.randrange(n)] for _ in range(n)]
        value = statistic(sample)
        if not math.isnan(value):
            stats.append(value)
    if not stats:
        return (float("nan"), float("nan"))
    stats.sort()
    lo_i = int(math.floor((1 - level) / 2 * (len(stats) - 1)))
    hi_i = int(math.ceil((1 + level) / 2 * (len(stats) - 1)))
    return (stats[lo_i], stats[hi_i])


def normal_sf(z: float) -> float:
    """Upper tail of the standard normal."""
    return 0.5 * math.erfc(z / math.sqrt(2))
