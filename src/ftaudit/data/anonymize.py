"""Anonymisation and pseudonymisation of a dataset: redact, mask, hash or pseudonymize what the detectors find.

GDPR Art. 4(5), 25(1) and 32(1)(a) name pseudonymisation as a safeguard; Art. 5(1)(c) asks for data minimisation.
*Reading*: redact and mask remove the value; hash and pseudonymize replace it with a stand-in that is the same for
the same value (so the data keeps its structure: who said what to whom), which is pseudonymisation, not
anonymisation (recital 26): whoever holds the key can link stand-ins back by re-computing them.

Stand-ins are derived with HMAC-SHA256 under a secret key. The key is read from a key file or generated for this
run only; it is never written into the output or the summary. The input is never modified; the output is written
to a temporary file and renamed into place, so a failure leaves no half-written file.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import json
import os
import re
import secrets as _secrets
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from ftaudit.data.loading import Record, detect_format, iter_records, map_texts
from ftaudit.data.parallel import imap_ordered
from ftaudit.data.pii import PII_TYPES, SECRET_TYPES, Span, _resolve_ner, detect_many, ner_available
from ftaudit.data.special_categories import PREFIX as SPECIAL_PREFIX
from ftaudit.data.storage import ObjectPath
from ftaudit.errors import BadInput
from ftaudit.io import atomic_open, atomic_path

Strategy = Literal["redact", "mask", "hash", "pseudonymize"]
STRATEGIES = ("redact", "mask", "hash", "pseudonymize")
# URLs are kept by default (they are mostly not about a person; passwords inside them are a secret type and go).
DEFAULT_TYPES = tuple(t for t in PII_TYPES if t != "URL") + SECRET_TYPES
DEFAULT_MIN_SCORE = 0.3  # recall over precision: a missed value is a leak, an extra redaction is only noise
MIN_KEY_BYTES = 16

_FIRST = ("Alex", "Sam", "Robin", "Charlie", "Jordan", "Taylor", "Morgan", "Casey", "Jamie", "Riley", "Avery",
          "Quinn", "Rowan", "Sasha", "Kim", "Noa", "Luca", "Mika", "Nico", "Eli", "Ari", "Jules", "Remi", "Toni",
          "Dani", "Kai", "Lou", "Max", "Pat", "Sky", "Ash", "Bo")
_LAST = ("Archer", "Baker", "Carter", "Dalton", "Ellis", "Fischer", "Garnier", "Hughes", "Ivanov", "Jansen",
         "Keller", "Laurent", "Moreau", "Novak", "Olsen", "Peters", "Quint", "Rossi", "Schmidt", "Torres", "Ulrich",
         "Vidal", "Weber", "Xavier", "Young", "Zimmer", "Bianchi", "Costa", "Dubois", "Eriksen", "Fontaine", "Lind")
_PLACES = ("Northfield", "Eastbrook", "Westmoor", "Southvale", "Lakeside", "Hillcrest", "Riverton", "Stonebridge",
           "Fairhaven", "Oakridge", "Maplewood", "Brookfield", "Ashford", "Glenwood", "Kingsbury", "Millbrook")


class AnonymizationSummary(BaseModel):
    """What was changed, by type and count. Never holds values, samples or the key."""

    model_config = ConfigDict(extra="forbid")

    source: str
    output: str
    strategy: str
    preserve_format: bool
    types: list[str]
    min_score: float
    key_source: Literal["key file", "generated for this run", "not used"]
    ner: str
    records_read: int = 0
    records_written: int = 0
    records_changed: int = 0
    records_skipped: int = 0
    replacements_by_type: dict[str, int] = {}
    propagated_by_type: dict[str, int] = {}
    replacements_found_by_detection: int = 0
    replacements_found_by_propagation: int = 0
    replacements_total: int = 0
    notes: list[str] = []


@dataclass(frozen=True)
class Change:
    """One replaced span, in the original string's offsets."""

    type: str
    start: int
    end: int


# ---------------------------------------------------------------------------------------------------- keys

