"""The stop switch (Art. 14(4)(e): a person overseeing the system can interrupt it through a "stop" button or a
similar procedure). Suspending and resuming are signed ledger events of the run; the gateway reads the latest one
and, while suspended, answers 503 with the reason instead of forwarding."""

from __future__ import annotations

from ftaudit.ledger.core import Entry, Ledger

SUSPENDED, RESUMED = "monitor.suspended", "monitor.resumed"


class Follower:
    """One deployment's switch, kept current by reading only the ledger entries written since the last read (a
    gateway asks every second; the run's checkpoints alone add thousands of entries a day)."""

    def __init__(self, run_id: str, deployment: str):
        self.run_id, self.deployment = run_id, deployment
        self.seen = 0
        self.suspended: dict | None = None  # the ledger data of the suspension in force

    def update(self, ledger: Ledger) -> dict | None:
        for c in ledger.events(run_id=self.run_id, prefix="monitor.", after=self.seen):
            self.seen = c["seq"]
            if c["event"] in (SUSPENDED, RESUMED) and c["data"].get("deployment") == self.deployment:
                self.suspended = c["data"] if c["event"] == SUSPENDED else None
        return self.suspended


def state(ledger: Ledger, run_id: str, deployment: str) -> dict | None:
    """The latest suspension of the deployment still in force (its ledger data), or None when it is serving."""
    return Follower(run_id, deployment).update(ledger)


def suspend(ledger: Ledger, run_id: str, deployment: str, *, reason: str, by: str) -> Entry:
    return ledger.record_event(run_id, SUSPENDED, {"deployment": deployment, "reason": reason, "by": by})


def resume(ledger: Ledger, run_id: str, deployment: str, *, reason: str, by: str) -> Entry:
    return ledger.record_event(run_id, RESUMED, {"deployment": deployment, "reason": reason, "by": by})
