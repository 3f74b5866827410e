"""The worker side of `ftaudit data scan`: what one process does with a job (a batch of records, or a byte-range
shard it reads itself) — personal-data/secret/special-category detection, MinHash signature, language, lengths,
tokens, garbled check, domains, bias counts and the record hash. Personal data never leaves a worker: what comes
back is positions, types, scores and redacted samples."""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from ftaudit.data import bias as bias_mod
from ftaudit.data import provenance as prov
from ftaudit.data.found import FoundColumns
from ftaudit.data.pieces import utf8_length
from ftaudit.data.quality import MinHasher, exact_key, quality_flag
from ftaudit.data.samples import CONTEXT_WIDTH, redacted_context
from ftaudit.data.stats import TokenCounter, detect_language
from ftaudit.data.storage import location
from ftaudit.errors import BadInput

# Leaf keys that describe a record rather than hold its content: scanned for personal data (an author's email in
# metadata is personal data too) but left out of content statistics, duplicates and bias counts.
METADATA_KEYS = frozenset(
    "role id uuid url source source_url link uri lang language license licence timestamp created_at updated_at "
    "date split name_of_source dataset".split()
)
_LAST_KEY = re.compile(r"(?:^|\.)([A-Za-z_][\w\-]*)$|\[\"((?:[^\"\\]|\\.)*)\"\]$")
@dataclass(frozen=True)
class ScanOptions:
    workers: int = 1
    on_error: str = "stop"
    fields: tuple[str, ...] | None = None
    tokenizer: str | None = None
    near_duplicate_threshold: float = 0.8
    num_perm: int = 64
    bands: int = 16
    sme: bool = False
    samples_per_type: int = 3
    batch_size: int = 256
    detect: bool = True  # personal-data detection (off only for tests of the other parts)
    ner: bool | None = None  # None: use NER when installed; True: require it; False: patterns only
    shard_bytes: int = 1 << 20  # JSONL and text files are cut into shards of this size that workers read themselves
    ner_sample: int | None = None  # NER on a seeded uniform sample of about this many records (None: all)
    ner_seed: int = 0
    ner_rate: float | None = None  # the sample's inclusion probability, set by `scan` from the record count
    ner_model: str | None = None  # a transformer token-classification model directory instead of spaCy


SPECIAL_PREFIX = "SPECIAL_CATEGORY_"
ID_SHIFT = 40  # item id = file number << 40 | record index: no per-record bookkeeping for 1e12 records per file
LARGE_RECORD = 1 << 20  # characters: a record this long is hashed in pieces
# ---------------------------------------------------------------------------------------------------------------
# Worker side
# ---------------------------------------------------------------------------------------------------------------

@dataclass
class RecordOut:
    index: int
    rec_hash: bytes
    key: bytes
    sig: Any
    chars: int = 0
    tokens: int = 0
    content_bytes: int = 0
    language: str = "und"
    fields: int = 0
    content_fields: int = 0
    flag: str | None = None
    domains: list[str] = field(default_factory=list)
    domain_method: str = ""
    findings: FoundColumns = field(default_factory=FoundColumns)
    samples: list[tuple[str, str, int, int, str]] = field(default_factory=list)
    skipped: str | None = None
    ner: bool = False  # in the NER sample (--ner sample:N)


@dataclass
class BatchOut:
    records: list[RecordOut]
    bias: bias_mod.BiasTally | None
    errors: list = field(default_factory=list)  # records of a shard that could not be read (on_error=skip)

    def extend(self, other: "BatchOut") -> None:
        self.records += other.records
        if other.bias is not None:
            self.bias.merge(other.bias)


