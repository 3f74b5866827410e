"""Preflight: everything that can be checked before the model's weights are loaded.

Validates the config and the data, tokenises the data (the real token counts), estimates the compute of the whole
planned run on those token counts, adds the lineage's earlier compute, and asks `ftaudit.regulation.decide` what
that makes the organisation. A plan that crosses the threshold of a role the config does not accept is refused
here (exit 3), before any weights are loaded (the guidelines: estimate compute before training).
"""

from __future__ import annotations

import math
import os
import random
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ftaudit.errors import BadInput, ComputeGateRefused, first_line
from ftaudit.pipeline.config import RunConfig
from ftaudit.pipeline.data import TokenizedSet


class Plan(BaseModel):
    """The compute plan for the whole run, counted on the tokenised data (goes into compute.estimate)."""

    model_config = ConfigDict(extra="forbid")

    kind: str = "ftaudit.pipeline.plan/1"
    method: str = Field(description="The fine-tuning method as the estimator describes it.")
    setup: dict[str, Any]
    n_parameters: int
    n_trainable_parameters: int
    train_records: int
    train_tokens_per_epoch: int = Field(description="Non-padding tokens of one pass over the tokenised data.")
    truncated_records: int
    world_size: int
    micro_batch_size: int
    gradient_accumulation_steps: int
    optimizer_steps: int
    planned_sequences: int
    planned_tokens_effective: int
    planned_tokens_executed: int = Field(description="Padding included: micro-batches padded to their longest "
                                                     "record, simulated with the run's seed.")
    effective_flops: float
    executed_flops: float
    recompute_flops: float = Field(description="Gradient-checkpointing recompute: reported, not counted "
                                               "(guidelines Annex A.1).")
    planned_flops: float = Field(description="The policy's larger of executed and effective (docs/design.md) plus "
                                             "the objective's reference and generation: the regulatory figure.")
    prior_lineage_flops: float = Field(description="Regulatory FLOP of earlier runs of the lineage.")
    lineage_total_flops: float = Field(description="prior + planned: the decision's input.")
    objective: str = Field("sft", description="sft | dpo | grpo")
    breakdown: dict[str, float] = Field(default_factory=dict, description="FLOP per role: the policy's training "
                                        "passes, and the reference and generation forwards the objective adds.")
    accepted_limit_flops: float | None = None
    warnings: list[str] = Field(default_factory=list)
    assumptions: list[str] = Field(default_factory=list)


def world_size() -> int:
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def training_setup(cfg: RunConfig):
    """The estimator's TrainingSetup for the configured method."""
    from ftaudit.compute.flops import TrainingSetup

    m = cfg.method
    gc = cfg.training.gradient_checkpointing
    if m.type in ("lora", "qlora"):
        targets = m.lora.target_modules
        return TrainingSetup(method="lora", lora_r=m.lora.r,
                             lora_target_modules=("all-linear",) if targets == "all-linear" else tuple(targets),
                             trainable_patterns=tuple(m.lora.modules_to_save),
                             quant_bits=4 if m.type == "qlora" else None, gradient_checkpointing=gc,
                             attention_kernel="sdpa")
    if m.type == "partial":
        return TrainingSetup(method="partial", trainable_patterns=tuple(m.trainable), gradient_checkpointing=gc,
                             attention_kernel="sdpa")
    return TrainingSetup(method="full", gradient_checkpointing=gc, attention_kernel="sdpa")


# The plan simulates at most this many micro-batches and scales the totals to the rest (a 1e14-step config answers
# at once); a real run of that size is metered exactly anyway.
SIMULATED_MICRO_BATCHES = 200_000


def planned_lengths(units: list[list[int]], per_micro: int, cfg: RunConfig,
                    ws: int) -> tuple[list[list[int]], int, int]:
    """The micro-batches (lists of sequence lengths) the run will execute, its optimizer steps, and the number of
    micro-batches in all (the list holds at most SIMULATED_MICRO_BATCHES of them).

    A unit is one record's rows (SFT one sequence, DPO chosen and rejected, GRPO a prompt's completions); a
    micro-batch takes `per_micro` units. Mirrors the Trainer: per epoch a seeded shuffle, `gradient_accumulation_steps`
    micro-batches per optimizer step on each process; `max_steps` overrides epochs.
    """
    t = cfg.training
    n = len(units)
    per_step = per_micro * t.gradient_accumulation_steps * ws
    steps_per_epoch = max(1, math.ceil(n / per_step))
    steps = t.max_steps or max(1, math.ceil(t.epochs * steps_per_epoch))
    rng = random.Random(t.seed)
    batches: list[list[int]] = []
    order: list[int] = []
    total = steps * t.gradient_accumulation_steps * ws
    for _ in range(min(total, SIMULATED_MICRO_BATCHES)):
        if len(order) < per_micro:
            fresh = list(range(n))
            rng.shuffle(fresh)
            order += fresh
        batches.append([length for i in order[:per_micro] for length in units[i]])
        del order[:per_micro]
    return batches, steps, total


