"""The shapes detectors return: offsets and a type, never the matched text (it may be personal data)."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import asdict, dataclass


@dataclass(frozen=True, slots=True)
class Span:
    """A detection inside one string: [start, end) character offsets."""

    start: int
    end: int
    type: str
    score: float
    detector: str


def folds(text: str) -> bool:
    """Whether text.lower() keeps every offset: U+0130 ('İ') is the one character whose lower case is two."""
    return "\u0130" not in text


def lowered(text: str, fold: bool | None = None) -> str:
    """text.lower() where that keeps every offset, else text itself (matched case-sensitively). `fold`: the whole
    text's `folds`, from a caller that reads it in windows."""
    return text.lower() if (folds(text) if fold is None else fold) else text


@dataclass(frozen=True, slots=True)
class Finding:
    """A detection addressed in a dataset: record index (0-based line/row in its file), field path, offsets into
    that field's string. `source` is the file it came from."""

    record: int
    field: str
    start: int
    end: int
    type: str
    score: float
    detector: str
    source: str = ""

    def as_dict(self, *, extra: bool = False) -> dict:
        """The findings-file contract: record, field, start, end, type, score (+ detector, source if extra)."""
        d = asdict(self)
        if not extra:
            d.pop("detector")
            d.pop("source")
        d["score"] = round(self.score, 3)
        return d


class Intervals:
    """A set of [start, end) ranges that answers "does [s, e) overlap any of them?" in O(log n), so that checking
    every detection of a long record against every other stays linear in the record's length. Overlapping ranges
    are merged (ranges that only touch are not: [0, 5) and [5, 8) overlap nothing at 5)."""

    def __init__(self, ranges=()):
        self.starts: list[int] = []
        self.ends: list[int] = []
        for s, e in ranges:
            self.add(s, e)

    def overlaps(self, s: int, e: int) -> bool:
        i = bisect_left(self.starts, e)  # ranges [0, i) start before e; the last of them ends last
        return i > 0 and self.ends[i - 1] > s

    def add(self, s: int, e: int) -> None:
        lo, hi = bisect_right(self.ends, s), bisect_left(self.starts, e)
        if lo < hi:
            s, e = min(s, self.starts[lo]), max(e, self.ends[hi - 1])
        self.starts[lo:hi], self.ends[lo:hi] = [s], [e]


def resolve_overlaps(spans: list[Span]) -> list[Span]:
    """Keeps the best of overlapping spans: higher score, then longer; returned in text order."""
    kept: list[Span] = []
    taken = Intervals()
    for sp in sorted(spans, key=lambda s: (-s.score, s.start - s.end, s.start)):
        if not taken.overlaps(sp.start, sp.end):
            kept.append(sp)
            taken.add(sp.start, sp.end)
    kept.sort(key=lambda s: (s.start, s.end))
    return kept
