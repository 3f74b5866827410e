"""SFT, DPO and GRPO under TRL: the meter against FlopCounterMode around the same run (tests/meter/trl_runs.py).

Exact means to float rounding: every matmul the run executes is one the meter counts, and nothing else."""

import pytest
from trl_runs import run

pytestmark = pytest.mark.slow
EXACT = 1e-9


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_sft_exact_with_the_fused_head_on_one_position_fewer(tmp_path, lora):
    m = run("sft", tmp_path, lora=lora)
    assert abs(m.error) < EXACT, m.error
    assert m.state.objective == "sft" and m.state.breakdown == []
    counts = m.state.counts
    assert counts.head_positions == counts.tokens_executed - counts.sequences_executed  # hidden[:, :-1]


@pytest.mark.parametrize(("kind", "lora"), [("dpo", False), ("dpo-explicit", False), ("dpo-precomputed", False),
                                            ("dpo", True)],
                         ids=["live", "explicit", "precomputed", "lora-adapters-off"])
def test_dpo_exact_reference_counted_as_its_own_line(tmp_path, kind, lora):
    m = run(kind, tmp_path, lora=lora)
    assert abs(m.error) < EXACT, m.error
    (ref,) = m.state.breakdown
    assert ref.role == "reference" and ref.counted and "(reading)" in ref.basis and "Annex A.1" in ref.basis
    assert ref.flops.executed.backward == 0 and ref.flops.regulatory > 0
    # chosen and rejected in one forward each: the reference runs once per policy micro-batch (and over the
    # whole dataset once when precomputed, before training starts)
    assert ref.calls == m.state.counts.micro_batches
    assert m.state.objective == "dpo"
    assert 0.2 < ref.flops.regulatory / m.state.regulatory_flops < 0.4  # forward only, vs forward + backward


@pytest.mark.parametrize(("beta", "lora", "generations", "kv_heads"),
                         [(0.0, False, 2, 2), (0.04, False, 4, 4), (0.04, True, 2, 2)],
                         ids=["beta0-full-gqa", "beta0.04-full-dense", "beta0.04-lora-gqa"])
def test_grpo_exact_with_rollouts_and_reference(tmp_path, beta, lora, generations, kv_heads):
    m = run("grpo", tmp_path, lora=lora, beta=beta, num_generations=generations, kv_heads=kv_heads)
    assert abs(m.error) < EXACT, m.error
    roles = {line.role: line for line in m.state.breakdown}
    gen = roles["generation"]
    assert gen.counted and gen.counts.decode_keys, "KV-cached decoding steps were counted"
    assert gen.counts.lengths_executed, "the prefill was counted"
    assert ("reference" in roles) == (beta > 0)
    assert m.state.objective == "grpo" and "generation" in m.state.regulatory_method()


def test_kto_and_rloo_exact_by_the_same_hooks(tmp_path):
    """KTO: a reference forward on the completions and on the mismatched KL pairs, and the policy's own KL pass
    without gradient; RLOO: the rollouts, the reference and the old-policy log-probabilities."""
    kto = run("kto", tmp_path / "kto")
    assert abs(kto.error) < EXACT, kto.error
    assert {line.role for line in kto.state.breakdown} == {"reference", "policy_no_grad"}
    assert kto.state.objective == "dpo"
    rloo = run("rloo", tmp_path / "rloo", beta=0.04)
    assert abs(rloo.error) < EXACT, rloo.error
    assert {line.role for line in rloo.state.breakdown} == {"reference", "generation", "policy_no_grad"}
    assert rloo.state.objective == "grpo"


def test_orpo_exact_no_reference(tmp_path):
    """ORPO (trl.experimental): the odds-ratio term needs no reference model; chosen and rejected in one forward."""
    m = run("orpo", tmp_path)
    assert abs(m.error) < EXACT, m.error
    assert m.state.objective == "dpo" and m.state.breakdown == []


@pytest.mark.parametrize("beta", [0.0, 0.04], ids=["beta0", "beta0.04"])
def test_grpo_with_vllm_counts_the_rollouts_from_their_token_ids(tmp_path, beta):
    """use_vllm=True: the engine generates outside the hooks; its rollouts are counted from the ids it returns,
    and the policy's and reference's forwards by the hooks as before. Exact: each completion here is generated on
    its own, so its prompt is prefilled once, as the count assumes."""
    m = run("grpo", tmp_path, vllm=True, beta=beta, num_generations=4)
    assert abs(m.error) < EXACT, m.error
    roles = {line.role: line for line in m.state.breakdown}
    gen = roles["generation"]
    assert gen.counted and gen.counts.decode_keys and gen.calls == 3 * 4  # one per completion: 3 steps of 4
    assert "TRL's vLLM engine (colocate mode)" in gen.method and "upper bound" in gen.method
    assert ("reference" in roles) == (beta > 0)


def test_grpo_reward_model_reported_not_counted(tmp_path):
    m = run("grpo", tmp_path, reward_model=True)
    roles = {line.role: line for line in m.state.breakdown}
    reward = roles["reward"]
    assert not reward.counted and "auxiliary" in reward.basis and reward.flops.regulatory > 0
    # FlopCounterMode saw the reward model too: the regulatory figure plus the reward line is everything
    total = m.state.regulatory_flops + reward.flops.regulatory
    assert abs(total / m.counted - 1) < EXACT
    assert "not counted: reward" in m.state.regulatory_method()


def test_the_estimate_before_matches_the_meter_after(tmp_path):
    """`ftaudit estimate --objective grpo` for the run that then trains: rollouts exactly; the reference and the
    total from above, within 2 % (the estimate gives every position logits, an upper bound; TRL's fused head skips
    one per row, and on GPUs every unlabelled one). Three steps of 4 completions
    are 6 prompts."""
    from meter_tiny import tiny_model

    from ftaudit.compute.estimate import estimate_objective
    from ftaudit.compute.flops import TrainingSetup, build_flop_model

    m = run("grpo", tmp_path, beta=0.04, num_generations=2, max_completion_length=8, prompt_len=6)
    fm = build_flop_model(tiny_model().config.to_dict(), TrainingSetup(method="full"))
    est = estimate_objective(fm, fm, tokens=6 * 6, seq_len=6, objective="grpo", num_generations=2,
                             max_completion_length=8, reference="live")
    planned = {line.role: line.flops for line in est.breakdown}
    measured = {line.role: line.flops.regulatory for line in m.state.breakdown}
    assert planned["generation"] == pytest.approx(measured["generation"], rel=1e-12)
    assert 1 <= planned["reference"] / measured["reference"] < 1.02
    assert 1 <= est.training_flops / m.state.regulatory_flops < 1.02
