"""The GPAI-role decision (docs/regulation.md §1): numbers in, a judgement with its reasoning and citations out.

`decide(modification_flops, original)` says whether a fine-tuning lineage leaves its author a downstream modifier or
makes them the provider of a (systemic-risk) GPAI model. It knows nothing else in ftaudit: callers pass the
cumulative modification compute of the lineage and what is known of the original model's training compute.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ftaudit.errors import BadInput
from ftaudit.regulation.citations import guidelines
from ftaudit.regulation.figures import flops2, percent2
from ftaudit.regulation.obligations import ROLES, Obligation, Role, obligations_for
from ftaudit.regulation.thresholds import (
    ESTIMATION_MARGIN,
    ESTIMATION_MARGIN_CITATION,
    GPAI_INDICATIVE,
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
EstimateMethod = Literal["reported", "hardware", "architecture"]
# How the decision came to treat the base as a GPAI model (or not).
BaseBasis = Literal["declared", "indicative_criterion", "systemic_risk", "unknown_compute_fallback"]


def _finite_number(value: object, what: str, *, positive: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadInput(f"{what} must be a number of FLOP, got {type(value).__name__}")
    number = float(value)
    if math.isnan(number) or math.isinf(number):
        raise BadInput(f"{what} must be a finite number of FLOP, got {number}")
    if number < 0 or (positive and number == 0):
        raise BadInput(f"{what} must be {'positive' if positive else 'zero or more'}, got {number:g}")
    return number


class ComputeEstimate(BaseModel):
    """One public figure for an original model's training compute, made by one method (guidelines Annex A.2)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: EstimateMethod = Field(description="reported: published by the developer; hardware: GPU-hours × peak "
                                   "× utilisation; architecture: 6·N·D.")
    flops: float = Field(gt=0, allow_inf_nan=False)
    source: str = Field(min_length=1, description="Where the inputs come from (card, paper), with the arithmetic.")
    verified: bool = Field(description="The inputs were checked against the cited source.")

    @property
    def status(self) -> Literal["known", "estimated"]:
        return "known" if self.method == "reported" else "estimated"


class OriginalCompute(BaseModel):
    """What is known of the original (base) model's training compute.

    `flops`, `status` and `source` are the figure used when one is needed; `estimates` holds every public figure
    (from the base-model registry) and `decide()` judges each of them when there are several.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    flops: float | None = Field(None, description="Training FLOP of the original model; None when unknown.")
    status: Literal["known", "estimated", "unknown"] = Field(
        description="known: reported by its developer; estimated: e.g. 6·N·D from reported tokens; unknown: neither."
    )
    systemic_risk: bool = Field(False, description="The original is a GPAI model with systemic risk (Art. 51).")
    source: str = Field("", description="Where the figure comes from (model card, paper, registry entry).")
    is_gpai: bool | None = Field(None, description="Declared by the user (base_is_gpai): the base was placed on the "
                                 "market as a GPAI model (true) or not (false); null: the indicative 1e23 criterion "
                                 "decides (guidelines ¶17–20).")
    estimates: tuple[ComputeEstimate, ...] = Field((), description="Every public estimate of the original's "
                                                   "compute (base-model registry).")
    estimate_choice: EstimateMethod | None = Field(None, description="The estimate the user picked "
                                                   "(original_estimate); null: the stricter outcome decides.")

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
        methods = [e.method for e in self.estimates]
        if self.estimate_choice is not None and self.estimate_choice not in methods:
            raise ValueError(f"original_estimate '{self.estimate_choice}' is not available for this base; "
                             f"available: {', '.join(methods) or 'none'}")
        return self

    def using(self, estimate: ComputeEstimate) -> "OriginalCompute":
        """This original with `estimate` as the figure used."""
        return self.model_copy(update={"flops": estimate.flops, "status": estimate.status,
                                       "source": estimate.source})


class Reason(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str
    citation: str


class Interpretation(BaseModel):
    """A line that is our reading of the texts, not the texts themselves (docs/regulation.md marks these *reading*)."""

    model_config = ConfigDict(extra="forbid")
    label: Literal["reading"] = "reading"
    text: str
    citation: str


class AlternativeReading(BaseModel):
    """The other reading of a base below 1e23: what would change if it were (or were not) a GPAI model."""

    model_config = ConfigDict(extra="forbid")
    label: Literal["reading"] = "reading"
    base_is_gpai: bool = Field(description="The assumption of this alternative.")
    threshold_basis: ThresholdBasis
    threshold_flops: float
    role: Role = Field(description="The role at this modification compute under the alternative.")
    text: str
    citation: str


class EstimateOutcome(BaseModel):
    """The decision under one public estimate of the original's compute."""

    model_config = ConfigDict(extra="forbid")
    method: EstimateMethod
    original_flops: float
    source: str
    verified: bool
    threshold_basis: ThresholdBasis
    threshold_flops: float
    role: Role
    original_above_gpai_criterion: bool
    original_above_systemic_presumption: bool


