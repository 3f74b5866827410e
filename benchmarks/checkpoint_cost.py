"""What a scan checkpoint costs once the duplicate index is large: a near-duplicate index of N records (random
MinHash signatures, fed in batches as a scan feeds it) saved the way `checkpoint.save` does it, then 8 saves, each
after 16 more batches of 4,096 records (a scan folding 2 MB/s saves every 30 s, about 150,000 records); against
the baseline measured in the same run, the same state pickled whole at each of those saves (as checkpoints did
before). Bytes written and seconds, summed over those saves.

`python -m benchmarks checkpoint_cost` (FTAUDIT_BENCH_RECORDS=N, default 1,000,000; FTAUDIT_BENCH_BATCHES=B batches
between saves, default 16).
"""

from __future__ import annotations

import os
import pickle
import tempfile
import time
from pathlib import Path

import numpy as np


def _written(folder: Path, since: float) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file() and f.stat().st_mtime >= since)


def main() -> None:
    from ftaudit.data import checkpoint
    from ftaudit.data.quality import NearDuplicateIndex

    n = int(os.environ.get("FTAUDIT_BENCH_RECORDS", "1000000"))
    batch = 4096
    rng = np.random.default_rng(0)
    index = NearDuplicateIndex()

    def feed(first: int, count: int) -> None:
        sigs = list(rng.integers(0, 2**32, (count, index.num_perm), dtype=np.uint32))
        keys = [rng.bytes(16) for _ in range(count)]
        index.add_many(list(range(first, first + count)), keys, sigs)

    for start in range(0, n, batch):
        feed(start, min(batch, n - start))
    saves, between = 8, int(os.environ.get("FTAUDIT_BENCH_BATCHES", "16"))
    new_s = new_bytes = whole_s = whole_bytes = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "new" / checkpoint.FILENAME
        ckpt.parent.mkdir()
        checkpoint.save(ckpt, index)  # the first save writes everything
        whole = Path(tmp) / "whole.pickle"
        for k in range(saves):
            for b in range(between):
                feed(n + (k * between + b) * batch, batch)
            start, began = time.time(), time.perf_counter()
            checkpoint.save(ckpt, index)
            new_s += time.perf_counter() - began
            new_bytes += _written(ckpt.parent, start)
            began = time.perf_counter()
            with open(whole, "wb") as fh:
                pickle.dump(index, fh, protocol=pickle.HIGHEST_PROTOCOL)
                fh.flush()
                os.fsync(fh.fileno())
            whole_s += time.perf_counter() - began
            whole_bytes += whole.stat().st_size
    print(f"index of {n:,} records, then {saves} saves, each after {between} more batches of {batch:,}; load "
          f"average {os.getloadavg()[0]:.2f}")
    print(f"| {saves} saves | MB written | seconds |")
    print("|---|---:|---:|")
    print(f"| pickled whole (baseline) | {whole_bytes / 1e6:,.1f} | {whole_s:.2f} |")
    print(f"| checkpoint.save | {new_bytes / 1e6:,.1f} | {new_s:.2f} |")
    print(f"\ncheckpoint.save writes {new_bytes / whole_bytes:.1%} of the bytes in {new_s / whole_s:.1%} of the time")


if __name__ == "__main__":
    main()
