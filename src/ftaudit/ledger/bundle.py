"""`ftaudit bundle RUN_DIR -o bundle.zip` and its offline check, `ftaudit verify bundle.zip`.

Layout of the archive:
  manifest.json         every other member with its sha256 and size, plus weights referenced by hash only
  manifest.sig          ed25519 signature of manifest.json by the bundler's key
  run/...               run_record.json, docs/, evidence JSON, registered non-weight artefacts of the run
  ledger/entries.jsonl  the run's ledger entries in full (its lineage, run, event and artefact entries)
  ledger/chain.jsonl    the headers (hashes, no content) of every entry from the run's first one to the head:
                        proof that the run's entries sit inside one signed chain, without revealing other runs
  ledger/head.json      the signed head at bundling time: a checkpoint (`ftaudit verify LEDGER --checkpoint`)
  keys/<key_id>.pem     the public keys that signed entries, head and manifest
A reviewer who never saw the ledger checks all of it; pinning the provider's key (`--public-key`) turns
"consistent" into "made by that provider".
"""

from __future__ import annotations

import json
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from ftaudit.errors import BadInput, VerificationFailed
from ftaudit.io import atomic_open
from ftaudit.ledger import chain
from ftaudit.ledger.core import Ledger, SignedHead
from ftaudit.ledger.keys import (
    SigningKey,
    key_id,
    parse_public_pem,
    public_pem,
    verify_signature,
)
from ftaudit.ledger.store import ENTRY_COLUMNS
from ftaudit.ledger.verify import (
    Trust,
    check_head_signature,
    check_linked_entry,
    expected_artefacts,
    first_difference,
    inside_run_dir,
    read_run_record,
    verify_run_dir,
)
from ftaudit.record import RECORD_FILENAME

BUNDLE_FORMAT = "ftaudit-bundle/1"
MANIFEST, SIGNATURE = "manifest.json", "manifest.sig"
# Weights and data are referenced by hash, not packed (they are large, and data may hold personal data): a reviewer
# holding them can check them against the ledger. A kind's prefix decides ("dataset:train" is a dataset).
REFERENCE_KINDS = {"model", "adapter", "checkpoint", "weights", "data", "dataset", "base-model"}
SKELETON_FIELDS = ("seq", "kind", "created_at", "key_id", "prev_hash", "content_sha256", "entry_hash", "signature")
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed member times: the same run gives the same members


class BundleFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str
    sha256: str
    bytes: int
    ledger_seq: int | None = None  # the ledger entry that registered this file; None: signed by the manifest only


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format: str = BUNDLE_FORMAT
    created_at: str
    run_id: str
    ledger_id: str
    bundler_key_id: str
    files: list[BundleFile]
    referenced: list[BundleFile]


class BundleReport(BaseModel):
    model_config = ConfigDict(extra="forbid")
    bundle: str
    run_id: str
    ledger_id: str
    files: int
    referenced: int
    chain_entries: int
    key_ids: list[str]
    pinned: bool


def member_path(rel: str) -> str:
    """The manifest path of an artefact: run/<rel> inside the run directory; external:<path> for inputs outside it
    (datasets, a GGUF base file), which are referenced by hash and never packed."""
    return f"run/{rel}" if inside_run_dir(rel) else f"external:{rel}"


def reference_only(rel: str, kind: str | None) -> bool:
    """Weights, training and evaluation data (`dataset:train`, `dataset:eval`, ...) and anything outside the run
    directory are referenced by hash: never copied into a bundle (size, and personal data in the data)."""
    return member_path(rel).startswith("external:") or (kind or "").split(":", 1)[0] in REFERENCE_KINDS


