"""GDPR Art. 9 lexicon flags: each category, personal-cue scoring, per-record flags, documented lexicon file."""

from __future__ import annotations

import pytest

from ftaudit.data.spans import Finding
from ftaudit.data.special_categories import SCORE_PERSONAL, SCORE_TERM, detect_special, flags_by_record, load_lexicon

CASES = [
    ("HEALTH", "I was diagnosed with type 2 diabetes last year."),
    ("RELIGION", "She is a practising Muslim."),
    ("ETHNIC_ORIGIN", "He told me about his Roma family."),
    ("SEXUAL_ORIENTATION", "My brother is gay and married."),
    ("POLITICAL_OPINION", "I voted for the Green Party."),
    ("TRADE_UNION", "He is a member of the trade union at work."),
    ("BIOMETRIC", "My fingerprint unlocks the door."),
    ("GENETIC", "Her DNA test showed a BRCA1 variant."),
]


@pytest.mark.parametrize("category,text", CASES, ids=[c[0] for c in CASES])
def test_each_category_flags_with_personal_score(category, text):
    spans = [s for s in detect_special(text) if s.type == f"SPECIAL_CATEGORY_{category}"]
    assert spans and max(s.score for s in spans) == SCORE_PERSONAL


def test_topic_without_a_person_scores_low_and_plurals_match():
    spans = detect_special("Diabetes is a chronic condition; hospitals treat many diabetics.")
    assert spans and all(s.score == SCORE_TERM for s in spans)
    assert any(s.type == "SPECIAL_CATEGORY_HEALTH" for s in spans)


def test_word_boundaries_and_no_false_hits():
    assert detect_special("The aidsstation, the diabetesx and a plain sentence about weather.") == []


def test_flags_by_record_groups_categories():
    fs = [Finding(0, "text", 0, 3, "SPECIAL_CATEGORY_HEALTH", 0.7, "lexicon", "a"),
          Finding(0, "text", 5, 9, "SPECIAL_CATEGORY_RELIGION", 0.7, "lexicon", "a"),
          Finding(2, "text", 0, 3, "EMAIL_ADDRESS", 1.0, "pattern", "a")]
    assert flags_by_record(fs) == {("a", 0): {"HEALTH", "RELIGION"}}


def test_lexicon_covers_all_art9_categories_with_citations():
    lex = load_lexicon()
    assert set(lex.categories) == {"HEALTH", "RELIGION", "ETHNIC_ORIGIN", "SEXUAL_ORIENTATION", "POLITICAL_OPINION",
                                   "TRADE_UNION", "BIOMETRIC", "GENETIC"}
    assert all("Art. 9" in a for a in lex.articles.values())
