"""report.html: one self-contained file (inline CSS and SVG) with the charts of the run and every document, each
document starting on a new page when printed (the PDF is rendered from this file).

Charts: compute vs threshold over time, tokens per step, energy, data composition, personal-data findings by type,
evaluation base vs tuned. A chart without evidence says what it awaits; none is drawn from made-up numbers.
"""

from __future__ import annotations

import html
import itertools

from ftaudit.regulation.citations import AI_ACT, GUIDELINES
from ftaudit.reporting.charts import bar_chart, line_chart
from ftaudit.reporting.completeness import checklist_lines
from ftaudit.reporting.context import Ctx
from ftaudit.reporting.document import Document, Table, show

CSS = """
@page { size: A4; margin: 14mm 12mm; @bottom-right { content: counter(page) " / " counter(pages); font-size: 8pt; } }
body { font-family: "DejaVu Sans", Arial, sans-serif; font-size: 10pt; color: #222; max-width: 980px; margin: auto; }
h1 { font-size: 17pt; border-bottom: 2px solid #2f6db5; padding-bottom: 3px; }
h2 { font-size: 13pt; color: #2f6db5; margin-top: 16px; }
section.doc { break-before: page; page-break-before: always; }
.meta, .cite { color: #666; font-size: 8.5pt; }
table { table-layout: fixed; border-collapse: collapse; margin: 6px 0 12px; width: 100%; font-size: 8.5pt; }
th, td { border: 1px solid #ccc; padding: 3px 5px; text-align: left; vertical-align: top; word-break: break-word; }
th { background: #eef3fa; }
.awaiting { color: #a35b00; font-weight: bold; }
.na { color: #777; }
ul.check { list-style: none; padding-left: 4px; }
figure { margin: 8px 0; break-inside: avoid; }
.missing { border: 1px dashed #c90; padding: 8px; color: #a35b00; }
"""


def _e(x: object) -> str:
    return html.escape(str(x), quote=True)


def table_html(t: Table) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in t.headers)
    rows = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in t.rows) or \
        f'<tr><td colspan="{len(t.headers)}">none</td></tr>'
    title = f"<p><b>{_e(t.title)}</b></p>" if t.title else ""
    note = f'<p class="cite">{_e(t.note)}</p>' if t.note else ""
    return f"{title}<table><tr>{head}</tr>{rows}</table>{note}"


def document_html(doc: Document) -> str:
    out = [f'<section class="doc" id="{_e(doc.document)}"><h1>{_e(doc.title)}</h1>',
           f'<p class="meta">{_e(doc.citation)} · run {_e(doc.run_id)} · record of '
           f'{_e(doc.record_updated_at.isoformat())}</p><p><b>Scope.</b> {_e(doc.scope)}</p>']
    for s in doc.sections:
        out.append(f"<h2>{_e(s.title)}</h2>")
        if s.citation:
            out.append(f'<p class="cite">{_e(s.citation)}</p>')
        if s.note:
            out.append(f"<p>{_e(s.note)}</p>")
        if s.show_items and s.items:
            rows = []
            for it in s.items:
                cls = "awaiting" if it.status.startswith("awaiting") else "na" if it.status == "not_applicable" else ""
                src = f"<br><span class='cite'>{_e(it.source)}</span>" if it.source and it.status in (
                    "evidence", "answered") else ""
                rows.append(f"<tr><td>{_e(it.label)}<br><span class='cite'>{_e(it.citation)}</span></td>"
                            f"<td class='{cls}'>{_e(it.display)}{src}</td></tr>")
            out.append("<table><tr><th style='width:34%'>field</th><th>value</th></tr>" + "".join(rows) + "</table>")
        for t in s.tables:
            out.append(table_html(t))
    # Filled items show their source in the tables above; the printed checklist lists what is still open.
    lines = checklist_lines(doc)
    out.append(f"<h2>Completeness</h2><p>{_e(lines[0])}</p><ul class='check'>")
    out += [f"<li>☐ {_e(line[6:])}</li>" for line in lines[2:] if line.startswith("- [ ]")]
    out.append("</ul></section>")
    return _abbreviate("".join(out))


