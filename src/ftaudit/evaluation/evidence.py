"""The evaluation section of the RunRecord."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class EvaluationEvidence(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # Extended by the evaluation issue.
