"""User briefings: only for an approved version, built from its evidence (purpose, measured accuracy, failure
modes, escalation), with a quiz from the same facts; each read-receipt with its score is a signed ledger event,
listed for reviewers and exportable."""

from __future__ import annotations

import csv
import io

from test_flow import _answer, _decide

from conftest import csrf_of


def _quiz_answers(right: bool, b) -> dict:
    return {f"q{n}": str(q.correct if right else (q.correct + 1) % len(q.options)) for n, q in enumerate(b.quiz)}


def test_a_briefing_for_an_approved_version_with_a_quiz_and_read_receipts(dash):
    from ftaudit.dashboard import briefing, views

    viewer, reviewer, engineer = dash.client_as("vic"), dash.client_as("rita"), dash.client_as("erik")
    r = viewer.get(f"/runs/{dash.run_id}/briefing")
    assert r.status_code == 409 and "for approved versions" in r.text
    _answer(engineer, dash.run_id, excluded_uses="Decisions on refunds without an agent\nLegal advice",
            human_oversight_measures="An agent reviews every routed ticket before it is answered.")
    assert _decide(reviewer, dash.run_id, "approve").status_code == 303

    page = viewer.get(f"/runs/{dash.run_id}/briefing").text
    assert "extract order fields from customer support messages" in page  # the record's intended purpose
    assert "Decisions on refunds without an agent" in page and "An agent reviews every routed ticket" in page
    assert "ml-compliance@example.com" in page and "Regulation (EU) 2024/1689, Art. 4" in page
    assert "JSON fields reproduced</td><td>80 %" in page and "JSON fields reproduced — language de</td><td>61 %" in page
    with dash.ledger() as ledger:
        b = briefing.build(ledger, dash.run_id, views.load_record(ledger, dash.run_id))
    assert len(b.quiz) == 3 and all(len(q.options) == 3 for q in b.quiz)
    assert 'value="' + str(b.quiz[0].correct) + '"' in page and "correct" not in page.split("Check your")[1]

    r = viewer.post(f"/runs/{dash.run_id}/briefing", data={"csrf": csrf_of(page), **_quiz_answers(True, b)})
    assert r.status_code == 400 and "tick that you have read" in r.text
    r = viewer.post(f"/runs/{dash.run_id}/briefing",
                    data={"csrf": csrf_of(page), "read": "yes", **_quiz_answers(True, b)})
    assert r.status_code == 303 and r.headers["location"].endswith("done=3")
    r = engineer.post(f"/runs/{dash.run_id}/briefing", data={"csrf": csrf_of(engineer.get(
        f"/runs/{dash.run_id}/briefing").text), "read": "yes", **_quiz_answers(False, b)})
    assert r.headers["location"].endswith("done=0")

    assert viewer.get("/briefings").status_code == 403
    listing = reviewer.get("/briefings").text
    assert "vic" in listing and "3 / 3" in listing and "0 / 3" in listing
    rows = list(csv.DictReader(io.StringIO(reviewer.get("/briefings.csv").text)))
    assert [(x["username"], x["score"]) for x in rows] == [("vic", "3"), ("erik", "0")]
    assert reviewer.get("/api/briefings").json()[0]["version"] == "support-extractor"
    # Reading a briefing is not an evidence change: the approval still covers the version.
    with dash.ledger() as ledger:
        from ftaudit.dashboard.signoff import release_state

        assert release_state(ledger, dash.run_id)[0] is True
