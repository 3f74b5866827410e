"""Drift of live traffic: the recent window of answered requests against a baseline window (the first answers the
deployment gave), for the lengths of prompts and answers, the prompts' languages and every unexpected-output rate;
and the recent window against the run's training data (prompt lengths and languages; ftaudit.monitor.reference).

  lengths  population stability index over ten bins cut at the baseline's deciles:
           PSI = sum((r - b) * ln(r / b)); below 0.1 stable, 0.1-0.25 moderate, above 0.25 a shift
           (the credit-scoring rule of thumb; a reading, not a law)
  rates    two-proportion z-test (pooled), two-sided; p < 0.01 flags a change
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import Counter

from pydantic import BaseModel

from ftaudit.evaluation.stats import normal_sf
from ftaudit.monitor.checks import FLAGS
from ftaudit.monitor.reference import TrainingReference

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
    training_records: int | None = None  # training records the reference was drawn from


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


def _psi_shift(name: str, test: str, b: list[float], r: list[float]) -> Shift:
    value = psi(b, r)
    verdict = "shift" if value > PSI_SHIFT else "moderate" if value > PSI_MODERATE else "stable"
    return Shift(name=name, test=test, baseline=sum(b) / len(b), recent=sum(r) / len(r), statistic=value,
                 verdict=verdict)


def _rate_shift(name: str, k1: int, n1: int, k2: int, n2: int) -> Shift:
    z, p = two_proportion(k1, n1, k2, n2)
    return Shift(name=name, test="two-proportion z-test", baseline=k1 / n1, recent=k2 / n2, statistic=z, p_value=p,
                 verdict="changed" if p < P_CHANGE else "stable")


def _languages(*counters: Counter) -> list[str]:
    """Languages holding at least 5 % of one of the samples."""
    return sorted({lang for c in counters for lang, k in c.items() if k >= 0.05 * max(sum(c.values()), 1)})


def drift(answered: list[dict], *, baseline_n: int = 200, recent_n: int = 200,
          training: TrainingReference | None = None) -> DriftReport | None:
    """`answered`: request events in time order. None until there are enough for both windows."""
    if len(answered) < baseline_n + recent_n:
        return None
    base, recent = answered[:baseline_n], answered[-recent_n:]
    shifts = [_psi_shift(name, "PSI, baseline deciles", [e[name] for e in base], [e[name] for e in recent])
              for name in ("input_chars", "output_chars")]
    lang_b = Counter(e.get("input_language") or "und" for e in base)
    lang_r = Counter(e.get("input_language") or "und" for e in recent)
    shifts += [_rate_shift(f"input.language.{lang}", lang_b[lang], len(base), lang_r[lang], len(recent))
               for lang in _languages(lang_b, lang_r)]
    shifts += [_rate_shift(f"output.{flag}", sum(flag in e["flags"] for e in base), len(base),
                           sum(flag in e["flags"] for e in recent), len(recent)) for flag in FLAGS]
    if training is not None and training.prompt_chars:
        n_t = sum(training.languages.values())
        shifts.append(_psi_shift("input_chars vs training data", "PSI, training deciles", training.prompt_chars,
                                 [e["input_chars"] for e in recent]))
        shifts += [_rate_shift(f"input.language.{lang} vs training data", training.languages[lang], n_t,
                               lang_r[lang], len(recent)) for lang in _languages(training.languages, lang_r)]
    return DriftReport(baseline_n=len(base), recent_n=len(recent), shifts=shifts,
                       training_records=training.records if training else None)
