"""MoE against an explicit hand count (FlopCounterMode does not see transformers' default grouped expert kernel),
and against FlopCounterMode when the experts run as per-expert F.linear (experts_implementation="eager")."""

from __future__ import annotations

import os
import sys

import pytest

from ftaudit.compute.flops import TrainingSetup, build_flop_model


def _hand_count_full(h, heads, kv, hd, layers, vocab, S, moe_layers, E, k, ie, dense_i, shared_i=0,
                     shared_gate=False, qkv_bias_irrelevant=True):
    """Full fine-tuning, eager attention, one sequence of S tokens: every matmul ×3 (forward, input grad, weight
    grad), attention QKᵀ/PV ×3 over all query heads (K/V repeated), logits at every position."""
    attn_proj = h * heads * hd + 2 * h * kv * hd + heads * hd * h  # q, k, v, o (MACs per token)
    attn_core = 2 * heads * hd * S  # QKᵀ + PV MACs per token
    total_macs = 0
    for layer in range(layers):
        mlp = 0
        if layer in moe_layers:
            mlp += h * E  # router
            mlp += k * (h * 2 * ie + ie * h)  # top-k routed gated experts
            if shared_i:
                mlp += 3 * h * shared_i  # shared expert (gated)
            if shared_gate:
                mlp += h  # shared-expert gate Linear(h -> 1)
        else:
            mlp += 3 * h * dense_i
        total_macs += attn_proj + attn_core + mlp
    total_macs += h * vocab  # lm_head
    return 3 * 2 * total_macs * S


CASES = {
    # model type: (config, hand-count kwargs)
    "mixtral": (dict(model_type="mixtral", hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                     num_attention_heads=4, num_key_value_heads=2, vocab_size=256, num_local_experts=4,
                     num_experts_per_tok=2),
                dict(moe_layers={0, 1}, E=4, k=2, ie=128, dense_i=128)),
    "qwen2_moe": (dict(model_type="qwen2_moe", hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, vocab_size=256, num_experts=4,
                       num_experts_per_tok=2, moe_intermediate_size=48, shared_expert_intermediate_size=96,
                       decoder_sparse_step=2),
                  dict(moe_layers={1}, E=4, k=2, ie=48, dense_i=128, shared_i=96, shared_gate=True)),
    "qwen3_moe": (dict(model_type="qwen3_moe", hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, head_dim=16, vocab_size=256, num_experts=4,
                       num_experts_per_tok=2, moe_intermediate_size=48, mlp_only_layers=[0]),
                  dict(moe_layers={1}, E=4, k=2, ie=48, dense_i=128)),
    "olmoe": (dict(model_type="olmoe", hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                   num_attention_heads=4, num_key_value_heads=2, vocab_size=256, num_experts=4,
                   num_experts_per_tok=2),
              dict(moe_layers={0, 1}, E=4, k=2, ie=128, dense_i=128)),
}


@pytest.mark.parametrize("seq_len", [128, 1024])
@pytest.mark.parametrize("model_type", sorted(CASES))
def test_moe_full_matches_hand_count(model_type, seq_len):
    cfg, kw = CASES[model_type]
    hand = _hand_count_full(64, 4, 2, 16, 2, 256, seq_len, **kw)
    assert build_flop_model(cfg).sequence(seq_len).training == pytest.approx(hand, rel=1e-12)


