"""The documents the regulation issue added: the copyright policy with the TDM check, the template fields, the
architecture from the config, testing/validation data, the open-source conditions and the decision's readings."""

from __future__ import annotations

import json

from ftaudit.data import tdm
from ftaudit.regulation import decide, lookup
from ftaudit.reporting.answers import Answers, template
from ftaudit.reporting.context import Ctx
from ftaudit.reporting.render import render_files
from reporting_records import full_record


def _docs(record, tmp_path, answers=None) -> dict:
    files = render_files(Ctx(record=record, run_dir=tmp_path, answers=answers or Answers()), ["json", "md"])
    return {name[:-5]: json.loads(data) for name, data in files.items() if name.endswith(".json")} | {
        name: data.decode() for name, data in files.items() if name.endswith(".md")}


def _items(doc: dict) -> dict:
    return {i["id"]: i for s in doc["sections"] for i in s["items"]}


def test_copyright_policy_lists_domains_and_reservations(tmp_path):
    record = full_record(tmp_path)
    (tmp_path / "tdm" / "news.example").mkdir(parents=True)
    (tmp_path / "tdm" / "news.example" / "robots.txt").write_text("User-agent: GPTBot\nDisallow: /\n")
    record.data.tdm = tdm.check([("news.example", 7), ("open.example", 1)], tmp_path / "tdm")
    docs = _docs(record, tmp_path, Answers(copyright_contact="rights@example.org", code_of_practice_signatory=True))
    policy = docs["copyright_policy"]
    items = _items(policy)
    assert "2019/790" in policy["citation"] and "Art. 53(1)(c)" in policy["citation"]
    assert items["1.contact"]["status"] == "answered" and items["1.code_of_practice"]["value"] is True
    assert items["1.published"]["status"] == "awaiting_human"
    assert items["2.1.licence"]["value"] == "Apache-2.0"
    assert items["3.check"]["status"] == "evidence" and "robots.txt" in items["3.check"]["value"]
    assert items["3.result"]["value"] == ["news.example"] and "7 training record(s)" in items["3.result"]["display"]
    table = next(t for s in policy["sections"] for t in s["tables"])
    assert ["news.example", "7", "reserved", "robots.txt: gptbot disallowed from /"] in table["rows"]
    assert "Draft commitments" in docs["copyright_policy.md"]
    summary = _items(docs["training_content_summary"])
    assert summary["3.1_respect_of_tdm_opt_outs"]["value"]["domains_reserving_rights"] == ["news.example"]


def test_copyright_policy_without_a_tdm_check_says_how_to_get_one(tmp_path):
    items = _items(_docs(full_record(tmp_path), tmp_path)["copyright_policy"])
    assert items["3.check"]["status"] == "awaiting_evidence" and "tdm_reservations" in items["3.check"]["display"]
    assert "3.result" not in items


def test_summary_has_the_template_fields(tmp_path):
    answers = Answers(continuous_training=False, synthetic_third_party_models=["Qwen/Qwen2.5-72B-Instruct"],
                      user_data_model_interactions=False)
    items = _items(_docs(full_record(tmp_path), tmp_path, answers)["training_content_summary"])
    for key in ("1.3.continuous_training", "1.3.other_characteristics", "2.2.1_licensed_from_rightsholders",
                "2.2.2_other_private_third_party_data", "2.3.purposes", "2.3.content", "2.3.modalities",
                "2.4.model_interactions", "2.4.other_services", "2.5.own_models", "2.5.third_party_models",
                "3.1.code_of_practice"):
        assert key in items, key
    continuous = items["1.3.continuous_training"]
    assert continuous["status"] == "answered" and continuous["value"] is False
    assert items["2.5.third_party_models"]["value"] == ["Qwen/Qwen2.5-72B-Instruct"]
    assert items["2.5.own_models"]["status"] == "awaiting_human"
    assert "C(2025) 8311" in items["2.5.own_models"]["citation"]
    for key in ("continuous_training", "code_of_practice_signatory", "oss_no_monetisation"):
        assert f"# {key}:" in template()


def test_annex_xi_architecture_testing_data_and_open_source_conditions(tmp_path):
    record = full_record(tmp_path)
    record.model.architecture = {"model_type": "llama", "hidden_size": 576, "num_hidden_layers": 30,
                                 "num_attention_heads": 9, "num_key_value_heads": 3, "vocab_size": 49152}
    answers = Answers(oss_free_open_licence=True, oss_weights_public=True, oss_architecture_public=True,
                      oss_usage_public=True, oss_no_monetisation=False)
    xi = _docs(record, tmp_path, answers)["annex_xi"]
    items = _items(xi)
    arch = items["1.1.d.architecture"]
    assert arch["status"] == "evidence" and "30" in arch["display"] and "key-value heads 3" in arch["display"]
    tv = items["1.2.c.testing_validation"]
    assert tv["status"] == "evidence" and "support_eval" in tv["display"] and "held out from training" in tv["display"]
    assert "2.c.testing_validation" in _items(_docs(record, tmp_path)["annex_xii"])
    assert items["oss.verdict"]["value"] == "not met: No monetisation"
    everything = Answers(oss_free_open_licence=True, oss_weights_public=True, oss_architecture_public=True,
                         oss_usage_public=True, oss_no_monetisation=True)
    assert _items(_docs(record, tmp_path, everything)["annex_xi"])["oss.verdict"]["value"].startswith("met:")
    assert _items(_docs(record, tmp_path)["annex_xi"])["oss.verdict"]["status"] == "awaiting_human"


def test_documents_show_the_applied_reading_the_alternative_and_the_estimates(tmp_path):
    smol = decide(1e21, lookup("HuggingFaceTB/SmolLM2-135M").original_compute())
    items = _items(_docs(full_record(tmp_path, decision=smol), tmp_path)["annex_xi"])
    assert items["1.2.d.base_is_gpai"]["display"].startswith("no, by the 1e23 FLOP indicative criterion")
    assert items["1.2.d.alternative_reading"]["display"].startswith("reading: If the base was placed")
    llama = decide(5e22, lookup("meta-llama/Llama-3.2-1B").original_compute())
    items = _items(_docs(full_record(tmp_path, decision=llama), tmp_path)["annex_xi"])
    est = items["1.2.d.original_estimates"]["display"]
    assert "hardware 6.6e23 FLOP" in est and "they disagree, the stricter (architecture) decides" in est
