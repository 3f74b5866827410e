"""Long texts in bounded memory: cut at whitespace into pieces of at most `size` characters.

A 50 MB single-line record is one Python string; every list built over all of it at once (its words, its letters,
its shingles) costs gigabytes. Each per-record statistic walks these pieces instead, so the memory a record needs
is its own size plus one piece, however long it is.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import replace
from itertools import chain, pairwise

from ftaudit.data.spans import Span

PIECE = 1 << 18  # characters per piece for the statistics; NER uses its own, smaller windows
# Pattern, secret and lexicon detectors on texts longer than WINDOW: windows overlapping by OVERLAP, so that any
# match and the context it reads up to OVERLAP / 2 characters on each side are seen whole by one window.
WINDOW = 1 << 20
OVERLAP = 1 << 16


def pieces(text: str, size: int | None = None, overlap: int = 0) -> Iterator[tuple[int, str]]:
    """(offset, piece) over `text`; a cut falls on the last space or newline of a piece's second half when there
    is one, so no word is split (a blob with no whitespace is cut at `size`, before any combining accent).
    Neighbours share `overlap` characters, for detectors that must see whatever crosses a cut whole."""
    size = size or PIECE
    if len(text) <= size:
        yield 0, text
        return
    pos = 0
    while True:
        end = min(len(text), pos + size)
        if end < len(text):
            cut = max(text.rfind(" ", pos + size // 2, end), text.rfind("\n", pos + size // 2, end))
            if cut > pos:
                end = cut
            else:  # a blob: do not part a letter from its combining accents
                while end > pos + 1 and unicodedata.combining(text[end]):
                    end -= 1
        yield pos, text[pos:end]
        if end >= len(text):
            return
        pos = max(end - overlap, pos + 1)


def one_window(text: str) -> bool:
    return len(text) <= WINDOW


def windows(detect: Callable[[str], list[Span]], text: str) -> Iterator[tuple[int, list[Span]]]:
    """(hi, spans) for each window in text order: every span a window keeps starts before `hi`, and every span a
    later window keeps starts at or after it. Each window keeps the spans that start in its own part, from the
    middle of its overlap with the previous window to the middle of its overlap with the next: every span is
    found once, by the window where it and its context lie furthest from a cut."""
    if one_window(text):
        yield len(text), detect(text)
        return
    lo = 0
    for (pos, window), (next_pos, _) in pairwise(chain(pieces(text, WINDOW, OVERLAP), [(len(text), "")])):
        hi = (next_pos + pos + len(window)) // 2 if next_pos < len(text) else len(text)
        yield hi, [replace(sp, start=sp.start + pos, end=sp.end + pos) for sp in detect(window)
                   if lo <= sp.start + pos < hi]
        lo = hi


def utf8_length(text: str) -> int:
    """len(text.encode()), without a copy of the text (ASCII is one byte a character; else a piece at a time)."""
    if text.isascii():
        return len(text)
    return sum(len(piece.encode("utf-8")) for _, piece in pieces(text))
