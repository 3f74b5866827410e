"""Every rule row of docs/regulation.md §1, with the edges (exactly at a threshold, unknown and systemic originals,
cumulative lineage), the ±30 % margin, the accepted-role gate, obligations and display strings."""

import math

import pytest

from ftaudit.errors import BadInput
from ftaudit.record import RunRecord
from ftaudit.regulation import Decision, OriginalCompute, decide, tokens_until_threshold
from ftaudit.regulation.figures import flops2, percent2

LLAMA3_8B = OriginalCompute(1.2e24, "known", source="model card")


def articles(decision: Decision) -> list[str]:
    return [o.article for o in decision.obligations]


# --- known original: one third, strictly ------------------------------------------------------------------------
def test_known_original_threshold_is_one_third_not_thirty_percent():
    d = decide(1e22, LLAMA3_8B)
    assert d.threshold_flops == pytest.approx(4e23)
    assert d.threshold_flops != pytest.approx(0.3 * 1.2e24)
    assert d.threshold_basis == "one_third_of_original"
    assert "§3.2" in d.citation


def test_known_original_below_threshold_is_downstream_modifier():
    d = decide(1e23, LLAMA3_8B)
    assert d.role == "downstream_modifier" and not d.exceeds_threshold
    assert d.obligations == []
    assert d.headroom_flops == pytest.approx(3e23)
    assert d.headroom_fraction == pytest.approx(0.75)
    assert d.cumulative_model_flops == pytest.approx(1.3e24)


def test_exactly_at_threshold_is_not_over_and_one_flop_above_is():
    original = OriginalCompute(3e24, "known")
    at = decide(1e24, original)
    assert at.threshold_flops == 1e24
    assert at.role == "downstream_modifier" and at.headroom_flops == 0 and at.headroom_fraction == 0
    above = decide(math.nextafter(1e24, math.inf), original)
    assert above.role == "gpai_provider" and above.exceeds_threshold
    assert above.headroom_fraction < 0


def test_known_original_above_threshold_is_gpai_provider_with_article_53_and_54():
    d = decide(5e23, LLAMA3_8B)
    assert d.role == "gpai_provider"
    assert articles(d) == ["Art. 53(1)(a)", "Art. 53(1)(b)", "Art. 53(1)(c)", "Art. 53(1)(d)", "Art. 54"]
    assert all(o.scope == "modification" and "recital 109" in o.applies_because for o in d.obligations)
    exempt = {o.article: o.open_source_exempt for o in d.obligations}
    assert exempt == {"Art. 53(1)(a)": True, "Art. 53(1)(b)": True, "Art. 53(1)(c)": False,
                      "Art. 53(1)(d)": False, "Art. 54": True}
    assert d.headroom_fraction == pytest.approx(-0.25)
    assert not d.systemic_risk_presumed


def test_estimated_original_uses_one_third_and_shows_the_threshold_band():
    d = decide(4.5e23, OriginalCompute(1.2e24, "estimated", source="6·N·D"))
    assert d.threshold_basis == "one_third_of_original" and d.role == "gpai_provider"
    assert d.threshold_low_flops == pytest.approx(0.7 * 4e23)
    assert d.threshold_high_flops == pytest.approx(1.3 * 4e23)
    assert d.original_margin_straddles
    assert any("estimate" in i.text for i in d.interpretations)
    known = decide(4.5e23, OriginalCompute(1.2e24, "known"))
    assert known.threshold_low_flops is None and not known.original_margin_straddles


# --- unknown originals: the fallbacks -------------------------------------------------------------------------
def test_unknown_original_uses_one_third_of_1e23():
    original = OriginalCompute(None, "unknown")
    assert decide(0, original).threshold_flops == pytest.approx(3.333e22, rel=1e-3)
    at = decide(1e23 / 3, original)
    assert at.role == "downstream_modifier" and at.threshold_basis == "unknown_original_fallback"
    over = decide(3.4e22, original)
    assert over.role == "gpai_provider" and over.cumulative_model_flops is None
    assert over.display["threshold_flops"] == "3.3e22"


