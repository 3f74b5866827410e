"""The Hugging Face model card (`model_card.md`): YAML metadata that `huggingface_hub.ModelCard` loads (base_model,
datasets, license, tags, co2_eq_emissions, and a `compute` block with the FLOP, method and decision), then the usual
sections filled from the evidence, and the completeness checklist.

co2_eq_emissions.emissions needs the grid's carbon intensity, which no counter measures: it is filled only from the
`grid_carbon_intensity_g_per_kwh` answer, never from an assumed average.
"""

from __future__ import annotations

from typing import Any

import yaml

from ftaudit.regulation.citations import AI_ACT, EDPB_OPINION_28
from ftaudit.reporting.completeness import finalise
from ftaudit.reporting.context import XI, Ctx
from ftaudit.reporting.document import Document, Item, Section, Table, show
from ftaudit.reporting.evaluation_tables import metrics_table
from ftaudit.reporting.markdown import render_markdown

HF = "Hugging Face model card specification"


def metadata(ctx: Ctx) -> dict[str, Any]:
    r = ctx.record
    meta: dict[str, Any] = {}
    if r.data and r.data.languages:
        langs = [x.language for x in r.data.languages if x.language != "und"]
        if langs:
            meta["language"] = langs
    if ctx.answers.licence:
        meta["license"] = ctx.answers.licence
    method = ctx.method
    meta["library_name"] = "peft" if method in ("lora", "qlora") else "transformers"
    meta["pipeline_tag"] = "text-generation"
    if ctx.base_model_hub_id:
        meta["base_model"] = ctx.base_model_hub_id
        meta["base_model_relation"] = "adapter" if method in ("lora", "qlora") else "finetune"
    names = [d["name"] for d in ctx.datasets() if d.get("name")]
    if names:
        meta["datasets"] = names
    meta["tags"] = ["ftaudit", "eu-ai-act"] + ([method] if method else []) + (["peft"] if method in ("lora", "qlora")
                                                                               else [])
    e = r.compute.energy if r.compute else None
    if e and e.kwh is not None:
        co2: dict[str, Any] = {}
        if ctx.answers.grid_carbon_intensity_g_per_kwh is not None:
            co2["emissions"] = e.kwh * ctx.answers.grid_carbon_intensity_g_per_kwh  # grams CO2e
            co2["source"] = (f"ftaudit: {e.kind} energy {show(e.kwh)} kWh × stated grid intensity "
                             f"{show(ctx.answers.grid_carbon_intensity_g_per_kwh)} g/kWh")
        else:
            co2["source"] = (f"ftaudit: {e.kind} energy {show(e.kwh)} kWh; emissions await the grid carbon intensity "
                             "(answers.grid_carbon_intensity_g_per_kwh)")
        co2["training_type"] = "fine-tuning"
        if ctx.answers.training_location:
            co2["geographical_location"] = ctx.answers.training_location
        hw = r.compute.hardware if r.compute else None
        gpus = sorted({g.name for g in hw.gpus}) if hw else []
        co2["hardware_used"] = ", ".join(gpus) if gpus else "CPU (no GPU counters)"
        meta["co2_eq_emissions"] = co2
    c, d = r.compute, r.decision
    compute: dict[str, Any] = {}
    if c and c.regulatory_flops is not None:
        compute.update({"flops": c.regulatory_flops, "flops_display": show(c.regulatory_flops),
                        "method": c.regulatory_flops_method, "objective": c.objective,
                        "breakdown": ctx.compute_breakdown()})
        if c.lineage:
            compute["lineage_cumulative_flops"] = c.lineage.cumulative_flops
    if d:
        compute["decision"] = {"role": d.role, "threshold_flops": d.threshold_flops,
                               "threshold_display": d.display["threshold_flops"], "rule": d.rule,
                               "citation": d.citation}
    meta["compute"] = compute or "awaiting evidence: no compute or decision in the run record"
    meta["ftaudit"] = {"run_id": r.run_id, "version": r.ftaudit_version}
    return meta


def model_card_doc(ctx: Ctx) -> Document:
    r = ctx.record
    f = ctx.filler()
    doc = Document(document="model_card", title=f"Model card: {ctx.model_name or 'fine-tuned model'}",
                   citation=f"{HF}; {AI_ACT}, Art. 53(1)(b) and Annex XII (reading: the card carries the "
                            "downstream information)", run_id=r.run_id, record_updated_at=r.updated_at,
                   ftaudit_version=r.ftaudit_version, scope="The fine-tuned model of this run and how it was made.")
    det = Section(id="details", title="Model details")
    det.items += ctx.architecture_items(f, "details", f"{XI} 1(d)")
    det.items.append(ctx.licence_item(f, "details.licence", f"{XI} 1(f)"))
    prov = ctx.conf("provider") or {}
    det.items.append(f.item("details.provider", "Developed by", f"{XI} 1", value=prov.get("name"),
                            source="record.config.provider", awaiting="no provider in the run config"))
    uses = Section(id="uses", title="Uses")
    uses.items += ctx.purpose_items(f, "uses", f"{XI} 1(a)")
    uses.items.append(f.ask("uses.out_of_scope", "Out-of-scope uses", f"{AI_ACT}, Art. 13(3)(b)(iii)",
                            "excluded_uses"))
    uses.items.append(f.ask("uses.aup", "Acceptable use policy", f"{XI} 1(b)", "acceptable_use_policy"))
    data = Section(id="training_data", title="Training data")
    data.items += ctx.data_items(f, "data", f"{XI} 2(c)")
    proc = Section(id="training_procedure", title="Training procedure, compute and the GPAI decision")
    proc.items += ctx.compute_items(f, "compute", f"{XI} 2(d)")
    ev = Section(id="evaluation", title="Evaluation")
    if r.evaluation:
        e = r.evaluation
        approved = "no gates configured" if e.approved is None else "all gates passed" if e.approved else \
            "a gate FAILED: not approved"
        ev.items.append(Item(id="evaluation.summary", label="Evaluation", citation=f"{XI} §2 (1); {AI_ACT}, Art. 15",
                             status="evidence", value={"suites": e.suites, "approved": e.approved},
                             display=f"suites {', '.join(e.suites)}; {approved}", source="record.evaluation"))
        ev.tables.append(metrics_table(e))
    else:
        ev.items.append(f.item("evaluation.summary", "Evaluation", f"{AI_ACT}, Art. 15",
                               awaiting="no evaluation in the record (add eval_datasets to the config)"))
    env = Section(id="environment", title="Environmental impact")
    env.items.append(ctx.energy_item(f, "environment.energy", f"{XI} 2(e)"))
    env.items.append(f.ask("environment.intensity", "Grid carbon intensity (g CO2e/kWh)", HF,
                           "grid_carbon_intensity_g_per_kwh"))
    pii = Section(id="personal_data", title="Personal data", citation=f"GDPR Art. 5(1)(c); {EDPB_OPINION_28}")
    if r.data:
        pii.tables.append(Table(title="Findings in the training data by type (counts only)",
                                headers=["type", "category", "findings", "records"],
                                rows=[[t.type, t.category, show(t.count), show(t.records)]
                                      for t in r.data.findings.by_type]))
    doc.sections = [det, uses, data, proc, ev, env, pii]
    return finalise(doc)


def render_model_card(ctx: Ctx, doc: Document) -> str:
    meta = yaml.safe_dump(metadata(ctx), sort_keys=False, allow_unicode=True, width=100)
    return f"---\n{meta}---\n\n{render_markdown(doc)}"
