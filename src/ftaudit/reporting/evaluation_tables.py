"""Tables of the evaluation evidence (base vs tuned, per group, gates), shared by Annex XI §2, the model card and the
instructions for use. Values to two significant figures; the exact ones are in run_record.json."""

from __future__ import annotations

from ftaudit.evaluation.evidence import Comparison, Estimate, EvaluationEvidence
from ftaudit.reporting.document import Table, sig2


def est(e: Estimate | None) -> str:
    if e is None or e.value is None:
        return "—"
    text = sig2(e.value)
    if e.ci_low is not None and e.ci_high is not None:
        text += f" [{sig2(e.ci_low)}, {sig2(e.ci_high)}]"
    return text + f" (n={e.n})"


def direction(m: Comparison) -> str:
    if m.delta is None or m.higher_is_better is None or m.delta == 0:
        return "—"
    better = (m.delta > 0) == m.higher_is_better
    return "better" if better else "worse"


def metrics_table(ev: EvaluationEvidence) -> Table:
    rows = []
    for fam in ev.families:
        if fam.status == "skipped":
            rows.append([f"{fam.suite}.{fam.name}", f"skipped: {fam.reason or 'no reason recorded'}", "", "", "", ""])
            continue
        for m in fam.metrics:
            rows.append([m.metric, m.description, est(m.base), est(m.tuned),
                         sig2(m.delta) if m.delta is not None else "—", direction(m)])
    return Table(title="Evaluation: base vs tuned", headers=["metric", "what it measures", "base", "tuned", "delta",
                                                              "tuned vs base"], rows=rows,
                 note="Values to two significant figures with 95 % intervals where computed; exact values in "
                      "run_record.json (evaluation).")


def groups_table(ev: EvaluationEvidence) -> Table:
    rows = []
    for fam in ev.families:
        for g in fam.groups:
            for m in g.metrics:
                rows.append([g.axis, g.group, m.metric, est(m.base), est(m.tuned)])
    return Table(title="Performance per group", headers=["axis", "group", "metric", "base", "tuned"], rows=rows)


def gates_table(ev: EvaluationEvidence) -> Table:
    rows = [[g.metric, g.rule, sig2(g.threshold), sig2(g.observed) if g.observed is not None else "—",
             "pass" if g.passed else "FAIL"] for g in ev.gates]
    return Table(title="Evaluation gates", headers=["metric", "rule", "threshold", "observed", "result"], rows=rows)
