"""`monitor.yaml`: the deployment's monitoring settings, the human part of the post-market monitoring plan
(Art. 72(3)); the plan document renders it with the run's evidence (`ftaudit docs RUN_DIR --monitor monitor.yaml`).

    content: redacted                 # hash | redacted | full: what events keep of prompts and answers
    retention_days: 184               # at least six months (Art. 19(1), 26(6))
    probe_schedule: "every 6 hours (cron 0 */6 * * *)"
    rules: [...]                      # the alert rules, as in `ftaudit monitor alerts --rules`
    responsibilities:
      monitoring: "ML on-call team, ml-oncall@example.org"
      suspension: "Head of ML (stop switch, Art. 14(4)(e))"
      incident_reporting: "Data protection officer, dpo@example.org"
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, ValidationError

from ftaudit.errors import BadInput
from ftaudit.monitor.alerts import Rule
from ftaudit.monitor.terms import ContentPolicy
from ftaudit.regulation.citations import LOG_RETENTION_MIN_DAYS
from ftaudit.strict import Strict


class Responsibilities(Strict):
    monitoring: str | None = Field(None, description="Who reviews the live figures and alerts.")
    suspension: str | None = Field(None, description="Who may suspend the model version.")
    incident_reporting: str | None = Field(None, description="Who assesses and reports serious incidents.")


class MonitorPlan(Strict):
    content: ContentPolicy = "hash"
    retention_days: int = Field(LOG_RETENTION_MIN_DAYS, ge=1)
    probe_schedule: str | None = None
    rules: list[Rule] = Field(default_factory=list)
    responsibilities: Responsibilities = Field(default_factory=Responsibilities)


def load_plan(path: str | Path) -> MonitorPlan:
    from ftaudit.io import read_yaml

    try:
        return MonitorPlan.model_validate(read_yaml(path, "monitor plan (monitor.yaml)") or {})
    except ValidationError as exc:
        first = exc.errors()[0]
        raise BadInput(f"{path}: {'.'.join(map(str, first['loc']))}: {first['msg']}") from None
