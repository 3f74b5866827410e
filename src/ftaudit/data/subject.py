"""Data-subject requests over the training data: access (GDPR Art. 15) and erasure (Art. 17).

`find` takes one person's identifiers (e-mail, phone, name, national ID) and lists every record of the given
datasets that holds one: as written, in other spellings of the same value (case, separators, a phone's
international or national form) and, given the anonymisation key, as the keyed pseudonyms or hashes that
`ftaudit data anonymize` wrote into earlier copies. `erase` then writes a new version of each dataset without those
records, beside the old one, which stays until `confirm`. `affected_runs` lists from the ledger every run trained
on a dataset version that held the person, and every run fine-tuned from one of those models: what a controller
needs to answer the request and to decide on retraining.

Identifiers are never written or printed: results name them by number and kind, the ledger entry of each request
holds salted digests of them only, and the workers that search the shards (local processes or Ray Data, the
scan's engines) get only the compiled patterns, in memory.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from ftaudit.data.storage import ObjectPath, location
from ftaudit.errors import BadInput

KINDS = ("email", "phone", "name", "id")
EVENT = "data_subject"  # ledger event names: data_subject.find, data_subject.erase, data_subject.confirm
_SEP = r"[\s\-./()]*"  # what may stand between the digits of a phone number or the characters of an ID


@dataclass(frozen=True)
class Identifier:
    kind: str
    value: str


def parse_identifiers(text: str) -> list[Identifier]:
    """One identifier a line, `kind: value` (kind: email, phone, name, id) or a bare value whose kind is inferred;
    blank lines and `#` comments are skipped. Errors name the line, never its value."""
    out: list[Identifier] = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        kind, sep, value = line.partition(":")
        if sep and kind.strip().lower() in KINDS:
            kind, value = kind.strip().lower(), value.strip()
        elif sep and re.fullmatch(r"[A-Za-z_ ]{2,20}", kind.strip()) and "@" not in line:
            raise BadInput(f"identifier line {n}: unknown kind {kind.strip()!r}; use one of {', '.join(KINDS)}")
        else:
            kind, value = _infer_kind(line), line
        if len(re.sub(r"\W", "", value)) < 3:
            raise BadInput(f"identifier line {n}: the {kind} is too short to search for (at least 3 letters or "
                           "digits)")
        out.append(Identifier(kind, value))
    if not out:
        raise BadInput("no identifiers given: one per line (email: …, phone: …, name: …, id: …) on stdin or in "
                       "--identifiers FILE")
    return out


def _infer_kind(value: str) -> str:
    if "@" in value:
        return "email"
    if re.fullmatch(r"\+?[\d\s\-./()]{7,}", value):
        return "phone"
    return "id" if any(c.isdigit() for c in value) else "name"


def salted_digests(identifiers: Sequence[Identifier], salt: str) -> list[dict[str, str]]:
    """What the ledger keeps of a request's identifiers: kind and sha256(salt, kind, normalised value)."""
    return [{"kind": i.kind, "sha256": hashlib.sha256(f"{salt}\x00{i.kind}\x00{_normal(i)}".encode()).hexdigest()}
            for i in identifiers]


def _normal(i: Identifier) -> str:
    if i.kind == "email":
        return i.value.strip().casefold()
    if i.kind == "name":
        return " ".join(i.value.casefold().split())
    if i.kind == "phone":
        return "".join(c for c in i.value if c.isdigit() or c == "+")
    return re.sub(r"[^0-9A-Za-z]", "", i.value).upper()


# ------------------------------------------------------------------------------------------------ matching

def _phone_regex(value: str) -> str:
    """The national significant number with any separators, after an optional trunk 0 or +/00 country code."""
    import phonenumbers

    from ftaudit.data.patterns.recognizers import PHONE_REGIONS, candidate_regions

    digits = re.sub(r"\D", "", value)
    international = value.strip().startswith(("+", "00"))
    numbers = []
    for region in (None,) if international else (candidate_regions(digits) or PHONE_REGIONS):
        try:
            numbers.append(phonenumbers.parse("+" + digits[2:] if value.strip().startswith("00") else value, region))
        except phonenumbers.NumberParseException:
            continue
    parsed = next((n for n in numbers if phonenumbers.is_valid_number(n)),
                  next((n for n in numbers if phonenumbers.is_possible_number(n)), None))
    if parsed is None:  # not a number of a known plan: the digits as given
        return r"(?<!\d)" + _SEP.join(digits) + r"(?!\d)"
    nsn = phonenumbers.national_significant_number(parsed)
    cc = str(parsed.country_code)
    prefix = rf"(?:(?:\+|00){_SEP}{cc}{_SEP}(?:\(0\){_SEP})?|0{_SEP})?"
    return r"(?<![\d+])" + prefix + _SEP.join(nsn) + r"(?!\d)"


