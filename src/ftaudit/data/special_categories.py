"""GDPR Art. 9(1) special categories: lexicon + context flags for human review, never a verdict.

The lexicon (`lexicons/special_categories.yaml`) documents how it was built and its limits. All terms of all
categories are compiled into one case-insensitive trie regex, so a text is scanned once whatever the lexicon size.
*Reading*: Art. 9 concerns data revealing the category *about a person*; a term near a personal cue ("my", "she
is", "diagnosed with") therefore scores higher than a term on its own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from ftaudit.data.spans import Span, lowered
from ftaudit.io import load_yaml

PREFIX = "SPECIAL_CATEGORY_"
SCORE_TERM = 0.35  # a term alone: maybe about the topic, not a person
SCORE_PERSONAL = 0.7  # a term with a personal cue nearby
CUE_BEFORE = 60
CUE_AFTER = 20


@dataclass(frozen=True)
class Lexicon:
    version: int
    categories: dict[str, tuple[str, ...]]  # category → terms
    articles: dict[str, str]  # category → the GDPR provision it implements
    term_categories: dict[str, tuple[str, ...]]  # lower-case term → its categories
    regex: re.Pattern
    cue_regex: re.Pattern


def _trie_pattern(words: Iterable[str]) -> str:
    """A regex alternation that shares prefixes (so matching cost does not grow with the word count)."""
    trie: dict = {}
    for word in words:
        node = trie
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}

    def build(node: dict) -> str:
        optional = "" in node
        alts = [re.escape(ch) + build(child) for ch, child in sorted(node.items()) if ch != ""]
        if not alts:
            return ""
        body = alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"
        return f"(?:{body})?" if optional else body

    return build(trie)


@lru_cache(maxsize=1)
def load_lexicon() -> Lexicon:
    raw = load_yaml(resources.files("ftaudit.data").joinpath("lexicons/special_categories.yaml").read_text(
        encoding="utf-8"))
    categories: dict[str, tuple[str, ...]] = {}
    term_categories: dict[str, list[str]] = {}
    for name, spec in raw["categories"].items():
        terms = tuple(dict.fromkeys(t.strip().lower() for t in spec["terms"] if t and t.strip()))
        categories[name] = terms
        for t in terms:
            term_categories.setdefault(t, [])
            if name not in term_categories[t]:
                term_categories[t].append(name)
    regex = re.compile(r"(?<!\w)" + _trie_pattern(sorted(term_categories, key=len, reverse=True)) + r"s?(?!\w)")
    cues = sorted({c.lower() for c in raw["personal_cues"]}, key=len, reverse=True)
    cue_regex = re.compile(r"(?<!\w)(?:" + "|".join(map(re.escape, cues)) + r")(?!\w)", re.IGNORECASE)
    return Lexicon(int(raw["version"]), categories, {k: v["article"] for k, v in raw["categories"].items()},
                   {k: tuple(v) for k, v in term_categories.items()}, regex, cue_regex)


def category_types() -> tuple[str, ...]:
    return tuple(PREFIX + c for c in load_lexicon().categories)


def detect_special(text: str, fold: bool | None = None) -> list[Span]:
    """One span per (term occurrence, category). Offsets only; the caller never needs the matched words.

    Matching the lower-cased text is about twice as fast as re.IGNORECASE; offsets stay exact unless lower-casing
    changes the length (only 'İ' does), where the text is matched case-sensitively (fold=False) as a fallback.
    A caller reading a long text in windows passes the whole text's `spans.folds(text)`."""
    lex = load_lexicon()
    spans: list[Span] = []
    for m in lex.regex.finditer(lowered(text, fold)):
        term = m.group(0).lower()
        cats = lex.term_categories.get(term) or lex.term_categories.get(term[:-1] if term.endswith("s") else term)
        if not cats:
            continue
        s, e = m.span()
        window = text[max(0, s - CUE_BEFORE):s] + " " + text[e:e + CUE_AFTER]
        score = SCORE_PERSONAL if lex.cue_regex.search(window) else SCORE_TERM
        for cat in cats:
            spans.append(Span(s, e, PREFIX + cat, score, "lexicon"))
    return spans


def flags_by_record(findings: Iterable) -> dict[tuple[str, int], set[str]]:
    """(source, record) → the special categories flagged in it, for the human-review list."""
    out: dict[tuple[str, int], set[str]] = {}
    for f in findings:
        if f.type.startswith(PREFIX):
            out.setdefault((getattr(f, "source", ""), f.record), set()).add(f.type[len(PREFIX):])
    return out
