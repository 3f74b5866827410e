"""The pre-training FLOP estimate (guidelines: compute "should be estimated before training"), as a typed record.

`estimate(config, tokens, seq_len, setup)` resolves a config.json (path or base-model registry id), builds the
FLOP model of `ftaudit.compute.flops` and returns an `Estimate` that goes into the RunRecord. Pure Python.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Literal

from pydantic import Field

from ftaudit.compute.arch import Architecture, architecture_from_config, load_model_config
from ftaudit.compute.flops import FlopModel, TrainingSetup, build_flop_model
from ftaudit.errors import BadInput
from ftaudit.numbers import parse_number
from ftaudit.strict import Strict

CONVENTION = (
    "2 FLOP per multiply-accumulate of every matmul executed in forward and backward (docs/design.md); attention "
    "QKᵀ and PV as executed; element-wise ops, norms, softmax and the embedding lookup not counted; logits at every "
    "position"
)
ACCURACY_ARCHITECTURE = (
    "architecture method: matches torch.utils.flop_counter.FlopCounterMode to within 1 % (exactly, on the tested "
    "tiny models) for one forward+backward of the same model with eager attention and no padding; real runs add "
    "padding (metered apart) and may use a kernel that skips masked attention blocks"
)
ACCURACY_PARAMETER_COUNT = (
    "parameter-count method (guidelines Annex A.2, C ≈ 6·N·D): no attention term and no architecture detail; "
    "expect up to ±30 %"
)


class EstimateSetup(Strict):
    """The training set-up the estimate assumes (mirrors `ftaudit.compute.flops.TrainingSetup`)."""

    method: Literal["full", "lora", "partial"]
    lora_r: int | None = None
    lora_target_modules: list[str] | None = None
    trainable_patterns: list[str] = Field(default_factory=list)
    quant_bits: int | None = None
    gradient_checkpointing: bool = False
    inputs_require_grad: bool | None = None
    attention_kernel: Literal["eager", "sdpa", "flash"] = "eager"

    @classmethod
    def from_setup(cls, setup: TrainingSetup) -> "EstimateSetup":
        d = asdict(setup)
        if setup.method != "lora":
            d["lora_r"] = None
            d["lora_target_modules"] = None
        elif d["lora_target_modules"] is not None:
            d["lora_target_modules"] = list(d["lora_target_modules"])
        d["trainable_patterns"] = list(d["trainable_patterns"])
        return cls(**d)


class ComputeShare(Strict):
    """One line of the estimate's breakdown (the meter reports the same lines, measured)."""

    role: Literal["policy", "reference", "generation", "reward", "value"]
    counted: bool = Field(description="Part of training_flops (the regulatory figure).")
    flops: float
    basis: str = Field(description="The citation, and the reading where it is ours.")
    assumption: str


class Estimate(Strict):
    """Training FLOPs planned for one run (one lineage step), before it starts."""

    model_type: str
    objective: Literal["sft", "dpo", "grpo"] = "sft"
    config_source: str = Field(description="config.json path or registry:<model id>.")
    flops_method: Literal["architecture", "parameter-count"]
    method: str = Field(description="Human-readable fine-tuning method, e.g. 'LoRA r=16 on q_proj, v_proj'.")
    setup: EstimateSetup
    n_parameters: int = Field(description="Logical parameters of the model as trained (base + adapters).")
    n_trainable_parameters: int
    lora_modules: int = Field(0, description="Number of modules that get LoRA adapters.")
    tokens: int = Field(description="Training tokens per epoch (unpadded).")
    seq_len: int = Field(description="Sequence length the tokens are cut into.")
    epochs: float
    sequences_per_epoch: int
    forward_flops_per_token: float = Field(description="Forward FLOP per token at seq_len (attention included).")
    training_flops_per_token: float = Field(description="Forward + backward FLOP per token at seq_len.")
    forward_flops: float
    backward_flops: float
    recompute_flops: float = Field(description="Gradient-checkpointing recompute: reported, excluded "
                                   "(guidelines Annex A.1).")
    training_flops: float = Field(description="Regulatory figure: the counted lines of the breakdown (for SFT, "
                                  "forward + backward over all epochs).")
    breakdown: list[ComputeShare] = Field(default_factory=list, description="Policy, reference and generation "
                                          "compute, each with what counts and why.")
    attention_fraction: float = Field(description="Share of training_flops in the attention S² term.")
    convention: str = CONVENTION
    assumptions: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    accuracy: str


