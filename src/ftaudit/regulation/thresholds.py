"""The compute thresholds of the EU AI Act and the Commission's GPAI guidelines, as data.

Every number the decision uses lives here with its citation, so a reader can check each one against the official
text (docs/regulation.md §1). Comparisons are strict: the texts say "greater than" / "exceeds", so a figure exactly
at a threshold is not over it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ftaudit.regulation.citations import act, guidelines


@dataclass(frozen=True)
class Threshold:
    name: str
    value: float
    meaning: str
    citation: str


GPAI_INDICATIVE = Threshold(
    name="gpai_indicative_criterion",
    value=1e23,
    meaning="a model that generates text, images or video and was trained with more than this compute is indicatively "
    "a general-purpose AI model",
    citation=guidelines("¶17–20"),
)

SYSTEMIC_RISK_PRESUMPTION = Threshold(
    name="systemic_risk_presumption",
    value=1e25,
    meaning="a GPAI model whose cumulative training compute is greater than this is presumed to have high-impact "
    "capabilities, hence systemic risk",
    citation=act("Art. 51(2)"),
)

# One third, never 30 %: the guidelines say "a third of the training compute of the original model".
# Kept as a divisor so that 3e24 / 3 is exactly 1e24 (multiplying by 1/3 loses the last bit).
MODIFICATION_DIVISOR = 3.0
MODIFICATION_RULE_CITATION = guidelines("§3.2")

UNKNOWN_ORIGINAL_FALLBACK = Threshold(
    name="unknown_original_fallback",
    value=GPAI_INDICATIVE.value / MODIFICATION_DIVISOR,
    meaning="modification compute above which a downstream modifier becomes the provider when the original model's "
    "compute is unknown and cannot be estimated (one third of 1e23)",
    citation=guidelines("§3.2"),
)

UNKNOWN_SYSTEMIC_ORIGINAL_FALLBACK = Threshold(
    name="unknown_systemic_original_fallback",
    value=SYSTEMIC_RISK_PRESUMPTION.value / MODIFICATION_DIVISOR,
    meaning="modification compute above which a modifier of a systemic-risk GPAI model of unknown compute becomes the "
    "provider of a systemic-risk model (one third of 1e25)",
    citation=guidelines("§3.2"),
)

# Annex A.2: estimates within 30 % of the true value are accepted; we show the band so a near miss is visible.
ESTIMATION_MARGIN = 0.30
ESTIMATION_MARGIN_CITATION = guidelines("Annex A.2")

REPORTING_SIGNIFICANT_FIGURES = 2
REPORTING_CITATION = f"{guidelines('Annex A (reporting compute to two significant figures)')}; {act('Art. 52(1)')}"

NOTIFICATION_DEADLINE_DAYS = 14
NOTIFICATION_CITATION = act("Art. 52(1)")

ALL_THRESHOLDS = (
    GPAI_INDICATIVE,
    SYSTEMIC_RISK_PRESUMPTION,
    UNKNOWN_ORIGINAL_FALLBACK,
    UNKNOWN_SYSTEMIC_ORIGINAL_FALLBACK,
)


def exceeds(value: float, threshold: float) -> bool:
    """The texts say "greater than": exactly at the threshold is not over it."""
    return value > threshold
