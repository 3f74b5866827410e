"""The file of the AWS "Fine-Tuning FLOPs Meter" (the SageMaker sample ftaudit replaces; what it does and where it
goes wrong: docs/regulation.md §6): `flops_meter.json`, with that meter's field names and environment variables.

Pipelines built on that meter read this file; we write the same names, computed our way:
  Flops_architecture  our metered regulatory FLOP (after PEFT wrapping, attention term, padding as executed),
                      not (4·N_total + 2·N_trainable)·tokens;
  exceeds_30pct       kept under its old name for compatibility, but computed with the corrected rule: the
                      lineage's cumulative compute exceeds ONE THIRD of the original's (guidelines §3.2), or the
                      fallback thresholds when the original is unknown (via `ftaudit.regulation.decision.decide`);
  pct_of_pretrain     cumulative lineage FLOP / Flops_original × 100 (the lineage total is what the rule judges);
  Flops_hardware      Σ over all GPUs of all nodes (the seed covered one node).
Environment: PRETRAIN_FLOPS, FLOPS_METER_OUT, FLOPS_METER_NVML (0/1), PEAK_TFLOPS_PER_GPU.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from ftaudit.compute.meter import MeterState
from ftaudit.errors import BadInput
from ftaudit.io import atomic_write_json
from ftaudit.numbers import parse_number

SEED_FILENAME = "flops_meter.json"
SAGEMAKER_OUTPUT = "/opt/ml/output"


def peak_override_from_env(env: dict[str, str] | None = None) -> float | None:
    raw = (env if env is not None else os.environ).get("PEAK_TFLOPS_PER_GPU", "").strip()
    return parse_number(raw, "PEAK_TFLOPS_PER_GPU") if raw else None


def nvml_enabled_from_env(env: dict[str, str] | None = None) -> bool | None:
    """True/False when FLOPS_METER_NVML says so; None = not set (sample when a GPU is there)."""
    raw = (env if env is not None else os.environ).get("FLOPS_METER_NVML", "").strip().lower()
    if raw == "":
        return None
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise BadInput(f"FLOPS_METER_NVML={raw!r} must be 0 or 1")


def is_sagemaker(env: dict[str, str] | None = None) -> bool:
    env = env if env is not None else os.environ
    return bool(env.get("SM_TRAINING_ENV") or env.get("TRAINING_JOB_NAME") or env.get("SM_OUTPUT_DIR"))


def meter_file_dir(default: str | Path, env: dict[str, str] | None = None) -> Path:
    env = env if env is not None else os.environ
    if env.get("FLOPS_METER_OUT"):
        return Path(env["FLOPS_METER_OUT"])
    if is_sagemaker(env):
        return Path(env.get("SM_OUTPUT_DIR") or SAGEMAKER_OUTPUT)
    return Path(default)


def check_writable(directory: str | Path, what: str) -> Path:
    """Fail before training, not after it: make the dir and write a probe file there."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".ftaudit-probe-"):
            pass
    except OSError as exc:
        raise BadInput(f"{what} {directory} is not writable ({exc.strerror}); choose a writable directory") from None
    return directory


def _sagemaker_job(env: dict[str, str]) -> tuple[str | None, str | None]:
    job, instance = env.get("TRAINING_JOB_NAME"), env.get("SM_CURRENT_INSTANCE_TYPE")
    if env.get("SM_TRAINING_ENV"):
        try:
            doc = json.loads(env["SM_TRAINING_ENV"])
            job = job or doc.get("job_name")
            instance = instance or doc.get("current_instance_type")
        except ValueError:
            pass
    return job, instance


def decision_for(state: MeterState):
    """The regulation module's judgement of the lineage's cumulative compute, on the original the meter recorded
    (resolved once by ftaudit.regulation.resolve_original; the registry by model name when none was recorded)."""
    from ftaudit.regulation import decide, resolve_original

    return decide(state.lineage.cumulative_flops, state.original or resolve_original(model_id=state.model.name))


def meter_file_document(state: MeterState, *, num_epochs: float | None, env: dict[str, str] | None = None,
                  decision: Any = None) -> dict[str, Any]:
    env = env if env is not None else dict(os.environ)
    job, instance = _sagemaker_job(env)
    original = decision.original.flops if decision is not None else None
    cumulative = state.lineage.cumulative_flops
    hw = state.hardware
    gpus = hw.gpus if hw else []
    doc: dict[str, Any] = {
        "N_total": state.model.n_parameters,
        "N_trainable": state.model.n_trainable_parameters,
        "tokens_processed": state.counts.tokens_effective,
        "Flops_architecture": state.regulatory_flops if state.flops else None,
        "Flops_hardware": hw.flops_measured_utilisation if hw else None,
        "Flops_original": original,
        "pct_of_pretrain": (100.0 * cumulative / original) if original else None,
        "exceeds_30pct": (bool(decision.exceeds_threshold) if decision is not None else None),
        "threshold_type": (decision.threshold_basis if decision is not None else None),
        "threshold_value": (decision.threshold_flops if decision is not None else None),
        "model_name": state.model.name,
        "num_epochs": num_epochs,
        "training_duration_seconds": state.training_seconds,
        "gpu_size": (hw.n_gpus if hw and hw.n_gpus else state.world_size),
        "gpu_rank": 0,
        "training_job_name": job,
        "instance_type": instance,
        "gpu_name": (gpus[0].name if gpus else None),
        # Ours, beside the seed's names:
        "ftaudit_note": ("exceeds_30pct is computed with the one-third rule (guidelines §3.2) on the lineage's "
                         "cumulative compute, not 30 %; Flops_architecture counts attention, LoRA after wrapping "
                         "and padding as executed"),
        "tokens_executed": state.counts.tokens_executed,
        "Flops_executed": state.flops.executed.total if state.flops else None,
        "Flops_effective": state.flops.effective.total if state.flops else None,
        "Flops_recompute_excluded": state.flops.executed.recompute if state.flops else None,
        "Flops_hardware_upper_bound": hw.flops_upper_bound if hw else None,
        "Flops_lineage_cumulative": cumulative,
        "lineage_id": state.lineage.lineage_id,
        "run_id": state.run_id,
        "energy_kwh": state.energy.kwh if state.energy else None,
        "energy_method": state.energy.method if state.energy else None,
        "role": (decision.role if decision is not None else None),
        "rule_citation": (decision.citation if decision is not None else None),
    }
    return doc


def write_meter_file(directory: str | Path, doc: dict[str, Any]) -> Path:
    return atomic_write_json(Path(directory) / SEED_FILENAME, doc)
