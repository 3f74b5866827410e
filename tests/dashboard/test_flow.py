"""The officer's path through the app over SQLite and a real PostgreSQL: answer an open question and see the
documents change, sign off, and `ftaudit release` follows the signed decision and the evidence it named."""

from __future__ import annotations

import json

from conftest import PASSWORD, csrf_of, ftaudit


def _answer(client, run_id: str, **answers) -> object:
    form = client.get(f"/runs/{run_id}/complete").text
    return client.post(f"/runs/{run_id}/complete", data={"csrf": csrf_of(form), **answers})


def _decide(client, run_id: str, decision: str, password: str = PASSWORD):
    page = client.get(f"/runs/{run_id}").text
    return client.post(f"/runs/{run_id}/decision", data={"csrf": csrf_of(page), "decision": decision,
                                                         "reason": "evidence read in full", "password": password})


def _release(dash):
    return ftaudit("release", str(dash.run_dir), "--ledger", dash.location, "--key", dash.key, "--json")


def test_an_answer_fills_the_documents_and_a_signed_approval_releases(dash):
    engineer, reviewer = dash.client_as("erik"), dash.client_as("rita")
    run_page = engineer.get(f"/runs/{dash.run_id}").text  # evaluation: base and tuned, each with its interval
    assert "0.26–0.36" in run_page and "0.75–0.85" in run_page  # field accuracy 0.31 and 0.8, ±0.05
    before = engineer.get(f"/api/runs/{dash.run_id}").json()["documents"]
    page = engineer.get(f"/runs/{dash.run_id}/complete").text
    assert 'name="licence"' in page and 'name="known_limitations"' in page
    annex = engineer.get(f"/runs/{dash.run_id}/documents/annex_xi.json").json()
    assert "Apache-2.0 (model)" not in json.dumps(annex)
    r = _answer(engineer, dash.run_id, licence="Apache-2.0 (model)", context_window="2048",
                code_of_practice_signatory="yes")
    assert r.status_code == 303 and r.headers["location"].endswith("saved=3")
    after = engineer.get(f"/api/runs/{dash.run_id}").json()
    assert after["documents"]["awaiting_human"] < before["awaiting_human"]
    assert after["answers"]["licence"]["by"] == "erik" and after["answers"]["context_window"]["value"] == "2048"
    annex = engineer.get(f"/runs/{dash.run_id}/documents/annex_xi.json").json()
    assert "Apache-2.0 (model)" in json.dumps(annex)
    assert "answered by erik" in engineer.get(f"/runs/{dash.run_id}/complete").text

    assert _release(dash).returncode == 9  # nobody approved yet
    r = _decide(reviewer, dash.run_id, "approve")
    assert r.status_code == 303
    done = _release(dash)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["released"] is True
    # An answer changed after the approval: the approval no longer covers the evidence.
    assert _answer(engineer, dash.run_id, licence="MIT").status_code == 303
    refused = _release(dash)
    assert refused.returncode == 9 and "evidence changed after rita's approval" in refused.stderr
    assert refused.stderr.count("\n") == 1
    _decide(reviewer, dash.run_id, "reject")
    refused = _release(dash)
    assert refused.returncode == 9 and "rejected by rita" in refused.stderr
    with dash.ledger() as ledger:
        from ftaudit.dashboard.signoff import decisions

        made = decisions(ledger, dash.run_id)
    assert [d.decision for d in made] == ["approve", "reject"] and made[0].signature
    assert ftaudit("verify", dash.location, "--key", dash.key).returncode == 0