def resolve_config(config_ref_or_dict: str | dict | Architecture) -> tuple[Architecture, str]:
    if isinstance(config_ref_or_dict, Architecture):
        return config_ref_or_dict, "architecture"
    if isinstance(config_ref_or_dict, dict):
        return architecture_from_config(config_ref_or_dict), "dict"
    config, source = load_model_config(str(config_ref_or_dict))
    return architecture_from_config(config), source


def estimate_from_model(fm: FlopModel, tokens: int, seq_len: int, *, epochs: float = 1,
                        config_source: str = "") -> Estimate:
    tokens = int(parse_number(tokens, "tokens", integer=True))
    seq_len = int(parse_number(seq_len, "sequence length", integer=True))
    if isinstance(epochs, bool) or not isinstance(epochs, (int, float)) or not math.isfinite(epochs) or epochs <= 0:
        raise BadInput(f"epochs must be a positive number, got {epochs!r}")
    per_epoch = fm.training_flops(tokens, seq_len)
    total = per_epoch.scaled(epochs)
    seq = fm.sequence(seq_len)
    attn = sum((g.per_pair.training for g in fm.attention), 0.0)
    attn_total = 0.0
    if attn:
        linear_total = fm.per_token.training * tokens
        attn_total = max(per_epoch.training - linear_total, 0.0)
    arch, setup = fm.architecture, fm.setup
    assumptions = [
        f"{tokens} tokens per epoch in unpadded sequences of {seq_len} tokens"
        + ("" if tokens % seq_len == 0 else f" (the last one {tokens % seq_len} tokens)")
        + f"; {epochs:g} epoch(s); padding adds executed compute that the meter counts apart",
        f"attention kernel {setup.attention_kernel}: " + {
            "eager": "the full S×S score matrix is computed (masking afterwards); backward computes only the "
                     "operand gradients that are required",
            "sdpa": "counted as FlopCounterMode counts the fused kernels: full S×S forward; backward dQ, dK, dV "
                    "together plus a recompute of QKᵀ (reported apart, excluded)",
            "flash": "masked causal half and out-of-window blocks skipped; backward dQ, dK, dV together plus a "
                     "recompute of QKᵀ (reported apart, excluded)",
        }[setup.attention_kernel],
        "logits computed at every position; the embedding lookup and its gradient are not matmuls",
    ]
    if setup.method != "full":
        assumptions.append(
            "backward computes input gradients only where something upstream requires grad and weight gradients only "
            "for trainable weights (autograd semantics)"
        )
    if setup.gradient_checkpointing:
        assumptions.append(
            "gradient checkpointing of every decoder layer: recompute reported apart and excluded (guidelines Annex "
            "A.1); transformers enables input gradients from the embedding output, adding input-gradient matmuls"
        )
    if arch.moe is not None:
        assumptions.append(
            f"MoE: router over {arch.moe.n_experts} experts, each token runs top-{arch.moe.top_k} routed experts"
            + (" plus the shared expert" if arch.moe.shared_intermediate else "")
            + "; dropped tokens (capacity limits) not modelled"
        )
    if setup.quant_bits in (4, 8):
        assumptions.append(f"{setup.quant_bits}-bit base: logical parameter count; matmul FLOPs as unquantised")
    return Estimate(
        model_type=arch.model_type,
        config_source=config_source,
        flops_method="architecture" if arch.known else "parameter-count",
        method=fm.method,
        setup=EstimateSetup.from_setup(setup),
        n_parameters=fm.n_parameters,
        n_trainable_parameters=fm.n_trainable_parameters,
        lora_modules=len(fm.lora_modules),
        tokens=tokens,
        seq_len=seq_len,
        epochs=float(epochs),
        sequences_per_epoch=math.ceil(tokens / seq_len),
        forward_flops_per_token=seq.forward / seq_len,
        training_flops_per_token=seq.training / seq_len,
        forward_flops=total.forward,
        backward_flops=total.backward,
        recompute_flops=total.recompute,
        training_flops=total.training,
        attention_fraction=(attn_total / per_epoch.training) if per_epoch.training else 0.0,
        assumptions=assumptions,
        warnings=list(fm.warnings),
        accuracy=ACCURACY_ARCHITECTURE if arch.known else ACCURACY_PARAMETER_COUNT,
    )


def estimate(config_ref_or_dict: str | dict | Architecture, tokens: int, seq_len: int,
             setup: TrainingSetup | None = None, epochs: float = 1) -> Estimate:
    """Training FLOPs for `tokens` (per epoch) in unpadded sequences of `seq_len`, over `epochs`."""
    setup = setup or TrainingSetup()
    arch, source = resolve_config(config_ref_or_dict)
    return estimate_from_model(build_flop_model(arch, setup), tokens, seq_len, epochs=epochs, config_source=source)


