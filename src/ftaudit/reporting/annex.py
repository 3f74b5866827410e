"""Annex XI (technical documentation, Art. 53(1)(a)) and Annex XII (information for downstream providers,
Art. 53(1)(b)).

For a modifier who became a provider, both are limited to the modification (recital 109); Annex XI §2 is added only
for a model with systemic risk (Art. 55). Evaluation results go in §2(1) from the evaluation evidence.
"""

from __future__ import annotations

from ftaudit.regulation.citations import AI_ACT
from ftaudit.reporting.completeness import finalise
from ftaudit.reporting.context import XI, XII, Ctx
from ftaudit.reporting.document import Document, Filler, Item, Section, show
from ftaudit.reporting.evaluation_tables import metrics_table


def _doc(ctx: Ctx, name: str, title: str, citation: str, kind: str) -> Document:
    r = ctx.record
    return Document(document=name, title=title, citation=citation, run_id=r.run_id,
                    record_updated_at=r.updated_at, ftaudit_version=r.ftaudit_version, scope=ctx.scope(kind))


def _training_process(ctx: Ctx, f, prefix: str, cite: str) -> list:
    t = ctx.conf("training") or {}
    hp = {k: t[k] for k in ("epochs", "max_steps", "learning_rate", "lr_scheduler", "warmup_steps",
                            "per_device_batch_size", "gradient_accumulation_steps", "max_seq_len", "seed")
          if k in t and t[k] is not None}
    lora = ctx.conf("method", "lora") if ctx.method in ("lora", "qlora") else None
    if lora:
        hp.update({f"lora_{k}": v for k, v in lora.items() if k in ("r", "alpha", "dropout", "target_modules")})
    objective = ctx.objective_text()
    return [
        f.item(f"{prefix}.method", "Training method", cite, value=ctx.method, source="record.config.method.type",
               awaiting="no run config in the record"),
        f.item(f"{prefix}.hyperparameters", "Key settings", cite, value=hp or None, source="record.config.training",
               awaiting="no run config in the record"),
        f.item(f"{prefix}.objective", "What is optimised", cite, value=objective,
               source="record.compute.objective / record.config.training", awaiting="no run config in the record"),
        f.ask(f"{prefix}.design_choices", "Key design choices and rationale", cite, "design_choices"),
    ]


def annex_xi(ctx: Ctx) -> Document:
    f = ctx.filler()
    doc = _doc(ctx, "annex_xi", "Technical documentation (Annex XI)", f"{AI_ACT}, Art. 53(1)(a), Annex XI",
               "Annex XI technical documentation")
    s1 = Section(id="1.1", title="1. General description of the model", citation=f"{XI} point 1")
    s1.items += ctx.purpose_items(f, "1.1.a", f"{XI} 1(a)")
    s1.items += _use_and_release(f, "1.1", XI)
    s1.items += ctx.architecture_items(f, "1.1.d", f"{XI} 1(d)")
    s1.items += ctx.modality_items(f, "1.1.e", f"{XI} 1(e)")
    s1.items.append(ctx.licence_item(f, "1.1.f", f"{XI} 1(f)"))

    s2 = Section(id="1.2", title="2. Elements of the model and the process of its development",
                 citation=f"{XI} point 2")
    s2.items.append(f.ask("1.2.a", "Technical means for integration", f"{XI} 2(a)",
                          "technical_means_for_integration"))
    s2.items += _training_process(ctx, f, "1.2.b", f"{XI} 2(b)")
    s2.items += ctx.data_items(f, "1.2.c", f"{XI} 2(c)")
    s2.items += ctx.compute_items(f, "1.2.d", f"{XI} 2(d)")
    s2.items.append(ctx.energy_item(f, "1.2.e", f"{XI} 2(e)"))
    doc.sections = [s1, s2]

    d = ctx.record.decision
    if d is not None and d.role == "gpai_provider_systemic_risk":
        cite = f"{AI_ACT}, Annex XI §2"
        s3 = Section(id="2", title="Section 2: additional information for models with systemic risk", citation=cite)
        ev = ctx.record.evaluation
        results = None
        if ev:
            results = f"{sum(len(x.metrics) for x in ev.families)} metrics in {len(ev.families)} probe families " \
                      f"({', '.join(ev.suites)}), base vs tuned; gates: " + (
                          "none configured" if ev.approved is None else "all passed" if ev.approved else "FAILED")
        s3.items.append(f.item("2.1.results", "Evaluation results", f"{cite} (1)", value=results,
                               source="record.evaluation", awaiting="no evaluation in the record"))
        s3.items.append(f.ask("2.1.strategy", "Evaluation strategies, criteria and limitations", f"{cite} (1)",
                              "evaluation_strategy"))
        s3.items.append(f.ask("2.2", "Adversarial testing", f"{cite} (2); {AI_ACT}, Art. 55(1)(a)",
                              "adversarial_testing"))
        s3.items.append(f.item("2.2.adaptations", "Model adaptations, including alignment and fine-tuning",
                               f"{cite} (2)", value=_adaptation(ctx), source="record.config.method / training",
                               awaiting="no run config in the record"))
        s3.items.append(f.ask("2.3", "System architecture", f"{cite} (3)", "system_architecture"))
        if ev:
            s3.tables.append(metrics_table(ev))
        doc.sections.append(s3)
    elif d is not None:
        doc.sections.append(Section(id="2", title="Section 2 (systemic risk only)", citation=f"{AI_ACT}, Annex XI §2",
                                    note=f"Not required: the model is not a GPAI model with systemic risk "
                                         f"({show(d.role)}; {d.citation})."))
    doc.sections.append(open_source_section(ctx, f))
    return finalise(doc)


