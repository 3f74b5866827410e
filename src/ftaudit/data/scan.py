"""`ftaudit data scan`: one streaming pass over the data, all cores, everything a data report needs.

The main process reads records (streaming, `ftaudit.data.loading`) and hands batches to worker processes, which do
the CPU work per record: personal-data/secret/special-category detection, MinHash signature, language, lengths,
tokens, garbled check, domains, bias counts and the record hash. At most `2 × workers` batches are in flight, so
memory stays flat however large the file. Results come back in order and are folded into the evidence: the record
digest, the duplicate index (sequential by nature, cheap), counts and distributions. Eval files (`--eval`) pass
through the same workers in a light mode (hash, signature, lengths) and are checked against the training index
for leakage.

Personal data never leaves a worker: what comes back is positions, types, scores and redacted samples.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ftaudit.data import bias as bias_mod
from ftaudit.data import provenance as prov
from ftaudit.data import tdm as tdm_mod
from ftaudit.data.datasheet import Datasheet, load_datasheet, missing_answers
from ftaudit.data.evidence import (
    Counts,
    DataEvidence,
    DetectionInfo,
    Domains,
    DomainShare,
    Duplicates,
    FileFingerprint,
    FindingsSummary,
    FindingTypeSummary,
    LanguageShare,
    Leakage,
    NerEstimate,
    NerSample,
    QualityIssues,
    RecordDigest,
    RecordPair,
    RedactedSample,
    SkippedRecord,
    SpecialCategoryFlag,
)
from ftaudit.data.quality import DuplicateFinder, MinHasher, exact_key, quality_flag
from ftaudit.data.samples import redacted_context
from ftaudit.data.stats import TextStats, TokenCounter, detect_language
from ftaudit.errors import BadInput
from ftaudit.io import sha256_file

# Leaf keys that describe a record rather than hold its content: scanned for personal data (an author's email in
# metadata is personal data too) but left out of content statistics, duplicates and bias counts.
METADATA_KEYS = frozenset(
    "role id uuid url source source_url link uri lang language license licence timestamp created_at updated_at "
    "date split name_of_source dataset".split()
)
_INDEX = re.compile(r"\[\d+\]")
_LAST_KEY = re.compile(r"(?:^|\.)([A-Za-z_][\w\-]*)$|\[\"((?:[^\"\\]|\\.)*)\"\]$")
ID_SHIFT = 40  # item id = file number << 40 | record index: no per-record bookkeeping for 1e12 records per file
MAX_EXAMPLES = 20
MAX_SKIPPED_LISTED = 50


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


# ---------------------------------------------------------------------------------------------------------------
# Detection adapter: the detector module is owned by the detection work; this is the only place that touches it.
# ---------------------------------------------------------------------------------------------------------------

_SPECIAL_PREFIX = "SPECIAL_CATEGORY_"
# A reading of Art. 9(1) GDPR: it concerns data revealing a category *about a person*. The detector scores a term
# next to a personal cue ("my", "diagnosed with") 0.7 and a bare topic term 0.35; only the former counts as a
# record holding special-category data (and can trigger the policy); every flag is still listed for review.
SPECIAL_PERSONAL_MIN_SCORE = 0.5


# A reading: a URL is flagged (Presidio lists it) but alone it rarely identifies a person — crawled corpora carry
# one per record — so it is counted by type, not as a record holding personal data.
NOT_PERSONAL_ALONE = frozenset({"URL"})


def classify(finding_type: str) -> str:
    """'secret' | 'special_category' | 'personal_data' | 'other' for a detector type name."""
    from ftaudit.data.pii import SECRET_TYPES

    if finding_type in NOT_PERSONAL_ALONE:
        return "other"
    if finding_type in SECRET_TYPES:
        return "secret"
    if finding_type.startswith(_SPECIAL_PREFIX):
        return "special_category"
    return "personal_data"


def special_category_name(finding_type: str) -> str:
    """'SPECIAL_CATEGORY_HEALTH' → 'health'."""
    return finding_type[len(_SPECIAL_PREFIX):].lower() if finding_type.startswith(_SPECIAL_PREFIX) else finding_type


def detection_info(ner: bool | None) -> DetectionInfo:
    from ftaudit.data import pii
    from ftaudit.data.patterns.recognizers import PHONE_BACKEND

    phones = f" {PHONE_BACKEND[0].upper()}{PHONE_BACKEND[1:]}."
    detectors = ["patterns", "secrets", "special-category lexicon",
                 "phonenumbers" if "libphonenumber" in PHONE_BACKEND else "phone-layout-heuristic"]
    if ner is False:
        return DetectionInfo(ner_available=False, detectors=detectors,
                             note="NER switched off for this scan (--no-ner): PERSON, LOCATION and NRP were not "
                                  "detected; only pattern-based types were." + phones)
    ok, note = pii.ner_available()
    if ner is True and not ok:
        raise BadInput(note)
    long_text = pii.NER_LONG_TEXT_NOTE
    return DetectionInfo(ner_available=ok, note=(f"{note} {long_text[0].upper()}{long_text[1:]}." if ok else note)
                         + phones, detectors=detectors + (["spacy-ner"] if ok else []))


# ---------------------------------------------------------------------------------------------------------------
# Worker side
# ---------------------------------------------------------------------------------------------------------------

@dataclass
class _RecOut:
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
    findings: list[tuple[str, int, int, str, float]] = field(default_factory=list)
    samples: list[tuple[str, str, int, int, str]] = field(default_factory=list)
    skipped: str | None = None
    ner: bool = False  # in the NER sample (--ner sample:N)


@dataclass
class _BatchOut:
    records: list[_RecOut]
    bias: bias_mod.BiasTally | None
    errors: list = field(default_factory=list)  # records of a shard that could not be read (on_error=skip)

    def extend(self, other: "_BatchOut") -> None:
        self.records += other.records
        if other.bias is not None:
            self.bias.merge(other.bias)


class _Worker:
    def __init__(self, opts: ScanOptions):
        self.opts = opts
        self.hasher = MinHasher(num_perm=opts.num_perm)
        self.tokens = TokenCounter(opts.tokenizer)
        self.lexicon = bias_mod.default_lexicon()

    def run(self, batch: list, role: str, file_no: int = 0) -> _BatchOut:
        from ftaudit.data.loading import iter_texts

        opts = self.opts
        tally = bias_mod.BiasTally() if role == "train" else None
        out: list[_RecOut] = []
        to_detect: list[tuple[_RecOut, str, str]] = []
        for rec in batch:
            try:
                leaves = list(iter_texts(rec, list(opts.fields) if opts.fields else None))
            except BadInput as exc:
                if opts.on_error == "stop":
                    raise
                out.append(_RecOut(rec.index, b"", b"", None, skipped=str(exc)))
                continue
            content = [t for path, t in leaves if _leaf_key(path) not in METADATA_KEYS]
            joined = "\n".join(content)
            r = _RecOut(
                index=rec.index, rec_hash=prov.record_hash(rec.data), key=exact_key(joined),
                sig=self.hasher.signature(joined), chars=len(joined), tokens=self.tokens(joined) if joined else 0,
                content_bytes=len(joined.encode("utf-8")), language=detect_language(joined) if joined else "und",
                fields=len(leaves), content_fields=len(content), flag=quality_flag(content),
            )
            if role == "train":
                r.domains, r.domain_method = prov.record_domains(rec.data, content)
                bias_mod.tally_record(content, self.lexicon, tally)
                if opts.detect:
                    r.ner = opts.ner_rate is not None and in_ner_sample(opts, file_no, rec.index)
                    to_detect += [(r, path, text) for path, text in leaves if text]
            out.append(r)
        if to_detect:
            self._detect(to_detect)
        return _BatchOut(out, tally)

    def _detect(self, items: list[tuple[_RecOut, str, str]]) -> None:
        from ftaudit.data.pii import detect_many

        # One call per batch (and per NER choice): NER runs spaCy's nlp.pipe over all its texts at once.
        sampled: Counter = Counter()
        if self.opts.ner_rate is None:
            found_all = detect_many([t for *_, t in items], ner=self.opts.ner)
        else:
            found_all = [[] for _ in items]
            for ner in (True, False):
                chosen = [i for i, (r, *_) in enumerate(items) if r.ner == ner]
                for i, found in zip(chosen, detect_many([items[i][2] for i in chosen], ner=ner), strict=True):
                    found_all[i] = found
        for (r, path, text), found in zip(items, found_all, strict=True):
            if not found:
                continue
            spans = [(f.start, f.end, f.type) for f in found if not f.type.startswith(_SPECIAL_PREFIX)]
            for f in found:
                r.findings.append((path, f.start, f.end, f.type, f.score))
                if sampled[f.type] < self.opts.samples_per_type:
                    sampled[f.type] += 1
                    r.samples.append((f.type, path, f.start, f.end,
                                      redacted_context(text, spans + [(f.start, f.end, f.type)], (f.start, f.end))))


NER_SAMPLE_RULE = ("record I of file K (both 0-based, files in the order given) had NER when the first 8 bytes "
                   "of sha256 of the text SEED:K:I, read as a big-endian integer, are below rate × 2^64")


def in_ner_sample(opts: ScanOptions, file_no: int, index: int) -> bool:
    digest = hashlib.sha256(f"{opts.ner_seed}:{file_no}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") < opts.ner_rate * 2.0 ** 64


def wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion k/n."""
    if n == 0:
        return 0.0, 1.0
    p, z2 = k / n, z * z
    centre, half = (p + z2 / (2 * n)) / (1 + z2 / n), z * ((p * (1 - p) + z2 / (4 * n)) / n) ** 0.5 / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _count_records(paths: list[Path], formats: dict[Path, str]) -> int:
    """Records in the training files, before the scan, for the NER sample's rate: lines of JSONL/text files
    (one pass that counts newlines), the records of the others."""
    from ftaudit.data.loading import LINE_FORMATS, iter_records

    total = 0
    for p in paths:
        if formats[p] in LINE_FORMATS:
            with open(p, "rb") as fh:
                last = b"\n"
                while chunk := fh.read(1 << 20):
                    total += chunk.count(b"\n")
                    last = chunk[-1:]
                total += last != b"\n"
        else:
            total += sum(1 for _ in iter_records(p, on_error="skip", errors=[]))
    return total