def _units(data: TokenizedSet, cfg: RunConfig) -> tuple[list[list[int]], int]:
    """The rows each record becomes in training, and records per micro-batch."""
    t = cfg.training
    lengths = data.lengths
    if t.objective == "dpo":  # chosen and rejected of one record run in the same micro-batch
        return [lengths[i:i + 2] for i in range(0, len(lengths), 2)], t.per_device_batch_size
    if t.objective == "grpo":  # the batch counts completions: per_device_batch_size / num_generations prompts
        g, c = t.grpo.num_generations, t.grpo.max_completion_length
        if t.per_device_batch_size % g:
            raise BadInput(f"training.per_device_batch_size {t.per_device_batch_size} must be a multiple of "
                           f"training.grpo.num_generations {g} (GRPO batches whole groups of completions)")
        return [[n + c] * g for n in lengths], t.per_device_batch_size // g
    return [[n] for n in lengths], t.per_device_batch_size


def _objective_lines(fm, data: TokenizedSet, cfg: RunConfig, batches: list[list[int]], scale: float,
                     model_config: dict) -> tuple[dict[str, float], list[str]]:
    """Reference and generation FLOP the objective adds to the policy's training passes (forward only)."""
    from ftaudit.compute.estimate import rollout_forward_flops
    from ftaudit.compute.flops import TrainingSetup, build_flop_model

    t = cfg.training
    if t.objective == "sft":
        return {}, []
    ref = build_flop_model(model_config, TrainingSetup(method="full", attention_kernel=fm.setup.attention_kernel))
    padded = [max(b) for b in batches for _ in b]
    lines: dict[str, float] = {}
    notes: list[str] = []
    if t.objective == "dpo":
        if t.dpo.reference == "live":
            lines["reference"] = ref.batch(padded).forward * scale
            notes.append("DPO: the reference (the base model) runs one forward beside every policy micro-batch.")
        else:
            lines["reference"] = ref.batch(data.lengths).forward
            notes.append("DPO: the reference log-probabilities are computed once over the data before training.")
        return lines, notes
    c = t.grpo.max_completion_length
    lines["generation"] = math.fsum(rollout_forward_flops(fm, max(b) - c, c) * len(b) for b in batches) * scale
    notes.append(f"GRPO: {t.grpo.num_generations} completions of {c} tokens per prompt (the maximum: an upper "
                 "bound), KV-cached decoding from prompts left-padded per micro-batch; discarded ones count too.")
    if t.grpo.beta > 0:
        lines["reference"] = ref.batch(padded).forward * scale
        notes.append("GRPO beta > 0: the reference (the base model) runs one forward over every completion.")
    return lines, notes


def plan_compute(model_config: dict, data: TokenizedSet, cfg: RunConfig, prior_flops: float) -> Plan:
    from ftaudit.compute.flops import build_flop_model

    setup = training_setup(cfg)
    fm = build_flop_model(model_config, setup)
    ws = world_size()
    units, per_micro = _units(data, cfg)
    batches, steps, total = planned_lengths(units, per_micro, cfg, ws)
    scale = total / len(batches)
    seqs = [s for b in batches for s in b]
    eff = fm.batch(seqs)
    # padding is executed compute: each micro-batch runs at its longest record's length
    exe = fm.batch([max(b) for b in batches for _ in b])
    policy = max(eff.training, exe.training) * scale
    lines, notes = _objective_lines(fm, data, cfg, batches, scale, model_config)
    planned = policy + math.fsum(lines.values())
    assumptions = ["Architecture-based count on the tokenised training data (guidelines Annex A.2); padding "
                   "simulated from seeded micro-batches; the runtime meter measures the real figure.", *notes]
    if scale > 1:
        assumptions.append(f"{len(batches):,} of the run's {total:,} micro-batches simulated; the totals are scaled "
                           f"by {scale:.6g} (the padding of the simulated ones stands for the rest).")
    warnings = list(fm.warnings)
    if data.n_truncated:
        warnings.append(f"{data.n_truncated} of {len(data)} training records are longer than "
                        f"max_seq_len={cfg.training.max_seq_len} and were truncated")
    if data.n_no_target:
        warnings.append(f"{data.n_no_target} records have no target tokens left after truncation; they train nothing")
    window = fm.architecture.context_window
    if window and cfg.training.max_seq_len > window:
        warnings.append(f"training.max_seq_len={cfg.training.max_seq_len:,} is longer than the model's context "
                        f"window ({window:,} positions): records longer than {window:,} tokens will fail in training")
    warnings += sharding_warnings(cfg)
    return Plan(
        method=fm.method, setup={k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(setup).items()},
        n_parameters=fm.n_parameters, n_trainable_parameters=fm.n_trainable_parameters,
        train_records=len(data.examples) or len(data), train_tokens_per_epoch=sum(data.lengths),
        truncated_records=data.n_truncated,
        world_size=ws, micro_batch_size=cfg.training.per_device_batch_size,
        gradient_accumulation_steps=cfg.training.gradient_accumulation_steps, optimizer_steps=steps,
        planned_sequences=round(len(seqs) * scale), planned_tokens_effective=round(sum(seqs) * scale),
        planned_tokens_executed=round(sum(max(b) * len(b) for b in batches) * scale),
        effective_flops=eff.training * scale, executed_flops=exe.training * scale,
        recompute_flops=exe.recompute * scale, planned_flops=planned, prior_lineage_flops=prior_flops,
        lineage_total_flops=prior_flops + planned, warnings=warnings, assumptions=assumptions,
        objective=cfg.training.objective, breakdown={"policy": policy, **lines},
    )


