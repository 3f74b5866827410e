"""Long records are read in pieces: the same figures as reading them whole, in memory that does not grow with
the words of the record (issue: a 50 MB single-line record needed 1.4 GB without NER)."""

from __future__ import annotations

import gzip
import json
import random
import tracemalloc
from pathlib import Path

import pytest

from ftaudit.data import bias, pieces, pii
from ftaudit.data.loading import Record, iter_records
from ftaudit.data.quality import MinHasher, exact_key, garbled_reason, normalise, shingles
from ftaudit.data.scan_worker import ScanOptions, Worker
from ftaudit.data.spans import Intervals
from ftaudit.data.stats import regex_token_count

ALPHABET = ["a", "B", "ß", "é", "e\u0301", " ", "  ", "\n", "\t", "x", "\ufb01", ",", "\u00a0", "teacher", "she",
            "Anna.", "QUJD" * 60]


def _figures(text: str) -> tuple:
    tally = bias.tally_record([text])
    return (normalise(text), exact_key(text), shingles(text), MinHasher().signature(text) is None
            or MinHasher().signature(text).tolist(), regex_token_count(text), garbled_reason(text),
            tally.sentences, sorted((k, g.mentions) for k, g in tally.groups.items()))


@pytest.mark.parametrize("size", [5, 11, 64])
def test_pieces_give_the_figures_of_the_whole_text(monkeypatch, size):
    rng = random.Random(size)
    texts = ["".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 80))) for _ in range(400)]
    whole = [_figures(t) for t in texts]
    monkeypatch.setattr(pieces, "PIECE", size)
    monkeypatch.setattr(bias, "MAX_SENTENCE", 10**9)
    assert [_figures(t) for t in texts] == whole


def test_a_cut_never_parts_a_word_or_an_accent():
    text = "word " * 50 + "e\u0301" * 40
    cut = list(pieces.pieces(text, 16))
    assert "".join(p for _, p in cut) == text and all(len(p) <= 16 for _, p in cut)
    assert all(not p.startswith("\u0301") for _, p in cut)
    assert all(p.startswith(" ") for off, p in cut[1:] if off < 250)


def _peak(tmp_path, n_words: int) -> tuple[int, int]:
    """(traced peak bytes, characters) of the worker's statistics on one single-line record of n_words words."""
    rng = random.Random(3)
    words = ["order", "late", "refund", "the", "teacher", "she", "parcel", "Anna", "week", "thanks"]
    path = tmp_path / f"long{n_words}.jsonl"
    path.write_text(json.dumps({"text": " ".join(rng.choice(words) for _ in range(n_words))}) + "\n")
    batch = list(iter_records(path))
    worker = Worker(ScanOptions(detect=False))
    tracemalloc.start()
    out = worker.run(batch, "train")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert out.records[0].tokens == n_words and out.bias.sentences > 1
    return peak, out.records[0].chars


def test_the_statistics_of_a_long_line_need_memory_for_a_piece_not_for_its_words(tmp_path):
    small, small_chars = _peak(tmp_path, 300_000)
    big, big_chars = _peak(tmp_path, 1_500_000)
    per_char = (big - small) / (big_chars - small_chars)
    # What grows with the record is a few plain copies (its canonical JSON, its UTF-8); reading it whole built a
    # list of all its words and shingles as well: about 15 bytes per character.
    assert per_char < 3, f"{per_char:.1f} bytes of memory per character of the record"


def test_intervals_answer_as_the_pairwise_check_does():
    """The O(log n) overlap index behind resolve_overlaps and the NER filter equals checking every pair."""
    rng = random.Random(7)
    for _ in range(300):
        ranges = []
        index = Intervals()
        for _ in range(rng.randint(0, 30)):
            s = rng.randint(0, 60)
            e = s + rng.randint(0, 8)
            for _ in range(5):
                qs = rng.randint(0, 70)
                qe = qs + rng.randint(0, 8)
                assert index.overlaps(qs, qe) == any(qs < be and bs < qe for bs, be in ranges), (ranges, qs, qe)
            index.add(s, e)
            ranges.append((s, e))


