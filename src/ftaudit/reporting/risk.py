"""The risk assessment: a classification of the intended purpose (Art. 5 screening, Annex III with the Art. 6(3)
exception, Art. 50 transparency, the GPAI role from compute) and an Art. 9 risk register seeded from the evidence.

The classification is provisional until a person answers its questions: indicator phrases in the stated purpose
only point a reviewer at a rule. The register derives a likelihood only where the evidence is a measured rate
(a reading: the share of probes that showed the hazard); severity and residual risk are always human judgements.
"""

from __future__ import annotations

from ftaudit.evaluation.evidence import Comparison, EvaluationEvidence
from ftaudit.regulation.citations import AI_ACT, EDPB_OPINION_28
from ftaudit.regulation.use_rules import (
    ANNEX_III_AREAS,
    ART5_PRACTICES,
    ART6_3_CONDITIONS,
    ART6_3_PROFILING,
    ART50_DUTIES,
    DIGITAL_OMNIBUS_NOTE,
    indicator_hits,
)
from ftaudit.reporting.completeness import finalise
from ftaudit.reporting.context import Ctx
from ftaudit.reporting.document import Document, Filler, Item, Section, Table, pct, sig2
from ftaudit.reporting.evaluation_tables import est
from ftaudit.strict import Strict

ART9 = f"{AI_ACT}, Art. 9(2)"
LIKELIHOOD_READING = ("reading: likelihood band from the measured rate (0 observed: rare; under 1 %: unlikely; under "
                      "10 %: possible; under 50 %: likely; otherwise almost certain)")

HIGH_RISK_DUTIES = [
    ("Art. 9", "Risk management system over the lifecycle (identify, estimate, evaluate, mitigate; residual risk)"),
    ("Art. 10", "Data governance: origin, preparation, assumptions, representativeness, examination for biases"),
    ("Art. 11, Annex IV", "Technical documentation"),
    ("Art. 12, Art. 19", "Automatic event logs over the lifetime, kept at least six months"),
    ("Art. 13", "Instructions for use (see instructions_for_use.md)"),
    ("Art. 14", "Human oversight: understand, interpret, override, stop"),
    ("Art. 15", "Accuracy, robustness and cybersecurity (data poisoning, adversarial inputs)"),
    ("Art. 17", "Quality management system"),
    ("Art. 18", "Keep the documentation for ten years"),
    ("Art. 72", "Post-market monitoring plan"),
    ("Art. 73", "Report serious incidents (15 days; 2 days if widespread or critical infrastructure; 10 days "
                "for a death)"),
]



class RiskEntry(Strict):
    id: str
    hazard: str
    citation: str
    evidence: str
    evidence_link: str
    likelihood: Item
    severity: Item
    mitigation: Item
    residual_risk: Item


# metric (or prefix) -> (risk id, hazard, citation); the first metric found for a risk id seeds it.
HAZARDS: list[tuple[str, str, str, str]] = [
    ("quality.task.field_accuracy", "R-TASK", "Wrong or incomplete output on the intended task",
     f"{AI_ACT}, Art. 15(1), Art. 9(2)(a)"),
    ("quality.task.exact_match", "R-TASK", "Wrong or incomplete output on the intended task",
     f"{AI_ACT}, Art. 15(1), Art. 9(2)(a)"),
    ("quality.general.accuracy", "R-REGRESSION", "Loss of general capability after fine-tuning",
     f"{AI_ACT}, Art. 9(2)(a), Art. 15(1)"),
    ("bias.", "R-BIAS", "Unequal treatment of groups of people in outputs", f"{AI_ACT}, Art. 9(9), Art. 10(2)(f)"),
    ("unexpected.toxicity.rate", "R-TOXIC", "Toxic or offensive output", f"{AI_ACT}, Art. 9(2)(a)-(b)"),
    ("unexpected.harmful.compliance_rate", "R-HARMFUL", "Assisting clearly harmful requests (foreseeable misuse)",
     f"{AI_ACT}, Art. 9(2)(b)"),
    ("unexpected.personal_data.rate", "R-PII-OUTPUT", "Personal data in outputs that was not in the prompt",
     f"GDPR Art. 5(1)(f); {EDPB_OPINION_28} (reading)"),
    ("memorisation.extraction.rate", "R-MEMORISE", "Training personal data extracted from the model by querying",
     f"{EDPB_OPINION_28} (reading); GDPR Art. 5(1)(f)"),
    ("memorisation.canary.detected_rate", "R-MEMORISE", "Training personal data extracted from the model by querying",
     f"{EDPB_OPINION_28} (reading); GDPR Art. 5(1)(f)"),
]


