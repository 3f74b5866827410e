"""A multimap from 128-bit keys to integers in a few numpy arrays, for indexes that hold a value per record.

A dict of lists costs about 180 bytes an entry in Python objects; here an entry is 24 bytes (two uint64 halves of
the key and an int64 value). Entries arrive a batch at a time as a sorted run; runs are merged like a binary
counter (a run is merged into the one before it while it is at least as long), so there are at most log2(batches)
runs and each entry is re-sorted O(log n) times. A key's values come back in the order they were added.
"""

from __future__ import annotations

import numpy as np


def keys128(raw: bytes) -> np.ndarray:
    """16-byte keys, concatenated, as an (n, 2) uint64 array."""
    return np.frombuffer(raw, dtype=np.uint64).reshape(-1, 2)


class SortedRuns:
    def __init__(self):
        self._runs: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (hi, lo, value), sorted by all three

    def find(self, keys: np.ndarray) -> dict[int, list[int]]:
        """{row of `keys`: the values stored under that key, oldest first} for the rows that have any."""
        found: dict[int, list[int]] = {}
        if not len(keys):
            return found
        qhi, qlo = keys[:, 0], keys[:, 1]
        for hi, lo, values in self._runs:  # oldest run first
            first = np.searchsorted(hi, qhi, side="left")
            last = np.searchsorted(hi, qhi, side="right")
            for row in np.nonzero(last > first)[0].tolist():
                a, b = int(first[row]), int(last[row])
                same = values[a:b][lo[a:b] == qlo[row]]
                if len(same):
                    found.setdefault(row, []).extend(same.tolist())
        return found

    def add(self, keys: np.ndarray, values: list[int]) -> None:
        """Store values[i] under keys[i]; every value must be greater than every value stored before."""
        if not len(values):
            return
        self._runs.append(_sorted(keys[:, 0], keys[:, 1], np.asarray(values, dtype=np.int64)))
        while len(self._runs) > 1 and len(self._runs[-1][2]) >= len(self._runs[-2][2]):
            newer, older = self._runs.pop(), self._runs.pop()
            self._runs.append(_sorted(*(np.concatenate(pair) for pair in zip(older, newer, strict=True))))


def _sorted(hi: np.ndarray, lo: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The run, read-only: a run never changes once made (a checkpoint writes each one once)."""
    order = np.lexsort((values, lo, hi))
    run = hi[order], lo[order], values[order]
    for column in run:
        column.flags.writeable = False
    return run
