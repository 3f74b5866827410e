"""Recording runs and querying them, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from ledger_helpers import make_record

from ftaudit.errors import BadInput
from ftaudit.ledger import open_ledger
from ftaudit.ledger.verify import load_trust, verify_ledger


def test_lineage_cumulative_compute_and_status(location):
    with open_ledger(location) as ledger:
        first = make_record(status="running", flops=1.0e18)
        ledger.record_run(first)
        first.status = "completed"
        first.compute.regulatory_flops = 3.0e18  # the final meter reading replaces the running figure
        ledger.record_run(first)
        ledger.record_run(make_record(status="stopped", flops=2.0e18))
        ledger.record_run(make_record(status="planned", flops=9.0e22))  # an estimate: nothing executed
        ledger.record_run(make_record(status="failed", flops=None))
        ledger.record_run(make_record(status="completed", lineage="lin-b", flops=7.0e20))

        report = ledger.runs_by_lineage("lin-a")
        assert [r.status for r in report.runs] == ["completed", "stopped", "planned", "failed"]
        assert report.cumulative_flops == pytest.approx(5.0e18)
        assert len(report.runs_without_flops) == 1
        assert report.base_model == "org/base-1b"
        assert ledger.runs_by_lineage("lin-b").cumulative_flops == pytest.approx(7.0e20)

        completed = ledger.runs_by_status("completed")
        assert {r.run_id for r in completed} == {first.run_id, ledger.runs_by_lineage("lin-b").runs[0].run_id}
        assert ledger.runs_by_status("running") == []
        assert ledger.run_record(first.run_id)["status"] == "completed"
        # one lineage entry per lineage, one entry per recorded state
        kinds = [e.kind for e in ledger.entries()]
        assert kinds.count("lineage") == 2 and kinds.count("run") == 6
        report = verify_ledger(ledger, load_trust())
        assert report.entries == 8 and report.runs == 5 and report.pinned


def test_unknown_lineage_is_bad_input(sqlite_location):
    with open_ledger(sqlite_location) as ledger:
        with pytest.raises(BadInput, match="no runs of lineage"):
            ledger.runs_by_lineage("nope")


def test_register_artefact_rejects_paths_outside_run_dir(sqlite_location):
    with open_ledger(sqlite_location) as ledger:
        with pytest.raises(BadInput, match="relative"):
            ledger.register_artefact("r", "../etc/passwd", "0" * 64, "document")
        with pytest.raises(BadInput, match="64 lowercase hex"):
            ledger.register_artefact("r", "docs/a.md", "xyz", "document")
        with pytest.raises(BadInput, match="plain JSON"):
            ledger.record_event("r", "meter", {"flops": float("nan")})
        assert ledger.head().count == 0  # nothing half-written


def test_reader_never_creates_a_ledger(tmp_path, key_path):
    missing = tmp_path / "none.sqlite"
    with pytest.raises(BadInput, match="no ledger here"):
        open_ledger(missing, create=False)
    assert not missing.exists()


def test_two_writers_with_their_own_keys(location, tmp_path):
    from ftaudit.errors import VerificationFailed
    from ftaudit.ledger.keys import key_id, load_public_key, load_signing_key, public_key_path
    from ftaudit.ledger.verify import Trust

    with open_ledger(location) as a:
        a.record_run(make_record())
    other = tmp_path / "machine-b" / "key.pem"
    with open_ledger(location, key_path=other) as b:
        b.record_run(make_record())
        raws = [load_signing_key().public_raw, load_public_key(public_key_path(other))]
        assert verify_ledger(b, Trust(keys={key_id(r): r for r in raws}, pinned=True)).entries == 3
        with pytest.raises(VerificationFailed, match=r"head: signed by key \w+, which is not a trusted"):
            verify_ledger(b, load_trust())
