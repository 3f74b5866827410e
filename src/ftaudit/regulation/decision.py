"""The GPAI-role decision (REGULATION.md §1): numbers in, a judgement with its reasoning and citations out.

`decide(modification_flops, original)` says whether a fine-tuning lineage leaves its author a downstream modifier or
makes them the provider of a (systemic-risk) GPAI model. It knows nothing else in ftaudit: callers pass the
cumulative modification compute of the lineage and what is known of the original model's training compute.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ftaudit.errors import BadInput
from ftaudit.regulation.figures import flops2, percent2
from ftaudit.regulation.obligations import ROLES, Obligation, Role, obligations_for
from ftaudit.regulation.thresholds import (
    ESTIMATION_MARGIN,
    ESTIMATION_MARGIN_CITATION,
    GPAI_INDICATIVE,
    GUIDELINES,
    MODIFICATION_DIVISOR,
    MODIFICATION_RULE_CITATION,
    SYSTEMIC_RISK_PRESUMPTION,
    UNKNOWN_ORIGINAL_FALLBACK,
    UNKNOWN_SYSTEMIC_ORIGINAL_FALLBACK,
    exceeds,
)

ThresholdBasis = Literal[
    "one_third_of_original",
    "unknown_original_fallback",
    "unknown_systemic_original_fallback",
    "cumulative_gpai_criterion",
]


def _finite_number(value: object, what: str, *, positive: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadInput(f"{what} must be a number of FLOP, got {type(value).__name__}")
    number = float(value)
    if math.isnan(number) or math.isinf(number):
        raise BadInput(f"{what} must be a finite number of FLOP, got {number}")
    if number < 0 or (positive and number == 0):
        raise BadInput(f"{what} must be {'positive' if positive else 'zero or more'}, got {number:g}")
    return number


class OriginalCompute(BaseModel):
    """What is known of the original (base) model's training compute."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    flops: float | None = Field(None, description="Training FLOP of the original model; None when unknown.")
    status: Literal["known", "estimated", "unknown"] = Field(
        description="known: reported by its developer; estimated: e.g. 6·N·D from reported tokens; unknown: neither."
    )
    systemic_risk: bool = Field(False, description="The original is a GPAI model with systemic risk (Art. 51).")
    source: str = Field("", description="Where the figure comes from (model card, paper, registry entry).")

    def __init__(self, flops: float | None = None, status: str | None = None, systemic_risk: bool = False,
                 source: str = "", **extra: object) -> None:
        # Positional use as in the agreed API; any invalid value becomes one BadInput line, never a traceback.
        try:
            super().__init__(flops=flops, status=status, systemic_risk=systemic_risk, source=source, **extra)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "original compute"
            raise BadInput(f"original compute: {where}: {err['msg']}") from None

    @model_validator(mode="after")
    def _consistent(self) -> "OriginalCompute":
        if self.status == "unknown":
            if self.flops is not None:
                raise ValueError("status 'unknown' but flops given; use status 'known' or 'estimated'")
        else:
            if self.flops is None:
                raise ValueError(f"status '{self.status}' needs flops (the original model's training FLOP)")
            if math.isnan(self.flops) or math.isinf(self.flops) or self.flops <= 0:
                raise ValueError(f"flops must be a finite positive number, got {self.flops}")
        return self


