"""Data quality: exact and near-duplicates (MinHash + LSH), train/eval leakage, empty and garbled records.

Art. 10(2)-(3) asks that training data be examined and be, to the best extent possible, free of errors; Annex XI
§1 2(c) asks for the curation methods. Duplicates inflate the weight of some texts (and raise memorisation of
whatever personal data they carry); eval texts that also sit in the training set make the evaluation worthless.

MinHash is implemented here on numpy (no extra dependency): each text becomes a set of shingles (word 3-grams, or
character 5-grams for texts of fewer than 3 words), each shingle a 32-bit crc32, and each of `num_perm` seeded
64-bit mixing functions (splitmix64 of value XOR seed) keeps its minimum. The share of equal minima estimates the
Jaccard similarity of the two shingle sets. LSH splits the signature into `bands` bands of `rows` rows; two texts become
candidates when one band is identical, and every candidate is verified against the similarity threshold, so LSH
decides only what is compared, never what is reported.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
import zlib
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from ftaudit.data.pieces import PIECE, pieces
from ftaudit.data.sorted_runs import SortedRuns, keys128

_WORD = re.compile(r"\w+", re.UNICODE)
_CHUNK = 2048  # shingles mixed at once: 2048 × 64 × 8 bytes stays in cache, a larger block is slower


def normalise(text: str) -> str:
    """Case-fold, NFKC, collapse whitespace: what 'the same text' means for exact duplicates."""
    return "".join(normalised_pieces(text))


def normalised_pieces(text: str) -> Iterator[str]:
    """`normalise(text)` in consecutive parts, a piece of the text at a time: NFKC of a 50 MB ASCII line would
    otherwise build it again at 4 bytes a character. Pieces are cut before a space or newline, which neither NFKC
    nor case-folding join to their neighbour; a run of whitespace across a cut still becomes one space."""
    pending = started = False
    for _, piece in pieces(text):
        folded = _fold(piece)
        core = " ".join(folded.split())  # str.split's whitespace is re's \s: every run becomes one space
        if not core:
            pending = pending or bool(folded)
            continue
        if started and (pending or folded[0].isspace()):
            yield " "
        yield core
        started, pending = True, folded[-1].isspace()


def _fold(piece: str) -> str:
    # ASCII is its own NFKC form and lower() is its casefold(): the common case skips both Unicode passes.
    return piece.lower() if piece.isascii() else unicodedata.normalize("NFKC", piece).casefold()


def exact_key(text: str) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    for part in normalised_pieces(text):
        h.update(part.encode("utf-8"))
    return h.digest()


def shingles(text: str, *, word_ngram: int = 3, char_ngram: int = 5) -> set[str]:
    """The set of shingles of a text (word 3-grams, or character 5-grams for texts of fewer than 3 words)."""
    return {g for chunk in _shingle_chunks(text, word_ngram, char_ngram) for g in chunk}


def _ngrams(words: list[str], n: int) -> list[str]:
    """Every run of n consecutive words, joined by a space (the shorter slices end the zip where they should)."""
    return list(map(" ".join, zip(*(words[i:] for i in range(n)), strict=False)))


def _shingle_chunks(text: str, word_ngram: int = 3, char_ngram: int = 5) -> Iterator[list[str]]:
    """The shingles of a text, a piece at a time (repeats included: a minimum does not care), so a 50 MB record
    never becomes one list of millions of words."""
    if len(text) <= PIECE:  # one piece: its words at once (the cuts below only bound memory)
        words = _WORD.findall("".join(normalised_pieces(text)))
        if len(words) >= word_ngram:
            yield _ngrams(words, word_ngram)
            return
        if not words:
            return
    tail: list[str] = []  # the last n-1 words so far: the n-grams that cross a cut
    seen = 0
    buf = ""
    few: list[str] = []  # every word, while there are fewer than n (the character-gram case)

    def grams(part: str) -> list[str]:
        nonlocal tail, seen
        found = _WORD.findall(part)
        if seen < word_ngram:
            few.extend(found)
        seen += len(found)
        words = tail + found
        tail = words[-(word_ngram - 1):]
        return _ngrams(words, word_ngram)

    for part in normalised_pieces(text):
        buf += part
        cut = buf.rfind(" ")  # words end at a space; a blob without one waits for the rest of itself
        if cut > 0:
            if chunk := grams(buf[:cut]):
                yield chunk
            buf = buf[cut:]
    if chunk := grams(buf):
        yield chunk
    if seen >= word_ngram:
        return
    flat = " ".join(few)
    if len(flat) <= char_ngram:
        if flat:
            yield [flat]
        return
    for start in range(0, len(flat) - char_ngram + 1, PIECE):
        stop = min(start + PIECE, len(flat) - char_ngram + 1)
        yield [flat[i : i + char_ngram] for i in range(start, stop)]


def _mix64(z: np.ndarray, tmp: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, in place (`tmp` is scratch of z's shape): a bijective, well-mixing 64-bit hash
    (uint64 arithmetic wraps by design). In place, because fresh temporaries of megabytes cost page faults."""
    for shift, mult in ((30, 0xBF58476D1CE4E5B9), (27, 0x94D049BB133111EB)):
        np.right_shift(z, np.uint64(shift), out=tmp)
        z ^= tmp
        z *= np.uint64(mult)
    np.right_shift(z, np.uint64(31), out=tmp)
    z ^= tmp
    return z


