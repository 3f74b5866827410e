"""Rendering every document of a run (PDF included) against the JSON-only render as the baseline, plus absolute
seconds against the issue's target (< 5 s for all documents).

The record: the test suite's full record (a data scan of a file with planted personal data, compute, decision and
evaluation evidence of every section). "cold" is a fresh `ftaudit docs` process (interpreter, imports, WeasyPrint
fonts); "warm" is the median of repeated renders in one process.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 5.0
REPEATS = 3


def _timed(fn, repeats: int = REPEATS) -> tuple[float, float]:
    """(median wall seconds, median CPU seconds of this process)."""
    wall, cpu = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - w)
        cpu.append(time.process_time() - c)
    return statistics.median(wall), statistics.median(cpu)


def _ratio(x: float) -> str:
    return f"{x:.1f}" if x < 10 else f"{x:.0f}"


def main() -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    from ftaudit.record import RunRecord
    from ftaudit.reporting.context import Ctx
    from ftaudit.reporting.render import render_all, render_files
    from reporting_records import full_record, write_run

    tmp = Path(tempfile.mkdtemp(prefix="ftaudit-bench-docs-"))
    run = write_run(tmp / "run", full_record(tmp))
    ctx = Ctx(record=RunRecord.load(run), run_dir=run)
    render_files(ctx, ["json", "md", "html", "pdf"])  # warm-up: imports, fonts

    rows = []
    baseline = _timed(lambda: render_files(ctx, ["json"]))
    for label, formats in [("json (baseline)", ["json"]), ("markdown", ["md"]), ("html", ["html"]),
                           ("pdf (from the html)", ["pdf"]), ("all documents", ["json", "md", "html", "pdf"])]:
        secs = baseline if formats == ["json"] else _timed(lambda f=formats: render_files(ctx, f))
        rows.append((label, secs))
    rows.append(("all documents, written to disk", _timed(lambda: render_all(run), repeats=1)))

    cmd = [sys.executable, "-m", "ftaudit.cli", "docs", str(run)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    cold_wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cold_cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    if proc.returncode != 0:
        raise SystemExit(f"ftaudit docs failed: {proc.stderr.strip()}")

    pages = "?"
    try:
        from pypdf import PdfReader

        pages = str(len(PdfReader(str(run / "docs" / "report.pdf")).pages))
    except ImportError:
        pass
    load = os.getloadavg()[0]
    print(f"record: full (all sections); report.pdf {pages} pages; median of {REPEATS} renders in one process; "
          f"load average {load:.1f} on {os.cpu_count()} CPUs (wall ≈ CPU on an idle machine)")
    print("| render | wall s | CPU s | × json-only (wall) |")
    print("|---|---|---|---|")
    for label, (wall, cpu) in rows:
        print(f"| {label} | {wall:.3f} | {cpu:.3f} | {_ratio(wall / baseline[0])} |")
    print(f"| `ftaudit docs RUN_DIR`, fresh process (cold) | {cold_wall:.2f} | {cold_cpu:.2f} | "
          f"{_ratio(cold_wall / baseline[0])} |")
    for what, secs in (("wall", cold_wall), ("CPU", cold_cpu)):
        print(f"target < {TARGET_S:.0f} s for all documents incl. PDF: cold CLI {what} {secs:.2f} s "
              f"{'meets' if secs < TARGET_S else 'MISSES'} it")


if __name__ == "__main__":
    main()
