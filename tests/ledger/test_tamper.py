"""Each kind of change to a ledger is detected and names the first broken entry (SQLite and PostgreSQL)."""

from __future__ import annotations

import json

import pytest
from ledger_helpers import make_record

from ftaudit.errors import VerificationFailed
from ftaudit.ledger import chain, open_ledger
from ftaudit.ledger.keys import load_or_create_signing_key
from ftaudit.ledger.verify import load_checkpoint, load_trust, verify_ledger


@pytest.fixture
def filled(location):
    """A ledger of 6 entries: lineage, 3 runs, an event, an artefact."""
    with open_ledger(location) as ledger:
        runs = [make_record(flops=float(i + 1) * 1e18) for i in range(3)]
        for r in runs:
            ledger.record_run(r)
        ledger.record_event(runs[0].run_id, "gate", {"threshold": 3.3e22})
        ledger.register_artefact(runs[0].run_id, "docs/model_card.md", "a" * 64, "document", 10)
        assert ledger.head().count == 6
        verify_ledger(ledger, load_trust())
    return location


def _broken(location, match, *, trust=None, checkpoint=None):
    with open_ledger(location, create=False) as ledger:
        with pytest.raises(VerificationFailed, match=match):
            verify_ledger(ledger, trust or load_trust(), checkpoint)


def _row(ledger, seq):
    return ledger.store.one("SELECT content FROM entries WHERE seq = ?", (seq,))[0]


def test_modified_field(filled):
    with open_ledger(filled) as ledger:
        content = json.loads(_row(ledger, 3))
        content["regulatory_flops"] = 1.0  # a lower compute figure
        ledger.store.execute("UPDATE entries SET content = ? WHERE seq = 3", (chain.canonical_json(content),))
    _broken(filled, r"entry 3 \(run\): content modified")


def test_modified_and_rehashed_entry_fails_signature(filled):
    with open_ledger(filled) as ledger:
        content = json.loads(_row(ledger, 4))
        content["status"] = "failed"
        text = chain.canonical_json(content)
        row = ledger.store.one("SELECT kind, created_at, key_id, prev_hash FROM entries WHERE seq = 4")
        header = chain.entry_header(ledger_id=ledger.ledger_id, seq=4, kind=row[0], created_at=row[1],
                                    key_id=row[2], prev_hash=row[3], content_sha256=chain.sha256_hex(text))
        ledger.store.execute("UPDATE entries SET content = ?, content_sha256 = ?, entry_hash = ? WHERE seq = 4",
                             (text, chain.sha256_hex(text), chain.entry_hash(header)))
    _broken(filled, r"entry 4 \(run\): signature does not match")


def test_modified_header_field(filled):
    with open_ledger(filled) as ledger:
        ledger.store.execute("UPDATE entries SET created_at = '2020-01-01T00:00:00+00:00' WHERE seq = 2")
    _broken(filled, r"entry 2 \(run\): modified")


def test_deleted_entry(filled):
    with open_ledger(filled) as ledger:
        ledger.store.execute("DELETE FROM entries WHERE seq = 3")
    _broken(filled, r"entry 3 is missing \(deleted\)")


def test_inserted_entry(filled):
    with open_ledger(filled) as ledger:
        # shift entries 4.. up by one and put a forged copy of entry 2 at 4
        for seq in range(6, 3, -1):
            ledger.store.execute("UPDATE entries SET seq = ? WHERE seq = ?", (seq + 1, seq))
        ledger.store.execute(
            "INSERT INTO entries SELECT 4, kind, created_at, key_id, prev_hash, content, content_sha256, "
            "entry_hash, signature, run_id, lineage_id FROM entries WHERE seq = 2")
    _broken(filled, r"entry 4 \(run\): modified")


def test_reordered_entries(filled):
    with open_ledger(filled) as ledger:
        ledger.store.execute("UPDATE entries SET seq = 100 WHERE seq = 3")
        ledger.store.execute("UPDATE entries SET seq = 3 WHERE seq = 4")
        ledger.store.execute("UPDATE entries SET seq = 4 WHERE seq = 100")
    _broken(filled, r"entry 3 \(run\): modified")


