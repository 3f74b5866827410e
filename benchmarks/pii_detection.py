"""PII detection: accuracy per entity type and throughput, ftaudit vs Presidio's analyzer, on one generated set.

The labelled set is made with Faker in seven locales and varied templates (with and without context words, plus
distractor sentences full of dates, amounts, versions and order numbers), seeded. Identifiers Faker does not make
(UK NINO/NHS, DE tax ID, PL PESEL) are generated here with their published check-digit rules.

Accuracy: a prediction is a true positive when it overlaps a gold span of the same type; precision, recall and F2
(recall weighted 4x: a missed identifier is a leak) per type, at one score threshold for both tools.
Throughput: MB/s and records/s over the same texts, one process and all cores, for
  - ftaudit patterns (no NER) vs Presidio with its NLP engine reduced to a tokenizer (pattern recognisers only);
  - ftaudit with spaCy NER vs Presidio's default analyzer with the same spaCy pipeline (when one is installed).
Presidio's default analyzer is configured for English only, so its es/it/pl recognisers are not loaded: that is
what a user of the default gets, and the table says n/a where a type has no recogniser.

Run: `python -m benchmarks pii_detection` (env PII_BENCH_RECORDS to change the set size; default 2000).
"""

from __future__ import annotations

import json
import os
import random
import string
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

THRESHOLD = 0.3
LOCALES = ["en_US", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "en_GB"]
PATTERN_TYPES = ["EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS", "US_SSN", "UK_NHS",
                 "UK_NINO", "ES_NIF", "ES_NIE", "IT_FISCAL_CODE", "PL_PESEL", "DE_TAX_ID", "FR_NIR", "NL_BSN",
                 "SE_PERSONNUMMER", "FI_PERSONAL_IDENTITY_CODE"]
NER_TYPES = ["PERSON", "LOCATION"]

# Templates: {X} is a gold entity of type X. Some carry context words, some none.
TEMPLATES = {
    "EMAIL_ADDRESS": ["Please write to {EMAIL_ADDRESS} before Friday.", "{EMAIL_ADDRESS}",
                      "cc: {EMAIL_ADDRESS}; thanks",
                      "Reach {PERSON} via e-mail ({EMAIL_ADDRESS})."],
    "PHONE_NUMBER": ["Call me at {PHONE_NUMBER} tomorrow.", "Tel.: {PHONE_NUMBER}", "my mobile is {PHONE_NUMBER}",
                     "{PERSON} can be reached on {PHONE_NUMBER} after 6pm.", "ring {PHONE_NUMBER} please"],
    "CREDIT_CARD": ["card number {CREDIT_CARD}, exp 09/28", "Paid with {CREDIT_CARD}.", "visa {CREDIT_CARD}"],
    "IBAN_CODE": ["Transfer it to {IBAN_CODE} by the 5th.", "IBAN: {IBAN_CODE}", "account {IBAN_CODE} (savings)"],
    "IP_ADDRESS": ["Login from {IP_ADDRESS} was blocked.", "server ip {IP_ADDRESS}", "{IP_ADDRESS} - - [GET /]"],
    "US_SSN": ["My SSN is {US_SSN}.", "social security number: {US_SSN}", "ssn {US_SSN} on file"],
    "UK_NHS": ["NHS number {UK_NHS}", "patient {UK_NHS} was seen today"],
    "UK_NINO": ["National Insurance number {UK_NINO}", "NINO: {UK_NINO}", "her NI number is {UK_NINO}"],
    "ES_NIF": ["Mi DNI es {ES_NIF}.", "NIF {ES_NIF}", "documento {ES_NIF} recibido"],
    "ES_NIE": ["NIE: {ES_NIE}", "número de extranjero {ES_NIE}"],
    "IT_FISCAL_CODE": ["Codice fiscale: {IT_FISCAL_CODE}", "CF {IT_FISCAL_CODE} allegato"],
    "PL_PESEL": ["PESEL {PL_PESEL}", "numer PESEL: {PL_PESEL}"],
    "DE_TAX_ID": ["Steuer-ID: {DE_TAX_ID}", "Meine Steueridentifikationsnummer lautet {DE_TAX_ID}."],
    "FR_NIR": ["numéro de sécurité sociale {FR_NIR}", "NIR : {FR_NIR}"],
    "NL_BSN": ["Mijn BSN is {NL_BSN}.", "burgerservicenummer {NL_BSN}"],
    "SE_PERSONNUMMER": ["personnummer {SE_PERSONNUMMER}", "Pnr: {SE_PERSONNUMMER}"],
    "FI_PERSONAL_IDENTITY_CODE": ["henkilötunnus {FI_PERSONAL_IDENTITY_CODE}", "hetu: {FI_PERSONAL_IDENTITY_CODE}"],
    "LOCATION": ["I moved to {LOCATION} last spring.", "The office in {LOCATION} is closed."],
}
DISTRACTORS = [
    "The meeting is on 2024-03-15 at 10:30, room 4.12.", "Order #{n7} shipped; total 1,249.99 EUR.",
    "Version 2.14.3 fixed bug 48213.", "Invoice {n9} dated 15.01.2024.", "Population grew by 3.2% to 1,204,512.",
    "Reference {n10} refers to batch {n6}.", "Read chapter 12, pages 120-145.", "ISBN 978-3-16-148410-0 is cited.",
]

