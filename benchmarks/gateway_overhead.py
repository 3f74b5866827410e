"""Latency the logging gateway adds, at a fixed request rate, against the same load sent straight to a fast stub
upstream in the same run (the baseline); and whether every request became an event.

Goal (issue 12; anchor: LiteLLM's published proxy overhead of 2 ms median / 8 ms p95 / 13 ms p99): added p50 at
most 1 ms and p99 at most 5 ms at 500 requests/s, `redacted` content and hash-chained SQLite storage, no event lost.
Three processes share the machine: the stub, the gateway and this load generator.

    python -m benchmarks gateway_overhead            # 500 req/s for 10 s, JSON and streamed answers
    GATEWAY_RATE=200 GATEWAY_SECONDS=5 python -m benchmarks gateway_overhead
    GATEWAY_LEDGER=postgresql://user@/db?host=/tmp python -m benchmarks gateway_overhead   # a throwaway database
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

GOAL_P50_MS, GOAL_P99_MS = 1.0, 5.0
PROMPT = "Hello, I am John Doe (john.doe@example.com, +44 20 7946 0958). Where is my refund for order 1182?"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _wait(url: str) -> None:
    async with aiohttp.ClientSession() as s:
        for _ in range(300):
            try:
                async with s.get(url) as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise TimeoutError(url)


async def _load(url: str, rate: float, seconds: float, stream: bool) -> tuple[list[float], int]:
    """Open loop: request i is sent at i / rate seconds, whatever the earlier ones are doing."""
    body = json.dumps({"model": "stub", "stream": stream, "messages": [{"role": "user", "content": PROMPT}]})
    latencies: list[float] = []
    failed = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        async def one() -> None:
            nonlocal failed
            t0 = time.perf_counter()
            async with session.post(url + "/v1/chat/completions", data=body,
                                    headers={"content-type": "application/json"}) as r:
                await r.read()
                if r.status != 200:
                    failed += 1
            latencies.append((time.perf_counter() - t0) * 1000)

        start = time.perf_counter()
        tasks = []
        for i in range(int(rate * seconds)):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
    return latencies, failed


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def _record(run_dir: Path) -> None:
    from ftaudit.record import ModelIdentity, RunRecord

    RunRecord(status="completed", model=ModelIdentity(output_name="stub-v1")).save(run_dir)


def writer_throughput(tmp_path: Path, location: str | None, n: int = 5000) -> float:
    """Events per second the event log builds (redacted content, checks) and writes, from a full queue."""
    from datetime import datetime, timezone

    from benchmarks.openai_stub import BODY
    from ftaudit.monitor.events import Deployment, EventBuilder, Exchange
    from ftaudit.monitor.log import EventLog

    dep = Deployment(name="stub-v1", run_id="bench")
    log = EventLog(location or str(tmp_path / "throughput.sqlite"), run_id="bench", deployment=dep.name, queue_max=n,
                   key_path=str(tmp_path / "key.pem"),
                   build=EventBuilder(deployment=dep, policy="redacted", salt=b"s" * 32))
    log.start()
    request = json.dumps({"model": "stub", "messages": [{"role": "user", "content": PROMPT}]}).encode()
    now = datetime.now(timezone.utc)
    start = time.perf_counter()
    for i in range(n):
        log.reserve()
        log.submit(Exchange(request_id=f"r{i}", received_at=now, route="/v1/chat/completions", request_body=request,
                            status=200, response_body=BODY, streamed=False, latency_ms=1.0, ttft_ms=1.0), f"r{i}")
    while log.stats.written < n:
        time.sleep(0.01)
    elapsed = time.perf_counter() - start
    log.stop()
    return n / elapsed


def main() -> None:
    rate = float(os.environ.get("GATEWAY_RATE", "500"))
    seconds = float(os.environ.get("GATEWAY_SECONDS", "10"))
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        _record(tmp_path)
        env = {**os.environ, "FTAUDIT_KEY": str(tmp_path / "key.pem"), "FTAUDIT_MONITOR_SALT": "cd" * 32}
        stub_port, gw_port = _port(), _port()
        ledger = os.environ.get("GATEWAY_LEDGER") or str(tmp_path / "ledger.sqlite")
        stub = subprocess.Popen([sys.executable, "-m", "benchmarks.openai_stub", str(stub_port)])
        gw = subprocess.Popen([sys.executable, "-m", "ftaudit.cli", "monitor", "gateway", "--upstream",
                               f"http://127.0.0.1:{stub_port}", "--run", tmp, "--listen", f"127.0.0.1:{gw_port}",
                               "--ledger", str(ledger), "--content", "redacted"], env=env, stdout=subprocess.DEVNULL)
        rows = []
        sent = 0
        try:
            asyncio.run(_wait(f"http://127.0.0.1:{stub_port}/v1/models"))
            asyncio.run(_wait(f"http://127.0.0.1:{gw_port}/healthz"))
            for stream in (False, True):
                direct, _ = asyncio.run(_load(f"http://127.0.0.1:{stub_port}", rate, seconds, stream))
                through, failed = asyncio.run(_load(f"http://127.0.0.1:{gw_port}", rate, seconds, stream))
                sent += len(through)
                rows.append((stream, direct, through, failed))
            time.sleep(1.0)
        finally:
            gw.terminate()
            gw.wait(60)
            stub.terminate()
            stub.wait(10)
        from ftaudit.ledger.core import open_ledger

        with open_ledger(ledger, create=False) as led:
            (events,) = led.store.one("SELECT COUNT(*) FROM monitor_events")
        per_s = writer_throughput(tmp_path, ledger if "://" in ledger else None)
    store = "PostgreSQL" if "://" in ledger else "SQLite"
    print(f"{rate:g} requests/s for {seconds:g} s per row, content `redacted`, {store}; load average "
          f"{os.getloadavg()[0]:.2f}")
    print("| answer | direct p50 / p99 | through the gateway p50 / p99 | added p50 / p99 | non-200 |")
    print("|---|---|---|---|---|")
    for stream, direct, through, failed in rows:
        added50, added99 = _pct(through, .5) - _pct(direct, .5), _pct(through, .99) - _pct(direct, .99)
        print(f"| {'streamed' if stream else 'JSON'} | {_pct(direct, .5):.2f} / {_pct(direct, .99):.2f} ms | "
              f"{_pct(through, .5):.2f} / {_pct(through, .99):.2f} ms | {added50:.2f} / {added99:.2f} ms | {failed} |")
        if not stream:
            verdict = "met" if added50 <= GOAL_P50_MS and added99 <= GOAL_P99_MS else "NOT met"
            print(f"goal (JSON): added p50 <= {GOAL_P50_MS} ms and p99 <= {GOAL_P99_MS} ms: {verdict}")
    print(f"events: {events} written for {sent} requests ({'none lost' if events == sent else 'LOST SOME'})")
    print(f"event log alone, from a full queue (redacted, checks, hash chain, {store}): {per_s:.0f} events/s "
          f"(goal >= 1,000: {'met' if per_s >= 1000 else 'NOT met'})")
