"""The scan worker's results equal, record by record, those of the per-record engine it replaced (fixture written
at commit e3eb078 by `engine_golden/make_golden.py`): same findings (spans, types, scores), redacted samples,
MinHash signatures, exact-duplicate keys, record hashes, lengths, tokens, languages, quality flags, domains and
bias tallies — on the scan benchmark's data, the labelled PII set, the detection spec sets and slow-path texts."""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

from ftaudit.data import bias as bias_mod
from ftaudit.data.loading import Record
from ftaudit.data.scan_worker import BatchOut, ScanOptions, Worker, batches

GOLDEN = Path(__file__).parent / "engine_golden"
sys.path.insert(0, str(GOLDEN))
from make_golden import sig_digest  # noqa: E402


def _load():
    with gzip.open(GOLDEN / "dataset.jsonl.gz", "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    with gzip.open(GOLDEN / "outputs.json.gz", "rt", encoding="utf-8") as fh:
        return rows, json.load(fh)


def test_worker_results_equal_the_per_record_engine_record_by_record():
    rows, golden = _load()
    worker = Worker(ScanOptions(ner=False))
    out = BatchOut([], bias_mod.BiasTally())
    for batch in batches(iter(Record(i, "golden", r) for i, r in enumerate(rows)), worker.opts.batch_size):
        out.extend(worker.run(batch, "train"))
    assert len(out.records) == len(golden["records"]) == 2258
    differ = []
    for i, (r, want) in enumerate(zip(out.records, golden["records"], strict=True)):
        got = {
            "rec_hash": r.rec_hash.hex(), "key": r.key.hex(), "sig": sig_digest(r.sig), "chars": r.chars,
            "tokens": r.tokens, "content_bytes": r.content_bytes, "language": r.language, "fields": r.fields,
            "content_fields": r.content_fields, "flag": r.flag, "domains": r.domains,
            "domain_method": r.domain_method, "findings": [list(f) for f in r.findings],
            "samples": [list(s) for s in r.samples],
        }
        bad = sorted(k for k in want if got[k] != want[k])
        if bad:
            differ.append((i, bad))
    assert not differ, f"{len(differ)} records differ, first: {differ[:5]}"
    assert bias_mod.summarise(out.bias) == golden["bias"]
