"""The evaluate stage of `ftaudit train`: adapts the pipeline's Run to the evaluation suites.

    evaluate_for_record(run) -> EvaluationEvidence      (called by ftaudit.pipeline.run.evaluate)
    canaries_for_training(records, options, out_dir)     (called by the pipeline before training, when
                                                          run.yaml has evaluation.canaries)

The evidence is also written to RUN_DIR/evaluation/evaluation.json. A failed gate does not raise here (the record
must be saved first): the pipeline calls `ftaudit.evaluation.gates.raise_for_gates(run.record.evaluation)` after
saving the record, which exits 6 (errors.EVALUATION_GATE_FAILED).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ftaudit.errors import BadInput
from ftaudit.evaluation.evidence import EvaluationEvidence
from ftaudit.io import atomic_write_text

EVIDENCE_FILE = "evaluation.json"
CANARY_FILE = "canaries.json"


class CanaryOptions(BaseModel):
    """`evaluation.canaries` in run.yaml."""

    model_config = ConfigDict(extra="forbid")
    inserted: int = Field(4, ge=1)
    unseen: int = Field(4, ge=1)
    repeats: int = Field(10, ge=1)
    digits: int = Field(9, ge=4, le=30)
    seed: int = 0


def _options(run) -> dict[str, Any]:
    return dict(getattr(run.cfg, "evaluation", None) or {})


def canaries_for_training(records: list[dict], options: dict[str, Any] | None, out_dir: str | Path) -> list[dict]:
    """Insert canaries when `options` (the run config's `evaluation` section) asks for them; writes the manifest
    to OUT_DIR/canaries.json and returns the records to train on. Without `canaries` in options: records as given."""
    from ftaudit.evaluation.memorisation import insert_canaries

    raw = (options or {}).get("canaries")
    if not raw:
        return records
    try:
        opts = CanaryOptions.model_validate(raw if isinstance(raw, dict) else {})
    except ValidationError as exc:
        err = exc.errors()[0]
        raise BadInput(f"evaluation.canaries.{'.'.join(map(str, err['loc']))}: {err['msg']}") from None
    out, manifest = insert_canaries(
        records,
        n_inserted=opts.inserted,
        n_unseen=opts.unseen,
        repeats=opts.repeats,
        digits=opts.digits,
        seed=opts.seed,
    )
    atomic_write_text(Path(out_dir) / CANARY_FILE, manifest.model_dump_json(indent=2) + "\n")
    return out


def _read(paths: list[Path], what: str) -> tuple[list[dict], str]:
    from ftaudit.evaluation.probesets import read_jsonl

    rows: list[dict] = []
    for p in paths:
        rows += read_jsonl(p, what=what)[0]
    return rows, ", ".join(str(p) for p in paths)


def _field_map(rows: list[dict], spec) -> list[dict]:
    """Rename the configured prompt/completion fields to the names the suites read."""
    pf, cf = getattr(spec, "prompt_field", "prompt"), getattr(spec, "completion_field", "completion")
    if (pf, cf) == ("prompt", "completion"):
        return rows
    return [{"prompt": r.get(pf), "completion": r.get(cf)} if pf in r else r for r in rows]


def evaluate_for_record(run) -> EvaluationEvidence:
    from ftaudit.evaluation.gates import parse_config
    from ftaudit.evaluation.memorisation import CanaryManifest
    from ftaudit.evaluation.suite import evaluate_for_record as evaluate

    cfg = run.cfg
    opts = _options(run)
    opts.pop("canaries", None)
    decoding = dict(opts.get("decoding") or {})
    if "prompt_format" not in decoding:
        # evaluate the way the model was trained (pipeline.data formats with the chat template when asked and present)
        uses_chat = getattr(cfg.training, "use_chat_template", False) and getattr(
            getattr(run, "tokenizer", None), "chat_template", None
        )
        decoding["prompt_format"] = "chat" if uses_chat else "raw"
    opts["decoding"] = decoding
    src = run.source
    base = str(Path(src.location) / src.gguf_file) if getattr(src, "gguf_file", None) else str(src.location)
    tuned = str(run.rd.model)

    task, task_src = _read([cfg.resolve(d.path) for d in cfg.eval_datasets], "eval data")
    task = _field_map(task, cfg.eval_datasets[0])
    train, train_src = _read([cfg.resolve(d.path) for d in cfg.datasets], "training data")
    manifest_path = run.rd.evaluation / CANARY_FILE
    canaries = CanaryManifest.model_validate_json(manifest_path.read_text()) if manifest_path.is_file() else None
    if "suites" not in opts:
        opts["suites"] = ["quality", "bias", "unexpected", "memorisation"]
    config = parse_config(opts, where="run config evaluation")
    import torch

    quantization, dtype = None, None
    if cfg.method.type == "qlora":  # the adapter was trained on the 4-bit base: evaluate it on that base
        from ftaudit.pipeline.models import qlora_kwargs

        dtype, quantization = cfg.base_model.dtype, qlora_kwargs(cfg.base_model.dtype)
    evidence = evaluate(
        base,
        tuned,
        config=config,
        task_records=task,
        training_records=train,
        canaries=canaries,
        task_source=task_src,
        training_source=train_src,
        dtype=dtype,
        quantization=quantization,
        device="cuda" if torch.cuda.is_available() else "cpu",
    )
    atomic_write_text(run.rd.evaluation / EVIDENCE_FILE, evidence.model_dump_json(indent=2) + "\n")
    return evidence
