"""The stop switch (Art. 14(4)(e): a person overseeing the system can interrupt it through a "stop" button or a
similar procedure). Suspending and resuming are signed ledger events of the run; the gateway reads the latest one
and, while suspended, answers 503 with the reason instead of forwarding."""

from __future__ import annotations

from ftaudit.ledger.core import Entry, Ledger

SUSPENDED, RESUMED = "monitor.suspended", "monitor.resumed"


def state(ledger: Ledger, run_id: str, deployment: str) -> dict | None:
    """The latest suspension of the deployment still in force (its ledger data), or None when it is serving."""
    current = None
    for c in ledger.events(run_id=run_id, prefix="monitor."):
        if c["event"] in (SUSPENDED, RESUMED) and c["data"].get("deployment") == deployment:
            current = c["data"] if c["event"] == SUSPENDED else None
    return current


def suspend(ledger: Ledger, run_id: str, deployment: str, *, reason: str, by: str) -> Entry:
    return ledger.record_event(run_id, SUSPENDED, {"deployment": deployment, "reason": reason, "by": by})


def resume(ledger: Ledger, run_id: str, deployment: str, *, reason: str, by: str) -> Entry:
    return ledger.record_event(run_id, RESUMED, {"deployment": deployment, "reason": reason, "by": by})
