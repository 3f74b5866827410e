"""Writes the engine-equivalence fixture: a varied dataset and, for every record, what the scan worker made of it.

The outputs were written by the per-record engine (commit e3eb078, before the batch fast path); the test
`test_engine_equivalence.py` requires today's worker to give the same, record by record. Regenerate only when a
change of results is intended and reviewed: `python tests/data/engine_golden/make_golden.py`.

Dataset: the scan benchmark's generated records (Faker, seeded), the labelled PII benchmark set, the detection
spec sets (positives, negatives, secrets), and texts that take the slow paths (non-ASCII scripts, case-folding
that changes length, long records, empty and garbled ones, JSON chat records)."""

from __future__ import annotations

import gzip
import json
import random
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
ROOT = HERE.parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "data")]


def dataset() -> list[dict]:
    from test_detection_spec_sets import NEGATIVES, positives, secret_positives

    from benchmarks.data_scan import _dataset
    from benchmarks.pii_detection import build_set

    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "b.jsonl"
        _dataset(path, 1200, seed=7)
        rows += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    rows += [{"text": r["text"]} for r in build_set(600, seed=11)]
    rows += [{"text": t} for texts in positives().values() for t, _ in texts]
    rows += [{"text": t} for t, *_ in NEGATIVES]
    rows += [{"text": f"config: {t}"} for texts in secret_positives().values() for t in texts]
    rng = random.Random(3)
    odd = [
        "Straße in München, Größe ß, İstanbul'da bir kadın doktor, ΣΊΣΥΦΟΣ ο Έλληνας.",
        "Москва — столица России, и это не тайна, что он работает врачом.",
        "東京都に住んでいる女性の医者です。電話は03-1234-5678。",
        "北京是中国的首都。", "שלום עולם, זה טקסט בעברית.", "مرحبا بالعالم، هذا نص عربي.",
        "नमस्ते दुनिया, यह हिंदी पाठ है।", "สวัสดีชาวโลก", "안녕하세요 세계",
        "", "   ", "\x00\x01\x02 garbled \ufffd\ufffd\ufffd", "Ã©tÃ© Ã  la plage, cafÃ©", "a" * 300,
        "The nurse said she was happy; the old man was angry. A Muslim woman, a Christian engineer, a gay teacher.",
        "He is a black doctor and she is a young white lawyer! Disabled veterans? Elderly women. Asian students.",
        "Visit https://www.example.co.uk/path?q=1 and http://sub.example.com.au/x, mail j.doe+x@example.org.",
        "Mr. Smith's SSN 123-45-6789 and card 4111 1111 1111 1111; IBAN DE89 3704 0044 0532 0130 00.",
        " ".join(rng.choice(["word", "the", "she", "doctor", "1234", "x@y.io", "Ünïcödé", "naïve"])
                 for _ in range(30_000)),
        "line\n" * 5000 + "end with 192.168.1.1 and +49 30 1234567",
    ]
    rows += [{"text": t} for t in odd]
    rows += [{"messages": [{"role": "user", "content": "My phone is +44 20 7946 0958, call me."},
                           {"role": "assistant", "content": f"Noted, {i}. Email ops@example.com if needed."}],
              "id": f"r{i}", "url": "https://news.example.de/a"} for i in range(20)]
    return rows


def sig_digest(sig) -> str | None:
    """The MinHash signature's digest (uint32 little-endian): 64 random numbers a record do not compress."""
    import hashlib

    import numpy as np

    return None if sig is None else hashlib.sha256(np.asarray(sig, dtype="<u4").tobytes()).hexdigest()[:32]


def outputs(rows: list[dict]) -> tuple[list[dict], dict]:
    from ftaudit.data import bias as bias_mod
    from ftaudit.data.loading import Record
    from ftaudit.data.scan_worker import BatchOut, ScanOptions, Worker, batches

    worker = Worker(ScanOptions(ner=False))
    records = [Record(i, "golden", r) for i, r in enumerate(rows)]
    out = BatchOut([], bias_mod.BiasTally())
    for batch in batches(iter(records), worker.opts.batch_size):
        out.extend(worker.run(batch, "train"))
    per_record = [{
        "rec_hash": r.rec_hash.hex(), "key": r.key.hex(), "sig": sig_digest(r.sig),
        "chars": r.chars, "tokens": r.tokens, "content_bytes": r.content_bytes, "language": r.language,
        "fields": r.fields, "content_fields": r.content_fields, "flag": r.flag, "domains": r.domains,
        "domain_method": r.domain_method, "findings": [list(f) for f in r.findings],
        "samples": [list(s) for s in r.samples],
    } for r in out.records]
    return per_record, bias_mod.summarise(out.bias)


def main() -> None:
    rows = dataset()
    per_record, bias = outputs(rows)
    with gzip.open(HERE / "dataset.jsonl.gz", "wt", encoding="utf-8", compresslevel=9) as fh:
        fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    with gzip.open(HERE / "outputs.json.gz", "wt", encoding="utf-8", compresslevel=9) as fh:
        json.dump({"records": per_record, "bias": bias}, fh)
    print(f"{len(rows)} records")


if __name__ == "__main__":
    main()
