"""Instructions for use (Art. 13(3)): what a deployer needs to use the model well — capabilities and limitations,
intended and excluded uses, accuracy per group, input specifications, human oversight. The "user education"
document; its numbers come from the evaluation evidence, its judgements from a person."""

from __future__ import annotations

from ftaudit.regulation.citations import AI_ACT, EDPB_OPINION_28
from ftaudit.reporting.completeness import finalise
from ftaudit.reporting.context import Ctx
from ftaudit.reporting.document import Document, Section, sig2
from ftaudit.reporting.evaluation_tables import direction, gates_table, groups_table, metrics_table

A13 = f"{AI_ACT}, Art. 13(3)"


def instructions_for_use(ctx: Ctx) -> Document:
    r = ctx.record
    f = ctx.filler()
    doc = Document(document="instructions_for_use", title="Instructions for use", citation=f"{AI_ACT}, Art. 13",
                   run_id=r.run_id, record_updated_at=r.updated_at, ftaudit_version=r.ftaudit_version,
                   scope="For deployers of the fine-tuned model. Reading: Art. 13 binds high-risk systems; the "
                         "same information is the user education every deployer needs.")
    prov = ctx.conf("provider") or {}
    s_a = Section(id="a", title="Provider", citation=f"{A13}(a)")
    s_a.items.append(f.item("a.provider", "Identity and contact details of the provider", f"{A13}(a)",
                            value=(prov["name"] + (f", {prov['contact']}" if prov.get("contact") else "")
                                   if prov.get("name") else None), source="record.config.provider",
                            awaiting="no provider in the run config"))

    ev = r.evaluation
    s_b = Section(id="b", title="Characteristics, capabilities and limitations of performance", citation=f"{A13}(b)")
    s_b.items += ctx.purpose_items(f, "b.i", f"{A13}(b)(i)")
    better, worse = [], []
    if ev:
        for fam in ev.families:
            for m in fam.metrics:
                (better if direction(m) == "better" else worse if direction(m) == "worse" else []).append(
                    f"{m.metric} ({sig2(m.base.value) if m.base and m.base.value is not None else '—'} → "
                    f"{sig2(m.tuned.value) if m.tuned.value is not None else '—'})")
    no_eval = "no evaluation in the record (add eval_datasets to the config)"
    s_b.items.append(f.item("b.ii.capabilities", "Capabilities: where the tuned model does better than the base",
                            f"{A13}(b)(ii)", value=better if ev else None, source="record.evaluation",
                            awaiting=no_eval, display=("; ".join(better) if better else "no metric improved")
                            if ev else None))
    s_b.items.append(f.item("b.ii.limitations_measured", "Limitations: where it does worse than the base",
                            f"{A13}(b)(ii)", value=worse if ev else None, source="record.evaluation",
                            awaiting=no_eval, display=("; ".join(worse) if worse else "no metric got worse")
                            if ev else None))
    mem = ev.memorisation_statement if ev else None
    s_b.items.append(f.item("b.ii.memorisation", "What the memorisation test shows and does not show",
                            f"{EDPB_OPINION_28} (reading); GDPR Art. 5(1)(f)", value=mem.text() if mem else None,
                            source="record.evaluation.memorisation_statement",
                            awaiting="no memorisation test in the record"))
    s_b.items.append(f.ask("b.ii.known_limitations", "Known limitations", f"{A13}(b)(ii)", "known_limitations"))
    s_b.items.append(f.ask("b.iii", "Excluded uses and foreseeable misuse", f"{A13}(b)(iii)", "excluded_uses"))
    groups = [g for fam in (ev.families if ev else []) for g in fam.groups]
    s_b.items.append(f.item("b.v", "Performance for specific persons or groups", f"{A13}(b)(v)",
                            value=(f"{len(groups)} group results, see the table" if groups else
                                   "the evaluation has no per-group results" if ev else None),
                            source="record.evaluation.families[].groups", awaiting=no_eval))
    if ev:
        s_b.tables += [metrics_table(ev), groups_table(ev)]
        if ev.gates:
            s_b.tables.append(gates_table(ev))
    fmt = sorted({d["format"] for d in ctx.datasets() if d.get("format")} |
                 {x.format for x in (r.data.files if r.data else []) if x.format})
    t = ctx.conf("training") or {}
    spec = None
    if ctx.cfg:
        spec = (f"text prompts in the training format ({', '.join(fmt) or 'detected from the records'}); "
                f"{'formatted with the tokenizer chat template' if t.get('use_chat_template') else 'plain text'}; "
                f"trained on sequences up to {t.get('max_seq_len')} tokens; longer inputs were truncated in training")
    s_b.items.append(f.item("b.vi", "Input data specifications", f"{A13}(b)(vi)", value=spec,
                            source="record.config.datasets / training", awaiting="no run config in the record"))
    s_b.items.append(f.ask("b.vii", "How to interpret the output", f"{A13}(b)(vii)", "output_interpretation"))

    s_d = Section(id="d", title="Human oversight", citation=f"{A13}(d); {AI_ACT}, Art. 14")
    s_d.items.append(f.ask("d", "Human oversight measures (understand, interpret, override, stop)",
                           f"{A13}(d); {AI_ACT}, Art. 14(4)", "human_oversight_measures"))
    s_e = Section(id="e", title="Resources, lifetime and maintenance", citation=f"{A13}(e)")
    c = r.compute
    res = None
    if c and c.model and c.model.n_parameters:
        kind = "an adapter on the base model" if ctx.method in ("lora", "qlora") else "a full model"
        res = (f"{sig2(c.model.n_parameters)} parameters, delivered as {kind}; trained in "
               f"{(ctx.conf('base_model') or {}).get('dtype', 'the recorded dtype')}")
    s_e.items.append(f.item("e.resources", "Computational and hardware resources needed", f"{A13}(e)", value=res,
                            source="record.compute.model / record.config.base_model",
                            awaiting="no compute evidence"))
    s_e.items.append(f.ask("e.maintenance", "Expected lifetime, maintenance and updates", f"{A13}(e)", "maintenance"))
    s_f = Section(id="f", title="Logging", citation=f"{A13}(f); {AI_ACT}, Art. 12")
    s_f.items.append(f.ask("f", "Collecting, storing and interpreting the logs", f"{A13}(f)", "logging"))
    doc.sections = [s_a, s_b, s_d, s_e, s_f]
    return finalise(doc)
