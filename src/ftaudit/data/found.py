"""A record's findings as the scan carries them from a worker to the report: columns of 20 bytes a finding
instead of a tuple of about 200, so that one record holding millions of findings (a 200 MB line of contact
details) stays small in the worker, in the pickle that carries it and in the main process."""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass
class FoundColumns:
    kinds: list[tuple[str, str, float]] = field(default_factory=list)  # (field path, type, score), each once
    kind: array = field(default_factory=lambda: array("I"))  # a finding's row in kinds
    start: array = field(default_factory=lambda: array("q"))
    length: array = field(default_factory=lambda: array("Q"))
    _ids: dict[tuple[str, str, float], int] = field(default_factory=dict, repr=False)

    def add(self, path: str, start: int, end: int, type: str, score: float) -> None:
        key = (path, type, score)
        k = self._ids.get(key)
        if k is None:
            k = self._ids[key] = len(self.kinds)
            self.kinds.append(key)
        self.kind.append(k)
        self.start.append(start)
        self.length.append(end - start)

    def __len__(self) -> int:
        return len(self.start)

    def __iter__(self) -> Iterator[tuple[str, int, int, str, float]]:
        """(field path, start, end, type, score) in the order added."""
        kinds = self.kinds
        for k, s, n in zip(self.kind, self.start, self.length, strict=True):
            path, typ, score = kinds[k]
            yield path, s, s + n, typ, score

    def near(self, rows: tuple[int, int], lo: int, hi: int) -> list[tuple[int, int, str]]:
        """(start, end, type) of the findings among `rows` (a field's, added in order of start) that start
        within [lo, hi], in that order."""
        first, last = bisect_left(self.start, lo, *rows), bisect_right(self.start, hi, *rows)
        return [(self.start[i], self.start[i] + self.length[i], self.kinds[self.kind[i]][1])
                for i in range(first, last)]