class Worker:
    def __init__(self, opts: ScanOptions):
        self.opts = opts
        self.hasher = MinHasher(num_perm=opts.num_perm)
        self.tokens = TokenCounter(opts.tokenizer)
        self.lexicon = bias_mod.default_lexicon()

    def run(self, batch: list, role: str, file_no: int = 0) -> BatchOut:
        from ftaudit.data.loading import iter_texts

        opts = self.opts
        tally = bias_mod.BiasTally() if role == "train" else None
        out: list[RecordOut] = []
        signed: list[tuple[RecordOut, str]] = []  # MinHash signatures are computed for the batch at once
        to_detect: list[tuple[RecordOut, str, str]] = []
        for rec in batch:
            try:
                leaves = list(iter_texts(rec, list(opts.fields) if opts.fields else None))
            except BadInput as exc:
                if opts.on_error == "stop":
                    raise
                out.append(RecordOut(rec.index, b"", b"", None, skipped=str(exc)))
                continue
            content = [t for path, t in leaves if leaf_key(path) not in METADATA_KEYS]
            joined = "\n".join(content)
            large = sum(len(t) for _, t in leaves) > LARGE_RECORD
            r = RecordOut(
                index=rec.index, rec_hash=prov.record_hash(rec.data, large=large), key=exact_key(joined), sig=None,
                chars=len(joined), tokens=self.tokens(joined) if joined else 0,
                content_bytes=utf8_length(joined), language=detect_language(joined) if joined else "und",
                fields=len(leaves), content_fields=len(content), flag=quality_flag(content),
            )
            if role == "train":
                r.domains, r.domain_method = prov.record_domains(rec.data, content)
                bias_mod.tally_record(content, self.lexicon, tally)
                if opts.detect:
                    r.ner = opts.ner_rate is not None and in_ner_sample(opts, file_no, rec.index)
                    to_detect += [(r, path, text) for path, text in leaves if text]
            out.append(r)
            signed.append((r, joined))
        for (r, _), sig in zip(signed, self.hasher.signatures([t for _, t in signed]), strict=True):
            r.sig = sig
        if to_detect:
            self._detect(to_detect)
        return BatchOut(out, tally)

    def _detect(self, items: list[tuple[RecordOut, str, str]]) -> None:
        from ftaudit.data.pii import detect_each

        # One call per batch (and per NER choice): the NER model reads all its texts at once.
        detect = partial(detect_each, ner_model=self.opts.ner_model)
        if self.opts.ner_rate is None:
            found_all = list(detect([t for *_, t in items], ner=self.opts.ner))
        else:
            found_all = [iter(())] * len(items)
            for ner in (True, False):
                chosen = [i for i, (r, *_) in enumerate(items) if r.ner == ner]
                for i, found in zip(chosen, detect([items[i][2] for i in chosen], ner=ner), strict=True):
                    found_all[i] = found
        sampled: Counter = Counter()
        for (r, path, text), parts in zip(items, found_all, strict=True):
            first = len(r.findings)
            focus: list[tuple[str, int, int]] = []
            for part in parts:
                for f in part:
                    r.findings.add(path, f.start, f.end, f.type, f.score)
                    if sampled[f.type] < self.opts.samples_per_type:
                        sampled[f.type] += 1
                        focus.append((f.type, f.start, f.end))
            if focus:
                r.samples += _samples(r, path, text, (first, len(r.findings)), focus)


def _samples(r: RecordOut, path: str, text: str, rows: tuple[int, int],
             focus: list[tuple[str, int, int]]) -> list[tuple[str, str, int, int, str]]:
    """Redacted samples of the focus findings; the identifiers around each are replaced in its context. Those are
    the field's findings near it: identifiers do not overlap one another, so none starting further away than
    the longest of them can reach into a context or across its edge."""
    longest = max(r.findings.length[rows[0]:rows[1]])
    out = []
    for typ, start, end in focus:
        near = r.findings.near(rows, start - CONTEXT_WIDTH - longest, end + CONTEXT_WIDTH + longest)
        spans = [sp for sp in near if not sp[2].startswith(SPECIAL_PREFIX)]
        out.append((typ, path, start, end, redacted_context(text, spans + [(start, end, typ)], (start, end))))
    return out


