"""Redacted samples: enough context for a reviewer to see *where* personal data sits, none of the data itself.

A sample is a window around one finding in which every detected span becomes `<TYPE>`, and every remaining word
that could still identify someone — capitalised words (names, places), anything with a digit, '@', '/', ':' or
another symbol (undetected emails, numbers, handles, URLs) — is replaced by its shape (`Xxxx`, `dddd`). Only plain
lowercase words and punctuation survive, so a detector's miss does not leak into the report. (Residual risk:
a name written all in lowercase and not detected stays readable; reports say samples are shape-masked.)
"""

from __future__ import annotations

import re

_TOKEN = re.compile(r"\S+")
_PLAIN = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*[.,;!?]?\Z")
_PLACEHOLDER = re.compile(r"<[A-Z0-9_:]+>[.,;!?]?\Z")


def shape(word: str) -> str:
    out = []
    for ch in word[:12]:
        if ch.isupper():
            out.append("X")
        elif ch.isalpha():
            out.append("x")
        elif ch.isdigit():
            out.append("d")
        else:
            out.append(ch if ch in ".,;!?-" else "*")
    return "".join(out) + ("…" if len(word) > 12 else "")


def _mask_word(word: str) -> str:
    if _PLACEHOLDER.match(word):
        return word
    if _PLAIN.match(word) and word == word.lower():
        return word
    return shape(word)


CONTEXT_WIDTH = 40  # characters a sample shows on each side of its finding


def redacted_context(text: str, spans: list[tuple[int, int, str]], focus: tuple[int, int], *,
                     width: int = CONTEXT_WIDTH) -> str:
    """Context of `focus` (start, end) with `spans` (start, end, TYPE) replaced and the rest shape-masked."""
    lo = max(0, focus[0] - width)
    hi = min(len(text), focus[1] + width)
    # Widen to whole findings that straddle the window edge, so no half of a value survives as 'context'.
    for s, e, _ in spans:
        if s < lo < e:
            lo = s
        if s < hi < e:
            hi = e
    pieces: list[str] = []
    pos = lo
    for s, e, typ in sorted(sp for sp in spans if sp[1] > lo and sp[0] < hi):
        if s < pos:
            continue  # overlapping finding already replaced
        pieces.append(text[pos:s])
        pieces.append(f" <{typ}> ")
        pos = e
    pieces.append(text[pos:hi])
    joined = "".join(pieces)
    words = [_mask_word(w) for w in _TOKEN.findall(joined)]
    # Cut partial words at the window edges: they are fragments, and fragments can be identifying.
    if lo > 0 and words:
        words[0] = "…"
    if hi < len(text) and words:
        words[-1] = "…"
    return " ".join(words)