def test_a_wrong_signing_password_and_bad_answers_are_one_message_and_write_nothing(dash):
    reviewer, engineer = dash.client_as("rita"), dash.client_as("erik")
    r = _decide(reviewer, dash.run_id, "approve", password="not my password")
    assert r.status_code == 400 and "wrong password" in r.text
    for answers, message in (({"context_window": "many"}, "context_window"),
                             ({"code_of_practice_signatory": "perhaps"}, "answer yes or no"),
                             ({"release_date": "2026-13-45"}, "release_date"),
                             ({"annex_iii_area": "9"}, "choose one of"),
                             ({"licence": "x" * 6000}, "at most 5,000 characters"),
                             ({"licence": "MIT", "no_such_question": "1"}, "unknown question")):
        r = _answer(engineer, dash.run_id, **answers)
        assert r.status_code == 400 and message in r.text, (answers, r.text[-500:])
    r = engineer.post(f"/runs/{dash.run_id}/complete", content=b"x" * (70 * 1024),
                      headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 413
    assert engineer.get(f"/runs/{dash.run_id}/nothing").status_code == 404
    assert engineer.get("/runs/ffff").status_code == 404
    with dash.ledger() as ledger:
        from ftaudit.dashboard.questions import answered
        from ftaudit.dashboard.signoff import decisions

        assert answered(ledger, dash.run_id) == {} and decisions(ledger, dash.run_id) == []


def test_api_tokens_for_automation_and_the_openapi_schema(dash):
    admin = dash.client_as("ada")
    page = admin.get("/users").text
    r = admin.post("/users", data={"csrf": csrf_of(page), "action": "token", "label": "ci"})
    token = r.text.split("<code>fta_")[1].split("</code>")[0]
    bot = dash.client()
    auth = {"authorization": f"Bearer fta_{token}"}
    assert bot.get("/api/runs", headers=auth).json()["items"][0]["run_id"] == dash.run_id
    r = bot.post(f"/api/runs/{dash.run_id}/answers", headers=auth, json={"licence": "Apache-2.0"})
    assert r.status_code == 200 and r.json() == {"changed": ["licence"]}
    assert bot.get("/api/runs", headers={"authorization": "Bearer fta_wrong"}).status_code == 401
    schema = bot.get("/api/openapi.json", headers=auth).json()
    assert {"/api/runs", "/api/runs/{run_id}", "/api/runs/{run_id}/answers"} <= set(schema["paths"])


def test_a_ledger_that_fails_verification_is_a_red_banner(dash):
    with dash.ledger() as ledger:
        ledger.store.execute("UPDATE entries SET content = replace(content, 'support-extractor', 'edited') "
                             "WHERE kind = 'run'")
    page = dash.client_as("vic").get("/").text
    assert "Ledger verification failed" in page and 'role="alert"' in page
    assert ftaudit("release", str(dash.run_dir), "--ledger", dash.location, "--key", dash.key).returncode == 7


def test_the_cli_adds_users_and_refuses_a_wide_bind_without_tls(dash, tmp_path):
    env = {"NEW_PW": "another long password", "FTAUDIT_KEY": dash.key}
    done = ftaudit("dashboard", "user", "add", "olga", "--role", "reviewer", "--password-env", "NEW_PW",
                   "--ledger", dash.location, "--json", env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["role"] == "reviewer"
    again = ftaudit("dashboard", "user", "add", "olga", "--role", "viewer", "--password-env", "NEW_PW",
                    "--ledger", dash.location, env=env)
    assert again.returncode == 1 and "exists already" in again.stderr
    weak = ftaudit("dashboard", "user", "add", "pat", "--role", "viewer", "--password-env", "SHORT",
                   "--ledger", dash.location, env={**env, "SHORT": "short"})
    assert weak.returncode == 1 and "at least 12 characters" in weak.stderr
    wide = ftaudit("dashboard", "--listen", "0.0.0.0:8765", "--ledger", dash.location, env=env)
    assert wide.returncode == 1 and "needs TLS" in wide.stderr
    missing = ftaudit("dashboard", "--ledger", str(tmp_path / "none.sqlite"), env=env)
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1


def test_the_run_page_shows_which_compute_counted(dash, tmp_path):
    """A GRPO run: the compute section lists the policy, the rollouts and a reward model, each with its basis."""
    from ftaudit.compute.evidence import ComputeLine, MeterFlops
    from ftaudit.regulation.citations import COMPUTE_ROLE_BASIS
    from reporting_records import full_record

    (tmp_path / "grpo").mkdir()
    record = full_record(tmp_path / "grpo")
    lines = [ComputeLine(role=role, counted=role != "reward", basis=COMPUTE_ROLE_BASIS[role], model="m",
                         flops=MeterFlops(regulatory=flops)) for role, flops in [("generation", 2e15),
                                                                                 ("reward", 5e14)]]
    record.compute = record.compute.model_copy(update={"objective": "grpo", "breakdown": lines})
    with dash.ledger() as ledger:
        ledger.record_run(record)
    page = dash.client_as("vic").get(f"/runs/{record.run_id}").text
    assert "Which compute counted (grpo)" in page
    assert "<td>generation</td><td>2e+15</td><td>yes</td>" in page.replace("\n", "")
    assert "<td>reward</td><td>5e+14</td><td>no</td>" in page.replace("\n", "")
    assert "auxiliary models (reward models) are excluded" in page
