"""Verify the event chains against the signed checkpoints in the ledger (`ftaudit verify LEDGER` runs this after
the ledger's own checks, so the checkpoints it trusts are signed entries of a verified chain).

Detected: an edited, inserted, reordered or deleted event (its hash or its link breaks); events deleted from the
tail up to a checkpoint, or a whole writer's chain (the checkpoint names an event that is not there); events
deleted from the head other than by a recorded retention pass. Not detected: the events written after a writer's
last checkpoint being cut (at most CHECKPOINT_S of them; they are counted as not yet anchored).
"""

from __future__ import annotations

import json

from pydantic import BaseModel

from ftaudit.errors import VerificationFailed
from ftaudit.ledger import chain
from ftaudit.ledger.core import Ledger
from ftaudit.monitor.log import EVENT_COLUMNS, event_header, has_tables, writer_records


class EventsReport(BaseModel):
    writers: int
    events: int
    anchored: int  # events at or before their writer's last checkpoint
    deleted_by_retention: int


def verify_events(ledger: Ledger) -> EventsReport | None:
    """None when the ledger has no event log."""
    if not has_tables(ledger):
        return None
    where = f"event log in {ledger.location}"
    writers = writer_records(ledger)
    hashes: dict[str, dict[int, str]] = {}  # only the checkpointed seqs are kept
    wanted = {w: {s for s, _ in r.checkpoints} for w, r in writers.items()}
    last_seq: dict[str, int] = {}
    events = 0
    writer, expected, prev = None, 0, ""
    for r in ledger.store.stream(f"SELECT {', '.join(EVENT_COLUMNS)} FROM monitor_events ORDER BY writer_id, seq"):
        row = dict(zip(EVENT_COLUMNS, r, strict=True))
        seq = int(row["seq"])
        if row["writer_id"] != writer:
            writer = row["writer_id"]
            if writer not in writers:
                raise VerificationFailed(f"{where}: events of writer {writer}, which the ledger never registered")
            expected, prev = writers[writer].through + 1, writers[writer].through_hash
        label = f"{where}: writer {writer[:12]} event {seq}"
        if seq < expected and seq <= writers[writer].through:
            continue  # recorded as deleted by retention in the same transaction that deletes it
        if seq != expected:
            raise VerificationFailed(f"{label}: events {expected}–{seq - 1} are missing (deleted)"
                                     if seq > expected else f"{label}: out of order")
        if chain.sha256_hex(row["content"]) != row["content_sha256"]:
            raise VerificationFailed(f"{label}: content modified (its hash does not match)")
        content = json.loads(row["content"])
        if (content.get("request_id"), content.get("kind"), content.get("deployment")) != (
                row["request_id"], row["kind"], row["deployment"]):
            raise VerificationFailed(f"{label}: index columns differ from the hashed content")
        header = event_header(writer, seq, row["time"], row["kind"], row["request_id"], row["content_sha256"],
                              row["prev_hash"])
        if chain.entry_hash(header) != row["event_hash"]:
            raise VerificationFailed(f"{label}: modified (its fields do not match its hash)")
        if row["prev_hash"] != prev:
            raise VerificationFailed(f"{label}: does not follow event {seq - 1} (inserted, deleted or reordered)")
        prev = row["event_hash"]
        if seq in wanted.get(writer, ()):
            hashes.setdefault(writer, {})[seq] = prev
        last_seq[writer] = seq
        expected += 1
        events += 1
    anchored = 0
    for w, r in writers.items():
        through, cps = r.through, r.checkpoints
        for seq, h in cps:
            if seq <= through:
                continue
            if seq > last_seq.get(w, through):
                raise VerificationFailed(f"{where}: writer {w[:12]}: the signed checkpoint names event {seq}, but "
                                         f"the chain ends at {last_seq.get(w, through)} (events deleted)")
            if hashes[w][seq] != h:
                raise VerificationFailed(f"{where}: writer {w[:12]} event {seq} differs from its signed checkpoint "
                                         "(the chain was rewritten)")
        anchored += max(0, max(s for s, _ in cps) - through) if cps else 0
    return EventsReport(writers=len(last_seq), events=events, anchored=anchored,
                        deleted_by_retention=sum(r.deleted for r in writers.values()))