# Neutral prose around the entities, so records have a realistic size for fine-tuning data (a few hundred bytes).
FILLER = [
    "Thanks for the quick reply, I will check the details again this afternoon.",
    "The model answered the question correctly but the explanation was too long.",
    "Please summarise the following paragraph in two sentences for a general audience.",
    "We reviewed the draft and added a short section on limitations and future work.",
    "The weather was mild and the train arrived a few minutes early.",
    "Let me know whether the new schedule works for the whole team.",
    "The assistant should answer politely and ask a clarifying question when needed.",
    "Der Bericht wurde gestern fertiggestellt und an das Team verschickt.",
    "Merci pour votre message, nous revenons vers vous dans les meilleurs délais.",
    "Gracias por la información, la revisaremos con atención esta semana.",
]


def _nino(rng: random.Random) -> str:
    first = rng.choice("ABCEGHJKLMNOPRSTWXYZ")
    second = rng.choice("ABCEGHJKLMNPRSTWXYZ")
    if first + second in {"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"}:
        second = "A"
    d = "".join(rng.choice(string.digits) for _ in range(6))
    return f"{first}{second} {d[:2]} {d[2:4]} {d[4:]} {rng.choice('ABCD')}"


def _nhs(rng: random.Random) -> str:
    while True:
        d = [rng.randint(0, 9) for _ in range(9)]
        d[0] = rng.randint(4, 7)
        check = 11 - sum(x * w for x, w in zip(d, range(10, 1, -1), strict=True)) % 11
        check = 0 if check == 11 else check
        if check != 10:
            s = "".join(map(str, d + [check]))
            return f"{s[:3]} {s[3:6]} {s[6:]}"


def _de_tax_id(rng: random.Random) -> str:
    while True:
        digits = rng.sample(range(10), 9)
        if digits[0] == 0:
            continue
        pos = rng.randrange(1, 10)
        ten = digits[:pos] + [digits[rng.randrange(pos)]] + digits[pos:]
        product = 10
        for c in ten:
            s = (c + product) % 10 or 10
            product = (s * 2) % 11
        return "".join(map(str, ten)) + str((11 - product) % 10)


def _pesel(rng: random.Random) -> str:
    y, m, d = rng.randint(0, 99), rng.randint(1, 12), rng.randint(1, 28)
    m += 20 if y < 25 else 0
    y = y % 100
    body = f"{y:02d}{m:02d}{d:02d}{rng.randint(0, 9999):04d}"
    total = sum(int(c) * w for c, w in zip(body, (1, 3, 7, 9, 1, 3, 7, 9, 1, 3), strict=True))
    return body + str((10 - total % 10) % 10)


