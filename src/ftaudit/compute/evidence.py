"""The compute section of the RunRecord (filled by the estimator, the meter and the hardware sampler)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ComputeEvidence(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # Extended by the compute issue: estimate, meter, hardware cross-check, energy, lineage totals.
    regulatory_flops: float | None = None