def band(rate: float) -> str:
    if rate <= 0:
        return "rare"
    if rate < 0.01:
        return "unlikely"
    if rate < 0.10:
        return "possible"
    if rate < 0.50:
        return "likely"
    return "almost_certain"


def _metrics(ev: EvaluationEvidence) -> list[Comparison]:
    return [m for fam in ev.families if fam.status == "ok" for m in fam.metrics]


def _hazard_rate(m: Comparison) -> float | None:
    """The share of probes that showed the hazard, when the metric is a rate or a 0..1 ratio."""
    if m.tuned.value is None or m.unit not in ("rate", "ratio") or m.higher_is_better is None:
        return None
    return 1 - m.tuned.value if m.higher_is_better else m.tuned.value


def _entry(f: Filler, ctx: Ctx, rid: str, hazard: str, cite: str, evidence: str, link: str,
           rate: float | None, n: int | None, mitigation: str | None = None, unit: str = "probes") -> RiskEntry:
    ans = (ctx.answers.risks or {}).get(rid)
    f.used.add("risks")
    p = f"register.{rid}"
    if rate is not None:
        like = Item(id=f"{p}.likelihood", label=f"{rid} likelihood", citation=ART9, status="evidence",
                    value=band(rate), display=f"{band(rate).replace('_', ' ')} ({pct(rate)} of {n} {unit})",
                    source=link, note=LIKELIHOOD_READING)
    elif ans and ans.likelihood:
        like = Item(id=f"{p}.likelihood", label=f"{rid} likelihood", citation=ART9, status="answered",
                    value=ans.likelihood, display=ans.likelihood.replace("_", " "), source=f"answers.risks.{rid}")
    else:
        like = Item(id=f"{p}.likelihood", label=f"{rid} likelihood", citation=ART9, status="awaiting_human",
                    display="awaiting a human judgement (the evidence is not a rate)", question="risks")

    def human(field: str, label: str, evidence_value: str | None = None) -> Item:
        if evidence_value:
            return Item(id=f"{p}.{field}", label=f"{rid} {label}", citation=ART9, status="evidence",
                        value=evidence_value, display=evidence_value, source=link)
        value = getattr(ans, field, None) if ans else None
        if value:
            return Item(id=f"{p}.{field}", label=f"{rid} {label}", citation=ART9, status="answered", value=value,
                        display=str(value).replace("_", " "), source=f"answers.risks.{rid}.{field}")
        return Item(id=f"{p}.{field}", label=f"{rid} {label}", citation=ART9, status="awaiting_human",
                    display="awaiting a human judgement", question="risks")

    mit_answer = getattr(ans, "mitigation", None) if ans else None
    mitigation_text = "; ".join(x for x in (mitigation, mit_answer) if x) or None
    mit = human("mitigation", "mitigation", None)
    if mitigation_text:
        mit = Item(id=f"{p}.mitigation", label=f"{rid} mitigation", citation=f"{AI_ACT}, Art. 9(2)(d), 9(5)",
                   status="answered" if mit_answer else "evidence", value=mitigation_text, display=mitigation_text,
                   source=f"answers.risks.{rid}" if mit_answer else link)
    return RiskEntry(id=rid, hazard=hazard, citation=cite, evidence=evidence, evidence_link=link, likelihood=like,
                     severity=human("severity", "severity"), mitigation=mit,
                     residual_risk=human("residual_risk", "residual risk"))


