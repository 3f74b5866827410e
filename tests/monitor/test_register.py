"""Retention, alert rules and the incident register, on events built by the gateway's own builder from
exchanges (no server needed) and written by the real event log into a real SQLite ledger."""

from __future__ import annotations

import json
import sqlite3
import time
from datetime import datetime, timedelta, timezone

import pytest

from conftest import ANSWER, TRAINING_ANSWER, ftaudit
from ftaudit.errors import BadInput, VerificationFailed
from ftaudit.ledger.core import open_ledger
from ftaudit.monitor.events import EventBuilder, Exchange
from ftaudit.monitor.gateway import deployment_for_run
from ftaudit.monitor.log import EventLog, apply_retention
from ftaudit.monitor.verify import verify_events

GOOD = '{"intent": "order_status", "order_id": "1001"}'  # an answer of the task's shape


def _exchange(i: int, when: datetime, answer: str) -> Exchange:
    choice = {"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}
    body = {"id": f"c{i}", "choices": [choice], "usage": {"prompt_tokens": 3, "completion_tokens": 9}}
    return Exchange(request_id=f"r{i}", received_at=when, route="/v1/chat/completions",
                    request_body=json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode(),
                    status=200, response_body=json.dumps(body).encode(), streamed=False, latency_ms=5.0, ttft_ms=5.0)


@pytest.fixture
def filled(run_dir, monitor_env, tmp_path, monkeypatch):
    """A ledger with 6 events from 300 days ago and 4 from now (two of them leaking the canary), each batch
    checkpointed."""
    monkeypatch.setenv("FTAUDIT_KEY", monitor_env["FTAUDIT_KEY"])
    ledger = str(tmp_path / "ledger.sqlite")
    dep = deployment_for_run(run_dir, None, None)
    log = EventLog(ledger, run_id=dep.run_id, deployment=dep.name, flush_ms=20, checkpoint_s=0,
                   build=EventBuilder(deployment=dep, policy="hash", salt=b"s" * 32, run_dir=str(run_dir)))
    log.start()
    old = datetime.now(timezone.utc) - timedelta(days=300)
    for i in range(6):
        assert log.reserve()
        log.submit(_exchange(i, old + timedelta(seconds=i), GOOD), f"r{i}")
    while log.stats.checkpoints < 1:
        time.sleep(0.02)
    for i in range(6, 10):
        assert log.reserve()
        log.submit(_exchange(i, datetime.now(timezone.utc), ANSWER if i < 8 else GOOD), f"r{i}")
    log.stop()
    assert log.stats.written == 10
    return ledger, dep


def test_retention_deletes_old_events_and_the_rest_still_verifies(filled):
    ledger_path, _ = filled
    with open_ledger(ledger_path, create=False) as ledger:
        with pytest.raises(BadInput, match="below the legal minimum of 184 days"):
            apply_retention(ledger, days=30)
        assert verify_events(ledger).events == 10
        (done,) = apply_retention(ledger, days=184)
        assert done["deleted"] == 6
        report = verify_events(ledger)
        assert (report.events, report.deleted_by_retention, report.anchored) == (4, 6, 4)
    # Deleting an event without a retention entry is tampering.
    con = sqlite3.connect(ledger_path)
    con.execute("DELETE FROM monitor_events WHERE seq = 7")
    con.commit()
    con.close()
    with open_ledger(ledger_path, create=False) as ledger, pytest.raises(VerificationFailed, match="7–7 are missing"):
        verify_events(ledger)


def test_a_deleted_tail_up_to_a_checkpoint_is_detected(filled):
    ledger_path, _ = filled
    con = sqlite3.connect(ledger_path)
    con.execute("DELETE FROM monitor_events WHERE seq >= 9")
    con.commit()
    con.close()
    with open_ledger(ledger_path, create=False) as ledger, pytest.raises(VerificationFailed,
                                                                         match="checkpoint names event 10"):
        verify_events(ledger)


def test_alert_rules_open_an_incident_with_its_art_73_clock(filled, run_dir, monitor_env, tmp_path):
    ledger, dep = filled
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - {name: canary-leak, figure: output.canary, above: 0, severity: critical,"
                     " incident: serious_incident}\n  - {name: format, figure: output.format, above_baseline_by: 0.5,"
                     " min_n: 5}\n")
    done = ftaudit(monitor_env, "monitor", "alerts", "--run", str(run_dir), "--ledger", ledger, "--rules", str(rules),
                   "--open-incidents", "--by", "oncall@example.org", "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert [b["rule"] for b in out["breaches"]] == ["canary-leak"]  # 2 of 10 leak; format 0.2 < 0.1 + 0.5
    assert out["breaches"][0]["value"] == pytest.approx(0.2)
    (incident_id,) = out["incidents_opened"]
    with open_ledger(ledger, create=False) as led:
        alerts = [e.content["data"] for e in led.entries()
                  if e.kind == "event" and e.content["event"] == "monitor.alert"]
    assert [a["rule"] for a in alerts] == ["canary-leak"]  # the alert itself is a signed entry

    listed = json.loads(ftaudit(monitor_env, "monitor", "incidents", "list", "--ledger", ledger, "--json").stdout)
    (inc,) = listed
    aware = datetime.fromisoformat(inc["aware_at"])
    assert datetime.fromisoformat(inc["deadline"]) - aware == timedelta(days=15)
    assert inc["citation"].endswith("Art. 73(2)") and inc["weights_sha256"] == dep.weights_sha256

    def move(*args):
        return ftaudit(monitor_env, "monitor", "incidents", "update", incident_id, "--ledger", ledger,
                       "--by", "dpo@example.org", *args)

    bad = move("--status", "reported", "--note", "skipping the assessment")
    assert bad.returncode == 1 and "it can move to assessed, not reported" in bad.stderr
    assert move("--status", "assessed", "--note", "canary leak confirmed").returncode == 0
    bad = move("--status", "closed", "--note", "nothing to see")
    assert bad.returncode == 1 and "report it before closing" in bad.stderr
    assert move("--status", "reported", "--note", "sent to the authority").returncode == 0
    report = tmp_path / "report.md"
    assert ftaudit(monitor_env, "monitor", "incidents", "report", incident_id, "--ledger", ledger,
                   "-o", str(report)).returncode == 0
    text = report.read_text()
    assert dep.weights_sha256 in text and "awaiting a human answer" in text and "sent to the authority" in text
    assert ftaudit(monitor_env, "verify", ledger).returncode == 0


def test_malformed_rules_are_one_line_naming_the_problem(filled, run_dir, monitor_env, tmp_path):
    ledger, _ = filled
    for text, expected in (("rules: [{name: x, figure: output.nope, above: 0}]", "unknown figure 'output.nope'"),
                           ("rules: [{name: x, figure: output.canary}]", "exactly one of above, below"),
                           ("rules: [{name: x", "malformed YAML")):
        rules = tmp_path / "r.yaml"
        rules.write_text(text)
        done = ftaudit(monitor_env, "monitor", "alerts", "--run", str(run_dir), "--ledger", ledger,
                       "--rules", str(rules))
        assert done.returncode == 1 and expected in done.stderr and "Traceback" not in done.stderr


def test_an_answer_repeating_a_training_record_is_flagged_unless_the_prompt_held_it(run_dir):
    dep = deployment_for_run(run_dir, None, None)
    build = EventBuilder(deployment=dep, policy="hash", salt=b"s" * 32, run_dir=str(run_dir))
    leak = build(_exchange(1, datetime.now(timezone.utc), f"Sure. {TRAINING_ANSWER}."))
    assert "regurgitation" in leak.flags
    short = " ".join(TRAINING_ANSWER.split()[:15])  # 15 words: below the 16-word run
    assert "regurgitation" not in build(_exchange(2, datetime.now(timezone.utc), short)).flags
    # The task's answers are JSON objects with the held-out references' keys: another shape is a format break.
    assert "format" not in build(_exchange(4, datetime.now(timezone.utc), f"Here: {GOOD}")).flags
    assert "format" in build(_exchange(5, datetime.now(timezone.utc), '{"intent": "order_status"}')).flags
    echo = _exchange(3, datetime.now(timezone.utc), TRAINING_ANSWER)
    echo.request_body = json.dumps({"messages": [{"role": "user", "content": f"Rephrase: {TRAINING_ANSWER}"}]}).encode()
    assert "regurgitation" not in build(echo).flags


def test_status_reports_drift_against_the_baseline_window_and_the_training_data(filled, run_dir, monitor_env):
    ledger, _ = filled
    done = ftaudit(monitor_env, "monitor", "status", "--run", str(run_dir), "--ledger", ledger, "--window", "4",
                   "--json")
    assert done.returncode == 0, done.stderr
    d = json.loads(done.stdout)["drift"]
    shifts = {x["name"]: x for x in d["shifts"]}
    assert (d["baseline_n"], d["recent_n"], d["training_records"]) == (4, 4, 7)
    # The last four answers leak the canary twice where the first four never did.
    assert (shifts["output.canary"]["baseline"], shifts["output.canary"]["recent"]) == (0.0, 0.5)
    # Every live prompt is "hi": far shorter than the training prompts, a shift.
    assert shifts["input_chars vs training data"]["verdict"] == "shift"
    assert "input.language.en vs training data" in shifts
    assert ftaudit(monitor_env, "monitor", "status", "--run", str(run_dir), "--ledger", ledger, "--window",
                   "1").returncode == 1


def test_export_to_parquet_and_json_answers(filled, run_dir, monitor_env, tmp_path):
    import pyarrow.parquet as pq

    ledger, dep = filled
    out = tmp_path / "events.parquet"
    done = ftaudit(monitor_env, "monitor", "export", "--ledger", ledger, "-o", str(out), "--json")
    assert done.returncode == 0 and json.loads(done.stdout) == {"events": 10, "output": str(out)}
    table = pq.read_table(out).to_pylist()
    assert len(table) == 10 and set(table[0]) >= {"request_id", "time", "flags", "weights_sha256"}
    assert sum("canary" in json.loads(r["flags"]) for r in table) == 2
    assert ftaudit(monitor_env, "monitor", "export", "--ledger", ledger, "-o", str(tmp_path / "e.csv")).returncode == 1
    done = ftaudit(monitor_env, "monitor", "incidents", "open", "--run", str(run_dir), "--ledger", ledger, "--title",
                   "a person was harmed", "--category", "death", "--by", "dpo@example.org", "--json")
    inc = json.loads(done.stdout)
    assert inc["citation"].endswith("Art. 73(4)")
    assert datetime.fromisoformat(inc["deadline"]) - datetime.fromisoformat(inc["aware_at"]) == timedelta(days=10)
    done = ftaudit(monitor_env, "monitor", "suspend", "--run", str(run_dir), "--ledger", ledger, "--reason", "r",
                   "--by", "b", "--json")
    assert json.loads(done.stdout)["state"] == "suspended"


def test_a_ledger_that_fails_verification_is_refused_with_exit_7(filled, run_dir, monitor_env):
    ledger, _ = filled
    con = sqlite3.connect(ledger)
    con.execute("UPDATE entries SET content = replace(content, 'monitor.writer', 'monitor.wrlter') WHERE seq = 1")
    con.commit()
    con.close()
    for args in (["monitor", "status", "--run", str(run_dir)],
                 ["monitor", "gateway", "--upstream", "http://127.0.0.1:9", "--run", str(run_dir)]):
        done = ftaudit(monitor_env, *args, "--ledger", ledger)
        assert done.returncode == 7 and "entry 1" in done.stderr and "Traceback" not in done.stderr, done.stderr
