"""Run under `torchrun --nproc_per_node 2` (gloo, CPU) by test_distributed.py: shard the tiny llama with torch's
FSDP1 (FlatParameters, and use_orig_params views) and FSDP2 (DTensors), and read it the way FlopMeter does when
the Trainer hands it a sharded model (on GPUs). Rank 0 prints one JSON object: per case, what the meter reads from
the unsharded model and from the sharded one.

Accelerate runs FSDP only on GPUs, so `ftaudit train` cannot shard on CPU; torch's FSDP itself runs on gloo.
"""

from __future__ import annotations

import functools
import json
import sys
import tempfile

import torch
import torch.distributed as dist


def build(path: str, method: str):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(path)
    if method == "lora":
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    elif method == "partial":  # one whole decoder layer trains (uniform within an FSDP unit, as FSDP1 needs)
        for name, p in model.named_parameters():
            p.requires_grad = name.startswith("model.layers.1.")
    return model


def shard(model, kind: str, method: str):
    from transformers.models.llama.modeling_llama import LlamaDecoderLayer

    if kind == "fsdp2":
        from torch.distributed.fsdp import fully_shard

        for m in model.modules():
            if isinstance(m, LlamaDecoderLayer):
                fully_shard(m)
        return fully_shard(model)
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
    from torch.distributed.fsdp.wrap import transformer_auto_wrap_policy

    if method == "lora" and kind == "fsdp1-flat":  # LoRA layers in units of their own, as Accelerate does for PEFT
        from peft.utils.other import fsdp_auto_wrap_policy

        policy = fsdp_auto_wrap_policy(model)
    else:
        policy = functools.partial(transformer_auto_wrap_policy, transformer_layer_cls={LlamaDecoderLayer})
    return FSDP(model, auto_wrap_policy=policy, use_orig_params=kind == "fsdp1-orig",
                device_id=torch.device("cpu"))


def read(model, out_dir: str) -> dict:
    """What the meter reads from `model`: parameter table, setup, model counts, warnings, FLOPs of fixed counts,
    and the counts its forward pre-hook takes from one padded micro-batch."""
    from ftaudit.compute.evidence import MeterCounts
    from ftaudit.compute.flop_meter import FlopMeter
    from ftaudit.compute.live_model import parameter_table, setup_from_model
    from ftaudit.compute.meter import meter_flops

    meter = FlopMeter(model, output_dir=out_dir)  # hooks the LM module inside the wrappers; saves get wrapped
    counts, rates, warnings = meter._policy_rates(model)
    fixed = MeterCounts(micro_batches=2, optimizer_steps=1, tokens_executed=40, tokens_effective=33,
                        sequences_executed=4, sequences_effective=4, lengths_executed={10: 4},
                        lengths_effective={10: 1, 9: 2, 5: 1})
    flops = meter_flops(fixed, rates)
    meter.start()
    ids = torch.randint(4, 500, (4, 10))
    mask = torch.ones_like(ids)
    mask[1, 9:] = mask[2, 9:] = 0
    mask[3, 5:] = 0
    model.train()
    model(input_ids=ids, attention_mask=mask, labels=ids).loss.backward()
    c = meter._streams["policy"].counter.vector(16, torch.device("cpu")).tolist()
    meter.close()
    # the lineage files go into every dir saved from the model; the Trainer saves an FSDP1 model through the
    # module inside the wrapper it hands to callbacks
    saves_through = getattr(model, "_fsdp_wrapped_module", model)
    return {
        "table": sorted([list(row) for row in parameter_table(model)]),
        "setup": {k: list(v) if isinstance(v, tuple) else v for k, v in vars(setup_from_model(model)).items()},
        "counts": counts.model_dump(mode="json"),
        "warnings": warnings,
        "flops": flops.model_dump(mode="json") if flops else None,
        "hook": {"micro_batches": int(c[0]), "tokens_executed": int(c[1]), "tokens_effective": int(c[2])},
        "save_hook": bool(getattr(getattr(saves_through, "save_pretrained", None), "_ftaudit_wrapped", False)),
    }


def main(path: str) -> None:
    dist.init_process_group("gloo")
    torch.set_num_threads(1)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("fsdp1-flat", "fsdp1-orig", "fsdp2"):
            for method in ("lora", "full", "partial"):
                ref = read(build(path, method), tmp)
                sharded = shard(build(path, method), kind, method)
                local = sum(p.numel() if not hasattr(p, "to_local") else p.to_local().numel()
                            for p in sharded.parameters())
                out[f"{kind}/{method}"] = {"ref": ref, "sharded": read(sharded, tmp), "local_numel": local}
                dist.barrier()
    if dist.get_rank() == 0:
        print(json.dumps(out))
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