class Reason(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str
    citation: str


class Interpretation(BaseModel):
    """A line that is our reading of the texts, not the texts themselves (REGULATION.md marks these *reading*)."""

    model_config = ConfigDict(extra="forbid")
    label: Literal["reading"] = "reading"
    text: str
    citation: str


class Decision(BaseModel):
    """The GPAI-role judgement for one lineage. Exact figures in floats; `display` holds the 2-s.f. strings."""

    model_config = ConfigDict(extra="forbid")

    role: Role
    threshold_flops: float = Field(description="Modification FLOP above which the role changes (strictly above).")
    threshold_basis: ThresholdBasis
    rule: str = Field(description="The rule applied, in one plain sentence.")
    citation: str
    modification_flops: float = Field(description="Cumulative modification FLOP of the lineage (all jobs).")
    original: OriginalCompute
    exceeds_threshold: bool
    headroom_flops: float = Field(description="threshold − modification; negative when over.")
    headroom_fraction: float = Field(description="(threshold − modification) / threshold; negative when over.")
    margin_fraction: float = ESTIMATION_MARGIN
    margin_low_flops: float = Field(description="modification × (1 − 30 %), guidelines Annex A.2.")
    margin_high_flops: float = Field(description="modification × (1 + 30 %), guidelines Annex A.2.")
    margin_straddles: bool = Field(description="The ±30 % band of the modification estimate contains the threshold.")
    threshold_low_flops: float | None = Field(
        None, description="Threshold if the original's estimate is 30 % high (estimated originals only)."
    )
    threshold_high_flops: float | None = Field(
        None, description="Threshold if the original's estimate is 30 % low (estimated originals only)."
    )
    original_margin_straddles: bool = Field(
        False,
        description="The ±30 % uncertainty of an estimated original moves the threshold across the modification.",
    )
    cumulative_model_flops: float | None = Field(
        None, description="Original + modifications, when the original is known."
    )
    systemic_risk_presumed: bool = Field(description="Cumulative compute of the modified model > 1e25 (Art. 51(2)).")
    obligations: list[Obligation]
    reasoning: list[Reason]
    interpretations: list[Interpretation]
    accepted_role: Role
    within_accepted_role: bool
    accepted_limit_flops: float | None = Field(
        description="Modification FLOP up to which the role stays within the accepted role; None when unlimited."
    )
    display: dict[str, str] = Field(description="Two-significant-figure strings of every figure above.")


ROLE_LABELS = {
    "downstream_modifier": "downstream modifier (not a provider of the modified model)",
    "gpai_provider": "provider of the modified GPAI model",
    "gpai_provider_systemic_risk": "provider of the modified GPAI model with systemic risk",
}


def _role_rank(role: str) -> int:
    return ROLES.index(role)


def decide(modification_flops: float, original: OriginalCompute, *,
           accepted_role: str = "downstream_modifier") -> Decision:
    """Judge the role of whoever fine-tunes `original` with `modification_flops` (cumulative over the lineage)."""
    mod = _finite_number(modification_flops, "modification compute", positive=False)
    if not isinstance(original, OriginalCompute):
        raise BadInput("original must be an OriginalCompute(flops, status, systemic_risk, source)")
    if accepted_role not in ROLES:
        raise BadInput(f"accepted role must be one of {', '.join(ROLES)}; got {accepted_role!r}")

    reasons: list[Reason] = []
    readings: list[Interpretation] = []
    orig = original.flops
    src = f" (source: {original.source})" if original.source else ""

    def say(text: str, citation: str) -> None:
        reasons.append(Reason(text=text, citation=citation))

    def reading(text: str, citation: str) -> None:
        readings.append(Interpretation(text=text, citation=citation))

    say(f"The cumulative modification compute of this lineage is {flops2(mod)} FLOP (forward and backward passes "
        "that update parameters; activation recomputation excluded).", f"{GUIDELINES}, Annex A.1")
    reading("Successive modifications of one lineage (resumed jobs, a fine-tune of a fine-tune) add up: the "
            "threshold is compared with the sum of all of them.", MODIFICATION_RULE_CITATION)

    # --- which threshold applies -------------------------------------------------------------------------------
    if orig is None:
        if original.systemic_risk:
            threshold, basis = UNKNOWN_SYSTEMIC_ORIGINAL_FALLBACK.value, "unknown_systemic_original_fallback"
            rule = ("The original is a GPAI model with systemic risk whose training compute is unknown: the modifier "
                    "becomes provider of a systemic-risk model when the modification compute exceeds one third of "
                    "1e25 FLOP.")
            citation = UNKNOWN_SYSTEMIC_ORIGINAL_FALLBACK.citation
        else:
            threshold, basis = UNKNOWN_ORIGINAL_FALLBACK.value, "unknown_original_fallback"
            rule = ("The original model's training compute is unknown and cannot be estimated: the modifier becomes "
                    "a GPAI provider when the modification compute exceeds one third of 1e23 FLOP.")
            citation = UNKNOWN_ORIGINAL_FALLBACK.citation
        say(f"The original model's training compute is unknown{src}; the fallback threshold is {flops2(threshold)} "
            "FLOP.", citation)
    else:
        say(f"The original model's training compute is {flops2(orig)} FLOP, {original.status}{src}.",
            MODIFICATION_RULE_CITATION)
        if not original.systemic_risk and orig < GPAI_INDICATIVE.value:
            # Two tests apply; whichever is reached first decides (the conservative reading).
            one_third, to_criterion = orig / MODIFICATION_DIVISOR, GPAI_INDICATIVE.value - orig
            if one_third <= to_criterion:
                threshold, basis = one_third, "one_third_of_original"
                rule = (f"The original's training compute is {original.status}: the modifier becomes the provider of "
                        "the modified model when the modification compute exceeds one third of it, whatever its size.")
                citation = MODIFICATION_RULE_CITATION
            else:
                threshold, basis = to_criterion, "cumulative_gpai_criterion"
                rule = ("The modified model becomes a GPAI model, with the modifier as its provider, when its "
                        "cumulative compute (original plus all modifications) exceeds 1e23 FLOP.")
                citation = GPAI_INDICATIVE.citation
            reading(f"The original ({flops2(orig)} FLOP) is below the 1e23 indicative criterion and is likely not a "
                    "GPAI model. Two tests are applied and the one reached first decides: one third of the original "
                    f"({flops2(one_third)} FLOP, the rule for a known original whatever its size) and the modified "
                    f"model's cumulative compute passing 1e23 ({flops2(to_criterion)} FLOP of modification).",
                    f"{MODIFICATION_RULE_CITATION}; {GPAI_INDICATIVE.citation}")
            reading("Since the original is likely not a GPAI model, no upstream provider carries its obligations: the "
                    "provider's duties cover the whole model, not only the modification.", "Recital 109 (a contrario)")
        else:
            threshold, basis = orig / MODIFICATION_DIVISOR, "one_third_of_original"
            kind = "a GPAI model with systemic risk" if original.systemic_risk else "a GPAI model"
            outcome = "of a systemic-risk model" if original.systemic_risk else "of the modified model"
            rule = (f"The original is {kind} of {original.status} training compute: the modifier becomes the provider "
                    f"{outcome} when the modification compute exceeds one third of the original's training compute.")
            citation = MODIFICATION_RULE_CITATION
            reading("When the original compute is known (or estimated), the threshold is one third of it whatever its "
                    "size; the 3.3e22 and 3.3e24 fallbacks are only for an unknown original.",
                    MODIFICATION_RULE_CITATION)
        if original.status == "estimated":
            reading("The original's compute is itself an estimate; within the ±30 % the guidelines accept, the "
                    "threshold moves with it (threshold_low/high_flops).", ESTIMATION_MARGIN_CITATION)
        if not original.systemic_risk and exceeds(orig, SYSTEMIC_RISK_PRESUMPTION.value):
            reading(f"The original's own compute ({flops2(orig)} FLOP) is above 1e25, so it is presumed to have "
                    "systemic risk although it is not marked as such; any modified model is too.",
                    SYSTEMIC_RISK_PRESUMPTION.citation)
    say(rule, citation)

    over = exceeds(mod, threshold)
    say(f"{flops2(mod)} FLOP is {'greater than' if over else 'not greater than'} the threshold of {flops2(threshold)} "
        f"FLOP{'' if over else ' (exactly at the threshold is not over it)' if mod == threshold else ''}.", citation)

    # --- systemic-risk presumption of the modified model (Art. 51(2)) -----------------------------------------
    cumulative = None if orig is None else orig + mod
    # Compared in modification terms so that it agrees exactly with accepted_limit_flops below.
    systemic_limit = SYSTEMIC_RISK_PRESUMPTION.value - (orig or 0.0)
    presumed = exceeds(mod, systemic_limit)
    if cumulative is not None:
        say(f"The modified model's cumulative training compute is {flops2(cumulative)} FLOP, "
            f"{'above' if presumed else 'not above'} the 1e25 FLOP systemic-risk presumption.",
            SYSTEMIC_RISK_PRESUMPTION.citation)
    else:
        say("The modified model's cumulative compute cannot be known without the original's; the modification "
            f"alone is {'above' if presumed else 'not above'} the 1e25 FLOP systemic-risk presumption.",
            SYSTEMIC_RISK_PRESUMPTION.citation)

    if not over:
        role: str = "downstream_modifier"
    elif original.systemic_risk or presumed:
        role = "gpai_provider_systemic_risk"
    else:
        role = "gpai_provider"
    if over and presumed and not original.systemic_risk:
        reading("A modifier who becomes a provider of a model whose cumulative compute exceeds 1e25 FLOP is treated "
                "as the provider of a model presumed to have systemic risk.", SYSTEMIC_RISK_PRESUMPTION.citation)
    if presumed and not over:
        reading("The modified model's cumulative compute is above 1e25 but the modification is not significant under "
                "the threshold, so the original provider stays the provider of the model.", MODIFICATION_RULE_CITATION)

    # --- the ±30 % estimation margin (Annex A.2) -------------------------------------------------------------
    low, high = mod * (1 - ESTIMATION_MARGIN), mod * (1 + ESTIMATION_MARGIN)
    straddles = exceeds(high, threshold) and not exceeds(low, threshold)
    say(f"Within the ±30 % accepted estimation error the modification is {flops2(low)}–{flops2(high)} FLOP, which "
        + ("straddles the threshold: the role could go either way and needs a more precise count."
           if straddles else f"lies {'above' if over else 'below'} the threshold."), ESTIMATION_MARGIN_CITATION)

    t_low = t_high = None
    orig_straddles = False
    if orig is not None and original.status == "estimated":
        if basis == "cumulative_gpai_criterion":
            t_low = max(GPAI_INDICATIVE.value - orig * (1 + ESTIMATION_MARGIN), 0.0)
            t_high = GPAI_INDICATIVE.value - orig * (1 - ESTIMATION_MARGIN)
        else:
            t_low = threshold * (1 - ESTIMATION_MARGIN)
            t_high = threshold * (1 + ESTIMATION_MARGIN)
        orig_straddles = exceeds(mod, t_low) and not exceeds(mod, t_high)
        if orig_straddles:
            say(f"The original's compute is an estimate: within ±30 % the threshold is {flops2(t_low)}–"
                f"{flops2(t_high)} FLOP, which contains the modification, so the role depends on that estimate.",
                ESTIMATION_MARGIN_CITATION)

    # --- obligations and the organisation's accepted role ----------------------------------------------------
    below_criterion = orig is not None and not original.systemic_risk and orig < GPAI_INDICATIVE.value
    scope = "whole_model" if below_criterion else "modification"
    because = f"the modification compute ({flops2(mod)} FLOP) exceeds the threshold ({flops2(threshold)} FLOP)"
    obligations = obligations_for(role, scope=scope, because=because)
    if role == "downstream_modifier":
        say("You remain a downstream modifier: the obligations of Art. 53–55 for the model stay with the original "
            "provider.", MODIFICATION_RULE_CITATION)
    else:
        say(f"You are the {ROLE_LABELS[role]}; {len(obligations)} obligations follow.", citation)

    if _role_rank(accepted_role) == 0:
        limit: float | None = threshold
    elif _role_rank(accepted_role) == 1:
        limit = threshold if original.systemic_risk else max(threshold, systemic_limit)
    else:
        limit = None
    within = _role_rank(role) <= _role_rank(accepted_role)
    say(f"The organisation accepts the role {accepted_role}; this plan is "
        f"{'within' if within else 'beyond'} it.", MODIFICATION_RULE_CITATION)

    headroom = threshold - mod
    fraction = headroom / threshold
    display = {
        "modification_flops": flops2(mod),
        "threshold_flops": flops2(threshold),
        "headroom_flops": flops2(headroom),
        "headroom_fraction": percent2(fraction),
        "margin_low_flops": flops2(low),
        "margin_high_flops": flops2(high),
    }
    if orig is not None:
        display["original_flops"] = flops2(orig)
    if cumulative is not None:
        display["cumulative_model_flops"] = flops2(cumulative)
    if t_low is not None and t_high is not None:
        display["threshold_low_flops"] = flops2(t_low)
        display["threshold_high_flops"] = flops2(t_high)
    if limit is not None:
        display["accepted_limit_flops"] = flops2(limit)

    return Decision(
        role=role,
        threshold_flops=threshold,
        threshold_basis=basis,
        rule=rule,
        citation=citation,
        modification_flops=mod,
        original=original,
        exceeds_threshold=over,
        headroom_flops=headroom,
        headroom_fraction=fraction,
        margin_low_flops=low,
        margin_high_flops=high,
        margin_straddles=straddles,
        threshold_low_flops=t_low,
        threshold_high_flops=t_high,
        original_margin_straddles=orig_straddles,
        cumulative_model_flops=cumulative,
        systemic_risk_presumed=presumed,
        obligations=obligations,
        reasoning=reasons,
        interpretations=readings,
        accepted_role=accepted_role,
        within_accepted_role=within,
        accepted_limit_flops=limit,
        display=display,
    )


def tokens_until_threshold(flops_per_token: float, decision: Decision, *, to_accepted_limit: bool = False) -> int:
    """How many more tokens at `flops_per_token` keep the lineage at or below the threshold (0 when already over).

    With `to_accepted_limit`, count up to the organisation's accepted limit instead; returns -1 when it is unlimited.
    """
    fpt = _finite_number(flops_per_token, "FLOP per token", positive=True)
    limit = decision.accepted_limit_flops if to_accepted_limit else decision.threshold_flops
    if limit is None:
        return -1
    room = limit - decision.modification_flops
    return max(0, math.floor(room / fpt))
