"""Drift of live traffic: the recent window of answered requests against a baseline window (the first answers the
deployment gave, or a chosen period), for the lengths of prompts and answers and for every unexpected-output rate.

  lengths  population stability index over ten bins cut at the baseline's deciles:
           PSI = sum((r - b) * ln(r / b)); below 0.1 stable, 0.1-0.25 moderate, above 0.25 a shift
           (the credit-scoring rule of thumb; a reading, not a law)
  rates    two-proportion z-test (pooled), two-sided; p < 0.01 flags a change
"""

from __future__ import annotations

import math
from bisect import bisect_right

from pydantic import BaseModel

from ftaudit.evaluation.stats import normal_sf
from ftaudit.monitor.checks import FLAGS

PSI_MODERATE, PSI_SHIFT, P_CHANGE = 0.1, 0.25, 0.01
_EPS = 1e-4


class Shift(BaseModel):
    name: str
    test: str
    baseline: float
    recent: float
    statistic: float
    p_value: float | None = None
    verdict: str


class DriftReport(BaseModel):
    baseline_n: int
    recent_n: int
    shifts: list[Shift]


def psi(baseline: list[float], recent: list[float]) -> float:
    edges = sorted({sorted(baseline)[int(len(baseline) * q / 10)] for q in range(1, 10)})

    def shares(xs: list[float]) -> list[float]:
        counts = [0] * (len(edges) + 1)
        for x in xs:
            counts[bisect_right(edges, x)] += 1
        return [max(c / len(xs), _EPS) for c in counts]

    return sum((r - b) * math.log(r / b) for b, r in zip(shares(baseline), shares(recent), strict=True))


def two_proportion(k1: int, n1: int, k2: int, n2: int) -> tuple[float, float]:
    """(z, two-sided p) for a difference of two rates; z = 0, p = 1 when both are 0 or 1 throughout."""
    pooled = (k1 + k2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 0.0, 1.0
    z = (k2 / n2 - k1 / n1) / se
    return z, min(1.0, 2 * normal_sf(abs(z)))


def drift(answered: list[dict], *, baseline_n: int = 200, recent_n: int = 200) -> DriftReport | None:
    """`answered`: request events in time order. None until there are enough for both windows."""
    if len(answered) < baseline_n + recent_n:
        return None
    base, recent = answered[:baseline_n], answered[-recent_n:]
    shifts = []
    for name in ("input_chars", "output_chars"):
        b, r = [e[name] for e in base], [e[name] for e in recent]
        value = psi(b, r)
        verdict = "shift" if value > PSI_SHIFT else "moderate" if value > PSI_MODERATE else "stable"
        shifts.append(Shift(name=name, test="PSI, baseline deciles", baseline=sum(b) / len(b),
                            recent=sum(r) / len(r), statistic=value, verdict=verdict))
    for flag in FLAGS:
        k1, k2 = sum(flag in e["flags"] for e in base), sum(flag in e["flags"] for e in recent)
        z, p = two_proportion(k1, len(base), k2, len(recent))
        shifts.append(Shift(name=f"output.{flag}", test="two-proportion z-test", baseline=k1 / len(base),
                            recent=k2 / len(recent), statistic=z, p_value=p,
                            verdict="changed" if p < P_CHANGE else "stable"))
    return DriftReport(baseline_n=len(base), recent_n=len(recent), shifts=shifts)
