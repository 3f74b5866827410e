"""A tiny causal LM and data the meter tests train on (offline, CPU, a second or two per run).

Also a script: `python tests/meter/meter_tiny.py OUT [--resume] [--lora] [--max-steps N] [--save-steps N] [--slow S]`
trains under `torchrun` or as a subprocess that the kill -9 test kills.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM, Trainer, TrainerCallback, TrainingArguments

VOCAB = 256


def tiny_model(seed: int = 0, attn: str = "eager", kv_heads: int = 2) -> LlamaForCausalLM:
    """Grouped-query attention by default (2 key/value heads for 4 query heads); kv_heads=4 is dense MHA."""
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=kv_heads, max_position_embeddings=512,
                      tie_word_embeddings=False)
    cfg._attn_implementation = attn
    return LlamaForCausalLM(cfg)


def examples(n: int, lo: int, hi: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        length = rng.randint(lo, hi)
        ids = [rng.randrange(1, VOCAB) for _ in range(length)]
        out.append({"input_ids": ids})
    return out


class PadCollator:
    """Right-pads to the longest row and records every batch it builds (the hand count's source of truth)."""

    def __init__(self, log: str | None = None):
        self.batches: list[list[int]] = []
        self.log = log  # one line per batch, flushed at once, so a killed run leaves what it fed

    def __call__(self, feats):
        lengths = [len(f["input_ids"]) for f in feats]
        if self.log:
            with open(self.log, "a") as fh:
                fh.write(",".join(map(str, lengths)) + "\n")
        s = max(lengths)
        ids = torch.zeros(len(feats), s, dtype=torch.long)
        mask = torch.zeros(len(feats), s, dtype=torch.long)
        for i, f in enumerate(feats):
            ids[i, : lengths[i]] = torch.tensor(f["input_ids"])
            mask[i, : lengths[i]] = 1
        labels = ids.masked_fill(mask == 0, -100)
        self.batches.append(lengths)
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}


class PackCollator:
    """Packs each batch into one row with restarting position_ids (like DataCollatorWithFlattening)."""

    def __init__(self):
        self.batches: list[list[int]] = []

    def __call__(self, feats):
        ids, pos, lengths = [], [], []
        for f in feats:
            ids += f["input_ids"]
            pos += list(range(len(f["input_ids"])))
            lengths.append(len(f["input_ids"]))
        self.batches.append(lengths)
        t = torch.tensor([ids])
        return {"input_ids": t, "position_ids": torch.tensor([pos]), "labels": t.clone()}


def training_args(out: str, **kw) -> TrainingArguments:
    base = dict(output_dir=out, per_device_train_batch_size=4, num_train_epochs=1, learning_rate=1e-3,
                logging_steps=1000, save_strategy="no", report_to=[], use_cpu=True, remove_unused_columns=False,
                dataloader_num_workers=0, disable_tqdm=True, seed=0)
    base.update(kw)
    return TrainingArguments(**base)


def lora(model, r: int = 4, targets=("q_proj", "v_proj")):
    from peft import LoraConfig, get_peft_model

    return get_peft_model(model, LoraConfig(r=r, lora_alpha=8, target_modules=list(targets), lora_dropout=0.0))


class _Slow(TrainerCallback):
    def __init__(self, seconds: float):
        self.seconds = seconds

    def on_step_end(self, args, state, control, **kw):
        time.sleep(self.seconds)


def main(argv=None) -> int:
    from ftaudit.integrations.hf import FlopsMeterCallback

    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--max-steps", type=int, default=12)
    p.add_argument("--save-steps", type=int, default=0)
    p.add_argument("--meter-every", type=int, default=2)
    p.add_argument("--slow", type=float, default=0.0)
    p.add_argument("--gate-calls", type=int, default=0, help="the gate says stop at its N-th call")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    rank = int(os.environ.get("RANK", "0"))
    data = examples(64, 8, 24, seed=1)
    os.makedirs(a.out, exist_ok=True)
    collator = PadCollator(log=os.path.join(a.out, f"batches-{'resume' if a.resume else 'first'}-rank{rank}.txt"))
    kw = dict(max_steps=a.max_steps, per_device_train_batch_size=2)
    if a.save_steps:
        kw.update(save_strategy="steps", save_steps=a.save_steps)
    args = training_args(a.out, **kw)
    calls = []

    def gate(projected: float) -> bool:
        calls.append(projected)
        return len(calls) < a.gate_calls

    cbs = [FlopsMeterCallback(output_dir=a.out, save_every_steps=a.meter_every, gate=gate if a.gate_calls else None)]
    if a.slow:
        cbs.append(_Slow(a.slow))
    trainer = Trainer(model=tiny_model(), args=args, train_dataset=data, data_collator=collator, callbacks=cbs)
    trainer.train(resume_from_checkpoint=True if a.resume else None)
    if torch.distributed.is_initialized():
        # Both ranks close the gloo group together: a rank exiting with it open can abort at exit
        # ("terminate called without an active exception") and torchrun then fails the job.
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
