import hashlib
import json

import pytest

from ftaudit.data import provenance as prov
from ftaudit.data.scan import ScanOptions, scan

OPTS = ScanOptions(detect=False)


def _jsonl(path, rows, **dump):
    path.write_text("".join(json.dumps(r, **dump) + "\n" for r in rows), encoding="utf-8")
    return path


def test_file_fingerprint_is_sha256_of_the_bytes(tmp_path):
    p = _jsonl(tmp_path / "a.jsonl", [{"text": "hello"}, {"text": "world"}])
    ev = scan([p], options=OPTS)
    assert ev.files[0].sha256 == hashlib.sha256(p.read_bytes()).hexdigest()
    assert ev.files[0].bytes == p.stat().st_size and ev.files[0].records == 2


def test_record_digest_survives_reserialisation_and_tracks_content(tmp_path):
    rows = [{"text": "alpha", "id": 1}, {"text": "beta", "id": 2}]
    a = scan([_jsonl(tmp_path / "a.jsonl", rows)], options=OPTS)
    # Other key order and whitespace: different file bytes, same records.
    b = scan([_jsonl(tmp_path / "b.jsonl", [dict(reversed(list(r.items()))) for r in rows], indent=None,
                     separators=(" , ", " : "))], options=OPTS)
    moved = scan([_jsonl(tmp_path / "c.jsonl", rows[::-1])], options=OPTS)
    edited = scan([_jsonl(tmp_path / "d.jsonl", [rows[0], {"text": "beta!", "id": 2}])], options=OPTS)
    assert a.files[0].sha256 != b.files[0].sha256
    assert a.record_digest.value == b.record_digest.value
    assert len({a.record_digest.value, moved.record_digest.value, edited.record_digest.value}) == 3


def test_record_digest_is_the_documented_chain_in_one_block_of_state(tmp_path, monkeypatch):
    """The digest recomputed from its stated definition (blocks of 3 records here: 10 records, the last block
    partial), with 1 or 2 workers; the state it keeps never exceeds one block."""
    monkeypatch.setattr(prov.RecordDigest, "BLOCK", 3)
    rows = [{"text": f"record {i}", "id": i} for i in range(10)]
    path = _jsonl(tmp_path / "a.jsonl", rows)
    h = bytes(32)
    for start in range(0, len(rows), 3):
        h = hashlib.sha256(h + b"".join(hashlib.sha256(json.dumps(r, sort_keys=True, separators=(",", ":"),
                                                                  ensure_ascii=False).encode()).digest()
                                         for r in rows[start:start + 3])).digest()
    for workers in (1, 2):
        ev = scan([path], options=ScanOptions(detect=False, workers=workers, shard_bytes=64))
        assert (ev.record_digest.value, ev.record_digest.records) == (h.hex(), 10)
    digest = prov.RecordDigest()
    for i in range(10):
        digest.update(bytes([i]) * 32)
        assert len(digest._block) <= 3 * 32


@pytest.mark.parametrize("url,domain", [
    ("https://www.news.bbc.co.uk/story/1?x=2", "bbc.co.uk"),
    ("http://user:secret@shop.example.com:8080/cart", "example.com"),
    ("example.org/page", "example.org"),
    ("https://EN.Wikipedia.org/wiki/X", "wikipedia.org"),
    ("http://192.168.1.10/admin", None),
    ("http://localhost:8000/", None),
])
def test_registrable_domain(url, domain):
    assert prov.domain_of_url(url) == domain


def test_record_domains_prefers_metadata_then_text():
    assert prov.record_domains({"url": "https://a.example.com/x", "text": "see https://b.org"}, ["see https://b.org"]) \
        == (["example.com"], "metadata")
    assert prov.record_domains({"text": "t"}, ["see https://b.org/1 and http://c.net, https://b.org/2"]) \
        == (["b.org", "c.net"], "text")


def test_domains_ranked_by_content_size_not_record_count(tmp_path):
    rows = [{"text": "short", "url": "https://many.example/p"} for _ in range(5)]
    rows.append({"text": "long " * 400, "url": "https://big.example/p"})
    rows += [{"text": f"d{i}", "url": f"https://site{i}.example/"} for i in range(18)]
    ev = scan([_jsonl(tmp_path / "d.jsonl", rows)], options=OPTS)
    assert ev.domains.domains_total == 20
    assert [d.domain for d in ev.domains.top] == ["big.example", "many.example"]  # ceil(10 % of 20) = 2
    assert ev.domains.top[1].records == 5
    assert "top 10 %" in ev.domains.rule


@pytest.mark.parametrize("n,sme,k", [(0, False, 0), (1, False, 1), (25, False, 3), (25, True, 2),
                                     (10_000, True, 500), (100_000, True, 1000), (100_000, False, 10_000)])
def test_top_domain_count_follows_the_template(n, sme, k):
    assert prov.top_domain_count(n, sme=sme) == k


def test_a_large_record_hashes_as_its_canonical_json_in_pieces():
    import random

    from ftaudit.data import provenance as prov

    rng = random.Random(5)
    alphabet = 'ab "\\\n\t\x00\x1fé€😀\u2028'
    long = "".join(rng.choice(alphabet) for _ in range(prov._HASH_PIECE * 2 + 17))
    records = [
        {"text": long, "meta": {"b": [1, 2.5, None, True, long[:50]], "a": "x"}, "n": 10**30},
        {"messages": [{"role": "user", "content": long}, {"role": "assistant", "content": "ok"}]},
        {"z": {2: "int keys", 1: float("nan")}, "t": ("tu", "ple"), "when": __import__("datetime").date(2026, 1, 2)},
        {},
    ]
    for rec in records:
        assert "".join(prov.canonical_chunks(rec)).encode() == prov.canonical_json(rec)
        assert prov.record_hash(rec, large=True) == prov.record_hash(rec)
