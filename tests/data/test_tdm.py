"""TDM reservations checked offline: robots.txt groups, TDMRep, ai.txt, meta tags, declarations; scan evidence and
the data policy."""

import json

import pytest

from ftaudit.data import tdm
from ftaudit.data.policy import DataPolicy, evaluate
from ftaudit.data.scan import ScanOptions, scan
from ftaudit.errors import BadInput


def test_robots_groups_for_ai_crawlers():
    assert tdm.robots_signals("User-agent: GPTBot\nDisallow: /\n")[0] == "reserved"
    assert tdm.robots_signals("User-agent: *\nDisallow: /\n")[0] == "reserved"
    # Two agents share a group; comments and case do not matter (RFC 9309).
    status, signals = tdm.robots_signals("user-agent: Googlebot\nuser-agent: CCBot # AI\nDISALLOW: / \n")
    assert status == "reserved" and "ccbot" in signals[0]
    assert tdm.robots_signals("User-agent: CCBot\nDisallow: /private/\n")[0] == "partial"
    assert tdm.robots_signals("User-agent: Googlebot\nDisallow: /\n")[0] == "not_reserved"  # a search crawler only
    assert tdm.robots_signals("User-agent: *\nDisallow:\n")[0] == "not_reserved"  # empty Disallow allows all
    assert tdm.robots_signals("User-agent: GPTBot\nAllow: /\nDisallow: /\n")[0] != "reserved"


def test_tdmrep_and_meta_tags():
    assert tdm.tdmrep_signals('[{"location": "/", "tdm-reservation": 1, "tdm-policy": "https://x/p"}]')[0] == \
        "reserved"
    assert tdm.tdmrep_signals('[{"location": "/news/*", "tdm-reservation": 1}]')[0] == "partial"
    assert tdm.tdmrep_signals('[{"location": "/", "tdm-reservation": 0}]')[0] == "not_reserved"
    with pytest.raises(BadInput, match="tdmrep.json is not JSON"):
        tdm.tdmrep_signals("{")
    assert tdm.meta_signals('<html><meta name="tdm-reservation" content="1"></html>', "a.html")[0] == "reserved"
    assert tdm.meta_signals("<meta content='noindex, noai' name='robots'>", "b.html")[0] == "reserved"
    assert tdm.meta_signals('<meta name="robots" content="noindex">', "c.html")[0] == "not_reserved"


def _saved(root):
    (root / "news.example").mkdir(parents=True)
    (root / "news.example" / "robots.txt").write_text("User-agent: GPTBot\nDisallow: /\n")
    (root / "blog.example").mkdir()
    (root / "blog.example" / "tdmrep.json").write_text('[{"location": "/drafts/*", "tdm-reservation": 1}]')
    (root / "open.example").mkdir()
    (root / "open.example" / "robots.txt").write_text("User-agent: *\nAllow: /\n")
    (root / "open.example" / "ai.txt").write_text("User-Agent: *\nAllow: /\n")
    (root / "licensed.example").mkdir()
    (root / "licensed.example" / "robots.txt").write_text("User-agent: CCBot\nDisallow: /\n")
    (root / tdm.DECLARATIONS).write_text(json.dumps(
        {"licensed.example": {"reserved": False, "method": "licence agreement", "note": "contract 2026-04"}}))
    return root


def test_check_per_domain_with_declarations(tmp_path):
    ev = tdm.check([("news.example", 3), ("blog.example", 2), ("open.example", 1), ("licensed.example", 4),
                    ("unknown.example", 5)], _saved(tmp_path / "tdm"))
    by = {d.domain: d for d in ev.domains}
    assert by["news.example"].status == "reserved" and by["blog.example"].status == "partial"
    assert by["open.example"].status == "not_reserved" and by["unknown.example"].status == "no_information"
    # A licence declared by the user decides over the saved robots.txt, and both signals are kept.
    assert by["licensed.example"].status == "not_reserved" and len(by["licensed.example"].signals) == 2
    assert (ev.reserved, ev.partial, ev.not_reserved, ev.no_information) == (1, 1, 2, 1)
    assert ev.records_from_reserved_domains == 3 and ev.reserved_domains == ["news.example"]


@pytest.mark.parametrize("content, message", [
    ("[1]", "expected a JSON object"),
    ('{"a.example": {"reserved": "maybe", "method": "x"}}', "domain #1: reserved"),
    ('{"a.example": {"reserved": true}}', "domain #1: method"),
])
def test_bad_declarations_are_one_line(tmp_path, content, message):
    path = tmp_path / "decl.json"
    path.write_text(content)
    with pytest.raises(BadInput, match=message):
        tdm.check([("a.example", 1)], path)
    with pytest.raises(BadInput, match="no such TDM reservation directory"):
        tdm.check([], tmp_path / "missing")


def test_scan_records_tdm_evidence_and_the_policy_blocks_reserved_sources(tmp_path):
    data = tmp_path / "crawl.jsonl"
    rows = [{"url": "https://www.news.example/a/1", "text": "A news article about the weather."},
            {"url": "https://open.example/post", "text": "An open post about gardening."},
            {"url": "https://news.example/a/2", "text": "Another article about the elections."}]
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    ev = scan([data], options=ScanOptions(ner=False), tdm=_saved(tmp_path / "tdm"))
    assert ev.tdm.records_from_reserved_domains == 2 and ev.tdm.reserved_domains == ["news.example"]
    assert ev.policy.status == "blocked" and [r.rule for r in ev.policy.reasons] == ["tdm_reserved"]
    assert "2019/790" in ev.policy.reasons[0].citation
    relaxed = evaluate(ev, DataPolicy(block_on_tdm_reserved=False))
    assert relaxed.status == "pass" and [w.rule for w in relaxed.warnings] == ["tdm_reserved"]
    with pytest.raises(BadInput, match="no such TDM"):
        scan([data], options=ScanOptions(ner=False), tdm=tmp_path / "nope")


def test_data_scan_cli_reports_reservations(tmp_path, capsys):
    from ftaudit.cli import main

    data = tmp_path / "crawl.jsonl"
    data.write_text(json.dumps({"url": "https://open.example/p", "text": "An open post about gardening."}) + "\n")
    assert main(["data", "scan", str(data), "--no-ner", "--workers", "1", "-o", str(tmp_path / "rep"),
                 "--tdm", str(_saved(tmp_path / "tdm"))]) == 0
    out = capsys.readouterr().out
    assert "TDM reservations: 0 reserved, 0 partial, 1 not reserved, 0 without information, of 1 domains" in out
