"""NER precision rules: identifiers, greetings and product words are not names; real names are still found."""

from __future__ import annotations

import pytest

from ftaudit.data.ner_filter import NER_BARE_SCORE, name_shape, refine_entities
from ftaudit.data.pii import detect_many, ner_available

LABELS = {"PERSON": "PERSON", "GPE": "LOCATION", "NORP": "NRP"}


def _persons(text: str, spans) -> list[str]:
    return [text[s.start:s.end] for s in spans if s.type == "PERSON"]


# ---- rules alone (no model needed): fed entities a small model really produced

def test_identifiers_and_greetings_are_not_names():
    text = "Extract the intent, order_id, product. Hi, Order C-66221 arrived broken. Thanks ASAP"
    ents = [(text.index("order_id"), text.index("order_id") + 8, "PERSON"),
            (text.index("Order"), text.index("C-66221") + 7, "PERSON"),
            (text.index("Hi"), text.index("Hi") + 2, "PERSON"),
            (text.index("ASAP"), text.index("ASAP") + 4, "PERSON")]
    assert refine_entities(text, ents, [], LABELS) == []


def test_name_shape_trims_edges_and_keeps_particles_and_titles():
    text = "Hi Nadine Beernink-de Koning, Miss Tracy Davis"
    assert text[slice(*name_shape(text, 0, 28))] == "Nadine Beernink-de Koning"
    s = text.index("Miss")
    assert text[slice(*name_shape(text, s, len(text)))] == "Miss Tracy Davis"
    assert name_shape(text, 0, 2) is None  # "Hi"


def test_email_overlap_and_cues():
    text = "Kind regards. Hanna Verhoeven-Lensen, rbailly@example.org"
    at = text.index("rbailly")
    # the model called the name ORG and part of the address PERSON
    ents = [(text.index("Hanna"), text.index(","), "ORG"), (at, at + 7, "PERSON")]
    found = refine_entities(text, ents, [(at, len(text))], LABELS)
    assert _persons(text, found) == ["Hanna Verhoeven-Lensen"]


def test_bare_single_token_scores_lower_than_cued():
    text = "The Lumina arrived. My name is Sophie."
    ents = [(4, 10, "PERSON"), (text.index("Sophie"), text.index("Sophie") + 6, "PERSON")]
    by_text = {text[s.start:s.end]: s.score for s in refine_entities(text, ents, [], LABELS)}
    assert by_text["Lumina"] == NER_BARE_SCORE < by_text["Sophie"]


def test_cue_recovers_untagged_signature():
    text = "You can call me on +33 3 80 97 03 76. Bertrand"
    assert _persons(text, refine_entities(text, [], [], LABELS)) == ["Bertrand"]
    assert _persons("Please cancel order K-12345. Thanks.", refine_entities("Please cancel order K-12345. Thanks.",
                                                                           [], [], LABELS)) == []


# ---- end to end with the installed spaCy model

needs_model = pytest.mark.skipif(not ner_available()[0], reason="no spaCy English pipeline installed")

WITH_NAMES = [
    ("Hello, my order A-61744 never came. My name is Gregory Preston and my email is ava@example.com.",
     "Gregory Preston"),
    ("Please refund order K-10515 to my account, account holder Christophe Joly.", "Christophe Joly"),
    ("The kettle arrived broken. Kind regards, Margaret Thompson", "Margaret Thompson"),
    ("Dear support, where is my parcel? You can call me on 020 7946 0958. Harriet", "Harriet"),
]
WITHOUT_NAMES = [
    "Extract the intent, order_id, product and urgency from this message. Hi, where is Order C-66221?",
    "Good morning, the Bluetooth speaker from order X-57822 is scratched. Thanks.",
    "Hi there, my AirPods case and the Kindle charger are missing. Please respond ASAP. Kind regards.",
    '{"intent": "order_status", "order_id": "R-79442", "product": "office chair", "urgency": "high"}',
]


@needs_model
def test_names_found_and_support_text_not_flagged():
    texts = [t for t, _ in WITH_NAMES] + WITHOUT_NAMES
    found = detect_many(texts, ner=True, types=["PERSON"])
    for (text, name), spans in zip(WITH_NAMES, found[:len(WITH_NAMES)], strict=True):
        assert any(name in p or p in name for p in _persons(text, spans)), (name, _persons(text, spans))
    for text, spans in zip(WITHOUT_NAMES, found[len(WITH_NAMES):], strict=True):
        assert _persons(text, spans) == [], _persons(text, spans)