def _golden_texts() -> list[str]:
    with gzip.open(Path(__file__).parent / "engine_golden" / "dataset.jsonl.gz", "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    return [v for row in rows for v in row.values() if isinstance(v, str)]


@pytest.mark.parametrize("size", [4096, 8192])
def test_detection_in_windows_finds_what_reading_the_whole_text_finds(monkeypatch, size):
    """Identifiers, secrets and lexicon terms of the golden engine set, glued into long texts (no separator,
    spaces, newlines, an 'İ' that stops case folding) around a blob without whitespace: the same spans, types and
    scores whether a text is read whole or in windows (every match here is shorter than half the overlap)."""
    rng = random.Random(size)
    texts = _golden_texts()
    rng.shuffle(texts)
    long_texts = []
    for start in range(0, len(texts), 150):
        glue = rng.choice(["", " ", "\n", " İ "])
        parts = texts[start:start + 150] + [" " + "QUJD" * rng.randint(0, 3000) + " "]
        rng.shuffle(parts)
        long_texts.append(glue.join(parts))
    assert sum(len(t) > 2 * size for t in long_texts) >= 10
    whole = pii.detect_many(long_texts, ner=False)
    monkeypatch.setattr(pieces, "WINDOW", size)
    monkeypatch.setattr(pieces, "OVERLAP", size // 2)
    assert pii.detect_many(long_texts, ner=False) == whole
    assert sum(map(len, whole)) > 1000


def test_a_group_of_overlapping_spans_across_a_window_end_waits_for_the_next_window(monkeypatch):
    """Competing spans that overlap across a window's end are resolved together once the next window has been
    read: the windowed detections equal reading the text whole, and such a group did occur."""
    texts = _golden_texts()
    long_text = " ".join(texts)
    whole = pii.detect_many([long_text], ner=False)
    waited = []
    open_group = pii._open_group

    def watched(spans, hi):
        cut = open_group(spans, hi)
        waited.append(len(spans) - cut)
        return cut

    monkeypatch.setattr(pii, "_open_group", watched)
    monkeypatch.setattr(pieces, "WINDOW", 4096)  # every match shorter than half the overlap
    monkeypatch.setattr(pieces, "OVERLAP", 2048)
    parts = list(next(pii.detect_each([long_text], ner=False)))
    assert len(parts) > 100 and [sp for part in parts for sp in part] == whole[0]
    assert sum(n > 1 for n in waited) >= 3, waited  # groups of competing spans held across a window's end


def _dense_line(n: int) -> str:
    rng = random.Random(n)
    return " ".join(f"mail anna{rng.randint(0, 99999)}@example.com call +44 20 7946 {rng.randint(1000, 9999)} "
                    f"about her diabetes and her trade union" for _ in range(n))


def test_a_line_of_many_findings_costs_bytes_not_objects_a_finding(monkeypatch):
    """One record holding hundreds of thousands of findings: the worker keeps them in columns, window by window,
    never as a list of every span (about 190 bytes a finding more before)."""
    monkeypatch.setattr(pieces, "WINDOW", 1 << 16)
    monkeypatch.setattr(pieces, "OVERLAP", 1 << 12)
    worker = Worker(ScanOptions(ner=False))
    peaks = []
    for n in (4_000, 16_000):
        batch = [Record(0, "dense.jsonl", {"text": _dense_line(n)})]
        tracemalloc.start()
        out = worker.run(batch, "train")
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        found = out.records[0].findings
        assert len(found) == 4 * n  # the address, the phone number, two special-category terms
        assert {t for _, _, _, t, _ in found} == {"EMAIL_ADDRESS", "PHONE_NUMBER", "SPECIAL_CATEGORY_HEALTH",
                                                   "SPECIAL_CATEGORY_TRADE_UNION"}
        peaks.append((peak, len(found)))
    per_finding = (peaks[1][0] - peaks[0][0]) / (peaks[1][1] - peaks[0][1])
    # The text and its case fold (about 42 bytes a finding here) and 20 bytes of columns.
    assert per_finding < 100, f"{per_finding:.0f} bytes of memory per finding"