def _run_files(run_dir: Path, artefacts: dict[str, dict[str, Any]]) -> tuple[dict[str, int | None], list]:
    """Relative paths to pack (-> registering ledger seq) and artefacts to reference only."""
    pack: dict[str, int | None] = {}
    referenced = []
    for rel, meta in artefacts.items():
        if reference_only(rel, meta.get("kind")):
            referenced.append(BundleFile(path=member_path(rel), sha256=meta["sha256"], bytes=meta.get("bytes") or 0,
                                         ledger_seq=meta["seq"]))
        else:
            pack[rel] = meta["seq"]
    skip = {f.path for f in referenced}
    candidates = [run_dir / RECORD_FILENAME, *sorted(run_dir.glob("*.json"))]
    if (run_dir / "docs").is_dir():
        candidates += sorted(p for p in (run_dir / "docs").rglob("*") if p.is_file())
    for p in candidates:
        rel = p.relative_to(run_dir).as_posix()
        if p.is_symlink() or any(part.startswith(".") for part in Path(rel).parts) or member_path(rel) in skip:
            continue  # hidden files are temporaries of atomic writes in progress
        pack.setdefault(rel, None)
    return pack, referenced


def write_bundle(ledger: Ledger, run_dir: str | Path, out: str | Path, key: SigningKey, trust: Trust) -> Manifest:
    """Verify the run against the ledger, then write the bundle atomically (a temp file renamed into place)."""
    run_dir, out = Path(run_dir), Path(out)
    with ledger.store.transaction(write=False):  # one snapshot: what is verified is what is packed
        members = _collect(ledger, run_dir, key, trust)
    _write_zip_atomically(out, members[0])
    return members[1]


def _collect(ledger: Ledger, run_dir: Path, key: SigningKey, trust: Trust) -> tuple[dict[str, bytes], "Manifest"]:
    verify_run_dir(ledger, run_dir, trust)  # never bundle a run that does not verify
    record = read_run_record(run_dir)
    run_id = record["run_id"]
    summary = ledger.run(run_id)
    artefacts = expected_artefacts(ledger, run_id, ledger.run_record(run_id))
    pack, referenced = _run_files(run_dir, artefacts)

    members: dict[str, bytes] = {}
    for rel, _ in sorted(pack.items()):
        try:
            members["run/" + rel] = (run_dir / rel).read_bytes()
        except OSError as exc:
            raise BadInput(f"{run_dir / rel}: cannot read ({exc.strerror})") from None
    seqs = {"run/" + RECORD_FILENAME: summary.last_seq}
    seqs.update({"run/" + rel: seq for rel, seq in pack.items() if seq is not None})

    entries = list(ledger.entries(run_id=run_id))
    lineage_id = summary.lineage_id
    if lineage_id:
        row = ledger.store.one("SELECT seq FROM lineages WHERE lineage_id = ?", (lineage_id,))
        if row:
            entries = [ledger.entry(int(row[0])), *entries]
    head = ledger.head()
    first = min(e.seq for e in entries)
    cols = ", ".join(ENTRY_COLUMNS)
    skeleton, key_ids = [], {key.key_id, head.key_id}
    for r in ledger.store.stream(f"SELECT {cols} FROM entries WHERE seq >= ? AND seq <= ? ORDER BY seq",
                                 (first, head.count)):
        row = dict(zip(ENTRY_COLUMNS, r, strict=True))
        skeleton.append(chain.canonical_json({k: row[k] for k in SKELETON_FIELDS}))
        key_ids.add(row["key_id"])
    members["ledger/entries.jsonl"] = "".join(chain.canonical_json(e.model_dump()) + "\n" for e in entries).encode()
    members["ledger/chain.jsonl"] = "".join(s + "\n" for s in skeleton).encode()
    members["ledger/head.json"] = (head.model_dump_json(indent=2) + "\n").encode()
    keys = ledger.public_keys()
    keys[key.key_id] = key.public_raw
    for kid in sorted(key_ids):
        members[f"keys/{kid}.pem"] = public_pem(keys[kid]).encode()

    manifest = Manifest(
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        run_id=run_id, ledger_id=head.ledger_id, bundler_key_id=key.key_id,
        files=[BundleFile(path=name, sha256=chain.sha256_hex(data), bytes=len(data), ledger_seq=seqs.get(name))
               for name, data in sorted(members.items())],
        referenced=sorted(referenced, key=lambda f: f.path),
    )
    manifest_bytes = (manifest.model_dump_json(indent=2) + "\n").encode()
    members[MANIFEST] = manifest_bytes
    members[SIGNATURE] = (key.sign(chain.MANIFEST_DOMAIN + manifest_bytes) + "\n").encode()
    return members, manifest