def register(ctx: Ctx, f: Filler) -> list[RiskEntry]:
    out: dict[str, RiskEntry] = {}
    ev = ctx.record.evaluation
    if ev:
        gated = {g.metric: g for g in ev.gates}
        for m in _metrics(ev):
            for key, rid, hazard, cite in HAZARDS:
                if rid in out or not (m.metric == key or (key.endswith(".") and m.metric.startswith(key))):
                    continue
                rate = _hazard_rate(m)
                evidence = f"{m.metric}: base {est(m.base)}, tuned {est(m.tuned)}"
                if m.delta is not None:
                    evidence += f", delta {sig2(m.delta)}"
                gate = gated.get(m.metric)
                mitigation = (f"evaluation gate {gate.rule} {sig2(gate.threshold)} on {m.metric}: "
                              f"{'passed' if gate.passed else 'FAILED'}" if gate else None)
                out[rid] = _entry(f, ctx, rid, hazard, cite, evidence, f"run_record.json#/evaluation ({m.metric})",
                                  rate if key != "bias." else None, m.tuned.n, mitigation)
    data = ctx.record.data
    if data and data.counts.records:
        fs = data.findings
        share = fs.records_with_personal_data / data.counts.records
        anonymised = data.datasheet.anonymisation if data.datasheet and data.datasheet.anonymisation else None
        out["R-PII-DATA"] = _entry(
            f, ctx, "R-PII-DATA", "Personal data in the training data is learned and reproduced",
            "GDPR Art. 5(1)(c), Art. 6; Art. 10(2)(b) AI Act",
            f"{fs.records_with_personal_data} of {data.counts.records} training records hold personal data "
            f"({', '.join(f'{t.type} {t.count}' for t in fs.by_type) or 'no findings'})",
            "run_record.json#/data/findings", share, data.counts.records,
            f"anonymisation: {anonymised}" if anonymised else None, unit="training records")
        if data.leakage:
            lk = data.leakage
            rate = (lk.exact_overlap + lk.near_overlap) / lk.eval_records if lk.eval_records else 0.0
            out["R-CONTAMINATION"] = _entry(
                f, ctx, "R-CONTAMINATION", "Evaluation overstates quality because eval data overlaps training data",
                f"{AI_ACT}, Art. 9(7)-(8), Art. 15(1)",
                f"{lk.exact_overlap} exact and {lk.near_overlap} near overlaps of {lk.eval_records} eval records",
                "run_record.json#/data/leakage", rate, lk.eval_records, unit="eval records")
    d = ctx.record.decision
    if d is not None and (d.margin_straddles or d.original_margin_straddles):
        out["R-COMPUTE"] = _entry(
            f, ctx, "R-COMPUTE", "The GPAI role depends on the compute estimate's error margin",
            d.citation, f"the ±30 % band {d.display['margin_low_flops']}–{d.display['margin_high_flops']} FLOP "
            f"contains the threshold {d.display['threshold_flops']} FLOP", "run_record.json#/decision", None, None)
    for i, extra in enumerate(ctx.answers.additional_risks or [], start=1):
        rid = f"R-HUMAN-{i}"
        src = f"answers.additional_risks[{i - 1}]"

        def it(field: str, value: str, rid: str = rid, src: str = src) -> Item:
            return Item(id=f"register.{rid}.{field}", label=f"{rid} {field.replace('_', ' ')}", citation=ART9,
                        status="answered", value=value, display=value.replace("_", " "), source=src)
        out[rid] = RiskEntry(id=rid, hazard=extra.hazard, citation=f"{AI_ACT}, Art. 9(2)(a)",
                             evidence=extra.evidence or "stated by a person", evidence_link=src,
                             likelihood=it("likelihood", extra.likelihood), severity=it("severity", extra.severity),
                             mitigation=it("mitigation", extra.mitigation),
                             residual_risk=it("residual_risk", extra.residual_risk))
    f.used.add("additional_risks")
    unknown = set(ctx.answers.risks or {}) - set(out)
    if unknown:
        from ftaudit.errors import BadInput
        raise BadInput(f"answers: risks: unknown risk id {sorted(unknown)[0]!r} (this run's register has: "
                       f"{', '.join(out) or 'none'})")
    return list(out.values())


