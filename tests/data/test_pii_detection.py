"""Each personal-data type: detected when valid, rejected when its checksum/structure is wrong; offsets only."""

from __future__ import annotations

import itertools

import pytest

from ftaudit.data.pii import detect_text, redacted_sample
from ftaudit.data.spans import Finding


def _types(text: str, **kw) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for s in detect_text(text, ner=False, special=False, **kw):
        out.setdefault(s.type, []).append(text[s.start:s.end])
    return out


VALID = [
    ("EMAIL_ADDRESS", "write to jane.doe+ml@mail.example.org today", "jane.doe+ml@mail.example.org"),
    ("PHONE_NUMBER", "call me on +49 30 901820 tomorrow", "+49 30 901820"),
    ("PHONE_NUMBER", "phone: (212) 555-0198 ext. 42", "(212) 555-0198 ext. 42"),
    ("PHONE_NUMBER", "Tel. 01 42 68 53 00 au bureau", "01 42 68 53 00"),
    ("CREDIT_CARD", "card 4111 1111 1111 1111 exp 12/29", "4111 1111 1111 1111"),
    ("CREDIT_CARD", "amex 378282246310005.", "378282246310005"),
    ("IBAN_CODE", "IBAN: DE89 3704 0044 0532 0130 00 PLEASE PAY", "DE89 3704 0044 0532 0130 00"),
    ("IBAN_CODE", "to GB82WEST12345698765432", "GB82WEST12345698765432"),
    ("IP_ADDRESS", "login from 203.0.113.77 failed", "203.0.113.77"),
    ("IP_ADDRESS", "v6 host 2001:db8:85a3::8a2e:370:7334 up", "2001:db8:85a3::8a2e:370:7334"),
    ("US_SSN", "my SSN is 123-45-6780", "123-45-6780"),
    ("UK_NHS", "NHS number 943 476 5919", "943 476 5919"),
    ("UK_NINO", "national insurance AB 12 34 56 C", "AB 12 34 56 C"),
    ("ES_NIF", "DNI 12345678Z", "12345678Z"),
    ("ES_NIE", "NIE X1234567L", "X1234567L"),
    ("IT_FISCAL_CODE", "codice fiscale RSSMRA85T10A562S", "RSSMRA85T10A562S"),
    ("PL_PESEL", "PESEL 44051401359", "44051401359"),
    ("DE_TAX_ID", "Steuer-ID 86095742719", "86095742719"),
    ("FR_NIR", "numéro de sécurité sociale 1 84 12 76 451 089 46", "1 84 12 76 451 089 46"),
    ("NL_BSN", "BSN 111222333", "111222333"),
    ("SE_PERSONNUMMER", "personnummer 811228-9874", "811228-9874"),
    ("FI_PERSONAL_IDENTITY_CODE", "hetu 131052-308T", "131052-308T"),
    ("BE_NATIONAL_NUMBER", "rijksregisternummer 85.07.30-033.28", "85.07.30-033.28"),
    ("URL", "see https://example.com/a?b=c.", "https://example.com/a?b=c"),
]


@pytest.mark.parametrize("etype,text,value", VALID, ids=[f"{v[0]}-{i}" for i, v in enumerate(VALID)])
def test_each_type_is_detected_with_exact_offsets(etype, text, value):
    assert _types(text).get(etype) == [value]


INVALID = [
    ("CREDIT_CARD", "card 4111 1111 1111 1112"),  # Luhn fails
    ("IBAN_CODE", "IBAN DE88 3704 0044 0532 0130 00"),  # mod-97 fails
    ("IP_ADDRESS", "version 300.1.2.3"),
    ("US_SSN", "SSN 666-45-6789"),  # area 666 never issued
    ("UK_NHS", "NHS 943 476 5918"),
    ("UK_NINO", "NINO ZZ 12 34 56 C"),  # ZZ prefix never issued
    ("ES_NIF", "DNI 12345678A"),
    ("ES_NIE", "NIE X1234567A"),
    ("IT_FISCAL_CODE", "CF RSSMRA85T10A562X"),
    ("PL_PESEL", "PESEL 44051401358"),
    ("DE_TAX_ID", "Steuer-ID 86095742718"),
    ("FR_NIR", "NIR 1 84 12 76 451 089 47"),
    ("NL_BSN", "BSN 111222334"),
    ("SE_PERSONNUMMER", "personnummer 811228-9875"),
    ("FI_PERSONAL_IDENTITY_CODE", "hetu 131052-308A"),
    ("BE_NATIONAL_NUMBER", "rijksregisternummer 85.07.30-033.29"),
    ("EMAIL_ADDRESS", "logo@2x.png"),
]


@pytest.mark.parametrize("etype,text", INVALID, ids=[v[0] for v in INVALID])
def test_failed_validation_is_not_reported(etype, text):
    assert etype not in _types(text)


def test_dates_versions_and_amounts_are_not_phone_numbers():
    found = _types("On 2024-01-15 10:30:00 version 1.2.3 cost 1,234,567 EUR; order 15.01.2024")
    assert "PHONE_NUMBER" not in found and "IP_ADDRESS" not in found


