"""The evaluate stage's adapter: what the run knows (its config, run directory, tokenizer, base model) becomes the
typed arguments of `ftaudit.evaluation.evaluate_for_record`.

    canaries_for_training(records, options, out_dir)   before tokenising, when run.yaml has evaluation.canaries
    evaluate_run(run) -> EvaluationEvidence             the evaluate stage; also writes evaluation/evaluation.json

A failed gate does not raise here (the record must be saved first): the pipeline calls
`ftaudit.evaluation.gates.raise_for_gates(run.record.evaluation)` after saving the record, which exits 6.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ftaudit.evaluation.evidence import EvaluationEvidence
from ftaudit.evaluation.gates import CanaryOptions
from ftaudit.evaluation.memorisation import CANARY_FILE
from ftaudit.io import atomic_write_text

if TYPE_CHECKING:
    from ftaudit.pipeline.run import Run

EVIDENCE_FILE = "evaluation.json"


def canaries_for_training(records: list[dict], options: CanaryOptions, out_dir: str | Path) -> list[dict]:
    """The records with canaries inserted; the manifest goes to OUT_DIR/canaries.json."""
    from ftaudit.evaluation.memorisation import insert_canaries

    out, manifest = insert_canaries(records, n_inserted=options.inserted, n_unseen=options.unseen,
                                    repeats=options.repeats, digits=options.digits, seed=options.seed)
    atomic_write_text(Path(out_dir) / CANARY_FILE, manifest.model_dump_json(indent=2) + "\n")
    return out


def _read(paths: list[Path], what: str) -> tuple[list[dict], str]:
    from ftaudit.evaluation.probesets import read_jsonl

    rows: list[dict] = []
    for p in paths:
        rows += read_jsonl(p, what=what)[0]
    return rows, ", ".join(str(p) for p in paths)


def evaluate_run(run: Run) -> EvaluationEvidence:
    """Base vs tuned on the run's held-out data, decoded the way the model was trained."""
    import torch

    from ftaudit.evaluation.memorisation import CanaryManifest
    from ftaudit.evaluation.probesets import task_rows
    from ftaudit.evaluation.suite import evaluate_for_record

    cfg = run.cfg
    config = cfg.evaluation
    if "prompt_format" not in config.decoding.model_fields_set:
        # the way the model was trained: pipeline.data formats with the chat template when asked and present
        chat = cfg.training.use_chat_template and getattr(run.tokenizer, "chat_template", None)
        decoding = config.decoding.model_copy(update={"prompt_format": "chat" if chat else "raw"})
        config = config.model_copy(update={"decoding": decoding})
    src = run.source
    base = str(Path(src.location) / src.gguf_file) if src.gguf_file else str(src.location)

    task, task_src = _read([cfg.resolve(d.path) for d in cfg.eval_datasets], "eval data")
    task = task_rows(task, cfg.eval_datasets[0].prompt_field, cfg.eval_datasets[0].completion_field)
    train, train_src = _read([cfg.resolve(d.path) for d in cfg.datasets], "training data")
    manifest_path = run.rd.evaluation / CANARY_FILE
    canaries = CanaryManifest.model_validate_json(manifest_path.read_text()) if manifest_path.is_file() else None
    quantization, dtype = None, None
    if cfg.method.type == "qlora":  # the adapter was trained on the 4-bit base: evaluate it on that base
        from ftaudit.pipeline.models import qlora_kwargs

        dtype, quantization = cfg.base_model.dtype, qlora_kwargs(cfg.base_model.dtype)
    evidence = evaluate_for_record(
        base, str(run.rd.model), config=config, task_records=task, training_records=train, canaries=canaries,
        task_source=task_src, training_source=train_src, dtype=dtype, quantization=quantization,
        device="cuda" if torch.cuda.is_available() else "cpu",
    )
    atomic_write_text(run.rd.evaluation / EVIDENCE_FILE, evidence.model_dump_json(indent=2) + "\n")
    return evidence
