"""Human answers merge into every document; an answers file with an unknown or wrongly typed field is one clear line,
exit 1, and nothing is written; `ftaudit docs` end to end (formats, ledger registration)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from ftaudit.cli import main
from ftaudit.reporting.answers import load_answers, template
from ftaudit.reporting.context import Ctx
from ftaudit.reporting.render import render_files
from reporting_records import full_record, write_run

GOOD = {
    "licence": "apache-2.0",
    "model_version": "1.0.0",
    "release_date": "2026-12-01",
    "grid_carbon_intensity_g_per_kwh": 250.0,
    "art5_screening_confirmed": True,
    "annex_iii_area": "none",
    "excluded_uses": ["credit decisions", "employment decisions"],
    "risks": {"R-TASK": {"severity": "medium", "mitigation": "a person checks every extracted order id",
                         "residual_risk": "low"}},
    "additional_risks": [{"hazard": "prompt injection through message text", "likelihood": "possible",
                          "severity": "medium", "mitigation": "fields validated against the order system",
                          "residual_risk": "low"}],
}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("answers")
    return write_run(tmp / "run", full_record(tmp))


def _items(doc: dict) -> dict[str, dict]:
    return {i["id"]: i for s in doc["sections"] for i in s["items"]}


def test_answers_fill_items_and_never_overwrite_evidence(run, tmp_path):
    path = tmp_path / "answers.yaml"
    path.write_text(yaml.safe_dump({**GOOD, "context_window": 4096}))
    from ftaudit.record import RunRecord

    ctx = Ctx(record=RunRecord.load(run), run_dir=run, answers=load_answers(path))
    files = render_files(ctx, ["json", "md"])
    xi = json.loads(files["annex_xi.json"])
    items = _items(xi)
    assert items["1.1.f"]["status"] == "answered" and items["1.1.f"]["value"] == "apache-2.0"
    assert items["1.1.f"]["source"] == "answers.licence"
    assert items["1.1.c.release_date"]["value"] == "2026-12-01"
    # evidence wins: the evaluation recorded a context window of 8192, the answer 4096 does not replace it
    assert items["1.1.e.context_window"]["status"] == "evidence" and items["1.1.e.context_window"]["value"] == 8192
    assert "1.1.f" in xi["completeness"]["answered_by_human"]

    risk = json.loads(files["risk_assessment.json"])
    reg = {e["id"]: e for e in risk["extra"]["register"]}
    assert reg["R-TASK"]["severity"]["status"] == "answered" and reg["R-TASK"]["residual_risk"]["value"] == "low"
    assert "a person checks" in reg["R-TASK"]["mitigation"]["value"] and "evaluation gate" in \
        reg["R-TASK"]["mitigation"]["value"]
    assert reg["R-HUMAN-1"]["hazard"].startswith("prompt injection")
    assert risk["extra"]["classification"]["tier"] == "not high-risk (no Annex III area)"
    assert risk["extra"]["classification"]["final"] is True

    card = files["model_card.md"].decode()
    meta = yaml.safe_load(card.split("---\n")[1])
    assert meta["license"] == "apache-2.0"
    assert meta["co2_eq_emissions"]["emissions"] == pytest.approx(0.1234 * 250)
    summary = _items(json.loads(files["training_content_summary.json"]))
    assert summary["1.model_name"]["value"] == "support-extractor 1.0.0"
    assert summary["1.authorised_representative"]["status"] == "not_applicable"  # established in the EU


@pytest.mark.parametrize("answers, expected", [
    ({"licnse": "mit"}, "unknown field 'licnse' (did you mean 'licence'?)"),
    ({"licence": 5}, "field 'licence'"),
    ({"art5_screening_confirmed": "perhaps"}, "field 'art5_screening_confirmed'"),
    ({"release_date": "next spring"}, "field 'release_date'"),
    ({"annex_iii_area": "9"}, "field 'annex_iii_area'"),
    ({"risks": {"R-TASK": {"severity": "extreme"}}}, "field 'risks.R-TASK.severity'"),
    ({"risks": {"R-TASK": {"sevrity": "high"}}}, "unknown field 'risks.R-TASK.sevrity'"),
    ({"risks": {"R-NOPE": {"severity": "high"}}}, "unknown risk id 'R-NOPE'"),
    ({"additional_risks": [{"hazard": "x"}]}, "additional_risks.0.likelihood: missing required field"),
    (["licence", "mit"], "expected a mapping"),
])
def test_invalid_answers_exit_1_and_write_nothing(run, tmp_path, capsys, answers, expected):
    path = tmp_path / "answers.yaml"
    path.write_text(yaml.safe_dump(answers))
    docs = run / "docs"
    before = {p.name: p.read_bytes() for p in docs.iterdir()} if docs.is_dir() else {}
    code = main(["docs", str(run), "--answers", str(path), "--format", "json,md"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1 and err.startswith("ftaudit: error: ") and expected in err, err
    after = {p.name: p.read_bytes() for p in docs.iterdir()} if docs.is_dir() else {}
    assert after == before


def test_bad_input_cases(run, tmp_path, capsys):
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("licence: [unclosed\n")
    cases = [
        (["docs", str(run), "--answers", str(bad_yaml)], "malformed YAML"),
        (["docs", str(run), "--answers", str(tmp_path / "missing.yaml")], "answers file not found"),
        (["docs", str(run), "--format", "json,docx"], "unknown format 'docx'"),
        (["docs", str(tmp_path / "nowhere")], "no such run directory"),
        (["docs", str(tmp_path)], "no run record here"),
    ]
    for argv, expected in cases:
        assert main(argv) == 1, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and expected in err, err


def test_cli_renders_and_registers_documents_in_the_ledger(run, tmp_path, capsys):
    answers = tmp_path / "answers.yaml"
    answers.write_text(yaml.safe_dump(GOOD))
    ledger_path, key = tmp_path / "ledger.db", tmp_path / "key.pem"
    argv = ["docs", str(run), "--answers", str(answers), "--format", "json,md", "--ledger", str(ledger_path),
            "--key", str(key)]
    assert main(argv) == 1  # a ledger that does not exist is refused (a typo must not start a new one)
    assert "no ledger" in capsys.readouterr().err and not ledger_path.exists()
    code = main([*argv, "--create"])
    out = capsys.readouterr().out
    assert code == 0 and "recorded run" in out
    assert "annex_xi: " in out and "await a human answer" in out and "registered 16 documents" in out
    from ftaudit.ledger import open_ledger
    from ftaudit.record import RunRecord

    with open_ledger(ledger_path, key_path=key, create=False) as ledger:
        arts = ledger.artefacts(RunRecord.load(run).run_id)
    assert {a.path for a in arts} == {f"docs/{p.name}" for p in (run / "docs").iterdir()}
    assert all(a.kind == "document" for a in arts)


def test_answers_template_lists_every_question(capsys):
    assert main(["docs", "--answers-template"]) == 0
    out = capsys.readouterr().out
    assert out == template()
    for key in ("licence", "annex_iii_area", "human_oversight_measures", "risks"):
        assert f"# {key}:" in out
    assert "Art. 13(3)(d)" in out
