"""The RunRecord: one typed, versioned document that every producer fills and every consumer reads.

Producers (compute, data, evaluation, pipeline) write their evidence section; `regulation` judges it;
`reporting` and `ledger` only read it. The JSON schema is published at `schemas/runrecord.schema.json`
(`ftaudit schema` prints it); bump SCHEMA_VERSION on any incompatible change.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from ftaudit import __version__
from ftaudit.compute.evidence import ComputeEvidence
from ftaudit.data.evidence import DataEvidence
from ftaudit.errors import BadInput, first_line
from ftaudit.evaluation.evidence import EvaluationEvidence
from ftaudit.io import atomic_write_text
from ftaudit.regulation.decision import Decision
from ftaudit.strict import Strict

SCHEMA_VERSION = "1.0"
RECORD_FILENAME = "run_record.json"


def _now() -> datetime:
    return datetime.now(timezone.utc)



class ModelIdentity(Strict):
    base_model: str | None = Field(None, description="Registry id or path of the model that was modified.")
    base_model_revision: str | None = None
    output_name: str | None = Field(None, description="Versioned name of the modified model.")
    output_path: str | None = Field(None, description="Where the model or adapter was written.")
    architecture: dict[str, Any] | None = Field(None, description="The base model's config.json fields that "
                                                "describe its architecture (Annex XI §1 1(d)).")


class Lineage(Strict):
    lineage_id: str = Field(description="Shared by every run that modifies the same base model line.")
    parent_run_id: str | None = Field(None, description="The metered run this one starts from, if any.")
    parent_path: str | None = Field(None, description="Checkpoint or adapter path this run started from.")
    ancestors_flops: float = Field(0.0, description="Regulatory FLOP of all earlier runs of the lineage.")


class Stage(Strict):
    name: str
    status: Literal["ok", "skipped", "failed", "stopped", "refused"]
    reason: str | None = Field(None, description="Why it was skipped, failed or stopped.")
    started_at: datetime | None = None
    finished_at: datetime | None = None


class Artefact(Strict):
    path: str = Field(description="Relative to the run directory.")
    sha256: str
    kind: str = Field(description="model, adapter, document, evidence, log, ...")
    bytes: int | None = None


# The files that hold a trained model's or adapter's weights (PEFT and transformers' single-file layouts).
WEIGHTS_FILES = ("adapter_model.safetensors", "model.safetensors")


class Environment(Strict):
    python: str | None = None
    platform: str | None = None
    packages: dict[str, str] = Field(default_factory=dict)
    hardware: dict[str, Any] = Field(default_factory=dict)


class RunRecord(Strict):
    schema_version: str = SCHEMA_VERSION
    run_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    created_at: datetime = Field(default_factory=_now)
    updated_at: datetime = Field(default_factory=_now)
    ftaudit_version: str = __version__
    status: Literal["planned", "running", "completed", "failed", "stopped", "refused"] = "planned"
    model: ModelIdentity = Field(default_factory=ModelIdentity)
    lineage: Lineage | None = None
    config: dict[str, Any] | None = Field(None, description="The validated run config, as given.")
    environment: Environment = Field(default_factory=Environment)
    compute: ComputeEvidence | None = None
    decision: Decision | None = None
    data: DataEvidence | None = None
    evaluation: EvaluationEvidence | None = None
    artefacts: list[Artefact] = Field(default_factory=list)
    stages: list[Stage] = Field(default_factory=list)

    def weights(self) -> Artefact | None:
        """The artefact holding the weights this run produced (what a deployment serves), if it was registered."""
        return next((a for a in self.artefacts if a.kind in ("adapter", "model")
                     and Path(a.path).name in WEIGHTS_FILES), None)

    def save(self, run_dir: str | Path) -> Path:
        self.updated_at = _now()
        return atomic_write_text(Path(run_dir) / RECORD_FILENAME, self.model_dump_json(indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "RunRecord":
        path = Path(path)
        if path.is_dir():
            path = path / RECORD_FILENAME
        try:
            return cls.model_validate_json(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise BadInput(f"{path}: no run record here; pass a run directory made by ftaudit") from None
        except ValueError as exc:
            first = first_line(exc)
            raise BadInput(f"{path}: not a valid run record ({first})") from None


def json_schema() -> dict:
    return RunRecord.model_json_schema()


def json_schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