def test_unknown_systemic_original_uses_one_third_of_1e25():
    original = OriginalCompute(None, "unknown", systemic_risk=True)
    below = decide(1e24, original)
    assert below.threshold_flops == pytest.approx(3.333e24, rel=1e-3)
    assert below.threshold_basis == "unknown_systemic_original_fallback"
    assert below.role == "downstream_modifier"
    assert decide(1e25 / 3, original).role == "downstream_modifier"
    over = decide(3.4e24, original)
    assert over.role == "gpai_provider_systemic_risk"


# --- systemic-risk originals and the 1e25 presumption ----------------------------------------------------------
def test_known_systemic_original_makes_a_systemic_risk_provider_with_notification_and_art_55():
    original = OriginalCompute(3.0e25, "known", systemic_risk=True)
    assert decide(1e25, original).role == "downstream_modifier"
    d = decide(1.1e25, original)
    assert d.role == "gpai_provider_systemic_risk"
    arts = articles(d)
    assert arts[0] == "Art. 52(1)" and "two weeks" in d.obligations[0].title
    assert "Art. 55(1)(a)–(d)" in arts
    assert "Annex XI §1 and §2" in d.obligations[1].title
    # No open-source exemption for systemic risk (Art. 53(2), 54(6)).
    assert not any(o.open_source_exempt for o in d.obligations)


def test_cumulative_above_1e25_is_presumed_systemic_risk():
    original = OriginalCompute(8e24, "known")  # not designated; below 1e25 itself
    d = decide(3e24, original)  # > 8e24/3 and 8e24 + 3e24 > 1e25
    assert d.systemic_risk_presumed and d.role == "gpai_provider_systemic_risk"
    assert any("51(2)" in i.citation for i in d.interpretations)
    quiet = decide(1e24, original)
    assert not quiet.systemic_risk_presumed and quiet.role == "downstream_modifier"


def test_original_above_1e25_not_designated_is_flagged():
    d = decide(1e24, OriginalCompute(3.8e25, "known", source="Llama 3.1 405B"))
    assert d.role == "downstream_modifier" and d.systemic_risk_presumed
    assert any("above 1e25" in i.text for i in d.interpretations)
    assert decide(1.3e25, OriginalCompute(3.8e25, "known")).role == "gpai_provider_systemic_risk"


# --- a base below 1e23 is not a GPAI model by the indicative criterion (guidelines ¶17–20) -------------------------
def test_small_base_plus_modification_below_1e23_stays_downstream_modifier_with_no_obligations():
    d = decide(3e22, OriginalCompute(6e22, "known"))
    assert d.role == "downstream_modifier" and d.obligations == []
    assert d.threshold_basis == "cumulative_gpai_criterion" and not d.base_is_gpai
    assert d.base_is_gpai_basis == "indicative_criterion"
    assert d.threshold_flops == pytest.approx(4e22)
    assert d.cumulative_model_flops == pytest.approx(9e22)
    assert any("no GPAI-provider obligations" in r.text for r in d.reasoning)


def test_small_base_past_1e23_cumulative_makes_a_gpai_provider_for_the_whole_model():
    d = decide(5e22, OriginalCompute(6e22, "known"))
    assert d.role == "gpai_provider" and d.exceeds_threshold
    assert d.obligations and all(o.scope == "whole_model" for o in d.obligations)
    assert all("1e23" in o.applies_because and "whole model" in o.applies_because for o in d.obligations)


def test_small_base_declared_gpai_applies_the_one_third_rule():
    declared = OriginalCompute(6e22, "known", is_gpai=True)
    d = decide(3e22, declared)
    assert d.threshold_basis == "one_third_of_original" and d.base_is_gpai and d.base_is_gpai_basis == "declared"
    assert d.threshold_flops == pytest.approx(2e22)
    assert d.role == "gpai_provider"
    assert all(o.scope == "modification" for o in d.obligations)
    assert d.alternative.base_is_gpai is False and d.alternative.role == "downstream_modifier"
    assert d.alternative.threshold_flops == pytest.approx(4e22)
    assert decide(1.9e22, declared).role == "downstream_modifier"


