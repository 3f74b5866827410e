"""The estimator against PyTorch's FlopCounterMode on real tiny models: one forward + loss.backward(), eager
attention, no padding. Target: within 1 % (the walk is exact, so we hold it to 1e-9)."""

from __future__ import annotations

import os
import sys
from dataclasses import replace

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("peft")

sys.path.insert(0, os.path.dirname(__file__))  # the shared helper, whether or not tests/ is a package
from flops_reference import (  # noqa: E402
    DENSE_TYPES,
    counted_flops,
    n_params,
    tiny_config,
    tiny_model,
    with_lora,
    with_trainable,
)

from ftaudit.compute.flops import TrainingSetup, build_flop_model  # noqa: E402

REL = 1e-9

# LoRA target sets per architecture (module leaf names differ between families).
LORA_TARGETS = {
    "gpt2": [("c_attn",), ("c_attn", "c_fc"), ("all-linear",)],
    "bloom": [("query_key_value",), ("dense_4h_to_h",), ("all-linear",)],
    "falcon": [("query_key_value",), ("dense", "dense_4h_to_h"), ("all-linear",)],
    "gpt_neox": [("query_key_value",), ("dense",), ("all-linear",)],
    "phi3": [("qkv_proj",), ("gate_up_proj", "o_proj"), ("all-linear",)],
    "opt": [("q_proj", "v_proj"), ("fc2",), ("all-linear",)],
    "gptj": [("q_proj", "v_proj"), ("fc_out",), ("all-linear",)],
    "phi": [("q_proj", "v_proj"), ("dense", "fc1"), ("all-linear",)],
    "starcoder2": [("q_proj", "v_proj"), ("c_fc",), ("all-linear",)],
}
DEFAULT_TARGETS = [("q_proj", "v_proj"), ("v_proj", "down_proj"), ("all-linear",)]


def _ours(model_type: str, setup: TrainingSetup, seq_len: int):
    fm = build_flop_model(tiny_config(model_type).to_dict(), setup)
    return fm, fm.sequence(seq_len).training


@pytest.mark.parametrize("seq_len", [128, 1024])
@pytest.mark.parametrize("model_type", DENSE_TYPES)
def test_full_finetuning_matches_flopcounter(model_type, seq_len):
    model = tiny_model(model_type)
    fm, ours = _ours(model_type, TrainingSetup(), seq_len)
    assert ours == pytest.approx(counted_flops(model, seq_len), rel=REL)
    assert (fm.n_parameters, fm.n_trainable_parameters) == n_params(model)


@pytest.mark.parametrize("seq_len", [128, 1024])
@pytest.mark.parametrize("model_type", DENSE_TYPES)
def test_lora_matches_flopcounter(model_type, seq_len):
    # One target set per (arch, seq_len) keeps the suite fast while covering all three sets across lengths.
    sets = LORA_TARGETS.get(model_type, DEFAULT_TARGETS)
    targets = sets[0] if seq_len == 1024 else sets[1 + (len(model_type) % 2)]
    r = 4 if seq_len == 1024 else 8
    peft_model = with_lora(tiny_model(model_type), targets, r=r)
    fm, ours = _ours(model_type, TrainingSetup(method="lora", lora_r=r, lora_target_modules=targets), seq_len)
    assert ours == pytest.approx(counted_flops(peft_model, seq_len), rel=REL)
    assert (fm.n_parameters, fm.n_trainable_parameters) == n_params(peft_model)
    assert fm.lora_modules


@pytest.mark.parametrize("model_type", ["llama", "gpt2", "phi", "gemma3_text"])
def test_lora_default_targets_are_peft_defaults(model_type):
    peft_model = with_lora(tiny_model(model_type), None, r=8)
    fm, ours = _ours(model_type, TrainingSetup(method="lora", lora_r=8), 128)
    assert ours == pytest.approx(counted_flops(peft_model, 128), rel=REL)
    assert fm.n_trainable_parameters == n_params(peft_model)[1]


def test_lora_with_modules_to_save_matches():
    peft_model = with_lora(tiny_model("qwen2"), ("q_proj", "v_proj"), r=8, modules_to_save=["lm_head"])
    setup = TrainingSetup(method="lora", lora_r=8, lora_target_modules=("q_proj", "v_proj"),
                          trainable_patterns=("lm_head",))
    fm, ours = _ours("qwen2", setup, 256)
    assert ours == pytest.approx(counted_flops(peft_model, 256), rel=REL)
    assert fm.n_trainable_parameters == n_params(peft_model)[1]


PARTIAL = [
    ("llama", ("model.layers.1.*",), lambda n: n.startswith("model.layers.1.")),
    ("llama", ("*.mlp.*",), lambda n: ".mlp." in n),
    ("llama", ("lm_head",), lambda n: n.startswith("lm_head")),
    ("qwen3", ("*.self_attn.v_proj", "model.norm"), lambda n: ".self_attn.v_proj." in n or n.startswith("model.norm")),
    ("gpt2", ("transformer.h.1.*",), lambda n: n.startswith("transformer.h.1.")),
    ("gemma2", ("*post_feedforward_layernorm*",), lambda n: "post_feedforward_layernorm" in n),
    ("olmo2", ("model.layers.0.self_attn.k_norm",), lambda n: "layers.0.self_attn.k_norm" in n),
    ("gpt_neox", ("*.attention.*",), lambda n: ".attention." in n),
]


