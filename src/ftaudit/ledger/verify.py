"""`ftaudit verify`: check a ledger's chain, signatures, head and query tables, and a run directory against it.

What is detected, entry by entry (the first broken entry is named):
  - a modified field (content, kind, time, key, previous hash): the content hash or entry hash no longer matches;
  - a re-hashed modification: the ed25519 signature no longer matches (the forger lacks the private key);
  - a deleted entry: a gap in the sequence, or the next entry's prev_hash points elsewhere;
  - an inserted or reordered entry: its prev_hash or its signed sequence number does not fit;
  - a truncated tail: the signed head row says more entries than there are;
  - a swapped key (everything re-signed with another key): the key is not the trusted one (`--public-key`, or the
    local key when none is given);
  - edited query tables (`runs`, `lineages`): they differ from the ones rebuilt from the chain.
What is not detected without help from outside the ledger: replacing the whole ledger (head included) with an
older copy of itself — pass a checkpoint kept elsewhere (`ftaudit ledger checkpoint`, or the head inside a bundle)
with `--checkpoint`; and anything done by someone holding the private key.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ftaudit.errors import BadInput, RunIncomplete, VerificationFailed
from ftaudit.io import sha256_file
from ftaudit.ledger import chain
from ftaudit.ledger.core import RUN_COLUMNS, Ledger, SignedHead
from ftaudit.ledger.keys import (
    default_key_path,
    key_id,
    load_public_key,
    load_signing_key,
    verify_signature,
)
from ftaudit.ledger.store import ENTRY_COLUMNS, LedgerCorrupt
from ftaudit.record import RECORD_FILENAME


class Trust(BaseModel):
    """The public keys a verifier trusts; `pinned=False` means none was given or found locally, so a signature
    proves only that the ledger is consistent with the key it carries."""

    model_config = ConfigDict(extra="forbid")
    keys: dict[str, bytes] = {}
    pinned: bool = False

    def check(self, kid: str, raw: bytes, what: str) -> None:
        if self.pinned and raw not in self.keys.values():
            trusted = ", ".join(sorted(self.keys)) or "none"
            raise VerificationFailed(f"{what}: signed by key {kid}, which is not a trusted key ({trusted})")


def load_trust(public_key_files: list[str] | None = None, key_path: str | None = None) -> Trust:
    """Trusted keys from `--public-key` files; else the local signing key if one exists; else unpinned."""
    if public_key_files:
        raws = [load_public_key(p) for p in public_key_files]
        return Trust(keys={key_id(r): r for r in raws}, pinned=True)
    path = Path(key_path).expanduser() if key_path else default_key_path()
    if path.exists():
        raw = load_signing_key(path).public_raw
        return Trust(keys={key_id(raw): raw}, pinned=True)
    return Trust()


def load_checkpoint(path: str) -> SignedHead:
    try:
        return SignedHead.model_validate_json(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise BadInput(f"{path}: cannot read checkpoint ({exc.strerror})") from None
    except ValueError:
        raise BadInput(f"{path}: not a ledger checkpoint; make one with `ftaudit ledger checkpoint -o FILE`") from None


class LedgerReport(BaseModel):
    model_config = ConfigDict(extra="forbid")
    location: str
    ledger_id: str
    entries: int
    runs: int
    key_ids: list[str]
    pinned: bool
    checkpoint: int | None = None
    events: dict[str, int] | None = Field(None, description="The monitor's event log, when the ledger has one.")


def check_head_signature(head: SignedHead, keys: dict[str, bytes], trust: Trust, what: str) -> None:
    raw = keys.get(head.key_id)
    if raw is None:
        raise VerificationFailed(f"{what}: signed by key {head.key_id}, which is not registered")
    if not verify_signature(raw, head.signature, chain.head_message(head.payload())):
        raise VerificationFailed(f"{what}: signature does not match (head modified)")
    trust.check(head.key_id, raw, what)


def check_linked_entry(row: dict[str, Any], *, ledger_id: str, expected_seq: int, prev_hash: str,
                       keys: dict[str, bytes], trust: Trust, where: str) -> str:
    """Check one entry header (hash, link, signature, trust); returns its hash. Shared with bundle verification."""
    seq = int(row["seq"])
    label = f"{where}: entry {seq} ({row['kind']})"
    if seq != expected_seq:
        if seq > expected_seq:
            raise VerificationFailed(f"{where}: entry {expected_seq} is missing (deleted); the next entry is {seq}")
        raise VerificationFailed(f"{label}: out of order after entry {expected_seq - 1}")
    header = chain.entry_header(ledger_id=ledger_id, seq=seq, kind=row["kind"], created_at=row["created_at"],
                                key_id=row["key_id"], prev_hash=row["prev_hash"],
                                content_sha256=row["content_sha256"])
    if chain.entry_hash(header) != row["entry_hash"]:
        raise VerificationFailed(f"{label}: modified (its fields do not match its hash)")
    if row["prev_hash"] != prev_hash:
        raise VerificationFailed(f"{label}: does not follow entry {seq - 1} (an entry was inserted, deleted, "
                                 "reordered or modified)")
    raw = keys.get(row["key_id"])
    if raw is None:
        raise VerificationFailed(f"{label}: signed by key {row['key_id']}, which is not registered")
    if not verify_signature(raw, row["signature"], chain.entry_message(row["entry_hash"])):
        raise VerificationFailed(f"{label}: signature does not match (entry re-hashed or key swapped)")
    trust.check(row["key_id"], raw, label)
    return row["entry_hash"]


def verify_ledger(ledger: Ledger, trust: Trust, checkpoint: SignedHead | None = None) -> LedgerReport:
    try:
        with ledger.store.transaction(write=False):
            return _verify_ledger(ledger, trust, checkpoint)
    except LedgerCorrupt as exc:
        raise VerificationFailed(str(exc)) from None


def _verify_ledger(ledger: Ledger, trust: Trust, checkpoint: SignedHead | None) -> LedgerReport:
    where = f"ledger {ledger.location}"
    store = ledger.store
    problem = store.integrity_problem()
    if problem:
        raise VerificationFailed(f"{where}: ledger file damaged ({problem})")
    ledger_id_row = store.one("SELECT value FROM meta WHERE key = 'ledger_id'")
    if not ledger_id_row:
        raise VerificationFailed(f"{where}: ledger id missing from the meta table")
    ledger_id = ledger_id_row[0]
    keys = ledger.public_keys()
    for kid, raw in keys.items():
        if key_id(raw) != kid:
            raise VerificationFailed(f"{where}: key table entry {kid} holds a different key")
    head_row = store.one("SELECT count, head_hash, updated_at, key_id, signature FROM head WHERE id = 1")
    if head_row is None:
        raise VerificationFailed(f"{where}: signed head missing (deleted), so truncation cannot be ruled out")
    head = SignedHead(ledger_id=ledger_id, count=int(head_row[0]), head_hash=head_row[1], updated_at=head_row[2],
                      key_id=head_row[3], signature=head_row[4])
    check_head_signature(head, keys, trust, f"{where}: head")
    if checkpoint is not None:
        if checkpoint.ledger_id != ledger_id:
            raise VerificationFailed(f"checkpoint belongs to ledger {checkpoint.ledger_id}, not {ledger_id}")
        check_head_signature(checkpoint, keys, trust, "checkpoint")

    runs: dict[str, tuple] = {}
    lineages: dict[str, tuple] = {}
    prev_hash, expected = chain.GENESIS_HASH, 1
    for r in store.stream(f"SELECT {', '.join(ENTRY_COLUMNS)} FROM entries ORDER BY seq"):
        row = dict(zip(ENTRY_COLUMNS, r, strict=True))
        seq = int(row["seq"])
        label = f"{where}: entry {seq} ({row['kind']})"
        if seq > head.count and seq == expected:
            raise VerificationFailed(f"{label}: beyond the signed head ({head.count} entries); appended by "
                                     "something other than ftaudit")
        if chain.sha256_hex(row["content"]) != row["content_sha256"]:
            raise VerificationFailed(f"{label}: content modified (its hash does not match)")
        prev_hash = check_linked_entry(row, ledger_id=ledger_id, expected_seq=expected, prev_hash=prev_hash,
                                       keys=keys, trust=trust, where=where)
        content = json.loads(row["content"])
        if row["run_id"] != content.get("run_id") or row["lineage_id"] != content.get("lineage_id"):
            raise VerificationFailed(f"{label}: index columns run_id/lineage_id differ from the signed content")
        if checkpoint is not None and seq == checkpoint.count and prev_hash != checkpoint.head_hash:
            raise VerificationFailed(f"{label}: differs from the checkpoint's entry {seq} (history rewritten)")
        if row["kind"] == "run":
            old = runs.get(content["run_id"])
            runs[content["run_id"]] = (content["run_id"], content["lineage_id"], content["status"],
                                       content["regulatory_flops"], content["base_model"], content["output_name"],
                                       content["parent_run_id"], content["record_created_at"],
                                       old[8] if old else seq, seq)
        elif row["kind"] == "lineage":
            lineages.setdefault(content["lineage_id"], (content["lineage_id"], content["base_model"],
                                                        content["first_run_id"], seq))
        expected += 1
    count = expected - 1
    if count < head.count:
        raise VerificationFailed(f"{where}: truncated: the signed head records {head.count} entries, the ledger "
                                 f"holds {count}; entry {count + 1} onwards is missing")
    if count and prev_hash != head.head_hash:
        raise VerificationFailed(f"{where}: entry {count} is not the entry the signed head points to")
    if checkpoint is not None and count < checkpoint.count:
        raise VerificationFailed(f"{where}: truncated or rolled back: the checkpoint of {checkpoint.updated_at} "
                                 f"records {checkpoint.count} entries, the ledger holds {count}")

    stored_runs = {r[0]: tuple(_norm(v) for v in r) for r in store.query(f"SELECT {', '.join(RUN_COLUMNS)} FROM runs")}
    _compare_projection(where, "runs", {k: tuple(_norm(v) for v in v_) for k, v_ in runs.items()}, stored_runs)
    stored_lineages = {r[0]: tuple(_norm(v) for v in r)
                       for r in store.query("SELECT lineage_id, base_model, first_run_id, seq FROM lineages")}
    _compare_projection(where, "lineages", {k: tuple(_norm(v) for v in v_) for k, v_ in lineages.items()},
                        stored_lineages)
    return LedgerReport(location=ledger.location, ledger_id=ledger_id, entries=count, runs=len(runs),
                        key_ids=sorted(keys), pinned=trust.pinned,
                        checkpoint=checkpoint.count if checkpoint else None)


def _norm(v: Any) -> Any:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v


def _compare_projection(where: str, table: str, rebuilt: dict, stored: dict) -> None:
    for k in sorted(set(rebuilt) | set(stored), key=str):
        if rebuilt.get(k) != stored.get(k):
            state = "missing" if k not in stored else "extra" if k not in rebuilt else "altered"
            raise VerificationFailed(f"{where}: table {table}: row {k} is {state} (it differs from the chain)")


class RunDirReport(BaseModel):
    model_config = ConfigDict(extra="forbid")
    run_dir: str
    run_id: str
    artefacts_checked: int
    ledger: LedgerReport
    unregistered: list[str] = Field(default_factory=list, description="Files added after the run was recorded "
                                    "(listed with --allow-extra, an error otherwise).")


def first_difference(a: Any, b: Any, path: str = "") -> str | None:
    """The path of the first field where two JSON values differ (values are never shown: they may be personal)."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                return f"{path}.{k}".lstrip(".")
            d = first_difference(a[k], b[k], f"{path}.{k}")
            if d:
                return d
        return None
    if isinstance(a, list) and isinstance(b, list):
        for i, (x, y) in enumerate(zip(a, b, strict=False)):  # a length difference is reported below
            d = first_difference(x, y, f"{path}[{i}]")
            if d:
                return d
        return None if len(a) == len(b) else f"{path}[{min(len(a), len(b))}]".lstrip(".")
    return None if a == b and type(a) is type(b) else (path.lstrip(".") or "(whole record)")


