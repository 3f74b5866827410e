"""Long texts in bounded memory: cut at whitespace into pieces of at most `size` characters.

A 50 MB single-line record is one Python string; every list built over all of it at once (its words, its letters,
its shingles) costs gigabytes. Each per-record statistic walks these pieces instead, so the memory a record needs
is its own size plus one piece, however long it is.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator

PIECE = 1 << 18  # characters per piece for the statistics; NER uses its own, smaller windows


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


def utf8_length(text: str) -> int:
    """len(text.encode()), without a copy of the text (ASCII is one byte a character; else a piece at a time)."""
    if text.isascii():
        return len(text)
    return sum(len(piece.encode("utf-8")) for _, piece in pieces(text))
