"""Ledger queries over 100,000 entries: indexed projection vs a full scan of the chain, in the same process.

Builds a SQLite ledger of real, signed, hash-chained entries (runs recorded twice — running then final status —
plus artefact and event entries; N_LINEAGES lineages), then times:
  - `runs_by_lineage` (cumulative compute of one lineage) through the `runs` table and its index;
  - the baseline: the same answer computed by scanning every `run` entry of the chain (json_extract, no index);
  - `runs_by_status`, single appends (each its own transaction, as a pipeline writes), and a full `verify`.
Usage: python -m benchmarks ledger_query  (env LEDGER_BENCH_ENTRIES to change the size; set
LEDGER_BENCH_POSTGRES=postgresql://... to an empty database to run the same on PostgreSQL too)
"""

from __future__ import annotations

import os
import random
import statistics
import tempfile
import time
from pathlib import Path

N_ENTRIES = int(os.environ.get("LEDGER_BENCH_ENTRIES", "100000"))
N_LINEAGES = 2000
ENTRIES_PER_RUN = 5  # lineage entries come on top, once per lineage


def _build(ledger, n_entries: int) -> list[str]:
    from ftaudit.compute.evidence import ComputeEvidence
    from ftaudit.ledger.core import run_content
    from ftaudit.record import Lineage, ModelIdentity, RunRecord

    rng = random.Random(7)
    lineages = [f"lineage-{i:05d}" for i in range(N_LINEAGES)]
    seen: set[str] = set()
    n_runs = (n_entries - N_LINEAGES) // ENTRIES_PER_RUN
    ledger_id = ledger.ledger_id
    batch = 500
    for start in range(0, n_runs, batch):
        # Real appends (hash, sign, insert, project, signed head) grouped into transactions to build quickly.
        with ledger.store.transaction(write=True):
            for i in range(start, min(start + batch, n_runs)):
                lid = rng.choice(lineages)
                rec = RunRecord(status="running", lineage=Lineage(lineage_id=lid),
                                model=ModelIdentity(base_model="org/base-7b", output_name=f"tuned-{i}"),
                                compute=ComputeEvidence(regulatory_flops=rng.uniform(1e17, 1e20)))
                if lid not in seen:
                    seen.add(lid)
                    ledger._append_locked(ledger_id, "lineage",
                                          {"lineage_id": lid, "base_model": "org/base-7b", "first_run_id": rec.run_id})
                ledger._append_locked(ledger_id, "run", run_content(rec))
                ledger._append_locked(ledger_id, "event", {"run_id": rec.run_id, "event": "checkpoint",
                                                           "data": {"step": 100}})
                ledger._append_locked(ledger_id, "artefact", {"run_id": rec.run_id, "path": "docs/model_card.md",
                                                              "sha256": f"{i:064x}", "kind": "document",
                                                              "bytes": 2048})
                ledger._append_locked(ledger_id, "event", {"run_id": rec.run_id, "event": "stage_finished",
                                                           "data": {"stage": "train"}})
                rec.status = rng.choice(["completed"] * 8 + ["stopped", "failed"])
                rec.compute.regulatory_flops *= 1.1
                ledger._append_locked(ledger_id, "run", run_content(rec))
    return sorted(seen)


def _baseline_lineage(store, lineage_id: str) -> float:
    """Full scan: every run entry's content, latest per run, filtered by lineage — what the index avoids."""
    from ftaudit.ledger.core import COUNTED_STATUSES
    from ftaudit.ledger.sqlite import SqliteStore

    if isinstance(store, SqliteStore):
        sql = ("SELECT json_extract(content, '$.run_id'), json_extract(content, '$.status'), "
               "json_extract(content, '$.regulatory_flops') FROM entries NOT INDEXED "
               "WHERE kind = 'run' AND json_extract(content, '$.lineage_id') = ? ORDER BY seq")
    else:
        sql = ("SELECT content::jsonb->>'run_id', content::jsonb->>'status', "
               "(content::jsonb->>'regulatory_flops')::float8 FROM entries "
               "WHERE kind = 'run' AND content::jsonb->>'lineage_id' = ? ORDER BY seq")
    latest = {run_id: (status, flops) for run_id, status, flops in store.query(sql, (lineage_id,))}
    return sum(f or 0.0 for s, f in latest.values() if s in COUNTED_STATUSES)


def _timed(fn, reps: int) -> list[float]:
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def bench(location: str, backend: str, tmp: str) -> None:
    from ftaudit.ledger import open_ledger
    from ftaudit.ledger.verify import load_trust, verify_ledger

    ledger = open_ledger(location)
    t = time.perf_counter()
    lineages = _build(ledger, N_ENTRIES)
    build_s = time.perf_counter() - t
    n = ledger.head().count
    print(f"{backend} ledger: {n:,} entries, {len(ledger.runs_by_status('completed')):,} completed runs, "
          f"{len(lineages):,} lineages; built in {build_s:.1f} s")

    rng = random.Random(11)
    sample = [rng.choice(lineages) for _ in range(200)]
    for lid in sample[:20]:  # same answers, or the speed-up means nothing
        fast = ledger.runs_by_lineage(lid).cumulative_flops
        slow = _baseline_lineage(ledger.store, lid)
        assert abs(fast - slow) <= 1e-9 * max(1.0, slow), (lid, fast, slow)
    it = iter(sample)
    indexed = _timed(lambda: ledger.runs_by_lineage(next(it)), len(sample))
    it2 = iter(sample)
    scan = _timed(lambda: _baseline_lineage(ledger.store, next(it2)), 7)
    status = _timed(lambda: ledger.runs_by_status("stopped"), 20)
    n_stopped = len(ledger.runs_by_status("stopped"))
    appends = _timed(lambda: ledger.record_event("bench-run", "bench", {}), 200)
    t = time.perf_counter()
    report = verify_ledger(ledger, load_trust())
    verify_s = time.perf_counter() - t
    ledger.close()

    med, p95 = statistics.median(indexed), sorted(indexed)[int(0.95 * len(indexed)) - 1]
    scan_med = statistics.median(scan)
    print()
    print(f"| operation ({backend}, {n:,} entries) | median | p95 | target |")
    print("|---|---|---|---|")
    print(f"| lineage query, indexed (`runs_by_lineage`) | {med:.2f} ms | {p95:.2f} ms | < 100 ms |")
    print(f"| lineage query, full-scan baseline | {scan_med:.0f} ms | {max(scan):.0f} ms | |")
    print(f"| runs by status (`stopped`: {n_stopped:,} runs) | {statistics.median(status):.2f} ms | "
          f"{sorted(status)[18]:.2f} ms | |")
    print(f"| one append (own transaction, signed, committed) | {statistics.median(appends):.2f} ms | "
          f"{sorted(appends)[189]:.2f} ms | |")
    print(f"| full verify ({report.entries:,} entries) | {verify_s:.1f} s | | |")
    print()
    print(f"{backend}: indexed lineage query {scan_med / med:.0f}x faster than the full scan "
          f"(median {scan_med:.0f} ms / {med:.2f} ms); indexed p95 under 100 ms: {'yes' if p95 < 100 else 'NO'}")
    print()


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="ftaudit-ledger-bench-") as tmp:
        os.environ["FTAUDIT_KEY"] = str(Path(tmp) / "key.pem")
        bench(str(Path(tmp) / "ledger.sqlite"), "SQLite", tmp)
        if os.environ.get("LEDGER_BENCH_POSTGRES"):
            bench(os.environ["LEDGER_BENCH_POSTGRES"], "PostgreSQL", tmp)

if __name__ == "__main__":
    main()