@dataclass(frozen=True)
class MinHasher:
    """Deterministic MinHash signatures (same seed → same hash functions across processes and runs)."""

    num_perm: int = 64
    seed: int = 1

    def __post_init__(self):
        rng = np.random.default_rng(self.seed)
        object.__setattr__(self, "_seeds", rng.integers(0, np.iinfo(np.uint64).max, self.num_perm,
                                                        dtype=np.uint64, endpoint=True))
        object.__setattr__(self, "_buffers", np.empty((2, _CHUNK, self.num_perm), dtype=np.uint64))

    def signature(self, text: str) -> np.ndarray | None:
        """uint32[num_perm], or None for a text with no shingles (empty)."""
        return self.signatures([text])[0]

    def signatures(self, texts: list[str]) -> list[np.ndarray | None]:
        """`signature` of each text. The short texts of a batch share each numpy operation (per-record arrays of
        ~100 shingles spend more time in numpy's call overhead than in the hashing); a text of more than _CHUNK
        shingles is reduced alone, a chunk at a time, in memory bounded however long it is."""
        out: list[np.ndarray | None] = [None] * len(texts)
        group: list[tuple[int, np.ndarray]] = []
        rows = 0
        for i, text in enumerate(texts):
            if len(text) > PIECE:
                out[i] = self._reduce(_shingle_hashes(text))
                continue
            hv = list(_shingle_hashes(text))
            if not hv:
                continue
            hv = np.concatenate(hv) if len(hv) > 1 else hv[0]
            if len(hv) > _CHUNK:
                out[i] = self._reduce([hv])
                continue
            if rows + len(hv) > _CHUNK:
                self._reduce_group(group, out)
                group, rows = [], 0
            group.append((i, hv))
            rows += len(hv)
        if group:
            self._reduce_group(group, out)
        return out

    def _mixed(self, hv: np.ndarray) -> np.ndarray:
        """The seeded 64-bit mixer gives each of the num_perm hash functions an independent-looking order. Into
        two buffers kept for the hasher's life: fresh megabyte arrays cost more in page faults than the mixing."""
        z, tmp = self._buffers[0][: len(hv)], self._buffers[1][: len(hv)]
        np.bitwise_xor(hv[:, None], self._seeds[None, :], out=z)
        return _mix64(z, tmp)

    def _reduce(self, chunks: Iterator[np.ndarray] | list[np.ndarray]) -> np.ndarray | None:
        out = np.full(self.num_perm, np.iinfo(np.uint64).max, dtype=np.uint64)
        empty = True
        for hv in chunks:
            empty = False
            for i in range(0, len(hv), _CHUNK):  # memory stays at ~_CHUNK × num_perm × 8 bytes
                np.minimum(out, self._mixed(hv[i : i + _CHUNK]).min(axis=0), out=out)
        return None if empty else (out >> np.uint64(32)).astype(np.uint32)

    def _reduce_group(self, group: list[tuple[int, np.ndarray]], out: list) -> None:
        starts = np.cumsum([0] + [len(hv) for _, hv in group[:-1]])
        mins = np.minimum.reduceat(self._mixed(np.concatenate([hv for _, hv in group])), starts, axis=0)
        for (i, _), row in zip(group, (mins >> np.uint64(32)).astype(np.uint32), strict=True):
            out[i] = row


