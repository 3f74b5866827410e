"""Every document renders from a full record and from a nearly empty one; the model card loads with
huggingface_hub; the BOM validates against CycloneDX 1.6; the PDF opens with the expected pages and headings;
missing evidence is marked, never invented; no planted personal data reaches any output."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ftaudit.errors import RuntimeFailure
from ftaudit.record import RunRecord
from ftaudit.regulation import OriginalCompute, decide
from ftaudit.reporting.answers import Answers
from ftaudit.reporting.bom import validate_bom
from ftaudit.reporting.context import Ctx
from ftaudit.reporting.render import render_files
from reporting_records import FLOPS, PLANTED, full_record, write_run

ALL_FILES = ["model_card.md", "annex_xi.json", "annex_xi.md", "annex_xii.json", "annex_xii.md",
             "training_content_summary.json", "training_content_summary.md", "copyright_policy.json",
             "copyright_policy.md", "risk_assessment.json",
             "risk_assessment.md", "instructions_for_use.md", "post_market_monitoring_plan.json",
             "post_market_monitoring_plan.md", "ml_bom.cdx.json", "report.html", "report.pdf", "completeness.json"]
TITLES = ["Model card", "Technical documentation (Annex XI)", "Information for downstream providers (Annex XII)",
          "Public summary of training content", "Copyright policy", "Risk classification and risk register",
          "Instructions for use", "Post-market monitoring plan"]


def _doc(run: Path, name: str) -> dict:
    return json.loads((run / "docs" / f"{name}.json").read_text())


def _items(doc: dict) -> dict[str, dict]:
    return {i["id"]: i for s in doc["sections"] for i in s["items"]}


def test_every_document_renders_with_completeness(full_run):
    docs = full_run / "docs"
    assert sorted(p.name for p in docs.iterdir()) == sorted(ALL_FILES)
    for name in ("annex_xi", "annex_xii", "training_content_summary", "copyright_policy", "risk_assessment"):
        doc = _doc(full_run, name)
        c = doc["completeness"]
        assert c["total"] == len([i for s in doc["sections"] for i in s["items"]]) > 5
        assert c["filled"] == len(c["filled_from_evidence"]) + len(c["answered_by_human"]) + len(c["not_applicable"])
        assert c["filled_from_evidence"] and c["awaiting_human"]  # evidence filled some; a person must fill others
    for md in docs.glob("*.md"):
        text = md.read_text()
        assert "## Completeness" in text and "- [ ]" in text and "- [x]" in text, md.name
    summary = json.loads((docs / "completeness.json").read_text())
    assert set(summary) == {"model_card", "annex_xi", "annex_xii", "training_content_summary", "copyright_policy",
                            "risk_assessment", "instructions_for_use", "post_market_monitoring_plan"}


def test_model_card_loads_with_huggingface_hub(full_run):
    from huggingface_hub import ModelCard

    card = ModelCard.load(full_run / "docs" / "model_card.md")
    data = card.data.to_dict()
    assert data["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert data["datasets"] == ["support-messages"]
    assert {"ftaudit", "eu-ai-act", "lora"} <= set(data["tags"])
    assert data["co2_eq_emissions"]["training_type"] == "fine-tuning"
    assert "emissions" not in data["co2_eq_emissions"]  # no grid intensity answered: not invented
    assert data["compute"]["flops"] == FLOPS  # exact in the metadata
    assert data["compute"]["decision"]["role"] == "downstream_modifier"
    assert "## Evaluation" in card.text and "quality.task.field_accuracy" in card.text


def test_bom_validates_against_cyclonedx_schema(full_run):
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    text = (full_run / "docs" / "ml_bom.cdx.json").read_text()
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    bom = json.loads(text)
    kinds = sorted(c["type"] for c in bom["components"])
    assert "machine-learning-model" in kinds and "data" in kinds and "library" in kinds
    model = bom["metadata"]["component"]
    assert model["modelCard"]["modelParameters"]["datasets"]
    data = next(c for c in bom["components"] if c["type"] == "data")
    scanned = RunRecord.load(full_run).data.files[0].sha256
    assert data["hashes"][0]["content"] == scanned
    broken = dict(bom, specVersion="1.6", components=[{"type": "not-a-type", "name": "x"}])
    with pytest.raises(RuntimeFailure):
        validate_bom(json.dumps(broken))


def test_pdf_opens_with_a_page_per_document_and_headings(full_run, pdf_pages):
    assert (full_run / "docs" / "report.pdf").read_bytes().startswith(b"%PDF-")
    assert len(pdf_pages) >= 1 + len(TITLES)
    text = "\n".join(pdf_pages)
    for title in ["ftaudit report: support-extractor", *TITLES, "Compute of the lineage vs the threshold"]:
        assert title in text, title
    # each document starts a page: its title is at the top of some page
    tops = [p.strip().splitlines()[0] for p in pdf_pages if p.strip()]
    for title in TITLES[1:]:
        assert any(t.startswith(title) for t in tops), title


def test_html_is_self_contained_with_all_charts(full_run):
    page = (full_run / "docs" / "report.html").read_text()
    assert page.count("<svg") == 6
    for title in ("Compute of the lineage vs the threshold", "Tokens per optimizer step", "Energy",
                  "Data composition", "findings by type", "Evaluation: base vs tuned"):
        assert title in page
    assert "src=" not in page and "<script" not in page and "<link" not in page


def test_numbers_two_significant_figures_exact_in_json(full_run):
    xi = _items(_doc(full_run, "annex_xi"))
    assert xi["1.2.d.flops"]["value"] == FLOPS
    assert xi["1.2.d.flops"]["display"] == "1.2e22 FLOP"
    assert xi["1.2.e"]["value"] == 0.1234 and xi["1.2.e"]["display"].startswith("0.12 kWh")
    assert "1.2e22" in (full_run / "docs" / "annex_xi.md").read_text()


def test_no_planted_personal_data_in_any_output(full_run, pdf_pages):
    texts = {p.name: p.read_text(errors="ignore") for p in (full_run / "docs").iterdir() if p.suffix != ".pdf"}
    texts["report.pdf"] = "\n".join(pdf_pages)
    for name, text in texts.items():
        for pii in PLANTED:
            assert pii not in text, f"{pii!r} in {name}"
    # the findings themselves are there, as counts by type
    assert "EMAIL_ADDRESS" in texts["model_card.md"] and "IBAN_CODE" in texts["report.html"]


def test_nearly_empty_record_marks_everything_missing(empty_run):
    docs = empty_run / "docs"
    assert {p.name for p in docs.iterdir()} == set(ALL_FILES) - {"report.pdf"}
    for name in ("annex_xi", "annex_xii", "training_content_summary", "risk_assessment"):
        doc = _doc(empty_run, name)
        for item in _items(doc).values():
            src = item["source"] or ""
            if item["status"] == "evidence":  # only facts of the record itself, never of absent sections
                assert not src.startswith(("record.compute", "record.data", "record.evaluation", "record.decision",
                                           "record.config")), item
            if item["status"].startswith("awaiting"):
                assert item["value"] is None and "awaiting" in item["display"]
        assert doc["completeness"]["awaiting_evidence"]
    xi = _doc(empty_run, "annex_xi")
    assert xi["scope"].startswith("Awaiting evidence")
    assert _items(xi)["1.2.d.flops"]["status"] == "awaiting_evidence"
    page = (docs / "report.html").read_text()
    assert page.count("awaiting evidence —") == 6 and "<svg" not in page
    bom = (docs / "ml_bom.cdx.json").read_text()
    validate_bom(bom)


def test_annex_xi_scope_and_systemic_section(tmp_path):
    downstream = full_record(tmp_path)
    ctx = Ctx(record=downstream, run_dir=tmp_path)
    xi = json.loads(render_files(ctx, ["json"])["annex_xi.json"])
    assert xi["scope"].startswith("Not owed by you") and "Guidelines" in xi["scope"]
    assert [s["id"] for s in xi["sections"]] == ["1.1", "1.2", "2", "oss"] and not xi["sections"][2]["items"]

    systemic = full_record(tmp_path, decision=decide(4e24, OriginalCompute(None, "unknown", systemic_risk=True),
                                                     accepted_role="gpai_provider_systemic_risk"))
    xi = json.loads(render_files(Ctx(record=systemic, run_dir=tmp_path), ["json"])["annex_xi.json"])
    assert "recital 109" in xi["scope"]
    s2 = xi["sections"][2]
    assert s2["title"].startswith("Section 2") and {i["id"] for i in s2["items"]} == {
        "2.1.results", "2.1.strategy", "2.2", "2.2.adaptations", "2.3"}
    assert s2["items"][0]["status"] == "evidence" and s2["tables"][0]["rows"]


def test_rerendering_the_same_record_gives_the_same_bytes(full_run):
    ctx = Ctx(record=RunRecord.load(full_run), run_dir=full_run)
    first, second = render_files(ctx, ["json", "md", "html"]), render_files(ctx, ["json", "md", "html"])
    assert first == second
    for name, data in first.items():
        assert (full_run / "docs" / name).read_bytes() == data, name


def test_pipeline_document_stage_lists_artefacts(tmp_path, monkeypatch):
    from ftaudit.pipeline.documents import document_record

    # The PDF itself is tested above; here only that every written file becomes an artefact.
    monkeypatch.setattr("ftaudit.reporting.pdf.render_pdf", lambda html: b"%PDF-1.7 stub")

    record = full_record(tmp_path)
    written = document_record(record, Path(write_run(tmp_path / "run", record)))
    docs = [a for a in record.artefacts if a.kind == "document"]
    assert len(docs) == len(written) == len(ALL_FILES)
    assert all(a.path.startswith("docs/") and len(a.sha256) == 64 for a in docs)
    assert any(a.kind == "adapter" for a in record.artefacts)


def test_answers_object_defaults_fill_nothing(tmp_path):
    ctx = Ctx(record=full_record(tmp_path), run_dir=tmp_path, answers=Answers())
    xi = json.loads(render_files(ctx, ["json"])["annex_xi.json"])
    assert xi["completeness"]["answered_by_human"] == []


def test_the_monitoring_plan_takes_its_choices_from_monitor_yaml(full_run, tmp_path):
    from ftaudit.cli import main

    plan = tmp_path / "monitor.yaml"
    plan.write_text("content: redacted\nretention_days: 200\nprobe_schedule: every 6 hours\n"
                    "rules:\n  - {name: leak, figure: output.canary, above: 0, severity: critical,"
                    " incident: serious_incident}\n"
                    "responsibilities: {monitoring: ML on-call, suspension: Head of ML, incident_reporting: DPO}\n")
    run = tmp_path / "run"
    shutil.copytree(full_run, run)
    assert main(["docs", str(run), "--format", "json,md", "--monitor", str(plan)]) == 0
    doc = _doc(run, "post_market_monitoring_plan")
    items = _items(doc)
    assert items["2.content"]["value"] == "redacted" and items["2.retention"]["value"] == 200
    assert items["6.suspension"]["value"] == "Head of ML" and doc["completeness"]["awaiting_human"] == []
    rules = next(t for s in doc["sections"] for t in s["tables"] if t["title"] == "Alert rules")
    assert rules["rows"] == [["leak", "output.canary", "> 0", "1", "critical", "serious_incident"]]
    plan.write_text("retention_days: 0\n")
    assert main(["docs", str(run), "--monitor", str(plan)]) == 1


def test_the_file_list_is_what_the_renderer_writes(full_run):
    from ftaudit.reporting.render import DOCS_DIR, FILES

    assert {p.name for p in (full_run / DOCS_DIR).iterdir()} == set(FILES)


def test_objective_and_breakdown_in_annex_xi_and_the_model_card(tmp_path):
    """A GRPO run: Annex XI 2(b) names the objective, 2(d) lists what counted and why; the model card too."""
    from ftaudit.compute.evidence import ComputeLine, MeterFlops

    record = full_record(tmp_path)
    lines = [ComputeLine(role=role, counted=counted, basis=f"{role} basis (reading)", model="m", calls=3,
                         flops=MeterFlops(regulatory=flops))
             for role, counted, flops in [("generation", True, 2e15), ("reward", False, 5e14)]]
    record.compute = record.compute.model_copy(update={"objective": "grpo", "breakdown": lines})
    ctx = Ctx(record=record, run_dir=tmp_path)
    files = render_files(ctx, ["json", "md"])
    xi = {i["id"]: i for s in json.loads(files["annex_xi.json"])["sections"] for i in s["items"]}
    assert xi["1.2.b.objective"]["value"].startswith("reinforcement learning (GRPO family)")
    breakdown = xi["1.2.d.flops_breakdown"]
    assert [line["role"] for line in breakdown["value"]] == ["policy", "generation", "reward"]
    assert "generation 2.0e15 FLOP (counted: generation basis (reading))" in breakdown["display"]
    assert "reward 5.0e14 FLOP (not counted: reward basis (reading))" in breakdown["display"]
    assert "Annex A.1" in breakdown["citation"]
    card = files["model_card.md"].decode()
    assert "objective: grpo" in card and "role: reward" in card and "counted: false" in card