def _leaf_key(path: str) -> str:
    m = _LAST_KEY.search(path)
    if not m:
        return ""
    return (m.group(1) or m.group(2) or "").lower()


_WORKER: _Worker | None = None


class ShardUnavailable(BadInput):
    """A shard's file vanished or changed mid-scan: the checkpoint stays, so the scan can be resumed."""


_VANISHED = ("{p}: disappeared during the scan; nothing was written; put it back and rerun with --resume to "
             "continue where the scan was")


@dataclass(frozen=True)
class _Job:
    """One unit of work: a batch of records the main process read (JSON, CSV, Parquet, datasets), or a shard of a
    JSONL or text file that the worker reads itself (no records pickled across processes)."""

    opts: ScanOptions
    role: str
    file_no: int
    batch: list | None = None
    path: str | None = None
    span: Any = None  # loading.ByteRange
    size: int = 0  # the file's size when the scan started
    errors: tuple = ()  # a batch's unreadable records (read by the main process)

    @property
    def bytes(self) -> int:
        return self.span.end - self.span.start if self.span is not None else 0


def _run_job(job: _Job) -> tuple[str, int, _BatchOut, int]:
    """Worker entry point: (role, file number, results, bytes read). The worker state is built once per process
    (and rebuilt if the options change)."""
    global _WORKER
    if _WORKER is None or _WORKER.opts != job.opts:
        _WORKER = _Worker(job.opts)
    if job.span is None:
        out = _WORKER.run(job.batch, job.role, job.file_no)
        out.errors = list(job.errors)
        return job.role, job.file_no, out, 0
    return job.role, job.file_no, _run_shard(_WORKER, job), job.bytes


