"""The data-governance report: JSON (the source of truth) plus Markdown and self-contained HTML, both renderings
of one flow of paragraphs, tables and bar charts (`ftaudit.reporting.flow`) built from the DataEvidence, so the
two never disagree. Nothing here sees a record: the evidence holds counts, types, positions and redacted samples.
"""

from __future__ import annotations

import json
from pathlib import Path

from ftaudit.data.evidence import DataEvidence
from ftaudit.io import atomic_write_text
from ftaudit.reporting.document import Table
from ftaudit.reporting.flow import BarChart, FlowSection, flow_html, flow_markdown

REPORT_JSON = "data_report.json"
REPORT_MD = "data_report.md"
REPORT_HTML = "data_report.html"
SUMMARY_JSON = "training_content_summary.data.json"
TITLE = "Data governance report"


def _n(x) -> str:
    return f"{x:,}" if isinstance(x, int) else (f"{x:.4g}" if isinstance(x, float) else str(x))


def _pct(x: float) -> str:
    return f"{100 * x:.2f} %"


def _table(headers: list[str], rows: list[list[object]]) -> Table:
    return Table(title="", headers=headers, rows=[[_n(x) for x in row] for row in rows])


def build_document(ev: DataEvidence) -> list[FlowSection]:
    out: list[FlowSection] = []
    c = ev.counts
    s = FlowSection("Overview")
    s.parts.append(f"{_n(c.records)} training records, {_n(c.characters)} characters, {_n(c.tokens)} "
                   f"{ev.tokens.unit if ev.tokens else 'tokens'}; {_n(c.skipped_records)} records skipped as "
                   "unreadable.")
    s.parts.append(_table(["file", "role", "format", "records", "bytes", "sha256"],
                          [[f.path, f.role, f.format, f.records, f.bytes, f.sha256] for f in ev.files]))
    if ev.record_digest:
        s.parts.append(f"Record digest ({ev.record_digest.algorithm}): `{ev.record_digest.value}`")
    out.append(s)

    if ev.policy:
        s = FlowSection("Data policy")
        s.parts.append(f"Verdict: **{ev.policy.status.upper()}**")
        if ev.policy.reasons or ev.policy.warnings:
            s.parts.append(_table(["", "rule", "citation", "detail"],
                                  [["blocks", r.rule, r.citation, r.detail] for r in ev.policy.reasons]
                                  + [["warning", r.rule, r.citation, r.detail] for r in ev.policy.warnings]))
        out.append(s)

    f = ev.findings
    s = FlowSection("Personal data, secrets and special categories")
    if f.detection:
        s.parts.append(("Detection: " if f.detection.ner_available else "**Warning** — ") + f.detection.note)
        sample = f.detection.ner_sample
        if sample is not None:
            s.parts.append(f"NER sample: {_n(sample.records)} records ({sample.coverage:.1%} of all), seed "
                           f"{sample.seed}; {sample.rule}.")
            s.parts.append(_table(["type", "sampled records with it", "rate", "95 % interval", "estimated records"],
                                  [[e.type, e.sampled_records_with_type, f"{e.rate:.2%}",
                                    f"{e.ci_low:.2%}–{e.ci_high:.2%}", e.estimated_records]
                                   for e in sample.estimates]))
    s.parts.append(f"{_n(f.total)} findings; records with personal data: {_n(f.records_with_personal_data)}, with "
                   f"secrets: {_n(f.records_with_secrets)}, with special-category data: "
                   f"{_n(f.records_with_special_categories)} (any special-category term: "
                   f"{_n(f.records_with_special_category_terms)}). Values are never shown: samples are redacted "
                   "(findings as <TYPE>, other identifying words shape-masked).")
    if f.by_type:
        s.parts.append(BarChart("Findings by type", [t.type for t in f.by_type], [t.count for t in f.by_type]))
        s.parts.append(_table(["type", "category", "findings", "records", "top fields"],
                              [[t.type, t.category, t.count, t.records,
                                ", ".join(f"{k} ({v})" for k, v in t.top_fields.items())] for t in f.by_type]))
        s.parts.append(_table(["type", "record", "field", "offsets", "redacted sample"],
                              [[t.type, sm.record, sm.field, f"{sm.start}–{sm.end}", sm.redacted]
                               for t in f.by_type for sm in t.samples]))
    if f.special_categories:
        s.parts.append("Special categories (GDPR Art. 9(1)), flagged for human review — not a verdict:")
        s.parts.append(_table(["category", "records (personal cue)", "records (term only)", "example records"],
                              [[x.category, x.records, x.term_only_records, ", ".join(map(str, x.record_examples[:10]))]
                               for x in f.special_categories]))
    out.append(s)

    s = FlowSection("Quality: duplicates, leakage, empty and garbled records")
    if ev.duplicates:
        d = ev.duplicates
        s.parts.append(f"Exact duplicates: {_n(d.exact_duplicate_records)} records in {_n(d.exact_groups)} groups; "
                       f"near duplicates (similarity ≥ {d.threshold}): {_n(d.near_duplicate_records)} records in "
                       f"{_n(d.near_duplicate_clusters)} clusters; duplicate rate {_pct(d.duplicate_rate)}. "
                       f"Method: {d.method}.")
        if d.near_examples:
            s.parts.append(_table(["record", "near-duplicate of", "similarity"],
                                  [[f"{p.b_source}:{p.b_record}", f"{p.a_source}:{p.a_record}", p.similarity]
                                   for p in d.near_examples]))
    if ev.leakage:
        lk = ev.leakage
        s.parts.append(f"Train/eval overlap: {_n(lk.exact_overlap)} exact and {_n(lk.near_overlap)} near of "
                       f"{_n(lk.eval_records)} eval records ({_pct(lk.overlap_rate)}).")
        if lk.examples:
            s.parts.append(_table(["eval record", "training record", "similarity"],
                                  [[f"{p.a_source}:{p.a_record}", f"{p.b_source}:{p.b_record}", p.similarity]
                                   for p in lk.examples]))
    q = ev.quality
    s.parts.append(f"Empty records: {_n(q.empty_records)}; garbled records: {_n(q.garbled_records)}"
                   + (" (" + ", ".join(f"{k}: {v}" for k, v in q.by_reason.items()) + ")" if q.by_reason else "")
                   + ".")
    if q.record_examples:
        s.parts.append(_table(["reason", "example records"],
                              [[k, ", ".join(map(str, v[:10]))] for k, v in q.record_examples.items()]))
    out.append(s)

    s = FlowSection("Languages, lengths and tokens")
    if ev.languages:
        s.parts.append(f"Language method: {ev.language_method}.")
        s.parts.append(BarChart("Share of characters by language", [x.language for x in ev.languages],
                                [x.share * 100 for x in ev.languages], "%"))
        s.parts.append(_table(["language", "records", "characters", "share"],
                              [[x.language, x.records, x.characters, _pct(x.share)] for x in ev.languages]))
    for dist in (ev.characters, ev.tokens):
        if dist and dist.count:
            s.parts.append(_table(["per record", "min", "p50", "mean", "p90", "p99", "max", "total"],
                                  [[dist.unit, dist.min, dist.p50, dist.mean, dist.p90, dist.p99, dist.max,
                                    dist.total]]))
            s.parts.append(BarChart(f"Records by length ({dist.unit})",
                                    [f"{b.low}–{b.high}" for b in dist.histogram], [b.count for b in dist.histogram]))
    out.append(s)

    if ev.domains:
        dm = ev.domains
        s = FlowSection("Source domains")
        s.parts.append(f"{_n(dm.domains_total)} domains over {_n(dm.records_with_domain)} records. Listed: "
                       f"{dm.rule}. Method: {dm.method}.")
        if dm.top:
            s.parts.append(BarChart("Top domains by content size", [x.domain for x in dm.top],
                                    [x.bytes for x in dm.top], "bytes"))
            s.parts.append(_table(["domain", "content bytes", "records", "share"],
                                  [[x.domain, round(x.bytes), x.records, _pct(x.share)] for x in dm.top]))
        out.append(s)

    s = FlowSection("Datasheet")
    if ev.datasheet is None:
        s.parts.append("No datasheet was given (`--datasheet FILE`; start from `ftaudit data datasheet-template`).")
    else:
        answered = {k: v for k, v in ev.datasheet.model_dump(mode="json", exclude_none=True).items() if v not in
                    ("", [], {})}
        s.parts.append(_table(["field", "answer"], [[k, json.dumps(v, ensure_ascii=False) if not isinstance(v, str)
                                                     else v] for k, v in answered.items()]))
    if ev.missing_answers:
        s.parts.append(f"{len(ev.missing_answers)} answers are missing (listed, not invented):")
        s.parts.append(_table(["field", "question", "why it is needed"],
                              [[m.field, m.question, m.why] for m in ev.missing_answers]))
    out.append(s)

    if ev.bias:
        b = ev.bias
        s = FlowSection("Bias examination support (Art. 10(2)(f))")
        s.parts.append(b.disclaimer)
        s.parts.append(f"Lexicon {b.lexicon_version}; {_n(b.sentences)} sentences; over all sentences "
                       f"{_pct(b.baseline_positive_rate)} hold a positive and {_pct(b.baseline_negative_rate)} a "
                       "negative sentiment word.")
        for dim in b.dimensions:
            if not dim.mentions:
                s.parts.append(f"{dim.dimension}: no mentions.")
                continue
            s.parts.append(BarChart(f"{dim.dimension}: mentions by group", [g.group for g in dim.groups],
                                    [g.mentions for g in dim.groups]))
            s.parts.append(_table(
                 ["group", "records", "mentions", "share", "positive rate", "negative rate", "top occupations"],
                 [[g.group, g.records, g.mentions, _pct(g.share_of_dimension),
                   "" if g.positive_rate is None else _pct(g.positive_rate),
                   "" if g.negative_rate is None else _pct(g.negative_rate),
                   ", ".join(f"{o.occupation} ({o.sentences})" for o in g.top_occupations)] for g in dim.groups]))
        out.append(s)
    return out


