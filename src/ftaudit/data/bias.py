"""Bias examination support (Art. 10(2)(f) AI Act): group representation and sentence co-occurrence.

Counts, per group of the shipped lexicon (`lexicons/bias_lexicon.yaml`, documented there with its limitations):
how many records and sentences mention the group, its share of its dimension's mentions, and how often a sentence
that mentions it also holds positive or negative sentiment words or occupation words — next to the same rates over
all sentences, so a reader can see a difference. This is evidence for the human examination the Article asks for,
not a verdict on the data: the report says so.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

from ftaudit.data.pieces import pieces
from ftaudit.io import load_yaml

LEXICON_FILE = "lexicons/bias_lexicon.yaml"
DISCLAIMER = (
    "Evidence for a human bias examination (Art. 10(2)(f) AI Act), not a verdict: counts of lexicon terms and "
    "their co-occurrence in the same sentence. English lexicon only; see the lexicon file for its limitations."
)
_WORD = re.compile(r"\w+(?:[-']\w+)*", re.UNICODE)
_WORDCHAR = re.compile(r"\w")
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")


# A reading: a "sentence" of more than MAX_SENTENCE characters (a text with no full stops, a log dump) is read as
# consecutive pieces of that size, so co-occurrence stays local and a 50 MB record needs no 50 MB word list.
MAX_SENTENCE = 10_000


def _sentences(text: str) -> Iterator[str]:
    if len(text) <= MAX_SENTENCE:  # a list of a short text's sentences at once; a long one's one at a time
        yield from _SENTENCE.split(text)
        return
    start = 0
    for m in _SENTENCE.finditer(text):
        yield from _bounded(text[start:m.start()])
        start = m.end()
    yield from _bounded(text[start:])


def _bounded(sentence: str) -> Iterator[str]:
    if len(sentence) <= MAX_SENTENCE:
        yield sentence
    else:
        yield from (piece for _, piece in pieces(sentence, MAX_SENTENCE))


@dataclass(frozen=True)
class Lexicon:
    version: str
    # first word → [(phrase as tuple of words, dimension, group)], longest phrase first
    groups: dict[str, list[tuple[tuple[str, ...], str, str]]]
    dimensions: dict[str, list[str]]  # dimension → group names in lexicon order
    positive: frozenset[str]
    negative: frozenset[str]
    occupations: dict[str, list[tuple[str, ...]]]  # first word → phrases
    first_words: frozenset[str]  # every phrase's first word: a sentence with none needs no matching


def _phrases(terms: list[str]) -> list[tuple[str, ...]]:
    return [tuple(_WORD.findall(str(t).casefold())) for t in terms]


def build_lexicon(doc: dict[str, Any]) -> Lexicon:
    groups: dict[str, list] = {}
    dims: dict[str, list[str]] = {}
    for dim, members in doc["dimensions"].items():
        dims[dim] = list(members)
        for group, terms in members.items():
            for phrase in _phrases(terms):
                groups.setdefault(phrase[0], []).append((phrase, dim, group))
    for entries in groups.values():
        entries.sort(key=lambda e: -len(e[0]))
    occ: dict[str, list] = {}
    for phrase in _phrases(doc["occupations"]):
        occ.setdefault(phrase[0], []).append(phrase)
    for entries in occ.values():
        entries.sort(key=len, reverse=True)
    return Lexicon(
        version=str(doc["version"]), groups=groups, dimensions=dims,
        positive=frozenset(w.casefold() for w in doc["sentiment"]["positive"]),
        negative=frozenset(w.casefold() for w in doc["sentiment"]["negative"]),
        occupations=occ, first_words=frozenset(groups) | frozenset(occ),
    )


@lru_cache(maxsize=1)
def default_lexicon() -> Lexicon:
    text = resources.files("ftaudit.data").joinpath(LEXICON_FILE).read_text(encoding="utf-8")
    return build_lexicon(load_yaml(text))


@dataclass
class GroupTally:
    records: int = 0
    mentions: int = 0
    sentences: int = 0
    positive_sentences: int = 0
    negative_sentences: int = 0
    occupations: Counter = field(default_factory=Counter)

    def merge(self, other: "GroupTally") -> None:
        self.records += other.records
        self.mentions += other.mentions
        self.sentences += other.sentences
        self.positive_sentences += other.positive_sentences
        self.negative_sentences += other.negative_sentences
        self.occupations.update(other.occupations)


@dataclass
class BiasTally:
    """Mergeable counts: workers fill one per batch, the scan merges them."""

    groups: dict[tuple[str, str], GroupTally] = field(default_factory=dict)
    sentences: int = 0
    positive_sentences: int = 0
    negative_sentences: int = 0
    records: int = 0

    def merge(self, other: "BiasTally") -> None:
        self.sentences += other.sentences
        self.positive_sentences += other.positive_sentences
        self.negative_sentences += other.negative_sentences
        self.records += other.records
        for key, tally in other.groups.items():
            self.groups.setdefault(key, GroupTally()).merge(tally)


def _match(words: list[str], i: int, candidates) -> tuple[int, Any] | None:
    for entry in candidates:
        phrase = entry[0] if isinstance(entry[0], tuple) else entry
        n = len(phrase)
        if tuple(words[i : i + n]) == phrase:
            return n, entry
    return None


def _words(sentence: str) -> list[str]:
    """The sentence's words, case-folded: one casefold of the sentence, unless it holds one of the few characters
    whose folding changes what a word is (İ becomes i + a combining dot, which is no word character)."""
    if _boundary_changing().search(sentence):
        return [w.casefold() for w in _WORD.findall(sentence)]
    return _WORD.findall(sentence.casefold())


_CASED_LIMIT = 0x20000  # every character whose casefold() differs lies below (the last cased script is Adlam)


@lru_cache(maxsize=1)
def _boundary_changing() -> re.Pattern:
    """Characters that fold to characters of another kind for _WORD (word, connector, other)."""
    def kind(c: str) -> int:
        return 0 if _WORDCHAR.match(c) else 1 if c in "-'" else 2

    found = [c for c in map(chr, range(_CASED_LIMIT)) if c.casefold() != c
             and any(kind(x) != kind(c) for x in c.casefold())]
    return re.compile("[" + "".join(map(re.escape, found)) + "]")


def tally_record(texts: list[str], lexicon: Lexicon | None = None, tally: BiasTally | None = None) -> BiasTally:
    lex = lexicon or default_lexicon()
    tally = tally if tally is not None else BiasTally()
    tally.records += 1
    record_groups: set[tuple[str, str]] = set()
    for text in texts:
        for sentence in _sentences(text):
            words = _words(sentence)
            if not words:
                continue
            pos = not lex.positive.isdisjoint(words)
            neg = not lex.negative.isdisjoint(words)
            tally.sentences += 1
            tally.positive_sentences += pos
            tally.negative_sentences += neg
            if lex.first_words.isdisjoint(words):
                continue  # no group or occupation phrase can start here
            mentions: Counter = Counter()
            occupations: set[str] = set()
            i = 0
            while i < len(words):
                w = words[i]
                hit = _match(words, i, lex.groups.get(w, ()))
                if hit:
                    n, (_, dim, group) = hit
                    mentions[(dim, group)] += 1
                    i += n
                    continue
                occ = _match(words, i, lex.occupations.get(w, ()))
                if occ:
                    occupations.add(" ".join(occ[1]))
                    i += occ[0]
                    continue
                i += 1
            for key, n in mentions.items():
                g = tally.groups.setdefault(key, GroupTally())
                g.mentions += n
                g.sentences += 1
                g.positive_sentences += pos
                g.negative_sentences += neg
                g.occupations.update(occupations)
                record_groups.add(key)
    for key in record_groups:
        tally.groups[key].records += 1
    return tally


def summarise(tally: BiasTally, lexicon: Lexicon | None = None, *, top_occupations: int = 5) -> dict[str, Any]:
    """Plain dict shaped like evidence.BiasEvidence (kept free of pydantic so workers stay light)."""
    lex = lexicon or default_lexicon()
    base_pos = tally.positive_sentences / tally.sentences if tally.sentences else 0.0
    base_neg = tally.negative_sentences / tally.sentences if tally.sentences else 0.0
    dims = []
    for dim, group_names in lex.dimensions.items():
        total = sum(tally.groups.get((dim, g), GroupTally()).mentions for g in group_names)
        rows = []
        for g in group_names:
            t = tally.groups.get((dim, g), GroupTally())
            rows.append({
                "group": g,
                "records": t.records,
                "mentions": t.mentions,
                "share_of_dimension": round(t.mentions / total, 4) if total else 0.0,
                "sentences": t.sentences,
                "positive_rate": round(t.positive_sentences / t.sentences, 4) if t.sentences else None,
                "negative_rate": round(t.negative_sentences / t.sentences, 4) if t.sentences else None,
                "top_occupations": [{"occupation": o, "sentences": n}
                                    for o, n in sorted(t.occupations.items(), key=lambda kv: (-kv[1], kv[0]))
                                    [:top_occupations]],
            })
        dims.append({"dimension": dim, "mentions": total, "groups": rows})
    return {
        "lexicon_version": lex.version,
        "method": "whole-word lexicon matching; co-occurrence within one sentence",
        "disclaimer": DISCLAIMER,
        "records": tally.records,
        "sentences": tally.sentences,
        "baseline_positive_rate": round(base_pos, 4),
        "baseline_negative_rate": round(base_neg, 4),
        "dimensions": dims,
    }
