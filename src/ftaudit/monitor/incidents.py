"""The incident register: each incident a series of signed ledger events of its run, replayed into its current
state, with the reporting deadline of its category and a drafted report for the market surveillance authority.

Deadlines, counted from when the provider became aware (`aware_at`):
  serious_incident      15 days  (Art. 73(2))
  death                 10 days  (Art. 73(4))
  widespread            2 days   (Art. 73(3): a widespread infringement or a serious and irreversible disruption of
                                  critical infrastructure)
  systemic_risk         no fixed number of days: "without undue delay" to the AI Office (Art. 55(1)(c))
  not_serious           no report due; kept in the register with the assessment that says why
Status: open -> assessed -> reported -> closed (assessed -> closed when the assessment finds it not reportable).
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone

from pydantic import Field

from ftaudit.errors import BadInput
from ftaudit.ledger.core import Ledger
from ftaudit.monitor.events import Deployment
from ftaudit.monitor.terms import Category, Severity, Status
from ftaudit.regulation import citations
from ftaudit.strict import Strict

DEADLINE_DAYS: dict[str, tuple[int | None, str]] = {
    "serious_incident": (15, citations.SERIOUS_INCIDENT),
    "death": (10, citations.SERIOUS_INCIDENT_DEATH),
    "widespread": (2, citations.SERIOUS_INCIDENT_WIDESPREAD),
    "systemic_risk": (None, citations.SYSTEMIC_RISK_INCIDENT),
    "not_serious": (None, citations.POST_MARKET_MONITORING),
}
NEXT: dict[str, tuple[str, ...]] = {"open": ("assessed",), "assessed": ("reported", "closed"),
                                    "reported": ("closed",), "closed": ()}
OPENED, UPDATED = "monitor.incident.opened", "monitor.incident.updated"


class Change(Strict):
    at: datetime
    by: str
    status: Status
    note: str


class Incident(Strict):
    incident_id: str
    run_id: str
    deployment: str
    weights_sha256: str | None = Field(None, description="The affected model version: its served weights.")
    title: str
    severity: Severity
    category: Category
    aware_at: datetime = Field(description="When the provider became aware: the clock starts here.")
    status: Status = "open"
    evidence: dict = Field(default_factory=dict, description="The alert or figures that opened it (no content).")
    history: list[Change] = Field(default_factory=list)

    @property
    def deadline(self) -> datetime | None:
        days, _ = DEADLINE_DAYS[self.category]
        return self.aware_at + timedelta(days=days) if days is not None else None

    @property
    def citation(self) -> str:
        return DEADLINE_DAYS[self.category][1]

    def due_in(self, now: datetime | None = None) -> timedelta | None:
        if self.deadline is None or self.status in ("reported", "closed"):
            return None
        return self.deadline - (now or datetime.now(timezone.utc))


def open_incident(ledger: Ledger, deployment: Deployment, *, title: str, severity: Severity, category: Category,
                  by: str, evidence: dict | None = None, aware_at: datetime | None = None) -> Incident:
    now = datetime.now(timezone.utc)
    inc = Incident(incident_id=uuid.uuid4().hex[:12], run_id=deployment.run_id, deployment=deployment.name,
                   weights_sha256=deployment.weights_sha256, title=title,
                   severity=severity, category=category, aware_at=aware_at or now, evidence=evidence or {},
                   history=[Change(at=now, by=by, status="open", note="opened")])
    ledger.record_event(inc.run_id, OPENED, inc.model_dump(mode="json"))
    return inc


def register(ledger: Ledger, run_id: str | None = None) -> list[Incident]:
    """Every incident (of one run, or all), replayed from the ledger."""
    found: dict[str, Incident] = {}
    for c in ledger.events(run_id=run_id, prefix="monitor.incident."):
        if c["event"] == OPENED:
            found[c["data"]["incident_id"]] = Incident.model_validate(c["data"])
        elif c["event"] == UPDATED and c["data"]["incident_id"] in found:
            found[c["data"]["incident_id"]] = Incident.model_validate(c["data"]["incident"])
    return list(found.values())


def update(ledger: Ledger, incident_id: str, *, status: Status, by: str, note: str,
           category: Category | None = None) -> Incident:
    matches = [i for i in register(ledger) if i.incident_id == incident_id]
    if not matches:
        raise BadInput(f"no incident {incident_id!r} in {ledger.location}; `ftaudit monitor incidents` lists them")
    inc = matches[0]
    if status not in NEXT[inc.status]:
        allowed = ", ".join(NEXT[inc.status]) or "none (it is closed)"
        raise BadInput(f"incident {incident_id} is {inc.status}: it can move to {allowed}, not {status}")
    if status == "closed" and inc.status == "assessed" and (category or inc.category) != "not_serious":
        raise BadInput(f"incident {incident_id} is assessed as {category or inc.category}: report it before closing "
                       "it, or assess it as not_serious (--category not_serious) with the reason")
    inc = inc.model_copy(update={"status": status, "category": category or inc.category,
                                 "history": [*inc.history, Change(at=datetime.now(timezone.utc), by=by,
                                                                  status=status, note=note)]})
    ledger.record_event(inc.run_id, UPDATED, {"incident_id": incident_id, "incident": inc.model_dump(mode="json")})
    return inc


def draft_report(inc: Incident) -> str:
    """A draft of the report to the market surveillance authority, from the register's evidence; the parts only
    a person can write are marked."""
    deadline = inc.deadline.isoformat() if inc.deadline else "no fixed deadline: without undue delay"
    lines = [
        f"# Serious incident report (draft) — {inc.title}",
        "",
        f"*{inc.citation}* · incident `{inc.incident_id}` · status {inc.status}",
        "",
        f"- **AI system / model version**: {inc.deployment} (run `{inc.run_id}`, weights sha256 "
        f"`{inc.weights_sha256 or 'unknown'}`)",
        f"- **Category**: {inc.category}; severity {inc.severity}",
        f"- **Provider aware since**: {inc.aware_at.isoformat()}; report due by {deadline}",
        f"- **Evidence from the monitor**: {json.dumps(inc.evidence, sort_keys=True)}",
        "- **Description of the incident and of the harm**: ⚠ awaiting a human answer",
        "- **Persons or groups affected**: ⚠ awaiting a human answer",
        "- **Corrective action taken or planned**: ⚠ awaiting a human answer",
        "",
        "## History",
        "",
    ]
    lines += [f"- {c.at.isoformat()} · {c.by} · {c.status}: {c.note}" for c in inc.history]
    return "\n".join(lines) + "\n"