def _run_shard(worker: _Worker, job: _Job) -> _BatchOut:
    from ftaudit.data.loading import iter_records

    p = Path(job.path)
    try:
        if p.stat().st_size != job.size:
            raise ShardUnavailable(f"{p}: changed during the scan (its size is not what it was when the scan "
                                   "started); nothing was written; scan it again once it no longer changes")
    except FileNotFoundError:
        raise ShardUnavailable(_VANISHED.format(p=p)) from None
    out = _BatchOut([], bias_mod.BiasTally() if job.role == "train" else None)
    records = iter_records(p, on_error=job.opts.on_error, errors=out.errors, span=job.span)
    for batch in _batches(records, job.opts.batch_size):
        out.extend(worker.run(batch, job.role, job.file_no))
    return out


def _generic_field(path: str) -> str:
    return _INDEX.sub("[*]", path)


class _FindingsWriter:
    """The findings contract, one JSON object per line, written to a temp file and renamed at the end."""

    def __init__(self, path: str | Path | None, with_source: bool, *, resume: tuple[str, int] | None = None):
        from ftaudit.data import checkpoint

        self.path = Path(path) if path else None
        self.with_source = with_source
        self.fh = None
        self.tmp: Path | None = None
        if self.path is not None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                if resume is not None and resume[0]:
                    self.tmp, self.fh = Path(resume[0]), checkpoint.reopen(*resume)
                else:
                    self.tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
                    self.fh = open(self.tmp, "wb")
            except OSError as exc:
                raise BadInput(f"cannot write {self.path}: {exc.strerror}") from None

    def position(self) -> int:
        """Bytes written so far, on disk (what a checkpoint records)."""
        if self.fh is None:
            return 0
        self.fh.flush()
        os.fsync(self.fh.fileno())
        return self.fh.tell()

    def write(self, source: str, index: int, f: tuple[str, int, int, str, float]) -> None:
        if self.fh is None:
            return
        from ftaudit.data.spans import Finding

        obj = Finding(index, f[0], f[1], f[2], f[3], f[4], "").as_dict()  # the contract's keys, in its order
        if self.with_source:
            obj["source"] = source
        self.fh.write((json.dumps(obj, ensure_ascii=False) + "\n").encode("utf-8"))

    def finish(self) -> None:
        if self.fh is not None:
            self.fh.flush()
            os.fsync(self.fh.fileno())
            self.fh.close()
            os.replace(self.tmp, self.path)

    def abort(self) -> None:
        if self.fh is not None:
            self.fh.close()
            self.tmp.unlink(missing_ok=True)

    def close(self) -> None:
        if self.fh is not None:
            self.fh.close()


