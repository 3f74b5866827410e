"""Sign-off: a reviewer approves or rejects a model version for release, signed with their own key.

The approval names the run's evidence as it stood when it was reviewed: the last ledger entry that changed it (a
record of the run, a registered artefact, an answer to a document question). `ftaudit release` accepts a version
only when its latest decision is an approval whose signature verifies against the reviewer's ledger-anchored key
and whose evidence is still the run's latest (citations.RELEASE_APPROVAL: a reading — the quality-management
system's release decision).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Literal

from ftaudit.dashboard.questions import ANSWER
from ftaudit.errors import NOT_APPROVED, BadInput, FtauditError
from ftaudit.ledger import chain
from ftaudit.ledger.core import EVENT_NAME_LIKE, Ledger, event_name_pattern
from ftaudit.ledger.keys import verify_signature
from ftaudit.strict import Strict

DECISION = "dashboard.decision"
RELEASE = "release"
EVIDENCE_EVENTS = (ANSWER,)
Decision = Literal["approve", "reject"]


class NotApproved(FtauditError):
    exit_code = NOT_APPROVED


class Evidence(Strict):
    seq: int  # the last ledger entry that changed the run's evidence
    entry_hash: str


class Approval(Strict):
    run_id: str
    decision: Decision
    reason: str
    reviewer: str
    evidence: Evidence
    at: str
    signature: str = ""

    def message(self) -> bytes:
        return chain.canonical_json(self.model_dump(mode="json", exclude={"signature"})).encode("utf-8")


def evidence(ledger: Ledger, run_id: str) -> Evidence:
    """The run's last evidence entry, newest first in the database: records and artefacts, and the events whose
    name the content prefilter matches (confirmed on the parsed content)."""
    import json

    rows = ledger.store.stream(
        "SELECT seq, entry_hash, kind, content FROM entries WHERE run_id = ? AND (kind <> 'event' OR "
        + " OR ".join(EVENT_NAME_LIKE for _ in EVIDENCE_EVENTS) + ") ORDER BY seq DESC",
        (run_id, *(event_name_pattern(name, whole=True) for name in EVIDENCE_EVENTS)))
    for seq, entry_hash, kind, content in rows:
        if kind != "event" or json.loads(content)["event"] in EVIDENCE_EVENTS:
            return Evidence(seq=int(seq), entry_hash=entry_hash)
    raise BadInput(f"run {run_id}: not in this ledger")


def decide(ledger: Ledger, run_id: str, *, decision: str, reason: str, reviewer, password: str) -> Approval:
    from ftaudit.dashboard.accounts import sign_as

    if not reviewer.can("reviewer"):
        raise BadInput(f"{reviewer.username} is a {reviewer.role}: only a reviewer or an admin signs off")
    if decision not in ("approve", "reject"):
        raise BadInput("decision: approve or reject")
    reason = reason.strip()
    if not 3 <= len(reason) <= 2000:
        raise BadInput("give the reason for the decision (3 to 2,000 characters)")
    approval = Approval(run_id=run_id, decision=decision, reason=reason, reviewer=reviewer.username,
                        evidence=evidence(ledger, run_id), at=datetime.now(timezone.utc).isoformat())
    approval.signature = sign_as(ledger, reviewer.username, password, approval.message())
    ledger.record_event(run_id, DECISION, approval.model_dump(mode="json"))
    return approval


def decisions(ledger: Ledger, run_id: str) -> list[Approval]:
    return [Approval.model_validate(c["data"]) for c in ledger.events(run_id=run_id, prefix=DECISION)]


def release_state(ledger: Ledger, run_id: str, *, keys: dict[str, str] | None = None,
                  ) -> tuple[bool, str, Approval | None]:
    """(released may go ahead, why, the decision it rests on); `keys`: the ledger's anchored user keys, when the
    caller already read them."""
    from ftaudit.dashboard.accounts import anchored_keys

    made = decisions(ledger, run_id)
    if not made:
        return False, "no reviewer has approved this version (sign it off in `ftaudit dashboard`)", None
    latest = made[-1]
    key = (keys if keys is not None else anchored_keys(ledger)).get(latest.reviewer)
    if key is None or not verify_signature(bytes.fromhex(key), latest.signature, latest.message()):
        return False, f"the decision by {latest.reviewer} does not verify against their ledger-anchored key", latest
    if latest.decision != "approve":
        return False, f"rejected by {latest.reviewer} on {latest.at[:10]}: {latest.reason}", latest
    now = evidence(ledger, run_id)
    if now.seq != latest.evidence.seq:
        return False, (f"the evidence changed after {latest.reviewer}'s approval (ledger entry {now.seq} after "
                       f"{latest.evidence.seq}); review it again"), latest
    return True, f"approved by {latest.reviewer} on {latest.at[:10]}: {latest.reason}", latest
