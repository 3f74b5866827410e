"""Nobody gets in where they don't belong: every route refuses a caller without a session (enumerated from the
app's route table, so a new route cannot be forgotten), roles are checked per action, forms need the session's
CSRF token, what users type is escaped, document names cannot reach the file system, filter text is never SQL."""

from __future__ import annotations

import time

import pytest
from fastapi.routing import APIRoute

from conftest import PASSWORD, csrf_of

PUBLIC = {("GET", "/login"), ("POST", "/login"), ("GET", "/healthz")}


def test_every_route_without_a_session_is_refused(dash):
    app = dash.app()
    client = dash.client()
    routes = [(m, r.path) for r in app.routes if isinstance(r, APIRoute) for m in r.methods]
    assert len(routes) >= 12
    checked = 0
    for method, path in routes:
        if (method, path) in PUBLIC:
            continue
        url = path.replace("{run_id}", dash.run_id).replace("{name}", "report.html")
        r = client.request(method, url)
        if path.startswith("/api/"):
            assert r.status_code == 401, (method, path, r.status_code)
            assert r.json()["error"]["code"] == 401
        else:
            assert r.status_code == 303 and r.headers["location"].startswith("/login"), (method, path, r.status_code)
        checked += 1
    assert checked == len(routes) - len(PUBLIC & set(routes))
    r = client.get("/api/openapi.json")
    assert r.status_code == 401  # the schema too


def test_a_forged_or_expired_session_is_refused(dash):
    c = dash.client_as("vic", session_s=3)
    assert c.get("/").status_code == 200
    time.sleep(3.1)
    r = c.get("/")
    assert r.status_code == 303 and r.headers["location"] == "/login?next=/"
    forged = dash.client()
    forged.cookies.set("ftaudit_session", "eyJ1c2VyIjogImFkYSJ9.forged.signature")
    assert forged.get("/").status_code == 303


@pytest.mark.parametrize("name,code", [("vic", 403), ("erik", 403), ("rita", 303), ("ada", 303)])
def test_only_reviewers_and_admins_sign_off(dash, name, code):
    c = dash.client_as(name)
    page = c.get(f"/runs/{dash.run_id}").text
    assert ('action="/runs/' + dash.run_id + '/decision"' in page) == (code == 303)
    r = c.post(f"/runs/{dash.run_id}/decision", data={"csrf": csrf_of(page), "decision": "approve",
                                                      "reason": "reviewed the evidence", "password": PASSWORD})
    assert r.status_code == code, r.text
    with dash.ledger() as ledger:
        from ftaudit.dashboard.signoff import decisions

        assert len(decisions(ledger, dash.run_id)) == (1 if code == 303 else 0)


def test_roles_per_action(dash):
    viewer, engineer, admin = dash.client_as("vic"), dash.client_as("erik"), dash.client_as("ada")
    form = viewer.get(f"/runs/{dash.run_id}/complete").text
    assert viewer.post(f"/runs/{dash.run_id}/complete",
                       data={"csrf": csrf_of(form), "licence": "MIT"}).status_code == 403
    assert viewer.get("/users").status_code == 403 and engineer.get("/users").status_code == 403
    page = admin.get("/users").text
    r = admin.post("/users", data={"csrf": csrf_of(page), "username": "newbie", "role": "viewer",
                                   "password": "x" * 12})
    assert r.status_code == 200 and "newbie" in r.text
    r = engineer.post("/users", data={"csrf": csrf_of(page), "username": "sneak", "role": "admin",
                                      "password": "x" * 12})
    assert r.status_code == 403


def test_forms_need_the_sessions_csrf_token(dash):
    c = dash.client_as("erik")
    other = dash.client_as("ada")
    foreign = csrf_of(other.get("/").text)
    for data in ({"licence": "MIT"}, {"licence": "MIT", "csrf": "wrong"}, {"licence": "MIT", "csrf": foreign}):
        r = c.post(f"/runs/{dash.run_id}/complete", data=data)
        assert r.status_code == 403 and "CSRF" in r.text
    with dash.ledger() as ledger:
        from ftaudit.dashboard.questions import answered

        assert answered(ledger, dash.run_id) == {}
    assert c.post("/logout", data={}).status_code == 403  # even signing out