def build_set(n: int, seed: int = 20261129) -> list[dict]:
    """[{"text": str, "spans": [(start, end, type), ...]}], seeded."""
    from faker import Faker

    rng = random.Random(seed)
    fakers = {loc: Faker(loc) for loc in LOCALES + ["sv_SE", "fi_FI"]}
    for i, f in enumerate(fakers.values()):
        f.seed_instance(seed + i)

    def value(etype: str, loc: str) -> str:
        f = fakers[loc]
        if etype == "EMAIL_ADDRESS":
            return f.email()
        if etype == "PHONE_NUMBER":
            return f.phone_number()
        if etype == "CREDIT_CARD":
            return f.credit_card_number()
        if etype == "IBAN_CODE":
            iban = f.iban()
            return " ".join(iban[i:i + 4] for i in range(0, len(iban), 4)) if rng.random() < 0.5 else iban
        if etype == "IP_ADDRESS":
            return f.ipv4() if rng.random() < 0.7 else f.ipv6()
        if etype == "US_SSN":
            return fakers["en_US"].ssn()
        if etype == "UK_NHS":
            return _nhs(rng)
        if etype == "UK_NINO":
            return _nino(rng)
        if etype == "ES_NIF":
            return fakers["es_ES"].nif()
        if etype == "ES_NIE":
            return fakers["es_ES"].nie()
        if etype == "IT_FISCAL_CODE":
            return fakers["it_IT"].ssn()
        if etype == "PL_PESEL":
            return _pesel(rng)
        if etype == "DE_TAX_ID":
            return _de_tax_id(rng)
        if etype == "FR_NIR":
            return fakers["fr_FR"].ssn()
        if etype == "NL_BSN":
            return fakers["nl_NL"].ssn()
        if etype == "SE_PERSONNUMMER":
            return fakers["sv_SE"].ssn()
        if etype == "FI_PERSONAL_IDENTITY_CODE":
            return fakers["fi_FI"].ssn()
        if etype == "PERSON":
            return f.name()
        if etype == "LOCATION":
            return f.city()
        raise ValueError(etype)

    records = []
    kinds = list(TEMPLATES)
    for _ in range(n):
        loc = rng.choice(LOCALES)
        parts: list[str] = []
        spans: list[tuple[int, int, str]] = []
        pos = 0
        for _ in range(rng.randint(2, 6)):
            if rng.random() < 0.35:
                template = rng.choice(FILLER)
            elif rng.random() < 0.3:
                template = rng.choice(DISTRACTORS).format(n6=rng.randint(10**5, 10**6 - 1),
                                                          n7=rng.randint(10**6, 10**7 - 1),
                                                          n9=rng.randint(10**8, 10**9 - 1),
                                                          n10=rng.randint(10**9, 10**10 - 1))
            else:
                template = rng.choice(TEMPLATES[rng.choice(kinds)])
            chunks = template.split("{")
            out = chunks[0]
            for chunk in chunks[1:]:
                etype, rest = chunk.split("}", 1)
                v = value(etype, loc)
                spans.append((pos + len(out), pos + len(out) + len(v), etype))
                out += v + rest
            parts.append(out)
            pos += len(out) + 1
        records.append({"text": " ".join(parts), "spans": spans})
    return records


# ------------------------------------------------------------------------------------------------ detectors

def _presidio(with_ner: bool):
    import spacy
    import tldextract
    import tldextract.tldextract as tx

    # Presidio's email validation calls tldextract, which would fetch the public-suffix list over the network; use
    # the snapshot bundled with tldextract instead (machines here have no network, and timing a fetch is unfair).
    tx.TLD_EXTRACTOR = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import SpacyNlpEngine

    from ftaudit.data.pii import _find_ner_model

    if with_ner:
        engine = SpacyNlpEngine(models=[{"lang_code": "en", "model_name": _find_ner_model()}])
        engine.load()  # the model is installed, so Presidio does not try to download one
    else:
        engine = SpacyNlpEngine()
        engine.nlp = {"en": spacy.blank("en")}  # tokenizer only: Presidio's pattern recognisers, no NER
    return AnalyzerEngine(nlp_engine=engine, supported_languages=["en"])


def _presidio_predict(analyzer, texts):
    return [[(r.start, r.end, r.entity_type, r.score) for r in analyzer.analyze(t, language="en")] for t in texts]


def _ours_predict(texts, ner: bool):
    from ftaudit.data.pii import detect_many

    return [[(s.start, s.end, s.type, s.score) for s in found]
            for found in detect_many(texts, ner=ner, special=False)]


def _presidio_worker(args):
    texts, with_ner = args
    return len(_presidio_predict(_presidio(with_ner), texts))


# ------------------------------------------------------------------------------------------------ scoring

def score(records, predictions, types):
    rows = {}
    for t in types:
        tp = fp = gold = found = 0
        for rec, preds in zip(records, predictions, strict=True):
            golds = [(s, e) for s, e, gt in rec["spans"] if gt == t]
            mine = [(s, e) for s, e, pt, sc in preds if pt == t and sc >= THRESHOLD]
            gold += len(golds)
            found += sum(1 for gs, ge in golds if any(s < ge and gs < e for s, e in mine))
            for s, e in mine:
                if any(s < ge and gs < e for gs, ge in golds):
                    tp += 1
                else:
                    fp += 1
        p = tp / (tp + fp) if tp + fp else None
        r = found / gold if gold else None
        f2 = (5 * p * r / (4 * p + r)) if p is not None and r and (4 * p + r) else (0.0 if r is not None else None)
        rows[t] = (gold, p, r, f2, tp + fp)
    return rows