def _classification(ctx: Ctx, f: Filler) -> tuple[list[Section], dict]:
    p = ctx.conf("purpose") or {}
    text = " ".join(str(p.get(k) or "") for k in ("intended_purpose", "deployment_context", "task")).strip()
    a = ctx.answers
    no_purpose = "no intended purpose in the run config"

    s5 = Section(id="art5", title="Prohibited practices screening (Art. 5)", citation=f"{AI_ACT}, Art. 5(1)",
                 note="Indicators are phrases in the stated purpose that point a reviewer at a rule; no indicator "
                      "does not mean no risk.")
    flagged5 = []
    for rule in ART5_PRACTICES:
        hits = indicator_hits(text, rule.indicators) if text else None
        if hits:
            flagged5.append(rule.id)
        s5.items.append(f.item(f"art5.{rule.id}", rule.title, rule.citation,
                               value=(None if hits is None else f"indicator found ({', '.join(hits)}): review"
                                      if hits else "no indicator in the stated purpose"),
                               source="record.config.purpose", awaiting=no_purpose))
    s5.items.append(f.ask("art5.confirmed", "A person confirms none of the Art. 5 practices applies",
                          f"{AI_ACT}, Art. 5(1)", "art5_screening_confirmed"))

    s3 = Section(id="annex_iii", title="High-risk areas (Annex III) and the Art. 6(3) exception",
                 citation=f"{AI_ACT}, Art. 6(2)-(4), Annex III", note=DIGITAL_OMNIBUS_NOTE)
    suggested = [area.id for area in ANNEX_III_AREAS if text and indicator_hits(text, area.indicators)]
    found = [f"{x.id}. {x.title} ({', '.join(indicator_hits(text, x.indicators))})"
             for x in ANNEX_III_AREAS if x.id in suggested]
    s3.items.append(f.item("annex_iii.indicators", "Annex III areas suggested by the stated purpose",
                           f"{AI_ACT}, Annex III", value=(None if not text else found or "none suggested"),
                           source="record.config.purpose", awaiting=no_purpose))
    s3.items.append(f.ask("annex_iii.area", "Annex III area of the intended purpose", f"{AI_ACT}, Art. 6(2)",
                          "annex_iii_area"))
    for key, title, cite in (*ART6_3_CONDITIONS, ART6_3_PROFILING):
        if a.annex_iii_area == "none":
            s3.items.append(f.na(f"annex_iii.{key}", title, cite, "no Annex III area"))
        else:
            s3.items.append(f.ask(f"annex_iii.{key}", title, cite, key))

    s50 = Section(id="art50", title="Transparency duties (Art. 50)", citation=f"{AI_ACT}, Art. 50")
    duties: list[str] = []
    for duty in ART50_DUTIES:
        if duty.question is None:  # Art. 50(2): follows from what the model is
            generative = ctx.record.config is not None or ctx.record.compute is not None
            s50.items.append(f.item(f"art50.{duty.id}", duty.title, duty.citation,
                                    value=(f"applies (reading: a fine-tuned generative text model): {duty.duty}"
                                           if generative else None), source="record.config",
                                    awaiting="no run config in the record"))
            if generative:
                duties.append(duty.citation)
            continue
        hits = indicator_hits(text, duty.indicators) if text else []
        note = f"indicator in the stated purpose: {', '.join(hits)}" if hits else None
        it = f.ask(f"art50.{duty.id}", f"{duty.title}: {duty.duty}", duty.citation, duty.question, note=note)
        s50.items.append(it)
        if it.value is True:
            duties.append(duty.citation)

    sg = Section(id="gpai", title="GPAI role from compute", citation=f"{AI_ACT}, Art. 51-55")
    compute = ctx.compute_items(f, "gpai", f"{AI_ACT}, Annex XI §1 2(d)")
    sg.items += [compute[0], compute[-1]]  # this run's figure and the decision
    d = ctx.record.decision
    if d and d.obligations:
        sg.tables.append(Table(title="Obligations that follow", headers=["article", "obligation", "scope", "citation"],
                               rows=[[o.article, o.title, o.scope, o.citation] for o in d.obligations]))
    if d:
        sg.note = " ".join(f"Reading: {x.text} [{x.citation}]" for x in d.interpretations)

    # --- the tier, from the answers (provisional where they are missing) ---
    if a.art5_screening_confirmed is False:
        tier, final = "prohibited practice indicated: must not be placed on the market or used", True
    elif a.annex_iii_area is None:
        tier, final = ("provisional: " + (f"Annex III area(s) {', '.join(suggested)} suggested by the stated purpose"
                                          if suggested else "no Annex III area suggested by the stated purpose"
                                          if text else "no intended purpose recorded")
                       + "; awaiting `annex_iii_area`"), False
    elif a.annex_iii_area == "none":
        tier, final = "not high-risk (no Annex III area)", a.art5_screening_confirmed is True
    elif a.art6_3_profiling:
        tier, final = (f"high-risk (Annex III point {a.annex_iii_area}; profiling excludes the Art. 6(3) "
                       "exception)"), a.art5_screening_confirmed is True
    else:
        conds = [getattr(a, k) for k, _, _ in ART6_3_CONDITIONS]
        if any(c is True for c in conds) and a.art6_3_profiling is False:
            tier, final = (f"not high-risk under the Art. 6(3) exception (Annex III point {a.annex_iii_area}): "
                           "document the assessment before placing on the market (Art. 6(4)) and register it "
                           "(Art. 49(2))"), a.art5_screening_confirmed is True
        elif all(c is False for c in conds) and a.art6_3_profiling is not None:
            tier, final = f"high-risk (Annex III point {a.annex_iii_area})", a.art5_screening_confirmed is True
        else:
            tier, final = (f"provisional: Annex III point {a.annex_iii_area}; awaiting the Art. 6(3) answers"), False
    if not final and a.art5_screening_confirmed is None and not tier.startswith("provisional"):
        tier = "provisional: " + tier + "; awaiting the Art. 5 confirmation"
    classification = {"tier": tier, "final": final, "art5_indicators": flagged5,
                      "annex_iii_suggested": suggested, "annex_iii_area": a.annex_iii_area,
                      "transparency_duties": duties, "gpai_role": d.role if d else None}
    conclusion = Section(id="conclusion", title="Classification", citation=f"{AI_ACT}, Art. 5, 6, 50, 51")
    conclusion.items.append(Item(id="conclusion.tier", label="Risk tier of the intended purpose",
                                 citation=f"{AI_ACT}, Art. 6", status="answered" if final else "awaiting_human",
                                 value=tier if final else None, display=tier, source="answers" if final else None))
    sections = [conclusion, s5, s3, s50, sg]
    if "high-risk (" in tier or (not final and suggested):
        sections.append(Section(id="duties", title="High-risk duties (if the classification holds)",
                                citation=f"{AI_ACT}, Chapter III Section 2", note=DIGITAL_OMNIBUS_NOTE,
                                tables=[Table(title="", headers=["article", "duty"],
                                              rows=[[x, y] for x, y in HIGH_RISK_DUTIES])]))
    return sections, classification