class Decision(BaseModel):
    """The GPAI-role judgement for one lineage. Exact figures in floats; `display` holds the 2-s.f. strings."""

    model_config = ConfigDict(extra="forbid")

    role: Role
    threshold_flops: float = Field(description="Modification FLOP above which the role changes (strictly above).")
    threshold_basis: ThresholdBasis
    rule: str = Field(description="The rule applied, in one plain sentence.")
    citation: str
    modification_flops: float = Field(description="Cumulative modification FLOP of the lineage (all jobs).")
    original: OriginalCompute = Field(description="The original's compute as used (the deciding estimate).")
    base_is_gpai: bool = Field(description="The decision treats the base as a GPAI model (the one-third rule "
                               "applies) or not (the cumulative 1e23 criterion applies).")
    base_is_gpai_basis: BaseBasis
    alternative: AlternativeReading | None = Field(
        None, description="For a base of known compute below 1e23: the outcome under the other reading.")
    estimates: list[EstimateOutcome] = Field(default_factory=list, description="The outcome under each public "
                                             "estimate of the original, when there are several.")
    estimates_disagree: bool = Field(False, description="The estimates fall on different sides of 1e23 or 1e25 or "
                                     "give different roles for this modification.")
    estimate_used: EstimateMethod | None = None
    estimate_selection: Literal["single", "user", "stricter"] | None = None
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
STRICTER_READING = ("When public estimates of the original's compute disagree, the stricter outcome decides (the "
                    "higher role, then the lower threshold) unless the user picks an estimate (original_estimate).")


def _role_rank(role: str) -> int:
    return ROLES.index(role)


def decide(modification_flops: float, original: OriginalCompute, *,
           accepted_role: str = "downstream_modifier", established_in_eu: bool | None = None) -> Decision:
    """Judge the role of whoever fine-tunes `original` with `modification_flops` (cumulative over the lineage).

    With several public estimates of the original (`original.estimates`), each is judged; the user's pick
    (`original.estimate_choice`) or else the stricter outcome decides, and the others are shown beside it.
    `established_in_eu` drops the Art. 54 authorised representative for a provider established in the Union.
    """
    mod = _finite_number(modification_flops, "modification compute", positive=False)
    if not isinstance(original, OriginalCompute):
        raise BadInput("original must be an OriginalCompute(flops, status, systemic_risk, source)")
    if accepted_role not in ROLES:
        raise BadInput(f"accepted role must be one of {', '.join(ROLES)}; got {accepted_role!r}")
    if len(original.estimates) <= 1:
        single = _judge(mod, original, accepted_role, established_in_eu)
        if original.estimates:
            single = single.model_copy(update={"estimate_used": original.estimates[0].method,
                                               "estimate_selection": "single"})
        return single

    judged = [(e, _judge(mod, original.using(e), accepted_role, established_in_eu)) for e in original.estimates]
    if original.estimate_choice is not None:
        est, chosen = next((e, d) for e, d in judged if e.method == original.estimate_choice)
        selection = "user"
    else:
        est, chosen = max(judged, key=lambda ed: (_role_rank(ed[1].role), -ed[1].threshold_flops))
        selection = "stricter"
    outcomes = [EstimateOutcome(
        method=e.method, original_flops=e.flops, source=e.source, verified=e.verified,
        threshold_basis=d.threshold_basis, threshold_flops=d.threshold_flops, role=d.role,
        original_above_gpai_criterion=exceeds(e.flops, GPAI_INDICATIVE.value),
        original_above_systemic_presumption=exceeds(e.flops, SYSTEMIC_RISK_PRESUMPTION.value),
    ) for e, d in judged]
    splits = [f"they fall on different sides of {name}" for name, side in (
        ("1e23", {o.original_above_gpai_criterion for o in outcomes}),
        ("1e25", {o.original_above_systemic_presumption for o in outcomes})) if len(side) > 1]
    if len({o.role for o in outcomes}) > 1:
        splits.append("they give different roles for this modification")
    disagree = bool(splits)
    listing = "; ".join(f"{o.method} {flops2(o.original_flops)} FLOP → threshold {flops2(o.threshold_flops)} FLOP, "
                        f"{o.role}" for o in outcomes)
    reasons = list(chosen.reasoning)
    readings = list(chosen.interpretations)
    reasons.append(Reason(text=f"Public estimates of the original's compute: {listing}.",
                          citation=ESTIMATION_MARGIN_CITATION))
    if disagree:
        reasons.append(Reason(text=f"The estimates disagree: {' and '.join(splits)}. "
                               + (f"You picked the {est.method} estimate." if selection == "user" else
                                  f"The stricter outcome decides (the {est.method} estimate); pick one with "
                                  "original_estimate to decide otherwise."), citation=ESTIMATION_MARGIN_CITATION))
    if selection == "stricter":
        readings.append(Interpretation(text=STRICTER_READING, citation=ESTIMATION_MARGIN_CITATION))
    display = dict(chosen.display)
    for o in outcomes:
        display[f"original_flops_{o.method}"] = flops2(o.original_flops)
    return chosen.model_copy(update={
        "estimates": outcomes, "estimates_disagree": disagree, "estimate_used": est.method,
        "estimate_selection": selection, "reasoning": reasons, "interpretations": readings, "display": display,
        "original": chosen.original,
    })


