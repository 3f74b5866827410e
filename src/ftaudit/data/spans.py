"""The shapes detectors return: offsets and a type, never the matched text (it may be personal data)."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True, slots=True)
class Span:
    """A detection inside one string: [start, end) character offsets."""

    start: int
    end: int
    type: str
    score: float
    detector: str


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


def resolve_overlaps(spans: list[Span]) -> list[Span]:
    """Keeps the best of overlapping spans: higher score, then longer; returned in text order."""
    kept: list[Span] = []
    for sp in sorted(spans, key=lambda s: (-s.score, s.start - s.end, s.start)):
        if all(sp.end <= k.start or sp.start >= k.end for k in kept):
            kept.append(sp)
    kept.sort(key=lambda s: (s.start, s.end))
    return kept