def test_context_words_raise_the_score():
    bare = [s for s in detect_text("ref 111222333", ner=False) if s.type == "NL_BSN"][0]
    ctx = [s for s in detect_text("mijn BSN 111222333", ner=False) if s.type == "NL_BSN"][0]
    assert ctx.score > bare.score


def test_overlaps_resolved_to_the_validated_type():
    spans = detect_text("IBAN GB82WEST12345698765432", ner=False)
    assert [s.type for s in spans] == ["IBAN_CODE"]


def test_findings_and_samples_carry_no_raw_value():
    f = Finding(3, "messages[1].content", 10, 30, "EMAIL_ADDRESS", 1.0, "pattern", "x.jsonl")
    assert f.as_dict() == {"record": 3, "field": "messages[1].content", "start": 10, "end": 30,
                           "type": "EMAIL_ADDRESS", "score": 1.0}
    assert redacted_sample("john.smith@example.com", "EMAIL_ADDRESS") == "j***@e***.com"
    assert "5551234" not in redacted_sample("+1 555 123 4567", "PHONE_NUMBER").replace(" ", "")
    assert redacted_sample("John Smith", "PERSON") == "J*** S***"


def test_types_and_min_score_filter():
    text = "a@b.example.org and 203.0.113.7"
    assert [s.type for s in detect_text(text, ner=False, types=["IP_ADDRESS"])] == ["IP_ADDRESS"]
    assert detect_text(text, ner=False, min_score=1.01) == []


def test_ner_unavailable_is_said_and_enforced(monkeypatch):
    from ftaudit.data import pii
    from ftaudit.errors import BadInput

    monkeypatch.setenv("FTAUDIT_NO_NER", "1")
    ok, why = pii.ner_available()
    assert not ok and "PERSON" in why
    with pytest.raises(BadInput):
        detect_text("John Smith", ner=True)
    assert detect_text("Mail j@example.org", ner=None)  # auto: works without NER


@pytest.mark.skipif(not __import__("ftaudit.data.pii", fromlist=["x"]).ner_available()[0],
                    reason="no spaCy English pipeline installed (optional extra 'ner')")
def test_ner_finds_people_and_places():
    text = "Angela Merkel met Emmanuel Macron in Paris. Contact: a.m@example.org"
    found: dict[str, list[str]] = {}
    for s in detect_text(text, ner=True, special=False):
        found.setdefault(s.type, []).append(text[s.start:s.end])
    assert "Paris" in found["LOCATION"] and "Emmanuel Macron" in found["PERSON"]
    assert found["EMAIL_ADDRESS"] == ["a.m@example.org"]


def test_document_numbers_score_below_phone_numbers():
    invoice = [s for s in detect_text("Invoice 612345678 attached", ner=False) if s.type == "PHONE_NUMBER"]
    call = [s for s in detect_text("call 612345678 today", ner=False) if s.type == "PHONE_NUMBER"]
    assert call and (not invoice or invoice[0].score < 0.3 <= call[0].score)


def test_ner_windows_overlap_and_find_a_name_across_a_cut():
    """Long texts reach spaCy in overlapping windows (bounded memory); a name that straddles a cut is found once,
    whole, at its offsets in the full text."""
    from ftaudit.data import pii

    if not pii.ner_available()[0]:
        pytest.skip("spaCy's NER model is not installed (the `ner` extra)")
    filler = "the parcel was late again and support said it would come next week " * 200
    text = filler[:pii.NER_WINDOW - 23] + " please call Anna Schmidt about it. " + filler
    start = text.index("Anna Schmidt")
    from ftaudit.data.pieces import pieces

    windows = list(pieces(text, pii.NER_WINDOW, pii.NER_OVERLAP))
    assert len(windows) > 1 and all(len(w) <= pii.NER_WINDOW for _, w in windows)
    assert start < windows[0][0] + len(windows[0][1]) < start + len("Anna Schmidt")  # the first cut splits the name
    assert all(b[0] < a[0] + len(a[1]) for a, b in itertools.pairwise(windows))  # neighbours overlap
    spans = pii.detect_text(text, ner=True, types=["PERSON"])
    names = [text[s.start:s.end] for s in spans]
    assert names.count("Anna Schmidt") == 1 and "Anna" not in names and "Schmidt" not in names


def test_ner_leaves_torch_unloaded_in_a_scan_process():
    """spaCy's backend would import torch (280 MB) only to offer it; a scan worker loads NER without it, and torch
    still imports afterwards."""
    import subprocess
    import sys

    from ftaudit.data import pii

    if not pii.ner_available()[0]:
        pytest.skip("spaCy's NER model is not installed (the `ner` extra)")
    code = ("import sys; from ftaudit.data.pii import detect_text; "
            "found = detect_text('Please call Anna Schmidt today.', ner=True, types=['PERSON']); "
            "assert [f.type for f in found] == ['PERSON'], found; assert 'torch' not in sys.modules; "
            "import torch; torch.zeros(1)")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
