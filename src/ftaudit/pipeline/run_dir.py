"""The run directory: one per run, with a documented layout.

    RUN_DIR/
      config.yaml          the validated config (defaults filled in, paths absolute) — what `--resume` reads
      run_record.json      the RunRecord, rewritten atomically after every stage
      ftaudit_meter.json   the compute meter's state (FlopsMeterCallback), persisted every N steps
      flops_meter.json     the same figures under the seed meter's field names (docs/regulation.md §6)
      checkpoints/         Trainer checkpoints (checkpoint-<step>/, each with the meter state): the resume points
      model/               the fine-tuned model, or the adapter for LoRA/QLoRA (+ ftaudit_lineage.json)
      evaluation/          what the evaluate stage wrote (when it ran)
      docs/                what the document stage wrote (ftaudit.reporting; when it ran)
      logs/                train.jsonl (one line per Trainer log), stages.jsonl (timings), pipeline.log

A directory is "a run of the same config" when its config.yaml has the same digest (RunConfig.digest()).
Only that directory may be reused (resumed); anything else that exists and is not empty is left untouched.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from ftaudit.errors import BadInput
from ftaudit.io import atomic_write_text
from ftaudit.pipeline.config import RunConfig, config_from_dict

CONFIG_FILE = "config.yaml"
RECORD_FILE = "run_record.json"
METER_FILE = "ftaudit_meter.json"
SEED_METER_FILE = "flops_meter.json"
CHECKPOINTS = "checkpoints"
MODEL = "model"
EVALUATION = "evaluation"
DOCUMENTS = "docs"
LOGS = "logs"


@dataclass(frozen=True)
class RunDir:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / CONFIG_FILE

    @property
    def record(self) -> Path:
        return self.root / RECORD_FILE

    @property
    def meter(self) -> Path:
        return self.root / METER_FILE

    @property
    def checkpoints(self) -> Path:
        return self.root / CHECKPOINTS

    @property
    def model(self) -> Path:
        return self.root / MODEL

    @property
    def logs(self) -> Path:
        return self.root / LOGS

    @property
    def evaluation(self) -> Path:
        return self.root / EVALUATION

    @property
    def documents(self) -> Path:
        return self.root / DOCUMENTS

    def last_checkpoint(self) -> Path | None:
        """The newest complete checkpoint. The Trainer writes trainer_state.json last but not atomically: a kill
        (a spot interruption) in the middle of it leaves a checkpoint that cannot be resumed, so it must parse."""
        if not self.checkpoints.is_dir():
            return None
        done = []
        for d in self.checkpoints.glob("checkpoint-*"):
            step = d.name.rpartition("-")[2]
            if step.isdigit() and _parses((d / "trainer_state.json")):
                done.append((int(step), d))
        return max(done)[1] if done else None

    def stored_config(self) -> RunConfig:
        try:
            data = yaml.safe_load(self.config.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise BadInput(f"{self.root}: not a run directory (no {CONFIG_FILE}); pass a directory made by "
                           "`ftaudit train`") from None
        except (OSError, yaml.YAMLError) as exc:
            raise BadInput(f"{self.config}: cannot read ({exc.__class__.__name__})") from None
        cfg = config_from_dict(data, base_dir=self.root, source=str(self.config))
        return cfg


def check_output_dir(cfg: RunConfig, root: Path) -> str:
    """Decide what to do with the output directory, without touching it.

    Returns "new" (absent or empty) or "same" (a run of this very config: it may be resumed).
    Raises BadInput (exit 1) for anything else — the directory is left as it is.
    """
    if root.exists() and not root.is_dir():
        raise BadInput(f"output {root} exists and is not a directory; choose another output_dir")
    if not root.exists() or not any(root.iterdir()):
        return "new"
    rd = RunDir(root)
    if not rd.config.is_file():
        raise BadInput(f"output directory {root} exists, is not empty and is not an ftaudit run; "
                       "choose another output_dir (nothing was changed)")
    try:
        theirs = rd.stored_config().digest()
    except BadInput:
        theirs = None
    if theirs != cfg.digest():
        raise BadInput(f"output directory {root} holds a run of a different config; choose another output_dir "
                       "or resume that run with `ftaudit train --resume` (nothing was changed)")
    return "same"


def write_config(rd: RunDir, cfg: RunConfig) -> None:
    atomic_write_text(rd.config, yaml.safe_dump(cfg.as_dict(), sort_keys=False, allow_unicode=True))


def append_log(rd: RunDir, name: str, obj: dict) -> None:
    """Append one JSON line to logs/<name> (logs are append-only; a torn last line is tolerated by readers)."""
    rd.logs.mkdir(parents=True, exist_ok=True)
    with open(rd.logs / name, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(obj, default=str) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _parses(path: Path) -> bool:
    try:
        json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return True