@dataclass
class _TypeAgg:
    category: str
    count: int = 0
    records: int = 0
    fields: Counter = field(default_factory=Counter)
    samples: list[RedactedSample] = field(default_factory=list)


class _Aggregate:
    def __init__(self, opts: ScanOptions, findings: _FindingsWriter, classify_fn: Callable[[str], str]):
        self.opts = opts
        self.findings = findings
        self.classify = classify_fn
        self.digest = prov.RecordDigest()
        self.eval_digest = prov.RecordDigest()
        self.counts = Counts()
        self.stats = TextStats()
        self.quality = QualityIssues()
        self.domains = prov.DomainTally()
        self.dups = DuplicateFinder(num_perm=opts.num_perm, bands=opts.bands,
                                    threshold=opts.near_duplicate_threshold, max_examples=MAX_EXAMPLES)
        self.bias = bias_mod.BiasTally()
        self.types: dict[str, _TypeAgg] = {}
        self.special: dict[str, _SpecialAgg] = {}
        self.total_findings = 0
        self.rec_pii = self.rec_secret = self.rec_special = self.rec_special_terms = 0
        self.eval_records = self.exact_leaks = self.near_leaks = 0
        self.leak_examples: list[RecordPair] = []
        self.skipped: list[SkippedRecord] = []
        self.sources: list[str] = []
        self.ner_records = 0
        self.ner_type_records: Counter = Counter()  # records NER read that hold this NER type

    def source_of(self, item: int) -> tuple[str, int]:
        return self.sources[item >> ID_SHIFT], item & ((1 << ID_SHIFT) - 1)

    def add_train(self, file_no: int, source: str, out: _BatchOut) -> int:
        n = 0
        if out.bias is not None:
            self.bias.merge(out.bias)
        for r in out.records:
            if r.skipped is not None:
                self._skip(source, r.index, r.skipped)
                continue
            n += 1
            self.digest.update(r.rec_hash)
            self._content(r)
            if r.flag != "empty":  # empty records are reported as empty, not as duplicates of each other
                self.dups.add((file_no << ID_SHIFT) | r.index, r.key, r.sig)
            self.domains.add(r.domains, r.content_bytes, r.domain_method)
            self.ner_records += r.ner
            self._findings(source, r)
        return n

    def add_eval(self, source: str, out: _BatchOut) -> int:
        n = 0
        for r in out.records:
            if r.skipped is not None:
                self._skip(source, r.index, r.skipped)
                continue
            n += 1
            self.eval_records += 1
            self.eval_digest.update(r.rec_hash)
            if r.flag == "empty":
                continue
            exact, pairs = self.dups.index.query(r.key, r.sig)
            match: tuple[int, float] | None = None
            if exact is not None:
                self.exact_leaks += 1
                match = (exact, 1.0)
            elif pairs:
                self.near_leaks += 1
                best = max(pairs, key=lambda p: p.similarity)
                match = (best.a, best.similarity)
            if match and len(self.leak_examples) < MAX_EXAMPLES:
                t_src, t_idx = self.source_of(match[0])
                self.leak_examples.append(RecordPair(a_source=source, a_record=r.index, b_source=t_src,
                                                     b_record=t_idx, similarity=round(match[1], 4)))
        return n

    def _skip(self, source: str, index: int, reason: str) -> None:
        self.counts.skipped_records += 1
        if len(self.skipped) < MAX_SKIPPED_LISTED:
            self.skipped.append(SkippedRecord(source=source, index=index, reason=reason))

    def _content(self, r: _RecOut) -> None:
        c = self.counts
        c.records += 1
        c.fields += r.fields
        c.content_fields += r.content_fields
        c.characters += r.chars
        c.content_bytes += r.content_bytes
        c.tokens += r.tokens
        self.stats.add(r.chars, r.tokens, r.language)
        if r.flag:
            q = self.quality
            if r.flag == "empty":
                q.empty_records += 1
            else:
                q.garbled_records += 1
            q.by_reason[r.flag] = q.by_reason.get(r.flag, 0) + 1
            ex = q.record_examples.setdefault(r.flag, [])
            if len(ex) < MAX_EXAMPLES:
                ex.append(r.index)

    def _findings(self, source: str, r: _RecOut) -> None:
        if not r.findings:
            return
        cats: set[str] = set()
        types_here: set[str] = set()
        personal_special: set[str] = set()
        for f in r.findings:
            self.findings.write(source, r.index, f)
            typ = f[3]
            agg = self.types.get(typ)
            if agg is None:
                agg = self.types[typ] = _TypeAgg(self.classify(typ))
            agg.count += 1
            agg.fields[_generic_field(f[0])] += 1
            types_here.add(typ)
            cats.add(agg.category)
            if agg.category == "special_category" and f[4] >= SPECIAL_PERSONAL_MIN_SCORE:
                personal_special.add(typ)
            self.total_findings += 1
        if r.ner:
            from ftaudit.data.pii import NER_TYPES

            self.ner_type_records.update(t for t in types_here if t in NER_TYPES)
        for typ in types_here:
            self.types[typ].records += 1
            if self.types[typ].category == "special_category":
                flag = self.special.setdefault(special_category_name(typ), _SpecialAgg())
                flag.add(r.index, typ in personal_special)
        for typ, path, start, end, text in r.samples:
            agg = self.types[typ]
            if len(agg.samples) < self.opts.samples_per_type:
                agg.samples.append(RedactedSample(record=r.index, source=source, field=path, start=start, end=end,
                                                  redacted=text))
        self.rec_pii += "personal_data" in cats
        self.rec_secret += "secret" in cats
        self.rec_special_terms += "special_category" in cats
        self.rec_special += bool(personal_special)


