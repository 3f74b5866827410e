"""Where one scan worker's time goes: each stage of `scan_worker.Worker.run` timed alone over the data_scan
benchmark's generated records (patterns, no NER), in µs a record, as a share of the stages' sum and as a multiple
of reading the same records (the baseline, measured in the same run); then the whole `Worker.run` on the same
batches, to show that the stages account for it.

`python -m benchmarks data_scan_stages` (FTAUDIT_BENCH_RECORDS=N, default 5,000; best of FTAUDIT_BENCH_REPEAT).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from benchmarks.data_scan import _dataset


def main() -> None:
    from ftaudit.data import bias, provenance
    from ftaudit.data.loading import iter_records, iter_texts
    from ftaudit.data.pieces import utf8_length
    from ftaudit.data.pii import detect_many
    from ftaudit.data.quality import exact_key, quality_flag
    from ftaudit.data.scan_worker import METADATA_KEYS, ScanOptions, Worker, batches, leaf_key
    from ftaudit.data.stats import detect_language

    n = int(os.environ.get("FTAUDIT_BENCH_RECORDS", "5000"))
    repeat = int(os.environ.get("FTAUDIT_BENCH_REPEAT", "3"))
    worker = Worker(ScanOptions(workers=1, ner=False))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "d.jsonl"
        _dataset(path, n)
        mb = path.stat().st_size / 1e6
        records = list(iter_records(path))
        for batch in batches(iter(records[:500]), 256):  # imports, compiled patterns, phone metadata
            worker.run(batch, "train")
        best: dict[str, float] = defaultdict(lambda: float("inf"))
        spent: dict[str, float] = defaultdict(float)

        def timed(stage, fn):
            start = time.perf_counter()
            out = fn()
            spent[stage] += time.perf_counter() - start
            return out

        for _ in range(repeat):
            spent.clear()
            timed("reading (baseline)", lambda: list(iter_records(path)))
            for batch in batches(iter(records), 256):
                leaves = timed("fields", lambda b=batch: [list(iter_texts(r)) for r in b])
                contents = [[t for p, t in lv if leaf_key(p) not in METADATA_KEYS] for lv in leaves]
                joined = ["\n".join(c) for c in contents]
                timed("record hash", lambda b=batch: [provenance.record_hash(r.data) for r in b])
                timed("exact key", lambda j=joined: [exact_key(t) for t in j])
                timed("tokens", lambda j=joined: [worker.tokens(t) for t in j])
                timed("UTF-8 bytes", lambda j=joined: [utf8_length(t) for t in j])
                timed("language", lambda j=joined: [detect_language(t) for t in j])
                timed("garbled check", lambda c=contents: [quality_flag(x) for x in c])
                timed("domains", lambda b=batch, c=contents: [provenance.record_domains(r.data, x)
                                                              for r, x in zip(b, c, strict=True)])
                tally = bias.BiasTally()
                timed("bias tally", lambda c=contents, t=tally: [bias.tally_record(x, worker.lexicon, t) for x in c])
                timed("MinHash", lambda j=joined: worker.hasher.signatures(j))
                texts = [t for lv in leaves for _, t in lv if t]
                timed("detection", lambda t=texts: detect_many(t, ner=False))
            timed("Worker.run (all of it)", lambda: [worker.run(b, "train") for b in batches(iter(records), 256)])
            for stage, seconds in spent.items():
                best[stage] = min(best[stage], seconds)
    base = best.pop("reading (baseline)")
    whole = best.pop("Worker.run (all of it)")
    total = sum(best.values())
    print(f"{n:,} records, {mb:.1f} MB, one process, best of {repeat}, load average {os.getloadavg()[0]:.2f}")
    print("| stage | µs a record | share | vs reading |")
    print("|---|---:|---:|---:|")
    print(f"| reading the records (baseline) | {base / n * 1e6:.1f} | | 1.0× |")
    for stage, seconds in sorted(best.items(), key=lambda kv: -kv[1]):
        print(f"| {stage} | {seconds / n * 1e6:.1f} | {seconds / total:.0%} | {seconds / base:.1f}× |")
    print(f"\nstages {total / n * 1e6:.0f} µs a record ({mb / total:.2f} MB/s); Worker.run {whole / n * 1e6:.0f} µs "
          f"a record ({mb / whole:.2f} MB/s): the stages are {total / whole:.0%} of it")