def _alternative(mod: float, orig: float, *, as_gpai: bool) -> AlternativeReading:
    if as_gpai:
        threshold, basis = orig / MODIFICATION_DIVISOR, "one_third_of_original"
        text = (f"If the base was placed on the market as a GPAI model (declare base_is_gpai: true), the one-third "
                f"rule applies instead: threshold {flops2(threshold)} FLOP of modification, and a provider's duties "
                "are limited to the modification.")
        citation = MODIFICATION_RULE_CITATION
    else:
        threshold, basis = GPAI_INDICATIVE.value - orig, "cumulative_gpai_criterion"
        text = (f"If the base is not a GPAI model (base_is_gpai: false or not declared), the one-third rule does not "
                f"apply: the threshold is the modified model's cumulative compute passing 1e23, {flops2(threshold)} "
                "FLOP of modification, and a provider's duties cover the whole model.")
        citation = GPAI_INDICATIVE.citation
    role = "gpai_provider" if exceeds(mod, threshold) else "downstream_modifier"
    return AlternativeReading(base_is_gpai=as_gpai, threshold_basis=basis, threshold_flops=threshold, role=role,
                              text=text + f" At this compute you would be {ROLE_LABELS[role]}.", citation=citation)


def _judge(mod: float, original: OriginalCompute, accepted_role: str,
           established_in_eu: bool | None) -> Decision:
    reasons: list[Reason] = []
    readings: list[Interpretation] = []
    orig = original.flops
    src = f" (source: {original.source})" if original.source else ""

    def say(text: str, citation: str) -> None:
        reasons.append(Reason(text=text, citation=citation))

    def reading(text: str, citation: str) -> None:
        readings.append(Interpretation(text=text, citation=citation))

    say(f"The cumulative modification compute of this lineage is {flops2(mod)} FLOP (forward and backward passes "
        "that update parameters; activation recomputation excluded).", guidelines("Annex A.1"))
    reading("Successive modifications of one lineage (resumed jobs, a fine-tune of a fine-tune) add up: the "
            "threshold is compared with the sum of all of them.", MODIFICATION_RULE_CITATION)

    # --- is the base a GPAI model, and so which threshold applies -----------------------------------------------
    alternative: AlternativeReading | None = None
    if orig is None:
        base_gpai, base_basis = True, "unknown_compute_fallback"
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
        if original.is_gpai is False:
            reading("You declared that the base is not a GPAI model, but without its compute the modified model's "
                    "cumulative compute cannot be compared with 1e23: the fallback for an unknown original applies.",
                    f"{UNKNOWN_ORIGINAL_FALLBACK.citation}; {GPAI_INDICATIVE.citation}")
    else:
        say(f"The original model's training compute is {flops2(orig)} FLOP, {original.status}{src}.",
            MODIFICATION_RULE_CITATION)
        below = not exceeds(orig, GPAI_INDICATIVE.value)
        if original.systemic_risk:
            base_gpai, base_basis = True, "systemic_risk"
        elif below:
            base_gpai, base_basis = original.is_gpai is True, ("declared" if original.is_gpai is not None
                                                               else "indicative_criterion")
        else:
            base_gpai, base_basis = True, "indicative_criterion"
        if base_gpai:
            threshold, basis = orig / MODIFICATION_DIVISOR, "one_third_of_original"
            kind = "a GPAI model with systemic risk" if original.systemic_risk else "a GPAI model"
            outcome = "of a systemic-risk model" if original.systemic_risk else "of the modified model"
            rule = (f"The original is {kind} of {original.status} training compute: the modifier becomes the provider "
                    f"{outcome} when the modification compute exceeds one third of the original's training compute.")
            citation = MODIFICATION_RULE_CITATION
            reading("When the original compute is known (or estimated), the threshold is one third of it whatever its "
                    "size; the 3.3e22 and 3.3e24 fallbacks are only for an unknown original.",
                    MODIFICATION_RULE_CITATION)
        else:
            threshold, basis = GPAI_INDICATIVE.value - orig, "cumulative_gpai_criterion"
            rule = ("The original is not a GPAI model: the modifier stays a downstream modifier until the modified "
                    "model's cumulative compute (original plus all modifications) exceeds 1e23 FLOP; then it is a new "
                    "GPAI model and the modifier its provider, for the whole model.")
            citation = GPAI_INDICATIVE.citation
        if below and not original.systemic_risk:
            applied = ("you declared that it was placed on the market as a GPAI model (base_is_gpai: true), so the "
                       "one-third rule applies" if base_gpai else
                       ("you declared that it is not a GPAI model" if original.is_gpai is False else
                        "it was not declared a GPAI model") + ", so it is not one by the indicative criterion and the "
                       "one-third rule (which concerns modifying a GPAI model) does not apply")
            reading(f"Reading applied: the original ({flops2(orig)} FLOP) is not above the 1e23 indicative criterion "
                    f"and {applied}; threshold {flops2(threshold)} FLOP of modification.",
                    f"{GPAI_INDICATIVE.citation}; {MODIFICATION_RULE_CITATION}")
            alternative = _alternative(mod, orig, as_gpai=not base_gpai)
            reading(f"Alternative reading: {alternative.text}", alternative.citation)
            if not base_gpai:
                reading("A base that is not a GPAI model has no upstream provider carrying GPAI obligations: the "
                        "provider's duties cover the whole model, not only the modification.",
                        "Recital 109 (a contrario)")
        elif original.is_gpai is False and not original.systemic_risk:
            reading(f"You declared that the base is not a GPAI model, but its compute ({flops2(orig)} FLOP) is above "
                    "the 1e23 indicative criterion, which presumes significant generality: the one-third rule is kept; "
                    "rebutting that presumption needs a legal assessment of the model's generality.",
                    GPAI_INDICATIVE.citation)
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
    scope = "modification" if base_gpai else "whole_model"
    if basis == "cumulative_gpai_criterion":
        because = (f"the modified model's cumulative compute ({flops2(orig + mod)} FLOP) exceeds the 1e23 FLOP "
                   "indicative criterion")
    else:
        because = f"the modification compute ({flops2(mod)} FLOP) exceeds the threshold ({flops2(threshold)} FLOP)"
    obligations = obligations_for(role, scope=scope, because=because, established_in_eu=established_in_eu)
    if role == "downstream_modifier":
        if base_gpai:
            say("You remain a downstream modifier: the obligations of Art. 53–55 for the model stay with the original "
                "provider.", MODIFICATION_RULE_CITATION)
        else:
            say("You remain a downstream modifier: the modified model is not a GPAI model, so no GPAI-provider "
                "obligations (Art. 53–55) follow from this modification.", GPAI_INDICATIVE.citation)
    else:
        say(f"You are the {ROLE_LABELS[role]}; {len(obligations)} obligations follow"
            + ("" if base_gpai else ", for the whole model") + ".", citation)

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
    # A base exactly at 1e23 leaves a threshold of 0: any modification is over it, all of the (empty) room used.
    fraction = headroom / threshold if threshold else (0.0 if mod == 0 else -1.0)
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
    if alternative is not None:
        display["alternative_threshold_flops"] = flops2(alternative.threshold_flops)

    return Decision(
        role=role,
        threshold_flops=threshold,
        threshold_basis=basis,
        rule=rule,
        citation=citation,
        modification_flops=mod,
        original=original,
        base_is_gpai=base_gpai,
        base_is_gpai_basis=base_basis,
        alternative=alternative,
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