def _write_zip_atomically(out: Path, members: dict[str, bytes]) -> None:
    with atomic_open(out, "wb") as fh:
        with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name in [MANIFEST, SIGNATURE, *sorted(n for n in members if n not in (MANIFEST, SIGNATURE))]:
                info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                zf.writestr(info, members[name])


# -- offline verification -------------------------------------------------------------------------------------
def _read_members(path: Path) -> dict[str, bytes]:
    if not path.is_file():
        raise BadInput(f"{path}: no such bundle")
    if not zipfile.is_zipfile(path):
        raise BadInput(f"{path}: not a zip archive, so not an ftaudit bundle")
    members: dict[str, bytes] = {}
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if info.is_dir():
                    continue
                if info.filename in members:
                    raise VerificationFailed(f"{path}: {info.filename} appears twice (file added)")
                try:
                    members[info.filename] = zf.read(info)
                except (zipfile.BadZipFile, OSError, EOFError) as exc:
                    raise VerificationFailed(f"{path}: {info.filename} is damaged ({exc})") from None
    except zipfile.BadZipFile as exc:
        raise VerificationFailed(f"{path}: archive damaged ({exc})") from None
    return members


def _json_lines(data: bytes, what: str) -> list[dict[str, Any]]:
    try:
        return [json.loads(line) for line in data.decode("utf-8").splitlines() if line.strip()]
    except (UnicodeDecodeError, ValueError):
        raise VerificationFailed(f"{what}: not JSON lines (modified)") from None