def test_truncated_tail(filled):
    with open_ledger(filled) as ledger:
        ledger.store.execute("DELETE FROM entries WHERE seq >= 5")
    _broken(filled, r"truncated: the signed head records 6 entries, the ledger holds 4; entry 5 onwards")


def test_deleted_head(filled):
    with open_ledger(filled) as ledger:
        ledger.store.execute("DELETE FROM head")
    _broken(filled, r"signed head missing")


def test_appended_without_head(filled):
    with open_ledger(filled) as ledger:
        ledger.store.execute(
            "INSERT INTO entries SELECT 7, kind, created_at, key_id, entry_hash, content, content_sha256, "
            "entry_hash, signature, run_id, lineage_id FROM entries WHERE seq = 6")
    _broken(filled, r"entry 7 \(artefact\): beyond the signed head")


def test_rollback_with_old_head_needs_a_checkpoint(filled, tmp_path):
    """Truncating and restoring an older signed head passes on its own; a checkpoint kept elsewhere catches it."""
    with open_ledger(filled) as ledger:
        checkpoint_file = tmp_path / "cp.json"
        checkpoint_file.write_text(ledger.head().model_dump_json())
        old = ledger.store.one("SELECT count, head_hash, updated_at, key_id, signature FROM head")
        ledger.record_run(make_record())
        ledger.record_run(make_record())
        later = ledger.head()
        later_file = tmp_path / "later.json"
        later_file.write_text(later.model_dump_json())
        # roll back: drop the two new entries (and their run rows), restore the old head row
        ledger.store.execute("DELETE FROM entries WHERE seq > 6")
        ledger.store.execute("DELETE FROM runs WHERE last_seq > 6")
        ledger.store.execute("UPDATE head SET count = ?, head_hash = ?, updated_at = ?, key_id = ?, signature = ?",
                             old)
        assert verify_ledger(ledger, load_trust()).entries == 6  # undetectable from the ledger alone
    verify_ledger(open_ledger(filled, create=False), load_trust(), load_checkpoint(str(checkpoint_file)))
    _broken(filled, r"rolled back: the checkpoint .* records 8 entries, the ledger holds 6",
            checkpoint=load_checkpoint(str(later_file)))


def test_swapped_key(filled, tmp_path):
    """Everything re-signed with another key is consistent, but not signed by the trusted key."""
    other = load_or_create_signing_key(tmp_path / "other.pem")
    with open_ledger(filled) as ledger:
        ledger.store.execute("DELETE FROM keys")
        ledger.store.execute("INSERT INTO keys (key_id, public_key) VALUES (?, ?)",
                             (other.key_id, other.public_raw.hex()))
        prev = chain.GENESIS_HASH
        rows = ledger.store.query("SELECT seq, kind, created_at, content_sha256 FROM entries ORDER BY seq")
        for seq, kind, created_at, csha in rows:
            header = chain.entry_header(ledger_id=ledger.ledger_id, seq=seq, kind=kind, created_at=created_at,
                                        key_id=other.key_id, prev_hash=prev, content_sha256=csha)
            h = chain.entry_hash(header)
            ledger.store.execute("UPDATE entries SET key_id = ?, prev_hash = ?, entry_hash = ?, signature = ? "
                                 "WHERE seq = ?", (other.key_id, prev, h, other.sign(chain.entry_message(h)), seq))
            prev = h
        head = ledger.head()
        payload = chain.head_payload(ledger_id=head.ledger_id, count=head.count, head_hash=prev,
                                     updated_at=head.updated_at, key_id=other.key_id)
        ledger.store.execute("UPDATE head SET head_hash = ?, key_id = ?, signature = ?",
                             (prev, other.key_id, other.sign(chain.head_message(payload))))
        assert verify_ledger(ledger, load_trust(key_path=str(other.path))).entries == 6  # consistent in itself
    _broken(filled, rf"head: signed by key {other.key_id}, which is not a trusted key")


def test_edited_query_table(filled):
    with open_ledger(filled) as ledger:
        ledger.store.execute("UPDATE runs SET regulatory_flops = 0")
    _broken(filled, r"table runs: row \w+ is altered")