def test_small_base_shows_the_other_reading_with_both_thresholds():
    d = decide(1e21, OriginalCompute(1.62e21, "estimated", source="SmolLM2-135M 6·N·D"))
    assert d.threshold_flops == pytest.approx(1e23 - 1.62e21)
    assert d.display["threshold_flops"] == "9.8e22"
    alt = d.alternative
    assert alt.label == "reading" and alt.base_is_gpai and alt.threshold_basis == "one_third_of_original"
    assert alt.threshold_flops == pytest.approx(5.4e20) and alt.role == "gpai_provider"
    assert d.display["alternative_threshold_flops"] == "5.4e20"
    texts = [i.text for i in d.interpretations if i.label == "reading"]
    assert any(t.startswith("Reading applied") and "9.8e22" in t for t in texts)
    assert any(t.startswith("Alternative reading") and "5.4e20" in t and "base_is_gpai: true" in t for t in texts)


def test_declared_not_gpai_is_the_same_as_undeclared_below_1e23_and_not_applied_above():
    below = decide(3e22, OriginalCompute(6e22, "known", is_gpai=False))
    assert below.role == "downstream_modifier" and below.base_is_gpai_basis == "declared"
    above = decide(5e23, OriginalCompute(1.2e24, "known", is_gpai=False))
    assert above.threshold_basis == "one_third_of_original" and above.role == "gpai_provider"
    assert any("presumes significant generality" in i.text for i in above.interpretations)
    assert above.alternative is None


def test_exactly_1e23_is_not_above_the_indicative_criterion():
    d = decide(1e21, OriginalCompute(1e23, "known"))
    assert d.threshold_basis == "cumulative_gpai_criterion" and d.threshold_flops == 0.0
    assert d.role == "gpai_provider"


def test_systemic_original_below_1e23_still_uses_one_third():
    d = decide(1e22, OriginalCompute(2e22, "known", systemic_risk=True))
    assert d.threshold_basis == "one_third_of_original"
    assert d.role == "gpai_provider_systemic_risk"


# --- lineage accumulation -------------------------------------------------------------------------------------
def test_cumulative_lineage_crosses_over_two_jobs():
    job1, job2 = 2.5e23, 2.0e23  # each below 4e23, together above
    first = decide(job1, LLAMA3_8B)
    assert first.role == "downstream_modifier"
    second = decide(job1 + job2, LLAMA3_8B)
    assert second.role == "gpai_provider"
    assert any("add up" in i.text for i in second.interpretations)


# --- the ±30 % margin (Annex A.2) -----------------------------------------------------------------------------
def test_margin_straddles_from_below_and_from_above():
    below = decide(3.5e23, LLAMA3_8B)  # 2.45e23..4.55e23 contains 4e23
    assert below.role == "downstream_modifier" and below.margin_straddles
    assert below.margin_low_flops == pytest.approx(2.45e23) and below.margin_high_flops == pytest.approx(4.55e23)
    above = decide(4.5e23, LLAMA3_8B)  # 3.15e23..5.85e23
    assert above.role == "gpai_provider" and above.margin_straddles
    far = decide(1e23, LLAMA3_8B)
    assert not far.margin_straddles
    clear = decide(6e23, LLAMA3_8B)  # low 4.2e23 > 4e23
    assert not clear.margin_straddles
    assert any("Annex A.2" in r.citation for r in far.reasoning)


