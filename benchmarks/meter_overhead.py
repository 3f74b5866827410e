"""Meter overhead per training step: the same Trainer run with and without FlopsMeterCallback, as a ratio.

Runs alternate (without, with, without, with, ...) so that load on the shared machine hits both alike; the step
time of each run is the mean over its steps after warm-up (the periodic sync included), and the table reports the median over runs. A second
table times the forward pre-hook alone per micro-batch (padded batches take the device path, unpadded ones only
touch Python ints). Target: overhead ≤ 1 % of step time.

    python -m benchmarks meter_overhead        (or: make bench)
"""

from __future__ import annotations

import os
import random
import statistics
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM, Trainer, TrainerCallback, TrainingArguments  # noqa: E402

from ftaudit.integrations.hf import FlopsMeterCallback, _BatchCounter  # noqa: E402

VOCAB, HIDDEN, LAYERS, SEQ, BATCH = 1000, 128, 2, 256, 8
STEPS, WARMUP, REPEATS = 25, 5, 3


class _StepTimer(TrainerCallback):
    def __init__(self):
        self.times: list[float] = []
        self._t = None

    def on_step_begin(self, args, state, control, **kw):
        self._t = time.perf_counter()

    def on_step_end(self, args, state, control, **kw):
        self.times.append(time.perf_counter() - self._t)


def _data(padded: bool, n: int):
    rng = random.Random(0)
    out = []
    for _ in range(n):
        length = rng.randint(SEQ // 2, SEQ) if padded else SEQ
        out.append({"input_ids": [rng.randrange(1, VOCAB) for _ in range(length)]})
    return out


def _collate(feats):
    s = max(len(f["input_ids"]) for f in feats)
    ids = torch.zeros(len(feats), s, dtype=torch.long)
    mask = torch.zeros(len(feats), s, dtype=torch.long)
    for i, f in enumerate(feats):
        ids[i, : len(f["input_ids"])] = torch.tensor(f["input_ids"])
        mask[i, : len(f["input_ids"])] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": ids.masked_fill(mask == 0, -100)}


def _run(with_meter: bool, padded: bool) -> float:
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=4 * HIDDEN, num_hidden_layers=LAYERS,
                      num_attention_heads=8, num_key_value_heads=4, max_position_embeddings=SEQ)
    cfg._attn_implementation = "sdpa"
    model = LlamaForCausalLM(cfg)
    timer = _StepTimer()
    with tempfile.TemporaryDirectory() as out:
        # The timer goes last, so its step end comes after the meter's (which syncs every 10 steps).
        cbs = ([FlopsMeterCallback(output_dir=out)] if with_meter else []) + [timer]
        args = TrainingArguments(output_dir=out, per_device_train_batch_size=BATCH, max_steps=STEPS, report_to=[],
                                 use_cpu=True, save_strategy="no", logging_steps=10_000, disable_tqdm=True,
                                 remove_unused_columns=False, dataloader_num_workers=0)
        Trainer(model=model, args=args, train_dataset=_data(padded, STEPS * BATCH), data_collator=_collate,
                callbacks=cbs).train()
    return statistics.fmean(timer.times[WARMUP:])  # mean, not median: the periodic sync must be in it


def _hook_cost(padded: bool, n: int = 300) -> float:
    batch = _collate(_data(padded, BATCH))
    if not padded:
        batch = {"input_ids": batch["input_ids"]}
    counter = _BatchCounter(varlen_kernel=False)
    counter.count((), batch)
    t = time.perf_counter()
    for _ in range(n):
        counter.count((), batch)
    return (time.perf_counter() - t) / n


def main() -> None:
    torch.set_num_threads(1)
    print(f"tiny Llama hidden {HIDDEN}, {LAYERS} layers, batch {BATCH}×≤{SEQ} tokens, CPU, {STEPS} steps per run, "
          f"mean step time over steps {WARMUP + 1}–{STEPS}, median of {REPEATS} alternating runs\n")
    print("| batches | step without meter (ms) | step with meter (ms) | ratio with/without |")
    print("|---|---|---|---|")
    for padded in (True, False):
        without, with_ = [], []
        for _ in range(REPEATS):
            without.append(_run(False, padded))
            with_.append(_run(True, padded))
        a, b = statistics.median(without), statistics.median(with_)
        print(f"| {'padded (device path)' if padded else 'unpadded (shapes only)'} | {a * 1e3:.1f} | "
              f"{b * 1e3:.1f} | {b / a:.3f} |")
    print("\n| batches | hook cost per micro-batch (µs) |")
    print("|---|---|")
    for padded in (True, False):
        print(f"| {'padded' if padded else 'unpadded'} | {_hook_cost(padded) * 1e6:.0f} |")


if __name__ == "__main__":
    main()
