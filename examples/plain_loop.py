"""Meter a plain PyTorch training loop with ftaudit's FlopMeter (no Trainer), also under `accelerate launch`.

    python examples/plain_loop.py OUT [--accelerate] [--steps N]
    accelerate launch --num_processes 2 examples/plain_loop.py OUT --accelerate

The model is a tiny Llama built from a config (no download); swap in your own model, data and optimizer.
"""

from __future__ import annotations

import argparse
import random

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from ftaudit.compute import FlopMeter


def batches(n: int, seed: int):
    rng = random.Random(seed)
    for _ in range(n):
        lengths = [rng.randint(8, 24) for _ in range(4)]
        ids = torch.zeros(4, max(lengths), dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, length in enumerate(lengths):
            ids[i, :length] = torch.randint(1, 256, (length,))
            mask[i, :length] = 1
        yield {"input_ids": ids, "attention_mask": mask, "labels": ids.masked_fill(mask == 0, -100)}


def main(argv=None) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--accelerate", action="store_true")
    a = p.parse_args(argv)
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    rank = 0
    if a.accelerate:
        from accelerate import Accelerator

        accelerator = Accelerator(cpu=True)
        model, optimizer = accelerator.prepare(model, optimizer)
        rank = accelerator.process_index
    meter = FlopMeter(model, output_dir=a.out, save_every_steps=2)  # every rank meters; rank 0 writes
    with meter:
        for batch in batches(a.steps, seed=rank):
            loss = model(**batch).loss
            if a.accelerate:
                accelerator.backward(loss)
            else:
                loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            if meter.step():  # the gate (none here) says stop
                break
    state, rank0 = meter.state, meter.rank0
    if a.accelerate:
        # Gloo's process group must die while Python still runs, and not inside DDP's deallocation: there it waits
        # for its threads holding the GIL and can deadlock (pytorch/pytorch#56297). So nothing keeps the model.
        del meter
        model, optimizer = accelerator.free_memory(model, optimizer)
        accelerator.end_training()
    if rank0:
        print(f"{state.regulatory_flops:.6g} FLOP over {state.counts.micro_batches} micro-batches "
              f"on {state.world_size} process(es)")


if __name__ == "__main__":
    main()