def test_what_users_type_is_escaped(dash):
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    c = dash.client_as("erik")
    form = c.get(f"/runs/{dash.run_id}/complete").text
    r = c.post(f"/runs/{dash.run_id}/complete", data={"csrf": csrf_of(form), "known_limitations": evil,
                                                      "licence": evil})
    assert r.status_code == 303
    for page in (c.get(f"/runs/{dash.run_id}/complete").text, c.get(f"/runs/{dash.run_id}").text,
                 c.get(f"/?q={evil}").text):
        assert "<script>alert" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(" in c.get(f"/runs/{dash.run_id}/complete").text
    report = c.get(f"/runs/{dash.run_id}/documents/report.html")
    assert "<script>alert" not in report.text
    assert report.headers["content-security-policy"].startswith("sandbox")
    admin = dash.client_as("ada")
    page = admin.get("/users").text
    r = admin.post("/users", data={"csrf": csrf_of(page), "username": "<b>x</b>", "role": "viewer",
                                   "password": "x" * 12})
    assert r.status_code == 400 and "<b>x</b>" not in r.text and "&lt;b&gt;x&lt;/b&gt;" in r.text


@pytest.mark.parametrize("name", ["../../../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "run_record.json",
                                  "%2e%2e%2frun_record.json", "report.pdf"])
def test_document_names_never_reach_the_file_system(dash, name):
    c = dash.client_as("vic")
    r = c.get(f"/runs/{dash.run_id}/documents/{name}")
    assert r.status_code == 404
    assert "root:" not in r.text


def test_filter_text_is_never_sql(dash):
    c = dash.client_as("vic")
    for q in ("' OR 1=1 --", "%' UNION SELECT password FROM dashboard_users --", "'; DROP TABLE runs; --",
              "\\", "%", "_"):
        r = c.get("/", params={"q": q})
        assert r.status_code == 200
        assert "scrypt$" not in r.text
        api = c.get("/api/runs", params={"q": q}, headers={"accept": "application/json"})
        assert api.status_code == 200
    assert c.get("/api/runs", params={"q": "' OR 1=1 --"}).json()["total"] == 0
    assert c.get("/api/runs").json()["total"] == 1  # the runs table is still there
    assert c.get("/api/runs", params={"page_no": "1; DROP"}).status_code == 422


def test_every_login_is_an_audit_entry_and_a_wrong_one_says_little(dash):
    c = dash.client()
    r = c.post("/login", data={"username": "ada", "password": "wrong password here"})
    assert r.status_code == 401 and "Wrong user name or password" in r.text
    r = c.post("/login", data={"username": "nobody", "password": "wrong password here"})
    assert r.status_code == 401
    dash.client_as("ada")
    with dash.ledger() as ledger:
        logins = [e["data"] for e in ledger.events(run_id="ftaudit.dashboard", prefix="dashboard.login")]
    assert [(x["username"], x["ok"]) for x in logins] == [("ada", False), ("nobody", False), ("ada", True)]
    assert all("password" not in x for x in logins)


def test_open_redirects_and_headers(dash):
    c = dash.client()
    r = c.post("/login", data={"username": "vic", "password": PASSWORD, "next": "//evil.example/x"})
    assert r.headers["location"] == "/"
    r = c.get("/login")
    assert "default-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["x-content-type-options"] == "nosniff"
    cookie = c.post("/login", data={"username": "vic", "password": PASSWORD}).headers["set-cookie"]
    assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower()


def test_names_from_the_evidence_are_escaped_everywhere(dash, tmp_path):
    """A run name and a dataset name are whatever the engineer's config said: they come back as text."""
    from reporting_records import full_record

    (tmp_path / "evil").mkdir()
    record = full_record(tmp_path / "evil")
    record.model.output_name = '<script>alert("run")</script>'
    record.config["datasets"][0]["name"] = '<img src=x onerror=alert("dataset")>'
    with dash.ledger() as ledger:
        ledger.record_run(record)
    c = dash.client_as("vic")
    pages = [c.get("/").text, c.get(f"/runs/{record.run_id}").text,
             c.get(f"/runs/{record.run_id}/documents/report.html").text,
             c.get(f"/runs/{record.run_id}/documents/model_card.md").text]
    for page in pages[:3]:
        assert '<script>alert("run")' not in page and '<img src=x onerror' not in page
    assert "&lt;script&gt;alert(" in pages[0] and "&lt;script&gt;alert(" in pages[1]