def _intro(ev: DataEvidence) -> str:
    when = ev.scanned_at.isoformat() if ev.scanned_at else ""
    return f"Scanned {when} by ftaudit. JSON (`{REPORT_JSON}`) is the source of truth; this is a rendering of it."


def render_markdown(ev: DataEvidence) -> str:
    return flow_markdown(TITLE, _intro(ev), build_document(ev))


def render_html(ev: DataEvidence) -> str:
    return flow_html(TITLE, _intro(ev), build_document(ev))


def render_json(ev: DataEvidence) -> str:
    return ev.model_dump_json(indent=2) + "\n"


def write_reports(ev: DataEvidence, out_dir: str | Path, summary: dict | None = None) -> list[Path]:
    """Render everything first, then write each file atomically: a rendering error leaves no file behind."""
    from ftaudit.data.summary import training_content_summary

    out_dir = Path(out_dir)
    texts = {
        REPORT_JSON: render_json(ev),
        REPORT_MD: render_markdown(ev),
        REPORT_HTML: render_html(ev),
        SUMMARY_JSON: json.dumps(summary if summary is not None else training_content_summary(ev), indent=2,
                                 ensure_ascii=False) + "\n",
    }
    return [atomic_write_text(out_dir / name, text) for name, text in texts.items()]