def _exact_regex(i: Identifier) -> str:
    if i.kind == "email":
        return r"(?<![\w.+\-])" + re.escape(i.value.strip()) + r"(?![\w\-])"
    if i.kind == "phone":
        return _phone_regex(i.value)
    if i.kind == "name":
        words = [re.escape(w) for w in i.value.split()]
        forms = [r"\s+".join(words)]
        if len(words) > 1:  # "Doe, Jane"
            forms.append(words[-1] + r",\s*" + r"\s+".join(words[:-1]))
        return r"(?<!\w)(?:" + "|".join(forms) + r")(?!\w)"
    chars = re.sub(r"[^0-9A-Za-z]", "", i.value)
    return r"(?<![0-9A-Za-z])" + r"[\s\-./]?".join(map(re.escape, chars)) + r"(?![0-9A-Za-z])"


def _pseudonyms(i: Identifier, key: bytes) -> list[str]:
    """Every stand-in `ftaudit data anonymize --strategy pseudonymize|hash` writes for this value with this key."""
    from ftaudit.data.anonymize import stand_in
    from ftaudit.data.patterns.recognizers import PATTERN_TYPES

    types = {"email": ["EMAIL_ADDRESS"], "phone": ["PHONE_NUMBER"], "name": ["PERSON"]}.get(i.kind)
    if types is None:  # a national ID: every identifier type (the key binds the stand-in to the type)
        types = [t for t in PATTERN_TYPES if t not in ("EMAIL_ADDRESS", "PHONE_NUMBER", "URL", "IP_ADDRESS")]
    out = set()
    for t in types:
        out.add(stand_in(i.value, t, "hash", key=key, preserve_format=False))
        for keep in (False, True):
            out.add(stand_in(i.value, t, "pseudonymize", key=key, preserve_format=keep))
    return sorted(out)


class Matcher:
    """Which of the identifiers occur in a text: exact and normalised spellings, and the keyed pseudonyms."""

    def __init__(self, identifiers: Sequence[Identifier], key: bytes | None = None):
        self.exact = [re.compile(_exact_regex(i), re.IGNORECASE) for i in identifiers]
        # Format-preserving stand-ins keep the letter case of the spelling anonymised: compare without case.
        self.pseudo = [re.compile("|".join(map(re.escape, _pseudonyms(i, key))), re.IGNORECASE) if key else None
                       for i in identifiers]

    def hits(self, text: str) -> list[tuple[int, str]]:
        """(identifier number, 'exact' | 'pseudonym') for each identifier found in `text`."""
        out = []
        for n, (exact, pseudo) in enumerate(zip(self.exact, self.pseudo, strict=True), 1):
            if exact.search(text):
                out.append((n, "exact"))
            elif pseudo is not None and pseudo.search(text):
                out.append((n, "pseudonym"))
        return out


# ------------------------------------------------------------------------------------------------ results

class RecordHit(BaseModel):
    record: int = Field(description="0-based record index in its file")
    fields: list[str] = Field(description="field paths that hold an identifier")
    identifiers: list[int] = Field(description="numbers of the identifiers found (1 = the first line given)")
    pseudonymised: bool = Field(False, description="found as a keyed pseudonym of an earlier anonymised copy")


class DatasetResult(BaseModel):
    path: str
    sha256: str = Field(description="the dataset version searched")
    records_scanned: int
    records: list[RecordHit] = Field(default_factory=list)
    new_version: str | None = Field(None, description="erase: the new version without these records")
    new_sha256: str | None = None


class AffectedRun(BaseModel):
    run_id: str
    output_name: str | None = None
    status: str | None = None
    created_at: str | None = None
    reason: str


class MissingDataset(BaseModel):
    path: str = Field(description="where a run recorded a data file that is not there now")
    runs: list[str] = Field(description="the runs that recorded it")
    sha256: list[str] = Field(description="the versions they recorded")


class SubjectReport(BaseModel):
    request_id: str
    action: str
    identifiers: list[str] = Field(description="'1 (email)', …: kinds only, never values")
    datasets: list[DatasetResult]
    missing: list[MissingDataset] = Field(default_factory=list, description="--registered: data files runs trained "
                                          "on that are not at their recorded path: not searched")
    runs: list[AffectedRun] = Field(default_factory=list)
    ledger_seq: int | None = None

    @property
    def records_found(self) -> int:
        return sum(len(d.records) for d in self.datasets)


# ------------------------------------------------------------------------------------------------ the actions