def _adaptation(ctx: Ctx) -> str | None:
    """Annex XI §2 (2): this run is itself a model adaptation; say what it changed."""
    if not ctx.cfg:
        return None
    c = ctx.record.compute
    trained = (f"{show(c.model.n_trainable_parameters)} of {show(c.model.n_parameters)} parameters trained"
               if c and c.model and c.model.n_parameters else "parameters trained: not metered")
    kind = {"dpo": "preference optimisation", "grpo": "reinforcement-learning fine-tuning"}.get(
        c.objective if c else None, "supervised fine-tuning")
    return f"{kind} ({ctx.method}) of {ctx.base_model_name}; {trained}; objective: {ctx.objective_text()}"


def open_source_section(ctx: Ctx, f: Filler) -> Section:
    """Art. 53(2): the exemption from Art. 53(1)(a)-(b) (and 54) holds only if every condition the guidelines set is
    met, and never for a model with systemic risk; each condition is a question with an answer."""
    cite = f"{AI_ACT}, Art. 53(2), Art. 54(6)"
    s = Section(id="oss", title="Open-source exemption (Art. 53(2))", citation=cite)
    conditions = [("oss_free_open_licence", "Free and open-source licence allowing access, use, modification and "
                   "distribution"), ("oss_weights_public", "Weights publicly available"),
                  ("oss_architecture_public", "Architecture information publicly available"),
                  ("oss_usage_public", "Usage information publicly available"),
                  ("oss_no_monetisation", "No monetisation")]
    for key, label in conditions:
        s.items.append(f.ask(f"oss.{key}", label, cite, key))
    answers = [ctx.answer_map.get(k) for k, _ in conditions]
    d = ctx.record.decision
    if d is not None and d.role == "gpai_provider_systemic_risk":
        verdict = "not available: the model has systemic risk (Art. 53(2), 54(6))"
    elif any(a is False for a in answers):
        unmet = [label for (_, label), a in zip(conditions, answers, strict=True) if a is False]
        verdict = "not met: " + ", ".join(unmet)
    elif all(a is True for a in answers):
        verdict = ("met: Annex XI and XII documentation and the Art. 54 representative are not owed "
                   "(Art. 53(1)(c)-(d) still are)")
    else:
        verdict = None
    s.items.append(f.item("oss.verdict", "Exemption applies", cite, value=verdict, source="answers.oss_*",
                          awaiting="answer every open-source condition above", need="human"))
    return s


def _use_and_release(f: Filler, prefix: str, annex: str) -> list[Item]:
    """Points 1(b) and 1(c), worded the same in Annex XI and Annex XII."""
    return [f.ask(f"{prefix}.b", "Acceptable use policies", f"{annex} 1(b)", "acceptable_use_policy"),
            f.ask(f"{prefix}.c.release_date", "Date of release", f"{annex} 1(c)", "release_date"),
            f.ask(f"{prefix}.c.distribution", "Methods of distribution", f"{annex} 1(c)", "distribution_methods")]


def annex_xii(ctx: Ctx) -> Document:
    f = ctx.filler()
    doc = _doc(ctx, "annex_xii", "Information for downstream providers (Annex XII)",
               f"{AI_ACT}, Art. 53(1)(b), Annex XII", "Annex XII information")
    s1 = Section(id="1", title="1. General description of the model", citation=f"{XII} point 1")
    s1.items += ctx.purpose_items(f, "1.a", f"{XII} 1(a)")
    s1.items += _use_and_release(f, "1", XII)
    s1.items.append(f.ask("1.d", "Interaction with hardware or software that is not part of the model",
                          f"{XII} 1(d)", "external_interaction"))
    s1.items.append(ctx.software_item(f, "1.e", f"{XII} 1(e)"))
    s1.items += ctx.architecture_items(f, "1.f", f"{XII} 1(f)")
    s1.items += ctx.modality_items(f, "1.g", f"{XII} 1(g)")
    s1.items.append(ctx.licence_item(f, "1.h", f"{XII} 1(h)"))
    s2 = Section(id="2", title="2. Elements of the model and the process of its development",
                 citation=f"{XII} point 2")
    s2.items.append(f.ask("2.a", "Technical means for integration", f"{XII} 2(a)",
                          "technical_means_for_integration"))
    s2.items += ctx.data_items(f, "2.c", f"{XII} 2(c)")
    doc.sections = [s1, s2]
    return finalise(doc)