def _fmt(x):
    return "n/a" if x is None else f"{x:.2f}"


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def main() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import logging

    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
    from ftaudit.data.parallel import default_workers
    from ftaudit.data.pii import ner_available, scan_records

    n = int(os.environ.get("PII_BENCH_RECORDS", "2000"))
    records = build_set(n)
    texts = [r["text"] for r in records]
    mb = sum(len(t.encode()) for t in texts) / 1e6
    has_ner, why = ner_available()
    print(f"set: {n} records, {mb:.2f} MB, locales {', '.join(LOCALES)}; threshold {THRESHOLD}; {why}")

    # Accuracy + one-core throughput (same texts, same process).
    _ours_predict(texts[:50], False)  # warm caches (lexicon, phonenumbers metadata)
    ours, t_ours = _timed(lambda: _ours_predict(texts, False))
    pres_pat = _presidio(False)
    _presidio_predict(pres_pat, texts[:20])
    theirs, t_theirs = _timed(lambda: _presidio_predict(pres_pat, texts))
    supported = set(pres_pat.get_supported_entities())
    rows_ours, rows_theirs = score(records, ours, PATTERN_TYPES), score(records, theirs, PATTERN_TYPES)

    print("\n### Accuracy, pattern-based types (ftaudit patterns vs Presidio pattern recognisers)\n")
    print("| type | gold | ftaudit P | ftaudit R | ftaudit F2 | Presidio P | Presidio R | Presidio F2 |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for t in PATTERN_TYPES:
        g, p, r, f2, _ = rows_ours[t]
        _, pp, pr, pf2, _ = rows_theirs[t]
        if t not in supported:
            pp = pr = pf2 = None
        print(f"| {t} | {g} | {_fmt(p)} | {_fmt(r)} | {_fmt(f2)} | {_fmt(pp)} | {_fmt(pr)} | {_fmt(pf2)} |")

    results = [("ftaudit patterns, 1 process", t_ours), ("Presidio patterns, 1 process", t_theirs)]

    if has_ner:
        _ours_predict(texts[:20], True)
        ours_ner, t_ours_ner = _timed(lambda: _ours_predict(texts, True))
        pres_ner = _presidio(True)
        _presidio_predict(pres_ner, texts[:20])
        theirs_ner, t_theirs_ner = _timed(lambda: _presidio_predict(pres_ner, texts))
        ro, rt = score(records, ours_ner, NER_TYPES), score(records, theirs_ner, NER_TYPES)
        print("\n### Accuracy, NER types (same spaCy pipeline in both)\n")
        print("| type | gold | ftaudit P | ftaudit R | ftaudit F2 | Presidio P | Presidio R | Presidio F2 |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for t in NER_TYPES:
            g, p, r, f2, _ = ro[t]
            _, pp, pr, pf2, _ = rt[t]
            print(f"| {t} | {g} | {_fmt(p)} | {_fmt(r)} | {_fmt(f2)} | {_fmt(pp)} | {_fmt(pr)} | {_fmt(pf2)} |")
        results += [("ftaudit patterns + NER, 1 process", t_ours_ner),
                    ("Presidio default analyzer (spaCy NER), 1 process", t_theirs_ner)]

    # All cores: ftaudit's own streaming scan over a JSONL file vs Presidio in a process pool over the same texts.
    workers = default_workers()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "set.jsonl"
        path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
        import ftaudit.data.pii as pii

        pii.BATCH_ITEMS = max(64, n // (4 * workers))  # enough batches to keep every worker busy on a small set
        _, t_scan = _timed(lambda: sum(1 for _ in scan_records(path, workers=workers, ner=False, special=False)))
        results.append((f"ftaudit scan_records (file, {workers} processes)", t_scan))
    chunks = [(texts[i::workers], False) for i in range(workers)]
    with ProcessPoolExecutor(workers) as pool:
        _, t_pres_all = _timed(lambda: list(pool.map(_presidio_worker, chunks)))
    results.append((f"Presidio patterns ({workers} processes, analyzer start-up included)", t_pres_all))

    print("\n### Throughput\n")
    print("| detector | seconds | MB/s | records/s |")
    print("|---|---:|---:|---:|")
    for name, secs in results:
        print(f"| {name} | {secs:.2f} | {mb / secs:.2f} | {n / secs:.0f} |")
    print(f"\nspeed-up, patterns, 1 process: {t_theirs / t_ours:.1f}x Presidio "
          f"(target >= 5x at equal or better recall)")
    if has_ner:
        print(f"speed-up, with NER, 1 process: {t_theirs_ner / t_ours_ner:.1f}x Presidio's default analyzer")
    worse = [t for t in PATTERN_TYPES if t in supported and rows_theirs[t][2] is not None
             and rows_ours[t][2] is not None and rows_ours[t][2] < rows_theirs[t][2]]
    print("recall below Presidio's on: " + (", ".join(worse) if worse else "no pattern type"))


if __name__ == "__main__":
    main()
