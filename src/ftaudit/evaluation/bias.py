"""Bias: counterfactual probes that differ only in a demographic term (gender, ethnicity/nationality, religion,
age, disability).

Two measurements per group, base vs tuned:
- likelihood: for every template, log P(favourable ending) - log P(unfavourable ending) given the rendered
  sentence (the "favourability margin"); the endings are identical across groups, so a difference between
  groups is caused by the term alone;
- generation: a greedy continuation of neutral prompts, scored for sentiment (shipped lexicon) and refusal.
Intervals: bootstrap over templates (renderings of one template stay matched) and Wilson for rates.
*Reading*: Art. 10(2)(f)-(g) asks for an examination of biases in data; Art. 15 and Annex XI 2 ask for
evaluation results. These probes give evidence for both; they do not prove the absence of bias.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ftaudit.evaluation import stats

_WORD = re.compile(r"[a-z]+(?:[-'][a-z]+)*|n't")


def _article(term: str) -> str:
    return "an" if term[:1].lower() in "aeiou" else "a"


def render(template: str, term: str) -> str:
    """Fill {term}, {a_term} ('a'/'an' + term) and {A_term} (capitalised article)."""
    art = _article(term)
    return (
        template.replace("{a_term}", f"{art} {term}")
        .replace("{A_term}", f"{art.capitalize()} {term}")
        .replace("{term}", term)
    )


@dataclass(frozen=True)
class Rendering:
    axis: str
    group: str
    template_id: str
    text: str


def render_all(probes: dict, key: str) -> list[Rendering]:
    out = []
    for axis, groups in probes["axes"].items():
        for t in probes[key]:
            for g in groups:
                out.append(Rendering(axis, g, t["id"], render(t["template"], g)))
    return out


class SentimentLexicon:
    """Word-level sentiment in [-1, 1]: (positive - negative) / (positive + negative); 0 when no word matches.
    A negator among the two preceding words flips a word's polarity."""

    def __init__(self, lexicon: dict):
        self.pos = set(lexicon["positive"])
        self.neg = set(lexicon["negative"])
        self.negators = set(lexicon["negators"])

    def score(self, text: str) -> float:
        words = _WORD.findall(text.lower())
        pos = neg = 0
        for i, w in enumerate(words):
            polarity = 1 if w in self.pos else -1 if w in self.neg else 0
            if not polarity:
                continue
            if any(p in self.negators for p in words[max(0, i - 2) : i]):
                polarity = -polarity
            pos += polarity > 0
            neg += polarity < 0
        return (pos - neg) / (pos + neg) if pos + neg else 0.0


class RefusalDetector:
    def __init__(self, patterns: Sequence[str]):
        self.patterns = [re.compile(p, re.IGNORECASE) for p in patterns]

    def is_refusal(self, text: str) -> bool:
        return any(p.search(text) for p in self.patterns)


@dataclass
class GroupStat:
    axis: str
    group: str
    value: float
    n: int
    ci: tuple[float, float]
    method: str


def group_means(renderings: Sequence[Rendering], values: Sequence[float], *, seed: int) -> list[GroupStat]:
    """Per-group mean of a per-rendering value, bootstrap CI over that group's templates."""
    by_group: dict[tuple[str, str], list[float]] = {}
    for r, v in zip(renderings, values, strict=True):
        by_group.setdefault((r.axis, r.group), []).append(v)
    out = []
    for (axis, group), vals in by_group.items():
        ci = stats.bootstrap(vals, stats.mean, seed=seed)
        out.append(
            GroupStat(
                axis,
                group,
                stats.mean(vals),
                len(vals),
                ci,
                f"bootstrap percentile 95%, {stats.BOOTSTRAP_RESAMPLES} resamples over templates",
            )
        )
    return out


def group_rates(renderings: Sequence[Rendering], flags: Sequence[bool]) -> list[GroupStat]:
    by_group: dict[tuple[str, str], list[bool]] = {}
    for r, f in zip(renderings, flags, strict=True):
        by_group.setdefault((r.axis, r.group), []).append(bool(f))
    return [
        GroupStat(axis, group, sum(v) / len(v), len(v), stats.wilson(sum(v), len(v)), "Wilson 95%")
        for (axis, group), v in by_group.items()
    ]


def axis_gaps(
    renderings: Sequence[Rendering], values: Sequence[float], *, seed: int
) -> dict[str, tuple[float, tuple[float, float], int, str, str]]:
    """Per axis: the difference between the groups with the highest and the lowest mean value, with a bootstrap CI
    that resamples templates (each template's renderings stay together: matched counterfactuals). The two groups
    are chosen on the full sample and kept fixed in the resamples, so the interval describes that difference;
    choosing them on the same data makes the gap lean high (read base vs tuned, not the gap alone)."""
    table: dict[str, dict[str, dict[str, float]]] = {}
    for r, v in zip(renderings, values, strict=True):
        table.setdefault(r.axis, {}).setdefault(r.template_id, {})[r.group] = v
    out = {}
    for axis, by_template in table.items():
        units = list(by_template.values())
        groups = sorted({g for u in units for g in u})
        means = {g: stats.mean([u[g] for u in units if g in u]) for g in groups}
        hi_g = max(groups, key=lambda g: means[g])
        lo_g = min(groups, key=lambda g: means[g])

        def gap(sample, _hi=hi_g, _lo=lo_g):
            return stats.mean([u[_hi] for u in sample if _hi in u]) - stats.mean([u[_lo] for u in sample if _lo in u])

        out[axis] = (gap(units), stats.bootstrap(units, gap, seed=seed), len(units), hi_g, lo_g)
    return out
