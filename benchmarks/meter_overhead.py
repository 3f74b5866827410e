"""Meter overhead per training step: the same Trainer run with and without FlopsMeterCallback, as a ratio.

Runs alternate (without, with, without, with, ...) so that load on the shared machine hits both alike; the step
time of each run is the mean over its steps after warm-up (the periodic sync included). On a shared, loaded
machine the A/B ratio carries a few per cent of noise either way, so the table also gives the meter's own time
(hook + step-end work, stopwatched inside the run, after warm-up) as a share of step time, and a second table
times the hook alone per micro-batch (padded batches take the device path, unpadded ones only touch Python ints).
Target: overhead ≤ 0.5 % of step time.

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

from ftaudit.compute.counting import BatchCounter  # noqa: E402
from ftaudit.compute.flop_meter import FlopMeter  # noqa: E402
from ftaudit.integrations import hf  # noqa: E402
from ftaudit.integrations.hf import FlopsMeterCallback  # noqa: E402

VOCAB, HIDDEN, LAYERS, SEQ, BATCH = 1000, 128, 2, 256, 8
STEPS, WARMUP, REPEATS = 20, 5, 3


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


class _TimedFlopMeter(FlopMeter):
    """The core with a stopwatch on its hook; the callback below adds its step-end work."""

    callback: "_TimedMeter | None" = None

    def _policy_call(self, module, args, kwargs):
        t = time.perf_counter()
        super()._policy_call(module, args, kwargs)
        cb = _TimedFlopMeter.callback
        if cb is not None and cb.timing:
            cb.self_time += time.perf_counter() - t


hf.FlopMeter = _TimedFlopMeter  # the callback builds its meter from this name


class _TimedMeter(FlopsMeterCallback):
    """The meter with a stopwatch on its own work (the hook and its step-end sync), after warm-up."""

    self_time = 0.0
    timing = False

    def on_init_end(self, args, state, control, **kw):
        _TimedFlopMeter.callback = self
        return super().on_init_end(args, state, control, **kw)

    def on_step_end(self, args, state, control, **kw):
        t = time.perf_counter()
        out = super().on_step_end(args, state, control, **kw)
        if self.timing:
            self.self_time += time.perf_counter() - t
        self.timing = state.global_step >= WARMUP  # steps WARMUP+1.. are the timed ones
        return out


def _run(with_meter: bool, padded: bool) -> tuple[float, float]:
    """(mean step seconds after warm-up, meter self-time per step after warm-up)."""
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=4 * HIDDEN, num_hidden_layers=LAYERS,
                      num_attention_heads=8, num_key_value_heads=4, max_position_embeddings=SEQ)
    cfg._attn_implementation = "sdpa"
    model = LlamaForCausalLM(cfg)
    timer = _StepTimer()
    with tempfile.TemporaryDirectory() as out:
        meter = _TimedMeter(output_dir=out) if with_meter else None
        # The timer goes last, so its step end comes after the meter's (which syncs every 10 steps).
        cbs = ([meter] if meter else []) + [timer]
        args = TrainingArguments(output_dir=out, per_device_train_batch_size=BATCH, max_steps=STEPS, report_to=[],
                                 use_cpu=True, save_strategy="no", logging_steps=10_000, disable_tqdm=True,
                                 remove_unused_columns=False, dataloader_num_workers=0)
        trainer = Trainer(model=model, args=args, train_dataset=_data(padded, STEPS * BATCH), data_collator=_collate,
                          callbacks=cbs)
        trainer.train()
    steps = timer.times[WARMUP:]
    self_per_step = (meter.self_time / len(steps)) if meter else 0.0
    return statistics.fmean(steps), self_per_step  # mean, not median: the periodic sync must be in it


def _hook_cost(padded: bool, n: int = 300) -> float:
    batch = _collate(_data(padded, BATCH))
    if not padded:
        batch = {"input_ids": batch["input_ids"]}
    counter = BatchCounter(varlen_kernel=False)
    counter.count((), batch)
    t = time.perf_counter()
    for _ in range(n):
        counter.count((), batch)
    return (time.perf_counter() - t) / n


def main() -> None:
    torch.set_num_threads(1)
    print(f"tiny Llama hidden {HIDDEN}, {LAYERS} layers, batch {BATCH}×≤{SEQ} tokens, CPU, {STEPS} steps per run, "
          f"mean step time over steps {WARMUP + 1}–{STEPS}, {REPEATS} alternating pairs of runs\n")
    print("| batches | step without (ms) | step with (ms) | A/B ratio, median (range) | meter self-time per step |")
    print("|---|---|---|---|---|")
    for padded in (True, False):
        without, with_, ratios, shares = [], [], [], []
        for _ in range(REPEATS):
            a, _unused = _run(False, padded)
            b, own = _run(True, padded)
            without.append(a)
            with_.append(b)
            ratios.append(b / a)
            shares.append(own / b)
        print(f"| {'padded (device path)' if padded else 'unpadded (shapes only)'} | "
              f"{statistics.median(without) * 1e3:.1f} | {statistics.median(with_) * 1e3:.1f} | "
              f"{statistics.median(ratios):.3f} ({min(ratios):.3f}–{max(ratios):.3f}) | "
              f"{100 * statistics.median(shares):.3f} % |")
    print("\n| batches | hook cost per micro-batch (µs) |")
    print("|---|---|")
    for padded in (True, False):
        print(f"| {'padded' if padded else 'unpadded'} | {_hook_cost(padded) * 1e6:.0f} |")


if __name__ == "__main__":
    main()