NER_SAMPLE_RULE = ("record I of file K (both 0-based, files in the order given) had NER when the first 8 bytes "
                   "of sha256 of the text SEED:K:I, read as a big-endian integer, are below rate × 2^64")


def in_ner_sample(opts: ScanOptions, file_no: int, index: int) -> bool:
    digest = hashlib.sha256(f"{opts.ner_seed}:{file_no}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") < opts.ner_rate * 2.0 ** 64


def leaf_key(path: str) -> str:
    m = _LAST_KEY.search(path)
    if not m:
        return ""
    return (m.group(1) or m.group(2) or "").lower()


_WORKER: Worker | None = None


class ShardUnavailable(BadInput):
    """A shard's file vanished or changed mid-scan: the checkpoint stays, so the scan can be resumed."""


VANISHED = ("{p}: disappeared during the scan; nothing was written; put it back and rerun with --resume to "
             "continue where the scan was")


@dataclass(frozen=True)
class Job:
    """One unit of work: a batch of records the main process read (JSON, CSV, datasets), or a shard of a JSONL,
    text or Parquet file that the worker reads itself (no records pickled across processes)."""

    opts: ScanOptions
    role: str
    file_no: int
    batch: list | None = None
    path: str | None = None
    span: Any = None  # loading.ByteRange | loading.RowGroups
    size: int = 0  # the file's size when the scan started
    errors: tuple = ()  # a batch's unreadable records (read by the main process)

    @property
    def bytes(self) -> int:
        return self.span.bytes if self.span is not None else 0


def run_job(job: Job) -> tuple[str, int, BatchOut, int]:
    """Worker entry point: (role, file number, results, bytes read). The worker state is built once per process
    (and rebuilt if the options change)."""
    global _WORKER
    if _WORKER is None or _WORKER.opts != job.opts:
        _WORKER = Worker(job.opts)
    if job.span is None:
        out = _WORKER.run(job.batch, job.role, job.file_no)
        out.errors = list(job.errors)
        return job.role, job.file_no, out, 0
    return job.role, job.file_no, _run_shard(_WORKER, job), job.bytes


def _run_shard(worker: Worker, job: Job) -> BatchOut:
    from ftaudit.data.loading import iter_records

    p = location(job.path)
    try:
        if p.stat().st_size != job.size:
            raise ShardUnavailable(f"{p}: changed during the scan (its size is not what it was when the scan "
                                   "started); nothing was written; scan it again once it no longer changes")
    except FileNotFoundError:
        raise ShardUnavailable(VANISHED.format(p=p)) from None
    out = BatchOut([], bias_mod.BiasTally() if job.role == "train" else None)
    records = iter_records(p, on_error=job.opts.on_error, errors=out.errors, span=job.span)
    for batch in batches(records, job.opts.batch_size):
        out.extend(worker.run(batch, job.role, job.file_no))
    return out


@dataclass(frozen=True)
class Unit:
    """A piece of a file for a worker: a shard it reads itself, or a batch of records read here with the
    unreadable records met since the batch before (on_error="skip")."""

    span: Any = None
    batch: list | None = None
    errors: tuple = ()


def units(p, fmt: str, *, shard_bytes: int, batch_size: int, on_error: str = "stop") -> Iterator[Unit]:
    """A file cut for the workers: JSONL, text and Parquet into shards, the other formats into batches."""
    from ftaudit.data.loading import SHARDED, iter_records, shards

    if fmt in SHARDED:
        yield from (Unit(span=span) for span in shards(p, fmt, shard_bytes))
        return
    errs: list = []
    for batch in batches(iter_records(p, on_error=on_error, errors=errs), batch_size):
        yield Unit(batch=batch, errors=tuple(errs))
        errs.clear()
    if errs:
        yield Unit(batch=[], errors=tuple(errs))


def batches(records: Iterator, size: int) -> Iterator[list]:
    batch: list = []
    for rec in records:
        batch.append(rec)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


