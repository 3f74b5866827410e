"""The monitoring page over what `ftaudit monitor` recorded: traffic per day, live figures against the run's
evaluation, the incident register with its Art. 73 clock and workflow, the stop switch — and before anything is
monitored, a page that says so. No prompt or answer text reaches the page."""

from __future__ import annotations

from conftest import csrf_of

EMAIL = "jane.doe@example.com"


def _traffic(dash, monkeypatch, n: int = 12) -> None:
    from ftaudit.monitor.api import Monitor

    monkeypatch.setenv("FTAUDIT_MONITOR_SALT", "ab" * 32)
    with Monitor(dash.run_dir, ledger=dash.location, content="redacted", key_path=dash.key) as monitor:
        for i in range(n):
            answer = f"Write to {EMAIL} about order {i}." if i % 3 == 0 else f'{{"order_id": "{i}"}}'
            monitor.record(prompt=f"Where is order {i}?", answer=answer, latency_ms=20.0 + i, finish_reason="stop")


def test_before_anything_is_monitored_the_page_says_so(dash):
    page = dash.client_as("vic").get("/monitoring")
    assert page.status_code == 200 and "No deployment is monitored yet" in page.text


def test_traffic_figures_incidents_and_the_stop_switch(dash, monkeypatch):
    from ftaudit.monitor import incidents, switch
    from ftaudit.monitor.gateway import deployment_for_run

    _traffic(dash, monkeypatch)
    dep = deployment_for_run(dash.run_dir, None, None)
    with dash.ledger() as ledger:
        opened = incidents.open_incident(ledger, dep, title="personal data in answers", severity="high",
                                         category="serious_incident", by="alert rule")
    viewer, reviewer = dash.client_as("vic"), dash.client_as("rita")
    page = viewer.get("/monitoring").text
    assert dep.name in page and "12 requests, 12 answered" in page
    assert "output.personal_data" in page and EMAIL not in page and "Where is order" not in page
    assert opened.incident_id in page and "serious_incident" in page and "days" in page  # the 15-day clock
    assert 'action="/monitoring/switch"' not in page  # a viewer has no switch
    overview = viewer.get("/").text
    assert "1 open" in overview and "due in 1" in overview  # 15.0 days or 14.9 days
    assert "12 events in 24 h" in overview

    csrf = csrf_of(page)
    denied = viewer.post("/monitoring/switch", data={"csrf": csrf, "run_id": dep.run_id, "deployment": dep.name,
                                                     "action": "suspend", "reason": "not mine"})
    assert denied.status_code == 403
    page = reviewer.get("/monitoring").text
    r = reviewer.post("/monitoring/switch", data={"csrf": csrf_of(page), "run_id": dep.run_id,
                                                  "deployment": dep.name, "action": "suspend",
                                                  "reason": "personal data in answers"})
    assert r.status_code == 303
    with dash.ledger() as ledger:
        assert switch.state(ledger, dep.run_id, dep.name)["by"] == "rita"
    page = reviewer.get("/monitoring").text
    assert "Suspended" in page and "Resume this model version" in page

    bad = reviewer.post(f"/monitoring/incidents/{opened.incident_id}",
                        data={"csrf": csrf_of(page), "status": "closed", "note": "skip ahead"})
    assert bad.status_code == 400 and "it can move to assessed, not closed" in bad.text
    ok = reviewer.post(f"/monitoring/incidents/{opened.incident_id}",
                       data={"csrf": csrf_of(page), "status": "assessed", "note": "three answers held an address"})
    assert ok.status_code == 303
    with dash.ledger() as ledger:
        (now,) = incidents.register(ledger)
    assert now.status == "assessed" and now.history[-1].by == "rita"
    assert reviewer.post("/monitoring/switch", data={"csrf": csrf_of(page), "run_id": "x", "deployment": "y",
                                                     "action": "suspend", "reason": "nope"}).status_code == 404
