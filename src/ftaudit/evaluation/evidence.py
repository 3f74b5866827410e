"""The evaluation section of the RunRecord: base vs tuned, per probe family, reproducible from what is recorded
(probe sets by sha256, decoding settings, seeds, library versions).

Annex XI §2(1) asks a GPAI provider with systemic risk for evaluation results and strategies; Art. 13(3)(b)(ii)
and Art. 15(3) ask for accuracy metrics in the instructions for use of high-risk systems; EDPB Opinion 28/2024
treats extraction resistance as the test of an anonymous model. *Reading*: for a downstream modifier these
numbers document the modification (recital 109) and feed the model card.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from ftaudit.strict import Strict

Suite = Literal["quality", "bias", "unexpected", "memorisation"]
SUITES: tuple[str, ...] = ("quality", "bias", "unexpected", "memorisation")



class Estimate(Strict):
    value: float | None = Field(description="None when it could not be computed (n = 0).")
    n: int = Field(description="Number of items the value is computed over.")
    ci_low: float | None = None
    ci_high: float | None = None
    ci_method: str | None = Field(None, description="e.g. 'Wilson 95%' or 'bootstrap percentile 95%, 1000 resamples'.")


class Comparison(Strict):
    metric: str = Field(description="Dotted name, e.g. quality.task.field_accuracy; gates refer to it.")
    description: str
    unit: str = Field("", description="'rate', 'nats', 'bits', 'ratio', ...")
    higher_is_better: bool | None = None
    base: Estimate | None = None
    tuned: Estimate
    delta: float | None = Field(None, description="tuned - base.")


class GroupResult(Strict):
    axis: str
    group: str
    metrics: list[Comparison]


class ProbeSet(Strict):
    name: str
    source: str = Field(description="shipped:<path in the package> or the user's file path.")
    sha256: str
    items: int


class ProbeFamily(Strict):
    suite: Suite
    name: str
    description: str
    probe_sets: list[ProbeSet] = Field(default_factory=list)
    metrics: list[Comparison] = Field(default_factory=list)
    groups: list[GroupResult] = Field(default_factory=list)
    status: Literal["ok", "skipped"] = "ok"
    reason: str | None = Field(None, description="Why the family was skipped.")
    notes: list[str] = Field(default_factory=list)
    citations: list[str] = Field(default_factory=list)
    seconds: float | None = Field(None, description="Wall time of this family, base and tuned together.")


class ModelUnderTest(Strict):
    role: Literal["base", "tuned"]
    spec: str = Field(description="Path, .gguf file or cached hub id as given.")
    kind: str = Field(description="directory, gguf, hub-cache or adapter.")
    adapter_path: str | None = None
    context_window: int
    dtype: str
    parameters: int


class Decoding(Strict):
    do_sample: bool
    max_new_tokens: int
    temperature: float | None = None
    top_p: float | None = None
    seed: int
    batch_size: int
    prompt_format: str
    padding_side: Literal["left"] = "left"
    likelihood: str = "sum of continuation-token log-probabilities given the context (natural log)"


class GateResult(Strict):
    metric: str
    rule: Literal["min", "max", "max_drop", "max_rise"]
    threshold: float
    base: float | None = None
    tuned: float | None = None
    observed: float | None = Field(None, description="What the rule compared: tuned value, or tuned - base.")
    passed: bool
    message: str


class MemorisationStatement(Strict):
    tested: str
    found: str
    shows: str
    does_not_show: str

    def text(self) -> str:
        return (
            f"What was tested: {self.tested}\nWhat was found: {self.found}\nWhat it shows: {self.shows}\nWhat it does "
            f"not show: {self.does_not_show}"
        )


class EvaluationEvidence(Strict):
    complete: bool = Field(True, description="False only if a caller records an evaluation that stopped early.")
    suites: list[Suite] = Field(default_factory=list)
    models: list[ModelUnderTest] = Field(default_factory=list)
    decoding: Decoding | None = None
    seed: int = 0
    families: list[ProbeFamily] = Field(default_factory=list)
    gates: list[GateResult] = Field(default_factory=list)
    approved: bool | None = Field(
        None,
        description="True: every gate passed; False: a gate failed (model kept, not approved); "
        "None: no gates configured.",
    )
    memorisation_statement: MemorisationStatement | None = None
    truncated_prompts: int = Field(0, description="Prompts cut from the left to fit the context window.")
    notes: list[str] = Field(default_factory=list)
    versions: dict[str, str] = Field(default_factory=dict, description="torch, transformers, peft, ftaudit.")
    started_at: datetime | None = None
    duration_s: float | None = None

    def metric(self, name: str) -> Comparison | None:
        for fam in self.families:
            for m in fam.metrics:
                if m.metric == name:
                    return m
        return None
