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


class _DictIndex:
    """The index as dicts of lists, the definition the numpy index must answer as."""

    def __init__(self, num_perm, bands, threshold):
        self.rows, self.threshold = num_perm // bands, threshold
        self.buckets = [{} for _ in range(bands)]
        self.exact, self.sigs, self.ids = {}, [], []

    def run(self, item, key, sig, add):
        bands = [sig[b * self.rows:(b + 1) * self.rows].tobytes() for b in range(len(self.buckets))] \
            if sig is not None else []
        exact, seen, pairs = self.exact.get(key), set(), []
        for band, bucket in zip(bands, self.buckets, strict=False):  # no bands without a signature
            for pos in bucket.get(band, ()):
                if pos not in seen:
                    seen.add(pos)
                    sim = similarity(sig, self.sigs[pos])
                    if sim >= self.threshold and self.ids[pos] != exact:
                        pairs.append((self.ids[pos], item, sim))
        if add and exact is None:
            self.exact[key] = item
            if sig is not None:
                self.sigs.append(sig)
                self.ids.append(item)
                for band, bucket in zip(bands, self.buckets, strict=False):  # no bands without a signature
                    bucket.setdefault(band, []).append(len(self.sigs) - 1)
        return exact, pairs


@pytest.mark.parametrize(("num_perm", "bands", "batch"), [(64, 16, 1), (64, 16, 7), (64, 16, 250), (32, 16, 40),
                                                          (64, 8, 33)])
def test_the_numpy_index_answers_as_dicts_of_lists(texts, monkeypatch, num_perm, bands, batch):
    """Planted exact and near repeats (also inside one batch), records without a signature, then queries: the
    same exact matches and the same pairs in the same order, whatever the batch size and band width."""
    rng = random.Random(batch)
    items = []
    for i in range(900):
        t = texts[rng.randrange(1 + i // 3)]  # repeats near and far, inside a batch and across batches
        words = t.split()
        for _ in range(rng.choice([0, 0, 1, 2, 8])):
            words[rng.randrange(len(words))] = "zebra"
        items.append(rng.choice([t, " ".join(words), " ".join(words), ""]))
    hasher = MinHasher(num_perm=num_perm)
    rows = [(i, exact_key(t), hasher.signature(t)) for i, t in enumerate(items)]
    from ftaudit.data.quality import NearDuplicateIndex

    monkeypatch.setattr(NearDuplicateIndex, "_BLOCK", 64)  # signatures over many blocks
    index, ref = NearDuplicateIndex(num_perm, bands, 0.7), _DictIndex(num_perm, bands, 0.7)
    got, want = [], []
    for start in range(0, len(rows), batch):
        part = rows[start:start + batch]
        got += index.add_many(*(list(c) for c in zip(*part, strict=True)))
        want += [ref.run(*r, True) for r in part]
    queries = rows[::5]
    got += index.query_many([k for _, k, _ in queries], [s for *_, s in queries])
    want += [ref.run(-1, k, s, False) for _, k, s in queries]
    assert [(e, [(p.a, p.b, p.similarity) for p in ps]) for e, ps in got] == want
    assert sum(e is not None for e, _ in want) > 100 and sum(len(ps) for _, ps in want) > 100