@dataclass
class _SpecialAgg:
    records: int = 0
    term_only: int = 0
    examples: list[int] = field(default_factory=list)
    term_examples: list[int] = field(default_factory=list)

    def add(self, index: int, personal: bool) -> None:
        if personal:
            self.records += 1
            if len(self.examples) < MAX_EXAMPLES:
                self.examples.append(index)
        else:
            self.term_only += 1
            if len(self.term_examples) < MAX_EXAMPLES:
                self.term_examples.append(index)

    def flag(self, category: str) -> SpecialCategoryFlag:
        return SpecialCategoryFlag(category=category, records=self.records, term_only_records=self.term_only,
                                   record_examples=(self.examples + self.term_examples)[:MAX_EXAMPLES])


def _fingerprint(path: Path, role: str, fmt: str, records: int, skipped: int) -> FileFingerprint:
    digest, size = path_sha256(path)
    return FileFingerprint(path=str(path), role=role, format=fmt, sha256=digest, bytes=size, records=records,
                           skipped=skipped)


def path_sha256(path: Path) -> tuple[str, int]:
    """sha256 of a file; for a dataset directory, sha256 over its sorted 'relative path  file-sha256' lines."""
    if path.is_file():
        return sha256_file(path)
    lines, total = [], 0
    for p in sorted(q for q in path.rglob("*") if q.is_file()):
        digest, size = sha256_file(p)
        total += size
        lines.append(f"{p.relative_to(path).as_posix()}  {digest}\n")
    return hashlib.sha256("".join(lines).encode()).hexdigest(), total


def _batches(records: Iterator, size: int) -> Iterator[list]:
    batch: list = []
    for rec in records:
        batch.append(rec)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def scan(
    paths: Iterable[str | os.PathLike],
    *,
    eval_paths: Iterable[str | os.PathLike] = (),
    datasheet: str | os.PathLike | Datasheet | None = None,
    policy: Any = None,
    options: ScanOptions | None = None,
    findings_path: str | os.PathLike | None = None,
    progress: bool = False,
    tdm: str | os.PathLike | None = None,
    checkpoint_path: str | os.PathLike | None = None,
    resume: bool = False,
    checkpoint_seconds: float = 30.0,
    engine: str = "local",
    ray_address: str | None = None,
) -> DataEvidence:
    """Scan training files (and eval files for leakage); return the evidence. Never raises for a policy block:
    the verdict is in `evidence.policy` (see `policy.enforce`). `tdm`: saved TDM reservations of the source domains
    (`ftaudit.data.tdm`), checked against every domain of the training data. `checkpoint_path`: where the state
    is saved every `checkpoint_seconds` (after a folded shard), so that `resume=True` continues an interrupted scan
    and gives the report an uninterrupted one gives. `engine="ray"`: the same jobs as Ray tasks on the cluster at
    `ray_address` (`ftaudit.data.ray_engine`), the same report."""
    from ftaudit.data.loading import detect_format
    from ftaudit.data.policy import evaluate, load_policy

    opts = options or ScanOptions()
    train = [Path(p) for p in paths]
    evals = [Path(p) for p in eval_paths]
    if not train:
        raise BadInput("no data to scan: pass one or more files")
    if opts.workers < 1:
        raise BadInput(f"--workers must be at least 1, not {opts.workers}")
    if opts.on_error not in ("stop", "skip"):
        raise BadInput(f"--on-error must be 'stop' or 'skip', not {opts.on_error!r}")
    if not 0 < opts.near_duplicate_threshold <= 1:
        raise BadInput("the near-duplicate threshold must be in (0, 1]")
    if engine not in ("local", "ray"):
        raise BadInput(f"--engine must be 'local' or 'ray', not {engine!r}")
    formats = {p: detect_format(p) for p in train + evals}  # unknown types fail before any work
    for p in train + evals:
        if not p.exists():
            raise BadInput(f"{p}: no such file or directory")
    sheet = load_datasheet(datasheet) if isinstance(datasheet, (str, os.PathLike)) else datasheet
    sheet_sha = sha256_file(datasheet)[0] if isinstance(datasheet, (str, os.PathLike)) else None
    the_policy = load_policy(policy)
    if tdm is not None:
        tdm_mod.check_source(tdm)
    if opts.ner_sample is not None:
        if opts.ner is False or opts.ner_sample < 1:
            raise BadInput("--ner sample:N needs N >= 1 and NER switched on")
        opts = dataclasses.replace(opts, ner=True,
                                   ner_rate=min(1.0, opts.ner_sample / max(1, _count_records(train, formats))))
    info = detection_info(opts.ner) if opts.detect else None
    roles = [("train", p) for p in train] + [("eval", p) for p in evals]
    run = _Run(opts, roles, formats, findings_path, Path(checkpoint_path) if checkpoint_path else None, resume,
               checkpoint_seconds)
    agg, files = run.fold(progress, engine, ray_address)
    if info is not None and opts.ner_rate is not None:
        info.ner_sample = _ner_sample(agg, opts)
        info.note += (f" NER read a seeded uniform sample of {agg.ner_records:,} of {agg.counts.records:,} records "
                      f"(rate {opts.ner_rate:.4g}, seed {opts.ner_seed}); PERSON, LOCATION and NRP counts cover that "
                      "sample only, and their rates are estimated with 95 % intervals.")
    evidence = _evidence(agg, opts, files, sheet, sheet_sha, info, bool(evals))
    if tdm is not None:
        evidence.tdm = tdm_mod.check([(r.domain, r.records) for r in agg.domains.ranked()], tdm)
    evidence.policy = evaluate(evidence, the_policy)
    return evidence


