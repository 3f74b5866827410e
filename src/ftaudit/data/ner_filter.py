"""Precision rules for NER names and places, and context cues that recover names a small NER model mislabels.

A small spaCy pipeline tags identifiers ("order_id", "K-60339", "Order C-66221") as PERSON and tags real names in
a signature or after "my name is" as ORG/GPE or nothing. On the demo support set that made every record "hold
personal data" (precision 0.09) while a quarter of the planted names were missed. The rules here are general
shape and context rules, not lists of the demo's strings:

- a PERSON/LOCATION span must look like a name: edge tokens that carry digits, '_', '@', '/', that overlap a
  pattern finding (e-mail, URL, phone...), or that are common capitalised non-name words (greetings, closings,
  support vocabulary, titles alone) are trimmed; what remains must be capitalised letter tokens (name particles
  such as "de", "van" allowed inside), else the span is dropped;
- a bare single-token PERSON with no cue scores lower (NER_BARE_SCORE): a lone capitalised word is weak evidence;
- a name-shaped span tagged ORG/GPE/LOC/FAC/PRODUCT, or untagged, becomes PERSON when a person cue introduces it
  ("my name is", "account holder", "Mr", "Dear", "regards,") or when it stands alone as a signature: the last
  words of the text after a sentence end, or directly followed by an e-mail address.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ftaudit.data.spans import Intervals, Span

# NER label → Presidio entity (presidio_analyzer/conf/default.yaml): spaCy's OntoNotes labels and CoNLL's PER/LOC;
# ORG is ignored there as too noisy.
NER_LABELS = {"PERSON": "PERSON", "PER": "PERSON", "NORP": "NRP", "GPE": "LOCATION", "LOC": "LOCATION",
              "FAC": "LOCATION"}
NER_SCORE = 0.85  # Presidio's SpacyRecognizer score
NER_BARE_SCORE = 0.6  # one capitalised token, no cue: still above common review thresholds, ranked below
CUE_SCORE = 0.75  # a name-shaped phrase recovered from a cue alone (NER did not call it a person)

# Common capitalised words that are not names: greetings/closings, support and shop vocabulary, weekdays.
# Months are left out on purpose (April, June, May are also given names).
NOT_NAME_WORDS = frozenset("""
hi hello hey dear thanks thank regards cheers best kind sincerely greetings welcome good morning afternoon evening
yours please sorry ok okay yes no urgent asap fyi ps re fw fwd subject note attn
order orders invoice invoices refund refunds return returns tracking delivery shipping shipment package parcel
customer customers support team service services account payment card bill billing product products item items
price fee charge receipt warranty store shop cart checkout address email e-mail mail phone tel mobile fax website
monday tuesday wednesday thursday friday saturday sunday today tomorrow yesterday
bluetooth wifi wi-fi usb hdmi android ios
""".split())
TITLES = frozenset(
    "mr mr. mrs mrs. ms ms. miss mx dr dr. prof prof. sir madam herr frau mme mme. mlle m. sr sra".split())
# Lower-case particles inside names: "Nadine Beernink-de Koning", "Ludwig van Beethoven".
PARTICLES = frozenset("de da di du del della der den van von ten ter le la el al bin ibn zu y d' 't".split())

_TOKEN = re.compile(r"\S+")
_EDGE_PUNCT = ",.;:!?()[]{}\"'“”‘’<>"
_NAME_TOKEN = re.compile(r"^[^\W\d_][^\W\d_'’.\-]*(?:['’.\-][^\W\d_]+)*\.?$")
_CUE_BEFORE = re.compile(
    r"(?:\bmy name is|\bmy name's|\bname\s*:|\bI am|\bthis is|\baccount holder|\bholder\s*:|\bsigned|"
    r"\bdear|\bregards,?|\bsincerely,?|\bcheers,?|\bthanks,|\bbest,|\bcontact person\s*:?)\s*$", re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?:[.!?]\s+|\n\s*|^\s*)$")
_EMAIL_AFTER = re.compile(r"^\s*[,;(<]?\s*[\w.+-]+@[\w-]+\.")
# Up to four name-shaped words, for recovery where NER found nothing.
_NAME_RUN = r"[^\W\d_][\w'’\-]*(?:\s+(?:(?:de|da|di|du|van|von|der|den|ten|ter|le|la|del)\s+)*[^\W\d_][\w'’\-]*){0,3}"
_CUE_NAME = re.compile(
    r"(?:\bmy name is|\bmy name's|\baccount holder|\bholder:|\bdear|\bregards,|\bsincerely,|\bcheers,)\s+"
    r"(?P<name>(?:(?:Mr|Mrs|Ms|Miss|Dr|Prof)\.?\s+)?" + _NAME_RUN + ")", re.IGNORECASE)
_SIGNATURE = re.compile(r"(?:[.!?]\s+|\n\s*)(?P<name>(?:(?:Mr|Mrs|Ms|Miss|Dr|Prof)\.?\s+)?" + _NAME_RUN + r")"
                        r"(?=\s*(?:[,;(<]\s*[\w.+-]+@[\w-]+\.\w|$))")

_TAIL = " \t\r\n.!"
_PERSONISH = {"ORG", "GPE", "LOC", "FAC", "PRODUCT", "WORK_OF_ART", "NORP"}


def _is_capitalised_name_token(tok: str) -> bool:
    if not _NAME_TOKEN.match(tok) or tok.lower() in NOT_NAME_WORDS:
        return False
    if not tok[0].isupper():
        return False
    # A lone acronym (ASAP, USB, SKU) is not a name; "McDonald", "O'Neil", "DiCaprio" are.
    letters = [c for c in tok if c.isalpha()]
    return not (len(letters) > 1 and all(c.isupper() for c in letters))


def name_shape(text: str, start: int, end: int, blocked: Intervals | None = None) -> tuple[int, int] | None:
    """The part of text[start:end] that looks like a name, trimmed of non-name edge tokens; None if nothing does.
    `blocked` are ranges other detectors claimed (an e-mail's local part is not a name)."""
    toks = []
    for m in _TOKEN.finditer(text, start, end):
        s, e = m.span()
        while s < e and text[s] in _EDGE_PUNCT:
            s += 1
        while (e > s and text[e - 1] in _EDGE_PUNCT
               and not (text[e - 1] == "." and text[s:e - 1].lower() + "." in TITLES)):
            e -= 1
        if s < e:
            toks.append((s, e, text[s:e]))

    def ok(i: int) -> bool:
        s, e, t = toks[i]
        return _is_capitalised_name_token(t) and not (blocked is not None and blocked.overlaps(s, e))

    lo, hi = 0, len(toks)
    while lo < hi and not ok(lo):
        if toks[lo][2].lower() in TITLES:  # a title opening the name stays with it ("Miss Tracy Davis")
            if lo + 1 < hi and ok(lo + 1):
                break
        lo += 1
    while hi > lo and not ok(hi - 1):
        hi -= 1
    if lo >= hi:
        return None
    for i in range(lo, hi):
        t = toks[i][2]
        if not (ok(i) or t.lower() in PARTICLES or (i == lo and t.lower() in TITLES)):
            return None
    if not any(ok(i) for i in range(lo, hi)):
        return None
    return toks[lo][0], toks[hi - 1][1]


def _has_cue(text: str, start: int, end: int, tail: int) -> bool:
    """`tail`: where the text's closing whitespace and .! begin (computed once per text: slicing the rest of a
    50 MB record for every entity made the filter quadratic)."""
    before = text[max(0, start - 40):start]
    if _CUE_BEFORE.search(before) or text[start:end].split()[0].lower() in TITLES:
        return True
    if _EMAIL_AFTER.match(text[end:end + 80]):
        return True
    # Signature position: the span is the whole last "sentence" of the text.
    return end >= tail and bool(_SENTENCE_END.search(text[max(0, start - 3):start]))


def refine_entities(text: str, ents: Sequence[tuple[int, int, str]], blocked: Sequence[tuple[int, int]],
                    labels: dict[str, str]) -> list[Span]:
    """NER entities (start, end, spaCy label) → PERSON/LOCATION/NRP spans after the precision and cue rules.
    `labels` maps spaCy labels to our types; `blocked` are ranges found by pattern/secret detectors."""
    out: list[Span] = []
    blocked = Intervals(blocked)
    tail = len(text.rstrip(_TAIL))
    for s, e, label in ents:
        etype = labels.get(label)
        if etype is None and label not in _PERSONISH:
            continue
        if etype == "NRP":  # nationalities/religions/groups are single capitalised words by nature; keep as is
            if not blocked.overlaps(s, e) and not re.search(r"[\d_@/]", text[s:e]):
                out.append(Span(s, e, etype, NER_SCORE, "ner"))
            continue
        shaped = name_shape(text, s, e, blocked)
        if shaped is None:
            continue
        s2, e2 = shaped
        cue = _has_cue(text, s2, e2, tail)
        if etype != "PERSON" and cue:
            etype = "PERSON"  # a person cue outweighs a small model's ORG/GPE guess
        if etype is None:
            continue
        score = NER_SCORE
        if etype == "PERSON" and " " not in text[s2:e2].strip() and not cue:
            score = NER_BARE_SCORE
        out.append(Span(s2, e2, etype, score, "ner"))
    # Names the NER did not tag at all, introduced by a strong cue or standing as a signature.
    taken = Intervals((sp.start, sp.end) for sp in out)
    for s, e in zip(blocked.starts, blocked.ends, strict=True):
        taken.add(s, e)
    for rx in (_CUE_NAME, _SIGNATURE):
        for m in rx.finditer(text):
            s, e = m.span("name")
            if taken.overlaps(s, e):
                continue
            shaped = name_shape(text, s, e, blocked)
            if shaped is None:
                continue
            out.append(Span(shaped[0], shaped[1], "PERSON", CUE_SCORE, "ner"))
            taken.add(*shaped)
    return out