def check_can_create(directory: Path, what: str) -> None:
    """The directory exists and is writable, or its nearest existing ancestor is a writable directory: checked
    before anything is created, so a run that cannot write its outputs fails in preflight (and `--plan`), not
    after training, and leaves no half-made run directory behind."""
    probe = directory
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise BadInput(f"{what} {directory}: {probe} is a file, not a directory; choose another path")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise BadInput(f"{what} {directory}: {probe} is not writable; choose a writable path")


def check_outputs(cfg: RunConfig, run_dir: Path) -> None:
    """Every place the run writes to: the run directory and the seed meter's FLOPS_METER_OUT."""
    from ftaudit.compute.aws_meter_file import meter_file_dir

    check_can_create(run_dir, "output directory")
    seed = meter_file_dir(run_dir)
    if seed != run_dir:
        check_can_create(seed, "FLOPS_METER_OUT")


def original_compute(cfg: RunConfig):
    """The original model's training compute (ftaudit.regulation.resolve_original: config → PRETRAIN_FLOPS →
    registry → unknown). An explicit registry_id that the registry lacks is a config error, not "unknown"."""
    from ftaudit.regulation import resolve_original

    p = cfg.compute_policy
    return resolve_original(
        flops=p.original_flops, status=p.original_flops_status,
        source=(p.original_source or "run config compute_policy.original_flops") if p.original_flops else None,
        systemic_risk=p.original_systemic_risk, is_gpai=p.base_is_gpai, estimate=p.original_estimate,
        model_id=cfg.base_model.registry_id or cfg.base_model.id, strict_id=bool(cfg.base_model.registry_id))


def prior_lineage(cfg: RunConfig) -> tuple[float, Any]:
    """(earlier FLOP of the lineage, the lineage file found) from `parent`; (0, None) for a fresh lineage."""
    if not cfg.parent:
        return 0.0, None
    parent = cfg.resolve(cfg.parent)
    if not parent.exists():
        raise BadInput(f"parent {parent} does not exist")
    from ftaudit.compute.meter import cumulative, find_lineage

    found = find_lineage([parent, parent / "model"])
    if found is None:
        raise BadInput(f"parent {parent} holds no ftaudit_lineage.json: it was not written by a metered run, so "
                       "its compute is unknown; give the run dir, adapter or model dir of a metered run")
    return float(cumulative(found[1].runs)), found