def risk_assessment(ctx: Ctx) -> Document:
    r = ctx.record
    f = ctx.filler()
    doc = Document(document="risk_assessment", title="Risk classification and risk register",
                   citation=f"{AI_ACT}, Art. 5, 6, 9, 50, 51; Annex III", run_id=r.run_id,
                   record_updated_at=r.updated_at, ftaudit_version=r.ftaudit_version,
                   scope="The intended purpose in the run config and the evidence of this run. Reading: the Art. 9 "
                         "register is owed for high-risk systems; it is kept for every run as good practice.")
    sections, classification = _classification(ctx, f)
    entries = register(ctx, f)
    reg = Section(id="register", title="Risk register (Art. 9)", citation=f"{AI_ACT}, Art. 9(2), 9(5)",
                  show_items=False,
                  note=None if entries else "Awaiting evidence: no evaluation or data scan in the record to seed "
                                            "the register; add risks under `additional_risks` in answers.yaml.")
    for e in entries:
        reg.items += [e.likelihood, e.severity, e.mitigation, e.residual_risk]
    reg.tables.append(Table(title="", headers=["id", "hazard", "likelihood", "severity", "mitigation",
                                               "residual risk", "evidence"],
                            rows=[[e.id, f"{e.hazard} [{e.citation}]", e.likelihood.display, e.severity.display,
                                   e.mitigation.display, e.residual_risk.display, f"{e.evidence} ({e.evidence_link})"]
                                  for e in entries]))
    doc.sections = sections + [reg]
    doc.extra = {"classification": classification, "register": [e.model_dump(mode="json") for e in entries]}
    return finalise(doc)
