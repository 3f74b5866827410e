"""The training stage: a Hugging Face `Trainer` with ftaudit's compute meter and the compute gate.

The Trainer owns distribution (torchrun / `accelerate launch`: DDP, FSDP and DeepSpeed configs pass through to
TrainingArguments), checkpointing and resuming; ftaudit adds the meter (`FlopsMeterCallback`, summed over ranks,
reading parameter shapes through FSDP/ZeRO-3 sharding) and a gate: when the metered lineage compute reaches the
accepted limit, the Trainer saves a checkpoint and stops. DeepSpeed also runs on CPU (gloo); FSDP needs GPUs
(Accelerate 1.x shards only on accelerators), so on CPU an FSDP config trains unsharded and the plan says so.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from ftaudit.pipeline.config import RunConfig
from ftaudit.pipeline.data import TokenizedSet
from ftaudit.pipeline.run_dir import RunDir, append_log
from ftaudit.regulation import OriginalCompute
from ftaudit.regulation.figures import flops2

if TYPE_CHECKING:
    from ftaudit.integrations.hf import FlopsMeterCallback


@dataclass
class GateState:
    """What the runtime gate saw; `tripped` is set by the gate hook, read after training."""

    limit_flops: float | None
    stop_at_flops: float | None
    last_total: float = 0.0
    tripped: bool = False
    reason: str | None = None


@dataclass
class TrainOutcome:
    status: str  # "ok" | "stopped"
    reason: str | None
    global_step: int
    seconds: float
    resumed_from: str | None
    metrics: dict[str, Any] = field(default_factory=dict)
    meter: FlopsMeterCallback | None = None


class _Examples:
    def __init__(self, data: TokenizedSet):
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> dict:
        return {"input_ids": self.data.input_ids[i], "labels": self.data.labels[i]}


def make_collator(pad_id: int):
    import torch

    def collate(rows: list[dict]) -> dict:
        width = max(len(r["input_ids"]) for r in rows)
        ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        labels = torch.full((len(rows), width), -100, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            n = len(r["input_ids"])
            ids[i, :n] = torch.tensor(r["input_ids"])
            labels[i, :n] = torch.tensor(r["labels"])
            mask[i, :n] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}

    return collate


def _chat(tokenizer, cfg: RunConfig) -> bool:
    return cfg.training.use_chat_template and bool(getattr(tokenizer, "chat_template", None))


def trl_dataset(data: TokenizedSet, cfg: RunConfig, tokenizer):
    """The records in TRL's own format: conversational when the tokenizer has a chat template."""
    from datasets import Dataset

    chat = _chat(tokenizer, cfg)

    def turn(role: str, text: str):
        return [{"role": role, "content": text}] if chat else text

    if cfg.training.objective == "dpo":
        rows = [{"prompt": turn("user", ex.prompt), "chosen": turn("assistant", ex.completion),
                 "rejected": turn("assistant", ex.rejected)} for ex in data.examples]
    else:
        rows = [{"prompt": turn("user", ex.prompt), "reference": ex.completion} for ex in data.examples]
    return Dataset.from_list(rows)


def json_fields_reward(completions, reference, **_):
    """The task's own check as a reward: 0 without a JSON object, else the share of the reference's fields right
    (ftaudit.evaluation.quality.json_field_accuracy). A Python function: it costs no FLOP."""
    from ftaudit.evaluation.quality import json_field_accuracy

    out = []
    for completion, ref in zip(completions, reference, strict=True):
        text = completion[-1]["content"] if isinstance(completion, list) else completion
        ok, accuracy = json_field_accuracy(text, ref)
        out.append(float(accuracy or 0.0) if ok else 0.0)
    return out


def trl_trainer(cfg: RunConfig, model, tokenizer, data: TokenizedSet, args, callbacks):
    """TRL's DPOTrainer or GRPOTrainer on the (already PEFT-wrapped) model. The reference is the base model:
    with adapters, the model with its adapters off; in full fine-tuning a frozen copy made before training."""
    import copy

    dataset = trl_dataset(data, cfg, tokenizer)
    if cfg.training.objective == "dpo":
        from trl import DPOTrainer

        ref = None if hasattr(model, "peft_config") else copy.deepcopy(model).eval().requires_grad_(False)
        return DPOTrainer(model=model, ref_model=ref, args=args, train_dataset=dataset, processing_class=tokenizer,
                          callbacks=callbacks)
    from trl import GRPOTrainer

    return GRPOTrainer(model=model, reward_funcs=[json_fields_reward], args=args, train_dataset=dataset,
                       processing_class=tokenizer, callbacks=callbacks)