# Long citations repeat on every row; the report names them once (in its legend) and abbreviates after.
ABBREVIATIONS = {AI_ACT: "AI Act", GUIDELINES: "GPAI Guidelines"}


def _abbreviate(text: str) -> str:
    for long, short in ABBREVIATIONS.items():
        text = text.replace(html.escape(long, quote=True), short)
    return text


# --------------------------------------------------------------------------------------------- charts
def _missing(title: str, why: str) -> str:
    return f'<figure><div class="missing"><b>{_e(title)}</b>: awaiting evidence — {_e(why)}</div></figure>'


def _fig(svg: str, caption: str) -> str:
    return f"<figure>{svg}<figcaption class='cite'>{_e(caption)}</figcaption></figure>"


def compute_chart(ctx: Ctx) -> str:
    title = "Compute of the lineage vs the threshold"
    d = ctx.record.decision
    log = [r for r in ctx.train_log() if isinstance(r.get("lineage_flops"), (int, float)) and "step" in r
           and "train_runtime" not in r]
    if log:
        xs = [float(r["step"]) for r in log]
        ys = [float(r["lineage_flops"]) for r in log]
        x_label, source = "optimizer step", "logs/train.jsonl (lineage FLOP at each log line)"
    elif ctx.record.compute and ctx.record.compute.lineage and ctx.record.compute.lineage.runs:
        runs = ctx.record.compute.lineage.runs
        xs = [float(i) for i in range(1, len(runs) + 1)]
        ys, acc = [], 0.0
        for run in runs:
            acc += run.regulatory_flops
            ys.append(acc)
        x_label, source = "run of the lineage", "record.compute.lineage.runs"
    else:
        return _missing(title, "no training log and no metered lineage in the record")
    hl = []
    if d:
        hl.append(("threshold", d.threshold_flops))
        if d.accepted_limit_flops is not None and d.accepted_limit_flops != d.threshold_flops:
            hl.append(("accepted limit", d.accepted_limit_flops))
    svg = line_chart(title, xs, [("cumulative FLOP", ys)], x_label=x_label, y_label="FLOP", hlines=hl, log_y=True)
    note = "" if d else "; no decision in the record, so no threshold line"
    return _fig(svg, f"Source: {source}; threshold from record.decision ({d.citation if d else ''}){note}.")


def tokens_chart(ctx: Ctx) -> str:
    title = "Tokens per optimizer step"
    log = ctx.train_log()
    seen = [(r["step"], r.get("num_input_tokens_seen", r.get("num_tokens"))) for r in log
            if "step" in r and isinstance(r.get("num_input_tokens_seen", r.get("num_tokens")), (int, float))]
    if len(seen) >= 2:
        xs, ys = [], []
        for (s0, t0), (s1, t1) in itertools.pairwise(seen):
            if s1 > s0:
                xs.append(float(s1))
                ys.append((t1 - t0) / (s1 - s0))
        if xs:
            return _fig(line_chart(title, xs, [("tokens per step", ys)], x_label="optimizer step",
                                   y_label="tokens"), "Source: logs/train.jsonl (tokens seen between log lines).")
    c = ctx.record.compute.counts if ctx.record.compute else None
    if c and c.optimizer_steps:
        svg = bar_chart(f"{title} (mean over {c.optimizer_steps} steps)", ["executed (with padding)",
                                                                             "effective (no padding)"],
                        [("tokens", [c.tokens_executed / c.optimizer_steps, c.tokens_effective / c.optimizer_steps])])
        return _fig(svg, "Source: record.compute.counts (the meter's totals; the training log has no per-step "
                         "token counts, so the mean is shown).")
    return _missing(title, "no meter counts in the record")


def energy_chart(ctx: Ctx) -> str:
    title = "Energy"
    c = ctx.record.compute
    e = c.energy if c else None
    if not e or e.kwh is None:
        return _missing(title, "energy could not be measured or estimated" if e else "no compute evidence")
    gpus = [g for g in (c.hardware.gpus if c.hardware else []) if g.energy_kwh is not None]
    labels = [f"GPU {i}: {g.name}" for i, g in enumerate(gpus)] + [f"total ({e.kind})"]
    values = [g.energy_kwh for g in gpus] + [e.kwh]
    return _fig(bar_chart(title, labels, [("kWh", values)], unit=" kWh"),
                f"Source: record.compute.energy — {e.method}.")