def gate(cfg: RunConfig, plan: Plan, decision) -> list[str]:
    """Refuse (ComputeGateRefused, exit 3) or return warnings. Citations: guidelines §3.2, Art. 51(2), Art. 53–55."""
    p = cfg.compute_policy
    limit = decision.accepted_limit_flops
    used = plan.lineage_total_flops
    if not decision.within_accepted_role:
        duties = ", ".join(dict.fromkeys(o.article for o in decision.obligations)) or "none listed"
        raise ComputeGateRefused(
            f"compute gate: the planned lineage compute {used:.2g} FLOP (this run {plan.planned_flops:.2g}, "
            f"earlier runs {plan.prior_lineage_flops:.2g}) exceeds {decision.threshold_flops:.2g} FLOP "
            f"({decision.citation}); it would make you {decision.role} with obligations {duties}, but "
            f"compute_policy.accepted_role is {p.accepted_role}. Training was not started; reduce the data, "
            "epochs or steps, or accept that role in the config")
    warnings: list[str] = []
    if limit and used >= p.near_fraction * limit:
        msg = (f"the planned lineage compute {used:.2g} FLOP is {used / limit:.0%} of the {limit:.2g} FLOP limit "
               f"of the accepted role {p.accepted_role}")
        if p.near_threshold == "stop":
            raise ComputeGateRefused(f"compute gate: {msg}, above near_fraction={p.near_fraction} with "
                                     "near_threshold=stop; training was not started")
        warnings.append(msg)
    if decision.margin_straddles:
        warnings.append("the ±30 % estimation margin of guidelines Annex A.2 straddles the threshold: "
                        "document the estimate carefully")
    return warnings


def validate_training_args(cfg: RunConfig) -> None:
    """Distribution settings that cannot work, and extra_args that are not TrainingArguments fields: config errors
    (exit 1) before any weights are loaded, not a crash mid-run."""
    t = cfg.training
    if t.fsdp and t.deepspeed is not None:
        raise BadInput("training.fsdp and training.deepspeed are both set; choose one of them")
    if isinstance(t.fsdp_config, str):
        _json_config(cfg, "training.fsdp_config", t.fsdp_config)
    if t.deepspeed is not None:
        ds = _json_config(cfg, "training.deepspeed", t.deepspeed) if isinstance(t.deepspeed, str) else t.deepspeed
        _check_zero3_save(cfg, ds)
        _check_deepspeed()
    if not t.extra_args:
        return
    import dataclasses

    from transformers import TrainingArguments

    known = {f.name for f in dataclasses.fields(TrainingArguments)}
    unknown = sorted(set(cfg.training.extra_args) - known)
    if unknown:
        raise BadInput(f"training.extra_args: {', '.join(unknown)} not TrainingArguments field(s)")


def _json_config(cfg: RunConfig, key: str, value: str) -> Any:
    import json

    path = cfg.resolve(value)
    if not path.is_file():
        raise BadInput(f"{key}: {path} not found (give a JSON file, relative to the run config, or a mapping)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise BadInput(f"{key}: {path} is not a JSON file ({first_line(exc)})") from exc


def _check_zero3_save(cfg: RunConfig, ds: Any) -> None:
    """ZeRO-3 partitions the weights; without the gather flag the Trainer saves a full or partial fine-tune only as
    ZeRO shards (RUN_DIR/model would hold no loadable weights to fingerprint and evaluate). LoRA adapters are saved
    either way."""
    zero = ds.get("zero_optimization") if isinstance(ds, dict) else None
    if not isinstance(zero, dict) or str(zero.get("stage")) != "3" or cfg.method.type in ("lora", "qlora"):
        return
    if not any(zero.get(k) is True or str(zero.get(k)).lower() == "true"
               for k in ("stage3_gather_16bit_weights_on_model_save", "stage3_gather_fp16_weights_on_model_save")):
        raise BadInput("training.deepspeed: ZeRO stage 3 with method.type "
                       f"{cfg.method.type} saves the model only as ZeRO shards; set "
                       "zero_optimization.stage3_gather_16bit_weights_on_model_save: true so that RUN_DIR/model "
                       "holds loadable weights")


def _check_deepspeed() -> None:
    import importlib.util

    if importlib.util.find_spec("deepspeed") is None:
        raise BadInput("training.deepspeed is set but DeepSpeed is not installed: `pip install deepspeed` (on a "
                       "machine without GPUs it runs on CPU with gloo and compiles one C++ extension on first use), "
                       "or remove training.deepspeed")
    try:
        import deepspeed  # noqa: F401 - transformers imports it later; a broken install is one line here
    except Exception as exc:  # noqa: BLE001
        raise BadInput(f"training.deepspeed is set but DeepSpeed cannot be imported ({type(exc).__name__}: "
                       f"{first_line(exc)}); repair the install (`ds_report` shows what is missing) or remove "
                       "training.deepspeed") from exc


def sharding_warnings(cfg: RunConfig) -> list[str]:
    """What the run's distribution settings will not do here (goes into the plan's warnings)."""
    from ftaudit.pipeline.train import fsdp_applies

    if cfg.training.fsdp and not fsdp_applies():
        return ["training.fsdp is set, but Accelerate shards with FSDP only on GPUs: on this machine (no CUDA) the "
                "run trains unsharded, with DDP when several processes run (each holds the whole model); the "
                "counted compute is the same"]
    return []
