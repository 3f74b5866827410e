"""The risk classification (Art. 5 screening, Annex III and Art. 6(3), Art. 50) and the Art. 9 register seeded from
the evaluation and data evidence."""

from __future__ import annotations

from pathlib import Path

import pytest

from ftaudit.reporting.answers import parse_answers
from ftaudit.reporting.context import Ctx
from ftaudit.reporting.risk import band, risk_assessment
from reporting_records import full_record


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("risk")
    return {
        "support": full_record(tmp),
        "hiring": full_record(tmp, purpose="screen job applicants' CVs and rank candidates for recruitment"),
        "manipulative": full_record(tmp, purpose="manipulate elderly customers into buying extended warranties "
                                                 "through a chat assistant"),
    }


def _risk(record, answers=None):
    doc = risk_assessment(Ctx(record=record, run_dir=Path("."), answers=parse_answers(answers or {})))
    return doc, {i.id: i for i in doc.items()}, {e["id"]: e for e in doc.extra["register"]}


def test_band_edges():
    assert [band(x) for x in (0.0, 0.005, 0.05, 0.2, 0.5)] == ["rare", "unlikely", "possible", "likely",
                                                               "almost_certain"]


def test_indicators_suggest_but_do_not_decide(records):
    doc, items, _ = _risk(records["hiring"])
    cls = doc.extra["classification"]
    assert cls["annex_iii_suggested"] == ["4"] and cls["final"] is False
    assert cls["tier"].startswith("provisional: Annex III area(s) 4")
    assert items["conclusion.tier"].status == "awaiting_human"
    assert any(s.id == "duties" for s in doc.sections)  # the duties are shown while it may be high-risk

    doc, items, _ = _risk(records["manipulative"])
    assert set(doc.extra["classification"]["art5_indicators"]) == {"art5_1_a", "art5_1_b"}
    assert items["art5.art5_1_a"].display.startswith("indicator found (manipulat)")
    assert items["art50.art50_1"].note == "indicator in the stated purpose: chat, assistant, customer"

    doc, items, _ = _risk(records["support"])
    assert doc.extra["classification"]["annex_iii_suggested"] == []
    assert items["art5.art5_1_c"].display == "no indicator in the stated purpose"


@pytest.mark.parametrize("answers, tier, final", [
    ({"art5_screening_confirmed": True, "annex_iii_area": "4", "art6_3_profiling": True},
     "high-risk (Annex III point 4; profiling excludes the Art. 6(3) exception)", True),
    ({"art5_screening_confirmed": True, "annex_iii_area": "4", "art6_3_profiling": False,
      "art6_3_preparatory_task": True}, "not high-risk under the Art. 6(3) exception", True),
    ({"art5_screening_confirmed": True, "annex_iii_area": "4", "art6_3_profiling": False,
      "art6_3_narrow_procedural_task": False, "art6_3_improves_completed_human_activity": False,
      "art6_3_detects_patterns_without_replacing_review": False, "art6_3_preparatory_task": False},
     "high-risk (Annex III point 4)", True),
    ({"annex_iii_area": "4"}, "provisional: Annex III point 4; awaiting the Art. 6(3) answers", False),
    ({"art5_screening_confirmed": False}, "prohibited practice indicated", True),
    ({"annex_iii_area": "none"}, "provisional: not high-risk (no Annex III area); awaiting the Art. 5", False),
])
def test_tier_follows_the_answers(records, answers, tier, final):
    doc, items, _ = _risk(records["hiring"], answers)
    cls = doc.extra["classification"]
    assert cls["tier"].startswith(tier) and cls["final"] is final
    assert items["conclusion.tier"].status == ("answered" if final else "awaiting_human")


def test_art6_3_questions_not_applicable_outside_annex_iii(records):
    _, items, _ = _risk(records["support"], {"annex_iii_area": "none"})
    assert items["annex_iii.art6_3_profiling"].status == "not_applicable"


def test_register_is_seeded_from_evidence(records):
    doc, items, reg = _risk(records["support"])
    assert set(reg) >= {"R-TASK", "R-REGRESSION", "R-BIAS", "R-TOXIC", "R-MEMORISE", "R-PII-DATA",
                        "R-CONTAMINATION"}
    # field_accuracy tuned 0.8 -> 20 % of probes wrong -> likely
    assert reg["R-TASK"]["likelihood"]["value"] == "likely" and "20 % of 40 probes" in \
        reg["R-TASK"]["likelihood"]["display"]
    assert reg["R-TASK"]["mitigation"]["status"] == "evidence" and "evaluation gate min 0.70" in \
        reg["R-TASK"]["mitigation"]["value"]
    assert reg["R-TOXIC"]["likelihood"]["value"] == "possible"
    assert reg["R-MEMORISE"]["likelihood"]["value"] == "rare"
    assert reg["R-BIAS"]["likelihood"]["status"] == "awaiting_human"  # a score gap is not a rate
    assert reg["R-PII-DATA"]["likelihood"]["value"] == "likely"  # 12 of 42 records
    assert "12 of 42 training records" in reg["R-PII-DATA"]["evidence"]
    assert reg["R-CONTAMINATION"]["likelihood"]["value"] == "almost_certain"  # all 4 eval records are in train
    for e in reg.values():
        assert e["severity"]["status"] == "awaiting_human" and e["residual_risk"]["status"] == "awaiting_human"
    open_ids = set(doc.completeness.awaiting_human)
    assert "register.R-TASK.severity" in open_ids
