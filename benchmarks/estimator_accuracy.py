"""Estimator accuracy against torch.utils.flop_counter.FlopCounterMode, beside the seed meter's formula and HF
Trainer's `total_flos` (the command's wall time is `estimate_latency`).

Part 1 runs real tiny models (hidden 64, 2 layers) on the CPU. Part 2 counts real-size models from the base-model
registry on PyTorch's meta device (FlopCounterMode counts the same kernels; nothing is computed). One forward +
loss.backward() of one unpadded sequence, eager attention, no padding, every time.

Baselines:
  seed      (4·N_total + 2·N_trainable)·tokens with N counted before LoRA wrapping (docs/regulation.md §6), so every
            trainable-before-wrapping parameter is billed: LoRA costs as much as full fine-tuning.
  HF        Trainer's total_flos = Trainer.floating_point_ops() = 6·N(non-embedding, adapters included)·tokens.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "compute"))

TINY_ARCHS = ["llama", "mistral", "qwen2", "qwen3", "gemma2", "gemma3_text", "phi3", "gpt2", "olmo2", "granite",
              "starcoder2", "stablelm", "cohere", "falcon", "gpt_neox", "opt", "phi", "bloom"]
LORA_TARGETS = {"gpt2": ("c_attn",), "bloom": ("query_key_value",), "gpt_neox": ("query_key_value",),
                "falcon": ("query_key_value",), "phi3": ("qkv_proj",)}
REAL_MODELS = ["HuggingFaceTB/SmolLM2-135M", "Qwen/Qwen2.5-0.5B", "meta-llama/Llama-3.2-1B", "google/gemma-2-2b",
               "microsoft/Phi-3-mini-4k-instruct", "allenai/OLMo-2-1124-7B", "mistralai/Mistral-7B-v0.1"]


def _err(x: float, ref: float) -> str:
    return f"{100 * (x - ref) / ref:+.2f} %"


def _row(cells) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _measure(model, base_params: int, seq_len: int, fm, device=None):
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    ids = torch.randint(3, 200, (1, seq_len), device=device)
    counter = FlopCounterMode(display=False)
    with counter:
        out = model(input_ids=ids, labels=ids)
        out.loss.backward()
    model.zero_grad(set_to_none=True)
    ref = float(counter.get_total_flops())
    ours = fm.sequence(seq_len).training
    seed = (4 * base_params + 2 * base_params) * seq_len  # N_trainable counted before wrapping = N_total
    # transformers.Trainer.floating_point_ops: 6 · numel(input_ids) · num_parameters(exclude_embeddings=True)
    hf_model = model.get_base_model() if hasattr(model, "get_base_model") else model
    hf = 6.0 * ids.numel() * hf_model.num_parameters(exclude_embeddings=True)
    return ref, ours, seed, hf


def tiny_table() -> list[str]:
    from flops_reference import tiny_config, tiny_model, with_lora

    from ftaudit.compute.flops import TrainingSetup, build_flop_model

    lines = [_row(["arch", "method", "S", "FlopCounterMode", "ftaudit", "error", "seed formula", "seed error",
                   "HF total_flos", "HF error"]), _row(["---"] * 10)]
    worst = 0.0
    for arch in TINY_ARCHS:
        base = tiny_model(arch)
        n_base = sum(p.numel() for p in base.parameters())
        targets = LORA_TARGETS.get(arch, ("q_proj", "v_proj"))
        lora = with_lora(base, targets, r=8)
        cfg = tiny_config(arch).to_dict()
        for method, model, setup in (
            ("full", base, TrainingSetup()),
            (f"LoRA r=8 {','.join(targets)}", lora,
             TrainingSetup(method="lora", lora_r=8, lora_target_modules=targets)),
        ):
            fm = build_flop_model(cfg, setup)
            for s in (128, 1024):
                ref, ours, seed, hf = _measure(model, n_base, s, fm)
                worst = max(worst, abs(ours - ref) / ref)
                lines.append(_row([arch, method, s, f"{ref:.4g}", f"{ours:.4g}", _err(ours, ref), f"{seed:.3g}",
                                   _err(seed, ref), f"{hf:.3g}", _err(hf, ref)]))
    lines.append(f"\nlargest ftaudit error over {len(lines) - 2} rows: {100 * worst:.2g} %")
    return lines


def real_table() -> list[str]:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM

    from ftaudit.compute.flops import TrainingSetup, build_flop_model
    from ftaudit.regulation.registry import lookup

    lines = [_row(["model", "method", "S", "FlopCounterMode", "ftaudit", "error", "seed formula", "seed error",
                   "HF total_flos", "HF error"]), _row(["---"] * 10)]
    for model_id in REAL_MODELS:
        cfg_dict = lookup(model_id).config_dict()
        cfg = AutoConfig.for_model(**cfg_dict)
        with torch.device("meta"):
            base = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager")
        base.train()
        n_base = sum(p.numel() for p in base.parameters())
        targets = LORA_TARGETS.get(cfg_dict["model_type"], ("q_proj", "v_proj"))
        for method in ("full", f"LoRA r=16 {','.join(targets)}"):
            if method == "full":
                model, setup = base, TrainingSetup()
            else:  # the adapters follow the base weights onto the meta device
                model = get_peft_model(base, LoraConfig(r=16, target_modules=list(targets)))
                setup = TrainingSetup(method="lora", lora_r=16, lora_target_modules=targets)
            fm = build_flop_model(cfg_dict, setup)
            ref, ours, seed, hf = _measure(model, n_base, 2048, fm, device="meta")
            lines.append(_row([model_id, method, 2048, f"{ref:.4g}", f"{ours:.4g}", _err(ours, ref), f"{seed:.3g}",
                               _err(seed, ref), f"{hf:.3g}", _err(hf, ref)]))
    return lines


def main() -> None:
    import torch

    torch.set_num_threads(1)
    print("### Tiny real models on CPU (hidden 64, 2 layers, vocab 256)\n")
    print("\n".join(tiny_table()))
    print("\n### Real-size configs from the base-model registry, counted on the meta device (S = 2048)\n")
    print("\n".join(real_table()))


if __name__ == "__main__":
    main()
