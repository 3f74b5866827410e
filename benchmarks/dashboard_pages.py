"""Server time of the dashboard's overview and run pages on a large ledger against the same pages on a small one
(the baseline, same process), and each page's weight.

Goal (issue 13): with 10,000 runs and 1,000,000 monitoring events, the overview and a run page answer in at most
150 ms server time (p95), and do not grow with the ledger (indexed queries, pagination); a page weighs at most
300 kB without images. The large ledger: real signed entries (each run recorded with the test suite's full
record, a decision and two answers per tenth run, a signed approval per twentieth), 100 monitored deployments
with their events in `monitor_events` spread over 30 days. Requests go through the app in-process (Starlette's
test client: routing, auth, CSRF, templates; no socket).

    python -m benchmarks dashboard_pages
    DASHBOARD_RUNS=1000 DASHBOARD_EVENTS=100000 python -m benchmarks dashboard_pages   # quicker
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
N_RUNS = int(os.environ.get("DASHBOARD_RUNS", "10000"))
N_EVENTS = int(os.environ.get("DASHBOARD_EVENTS", "1000000"))
REPEATS = 40
GOAL_MS, GOAL_KB = 150.0, 300
PASSWORD = "benchmark password 1"


def _build(location: str, key: Path, tmp: Path, n_runs: int, n_events: int) -> list[str]:
    sys.path.insert(0, str(ROOT / "tests"))
    from ftaudit.dashboard import accounts, signoff
    from ftaudit.dashboard.questions import ANSWER
    from ftaudit.ledger import chain
    from ftaudit.ledger.core import open_ledger, run_content
    from ftaudit.monitor.events import RequestEvent
    from ftaudit.monitor.log import EVENT_COLUMNS, WRITER, create_tables, event_header
    from reporting_records import full_record

    template = full_record(tmp)
    rng = random.Random(3)
    ids = []
    with open_ledger(location, key_path=key) as ledger:
        reviewer = accounts.add_user(ledger, "rita", "reviewer", PASSWORD, by="bench")
        lid = ledger.ledger_id
        for start in range(0, n_runs, 500):
            with ledger.store.transaction(write=True):
                for i in range(start, min(start + 500, n_runs)):
                    rec = template.model_copy(deep=True)
                    rec.run_id = f"{i:032x}"
                    rec.model.output_name = f"support-extractor-{i}"
                    ledger._append_locked(lid, "run", run_content(rec))
                    ids.append(rec.run_id)
                    if i % 10 == 0:
                        for q, v in (("licence", "Apache-2.0"), ("context_window", 2048)):
                            ledger._append_locked(lid, "event", {"run_id": rec.run_id, "event": ANSWER, "data": {
                                "question": q, "value": v, "by": "erik", "at": "2026-12-01T00:00:00+00:00"}})
        for i in range(0, n_runs, 20):
            signoff.decide(ledger, ids[i], decision="approve", reason="benchmark", reviewer=reviewer,
                           password=PASSWORD)
        create_tables(ledger)
        deployments = [(ids[i], f"support-extractor-{i}") for i in range(0, min(n_runs, 100 * 7), 7)][:100]
        now = datetime.now(timezone.utc)
        per = max(1, n_events // len(deployments))
        for d, (run_id, name) in enumerate(deployments):
            writer = f"{d:032x}"
            ledger.record_event(run_id, WRITER, {"writer_id": writer, "deployment": name})
            rows, head = [], chain.GENESIS_HASH
            for seq in range(1, per + 1):
                when = (now - timedelta(seconds=rng.uniform(0, 30 * 86400))).isoformat()
                event = RequestEvent(request_id=f"r{d}-{seq}", time=when, deployment=name, run_id=run_id,
                                     weights_sha256="b" * 64,
                                     route="/v1/chat/completions", stream=False, status=200, latency_ms=12.5,
                                     content_policy="hash", input_chars=80, output_chars=60, input_language="en",
                                     flags=["format"] if seq % 17 == 0 else [])
                content = chain.canonical_json(event.model_dump(mode="json"))
                sha = chain.sha256_hex(content)
                h = chain.entry_hash(event_header(writer, seq, when, "request", f"r{d}-{seq}", sha, head))
                rows.append((writer, seq, when, name, "request", f"r{d}-{seq}", content, sha, head, h))
                head = h
                if len(rows) == 20_000 or seq == per:
                    with ledger.store.transaction(write=True, ledger_lock=False):
                        ledger.store.execute_many(f"INSERT INTO monitor_events ({', '.join(EVENT_COLUMNS)}) VALUES "
                                                  f"({', '.join('?' * len(EVENT_COLUMNS))})", rows)
                    rows = []
    return ids


def _measure(location: str, key: Path, run_id: str) -> dict[str, tuple[float, float, int]]:
    """{page: (median ms, p95 ms, bytes)} over REPEATS requests after one warm-up."""
    from fastapi.testclient import TestClient

    from ftaudit.dashboard.app import Settings, create_app

    client = TestClient(create_app(Settings(ledger=location, key_path=str(key), verify_every_s=1e9)))
    client.post("/login", data={"username": "rita", "password": PASSWORD})
    out = {}
    for name, url in (("overview", "/"), ("overview, page 2", "/?page_no=2"), ("run page", f"/runs/{run_id}"),
                      ("monitoring", "/monitoring")):
        client.get(url)
        times, size = [], 0
        for _ in range(REPEATS if name != "monitoring" else 5):
            t0 = time.perf_counter()
            r = client.get(url)
            times.append((time.perf_counter() - t0) * 1000)
            assert r.status_code == 200, (url, r.status_code)
            size = len(r.content)
        times.sort()
        out[name] = (statistics.median(times), times[min(len(times) - 1, int(0.95 * len(times)))], size)
    css = client.get("/static/style.css")
    out["stylesheet"] = (0.0, 0.0, len(css.content))
    return out


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        key = tmp_path / "key.pem"
        t0 = time.perf_counter()
        small_ids = _build(str(tmp_path / "small.sqlite"), key, tmp_path, 10, 1000)
        large_ids = _build(str(tmp_path / "large.sqlite"), key, tmp_path, N_RUNS, N_EVENTS)
        built = time.perf_counter() - t0
        small = _measure(str(tmp_path / "small.sqlite"), key, small_ids[0])
        large = _measure(str(tmp_path / "large.sqlite"), key, large_ids[len(large_ids) // 2])
        size_mb = (tmp_path / "large.sqlite").stat().st_size / 1e6
    print(f"large ledger: {N_RUNS:,} runs, {N_EVENTS:,} monitoring events ({size_mb:.0f} MB, built in {built:.0f} s); "
          f"baseline: 10 runs, 1,000 events; {REPEATS} requests per page; load average {os.getloadavg()[0]:.2f}")
    print("| page | baseline median / p95 | large median / p95 | ratio (p95) | weight | goal |")
    print("|---|---|---|---|---|---|")
    for name in ("overview", "overview, page 2", "run page", "monitoring"):
        # the small ledger has one page of versions: its first page is the baseline of both overview rows
        bm, bp, _ = small["overview" if name.startswith("overview") else name]
        lm, lp, size = large[name]
        goal = "" if name == "monitoring" else ("met" if lp <= GOAL_MS and size <= GOAL_KB * 1024 else "NOT met")
        print(f"| {name} | {bm:.1f} / {bp:.1f} ms | {lm:.1f} / {lp:.1f} ms | {lp / bp:.1f} | {size / 1024:.0f} kB "
              f"| {goal} |")
    print(f"| stylesheet | | | | {large['stylesheet'][2] / 1024:.1f} kB | |")
    print(f"goal: p95 <= {GOAL_MS:g} ms and <= {GOAL_KB} kB for the overview and run pages (monitoring: reported)")