def read_key(path: str | os.PathLike) -> bytes:
    p = Path(path)
    try:
        raw = p.read_bytes().strip()
    except FileNotFoundError:
        raise BadInput(f"{p}: key file not found (create one with --new-key)") from None
    except OSError as exc:
        raise BadInput(f"{p}: cannot read key file: {exc.strerror}") from None
    try:
        key = bytes.fromhex(raw.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        key = raw
    if len(key) < MIN_KEY_BYTES:
        raise BadInput(f"{p}: key too short ({len(key)} bytes); use at least {MIN_KEY_BYTES} random bytes "
                       "(--new-key writes 32)")
    return key


def write_new_key(path: str | os.PathLike) -> bytes:
    """Generates a 32-byte key and writes it (hex) to a new file readable only by its owner; never overwrites."""
    p = Path(path)
    if p.exists():
        raise BadInput(f"{p}: already exists; refusing to overwrite a key (pseudonyms made with it would become "
                       "unlinkable). Use it with --key-file, or choose a new path")
    key = _secrets.token_bytes(32)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise BadInput(f"{p}: cannot create key file: {exc.strerror}") from None
    with os.fdopen(fd, "w") as fh:
        fh.write(key.hex() + "\n")
    return key


# ---------------------------------------------------------------------------------------------------- stand-ins

def _normalise(value: str, type: str) -> str:
    """Different spellings of one value must map to one stand-in."""
    if type in ("EMAIL_ADDRESS", "URL"):
        return value.strip().lower()
    if type in ("PERSON", "LOCATION", "NRP") or type.startswith(SPECIAL_PREFIX):
        return " ".join(value.casefold().split())
    if type in SECRET_TYPES:
        return value
    return "".join(c for c in value if c.isalnum()).upper()


def _stream(key: bytes, type: str, norm: str) -> bytes:
    """A keyed byte stream for one value (HMAC-SHA256 in counter mode), long enough for any stand-in."""
    msg = f"{type}\x00{norm}".encode()
    out = b""
    counter = 0
    while len(out) < 64 + len(norm):
        out += hmac.new(key, msg + counter.to_bytes(4, "big"), hashlib.sha256).digest()
        counter += 1
    return out


def _reshape(value: str, stream: bytes, *, keep_prefix: int = 0) -> str:
    """Same layout: each digit → a keyed digit, each letter → a keyed letter of the same case, the rest kept."""
    out = []
    for i, ch in enumerate(value):
        b = stream[i % len(stream)]
        if i < keep_prefix or not ch.isascii():
            out.append(ch)
        elif ch.isdigit():
            out.append(chr(48 + b % 10))
        elif ch.isupper():
            out.append(chr(65 + b % 26))
        elif ch.islower():
            out.append(chr(97 + b % 26))
        else:
            out.append(ch)
    return "".join(out)


def _format_preserving(value: str, type: str, stream: bytes) -> str:
    if type == "EMAIL_ADDRESS":
        local = value.split("@", 1)[0]
        return _reshape(local, stream) + "@example.com"  # RFC 2606 reserved domain: never a real mailbox
    if type == "PERSON":
        parts = value.split()
        names = [_FIRST[stream[0] % len(_FIRST)]] + [_LAST[stream[i] % len(_LAST)] for i in range(1, len(parts))]
        return " ".join(names) if len(parts) > 1 else _LAST[stream[1] % len(_LAST)]
    if type == "LOCATION":
        return _PLACES[stream[0] % len(_PLACES)]
    if type == "IP_ADDRESS":
        if ":" in value:  # 2001:db8::/32 is the IPv6 documentation prefix (RFC 3849)
            return "2001:db8:" + ":".join(f"{stream[i]:02x}{stream[i + 1]:02x}" for i in range(0, 12, 2))
        return f"10.{stream[0]}.{stream[1]}.{stream[2]}"  # private range (RFC 1918)
    if type == "URL":
        return f"https://example.com/{stream[:6].hex()}"
    if type == "IBAN_CODE":
        return _reshape(value, stream, keep_prefix=2)  # keep the country code
    if type == "PHONE_NUMBER" and value.startswith("+"):
        return "+" + _reshape(value[1:], stream)
    return _reshape(value, stream)


def stand_in(value: str, type: str, strategy: Strategy, *, key: bytes | None, preserve_format: bool) -> str:
    """The replacement for one detected value."""
    if strategy == "redact":
        return f"<{type}>"
    if strategy == "mask":
        return "".join("*" if c.isalnum() else c for c in value)
    norm = _normalise(value, type)
    if strategy == "hash":
        digest = (hmac.new(key, f"{type}\x00{norm}".encode(), hashlib.sha256) if key
                  else hashlib.sha256(f"{type}\x00{norm}".encode())).hexdigest()
        return f"<{type}:{digest[:16]}>"
    if strategy != "pseudonymize":
        raise BadInput(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    if key is None:
        raise BadInput("pseudonymize needs a key (a key file, or one generated for this run)")
    stream = _stream(key, type, norm)
    if not preserve_format or type in SECRET_TYPES or type.startswith(SPECIAL_PREFIX):
        return f"<{type}_{stream[:4].hex()}>"
    out = _format_preserving(value, type, stream)
    if _normalise(out, type) == norm:  # astronomically rare for real values; never hand back the original
        out = f"<{type}_{stream[:4].hex()}>"
    return out


def anonymize_text(text: str, findings: Iterable[Span], strategy: Strategy, *, key: bytes | None = None,
                   preserve_format: bool = False) -> tuple[str, list[Change]]:
    """Replaces each (non-overlapping) finding in `text`; returns the new text and the changes (original offsets)."""
    parts: list[str] = []
    changes: list[Change] = []
    pos = 0
    for f in sorted(findings, key=lambda f: (f.start, -f.end)):
        if f.start < pos:  # overlaps one already replaced (e.g. a special-category term inside a name)
            continue
        parts.append(text[pos:f.start])
        parts.append(stand_in(text[f.start:f.end], f.type, strategy, key=key, preserve_format=preserve_format))
        changes.append(Change(f.type, f.start, f.end))
        pos = f.end
    parts.append(text[pos:])
    return "".join(parts), changes


# ---------------------------------------------------------------------------------------------------- datasets

@dataclass(frozen=True)
class _Job:
    records: list[tuple[int, dict]]
    strategy: str
    key: bytes | None
    preserve_format: bool
    types: tuple[str, ...]
    min_score: float
    ner: bool
    fields: tuple[str, ...] | None
    ner_model: str | None = None


def _anonymize_batch(job: _Job) -> tuple[list[tuple[int, dict, bool]], Counter, set[tuple[str, str]]]:
    texts: list[str] = []
    addresses: list[tuple[int, str]] = []
    for i, (_, data) in enumerate(job.records):
        def collect(path: str, text: str, i=i) -> str:
            if text and (job.fields is None or _under(path, job.fields)):
                texts.append(text)
                addresses.append((i, path))
            return text
        map_texts(data, collect)
    special = any(t.startswith(SPECIAL_PREFIX) for t in job.types)
    spans = detect_many(texts, ner=job.ner, types=job.types, min_score=job.min_score, special=special,
                        ner_model=job.ner_model)
    by_address = {addr: found for addr, found in zip(addresses, spans, strict=True) if found}
    counts: Counter = Counter()
    values: set[tuple[str, str]] = set()
    out: list[tuple[int, dict, bool]] = []
    for i, (index, data) in enumerate(job.records):
        changed = False

        def replace(path: str, text: str, i=i) -> str:
            nonlocal changed
            found = by_address.get((i, path))
            if not found:
                return text
            new, changes = anonymize_text(text, found, job.strategy, key=job.key, preserve_format=job.preserve_format)
            counts.update(c.type for c in changes)
            values.update((c.type, text[c.start:c.end]) for c in changes)
            changed = changed or bool(changes)
            return new
        out.append((index, map_texts(data, replace), changed))
    return out, counts, values


# ---------------------------------------------------------------------------------------------------- propagation
_WORD = re.compile(r"\w+")
MIN_PROPAGATED_LENGTH = 3  # shorter values ("Al", "NY") would hit ordinary words


class Propagation:
    """Every occurrence of a value detected anywhere in the dataset, in any field: a detector that missed some
    occurrences of a name (NER is context-dependent) must not leave them in the copy. Candidates are found by
    their first word, so the cost grows with the text, not with the number of values."""

    def __init__(self, values: Iterable[tuple[str, str]]):
        values = set(values)
        # The parts of a detected name too ("Anna", "Schmidt"): NER often finds only part of a name elsewhere.
        values |= {(t, part) for t, v in values if t == "PERSON" for part in _WORD.findall(v)}
        self.by_word: dict[str, list[tuple[str, str, int]]] = {}
        for type_, value in sorted(values, key=lambda tv: -len(tv[1])):
            first = _WORD.search(value)
            if len(value.strip()) >= MIN_PROPAGATED_LENGTH and first:
                self.by_word.setdefault(first.group(), []).append((value, type_, first.start()))

    def spans(self, text: str) -> list[Span]:
        out: list[Span] = []
        end = 0
        for m in _WORD.finditer(text):
            for value, type_, offset in self.by_word.get(m.group(), ()):
                start = m.start() - offset
                stop = start + len(value)
                if (start >= end and text.startswith(value, start)
                        and not (start and _is_word(text[start - 1]) and _is_word(value[0]))
                        and not (stop < len(text) and _is_word(text[stop]) and _is_word(value[-1]))):
                    out.append(Span(start=start, end=stop, type=type_, score=1.0, detector="propagation"))
                    end = stop
                    break
        return out


def _is_word(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def _under(path: str, fields: Sequence[str]) -> bool:
    return any(path == f or path.startswith(f + ".") or path.startswith(f + "[") for f in fields)


class _Writer:
    """Writes records in the output's format to an open temporary file."""

    def __init__(self, fmt: str, fh, src: Path):
        self.fmt, self.fh, self.src = fmt, fh, src
        self.n = 0
        self.line = 0  # next output line (JSONL/text keep the input's line numbers, so record indexes still match)
        self.csv = None
        self.parquet = None

    def write(self, index: int, data: dict) -> None:
        if self.fmt in ("jsonl", "text"):
            self.fh.write("\n" * max(0, index - self.line))
            self.fh.write(json.dumps(data, ensure_ascii=False) if self.fmt == "jsonl" else data.get("text", ""))
            self.fh.write("\n")
            self.line = index + 1
        elif self.fmt == "json":
            self.fh.write(("[\n" if self.n == 0 else ",\n") + json.dumps(data, ensure_ascii=False))
        elif self.fmt in ("csv", "tsv"):
            if self.csv is None:
                self.csv = csv.DictWriter(self.fh, fieldnames=list(data), delimiter="," if self.fmt == "csv" else "\t")
                self.csv.writeheader()
            self.csv.writerow(data)
        self.n += 1

    def close(self) -> None:
        if self.fmt == "json":
            self.fh.write("[]\n" if self.n == 0 else "\n]\n")


def _parquet_batches(rows_iter, src: Path | ObjectPath, tmp: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    with src.open("rb") as fh:
        schema = pq.ParquetFile(fh).schema_arrow
    with pq.ParquetWriter(tmp, schema) as writer:
        for rows in rows_iter:
            if rows:
                writer.write_table(pa.Table.from_pylist(rows, schema=schema))


def anonymize_path(src: str | os.PathLike, dst: str | os.PathLike, strategy: Strategy, *, key: bytes | None = None,
                   types: Iterable[str] | None = None, preserve_format: bool = False, ner: bool | None = None,
                   min_score: float = DEFAULT_MIN_SCORE, on_error: Literal["stop", "skip"] = "stop",
                   fields: Sequence[str] | None = None, workers: int | None = None,
                   key_source: str | None = None, ner_model: str | None = None) -> AnonymizationSummary:
    """Writes an anonymised copy of `src` to `dst` (same format; a saved HF dataset becomes JSONL) and returns what
    was changed. Pseudonyms are consistent across records and, with the same key, across files and runs.
    `ner_model`: a transformer token-classification model directory instead of the spaCy pipeline."""
    src_p, dst_p = Path(src), Path(dst)
    if strategy not in STRATEGIES:
        raise BadInput(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    fmt = detect_format(src_p)
    out_fmt = "jsonl" if fmt == "hf_dataset" else fmt
    want_fmt = detect_format(dst_p) if dst_p.suffix else None
    if want_fmt != out_fmt:
        raise BadInput(f"{dst_p}: output must have the input's format ({out_fmt}); e.g. "
                       f"{dst_p.with_suffix('.jsonl' if out_fmt == 'jsonl' else src_p.suffix)}")
    if dst_p.exists() and src_p.exists() and dst_p.resolve() == src_p.resolve():
        raise BadInput(f"{dst_p}: output would overwrite the input; the input is never modified")
    if dst_p.is_dir():
        raise BadInput(f"{dst_p}: is a directory; give an output file name")
    all_known = set(PII_TYPES) | set(SECRET_TYPES)
    type_list = tuple(types) if types is not None else DEFAULT_TYPES
    unknown = [t for t in type_list if t not in all_known and not t.startswith(SPECIAL_PREFIX)]
    if unknown:
        raise BadInput(f"unknown type(s) {', '.join(unknown)}; known: {', '.join(sorted(all_known))}, "
                       f"SPECIAL_CATEGORY_<NAME>")
    if strategy == "pseudonymize" and key is None:
        key = _secrets.token_bytes(32)
        key_source = "generated for this run"
    use_ner = _resolve_ner(ner, ner_model) and bool(set(type_list) & {"PERSON", "LOCATION", "NRP"})
    summary = AnonymizationSummary(
        source=str(src_p), output=str(dst_p), strategy=strategy, preserve_format=preserve_format,
        types=list(type_list), min_score=min_score,
        key_source=key_source or ("key file" if key is not None and strategy in ("hash", "pseudonymize")
                                  else "not used"),
        ner=ner_available(ner_model)[1] if ner is not False else ("NER switched off by the caller: PERSON, LOCATION "
                                                                    "and NRP were not detected."))
    if strategy == "hash" and key is None:
        summary.notes.append("hash without a key: SHA-256 of low-entropy values (phone numbers, IDs) can be reversed "
                             "by enumeration; use --key-file for a keyed hash")
    if summary.key_source == "generated for this run":
        summary.notes.append("the pseudonymisation key was generated for this run and not stored: pseudonyms are "
                             "consistent within this output but not with other runs (use --key-file to keep them)")

    errors: list = []
    records = iter_records(src_p, on_error=on_error, errors=errors)
    frozen_fields = tuple(fields) if fields else None

    new_job = partial(_Job, strategy=strategy, key=key, preserve_format=preserve_format, types=type_list,
                  min_score=min_score, ner=use_ner, fields=frozen_fields, ner_model=ner_model)

    def jobs():
        batch: list[tuple[int, dict]] = []
        size = 0
        for rec in records:
            if frozen_fields:
                _check_fields(rec, frozen_fields)
            batch.append((rec.index, rec.data))
            size += _text_size(rec.data)
            if len(batch) >= 256 or size >= 256 * 1024:
                yield new_job(batch)
                batch, size = [], 0
        if batch:
            yield new_job(batch)

    found: set[tuple[str, str]] = set()
    changed: set[int] = set()

    def detected():
        for out, counts, values in imap_ordered(_anonymize_batch, jobs(), workers=workers):
            for t, n in counts.items():
                summary.replacements_by_type[t] = summary.replacements_by_type.get(t, 0) + n
            summary.records_read += len(out)
            changed.update(index for index, _, was_changed in out if was_changed)
            found.update(values)
            yield [(index, data) for index, data, _ in out]

    # Pass 1 writes the detected replacements to a hidden file beside the output; pass 2 replaces every other
    # occurrence of a detected value anywhere in the dataset, then the result is renamed into place.
    first = dst_p.with_name(f".{dst_p.stem}.detected{dst_p.suffix}")
    try:
        write_records(out_fmt, first, src_p, detected())
        propagate = Propagation(found)
        propagated: Counter = Counter()

        def completed():
            batch: list[tuple[int, dict]] = []
            for rec in iter_records(first):
                def replace(path: str, text: str, index: int = rec.index) -> str:
                    spans = propagate.spans(text) if frozen_fields is None or _under(path, frozen_fields) else []
                    if not spans:
                        return text
                    changed.add(index)
                    propagated.update(s.type for s in spans)
                    return anonymize_text(text, spans, strategy, key=key, preserve_format=preserve_format)[0]
                batch.append((rec.index, map_texts(rec.data, replace)))
                if len(batch) >= 256:
                    yield batch
                    batch = []
            yield batch

        summary.records_written = write_records(out_fmt, dst_p, src_p, completed())
    finally:
        if first.exists():
            first.unlink()
    summary.records_changed = len(changed)
    summary.propagated_by_type = dict(sorted(propagated.items()))
    summary.records_skipped = len(errors)
    if errors:
        summary.notes.append(f"{len(errors)} unreadable record(s) were left out of the output (first: "
                             f"{errors[0].message})")
    summary.replacements_by_type = dict(sorted(summary.replacements_by_type.items()))
    summary.replacements_found_by_detection = sum(summary.replacements_by_type.values())
    summary.replacements_found_by_propagation = sum(propagated.values())
    summary.replacements_total = summary.replacements_found_by_detection + summary.replacements_found_by_propagation
    return summary


def write_records(out_fmt: str, path: Path, src: Path | ObjectPath, batches: Iterable[list[tuple[int, dict]]]) -> int:
    """Write (index, record) batches to `path` in the output format, atomically; returns the records written."""
    if out_fmt == "parquet":
        written = 0

        def rows():
            nonlocal written
            for batch in batches:
                written += len(batch)
                yield [data for _, data in batch]
        with atomic_path(path) as tmp:
            _parquet_batches(rows(), src, tmp)
        return written
    with atomic_open(path, "w", encoding="utf-8", newline="") as fh:
        writer = _Writer(out_fmt, fh, src)
        for batch in batches:
            for index, data in batch:
                writer.write(index, data)
        writer.close()
    return writer.n


def _text_size(value) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return sum(_text_size(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_text_size(v) for v in value)
    return 0


def _check_fields(rec: Record, fields: Sequence[str]) -> None:
    for name in fields:
        if name not in rec.data:
            raise BadInput(f"{rec.source}: record {rec.index} has no field {name!r}")
