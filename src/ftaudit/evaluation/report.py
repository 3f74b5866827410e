"""A plain-text summary of the evaluation evidence (the CLI's default output and the README sample)."""

from __future__ import annotations

from ftaudit.evaluation.evidence import Estimate, EvaluationEvidence


def _est(e: Estimate | None) -> str:
    if e is None or e.value is None:
        return "n/a"
    s = f"{e.value:.3g}"
    if e.ci_low is not None and e.ci_high is not None:
        s += f" [{e.ci_low:.3g}, {e.ci_high:.3g}]"
    return s


def summary_text(ev: EvaluationEvidence) -> str:
    lines = []
    base = next((m for m in ev.models if m.role == "base"), None)
    tuned = next((m for m in ev.models if m.role == "tuned"), None)
    if base and tuned:
        lines.append(f"base:  {base.spec} ({base.kind}, {base.parameters:,} parameters)")
        lines.append(f"tuned: {tuned.spec} ({tuned.kind})")
    if ev.decoding:
        d = ev.decoding
        lines.append(
            f"decoding: {'sampled' if d.do_sample else 'greedy'}, seed {d.seed}, batch {d.batch_size}, "
            f"prompt format {d.prompt_format}; "
            f"{ev.duration_s:.0f} s"
            if ev.duration_s is not None
            else ""
        )
    lines.append("")
    width = max([len(m.metric) for f in ev.families for m in f.metrics] + [20])
    lines.append(f"{'metric':<{width}}  {'base [95% CI]':<26}{'tuned [95% CI]':<26}delta")
    for fam in ev.families:
        if fam.status == "skipped":
            lines.append(f"{fam.suite}.{fam.name}: skipped ({fam.reason})")
            continue
        for m in fam.metrics:
            delta = f"{m.delta:+.3g}" if m.delta is not None else ""
            lines.append(f"{m.metric:<{width}}  {_est(m.base):<26}{_est(m.tuned):<26}{delta}")
    if ev.gates:
        lines.append("")
        for g in ev.gates:
            lines.append(f"gate {'PASS' if g.passed else 'FAIL'}: {g.message}")
        lines.append("approved" if ev.approved else "NOT APPROVED (model kept)")
    if ev.memorisation_statement:
        lines += ["", "Memorisation:", ev.memorisation_statement.text()]
    for note in ev.notes:
        lines.append(f"note: {note}")
    return "\n".join(lines)
