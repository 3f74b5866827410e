"""The base-model registry: every entry validates, 6·N·D estimates match their stated arithmetic, lookups work."""

import pytest

from ftaudit.errors import BadInput
from ftaudit.regulation import decide
from ftaudit.regulation.registry import load_registry, lookup, parse_arithmetic, parse_registry

REQUIRED_FAMILIES = {
    "meta-llama/Llama-2-7b-hf", "meta-llama/Llama-2-13b-hf", "meta-llama/Llama-2-70b-hf",
    "meta-llama/Meta-Llama-3-8B", "meta-llama/Meta-Llama-3-70B", "meta-llama/Llama-3.1-8B",
    "meta-llama/Llama-3.1-70B", "meta-llama/Llama-3.1-405B", "meta-llama/Llama-3.2-1B", "meta-llama/Llama-3.2-3B",
    "meta-llama/Llama-3.3-70B-Instruct", "mistralai/Mistral-7B-v0.1", "mistralai/Mistral-7B-v0.3",
    "mistralai/Mixtral-8x7B-v0.1", "mistralai/Mixtral-8x22B-v0.1", "Qwen/Qwen2-7B", "Qwen/Qwen2.5-0.5B",
    "Qwen/Qwen2.5-1.5B", "Qwen/Qwen2.5-7B", "Qwen/Qwen2.5-14B", "Qwen/Qwen2.5-32B", "Qwen/Qwen2.5-72B",
    "Qwen/Qwen3-0.6B", "Qwen/Qwen3-4B", "Qwen/Qwen3-8B", "Qwen/Qwen3-32B", "Qwen/Qwen3-30B-A3B",
    "google/gemma-2-2b", "google/gemma-2-9b", "google/gemma-2-27b", "google/gemma-3-1b-pt", "google/gemma-3-4b-pt",
    "google/gemma-3-12b-pt", "google/gemma-3-27b-pt", "microsoft/Phi-3-mini-4k-instruct",
    "microsoft/Phi-3-medium-4k-instruct", "microsoft/phi-4", "HuggingFaceTB/SmolLM2-135M",
    "HuggingFaceTB/SmolLM2-360M", "HuggingFaceTB/SmolLM2-1.7B", "allenai/OLMo-2-1124-7B", "allenai/OLMo-2-1124-13B",
    "tiiuae/falcon-7b", "tiiuae/falcon-40b", "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B",
    "deepseek-ai/DeepSeek-R1-Distill-Llama-8B", "openai-community/gpt2",
}


def test_registry_holds_the_widely_fine_tuned_models():
    registry = load_registry()
    assert len(registry) >= 30
    assert REQUIRED_FAMILIES <= {e.id for e in registry}


def test_every_entry_has_a_source_and_a_usable_config():
    for e in load_registry():
        assert e.source and e.config["model_type"], e.id
        assert e.original_compute().status in {"known", "estimated", "unknown"}


def test_estimates_match_their_stated_arithmetic():
    arch = [e for e in load_registry() if e.estimate("architecture")]
    assert len(arch) >= 40
    for e in arch:
        est = e.estimate("architecture")
        n, d, f = parse_arithmetic(est.arithmetic)
        assert n == pytest.approx(e.flops_per_token_params, rel=1e-3), e.id
        assert d == pytest.approx(e.training_tokens, rel=1e-3), e.id
        assert est.flops == pytest.approx(6 * e.flops_per_token_params * e.training_tokens, rel=1e-4), e.id
        assert f == pytest.approx(est.flops, rel=5e-3), e.id


def test_hardware_estimates_use_the_gpu_table_peak_and_fifty_percent():
    from ftaudit.compute.hardware import lookup_gpu

    hardware = [(e, e.estimate("hardware")) for e in load_registry() if e.estimate("hardware")]
    assert len(hardware) >= 15
    for e, h in hardware:
        assert h.utilisation == 0.5, e.id
        assert h.flops == pytest.approx(h.gpu_hours * 3600 * h.peak_flops_per_s * 0.5, rel=1e-4), e.id
        peak = lookup_gpu(h.gpu).peaks["bf16"] * 1e12
        assert h.peak_flops_per_s == pytest.approx(peak, rel=2e-3), e.id


def test_known_registry_errors_are_fixed():
    # The Commission's worked example (Annex A.2): 370,000 H100-hours × 989 TFLOP/s × 50 % ≈ 6.5e23.
    l1b = lookup("meta-llama/Llama-3.2-1B").estimate("hardware")
    assert l1b.gpu_hours == 370_000 and l1b.flops == pytest.approx(6.5e23, rel=0.02) and l1b.verified
    assert lookup("meta-llama/Llama-3.2-3B").estimate("hardware").flops > 1e23
    phi3 = lookup("microsoft/Phi-3-mini-4k-instruct")
    assert phi3.training_tokens == 4.9e12 and phi3.estimate("architecture").flops == pytest.approx(6 * 3.8e9 * 4.9e12)
    big = lookup("meta-llama/Llama-3.1-405B")
    assert big.systemic_risk and big.estimate("reported").flops == 3.8e25


def test_moe_entries_use_active_parameters():
    qwen_moe = lookup("Qwen/Qwen3-30B-A3B")
    assert qwen_moe.active_params == 3.3e9 and qwen_moe.config["num_experts_per_tok"] == 8
    assert qwen_moe.estimate("architecture").flops == pytest.approx(6 * 3.3e9 * 36e12)
    assert lookup("mixtral-8x7b").estimates == []
    assert lookup("mixtral-8x7b").original_compute().status == "unknown"


