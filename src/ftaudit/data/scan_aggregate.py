"""The scan's aggregate: what the main process folds the workers' results into, in file and record order — counts,
distributions, the record digests, the duplicate index, findings by type — and the findings file it streams."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ftaudit.data import bias as bias_mod
from ftaudit.data import provenance as prov
from ftaudit.data.evidence import (
    Counts,
    FileFingerprint,
    QualityIssues,
    RecordPair,
    RedactedSample,
    SkippedRecord,
    SpecialCategoryFlag,
)
from ftaudit.data.quality import DuplicateFinder, Pair
from ftaudit.data.scan_worker import ID_SHIFT, SPECIAL_PREFIX, BatchOut, RecordOut, ScanOptions
from ftaudit.data.stats import TextStats
from ftaudit.data.storage import ObjectPath
from ftaudit.errors import BadInput
from ftaudit.io import sha256_stream

_INDEX = re.compile(r"\[\d+\]")
MAX_EXAMPLES = 20
MAX_SKIPPED_LISTED = 50


# ---------------------------------------------------------------------------------------------------------------
# Detection adapter: the detector module is owned by the detection work; this is the only place that touches it.
# ---------------------------------------------------------------------------------------------------------------

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
    if finding_type.startswith(SPECIAL_PREFIX):
        return "special_category"
    return "personal_data"


def special_category_name(finding_type: str) -> str:
    """'SPECIAL_CATEGORY_HEALTH' → 'health'."""
    return finding_type[len(SPECIAL_PREFIX):].lower() if finding_type.startswith(SPECIAL_PREFIX) else finding_type


def _generic_field(path: str) -> str:
    return _INDEX.sub("[*]", path)


class FindingsWriter:
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


class Aggregate:
    def __init__(self, opts: ScanOptions, findings: FindingsWriter, classify_fn: Callable[[str], str]):
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
        self.index_here = True  # False: the cluster finds duplicates and leaks (lsh_shuffle), `note`d afterwards

    def source_of(self, item: int) -> tuple[str, int]:
        return self.sources[item >> ID_SHIFT], item & ((1 << ID_SHIFT) - 1)

    def add_train(self, file_no: int, source: str, out: BatchOut) -> int:
        n = 0
        if out.bias is not None:
            self.bias.merge(out.bias)
        indexed = []
        for r in out.records:
            if r.skipped is not None:
                self._skip(source, r.index, r.skipped)
                continue
            n += 1
            self.digest.update(r.rec_hash)
            self._content(r)
            if r.flag != "empty" and self.index_here:  # empty records are not duplicates of each other
                indexed.append(r)
            self.domains.add(r.domains, r.content_bytes, r.domain_method)
            self.ner_records += r.ner
            self._findings(source, r)
        if indexed:
            self.dups.add_many([(file_no << ID_SHIFT) | r.index for r in indexed], [r.key for r in indexed],
                               [r.sig for r in indexed])
        return n

    def add_eval(self, source: str, out: BatchOut) -> int:
        n = 0
        queried = []
        for r in out.records:
            if r.skipped is not None:
                self._skip(source, r.index, r.skipped)
                continue
            n += 1
            self.eval_records += 1
            self.eval_digest.update(r.rec_hash)
            if r.flag != "empty" and self.index_here:
                queried.append(r)
        found = self.dups.index.query_many([r.key for r in queried], [r.sig for r in queried])
        for r, (exact, pairs) in zip(queried, found, strict=True):
            self.leak(source, r.index, exact, pairs)
        return n

    def leak(self, source: str, index: int, exact: int | None, pairs: list[Pair]) -> None:
        """What the training data's index found for an eval record: the training record it repeats exactly, or
        those it is near."""
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
            self.leak_examples.append(RecordPair(a_source=source, a_record=index, b_source=t_src,
                                                 b_record=t_idx, similarity=round(match[1], 4)))

    def _skip(self, source: str, index: int, reason: str) -> None:
        self.counts.skipped_records += 1
        if len(self.skipped) < MAX_SKIPPED_LISTED:
            self.skipped.append(SkippedRecord(source=source, index=index, reason=reason))

    def _content(self, r: RecordOut) -> None:
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

    def _findings(self, source: str, r: RecordOut) -> None:
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


def file_fingerprint(path: Path | ObjectPath, role: str, fmt: str, records: int, skipped: int) -> FileFingerprint:
    digest, size = path_sha256(path)
    return FileFingerprint(path=str(path), role=role, format=fmt, sha256=digest, bytes=size, records=records,
                           skipped=skipped)


def path_sha256(path: Path | ObjectPath) -> tuple[str, int]:
    """sha256 of a file (or object); for a dataset directory, sha256 over its sorted 'relative path  file-sha256'
    lines."""
    if path.is_file():
        with path.open("rb") as fh:
            return sha256_stream(fh)
    lines, total = [], 0
    # A local tree and its copy in object storage give the same digest: the same names, in path order.
    files = [(q.relative_to(path).as_posix(), q) for q in path.rglob("*") if q.is_file()] if isinstance(path, Path) \
        else [(q.url[len(path.url.rstrip("/")) + 1:], q) for q in path.rglob("*")]
    for name, p in sorted(files, key=lambda f: f[0].split("/")):
        with p.open("rb") as fh:
            digest, size = sha256_stream(fh)
        total += size
        lines.append(f"{name}  {digest}\n")
    return hashlib.sha256("".join(lines).encode()).hexdigest(), total