def test_moe_lora_attention_only_hand_count():
    """LoRA on q/v of Mixtral: frozen experts and router get input grads only once something upstream needs grad;
    layer 0's q/k projections (before the first adapter) compute none."""
    cfg, _ = CASES["mixtral"]
    S, h, r, E, k, ie, V = 256, 64, 8, 4, 2, 128, 256
    q, kv, o = h * 64, h * 32, 64 * h
    lora_q, lora_v = h * r + r * 64, h * r + r * 32
    fwd = 2 * S * (2 * (q + 2 * kv + o + lora_q + lora_v + h * E + k * (3 * h * ie)) + h * V) \
        + 2 * 2 * 2 * 4 * 16 * S * S
    # backward, layer 0: q/k/v base compute nothing (input does not require grad, weights frozen); LoRA A: weight
    # grad only; LoRA B: weight grad + input grad; attention: dQ, dP, dV but no dK (k does not require grad);
    # o, router and experts: input grads only.
    layer0 = 2 * S * ((r * 64 + r * 32) + lora_q + lora_v + o + h * E + k * 3 * h * ie) + 3 * 2 * 4 * 16 * S * S
    # layer 1: everything upstream requires grad: base input grads, LoRA A input grads too, all four attention grads
    layer1 = 2 * S * (q + 2 * kv + (r * 64 + r * 32) + lora_q + lora_v + 2 * h * r + o + h * E
                      + k * 3 * h * ie) + 4 * 2 * 4 * 16 * S * S
    lm = 2 * S * h * V
    setup = TrainingSetup(method="lora", lora_r=r, lora_target_modules=("q_proj", "v_proj"))
    assert build_flop_model(cfg, setup).sequence(S).training == pytest.approx(fwd + layer0 + layer1 + lm, rel=1e-12)


@pytest.mark.parametrize("model_type", sorted(CASES))
def test_moe_matches_flopcounter_with_eager_experts(model_type):
    pytest.importorskip("transformers")
    sys.path.insert(0, os.path.dirname(__file__))
    from flops_reference import counted_flops, n_params, tiny_config, tiny_model, with_lora

    model = tiny_model(model_type, experts="eager")
    fm = build_flop_model(tiny_config(model_type).to_dict())
    assert fm.sequence(256).training == pytest.approx(counted_flops(model, 256), rel=1e-9)
    assert (fm.n_parameters, fm.n_trainable_parameters) == n_params(model)
    setup = TrainingSetup(method="lora", lora_r=4, lora_target_modules=("q_proj", "v_proj"))
    lora = with_lora(model, ("q_proj", "v_proj"), r=4)
    assert build_flop_model(tiny_config(model_type).to_dict(), setup).sequence(256).training == pytest.approx(
        counted_flops(lora, 256), rel=1e-9)


def test_moe_all_linear_lora_warns():
    cfg, _ = CASES["mixtral"]
    fm = build_flop_model(cfg, TrainingSetup(method="lora", lora_target_modules=("all-linear",)))
    assert any("MoE" in w for w in fm.warnings)


DEEPSEEK = dict(hidden_size=64, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=4,
                intermediate_size=128, vocab_size=256, n_routed_experts=8, num_experts_per_tok=2,
                moe_intermediate_size=32, n_shared_experts=2, first_k_dense_replace=1, kv_lora_rank=32,
                qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=24, n_group=2, topk_group=1,
                pad_token_id=0, bos_token_id=1, eos_token_id=2)


@pytest.mark.parametrize("model_type,q_lora_rank", [("deepseek_v3", 48), ("deepseek_v3", None), ("deepseek_v2", None)])
def test_deepseek_mla_moe_matches_flopcounter(model_type, q_lora_rank):
    """MLA (low-rank q and kv, rope/nope split, v_head_dim ≠ qk_head_dim), dense first layer, routed + shared
    experts; experts run per expert so FlopCounterMode sees them."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    sys.path.insert(0, os.path.dirname(__file__))
    from flops_reference import counted_flops, n_params, with_lora

    cfg = transformers.AutoConfig.for_model(model_type, **DEEPSEEK, q_lora_rank=q_lora_rank)
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(cfg, attn_implementation="eager",
                                                          experts_implementation="eager").train()
    fm = build_flop_model(cfg.to_dict())
    assert fm.sequence(200).training == pytest.approx(counted_flops(model, 200), rel=1e-9)
    assert (fm.n_parameters, fm.n_trainable_parameters) == n_params(model)
    targets = ("q_b_proj", "kv_b_proj") if q_lora_rank else ("q_proj", "kv_b_proj")
    lora = with_lora(model, targets, r=4)
    fm = build_flop_model(cfg.to_dict(), TrainingSetup(method="lora", lora_r=4, lora_target_modules=targets))
    assert fm.sequence(200).training == pytest.approx(counted_flops(lora, 200), rel=1e-9)
    assert fm.n_trainable_parameters == n_params(lora)[1]
