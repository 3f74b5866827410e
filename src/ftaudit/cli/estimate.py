"""`ftaudit estimate`: training FLOPs before training, full vs LoRA vs the plan, and the GPAI-role decision.

Contract (other tools depend on it): `--config --tokens --seq-len [--method] [--lora-r] [--lora-target-modules]
[--json]`; with --json one JSON object on stdout with training_flops, forward_flops_per_token, n_parameters,
n_trainable_parameters and decision{role, threshold_flops, rule, citation, headroom_fraction}. Exit 0 on success,
1 on bad input (one line on stderr). Never imports torch or transformers.
"""

from __future__ import annotations

import argparse


def _yes_no(raw: str) -> bool:
    if raw.lower() in ("true", "yes", "1"):
        return True
    if raw.lower() in ("false", "no", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {raw!r}")


def add_base_options(p) -> None:
    """--base-is-gpai and --original-estimate (also used by `ftaudit status`)."""
    p.add_argument("--base-is-gpai", type=_yes_no, default=None, metavar="true|false",
                   help="the base was placed on the market as a GPAI model (true: the one-third rule applies even "
                   "below 1e23) or not (false); default: the 1e23 indicative criterion decides")
    p.add_argument("--original-estimate", choices=["reported", "hardware", "architecture"], default=None,
                   help="which registry estimate of the original's compute decides (default: the stricter outcome)")


def register(sub) -> None:
    p = sub.add_parser(
        "estimate",
        help="estimate training FLOPs from a config.json and judge the GPAI-provider role",
        description="Estimate the training FLOPs of a fine-tuning run from the model's config.json (architecture "
        "method, guidelines Annex A.2) and judge the resulting role under the EU AI Act.",
    )
    p.add_argument("--config", required=True, metavar="PATH_OR_MODEL_ID",
                   help="config.json, a directory holding one, or a model id in the base-model registry")
    p.add_argument("--tokens", required=True, metavar="N",
                   help="training tokens per epoch (unpadded); dpo: chosen and rejected together; grpo: prompt tokens")
    p.add_argument("--seq-len", required=True, metavar="S", help="sequence length (grpo: prompt length)")
    p.add_argument("--objective", choices=["sft", "dpo", "grpo"], default="sft",
                   help="supervised (default), preference (DPO/KTO/ORPO) or RL (GRPO/RLOO) fine-tuning")
    p.add_argument("--num-generations", default="8", metavar="G", help="grpo: completions per prompt (default 8)")
    p.add_argument("--max-completion-length", default="256", metavar="C",
                   help="grpo: tokens per completion (default 256; counted at the maximum)")
    p.add_argument("--reward-model", metavar="CONFIG", default=None,
                   help="grpo: a reward model (config.json, its directory or a registry id) that scores every "
                        "completion: its own line in the breakdown, not counted (auxiliary model)")
    p.add_argument("--reference", choices=["live", "precomputed", "none"], default=None,
                   help="reference model forwards: dpo default live (every epoch) or precomputed (once); grpo "
                   "default none (beta 0) or live (beta > 0)")
    p.add_argument("--epochs", default="1", metavar="E", help="passes over the tokens (default 1)")
    p.add_argument("--method", choices=["full", "lora", "partial"], default=None,
                   help="fine-tuning method (default full; partial when --trainable is given)")
    p.add_argument("--lora-r", default="16", metavar="R", help="LoRA rank (default 16)")
    p.add_argument("--lora-target-modules", default=None, metavar="a,b,...",
                   help="LoRA targets: leaf module names, all-linear, or one regex (default: PEFT's for the model)")
    p.add_argument("--trainable", default=None, metavar="PATTERNS",
                   help="comma-separated fnmatch patterns of trainable modules (partial FT; with LoRA: "
                   "modules_to_save), e.g. 'model.layers.11.*,lm_head'")
    p.add_argument("--quant", choices=["4", "8"], default=None, help="4- or 8-bit quantised base (QLoRA)")
    p.add_argument("--gradient-checkpointing", action="store_true",
                   help="report activation recompute (excluded from the regulatory figure, guidelines Annex A.1)")
    p.add_argument("--attention-kernel", choices=["eager", "sdpa", "flash"], default="eager",
                   help="flash skips masked attention blocks (default eager: full S×S)")
    p.add_argument("--original-flops", default=None, metavar="FLOP",
                   help="training FLOP of the original model (overrides PRETRAIN_FLOPS and the registry)")
    p.add_argument("--original-systemic", action="store_true",
                   help="the original is a GPAI model with systemic risk (Art. 51)")
    add_base_options(p)
    p.add_argument("--prior-flops", default="0", metavar="FLOP",
                   help="modification FLOP already spent on this lineage (earlier jobs)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.add_argument("-o", "--output", default=None, metavar="FILE", help="also write the JSON object to FILE")
    p.set_defaults(handler=run)


def _number(raw: str, what: str, *, positive: bool, integer: bool = False) -> float:
    from ftaudit.numbers import parse_number

    return parse_number(raw, what, positive=positive, integer=integer)


# Far beyond any real run (the largest published pre-training corpora hold a few 1e13 tokens): a larger value is a
# typo, refused with the bound instead of a 300-digit answer.
MAX_TOKENS, MAX_SEQ_LEN, MAX_EPOCHS = 1e16, 1e8, 1e6


def _bounded(raw: str, what: str, bound: float, unit: str, *, integer: bool = True) -> float:
    from ftaudit.errors import BadInput

    value = _number(raw, what, positive=True, integer=integer)
    if value > bound:
        raise BadInput(f"{what} {raw} is more than {bound:.0e} {unit}; check the number")
    return value


def _original(args, config_source: str):
    """The original's compute by the one order of ftaudit.regulation.resolve_original."""
    from ftaudit.regulation import resolve_original

    registry_id = config_source.split(":", 1)[1] if config_source.startswith("registry:") else None
    return resolve_original(
        flops=args.original_flops, source="--original-flops" if args.original_flops is not None else None,
        systemic_risk=True if args.original_systemic else None, is_gpai=args.base_is_gpai,
        estimate=args.original_estimate, model_id=registry_id)


def _setup(args, method: str, *, lora_targets=None, quant=None):
    from ftaudit.compute.flops import TrainingSetup

    patterns = tuple(p.strip() for p in (args.trainable or "").split(",") if p.strip())
    return TrainingSetup(
        method=method,
        lora_r=int(_number(args.lora_r, "--lora-r", positive=True, integer=True)),
        lora_target_modules=lora_targets,
        trainable_patterns=patterns if method != "full" else (),
        quant_bits=quant,
        gradient_checkpointing=bool(args.gradient_checkpointing),
        attention_kernel=args.attention_kernel,
    )


def run(args) -> int:
    import json
    import sys

    from ftaudit.compute.estimate import estimate_objective, resolve_config
    from ftaudit.compute.flops import build_flop_model
    from ftaudit.errors import BadInput
    from ftaudit.regulation import decide, tokens_until_threshold
    from ftaudit.regulation.figures import flops2, percent2

    tokens = int(_bounded(args.tokens, "--tokens", MAX_TOKENS, "tokens per epoch"))
    seq_len = int(_bounded(args.seq_len, "--seq-len", MAX_SEQ_LEN, "tokens per sequence"))
    epochs = _bounded(args.epochs, "--epochs", MAX_EPOCHS, "epochs", integer=False)
    prior = _number(args.prior_flops, "--prior-flops", positive=False)
    method = args.method or ("partial" if args.trainable else "full")
    if method == "partial" and not args.trainable:
        raise BadInput("--method partial needs --trainable PATTERNS (e.g. 'model.layers.11.*,lm_head')")
    targets = None
    if args.lora_target_modules is not None:
        targets = tuple(t.strip() for t in args.lora_target_modules.split(",") if t.strip())
        if not targets:
            raise BadInput("--lora-target-modules is empty; give names like q_proj,v_proj or all-linear")
    quant = int(args.quant) if args.quant else None
    arch, source = resolve_config(args.config)
    original = _original(args, source)
    reference_fm = build_flop_model(arch, _setup(args, "full", quant=quant))
    objective = dict(objective=args.objective, reference=args.reference or ("none" if args.objective == "grpo"
                                                                             else "live"),
                     num_generations=_number(args.num_generations, "--num-generations", positive=True, integer=True),
                     max_completion_length=_number(args.max_completion_length, "--max-completion-length",
                                                   positive=True, integer=True))

    if args.reward_model and args.objective != "grpo":
        raise BadInput("--reward-model prices the scoring of rollouts: use it with --objective grpo")
    reward_fm = (build_flop_model(resolve_config(args.reward_model)[0], _setup(args, "full"))
                 if args.reward_model else None)

    def estimate_for(fm, tokens, seq_len, *, epochs, config_source):
        return estimate_objective(fm, reference_fm, tokens, seq_len, epochs=epochs, config_source=config_source,
                                  reward_fm=reward_fm, **objective)

    planned_setup = _setup(args, method, lora_targets=targets, quant=quant)
    planned = estimate_for(build_flop_model(arch, planned_setup), tokens, seq_len, epochs=epochs,
                                  config_source=source)
    modification = prior + planned.training_flops
    decision = decide(modification, original)

    # Side by side: full fine-tuning, LoRA (the given targets, else PEFT's default, else all-linear) and the plan.
    compare: dict[str, object] = {}
    if method != "full":
        compare["full"] = estimate_for(build_flop_model(arch, _setup(args, "full", quant=quant)), tokens,
                                              seq_len, epochs=epochs, config_source=source)
    else:
        compare["full"] = planned
    if method == "lora":
        compare["lora"] = planned
    else:
        lora_targets = targets
        try:
            fm = build_flop_model(arch, _setup(args, "lora", lora_targets=lora_targets, quant=quant))
        except BadInput:
            fm = build_flop_model(arch, _setup(args, "lora", lora_targets=("all-linear",), quant=quant))
        compare["lora"] = estimate_for(fm, tokens, seq_len, epochs=epochs, config_source=source)
    if method == "partial":
        compare["partial"] = planned

    per_epoch = planned.training_flops / epochs
    more_tokens = tokens_until_threshold(planned.training_flops_per_token, decision)
    more_epochs = max(decision.headroom_flops, 0.0) / per_epoch if per_epoch else 0.0
    warnings = list(planned.warnings)
    if arch.context_window and seq_len > arch.context_window:
        warnings.append(f"--seq-len {seq_len:,} is longer than the model's context window ({arch.context_window:,} "
                        "positions): the estimate counts sequences the model cannot take")
    result = {
        **planned.model_dump(mode="json"),
        "warnings": warnings,
        "prior_flops": prior,
        "lineage_flops": modification,
        "decision": decision.model_dump(mode="json"),
        "headroom": {
            "more_tokens_under_threshold": more_tokens,
            "more_epochs_under_threshold": more_epochs,
            "method": "tokens at this run's training FLOP per token; epochs of this run's tokens",
        },
        "comparison": {
            k: {
                "method": e.method,
                "training_flops": e.training_flops,
                "forward_flops_per_token": e.forward_flops_per_token,
                "n_parameters": e.n_parameters,
                "n_trainable_parameters": e.n_trainable_parameters,
                "role": decide(prior + e.training_flops, original).role,
            }
            for k, e in compare.items()
        },
    }
    text = json.dumps(result, indent=2) + "\n"
    if args.output:
        from ftaudit.io import atomic_write_text

        atomic_write_text(args.output, text)
    if args.json:
        sys.stdout.write(text)
        return 0

    out = sys.stdout.write
    out(f"ftaudit estimate — {args.config} ({arch.model_type}; {planned.flops_method} method)\n")
    out(f"{tokens:,} tokens per epoch × {epochs:g} epoch(s), unpadded sequences of {seq_len} tokens; objective "
        f"{planned.objective}\n\n")
    cols = list(compare.items())
    header = ["", *[("▶ " if e is planned else "") + k for k, e in cols]]
    rows = [
        ["method", *[e.method for _, e in cols]],
        ["parameters", *[flops2(e.n_parameters) for _, e in cols]],
        ["trainable", *[flops2(e.n_trainable_parameters) for _, e in cols]],
        ["forward FLOP/token", *[flops2(e.forward_flops_per_token) for _, e in cols]],
        ["training FLOP", *[flops2(e.training_flops) for _, e in cols]],
        ["role", *[result["comparison"][k]["role"] for k, _ in cols]],
    ]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        out("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() + "\n")
    if len(planned.breakdown) > 1:
        out("\nbreakdown (planned):\n")
        for line in planned.breakdown:
            out(f"  {line.role:<11} {flops2(line.flops)} FLOP  {'counted' if line.counted else 'not counted'}: "
                f"{line.assumption}\n")
    if planned.recompute_flops:
        out(f"\nrecompute (gradient checkpointing, excluded): {flops2(planned.recompute_flops)} FLOP\n")
    out(f"\nplanned: {planned.method}: {flops2(planned.training_flops)} FLOP"
        + (f" + {flops2(prior)} earlier in the lineage = {flops2(modification)} FLOP" if prior else "") + "\n")
    used = decision.original
    if used.flops is not None:
        out(f"original model: {flops2(used.flops)} FLOP ({used.status}; {used.source})"
            + (", systemic risk" if used.systemic_risk else "") + "\n")
    else:
        out(f"original model: training compute unknown ({used.source})"
            + (", systemic risk" if used.systemic_risk else "") + "\n")
    for o in decision.estimates:
        mark = "▶" if o.method == decision.estimate_used else " "
        out(f"  {mark} {o.method:<12} {flops2(o.original_flops)} FLOP → threshold {flops2(o.threshold_flops)} FLOP, "
            f"{o.role}{'' if o.verified else ' (unverified inputs)'}\n")
    if decision.estimates_disagree:
        out(f"  the estimates disagree; {'your pick' if decision.estimate_selection == 'user' else 'the stricter'} "
            f"({decision.estimate_used}) decides; choose with --original-estimate\n")
    out(f"decision: {decision.role} — threshold {flops2(decision.threshold_flops)} FLOP, headroom "
        f"{percent2(decision.headroom_fraction)}\n")
    out(f"  rule: {decision.rule}\n  citation: {decision.citation}\n")
    if decision.alternative is not None:
        out(f"  reading: {decision.alternative.text}\n")
    if decision.margin_straddles:
        out("  the ±30 % estimation margin straddles the threshold (guidelines Annex A.2)\n")
    if more_tokens > 0:
        out(f"  fits under the threshold: {more_tokens:,} more tokens (≈ {more_epochs:.3g} more epochs of this run)\n")
    else:
        out("  no more tokens fit under the threshold\n")
    for w in result["warnings"]:
        out(f"warning: {w}\n")
    return 0