def _ner_sample(agg: "_Aggregate", opts: ScanOptions) -> NerSample:
    from ftaudit.data.pii import NER_TYPES

    n, total = agg.ner_records, agg.counts.records
    estimates = []
    for t in NER_TYPES:
        k = agg.ner_type_records[t]
        low, high = wilson(k, n)
        rate = k / n if n else 0.0
        estimates.append(NerEstimate(type=t, sampled_records_with_type=k, rate=round(rate, 6), ci_low=round(low, 6),
                                     ci_high=round(high, 6), estimated_records=round(rate * total)))
    return NerSample(records=n, coverage=round(n / total, 6) if total else 0.0, rate=opts.ner_rate,
                     seed=opts.ner_seed, rule=NER_SAMPLE_RULE, estimates=estimates)


def _all_personal(finding_type: str) -> str:
    return "personal_data"


class _Run:
    """The main process of a scan: jobs out to the workers in order, results folded back in the same order (the
    report is the same for any number of workers), a checkpoint now and then, the findings file at the end."""

    def __init__(self, opts: ScanOptions, roles: list[tuple[str, Path]], formats: dict[Path, str],
                 findings_path, checkpoint_path: Path | None, resume: bool, checkpoint_seconds: float):
        from ftaudit.data import checkpoint

        self.opts, self.roles, self.formats = opts, roles, formats
        self.checkpoint_path, self.checkpoint_seconds = checkpoint_path, checkpoint_seconds
        self.inputs = checkpoint.fingerprint([p for _, p in roles]) if checkpoint_path else []
        state = None
        if checkpoint_path is not None and resume:
            state = checkpoint.load(checkpoint_path, options=opts, inputs=self.inputs)
        elif checkpoint_path is not None:
            _discard_stale(checkpoint_path)
        self.writer = _FindingsWriter(findings_path, with_source=sum(r == "train" for r, _ in roles) > 1,
                                      resume=(state.findings_tmp, state.findings_bytes) if state else None)
        if state is not None:
            self.agg, self.per_file, self.errors = state.aggregate, state.per_file, state.errors
            self.agg.findings = self.writer
            self.done, self.bytes_done = state.jobs_done, state.bytes_done
        else:
            self.agg = _Aggregate(opts, self.writer, classify if opts.detect else _all_personal)
            self.agg.sources = [str(p) for _, p in roles]
            self.per_file, self.errors = Counter(), {i: [] for i in range(len(roles))}
            self.done = self.bytes_done = 0

    def jobs(self) -> Iterator[_Job]:
        from ftaudit.data.loading import LINE_FORMATS, byte_ranges, iter_records

        opts = self.opts
        for file_no, (role, p) in enumerate(self.roles):
            if not p.exists():
                raise ShardUnavailable(_VANISHED.format(p=p))
            if self.formats[p] in LINE_FORMATS:
                size = p.stat().st_size
                for span in byte_ranges(p, opts.shard_bytes):
                    yield _Job(opts, role, file_no, path=str(p), span=span, size=size)
                continue
            errs: list = []  # read here: each batch takes the unreadable records met since the one before
            for batch in _batches(iter_records(p, on_error=opts.on_error, errors=errs), opts.batch_size):
                yield _Job(opts, role, file_no, batch=batch, errors=tuple(errs))
                errs.clear()
            if errs:
                yield _Job(opts, role, file_no, batch=[], errors=tuple(errs))

    def fold(self, progress: bool, engine: str = "local",
             ray_address: str | None = None) -> tuple["_Aggregate", list[FileFingerprint]]:
        from functools import partial
        from itertools import islice

        from ftaudit.data import checkpoint, parallel, ray_engine
        from ftaudit.data.loading import LINE_FORMATS

        imap_ordered = (partial(ray_engine.imap_ordered, address=ray_address) if engine == "ray" else
                        partial(parallel.imap_ordered, workers=self.opts.workers))

        agg = self.agg
        total = sum(p.stat().st_size for _, p in self.roles if self.formats[p] in LINE_FORMATS)
        bar = _Progress(progress, total_bytes=total, done_bytes=self.bytes_done)
        last_save = time.monotonic()
        try:
            for role, file_no, out, nbytes in imap_ordered(_run_job, islice(self.jobs(), self.done, None)):
                source = agg.sources[file_no]
                if role == "train":
                    self.per_file[file_no] += agg.add_train(file_no, source, out)
                else:
                    self.per_file[file_no] += agg.add_eval(source, out)
                self.errors[file_no] += out.errors
                self.done, self.bytes_done = self.done + 1, self.bytes_done + nbytes
                bar.advance(len(out.records), nbytes, source)
                if self.checkpoint_path is not None and time.monotonic() - last_save >= self.checkpoint_seconds:
                    self._save()
                    last_save = time.monotonic()
            for file_no, (_, p) in enumerate(self.roles):
                if self.formats[p] in LINE_FORMATS and not self.per_file[file_no] and not self.errors[file_no]:
                    raise BadInput(f"{p}: contains no records")  # what iter_records says of a whole file
                for e in self.errors[file_no]:
                    agg._skip(e.source, e.index, e.message)
            files = [_fingerprint(p, role, self.formats[p], self.per_file[i], len(self.errors[i]))
                     for i, (role, p) in enumerate(self.roles)]
        except (KeyboardInterrupt, ShardUnavailable):
            if self.checkpoint_path is not None and self.checkpoint_path.is_file():
                self.writer.close()  # kept for --resume, with the checkpoint
            else:
                self.writer.abort()
            raise
        except BaseException:
            self.writer.abort()
            checkpoint.discard(self.checkpoint_path)
            raise
        finally:
            bar.close()
        self.writer.finish()
        checkpoint.discard(self.checkpoint_path)
        return agg, files

    def _save(self) -> None:
        from ftaudit.data import checkpoint

        agg, self.agg.findings = self.agg.findings, None  # the open file stays out of the pickle
        try:
            checkpoint.save(self.checkpoint_path, checkpoint.State(
                version=checkpoint.VERSION, options=self.opts, inputs=self.inputs, jobs_done=self.done,
                bytes_done=self.bytes_done, aggregate=self.agg, per_file=self.per_file, errors=self.errors,
                findings_tmp=str(self.writer.tmp) if self.writer.tmp else None,
                findings_bytes=self.writer.position()))
        finally:
            self.agg.findings = agg