@dataclass(frozen=True)
class FindJob:
    """A shard of a JSONL, text or Parquet file its worker reads itself, or a batch of records the main process
    read."""

    matcher: Matcher
    path: str
    span: Any = None  # loading.ByteRange | loading.RowGroups
    batch: list | None = None


def find_in(job: FindJob) -> tuple[str, int, list[RecordHit]]:
    """Worker entry point (a local process or a Ray Data map task): (file, records read, the records that hold an
    identifier)."""
    from ftaudit.data.loading import iter_records, iter_texts

    records = job.batch if job.batch is not None else iter_records(job.path, span=job.span)
    scanned, hits = 0, []
    for rec in records:
        scanned += 1
        fields, found, pseudo = [], set(), False
        for path, text in iter_texts(rec):
            found_here = job.matcher.hits(text)
            if found_here:
                fields.append(path)
                found.update(n for n, _ in found_here)
                pseudo |= any(how == "pseudonym" for _, how in found_here)
        if found:
            hits.append(RecordHit(record=rec.index, fields=fields, identifiers=sorted(found), pseudonymised=pseudo))
    return job.path, scanned, hits


def _absolute(p: Path | ObjectPath) -> Path | ObjectPath:
    return p.absolute() if isinstance(p, Path) else p


def _jobs(files: list[Path | ObjectPath], matcher: Matcher, shard_bytes: int, batch_size: int) -> Iterator[FindJob]:
    from ftaudit.data.loading import detect_format
    from ftaudit.data.scan_worker import units

    for p in files:
        for u in units(p, detect_format(p), shard_bytes=shard_bytes, batch_size=batch_size):
            yield FindJob(matcher, str(p), span=u.span, batch=u.batch)


def find(paths: Iterable[str | os.PathLike], identifiers: Sequence[Identifier], *, key: bytes | None = None,
         request_id: str | None = None, action: str = "find", workers: int | None = None, engine: str = "local",
         ray_address: str | None = None, shard_bytes: int = 1 << 22, batch_size: int = 1024) -> SubjectReport:
    """Every record of `paths` that holds one of the identifiers (every string of the record, metadata too), on
    the scan's engines: `workers` local processes over byte-range shards, or Ray Data (`engine="ray"`). The
    identifiers travel to the workers only as the compiled patterns they match with, in memory."""
    from ftaudit.data import parallel, ray_engine
    from ftaudit.data.loading import detect_format
    from ftaudit.data.scan_aggregate import path_sha256

    files = list(dict.fromkeys(_absolute(location(p)) for p in paths))  # confirm may run from another directory
    if not files:
        raise BadInput("no datasets given: pass the files (or saved HF dataset directories) to search")
    for p in files:
        detect_format(p)
        if not p.exists():
            raise BadInput(f"{p}: no such file or directory")
    results = {str(p): DatasetResult(path=str(p), sha256=path_sha256(p)[0], records_scanned=0) for p in files}
    jobs = _jobs(files, Matcher(identifiers, key), shard_bytes, batch_size)
    done = (ray_engine.imap_ordered(find_in, jobs, address=ray_address) if engine == "ray" else
            parallel.imap_ordered(find_in, jobs, workers=workers))
    for path, scanned, hits in done:
        results[path].records_scanned += scanned
        results[path].records += hits
    return SubjectReport(request_id=request_id or secrets.token_hex(8), action=action,
                         identifiers=[f"{n} ({i.kind})" for n, i in enumerate(identifiers, 1)],
                         datasets=list(results.values()))


def erased_path(path: Path | ObjectPath, request_id: str) -> Path | ObjectPath:
    from ftaudit.data.loading import detect_format

    if detect_format(path) == "hf_dataset":
        return path.with_name(f"{path.name}.erased-{request_id}.jsonl")
    return path.with_name(f"{path.stem}.erased-{request_id}{path.suffix}")


