"""Evaluation gates and the evaluation part of the run config.

A gate compares one metric of the tuned model with a threshold (`min`, `max`) or with the base model
(`max_drop`: tuned may fall at most this far below base; `max_rise`: may rise at most this far above).
A failed gate is recorded with its numbers; the model is kept and marked not approved, and the command exits
with `errors.EVALUATION_GATE_FAILED` (6). *Reading*: Art. 9(8) asks that high-risk systems be tested "against
prior defined metrics and probabilistic thresholds"; gates are where an organisation writes those down.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ftaudit.errors import BadInput, EvaluationGateFailed
from ftaudit.evaluation.evidence import SUITES, EvaluationEvidence, GateResult
from ftaudit.evaluation.generation import DecodingSettings

# Every metric a gate may name: (suite, direction). Per-axis bias metrics end in one of AXES.
AXES = ("gender", "ethnicity_nationality", "religion", "age", "disability")
METRICS: dict[str, str] = {
    "quality.task.exact_match": "quality",
    "quality.task.token_f1": "quality",
    "quality.task.rouge_l": "quality",
    "quality.task.json_validity": "quality",
    "quality.task.field_accuracy": "quality",
    "quality.task.perplexity": "quality",
    "quality.general.accuracy": "quality",
    "quality.text.perplexity": "quality",
    "bias.likelihood.max_gap": "bias",
    "bias.generation.sentiment_max_gap": "bias",
    "bias.generation.refusal_rate_max_gap": "bias",
    "bias.generation.refusal_rate": "bias",
    "unexpected.toxicity.rate": "unexpected",
    "unexpected.toxicity.rate_all_generations": "unexpected",
    "unexpected.harmful.refusal_rate": "unexpected",
    "unexpected.harmful.compliance_rate": "unexpected",
    "unexpected.personal_data.rate": "unexpected",
    "memorisation.canary.detected_rate": "memorisation",
    "memorisation.canary.unseen_detected_rate": "memorisation",
    "memorisation.canary.mean_exposure": "memorisation",
    "memorisation.extraction.rate": "memorisation",
}
for _axis in AXES:
    METRICS[f"bias.likelihood.gap.{_axis}"] = "bias"
    METRICS[f"bias.generation.sentiment_gap.{_axis}"] = "bias"


class Gate(BaseModel):
    """A release condition on one metric of the tuned model: exactly one of min, max, max_drop, max_rise."""

    model_config = ConfigDict(extra="forbid")
    metric: str = Field(description="Metric name, e.g. quality.task.exact_match (`ftaudit evaluate --help`).")
    min: float | None = Field(None, description="The tuned value must be at least this.")
    max: float | None = Field(None, description="The tuned value must be at most this.")
    max_drop: float | None = Field(None, ge=0, description="Tuned may be at most this much below base.")
    max_rise: float | None = Field(None, ge=0, description="Tuned may be at most this much above base.")

    @model_validator(mode="after")
    def _one_rule(self):
        rules = [k for k in ("min", "max", "max_drop", "max_rise") if getattr(self, k) is not None]
        if len(rules) != 1:
            raise ValueError(f"gate on {self.metric}: give exactly one of min, max, max_drop, max_rise")
        if self.metric not in METRICS:
            close = [m for m in METRICS if m.split(".")[0] == self.metric.split(".")[0]]
            raise ValueError(f"gate: unknown metric {self.metric!r}; known: {', '.join(close or METRICS)}")
        return self

    @property
    def rule(self) -> str:
        return next(k for k in ("min", "max", "max_drop", "max_rise") if getattr(self, k) is not None)


class Limits(BaseModel):
    """Sizes that keep an evaluation within budget; every one is recorded in the evidence."""

    model_config = ConfigDict(extra="forbid")
    task_items: int = Field(20, ge=1, description="Held-out task records evaluated (first N, in file order).")
    task_max_new_tokens: int = Field(128, ge=1, description="Cap on tokens generated per task answer.")
    bias_new_tokens: int = Field(10, ge=1, description="Tokens generated per counterfactual bias prompt.")
    unexpected_new_tokens: int = Field(20, ge=1, description="Tokens generated per unexpected-output probe.")
    canary_references: int = Field(100, ge=10, description="Random candidates each canary is ranked against.")
    canary_detect_bits: float = Field(10.0, gt=0, description="Exposure (bits) from which a canary counts as "
                                      "memorised.")
    extraction_items: int = Field(12, ge=1, description="Training records with personal data probed for extraction.")
    extraction_new_tokens: int = Field(16, ge=1, description="Tokens generated per extraction probe.")


class CanaryOptions(BaseModel):
    """`evaluation.canaries`: random secrets planted in the training data before training, to measure memorisation."""

    model_config = ConfigDict(extra="forbid")
    inserted: int = Field(4, ge=1, description="Canaries inserted into the training data.")
    unseen: int = Field(4, ge=1, description="Canaries held out, the control group.")
    repeats: int = Field(10, ge=1, description="Times each inserted canary is repeated.")
    digits: int = Field(9, ge=4, le=30, description="Digits of each canary's secret.")
    seed: int = Field(0, description="Seed of the canaries' secrets.")


class EvaluationConfig(BaseModel):
    """The `evaluation:` section of run.yaml (and of `ftaudit evaluate --config`)."""

    model_config = ConfigDict(extra="forbid")
    suites: list[str] = Field(default_factory=lambda: list(SUITES), description="Evaluation families to run.")
    seed: int = Field(0, description="Seed of the evaluation's random choices (probe order, canary candidates).")
    decoding: DecodingSettings = Field(default_factory=DecodingSettings)
    limits: Limits = Field(default_factory=Limits)
    gates: list[Gate] = Field(default_factory=list, description="Release conditions; a failed one exits 6.")
    canaries: CanaryOptions | None = Field(None, description="Plant canaries before training (ftaudit train only).")

    @field_validator("canaries", mode="before")
    @classmethod
    def _switch(cls, value: Any) -> Any:
        """`canaries: true` plants the default set; `false` none."""
        return {} if value is True else None if value is False else value

    @model_validator(mode="after")
    def _check(self):
        if not self.suites:
            raise ValueError("the evaluation suite is empty; choose from " + ", ".join(SUITES))
        unknown = [s for s in self.suites if s not in SUITES]
        if unknown:
            raise ValueError(f"unknown suite {', '.join(unknown)}; choose from " + ", ".join(SUITES))
        for g in self.gates:
            if METRICS[g.metric] not in self.suites:
                raise ValueError(f"gate on {g.metric} needs suite {METRICS[g.metric]}, which is not selected")
        return self


def parse_config(raw: dict[str, Any] | None, *, where: str = "evaluation config") -> EvaluationConfig:
    try:
        return EvaluationConfig.model_validate(raw or {})
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        raise BadInput(f"{where}: {loc + ': ' if loc else ''}{msg}") from None


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4g}"


def apply_gates(evidence: EvaluationEvidence, gates: list[Gate]) -> EvaluationEvidence:
    """Record every gate's result and the approval; a metric that was not measured fails its gate."""
    results = []
    for g in gates:
        threshold = float(getattr(g, g.rule))
        m = evidence.metric(g.metric)
        tuned = m.tuned.value if m else None
        base = m.base.value if (m and m.base) else None
        observed, passed = None, False
        if tuned is None or (isinstance(tuned, float) and math.isnan(tuned)):
            msg = f"{g.metric} was not measured ({'family skipped' if m is None else 'no items'}): gate cannot pass"
        elif g.rule in ("min", "max"):
            observed = tuned
            passed = tuned >= threshold if g.rule == "min" else tuned <= threshold
            msg = f"{g.metric} = {_fmt(tuned)} (tuned), required {'>=' if g.rule == 'min' else '<='} {_fmt(threshold)}"
        elif base is None:
            msg = f"{g.metric}: no base value to compare with: gate cannot pass"
        else:
            observed = tuned - base
            passed = -observed <= threshold if g.rule == "max_drop" else observed <= threshold
            word = "drop" if g.rule == "max_drop" else "rise"
            msg = (
                f"{g.metric}: base {_fmt(base)} -> tuned {_fmt(tuned)} (change {observed:+.4g}), allowed {word} "
                f"{_fmt(threshold)}"
            )
        results.append(
            GateResult(
                metric=g.metric,
                rule=g.rule,
                threshold=threshold,
                base=base,
                tuned=tuned,
                observed=observed,
                passed=passed,
                message=msg,
            )
        )
    evidence.gates = results
    evidence.approved = all(r.passed for r in results) if results else None
    return evidence


def raise_for_gates(evidence: EvaluationEvidence) -> None:
    """Raise EvaluationGateFailed (exit 6) when a gate failed; call it after the evidence is saved."""
    failed = [g for g in evidence.gates if not g.passed]
    if failed:
        detail = "; ".join(g.message for g in failed)
        raise EvaluationGateFailed(
            (
                f"{len(failed)} of {len(evidence.gates)} evaluation gates failed, model kept and marked not approved: "
                f"{detail}"
            )
        )
