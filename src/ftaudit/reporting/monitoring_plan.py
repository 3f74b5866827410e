"""The post-market monitoring plan (Art. 72): what the monitor logs, which figures it watches against which
baselines of the run's own evaluation, the thresholds, the probe schedule, drift tests, incident deadlines,
retention and who is responsible. Facts come from the run and ftaudit's monitor; choices from `monitor.yaml`;
what neither gives awaits a person. Art. 72(3) makes the plan part of the technical documentation (Annex IV); the
Commission's template (Art. 72(3), implementing act) had not been adopted when this was written."""

from __future__ import annotations

from ftaudit.monitor import checks, drift, incidents, status
from ftaudit.monitor.events import RequestEvent
from ftaudit.regulation import citations
from ftaudit.reporting.completeness import finalise
from ftaudit.reporting.context import Ctx
from ftaudit.reporting.document import Document, Section, Table, sig2

A72 = citations.POST_MARKET_MONITORING


def post_market_monitoring_plan(ctx: Ctx) -> Document:
    r, f, plan = ctx.record, ctx.filler(), ctx.monitor_plan
    doc = Document(document="post_market_monitoring_plan", title="Post-market monitoring plan", citation=A72,
                   run_id=r.run_id, record_updated_at=r.updated_at, ftaudit_version=r.ftaudit_version,
                   scope="For the fine-tuned model once deployed behind `ftaudit monitor gateway`. Reading: Art. 72 "
                         "binds providers of high-risk systems; for other uses the plan is voluntary.")
    weights = r.weights()
    s1 = Section(id="1", title="System monitored", citation=A72)
    s1.items.append(f.item("1.model", "Model version", A72, value=ctx.model_name, source="record.model.output_name"))
    s1.items.append(f.item("1.weights", "Weights it serves (sha256)", A72, value=weights.sha256 if weights else None,
                           source=f"record.artefacts[{weights.path}]" if weights else None,
                           awaiting="no weights file among the run's artefacts"))
    doc.sections.append(s1)

    logs = citations.EVENT_LOGS
    s2 = Section(id="2", title="What is logged", citation=logs)
    fields = [name for name in RequestEvent.model_fields if name not in ("input", "output")]
    s2.items.append(f.item("2.fields", "Recorded for every request", logs, value=fields,
                           source="ftaudit.monitor.events.RequestEvent"))
    s2.items.append(f.item("2.content", "Content policy for prompts and answers", logs,
                           value=plan.content if plan else None, source="monitor.yaml content",
                           awaiting="give content: hash | redacted | full in monitor.yaml"))
    s2.items.append(f.item("2.retention", "Retention of the logs (days)", citations.LOG_RETENTION,
                           value=plan.retention_days if plan else None, source="monitor.yaml retention_days",
                           need="human",
                           awaiting="give retention_days in monitor.yaml (at least 184)"))
    s2.items.append(f.item("2.integrity", "Integrity of the logs", logs,
                           value="hash chains per gateway process, anchored by signed ledger checkpoints every 10 s; "
                                 "checked by `ftaudit verify`", source="ftaudit.monitor.log"))
    doc.sections.append(s2)

    base = status.baselines(r)
    rows = []
    for flag in checks.FLAGS:
        _, value = status.flag_baseline(flag, base)
        metric = status.BASELINES.get(flag, ("—",))[0]
        rows.append([f"output.{flag}", metric, sig2(value) if value is not None else "—"])
    s3 = Section(id="3", title="Figures watched and their baselines", citation=f"{A72}(2)",
                 note="Live rates over answered requests (95 % Wilson intervals), beside the tuned model's figure "
                      "in this run's evaluation where one measures the same thing.")
    s3.tables.append(Table(title="Live figures", headers=["figure", "evaluation metric", "baseline"], rows=rows))
    s3.items.append(f.item("3.drift", "Drift tests", f"{A72}(2)",
                           value=f"PSI over baseline deciles of prompt and answer lengths (moderate above "
                                 f"{drift.PSI_MODERATE}, shift above {drift.PSI_SHIFT}; a reading); two-proportion "
                                 f"z-tests of every rate, p < {drift.P_CHANGE}", source="ftaudit.monitor.drift"))
    s3.items.append(f.item("3.probe", "Probe schedule (held-out set replayed through the gateway)", f"{A72}(2)",
                           value=plan.probe_schedule if plan else None, source="monitor.yaml probe_schedule",
                           need="human",
                           awaiting="give probe_schedule in monitor.yaml, e.g. every 6 hours"))
    doc.sections.append(s3)

    s4 = Section(id="4", title="Thresholds and alerts", citation=f"{A72}(2)")
    if plan and plan.rules:
        s4.tables.append(Table(title="Alert rules", headers=["rule", "figure", "threshold", "min answers", "severity",
                                                              "opens incident"],
                               rows=[[x.name, x.figure, _threshold(x), str(x.min_n), x.severity, x.incident or "—"]
                                     for x in plan.rules]))
    n_rules = len(plan.rules) if plan and plan.rules else None
    s4.items.append(f.item("4.rules", "Alert rules", f"{A72}(2)", value=n_rules,
                           display=f"{n_rules} rules, see the table" if n_rules else None,
                           source="monitor.yaml rules", need="human", awaiting="give rules in monitor.yaml"))
    doc.sections.append(s4)

    s5 = Section(id="5", title="Serious incidents", citation=citations.SERIOUS_INCIDENT)
    s5.tables.append(Table(title="Reporting deadlines from awareness", headers=["category", "deadline", "provision"],
                           rows=[[cat, f"{days} days" if days else "no fixed number of days", cite]
                                 for cat, (days, cite) in incidents.DEADLINE_DAYS.items()]))
    s5.items.append(f.item("5.stop", "Stop switch", citations.STOP_SWITCH,
                           value="`ftaudit monitor suspend`: the gateway answers 503 within a second, until resumed; "
                                 "both are signed ledger entries", source="ftaudit.monitor.switch"))
    doc.sections.append(s5)

    who = plan.responsibilities if plan else None
    s6 = Section(id="6", title="Responsibilities", citation=A72)
    for key, label in (("monitoring", "Reviews the figures and alerts"), ("suspension", "May suspend the model"),
                       ("incident_reporting", "Assesses and reports serious incidents")):
        s6.items.append(f.item(f"6.{key}", label, A72, value=getattr(who, key) if who else None,
                               source=f"monitor.yaml responsibilities.{key}", need="human",
                               awaiting=f"responsibilities.{key} in monitor.yaml"))
    doc.sections.append(s6)
    return finalise(doc)


def _threshold(rule) -> str:
    if rule.above_baseline_by is not None:
        return f"baseline + {sig2(rule.above_baseline_by)}"
    return f"> {sig2(rule.above)}" if rule.above is not None else f"< {sig2(rule.below)}"
