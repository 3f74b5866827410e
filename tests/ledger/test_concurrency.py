"""Writers in separate processes appending at once still leave one valid chain (SQLite and PostgreSQL)."""

from __future__ import annotations

import multiprocessing as mp

from ftaudit.errors import BadInput
from ftaudit.ledger import open_ledger
from ftaudit.ledger.verify import load_trust, verify_ledger

WRITERS, PER_WRITER = 4, 12


def _writer(location: str, key_path: str, barrier, n: int, results) -> None:
    from ledger_helpers import make_record

    barrier.wait()  # start together so that appends interleave
    seqs = []
    with open_ledger(location, key_path=key_path) as ledger:
        for i in range(n):
            record = make_record(lineage=f"lin-{i % 3}", flops=1.0e17)
            seqs.append(ledger.record_run(record).seq)
            if i % 4 == 0:
                seqs.append(ledger.record_event(record.run_id, "checkpoint", {"step": i}).seq)
    results.put(seqs)


def test_concurrent_writers_leave_a_valid_chain(location, key_path):
    # No set-up: the writers race to create the key, the tables and the signed empty head as well.
    ctx = mp.get_context("fork")
    barrier, results = ctx.Barrier(WRITERS), ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(location, str(key_path), barrier, PER_WRITER, results))
             for _ in range(WRITERS)]
    for p in procs:
        p.start()
    # A reviewer verifying while jobs append sees a consistent snapshot: never a false alarm.
    verified = 0
    while any(p.is_alive() for p in procs):
        try:
            with open_ledger(location, create=False) as ledger:
                verify_ledger(ledger, load_trust())
                verified += 1
        except BadInput:
            pass  # the writers have not created the ledger yet
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0, "a writer failed: appends collided"
    seqs = [s for _ in procs for s in results.get(timeout=5)]
    with open_ledger(location, create=False) as ledger:
        report = verify_ledger(ledger, load_trust())
        lineage_entries = 3
        events = WRITERS * len(range(0, PER_WRITER, 4))
        assert report.entries == WRITERS * PER_WRITER + events + lineage_entries
        assert report.runs == WRITERS * PER_WRITER
        # every writer's entries got distinct sequence numbers, none lost
        assert len(set(seqs)) == len(seqs) == WRITERS * PER_WRITER + events
        total = sum(ledger.runs_by_lineage(f"lin-{i}").cumulative_flops for i in range(3))
        assert abs(total - WRITERS * PER_WRITER * 1.0e17) < 1e6


def test_first_use_key_creation_race(tmp_path):
    """Several processes creating the key at once all end up with the same key."""
    ctx = mp.get_context("fork")
    path = tmp_path / "k" / "key.pem"
    q = ctx.Queue()

    def make(q):
        from ftaudit.ledger.keys import load_or_create_signing_key

        q.put(load_or_create_signing_key(path).key_id)

    procs = [ctx.Process(target=make, args=(q,)) for _ in range(4)]
    for p in procs:
        p.start()
    ids = {q.get(timeout=60) for _ in procs}
    for p in procs:
        p.join(timeout=30)
    assert len(ids) == 1
    assert (path.stat().st_mode & 0o777) == 0o600


def test_a_new_sqlite_ledger_is_in_wal_mode_from_the_moment_its_file_exists(tmp_path, key_path):
    """Readers polling a ledger that jobs are creating cannot starve the switch to WAL: there is none to make."""
    from ftaudit.ledger.sqlite import APPLICATION_ID

    path = tmp_path / "new" / "ledger.sqlite"
    open_ledger(str(path)).close()
    header = path.read_bytes()[:100]
    assert header[18:20] == b"\x02\x02"  # file format read/write version 2: WAL
    assert int.from_bytes(header[68:72], "big") == APPLICATION_ID
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".ledger.sqlite.")]  # no temporary left