def test_systemic_risk_only_where_reported_compute_exceeds_1e25():
    systemic = [e.id for e in load_registry() if e.systemic_risk]
    assert systemic == ["meta-llama/Llama-3.1-405B"]
    assert all(not e.estimate("reported") or e.estimate("reported").flops <= 1e25 or e.systemic_risk
               for e in load_registry())


def test_registry_straddle_is_reported_and_every_value_marked():
    d = decide(5e22, lookup("meta-llama/Llama-3.2-1B").original_compute())
    assert d.estimates_disagree and d.role == "gpai_provider" and d.estimate_used == "architecture"
    picked = decide(5e22, lookup("meta-llama/Llama-3.2-1B").original_compute(choice="hardware"))
    assert picked.role == "downstream_modifier" and picked.estimate_selection == "user"
    # Llama 3 70B: 6·N·D below 1e25, the GPU-hours above it.
    big = decide(1e23, lookup("meta-llama/Meta-Llama-3-70B").original_compute())
    assert big.estimates_disagree and any("1e25" in r.text for r in big.reasoning if "disagree" in r.text)
    with pytest.raises(BadInput, match="not available"):
        lookup("HuggingFaceTB/SmolLM2-135M").original_compute(choice="hardware")
    for e in load_registry():
        for est in e.estimates:
            assert isinstance(est.verified, bool) and (est.source or e.source), e.id


def test_distills_say_the_teachers_compute_is_not_the_students():
    for e in load_registry():
        if "Distill" in e.id:
            assert "teacher" in e.notes and "not the student" in e.notes


def test_lookup_is_case_insensitive_on_id_and_aliases():
    assert lookup("META-LLAMA/llama-3.1-8b").id == "meta-llama/Llama-3.1-8B"
    assert lookup("meta-llama/Meta-Llama-3.1-8B-Instruct").id == "meta-llama/Llama-3.1-8B"
    assert lookup("  gpt2 ").id == "openai-community/gpt2"
    config = lookup("qwen2.5-7b").config_dict()
    config["hidden_size"] = 1
    assert lookup("qwen2.5-7b").config["hidden_size"] == 3584  # config_dict is a copy


def test_unknown_id_suggests_the_closest():
    with pytest.raises(BadInput, match="unknown model id .*did you mean .*meta-llama/Llama-3.1-8B"):
        lookup("meta-llama/Llama-3.1-8")
    with pytest.raises(BadInput, match="config.json"):
        lookup("zzzz/nothing-like-it-xyz")


def test_registry_decisions_use_the_right_rule():
    llama8b = decide(1e22, lookup("llama-3.1-8b").original_compute())
    assert llama8b.threshold_basis == "one_third_of_original"
    assert llama8b.threshold_flops == pytest.approx(6 * 8.03e9 * 15e12 / 3)
    mistral = decide(1e22, lookup("mistral-7b").original_compute())
    assert mistral.threshold_basis == "unknown_original_fallback"
    smol = decide(1e22, lookup("smollm2-135m").original_compute())
    assert smol.threshold_basis == "cumulative_gpai_criterion" and smol.role == "downstream_modifier"
    assert smol.threshold_flops == pytest.approx(1e23 - 1.62e21)
    as_gpai = decide(1e22, lookup("smollm2-135m").original_compute(is_gpai=True))
    assert as_gpai.threshold_basis == "one_third_of_original" and as_gpai.role == "gpai_provider"


def test_malformed_registry_is_one_clear_line():
    with pytest.raises(BadInput, match="not valid YAML"):
        parse_registry("models: [", origin="x.yaml")
    with pytest.raises(BadInput, match="'models' list"):
        parse_registry("{}", origin="x.yaml")
    bad = """
models:
- {id: a/b, family: f, params: 1.0e9, training_tokens: 1.0e12, estimates: [{method: architecture, flops: 6.0e21,
   verified: true}], source: s, config_confidence: verified, tokens_confidence: verified, config: {model_type: llama}}
"""
    with pytest.raises(BadInput, match="entry a/b: .*arithmetic"):
        parse_registry(bad, origin="x.yaml")
    wrong = bad.replace("verified: true}", "verified: true, arithmetic: '6 × 1e9 × 2e12'}")
    with pytest.raises(BadInput, match="not 6 × N × D"):
        parse_registry(wrong.replace("6.0e21", "1.2e22").replace("training_tokens: 1.0e12", "training_tokens: 3.0e12"),
                       origin="x.yaml")
    hw = bad.replace("method: architecture, flops: 6.0e21", "method: hardware, flops: 1.0e22, arithmetic: x, gpu: g, "
                     "gpu_hours: 1000.0, peak_flops_per_s: 1.0e15, utilisation: 0.5")
    with pytest.raises(BadInput, match="gpu_hours × 3600"):
        parse_registry(hw, origin="x.yaml")
    with pytest.raises(ValueError):
        parse_arithmetic("about 1e23")


def test_configs_rebuild_the_published_parameter_counts():
    # Cross-check of the data, not of the estimator: a mistyped config field (hidden size, layers, KV heads,
    # vocabulary, tying) moves the parameter count far more than 2 %.
    arch = pytest.importorskip("ftaudit.compute.arch")
    flops = pytest.importorskip("ftaudit.compute.flops")
    checked = 0
    for e in load_registry():
        a = arch.architecture_from_config(e.config_dict())
        if not a.known:  # the estimator falls back to a parameter-count method for this model type
            continue
        n = flops.build_flop_model(a).n_parameters
        assert n == pytest.approx(e.params, rel=0.02), e.id
        checked += 1
    assert checked >= 40