@pytest.mark.parametrize("model_type,patterns,predicate", PARTIAL, ids=[f"{p[0]}:{p[1][0]}" for p in PARTIAL])
def test_partial_finetuning_matches_flopcounter(model_type, patterns, predicate):
    model = with_trainable(tiny_model(model_type), predicate)
    fm, ours = _ours(model_type, TrainingSetup(method="partial", trainable_patterns=patterns), 192)
    assert ours == pytest.approx(counted_flops(model, 192), rel=REL)
    assert (fm.n_parameters, fm.n_trainable_parameters) == n_params(model)


@pytest.mark.parametrize("model_type,method", [("llama", "full"), ("llama", "lora"), ("qwen3", "partial"),
                                               ("gpt2", "full"), ("gpt2", "lora")])
def test_gradient_checkpointing_recompute_is_reported_apart(model_type, method):
    """FlopCounterMode sees the recompute too: counted == training + recompute. transformers turns on input grads
    with checkpointing; non-reentrant checkpointing skips a layer's final matmul unless something after it saves
    a tensor (GPT-2's residual dropout does)."""
    base = tiny_model(model_type)
    targets = ("all-linear",)
    if method == "lora":
        model = with_lora(base, targets)
    else:
        model = with_trainable(base, (lambda n: True) if method == "full" else (lambda n: ".1." in n))
    model.gradient_checkpointing_enable()
    setup = TrainingSetup(method=method, lora_r=8, lora_target_modules=targets if method == "lora" else None,
                          trainable_patterns=("*.1.*",) if method == "partial" else ())
    fm = build_flop_model(tiny_config(model_type).to_dict(), replace(setup, gradient_checkpointing=True))
    seq = fm.sequence(160)
    assert seq.recompute > 0
    assert seq.training + seq.recompute == pytest.approx(counted_flops(model, 160), rel=REL)
    plain = build_flop_model(tiny_config(model_type).to_dict(), setup).sequence(160)
    if method == "full":
        assert seq.training == pytest.approx(plain.training, rel=REL)
    else:  # input gradients down to layer 0 (enable_input_require_grads) cost more than without checkpointing
        assert seq.training > plain.training


FALCON_VARIANTS = {
    "multi-query, parallel (falcon-7b)": dict(),
    "MHA, sequential, biases": dict(multi_query=False, parallel_attn=False, bias=True),
    "new decoder, 2 LNs (falcon-40b)": dict(new_decoder_architecture=True, num_kv_heads=2),
    "new decoder, 1 LN": dict(new_decoder_architecture=True, num_kv_heads=2, num_ln_in_parallel_attn=1),
    "alibi": dict(alibi=True),
}


@pytest.mark.parametrize("variant", sorted(FALCON_VARIANTS))
def test_falcon_generations_match_flopcounter(variant):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.for_model("falcon", hidden_size=64, num_hidden_layers=2, num_attention_heads=4, vocab_size=256,
                               ffn_hidden_size=128, pad_token_id=0, bos_token_id=1, eos_token_id=2,
                               **FALCON_VARIANTS[variant])
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager").train()
    lora = with_lora(model, ("all-linear",), r=4)
    for m, setup in ((model, TrainingSetup()),
                     (lora, TrainingSetup(method="lora", lora_r=4, lora_target_modules=("all-linear",)))):
        fm = build_flop_model(cfg.to_dict(), setup)
        assert fm.sequence(200).training == pytest.approx(counted_flops(m, 200), rel=REL)
        assert (fm.n_parameters, fm.n_trainable_parameters) == n_params(m)


@pytest.mark.parametrize("model_id", ["Qwen/Qwen2.5-0.5B"])
def test_real_size_models_on_the_meta_device(model_id):
    """Real shapes (GQA, tied embeddings, biases) at S = 2048: FlopCounterMode counts meta tensors without computing."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM

    registry = pytest.importorskip("ftaudit.regulation.registry")
    cfg = registry.lookup(model_id).config_dict()
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.for_model(**cfg), attn_implementation="eager")
    model.train()

    def count(m):
        from torch.utils.flop_counter import FlopCounterMode

        ids = torch.zeros((1, 2048), dtype=torch.long, device="meta")
        counter = FlopCounterMode(display=False)
        with counter:
            m(input_ids=ids, labels=ids).loss.backward()
        return float(counter.get_total_flops())

    assert build_flop_model(cfg).sequence(2048).training == pytest.approx(count(model), rel=REL)
    assert build_flop_model(cfg).n_parameters == n_params(model)[0]
    lora = get_peft_model(model, LoraConfig(r=16, target_modules=["q_proj", "v_proj"]))
    setup = TrainingSetup(method="lora", lora_r=16, lora_target_modules=("q_proj", "v_proj"))
    assert build_flop_model(cfg, setup).sequence(2048).training == pytest.approx(count(lora), rel=REL)


@pytest.mark.parametrize("model_type,targets", [("llama", ("embed_tokens", "v_proj")), ("gpt2", ("wte", "c_fc")),
                                                ("qwen2", ("embed_tokens", "lm_head"))])
def test_lora_on_embeddings_and_head(model_type, targets):
    peft_model = with_lora(tiny_model(model_type), targets, r=4)
    fm, ours = _ours(model_type, TrainingSetup(method="lora", lora_r=4, lora_target_modules=targets), 160)
    assert ours == pytest.approx(counted_flops(peft_model, 160), rel=REL)
    assert (fm.n_parameters, fm.n_trainable_parameters) == n_params(peft_model)