# --- the organisation's accepted role (the pipeline gate) -----------------------------------------------------
def test_accepted_role_gating():
    d = decide(5e23, LLAMA3_8B)
    assert d.accepted_role == "downstream_modifier" and not d.within_accepted_role
    assert d.accepted_limit_flops == pytest.approx(4e23)
    ok = decide(5e23, LLAMA3_8B, accepted_role="gpai_provider")
    assert ok.within_accepted_role
    # A GPAI provider stays one until the cumulative model passes 1e25.
    assert ok.accepted_limit_flops == pytest.approx(1e25 - 1.2e24)
    too_far = decide(9e24, LLAMA3_8B, accepted_role="gpai_provider")
    assert too_far.role == "gpai_provider_systemic_risk" and not too_far.within_accepted_role
    anything = decide(9e24, LLAMA3_8B, accepted_role="gpai_provider_systemic_risk")
    assert anything.within_accepted_role and anything.accepted_limit_flops is None
    systemic = OriginalCompute(3e25, "known", systemic_risk=True)
    assert decide(0, systemic, accepted_role="gpai_provider").accepted_limit_flops == pytest.approx(1e25)
    assert not decide(2e25, systemic, accepted_role="gpai_provider").within_accepted_role


def test_within_accepted_role_agrees_with_the_limit():
    for accepted in ("downstream_modifier", "gpai_provider"):
        for mod in (0.0, 1e22, 4e23, 4.1e23, 8.8e24, 8.9e24, 2e25):
            d = decide(mod, LLAMA3_8B, accepted_role=accepted)
            assert d.within_accepted_role == (mod <= d.accepted_limit_flops), (accepted, mod)


def test_tokens_until_threshold():
    d = decide(3e23, LLAMA3_8B)
    assert tokens_until_threshold(1e12, d) == 100_000_000_000
    assert tokens_until_threshold(1e12, decide(5e23, LLAMA3_8B)) == 0
    unlimited = decide(0, LLAMA3_8B, accepted_role="gpai_provider_systemic_risk")
    assert tokens_until_threshold(1e12, unlimited, to_accepted_limit=True) == -1
    with pytest.raises(BadInput):
        tokens_until_threshold(0, d)


# --- reasoning, display, record ---------------------------------------------------------------------------------
def test_every_reason_and_reading_carries_a_citation():
    for d in (decide(5e23, LLAMA3_8B), decide(1e21, OriginalCompute(1e21, "known")),
              decide(1e24, OriginalCompute(None, "unknown", systemic_risk=True))):
        assert d.reasoning and all(r.citation for r in d.reasoning)
        assert all(i.label == "reading" and i.citation for i in d.interpretations)
        assert all(o.citation and o.applies_because for o in d.obligations)


def test_display_strings_are_two_significant_figures():
    d = decide(1.23456e23, LLAMA3_8B)
    assert d.display["modification_flops"] == "1.2e23"
    assert d.display["threshold_flops"] == "4.0e23"
    assert d.display["headroom_fraction"] == "69%"
    assert d.display["original_flops"] == "1.2e24"
    assert d.modification_flops == 1.23456e23  # exact value kept
    assert flops2(9.96e22) == "1.0e23" and flops2(0) == "0" and flops2(-6.7e22) == "-6.7e22"
    assert percent2(0.001234) == "0.12%" and percent2(-0.5) == "-50%" and percent2(0.9996) == "100%"
    assert percent2(1.0) == "100%" and percent2(0) == "0%" and percent2(0.0999) == "10%"


def test_decision_round_trips_through_the_run_record():
    record = RunRecord(decision=decide(5e23, LLAMA3_8B))
    loaded = RunRecord.model_validate_json(record.model_dump_json())
    assert loaded.decision == record.decision


# --- bad input ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1.0, "1e22", None, True])
def test_bad_modification_flops_is_bad_input(bad):
    with pytest.raises(BadInput, match="modification compute"):
        decide(bad, LLAMA3_8B)


@pytest.mark.parametrize("kwargs", [
    {"flops": float("nan"), "status": "known"},
    {"flops": float("inf"), "status": "estimated"},
    {"flops": -1e24, "status": "known"},
    {"flops": 0.0, "status": "known"},
    {"flops": None, "status": "known"},
    {"flops": 1e24, "status": "unknown"},
    {"flops": 1e24, "status": "reported"},
    {"flops": 1e24},
])
def test_bad_original_is_bad_input(kwargs):
    with pytest.raises(BadInput, match="original compute"):
        OriginalCompute(**kwargs)