def _shingle_hashes(text: str) -> Iterator[np.ndarray]:
    """crc32 of each shingle (C speed, deterministic across processes, unlike hash()), a chunk at a time."""
    for grams in _shingle_chunks(text):
        yield np.fromiter(map(zlib.crc32, map(str.encode, grams)), dtype=np.uint64, count=len(grams))


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """MinHash estimate of the Jaccard similarity."""
    return float(np.count_nonzero(a == b)) / len(a)


@dataclass
class Pair:
    a: int
    b: int
    similarity: float


class NearDuplicateIndex:
    """Streaming LSH index: `add_many` returns, for each item in order, the earlier items it duplicates (exactly
    or nearly); `query_many` asks the same without adding.

    About 700 bytes a record (its signature, and 24 bytes for its exact key and for each band in `SortedRuns`),
    where dicts of lists took about 5 KB: the driver of a 1 GB scan held 15 GB. The answers are the dict index's:
    candidates in band order, each band's earlier records oldest first, each compared once."""

    _BLOCK = 1 << 16  # signatures per block: the store grows by blocks, never by copying what it holds

    def __init__(self, num_perm: int = 64, bands: int = 16, threshold: float = 0.8):
        if num_perm % bands:
            raise ValueError("num_perm must be a multiple of bands")
        self.num_perm, self.bands, self.rows, self.threshold = num_perm, bands, num_perm // bands, threshold
        self._exact = SortedRuns()  # exact key → the first item with it
        self._buckets = [SortedRuns() for _ in range(bands)]  # band key → positions of the signatures with it
        self._blocks: list[np.ndarray] = []
        self._ids = array("q")  # position → item

    def __len__(self) -> int:
        return len(self._ids)

    def query_many(self, keys: list[bytes], sigs: list[np.ndarray | None]) -> list[tuple[int | None, list[Pair]]]:
        """For each (exact key, signature): (id of an exact duplicate or None, near pairs at or above the
        threshold, with b = -1)."""
        return self._run([-1] * len(keys), keys, sigs, add=False)

    def add_many(self, items: list[int], keys: list[bytes], sigs: list[np.ndarray | None]
                 ) -> list[tuple[int | None, list[Pair]]]:
        return self._run(items, keys, sigs, add=True)

    def query(self, key: bytes, sig: np.ndarray | None) -> tuple[int | None, list[Pair]]:
        return self.query_many([key], [sig])[0]

    def add(self, item: int, key: bytes, sig: np.ndarray | None) -> tuple[int | None, list[Pair]]:
        return self.add_many([item], [key], [sig])[0]

    def _run(self, items: list[int], keys: list[bytes], sigs: list[np.ndarray | None], *, add: bool):
        with_sig = [i for i, sig in enumerate(sigs) if sig is not None]
        band_keys = self._band_keys([sigs[i] for i in with_sig])  # (records, bands, 2)
        earlier_exact = self._exact.find(keys128(b"".join(keys)))
        earlier = [bucket.find(band_keys[:, band]) for band, bucket in enumerate(self._buckets)]
        row_of = {i: row for row, i in enumerate(with_sig)}
        batch_exact: dict[bytes, int] = {}  # this batch's own entries, seen by its later items
        batch_buckets: list[dict[bytes, list[int]]] = [{} for _ in range(self.bands)]
        new_exact: list[int] = []  # batch positions of the items that hold their exact key first
        new_rows: list[int] = []  # rows of band_keys of the signatures appended, at positions new_pos
        new_pos: list[int] = []
        out = []
        for i, (item, key, sig) in enumerate(zip(items, keys, sigs, strict=True)):
            exact = earlier_exact[i][0] if i in earlier_exact else batch_exact.get(key)
            pairs: list[Pair] = []
            row = row_of.get(i)
            here = [band_keys[row, band].tobytes() for band in range(self.bands)] if sig is not None else []
            seen: set[int] = set()
            for band, band_key in enumerate(here):
                for pos in earlier[band].get(row, []) + batch_buckets[band].get(band_key, []):
                    if pos in seen:
                        continue
                    seen.add(pos)
                    sim = similarity(sig, self._sig(pos))
                    if sim >= self.threshold and self._ids[pos] != exact:
                        pairs.append(Pair(self._ids[pos], item, sim))
            if add and exact is None:
                batch_exact[key] = item
                new_exact.append(i)
                if sig is not None:
                    # Exact duplicates are not indexed twice: their twin already represents them.
                    pos = self._append(item, sig)
                    new_rows.append(row)
                    new_pos.append(pos)
                    for bucket, band_key in zip(batch_buckets, here, strict=True):
                        bucket.setdefault(band_key, []).append(pos)
            out.append((exact, pairs))
        if new_exact:
            self._exact.add(keys128(b"".join(keys[i] for i in new_exact)), [items[i] for i in new_exact])
        for band, bucket in enumerate(self._buckets):
            bucket.add(band_keys[new_rows, band], new_pos)
        return out

    def _band_keys(self, sigs: list[np.ndarray]) -> np.ndarray:
        """Each band's rows as a 128-bit key: the rows themselves when they fit (four 32-bit rows by default),
        else their blake2b-128."""
        if not sigs:
            return np.empty((0, self.bands, 2), dtype=np.uint64)
        bands = np.stack(sigs).astype(np.uint32).reshape(len(sigs), self.bands, self.rows)
        if self.rows <= 4:
            padded = np.zeros((len(sigs), self.bands, 4), dtype=np.uint32)
            padded[:, :, :self.rows] = bands
            return padded.view(np.uint64)
        return keys128(b"".join(hashlib.blake2b(b.tobytes(), digest_size=16).digest()
                                for b in bands.reshape(-1, self.rows))).reshape(len(sigs), self.bands, 2)

    def _append(self, item: int, sig: np.ndarray) -> int:
        pos = len(self._ids)
        if pos % self._BLOCK == 0:
            if self._blocks:  # full: read-only from now on (a checkpoint writes it once)
                self._blocks[-1].flags.writeable = False
            self._blocks.append(np.empty((self._BLOCK, self.num_perm), dtype=np.uint32))
        self._blocks[-1][pos % self._BLOCK] = sig
        self._ids.append(item)
        return pos

    def _sig(self, pos: int) -> np.ndarray:
        return self._blocks[pos // self._BLOCK][pos % self._BLOCK]


class _UnionFind:
    def __init__(self):
        self.parent: dict[int, int] = {}

    def find(self, x: int) -> int:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def groups(self) -> list[list[int]]:
        out: dict[int, list[int]] = {}
        for x in self.parent:
            out.setdefault(self.find(x), []).append(x)
        return [sorted(g) for g in out.values() if len(g) > 1]


@dataclass
class DuplicateResult:
    exact_duplicate_items: int = 0  # items that repeat an earlier item exactly (after normalisation)
    exact_groups: int = 0
    near_duplicate_items: int = 0  # items that are not exact repeats but near an earlier item
    near_duplicate_clusters: int = 0
    pairs: list[Pair] = field(default_factory=list)  # near pairs, capped
    exact_examples: list[list[int]] = field(default_factory=list)  # groups of ids, capped


class DuplicateFinder:
    """Feed items in order; `result()` summarises exact repeats and near-duplicate clusters."""

    def __init__(self, *, num_perm: int = 64, bands: int = 16, threshold: float = 0.8, max_examples: int = 20):
        self.index = NearDuplicateIndex(num_perm, bands, threshold)
        self.max_examples = max_examples
        self._exact = _UnionFind()
        self._near = _UnionFind()
        self._exact_items = 0
        self._near_items = 0
        self._pairs: list[Pair] = []

    def add(self, item: int, key: bytes, sig: np.ndarray | None) -> None:
        self.add_many([item], [key], [sig])

    def add_many(self, items: list[int], keys: list[bytes], sigs: list[np.ndarray | None]) -> None:
        for item, found in zip(items, self.index.add_many(items, keys, sigs), strict=True):
            self.note(item, *found)

    def note(self, item: int, exact: int | None, pairs: list[Pair]) -> None:
        """What the index found for `item` (the earlier item it repeats exactly, or the earlier items it is near),
        whichever index found it: this one, or the cluster's (`lsh_shuffle`)."""
        if exact is not None:
            self._exact_items += 1
            self._exact.union(exact, item)
            return
        if pairs:
            self._near_items += 1
            for p in pairs:
                self._near.union(p.a, p.b)
            best = max(pairs, key=lambda p: p.similarity)
            if len(self._pairs) < self.max_examples:
                self._pairs.append(best)

    def result(self) -> DuplicateResult:
        exact_groups = self._exact.groups()
        return DuplicateResult(
            exact_duplicate_items=self._exact_items,
            exact_groups=len(exact_groups),
            near_duplicate_items=self._near_items,
            near_duplicate_clusters=len(self._near.groups()),
            pairs=list(self._pairs),
            exact_examples=exact_groups[: self.max_examples],
        )


# ---------------------------------------------------------------------------------------------------------------
# Empty and garbled records
# ---------------------------------------------------------------------------------------------------------------

# Typical UTF-8 read as Latin-1/CP1252 sequences ("Ã©" for "é", "â€™" for "’").
_MOJIBAKE = re.compile(r"Ã[\x80-\xbf¡-ÿ]|â€|Â[\xa0-\xbf]")
_LETTER = re.compile(r"[^\W\d_]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_UNBROKEN = re.compile(r"\S{200}")  # as long as the longest whitespace-separated word reaching 200


def _count(pattern: re.Pattern, text: str) -> int:
    """Matches of a short pattern that never spans a space, a piece at a time (no list of 50 million letters);
    for a one-character pattern on a Latin-1 piece, by deleting the matching bytes (C speed, no match objects)."""
    n = 0
    table = _LATIN1_MATCHES.get(pattern)
    for _, piece in pieces(text):
        try:
            raw = piece.encode("latin-1") if table is not None else None
        except UnicodeEncodeError:
            raw = None
        n += len(pattern.findall(piece)) if raw is None else len(raw) - len(raw.translate(None, table))
    return n


# The Latin-1 characters each one-character pattern matches.
_LATIN1_MATCHES = {p: bytes(c for c in range(256) if p.match(chr(c))) for p in (_CONTROL, _LETTER)}


def garbled_reason(text: str) -> str | None:
    """Why a text looks garbled, or None. Thresholds are conservative: a flag is for a human to look at."""
    n = len(text)
    if n == 0 or not text.strip():
        return None  # empty is its own category
    if text.count("\ufffd") / n > 0.01 or text.count("\ufffd") >= 5:
        return "replacement_characters"  # bytes that were not valid in the source encoding
    if _count(_CONTROL, text) / n > 0.01:
        return "control_characters"
    if _count(_MOJIBAKE, text) >= 3:
        return "mojibake"
    if n >= 20:
        if _count(_LETTER, text) / n < 0.25:
            return "few_letters"  # markup, base64 blobs, tables of numbers
        if _UNBROKEN.search(text):
            return "unbroken_run"  # a 200-character 'word' is an encoded blob, not language
    return None


def quality_flag(texts: list[str]) -> str | None:
    """'empty' when a record carries no text at all; a garbled reason when its joined text looks garbled."""
    joined = "\n".join(texts)
    if not joined.strip():
        return "empty"
    return garbled_reason(joined)