def _discard_stale(path: Path) -> None:
    """A fresh scan replaces an old checkpoint, and the partial findings file it points to."""
    import pickle

    from ftaudit.data import checkpoint

    if not path.is_file():
        return
    try:
        with open(path, "rb") as fh:
            tmp = getattr(pickle.load(fh), "findings_tmp", None)
    except Exception:  # noqa: BLE001 - a damaged checkpoint is simply replaced
        tmp = None
    checkpoint.discard(path, tmp)


def scan_for_record(paths: Iterable[str | os.PathLike], **kwargs) -> DataEvidence:
    """What the pipeline's preflight calls: the evidence for `RunRecord.data`, policy verdict included.

    kwargs as for `scan` (eval_paths, datasheet, policy, options, findings_path, tdm). The caller decides whether to
    stop: `ftaudit.data.policy.enforce(evidence.policy)` raises DataPolicyBlocked (exit 5)."""
    kwargs.setdefault("progress", False)
    return scan(paths, **kwargs)


def _evidence(agg: _Aggregate, opts: ScanOptions, files: list[FileFingerprint], sheet: Datasheet | None,
              sheet_sha: str | None, info: DetectionInfo | None, with_eval: bool) -> DataEvidence:
    records = agg.counts.records
    by_type = [
        FindingTypeSummary(type=t, category=a.category, count=a.count, records=a.records,
                           top_fields=dict(a.fields.most_common(5)), samples=a.samples)
        for t, a in sorted(agg.types.items(), key=lambda kv: (-kv[1].count, kv[0]))
    ]
    findings = FindingsSummary(
        total=agg.total_findings, records_with_personal_data=agg.rec_pii, records_with_secrets=agg.rec_secret,
        records_with_special_categories=agg.rec_special, records_with_special_category_terms=agg.rec_special_terms,
        by_type=by_type, special_categories=[v.flag(c) for c, v in sorted(agg.special.items())],
        detection=info,
    )
    d = agg.dups.result()
    method = (f"MinHash ({opts.num_perm} permutations, word 3-gram shingles) + LSH ({opts.bands} bands), "
              "candidates verified against the threshold; exact = identical after case/whitespace normalisation")
    duplicates = Duplicates(
        method=method, threshold=opts.near_duplicate_threshold,
        exact_duplicate_records=d.exact_duplicate_items, exact_groups=d.exact_groups,
        near_duplicate_records=d.near_duplicate_items, near_duplicate_clusters=d.near_duplicate_clusters,
        duplicate_rate=round((d.exact_duplicate_items + d.near_duplicate_items) / records, 6) if records else 0.0,
        near_examples=[_pair(agg, p.a, p.b, p.similarity) for p in d.pairs],
        exact_examples=[[agg.source_of(i)[1] for i in g] for g in d.exact_examples],
    )
    leakage = None
    if with_eval:
        leaked = agg.exact_leaks + agg.near_leaks
        leakage = Leakage(method=method, threshold=opts.near_duplicate_threshold, eval_records=agg.eval_records,
                          exact_overlap=agg.exact_leaks, near_overlap=agg.near_leaks,
                          overlap_rate=round(leaked / agg.eval_records, 6) if agg.eval_records else 0.0,
                          examples=agg.leak_examples)
    total_chars = sum(agg.stats.language_chars.values()) or 1
    languages = [LanguageShare(language=lang, records=n, characters=agg.stats.language_chars[lang],
                               share=round(agg.stats.language_chars[lang] / total_chars, 4))
                 for lang, n in sorted(agg.stats.languages.items(), key=lambda kv: (-agg.stats.language_chars[kv[0]],
                                                                                    kv[0]))]
    ranked = agg.domains.ranked()
    keep = prov.top_domain_count(len(ranked), sme=opts.sme)
    domains = Domains(
        method="registrable domain of the record's URL metadata field, else of URLs in its text (sharing its "
               "content size equally); content size = UTF-8 bytes of content text (reading)",
        domains_total=len(ranked), records_with_domain=sum(agg.domains.by_method.values()),
        rule=prov.top_domain_rule(opts.sme),
        top=[DomainShare(domain=r.domain, bytes=r.bytes, records=r.records, share=r.share) for r in ranked[:keep]],
    )
    digest = RecordDigest(algorithm=prov.RecordDigest.algorithm, value=agg.digest.hexdigest(), records=records)
    eval_digest = (RecordDigest(algorithm=prov.RecordDigest.algorithm, value=agg.eval_digest.hexdigest(),
                                records=agg.eval_records) if with_eval else None)
    summary = bias_mod.summarise(agg.bias)
    from ftaudit.data.evidence import BiasEvidence

    return DataEvidence(
        scanned_at=datetime.now(timezone.utc), files=files, record_digest=digest, eval_record_digest=eval_digest,
        counts=agg.counts, skipped=agg.skipped, findings=findings, duplicates=duplicates, leakage=leakage,
        languages=languages,
        language_method="script + function-word profile (ftaudit.data.stats.detect_language); 'und' = undetermined",
        characters=agg.stats.char_distribution(),
        tokens=agg.stats.token_distribution(TokenCounter.method_name(opts.tokenizer)),
        quality=agg.quality, domains=domains, datasheet=sheet, datasheet_sha256=sheet_sha,
        missing_answers=missing_answers(sheet, personal_data_found=agg.rec_pii > 0,
                                        special_categories_found=agg.rec_special > 0),
        bias=BiasEvidence.model_validate(summary),
    )


