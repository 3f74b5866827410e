"""The data-governance section of the RunRecord."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class DataEvidence(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # Extended by the data-governance issue.
