"""Alert rules: a YAML list of thresholds on the live figures of `ftaudit monitor status`; a breach can open an
incident (docs/monitor.md). Example:

    rules:
      - name: canary-leak
        figure: output.canary           # a figure name from `ftaudit monitor status`
        above: 0                        # breach when the live value is above this (or `below:`)
        min_n: 1                        # judge only with at least this many answers
        severity: critical
        incident: serious_incident      # open an incident of this category (optional)
      - name: worse-than-evaluation
        figure: output.format
        above_baseline_by: 0.1          # breach when live exceeds the run's own evaluation baseline by 0.1
        min_n: 50
        severity: high
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, ValidationError, model_validator

from ftaudit.errors import BadInput
from ftaudit.monitor.incidents import Category, Severity
from ftaudit.monitor.status import LiveStatus
from ftaudit.strict import Strict

ALERT = "monitor.alert"  # the ledger event of a breach


class Rule(Strict):
    name: str
    figure: str
    above: float | None = None
    below: float | None = None
    above_baseline_by: float | None = Field(None, description="Breach when live > baseline + this.")
    min_n: int = Field(1, ge=1)
    severity: Severity = "medium"
    incident: Category | None = None

    @model_validator(mode="after")
    def _one_threshold(self) -> "Rule":
        if sum(x is not None for x in (self.above, self.below, self.above_baseline_by)) != 1:
            raise ValueError("give exactly one of above, below, above_baseline_by")
        return self


class Rules(Strict):
    rules: list[Rule]


class Breach(Strict):
    rule: str
    figure: str
    value: float
    threshold: float
    n: int
    severity: Severity
    incident: Category | None


def load_rules(path: str | Path, figures: list[str]) -> Rules:
    from ftaudit.io import read_yaml

    path = Path(path)
    try:
        rules = Rules.model_validate(read_yaml(path, "alert-rules file"))
    except ValidationError as exc:
        first = exc.errors()[0]
        raise BadInput(f"{path}: {'.'.join(map(str, first['loc']))}: {first['msg']}") from None
    for r in rules.rules:
        if r.figure not in figures:
            raise BadInput(f"{path}: rule {r.name!r}: unknown figure {r.figure!r} (one of: {', '.join(figures)})")
    return rules


def breaches(rules: Rules, live: LiveStatus) -> list[Breach]:
    by_name = {f.name: f for f in live.figures}
    out = []
    for r in rules.rules:
        f = by_name[r.figure]
        if f.value is None or f.n < r.min_n:
            continue
        if r.above_baseline_by is not None:
            if f.baseline is None:
                continue
            threshold, hit = f.baseline + r.above_baseline_by, f.value > f.baseline + r.above_baseline_by
        elif r.above is not None:
            threshold, hit = r.above, f.value > r.above
        else:
            threshold, hit = r.below, f.value < r.below
        if hit:
            out.append(Breach(rule=r.name, figure=r.figure, value=f.value, threshold=threshold, n=f.n,
                              severity=r.severity, incident=r.incident))
    return out
