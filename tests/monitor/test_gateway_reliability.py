"""The gateway under failure: an upstream that is down, a kill -9 under load, a full queue, two replicas writing
to one PostgreSQL ledger, a run directory without a RunRecord. Nothing is lost silently, the log always verifies."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import threading
import time
import urllib.request

import pytest

from conftest import events_of, free_port, ftaudit, start_gateway

pytestmark = pytest.mark.slow


def _post(url: str, body: dict, timeout: float = 60) -> tuple[int, dict, float]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read()), time.monotonic()
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read()), time.monotonic()


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def _chat(gw_url: str, run_dir, tokens: int = 1) -> tuple[int, dict, float]:
    return _post(gw_url + "/v1/chat/completions", {"model": str(run_dir / "model"), "max_tokens": tokens,
                                                   "messages": [{"role": "user", "content": "hi"}]})


def test_upstream_down_is_a_502_with_a_json_body_and_an_event(run_dir, monitor_env, tmp_path):
    ledger = str(tmp_path / "ledger.sqlite")
    gw = start_gateway(f"http://127.0.0.1:{free_port()}", run_dir, ledger, monitor_env)
    try:
        status, body, _ = _chat(gw.url, run_dir)
        assert status == 502 and body["error"]["type"] == "upstream_unreachable"
    finally:
        gw.proc.send_signal(signal.SIGTERM)
        gw.proc.wait(30)
    (event,) = events_of(monitor_env, ledger, tmp_path / "e.jsonl")
    assert event["status"] == 502 and event["error"].startswith("upstream unreachable")
    assert event["content_policy"] == "hash" and event["input"].startswith("hmac-sha256:")


def test_upstream_errors_pass_through_and_gateway_errors_are_json(stub, run_dir, monitor_env, tmp_path):
    ledger = str(tmp_path / "ledger.sqlite")
    gw = start_gateway(stub, run_dir, ledger, monitor_env, "--timeout", "1")
    chat = gw.url + "/v1/chat/completions"
    try:
        for model, code, kind in (("unknown-model", 404, "not_found"), ("broken", 500, "server_error"),
                                  ("slow", 504, "upstream_timeout")):
            status, body, _ = _post(chat, {"model": model, "messages": [{"role": "user", "content": "hi"}]})
            assert (status, body["error"]["type"]) == (code, kind)
        status, body, _ = _post(chat, {"model": "m", "messages": [{"role": "user", "content": "x" * (9 << 20)}]})
        assert (status, body["error"]["type"]) == (413, "request_too_large")
        status, body, _ = _post(gw.url + "/v1/embeddings", {"input": "hi"})
        assert status == 404 and body["error"]["code"] == 404
    finally:
        gw.proc.send_signal(signal.SIGTERM)
        gw.proc.wait(30)
    events = events_of(monitor_env, ledger, tmp_path / "e.jsonl")
    assert [(e["model"], e["status"], e["error"]) for e in events] == [
        ("unknown-model", 404, None), ("broken", 500, None), ("slow", 504, "upstream timed out")]


def test_with_an_api_key_every_route_but_health_needs_it(stub, run_dir, monitor_env, tmp_path):
    env = {**monitor_env, "GATEWAY_KEY": "s3cret-key"}
    gw = start_gateway(stub, run_dir, str(tmp_path / "ledger.sqlite"), env, "--api-key-env", "GATEWAY_KEY")
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode()
    try:
        for route, data in (("/v1/chat/completions", body), ("/v1/models", None), ("/v1/feedback", b"{}"),
                            ("/v1/traces", b"")):
            for auth, expected in ((None, 401), ("Bearer wrong", 401)):
                headers = {"content-type": "application/json", **({"authorization": auth} if auth else {})}
                req = urllib.request.Request(gw.url + route, data=data, headers=headers)
                with pytest.raises(urllib.error.HTTPError) as denied:
                    urllib.request.urlopen(req, timeout=10)
                assert denied.value.code == expected
                assert json.loads(denied.value.read())["error"]["type"] == "authentication_error"
        req = urllib.request.Request(gw.url + "/v1/chat/completions", data=body, headers={
            "content-type": "application/json", "authorization": "Bearer s3cret-key"})
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.status == 200
        with urllib.request.urlopen(gw.url + "/healthz", timeout=10) as r:  # load balancers probe it without a key
            assert json.loads(r.read())["status"] == "serving"
        assert _upstream_saw(gw.url, "Bearer s3cret-key") == "none", "the gateway's own key stays in the gateway"
    finally:
        gw.proc.send_signal(signal.SIGTERM)
        gw.proc.wait(30)


def _upstream_saw(url: str, auth: str) -> str:
    body = json.dumps({"model": "auth-echo", "messages": [{"role": "user", "content": "hi"}]}).encode()
    req = urllib.request.Request(url + "/v1/chat/completions", data=body, headers={
        "content-type": "application/json", "authorization": auth})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())["choices"][0]["message"]["content"]


@pytest.mark.parametrize("keys", [("--api-key-env", "GATEWAY_KEY", "--upstream-api-key-env", "UPSTREAM_KEY"), ()],
                         ids=["both keys", "no keys"])
def test_the_upstream_gets_its_own_key_or_the_clients_header_when_the_gateway_has_none(stub, run_dir, monitor_env,
                                                                                        tmp_path, keys):
    env = {**monitor_env, "GATEWAY_KEY": "s3cret-key", "UPSTREAM_KEY": "upstream-key"}
    gw = start_gateway(stub, run_dir, str(tmp_path / "ledger.sqlite"), env, *keys)
    try:
        client = "Bearer s3cret-key" if "GATEWAY_KEY" in keys else "Bearer clients-own-key"
        assert _upstream_saw(gw.url, client) == ("Bearer upstream-key" if keys else "Bearer clients-own-key")
    finally:
        gw.proc.send_signal(signal.SIGTERM)
        gw.proc.wait(30)


def test_an_empty_key_variable_is_refused(run_dir, tmp_path, capsys, monkeypatch):
    from ftaudit.cli import main

    monkeypatch.setenv("FTAUDIT_TEST_UNSET_KEY", "")
    for option in ("--api-key-env", "--upstream-api-key-env"):
        code = main(["monitor", "gateway", "--upstream", "http://127.0.0.1:9", "--run", str(run_dir), "--ledger",
                     str(tmp_path / "l.sqlite"), option, "FTAUDIT_TEST_UNSET_KEY"])
        err = capsys.readouterr().err
        assert code == 1 and f"{option} FTAUDIT_TEST_UNSET_KEY: that environment variable is empty" in err


BACKLOG, PACE_S = 40, 0.05  # answers a client may be ahead of what the writer committed; seconds between looks
LOADED = 100  # answers before the kill


@pytest.mark.parametrize("victim", ["gateway", "gateway and writer"])
def test_kill_9_under_load_loses_at_most_the_writers_batch_and_never_corrupts(stub, run_dir, monitor_env, tmp_path,
                                                                               victim):
    ledger = str(tmp_path / "ledger.sqlite")
    gw = start_gateway(stub, run_dir, ledger, monitor_env, "--json")
    listening = json.loads(gw.proc.stdout.readline())
    assert listening["event"] == "listening" and listening["url"] == gw.url
    answered: list[str] = []
    stop = threading.Event()
    # Killing the gateway alone: as fast as four clients go. Killing its writer too: a client sends only while the
    # answers are at most BACKLOG ahead of the last committed count /healthz showed (committed events are never
    # lost, and that count only grows), so what the writer holds at the kill is at most BACKLOG plus one request per
    # client, however slowly a loaded machine lets the niced writer run.
    seen = threading.Condition()
    committed = [0]

    def client():
        while not stop.is_set():
            if victim != "gateway":
                with seen:
                    seen.wait_for(lambda: stop.is_set() or len(answered) - committed[0] < BACKLOG)
                if stop.is_set():
                    return
            try:
                status, body, _ = _chat(gw.url, run_dir)
            except OSError:
                return
            if status == 200:
                answered.append(body["id"])

    def pacer():
        while not stop.is_set():
            try:
                written = _get(gw.url + "/healthz")["events_written"]
            except OSError:
                return
            with seen:
                committed[0] = max(committed[0], written)
                seen.notify_all()
            time.sleep(PACE_S)

    threads = [threading.Thread(target=client) for _ in range(4)] + [threading.Thread(target=pacer)]
    for t in threads:
        t.start()
    # Under load: kill once more than LOADED requests were answered and the writer has committed some (a loaded CI
    # machine may start the niced writer late), not after a fixed time.
    deadline = time.monotonic() + 120
    while (len(answered) <= LOADED or not _committed_events(ledger)) and time.monotonic() < deadline:
        time.sleep(0.1)
    (writer,) = [c for c in _children(gw.proc.pid) if b"resource_tracker" not in _cmdline(c)]  # the event log's
    if victim == "gateway":
        gw.proc.send_signal(signal.SIGKILL)
    else:
        os.killpg(gw.proc.pid, signal.SIGKILL)
    gw.proc.wait(10)
    stop.set()
    with seen:
        seen.notify_all()
    for t in threads:
        t.join(30)
    deadline = time.monotonic() + 30  # an orphaned writer drains the pipe, writes, checkpoints and exits
    while _alive(writer) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(writer)
    done = ftaudit(monitor_env, "verify", ledger)
    assert done.returncode == 0, done.stderr  # the chain is whole: no half-written batch
    events = events_of(monitor_env, ledger, tmp_path / "e.jsonl")
    assert len(answered) > LOADED
    assert len(events) <= len(answered) + 4  # at most the requests in flight at the kill have no answer
    logged = {e["request_id"] for e in events}
    if victim == "gateway":
        # Each exchange reaches the writer before its client sees the end of the answer: none answered is lost.
        assert len(events) >= len(answered), (len(events), len(answered))
    else:
        # The writer's batch in the making is lost with it: the backlog the pacing allows and four clients in flight.
        assert len(events) >= len(answered) - (BACKLOG + 4), (len(events), len(answered))
    assert len(logged) == len(events)


def _children(pid: int) -> list[int]:
    return [int(c) for c in open(f"/proc/{pid}/task/{pid}/children").read().split()]


def _cmdline(pid: int) -> bytes:
    return open(f"/proc/{pid}/cmdline", "rb").read()


def _committed_events(ledger: str) -> int:
    try:
        with sqlite3.connect(f"file:{ledger}?mode=ro", uri=True, timeout=1) as db:
            return db.execute("SELECT count(*) FROM monitor_events").fetchone()[0]
    except sqlite3.Error:  # not created yet, or its schema not yet written
        return 0


def _alive(pid: int) -> bool:
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_full_queue_answers_503_and_counts_it_and_loses_nothing_accepted(stub, run_dir, monitor_env, tmp_path):
    ledger = str(tmp_path / "ledger.sqlite")
    gw = start_gateway(stub, run_dir, ledger, monitor_env, "--queue-max", "2")
    blocker = sqlite3.connect(ledger, timeout=30, isolation_level=None)
    try:
        blocker.execute("BEGIN EXCLUSIVE")  # the database stops taking writes: the writer thread waits
        statuses = [_chat(gw.url, run_dir)[0] for _ in range(5)]
        assert statuses[:2] == [200, 200] and statuses[2:] == [503, 503, 503]
        with urllib.request.urlopen(gw.url + "/healthz", timeout=10) as r:
            assert json.loads(r.read())["rejected_queue_full"] == 3
        blocker.execute("ROLLBACK")
        deadline = time.monotonic() + 20
        while _chat(gw.url, run_dir)[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        blocker.close()
        gw.proc.send_signal(signal.SIGTERM)
        gw.proc.wait(30)
    events = events_of(monitor_env, ledger, tmp_path / "e.jsonl")
    assert sum(e["status"] == 200 for e in events) >= 3  # the two accepted before, one after: none dropped
    assert ftaudit(monitor_env, "verify", ledger).returncode == 0


@pytest.mark.postgres
def test_two_gateways_on_one_postgres_ledger_leave_two_verifiable_chains(stub, run_dir, monitor_env, tmp_path,
                                                                       pg_url):
    gws = [start_gateway(stub, run_dir, pg_url, monitor_env) for _ in range(2)]
    try:
        workers = [threading.Thread(target=lambda g=g: [_chat(g.url, run_dir) for _ in range(100)]) for g in gws]
        for w in workers:
            w.start()
        for w in workers:
            w.join(120)
    finally:
        for g in gws:
            g.proc.send_signal(signal.SIGTERM)
            g.proc.wait(30)
    done = ftaudit(monitor_env, "verify", pg_url)
    assert done.returncode == 0, done.stderr
    assert "event log ok: 200 events in 2 writer chain(s), 200 anchored" in done.stdout
    import psycopg

    with psycopg.connect(pg_url) as con:  # one partition per UTC day; nothing fell into the default one
        parts = dict(con.execute("SELECT c.relname, (SELECT count(*) FROM monitor_events_default) FROM pg_inherits i "
                                 "JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent "
                                 "WHERE p.relname = 'monitor_events'").fetchall())
    today = time.strftime("%Y%m%d", time.gmtime())
    assert f"monitor_events_{today}" in parts and set(parts.values()) == {0}


def test_a_run_directory_without_a_record_is_one_line_and_exit_1(monitor_env, tmp_path):
    done = ftaudit(monitor_env, "monitor", "gateway", "--upstream", "http://127.0.0.1:9", "--run", str(tmp_path),
                   "--ledger", str(tmp_path / "l.sqlite"))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().count("\n") == 0 and "no run_record.json here" in done.stderr
    assert not os.path.exists(tmp_path / "l.sqlite")


def test_a_scheduled_probe_keeps_its_schedule_through_a_gateway_outage(stub, run_dir, monitor_env, tmp_path):
    """`probe --every`: each run is a signed ledger entry; a run that cannot reach the gateway is reported in one
    line, the next one runs on time, and the exit status says that one failed."""
    ledger = str(tmp_path / "ledger.sqlite")
    gw = start_gateway(stub, run_dir, ledger, monitor_env)
    gw.proc.send_signal(signal.SIGTERM)
    gw.proc.wait(30)  # the ledger exists; nothing listens on the gateway's port any more
    down = ftaudit(monitor_env, "monitor", "probe", "--run", str(run_dir), "--gateway", gw.url, "--model", "stub",
                   "--ledger", ledger, "--every", "1s", "--count", "2", "--json")
    assert down.returncode == 2 and down.stdout == ""
    failures = down.stderr.strip().splitlines()
    assert len(failures) == 2, down
    assert all(f.startswith("ftaudit: probe failed: cannot reach the gateway") for f in failures)
    gw = start_gateway(stub, run_dir, ledger, monitor_env)
    try:
        t0 = time.monotonic()
        up = ftaudit(monitor_env, "monitor", "probe", "--run", str(run_dir), "--gateway", gw.url, "--model", "stub",
                     "--ledger", ledger, "--every", "2s", "--count", "2", "--json")
        took = time.monotonic() - t0
    finally:
        gw.proc.send_signal(signal.SIGTERM)
        gw.proc.wait(30)
    assert up.returncode == 0, up.stderr
    results = [json.loads(line) for line in up.stdout.splitlines()]
    assert len(results) == 2, up.stderr
    assert all(r["items"] == 7 and r["verdict"] == "differs" for r in results)
    assert took >= 2  # the second probe waited for its slot
    live = json.loads(ftaudit(monitor_env, "monitor", "status", "--run", str(run_dir), "--ledger", ledger,
                              "--json").stdout)
    assert len(live["probes"]) == 2 and live["requests"] == 0
    bad = ftaudit(monitor_env, "monitor", "probe", "--run", str(run_dir), "--gateway", gw.url, "--model", "stub",
                  "--every", "soon")
    assert bad.returncode == 1 and "give a positive number with a unit" in bad.stderr
    assert ftaudit(monitor_env, "verify", ledger).returncode == 0