def test_bad_accepted_role_and_original_type():
    with pytest.raises(BadInput, match="accepted role"):
        decide(1e22, LLAMA3_8B, accepted_role="provider")
    with pytest.raises(BadInput, match="OriginalCompute"):
        decide(1e22, 1.2e24)


# --- several public estimates of one original (registry reconciliation) -------------------------------------------
def _two_estimates(choice=None):
    from ftaudit.regulation import ComputeEstimate

    arch = ComputeEstimate(method="architecture", flops=6.7e22, source="6·N·D", verified=False)
    hw = ComputeEstimate(method="hardware", flops=6.6e23, source="370k H100-hours × 989 TFLOP/s × 50 %",
                         verified=True)
    return OriginalCompute(hw.flops, hw.status, source=hw.source, estimates=(hw, arch), estimate_choice=choice)


def test_estimates_on_both_sides_of_1e23_are_reported_and_the_stricter_decides():
    d = decide(5e22, _two_estimates())
    assert d.estimates_disagree and d.estimate_selection == "stricter"
    # architecture: not a GPAI base, 6.7e22 + 5e22 > 1e23 → provider; hardware: one third of 6.6e23 → not over.
    by = {o.method: o for o in d.estimates}
    assert by["architecture"].role == "gpai_provider" and by["hardware"].role == "downstream_modifier"
    assert not by["architecture"].original_above_gpai_criterion and by["hardware"].original_above_gpai_criterion
    assert d.role == "gpai_provider" and d.estimate_used == "architecture"
    assert d.original.flops == 6.7e22 and d.threshold_basis == "cumulative_gpai_criterion"
    assert any("different sides of 1e23" in r.text for r in d.reasoning)
    assert any(i.label == "reading" and "stricter outcome" in i.text for i in d.interpretations)
    assert d.display["original_flops_hardware"] == "6.6e23"


def test_the_user_can_pick_an_estimate():
    d = decide(5e22, _two_estimates("hardware"))
    assert d.estimate_selection == "user" and d.estimate_used == "hardware"
    assert d.role == "downstream_modifier" and d.threshold_flops == pytest.approx(2.2e23)
    assert d.estimates_disagree and any("You picked the hardware estimate" in r.text for r in d.reasoning)
    with pytest.raises(BadInput, match="original_estimate 'reported' is not available"):
        OriginalCompute(6.6e23, "estimated", estimates=_two_estimates().estimates, estimate_choice="reported")


def test_agreeing_estimates_pick_the_lower_threshold_without_a_disagreement():
    from ftaudit.regulation import ComputeEstimate

    arch = ComputeEstimate(method="architecture", flops=7.2e23, source="6·N·D", verified=True)
    hw = ComputeEstimate(method="hardware", flops=2.3e24, source="GPU-hours", verified=False)
    d = decide(1e21, OriginalCompute(hw.flops, hw.status, estimates=(hw, arch)))
    assert not d.estimates_disagree and d.role == "downstream_modifier"
    assert d.estimate_used == "architecture" and d.threshold_flops == pytest.approx(2.4e23)
    # Both sides of 1e23 is a disagreement even when the role is the same.
    assert decide(1e21, _two_estimates()).estimates_disagree


def test_art_54_only_for_a_provider_established_outside_the_union():
    inside = decide(5e23, LLAMA3_8B, established_in_eu=True)
    assert "Art. 54" not in articles(inside) and inside.role == "gpai_provider"
    outside = decide(5e23, LLAMA3_8B, established_in_eu=False)
    assert outside.obligations[-1].article == "Art. 54" and "if the provider" not in outside.obligations[-1].title
    unknown = decide(5e23, LLAMA3_8B)
    assert "if the provider is established outside the EU" in unknown.obligations[-1].title
