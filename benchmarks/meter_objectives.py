"""Meter accuracy per objective: the meter against PyTorch's FlopCounterMode around the same TRL run.

Each case trains a tiny Llama (eager attention, no checkpointing) for three steps under TRL's SFTTrainer,
DPOTrainer or GRPOTrainer, with FlopCounterMode around the trainer's construction and `train()` (TRL's fused LM head:
its in-place backward `addmm_` added, its logit recomputation subtracted; tests/meter/trl_runs.py). The goal: every
objective within 0.1 %. The lines say how much of the regulatory figure each role adds.

    python -m benchmarks meter_objectives        (or: make bench)
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "meter"))

CASES = [
    ("SFT, full", "sft", {}),
    ("SFT, LoRA", "sft", {"lora": True}),
    ("DPO, live reference (TRL's copy)", "dpo", {}),
    ("DPO, explicit reference", "dpo-explicit", {}),
    ("DPO, precomputed reference", "dpo-precomputed", {}),
    ("DPO, LoRA, adapters off", "dpo", {"lora": True}),
    ("GRPO, beta 0, 2 generations", "grpo", {}),
    ("GRPO, beta 0.04, 4 generations, dense MHA", "grpo", {"beta": 0.04, "num_generations": 4, "kv_heads": 4}),
    ("GRPO, beta 0.04, LoRA", "grpo", {"beta": 0.04, "lora": True}),
    ("KTO", "kto", {}),
    ("RLOO, beta 0.04", "rloo", {"beta": 0.04}),
    ("ORPO (trl.experimental)", "orpo", {}),
    ("GRPO, use_vllm, beta 0.04, 4 generations (engine: transformers stand-in)", "grpo",
     {"vllm": True, "beta": 0.04, "num_generations": 4}),
]


def main() -> None:
    from trl_runs import run

    print("| run | FlopCounterMode (FLOP) | meter (FLOP) | error | reference | generation |")
    print("|---|---|---|---|---|---|")
    for label, kind, kw in CASES:
        with tempfile.TemporaryDirectory() as tmp:
            m = run(kind, Path(tmp), **kw)
        total = m.state.regulatory_flops
        share = {role: m.line(role) / total for role in ("reference", "generation")}
        print(f"| {label} | {m.counted:.6g} | {total:.6g} | {100 * m.error:+.4f} % | "
              + " | ".join(f"{100 * share[r]:.1f} %" if share[r] else "–" for r in ("reference", "generation"))
              + " |")


if __name__ == "__main__":
    main()