def _pair(agg: _Aggregate, a: int, b: int, sim: float) -> RecordPair:
    a_src, a_idx = agg.source_of(a)
    b_src, b_idx = agg.source_of(b)
    return RecordPair(a_source=a_src, a_record=a_idx, b_source=b_src, b_record=b_idx, similarity=round(sim, 4))


class _Progress:
    """Rich progress on stderr for long scans (records; bytes, MB/s and time left where files are sharded); silent
    when disabled (--json, library use)."""

    def __init__(self, enabled: bool, *, total_bytes: int = 0, done_bytes: int = 0):
        self.p = None
        if enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            columns = [SpinnerColumn(), TextColumn("{task.description}"),
                       TextColumn("{task.fields[records]:,} records")]
            if total_bytes:
                columns += [BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn()]
            self.p = Progress(*columns, TimeElapsedColumn(), console=Console(stderr=True), transient=True)
            self.p.start()
            self.task = self.p.add_task("scanning", total=total_bytes or None, completed=done_bytes, records=0)
            self.records = 0

    def advance(self, records: int, nbytes: int, source: str) -> None:
        if self.p is not None:
            self.records += records
            self.p.update(self.task, advance=nbytes, records=self.records, description=f"scanning {Path(source).name}")

    def close(self) -> None:
        if self.p is not None:
            self.p.stop()
