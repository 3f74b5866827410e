"""The duplicate search as a shuffle (`lsh_shuffle`) gives what the driver's streaming index gives — the same
repeats, near pairs in the same order, clusters, examples and leaks — for any number of partitions and tasks."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest
from faker import Faker

from ftaudit.data import lsh_shuffle
from ftaudit.data.quality import DuplicateFinder, MinHasher, exact_key
from ftaudit.data.scan_worker import ID_SHIFT


def _texts(n: int, seed: int) -> list[str]:
    """Paragraphs, a fifth of them edited copies of an earlier one (one or two words changed: near duplicates at
    several similarities), a tenth exact copies, some short (no signature)."""
    fake = Faker()
    Faker.seed(seed)
    rng = random.Random(seed)
    out: list[str] = []
    for _ in range(n):
        roll = rng.random()
        if out and roll < 0.2:
            words = rng.choice(out).split()
            for _ in range(rng.choice((1, 1, 2, 4))):
                words[rng.randrange(len(words))] = fake.word()
            out.append(" ".join(words))
        elif out and roll < 0.3:
            out.append(rng.choice(out))
        elif roll < 0.33:
            out.append(fake.word())
        else:
            out.append(fake.paragraph(nb_sentences=5))
    return out


@dataclass
class _Agg:
    """What `replay` writes to: a DuplicateFinder, and the leaks as the aggregate would count them."""

    dups: DuplicateFinder
    leaks: list = field(default_factory=list)

    def source_of(self, item: int) -> tuple[str, int]:
        return f"file{item >> ID_SHIFT}", item & ((1 << ID_SHIFT) - 1)

    def leak(self, source, index, exact, pairs) -> None:  # as Aggregate.leak: an exact repeat first
        best = max(pairs, key=lambda p: p.similarity) if pairs and exact is None else None
        self.leaks.append((source, index, exact, None if best is None else (best.a, best.similarity)))


def _local(records, finder: DuplicateFinder) -> _Agg:
    agg = _Agg(finder)
    for item, is_eval, key, sig in records:
        if not is_eval:
            finder.add(item, key, sig)
    for item, is_eval, key, sig in records:
        if is_eval:
            exact, pairs = finder.index.query(key, sig)
            if exact is not None or pairs:
                agg.leak(*agg.source_of(item), exact, pairs)
    return agg


def _shuffled(records, finder: DuplicateFinder, partitions: int, tasks: int, threshold: float) -> _Agg:
    agg = _Agg(finder)
    size = -(-len(records) // tasks)
    parts = [lsh_shuffle.split(records[i:i + size], 8, partitions) for i in range(0, len(records), size)]
    found = [lsh_shuffle.exact(*(p[i] for p in parts)) for i in range(partitions)]
    repeats = {k: v for r, _ in found for k, v in r.items()}
    leaks = {k: v for _, r in found for k, v in r.items()}
    settled = frozenset(repeats.keys() | leaks.keys())
    pairs = lsh_shuffle.merge_near(lsh_shuffle.near(threshold, settled, *(p[partitions + i] for p in parts))
                                   for i in range(partitions))
    lsh_shuffle.replay(agg, repeats, leaks, pairs, frozenset({2}))
    return agg


@pytest.mark.parametrize(("partitions", "tasks"), [(1, 1), (2, 5), (7, 3)])
def test_the_shuffle_finds_what_the_index_finds(partitions, tasks):
    texts = _texts(900, seed=partitions)
    hasher = MinHasher(num_perm=32)
    sigs = hasher.signatures(texts)
    # files 0 and 1 train, file 2 eval (its records: copies and edits of training texts among new ones)
    files = [0] * 400 + [1] * 350 + [2] * 150
    index = [i if f == 0 else i - 400 if f == 1 else i - 750 for i, f in enumerate(files)]
    records = [((f << ID_SHIFT) | j, f == 2, exact_key(t), s) for f, j, t, s in zip(files, index, texts, sigs,
                                                                                 strict=True)]
    threshold = 0.7
    local = _local(records, DuplicateFinder(num_perm=32, bands=8, threshold=threshold))
    shuffled = _shuffled(records, DuplicateFinder(num_perm=32, bands=8, threshold=threshold), partitions, tasks,
                         threshold)
    a, b = local.dups.result(), shuffled.dups.result()
    assert a == b and local.leaks == shuffled.leaks
    assert a.exact_duplicate_items > 30 and a.near_duplicate_items > 30 and len(a.pairs) == 20
    assert len({p.similarity for p in a.pairs}) > 2  # ties and orders of several similarities were replayed
    assert sum(exact is not None for *_, exact, _ in local.leaks) > 5
    assert sum(exact is None for *_, exact, _ in local.leaks) > 5