def read_run_record(run_dir: Path) -> dict[str, Any]:
    path = run_dir / RECORD_FILENAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInput(f"{run_dir}: no {RECORD_FILENAME}; pass a run directory made by ftaudit") from None
    try:
        record = json.loads(text)
    except ValueError:
        raise VerificationFailed(f"{path}: not valid JSON any more (modified)") from None
    if not isinstance(record, dict) or not isinstance(record.get("run_id"), str):
        raise VerificationFailed(f"{path}: has no run_id (modified)")
    return record


def expected_artefacts(ledger: Ledger, run_id: str, record: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """path -> {sha256, kind, bytes, seq}: the record's artefact list, overridden by later ledger registrations."""
    out: dict[str, dict[str, Any]] = {}
    summary = ledger.run(run_id)
    for a in record.get("artefacts") or []:
        out[a["path"]] = {"sha256": a["sha256"], "kind": a.get("kind"), "bytes": a.get("bytes"),
                          "seq": summary.last_seq if summary else None}
    for a in ledger.artefacts(run_id):
        out[a.path] = {"sha256": a.sha256, "kind": a.kind, "bytes": a.bytes, "seq": a.seq}
    return out


def verify_run_dir(ledger: Ledger, run_dir: str | Path, trust: Trust,
                   checkpoint: SignedHead | None = None, *, allow_extra: bool = False) -> RunDirReport:
    """The run directory against the ledger: its record, every registered file, and no unregistered file in the
    folders that hold registered ones (docs/, logs/, model/, checkpoints/ ...), unless `allow_extra`."""
    run_dir = Path(run_dir)
    report = verify_ledger(ledger, trust, checkpoint)
    record = read_run_record(run_dir)
    run_id = record["run_id"]
    recorded = ledger.run_record(run_id)
    if recorded is None:
        stages = [s.get("name") for s in record.get("stages") or []]
        if stages and "record" not in stages:  # a pipeline run that has not reached its record stage
            raise RunIncomplete(f"{run_dir}: run {run_id} is incomplete (it stopped after stage {stages[-1]}, before "
                                "its record stage), so it has no ledger entry yet; finish it with `ftaudit train "
                                f"--resume {run_dir}`, then verify")
        raise VerificationFailed(f"{run_dir}: run {run_id} is not in ledger {ledger.location}")
    diff = first_difference(recorded, record)
    if diff:
        seq = ledger.run(run_id).last_seq
        raise VerificationFailed(f"{run_dir / RECORD_FILENAME}: differs from ledger entry {seq} at field {diff}")
    artefacts = expected_artefacts(ledger, run_id, recorded)
    for rel, meta in sorted(artefacts.items()):
        path = run_dir / rel
        if not path.is_file():
            raise VerificationFailed(f"{path}: artefact missing (registered in ledger entry {meta['seq']})")
        if sha256_file(path)[0] != meta["sha256"]:
            raise VerificationFailed(f"{path}: artefact modified (sha256 differs from ledger entry {meta['seq']})")
    extra = unregistered_files(run_dir, artefacts)
    if extra and not allow_extra:
        shown = ", ".join(extra[:5]) + (f" and {len(extra) - 5} more" if len(extra) > 5 else "")
        raise VerificationFailed(f"{run_dir}: {len(extra)} file(s) not registered in the ledger: {shown} (added after "
                                 "the run was recorded; remove them, or pass --allow-extra to list them only)")
    return RunDirReport(run_dir=str(run_dir), run_id=run_id, artefacts_checked=len(artefacts), ledger=report,
                        unregistered=extra)


def inside_run_dir(rel: str) -> bool:
    """A registered path that lies in the run directory (inputs such as datasets may be registered by an absolute
    path outside it)."""
    return not (Path(rel).is_absolute() or ".." in Path(rel).parts)


def unregistered_files(run_dir: Path, artefacts: dict[str, Any]) -> list[str]:
    """Files under the top-level folders that hold registered artefacts which are not registered themselves
    (hidden files, the temporaries of atomic writes, are skipped)."""
    inside = [Path(rel) for rel in artefacts if inside_run_dir(rel)]
    folders = sorted({p.parts[0] for p in inside if len(p.parts) > 1})
    known = {p.as_posix() for p in inside}
    extra = []
    for folder in folders:
        for path in sorted((run_dir / folder).rglob("*")):
            rel = path.relative_to(run_dir)
            if path.is_file() and not any(part.startswith(".") for part in rel.parts) and rel.as_posix() not in known:
                extra.append(rel.as_posix())
    return extra