def verify_bundle(path: str | Path, trust: Trust) -> BundleReport:
    path = Path(path)
    members = _read_members(path)
    where = str(path)
    for required in (MANIFEST, SIGNATURE):
        if required not in members:
            raise VerificationFailed(f"{where}: {required} is missing")
    try:
        manifest = Manifest.model_validate_json(members[MANIFEST])
    except ValueError:
        raise VerificationFailed(f"{where}: {MANIFEST} is not a valid manifest (modified)") from None

    # Keys first: the manifest signature is checked with a key the bundle carries, so trust decides what it means.
    keys: dict[str, bytes] = {}
    for name, data in members.items():
        if name.startswith("keys/") and name.endswith(".pem"):
            try:
                raw = parse_public_pem(data, source=f"{where}: {name}")
            except BadInput as exc:
                raise VerificationFailed(str(exc)) from None
            if f"keys/{key_id(raw)}.pem" != name:
                raise VerificationFailed(f"{where}: {name} holds a different key (replaced)")
            keys[key_id(raw)] = raw
    bundler = keys.get(manifest.bundler_key_id)
    if bundler is None:
        raise VerificationFailed(f"{where}: keys/{manifest.bundler_key_id}.pem is missing")
    signature = members[SIGNATURE].decode("ascii", "replace").strip()
    if not verify_signature(bundler, signature, chain.MANIFEST_DOMAIN + members[MANIFEST]):
        raise VerificationFailed(f"{where}: {MANIFEST} does not match its signature (manifest modified)")
    trust.check(manifest.bundler_key_id, bundler, f"{where}: {MANIFEST}")

    listed = {f.path: f for f in manifest.files}
    present = set(members) - {MANIFEST, SIGNATURE}
    for name in sorted(present - set(listed)):
        raise VerificationFailed(f"{where}: extra file {name} (not in the manifest)")
    for name in sorted(set(listed) - present):
        raise VerificationFailed(f"{where}: file {name} is missing (listed in the manifest)")
    for name in sorted(listed):
        if chain.sha256_hex(members[name]) != listed[name].sha256 or len(members[name]) != listed[name].bytes:
            raise VerificationFailed(f"{where}: file {name} modified (sha256 differs from the manifest)")

    # The chain segment: every header links to the one before, is signed, and ends at the signed head.
    try:
        head = SignedHead.model_validate_json(members["ledger/head.json"])
    except (KeyError, ValueError):
        raise VerificationFailed(f"{where}: ledger/head.json missing or invalid") from None
    if head.ledger_id != manifest.ledger_id:
        raise VerificationFailed(f"{where}: ledger/head.json belongs to another ledger")
    check_head_signature(head, keys, trust, f"{where}: ledger/head.json")
    skeleton = _json_lines(members.get("ledger/chain.jsonl", b""), f"{where}: ledger/chain.jsonl")
    if not skeleton:
        raise VerificationFailed(f"{where}: ledger/chain.jsonl is empty")
    by_seq: dict[int, dict[str, Any]] = {}
    prev_hash, expected = skeleton[0].get("prev_hash"), skeleton[0].get("seq")
    for row in skeleton:
        try:
            prev_hash = check_linked_entry(row, ledger_id=head.ledger_id, expected_seq=expected, prev_hash=prev_hash,
                                           keys=keys, trust=trust, where=f"{where}: ledger/chain.jsonl")
        except (KeyError, TypeError):
            raise VerificationFailed(f"{where}: ledger/chain.jsonl line for entry {expected} is malformed") from None
        by_seq[row["seq"]] = row
        expected += 1
    if expected - 1 != head.count or prev_hash != head.head_hash:
        raise VerificationFailed(f"{where}: ledger/chain.jsonl does not end at the signed head (entry {head.count})")

    # The run's own entries: their content matches the signed headers.
    entries = _json_lines(members.get("ledger/entries.jsonl", b""), f"{where}: ledger/entries.jsonl")
    by_entry: dict[int, dict[str, Any]] = {}
    for e in entries:
        seq = e.get("seq")
        skel = by_seq.get(seq)
        if skel is None or chain.sha256_hex(chain.canonical_json(e.get("content"))) != skel["content_sha256"] \
                or any(e.get(k) != skel[k] for k in SKELETON_FIELDS):
            raise VerificationFailed(f"{where}: ledger/entries.jsonl entry {seq} modified (not the signed entry)")
        by_entry[seq] = e
    runs = [e for e in by_entry.values() if e["kind"] == "run" and e["content"].get("run_id") == manifest.run_id]
    if not runs:
        raise VerificationFailed(f"{where}: no ledger entry for run {manifest.run_id}")
    latest = max(runs, key=lambda e: e["seq"])
    record_name = "run/" + RECORD_FILENAME
    if record_name not in members:
        raise VerificationFailed(f"{where}: {record_name} is missing")
    try:
        record = json.loads(members[record_name])
    except ValueError:
        raise VerificationFailed(f"{where}: {record_name} is not valid JSON (modified)") from None
    diff = first_difference(latest["content"]["record"], record)
    if diff:
        raise VerificationFailed(f"{where}: {record_name} differs from ledger entry {latest['seq']} at field {diff}")
    for f in [*manifest.files, *manifest.referenced]:
        if f.ledger_seq is None or f.path == record_name:
            continue
        e = by_entry.get(f.ledger_seq)
        ok = e is not None and (
            (e["kind"] == "artefact" and member_path(e["content"]["path"]) == f.path
             and e["content"]["sha256"] == f.sha256)
            or (e["kind"] == "run" and any(member_path(a["path"]) == f.path and a["sha256"] == f.sha256
                                           for a in e["content"]["record"].get("artefacts") or []))
        )
        if not ok:
            raise VerificationFailed(f"{where}: {f.path} does not match its ledger entry {f.ledger_seq}")
    return BundleReport(bundle=where, run_id=manifest.run_id, ledger_id=manifest.ledger_id, files=len(listed),
                        referenced=len(manifest.referenced), chain_entries=len(skeleton), key_ids=sorted(keys),
                        pinned=trust.pinned)
