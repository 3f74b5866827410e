"""MLflow: the run's evidence in the tracking server the team already reads (the `mlflow` extra).

    log_record(record, run_dir, settings)   ftaudit train, after the record stage
    log_meter(state, decision)              FlopsMeterCallback, at the end of training, into the active run

Into the active MLflow run (or the one named by MLFLOW_RUN_ID, or a new run in `settings.experiment`):
  params     ftaudit.method, ftaudit.base_model, ftaudit.lineage_id, ftaudit.run_id
  metrics    ftaudit.flops_regulatory, ftaudit.flops_lineage, ftaudit.fraction_of_threshold,
             eval.<metric>.base / .tuned for every evaluation metric
  tags       ftaudit.role, ftaudit.rule, ftaudit.threshold_basis, ftaudit.citation, ftaudit.approved
  artefacts  run_record.json, docs/ (model card, Annex XI/XII, ML-BOM, ...), under "ftaudit/"
and, with `settings.registered_model`, a version of that registered model (source: the logged model directory)
carrying the same tags, so a model registry reader sees the role and the citation beside the weights.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ftaudit.errors import BadInput, RuntimeFailure, first_line

if TYPE_CHECKING:
    from ftaudit.compute.meter import MeterState
    from ftaudit.pipeline.config import MlflowSettings
    from ftaudit.record import RunRecord
    from ftaudit.regulation import Decision

ARTIFACT_DIR = "ftaudit"


def _mlflow():
    try:
        import mlflow
    except ImportError:
        raise BadInput("mlflow is not installed: pip install 'ftaudit[mlflow]' (or remove `mlflow:` from the "
                       "config)") from None
    return mlflow


def wanted(settings: MlflowSettings | None) -> bool:
    """Log when the config asks for it, or when a run is already active here or handed over by MLFLOW_RUN_ID."""
    if settings is not None:
        return True
    if os.environ.get("MLFLOW_RUN_ID"):
        return True
    return "mlflow" in sys.modules and sys.modules["mlflow"].active_run() is not None


def decision_tags(decision: Decision) -> dict[str, str]:
    return {"ftaudit.role": decision.role, "ftaudit.rule": decision.rule,
            "ftaudit.threshold_basis": decision.threshold_basis, "ftaudit.citation": decision.citation}


def decision_metrics(decision: Decision, run_flops: float | None) -> dict[str, float]:
    out = {"ftaudit.flops_lineage": decision.modification_flops,
           "ftaudit.fraction_of_threshold": decision.modification_flops / decision.threshold_flops}
    if run_flops is not None:
        out["ftaudit.flops_regulatory"] = run_flops
    return out


def _metrics(record: RunRecord) -> dict[str, float]:
    run_flops = record.compute.regulatory_flops if record.compute else None
    out = decision_metrics(record.decision, run_flops) if record.decision else {}
    if record.evaluation is not None:
        for family in record.evaluation.families:
            for m in family.metrics:
                for role, est in (("base", m.base), ("tuned", m.tuned)):
                    if est is not None and est.value is not None:
                        out[f"eval.{m.metric}.{role}"] = float(est.value)
    return out


def _tags(record: RunRecord) -> dict[str, str]:
    tags = decision_tags(record.decision) if record.decision else {}
    if record.evaluation is not None and record.evaluation.approved is not None:
        tags["ftaudit.approved"] = str(record.evaluation.approved).lower()
    tags["ftaudit.status"] = record.status
    return tags


def log_record(record: RunRecord, run_dir: Path, settings: MlflowSettings | None) -> str:
    """Log the finished run; returns the MLflow run id. MLflow's own errors become one RuntimeFailure line."""
    mlflow = _mlflow()
    try:
        if settings is not None and settings.tracking_uri:
            mlflow.set_tracking_uri(settings.tracking_uri)
        active = mlflow.active_run()
        if active is None and settings is not None and settings.experiment and not os.environ.get("MLFLOW_RUN_ID"):
            mlflow.set_experiment(settings.experiment)
        started = active is None
        run = active or mlflow.start_run(run_name=record.model.output_name or record.run_id)
        try:
            mlflow.log_params({"ftaudit.method": (record.config or {}).get("method", {}).get("type"),
                               "ftaudit.base_model": record.model.base_model,
                               "ftaudit.lineage_id": record.lineage.lineage_id if record.lineage else None,
                               "ftaudit.run_id": record.run_id})
            mlflow.log_metrics(_metrics(record))
            mlflow.set_tags(_tags(record))
            mlflow.log_artifact(str(run_dir / "run_record.json"), ARTIFACT_DIR)
            if (run_dir / "docs").is_dir():
                mlflow.log_artifacts(str(run_dir / "docs"), f"{ARTIFACT_DIR}/docs")
            if settings is not None and settings.registered_model:
                _register(mlflow, run.info.run_id, run_dir, settings.registered_model, _tags(record))
        finally:
            if started:
                mlflow.end_run()
    except BadInput:
        raise
    except Exception as exc:  # noqa: BLE001 - an unreachable or refusing tracking server is a runtime failure
        raise RuntimeFailure(f"mlflow: {type(exc).__name__}: {first_line(exc)}") from None
    return run.info.run_id


def _register(mlflow, run_id: str, run_dir: Path, name: str, tags: dict[str, str]) -> None:
    """A new version of the registered model, its source the model directory logged with the run."""
    from mlflow import MlflowClient

    mlflow.log_artifacts(str(run_dir / "model"), "model")
    client = MlflowClient()
    try:
        client.get_registered_model(name)
    except mlflow.exceptions.MlflowException:
        client.create_registered_model(name)
    source = f"{mlflow.get_run(run_id).info.artifact_uri}/model"
    client.create_model_version(name, source, run_id=run_id, tags=tags)


def log_meter(state: MeterState, decision: Decision) -> None:
    """From the callback: the metered figures and the verdict into the run already active in this process (the
    Trainer's own MLflowCallback opens it); nothing happens without one."""
    mlflow = sys.modules.get("mlflow")
    if mlflow is None or mlflow.active_run() is None:
        return
    run_flops: Any = state.flops.regulatory if state.flops else None
    mlflow.log_metrics(decision_metrics(decision, run_flops))
    mlflow.set_tags(decision_tags(decision))