def data_chart(ctx: Ctx) -> str:
    title = "Data composition (share of characters by language)"
    ev = ctx.record.data
    if not ev or not ev.languages:
        return _missing(title, "no data scan in the record")
    langs = ev.languages[:12]
    return _fig(bar_chart(title, [x.language for x in langs], [("share %", [100 * x.share for x in langs])],
                          unit=" %"), f"Source: record.data.languages ({ev.language_method or 'method not recorded'});"
                                      f" {show(ev.counts.records)} records in {len(ev.files)} file(s).")


def pii_chart(ctx: Ctx) -> str:
    title = "Personal data, secrets and special-category findings by type"
    ev = ctx.record.data
    if not ev:
        return _missing(title, "no data scan in the record")
    types = ev.findings.by_type
    if not types:
        return f"<figure><div class='missing'><b>{_e(title)}</b>: the scan found none.</div></figure>"
    return _fig(bar_chart(title, [f"{t.type} ({t.category})" for t in types],
                          [("findings", [t.count for t in types]), ("records", [t.records for t in types])]),
                "Source: record.data.findings (counts only; no finding text is shown).")


def evaluation_chart(ctx: Ctx) -> str:
    title = "Evaluation: base vs tuned (rates and ratios)"
    ev = ctx.record.evaluation
    if not ev:
        return _missing(title, "no evaluation in the record")
    ms = [m for fam in ev.families for m in fam.metrics if m.unit in ("rate", "ratio") and m.tuned.value is not None]
    if not ms:
        return _missing(title, "the evaluation has no rate or ratio metrics")
    ms = ms[:16]
    return _fig(bar_chart(title, [m.metric for m in ms],
                          [("base", [m.base.value if m.base else None for m in ms]),
                           ("tuned", [m.tuned.value for m in ms])]),
                "Source: record.evaluation (point estimates; intervals in the tables).")


def render_html(ctx: Ctx, docs: list[Document]) -> str:
    r = ctx.record
    d = r.decision
    overview = [f"<h1>ftaudit report: {_e(ctx.model_name or r.run_id)}</h1>",
                f"<p class='meta'>run {_e(r.run_id)} · status {_e(r.status)} · record of "
                f"{_e(r.updated_at.isoformat())} · ftaudit {_e(r.ftaudit_version)}</p>",
                "<table>"]
    facts = [("Base model", ctx.base_model_name or "awaiting evidence"),
             ("Method", ctx.method or "awaiting evidence"),
             ("Regulatory compute", f"{show(r.compute.regulatory_flops)} FLOP" if r.compute and
              r.compute.regulatory_flops is not None else "awaiting evidence"),
             ("GPAI role", f"{ctx.roles_text()} ({d.citation})" if d else "awaiting evidence")]
    overview += [f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in facts]
    overview.append("</table><h2>Documents</h2><table><tr><th>document</th><th>filled</th><th>awaiting a human"
                    "</th><th>awaiting evidence</th></tr>")
    for doc in docs:
        c = doc.completeness
        overview.append(f"<tr><td><a href='#{_e(doc.document)}'>{_e(doc.title)}</a></td><td>{c.filled} of "
                        f"{c.total}</td><td>{len(c.awaiting_human)}</td><td>{len(c.awaiting_evidence)}</td></tr>")
    overview.append("</table><p class='cite'>" + "; ".join(f"{_e(short)} = {_e(long)}" for long, short in
                                                          ABBREVIATIONS.items()) + ".</p><h2>Charts</h2>")
    charts = [compute_chart(ctx), tokens_chart(ctx), energy_chart(ctx), data_chart(ctx), pii_chart(ctx),
              evaluation_chart(ctx)]
    body = "".join(overview) + "".join(charts) + "".join(document_html(doc) for doc in docs)
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>ftaudit report "
            f"{_e(r.run_id)}</title><style>{CSS}</style></head><body>{body}</body></html>\n")
