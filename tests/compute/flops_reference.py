"""Shared by the estimator tests and benchmarks/estimator_accuracy.py: tiny real models and their FLOPs as counted by
torch.utils.flop_counter.FlopCounterMode on one forward + loss.backward() (eager attention, no padding)."""

from __future__ import annotations

import copy
import functools
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

_TINY = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
             intermediate_size=128, vocab_size=256)
_TOKENS = dict(pad_token_id=0, bos_token_id=1, eos_token_id=2)

# Per model type: the config kwargs of a tiny model (hidden 64, 2 layers, vocab 256) exercising its features.
TINY_CONFIGS: dict[str, dict] = {
    "llama": _TINY,
    "mistral": dict(_TINY, sliding_window=64),
    "qwen2": _TINY,
    "qwen3": dict(_TINY, head_dim=16),
    "gemma": dict(_TINY, head_dim=16),
    "gemma2": dict(_TINY, head_dim=24, sliding_window=32, query_pre_attn_scalar=16),
    "gemma3_text": dict(_TINY, head_dim=16, sliding_window=32, query_pre_attn_scalar=16),
    "phi3": _TINY,
    "gpt2": dict(n_embd=64, n_layer=2, n_head=4, vocab_size=256, n_positions=1100),
    "olmo": _TINY,
    "olmo2": _TINY,
    "olmo3": dict(_TINY, sliding_window=32),
    "ministral": dict(_TINY, sliding_window=32, head_dim=16),
    "cohere2": dict(_TINY, sliding_window=32, head_dim=16),
    "granite": dict(_TINY, attention_bias=True),
    "smollm3": _TINY,
    "starcoder2": _TINY,
    "stablelm": dict(_TINY, qk_layernorm=True, use_qkv_bias=True),
    "cohere": dict(_TINY, use_qk_norm=True),
    "gpt_neox": dict(_TINY, num_key_value_heads=None),
    "opt": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, ffn_dim=128, vocab_size=256,
                word_embed_proj_dim=64, max_position_embeddings=1100),
    "phi": _TINY,
    "gptj": dict(n_embd=64, n_layer=2, n_head=4, vocab_size=256, rotary_dim=8, n_positions=1100),
    "bloom": dict(hidden_size=64, n_layer=2, n_head=4, vocab_size=256),
    "falcon": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, vocab_size=256, ffn_hidden_size=128),
    "mixtral": dict(_TINY, num_local_experts=4, num_experts_per_tok=2),
    "qwen2_moe": dict(_TINY, num_experts=4, num_experts_per_tok=2, moe_intermediate_size=48,
                      shared_expert_intermediate_size=96, decoder_sparse_step=2),
    "qwen3_moe": dict(_TINY, num_experts=4, num_experts_per_tok=2, moe_intermediate_size=48, head_dim=16,
                      mlp_only_layers=[0]),
    "olmoe": dict(_TINY, num_experts=4, num_experts_per_tok=2),
}
MOE_TYPES = ("mixtral", "qwen2_moe", "qwen3_moe", "olmoe")
DENSE_TYPES = tuple(t for t in TINY_CONFIGS if t not in MOE_TYPES)


def tiny_config(model_type: str):
    from transformers import AutoConfig

    kw = {k: v for k, v in TINY_CONFIGS[model_type].items() if v is not None}
    return AutoConfig.for_model(model_type, **kw, **_TOKENS)


@functools.lru_cache(maxsize=None)
def tiny_model(model_type: str, experts: str | None = None):
    """The tiny model (cached; callers that change it must deepcopy). `experts="eager"` runs MoE experts as
    per-expert F.linear, which FlopCounterMode sees (the default grouped kernel it does not)."""
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    kw = {"attn_implementation": "eager"}
    if experts:
        kw["experts_implementation"] = experts
    model = AutoModelForCausalLM.from_config(tiny_config(model_type), **kw)
    model.train()
    return model


def with_lora(model, targets, r: int = 8, modules_to_save=None):
    from peft import LoraConfig, get_peft_model

    if targets == ("all-linear",):
        targets = "all-linear"
    elif targets is not None:
        targets = list(targets)
    return get_peft_model(copy.deepcopy(model), LoraConfig(r=r, target_modules=targets, lora_dropout=0.0,
                                                           modules_to_save=modules_to_save))


def with_trainable(model, predicate):
    m = copy.deepcopy(model)
    for name, p in m.named_parameters():
        p.requires_grad_(bool(predicate(name)))
    return m


def counted_flops(model, seq_len: int, *, seed: int = 0) -> float:
    """FLOPs FlopCounterMode sees for one forward + loss.backward() of one unpadded sequence."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(seed)
    emb = model.get_input_embeddings()
    vocab = getattr(emb, "num_embeddings", None) or emb.get_base_layer().num_embeddings  # PEFT-wrapped embedding
    ids = torch.randint(3, vocab, (1, seq_len), generator=g)
    counter = FlopCounterMode(display=False)
    with counter:
        out = model(input_ids=ids, labels=ids)
        out.loss.backward()
    model.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def n_params(model) -> tuple[int, int]:
    return (sum(p.numel() for p in model.parameters()),
            sum(p.numel() for p in model.parameters() if p.requires_grad))
