"""The base of every evidence and config model: an unknown field is an error, never silently dropped (a typo in
run.yaml, or a record written by another version, must be seen)."""

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")
