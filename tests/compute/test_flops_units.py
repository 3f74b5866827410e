"""Pure-Python behaviour of the estimator: no torch needed (except the config-default parity check)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ftaudit.compute.arch import KNOWN_MODEL_TYPES, architecture_from_config, load_model_config
from ftaudit.compute.estimate import estimate
from ftaudit.compute.flops import TrainingSetup, attention_pairs, build_flop_model
from ftaudit.errors import BadInput

LLAMA = dict(model_type="llama", hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
             num_attention_heads=32, num_key_value_heads=8, head_dim=64, vocab_size=128256, tie_word_embeddings=True)


def test_estimator_imports_without_torch():
    code = ("import sys, ftaudit.compute.arch, ftaudit.compute.flops, ftaudit.compute.estimate, ftaudit.cli.estimate;"
            "bad=[m for m in ('torch','transformers','peft','numpy') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_known_llama_3_2_1b_parameter_count():
    # Llama-3.2-1B: 1,235,814,400 parameters (tied embeddings), as published in its safetensors index.
    assert build_flop_model(LLAMA).n_parameters == 1_235_814_400


def test_full_finetuning_is_close_to_6nd_plus_attention():
    fm = build_flop_model(LLAMA)
    s = 2048
    seq = fm.sequence(s)
    # tied: the embedding is used once, as the lm_head matmul; norms (2 per layer + final) are not matmuls
    matmul_params = fm.n_parameters - (2 * 16 + 1) * 2048
    att = 16 * 2 * 2 * 32 * 64 * s * s * 3
    assert seq.training == pytest.approx(6 * matmul_params * s + att, rel=1e-12)


def test_lora_costs_less_than_full_and_more_than_a_third():
    full = build_flop_model(LLAMA).sequence(1024).training
    lora = build_flop_model(LLAMA, TrainingSetup(method="lora", lora_r=16)).sequence(1024).training
    assert full / 3 < lora < full


def test_attention_pairs_by_kernel():
    assert attention_pairs(8, None, "eager") == 64
    assert attention_pairs(8, 4, "sdpa") == 64
    assert attention_pairs(8, None, "flash") == 36
    assert attention_pairs(8, 4, "flash") == sum(min(i + 1, 4) for i in range(8))
    assert attention_pairs(3, 10, "flash") == 6


def test_batch_and_sums_agree_and_flash_uses_windows():
    cfg = dict(LLAMA, model_type="mistral", sliding_window=512)
    eager = build_flop_model(cfg)
    lens = [100, 700, 2048]
    by_seq = sum(eager.sequence(s).training for s in lens)
    assert eager.batch(lens).training == pytest.approx(by_seq, rel=1e-12)
    assert eager.from_sums(sum(lens), sum(s * s for s in lens)).training == pytest.approx(by_seq, rel=1e-12)
    flash = build_flop_model(cfg, TrainingSetup(attention_kernel="flash"))
    assert flash.batch(lens).training == pytest.approx(sum(flash.sequence(s).training for s in lens), rel=1e-12)
    assert flash.sequence(2048).training < eager.sequence(2048).training
    assert [g.window for g in flash.attention] == [512]
    with pytest.raises(ValueError):
        flash.from_sums(10, 100)


def test_training_flops_counts_a_short_last_sequence():
    fm = build_flop_model(LLAMA)
    assert fm.training_flops(2500, 1000).training == pytest.approx(
        2 * fm.sequence(1000).training + fm.sequence(500).training, rel=1e-12)


def test_quantised_base_counts_logical_parameters():
    plain = build_flop_model(LLAMA, TrainingSetup(method="lora"))
    q4 = build_flop_model(LLAMA, TrainingSetup(method="lora", quant_bits=4))
    assert q4.n_parameters == plain.n_parameters
    assert q4.sequence(512).training == plain.sequence(512).training
    assert any("4-bit" in w for w in q4.warnings) and "QLoRA" in q4.method


def test_unknown_architecture_falls_back_with_a_warning():
    cfg = dict(model_type="brand_new_lm", hidden_size=1024, intermediate_size=4096, num_hidden_layers=8,
               num_attention_heads=16, vocab_size=32000)
    fm = build_flop_model(cfg)
    assert not fm.architecture.known
    # 6·N·D over the matmul parameters (the untied input embedding is a lookup, not a matmul)
    assert fm.sequence(100).training == pytest.approx(6 * (fm.n_parameters - 32000 * 1024) * 100, rel=1e-12)
    assert "parameter-count method" in fm.warnings[0] and "brand_new_lm" in fm.warnings[0]
    e = estimate(cfg, 10_000, 100, TrainingSetup())
    assert e.flops_method == "parameter-count" and e.warnings


def test_partial_and_lora_bad_input_is_one_clear_line():
    with pytest.raises(BadInput, match="q_proj") as exc:
        build_flop_model(LLAMA, TrainingSetup(method="lora", lora_target_modules=("query",)))
    assert "\n" not in str(exc.value)
    with pytest.raises(BadInput, match="match no parameter"):
        build_flop_model(LLAMA, TrainingSetup(method="partial", trainable_patterns=("transformer.h.*",)))
    with pytest.raises(BadInput, match="no default LoRA target"):
        build_flop_model(dict(LLAMA, model_type="olmo2"), TrainingSetup(method="lora"))
    with pytest.raises(BadInput):
        TrainingSetup(method="lora", lora_r=0)
    with pytest.raises(BadInput):
        TrainingSetup(method="partial")
    with pytest.raises(BadInput, match="model_type"):
        architecture_from_config({"hidden_size": 8})
    with pytest.raises(BadInput, match="hidden_size"):
        architecture_from_config({"model_type": "llama", "num_hidden_layers": 2})


def test_lora_regex_targets_like_peft():
    fm = build_flop_model(LLAMA, TrainingSetup(method="lora", lora_target_modules=(r".*\.1[0-5]\.self_attn\.q_proj",)))
    assert len(fm.lora_modules) == 6


def test_load_model_config(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(LLAMA))
    assert load_model_config(str(tmp_path))[0]["model_type"] == "llama"
    assert load_model_config(str(tmp_path / "config.json"))[1].endswith("config.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(BadInput, match="malformed JSON"):
        load_model_config(str(tmp_path / "bad.json"))
    (tmp_path / "list.json").write_text("[1]")
    with pytest.raises(BadInput, match="JSON object"):
        load_model_config(str(tmp_path / "list.json"))
    with pytest.raises(BadInput, match="no config.json"):
        (tmp_path / "empty").mkdir()
        load_model_config(str(tmp_path / "empty"))
    with pytest.raises(BadInput):
        load_model_config("no-such-org/no-such-model-xyz")


def test_estimate_epochs_and_validation():
    one = estimate(LLAMA, 1_000_000, 2048, TrainingSetup())
    three = estimate(LLAMA, 1_000_000, 2048, TrainingSetup(), epochs=3)
    assert three.training_flops == pytest.approx(3 * one.training_flops)
    assert one.training_flops == pytest.approx(one.forward_flops + one.backward_flops)
    assert 0 < one.attention_fraction < 0.5
    for bad in (0, -5, 1.5, float("nan")):
        with pytest.raises(BadInput):
            estimate(LLAMA, bad, 2048, TrainingSetup())


@pytest.mark.parametrize("model_type", KNOWN_MODEL_TYPES)
def test_our_config_defaults_match_transformers(model_type):
    """A config.json that omits fields must read like the full one (transformers' defaults)."""
    transformers = pytest.importorskip("transformers")
    cfg = transformers.AutoConfig.for_model(model_type)
    full = cfg.to_dict()
    sparse = cfg.to_diff_dict()
    sparse["model_type"] = model_type
    assert architecture_from_config(sparse) == architecture_from_config(full)


@pytest.mark.parametrize("kernel", ["sdpa", "flash"])
def test_fused_attention_backward_matches_torch_formula(kernel):
    """Fused SDPA/flash backward: all of dQ, dK, dV plus a recompute of QKᵀ, as torch.utils.flop_counter counts it
    (its sdpa_flop_count / sdpa_backward_flop_count, the formulas FlopCounterMode applies to the fused kernels)."""
    flop_counter = pytest.importorskip("torch.utils.flop_counter")
    cfg = dict(LLAMA, num_hidden_layers=1)
    s, heads, d = 1024, 32, 64
    q, k = (1, heads, s, d), (1, 8, s, d)
    fused = build_flop_model(cfg, TrainingSetup(method="lora", attention_kernel=kernel))
    eager = build_flop_model(cfg, TrainingSetup(method="lora"))
    pairs = attention_pairs(s, None, kernel)
    (g,) = fused.attention
    scale = pairs / (s * s)  # torch's formulas ignore causality; flash executes the unmasked pairs only
    assert g.per_pair.forward * pairs == pytest.approx(flop_counter.sdpa_flop_count(q, k, k) * scale)
    assert (g.per_pair.backward + g.per_pair.recompute) * pairs == pytest.approx(
        flop_counter.sdpa_backward_flop_count(q, q, k, k) * scale)
    # layer 0 under LoRA: eager skips dK (keys need no grad), a fused kernel does not
    assert g.per_pair.backward > eager.attention[0].per_pair.backward
    assert fused.sequence(s).recompute > 0 and eager.sequence(s).recompute == 0