def training_arguments(cfg: RunConfig, rd: RunDir):
    """TrainingArguments for sft; TRL's DPOConfig or GRPOConfig (its subclasses) for dpo and grpo."""
    from transformers import TrainingArguments

    t = cfg.training
    kw: dict[str, Any] = dict(
        output_dir=str(rd.checkpoints),
        per_device_train_batch_size=t.per_device_batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        learning_rate=t.learning_rate,
        lr_scheduler_type=t.lr_scheduler,
        warmup_steps=t.warmup_steps,
        weight_decay=t.weight_decay,
        num_train_epochs=t.epochs,
        max_steps=t.max_steps or -1,
        seed=t.seed,
        data_seed=t.seed,
        save_strategy="steps",
        save_steps=t.save_steps,
        save_total_limit=t.save_total_limit,
        logging_steps=t.logging_steps,
        report_to="none",
        disable_tqdm=True,  # ftaudit draws its own progress line with the compute figure
        remove_unused_columns=False,
        dataloader_num_workers=0,
        dataloader_pin_memory=_cuda(),
        # without a GPU, say so: Accelerate then runs torchrun/accelerate-launch jobs as MULTI_CPU with gloo
        use_cpu=not _cuda(),
        ddp_find_unused_parameters=False,
        bf16=cfg.base_model.dtype == "bfloat16" and _cuda(),
        fp16=cfg.base_model.dtype == "float16" and _cuda(),
    )
    if t.gradient_checkpointing:
        kw.update(gradient_checkpointing=True, gradient_checkpointing_kwargs={"use_reentrant": False})
    if t.fsdp and fsdp_applies():  # without CUDA Accelerate would ignore FSDP (v2) or fail (v1): preflight warns
        kw["fsdp"] = t.fsdp
        if t.fsdp_config is not None:
            kw["fsdp_config"] = str(cfg.resolve(t.fsdp_config)) if isinstance(t.fsdp_config, str) else t.fsdp_config
    if t.deepspeed is not None:  # DeepSpeed also runs on CPU (its CPU accelerator, gloo)
        kw["deepspeed"] = str(cfg.resolve(t.deepspeed)) if isinstance(t.deepspeed, str) else t.deepspeed
    cls = TrainingArguments
    if t.objective == "dpo":
        from trl import DPOConfig as cls  # noqa: N813

        kw.update(beta=t.dpo.beta, precompute_ref_log_probs=t.dpo.reference == "precomputed",
                  max_length=t.max_seq_len, gradient_checkpointing=t.gradient_checkpointing)
    elif t.objective == "grpo":
        from trl import GRPOConfig as cls  # noqa: N813

        g = t.grpo
        kw.update(num_generations=g.num_generations, max_completion_length=g.max_completion_length, beta=g.beta,
                  temperature=g.temperature, gradient_checkpointing=t.gradient_checkpointing)
    kw.update(t.extra_args)
    return cls(**kw)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _close_process_group() -> None:
    """Training is the job's only collective work: every rank closes the process group together once it is done.
    Otherwise the other ranks exit while rank 0 evaluates and documents, with the group open; one such exit aborted
    in native teardown ("terminate called without an active exception", DeepSpeed ZeRO-3 on CPU, once in a loaded
    CI run) and the launcher then killed rank 0 mid-stage."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def fsdp_applies() -> bool:
    """Whether Accelerate will shard with FSDP here. It does so only on accelerators (ftaudit trains on CUDA or on
    CPU): on CPU it runs an FSDP config as DDP (FSDP2) or fails while creating the plugin (FSDP1, "There are
    currently no available devices found")."""
    return _cuda()


def meter_callback(rd: RunDir, cfg: RunConfig, gate_hook: Callable[[float], bool], *, parent: str | None,
                   run_id: str, original: OriginalCompute):
    """ftaudit's FlopsMeterCallback (it persists ftaudit_meter.json and flops_meter.json in the run dir)."""
    from ftaudit.integrations.hf import FlopsMeterCallback

    return FlopsMeterCallback(output_dir=str(rd.root), save_every_steps=cfg.training.meter_every_steps,
                              parent=parent, gate=gate_hook, original=original, run_id=run_id)


def _progress_callback(ui, rd: RunDir, gate: GateState, meter_ref: list):
    from transformers import TrainerCallback

    class Progress(TrainerCallback):
        """Live line: step, loss, compute used vs the accepted limit; Trainer logs to logs/train.jsonl."""

        def on_train_begin(self, args, state, control, **kw):
            if state.is_world_process_zero:
                ui.train_begin(state.max_steps, state.global_step)

        def on_step_end(self, args, state, control, **kw):
            if state.is_world_process_zero:
                ui.train_step(state.global_step, _live_flops(meter_ref, gate), gate.limit_flops)

        def on_log(self, args, state, control, logs=None, **kw):
            if state.is_world_process_zero and logs:
                append_log(rd, "train.jsonl", {"step": state.global_step, **logs,
                                               "lineage_flops": _live_flops(meter_ref, gate)})
                ui.train_log(logs)

        def on_train_end(self, args, state, control, **kw):
            if state.is_world_process_zero:
                ui.train_end()

    return Progress()


def _live_flops(meter_ref: list, gate: GateState) -> float | None:
    """The lineage total at the meter's last sync (every `meter_every_steps` steps)."""
    state = meter_ref[0].meter_state if meter_ref else None
    if state is not None and state.lineage is not None:
        return float(state.lineage.cumulative_flops)
    return gate.last_total or None


def run_trainer(cfg: RunConfig, rd: RunDir, model, tokenizer, data: TokenizedSet, gate: GateState, ui,
                *, resume_from: str | None, parent: str | None, run_id: str,
                original: OriginalCompute) -> TrainOutcome:
    import warnings

    from transformers import Trainer

    # Two known-harmless library notices that would otherwise sit in the middle of the progress output:
    # a deprecation inside transformers itself, and PEFT not finding config.json next to a GGUF base when it
    # checks whether the vocabulary changed (it did not: LoRA leaves the embeddings alone).
    warnings.filterwarnings("ignore", message=r".*is_gradient_checkpointing.*deprecated")
    warnings.filterwarnings("ignore", message=r"Could not find a config file in .* will assume that the vocabulary")

    def gate_hook(total_lineage_flops: float) -> bool:
        """The meter calls this at every sync with the lineage total projected to the next sync; False stops."""
        gate.last_total = float(total_lineage_flops)
        if gate.stop_at_flops is not None and total_lineage_flops >= gate.stop_at_flops:
            if not gate.tripped:
                gate.tripped = True
                gate.reason = (f"metered lineage compute (projected to the next sync) {flops2(total_lineage_flops)} "
                               f"FLOP reached the stop point {flops2(gate.stop_at_flops)} FLOP of the accepted "
                               f"role's limit {flops2(gate.limit_flops)} FLOP; checkpoint saved, training stopped")
            return False
        return True

    meter = meter_callback(rd, cfg, gate_hook, parent=parent, run_id=run_id, original=original)
    meter_ref = [meter]
    callbacks = [meter, _progress_callback(ui, rd, gate, meter_ref)]
    args = training_arguments(cfg, rd)
    if cfg.training.objective == "sft":
        trainer = Trainer(model=model, args=args, train_dataset=_Examples(data),
                          data_collator=make_collator(tokenizer.pad_token_id), callbacks=callbacks)
    else:
        trainer = trl_trainer(cfg, model, tokenizer, data, args, callbacks)
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    for cb in (PrinterCallback, ProgressCallback):  # stdout belongs to --json; ftaudit draws its own progress
        trainer.remove_callback(cb)
    t0 = time.time()
    result = trainer.train(resume_from_checkpoint=resume_from)
    seconds = time.time() - t0
    trainer.save_model(str(rd.model))  # every rank: FSDP/DeepSpeed gather the weights; rank 0 writes
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(str(rd.model))
    _close_process_group()
    return TrainOutcome(status="stopped" if gate.tripped else "ok", reason=gate.reason,
                        global_step=trainer.state.global_step, seconds=seconds, resumed_from=resume_from,
                        metrics=dict(result.metrics), meter=meter)
