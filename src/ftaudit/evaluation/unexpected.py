"""Unexpected outputs: toxic or harmful completions, refusal on harmful requests, personal data in generations.

The shipped classifier is a documented lexicon plus phrase rules (offline, transparent, crude: it misses
implicit toxicity and flags quoted words). Users with a safety model plug it in through `SafetyClassifier`.
*Reading*: Art. 9(2) and Art. 15 ask for known and foreseeable risks and robustness to be tested; for a GPAI
model with systemic risk Art. 55(1)(a) asks for adversarial testing. This suite is a small first screen, not
red-teaming.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


@dataclass
class SafetyVerdict:
    harmful: bool
    categories: list[str] = field(default_factory=list)
    score: float | None = None  # a model's probability, when the classifier has one


@runtime_checkable
class SafetyClassifier(Protocol):
    """Plug-in point for a user's safety model: `classify` gets generated texts, returns one verdict each."""

    name: str

    def classify(self, texts: Sequence[str]) -> list[SafetyVerdict]: ...


def _squash(text: str) -> str:
    return " ".join(text.lower().replace("\u2019", "'").split())


class LexiconClassifier:
    """Flags a text when it contains a listed word (word boundaries) or phrase (whitespace-normalised)."""

    def __init__(self, lexicon: dict):
        self.name = f"ftaudit-lexicon-v{lexicon.get('version', '?')}"
        self.rules: list[tuple[str, re.Pattern]] = []
        for category, spec in lexicon["categories"].items():
            words = spec.get("words", [])
            phrases = spec.get("phrases", [])
            if words:
                self.rules.append(
                    (category, re.compile(r"(?<![a-z])(?:" + "|".join(map(re.escape, words)) + r")(?![a-z])"))
                )
            if phrases:
                self.rules.append(
                    (category, re.compile(r"(?<![a-z])(?:" + "|".join(map(re.escape, phrases)) + r")(?![a-z])"))
                )
        markers = lexicon.get("harmful_instructions", {}).get("markers", [])
        self.instruction_markers = [m.lower() for m in markers]

    def classify(self, texts: Sequence[str]) -> list[SafetyVerdict]:
        out = []
        for t in texts:
            s = _squash(t)
            cats = sorted({c for c, rx in self.rules if rx.search(s)})
            out.append(SafetyVerdict(harmful=bool(cats), categories=cats))
        return out

    def gives_instructions(self, text: str) -> bool:
        s = _squash(text)
        return any(m in s for m in self.instruction_markers)


# -- personal data in generations --------------------------------------------------------------------------------


@dataclass
class PersonalDataFinding:
    """Counts only: the values found are never kept."""

    texts: int = 0
    texts_with_new_personal_data: int = 0
    entities_new: Counter = field(default_factory=Counter)  # by type: not present in the prompt
    entities_copied: Counter = field(default_factory=Counter)  # by type: copied from the prompt (e.g. the task)


# *Reading*: a place name, a nationality/religious/political group term or a URL alone does not identify a
# person (GDPR Art. 4(1)); counting them would flag every generation that mentions Paris or a religion.
NOT_COUNTED_AS_PERSONAL = frozenset({"LOCATION", "NRP", "URL"})


def personal_data_detector(ner: bool | None = None):
    """A batch detector `texts -> [[(type, start, end), ...], ...]` over the data module's personal-data types
    (`ftaudit.data.pii`). ner=None: use NER when it is installed."""
    from ftaudit.data.pii import PII_TYPES, detect_many

    types = [t for t in PII_TYPES if t not in NOT_COUNTED_AS_PERSONAL]

    def detect(texts: Sequence[str]) -> list[list[tuple[str, int, int]]]:
        found = detect_many(list(texts), ner=ner, types=types, special=False) if texts else []
        return [[(sp.type, sp.start, sp.end) for sp in spans] for spans in found]

    return detect


def scan_generations(prompts: Sequence[str], generations: Sequence[str], detect) -> PersonalDataFinding:
    """`detect` is a batch detector as returned by `personal_data_detector`."""
    finding = PersonalDataFinding()
    for prompt, text, spans in zip(prompts, generations, detect(list(generations)), strict=True):
        finding.texts += 1
        new_here = False
        norm_prompt = _squash(prompt)
        for kind, start, end in spans:
            value = _squash(text[start:end])
            if value and value in norm_prompt:
                finding.entities_copied[kind] += 1
            else:
                finding.entities_new[kind] += 1
                new_here = True
        finding.texts_with_new_personal_data += new_here
    return finding
