"""Peak memory of `ftaudit data scan` on one single-line record, with NER on, against the same scan without NER
(the baseline, measured in the same run): NER reads long texts in overlapping windows, so memory stays bounded
whatever the line length (target: at most 512 MB per worker).

    python -m benchmarks long_record_memory            # 50 MB line (slow: NER reads all of it, ~25 min on 2 cores)
    LONG_RECORD_MB=5 python -m benchmarks long_record_memory
"""

from __future__ import annotations

import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_MB = 512
FIRST = ("Anna", "Marek", "Lucia", "John", "Priya", "Omar", "Elena", "Tom")
LAST = ("Schmidt", "Kowalski", "Rossi", "Smith", "Patel", "Haddad", "Novak", "Brown")
WORDS = ("order", "delivery", "late", "please", "refund", "account", "thanks", "the", "a", "is", "was", "and", "to",
         "my", "parcel", "week", "support", "call", "back", "soon")


def write_line(path: Path, size: int) -> None:
    rng = random.Random(1)
    parts, n = [], 0
    while n < size:
        r = rng.random()
        w = (f"{rng.choice(FIRST)} {rng.choice(LAST)}" if r < 0.02 else
             f"user{rng.randint(1, 9999)}@example.org" if r < 0.03 else rng.choice(WORDS))
        parts.append(w)
        n += len(w) + 1
    path.write_text(json.dumps({"text": " ".join(parts)}) + "\n")


def peak_mb(args: list[str]) -> tuple[float, float]:
    """(peak RSS of the largest process in MB, seconds) of one scan in a fresh process."""
    start = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    subprocess.run([sys.executable, "-m", "ftaudit.cli", "data", "scan", *args], check=True,
                   stdout=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(before, after) / 1024, time.perf_counter() - start


def main() -> None:
    size_mb = float(os.environ.get("LONG_RECORD_MB", "50"))
    with tempfile.TemporaryDirectory() as tmp:
        line = Path(tmp) / "long.jsonl"
        # In a child: the children's peak RSS counts what a fork copied from this process before its exec.
        subprocess.run([sys.executable, "-c", "import sys; from pathlib import Path; from benchmarks."
                        "long_record_memory import write_line; write_line(Path(sys.argv[1]), int(sys.argv[2]))",
                        str(line), str(int(size_mb * 1e6))], check=True, cwd=Path(__file__).resolve().parents[1])
        base_mb, base_s = peak_mb([str(line), "--no-ner", "--workers", "1", "-o", f"{tmp}/a"])
        ner_mb, ner_s = peak_mb([str(line), "--workers", "1", "-o", f"{tmp}/b"])
    print(f"one {size_mb:g} MB line; load average {os.getloadavg()[0]:.2f}")
    print("| scan | peak RSS | time | ratio to no-NER |")
    print("|---|---|---|---|")
    print(f"| patterns only (baseline) | {base_mb:.0f} MB | {base_s:.0f} s | 1.0 |")
    print(f"| with NER (windows) | {ner_mb:.0f} MB | {ner_s:.0f} s | {ner_mb / base_mb:.1f} |")
    print(f"target: NER scan at most {TARGET_MB} MB per worker: {'met' if ner_mb <= TARGET_MB else 'NOT met'}")