def erase(report: SubjectReport) -> SubjectReport:
    """Writes, for each dataset with hits, a new version without those records beside the old one (atomic; the
    old version is untouched until `confirm`), in object storage as on disk. JSONL and text keep an empty line in
    each erased record's place, so the other records keep their numbers."""
    from ftaudit.data.anonymize import write_records
    from ftaudit.data.loading import detect_format, iter_records
    from ftaudit.data.scan_aggregate import path_sha256

    for d in report.datasets:
        if not d.records:
            continue
        src = location(d.path)
        if src.suffix.lower() == ".gz":
            raise BadInput(f"{src}: erasure writes uncompressed files; decompress it first (gunzip -k)")
        fmt = detect_format(src)
        out = erased_path(src, report.request_id)
        drop = {h.record for h in d.records}

        def kept(src: Path | ObjectPath = src, drop: set[int] = drop):
            batch: list[tuple[int, dict]] = []
            for rec in iter_records(src):
                if rec.index not in drop:
                    batch.append((rec.index, rec.data))
                if len(batch) >= 256:
                    yield batch
                    batch = []
            yield batch

        with tempfile.TemporaryDirectory() as tmp:  # an object's new version: written whole here, uploaded once
            local = out if isinstance(out, Path) else Path(tmp) / out.name
            write_records("jsonl" if fmt == "hf_dataset" else fmt, local, src, kept())
            d.new_sha256 = path_sha256(local)[0]
            if local is not out:
                out.upload(local)
        d.new_version = str(out)
    report.action = "erase"
    return report


def confirm(erasure: dict, *, already_confirmed: bool) -> list[dict]:
    """Replace each old version by its new one, after checking that neither changed since the erase request."""
    from ftaudit.data.scan_aggregate import path_sha256

    if already_confirmed:
        raise BadInput(f"request {erasure['request_id']} was already confirmed")
    todo = [d for d in erasure["datasets"] if d.get("new_version")]
    for d in todo:
        old, new = location(d["path"]), location(d["new_version"])
        if not new.is_file() or path_sha256(new)[0] != d["new_sha256"]:
            raise BadInput(f"{new}: the new version is missing or was changed since the erase request; run erase "
                           "again")
        if not old.exists() or path_sha256(old)[0] != d["sha256"]:
            raise BadInput(f"{old}: the dataset changed since the erase request; run erase again")
    for d in todo:
        location(d["new_version"]).replace(location(d["path"]))
    return [{"path": d["path"], "sha256": d["new_sha256"], "replaced_sha256": d["sha256"]} for d in todo]


# ------------------------------------------------------------------------------------------------ the ledger

def _runs(ledger) -> list[tuple]:
    return ledger.store.query("SELECT run_id, parent_run_id, output_name, status, record_created_at FROM runs "
                              "ORDER BY first_seq")


def _data_files(ledger, run_id: str) -> list[dict]:
    return ((ledger.run_record(run_id) or {}).get("data") or {}).get("files") or []


def registered(ledger) -> tuple[list[Path | ObjectPath], list[MissingDataset]]:
    """Every data file (train or eval) a run in the ledger recorded, once each in the order first recorded: those
    at their recorded path to be searched, and those missing there, with the runs and versions that name them.
    A relative path is read from the current directory, as the run that recorded it read it."""
    seen: dict[str, MissingDataset] = {}
    for run_id, *_ in _runs(ledger):
        for f in _data_files(ledger, run_id):
            entry = seen.setdefault(f["path"], MissingDataset(path=f["path"], runs=[], sha256=[]))
            if run_id not in entry.runs:
                entry.runs.append(run_id)
            if f.get("sha256") and f["sha256"] not in entry.sha256:
                entry.sha256.append(f["sha256"])
    here = {path: location(path) for path in seen}
    present = [p for p in here.values() if p.exists()]
    return present, [m for path, m in seen.items() if not here[path].exists()]


def affected_runs(ledger, digests: dict[str, str]) -> list[AffectedRun]:
    """Runs whose record lists a data file with one of these sha256 digests ({sha256: path}), then, transitively,
    the runs that started from one of their models (a lineage's parent run)."""
    rows = _runs(ledger)
    found: dict[str, AffectedRun] = {}
    for run_id, _, output_name, status, created in rows:
        hit = next((f for f in _data_files(ledger, run_id) if f.get("sha256") in digests), None)
        if hit is not None:
            found[run_id] = AffectedRun(run_id=run_id, output_name=output_name, status=status, created_at=created,
                                        reason=f"trained on {digests[hit['sha256']]} (version "
                                               f"{hit['sha256'][:12]}), which held the person's data")
    grew = True
    while grew:
        grew = False
        for run_id, parent, output_name, status, created in rows:
            if run_id not in found and parent in found:
                found[run_id] = AffectedRun(run_id=run_id, output_name=output_name, status=status,
                                            created_at=created, reason=f"fine-tuned from the model of run {parent}")
                grew = True
    return list(found.values())


def record_request(ledger, report: SubjectReport, identifiers: Sequence[Identifier]) -> int:
    salt = secrets.token_hex(16)
    data = {"request_id": report.request_id, "salt": salt, "identifiers": salted_digests(identifiers, salt),
            **report.model_dump(mode="json", include={"datasets", "missing", "runs"})}
    return ledger.record_event(f"dsr-{report.request_id}", f"{EVENT}.{report.action}", data).seq