def _share(role: str, flops: float, assumption: str) -> ComputeShare:
    from ftaudit.regulation.citations import COMPUTE_ROLE_BASIS

    return ComputeShare(role=role, counted=role in ("policy", "reference", "generation"), flops=flops,
                        basis=COMPUTE_ROLE_BASIS[role], assumption=assumption)


def rollout_forward_flops(fm: FlopModel, prompt_len: int, completion_len: int) -> float:
    """One completion by KV-cached generation, as `transformers` generate runs it: the prompt's prefill (logits on
    its last position only), then completion_len − 1 decoding steps, each attending every cached key."""
    body = fm.per_token.forward - fm.head.forward
    prefill = fm.sequence(prompt_len).forward - (prompt_len - 1) * fm.head.forward
    decode = sum(body + fm.head.forward + fm.decode_step(prompt_len + i).forward for i in range(1, completion_len))
    return prefill + decode


def estimate_objective(fm: FlopModel, reference_fm: FlopModel, tokens: int, seq_len: int, *, epochs: float = 1,
                       objective: str = "sft", num_generations: int = 8, max_completion_length: int = 256,
                       reference: str = "live", config_source: str = "",
                       reward_fm: FlopModel | None = None) -> Estimate:
    """The estimate for an objective. sft: `tokens` in sequences of `seq_len`. dpo: `tokens` of the chosen and the
    rejected sequences together, reference `live` (every epoch) or `precomputed` (once) or `none`. grpo: `tokens`
    are prompt tokens in prompts of `seq_len`, each completed `num_generations` times to `max_completion_length`
    tokens; reference `live` (beta > 0) or `none`; `reward_fm`: a reward model scoring every completion (reported,
    not counted)."""
    if objective not in ("sft", "dpo", "grpo"):
        raise BadInput(f"unknown objective {objective!r}; use sft, dpo or grpo")
    if reference not in ("live", "precomputed", "none"):
        raise BadInput(f"unknown reference {reference!r}; use live, precomputed or none")
    if objective == "grpo" and reference == "precomputed":
        raise BadInput("GRPO's reference scores the policy's own fresh completions: it cannot be precomputed; use "
                       "--reference live (beta > 0) or none (beta = 0)")
    if objective != "grpo":
        e = estimate_from_model(fm, tokens, seq_len, epochs=epochs, config_source=config_source)
        lines = [_share("policy", e.training_flops, "forward and backward over every token, every epoch")]
        if objective == "dpo" and reference != "none":
            passes = epochs if reference == "live" else 1.0
            ref = reference_fm.training_flops(tokens, seq_len).forward * passes
            lines.append(_share("reference", ref, f"one forward of the frozen reference over every token, "
                                f"{'every epoch' if reference == 'live' else 'once, before training (precomputed)'}"))
    else:
        g = int(parse_number(num_generations, "--num-generations", integer=True))
        c = int(parse_number(max_completion_length, "--max-completion-length", integer=True))
        prompts = math.ceil(int(tokens) / int(seq_len))
        length = int(seq_len) + c
        e = estimate_from_model(fm, prompts * g * length, length, epochs=epochs, config_source=config_source)
        rollouts = prompts * g * epochs
        lines = [_share("policy", e.training_flops, f"forward and backward over {g} completions of every prompt "
                        f"({seq_len} + {c} tokens each)"),
                 _share("generation", rollouts * rollout_forward_flops(fm, int(seq_len), c),
                        f"{g} rollouts per prompt of {c} tokens each (the maximum: an upper bound), KV-cached "
                        "decoding, discarded completions included")]
        if reference == "live":
            lines.append(_share("reference", rollouts * reference_fm.sequence(length).forward,
                                "one forward of the frozen reference over every completion (beta > 0)"))
        if reward_fm is not None:
            lines.append(_share("reward", rollouts * reward_fm.sequence(length).forward,
                                "one forward of the reward model over every completion (its output head priced as "
                                "the config's LM head: an upper bound for a one-score head)"))
        e.assumptions.insert(0, f"GRPO: {prompts:,} prompts of {seq_len} tokens per epoch, {g} generations each; "
                                f"policy tokens = prompts × generations × (prompt + completion)")
    extra = math.fsum(line.flops for line in lines if line.role != "policy" and line.counted)
    e.objective, e.breakdown = objective, lines  # type: ignore[assignment]
    e.forward_flops += extra
    e.training_flops += extra
    e.training_flops_per_token = e.training_flops / (e.tokens * e.epochs)
    return e
