"""The GPAI-role decision (REGULATION.md §1)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Decision(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # Extended by the compute issue: role, threshold, rule, citation, headroom, margin, obligations.
    role: str | None = None
