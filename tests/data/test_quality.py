import random

import numpy as np
import pytest
from faker import Faker

from ftaudit.data.quality import (
    DuplicateFinder,
    MinHasher,
    exact_key,
    garbled_reason,
    quality_flag,
    shingles,
    similarity,
)


@pytest.fixture(scope="module")
def texts():
    fake = Faker("en_US")
    Faker.seed(7)
    return [fake.paragraph(nb_sentences=10, variable_nb_sentences=False) for _ in range(300)]


def _feed(items):
    finder = DuplicateFinder()
    hasher = MinHasher()
    for i, t in enumerate(items):
        finder.add(i, exact_key(t), hasher.signature(t))
    return finder.result()


def test_distinct_texts_are_not_duplicates(texts):
    res = _feed(texts)
    assert res.exact_duplicate_items == 0 and res.near_duplicate_items == 0


def test_planted_near_and_exact_duplicates_are_found(texts):
    rng = random.Random(1)
    planted = list(texts)
    # near: one word replaced (J ≈ 0.9), a sentence-final edit; exact: same text with other case and whitespace.
    words = texts[10].split()
    words[rng.randrange(len(words))] = "zebra"
    planted.append(" ".join(words))
    planted.append(texts[20] + " Thanks.")
    planted.append("  " + texts[30].upper().replace(" ", "   ") + "\n")
    res = _feed(planted)
    assert res.exact_duplicate_items == 1 and res.exact_examples == [[30, 302]]
    assert res.near_duplicate_items == 2
    assert {(p.a, p.b) for p in res.pairs} == {(10, 300), (20, 301)}
    assert all(p.similarity >= 0.8 for p in res.pairs)


def test_minhash_estimates_jaccard_and_is_deterministic(texts):
    a, b = texts[0], " ".join(texts[0].split()[:-8]) + " " + texts[1]
    sa, sb = shingles(a), shingles(b)
    true = len(sa & sb) / len(sa | sb)
    h1, h2 = MinHasher(num_perm=256), MinHasher(num_perm=256)
    est = similarity(h1.signature(a), h1.signature(b))
    assert abs(est - true) < 0.12
    assert np.array_equal(h1.signature(a), h2.signature(a))  # same seed → same signature in every process
    assert MinHasher().signature("   ") is None


def test_large_text_signature_is_bounded_and_stable():
    big = " ".join(f"w{i}" for i in range(300_000))  # ~300k shingles, processed in chunks
    sig = MinHasher().signature(big)
    assert sig.shape == (64,) and sig.dtype == np.uint32


@pytest.mark.parametrize("text,reason", [
    ("Caf\ufffd na\ufffdve r\ufffdsum\ufffd \ufffd\ufffd text", "replacement_characters"),
    ("CafÃ© and rÃ©sumÃ© and naÃ¯ve Ã¼ber", "mojibake"),
    ("ok\x00\x01\x02\x03 text here with controls", "control_characters"),
    ("1234 5678 9012 3456 7890 1234 5678 9012 !!!! ####", "few_letters"),
    ("prefix " + "QUJD" * 60, "unbroken_run"),
    ("A perfectly ordinary sentence about the weather in spring.", None),
    ("Ein ganz normaler Satz über das Wetter im Frühling, mit Umlauten.", None),
])
def test_garbled_reasons(text, reason):
    assert garbled_reason(text) == reason


def test_empty_records():
    assert quality_flag([]) == "empty"
    assert quality_flag(["", "  \n"]) == "empty"
    assert quality_flag(["fine text"]) is None
